//! Quizzes and attempts: rules, questions, open and failed attempts, scoring, what is passed.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::QuestionRow;

/// A quiz's rules and where it belongs.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct QuizRules {
    /// Quiz id.
    pub id: Uuid,
    /// Its course.
    pub course_id: Uuid,
    /// The certification the course issues, if any.
    pub certification: Option<String>,
    /// Score needed to pass, percent.
    pub pass_mark_pct: i32,
    /// Failed attempts in a row before the lock.
    pub max_attempts: i32,
    /// Lock length, seconds.
    pub cooldown_s: i32,
    /// Questions drawn per attempt from the bank; all when none.
    pub draw_count: Option<i32>,
}

/// The rules of a quiz, or `None`.
pub async fn quiz_rules(
    conn: &mut PgConnection,
    quiz: Uuid,
) -> Result<Option<QuizRules>, sqlx::Error> {
    sqlx::query_as(
        "SELECT z.id, m.course_id, c.certification, z.pass_mark_pct, z.max_attempts, z.cooldown_s, z.draw_count
         FROM lms.quizzes z JOIN lms.modules m ON m.id = z.module_id JOIN lms.courses c ON c.id = m.course_id
         WHERE z.id = $1",
    )
    .bind(quiz)
    .fetch_optional(conn)
    .await
}

/// The questions of a quiz with their answers, in authored order.
pub async fn quiz_questions(
    conn: &mut PgConnection,
    quiz: Uuid,
) -> Result<Vec<QuestionRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, quiz_id, kind, prompt, points, options, correct, explanation
         FROM lms.questions WHERE quiz_id = $1 ORDER BY position",
    )
    .bind(quiz)
    .fetch_all(conn)
    .await
}

/// An attempt as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AttemptRow {
    /// Attempt id.
    pub id: Uuid,
    /// Its quiz.
    pub quiz_id: Uuid,
    /// Whose it is.
    pub user_id: Uuid,
    /// The shuffled order its questions were shown in.
    pub question_order: Vec<Uuid>,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Last moment it may be submitted.
    pub expires_at: DateTime<Utc>,
    /// When it was scored.
    pub submitted_at: Option<DateTime<Utc>>,
}

/// The learner's open attempt at a quiz (started, not scored, not expired), if any.
pub async fn open_attempt(
    conn: &mut PgConnection,
    user: Uuid,
    quiz: Uuid,
) -> Result<Option<AttemptRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, quiz_id, user_id, question_order, started_at, expires_at, submitted_at
         FROM lms.attempts
         WHERE user_id = $1 AND quiz_id = $2 AND submitted_at IS NULL AND expires_at > now()
         ORDER BY started_at DESC LIMIT 1",
    )
    .bind(user)
    .bind(quiz)
    .fetch_optional(conn)
    .await
}

/// Submission times of the learner's failed attempts at a quiz, oldest first.
pub async fn failed_attempt_times(
    conn: &mut PgConnection,
    user: Uuid,
    quiz: Uuid,
) -> Result<Vec<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT submitted_at FROM lms.attempts
         WHERE user_id = $1 AND quiz_id = $2 AND passed = false ORDER BY submitted_at",
    )
    .bind(user)
    .bind(quiz)
    .fetch_all(conn)
    .await
}

/// An attempt as its learner sees it in their history.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AttemptSummaryRow {
    /// Attempt id.
    pub id: Uuid,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Last moment it may be submitted.
    pub expires_at: DateTime<Utc>,
    /// When it was scored.
    pub submitted_at: Option<DateTime<Utc>>,
    /// Score, percent.
    pub score_pct: Option<f64>,
    /// Whether it passed.
    pub passed: Option<bool>,
}

/// The learner's attempts at a quiz, newest first (at most 100). Uses `attempts_user_quiz_idx`.
pub async fn attempts_of(
    pool: &PgPool,
    user: Uuid,
    quiz: Uuid,
) -> Result<Vec<AttemptSummaryRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, started_at, expires_at, submitted_at, score_pct, passed FROM lms.attempts
         WHERE user_id = $1 AND quiz_id = $2 ORDER BY started_at DESC, id DESC LIMIT 100",
    )
    .bind(user)
    .bind(quiz)
    .fetch_all(pool)
    .await
}

/// Starts an attempt.
pub async fn insert_attempt(
    conn: &mut PgConnection,
    id: Uuid,
    quiz: Uuid,
    user: Uuid,
    question_order: &[Uuid],
    ttl_s: i64,
) -> Result<AttemptRow, sqlx::Error> {
    sqlx::query_as(
        "INSERT INTO lms.attempts (id, quiz_id, user_id, question_order, expires_at)
         VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))
         RETURNING id, quiz_id, user_id, question_order, started_at, expires_at, submitted_at",
    )
    .bind(id)
    .bind(quiz)
    .bind(user)
    .bind(question_order)
    .bind(ttl_s as f64)
    .fetch_one(conn)
    .await
}

/// The attempt, locked until the transaction ends (so it is scored once).
pub async fn lock_attempt(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<AttemptRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, quiz_id, user_id, question_order, started_at, expires_at, submitted_at
         FROM lms.attempts WHERE id = $1 FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Records the score of an attempt that is not scored yet; `false` when it was scored already.
pub async fn score_attempt(
    conn: &mut PgConnection,
    id: Uuid,
    answers: &serde_json::Value,
    score_pct: f64,
    passed: bool,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE lms.attempts SET submitted_at = now(), answers = $2, score_pct = $3, passed = $4
         WHERE id = $1 AND submitted_at IS NULL",
    )
    .bind(id)
    .bind(answers)
    .bind(score_pct)
    .bind(passed)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// True when the learner passed every quiz of `course` with attempts scored after `since`.
pub async fn all_quizzes_passed(
    conn: &mut PgConnection,
    user: Uuid,
    course: Uuid,
    since: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT NOT EXISTS (
             SELECT 1 FROM lms.quizzes z JOIN lms.modules m ON m.id = z.module_id
             WHERE m.course_id = $2 AND NOT EXISTS (
                 SELECT 1 FROM lms.attempts a
                 WHERE a.quiz_id = z.id AND a.user_id = $1 AND a.passed AND a.submitted_at > $3))",
    )
    .bind(user)
    .bind(course)
    .bind(since)
    .fetch_one(conn)
    .await
}

/// Ids of the course's quizzes the learner passed after `since`, and the number of quizzes.
pub async fn quiz_progress(
    pool: &PgPool,
    user: Uuid,
    course: Uuid,
    since: DateTime<Utc>,
) -> Result<(Vec<Uuid>, i64), sqlx::Error> {
    let passed: Vec<Uuid> = sqlx::query_scalar(
        "SELECT z.id FROM lms.quizzes z JOIN lms.modules m ON m.id = z.module_id
         WHERE m.course_id = $2 AND EXISTS (
             SELECT 1 FROM lms.attempts a
             WHERE a.quiz_id = z.id AND a.user_id = $1 AND a.passed AND a.submitted_at > $3)
         ORDER BY m.position, z.position",
    )
    .bind(user)
    .bind(course)
    .bind(since)
    .fetch_all(pool)
    .await?;
    let total: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM lms.quizzes z JOIN lms.modules m ON m.id = z.module_id WHERE m.course_id = $1",
    )
    .bind(course)
    .fetch_one(pool)
    .await?;
    Ok((passed, total))
}
