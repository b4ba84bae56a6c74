-- One round trip to read a wave's snapshot, one to write its plan (dispatch/src/wave.rs).
--
-- A wave is planned from a snapshot read without holding any lock, then written in one statement
-- that applies the plan only if the alert is still as it was read. "As it was read" is the alert's
-- `version`, which every write of the alert row bumps (a trigger, so no writer can forget): an
-- accept, a cancel, an assignment, another wave. Whatever changes the alert's dispatch (its
-- assignments, its status, its wave) writes the alert row too, so a plan made from a stale snapshot
-- never lands; it is read again and planned again.

ALTER TABLE dispatch.alerts ADD COLUMN version bigint NOT NULL DEFAULT 0;

CREATE FUNCTION dispatch.bump_alert_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.version := OLD.version + 1;
    RETURN NEW;
END
$$;

CREATE TRIGGER alerts_bump_version
    BEFORE UPDATE ON dispatch.alerts
    FOR EACH ROW EXECUTE FUNCTION dispatch.bump_alert_version();

-- The dispatcher claims the outbox rows of the alerts it was woken for (`alert_id = ANY(...)`).
CREATE INDEX outbox_alert_pending_idx ON dispatch.outbox (alert_id, id) WHERE processed_at IS NULL;
