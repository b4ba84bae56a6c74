//! SQL of the bridge (schema `bridge`). Every function is one statement, or one transaction said so;
//! each is exercised by the crate's tests against PostgreSQL.
//!
//! Work queues (verification retries, the Encounter outbox) are claimed with a lease: a claim moves
//! `next_attempt_at` forward under `FOR UPDATE SKIP LOCKED`, so two instances never work one row at
//! once and a crashed worker's row comes back when its lease ends.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use kreki_platform::pii::{NikHash, Pii, SealedNik};

use crate::domain::{IncidentEvent, IncidentStatus};

/// A stored verification.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PractitionerRow {
    /// The volunteer.
    pub user_id: Uuid,
    /// Their NIK, sealed, while a lookup is pending.
    pub nik: Option<String>,
    /// `verified`, `not_found`, `ambiguous` or `unavailable`.
    pub status: String,
    /// IHS number when verified.
    pub ihs_number: Option<String>,
    /// Lookups tried so far for the pending request.
    pub attempts: i32,
}

/// Records the outcome of a verification attempt (one statement).
#[expect(
    clippy::too_many_arguments,
    reason = "one column each, named at the call site"
)]
pub async fn save_practitioner(
    pool: &PgPool,
    user_id: Uuid,
    nik: Option<&SealedNik>,
    nik_hash: &NikHash,
    status: &str,
    ihs_number: Option<&str>,
    attempts: i32,
    next_attempt_at: Option<DateTime<Utc>>,
    last_error: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO bridge.practitioners
             (user_id, nik, status, ihs_number, attempts, next_attempt_at, last_error, checked_at, nik_hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, now(), $8)
         ON CONFLICT (user_id) DO UPDATE SET
             nik = excluded.nik, nik_hash = excluded.nik_hash, status = excluded.status, ihs_number = excluded.ihs_number,
             attempts = excluded.attempts, next_attempt_at = excluded.next_attempt_at,
             last_error = excluded.last_error, checked_at = now()",
    )
    .bind(user_id)
    .bind(nik.map(SealedNik::as_str))
    .bind(status)
    .bind(ihs_number)
    .bind(attempts)
    .bind(next_attempt_at)
    .bind(last_error)
    .bind(nik_hash.as_bytes())
    .execute(pool)
    .await
    .map(drop)
}

/// The account that verified with the NIK of one of `nik_hashes` (`verified` only), other than
/// `except`: the one lookup by NIK there is, through the search hash (index
/// `practitioners_nik_hash_idx`), never the digits. `nik_hashes` are every form the NIK's hash
/// may be stored in now ([`kreki_platform::pii::Pii::lookup_hashes`]: rows the reseal batch has
/// not wrapped with the newest search key yet are found too).
pub async fn verified_practitioner_by_nik(
    pool: &PgPool,
    nik_hashes: &[Vec<u8>],
    except: Uuid,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT user_id FROM bridge.practitioners
         WHERE nik_hash = ANY ($1) AND status = 'verified' AND user_id <> $2 LIMIT 1",
    )
    .bind(nik_hashes)
    .bind(except)
    .fetch_optional(pool)
    .await
}

/// The stored verification of `user_id`.
pub async fn practitioner(
    pool: &PgPool,
    user_id: Uuid,
) -> Result<Option<PractitionerRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT user_id, nik, status, ihs_number, attempts FROM bridge.practitioners WHERE user_id = $1",
    )
    .bind(user_id)
    .fetch_optional(pool)
    .await
}

/// Seconds since `user_id` last asked for a verification, if ever.
pub async fn seconds_since_check(pool: &PgPool, user_id: Uuid) -> Result<Option<f64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXTRACT(EPOCH FROM now() - checked_at)::float8 FROM bridge.practitioners WHERE user_id = $1",
    )
    .bind(user_id)
    .fetch_optional(pool)
    .await
}

/// Claims up to `limit` verifications due for a retry, leasing each for `lease_s` seconds.
pub async fn claim_due_practitioners(
    pool: &PgPool,
    limit: i64,
    lease_s: f64,
) -> Result<Vec<PractitionerRow>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE bridge.practitioners SET next_attempt_at = now() + make_interval(secs => $2)
         WHERE user_id IN (
             SELECT user_id FROM bridge.practitioners
             WHERE status = 'unavailable' AND next_attempt_at IS NOT NULL AND next_attempt_at <= now()
             ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
         RETURNING user_id, nik, status, ihs_number, attempts",
    )
    .bind(limit)
    .bind(lease_s)
    .fetch_all(pool)
    .await
}

/// The feed position: the last event applied.
pub async fn feed_cursor(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT last_seq FROM bridge.feed_cursor WHERE id = 1")
        .fetch_one(pool)
        .await
}

/// Applies a batch of feed events and moves the cursor past them, in ONE transaction, so each event
/// is applied exactly once even across crashes. With `sync` true, queues Encounter changes: a create
/// once a verified practitioner is assigned, an update whenever the Encounter status changes after
/// that (on scene, resolved, cancelled).
/// Events at or before the cursor are skipped, and so are drills (never a health record).
pub async fn apply_events(
    pool: &PgPool,
    pii: &Pii,
    events: &[IncidentEvent],
    sync: bool,
) -> Result<i64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let cursor: i64 =
        sqlx::query_scalar("SELECT last_seq FROM bridge.feed_cursor WHERE id = 1 FOR UPDATE")
            .fetch_one(&mut *tx)
            .await?;
    let mut last = cursor;
    for event in events.iter().filter(|event| event.seq > cursor) {
        // A drill is not a health record: it moves the cursor and leaves no trace here, so no
        // Encounter is queued for it and the FHIR API cannot serve it.
        if !event.drill {
            apply_event(&mut tx, pii, event, sync).await?;
        }
        last = last.max(event.seq);
    }
    sqlx::query("UPDATE bridge.feed_cursor SET last_seq = $1 WHERE id = 1")
        .bind(last)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(last)
}

async fn apply_event(
    conn: &mut PgConnection,
    pii: &Pii,
    event: &IncidentEvent,
    sync: bool,
) -> Result<(), sqlx::Error> {
    let (lat, lng) = event.location;
    let nik = event
        .patient_nik
        .as_ref()
        .map(|nik| pii.seal(nik).as_str().to_owned());
    let ended_at = event.status.is_final().then_some(event.changed_at);
    let previous: Option<String> =
        sqlx::query_scalar("SELECT status FROM bridge.incidents WHERE alert_id = $1 FOR UPDATE")
            .bind(event.alert_id)
            .fetch_optional(&mut *conn)
            .await?;
    let encounter_status_changed = previous
        .as_deref()
        .and_then(IncidentStatus::parse)
        .is_some_and(|previous| previous.encounter_status() != event.status.encounter_status());
    sqlx::query(
        "INSERT INTO bridge.incidents
             (alert_id, kind, status, location, occurred_at, ended_at, patient_nik, last_seq, updated_at)
         VALUES ($1, $2, $3, ST_SetSRID(ST_MakePoint($5, $4), 4326)::geography, $6, $7, $8, $9, now())
         ON CONFLICT (alert_id) DO UPDATE SET
             kind = excluded.kind, status = excluded.status, location = excluded.location,
             ended_at = COALESCE(bridge.incidents.ended_at, excluded.ended_at),
             patient_nik = COALESCE(excluded.patient_nik, bridge.incidents.patient_nik),
             last_seq = excluded.last_seq, version = bridge.incidents.version + 1, updated_at = now()
         WHERE bridge.incidents.last_seq < excluded.last_seq",
    )
    .bind(event.alert_id)
    .bind(&event.kind)
    .bind(event.status.as_str())
    .bind(lat)
    .bind(lng)
    .bind(event.occurred_at)
    .bind(ended_at)
    .bind(nik)
    .bind(event.seq)
    .execute(&mut *conn)
    .await?;
    let mut practitioner_assigned = false;
    for responder in &event.responders {
        let ihs: Option<String> = match &responder.ihs_number {
            Some(ihs) => Some(ihs.clone()),
            None => sqlx::query_scalar(
                "SELECT ihs_number FROM bridge.practitioners WHERE user_id = $1 AND status = 'verified'",
            )
            .bind(responder.volunteer_id)
            .fetch_optional(&mut *conn)
            .await?
            .flatten(),
        };
        practitioner_assigned |= ihs.is_some() && responder.status != "withdrawn";
        sqlx::query(
            "INSERT INTO bridge.tasks (assignment_id, alert_id, volunteer_id, status, ihs_number)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (assignment_id) DO UPDATE SET
                 status = excluded.status, ihs_number = COALESCE(excluded.ihs_number, bridge.tasks.ihs_number),
                 version = bridge.tasks.version + 1, updated_at = now()
             WHERE (bridge.tasks.status, bridge.tasks.ihs_number) IS DISTINCT FROM
                   (excluded.status, COALESCE(excluded.ihs_number, bridge.tasks.ihs_number))",
        )
        .bind(responder.assignment_id)
        .bind(event.alert_id)
        .bind(responder.volunteer_id)
        .bind(&responder.status)
        .bind(ihs)
        .execute(&mut *conn)
        .await?;
    }
    if sync && practitioner_assigned {
        sqlx::query(
            "INSERT INTO bridge.encounter_outbox (alert_id, action) VALUES ($1, 'create')
             ON CONFLICT (alert_id) WHERE action = 'create' DO NOTHING",
        )
        .bind(event.alert_id)
        .execute(&mut *conn)
        .await?;
    }
    if sync && encounter_status_changed {
        sqlx::query(
            "INSERT INTO bridge.encounter_outbox (alert_id, action)
             SELECT $1, 'update' WHERE EXISTS (
                 SELECT 1 FROM bridge.encounter_outbox WHERE alert_id = $1 AND action = 'create')",
        )
        .bind(event.alert_id)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// An incident as projected.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct IncidentRow {
    /// Paging key (insertion order).
    pub row_id: i64,
    /// The alert.
    pub alert_id: Uuid,
    /// Alert kind.
    pub kind: String,
    /// Alert status name.
    pub status: String,
    /// Latitude, degrees.
    pub lat: f64,
    /// Longitude, degrees.
    pub lng: f64,
    /// When the alert was raised.
    pub occurred_at: DateTime<Utc>,
    /// When it ended, if it has.
    pub ended_at: Option<DateTime<Utc>>,
    /// The patient's NIK, sealed ([`Pii::open_str`] reads it), if given.
    pub patient_nik: Option<String>,
    /// FHIR version.
    pub version: i32,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl IncidentRow {
    /// The status, parsed (the column's CHECK makes an unknown one impossible; it reads as dispatching).
    pub fn status(&self) -> IncidentStatus {
        IncidentStatus::parse(&self.status).unwrap_or(IncidentStatus::Dispatching)
    }
}

macro_rules! incident_columns {
    () => {
        "row_id, alert_id, kind, status, ST_Y(location::geometry) AS lat, ST_X(location::geometry) AS lng,
         occurred_at, ended_at, patient_nik, version, updated_at"
    };
}

/// The incident of `alert_id`.
pub async fn incident(pool: &PgPool, alert_id: Uuid) -> Result<Option<IncidentRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        incident_columns!(),
        " FROM bridge.incidents WHERE alert_id = $1"
    ))
    .bind(alert_id)
    .fetch_optional(pool)
    .await
}

/// Filters of an incident search; bounds are `[from, before)`, `None` for open.
#[derive(Debug, Clone, Default)]
pub struct IncidentFilter {
    /// Raised at or after.
    pub occurred_from: Option<DateTime<Utc>>,
    /// Raised before.
    pub occurred_before: Option<DateTime<Utc>>,
    /// Changed at or after.
    pub updated_from: Option<DateTime<Utc>>,
    /// Changed before.
    pub updated_before: Option<DateTime<Utc>>,
    /// Alert statuses wanted (`None`: any).
    pub statuses: Option<Vec<String>>,
    /// Only rows after this paging key.
    pub after_row: i64,
}

/// Up to `limit` incidents matching `filter`, in paging order.
pub async fn search_incidents(
    pool: &PgPool,
    filter: &IncidentFilter,
    limit: i64,
) -> Result<Vec<IncidentRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        incident_columns!(),
        " FROM bridge.incidents
         WHERE row_id > $1
           AND ($2::timestamptz IS NULL OR occurred_at >= $2)
           AND ($3::timestamptz IS NULL OR occurred_at < $3)
           AND ($4::timestamptz IS NULL OR updated_at >= $4)
           AND ($5::timestamptz IS NULL OR updated_at < $5)
           AND ($6::text[] IS NULL OR status = ANY ($6))
         ORDER BY row_id LIMIT $7"
    ))
    .bind(filter.after_row)
    .bind(filter.occurred_from)
    .bind(filter.occurred_before)
    .bind(filter.updated_from)
    .bind(filter.updated_before)
    .bind(filter.statuses.as_deref())
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// A task (assignment) as projected.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TaskRow {
    /// The assignment.
    pub assignment_id: Uuid,
    /// Its alert.
    pub alert_id: Uuid,
    /// The volunteer.
    pub volunteer_id: Uuid,
    /// Assignment status name.
    pub status: String,
    /// The volunteer's IHS number when verified.
    pub ihs_number: Option<String>,
    /// FHIR version.
    pub version: i32,
    /// First seen.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

macro_rules! task_columns {
    () => {
        "assignment_id, alert_id, volunteer_id, status, ihs_number, version, created_at, updated_at"
    };
}

/// The task of `assignment_id`.
pub async fn task(pool: &PgPool, assignment_id: Uuid) -> Result<Option<TaskRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        task_columns!(),
        " FROM bridge.tasks WHERE assignment_id = $1"
    ))
    .bind(assignment_id)
    .fetch_optional(pool)
    .await
}

/// Every task of `alert_id`, oldest first.
pub async fn tasks_of(pool: &PgPool, alert_id: Uuid) -> Result<Vec<TaskRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        task_columns!(),
        " FROM bridge.tasks WHERE alert_id = $1 ORDER BY created_at, assignment_id"
    ))
    .bind(alert_id)
    .fetch_all(pool)
    .await
}

/// An Encounter change to send.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxRow {
    /// Row id.
    pub id: i64,
    /// The alert.
    pub alert_id: Uuid,
    /// `create` or `update`.
    pub action: String,
    /// Attempts made before this one.
    pub attempts: i32,
}

/// Claims up to `limit` due outbox rows (creates before updates of the same age), leasing each.
pub async fn claim_outbox(
    pool: &PgPool,
    limit: i64,
    lease_s: f64,
) -> Result<Vec<OutboxRow>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE bridge.encounter_outbox SET next_attempt_at = now() + make_interval(secs => $2)
         WHERE id IN (
             SELECT id FROM bridge.encounter_outbox
             WHERE state = 'pending' AND next_attempt_at <= now()
             ORDER BY next_attempt_at, id LIMIT $1 FOR UPDATE SKIP LOCKED)
         RETURNING id, alert_id, action, attempts",
    )
    .bind(limit)
    .bind(lease_s)
    .fetch_all(pool)
    .await
}

/// Marks an outbox row sent.
pub async fn outbox_done(pool: &PgPool, id: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE bridge.encounter_outbox SET state = 'done', attempts = attempts + 1, last_error = NULL,
             updated_at = now() WHERE id = $1",
    )
    .bind(id)
    .execute(pool)
    .await
    .map(drop)
}

/// Records a failed attempt: retried at `retry_at`, or failed for good when `retry_at` is `None`.
pub async fn outbox_failed_attempt(
    pool: &PgPool,
    id: i64,
    error: &str,
    retry_at: Option<DateTime<Utc>>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE bridge.encounter_outbox SET attempts = attempts + 1, last_error = $2,
             state = CASE WHEN $3::timestamptz IS NULL THEN 'failed' ELSE 'pending' END,
             next_attempt_at = COALESCE($3, next_attempt_at), updated_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(error)
    .bind(retry_at)
    .execute(pool)
    .await
    .map(drop)
}

/// An outbox row that exhausted its retries.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FailureRow {
    /// Row id.
    pub id: i64,
    /// The alert.
    pub alert_id: Uuid,
    /// `create` or `update`.
    pub action: String,
    /// Attempts made.
    pub attempts: i32,
    /// The last error.
    pub last_error: Option<String>,
    /// When it was given up.
    pub failed_at: DateTime<Utc>,
}

/// The latest `limit` failures, newest first.
pub async fn failures(pool: &PgPool, limit: i64) -> Result<Vec<FailureRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, alert_id, action, attempts, last_error, updated_at AS failed_at
         FROM bridge.encounter_outbox WHERE state = 'failed' ORDER BY updated_at DESC, id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// State of the create of `alert_id` (`pending`, `done`, `failed`), if one was queued.
pub async fn create_state(pool: &PgPool, alert_id: Uuid) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT state FROM bridge.encounter_outbox WHERE alert_id = $1 AND action = 'create'",
    )
    .bind(alert_id)
    .fetch_optional(pool)
    .await
}

/// Puts failed outbox row `id` back in the queue with fresh attempts; answers it, or `None` when no
/// failed row has that id.
pub async fn retry_failed(pool: &PgPool, id: i64) -> Result<Option<OutboxRow>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE bridge.encounter_outbox SET state = 'pending', attempts = 0, next_attempt_at = now(),
             updated_at = now()
         WHERE id = $1 AND state = 'failed'
         RETURNING id, alert_id, action, attempts",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// What SATUSEHAT holds for an alert.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SyncRow {
    /// Encounter id in SATUSEHAT.
    pub satusehat_id: String,
    /// Practitioner recorded.
    pub ihs_number: String,
    /// Patient IHS number recorded, if any.
    pub patient_ihs: Option<String>,
    /// Status last sent.
    pub synced_status: String,
}

/// What SATUSEHAT holds for `alert_id`, if anything.
pub async fn sync_state(pool: &PgPool, alert_id: Uuid) -> Result<Option<SyncRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT satusehat_id, ihs_number, patient_ihs, synced_status FROM bridge.encounter_sync WHERE alert_id = $1",
    )
    .bind(alert_id)
    .fetch_optional(pool)
    .await
}

/// Records what SATUSEHAT now holds for `alert_id`.
pub async fn save_sync_state(
    pool: &PgPool,
    alert_id: Uuid,
    row: &SyncRow,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO bridge.encounter_sync (alert_id, satusehat_id, ihs_number, patient_ihs, synced_status)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (alert_id) DO UPDATE SET satusehat_id = excluded.satusehat_id,
             ihs_number = excluded.ihs_number, patient_ihs = excluded.patient_ihs,
             synced_status = excluded.synced_status, updated_at = now()",
    )
    .bind(alert_id)
    .bind(&row.satusehat_id)
    .bind(&row.ihs_number)
    .bind(&row.patient_ihs)
    .bind(&row.synced_status)
    .execute(pool)
    .await
    .map(drop)
}
