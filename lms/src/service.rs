//! [`LmsService`]: every LMS operation, over the store, with the rules of [`crate::domain`]. The
//! HTTP handlers, the expiry worker, the demo loader and the binary's eligibility adapter all call
//! this; none of them touches SQL.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use kreki_platform::FieldError;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tokio::sync::Notify;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::config::LmsConfig;
use crate::course::{Course, CourseDefinition, Question};
use crate::domain::{
    CertificateStatus, CertificationCode, QuestionKind, attempt_round, certificate_status,
    locked_until, normalise_code, passes, question_credit, round_pct,
};
use crate::error::{LmsError, LmsResult};
use crate::ports::{AccountNames, CertificationListener, Notifier};
use crate::store::{self, CertificateRow, NewCertificate};

/// Most courses `GET /v1/lms/courses` lists.
const MAX_LISTED_COURSES: i64 = 100;
/// Certificates the sweep claims per statement.
const SWEEP_BATCH: i64 = 500;

/// A certification of the catalogue.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Certification {
    /// Stable code dispatch's requirements name (`bls`).
    #[schema(example = "bls")]
    pub code: String,
    /// Display name.
    pub name: String,
    /// How long a certificate of it is valid, in days.
    pub validity_days: i32,
}

impl From<store::CertificationRow> for Certification {
    fn from(row: store::CertificationRow) -> Self {
        Self {
            code: row.code,
            name: row.name,
            validity_days: row.validity_days,
        }
    }
}

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

/// A started attempt: its id and the quiz's questions in this attempt's own shuffled order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StartedAttempt {
    /// Send it back with the answers.
    pub attempt_id: Uuid,
    /// The quiz.
    pub quiz_id: Uuid,
    /// When it started (UTC).
    pub started_at: DateTime<Utc>,
    /// Answers must arrive before this (UTC).
    pub expires_at: DateTime<Utc>,
    /// Questions, shuffled for this attempt, without answers.
    pub questions: Vec<Question>,
}

/// A past or open attempt.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AttemptSummary {
    /// Attempt id.
    pub attempt_id: Uuid,
    /// When it started (UTC).
    pub started_at: DateTime<Utc>,
    /// Answers had to arrive before this (UTC).
    pub expires_at: DateTime<Utc>,
    /// When it was scored; none while open (or never submitted).
    pub submitted_at: Option<DateTime<Utc>>,
    /// Score in percent, once scored.
    pub score: Option<f64>,
    /// Whether it passed, once scored.
    pub passed: Option<bool>,
}

/// A learner's standing in one quiz: what the app needs to show "2 attempts left" or "try again
/// at 14:00".
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QuizStanding {
    /// The quiz.
    pub quiz_id: Uuid,
    /// Score needed to pass, percent.
    pub pass_mark_pct: i32,
    /// Failed attempts left before the quiz locks.
    pub attempts_left: i32,
    /// While locked: when attempts open again (UTC).
    pub locked_until: Option<DateTime<Utc>>,
    /// Attempts, newest first (at most 100).
    pub attempts: Vec<AttemptSummary>,
}

/// One answer: the options chosen for a question.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Answer {
    /// The question.
    pub question_id: Uuid,
    /// Ids of the chosen options (`a`, `c`); exactly one for a single-choice question.
    #[serde(default)]
    pub selected: Vec<String>,
}

/// Points earned on one question.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QuestionScore {
    /// The question.
    pub question_id: Uuid,
    /// Points earned (fractional with partial credit).
    pub earned: f64,
    /// Points possible.
    pub points: i32,
    /// True when every point was earned.
    pub correct: bool,
    /// The trainer's explanation, shown now that the attempt is scored.
    pub explanation: Option<String>,
}

/// The outcome of a scored attempt.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AttemptResult {
    /// The attempt.
    pub attempt_id: Uuid,
    /// Score in percent of the quiz's points, 0 to 100, one decimal.
    #[schema(example = 87.5)]
    pub score: f64,
    /// Whether `score` reaches the pass mark.
    pub passed: bool,
    /// The pass mark, percent.
    pub pass_mark_pct: i32,
    /// Points per question (correct options are not revealed, so the next attempt stays a test).
    pub questions: Vec<QuestionScore>,
    /// The certificate this pass completed, if it did.
    pub certificate: Option<Certificate>,
}

/// A certificate.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Certificate {
    /// Certificate id.
    pub id: Uuid,
    /// Holder.
    pub user_id: Uuid,
    /// Certification code.
    #[schema(example = "bls")]
    pub certification: String,
    /// Holder's name as printed.
    pub holder_name: String,
    /// Start of validity (UTC).
    pub issued_at: DateTime<Utc>,
    /// End of validity (UTC).
    pub expires_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Why it was revoked.
    pub revoked_reason: Option<String>,
    /// Public verification code.
    #[schema(example = "7K3M9Q-X2P8RT-4VW6ZA-H1N5CD")]
    pub code: String,
    /// Where it stands now.
    pub status: CertificateStatus,
    /// `course` (earned here) or `external` (recorded by a trainer).
    pub source: String,
    /// The course that issued it.
    pub course_id: Option<Uuid>,
    /// Evidence the recording trainer saw.
    pub evidence: Option<String>,
}

impl From<CertificateRow> for Certificate {
    fn from(row: CertificateRow) -> Self {
        let status = certificate_status(row.issued_at, row.expires_at, row.revoked_at, Utc::now());
        Self {
            id: row.id,
            user_id: row.user_id,
            certification: row.certification,
            holder_name: row.holder_name,
            issued_at: row.issued_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
            revoked_reason: row.revoked_reason,
            code: row.code,
            status,
            source: row.source,
            course_id: row.course_id,
            evidence: row.evidence,
        }
    }
}

/// What the public verify endpoint says about a code: only what is printed on the certificate.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Verification {
    /// True only when the certificate is valid now.
    pub valid: bool,
    /// `valid`, `expired`, `revoked` or `pending`.
    pub status: CertificateStatus,
    /// Certification code.
    pub certification: String,
    /// Certification name.
    pub certification_name: String,
    /// Holder's name.
    pub holder_name: String,
    /// Start of validity (UTC).
    pub issued_at: DateTime<Utc>,
    /// End of validity (UTC).
    pub expires_at: DateTime<Utc>,
}

/// A certificate earned elsewhere, as a trainer records it.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct ExternalCertificate {
    /// The holder's KREKI account.
    pub user_id: Uuid,
    /// Certification code.
    #[schema(example = "bls")]
    pub certification: String,
    /// When it was issued (UTC); not in the future.
    pub issued_at: DateTime<Utc>,
    /// When it ends (UTC); default: `issued_at` + the certification's validity days.
    pub expires_at: Option<DateTime<Utc>>,
    /// What the trainer saw (card number, issuer, a link to a scan), up to 2000 characters.
    #[schema(example = "Kartu BLS PMI No. 12345, berlaku s.d. 2027-03")]
    pub evidence: Option<String>,
    /// The name to print; default: the holder's name in KREKI ID.
    pub holder_name: Option<String>,
}

/// A stored notification.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Notification {
    /// Notification id.
    pub id: Uuid,
    /// `expiry_30d`, `expiry_7d` or `expiry_1d`.
    pub kind: String,
    /// The certificate it is about.
    pub certificate_id: Option<Uuid>,
    /// The message as delivered live: `type`, `text` (Bahasa Indonesia, then English) and details.
    #[schema(value_type = Object)]
    pub message: serde_json::Value,
    /// When it was made (UTC).
    pub created_at: DateTime<Utc>,
}

impl From<store::NotificationRow> for Notification {
    fn from(row: store::NotificationRow) -> Self {
        Self {
            id: row.id,
            kind: row.kind,
            certificate_id: row.certificate_id,
            message: row.message,
            created_at: row.created_at,
        }
    }
}

/// What one sweep did.
#[derive(Debug, Clone, Default)]
pub struct Sweep {
    /// Certificates found expired (and their holders' listeners called).
    pub expired: usize,
    /// Reminders stored (and delivered live).
    pub reminders: usize,
    /// The next expiry not acted on yet.
    pub next_expiry: Option<DateTime<Utc>>,
}

/// The LMS.
pub struct LmsService {
    pub(crate) pool: PgPool,
    config: LmsConfig,
    listener: Arc<dyn CertificationListener>,
    notifier: Arc<dyn Notifier>,
    names: Arc<dyn AccountNames>,
    sweep_wake: Notify,
}

impl LmsService {
    /// A service over `pool`. See [`crate::build`].
    pub fn new(pool: PgPool, config: LmsConfig, ports: crate::Ports) -> Self {
        Self {
            pool,
            config,
            listener: ports.listener,
            notifier: ports.notifier,
            names: ports.names,
            sweep_wake: Notify::new(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &LmsConfig {
        &self.config
    }

    /// Woken when a certificate is issued, so the sweep re-plans its next wake-up (a certificate
    /// may expire sooner than anything it knew of).
    pub(crate) fn sweep_wake(&self) -> &Notify {
        &self.sweep_wake
    }

    fn changed(&self, user: Uuid) {
        self.listener.changed(user);
        self.sweep_wake.notify_one();
    }

    /// The certification catalogue.
    ///
    /// # Errors
    /// Database errors.
    pub async fn certifications(&self) -> LmsResult<Vec<Certification>> {
        Ok(store::certifications(&self.pool)
            .await?
            .into_iter()
            .map(Certification::from)
            .collect())
    }

    /// Adds a certification (admins).
    ///
    /// # Errors
    /// [`LmsError::Validation`] for a bad name or validity, [`LmsError::CertificationExists`].
    pub async fn add_certification(
        &self,
        code: &CertificationCode,
        name: &str,
        validity_days: i32,
    ) -> LmsResult<Certification> {
        let mut errors = Vec::new();
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            errors.push(FieldError::new("name", "must be 1 to 200 characters"));
        }
        if !(1..=3650).contains(&validity_days) {
            errors.push(FieldError::new("validity_days", "must be 1 to 3650 days"));
        }
        if !errors.is_empty() {
            return Err(LmsError::Validation(errors));
        }
        match store::insert_certification(&self.pool, code.as_str(), name, validity_days).await {
            Ok(row) => Ok(row.into()),
            Err(error) if kreki_platform::db::unique_violation(&error).is_some() => {
                Err(LmsError::CertificationExists)
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Creates a course from a definition (trainers).
    ///
    /// # Errors
    /// [`LmsError::Validation`] naming every broken rule (an unknown certification included).
    pub async fn create_course(
        &self,
        definition: &CourseDefinition,
        created_by: Option<Uuid>,
    ) -> LmsResult<Course> {
        let id = self
            .insert_course(definition, None, None, created_by)
            .await?;
        self.course(id).await
    }

    /// Inserts a course, with a `slug` for built-in content.
    pub(crate) async fn insert_course(
        &self,
        definition: &CourseDefinition,
        slug: Option<&str>,
        series: Option<(Uuid, i32)>,
        created_by: Option<Uuid>,
    ) -> LmsResult<Uuid> {
        let errors = definition.validate();
        if !errors.is_empty() {
            return Err(LmsError::Validation(errors));
        }
        let mut tx = self.pool.begin().await?;
        if let Some(code) = &definition.certification
            && store::certification(&mut tx, code.trim()).await?.is_none()
        {
            return Err(LmsError::field(
                "certification",
                "is not in the catalogue (GET /v1/lms/certifications)",
            ));
        }
        let id = Uuid::now_v7();
        match store::insert_course(&mut tx, id, slug, series, definition, created_by).await {
            Err(error)
                if kreki_platform::db::unique_violation(&error)
                    == Some("courses_series_version_key") =>
            {
                return Err(LmsError::VersionTaken);
            }
            other => other?,
        }
        tx.commit().await?;
        Ok(id)
    }

    /// Every course (the newest 100), answers hidden.
    ///
    /// # Errors
    /// Database errors.
    pub async fn courses(&self) -> LmsResult<Vec<Course>> {
        let mut courses = Vec::new();
        for id in store::course_ids(&self.pool, MAX_LISTED_COURSES).await? {
            if let Some(course) = store::course(&self.pool, id).await? {
                courses.push(course);
            }
        }
        Ok(courses)
    }

    /// One course, answers hidden.
    ///
    /// # Errors
    /// [`LmsError::NotFound`].
    pub async fn course(&self, id: Uuid) -> LmsResult<Course> {
        store::course(&self.pool, id)
            .await?
            .ok_or(LmsError::NotFound("course"))
    }

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

    /// Starts an attempt at a quiz: its questions in a fresh random order. While an attempt is open
    /// (not scored, not expired) the same attempt comes back, so reloading the page costs nothing.
    ///
    /// # Errors
    /// [`LmsError::NotFound`] (quiz), [`LmsError::NotEnrolled`], [`LmsError::AttemptsExhausted`].
    pub async fn start_attempt(&self, user: Uuid, quiz: Uuid) -> LmsResult<StartedAttempt> {
        let mut tx = self.pool.begin().await?;
        let rules = store::quiz_rules(&mut tx, quiz)
            .await?
            .ok_or(LmsError::NotFound("quiz"))?;
        if store::lock_enrollment(&mut tx, user, rules.course_id)
            .await?
            .is_none()
        {
            return Err(LmsError::NotEnrolled);
        }
        let questions = store::quiz_questions(&mut tx, quiz).await?;
        let attempt = match store::open_attempt(&mut tx, user, quiz).await? {
            Some(open) => open,
            None => {
                check_lock(&mut tx, user, &rules).await?;
                let mut order: Vec<Uuid> = questions.iter().map(|question| question.id).collect();
                order.shuffle(&mut rand::rng());
                // A bank: this attempt asks a random `draw_count` of its questions.
                if let Some(draw) = rules.draw_count.and_then(|n| usize::try_from(n).ok()) {
                    order.truncate(draw);
                }
                let ttl_s = i64::try_from(self.config.attempt_ttl_s).unwrap_or(3600);
                store::insert_attempt(&mut tx, Uuid::now_v7(), quiz, user, &order, ttl_s).await?
            }
        };
        tx.commit().await?;
        let by_id: HashMap<Uuid, &store::QuestionRow> = questions
            .iter()
            .map(|question| (question.id, question))
            .collect();
        Ok(StartedAttempt {
            attempt_id: attempt.id,
            quiz_id: quiz,
            started_at: attempt.started_at,
            expires_at: attempt.expires_at,
            questions: attempt
                .question_order
                .iter()
                .filter_map(|id| by_id.get(id).map(|question| question.public()))
                .collect(),
        })
    }

    /// The learner's attempts at a quiz and where they stand in its attempt limit.
    ///
    /// # Errors
    /// [`LmsError::NotFound`] (quiz), [`LmsError::NotEnrolled`].
    pub async fn quiz_standing(&self, user: Uuid, quiz: Uuid) -> LmsResult<QuizStanding> {
        let mut conn = self.pool.acquire().await?;
        let rules = store::quiz_rules(&mut conn, quiz)
            .await?
            .ok_or(LmsError::NotFound("quiz"))?;
        drop(conn);
        if store::enrollment(&self.pool, user, rules.course_id)
            .await?
            .is_none()
        {
            return Err(LmsError::NotEnrolled);
        }
        let mut conn = self.pool.acquire().await?;
        let failed = store::failed_attempt_times(&mut conn, user, quiz).await?;
        drop(conn);
        let round = attempt_round(&failed, rules.max_attempts, rules.cooldown_s, Utc::now());
        let failures = i32::try_from(round.failures).unwrap_or(i32::MAX);
        let attempts = store::attempts_of(&self.pool, user, quiz)
            .await?
            .into_iter()
            .map(|row| AttemptSummary {
                attempt_id: row.id,
                started_at: row.started_at,
                expires_at: row.expires_at,
                submitted_at: row.submitted_at,
                score: row.score_pct,
                passed: row.passed,
            })
            .collect();
        Ok(QuizStanding {
            quiz_id: quiz,
            pass_mark_pct: rules.pass_mark_pct,
            attempts_left: (rules.max_attempts - failures).max(0),
            locked_until: round.locked_until,
            attempts,
        })
    }

    /// Scores answers to a quiz, once.
    ///
    /// With `attempt_id` (from [`Self::start_attempt`]) that attempt is scored: it must be the
    /// caller's, of this quiz, open and not expired. Without one (the original API.md shape), a
    /// new attempt is started and scored in one transaction under the same limit and cool-down, so
    /// the guarantees hold either way.
    ///
    /// Passing the last unpassed quiz of a certifying course issues its certificate in the same
    /// transaction and then tells the [`CertificationListener`].
    ///
    /// # Errors
    /// [`LmsError::NotFound`] (quiz, or an attempt that is not the caller's for this quiz),
    /// [`LmsError::NotEnrolled`], [`LmsError::AttemptScored`], [`LmsError::AttemptExpired`],
    /// [`LmsError::AttemptsExhausted`], [`LmsError::Validation`] naming bad answers.
    pub async fn submit_attempt(
        &self,
        user: Uuid,
        name: &str,
        quiz: Uuid,
        attempt_id: Option<Uuid>,
        answers: &[Answer],
    ) -> LmsResult<AttemptResult> {
        let mut tx = self.pool.begin().await?;
        let rules = store::quiz_rules(&mut tx, quiz)
            .await?
            .ok_or(LmsError::NotFound("quiz"))?;
        let Some(enrollment) = store::lock_enrollment(&mut tx, user, rules.course_id).await? else {
            return Err(LmsError::NotEnrolled);
        };
        let mut questions = store::quiz_questions(&mut tx, quiz).await?;
        let attempt = match attempt_id {
            Some(id) => {
                let attempt = store::lock_attempt(&mut tx, id)
                    .await?
                    .filter(|attempt| attempt.user_id == user && attempt.quiz_id == quiz)
                    .ok_or(LmsError::NotFound("attempt"))?;
                if attempt.submitted_at.is_some() {
                    return Err(LmsError::AttemptScored);
                }
                if attempt.expires_at <= Utc::now() {
                    return Err(LmsError::AttemptExpired);
                }
                // Scored on the questions this attempt asked (its draw from a bank).
                questions.retain(|question| attempt.question_order.contains(&question.id));
                Some(attempt.id)
            }
            None if rules.draw_count.is_some() => {
                return Err(LmsError::field(
                    "attempt_id",
                    "is required: this quiz draws its questions from a bank; start an attempt first (POST .../attempts/start)",
                ));
            }
            None => None,
        };
        let (scores, score_pct) = score(&questions, answers)?;
        let attempt_id = match attempt {
            Some(id) => id,
            None => {
                check_lock(&mut tx, user, &rules).await?;
                let order: Vec<Uuid> = questions.iter().map(|question| question.id).collect();
                let ttl_s = i64::try_from(self.config.attempt_ttl_s).unwrap_or(3600);
                store::insert_attempt(&mut tx, Uuid::now_v7(), quiz, user, &order, ttl_s)
                    .await?
                    .id
            }
        };
        let passed = passes(score_pct, rules.pass_mark_pct);
        let answers_json = serde_json::to_value(answers)
            .map_err(|error| LmsError::Internal(format!("answers do not serialise: {error}")))?;
        if !store::score_attempt(
            &mut tx,
            attempt_id,
            &answers_json,
            round_pct(score_pct),
            passed,
        )
        .await?
        {
            return Err(LmsError::AttemptScored);
        }
        let mut certificate = None;
        if let (true, Some(code)) = (passed, rules.certification.as_deref())
            && store::all_quizzes_passed(
                &mut tx,
                user,
                rules.course_id,
                enrollment.cycle_started_at,
            )
            .await?
        {
            let holder_name = match name.trim() {
                "" => store::learner_name(&mut tx, user)
                    .await?
                    .unwrap_or_default(),
                name => {
                    store::upsert_learner(&mut tx, user, name).await?;
                    name.to_owned()
                }
            };
            let row = store::insert_certificate(
                &mut tx,
                &NewCertificate {
                    user_id: user,
                    certification: code,
                    holder_name: &holder_name,
                    issued_at: None,
                    expires_at: None,
                    source: "course",
                    course_id: Some(rules.course_id),
                    recorded_by: None,
                    evidence: None,
                },
            )
            .await?;
            store::complete_enrollment(&mut tx, user, rules.course_id).await?;
            store::announce(&mut tx, &[user]).await?;
            certificate = Some(Certificate::from(row));
        }
        tx.commit().await?;
        metrics::counter!("lms_attempts_scored_total", "passed" => if passed { "true" } else { "false" })
            .increment(1);
        if certificate.is_some() {
            metrics::counter!("lms_certificates_issued_total", "source" => "course").increment(1);
            tracing::info!(%user, certification = ?rules.certification, "certificate issued on passing the course");
            self.changed(user);
        }
        Ok(AttemptResult {
            attempt_id,
            score: round_pct(score_pct),
            passed,
            pass_mark_pct: rules.pass_mark_pct,
            questions: scores,
            certificate,
        })
    }

    /// The user's certificates (all of them, with their status), newest first.
    ///
    /// # Errors
    /// Database errors.
    pub async fn certificates_of(&self, user: Uuid) -> LmsResult<Vec<Certificate>> {
        Ok(store::certificates_of(&self.pool, user)
            .await?
            .into_iter()
            .map(Certificate::from)
            .collect())
    }

    /// One certificate, with the name of its certification.
    ///
    /// # Errors
    /// [`LmsError::NotFound`].
    pub async fn certificate(&self, id: Uuid) -> LmsResult<(Certificate, Certification)> {
        let row = store::certificate(&self.pool, id)
            .await?
            .ok_or(LmsError::NotFound("certificate"))?;
        let mut conn = self.pool.acquire().await?;
        let certification = store::certification(&mut conn, &row.certification)
            .await?
            .ok_or(LmsError::Internal(
                "certificate of a missing certification".into(),
            ))?;
        Ok((row.into(), certification.into()))
    }

    /// Records a certificate earned elsewhere (trainers), with the trainer and evidence kept.
    ///
    /// # Errors
    /// [`LmsError::Validation`] naming the field (unknown certification, future `issued_at`,
    /// `expires_at` not after `issued_at`, a `user_id` no account has). The printed name is
    /// `holder_name` when given, else the account's name in KREKI ID (through [`AccountNames`]).
    pub async fn record_external(
        &self,
        recorded_by: Uuid,
        request: &ExternalCertificate,
    ) -> LmsResult<Certificate> {
        let mut errors = Vec::new();
        if request.issued_at > Utc::now() {
            errors.push(FieldError::new("issued_at", "must not be in the future"));
        }
        if request
            .expires_at
            .is_some_and(|expires| expires <= request.issued_at)
        {
            errors.push(FieldError::new("expires_at", "must be after issued_at"));
        }
        let evidence = request
            .evidence
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty());
        if evidence.is_some_and(|e| e.chars().count() > 2000) {
            errors.push(FieldError::new(
                "evidence",
                "must be at most 2000 characters",
            ));
        }
        let given_name = request
            .holder_name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty());
        if given_name.is_some_and(|n| n.chars().count() > 100) {
            errors.push(FieldError::new(
                "holder_name",
                "must be at most 100 characters",
            ));
        }
        let mut tx = self.pool.begin().await?;
        let code = request.certification.trim();
        if store::certification(&mut tx, code).await?.is_none() {
            errors.push(FieldError::new(
                "certification",
                "is not in the catalogue (GET /v1/lms/certifications)",
            ));
        }
        // The holder must be a KREKI ID account; their name there is the one printed unless the
        // trainer gives another (the name on the card earned elsewhere, say).
        let account_name = match self.names.name_of(request.user_id).await {
            Ok(name) => name,
            Err(why) => {
                tracing::warn!(user = %request.user_id, error = %why, "KREKI ID not reachable for the holder's name");
                None
            }
        };
        let holder_name = match (given_name, account_name) {
            (Some(name), _) => Some(name.to_owned()),
            (None, Some(name)) if !name.trim().is_empty() => Some(name.trim().to_owned()),
            (None, _) => store::learner_name(&mut tx, request.user_id).await?,
        };
        if holder_name.is_none() {
            errors.push(FieldError::new(
                "user_id",
                "is not a KREKI ID account (search accounts in the admin console)",
            ));
        }
        let (Some(holder_name), true) = (holder_name, errors.is_empty()) else {
            return Err(LmsError::Validation(errors));
        };
        let row = store::insert_certificate(
            &mut tx,
            &NewCertificate {
                user_id: request.user_id,
                certification: code,
                holder_name: &holder_name,
                issued_at: Some(request.issued_at),
                expires_at: request.expires_at,
                source: "external",
                course_id: None,
                recorded_by: Some(recorded_by),
                evidence,
            },
        )
        .await?;
        store::announce(&mut tx, &[request.user_id]).await?;
        tx.commit().await?;
        metrics::counter!("lms_certificates_issued_total", "source" => "external").increment(1);
        tracing::info!(user = %request.user_id, certification = code, %recorded_by, "external certificate recorded");
        self.changed(request.user_id);
        Ok(row.into())
    }

    /// Revokes a certificate (trainers), then tells the [`CertificationListener`].
    ///
    /// # Errors
    /// [`LmsError::Validation`] for an empty or long reason, [`LmsError::NotFound`],
    /// [`LmsError::AlreadyRevoked`].
    pub async fn revoke(&self, id: Uuid, by: Uuid, reason: &str) -> LmsResult<Certificate> {
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > 500 {
            return Err(LmsError::field("reason", "must be 1 to 500 characters"));
        }
        let mut tx = self.pool.begin().await?;
        let revoked = store::revoke(&mut tx, id, by, reason).await?;
        if let Some(row) = &revoked {
            store::announce(&mut tx, &[row.user_id]).await?;
        }
        tx.commit().await?;
        match revoked {
            Some(row) => {
                metrics::counter!("lms_certificates_revoked_total").increment(1);
                tracing::info!(certificate = %id, user = %row.user_id, %by, "certificate revoked");
                self.changed(row.user_id);
                Ok(row.into())
            }
            None => Err(match store::certificate(&self.pool, id).await? {
                Some(_) => LmsError::AlreadyRevoked,
                None => LmsError::NotFound("certificate"),
            }),
        }
    }

    /// What a verification code stands for, publicly: only what is printed on the certificate.
    ///
    /// # Errors
    /// [`LmsError::NotFound`] for a code nobody was given.
    pub async fn verify(&self, code: &str) -> LmsResult<Verification> {
        let code = normalise_code(code);
        if code.len() > 64 {
            return Err(LmsError::NotFound("certificate"));
        }
        let row = store::certificate_by_code(&self.pool, &code)
            .await?
            .ok_or(LmsError::NotFound("certificate"))?;
        let mut conn = self.pool.acquire().await?;
        let name = store::certification(&mut conn, &row.certification)
            .await?
            .map_or_else(
                || row.certification.clone(),
                |certification| certification.name,
            );
        let status = certificate_status(row.issued_at, row.expires_at, row.revoked_at, Utc::now());
        Ok(Verification {
            valid: status == CertificateStatus::Valid,
            status,
            certification: row.certification,
            certification_name: name,
            holder_name: row.holder_name,
            issued_at: row.issued_at,
            expires_at: row.expires_at,
        })
    }

    /// Codes of the certifications `user` holds a valid certificate of now (issued, not expired,
    /// not revoked), sorted. What dispatch's `CertificationSource::valid_for` returns.
    ///
    /// # Errors
    /// [`LmsError::Database`].
    pub async fn valid_certifications(&self, user: Uuid) -> Result<Vec<String>, LmsError> {
        Ok(store::valid_codes(&self.pool, user).await?)
    }

    /// Every user with at least one valid certification, with their codes (sorted). What dispatch
    /// loads at start (`CertificationSource::all_valid`).
    ///
    /// # Errors
    /// [`LmsError::Database`].
    pub async fn all_valid_certifications(&self) -> Result<HashMap<Uuid, Vec<String>>, LmsError> {
        let mut valid: HashMap<Uuid, Vec<String>> = HashMap::new();
        for (user, code) in store::all_valid_codes(&self.pool).await? {
            valid.entry(user).or_default().push(code);
        }
        Ok(valid)
    }

    /// The user's stored notifications, newest first (at most 100).
    ///
    /// # Errors
    /// Database errors.
    pub async fn notifications(&self, user: Uuid) -> LmsResult<Vec<Notification>> {
        Ok(store::notifications_of(&self.pool, user)
            .await?
            .into_iter()
            .map(Notification::from)
            .collect())
    }

    /// One pass of the sweep: acts on every due expiry (marks it processed, then tells the
    /// listener), stores and delivers due reminders, and says when the next expiry is.
    ///
    /// # Errors
    /// Database errors; what was committed before the error stays done.
    pub async fn sweep_once(&self) -> LmsResult<Sweep> {
        let mut sweep = Sweep::default();
        loop {
            let mut tx = self.pool.begin().await?;
            let batch = store::claim_expired(&mut tx, SWEEP_BATCH).await?;
            let mut users = HashSet::new();
            for (certificate, user) in &batch {
                tracing::info!(%certificate, %user, "certificate expired");
                users.insert(*user);
            }
            let announced: Vec<Uuid> = users.iter().copied().collect();
            store::announce(&mut tx, &announced).await?;
            tx.commit().await?;
            for user in users {
                self.listener.changed(user);
            }
            sweep.expired += batch.len();
            metrics::counter!("lms_certificates_expired_total").increment(batch.len() as u64);
            if i64::try_from(batch.len()).unwrap_or(i64::MAX) < SWEEP_BATCH {
                break;
            }
        }
        for reminder in store::insert_due_reminders(&self.pool).await? {
            self.notifier
                .notify_user(reminder.user_id, reminder.message);
            metrics::counter!("lms_reminders_sent_total").increment(1);
            sweep.reminders += 1;
        }
        sweep.next_expiry = store::next_expiry(&self.pool).await?;
        Ok(sweep)
    }
}

/// Refuses a new attempt while the quiz is locked for this learner.
async fn check_lock(
    conn: &mut sqlx::PgConnection,
    user: Uuid,
    rules: &store::QuizRules,
) -> LmsResult<()> {
    let failed = store::failed_attempt_times(conn, user, rules.id).await?;
    match locked_until(&failed, rules.max_attempts, rules.cooldown_s, Utc::now()) {
        None => Ok(()),
        Some(until) => {
            let wait_ms = (until - Utc::now()).num_milliseconds().max(0);
            let retry_after_s = u64::try_from(wait_ms).unwrap_or(0).div_ceil(1000).max(1);
            Err(LmsError::AttemptsExhausted { retry_after_s })
        }
    }
}

/// Checks `answers` against the quiz and scores them: points per question and the total percent.
/// A question left out earns nothing.
fn score(
    questions: &[store::QuestionRow],
    answers: &[Answer],
) -> LmsResult<(Vec<QuestionScore>, f64)> {
    let mut errors = Vec::new();
    if answers.len() > questions.len() {
        errors.push(FieldError::new(
            "answers",
            "has more answers than the quiz has questions",
        ));
    }
    let by_id: HashMap<Uuid, &store::QuestionRow> = questions
        .iter()
        .map(|question| (question.id, question))
        .collect();
    let mut chosen: HashMap<Uuid, &[String]> = HashMap::new();
    for (index, answer) in answers.iter().enumerate() {
        let Some(question) = by_id.get(&answer.question_id) else {
            errors.push(FieldError::new(
                format!("answers[{index}].question_id"),
                "is not a question of this quiz",
            ));
            continue;
        };
        if chosen
            .insert(answer.question_id, &answer.selected)
            .is_some()
        {
            errors.push(FieldError::new(
                format!("answers[{index}].question_id"),
                "is answered twice",
            ));
        }
        let kind = QuestionKind::parse(&question.kind).unwrap_or(QuestionKind::Single);
        if kind == QuestionKind::Single && answer.selected.len() > 1 {
            errors.push(FieldError::new(
                format!("answers[{index}].selected"),
                "choose one option: this is a single-choice question",
            ));
        }
        for (o, option) in answer.selected.iter().enumerate() {
            if !question.options.0.iter().any(|known| &known.id == option) {
                errors.push(FieldError::new(
                    format!("answers[{index}].selected[{o}]"),
                    "is not an option of this question",
                ));
            }
        }
    }
    if !errors.is_empty() {
        return Err(LmsError::Validation(errors));
    }
    let mut earned_total = 0.0;
    let mut points_total = 0.0;
    let scores = questions
        .iter()
        .map(|question| {
            let kind = QuestionKind::parse(&question.kind).unwrap_or(QuestionKind::Single);
            let selected = chosen.get(&question.id).copied().unwrap_or(&[]);
            let earned =
                question_credit(kind, &question.correct, selected) * f64::from(question.points);
            earned_total += earned;
            points_total += f64::from(question.points);
            QuestionScore {
                question_id: question.id,
                earned: (earned * 100.0).round() / 100.0,
                points: question.points,
                correct: (earned - f64::from(question.points)).abs() < 1e-9,
                explanation: question.explanation.clone(),
            }
        })
        .collect();
    let pct = if points_total > 0.0 {
        earned_total / points_total * 100.0
    } else {
        0.0
    };
    Ok((scores, pct))
}

impl LmsService {
    /// The id of built-in content stored under `slug`.
    pub(crate) async fn course_id_by_slug(&self, slug: &str) -> LmsResult<Option<Uuid>> {
        Ok(store::course_id_by_slug(&self.pool, slug).await?)
    }
}
