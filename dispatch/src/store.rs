//! SQL of dispatch (schema `dispatch`). Functions taking a `PgConnection` run inside the caller's
//! transaction; each is exercised by the integration tests against PostgreSQL + PostGIS.
//!
//! Spatial predicates cast the query point, never an indexed column, so the GiST indexes serve them.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::{AlertKind, KindSettings, h3_cell};
use crate::geo::LatLng;

/// An alert as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AlertRow {
    /// Alert id.
    pub id: Uuid,
    /// Who pressed panic.
    pub citizen_id: Uuid,
    /// Their name, from the access token.
    pub citizen_name: String,
    /// Kind (wire spelling).
    pub kind: String,
    /// Status (wire spelling).
    pub status: String,
    /// Latitude, degrees.
    pub lat: f64,
    /// Longitude, degrees.
    pub lng: f64,
    /// Reported accuracy, metres.
    pub accuracy_m: Option<f32>,
    /// The citizen's note.
    pub note: Option<String>,
    /// Raised to practise, not a real emergency.
    pub drill: bool,
    /// Responders this alert needs.
    pub responders_needed: i32,
    /// Last wave sent (0: none).
    pub wave: i32,
    /// Created (UTC).
    pub created_at: DateTime<Utc>,
    /// Last change (UTC).
    pub updated_at: DateTime<Utc>,
}

macro_rules! alert_columns {
    () => {
        "a.id, a.citizen_id, a.citizen_name, a.kind, a.status, ST_Y(a.location::geometry) AS lat,
         ST_X(a.location::geometry) AS lng, a.accuracy_m, a.note, a.drill, a.responders_needed, a.wave,
         a.created_at, a.updated_at"
    };
}

/// An assignment as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AssignmentRow {
    /// Assignment id.
    pub id: Uuid,
    /// Its alert.
    pub alert_id: Uuid,
    /// The volunteer.
    pub volunteer_id: Uuid,
    /// Their name.
    pub volunteer_name: String,
    /// Status (wire spelling).
    pub status: String,
    /// Distance from the volunteer to the alert when accepted, metres.
    pub distance_m: Option<f64>,
    /// Accepted (UTC).
    pub accepted_at: DateTime<Utc>,
    /// Last change (UTC).
    pub updated_at: DateTime<Utc>,
}

macro_rules! assignment_columns {
    () => {
        "s.id, s.alert_id, s.volunteer_id, s.volunteer_name, s.status, s.distance_m, s.accepted_at, s.updated_at"
    };
}

/// An offer with the alert it is for.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OfferRow {
    /// Offer id.
    pub id: Uuid,
    /// The alert.
    pub alert_id: Uuid,
    /// Who is asked.
    pub volunteer_id: Uuid,
    /// Wave number (1-based).
    pub wave: i32,
    /// Distance to the alert at offer time, metres.
    pub distance_m: f64,
    /// Status (wire spelling).
    pub status: String,
    /// When it was made (UTC).
    pub offered_at: DateTime<Utc>,
    /// Answer deadline (UTC).
    pub expires_at: DateTime<Utc>,
    /// The alert's kind.
    pub kind: String,
    /// The alert's latitude.
    pub lat: f64,
    /// The alert's longitude.
    pub lng: f64,
    /// The alert's accuracy, metres.
    pub accuracy_m: Option<f32>,
    /// The alert's note.
    pub note: Option<String>,
    /// The alert is a drill.
    pub drill: bool,
}

macro_rules! offer_columns {
    () => {
        "o.id, o.alert_id, o.volunteer_id, o.wave, o.distance_m, o.status, o.offered_at, o.expires_at,
         a.kind, ST_Y(a.location::geometry) AS lat, ST_X(a.location::geometry) AS lng, a.accuracy_m, a.note,
         a.drill"
    };
}

/// A volunteer as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct VolunteerRow {
    /// Account id.
    pub user_id: Uuid,
    /// Name from the access token.
    pub name: String,
    /// On duty.
    pub on_duty: bool,
    /// Latitude, when a position is known.
    pub lat: Option<f64>,
    /// Longitude, when a position is known.
    pub lng: Option<f64>,
    /// When the position was recorded.
    pub location_at: Option<DateTime<Utc>>,
    /// Verified health practitioner.
    pub practitioner_verified: bool,
    /// No offers before this instant.
    pub rest_until: Option<DateTime<Utc>>,
    /// Holds an active assignment.
    pub busy: bool,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

macro_rules! volunteer_columns {
    () => {
        "v.user_id, v.name, v.on_duty, ST_Y(v.location::geometry) AS lat, ST_X(v.location::geometry) AS lng,
         v.location_at, v.practitioner_verified, v.rest_until,
         EXISTS (SELECT 1 FROM dispatch.assignments s WHERE s.volunteer_id = v.user_id
                 AND s.status IN ('accepted', 'en_route', 'on_scene')) AS busy,
         v.updated_at"
    };
}

/// One timeline entry.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRow {
    /// When (UTC).
    pub at: DateTime<Utc>,
    /// What (`created`, `repeat_press`, `offers_sent`, `accepted`, ...).
    pub r#type: String,
    /// Who did it, when a person did.
    pub actor: Option<Uuid>,
    /// Details.
    pub data: serde_json::Value,
}

// ---------------------------------------------------------------- kind settings

/// Inserts `settings` for `kind` unless the kind has a row already (config seeds, admins edit).
pub async fn seed_kind(
    pool: &PgPool,
    kind: AlertKind,
    settings: &KindSettings,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO dispatch.kind_settings
           (kind, required_certifications, requires_verified_practitioner, responders_needed, waves)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (kind) DO NOTHING",
    )
    .bind(kind.as_str())
    .bind(&settings.required_certifications)
    .bind(settings.requires_verified_practitioner)
    .bind(i32::try_from(settings.responders_needed).unwrap_or(1))
    .bind(sqlx::types::Json(&settings.waves))
    .execute(pool)
    .await?;
    Ok(())
}

/// Replaces the settings of `kind`.
pub async fn put_kind(
    pool: &PgPool,
    kind: AlertKind,
    settings: &KindSettings,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO dispatch.kind_settings
           (kind, required_certifications, requires_verified_practitioner, responders_needed, waves)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (kind) DO UPDATE SET required_certifications = EXCLUDED.required_certifications,
           requires_verified_practitioner = EXCLUDED.requires_verified_practitioner,
           responders_needed = EXCLUDED.responders_needed, waves = EXCLUDED.waves, updated_at = now()",
    )
    .bind(kind.as_str())
    .bind(&settings.required_certifications)
    .bind(settings.requires_verified_practitioner)
    .bind(i32::try_from(settings.responders_needed).unwrap_or(1))
    .bind(sqlx::types::Json(&settings.waves))
    .execute(pool)
    .await?;
    Ok(())
}

type KindTuple = (
    String,
    Vec<String>,
    bool,
    i32,
    sqlx::types::Json<Vec<crate::domain::WaveSpec>>,
);

fn kind_from_tuple(row: KindTuple) -> Option<(AlertKind, KindSettings)> {
    let (kind, required, verified, needed, waves) = row;
    Some((
        AlertKind::parse(&kind)?,
        KindSettings {
            required_certifications: required,
            requires_verified_practitioner: verified,
            responders_needed: u32::try_from(needed).unwrap_or(1),
            waves: waves.0,
        },
    ))
}

/// Every kind's settings.
pub async fn kinds(pool: &PgPool) -> Result<Vec<(AlertKind, KindSettings)>, sqlx::Error> {
    let rows: Vec<KindTuple> = sqlx::query_as(
        "SELECT kind, required_certifications, requires_verified_practitioner, responders_needed, waves
         FROM dispatch.kind_settings ORDER BY kind",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().filter_map(kind_from_tuple).collect())
}

/// One kind's settings (inside a transaction).
pub async fn kind(
    conn: &mut PgConnection,
    kind: AlertKind,
) -> Result<Option<KindSettings>, sqlx::Error> {
    let row: Option<KindTuple> = sqlx::query_as(
        "SELECT kind, required_certifications, requires_verified_practitioner, responders_needed, waves
         FROM dispatch.kind_settings WHERE kind = $1",
    )
    .bind(kind.as_str())
    .fetch_optional(conn)
    .await?;
    Ok(row.and_then(kind_from_tuple).map(|(_, settings)| settings))
}

// ---------------------------------------------------------------- alerts

/// Claims `(citizen, key)` for a new alert `alert_id`. False when the key exists already (the
/// statement waits for a concurrent holder of the key to commit or roll back first).
pub async fn claim_idempotency_key(
    conn: &mut PgConnection,
    citizen: Uuid,
    key: &str,
    request_hash: &[u8],
    alert_id: Uuid,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO dispatch.idempotency_keys (citizen_id, key, request_hash, alert_id)
         VALUES ($1, $2, $3, $4) ON CONFLICT (citizen_id, key) DO NOTHING",
    )
    .bind(citizen)
    .bind(key)
    .bind(request_hash)
    .bind(alert_id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The alert and request hash stored under `(citizen, key)`.
pub async fn idempotency_key(
    pool: &PgPool,
    citizen: Uuid,
    key: &str,
) -> Result<Option<(Uuid, Vec<u8>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT alert_id, request_hash FROM dispatch.idempotency_keys WHERE citizen_id = $1 AND key = $2",
    )
    .bind(citizen)
    .bind(key)
    .fetch_optional(pool)
    .await
}

/// Points an idempotency key at an existing alert (a repeat press attached to it).
pub async fn repoint_idempotency_key(
    conn: &mut PgConnection,
    citizen: Uuid,
    key: &str,
    alert_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE dispatch.idempotency_keys SET alert_id = $3 WHERE citizen_id = $1 AND key = $2",
    )
    .bind(citizen)
    .bind(key)
    .bind(alert_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// SQL of [`open_alert_nearby`] (served by `alerts_citizen_open_idx`).
pub const OPEN_ALERT_NEARBY_SQL: &str = "SELECT id FROM dispatch.alerts
         WHERE citizen_id = $1 AND kind = $2 AND drill = $6
           AND status IN ('dispatching', 'assigned', 'on_scene', 'unmatched')
           AND ST_DWithin(location, ST_SetSRID(ST_MakePoint($3, $4), 4326)::geography, $5)
         ORDER BY created_at DESC LIMIT 1 FOR UPDATE";

/// The citizen's open alert of `kind` within `radius_m` of `at`, newest first, locked. Only an
/// alert of the same `drill` flag counts: a real press never disappears into a drill, and a drill
/// never lands on a real emergency.
pub async fn open_alert_nearby(
    conn: &mut PgConnection,
    citizen: Uuid,
    kind: AlertKind,
    at: LatLng,
    radius_m: f64,
    drill: bool,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(OPEN_ALERT_NEARBY_SQL)
        .bind(citizen)
        .bind(kind.as_str())
        .bind(at.lng())
        .bind(at.lat())
        .bind(radius_m)
        .bind(drill)
        .fetch_optional(conn)
        .await
}

/// What a new alert is made of.
#[derive(Debug, Clone)]
pub struct NewAlert<'a> {
    /// Its id.
    pub id: Uuid,
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
}

/// Inserts an alert and its outbox row (the first wave, done after commit).
pub async fn insert_alert(
    conn: &mut PgConnection,
    alert: &NewAlert<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO dispatch.alerts
           (id, citizen_id, citizen_name, kind, location, h3_cell, accuracy_m, note, patient_nik, responders_needed,
            drill)
         VALUES ($1, $2, $3, $4, ST_SetSRID(ST_MakePoint($5, $6), 4326)::geography, $7, $8, $9, $10, $11, $12)",
    )
    .bind(alert.id)
    .bind(alert.citizen_id)
    .bind(alert.citizen_name)
    .bind(alert.kind.as_str())
    .bind(alert.at.lng())
    .bind(alert.at.lat())
    .bind(h3_cell(alert.at))
    .bind(alert.accuracy_m)
    .bind(alert.note)
    .bind(alert.patient_nik)
    .bind(alert.responders_needed)
    .bind(alert.drill)
    .execute(&mut *conn)
    .await?;
    sqlx::query("INSERT INTO dispatch.outbox (alert_id) VALUES ($1)")
        .bind(alert.id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Appends a timeline event.
pub async fn insert_event(
    conn: &mut PgConnection,
    alert_id: Uuid,
    kind: &str,
    actor: Option<Uuid>,
    data: serde_json::Value,
) -> Result<(), sqlx::Error> {
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

/// One alert.
pub async fn alert(conn: &mut PgConnection, id: Uuid) -> Result<Option<AlertRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        alert_columns!(),
        " FROM dispatch.alerts a WHERE a.id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// One alert, locked for the rest of the transaction (accept, cancel, waves serialise on it).
pub async fn lock_alert(
    conn: &mut PgConnection,
    id: Uuid,
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

/// Sets an alert's status (and bumps `updated_at`).
pub async fn set_alert_status(
    conn: &mut PgConnection,
    id: Uuid,
    status: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE dispatch.alerts SET status = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(status)
        .execute(conn)
        .await?;
    Ok(())
}

/// Records that wave `wave` went out.
pub async fn set_alert_wave(
    conn: &mut PgConnection,
    id: Uuid,
    wave: i32,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE dispatch.alerts SET wave = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(wave)
        .execute(conn)
        .await?;
    Ok(())
}

/// Alerts filtered by status and a bounding box (`[min_lng, min_lat, max_lng, max_lat]`), newest
/// first, at most `limit`.
pub async fn list_alerts(
    pool: &PgPool,
    status: Option<&str>,
    bbox: Option<[f64; 4]>,
    limit: i64,
) -> Result<Vec<AlertRow>, sqlx::Error> {
    // No box means no spatial predicate: a whole-world envelope has antipodal edges that
    // geography refuses.
    let [min_lng, min_lat, max_lng, max_lat] = bbox.map_or([None; 4], |b| b.map(Some));
    sqlx::query_as(concat!(
        "SELECT ",
        alert_columns!(),
        " FROM dispatch.alerts a
         WHERE ($1::text IS NULL OR a.status = $1)
           AND ($2::float8 IS NULL
                OR a.location && ST_MakeEnvelope($2, $3, $4, $5, 4326)::geography)
         ORDER BY a.created_at DESC LIMIT $6"
    ))
    .bind(status)
    .bind(min_lng)
    .bind(min_lat)
    .bind(max_lng)
    .bind(max_lat)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// The alert's timeline, oldest first.
pub async fn events(pool: &PgPool, alert_id: Uuid) -> Result<Vec<EventRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT at, type, actor, data FROM dispatch.alert_events WHERE alert_id = $1 ORDER BY id",
    )
    .bind(alert_id)
    .fetch_all(pool)
    .await
}

/// True when `user` was offered `alert_id` (so may read it).
pub async fn was_offered(pool: &PgPool, alert_id: Uuid, user: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM dispatch.offers WHERE alert_id = $1 AND volunteer_id = $2)
             OR EXISTS (SELECT 1 FROM dispatch.assignments WHERE alert_id = $1 AND volunteer_id = $2)",
    )
    .bind(alert_id)
    .bind(user)
    .fetch_one(pool)
    .await
}

// ---------------------------------------------------------------- assignments

/// The assignments of an alert, oldest first.
pub async fn assignments_of(
    conn: &mut PgConnection,
    alert_id: Uuid,
) -> Result<Vec<AssignmentRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        assignment_columns!(),
        " FROM dispatch.assignments s WHERE s.alert_id = $1 ORDER BY s.accepted_at, s.id"
    ))
    .bind(alert_id)
    .fetch_all(conn)
    .await
}

/// The assignments of several alerts.
pub async fn assignments_of_many(
    pool: &PgPool,
    alert_ids: &[Uuid],
) -> Result<Vec<AssignmentRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        assignment_columns!(),
        " FROM dispatch.assignments s WHERE s.alert_id = ANY($1) ORDER BY s.accepted_at, s.id"
    ))
    .bind(alert_ids)
    .fetch_all(pool)
    .await
}

/// One assignment, locked.
pub async fn lock_assignment(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<AssignmentRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        assignment_columns!(),
        " FROM dispatch.assignments s WHERE s.id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// The assignment made by accepting `offer_id`, if any.
pub async fn assignment_of_offer(
    conn: &mut PgConnection,
    offer_id: Uuid,
) -> Result<Option<AssignmentRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        assignment_columns!(),
        " FROM dispatch.assignments s WHERE s.offer_id = $1"
    ))
    .bind(offer_id)
    .fetch_optional(conn)
    .await
}

/// Inserts an assignment. A volunteer with an active one already violates
/// `assignments_one_active_per_volunteer`.
pub async fn insert_assignment(
    conn: &mut PgConnection,
    alert_id: Uuid,
    volunteer_id: Uuid,
    volunteer_name: &str,
    offer_id: Option<Uuid>,
    distance_m: Option<f64>,
) -> Result<AssignmentRow, sqlx::Error> {
    sqlx::query_as(concat!(
        "INSERT INTO dispatch.assignments AS s (id, alert_id, volunteer_id, volunteer_name, offer_id, distance_m)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING ",
        assignment_columns!()
    ))
    .bind(Uuid::now_v7())
    .bind(alert_id)
    .bind(volunteer_id)
    .bind(volunteer_name)
    .bind(offer_id)
    .bind(distance_m)
    .fetch_one(conn)
    .await
}

/// Sets an assignment's status.
pub async fn set_assignment_status(
    conn: &mut PgConnection,
    id: Uuid,
    status: &str,
) -> Result<AssignmentRow, sqlx::Error> {
    sqlx::query_as(concat!(
        "UPDATE dispatch.assignments s SET status = $2, updated_at = now() WHERE s.id = $1 RETURNING ",
        assignment_columns!()
    ))
    .bind(id)
    .bind(status)
    .fetch_one(conn)
    .await
}

// ---------------------------------------------------------------- offers

/// One offer with its alert, locked (the offer row only).
pub async fn lock_offer(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<OfferRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        offer_columns!(),
        " FROM dispatch.offers o JOIN dispatch.alerts a ON a.id = o.alert_id WHERE o.id = $1 FOR UPDATE OF o"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// The alert an offer is for, and who it was offered to (no lock).
pub async fn offer_owner(pool: &PgPool, id: Uuid) -> Result<Option<(Uuid, Uuid)>, sqlx::Error> {
    sqlx::query_as("SELECT alert_id, volunteer_id FROM dispatch.offers WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// A volunteer's pending, unexpired offers, newest first.
pub async fn pending_offers(pool: &PgPool, volunteer: Uuid) -> Result<Vec<OfferRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        offer_columns!(),
        " FROM dispatch.offers o JOIN dispatch.alerts a ON a.id = o.alert_id
         WHERE o.volunteer_id = $1 AND o.status = 'pending' AND o.expires_at > now()
         ORDER BY o.offered_at DESC"
    ))
    .bind(volunteer)
    .fetch_all(pool)
    .await
}

/// Every volunteer ever offered `alert_id` (later waves exclude them).
pub async fn offered_volunteers(
    conn: &mut PgConnection,
    alert_id: Uuid,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar("SELECT volunteer_id FROM dispatch.offers WHERE alert_id = $1")
        .bind(alert_id)
        .fetch_all(conn)
        .await
}

/// Inserts a pending offer; returns its id.
pub async fn insert_offer(
    conn: &mut PgConnection,
    alert_id: Uuid,
    volunteer_id: Uuid,
    wave: i32,
    distance_m: f64,
    expires_at: DateTime<Utc>,
) -> Result<OfferRow, sqlx::Error> {
    sqlx::query_as(concat!(
        "WITH o AS (INSERT INTO dispatch.offers (id, alert_id, volunteer_id, wave, distance_m, expires_at)
                    VALUES ($1, $2, $3, $4, $5, $6) RETURNING *)
         SELECT ",
        offer_columns!(),
        " FROM o JOIN dispatch.alerts a ON a.id = o.alert_id"
    ))
    .bind(Uuid::now_v7())
    .bind(alert_id)
    .bind(volunteer_id)
    .bind(wave)
    .bind(distance_m)
    .bind(expires_at)
    .fetch_one(conn)
    .await
}

/// Sets an offer's status and answer time (and the decline reason).
pub async fn answer_offer(
    conn: &mut PgConnection,
    id: Uuid,
    status: &str,
    reason: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE dispatch.offers SET status = $2, reason = $3, responded_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(status)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(())
}

/// Moves every pending offer of `alert_id` to `status` (`expired` or `withdrawn`); returns
/// `(offer id, volunteer id)` of each.
pub async fn close_pending_offers(
    conn: &mut PgConnection,
    alert_id: Uuid,
    status: &str,
) -> Result<Vec<(Uuid, Uuid)>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE dispatch.offers SET status = $2, responded_at = now()
         WHERE alert_id = $1 AND status = 'pending' RETURNING id, volunteer_id",
    )
    .bind(alert_id)
    .bind(status)
    .fetch_all(conn)
    .await
}

/// Withdraws every pending offer of a volunteer who just took an assignment: `(offer, alert)`.
pub async fn withdraw_offers_of_volunteer(
    pool: &PgPool,
    volunteer: Uuid,
) -> Result<Vec<(Uuid, Uuid)>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE dispatch.offers SET status = 'withdrawn', responded_at = now()
         WHERE volunteer_id = $1 AND status = 'pending' RETURNING id, alert_id",
    )
    .bind(volunteer)
    .fetch_all(pool)
    .await
}

/// Moves the unfired timer of `alert_id` to now when the alert has no live offer left. True when
/// a timer moved.
pub async fn hurry_timer_without_live_offers(
    pool: &PgPool,
    alert_id: Uuid,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE dispatch.timers t SET due_at = now()
         WHERE t.alert_id = $1 AND t.fired_at IS NULL AND t.due_at > now()
           AND NOT EXISTS (SELECT 1 FROM dispatch.offers o
                           WHERE o.alert_id = $1 AND o.status = 'pending' AND o.expires_at > now())",
    )
    .bind(alert_id)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// True when the volunteer holds an active assignment.
pub async fn has_active_assignment(
    conn: &mut PgConnection,
    volunteer: Uuid,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM dispatch.assignments
                        WHERE volunteer_id = $1 AND status IN ('accepted', 'en_route', 'on_scene'))",
    )
    .bind(volunteer)
    .fetch_one(conn)
    .await
}

/// SQL of [`has_live_offers`] (served by `offers_alert_pending_idx`).
pub const HAS_LIVE_OFFERS_SQL: &str = "SELECT EXISTS (SELECT 1 FROM dispatch.offers
                        WHERE alert_id = $1 AND status = 'pending' AND expires_at > now())";

/// True when `alert_id` has a pending offer that has not expired.
pub async fn has_live_offers(conn: &mut PgConnection, alert_id: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(HAS_LIVE_OFFERS_SQL)
        .bind(alert_id)
        .fetch_one(conn)
        .await
}

// ---------------------------------------------------------------- outbox and timers

/// SQL of [`claim_outbox`] (served by `outbox_pending_idx`).
pub const CLAIM_OUTBOX_SQL: &str = "SELECT id, alert_id FROM dispatch.outbox
         WHERE processed_at IS NULL AND ($1::uuid IS NULL OR alert_id = $1)
         ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED";

/// Claims one unprocessed outbox row (of `alert_id` when given), skipping rows another worker holds.
pub async fn claim_outbox(
    conn: &mut PgConnection,
    alert_id: Option<Uuid>,
) -> Result<Option<(i64, Uuid)>, sqlx::Error> {
    sqlx::query_as(CLAIM_OUTBOX_SQL)
        .bind(alert_id)
        .fetch_optional(conn)
        .await
}

/// Marks an outbox row done.
pub async fn finish_outbox(conn: &mut PgConnection, id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE dispatch.outbox SET processed_at = now() WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// SQL of [`claim_due_timer`] (served by `timers_due_idx`).
pub const CLAIM_DUE_TIMER_SQL: &str = "SELECT id, alert_id, wave FROM dispatch.timers
         WHERE fired_at IS NULL AND due_at <= now()
         ORDER BY due_at LIMIT 1 FOR UPDATE SKIP LOCKED";

/// Claims one due, unfired timer, skipping timers another worker holds: `(id, alert, wave)`.
pub async fn claim_due_timer(
    conn: &mut PgConnection,
) -> Result<Option<(i64, Uuid, i32)>, sqlx::Error> {
    sqlx::query_as(CLAIM_DUE_TIMER_SQL)
        .fetch_optional(conn)
        .await
}

/// Marks a timer fired.
pub async fn fire_timer(conn: &mut PgConnection, id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE dispatch.timers SET fired_at = now() WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Sets the deadline of wave `wave` of `alert_id` (insert, or move an unfired one).
pub async fn set_timer(
    conn: &mut PgConnection,
    alert_id: Uuid,
    wave: i32,
    due_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO dispatch.timers (alert_id, wave, due_at) VALUES ($1, $2, $3)
         ON CONFLICT (alert_id, wave) DO UPDATE SET due_at = EXCLUDED.due_at
         WHERE dispatch.timers.fired_at IS NULL",
    )
    .bind(alert_id)
    .bind(wave)
    .bind(due_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Cancels every unfired timer of `alert_id` (covered, cancelled, resolved).
pub async fn cancel_timers(conn: &mut PgConnection, alert_id: Uuid) -> Result<(), sqlx::Error> {
    // A timer a wave has claimed (`claim_due_timer` locks it, then the alert) is skipped: taking
    // it here, with the alert already locked, would be the reverse lock order and deadlock. The
    // claiming wave fires it, and finds the alert no longer needing a wave.
    sqlx::query(concat!(
        "UPDATE dispatch.timers SET fired_at = now() WHERE id IN (SELECT id FROM dispatch.timers",
        " WHERE alert_id = $1 AND fired_at IS NULL FOR UPDATE SKIP LOCKED)",
    ))
    .bind(alert_id)
    .execute(conn)
    .await?;
    Ok(())
}

// ---------------------------------------------------------------- volunteers

/// Creates or updates the volunteer row and sets duty; returns the row.
pub async fn set_duty(
    pool: &PgPool,
    user: Uuid,
    name: &str,
    on_duty: bool,
) -> Result<VolunteerRow, sqlx::Error> {
    sqlx::query(
        "INSERT INTO dispatch.volunteers (user_id, name, on_duty) VALUES ($1, $2, $3)
         ON CONFLICT (user_id) DO UPDATE SET name = EXCLUDED.name, on_duty = EXCLUDED.on_duty, updated_at = now()",
    )
    .bind(user)
    .bind(name)
    .bind(on_duty)
    .execute(pool)
    .await?;
    volunteer(pool, user).await?.ok_or(sqlx::Error::RowNotFound)
}

/// What storing a position did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PositionStored {
    /// False when a newer position was stored already (this one is older: history only).
    pub latest: bool,
    /// Whether the volunteer is on duty.
    pub on_duty: bool,
}

/// Stores a volunteer's latest position (creating the row, off duty, when new). A position
/// recorded before the stored one leaves the row as it is.
pub async fn set_position(
    pool: &PgPool,
    user: Uuid,
    name: &str,
    at: LatLng,
    accuracy_m: Option<f32>,
    recorded_at: DateTime<Utc>,
) -> Result<PositionStored, sqlx::Error> {
    let (applied, on_duty): (Option<bool>, Option<bool>) = sqlx::query_as(
        "WITH up AS (
           INSERT INTO dispatch.volunteers (user_id, name, location, h3_cell, accuracy_m, location_at)
           VALUES ($1, $2, ST_SetSRID(ST_MakePoint($3, $4), 4326)::geography, $5, $6, $7)
           ON CONFLICT (user_id) DO UPDATE SET location = EXCLUDED.location, h3_cell = EXCLUDED.h3_cell,
             accuracy_m = EXCLUDED.accuracy_m, location_at = EXCLUDED.location_at, updated_at = now(),
             name = CASE WHEN EXCLUDED.name <> '' THEN EXCLUDED.name ELSE dispatch.volunteers.name END
           WHERE dispatch.volunteers.location_at IS NULL
              OR dispatch.volunteers.location_at <= EXCLUDED.location_at
           RETURNING on_duty)
         SELECT (SELECT on_duty FROM up),
                (SELECT on_duty FROM dispatch.volunteers WHERE user_id = $1)",
    )
    .bind(user)
    .bind(name)
    .bind(at.lng())
    .bind(at.lat())
    .bind(h3_cell(at))
    .bind(accuracy_m)
    .bind(recorded_at)
    .fetch_one(pool)
    .await?;
    Ok(PositionStored {
        latest: applied.is_some(),
        on_duty: applied.or(on_duty).unwrap_or(false),
    })
}

/// Column arrays of a write-behind flush ([`crate::positions`]), one element per volunteer.
#[derive(Debug, Clone, Copy)]
pub struct PositionBatch<'a> {
    /// Volunteers.
    pub ids: &'a [Uuid],
    /// Latitudes, degrees.
    pub lats: &'a [f64],
    /// Longitudes, degrees.
    pub lngs: &'a [f64],
    /// H3 cells of the positions.
    pub cells: &'a [i64],
    /// Accuracies, metres.
    pub accuracies: &'a [Option<f32>],
    /// When the devices recorded them.
    pub recorded: &'a [DateTime<Utc>],
    /// Display names to store, empty to keep the stored ones.
    pub names: &'a [String],
}

/// Writes many volunteers' positions in one statement; a row whose stored position is newer
/// (another instance wrote it, or a later flush did) keeps it. Rows that do not exist are left
/// alone (write-behind only handles volunteers the matcher knows, whose rows exist). Answers how
/// many rows changed. Fires the `change_xid` trigger, so other instances catch up.
pub async fn write_positions(pool: &PgPool, batch: &PositionBatch<'_>) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE dispatch.volunteers v
         SET location = ST_SetSRID(ST_MakePoint(t.lng, t.lat), 4326)::geography, h3_cell = t.cell,
             accuracy_m = t.acc, location_at = t.rec, updated_at = now(),
             name = CASE WHEN t.name <> '' THEN t.name ELSE v.name END
         FROM UNNEST($1::uuid[], $2::float8[], $3::float8[], $4::bigint[], $5::real[],
                     $6::timestamptz[], $7::text[]) AS t(u, lat, lng, cell, acc, rec, name)
         WHERE v.user_id = t.u AND (v.location_at IS NULL OR v.location_at <= t.rec)",
    )
    .bind(batch.ids)
    .bind(batch.lats)
    .bind(batch.lngs)
    .bind(batch.cells)
    .bind(batch.accuracies)
    .bind(batch.recorded)
    .bind(batch.names)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Sets practitioner verification (creating the row when new).
pub async fn set_practitioner_verified(
    pool: &PgPool,
    user: Uuid,
    verified: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO dispatch.volunteers (user_id, name, practitioner_verified) VALUES ($1, '', $2)
         ON CONFLICT (user_id) DO UPDATE SET practitioner_verified = EXCLUDED.practitioner_verified, updated_at = now()",
    )
    .bind(user)
    .bind(verified)
    .execute(pool)
    .await?;
    Ok(())
}

/// Sets the rest period end of a volunteer.
pub async fn set_rest_until(
    conn: &mut PgConnection,
    user: Uuid,
    until: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE dispatch.volunteers SET rest_until = $2, updated_at = now() WHERE user_id = $1",
    )
    .bind(user)
    .bind(until)
    .execute(conn)
    .await?;
    Ok(())
}

/// One volunteer.
pub async fn volunteer(pool: &PgPool, user: Uuid) -> Result<Option<VolunteerRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        volunteer_columns!(),
        " FROM dispatch.volunteers v WHERE v.user_id = $1"
    ))
    .bind(user)
    .fetch_optional(pool)
    .await
}

/// One volunteer, inside a transaction.
pub async fn volunteer_in(
    conn: &mut PgConnection,
    user: Uuid,
) -> Result<Option<VolunteerRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        volunteer_columns!(),
        " FROM dispatch.volunteers v WHERE v.user_id = $1"
    ))
    .bind(user)
    .fetch_optional(conn)
    .await
}

/// Every volunteer that is on duty or has a position (to rebuild the matcher).
pub async fn all_volunteers(pool: &PgPool) -> Result<Vec<VolunteerRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        volunteer_columns!(),
        " FROM dispatch.volunteers v WHERE v.on_duty"
    ))
    .fetch_all(pool)
    .await
}

/// Volunteers with a position inside the box `[min_lng, min_lat, max_lng, max_lat]`, at most `limit`.
pub async fn volunteers_in_box(
    pool: &PgPool,
    bbox: Option<[f64; 4]>,
    limit: i64,
) -> Result<Vec<VolunteerRow>, sqlx::Error> {
    let [min_lng, min_lat, max_lng, max_lat] = bbox.map_or([None; 4], |b| b.map(Some));
    sqlx::query_as(concat!(
        "SELECT ",
        volunteer_columns!(),
        " FROM dispatch.volunteers v
         WHERE v.location IS NOT NULL
           AND ($1::float8 IS NULL
                OR v.location && ST_MakeEnvelope($1, $2, $3, $4, 4326)::geography)
         ORDER BY v.updated_at DESC LIMIT $5"
    ))
    .bind(min_lng)
    .bind(min_lat)
    .bind(max_lng)
    .bind(max_lat)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Appends positions to `location_history` in one statement.
pub async fn insert_history(
    pool: &PgPool,
    users: &[Uuid],
    lats: &[f64],
    lngs: &[f64],
    accuracies: &[Option<f32>],
    recorded: &[DateTime<Utc>],
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO dispatch.location_history (volunteer_id, location, accuracy_m, recorded_at)
         SELECT u, ST_SetSRID(ST_MakePoint(lng, lat), 4326)::geography, acc, rec
         FROM UNNEST($1::uuid[], $2::float8[], $3::float8[], $4::real[], $5::timestamptz[])
              AS t(u, lat, lng, acc, rec)",
    )
    .bind(users)
    .bind(lats)
    .bind(lngs)
    .bind(accuracies)
    .bind(recorded)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
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
) -> Result<Vec<(i64, Uuid, Option<String>)>, sqlx::Error> {
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

/// The alerts with these ids, in no particular order.
pub async fn alerts_by_ids(pool: &PgPool, ids: &[Uuid]) -> Result<Vec<AlertRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        alert_columns!(),
        " FROM dispatch.alerts a WHERE a.id = ANY($1)"
    ))
    .bind(ids)
    .fetch_all(pool)
    .await
}

// ---------------------------------------------------------------- volunteer changes

/// The channel on which an instance says that volunteers changed (payload: its instance id), so
/// the others catch up before their next poll. Sent at most every few hundred milliseconds per
/// instance, never per row.
pub const VOLUNTEER_CHANGES_CHANNEL: &str = "kreki_dispatch_volunteers";

/// A volunteer row with the id of the transaction that last wrote it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ChangedVolunteer {
    /// The row.
    #[sqlx(flatten)]
    pub row: VolunteerRow,
    /// `change_xid` (an `xid8`) as text.
    pub change_xid: String,
}

/// The `xmin` of the current snapshot: every transaction it does not see has an id at or above it.
pub async fn snapshot_xmin(conn: &mut PgConnection) -> Result<u64, sqlx::Error> {
    let text: String = sqlx::query_scalar("SELECT pg_snapshot_xmin(pg_current_snapshot())::text")
        .fetch_one(conn)
        .await?;
    text.parse()
        .map_err(|error| sqlx::Error::Decode(format!("xid8 {text:?}: {error}").into()))
}

/// Volunteers whose `(change_xid, user_id)` follows `(xid, after)`, in that order, at most
/// `limit` (served by `volunteers_change_xid_idx`).
pub async fn volunteers_changed(
    conn: &mut PgConnection,
    xid: u64,
    after: Uuid,
    limit: i64,
) -> Result<Vec<ChangedVolunteer>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        volunteer_columns!(),
        ", v.change_xid::text AS change_xid FROM dispatch.volunteers v
         WHERE (v.change_xid, v.user_id) > ($1::text::xid8, $2)
         ORDER BY v.change_xid, v.user_id LIMIT $3"
    ))
    .bind(xid.to_string())
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Tells the other instances that volunteers changed.
pub async fn announce_volunteer_changes(pool: &PgPool, instance: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(VOLUNTEER_CHANGES_CHANNEL)
        .bind(instance.to_string())
        .execute(pool)
        .await?;
    Ok(())
}
