-- Wider waves a coordinator added to one alert ("re-dispatch with a wider radius"), in order: each
-- is a wave after the kind's own (dispatch/src/domain/kinds.rs, KindSettings::with_extra_radii).
ALTER TABLE dispatch.alerts ADD COLUMN extra_radii_m integer[] NOT NULL DEFAULT '{}';
