//! The SQL of assignments: reading an alert's, making one (accept or a coordinator's
//! assignment), moving one along, and the active-responder counts the accept path checks.

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::AssignmentRow;
use crate::domain::{AlertId, AssignmentId, AssignmentStatus, OfferId, ResponderRole};

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

/// What a new assignment is made of.
#[derive(Debug, Clone)]
pub struct NewAssignment<'a> {
    /// The alert.
    pub alert_id: AlertId,
    /// Who responds.
    pub volunteer_id: Uuid,
    /// Their name.
    pub volunteer_name: &'a str,
    /// The offer accepted (none for a coordinator's direct assignment).
    pub offer_id: Option<OfferId>,
    /// Their distance to the alert when offered, metres.
    pub distance_m: Option<f64>,
    /// Their role on scene.
    pub role: Option<ResponderRole>,
    /// For the `aed` role: the AED to fetch and the walk via it, metres.
    pub aed: Option<(Uuid, f64)>,
}

/// Inserts an assignment. A volunteer with an active one already violates
/// `assignments_one_active_per_volunteer`.
pub async fn insert_assignment(
    conn: &mut PgConnection,
    new: &NewAssignment<'_>,
) -> Result<AssignmentRow, sqlx::Error> {
    sqlx::query_as(concat!(
        "INSERT INTO dispatch.assignments AS s
             (id, alert_id, volunteer_id, volunteer_name, offer_id, distance_m, role, aed_id,
              aed_distance_via_m)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING ",
        assignment_columns!()
    ))
    .bind(AssignmentId::new())
    .bind(new.alert_id)
    .bind(new.volunteer_id)
    .bind(new.volunteer_name)
    .bind(new.offer_id)
    .bind(new.distance_m)
    .bind(new.role)
    .bind(new.aed.map(|(id, _)| id))
    .bind(new.aed.map(|(_, via)| via))
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

/// How many assignments of `alert_id` are active (`accepted`, `en_route`, `on_scene`).
pub async fn active_count(conn: &mut PgConnection, alert_id: AlertId) -> Result<i32, sqlx::Error> {
    Ok(i32::try_from(active_roles(conn, alert_id).await?.len()).unwrap_or(i32::MAX))
}

/// The roles of the active assignments of `alert_id`, one entry per active assignment (`None`
/// for one without a role).
pub async fn active_roles(
    conn: &mut PgConnection,
    alert_id: AlertId,
) -> Result<Vec<Option<ResponderRole>>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT role FROM dispatch.assignments
         WHERE alert_id = $1 AND status IN ('accepted', 'en_route', 'on_scene')",
    )
    .bind(alert_id)
    .fetch_all(conn)
    .await
}

/// The team of a volunteer's active assignment: its alert, their role and name, and the other
/// active responders of that alert.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TeamRow {
    /// The alert.
    pub alert_id: AlertId,
    /// Their role.
    pub role: Option<ResponderRole>,
    /// Their name.
    pub volunteer_name: String,
    /// The other active responders.
    pub mates: Vec<Uuid>,
}

/// The team of `volunteer`'s active assignment, if they hold one.
pub async fn team_of(pool: &PgPool, volunteer: Uuid) -> Result<Option<TeamRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT s.alert_id, s.role, s.volunteer_name,
                ARRAY(SELECT m.volunteer_id FROM dispatch.assignments m
                      WHERE m.alert_id = s.alert_id AND m.volunteer_id <> s.volunteer_id
                        AND m.status IN ('accepted', 'en_route', 'on_scene')) AS mates
         FROM dispatch.assignments s
         WHERE s.volunteer_id = $1 AND s.status IN ('accepted', 'en_route', 'on_scene')",
    )
    .bind(volunteer)
    .fetch_optional(pool)
    .await
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
