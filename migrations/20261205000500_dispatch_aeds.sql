-- The AED registry (dispatch/src/domain/aeds.rs): where each automated external defibrillator is,
-- the exact place in words, when it can be reached, who looks after it, who verified it and when,
-- and whether it is out of service. Dispatch routes an `aed` responder via one that is available
-- at that moment; the citizen app shows the available ones near the citizen.

CREATE TABLE dispatch.aeds (
    id             uuid PRIMARY KEY,
    location       geography(Point, 4326) NOT NULL,
    description    text NOT NULL CHECK (length(description) BETWEEN 1 AND 2000),
    -- Weekly windows in Asia/Jakarta local time, checked by the application before they are
    -- written: [{"day": 0..6 (0 = Sunday), "open": "HH:MM", "close": "HH:MM"}], sorted, never
    -- overlapping; none means never available.
    hours          jsonb NOT NULL DEFAULT '[]',
    -- Set together by an admin who checked the device is there and works; cleared when the
    -- device is moved or described anew.
    verified_by    uuid,
    verified_at    timestamptz,
    out_of_service boolean NOT NULL DEFAULT false,
    created_by     uuid NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT aeds_hours_array CHECK (jsonb_typeof(hours) = 'array'),
    CONSTRAINT aeds_verified_together CHECK ((verified_by IS NULL) = (verified_at IS NULL))
);
-- "Near a point" (the citizen app's list) and "within reach of an alert" (the `aed` role).
CREATE INDEX aeds_location_gix ON dispatch.aeds USING gist (location);

-- The accounts that look after a device and may change it (besides admins).
CREATE TABLE dispatch.aed_custodians (
    aed_id  uuid NOT NULL REFERENCES dispatch.aeds (id) ON DELETE CASCADE,
    user_id uuid NOT NULL,
    PRIMARY KEY (aed_id, user_id)
);
CREATE INDEX aed_custodians_user_idx ON dispatch.aed_custodians (user_id);
