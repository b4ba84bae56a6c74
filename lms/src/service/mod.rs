//! [`LmsService`]: every LMS operation, over the store, with the rules of [`crate::domain`]. The
//! HTTP handlers, the expiry worker, the demo loader and the binary's eligibility adapter all call
//! this; none of them touches SQL. One file per use case:
//!
//! - [`catalogue`]: certifications and courses.
//! - [`learning`]: enrolment, lessons read, progress.
//! - [`quizzes`]: attempts, scoring, the attempt limit's lock, the certificate a pass issues.
//! - [`certificates`]: own certificates, verification, external certificates, revocation, who
//!   holds what (for dispatch).
//! - [`reminders`]: the expiry sweep and stored notifications.

use std::sync::Arc;

use sqlx::PgPool;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::config::LmsConfig;
use crate::ports::{AccountNames, CertificationListener, Notifier};

pub mod catalogue;
pub mod certificates;
pub mod learning;
pub mod quizzes;
pub mod reminders;

pub use catalogue::Certification;
pub use certificates::{Certificate, ExternalCertificate, Verification};
pub use learning::{Enrollment, Progress};
pub use quizzes::{
    Answer, AttemptResult, AttemptSummary, QuestionScore, QuizStanding, StartedAttempt,
};
pub use reminders::{Notification, Sweep};

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
}
