-- Text messages: every text KREKI sent or tried to send (per-day caps, delivery status from the
-- provider's callbacks, at most one text per dedupe key such as an offer), and numbers that
-- replied STOP.
CREATE SCHEMA IF NOT EXISTS sms;

CREATE TABLE sms.messages (
    id          uuid PRIMARY KEY,
    purpose     text NOT NULL,
    user_id     uuid,
    to_phone    text NOT NULL,
    -- `offer:<id>`, `escalation:<id>:<coordinator>`: a second text for the same key is never sent.
    dedupe_key  text UNIQUE,
    -- A short code the recipient quotes in a reply (an offer's `K7QM`).
    reference   text,
    sid         text UNIQUE,
    -- sending | queued | sent | delivered | undelivered | failed
    status      text NOT NULL,
    error       text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sms_messages_to_day ON sms.messages (to_phone, created_at);
CREATE INDEX sms_messages_day ON sms.messages (created_at);
CREATE INDEX sms_messages_replies ON sms.messages (to_phone, purpose, created_at DESC);

CREATE TABLE sms.opt_outs (
    phone       text PRIMARY KEY,
    opted_out_at timestamptz NOT NULL DEFAULT now()
);

-- Phone verification codes: one live code per account, stored as a keyed hash.
CREATE TABLE auth.phone_codes (
    user_id       uuid PRIMARY KEY REFERENCES auth.users (id) ON DELETE CASCADE,
    code_hash     bytea NOT NULL,
    expires_at    timestamptz NOT NULL,
    failed_tries  integer NOT NULL DEFAULT 0,
    locked_until  timestamptz,
    sent_at       timestamptz NOT NULL DEFAULT now()
);
