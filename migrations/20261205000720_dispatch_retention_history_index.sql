-- no-transaction
-- The retention job (dispatch/src/retention.rs) finds old location history by age. Built without
-- blocking the writes of this busy table, so outside a transaction and alone in its file (several
-- statements in one message would form a transaction). A failed build leaves an invalid index that
-- `IF NOT EXISTS` skips: drop it and migrate again.
CREATE INDEX CONCURRENTLY IF NOT EXISTS location_history_recorded_idx
    ON dispatch.location_history (recorded_at);
