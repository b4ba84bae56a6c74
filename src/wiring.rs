//! Adapters between the service crates. Each crate declares the ports it needs in its own terms;
//! only the binary knows every crate, so the glue lives here, one small type per port.
//!
//! - LMS reminders reach WebSockets through the hub ([`HubNotifier`]).
//! - Dispatch publishes through the hub ([`DispatchHubNotifier`]); the hub asks dispatch whether a
//!   user may follow `alert:{id}` ([`AlertTopics`]) and hands it volunteers' `location` frames
//!   ([`DispatchInbound`]).
//! - Dispatch reads certifications from the LMS and from its own grants ([`Certifications`]); the
//!   LMS tells it when they change ([`EligibilityRelay`], [`relay_eligibility`]).

use std::sync::Arc;

use kreki_auth::{CurrentUser, Role};
use std::collections::HashMap;

use futures::future::BoxFuture as FutureBox;
use kreki_dispatch::{CertificationSource, DispatchService, Notifier, PgCertificationSource};
use kreki_platform::Problem;
use kreki_platform::shutdown::CancellationToken;
use kreki_realtime::{Audience, BoxFuture, Hub, InboundHandler, TopicAuthorizer};
use serde::Deserialize;
use tokio::sync::mpsc;
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

/// Valid certifications from both places they come from: certificates the LMS issued (courses,
/// trainers) and grants made with `kreki volunteer grant-cert`.
pub struct Certifications {
    /// The LMS.
    pub lms: Arc<kreki_lms::LmsService>,
    /// Dispatch's own grants.
    pub granted: PgCertificationSource,
}

impl CertificationSource for Certifications {
    fn valid_for(&self, user: Uuid) -> FutureBox<'_, anyhow::Result<Vec<String>>> {
        Box::pin(async move {
            let mut codes = self
                .lms
                .valid_certifications(user)
                .await
                .map_err(|error| anyhow::anyhow!("lms: {error}"))?;
            codes.extend(self.granted.valid_for(user).await?);
            codes.sort();
            codes.dedup();
            Ok(codes)
        })
    }

    fn all_valid(&self) -> FutureBox<'_, anyhow::Result<HashMap<Uuid, Vec<String>>>> {
        Box::pin(async move {
            let mut all = self
                .lms
                .all_valid_certifications()
                .await
                .map_err(|error| anyhow::anyhow!("lms: {error}"))?;
            for (user, codes) in self.granted.all_valid().await? {
                let entry = all.entry(user).or_default();
                entry.extend(codes);
                entry.sort();
                entry.dedup();
            }
            Ok(all)
        })
    }
}

/// What the LMS said changed.
#[derive(Debug, Clone, Copy)]
pub enum EligibilityChange {
    /// One user's certifications.
    User(Uuid),
    /// Possibly anyone's (a missed notification): rebuild the matcher.
    Everyone,
}

/// Hands LMS change notices to [`relay_eligibility`] without blocking the LMS. When the queue is
/// full a notice is dropped and a full rebuild is queued instead, if there is room; the next
/// duty change of the volunteer re-reads their certifications anyway.
pub struct EligibilityRelay(pub mpsc::Sender<EligibilityChange>);

impl kreki_lms::CertificationListener for EligibilityRelay {
    fn changed(&self, user: Uuid) {
        if self.0.try_send(EligibilityChange::User(user)).is_err() {
            tracing::warn!(%user, "eligibility relay full; asking for a rebuild");
            if self.0.try_send(EligibilityChange::Everyone).is_err() {
                tracing::warn!("eligibility relay full; rebuild request dropped");
            }
        }
    }

    fn resync(&self) {
        if self.0.try_send(EligibilityChange::Everyone).is_err() {
            tracing::warn!("eligibility relay full; rebuild request dropped");
        }
    }
}

/// Applies LMS change notices to dispatch's matcher until `shutdown`.
pub async fn relay_eligibility(
    dispatch: Arc<DispatchService>,
    mut changes: mpsc::Receiver<EligibilityChange>,
    shutdown: CancellationToken,
) {
    loop {
        let change = tokio::select! {
            () = shutdown.cancelled() => return,
            change = changes.recv() => match change {
                Some(change) => change,
                None => return,
            },
        };
        let outcome = match change {
            EligibilityChange::User(user) => dispatch
                .eligibility_changed(user)
                .await
                .map_err(|error| error.to_string()),
            EligibilityChange::Everyone => dispatch
                .rebuild_index()
                .await
                .map_err(|error| format!("{error:#}")),
        };
        if let Err(error) = outcome {
            tracing::warn!(?change, %error, "eligibility change not applied");
        }
    }
}
