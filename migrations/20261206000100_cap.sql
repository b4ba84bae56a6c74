-- Warnings in and out (schema `cap`): CAP 1.2 warnings read from the configured feeds (BMKG), and
-- the area broadcasts coordinators and rules send, each also published as a CAP 1.2 document.

CREATE SCHEMA IF NOT EXISTS cap;

-- One row per CAP message read (an Alert, an Update or a Cancel), de-duplicated by
-- sender + identifier + sent. `refs` are the messages it references, as `sender,identifier,epoch`
-- keys, so a message that arrives after the one replacing it is retired at once. A warning is on
-- the map while it is not replaced, not cancelled and not expired.
CREATE TABLE cap.warnings (
    id           uuid PRIMARY KEY,
    feed         text NOT NULL,
    sender       text NOT NULL,
    identifier   text NOT NULL,
    sent         timestamptz NOT NULL,
    status       text NOT NULL,
    msg_type     text NOT NULL,
    severity     text NOT NULL,
    urgency      text NOT NULL,
    certainty    text NOT NULL,
    event        text NOT NULL,
    infos        jsonb NOT NULL,
    refs         text[] NOT NULL DEFAULT '{}',
    area         geometry(MultiPolygon, 4326),
    expires_at   timestamptz NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    replaced_by  uuid REFERENCES cap.warnings (id),
    cancelled_at timestamptz,
    CONSTRAINT warnings_message_key UNIQUE (sender, identifier, sent),
    CONSTRAINT warnings_msg_type_known CHECK (msg_type IN ('Alert', 'Update', 'Cancel', 'Ack', 'Error')),
    CONSTRAINT warnings_severity_known CHECK (severity IN ('Extreme', 'Severe', 'Moderate', 'Minor', 'Unknown'))
);
CREATE INDEX warnings_active_idx ON cap.warnings (expires_at)
    WHERE replaced_by IS NULL AND cancelled_at IS NULL;
CREATE INDEX warnings_area_gix ON cap.warnings USING gist (area)
    WHERE replaced_by IS NULL AND cancelled_at IS NULL;
CREATE INDEX warnings_refs_gin ON cap.warnings USING gin (refs);

-- An area from checked polygons (WKT MULTIPOLYGON, lng lat) and circles (centre, radius in metres,
-- buffered on the spheroid): one valid MultiPolygon, or NULL when there is nothing (or nothing but
-- degenerate rings, which ST_MakeValid leaves empty).
CREATE FUNCTION cap.area_of(polygons text, lats float8[], lngs float8[], radii_m float8[])
RETURNS geometry(MultiPolygon, 4326) LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN ST_IsEmpty(area) THEN NULL ELSE area END FROM (
    SELECT ST_Multi(ST_CollectionExtract(ST_MakeValid(ST_Union(part)), 3))::geometry(MultiPolygon, 4326) AS area
    FROM (
        SELECT ST_GeomFromText(polygons, 4326) AS part WHERE polygons IS NOT NULL
        UNION ALL
        SELECT ST_Buffer(ST_SetSRID(ST_MakePoint(c.lng, c.lat), 4326)::geography, c.r, 'quad_segs=16')::geometry
        FROM unnest(lats, lngs, radii_m) AS c (lat, lng, r)
    ) parts
    ) united
$$;

-- A short message sent to the people inside an area. Recipients are counted, never listed.
CREATE TABLE cap.broadcasts (
    id          uuid PRIMARY KEY,
    sent_at     timestamptz NOT NULL DEFAULT now(),
    sender_id   uuid,
    audience    text NOT NULL,
    message_id  text NOT NULL,
    message_en  text NOT NULL,
    area        geometry(MultiPolygon, 4326) NOT NULL,
    area_desc   text NOT NULL,
    warning_id  uuid REFERENCES cap.warnings (id),
    severity    text NOT NULL,
    urgency     text NOT NULL,
    event       text NOT NULL,
    volunteers  integer NOT NULL DEFAULT 0,
    citizens    integer NOT NULL DEFAULT 0,
    expires_at  timestamptz NOT NULL,
    CONSTRAINT broadcasts_audience_known CHECK (audience IN ('everyone', 'volunteers', 'citizens')),
    CONSTRAINT broadcasts_area_valid CHECK (ST_IsValid(area))
);
CREATE INDEX broadcasts_sent_idx ON cap.broadcasts (sent_at DESC, id DESC);
