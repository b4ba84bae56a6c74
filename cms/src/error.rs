//! The one error type of the guidance service, and its mapping to HTTP problems (here, once).

use http::StatusCode;
use kreki_auth::AuthError;
use kreki_platform::{FieldError, Problem};

/// Everything that can go wrong. Each variant documents the status it answers with.
#[derive(Debug, thiserror::Error)]
pub enum CmsError {
    /// 422: one or more fields break the rules (each named).
    #[error("invalid input")]
    Validation(Vec<FieldError>),
    /// 401/403: no token, a bad token, or not an admin or trainer.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// 404: no such page (in any language) or version.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// 503 when the database is unreachable (retry), 500 otherwise.
    #[error("database error")]
    Database(#[from] sqlx::Error),
}

impl CmsError {
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
        }
    }

    /// The HTTP status of [`Self::to_problem`].
    pub fn status(&self) -> StatusCode {
        self.to_problem().status_code()
    }
}

impl axum::response::IntoResponse for CmsError {
    fn into_response(self) -> axum::response::Response {
        self.to_problem().into_response()
    }
}

/// Result alias of this crate.
pub type CmsResult<T> = Result<T, CmsError>;
