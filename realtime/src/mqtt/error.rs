//! [`MqttError`]: what the device registry's endpoints answer, mapped to problem+json once here.

use kreki_platform::{FieldError, Problem};

/// Everything that can go wrong at `/v1/mqtt/devices`. Each variant documents its status.
#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    /// 422 naming each wrong field.
    #[error("invalid request")]
    Validation(Vec<FieldError>),
    /// 403 naming `kind`: only volunteers register trackers (their positions feed dispatch).
    #[error("trackers are for volunteers")]
    TrackerNeedsVolunteer,
    /// 409: the user has `mqtt.max_devices_per_user` live devices already.
    #[error("too many devices")]
    TooManyDevices(u32),
    /// 404: no such device of the caller's.
    #[error("no such device")]
    NotFound,
    /// 503 when the database is down, else a logged 500.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl MqttError {
    /// The problem this error is answered with.
    pub fn to_problem(&self) -> Problem {
        match self {
            Self::Validation(errors) => Problem::validation(errors.clone()),
            Self::TrackerNeedsVolunteer => {
                Problem::forbidden("Only volunteers may register location trackers.")
                    .with_field("kind", "`tracker` needs the volunteer role")
            }
            Self::TooManyDevices(max) => Problem::conflict(
                "too-many-devices",
                format!("You have {max} live devices; revoke one first."),
            ),
            Self::NotFound => Problem::not_found("device"),
            Self::Database(error) => kreki_platform::problem::from_sqlx(error),
        }
    }
}

impl axum::response::IntoResponse for MqttError {
    fn into_response(self) -> axum::response::Response {
        self.to_problem().into_response()
    }
}
