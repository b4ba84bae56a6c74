//! Quizzes: an attempt starts with the questions in its own random order, is scored once, and a
//! pass issues the course's certificate; failed attempts lock the quiz for a cool-down after the
//! course's limit.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use kreki_platform::FieldError;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::course::Question;
use crate::domain::{
    QuestionKind, attempt_round, locked_until, passes, question_credit, round_pct,
};
use crate::error::{LmsError, LmsResult};
use crate::store::{self, NewCertificate};

use super::{Certificate, LmsService};

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

impl LmsService {
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
    /// caller's, of this quiz, open and not expired. Without one (the original docs/API.md shape), a
    /// new attempt is started and scored in one transaction under the same limit and cool-down, so
    /// the guarantees hold either way.
    ///
    /// Passing the last unpassed quiz of a certifying course issues its certificate in the same
    /// transaction and then tells the [`CertificationListener`](crate::ports::CertificationListener).
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
