-- The SATUSEHAT bridge and the FHIR facade, in the `bridge` schema. The bridge never reads another
-- service's tables: incidents come from dispatch's event stream through the bridge's own feed port and
-- are projected here, from where the FHIR API serves and the Encounter sync works.

CREATE SCHEMA IF NOT EXISTS bridge;

-- How far the feed consumer has read dispatch's events (one row).
CREATE TABLE bridge.feed_cursor (
    id       smallint PRIMARY KEY CHECK (id = 1),
    last_seq bigint NOT NULL
);
INSERT INTO bridge.feed_cursor (id, last_seq) VALUES (1, 0);

-- One row per alert: what health systems read as Encounter + Location.
CREATE TABLE bridge.incidents (
    -- Insertion order; the stable key of FHIR search paging.
    row_id      bigserial UNIQUE NOT NULL,
    alert_id    uuid PRIMARY KEY,
    kind        text NOT NULL,
    status      text NOT NULL CHECK (status IN ('dispatching', 'assigned', 'on_scene', 'resolved', 'cancelled', 'unmatched')),
    location    geography(Point, 4326) NOT NULL,
    occurred_at timestamptz NOT NULL,
    ended_at    timestamptz,
    -- Only the NIK, and only when the citizen gave one: no names or phone numbers are kept here.
    patient_nik text CHECK (patient_nik ~ '^[0-9]{16}$'),
    -- Feed sequence of the last event applied (older or repeated events are ignored).
    last_seq    bigint NOT NULL,
    -- FHIR meta.versionId: bumped on every change.
    version     integer NOT NULL DEFAULT 1,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX incidents_occurred_at_idx ON bridge.incidents (occurred_at);
CREATE INDEX incidents_updated_at_idx ON bridge.incidents (updated_at);
CREATE INDEX incidents_location_idx ON bridge.incidents USING gist (location);

-- One row per assignment: what health systems read as Task.
CREATE TABLE bridge.tasks (
    assignment_id uuid PRIMARY KEY,
    alert_id      uuid NOT NULL REFERENCES bridge.incidents (alert_id),
    volunteer_id  uuid NOT NULL,
    status        text NOT NULL,
    ihs_number    text,
    version       integer NOT NULL DEFAULT 1,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tasks_alert_id_idx ON bridge.tasks (alert_id);

-- Practitioner verification of volunteers against SATUSEHAT.
CREATE TABLE bridge.practitioners (
    user_id         uuid PRIMARY KEY,
    -- Kept while a lookup is pending (to retry it); cleared once SATUSEHAT answered.
    nik             text CHECK (nik ~ '^[0-9]{16}$'),
    status          text NOT NULL CHECK (status IN ('verified', 'not_found', 'ambiguous', 'unavailable')),
    ihs_number      text,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    last_error      text,
    checked_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX practitioners_due_idx ON bridge.practitioners (next_attempt_at)
    WHERE status = 'unavailable' AND next_attempt_at IS NOT NULL;

-- Encounters to push to SATUSEHAT: created by the feed consumer in the same transaction as the
-- projection, worked by the sync worker with exponential back-off.
CREATE TABLE bridge.encounter_outbox (
    id              bigserial PRIMARY KEY,
    alert_id        uuid NOT NULL REFERENCES bridge.incidents (alert_id),
    action          text NOT NULL CHECK (action IN ('create', 'update')),
    state           text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
-- At most one create per alert, ever.
CREATE UNIQUE INDEX encounter_outbox_one_create ON bridge.encounter_outbox (alert_id) WHERE action = 'create';
CREATE INDEX encounter_outbox_due_idx ON bridge.encounter_outbox (next_attempt_at) WHERE state = 'pending';
CREATE INDEX encounter_outbox_failed_idx ON bridge.encounter_outbox (updated_at) WHERE state = 'failed';

-- What SATUSEHAT knows of each alert: its Encounter id there and the practitioner recorded.
CREATE TABLE bridge.encounter_sync (
    alert_id      uuid PRIMARY KEY REFERENCES bridge.incidents (alert_id),
    satusehat_id  text NOT NULL,
    ihs_number    text NOT NULL,
    patient_ihs   text,
    synced_status text NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
