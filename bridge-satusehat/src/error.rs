//! The one error type of the bridge's KREKI endpoints (`/v1/...`), and its mapping to problem+json.
//! The FHIR API answers OperationOutcomes instead; see [`crate::facade`].

use kreki_auth::AuthError;
use kreki_platform::{FieldError, Problem};

/// Everything that can go wrong in the bridge's `/v1` endpoints. Each variant documents its status.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// 422: one or more fields break the rules.
    #[error("invalid input")]
    Validation(Vec<FieldError>),
    /// 404: no such resource.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// 429 with `Retry-After`: asked again too soon.
    #[error("too many requests")]
    TooSoon {
        /// Seconds until a new request is accepted.
        retry_after_s: u64,
    },
    /// 409: another account already verified as a health worker with this NIK.
    #[error("NIK already verified for another account")]
    NikTaken,
    /// 401/403: not signed in, or without the role needed.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// 503 when the database is unreachable (retry), 500 otherwise.
    #[error("database error")]
    Database(#[from] sqlx::Error),
}

impl BridgeError {
    /// A 422 for one field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    /// The problem this error is answered with.
    pub fn to_problem(&self) -> Problem {
        match self {
            Self::Validation(errors) => Problem::validation(errors.clone()),
            Self::NotFound(what) => Problem::not_found(what),
            Self::TooSoon { retry_after_s } => Problem::new(
                http::StatusCode::TOO_MANY_REQUESTS,
                "too-soon",
                "Too many requests",
            )
            .with_detail(format!(
                "A verification was asked moments ago; try again in {retry_after_s} s."
            ))
            .with_retry_after_s(*retry_after_s),
            Self::NikTaken => Problem::conflict(
                "nik-taken",
                "Another account is already verified as a health worker with this NIK.",
            ),
            Self::Auth(error) => error.to_problem(),
            Self::Database(error) => kreki_platform::problem::from_sqlx(error),
        }
    }
}

impl axum::response::IntoResponse for BridgeError {
    fn into_response(self) -> axum::response::Response {
        self.to_problem().into_response()
    }
}

/// Result alias of this crate's endpoints.
pub type BridgeResult<T> = Result<T, BridgeError>;
