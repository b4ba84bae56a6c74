//! The one error type of device registration and push, and its mapping to problem+json.

use kreki_platform::{FieldError, Problem};

/// What can go wrong in the push module. Each variant documents the status it answers with
/// (when it reaches HTTP at all: push delivery errors are logged, not answered).
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// 422: one or more fields of a registration break the rules.
    #[error("invalid input")]
    Validation(Vec<FieldError>),
    /// 404: no device with this id belongs to the caller.
    #[error("device not found")]
    DeviceNotFound,
    /// 404: this server has no VAPID key, so it takes no Web Push subscriptions.
    #[error("web push is not configured")]
    WebPushOff,
    /// 503 when the database is down, else a logged 500.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// At start: the FCM service account or the VAPID key cannot be used (not an HTTP answer).
    #[error("push setup: {0}")]
    Setup(String),
}

impl PushError {
    /// The problem this error is answered with.
    pub fn to_problem(&self) -> Problem {
        match self {
            Self::Validation(errors) => Problem::validation(errors.clone()),
            Self::DeviceNotFound => Problem::not_found("device"),
            Self::WebPushOff => Problem::not_found("VAPID public key")
                .with_detail("This server does not send Web Push (no VAPID key is configured)."),
            Self::Database(error) => kreki_platform::problem::from_sqlx(error),
            Self::Setup(why) => {
                tracing::error!(error = %why, "push setup error reached HTTP");
                Problem::unavailable("Push is not available.")
            }
        }
    }
}

impl axum::response::IntoResponse for PushError {
    fn into_response(self) -> axum::response::Response {
        self.to_problem().into_response()
    }
}
