//! Enrolment and reading: a learner enrols in a course, marks lessons read and sees how far they
//! are.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{LmsError, LmsResult};
use crate::store::{self};

use super::LmsService;

/// An enrollment in a course.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Enrollment {
    /// The learner.
    pub user_id: Uuid,
    /// The course.
    pub course_id: Uuid,
    /// When they enrolled (UTC).
    pub enrolled_at: DateTime<Utc>,
    /// When they last completed it: every quiz passed.
    pub completed_at: Option<DateTime<Utc>>,
}

impl From<store::EnrollmentRow> for Enrollment {
    fn from(row: store::EnrollmentRow) -> Self {
        Self {
            user_id: row.user_id,
            course_id: row.course_id,
            enrolled_at: row.enrolled_at,
            completed_at: row.completed_at,
        }
    }
}

/// How far a learner is through a course.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Progress {
    /// The course.
    pub course_id: Uuid,
    /// When they enrolled.
    pub enrolled_at: DateTime<Utc>,
    /// When they last completed it.
    pub completed_at: Option<DateTime<Utc>>,
    /// Lessons marked done.
    pub lessons_completed: Vec<Uuid>,
    /// Lessons in the course.
    pub lessons_total: i64,
    /// Quizzes passed towards the next certificate (a renewal starts from none).
    pub quizzes_passed: Vec<Uuid>,
    /// Quizzes in the course.
    pub quizzes_total: i64,
}

impl LmsService {
    /// Enrolls `user` (who goes by `name`) in a course; `true` when new, `false` when they were
    /// enrolled already (nothing changes).
    ///
    /// # Errors
    /// [`LmsError::NotFound`] for an unknown course.
    pub async fn enroll(
        &self,
        user: Uuid,
        name: &str,
        course: Uuid,
    ) -> LmsResult<(Enrollment, bool)> {
        if !store::course_exists(&self.pool, course).await? {
            return Err(LmsError::NotFound("course"));
        }
        if !name.trim().is_empty() {
            let mut conn = self.pool.acquire().await?;
            store::upsert_learner(&mut conn, user, name.trim()).await?;
        }
        let (row, created) = store::enroll(&self.pool, user, course).await?;
        Ok((row.into(), created))
    }

    /// Marks a lesson read and returns the progress in its course.
    ///
    /// # Errors
    /// [`LmsError::NotFound`] for an unknown lesson, [`LmsError::NotEnrolled`].
    pub async fn complete_lesson(&self, user: Uuid, lesson: Uuid) -> LmsResult<Progress> {
        let course = store::lesson_course(&self.pool, lesson)
            .await?
            .ok_or(LmsError::NotFound("lesson"))?;
        if store::enrollment(&self.pool, user, course).await?.is_none() {
            return Err(LmsError::NotEnrolled);
        }
        store::complete_lesson(&self.pool, user, lesson).await?;
        self.progress(user, course).await
    }

    /// The learner's progress in a course.
    ///
    /// # Errors
    /// [`LmsError::NotFound`] for an unknown course, [`LmsError::NotEnrolled`].
    pub async fn progress(&self, user: Uuid, course: Uuid) -> LmsResult<Progress> {
        let Some(enrollment) = store::enrollment(&self.pool, user, course).await? else {
            return Err(if store::course_exists(&self.pool, course).await? {
                LmsError::NotEnrolled
            } else {
                LmsError::NotFound("course")
            });
        };
        let (lessons_completed, lessons_total) =
            store::lesson_progress(&self.pool, user, course).await?;
        let (quizzes_passed, quizzes_total) =
            store::quiz_progress(&self.pool, user, course, enrollment.cycle_started_at).await?;
        Ok(Progress {
            course_id: course,
            enrolled_at: enrollment.enrolled_at,
            completed_at: enrollment.completed_at,
            lessons_completed,
            lessons_total,
            quizzes_passed,
            quizzes_total,
        })
    }
}
