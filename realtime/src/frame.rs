//! [`Frame`]: a message encoded once. A publisher serialises its typed message into a `Frame`;
//! the hub, the bus and every socket and replay ring then share the same bytes. The only work per
//! recipient is the `{"seq":n,"epoch":e,` put in front when a frame is written to a socket.
//!
//! A frame is a JSON object with a non-empty string `type` and neither `seq` nor `epoch` (the
//! hub numbers it per recipient). Anything else is refused with a [`FrameError`] when the frame
//! is made, so a bad message is the publisher's error at the publisher, never a panic or a frame a
//! client cannot read.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use serde::Serialize;
use serde::de::IgnoredAny;

/// Why a message cannot be a frame.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// It does not serialise to JSON (a map with non-string keys, a failing `Serialize`).
    #[error("the message does not serialise to JSON: {0}")]
    Encode(#[from] serde_json::Error),
    /// It serialises to something other than a JSON object.
    #[error("the message is not a JSON object")]
    NotAnObject,
    /// It has no `type`, or `type` is not a non-empty string.
    #[error("the message has no `type` (a non-empty string)")]
    NoType,
    /// It has a field the hub sets itself (`seq` or `epoch`).
    #[error("the message has `{0}`, which the hub sets itself")]
    Reserved(&'static str),
}

/// A message to WebSocket clients, encoded once: cheap to clone (the bytes are shared, counted by
/// reference), and the same bytes go to every socket and replay ring that gets it.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    /// The JSON object without its opening brace: `"type":"offer",…}`. Each recipient's frame is
    /// `{"seq":n,"epoch":e,` followed by these bytes.
    body: Utf8Bytes,
    /// The value of `type`.
    kind: Arc<str>,
    /// The trace of the work that published it (a W3C `traceparent`), when traces are exported:
    /// the socket writes and pushes it causes join that trace, on every instance.
    trace: Option<Traceparent>,
}

/// A W3C `traceparent` (`00-{trace id}-{span id}-{flags}`) carried with a frame through the hub,
/// the Redis bus and the socket queues, never written to a client.
pub type Traceparent = Arc<str>;

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frame")
            .field("type", &self.kind)
            .field("bytes", &self.body.len())
            .finish()
    }
}

/// What a frame is checked for while it is encoded.
#[derive(serde::Deserialize)]
struct Head {
    #[serde(rename = "type")]
    kind: Option<serde_json::Value>,
    seq: Option<IgnoredAny>,
    epoch: Option<IgnoredAny>,
}

impl Frame {
    /// Encodes `message` (a typed message, `#[serde(tag = "type")]` or with a `type` field).
    ///
    /// # Errors
    /// [`FrameError`] when `message` does not serialise to a JSON object with a non-empty string
    /// `type` and without `seq` or `epoch`.
    pub fn new(message: &impl Serialize) -> Result<Self, FrameError> {
        let json = serde_json::to_string(message)?;
        if !json.starts_with('{') {
            return Err(FrameError::NotAnObject);
        }
        let head: Head = serde_json::from_str(&json)?;
        if head.seq.is_some() {
            return Err(FrameError::Reserved("seq"));
        }
        if head.epoch.is_some() {
            return Err(FrameError::Reserved("epoch"));
        }
        let kind = match head.kind {
            Some(serde_json::Value::String(kind)) if !kind.is_empty() => kind,
            _ => return Err(FrameError::NoType),
        };
        Ok(Self::from_json(json, &kind))
    }

    /// Encodes a JSON value, dropping any `seq` or `epoch` it carries (the hub sets them): the
    /// form [`crate::Hub::publish`] takes.
    ///
    /// # Errors
    /// [`FrameError::NotAnObject`] or [`FrameError::NoType`].
    pub fn from_value(message: serde_json::Value) -> Result<Self, FrameError> {
        let serde_json::Value::Object(mut object) = message else {
            return Err(FrameError::NotAnObject);
        };
        let kind = match object.get("type") {
            Some(serde_json::Value::String(kind)) if !kind.is_empty() => kind.clone(),
            _ => return Err(FrameError::NoType),
        };
        object.remove("seq");
        object.remove("epoch");
        let json = serde_json::to_string(&object)?;
        Ok(Self::from_json(json, &kind))
    }

    /// `json` is an object (it starts with `{`).
    fn from_json(mut json: String, kind: &str) -> Self {
        json.remove(0);
        Self {
            body: Utf8Bytes::from(json),
            kind: Arc::from(kind),
            trace: None,
        }
    }

    /// The same frame carrying `traceparent` (see
    /// `kreki_platform::telemetry::traces::traceparent_of`), or none.
    #[must_use]
    pub fn with_trace(mut self, traceparent: Option<String>) -> Self {
        self.trace = traceparent.map(Arc::from);
        self
    }

    /// The trace the frame belongs to, if it carries one.
    pub fn trace(&self) -> Option<&Traceparent> {
        self.trace.as_ref()
    }

    /// The `type` of the message (`offer`, `alert.updated`, …).
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// Length of the encoded message, in bytes.
    pub fn len(&self) -> usize {
        self.body.len() + 1
    }

    /// Never true: a frame holds at least `{"type":"x"}`.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The encoded message, as a client would see it without `seq` and `epoch` (a copy: for logs
    /// and tests, not the delivery path).
    pub fn to_json(&self) -> String {
        format!("{{{}", self.body.as_str())
    }

    /// The shared bytes: the object without its opening brace (what the bus carries).
    pub(crate) fn body(&self) -> &Utf8Bytes {
        &self.body
    }
}

/// The body of a numbered `resync` message: `{"seq":n,"epoch":e,"type":"resync"}` once numbered.
/// A bus publishes it to an audience that lost a message, so each of them refetches.
pub(crate) const RESYNC_BODY: &str = "\"type\":\"resync\"}";

/// What a connection writes: a numbered message (its body shared with every other recipient), or
/// a `resync` telling the client to refetch and take `seq`/`epoch` as its cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outgoing {
    /// Message `seq` of `epoch`.
    Message {
        /// The numbering it belongs to.
        epoch: u64,
        /// Its number.
        seq: u64,
        /// The shared body (see [`Frame`]).
        body: Utf8Bytes,
        /// The trace it belongs to (live messages only; replays carry none).
        trace: Option<Traceparent>,
    },
    /// `{"type":"resync","seq":n,"epoch":e}`: messages before `seq` + 1 cannot be replayed (or
    /// the numbering changed); refetch over HTTP, the next message is `seq` + 1 of `epoch`.
    Resync {
        /// The new numbering.
        epoch: u64,
        /// The cursor to take.
        seq: u64,
    },
}

impl Outgoing {
    /// The text frame: the only per-recipient work is this prefix and one copy of the body.
    pub(crate) fn encode(&self) -> Utf8Bytes {
        match self {
            Self::Message {
                epoch, seq, body, ..
            } => {
                let mut text = String::with_capacity(body.len() + 48);
                // Writing to a String cannot fail.
                let _ = write!(text, "{{\"seq\":{seq},\"epoch\":{epoch},");
                text.push_str(body.as_str());
                Utf8Bytes::from(text)
            }
            Self::Resync { epoch, seq } => Utf8Bytes::from(format!(
                "{{\"type\":\"resync\",\"seq\":{seq},\"epoch\":{epoch}}}"
            )),
        }
    }

    /// The `(epoch, seq)` this frame leaves a client's cursor at.
    #[cfg(test)]
    pub(crate) fn cursor(&self) -> (u64, u64) {
        match self {
            Self::Message { epoch, seq, .. } | Self::Resync { epoch, seq } => (*epoch, *seq),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    #[derive(Serialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    enum Message {
        Offer {
            id: u32,
        },
        #[serde(rename = "alert.updated")]
        AlertUpdated,
    }

    fn numbered(frame: &Frame, epoch: u64, seq: u64) -> Value {
        let text = Outgoing::Message {
            epoch,
            seq,
            body: frame.body().clone(),
            trace: None,
        }
        .encode();
        serde_json::from_str(text.as_str()).expect("a numbered frame is JSON")
    }

    #[test]
    fn typed_messages_are_encoded_once_and_numbered_per_recipient() {
        let frame = Frame::new(&Message::Offer { id: 7 }).expect("a frame");
        assert_eq!(frame.kind(), "offer");
        assert_eq!(frame.to_json(), r#"{"type":"offer","id":7}"#);
        assert_eq!(frame.len(), frame.to_json().len());
        assert_eq!(
            numbered(&frame, 17, 3),
            json!({"seq": 3, "epoch": 17, "type": "offer", "id": 7})
        );
        assert_eq!(
            numbered(&frame, u64::MAX, 0),
            json!({"seq": 0, "epoch": u64::MAX, "type": "offer", "id": 7})
        );
        let other = Frame::new(&Message::AlertUpdated).expect("a frame");
        assert_eq!(other.kind(), "alert.updated");
        assert_eq!(numbered(&other, 1, 10)["seq"], 10);
    }

    #[test]
    fn bad_messages_are_errors_not_panics() {
        assert!(matches!(
            Frame::new(&json!([1])),
            Err(FrameError::NotAnObject)
        ));
        assert!(matches!(Frame::new(&"offer"), Err(FrameError::NotAnObject)));
        assert!(matches!(Frame::new(&json!({})), Err(FrameError::NoType)));
        assert!(matches!(
            Frame::new(&json!({"type": ""})),
            Err(FrameError::NoType)
        ));
        assert!(matches!(
            Frame::new(&json!({"type": 3})),
            Err(FrameError::NoType)
        ));
        assert!(matches!(
            Frame::new(&json!({"type": "offer", "seq": 1})),
            Err(FrameError::Reserved("seq"))
        ));
        assert!(matches!(
            Frame::new(&json!({"type": "offer", "epoch": 1})),
            Err(FrameError::Reserved("epoch"))
        ));
        let mut not_json = std::collections::HashMap::new();
        not_json.insert((1, 2), 3);
        assert!(matches!(Frame::new(&not_json), Err(FrameError::Encode(_))));
        assert!(matches!(
            Frame::from_value(json!("offer")),
            Err(FrameError::NotAnObject)
        ));
        assert!(matches!(
            Frame::from_value(json!({"kind": "offer"})),
            Err(FrameError::NoType)
        ));
    }

    #[test]
    fn values_lose_the_numbering_they_carry() {
        let frame =
            Frame::from_value(json!({"type": "offer", "seq": 99, "epoch": 7})).expect("a frame");
        assert_eq!(frame.to_json(), r#"{"type":"offer"}"#);
        assert_eq!(
            numbered(&frame, 5, 1),
            json!({"seq": 1, "epoch": 5, "type": "offer"})
        );
    }

    #[test]
    fn resync_frames_say_where_to_resume() {
        let text = Outgoing::Resync { epoch: 9, seq: 4 }.encode();
        assert_eq!(text.as_str(), r#"{"type":"resync","seq":4,"epoch":9}"#);
        let numbered: Value = serde_json::from_str(
            Outgoing::Message {
                epoch: 9,
                seq: 5,
                body: Utf8Bytes::from_static(RESYNC_BODY),
                trace: None,
            }
            .encode()
            .as_str(),
        )
        .expect("JSON");
        assert_eq!(numbered, json!({"seq": 5, "epoch": 9, "type": "resync"}));
    }
}
