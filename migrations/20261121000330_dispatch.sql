-- Dispatch: alerts, their append-only timeline, the outbox and timers that drive waves of offers,
-- volunteers' duty and positions, offers and assignments. Schema `dispatch`; no other service reads
-- it (the FHIR bridge reads `alert_events` through dispatch's own API, never these tables).

CREATE EXTENSION IF NOT EXISTS postgis;
CREATE SCHEMA IF NOT EXISTS dispatch;

-- Per alert kind: what a volunteer needs to be offered it, and how the offers go out.
-- Seeded from `[dispatch]` config at start (only where a kind has no row yet); admins change it
-- through `PUT /v1/dispatch/kinds/{kind}`, and the next wave reads it.
CREATE TABLE dispatch.kind_settings (
    kind                           text PRIMARY KEY,
    required_certifications        text[] NOT NULL DEFAULT '{}',
    requires_verified_practitioner boolean NOT NULL DEFAULT false,
    responders_needed              integer NOT NULL DEFAULT 1 CHECK (responders_needed BETWEEN 1 AND 50),
    -- [{"count": 3, "radius_m": 1000, "timeout_s": 30}, ...], in order.
    waves                          jsonb NOT NULL,
    updated_at                     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT kind_settings_kind_known CHECK (kind IN
        ('medical', 'cardiac_arrest', 'accident', 'fire', 'disaster', 'security', 'other')),
    CONSTRAINT kind_settings_waves_array CHECK (jsonb_typeof(waves) = 'array')
);

CREATE TABLE dispatch.alerts (
    id                uuid PRIMARY KEY,
    citizen_id        uuid NOT NULL,
    -- Copied from the access token at creation: dispatch never reads auth's tables.
    citizen_name      text NOT NULL,
    kind              text NOT NULL,
    status            text NOT NULL DEFAULT 'dispatching',
    location          geography(Point, 4326) NOT NULL,
    -- H3 cell (resolution 9) of the location, kept beside the point for cell-keyed lookups.
    h3_cell           bigint NOT NULL,
    accuracy_m        real,
    note              text,
    patient_nik       text,
    responders_needed integer NOT NULL,
    -- The last wave of offers sent (0: none yet).
    wave              integer NOT NULL DEFAULT 0,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT alerts_kind_known CHECK (kind IN
        ('medical', 'cardiac_arrest', 'accident', 'fire', 'disaster', 'security', 'other')),
    CONSTRAINT alerts_status_known CHECK (status IN
        ('dispatching', 'assigned', 'on_scene', 'resolved', 'cancelled', 'unmatched'))
);
CREATE INDEX alerts_location_gix ON dispatch.alerts USING gist (location);
-- The repeat-press check: a citizen's open alerts of one kind.
CREATE INDEX alerts_citizen_open_idx ON dispatch.alerts (citizen_id, kind)
    WHERE status IN ('dispatching', 'assigned', 'on_scene', 'unmatched');
CREATE INDEX alerts_status_created_idx ON dispatch.alerts (status, created_at DESC);

-- One row per (citizen, Idempotency-Key): a retry finds the alert its first try made.
CREATE TABLE dispatch.idempotency_keys (
    citizen_id   uuid NOT NULL,
    key          text NOT NULL,
    -- SHA-256 of the normalised request; the same key with another body is a 409.
    request_hash bytea NOT NULL,
    alert_id     uuid NOT NULL REFERENCES dispatch.alerts (id) DEFERRABLE INITIALLY DEFERRED,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (citizen_id, key)
);

-- The append-only timeline of each alert.
CREATE TABLE dispatch.alert_events (
    id       bigserial PRIMARY KEY,
    alert_id uuid NOT NULL REFERENCES dispatch.alerts (id),
    at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    type     text NOT NULL,
    actor    uuid,
    data     jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX alert_events_alert_idx ON dispatch.alert_events (alert_id, id);

-- Work committed with an alert and done after commit (the first wave). Claimed with
-- FOR UPDATE SKIP LOCKED; a row with processed_at NULL is work not yet done.
CREATE TABLE dispatch.outbox (
    id           bigserial PRIMARY KEY,
    alert_id     uuid NOT NULL REFERENCES dispatch.alerts (id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    processed_at timestamptz
);
CREATE INDEX outbox_pending_idx ON dispatch.outbox (id) WHERE processed_at IS NULL;

-- The deadline of each wave: when it is due and still unfired, the next wave goes out.
CREATE TABLE dispatch.timers (
    id       bigserial PRIMARY KEY,
    alert_id uuid NOT NULL REFERENCES dispatch.alerts (id),
    wave     integer NOT NULL,
    due_at   timestamptz NOT NULL,
    fired_at timestamptz,
    CONSTRAINT timers_alert_wave_key UNIQUE (alert_id, wave)
);
CREATE INDEX timers_due_idx ON dispatch.timers (due_at) WHERE fired_at IS NULL;

CREATE TABLE dispatch.volunteers (
    user_id               uuid PRIMARY KEY,
    name                  text NOT NULL,
    on_duty               boolean NOT NULL DEFAULT false,
    location              geography(Point, 4326),
    h3_cell               bigint,
    accuracy_m            real,
    -- When the position was recorded by the device (UTC).
    location_at           timestamptz,
    practitioner_verified boolean NOT NULL DEFAULT false,
    -- No offers before this instant (after completing an assignment).
    rest_until            timestamptz,
    updated_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX volunteers_location_gix ON dispatch.volunteers USING gist (location);
CREATE INDEX volunteers_on_duty_idx ON dispatch.volunteers (user_id) WHERE on_duty;

-- Certifications granted until the LMS supplies them (tests and `kreki volunteer grant-cert`).
CREATE TABLE dispatch.granted_certifications (
    user_id    uuid NOT NULL,
    code       text NOT NULL,
    expires_at timestamptz,
    granted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, code)
);

CREATE TABLE dispatch.offers (
    id           uuid PRIMARY KEY,
    alert_id     uuid NOT NULL REFERENCES dispatch.alerts (id),
    volunteer_id uuid NOT NULL,
    wave         integer NOT NULL,
    distance_m   double precision NOT NULL,
    status       text NOT NULL DEFAULT 'pending',
    offered_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    responded_at timestamptz,
    reason       text,
    -- A volunteer is offered an alert at most once: later waves exclude everyone already asked.
    CONSTRAINT offers_alert_volunteer_key UNIQUE (alert_id, volunteer_id),
    CONSTRAINT offers_status_known CHECK (status IN
        ('pending', 'accepted', 'declined', 'expired', 'withdrawn'))
);
CREATE INDEX offers_volunteer_pending_idx ON dispatch.offers (volunteer_id) WHERE status = 'pending';
CREATE INDEX offers_alert_pending_idx ON dispatch.offers (alert_id) WHERE status = 'pending';

CREATE TABLE dispatch.assignments (
    id             uuid PRIMARY KEY,
    alert_id       uuid NOT NULL REFERENCES dispatch.alerts (id),
    volunteer_id   uuid NOT NULL,
    volunteer_name text NOT NULL,
    offer_id       uuid REFERENCES dispatch.offers (id),
    status         text NOT NULL DEFAULT 'accepted',
    distance_m     double precision,
    accepted_at    timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT assignments_status_known CHECK (status IN
        ('accepted', 'en_route', 'on_scene', 'completed', 'withdrawn'))
);
CREATE INDEX assignments_alert_idx ON dispatch.assignments (alert_id);
-- A volunteer holds at most one active assignment, whatever races the application loses.
CREATE UNIQUE INDEX assignments_one_active_per_volunteer ON dispatch.assignments (volunteer_id)
    WHERE status IN ('accepted', 'en_route', 'on_scene');

-- Append-only positions, written in batches.
CREATE TABLE dispatch.location_history (
    volunteer_id uuid NOT NULL,
    location     geography(Point, 4326) NOT NULL,
    accuracy_m   real,
    recorded_at  timestamptz NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX location_history_volunteer_idx ON dispatch.location_history (volunteer_id, recorded_at);
