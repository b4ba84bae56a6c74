-- The trace context (W3C traceparent) of the request that raised an alert, so every later wave of
-- it joins the panic's trace (dispatch/src/service/waves.rs); null when traces are not exported.
ALTER TABLE dispatch.alerts ADD COLUMN traceparent text;
