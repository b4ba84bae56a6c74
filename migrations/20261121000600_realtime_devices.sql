-- Push targets of KREKI users (issue 7): FCM registration tokens of the Android and iOS apps, and
-- Web Push subscriptions of the PWAs. Owned by the realtime service; nothing else reads them.
CREATE SCHEMA IF NOT EXISTS realtime;

CREATE TABLE realtime.devices (
    id           uuid PRIMARY KEY,
    user_id      uuid NOT NULL,
    platform     text NOT NULL CHECK (platform IN ('android', 'ios', 'web')),
    -- The FCM registration token, or the Web Push endpoint URL. A token names one app install or
    -- one browser, so it belongs to one account at a time: registering it again moves it.
    token        text NOT NULL CHECK (length(token) BETWEEN 1 AND 4096),
    -- Web Push only: the subscription's keys, base64url as the browser gives them.
    p256dh       text,
    auth         text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT devices_token_key UNIQUE (token),
    CONSTRAINT devices_web_keys CHECK ((platform = 'web') = (p256dh IS NOT NULL AND auth IS NOT NULL))
);

-- Every push looks a user's devices up; registration trims each user to the newest few.
CREATE INDEX devices_user_id_last_seen_idx ON realtime.devices (user_id, last_seen_at DESC);
