//! KREKI training and certification (LMS): who has learned what, and so who may be dispatched to
//! which emergencies.
//!
//! - [`domain`]: validated values and the rules: quiz scoring (partial credit for multiple choice),
//!   the attempt limit with cool-down, verification codes, certificate status.
//! - [`course`]: the course definition trainers send, its validation, and the views learners get
//!   (correct answers never included).
//! - [`changes`]: every eligibility change is also announced with PostgreSQL `NOTIFY`, and
//!   [`changes::forward`] relays them to a listener in any instance.
//! - [`ports`]: what the LMS needs from the rest of the platform ([`CertificationListener`],
//!   [`Notifier`], [`AccountNames`]), wired by the binary.
//! - [`service`]: [`LmsService`], the operations (enroll, attempts, certificates, eligibility).
//! - [`store`]: the SQL (schema `lms`).
//! - [`routes`]: the HTTP endpoints (the "Training (LMS)" table of API.md) and their OpenAPI.
//! - [`versions`]: publishing a course again as a new version without disturbing anyone
//!   mid-course; the full definition trainers edit.
//! - [`results`]: learners' own enrollments and trainers' view of progress and quiz results.
//! - [`print`](mod@print): the printable HTML certificate, the verify page and the QR code.
//! - [`worker`]: the expiry sweep and the 30/7/1-day reminders.
//! - [`demo`]: the built-in BLS and first-aid courses, in Bahasa Indonesia.
//! - [`config`]: `[lms]` settings. [`error`]: [`LmsError`] and its problem+json mapping.
//!
//! ## Decisions
//! - **Attempts.** `POST /v1/lms/quizzes/{id}/attempts/start` stores an attempt with its own
//!   shuffled question order and an expiry (`lms.attempt_ttl_s`); `POST .../attempts` with
//!   `{attempt_id, answers}` scores it exactly once (row lock; a replay is 409, an attempt of
//!   someone else or of another quiz is 404, an expired one 409). The API.md shape without
//!   `attempt_id` is accepted: it starts and scores a new attempt in one transaction under the same
//!   limit and cool-down, and answers refer to question ids, so the guarantees hold either way.
//!   Correct options are never serialised: the learner-facing `Question` has no field for them,
//!   and a scored attempt reports points per question, not the answers.
//! - **Scoring.** Single choice: all or nothing. Multiple choice, per option: each correct option
//!   chosen earns 1/|correct|, each wrong one chosen takes 1/|correct| away, never below zero.
//!   The score is the percentage of the quiz's points, rounded to one decimal, compared with the
//!   pass mark as shown.
//! - **Limit and cool-down.** A learner may fail `max_attempts` attempts in a row; the failure that
//!   uses up the last one locks the quiz for `cooldown_s` (429 with `Retry-After`), then a new round
//!   begins. Passing never locks. Attempts of one learner in one course are serialised on the
//!   enrollment row.
//! - **Certificates.** Passing every quiz of a certifying course (passes since the enrollment's
//!   current cycle) issues a certificate in the same transaction, valid for the certification's
//!   `validity_days`, with a 120-bit verification code; the cycle then restarts, so a renewal means
//!   passing every quiz again. Valid = issued, not expired at now, not revoked.
//! - **Verify.** `GET /v1/lms/certificates/verify/{code}` answers 200 with `valid` and `status`
//!   (`valid`, `expired`, `revoked`, `pending`) for a known code, and 404 for an unknown one. It
//!   shows only what is printed on the certificate (certification, holder's name, period): no
//!   user id, evidence or revocation reason.
//! - **Eligibility changes.** Issue, revocation and the sweep's expiries call the
//!   [`CertificationListener`] after commit and announce the user with `NOTIFY` inside the
//!   transaction ([`changes`]) for other instances.

pub mod changes;
pub mod config;
pub mod course;
pub mod demo;
pub mod domain;
pub mod error;
pub mod ports;
pub mod print;
pub mod results;
pub mod routes;
pub mod service;
pub mod store;
pub mod versions;
pub mod worker;

use std::sync::Arc;

pub use config::LmsConfig;
pub use error::LmsError;
pub use ports::{AccountNames, CertificationListener, Notifier};
pub use routes::LmsState;
pub use service::LmsService;

/// Builds the LMS over `pool`: the service (shared with the worker and the binary's adapters) and
/// the state its routes need. `verifier` checks access tokens; `ports` say who hears about
/// certificate changes, who delivers reminders, and who knows accounts' names.
pub fn build(
    pool: sqlx::PgPool,
    config: LmsConfig,
    verifier: kreki_auth::TokenVerifier,
    ports: Ports,
) -> LmsState {
    LmsState {
        service: Arc::new(LmsService::new(pool, config, ports)),
        verifier,
    }
}

/// What the LMS needs from the rest of the platform (see [`ports`]).
#[derive(Clone)]
pub struct Ports {
    /// Hears that a user's valid certifications may have changed.
    pub listener: Arc<dyn CertificationListener>,
    /// Delivers reminders to connected users.
    pub notifier: Arc<dyn Notifier>,
    /// Names of KREKI ID accounts.
    pub names: Arc<dyn AccountNames>,
}

impl Ports {
    /// Nobody listens, nothing is delivered live, no account is known (tools and tests).
    pub fn nobody() -> Self {
        let nobody = Arc::new(ports::NobodyListens);
        Self {
            listener: nobody.clone(),
            notifier: nobody.clone(),
            names: nobody,
        }
    }
}
