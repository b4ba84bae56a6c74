//! SQL of the LMS (schema `lms`). Every function is one statement unless it says otherwise; each is
//! exercised by the integration tests against PostgreSQL. Functions that take a `PgConnection` run
//! inside the caller's transaction.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::course::{
    Attachment, Course, CourseDefinition, DEFAULT_COOLDOWN_S, DEFAULT_MAX_ATTEMPTS, Lesson, Module,
    Question, QuestionOption, Quiz, option_id,
};
use crate::domain::QuestionKind;

/// A certification of the catalogue.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CertificationRow {
    /// Its code (`bls`).
    pub code: String,
    /// Display name.
    pub name: String,
    /// How long a certificate of it is valid, in days.
    pub validity_days: i32,
}

/// The catalogue, by code.
pub async fn certifications(pool: &PgPool) -> Result<Vec<CertificationRow>, sqlx::Error> {
    sqlx::query_as("SELECT code, name, validity_days FROM lms.certifications ORDER BY code")
        .fetch_all(pool)
        .await
}

/// One certification.
pub async fn certification(
    conn: &mut PgConnection,
    code: &str,
) -> Result<Option<CertificationRow>, sqlx::Error> {
    sqlx::query_as("SELECT code, name, validity_days FROM lms.certifications WHERE code = $1")
        .bind(code)
        .fetch_optional(conn)
        .await
}

/// Adds a certification. A taken code is a unique violation of `certifications_pkey`.
pub async fn insert_certification(
    pool: &PgPool,
    code: &str,
    name: &str,
    validity_days: i32,
) -> Result<CertificationRow, sqlx::Error> {
    sqlx::query_as(
        "INSERT INTO lms.certifications (code, name, validity_days) VALUES ($1, $2, $3)
         RETURNING code, name, validity_days",
    )
    .bind(code)
    .bind(name)
    .bind(validity_days)
    .fetch_one(pool)
    .await
}

/// Remembers the name `user` goes by (from their access token).
pub async fn upsert_learner(
    conn: &mut PgConnection,
    user: Uuid,
    name: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO lms.learners (user_id, name) VALUES ($1, $2)
         ON CONFLICT (user_id) DO UPDATE SET name = EXCLUDED.name, updated_at = now()
         WHERE lms.learners.name IS DISTINCT FROM EXCLUDED.name",
    )
    .bind(user)
    .bind(name)
    .execute(conn)
    .await?;
    Ok(())
}

/// The name `user` last used in the LMS.
pub async fn learner_name(
    conn: &mut PgConnection,
    user: Uuid,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT name FROM lms.learners WHERE user_id = $1")
        .bind(user)
        .fetch_optional(conn)
        .await
}

/// Inserts a whole (validated) course: the course, its modules, lessons, quizzes and questions.
/// Runs inside the caller's transaction. A taken `slug` is a unique violation of `courses_slug_key`.
///
/// `series` is `(series id, version)` for a new version of a course; `None` starts a series of its
/// own (version 1). A version taken meanwhile is a unique violation of
/// `courses_series_version_key`.
pub async fn insert_course(
    conn: &mut PgConnection,
    id: Uuid,
    slug: Option<&str>,
    series: Option<(Uuid, i32)>,
    definition: &CourseDefinition,
    created_by: Option<Uuid>,
) -> Result<(), sqlx::Error> {
    let (series_id, version) = series.unwrap_or((id, 1));
    sqlx::query(
        "INSERT INTO lms.courses (id, slug, series_id, version, title, title_en, description, language, certification, created_by)
         VALUES ($1, $2, $9, $10, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id)
    .bind(slug)
    .bind(definition.title.trim())
    .bind(definition.title_en.as_deref().map(str::trim))
    .bind(&definition.description)
    .bind(definition.language.as_deref().unwrap_or("id"))
    .bind(definition.certification.as_deref().map(str::trim))
    .bind(created_by)
    .bind(series_id)
    .bind(version)
    .execute(&mut *conn)
    .await?;
    for (m, module) in definition.modules.iter().enumerate() {
        let module_id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO lms.modules (id, course_id, position, title) VALUES ($1, $2, $3, $4)",
        )
        .bind(module_id)
        .bind(id)
        .bind(position(m))
        .bind(module.title.trim())
        .execute(&mut *conn)
        .await?;
        for (l, lesson) in module.lessons.iter().enumerate() {
            sqlx::query(
                "INSERT INTO lms.lessons (id, module_id, position, title, body_md, video_url, attachments)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(Uuid::now_v7())
            .bind(module_id)
            .bind(position(l))
            .bind(lesson.title.trim())
            .bind(&lesson.body_md)
            .bind(lesson.video_url.as_deref().map(str::trim))
            .bind(Json(&lesson.attachments))
            .execute(&mut *conn)
            .await?;
        }
        for (q, quiz) in module.quizzes.iter().enumerate() {
            let quiz_id = Uuid::now_v7();
            sqlx::query(
                "INSERT INTO lms.quizzes (id, module_id, position, title, pass_mark_pct, max_attempts, cooldown_s, draw_count)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(quiz_id)
            .bind(module_id)
            .bind(position(q))
            .bind(quiz.title.trim())
            .bind(quiz.pass_mark_pct)
            .bind(quiz.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS))
            .bind(quiz.cooldown_s.unwrap_or(DEFAULT_COOLDOWN_S))
            .bind(quiz.draw_count)
            .execute(&mut *conn)
            .await?;
            for (n, question) in quiz.questions.iter().enumerate() {
                let options: Vec<QuestionOption> = question
                    .options
                    .iter()
                    .enumerate()
                    .map(|(o, option)| QuestionOption {
                        id: option_id(o),
                        text: option.text.trim().to_owned(),
                    })
                    .collect();
                let correct: Vec<String> = question
                    .options
                    .iter()
                    .enumerate()
                    .filter(|(_, option)| option.correct)
                    .map(|(o, _)| option_id(o))
                    .collect();
                sqlx::query(
                    "INSERT INTO lms.questions (id, quiz_id, position, kind, prompt, options, correct, points, explanation)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(Uuid::now_v7())
                .bind(quiz_id)
                .bind(position(n))
                .bind(question.kind.as_str())
                .bind(question.prompt.trim())
                .bind(Json(&options))
                .bind(&correct)
                .bind(question.points.unwrap_or(1))
                .bind(
                    question
                        .explanation
                        .as_deref()
                        .map(str::trim)
                        .filter(|text| !text.is_empty()),
                )
                .execute(&mut *conn)
                .await?;
            }
        }
    }
    Ok(())
}

fn position(index: usize) -> i32 {
    i32::try_from(index).unwrap_or(i32::MAX)
}

/// The id of the course stored under `slug` (built-in content).
pub async fn course_id_by_slug(pool: &PgPool, slug: &str) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM lms.courses WHERE slug = $1")
        .bind(slug)
        .fetch_optional(pool)
        .await
}

/// Ids of the newest version of the newest `limit` course series, oldest first.
pub async fn course_ids(pool: &PgPool, limit: i64) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM (
             SELECT id, created_at FROM (
                 SELECT DISTINCT ON (series_id) id, created_at FROM lms.courses
                 ORDER BY series_id, version DESC
             ) newest ORDER BY created_at DESC, id DESC LIMIT $1
         ) c ORDER BY created_at, id",
    )
    .bind(limit)
    .fetch_all(pool)
    .await
}

#[derive(sqlx::FromRow)]
struct CourseRow {
    id: Uuid,
    series_id: Uuid,
    version: i32,
    title: String,
    title_en: Option<String>,
    description: String,
    language: String,
    certification: Option<String>,
    created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct ModuleRow {
    id: Uuid,
    title: String,
}

#[derive(sqlx::FromRow)]
struct LessonRow {
    id: Uuid,
    module_id: Uuid,
    title: String,
    body_md: String,
    video_url: Option<String>,
    attachments: Json<Vec<Attachment>>,
}

#[derive(sqlx::FromRow)]
struct QuizRow {
    id: Uuid,
    module_id: Uuid,
    title: String,
    pass_mark_pct: i32,
    max_attempts: i32,
    cooldown_s: i32,
    draw_count: Option<i32>,
}

/// A question as stored, with its correct options (for scoring only).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct QuestionRow {
    /// Question id.
    pub id: Uuid,
    /// Its quiz.
    pub quiz_id: Uuid,
    /// `single` or `multiple`.
    pub kind: String,
    /// The question.
    pub prompt: String,
    /// Weight.
    pub points: i32,
    /// Options in authored order.
    pub options: Json<Vec<QuestionOption>>,
    /// Ids of the correct options.
    pub correct: Vec<String>,
    /// Shown with the score after an attempt.
    pub explanation: Option<String>,
}

impl QuestionRow {
    /// The learner's view: no correct options.
    pub fn public(&self) -> Question {
        Question {
            id: self.id,
            kind: QuestionKind::parse(&self.kind).unwrap_or(QuestionKind::Single),
            prompt: self.prompt.clone(),
            points: self.points,
            options: self.options.0.clone(),
        }
    }
}

/// A whole course as learners see it, or `None`. Five reads (course, modules, lessons, quizzes,
/// questions), each one indexed by the course.
pub async fn course(pool: &PgPool, id: Uuid) -> Result<Option<Course>, sqlx::Error> {
    let Some(row): Option<CourseRow> = sqlx::query_as(
        "SELECT id, series_id, version, title, title_en, description, language, certification, created_at
         FROM lms.courses WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?
    else {
        return Ok(None);
    };
    let modules: Vec<ModuleRow> =
        sqlx::query_as("SELECT id, title FROM lms.modules WHERE course_id = $1 ORDER BY position")
            .bind(id)
            .fetch_all(pool)
            .await?;
    let lessons: Vec<LessonRow> = sqlx::query_as(
        "SELECT l.id, l.module_id, l.title, l.body_md, l.video_url, l.attachments
         FROM lms.lessons l JOIN lms.modules m ON m.id = l.module_id
         WHERE m.course_id = $1 ORDER BY l.position",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    let quizzes: Vec<QuizRow> = sqlx::query_as(
        "SELECT z.id, z.module_id, z.title, z.pass_mark_pct, z.max_attempts, z.cooldown_s, z.draw_count
         FROM lms.quizzes z JOIN lms.modules m ON m.id = z.module_id
         WHERE m.course_id = $1 ORDER BY z.position",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    let questions: Vec<QuestionRow> = sqlx::query_as(
        "SELECT q.id, q.quiz_id, q.kind, q.prompt, q.points, q.options, q.correct, q.explanation
         FROM lms.questions q JOIN lms.quizzes z ON z.id = q.quiz_id JOIN lms.modules m ON m.id = z.module_id
         WHERE m.course_id = $1 ORDER BY q.position",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    let modules = modules
        .into_iter()
        .map(|module| Module {
            id: module.id,
            title: module.title,
            lessons: lessons
                .iter()
                .filter(|lesson| lesson.module_id == module.id)
                .map(|lesson| Lesson {
                    id: lesson.id,
                    title: lesson.title.clone(),
                    body_md: lesson.body_md.clone(),
                    body_html: kreki_cms::markdown::to_safe_html(&lesson.body_md),
                    video_url: lesson.video_url.clone(),
                    attachments: lesson.attachments.0.clone(),
                })
                .collect(),
            quizzes: quizzes
                .iter()
                .filter(|quiz| quiz.module_id == module.id)
                .map(|quiz| Quiz {
                    id: quiz.id,
                    title: quiz.title.clone(),
                    pass_mark_pct: quiz.pass_mark_pct,
                    max_attempts: quiz.max_attempts,
                    cooldown_s: quiz.cooldown_s,
                    draw_count: quiz.draw_count,
                    questions: questions
                        .iter()
                        .filter(|question| question.quiz_id == quiz.id)
                        .map(QuestionRow::public)
                        .collect(),
                })
                .collect(),
        })
        .collect();
    Ok(Some(Course {
        id: row.id,
        series_id: row.series_id,
        version: row.version,
        title: row.title,
        title_en: row.title_en,
        description: row.description,
        language: row.language,
        certification: row.certification,
        created_at: row.created_at,
        modules,
    }))
}

/// True when the course exists.
pub async fn course_exists(pool: &PgPool, id: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM lms.courses WHERE id = $1)")
        .bind(id)
        .fetch_one(pool)
        .await
}

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

/// A certificate as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CertificateRow {
    /// Certificate id.
    pub id: Uuid,
    /// Holder.
    pub user_id: Uuid,
    /// Certification code.
    pub certification: String,
    /// Holder's name at issue.
    pub holder_name: String,
    /// Start of validity.
    pub issued_at: DateTime<Utc>,
    /// End of validity.
    pub expires_at: DateTime<Utc>,
    /// Public verification code.
    pub code: String,
    /// `course` or `external`.
    pub source: String,
    /// The course that issued it.
    pub course_id: Option<Uuid>,
    /// Trainer who recorded it (external).
    pub recorded_by: Option<Uuid>,
    /// Evidence seen (external).
    pub evidence: Option<String>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Why.
    pub revoked_reason: Option<String>,
}

macro_rules! certificate_columns {
    () => {
        "id, user_id, certification, holder_name, issued_at, expires_at, code, source, course_id,
         recorded_by, evidence, revoked_at, revoked_reason"
    };
}

/// What a new certificate is made of.
#[derive(Debug, Clone)]
pub struct NewCertificate<'a> {
    /// Holder.
    pub user_id: Uuid,
    /// Certification code.
    pub certification: &'a str,
    /// Holder's name.
    pub holder_name: &'a str,
    /// Start of validity; `None` = now (database time).
    pub issued_at: Option<DateTime<Utc>>,
    /// End of validity; `None` = start + the certification's validity days.
    pub expires_at: Option<DateTime<Utc>>,
    /// `course` or `external`.
    pub source: &'a str,
    /// Issuing course.
    pub course_id: Option<Uuid>,
    /// Recording trainer.
    pub recorded_by: Option<Uuid>,
    /// Evidence.
    pub evidence: Option<&'a str>,
}

/// Inserts a certificate with a fresh verification code; the default expiry comes from the
/// certification's validity days.
pub async fn insert_certificate(
    conn: &mut PgConnection,
    new: &NewCertificate<'_>,
) -> Result<CertificateRow, sqlx::Error> {
    sqlx::query_as(concat!(
        "INSERT INTO lms.certificates (id, user_id, certification, holder_name, issued_at, expires_at,
             code, source, course_id, recorded_by, evidence)
         SELECT $1, $2, k.code, $4, coalesce($5, now()),
             coalesce($6, coalesce($5, now()) + make_interval(days => k.validity_days)),
             $7, $8, $9, $10, $11
         FROM lms.certifications k WHERE k.code = $3
         RETURNING ",
        certificate_columns!()
    ))
    .bind(Uuid::now_v7())
    .bind(new.user_id)
    .bind(new.certification)
    .bind(new.holder_name)
    .bind(new.issued_at)
    .bind(new.expires_at)
    .bind(crate::domain::new_verification_code())
    .bind(new.source)
    .bind(new.course_id)
    .bind(new.recorded_by)
    .bind(new.evidence)
    .fetch_one(conn)
    .await
}

/// A user's certificates, newest first (at most 200).
pub async fn certificates_of(
    pool: &PgPool,
    user: Uuid,
) -> Result<Vec<CertificateRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        certificate_columns!(),
        " FROM lms.certificates WHERE user_id = $1 ORDER BY issued_at DESC, id DESC LIMIT 200"
    ))
    .bind(user)
    .fetch_all(pool)
    .await
}

/// One certificate.
pub async fn certificate(pool: &PgPool, id: Uuid) -> Result<Option<CertificateRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        certificate_columns!(),
        " FROM lms.certificates WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// The certificate with this verification code.
pub async fn certificate_by_code(
    pool: &PgPool,
    code: &str,
) -> Result<Option<CertificateRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        certificate_columns!(),
        " FROM lms.certificates WHERE code = $1"
    ))
    .bind(code)
    .fetch_optional(pool)
    .await
}

/// Revokes a certificate that is not revoked yet; `None` when it is unknown or revoked already.
pub async fn revoke(
    conn: &mut PgConnection,
    id: Uuid,
    by: Uuid,
    reason: &str,
) -> Result<Option<CertificateRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "UPDATE lms.certificates SET revoked_at = now(), revoked_by = $2, revoked_reason = $3
         WHERE id = $1 AND revoked_at IS NULL RETURNING ",
        certificate_columns!()
    ))
    .bind(id)
    .bind(by)
    .bind(reason)
    .fetch_optional(conn)
    .await
}

/// The PostgreSQL channel on which every change of a user's valid certifications is announced,
/// with the user id as payload. Sent inside the changing transaction, so it goes out on commit and
/// never for a change that was rolled back.
pub const CHANGES_CHANNEL: &str = "kreki_lms_certifications";

/// Announces on [`CHANGES_CHANNEL`] that these users' valid certifications may have changed.
pub async fn announce(conn: &mut PgConnection, users: &[Uuid]) -> Result<(), sqlx::Error> {
    sqlx::query(
        "SELECT pg_notify('kreki_lms_certifications', u::text) FROM unnest($1::uuid[]) AS u",
    )
    .bind(users)
    .execute(conn)
    .await?;
    Ok(())
}

/// Codes of the certifications `user` holds a valid certificate of now (issued, not expired, not
/// revoked), sorted. Uses `certificates_user_idx`; a person holds a handful of certificates.
pub async fn valid_codes(pool: &PgPool, user: Uuid) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT DISTINCT certification FROM lms.certificates
         WHERE user_id = $1 AND revoked_at IS NULL AND issued_at <= now() AND expires_at > now()
         ORDER BY certification",
    )
    .bind(user)
    .fetch_all(pool)
    .await
}

/// Every (user, code) pair with a valid certificate now.
pub async fn all_valid_codes(pool: &PgPool) -> Result<Vec<(Uuid, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT DISTINCT user_id, certification FROM lms.certificates
         WHERE revoked_at IS NULL AND issued_at <= now() AND expires_at > now()
         ORDER BY user_id, certification",
    )
    .fetch_all(pool)
    .await
}

/// Claims up to `limit` certificates whose expiry is due and not acted on yet, marks them processed
/// and returns their holders. One statement; `SKIP LOCKED` lets several instances sweep at once
/// without acting twice. Uses `certificates_expiry_due_idx`.
pub async fn claim_expired(
    conn: &mut PgConnection,
    limit: i64,
) -> Result<Vec<(Uuid, Uuid)>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE lms.certificates SET expiry_processed_at = now()
         WHERE id IN (
             SELECT id FROM lms.certificates
             WHERE expiry_processed_at IS NULL AND revoked_at IS NULL AND expires_at <= now()
             ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED)
         RETURNING id, user_id",
    )
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// The earliest expiry not acted on yet, if any.
pub async fn next_expiry(pool: &PgPool) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT min(expires_at) FROM lms.certificates WHERE expiry_processed_at IS NULL AND revoked_at IS NULL",
    )
    .fetch_one(pool)
    .await
}

/// A stored notification.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NotificationRow {
    /// Notification id.
    pub id: Uuid,
    /// Recipient.
    pub user_id: Uuid,
    /// The certificate it is about.
    pub certificate_id: Option<Uuid>,
    /// `expiry_30d`, `expiry_7d` or `expiry_1d`.
    pub kind: String,
    /// The message (`type`, `text`, and details).
    pub message: serde_json::Value,
    /// When it was made.
    pub created_at: DateTime<Utc>,
}

/// Stores the expiry reminders that are due and not stored yet, and returns those it stored (so
/// each is delivered once, even with several sweepers). A certificate within 30, 7 or 1 days of
/// expiry gets the reminder of the tightest threshold it is in; none when the holder already holds
/// another certificate of the same certification valid beyond the 30 days.
pub async fn insert_due_reminders(pool: &PgPool) -> Result<Vec<NotificationRow>, sqlx::Error> {
    sqlx::query_as(
        "INSERT INTO lms.notifications (id, user_id, certificate_id, kind, message)
         SELECT gen_random_uuid(), d.user_id, d.id, 'expiry_' || d.days || 'd',
                jsonb_build_object(
                    'type', 'certificate.expiring',
                    'certificate_id', d.id,
                    'certification', d.certification,
                    'expires_at', to_char(d.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                    'days_before', d.days,
                    'text', format('Sertifikat %s Anda berakhir pada %s WIB. Ikuti kursus penyegaran agar tetap menerima panggilan darurat. (Your %s certificate expires on %s UTC.)',
                                   d.name, to_char(d.expires_at AT TIME ZONE 'Asia/Jakarta', 'DD-MM-YYYY HH24:MI'),
                                   d.certification, to_char(d.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI')))
         FROM (
             SELECT c.id, c.user_id, c.certification, c.expires_at, k.name,
                    CASE WHEN c.expires_at <= now() + interval '1 day' THEN 1
                         WHEN c.expires_at <= now() + interval '7 days' THEN 7
                         ELSE 30 END AS days
             FROM lms.certificates c JOIN lms.certifications k ON k.code = c.certification
             WHERE c.revoked_at IS NULL AND c.expiry_processed_at IS NULL AND c.issued_at <= now()
               AND c.expires_at > now() AND c.expires_at <= now() + interval '30 days'
               AND NOT EXISTS (
                   SELECT 1 FROM lms.certificates r
                   WHERE r.user_id = c.user_id AND r.certification = c.certification
                     AND r.revoked_at IS NULL AND r.issued_at <= now()
                     AND r.expires_at > now() + interval '30 days')
         ) d
         ON CONFLICT ON CONSTRAINT notifications_once DO NOTHING
         RETURNING id, user_id, certificate_id, kind, message, created_at",
    )
    .fetch_all(pool)
    .await
}

/// A user's notifications, newest first (at most 100).
pub async fn notifications_of(
    pool: &PgPool,
    user: Uuid,
) -> Result<Vec<NotificationRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, user_id, certificate_id, kind, message, created_at FROM lms.notifications
         WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT 100",
    )
    .bind(user)
    .fetch_all(pool)
    .await
}
