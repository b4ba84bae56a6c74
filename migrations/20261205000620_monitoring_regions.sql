-- Per-region health for monitoring (deploy/monitoring/): volunteers on duty with a recent position
-- inside each region, and its open escalations with the age of the oldest. Aggregates only, no
-- personal data; readable by pg_monitor like dispatch.monitoring_backlog.
CREATE VIEW dispatch.monitoring_regions AS
SELECT
    r.name AS region,
    (SELECT count(*) FROM dispatch.volunteers v
      WHERE v.on_duty AND v.location_at > now() - interval '10 minutes'
        AND ST_Covers(r.area, v.location::geometry)) AS volunteers_on_duty_fresh,
    (SELECT count(*) FROM dispatch.escalations e
      WHERE e.region_id = r.id AND e.acknowledged_at IS NULL) AS escalations_open,
    (SELECT coalesce(extract(epoch FROM now() - min(e.raised_at)), 0) FROM dispatch.escalations e
      WHERE e.region_id = r.id AND e.acknowledged_at IS NULL) AS escalations_open_oldest_age_seconds
FROM dispatch.regions r;

GRANT SELECT ON dispatch.monitoring_regions TO pg_monitor;
