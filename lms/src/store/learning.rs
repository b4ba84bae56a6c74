//! Enrolments and lessons read.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// An enrollment.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EnrollmentRow {
    /// The learner.
    pub user_id: Uuid,
    /// The course.
    pub course_id: Uuid,
    /// When they enrolled.
    pub enrolled_at: DateTime<Utc>,
    /// Passes after this count towards the next certificate.
    pub cycle_started_at: DateTime<Utc>,
    /// When they last completed it (every quiz passed).
    pub completed_at: Option<DateTime<Utc>>,
}

/// Enrolls `user` in `course`; `true` when the enrollment is new, `false` when it existed.
pub async fn enroll(
    pool: &PgPool,
    user: Uuid,
    course: Uuid,
) -> Result<(EnrollmentRow, bool), sqlx::Error> {
    let inserted: Option<EnrollmentRow> = sqlx::query_as(
        "INSERT INTO lms.enrollments (user_id, course_id) VALUES ($1, $2)
         ON CONFLICT (user_id, course_id) DO NOTHING
         RETURNING user_id, course_id, enrolled_at, cycle_started_at, completed_at",
    )
    .bind(user)
    .bind(course)
    .fetch_optional(pool)
    .await?;
    if let Some(row) = inserted {
        return Ok((row, true));
    }
    let row = sqlx::query_as(
        "SELECT user_id, course_id, enrolled_at, cycle_started_at, completed_at
         FROM lms.enrollments WHERE user_id = $1 AND course_id = $2",
    )
    .bind(user)
    .bind(course)
    .fetch_one(pool)
    .await?;
    Ok((row, false))
}

/// The enrollment, locked until the transaction ends: attempts of one learner in one course are
/// serialised on it, so limits and certificate issue cannot race.
pub async fn lock_enrollment(
    conn: &mut PgConnection,
    user: Uuid,
    course: Uuid,
) -> Result<Option<EnrollmentRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT user_id, course_id, enrolled_at, cycle_started_at, completed_at
         FROM lms.enrollments WHERE user_id = $1 AND course_id = $2 FOR UPDATE",
    )
    .bind(user)
    .bind(course)
    .fetch_optional(conn)
    .await
}

/// The enrollment, if any.
pub async fn enrollment(
    pool: &PgPool,
    user: Uuid,
    course: Uuid,
) -> Result<Option<EnrollmentRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT user_id, course_id, enrolled_at, cycle_started_at, completed_at
         FROM lms.enrollments WHERE user_id = $1 AND course_id = $2",
    )
    .bind(user)
    .bind(course)
    .fetch_optional(pool)
    .await
}

/// Marks the course completed and starts a new cycle (a renewal needs every quiz passed again).
pub async fn complete_enrollment(
    conn: &mut PgConnection,
    user: Uuid,
    course: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE lms.enrollments SET completed_at = now(), cycle_started_at = now()
         WHERE user_id = $1 AND course_id = $2",
    )
    .bind(user)
    .bind(course)
    .execute(conn)
    .await?;
    Ok(())
}

/// The course a lesson belongs to.
pub async fn lesson_course(pool: &PgPool, lesson: Uuid) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT m.course_id FROM lms.lessons l JOIN lms.modules m ON m.id = l.module_id WHERE l.id = $1",
    )
    .bind(lesson)
    .fetch_optional(pool)
    .await
}

/// Marks a lesson read (once; repeating changes nothing).
pub async fn complete_lesson(pool: &PgPool, user: Uuid, lesson: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO lms.lesson_progress (user_id, lesson_id) VALUES ($1, $2)
         ON CONFLICT (user_id, lesson_id) DO NOTHING",
    )
    .bind(user)
    .bind(lesson)
    .execute(pool)
    .await?;
    Ok(())
}

/// Ids of the course's lessons the learner completed, and the number of lessons.
pub async fn lesson_progress(
    pool: &PgPool,
    user: Uuid,
    course: Uuid,
) -> Result<(Vec<Uuid>, i64), sqlx::Error> {
    let done: Vec<Uuid> = sqlx::query_scalar(
        "SELECT l.id FROM lms.lessons l JOIN lms.modules m ON m.id = l.module_id
         JOIN lms.lesson_progress p ON p.lesson_id = l.id AND p.user_id = $1
         WHERE m.course_id = $2 ORDER BY m.position, l.position",
    )
    .bind(user)
    .bind(course)
    .fetch_all(pool)
    .await?;
    let total: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM lms.lessons l JOIN lms.modules m ON m.id = l.module_id WHERE m.course_id = $1",
    )
    .bind(course)
    .fetch_one(pool)
    .await?;
    Ok((done, total))
}
