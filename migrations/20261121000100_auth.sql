-- KREKI ID: accounts, refresh tokens, OAuth2 clients and login throttling, in the `auth` schema.
-- Other services never read these tables; they learn who a caller is from the access token.

CREATE SCHEMA IF NOT EXISTS auth;

CREATE TABLE auth.users (
    id            uuid PRIMARY KEY,
    -- E.164, normalised by the service (+62812...), so one person is one account.
    phone         text NOT NULL,
    -- lower-cased by the service; optional second login.
    email         text,
    name          text NOT NULL,
    -- Argon2id PHC string.
    password_hash text NOT NULL,
    roles         text[] NOT NULL DEFAULT ARRAY['citizen'],
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_phone_key UNIQUE (phone),
    CONSTRAINT users_email_key UNIQUE (email),
    CONSTRAINT users_phone_e164 CHECK (phone ~ '^\+[1-9][0-9]{7,14}$'),
    CONSTRAINT users_roles_known CHECK (
        roles <@ ARRAY['citizen', 'volunteer', 'coordinator', 'trainer', 'admin']
        AND 'citizen' = ANY (roles)
    )
);

-- Single-use, rotating refresh tokens. Only a SHA-256 of the token is kept: it is 256 random bits,
-- so a slow hash adds nothing, and a leaked table cannot be replayed.
CREATE TABLE auth.refresh_tokens (
    id         uuid PRIMARY KEY,
    -- Every token rotated from one sign-in shares a family; re-use of a spent one revokes it all.
    family_id  uuid NOT NULL,
    user_id    uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
    token_hash bytea NOT NULL,
    issued_at  timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    revoked_at timestamptz,
    CONSTRAINT refresh_tokens_hash_key UNIQUE (token_hash)
);
CREATE INDEX refresh_tokens_family_idx ON auth.refresh_tokens (family_id);
CREATE INDEX refresh_tokens_expires_idx ON auth.refresh_tokens (expires_at);

-- OAuth2 client-credentials clients (hospital and health-office systems).
CREATE TABLE auth.clients (
    id          uuid PRIMARY KEY,
    client_id   text NOT NULL,
    -- Argon2id PHC string of the client secret.
    secret_hash text NOT NULL,
    name        text NOT NULL,
    scopes      text[] NOT NULL,
    created_by  uuid REFERENCES auth.users (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz,
    CONSTRAINT clients_client_id_key UNIQUE (client_id)
);

-- Failed-login counters, keyed `ip:<address>`, `account:<user id>` or `login:<normalised login>`.
CREATE TABLE auth.login_throttle (
    key               text PRIMARY KEY,
    failures          integer NOT NULL,
    window_started_at timestamptz NOT NULL,
    blocked_until     timestamptz
);

-- Addresses an account signed in from successfully: failures elsewhere never lock it out of these.
CREATE TABLE auth.login_sources (
    user_id         uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
    -- SHA-256 of the IP address: enough to recognise it, without keeping addresses.
    source_hash     bytea NOT NULL,
    last_success_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, source_hash)
);
