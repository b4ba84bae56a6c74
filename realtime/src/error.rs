//! The one error type of the real-time hub, and its mapping to problem+json (done here, once).
//!
//! Before the upgrade a [`RealtimeError`] is an HTTP answer; after it, the same problem travels in
//! an error frame, `{"type":"error","problem":{..}}`, and the socket stays open.

use http::StatusCode;
use kreki_auth::AuthError;
use kreki_platform::Problem;

/// Everything that can go wrong at `/v1/ws`. Each variant documents the status it answers with.
#[derive(Debug, thiserror::Error)]
pub enum RealtimeError {
    /// 401 (no, expired or invalid token) or 403 (a client token: the socket is for people).
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// 422 naming the query parameter that is wrong (`resume_after`).
    #[error("invalid query parameter")]
    Query(kreki_platform::FieldError),
    /// 503 with `Retry-After`: this instance holds `realtime.max_connections` sockets already.
    #[error("too many WebSocket connections")]
    TooManyConnections,
    /// 429: this user holds `realtime.max_connections_per_user` sockets already.
    #[error("too many WebSocket connections for this account")]
    TooManyForUser(usize),
    /// 400 in an error frame: a binary frame (the protocol is JSON text).
    #[error("binary frame")]
    Binary,
    /// 400 in an error frame: the text is not JSON.
    #[error("frame is not JSON: {0}")]
    NotJson(String),
    /// 422 in an error frame naming `type`: not an object with a string `type`.
    #[error("frame has no type")]
    MissingType,
    /// 422 in an error frame naming `topic`: missing or malformed topic.
    #[error("invalid topic: {0}")]
    InvalidTopic(String),
    /// 422 in an error frame naming the field of a client frame that is wrong (`seq` of an ack).
    #[error("invalid field: {}", .0.field)]
    InvalidField(kreki_platform::FieldError),
    /// 403 in an error frame naming `topic`: the user may not follow it.
    #[error("topic refused")]
    TopicRefused(String),
    /// 409 in an error frame naming `topic`: the user follows the most topics allowed already.
    #[error("too many topics")]
    TooManyTopics(usize),
    /// 413 in an error frame, then close code 1009: a message over `realtime.max_message_bytes`.
    #[error("message too big")]
    TooBig {
        /// The limit, in bytes.
        max_bytes: usize,
    },
    /// The inbound handler's own problem, as it gave it.
    #[error("{0}")]
    Inbound(Problem),
}

impl RealtimeError {
    /// The problem this error is answered with.
    pub fn to_problem(&self) -> Problem {
        match self {
            Self::Auth(error) => error.to_problem(),
            Self::Query(error) => Problem::validation(vec![error.clone()]),
            Self::TooManyConnections => Problem::unavailable(
                "This server holds as many live connections as it may; reconnect shortly.",
            ),
            Self::TooManyForUser(max) => Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-connections",
                "Too many connections",
            )
            .with_detail(format!(
                "This account holds {max} live connections already; close one first."
            ))
            .with_retry_after_s(5),
            Self::Binary => Problem::bad_request(
                "Binary frames are not accepted; send JSON text such as {\"type\":\"ping\"}.",
            ),
            Self::NotJson(why) => {
                Problem::bad_request(format!("The frame is not valid JSON: {why}"))
            }
            Self::MissingType => Problem::validation(vec![kreki_platform::FieldError::new(
                "type",
                "every message must be a JSON object with a string `type`",
            )]),
            Self::InvalidTopic(why) => {
                Problem::validation(vec![kreki_platform::FieldError::new("topic", why.clone())])
            }
            Self::InvalidField(error) => Problem::validation(vec![error.clone()]),
            Self::TopicRefused(topic) => {
                Problem::forbidden(format!("You may not follow `{topic}`."))
                    .with_field("topic", "is not open to you")
            }
            Self::TooManyTopics(max) => Problem::conflict(
                "too-many-topics",
                format!("You follow {max} topics already; unsubscribe from one first."),
            )
            .with_field("topic", format!("at most {max} topics at once")),
            Self::TooBig { max_bytes } => Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "message-too-big",
                "Message too big",
            )
            .with_detail(format!(
                "Messages may be at most {max_bytes} bytes; the connection closes with 1009."
            )),
            Self::Inbound(problem) => problem.clone(),
        }
    }
}

impl axum::response::IntoResponse for RealtimeError {
    fn into_response(self) -> axum::response::Response {
        self.to_problem().into_response()
    }
}
