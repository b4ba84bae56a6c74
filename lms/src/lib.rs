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
//!   [`Notifier`]), wired by the binary.
//! - [`service`]: [`LmsService`], the operations (enroll, attempts, certificates, eligibility).
//! - [`store`]: the SQL (schema `lms`).
//! - [`routes`]: the HTTP endpoints (the "Training (LMS)" table of API.md) and their OpenAPI.
//! - [`print`]: the printable HTML certificate.
//! - [`worker`]: the expiry sweep and the 30/7/1-day reminders.
//! - [`demo`]: the built-in BLS and first-aid courses, in Bahasa Indonesia.
//! - [`config`]: `[lms]` settings. [`error`]: [`LmsError`] and its problem+json mapping.

pub mod changes;
pub mod config;
pub mod course;
pub mod demo;
pub mod domain;
pub mod error;
pub mod ports;
pub mod print;
pub mod routes;
pub mod service;
pub mod store;
pub mod worker;

use std::sync::Arc;

pub use config::LmsConfig;
pub use error::LmsError;
pub use ports::{CertificationListener, Notifier};
pub use routes::LmsState;
pub use service::LmsService;

/// Builds the LMS over `pool`: the service (shared with the worker and the binary's adapters) and
/// the state its routes need. `verifier` checks access tokens; `listener` hears about every change
/// of a user's valid certifications; `notifier` delivers reminders to connected users.
pub fn build(
    pool: sqlx::PgPool,
    config: LmsConfig,
    verifier: kreki_auth::TokenVerifier,
    listener: Arc<dyn CertificationListener>,
    notifier: Arc<dyn Notifier>,
) -> LmsState {
    LmsState {
        service: Arc::new(LmsService::new(pool, config, listener, notifier)),
        verifier,
    }
}
