//! The SQL of alerts: ingest in one statement, reads (one alert with its assignments in one
//! statement, the coordinators' list, the timeline), status changes, and the change feed other
//! services follow.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{AlertRow, AssignmentRow, EventRow};
use crate::domain::{AlertId, AlertKind, AlertStatus, h3_cell};
use crate::geo::LatLng;
use crate::store::waves::PlanRows;
use crate::timeline::Event;

/// An alert with its assignments, read in one statement.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AlertWithAssignments {
    /// The alert.
    #[sqlx(flatten)]
    pub alert: AlertRow,
    /// Its assignments, oldest first.
    pub assignments: Json<Vec<AssignmentRow>>,
}

impl AlertWithAssignments {
    /// The two parts.
    pub fn into_parts(self) -> (AlertRow, Vec<AssignmentRow>) {
        (self.alert, self.assignments.0)
    }
}

/// The alert and request hash stored under `(citizen, key)`.
pub async fn idempotency_key(
    pool: &PgPool,
    citizen: Uuid,
    key: &str,
) -> Result<Option<(AlertId, Vec<u8>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT alert_id, request_hash FROM dispatch.idempotency_keys WHERE citizen_id = $1 AND key = $2",
    )
    .bind(citizen)
    .bind(key)
    .fetch_optional(pool)
    .await
}

macro_rules! open_alert_nearby_sql {
    () => {
        "SELECT id FROM dispatch.alerts
         WHERE citizen_id = $1 AND kind = $2 AND drill = $6
           AND status IN ('triage', 'dispatching', 'assigned', 'on_scene', 'unmatched')
           AND ST_DWithin(location, ST_SetSRID(ST_MakePoint($3, $4), 4326)::geography, $5)
         ORDER BY created_at DESC LIMIT 1 FOR UPDATE"
    };
}

/// The repeat-press check of [`ingest`]: the citizen's open alert of a kind within a radius,
/// newest first, locked (served by `alerts_citizen_open_idx`). Binds: citizen, kind, lng, lat,
/// radius_m, drill. Only an alert of the same `drill` flag counts: a real press never disappears
/// into a drill, and a drill never lands on a real emergency.
pub const OPEN_ALERT_NEARBY_SQL: &str = open_alert_nearby_sql!();

/// What a new alert is made of.
#[derive(Debug, Clone)]
pub struct NewAlert<'a> {
    /// Its id.
    pub id: AlertId,
    /// Who pressed.
    pub citizen_id: Uuid,
    /// Their name.
    pub citizen_name: &'a str,
    /// Kind.
    pub kind: AlertKind,
    /// Where.
    pub at: LatLng,
    /// Accuracy, metres.
    pub accuracy_m: Option<f32>,
    /// Note.
    pub note: Option<&'a str>,
    /// Patient's NIK, if given.
    pub patient_nik: Option<&'a str>,
    /// Raised to practise.
    pub drill: bool,
    /// Responders needed (from the kind's settings).
    pub responders_needed: i32,
    /// Its wave once stored (the first wave's plan, or 0 when the dispatcher will plan it).
    pub wave: i32,
    /// Its status once stored.
    pub status: AlertStatus,
    /// When its first wave ends (none without a first wave).
    pub wave_ends_at: Option<DateTime<Utc>>,
    /// The region it belongs to.
    pub region_id: Option<crate::domain::RegionId>,
    /// The caller's phone, for a coordinator's call-back (phoned-in alerts).
    pub caller_phone: Option<&'a str>,
    /// The trace of the request that raised it (its later waves join it).
    pub traceparent: Option<&'a str>,
}

/// The press being stored: its key, and what to record for either outcome.
#[derive(Debug, Clone, Copy)]
pub struct Press<'a> {
    /// The `Idempotency-Key`.
    pub key: &'a str,
    /// SHA-256 of the normalised request (a retry must carry the same body).
    pub request_hash: &'a [u8],
    /// A press this close to the citizen's open alert of the same kind attaches to it, metres.
    pub repeat_radius_m: f64,
    /// The `created` event of a new alert.
    pub created: &'a Event,
    /// The `repeat_press` event of an attached press.
    pub repeat: &'a Event,
}

/// How [`ingest`] went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingested {
    /// The alert was stored, with its first wave (or its outbox row): created at this instant.
    Created(DateTime<Utc>),
    /// The press was attached to this open alert of the citizen's nearby (a repeat press).
    Attached(AlertId),
    /// The key was used before: nothing was written (the caller reads what it points at).
    KeyTaken,
}

/// Stores a panic in one statement, so one commit makes it durable: the idempotency key, then
/// either a repeat press on the citizen's open alert within the press's radius (the key then
/// points at it) or the new alert with its `created` event and `rows` (its first wave's offers,
/// timer and events, planned before the statement, or a triaged alert's auto-release timer) and,
/// when `dispatcher_needed` (no plan was made), an outbox row for the dispatcher. A key held by a
/// concurrent request is waited for; a key used before writes nothing.
pub async fn ingest(
    conn: &mut PgConnection,
    alert: &NewAlert<'_>,
    press: &Press<'_>,
    rows: &PlanRows,
    dispatcher_needed: bool,
) -> Result<Ingested, sqlx::Error> {
    let (_, created_data) = press.created.columns();
    let (_, repeat_data) = press.repeat.columns();
    let (pointed, created_at): (Option<AlertId>, Option<DateTime<Utc>>) =
        sqlx::query_as(concat!(
            "WITH nearby AS MATERIALIZED (",
            open_alert_nearby_sql!(),
            "), key AS (
                 INSERT INTO dispatch.idempotency_keys (citizen_id, key, request_hash, alert_id)
                 SELECT $1, $7, $8, coalesce((SELECT id FROM nearby), $9)
                 ON CONFLICT (citizen_id, key) DO NOTHING
                 RETURNING alert_id
             ), created AS (
                 INSERT INTO dispatch.alerts
                     (id, citizen_id, citizen_name, kind, location, h3_cell, accuracy_m, note, patient_nik,
                      responders_needed, drill, wave, status, wave_ends_at, region_id, caller_phone,
                      traceparent)
                 SELECT $9, $1, $10, $2, ST_SetSRID(ST_MakePoint($3, $4), 4326)::geography, $11, $12, $13,
                        $14, $15, $6, $16, $17, $30, $31, $32, $33
                 FROM key WHERE key.alert_id = $9
                 RETURNING id, created_at
             ), events AS (
                 INSERT INTO dispatch.alert_events (alert_id, type, actor, data)
                 SELECT c.id, e.type, e.actor, e.data FROM created c,
                     (SELECT 'created'::text AS type, $1::uuid AS actor, $18::jsonb AS data, 0::int8 AS n
                      UNION ALL
                      SELECT t.type, NULL, t.data, t.n
                      FROM unnest($19::text[], $20::jsonb[]) WITH ORDINALITY AS t(type, data, n)) e
                 ORDER BY e.n
             ), repeat AS (
                 INSERT INTO dispatch.alert_events (alert_id, type, actor, data)
                 SELECT k.alert_id, 'repeat_press', $1, $21 FROM key k WHERE k.alert_id <> $9
             ), offers AS (
                 INSERT INTO dispatch.offers (id, alert_id, volunteer_id, wave, distance_m, expires_at)
                 SELECT n.id, c.id, n.volunteer_id, n.wave, n.distance_m, n.expires_at
                 FROM created c,
                      unnest($22::uuid[], $23::uuid[], $24::int4[], $25::float8[], $26::timestamptz[])
                          AS n(id, volunteer_id, wave, distance_m, expires_at)
             ), timer AS (
                 INSERT INTO dispatch.timers (alert_id, wave, due_at)
                 SELECT c.id, t.wave, t.due_at
                 FROM created c, unnest($27::int4[], $28::timestamptz[]) AS t(wave, due_at)
             ), outbox AS (
                 INSERT INTO dispatch.outbox (alert_id) SELECT c.id FROM created c WHERE $29
             )
             SELECT (SELECT alert_id FROM key), (SELECT created_at FROM created)",
        ))
        .bind(alert.citizen_id)
        .bind(alert.kind)
        .bind(alert.at.lng())
        .bind(alert.at.lat())
        .bind(press.repeat_radius_m)
        .bind(alert.drill)
        .bind(press.key)
        .bind(press.request_hash)
        .bind(alert.id)
        .bind(alert.citizen_name)
        .bind(h3_cell(alert.at))
        .bind(alert.accuracy_m)
        .bind(alert.note)
        .bind(alert.patient_nik)
        .bind(alert.responders_needed)
        .bind(alert.wave)
        .bind(alert.status)
        .bind(created_data)
        .bind(&rows.event_types)
        .bind(&rows.event_data)
        .bind(repeat_data)
        .bind(&rows.offer_ids)
        .bind(&rows.offer_volunteers)
        .bind(&rows.offer_waves)
        .bind(&rows.offer_distances)
        .bind(&rows.offer_expires)
        .bind(&rows.timer_waves)
        .bind(&rows.timer_due)
        .bind(dispatcher_needed)
        .bind(alert.wave_ends_at)
        .bind(alert.region_id)
        .bind(alert.caller_phone)
        .bind(alert.traceparent)
        .fetch_one(conn)
        .await?;
    Ok(match (pointed, created_at) {
        (Some(_), Some(at)) => Ingested::Created(at),
        (Some(existing), None) => Ingested::Attached(existing),
        (None, _) => Ingested::KeyTaken,
    })
}

/// Appends a timeline entry.
pub async fn insert_event(
    conn: &mut PgConnection,
    alert_id: AlertId,
    actor: Option<Uuid>,
    event: &Event,
) -> Result<(), sqlx::Error> {
    let (kind, data) = event.columns();
    sqlx::query(
        "INSERT INTO dispatch.alert_events (alert_id, type, actor, data) VALUES ($1, $2, $3, $4)",
    )
    .bind(alert_id)
    .bind(kind)
    .bind(actor)
    .bind(data)
    .execute(conn)
    .await?;
    Ok(())
}

/// Appends a timeline entry and answers it as stored.
pub async fn insert_event_returning(
    pool: &PgPool,
    alert_id: AlertId,
    actor: Option<Uuid>,
    event: &Event,
) -> Result<EventRow, sqlx::Error> {
    let (kind, data) = event.columns();
    sqlx::query_as(
        "INSERT INTO dispatch.alert_events (alert_id, type, actor, data) VALUES ($1, $2, $3, $4)
         RETURNING at, type, actor, data",
    )
    .bind(alert_id)
    .bind(kind)
    .bind(actor)
    .bind(data)
    .fetch_one(pool)
    .await
}

/// One alert with its assignments, in one statement.
pub async fn alert_view(
    conn: &mut PgConnection,
    id: AlertId,
) -> Result<Option<AlertWithAssignments>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        alert_columns!(),
        ", ",
        assignments_json!(),
        " FROM dispatch.alerts a WHERE a.id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// One alert, locked for the rest of the transaction (accept, cancel, assignment changes
/// serialise on it; wave writes take the same lock).
pub async fn lock_alert(
    conn: &mut PgConnection,
    id: AlertId,
) -> Result<Option<AlertRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        alert_columns!(),
        " FROM dispatch.alerts a WHERE a.id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Adds a coordinator's wider wave to an alert (bumps `version`, so a plan read before it does
/// not land).
pub async fn add_extra_radius(
    conn: &mut PgConnection,
    id: AlertId,
    radius_m: u32,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE dispatch.alerts SET extra_radii_m = extra_radii_m || $2, updated_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(i32::try_from(radius_m).unwrap_or(i32::MAX))
    .execute(conn)
    .await?;
    Ok(())
}

/// The widest radius an alert's waves reach: its kind's (`settings`) or a coordinator's wider
/// one, metres.
pub async fn widest_radius_m(
    conn: &mut PgConnection,
    id: AlertId,
    settings: &crate::domain::KindSettings,
) -> Result<u32, sqlx::Error> {
    let extra: Option<i32> = sqlx::query_scalar(
        "SELECT max(r) FROM dispatch.alerts, unnest(extra_radii_m) AS r WHERE id = $1",
    )
    .bind(id)
    .fetch_one(conn)
    .await?;
    let extra = extra
        .and_then(|radius| u32::try_from(radius).ok())
        .unwrap_or(0);
    Ok(settings.widest_radius_m().max(extra))
}

/// Sets an alert's status (and bumps `updated_at`, and through its trigger `version`).
pub async fn set_alert_status(
    conn: &mut PgConnection,
    id: AlertId,
    status: AlertStatus,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE dispatch.alerts SET status = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(status)
        .execute(conn)
        .await?;
    Ok(())
}

/// Alerts filtered by region (none: all), status and a bounding box (`[min_lng, min_lat, max_lng, max_lat]`), newest
/// first, at most `limit`, each with its assignments.
pub async fn list_alerts(
    pool: &PgPool,
    regions: Option<&[crate::domain::RegionId]>,
    status: Option<AlertStatus>,
    bbox: Option<[f64; 4]>,
    limit: i64,
) -> Result<Vec<AlertWithAssignments>, sqlx::Error> {
    // No box means no spatial predicate: a whole-world envelope has antipodal edges that
    // geography refuses.
    let [min_lng, min_lat, max_lng, max_lat] = bbox.map_or([None; 4], |b| b.map(Some));
    sqlx::query_as(concat!(
        "SELECT ",
        alert_columns!(),
        ", ",
        assignments_json!(),
        " FROM dispatch.alerts a
         WHERE ($1::text IS NULL OR a.status = $1)
           AND ($2::float8 IS NULL
                OR a.location && ST_MakeEnvelope($2, $3, $4, $5, 4326)::geography)
           AND ($7::uuid[] IS NULL OR a.region_id IS NULL OR a.region_id = ANY($7))
         ORDER BY a.created_at DESC LIMIT $6"
    ))
    .bind(status)
    .bind(min_lng)
    .bind(min_lat)
    .bind(max_lng)
    .bind(max_lat)
    .bind(limit)
    .bind(regions)
    .fetch_all(pool)
    .await
}

/// The alert's timeline, oldest first.
pub async fn events(pool: &PgPool, alert_id: AlertId) -> Result<Vec<EventRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT at, type, actor, data FROM dispatch.alert_events WHERE alert_id = $1 ORDER BY id",
    )
    .bind(alert_id)
    .fetch_all(pool)
    .await
}

/// True when `user` was offered `alert_id` (so may read it).
pub async fn was_offered(
    pool: &PgPool,
    alert_id: AlertId,
    user: Uuid,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM dispatch.offers WHERE alert_id = $1 AND volunteer_id = $2)
             OR EXISTS (SELECT 1 FROM dispatch.assignments WHERE alert_id = $1 AND volunteer_id = $2)",
    )
    .bind(alert_id)
    .bind(user)
    .fetch_one(pool)
    .await
}

/// Alerts whose timeline grew after event `after`: each with its newest event id among the next
/// `limit` events and the patient's NIK (never part of the public Alert), oldest first. Event ids
/// are taken at insert but become visible at commit, so events younger than `settle_s` are left for
/// a later call; otherwise a slow transaction could commit an id below a cursor that already moved
/// past it.
pub async fn changed_alerts(
    pool: &PgPool,
    after: i64,
    limit: i64,
    settle_s: f64,
) -> Result<Vec<(i64, AlertId, Option<String>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT changed.seq, changed.alert_id, a.patient_nik FROM (
             SELECT max(id) AS seq, alert_id FROM (
                 SELECT id, alert_id FROM dispatch.alert_events
                 WHERE id > $1 AND at < clock_timestamp() - make_interval(secs => $3)
                 ORDER BY id LIMIT $2
             ) AS batch
             GROUP BY alert_id
         ) AS changed
         JOIN dispatch.alerts a ON a.id = changed.alert_id
         ORDER BY changed.seq",
    )
    .bind(after)
    .bind(limit)
    .bind(settle_s)
    .fetch_all(pool)
    .await
}

/// The alerts with these ids, each with its assignments, in no particular order.
pub async fn alerts_by_ids(
    pool: &PgPool,
    ids: &[AlertId],
) -> Result<Vec<AlertWithAssignments>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        alert_columns!(),
        ", ",
        assignments_json!(),
        " FROM dispatch.alerts a WHERE a.id = ANY($1)"
    ))
    .bind(ids)
    .fetch_all(pool)
    .await
}
