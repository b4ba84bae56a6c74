//! The one error type of the SMS service, mapped to HTTP problems once, here.

use http::StatusCode;
use kreki_platform::Problem;

/// Twilio error code: `To` is not a valid phone number.
pub const CODE_INVALID_NUMBER: u32 = 21211;
/// Twilio error code: the recipient replied STOP and may not be texted.
pub const CODE_UNSUBSCRIBED: u32 = 21610;
/// Twilio error code: too many requests.
pub const CODE_TOO_MANY_REQUESTS: u32 = 20429;

/// Everything that can go wrong sending or receiving a text.
#[derive(Debug, thiserror::Error)]
pub enum SmsError {
    /// The provider refused the text for good (a 4xx other than 429): never retried.
    #[error("provider refused the text ({status}, code {code:?}): {message}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// The provider's error code (21211 invalid number, 21610 unsubscribed, …).
        code: Option<u32>,
        /// The provider's message.
        message: String,
    },
    /// Still throttled (429) when the attempts were spent.
    #[error("provider throttled every attempt")]
    Throttled,
    /// The provider failed (5xx) or could not be reached on every attempt.
    #[error("provider unavailable after {attempts} attempts: {last}")]
    Unavailable {
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
    /// A per-day cap was reached (`recipient` or `deployment`); nothing was sent.
    #[error("daily SMS cap reached ({scope})")]
    CapReached {
        /// Which cap.
        scope: &'static str,
    },
    /// The text breaks a rule before it is sent (empty body, too long).
    #[error("invalid text: {0}")]
    Invalid(String),
    /// No provider is configured (`sms.provider = "off"`).
    #[error("no SMS provider configured")]
    Disabled,
    /// 403: a webhook without a valid `X-Twilio-Signature`.
    #[error("webhook signature missing or wrong")]
    BadSignature,
    /// Database failure (the outbound log).
    #[error("database error")]
    Database(#[from] sqlx::Error),
}

impl SmsError {
    /// The metrics label of a failure.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Rejected {
                code: Some(CODE_INVALID_NUMBER),
                ..
            } => "invalid_number",
            Self::Rejected {
                code: Some(CODE_UNSUBSCRIBED),
                ..
            } => "unsubscribed",
            Self::Rejected { .. } => "rejected",
            Self::Throttled => "throttled",
            Self::Unavailable { .. } => "unavailable",
            Self::CapReached { .. } => "cap_reached",
            Self::Invalid(_) => "invalid",
            Self::Disabled => "disabled",
            Self::BadSignature => "bad_signature",
            Self::Database(_) => "database",
        }
    }

    /// The problem this error is answered with.
    pub fn to_problem(&self) -> Problem {
        match self {
            Self::BadSignature => Problem::forbidden("Missing or wrong X-Twilio-Signature."),
            Self::Database(error) => kreki_platform::problem::from_sqlx(error),
            Self::CapReached { .. } => {
                Problem::new(StatusCode::TOO_MANY_REQUESTS, "sms-cap", "SMS cap reached")
                    .with_detail(self.to_string())
                    .with_retry_after_s(3600)
            }
            Self::Disabled | Self::Throttled | Self::Unavailable { .. } => {
                Problem::unavailable("Text messages cannot be sent right now.")
            }
            Self::Rejected { .. } | Self::Invalid(_) => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "sms-rejected",
                "Text refused",
            )
            .with_detail(self.to_string()),
        }
    }
}

impl axum::response::IntoResponse for SmsError {
    fn into_response(self) -> axum::response::Response {
        self.to_problem().into_response()
    }
}

/// Result alias of this crate.
pub type SmsResult<T> = Result<T, SmsError>;
