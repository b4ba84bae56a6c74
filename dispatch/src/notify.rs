//! The port through which dispatch tells people what happened: typed [`Message`]s (offers,
//! withdrawals, alert and assignment updates, positions) for one or more [`Audience`]s. The binary
//! adapts it to the realtime hub and push; tests record it.
//!
//! Publishing never blocks and never fails the caller: the state change is already committed, and a
//! client that missed a message re-reads the resource.

use std::sync::Mutex;

use kreki_auth::Role;
use uuid::Uuid;

use crate::messages::Message;

/// Who should receive a message (the same shape as the realtime hub's audience).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// One person, on every connection they have.
    User(Uuid),
    /// Several people.
    Users(Vec<Uuid>),
    /// Everyone holding a role (coordinators see everything).
    Role(Role),
    /// Everyone holding a role but these users: a region's news goes to the coordinators except
    /// those assigned to other regions only ([`crate::domain::regions::RegionMap::outsiders`]).
    RoleExcept(Role, Vec<Uuid>),
    /// Everyone subscribed to a topic such as `alert:{id}`.
    Topic(String),
}

/// Delivers dispatch's messages.
pub trait Notifier: Send + Sync + 'static {
    /// Hands `message` to the transport for everyone in `to` (each audience in turn; the
    /// transport may encode the message once for all of them). Must not block.
    fn publish(&self, to: &[Audience], message: &Message);
}

/// A notifier that drops everything (a dispatch instance with no transport wired).
#[derive(Debug, Default, Clone, Copy)]
pub struct NullNotifier;

impl Notifier for NullNotifier {
    fn publish(&self, _to: &[Audience], _message: &Message) {}
}

/// A fake transport that keeps every message, as the JSON a client would receive, once per
/// audience, for tests.
#[derive(Debug, Default)]
pub struct RecordingNotifier {
    messages: Mutex<Vec<(Audience, serde_json::Value)>>,
}

impl RecordingNotifier {
    /// Everything published so far, oldest first.
    pub fn messages(&self) -> Vec<(Audience, serde_json::Value)> {
        self.messages
            .lock()
            .map(|messages| messages.clone())
            .unwrap_or_default()
    }

    /// Messages of `kind` (their `type`) whose audience includes `user` directly.
    pub fn to_user(&self, user: Uuid, kind: &str) -> Vec<serde_json::Value> {
        self.messages()
            .into_iter()
            .filter(|(audience, message)| {
                message["type"] == kind
                    && match audience {
                        Audience::User(id) => *id == user,
                        Audience::Users(ids) => ids.contains(&user),
                        _ => false,
                    }
            })
            .map(|(_, message)| message)
            .collect()
    }

    /// Messages of `kind` sent to everyone holding `role`.
    pub fn to_role(&self, role: Role, kind: &str) -> Vec<serde_json::Value> {
        self.messages()
            .into_iter()
            .filter(|(audience, message)| {
                message["type"] == kind && *audience == Audience::Role(role)
            })
            .map(|(_, message)| message)
            .collect()
    }

    /// Waits (polling every 10 ms, up to `timeout`) until `user` has a message of `kind`.
    pub async fn wait_for_user(
        &self,
        user: Uuid,
        kind: &str,
        timeout: std::time::Duration,
    ) -> Option<serde_json::Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(message) = self.to_user(user, kind).pop() {
                return Some(message);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}

impl Notifier for RecordingNotifier {
    fn publish(&self, to: &[Audience], message: &Message) {
        let json = message.to_json();
        if let Ok(mut messages) = self.messages.lock() {
            messages.extend(to.iter().map(|audience| (audience.clone(), json.clone())));
        }
    }
}
