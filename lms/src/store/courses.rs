//! Courses: a whole course inserted in one transaction, and read back whole (answers stay here).

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::course::{
    Attachment, Course, CourseDefinition, DEFAULT_COOLDOWN_S, DEFAULT_MAX_ATTEMPTS, Lesson, Module,
    Question, QuestionOption, Quiz, option_id,
};
use crate::domain::QuestionKind;

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
