-- A Severe or Extreme CAP warning raises an escalation for each region its area covers (one with no
-- region when no region does, for national coordinators): escalations may now be about a warning
-- (schema `cap`) instead of an alert. Exactly one of the two; at most one open per warning and region.
ALTER TABLE dispatch.escalations
    ALTER COLUMN alert_id DROP NOT NULL,
    ADD COLUMN warning_id uuid,
    DROP CONSTRAINT escalations_reason_known,
    ADD CONSTRAINT escalations_reason_known CHECK (reason IN
        ('unmatched', 'triage_waiting', 'responder_stalled', 'open_too_long', 'severe_warning')),
    ADD CONSTRAINT escalations_one_subject CHECK ((alert_id IS NULL) <> (warning_id IS NULL));
CREATE UNIQUE INDEX escalations_one_open_warning
    ON dispatch.escalations (warning_id, coalesce(region_id, '00000000-0000-0000-0000-000000000000'))
    WHERE acknowledged_at IS NULL AND warning_id IS NOT NULL;
