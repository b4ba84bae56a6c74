-- no-transaction
-- Closed alerts whose exact position is still to be coarsened, by age (dispatch/src/retention.rs);
-- built without blocking writes, as 20261205000720 says.
CREATE INDEX CONCURRENTLY IF NOT EXISTS alerts_coarsen_due_idx
    ON dispatch.alerts (created_at) WHERE location_coarsened_at IS NULL;
