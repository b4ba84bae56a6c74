//! The SQL of escalations: the open ones (of some regions), acknowledging one, and the sweep that
//! raises those a status change does not (a responder who stopped moving, an alert open too long).
//! `unmatched` and `triage_waiting` are raised by a trigger in the very statement that changes the
//! alert's status, so they cannot be lost between a commit and a message.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::{AlertId, EscalationId, EscalationReason, RegionId};

/// An escalation as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EscalationRow {
    /// The escalation.
    pub id: EscalationId,
    /// Its alert (none for a warning's escalation).
    pub alert_id: Option<AlertId>,
    /// The CAP warning it is about (schema `cap`), for `severe_warning`.
    pub warning_id: Option<Uuid>,
    /// The alert's region.
    pub region_id: Option<RegionId>,
    /// Why it was raised.
    pub reason: EscalationReason,
    /// When (UTC).
    pub raised_at: DateTime<Utc>,
    /// When a coordinator acknowledged it.
    pub acknowledged_at: Option<DateTime<Utc>>,
    /// Who did.
    pub acknowledged_by: Option<Uuid>,
}

macro_rules! columns {
    () => {
        "id, alert_id, warning_id, region_id, reason, raised_at, acknowledged_at, acknowledged_by"
    };
}

/// Escalations, newest first (at most `limit`): only open ones when `open`, only of `regions`
/// (and of alerts without a region) when given.
pub async fn list(
    pool: &PgPool,
    open: bool,
    regions: Option<&[RegionId]>,
    limit: i64,
) -> Result<Vec<EscalationRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM dispatch.escalations
         WHERE (NOT $1 OR acknowledged_at IS NULL)
           AND ($2::uuid[] IS NULL OR region_id IS NULL OR region_id = ANY($2))
         ORDER BY raised_at DESC, id DESC LIMIT $3"
    ))
    .bind(open)
    .bind(regions)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// One escalation.
pub async fn get(pool: &PgPool, id: EscalationId) -> Result<Option<EscalationRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM dispatch.escalations WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// The open escalations of one alert, oldest first.
pub async fn open_of_alert(
    pool: &PgPool,
    alert_id: AlertId,
) -> Result<Vec<EscalationRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM dispatch.escalations
         WHERE alert_id = $1 AND acknowledged_at IS NULL ORDER BY raised_at"
    ))
    .bind(alert_id)
    .fetch_all(pool)
    .await
}

/// Acknowledges an open escalation and records it on the alert's timeline, in one statement;
/// `None` when it was not open (already acknowledged, or no such escalation).
pub async fn acknowledge(
    pool: &PgPool,
    id: EscalationId,
    by: Uuid,
    event_data: &serde_json::Value,
) -> Result<Option<EscalationRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "WITH acked AS (
             UPDATE dispatch.escalations SET acknowledged_at = now(), acknowledged_by = $2
             WHERE id = $1 AND acknowledged_at IS NULL
             RETURNING ",
        columns!(),
        "
         ), event AS (
             INSERT INTO dispatch.alert_events (alert_id, type, actor, data)
             SELECT alert_id, 'escalation_acknowledged', $2, $3 FROM acked
             WHERE alert_id IS NOT NULL
         )
         SELECT ",
        columns!(),
        " FROM acked"
    ))
    .bind(id)
    .bind(by)
    .bind(event_data)
    .fetch_optional(pool)
    .await
}

/// Acknowledges the alert's open escalations of `reason` (a coordinator dealt with it: released
/// or closed a triaged alert), inside the caller's transaction; answers those it acknowledged, for
/// the coordinators' screens to hear of after the commit.
pub async fn acknowledge_reason(
    conn: &mut sqlx::PgConnection,
    alert_id: AlertId,
    reason: EscalationReason,
    by: Uuid,
) -> Result<Vec<EscalationRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "UPDATE dispatch.escalations SET acknowledged_at = now(), acknowledged_by = $3
         WHERE alert_id = $1 AND reason = $2 AND acknowledged_at IS NULL RETURNING ",
        columns!()
    ))
    .bind(alert_id)
    .bind(reason)
    .bind(by)
    .fetch_all(conn)
    .await
}

/// Acknowledges every open escalation of an alert that is being closed (cancelled or resolved:
/// nothing is left to act on), as `by`, inside the caller's transaction; answers those it
/// acknowledged.
pub async fn close_all_of_alert(
    conn: &mut sqlx::PgConnection,
    alert_id: AlertId,
    by: Uuid,
) -> Result<Vec<EscalationRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "UPDATE dispatch.escalations SET acknowledged_at = now(), acknowledged_by = $2
         WHERE alert_id = $1 AND acknowledged_at IS NULL RETURNING ",
        columns!()
    ))
    .bind(alert_id)
    .bind(by)
    .fetch_all(conn)
    .await
}

/// Raises the escalations no status change raises, in one statement, and answers those it raised:
/// `responder_stalled` for an assignment still `accepted` (nobody reported moving) `stalled_s`
/// after the accept with no position since, and `open_too_long` for an alert open longer than
/// `open_s`. Drills never escalate. At most one open escalation per alert and reason (a partial
/// unique index), so running it again raises nothing new.
pub async fn sweep(
    pool: &PgPool,
    stalled_s: f64,
    open_s: f64,
) -> Result<Vec<EscalationRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "INSERT INTO dispatch.escalations (id, alert_id, region_id, reason)
         SELECT dispatch.uuid_v7(), a.id, a.region_id, 'responder_stalled'
         FROM dispatch.alerts a
         WHERE NOT a.drill AND a.status IN ('assigned', 'on_scene')
           AND EXISTS (
               SELECT 1 FROM dispatch.assignments s
               LEFT JOIN dispatch.volunteers v ON v.user_id = s.volunteer_id
               WHERE s.alert_id = a.id AND s.status = 'accepted'
                 AND s.accepted_at < now() - make_interval(secs => $1)
                 AND (v.location_at IS NULL OR v.location_at < now() - make_interval(secs => $1)))
         UNION ALL
         SELECT dispatch.uuid_v7(), a.id, a.region_id, 'open_too_long'
         FROM dispatch.alerts a
         WHERE NOT a.drill
           AND a.status IN ('triage', 'dispatching', 'assigned', 'on_scene', 'unmatched')
           AND a.created_at < now() - make_interval(secs => $2)
         ON CONFLICT DO NOTHING
         RETURNING ",
        columns!(),
        ""
    ))
    .bind(stalled_s)
    .bind(open_s)
    .fetch_all(pool)
    .await
}

/// Raises a `severe_warning` escalation for each region whose area meets `area` (GeoJSON text), or
/// one without region when none does, for the CAP warning `warning_id`; answers those raised (none
/// when they are open already). One statement.
pub async fn raise_for_warning(
    pool: &PgPool,
    warning_id: Uuid,
    area: &str,
) -> Result<Vec<EscalationRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "WITH shape AS (SELECT ST_SetSRID(ST_GeomFromGeoJSON($2), 4326) AS g),
              covered AS (
                  SELECT r.id FROM dispatch.regions r, shape WHERE ST_Intersects(r.area, shape.g)
              ),
              targets AS (
                  SELECT id FROM covered
                  UNION ALL SELECT NULL::uuid WHERE NOT EXISTS (SELECT 1 FROM covered)
              )
         INSERT INTO dispatch.escalations (id, alert_id, warning_id, region_id, reason)
         SELECT dispatch.uuid_v7(), NULL, $1, t.id, 'severe_warning' FROM targets t
         ON CONFLICT DO NOTHING
         RETURNING ",
        columns!(),
        ""
    ))
    .bind(warning_id)
    .bind(area)
    .fetch_all(pool)
    .await
}
