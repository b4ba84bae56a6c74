-- Backlogs for monitoring: one row of counts and ages per service, no personal data, readable by
-- PostgreSQL's built-in pg_monitor role (CloudNativePG's metrics exporter and postgres_exporter
-- log in as members of it). deploy/monitoring/ turns them into Prometheus metrics and alerts.
-- A view runs with its owner's rights, so pg_monitor reads these aggregates and nothing else.

CREATE VIEW dispatch.monitoring_backlog AS
SELECT
    (SELECT count(*) FROM dispatch.outbox WHERE processed_at IS NULL) AS outbox_pending,
    (SELECT coalesce(extract(epoch FROM now() - min(created_at)), 0)
       FROM dispatch.outbox WHERE processed_at IS NULL) AS outbox_oldest_age_seconds,
    -- Wave deadlines due more than 30 s ago and still unclaimed: no dispatcher is working.
    (SELECT count(*) FROM dispatch.timers
      WHERE fired_at IS NULL AND due_at < now() - interval '30 seconds') AS timers_overdue,
    (SELECT count(*) FROM dispatch.alerts WHERE status = 'dispatching' AND NOT drill)
        AS alerts_dispatching,
    (SELECT coalesce(extract(epoch FROM now() - min(created_at)), 0)
       FROM dispatch.alerts WHERE status = 'dispatching' AND NOT drill)
        AS alerts_dispatching_oldest_age_seconds,
    (SELECT count(*) FROM dispatch.volunteers WHERE on_duty) AS volunteers_on_duty,
    -- On duty with a position of the last 10 minutes (dispatch.position_max_age_s's default).
    (SELECT count(*) FROM dispatch.volunteers
      WHERE on_duty AND location_at > now() - interval '10 minutes') AS volunteers_on_duty_fresh;

GRANT USAGE ON SCHEMA dispatch TO pg_monitor;
GRANT SELECT ON dispatch.monitoring_backlog TO pg_monitor;

CREATE VIEW bridge.monitoring_backlog AS
SELECT
    (SELECT count(*) FROM bridge.encounter_outbox WHERE state = 'pending') AS encounters_pending,
    (SELECT coalesce(extract(epoch FROM now() - min(created_at)), 0)
       FROM bridge.encounter_outbox WHERE state = 'pending') AS encounters_pending_oldest_age_seconds,
    (SELECT count(*) FROM bridge.encounter_outbox WHERE state = 'failed') AS encounters_failed;

GRANT USAGE ON SCHEMA bridge TO pg_monitor;
GRANT SELECT ON bridge.monitoring_backlog TO pg_monitor;
