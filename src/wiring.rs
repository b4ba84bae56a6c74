//! Adapters between the service crates. Each crate declares the ports it needs in its own terms;
//! only the binary knows every crate, so the glue lives here, one small type per port.
//!
//! - LMS reminders reach WebSockets through the hub ([`HubNotifier`]).
//! - Dispatch publishes through the hub ([`DispatchHubNotifier`]); the hub asks dispatch whether a
//!   user may follow `alert:{id}` ([`AlertTopics`]) and hands it volunteers' `location` frames
//!   ([`DispatchInbound`]).

use std::sync::Arc;

use kreki_auth::{CurrentUser, Role};
use kreki_dispatch::{DispatchService, Notifier};
use kreki_platform::Problem;
use kreki_realtime::{Audience, BoxFuture, Hub, InboundHandler, TopicAuthorizer};
use serde::Deserialize;
use uuid::Uuid;

/// Delivers LMS notifications (certificate expiry reminders) to the user's WebSocket, through the
/// hub's replay ring, so a volunteer who reconnects within the window still gets them. They are
/// also stored by the LMS and readable over HTTP, so a user never connected loses nothing.
pub struct HubNotifier(pub Hub);

impl kreki_lms::Notifier for HubNotifier {
    fn notify_user(&self, user: Uuid, message: serde_json::Value) {
        self.0.publish(Audience::User(user), message);
    }
}

/// Dispatch's messages, delivered by the hub.
#[derive(Clone)]
pub struct DispatchHubNotifier(pub Hub);

impl Notifier for DispatchHubNotifier {
    fn publish(&self, audience: kreki_dispatch::Audience, message: serde_json::Value) {
        let audience = match audience {
            kreki_dispatch::Audience::User(id) => Audience::User(id),
            kreki_dispatch::Audience::Users(ids) => Audience::Users(ids),
            kreki_dispatch::Audience::Role(role) => Audience::Role(role),
            kreki_dispatch::Audience::Topic(topic) => Audience::Topic(topic),
        };
        self.0.publish(audience, message);
    }
}

/// `alert:{id}` for those who may see the alert (its citizen, its volunteers, coordinators);
/// `user:{own id}` for oneself; nothing else.
pub struct AlertTopics(pub Arc<DispatchService>);

impl TopicAuthorizer for AlertTopics {
    fn may_subscribe(&self, user: &CurrentUser, topic: &str) -> BoxFuture<'_, bool> {
        let user = user.clone();
        let topic = topic.to_owned();
        Box::pin(async move {
            if let Some(id) = topic.strip_prefix("user:") {
                return id == user.id.0.to_string();
            }
            let Some(Ok(alert)) = topic.strip_prefix("alert:").map(Uuid::parse_str) else {
                return false;
            };
            match self.0.may_see_alert(&user, alert).await {
                Ok(allowed) => allowed,
                Err(error) => {
                    tracing::warn!(%error, %topic, "topic check failed; refusing");
                    false
                }
            }
        })
    }
}

/// A `{"type":"location", lat, lng, accuracy_m?}` frame.
#[derive(Debug, Deserialize)]
struct LocationFrame {
    lat: f64,
    lng: f64,
    accuracy_m: Option<f64>,
}

/// Volunteers' `location` frames go to dispatch like `POST /v1/volunteers/me/location`.
pub struct DispatchInbound(pub Arc<DispatchService>);

impl InboundHandler for DispatchInbound {
    fn handle(
        &self,
        user: &CurrentUser,
        message: serde_json::Value,
    ) -> BoxFuture<'_, Result<(), Problem>> {
        let user = user.clone();
        Box::pin(async move {
            let kind = message
                .get("type")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_owned();
            if kind != "location" {
                return Err(kreki_realtime::ports::unknown_type(&kind));
            }
            user.require(Role::Volunteer)
                .map_err(|error| error.to_problem())?;
            let bytes = serde_json::to_vec(&message)
                .map_err(|error| Problem::bad_request(error.to_string()))?;
            let frame: LocationFrame = kreki_platform::extract::parse_json(&bytes)?;
            let (at, accuracy_m) =
                kreki_dispatch::routes::parse_position(frame.lat, frame.lng, frame.accuracy_m, "")
                    .map_err(|error| error.to_problem())?;
            self.0
                .update_location(user.id.0, &user.name, at, accuracy_m, None)
                .await
                .map_err(|error| error.to_problem())
        })
    }
}
