//! The SQL of aftercare check-ins: scheduling one for each assignment that ended (called inside
//! the transaction that ends it), claiming due ones for delivery (skipping rows another instance
//! holds), a volunteer's own, answering one, and the coordinators' list of answers.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::checkins::CheckinAnswer;
use crate::domain::{AlertId, AssignmentId, CheckinId};

/// A check-in as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CheckinRow {
    /// Its id.
    pub id: CheckinId,
    /// The assignment that ended.
    pub assignment_id: AssignmentId,
    /// Its alert.
    pub alert_id: AlertId,
    /// The volunteer asked.
    pub volunteer_id: Uuid,
    /// Their name.
    pub volunteer_name: String,
    /// When they are asked (UTC).
    pub due_at: DateTime<Utc>,
    /// When it was handed to the transport (UTC).
    pub sent_at: Option<DateTime<Utc>>,
    /// When they answered (UTC).
    pub answered_at: Option<DateTime<Utc>>,
    /// Their wellbeing, 1 to 5.
    pub wellbeing: Option<i16>,
    /// They want someone to contact them.
    pub wants_contact: Option<bool>,
    /// Their note.
    pub note: Option<String>,
    /// Coordinators should reach out.
    pub support_requested: Option<bool>,
}

macro_rules! checkin_columns {
    () => {
        "k.id, k.assignment_id, k.alert_id, k.volunteer_id, k.volunteer_name, k.due_at, k.sent_at,
         k.answered_at, k.wellbeing, k.wants_contact, k.note, k.support_requested"
    };
}

/// Schedules a check-in `after_s` seconds from now for every assignment of `alert_id` that has
/// ended (`completed` or `withdrawn`) and has none yet. Call it inside the transaction that ends
/// an assignment (a status change, a cancel, a resolve): the check-in commits with the change.
/// Answers how many were scheduled.
pub async fn schedule_checkins(
    conn: &mut PgConnection,
    alert_id: AlertId,
    after_s: u64,
) -> Result<u64, sqlx::Error> {
    let after_s = f64::from(u32::try_from(after_s).unwrap_or(u32::MAX));
    let done = sqlx::query(
        "INSERT INTO dispatch.checkins (id, assignment_id, alert_id, volunteer_id, volunteer_name, due_at)
         SELECT dispatch.uuid_v7(), s.id, s.alert_id, s.volunteer_id, s.volunteer_name,
                now() + make_interval(secs => $2)
         FROM dispatch.assignments s
         WHERE s.alert_id = $1 AND s.status IN ('completed', 'withdrawn')
         ON CONFLICT (assignment_id) DO NOTHING",
    )
    .bind(alert_id)
    .bind(after_s)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

macro_rules! claim_due_checkins_sql {
    () => {
        concat!(
            "UPDATE dispatch.checkins k SET sent_at = now()
             FROM (SELECT id FROM dispatch.checkins
                   WHERE sent_at IS NULL AND answered_at IS NULL AND due_at <= now()
                   ORDER BY due_at LIMIT $1
                   FOR UPDATE SKIP LOCKED) AS due
             WHERE k.id = due.id
             RETURNING ",
            checkin_columns!()
        )
    };
}

/// The claim of [`claim_due_checkins`]; binds the batch size. Public for the EXPLAIN test.
pub const CLAIM_DUE_CHECKINS_SQL: &str = claim_due_checkins_sql!();

/// Claims at most `limit` due, unsent, unanswered check-ins and marks them sent, in one statement
/// that commits by itself: rows another instance is claiming are skipped, so no check-in is sent
/// twice. A check-in whose message is lost still shows in the volunteer's list.
pub async fn claim_due_checkins(pool: &PgPool, limit: i64) -> Result<Vec<CheckinRow>, sqlx::Error> {
    sqlx::query_as(CLAIM_DUE_CHECKINS_SQL)
        .bind(limit)
        .fetch_all(pool)
        .await
}

/// The volunteer's check-ins that are due (answered or not), newest first, at most `limit`.
pub async fn due_checkins_of(
    pool: &PgPool,
    volunteer: Uuid,
    limit: i64,
) -> Result<Vec<CheckinRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        checkin_columns!(),
        " FROM dispatch.checkins k WHERE k.volunteer_id = $1 AND k.due_at <= now()
         ORDER BY k.due_at DESC, k.id DESC LIMIT $2"
    ))
    .bind(volunteer)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// One check-in, locked for the rest of the transaction (an answer checks and writes it).
pub async fn lock_checkin(
    conn: &mut PgConnection,
    id: CheckinId,
) -> Result<Option<CheckinRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        checkin_columns!(),
        " FROM dispatch.checkins k WHERE k.id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Stores the answer to a check-in (the caller checked it is unanswered and the volunteer's own).
pub async fn answer_checkin(
    conn: &mut PgConnection,
    id: CheckinId,
    answer: &CheckinAnswer,
) -> Result<CheckinRow, sqlx::Error> {
    sqlx::query_as(concat!(
        "UPDATE dispatch.checkins k
         SET answered_at = now(), wellbeing = $2, wants_contact = $3, note = $4, support_requested = $5
         WHERE k.id = $1 RETURNING ",
        checkin_columns!()
    ))
    .bind(id)
    .bind(i16::from(answer.wellbeing))
    .bind(answer.wants_contact)
    .bind(answer.note.as_deref())
    .bind(answer.support_requested())
    .fetch_one(conn)
    .await
}

/// Answered check-ins, newest answer first, at most `limit`; with `support_only` just those that
/// asked for support.
pub async fn answered_checkins(
    pool: &PgPool,
    support_only: bool,
    limit: i64,
) -> Result<Vec<CheckinRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        checkin_columns!(),
        " FROM dispatch.checkins k
         WHERE k.answered_at IS NOT NULL AND (NOT $1 OR k.support_requested)
         ORDER BY k.answered_at DESC, k.id DESC LIMIT $2"
    ))
    .bind(support_only)
    .bind(limit)
    .fetch_all(pool)
    .await
}
