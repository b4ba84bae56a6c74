-- The coordinators' operations centre: account trust, regions with their coordinators and triage
-- policy, the `triage` status, escalations that stay until acknowledged, phoned-in alerts.

-- How far KREKI trusts an account's panic (auth/src/trust.rs). Access tokens carry it, like roles.
ALTER TABLE auth.users
    ADD COLUMN trust text NOT NULL DEFAULT 'new',
    ADD COLUMN phone_verified_at timestamptz,
    ADD CONSTRAINT users_trust_known CHECK (trust IN ('new', 'verified', 'trusted', 'blocked'));

-- Areas a group of coordinators answers for (usually a kabupaten/kota). `triage` lists, per kind,
-- the trust levels whose panics wait for a coordinator: {"default": ["new"], "kinds": {...}}.
CREATE TABLE dispatch.regions (
    id         uuid PRIMARY KEY,
    name       text NOT NULL,
    area       geometry(MultiPolygon, 4326) NOT NULL,
    triage     jsonb NOT NULL DEFAULT '{"default": ["new"], "kinds": {}}',
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT regions_name_key UNIQUE (name),
    CONSTRAINT regions_area_valid CHECK (ST_IsValid(area)),
    CONSTRAINT regions_triage_object CHECK (jsonb_typeof(triage) = 'object')
);
CREATE INDEX regions_area_gix ON dispatch.regions USING gist (area);

CREATE TABLE dispatch.region_coordinators (
    region_id uuid NOT NULL REFERENCES dispatch.regions (id) ON DELETE CASCADE,
    user_id   uuid NOT NULL,
    PRIMARY KEY (region_id, user_id)
);
CREATE INDEX region_coordinators_user_idx ON dispatch.region_coordinators (user_id);

-- The region an alert belongs to (the one containing it, else the nearest; none without regions),
-- the caller's phone for a coordinator's call-back, and the new `triage` status.
ALTER TABLE dispatch.alerts
    ADD COLUMN region_id uuid REFERENCES dispatch.regions (id),
    ADD COLUMN caller_phone text,
    DROP CONSTRAINT alerts_status_known,
    ADD CONSTRAINT alerts_status_known CHECK (status IN
        ('triage', 'dispatching', 'assigned', 'on_scene', 'resolved', 'cancelled', 'unmatched'));
CREATE INDEX alerts_region_created_idx ON dispatch.alerts (region_id, created_at DESC);
DROP INDEX dispatch.alerts_citizen_open_idx;
CREATE INDEX alerts_citizen_open_idx ON dispatch.alerts (citizen_id, kind)
    WHERE status IN ('triage', 'dispatching', 'assigned', 'on_scene', 'unmatched');

-- Something a coordinator must see: an alarm on the region's dashboards until acknowledged. At most
-- one open escalation per alert and reason.
CREATE TABLE dispatch.escalations (
    id              uuid PRIMARY KEY,
    alert_id        uuid NOT NULL REFERENCES dispatch.alerts (id),
    region_id       uuid REFERENCES dispatch.regions (id),
    reason          text NOT NULL,
    raised_at       timestamptz NOT NULL DEFAULT now(),
    acknowledged_at timestamptz,
    acknowledged_by uuid,
    CONSTRAINT escalations_reason_known CHECK (reason IN
        ('unmatched', 'triage_waiting', 'responder_stalled', 'open_too_long')),
    CONSTRAINT escalations_ack_whole CHECK ((acknowledged_at IS NULL) = (acknowledged_by IS NULL))
);
CREATE UNIQUE INDEX escalations_one_open ON dispatch.escalations (alert_id, reason)
    WHERE acknowledged_at IS NULL;
CREATE INDEX escalations_open_idx ON dispatch.escalations (raised_at) WHERE acknowledged_at IS NULL;

-- An alert becoming `unmatched` or entering `triage` raises its escalation in the same
-- transaction, whichever statement changed it: it cannot be lost between a commit and a message.
CREATE FUNCTION dispatch.raise_status_escalation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status IN ('unmatched', 'triage')
       AND (TG_OP = 'INSERT' OR OLD.status IS DISTINCT FROM NEW.status) THEN
        INSERT INTO dispatch.escalations (id, alert_id, region_id, reason)
        VALUES (dispatch.uuid_v7(), NEW.id, NEW.region_id,
                CASE NEW.status WHEN 'unmatched' THEN 'unmatched' ELSE 'triage_waiting' END)
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER alerts_status_escalation
    AFTER INSERT OR UPDATE OF status ON dispatch.alerts
    FOR EACH ROW EXECUTE FUNCTION dispatch.raise_status_escalation();
