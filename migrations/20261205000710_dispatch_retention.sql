-- Retention (dispatch/src/retention.rs): closed alerts' exact positions are coarsened once, after
-- `dispatch.retention.coarsen_closed_alerts_after_days`; this marks the ones done.
ALTER TABLE dispatch.alerts ADD COLUMN location_coarsened_at timestamptz;
