//! The one error type of the CAP service, and its mapping to HTTP problems (here, once).

use kreki_auth::AuthError;
use kreki_platform::{FieldError, Problem};

/// Everything that can go wrong at the HTTP edge. Each variant documents its status.
#[derive(Debug, thiserror::Error)]
pub enum CapError {
    /// 422: one or more fields break the rules (each named).
    #[error("invalid input")]
    Validation(Vec<FieldError>),
    /// 401/403: no token, a bad token, or not a coordinator.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// 404: no such warning, broadcast or region.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// 503 when the database is unreachable (retry), 500 otherwise.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// 500: a port (dispatch) failed.
    #[error("{0}")]
    Port(#[from] anyhow::Error),
}

impl CapError {
    /// A 422 for one field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    /// The problem this error is answered with.
    pub fn to_problem(&self) -> Problem {
        match self {
            Self::Validation(errors) => Problem::validation(errors.clone()),
            Self::Auth(error) => error.to_problem(),
            Self::NotFound(what) => Problem::not_found(what),
            Self::Database(error) => kreki_platform::problem::from_sqlx(error),
            Self::Port(error) => {
                tracing::error!(
                    error = format!("{error:#}"),
                    "a port of the CAP service failed"
                );
                Problem::unavailable("try again shortly")
            }
        }
    }
}

impl axum::response::IntoResponse for CapError {
    fn into_response(self) -> axum::response::Response {
        self.to_problem().into_response()
    }
}

/// Result alias of this crate.
pub type CapResult<T> = Result<T, CapError>;
