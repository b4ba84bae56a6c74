//! The wire protocol of `/v1/ws`: what a client may send, and the frames a connection answers with
//! itself (as opposed to the published messages the hub numbers with `seq`).
//!
//! Client -> server, JSON text frames, each an object with a string `type`:
//! - `{"type":"ping"}` -> `{"type":"pong"}`;
//! - `{"type":"subscribe","topic":"alert:{id}"}` -> `{"type":"subscribed","topic":..}` when the
//!   [`TopicAuthorizer`](crate::ports::TopicAuthorizer) allows it, else a 403 error frame;
//! - `{"type":"unsubscribe","topic":..}` -> `{"type":"unsubscribed","topic":..}`;
//! - `{"type":"ack","seq":n}` (optionally with `"epoch":e`) -> nothing: the client processed every
//!   message up to `seq` (the pusher's `no_ack` policy then sends no push for them);
//! - any other type goes to the [`InboundHandler`](crate::ports::InboundHandler).
//!
//! Answers to one connection (`pong`, `subscribed`, `unsubscribed`, `error`) carry no `seq`: they
//! are not part of the user's numbered stream, are not replayed, and other connections of the same
//! user do not see them.

use std::fmt;

use axum::extract::ws::Utf8Bytes;
use serde::Deserialize;
use serde_json::json;

use crate::error::RealtimeError;

/// Longest topic name, in bytes.
pub const TOPIC_MAX_BYTES: usize = 128;

/// A topic name such as `alert:0193…`: 1 to [`TOPIC_MAX_BYTES`] visible ASCII characters (no
/// spaces). What a topic means is up to the [`TopicAuthorizer`](crate::ports::TopicAuthorizer).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Topic(String);

impl Topic {
    /// Checks the spelling.
    ///
    /// # Errors
    /// A message for the `topic` field saying what is expected.
    pub fn parse(input: &str) -> Result<Self, String> {
        if input.is_empty() || input.len() > TOPIC_MAX_BYTES {
            return Err(format!("must be 1 to {TOPIC_MAX_BYTES} characters"));
        }
        if !input.bytes().all(|byte| byte.is_ascii_graphic()) {
            return Err("must be visible ASCII without spaces, such as alert:{id}".to_owned());
        }
        Ok(Self(input.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A client frame, read.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ClientFrame {
    /// `{"type":"ping"}`.
    Ping,
    /// `{"type":"subscribe","topic":..}`.
    Subscribe(Topic),
    /// `{"type":"unsubscribe","topic":..}`.
    Unsubscribe(Topic),
    /// `{"type":"ack","seq":n}`, optionally with the `epoch` of that `seq`.
    Ack {
        /// The newest `seq` processed.
        seq: u64,
        /// Its epoch, when the client sent it.
        epoch: Option<u64>,
    },
    /// Any other type, for the inbound handler: an object with a string `type`.
    Other(serde_json::Value),
}

#[derive(Deserialize)]
struct TopicFrame {
    topic: serde_json::Value,
}

/// Reads one text frame.
///
/// # Errors
/// [`RealtimeError::NotJson`], [`RealtimeError::MissingType`] or
/// [`RealtimeError::InvalidTopic`], each answered with an error frame.
pub(crate) fn parse_client_frame(text: &str) -> Result<ClientFrame, RealtimeError> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|error| RealtimeError::NotJson(error.to_string()))?;
    let kind = value
        .get("type")
        .and_then(serde_json::Value::as_str)
        .filter(|kind| !kind.is_empty())
        .ok_or(RealtimeError::MissingType)?;
    match kind {
        "ping" => Ok(ClientFrame::Ping),
        "subscribe" => topic_of(&value).map(ClientFrame::Subscribe),
        "unsubscribe" => topic_of(&value).map(ClientFrame::Unsubscribe),
        "ack" => ack_of(&value),
        _ => Ok(ClientFrame::Other(value)),
    }
}

fn topic_of(value: &serde_json::Value) -> Result<Topic, RealtimeError> {
    let frame = TopicFrame::deserialize(value)
        .map_err(|_| RealtimeError::InvalidTopic("is required".to_owned()))?;
    let topic = frame
        .topic
        .as_str()
        .ok_or_else(|| RealtimeError::InvalidTopic("must be a string".to_owned()))?;
    Topic::parse(topic).map_err(RealtimeError::InvalidTopic)
}

fn ack_of(value: &serde_json::Value) -> Result<ClientFrame, RealtimeError> {
    let number = |field: &'static str, required: bool| match value.get(field) {
        None | Some(serde_json::Value::Null) if !required => Ok(None),
        Some(number) if number.is_u64() => Ok(number.as_u64()),
        _ => Err(RealtimeError::InvalidField(
            kreki_platform::FieldError::new(field, "must be a whole number"),
        )),
    };
    let seq = number("seq", true)?.unwrap_or_default();
    let epoch = number("epoch", false)?;
    Ok(ClientFrame::Ack { seq, epoch })
}

/// `{"type":"pong"}`.
pub(crate) fn pong() -> Utf8Bytes {
    Utf8Bytes::from_static(r#"{"type":"pong"}"#)
}

/// `{"type":"subscribed","topic":..}` or `{"type":"unsubscribed","topic":..}`.
pub(crate) fn topic_ack(kind: &'static str, topic: &Topic) -> Utf8Bytes {
    Utf8Bytes::from(json!({"type": kind, "topic": topic.as_str()}).to_string())
}

/// `{"type":"error","problem":{..problem+json..}}`.
pub(crate) fn error_frame(error: &RealtimeError) -> Utf8Bytes {
    Utf8Bytes::from(json!({"type": "error", "problem": error.to_problem()}).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_types_are_read_and_others_pass_through() {
        assert_eq!(
            parse_client_frame(r#"{"type":"ping"}"#).ok(),
            Some(ClientFrame::Ping)
        );
        assert_eq!(
            parse_client_frame(r#"{"type":"subscribe","topic":"alert:42"}"#).ok(),
            Some(ClientFrame::Subscribe(Topic("alert:42".into())))
        );
        assert_eq!(
            parse_client_frame(r#"{"type":"ack","seq":7,"epoch":9}"#).ok(),
            Some(ClientFrame::Ack {
                seq: 7,
                epoch: Some(9)
            })
        );
        let location = r#"{"type":"location","lat":-6.2,"lng":106.8}"#;
        assert!(matches!(
            parse_client_frame(location),
            Ok(ClientFrame::Other(value)) if value["lat"] == -6.2
        ));
    }

    #[test]
    fn garbage_is_named() {
        for (text, field) in [
            ("not json", None),
            ("[1,2]", Some("type")),
            (r#"{"type":7}"#, Some("type")),
            (r#"{"type":""}"#, Some("type")),
            (r#"{"type":"subscribe"}"#, Some("topic")),
            (r#"{"type":"subscribe","topic":5}"#, Some("topic")),
            (r#"{"type":"subscribe","topic":"a b"}"#, Some("topic")),
            (r#"{"type":"ack"}"#, Some("seq")),
            (r#"{"type":"ack","seq":-1}"#, Some("seq")),
            (r#"{"type":"ack","seq":3,"epoch":"x"}"#, Some("epoch")),
        ] {
            let error = parse_client_frame(text).expect_err(text);
            let problem = error.to_problem();
            match field {
                None => assert_eq!(problem.status, 400, "{text}"),
                Some(field) => {
                    assert_eq!(problem.status, 422, "{text}");
                    assert_eq!(problem.errors[0].field, field, "{text}");
                }
            }
        }
        let long = "a".repeat(TOPIC_MAX_BYTES + 1);
        assert!(Topic::parse(&long).is_err());
        assert!(Topic::parse(&long[1..]).is_ok());
    }

    #[test]
    fn error_frames_carry_the_problem() {
        let frame = error_frame(&RealtimeError::Binary);
        let value: serde_json::Value = serde_json::from_str(frame.as_str()).expect("JSON");
        assert_eq!(value["type"], "error");
        assert_eq!(value["problem"]["status"], 400);
        assert!(value.get("seq").is_none());
    }
}
