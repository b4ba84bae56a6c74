//! The one error type of the LMS, and its mapping to HTTP problems (done here, once).

use http::StatusCode;
use kreki_auth::AuthError;
use kreki_platform::{FieldError, Problem};

/// Everything that can go wrong in the LMS. Each variant documents the status it answers with.
#[derive(Debug, thiserror::Error)]
pub enum LmsError {
    /// 422: one or more fields break the rules.
    #[error("invalid input")]
    Validation(Vec<FieldError>),
    /// 401/403 from authentication: no token, a bad token, or a missing role.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// 403: signed in with the right role, but not allowed this (someone else's certificate).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// 403: attempts need an enrollment in the quiz's course.
    #[error("not enrolled in this course")]
    NotEnrolled,
    /// 404: no such course, quiz, lesson, certificate, certification or attempt (also for an attempt
    /// of someone else, or of another quiz, so ids cannot be probed).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// 409: a certification with this code exists already.
    #[error("certification exists already")]
    CertificationExists,
    /// 409: this attempt was scored already; an attempt is scored once.
    #[error("attempt already scored")]
    AttemptScored,
    /// 409: this attempt was not submitted in time; start a new one.
    #[error("attempt expired")]
    AttemptExpired,
    /// 429 with `Retry-After`: the attempts are used up until the cool-down ends.
    #[error("no attempts left until the cool-down ends")]
    AttemptsExhausted {
        /// Seconds until an attempt may start.
        retry_after_s: u64,
    },
    /// 409: another version of this course was published at the same moment; publish again.
    #[error("course version taken")]
    VersionTaken,
    /// 409: the certificate was revoked already.
    #[error("certificate already revoked")]
    AlreadyRevoked,
    /// 503 when the database is unreachable (retry), 500 otherwise.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// 500: a failure of ours (stored data that does not parse).
    #[error("internal error: {0}")]
    Internal(String),
}

impl LmsError {
    /// A 422 for one field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    /// The problem this error is answered with.
    pub fn to_problem(&self) -> Problem {
        match self {
            Self::Validation(errors) => Problem::validation(errors.clone()),
            Self::Auth(error) => error.to_problem(),
            Self::Forbidden(why) => Problem::forbidden(why.clone()),
            Self::NotEnrolled => Problem::new(StatusCode::FORBIDDEN, "not-enrolled", "Forbidden")
                .with_detail("Enroll in the course first: POST /v1/lms/courses/{id}/enroll."),
            Self::NotFound(what) => Problem::not_found(what),
            Self::CertificationExists => Problem::conflict(
                "certification-exists",
                "A certification with this code exists already.",
            )
            .with_field("code", "is taken"),
            Self::AttemptScored => Problem::conflict(
                "attempt-scored",
                "This attempt was scored already; start a new attempt.",
            )
            .with_field("attempt_id", "was scored already"),
            Self::AttemptExpired => Problem::conflict(
                "attempt-expired",
                "This attempt was not submitted in time; start a new attempt.",
            )
            .with_field("attempt_id", "has expired"),
            Self::AttemptsExhausted { retry_after_s } => Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "attempts-exhausted",
                "No attempts left",
            )
            .with_detail(format!(
                "Every attempt of this round was used; the quiz opens again in {retry_after_s} s."
            ))
            .with_retry_after_s(*retry_after_s),
            Self::VersionTaken => Problem::conflict(
                "version-taken",
                "Another version of this course was published at the same moment; load the newest and publish again.",
            ),
            Self::AlreadyRevoked => {
                Problem::conflict("already-revoked", "This certificate was revoked already.")
            }
            Self::Database(error) => kreki_platform::problem::from_sqlx(error),
            Self::Internal(_) => Problem::internal(self),
        }
    }

    /// The HTTP status of [`Self::to_problem`].
    pub fn status(&self) -> StatusCode {
        self.to_problem().status_code()
    }
}

impl axum::response::IntoResponse for LmsError {
    fn into_response(self) -> axum::response::Response {
        self.to_problem().into_response()
    }
}

/// Result alias of this crate.
pub type LmsResult<T> = Result<T, LmsError>;
