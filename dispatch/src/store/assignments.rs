//! The SQL of assignments: reading an alert's, making one (accept or a coordinator's
//! assignment), moving one along, and the active-responder counts the accept path checks.

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::AssignmentRow;
use crate::domain::{AlertId, AssignmentId, AssignmentStatus, OfferId};

/// The assignments of an alert, oldest first.
pub async fn assignments_of(
    conn: &mut PgConnection,
    alert_id: AlertId,
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
    alert_ids: &[AlertId],
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
    id: AssignmentId,
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
    offer_id: OfferId,
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
    alert_id: AlertId,
    volunteer_id: Uuid,
    volunteer_name: &str,
    offer_id: Option<OfferId>,
    distance_m: Option<f64>,
) -> Result<AssignmentRow, sqlx::Error> {
    sqlx::query_as(concat!(
        "INSERT INTO dispatch.assignments AS s (id, alert_id, volunteer_id, volunteer_name, offer_id, distance_m)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING ",
        assignment_columns!()
    ))
    .bind(AssignmentId::new())
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
    id: AssignmentId,
    status: AssignmentStatus,
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

/// The active assignments of `alert_id` (`accepted`, `en_route`, `on_scene`).
pub async fn active_count(conn: &mut PgConnection, alert_id: AlertId) -> Result<i32, sqlx::Error> {
    let count: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM dispatch.assignments
         WHERE alert_id = $1 AND status IN ('accepted', 'en_route', 'on_scene')",
    )
    .bind(alert_id)
    .fetch_one(conn)
    .await?;
    Ok(i32::try_from(count).unwrap_or(i32::MAX))
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
