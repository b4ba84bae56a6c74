//! The ports through which the hub asks the rest of KREKI what it cannot know itself: whether a user
//! may follow a topic (`alert:{id}` is dispatch's business), and what to do with the messages
//! clients send (a volunteer's `location`). The binary wires dispatch's implementations in; the
//! defaults here are safe for tests and for a process that runs the hub alone.

use std::future::Future;
use std::pin::Pin;

use http::StatusCode;
use kreki_auth::CurrentUser;
use kreki_platform::Problem;

/// A boxed, `Send` future: what the ports return, so they stay object safe (`Arc<dyn Port>`).
/// The same type as `futures::future::BoxFuture`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Decides whether a user may subscribe to a topic such as `alert:{id}`.
///
/// Called once per `{"type":"subscribe"}` frame, off the hub's lock; a slow answer delays only that
/// connection's reading. Answer `false` for topics you do not know: the client gets a 403 error
/// frame naming `topic`.
pub trait TopicAuthorizer: Send + Sync + 'static {
    /// True when `user` may receive messages published to `topic`.
    fn may_subscribe(&self, user: &CurrentUser, topic: &str) -> BoxFuture<'_, bool>;
}

/// Handles every client message whose `type` the hub does not handle itself (it handles `ping`,
/// `subscribe` and `unsubscribe`), for example `{"type":"location","lat":..,"lng":..}`.
///
/// `message` is a JSON object with a string `type`. An `Err` is sent back to that connection as
/// `{"type":"error","problem":{..}}` and the socket stays open; name the field that is wrong
/// (`Problem::validation`), and answer unknown types with a 422 naming `type`.
pub trait InboundHandler: Send + Sync + 'static {
    /// Acts on one message from `user`.
    fn handle(
        &self,
        user: &CurrentUser,
        message: serde_json::Value,
    ) -> BoxFuture<'_, Result<(), Problem>>;
}

/// The default [`TopicAuthorizer`]: a user may follow `user:{their own id}` and nothing else.
#[derive(Debug, Clone, Copy, Default)]
pub struct OwnTopicOnly;

impl TopicAuthorizer for OwnTopicOnly {
    fn may_subscribe(&self, user: &CurrentUser, topic: &str) -> BoxFuture<'_, bool> {
        let allowed = topic
            .strip_prefix("user:")
            .is_some_and(|id| id == user.id.0.to_string());
        Box::pin(std::future::ready(allowed))
    }
}

/// The default [`InboundHandler`]: knows no message type, so every one is answered with a 422
/// naming `type`. Safe where nothing is wired in (a hub running alone, tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoInbound;

impl InboundHandler for NoInbound {
    fn handle(
        &self,
        _user: &CurrentUser,
        message: serde_json::Value,
    ) -> BoxFuture<'_, Result<(), Problem>> {
        let kind = message
            .get("type")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned();
        Box::pin(std::future::ready(Err(unknown_type(&kind))))
    }
}

/// The problem for a client message of a type nobody handles: a 422 naming `type`. Public so
/// inbound handlers answer unknown types the same way.
pub fn unknown_type(kind: &str) -> Problem {
    Problem::validation(vec![kreki_platform::FieldError::new(
        "type",
        format!("`{kind}` is not a message type this server accepts"),
    )])
}

/// The problem for an inbound handler that did not answer in time: a retryable 503.
pub(crate) fn inbound_timeout() -> Problem {
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "Service unavailable",
    )
    .with_detail("The message could not be handled in time; send it again.")
    .with_retry_after_s(1)
}

#[cfg(test)]
mod tests {
    use kreki_auth::{Roles, UserId};

    use super::*;

    fn user() -> CurrentUser {
        CurrentUser {
            id: UserId::new(),
            roles: Roles::default(),
            name: "Sari".to_owned(),
            trust: kreki_auth::Trust::New,
        }
    }

    #[tokio::test]
    async fn own_topic_only_allows_exactly_the_users_own_topic() {
        let user = user();
        let own = format!("user:{}", user.id);
        assert!(OwnTopicOnly.may_subscribe(&user, &own).await);
        assert!(
            !OwnTopicOnly
                .may_subscribe(&user, &format!("user:{}", UserId::new()))
                .await
        );
        assert!(!OwnTopicOnly.may_subscribe(&user, "alert:1").await);
        assert!(!OwnTopicOnly.may_subscribe(&user, &format!("{own}x")).await);
    }

    #[tokio::test]
    async fn no_inbound_names_the_type_it_refuses() {
        let problem = NoInbound
            .handle(&user(), serde_json::json!({"type": "location"}))
            .await
            .expect_err("nothing is handled");
        assert_eq!(problem.status, 422);
        assert_eq!(problem.errors[0].field, "type");
        assert!(problem.errors[0].message.contains("location"));
    }
}
