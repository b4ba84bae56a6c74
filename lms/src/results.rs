//! Where learners stand: a learner's own enrollments (the volunteer app's "my courses", with the
//! version they are on and whether a newer one exists), and a trainer's view of everyone enrolled
//! in a course version, with their progress and quiz results.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{LmsError, LmsResult};
use crate::service::LmsService;

/// One of the caller's enrollments.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct MyEnrollment {
    /// The course version enrolled in.
    pub course_id: Uuid,
    /// Its series.
    pub series_id: Uuid,
    /// Its version.
    pub version: i32,
    /// Its title.
    pub title: String,
    /// The certification it issues.
    pub certification: Option<String>,
    /// When they enrolled (UTC).
    pub enrolled_at: DateTime<Utc>,
    /// When they last completed it (UTC).
    pub completed_at: Option<DateTime<Utc>>,
    /// Lessons marked read.
    pub lessons_completed: i64,
    /// Lessons in the course.
    pub lessons_total: i64,
    /// The newest version of the series (the same id when this is the newest).
    pub newest_course_id: Uuid,
    /// The newest version number.
    pub newest_version: i32,
}

/// A quiz result of one learner.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QuizResult {
    /// The quiz.
    pub quiz_id: Uuid,
    /// Its title.
    pub title: String,
    /// Attempts scored.
    pub attempts: i64,
    /// Best score, percent.
    pub best_score: Option<f64>,
    /// Whether any attempt passed.
    pub passed: bool,
}

/// One learner in a course version, as a trainer sees them.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LearnerResult {
    /// The learner's account.
    pub user_id: Uuid,
    /// Their name as last seen by the LMS.
    pub name: Option<String>,
    /// When they enrolled (UTC).
    pub enrolled_at: DateTime<Utc>,
    /// When they completed it (UTC).
    pub completed_at: Option<DateTime<Utc>>,
    /// Lessons marked read.
    pub lessons_completed: i64,
    /// Results per quiz, in course order.
    pub quizzes: Vec<QuizResult>,
}

#[derive(sqlx::FromRow)]
struct LearnerRow {
    user_id: Uuid,
    name: Option<String>,
    enrolled_at: DateTime<Utc>,
    completed_at: Option<DateTime<Utc>>,
    lessons_completed: i64,
    quizzes: Json<Vec<QuizJson>>,
}

#[derive(Deserialize)]
struct QuizJson {
    quiz_id: Uuid,
    title: String,
    attempts: i64,
    best_score: Option<f64>,
    passed: bool,
}

/// Most learners listed for one course version.
const MAX_LEARNERS: i64 = 1000;

impl LmsService {
    /// The caller's enrollments, newest first.
    ///
    /// # Errors
    /// Database errors.
    pub async fn my_enrollments(&self, user: Uuid) -> LmsResult<Vec<MyEnrollment>> {
        Ok(sqlx::query_as(
            "SELECT e.course_id, c.series_id, c.version, c.title, c.certification, e.enrolled_at, e.completed_at,
                    (SELECT count(*) FROM lms.lesson_progress p JOIN lms.lessons l ON l.id = p.lesson_id
                       JOIN lms.modules m ON m.id = l.module_id
                     WHERE p.user_id = e.user_id AND m.course_id = c.id) AS lessons_completed,
                    (SELECT count(*) FROM lms.lessons l JOIN lms.modules m ON m.id = l.module_id
                     WHERE m.course_id = c.id) AS lessons_total,
                    n.id AS newest_course_id, n.version AS newest_version
             FROM lms.enrollments e
             JOIN lms.courses c ON c.id = e.course_id
             JOIN LATERAL (SELECT id, version FROM lms.courses s WHERE s.series_id = c.series_id
                           ORDER BY version DESC LIMIT 1) n ON true
             WHERE e.user_id = $1 ORDER BY e.enrolled_at DESC",
        )
        .bind(user)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Everyone enrolled in a course version, with progress and quiz results (trainers).
    ///
    /// # Errors
    /// [`LmsError::NotFound`] (course).
    pub async fn learners(&self, course: Uuid) -> LmsResult<Vec<LearnerResult>> {
        if !crate::store::course_exists(&self.pool, course).await? {
            return Err(LmsError::NotFound("course"));
        }
        let rows: Vec<LearnerRow> = sqlx::query_as(
            "SELECT e.user_id, n.name, e.enrolled_at, e.completed_at,
                    (SELECT count(*) FROM lms.lesson_progress p JOIN lms.lessons l ON l.id = p.lesson_id
                       JOIN lms.modules m ON m.id = l.module_id
                     WHERE p.user_id = e.user_id AND m.course_id = e.course_id) AS lessons_completed,
                    COALESCE((SELECT jsonb_agg(jsonb_build_object(
                                 'quiz_id', z.id, 'title', z.title,
                                 'attempts', (SELECT count(*) FROM lms.attempts a WHERE a.quiz_id = z.id AND a.user_id = e.user_id AND a.submitted_at IS NOT NULL),
                                 'best_score', (SELECT max(a.score_pct) FROM lms.attempts a WHERE a.quiz_id = z.id AND a.user_id = e.user_id),
                                 'passed', EXISTS (SELECT 1 FROM lms.attempts a WHERE a.quiz_id = z.id AND a.user_id = e.user_id AND a.passed))
                               ORDER BY m.position, z.position)
                              FROM lms.quizzes z JOIN lms.modules m ON m.id = z.module_id
                              WHERE m.course_id = e.course_id), '[]'::jsonb) AS quizzes
             FROM lms.enrollments e LEFT JOIN lms.learners n ON n.user_id = e.user_id
             WHERE e.course_id = $1 ORDER BY e.enrolled_at LIMIT $2",
        )
        .bind(course)
        .bind(MAX_LEARNERS)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| LearnerResult {
                user_id: row.user_id,
                name: row.name,
                enrolled_at: row.enrolled_at,
                completed_at: row.completed_at,
                lessons_completed: row.lessons_completed,
                quizzes: row
                    .quizzes
                    .0
                    .into_iter()
                    .map(|quiz| QuizResult {
                        quiz_id: quiz.quiz_id,
                        title: quiz.title,
                        attempts: quiz.attempts,
                        best_score: quiz.best_score,
                        passed: quiz.passed,
                    })
                    .collect(),
            })
            .collect())
    }
}
