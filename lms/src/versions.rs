//! Publishing a course again without breaking anyone mid-course: a change is a new version (a new
//! course row in the same series, `version` + 1). Enrollments, progress and attempts belong to
//! the version they were made in, so a learner finishes the course as it was when they began;
//! the catalogue offers the newest version to everyone else. Trainers load a version's full
//! definition (with the correct options and explanations) to edit it into the next one.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::course::{
    Course, CourseDefinition, LessonDefinition, ModuleDefinition, OptionDefinition,
    QuestionDefinition, QuizDefinition,
};
use crate::error::{LmsError, LmsResult};
use crate::service::LmsService;

/// A version of a course in its series' history.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct CourseVersion {
    /// The course id of this version.
    pub id: Uuid,
    /// Version, from 1.
    pub version: i32,
    /// Its title.
    pub title: String,
    /// When it was published (UTC).
    pub created_at: DateTime<Utc>,
    /// Learners enrolled in this version.
    pub enrolled: i64,
}

#[derive(sqlx::FromRow)]
struct AnswerKey {
    id: Uuid,
    correct: Vec<String>,
    explanation: Option<String>,
}

impl LmsService {
    /// Publishes `definition` as the next version of the series `course` belongs to (trainers).
    /// Whoever is enrolled in an earlier version keeps it.
    ///
    /// # Errors
    /// [`LmsError::NotFound`] (course), [`LmsError::Validation`], [`LmsError::VersionTaken`] when
    /// another version was published at the same moment.
    pub async fn publish_version(
        &self,
        course: Uuid,
        definition: &CourseDefinition,
        by: Uuid,
    ) -> LmsResult<Course> {
        let (series_id, newest): (Uuid, i32) = sqlx::query_as(
            "SELECT c.series_id, (SELECT max(version) FROM lms.courses s WHERE s.series_id = c.series_id)
             FROM lms.courses c WHERE c.id = $1",
        )
        .bind(course)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(LmsError::NotFound("course"))?;
        let id = self
            .insert_course(definition, None, Some((series_id, newest + 1)), Some(by))
            .await?;
        tracing::info!(%series_id, version = newest + 1, %by, "course version published");
        self.course(id).await
    }

    /// Every version of the series `course` belongs to, newest first.
    ///
    /// # Errors
    /// [`LmsError::NotFound`] (course).
    pub async fn versions(&self, course: Uuid) -> LmsResult<Vec<CourseVersion>> {
        let versions: Vec<CourseVersion> = sqlx::query_as(
            "SELECT s.id, s.version, s.title, s.created_at,
                    (SELECT count(*) FROM lms.enrollments e WHERE e.course_id = s.id) AS enrolled
             FROM lms.courses c JOIN lms.courses s ON s.series_id = c.series_id
             WHERE c.id = $1 ORDER BY s.version DESC",
        )
        .bind(course)
        .fetch_all(&self.pool)
        .await?;
        if versions.is_empty() {
            return Err(LmsError::NotFound("course"));
        }
        Ok(versions)
    }

    /// The full definition of a course version, correct options and explanations included
    /// (trainers), in the shape `POST /v1/lms/courses` takes.
    ///
    /// # Errors
    /// [`LmsError::NotFound`] (course).
    pub async fn definition(&self, course: Uuid) -> LmsResult<CourseDefinition> {
        let course = self.course(course).await?;
        let quiz_ids: Vec<Uuid> = course
            .modules
            .iter()
            .flat_map(|module| module.quizzes.iter().map(|quiz| quiz.id))
            .collect();
        let keys: Vec<AnswerKey> = sqlx::query_as(
            "SELECT id, correct, explanation FROM lms.questions WHERE quiz_id = ANY($1)",
        )
        .bind(&quiz_ids)
        .fetch_all(&self.pool)
        .await?;
        let key_of = |id: Uuid| keys.iter().find(|key| key.id == id);
        Ok(CourseDefinition {
            title: course.title,
            title_en: course.title_en,
            description: course.description,
            language: Some(course.language),
            certification: course.certification,
            modules: course
                .modules
                .into_iter()
                .map(|module| ModuleDefinition {
                    title: module.title,
                    lessons: module
                        .lessons
                        .into_iter()
                        .map(|lesson| LessonDefinition {
                            title: lesson.title,
                            body_md: lesson.body_md,
                            video_url: lesson.video_url,
                            attachments: lesson.attachments,
                        })
                        .collect(),
                    quizzes: module
                        .quizzes
                        .into_iter()
                        .map(|quiz| QuizDefinition {
                            title: quiz.title,
                            pass_mark_pct: quiz.pass_mark_pct,
                            max_attempts: Some(quiz.max_attempts),
                            cooldown_s: Some(quiz.cooldown_s),
                            draw_count: quiz.draw_count,
                            questions: quiz
                                .questions
                                .into_iter()
                                .map(|question| {
                                    let key = key_of(question.id);
                                    QuestionDefinition {
                                        kind: question.kind,
                                        prompt: question.prompt,
                                        points: Some(question.points),
                                        explanation: key.and_then(|k| k.explanation.clone()),
                                        options: question
                                            .options
                                            .into_iter()
                                            .map(|option| OptionDefinition {
                                                correct: key.is_some_and(|k| {
                                                    k.correct.contains(&option.id)
                                                }),
                                                text: option.text,
                                            })
                                            .collect(),
                                    }
                                })
                                .collect(),
                        })
                        .collect(),
                })
                .collect(),
        })
    }
}
