-- no-transaction
-- Drill alerts by age, for the retention job (dispatch/src/retention.rs); built without blocking
-- writes, as 20261205000720 says.
CREATE INDEX CONCURRENTLY IF NOT EXISTS alerts_drill_created_idx
    ON dispatch.alerts (created_at) WHERE drill;
