//! Adapters between the service crates. Each crate declares the ports it needs in its own terms;
//! only the binary knows every crate, so the glue lives here, one small type per port:
//!
//! - dispatch -> realtime: [`HubNotifier`] publishes dispatch's messages through the [`Hub`] (and
//!   offers by push too);
//!   [`AlertTopics`] lets the hub ask dispatch who may follow `alert:{id}`; [`DispatchInbound`]
//!   hands volunteers' `location` frames to dispatch.
//! - lms -> realtime: [`LmsReminders`] delivers certificate reminders through the hub.
//! - lms -> dispatch: [`Certifications`] answers dispatch's eligibility questions from the LMS (and
//!   operators' direct grants); [`EligibilityRelay`] and [`relay_eligibility`] tell dispatch when
//!   someone's certificates changed, through a bounded queue, so the matcher follows within a second.
//! - MQTT -> dispatch: [`MqttPanics`] turns a panic button's press into an alert (idempotent, so a
//!   re-delivered press is one alert); [`MqttLocations`] feeds trackers' positions to the matcher.
//! - bridge <- dispatch: [`IncidentChanges`] feeds dispatch's alert changes to the SATUSEHAT bridge
//!   (read from PostgreSQL, so the bridge may run in a process without dispatch);
//!   [`PractitionerVerified`] stores the bridge's verdicts on the volunteer, or
//!   [`PractitionerVerifiedInDb`] where dispatch runs in another process.

use std::sync::Arc;

use kreki_auth::{CurrentUser, Role};
use kreki_dispatch::{DispatchService, Message, Notifier};
use kreki_platform::Problem;
use kreki_platform::shutdown::CancellationToken;
use kreki_platform::telemetry::traces::traceparent_of;
use kreki_realtime::{BoxFuture, Frame, Hub, InboundHandler, TopicAuthorizer};
use serde::Deserialize;
use tokio::sync::mpsc;
use uuid::Uuid;

/// Dispatch's messages, delivered by the hub. An offer to one volunteer also goes to their phone
/// by push (FCM or Web Push) according to the delivery policy, carrying only the kind and distance.
#[derive(Clone)]
pub struct HubNotifier {
    /// The WebSocket hub.
    pub hub: Hub,
    /// Push delivery, where configured.
    pub pusher: Option<kreki_realtime::push::Pusher>,
    /// Offers by text when no socket acknowledged them, where texts are configured.
    pub texts: Option<crate::sms_offers::OfferTexts>,
}

impl Notifier for HubNotifier {
    /// Encodes `message` once: every audience, socket, replay ring, the Redis bus and the push's
    /// acknowledgement check share the same bytes.
    fn publish(&self, to: &[kreki_dispatch::Audience], message: &Message) {
        // A span of its own in the trace of the work publishing (a wave); the frame carries it
        // to every instance's socket writes and to the push (`realtime.socket_write`, `push.send`).
        let span = tracing::info_span!("realtime.publish", kind = message.kind());
        let _entered = span.enter();
        let frame = match Frame::new(message) {
            Ok(frame) => frame.with_trace(traceparent_of(&span)),
            Err(error) => {
                // Dispatch's messages are tagged objects without `seq`: this is a bug, not input.
                tracing::error!(kind = message.kind(), %error, "dispatch message not published");
                return;
            }
        };
        if let (Some(texts), Message::Escalation { escalation }) = (&self.texts, message) {
            texts.schedule_escalation(escalation);
        }
        for audience in to {
            // An offer to one volunteer also goes to their phone, typed, never parsed back.
            if let (Some(texts), kreki_dispatch::Audience::User(user), Message::Offer { offer }) =
                (&self.texts, audience, message)
            {
                texts.schedule(*user, frame.clone(), offer);
            }
            if let (Some(pusher), kreki_dispatch::Audience::User(user), Message::Offer { offer }) =
                (&self.pusher, audience, message)
            {
                pusher.offer_frame(*user, &frame, push_content(offer));
                continue;
            }
            self.hub.publish_frame(hub_audience(audience), &frame);
        }
    }
}

/// What a push of an offer carries: the kind and the distance (the app fetches the rest with its
/// own token).
fn push_content(offer: &kreki_dispatch::views::Offer) -> kreki_realtime::push::PushContent {
    kreki_realtime::push::PushContent {
        kind: offer.alert.kind.as_str().to_owned(),
        distance_m: offer.distance_m.round().clamp(0.0, f64::from(u32::MAX)) as u32,
        offer_id: offer.id.0,
        alert_id: offer.alert.id.0,
        expires_at: offer.expires_at,
        drill: offer.alert.drill,
    }
}

fn hub_audience(audience: &kreki_dispatch::Audience) -> kreki_realtime::Audience {
    match audience {
        kreki_dispatch::Audience::User(id) => kreki_realtime::Audience::User(*id),
        kreki_dispatch::Audience::Users(ids) => kreki_realtime::Audience::Users(ids.clone()),
        kreki_dispatch::Audience::Role(role) => kreki_realtime::Audience::Role(*role),
        kreki_dispatch::Audience::RoleExcept(role, except) => {
            kreki_realtime::Audience::RoleExcept(*role, except.clone())
        }
        kreki_dispatch::Audience::Topic(topic) => kreki_realtime::Audience::Topic(topic.clone()),
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
            match self.0.may_see_alert(&user, alert.into()).await {
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
            let position = position(frame.lat, frame.lng, frame.accuracy_m)?;
            self.0
                .update_location(
                    user.id.0,
                    &user.name,
                    position.at,
                    position.accuracy_m,
                    None,
                )
                .await
                .map_err(|error| error.to_problem())
        })
    }
}

/// Certificate reminders from the LMS, delivered to the user's WebSocket through the hub's replay
/// ring (so a volunteer who reconnects within the window still gets them). They are also stored by
/// the LMS and readable over HTTP, so a user who never connects loses nothing.
pub struct LmsReminders(pub Hub);

impl kreki_lms::Notifier for LmsReminders {
    fn notify_user(&self, user: Uuid, message: serde_json::Value) {
        self.0
            .publish(kreki_realtime::Audience::User(user), message);
    }
}

/// Dispatch's eligibility source: valid LMS certificates, plus the grants operators make directly
/// with `kreki volunteer grant-cert` (dispatch's own table).
pub struct Certifications {
    /// The training service.
    pub lms: Arc<kreki_lms::LmsService>,
    /// Direct grants.
    pub granted: kreki_dispatch::PgCertificationSource,
}

impl kreki_dispatch::CertificationSource for Certifications {
    fn valid_for(&self, user: Uuid) -> BoxFuture<'_, anyhow::Result<Vec<String>>> {
        Box::pin(async move {
            let mut codes = self.lms.valid_certifications(user).await?;
            codes.extend(self.granted.valid_for(user).await?);
            codes.sort();
            codes.dedup();
            Ok(codes)
        })
    }

    fn all_valid(
        &self,
    ) -> BoxFuture<'_, anyhow::Result<std::collections::HashMap<Uuid, Vec<String>>>> {
        Box::pin(async move {
            let mut all = self.lms.all_valid_certifications().await?;
            for (user, codes) in self.granted.all_valid().await? {
                all.entry(user).or_default().extend(codes);
            }
            for codes in all.values_mut() {
                codes.sort();
                codes.dedup();
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

/// Hands LMS change notices (from this or any instance, via the LMS change feed) to
/// [`relay_eligibility`] without blocking the feed. When the queue is full a notice is dropped and a
/// full rebuild is queued instead, if there is room; the next duty change of the volunteer re-reads
/// their certifications anyway.
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

/// The bridge's practitioner verdicts, stored on the volunteer for kinds that need a health worker.
pub struct PractitionerVerified(pub Arc<DispatchService>);

impl kreki_bridge_satusehat::domain::PractitionerStatusSink for PractitionerVerified {
    fn set_verified(&self, user: Uuid, ihs_number: Option<String>) {
        let dispatch = self.0.clone();
        tokio::spawn(async move {
            if let Err(error) = dispatch
                .set_practitioner_verified(user, ihs_number.is_some())
                .await
            {
                tracing::warn!(%error, %user, "could not store a practitioner verification");
            }
        });
    }
}

/// The bridge's practitioner verdicts where dispatch runs in another process: stored on the
/// volunteer in the shared database, where dispatch reads them at the volunteer's next duty change
/// (or its next matcher rebuild).
pub struct PractitionerVerifiedInDb(pub sqlx::PgPool);

impl kreki_bridge_satusehat::domain::PractitionerStatusSink for PractitionerVerifiedInDb {
    fn set_verified(&self, user: Uuid, ihs_number: Option<String>) {
        let pool = self.0.clone();
        tokio::spawn(async move {
            if let Err(error) =
                kreki_dispatch::store::set_practitioner_verified(&pool, user, ihs_number.is_some())
                    .await
            {
                tracing::warn!(%error, %user, "could not store a practitioner verification");
            }
        });
    }
}

/// Dispatch's alert changes as the bridge's incident feed (each event carries the full state), read
/// from the shared database with dispatch's own feed query: it works whether or not the dispatch
/// service runs in this process.
pub struct IncidentChanges(pub sqlx::PgPool);

impl kreki_bridge_satusehat::domain::IncidentFeed for IncidentChanges {
    fn next_batch(
        &self,
        after: i64,
        limit: u32,
    ) -> BoxFuture<'_, anyhow::Result<Vec<kreki_bridge_satusehat::domain::IncidentEvent>>> {
        Box::pin(async move {
            let changes = kreki_dispatch::service::changes_after(&self.0, after, limit).await?;
            changes.into_iter().map(incident_event).collect()
        })
    }
}

fn incident_event(
    change: kreki_dispatch::service::AlertChange,
) -> anyhow::Result<kreki_bridge_satusehat::domain::IncidentEvent> {
    use kreki_bridge_satusehat::domain::{IncidentEvent, IncidentStatus, Responder};
    use kreki_dispatch::domain::AlertStatus;
    let alert = change.alert;
    Ok(IncidentEvent {
        seq: change.seq,
        alert_id: alert.id.0,
        kind: alert.kind.as_str().to_owned(),
        status: match alert.status {
            // Waiting for a coordinator is, for a health system, not yet dispatched either.
            AlertStatus::Triage | AlertStatus::Dispatching => IncidentStatus::Dispatching,
            AlertStatus::Assigned => IncidentStatus::Assigned,
            AlertStatus::OnScene => IncidentStatus::OnScene,
            AlertStatus::Resolved => IncidentStatus::Resolved,
            AlertStatus::Cancelled => IncidentStatus::Cancelled,
            AlertStatus::Unmatched => IncidentStatus::Unmatched,
        },
        location: (alert.location.lat, alert.location.lng),
        occurred_at: alert.created_at,
        changed_at: alert.updated_at,
        patient_nik: change.patient_nik,
        drill: alert.drill,
        responders: alert
            .assignments
            .into_iter()
            .map(|assignment| Responder {
                volunteer_id: assignment.volunteer.id,
                assignment_id: assignment.id.0,
                status: assignment.status.as_str().to_owned(),
                // The bridge knows verified practitioners' IHS numbers itself.
                ihs_number: None,
            })
            .collect(),
    })
}

/// Panic-button presses from MQTT, ingested like `POST /v1/alerts` on behalf of the device's owner,
/// with the consumer's idempotency key (derived from the device and the message) so a re-delivered
/// press is one alert on any instance.
pub struct MqttPanics(pub Arc<DispatchService>);

impl kreki_realtime::mqtt::PanicSink for MqttPanics {
    fn panic(
        &self,
        citizen: Uuid,
        device_id: &str,
        idempotency_key: String,
        lat: f64,
        lng: f64,
        accuracy_m: Option<f64>,
        kind: Option<String>,
    ) -> BoxFuture<'_, Result<Uuid, Problem>> {
        let device_id = device_id.to_owned();
        Box::pin(async move {
            let key =
                kreki_dispatch::domain::IdempotencyKey::parse(&idempotency_key).map_err(|why| {
                    Problem::validation(vec![kreki_platform::FieldError::new(
                        "idempotency_key",
                        why,
                    )])
                })?;
            let kind = match kind.as_deref() {
                None => kreki_dispatch::domain::AlertKind::Other,
                Some(text) => kreki_dispatch::domain::AlertKind::parse(text).ok_or_else(|| {
                    Problem::validation(vec![kreki_platform::FieldError::new(
                        "kind",
                        "is not a known alert kind",
                    )])
                })?,
            };
            let position = position(lat, lng, accuracy_m)?;
            // The device speaks for its owner; the name shown is the device's, as no person typed it.
            let owner = CurrentUser {
                id: kreki_auth::UserId(citizen),
                roles: kreki_auth::Roles::default(),
                name: format!("panic button {device_id}"),
                // A registered device is trusted by default: nobody is there to take a call-back.
                trust: kreki_auth::Trust::Trusted,
            };
            let request = kreki_dispatch::service::AlertRequest {
                kind,
                at: position.at,
                accuracy_m: position.accuracy_m,
                note: None,
                patient_nik: None,
                drill: false,
            };
            let (alert, _) = self
                .0
                .create_alert(&owner, &key, request)
                .await
                .map_err(|error| error.to_problem())?;
            Ok(alert.id.0)
        })
    }
}

/// Trackers' positions from MQTT, as `POST /v1/volunteers/me/location` of their owner.
pub struct MqttLocations(pub Arc<DispatchService>);

impl kreki_realtime::mqtt::LocationSink for MqttLocations {
    fn location(
        &self,
        user: Uuid,
        lat: f64,
        lng: f64,
        accuracy_m: Option<f64>,
        recorded_at: chrono::DateTime<chrono::Utc>,
    ) -> BoxFuture<'_, Result<(), Problem>> {
        Box::pin(async move {
            let position = position(lat, lng, accuracy_m)?;
            self.0
                .update_location(
                    user,
                    "",
                    position.at,
                    position.accuracy_m,
                    Some(recorded_at),
                )
                .await
                .map_err(|error| error.to_problem())
        })
    }
}

/// A position from a WebSocket frame or an MQTT message, checked like an HTTP body's.
fn position(
    lat: f64,
    lng: f64,
    accuracy_m: Option<f64>,
) -> Result<kreki_dispatch::domain::Position, Problem> {
    kreki_dispatch::domain::Position::parse(lat, lng, accuracy_m, "").map_err(Problem::validation)
}
