-- MQTT devices (issue 7): panic buttons and location trackers that talk to the broker with their own
-- credentials. The broker (Mosquitto locally, EMQX in production) checks passwords and ACLs from
-- files written by `kreki mqtt sync-credentials`; the consumer checks the registry again for every
-- panic (owner, kind, revoked).
CREATE SCHEMA IF NOT EXISTS realtime;

CREATE TABLE realtime.mqtt_devices (
    -- Also the device's MQTT username and the last level of its topics (`kreki/v1/panic/{id}`).
    id               text PRIMARY KEY CHECK (id ~ '^[a-z]{2}-[a-z0-9]{20}$'),
    owner_id         uuid NOT NULL,
    kind             text NOT NULL CHECK (kind IN ('panic', 'tracker')),
    label            text NOT NULL DEFAULT '' CHECK (char_length(label) <= 100),
    -- Mosquitto's own format, `$7$<iterations>$<salt b64>$<PBKDF2-SHA512 b64>`: the password itself
    -- is shown once at registration and never stored.
    credentials_hash text NOT NULL CHECK (credentials_hash LIKE '$7$%'),
    created_at       timestamptz NOT NULL DEFAULT now(),
    revoked_at       timestamptz
);

-- "my devices" lists, and counting a user's live devices against the limit.
CREATE INDEX mqtt_devices_owner ON realtime.mqtt_devices (owner_id, created_at);
