//! The consumer: takes every delivery from the transport, hands panics to [`PanicSink`] and
//! positions to [`LocationSink`], acknowledges panics to the device, and PUBACKs each message
//! once handled.
//!
//! At most `mqtt.max_in_flight` messages are handled at once (a semaphore); the transport's bounded
//! queue holds the next ones, and the broker the rest. A malformed payload, an unknown or revoked
//! device, or a failing sink is logged and counted (`mqtt_messages_total{topic, outcome}`) and never
//! stops the loop; each message is handled in its own task, so even a panic in a sink costs one
//! message.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use kreki_platform::shutdown::CancellationToken;
use serde_json::json;
use sqlx::PgPool;
use tokio::sync::{Semaphore, mpsc};

use super::config::MqttConfig;
use super::credentials::{DeviceId, DeviceKind};
use super::dedup::Deduplicator;
use super::payload::{LocationPayload, PanicPayload};
use super::ports::{LocationSink, PanicSink};
use super::store;
use super::topics::{self, Route};
use super::transport::{Delivery, MqttTransport, TransportEvent};

/// Everything the consumer needs; cheap to clone (all shared).
#[derive(Clone)]
pub struct Consumer {
    inner: Arc<Inner>,
}

struct Inner {
    transport: Arc<dyn MqttTransport>,
    pool: PgPool,
    panics: Arc<dyn PanicSink>,
    locations: Arc<dyn LocationSink>,
    dedup: Deduplicator,
    sink_attempts: u32,
    max_in_flight: usize,
}

fn count(topic: &'static str, outcome: &'static str) {
    metrics::counter!("mqtt_messages_total", "topic" => topic, "outcome" => outcome).increment(1);
}

impl Consumer {
    /// A consumer publishing acks through `transport`, checking devices in `pool`'s registry.
    pub fn new(
        config: &MqttConfig,
        transport: Arc<dyn MqttTransport>,
        pool: PgPool,
        panics: Arc<dyn PanicSink>,
        locations: Arc<dyn LocationSink>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                transport,
                pool,
                panics,
                locations,
                dedup: Deduplicator::new(
                    Duration::from_secs(config.dedup_window_s),
                    config.dedup_max_entries,
                ),
                sink_attempts: config.sink_attempts.max(1),
                max_in_flight: config.max_in_flight.max(1),
            }),
        }
    }

    /// Handles events until `shutdown` or until the transport stops, then waits (up to 5 s) for
    /// the messages in hand.
    pub async fn run(
        self,
        mut events: mpsc::Receiver<TransportEvent>,
        shutdown: CancellationToken,
    ) {
        let max = self.inner.max_in_flight;
        let permits = Arc::new(Semaphore::new(max));
        loop {
            let event = tokio::select! {
                () = shutdown.cancelled() => break,
                event = events.recv() => event,
            };
            let Some(event) = event else { break };
            match event {
                TransportEvent::Connected => metrics::counter!("mqtt_connects_total").increment(1),
                TransportEvent::Disconnected(_) => {}
                TransportEvent::Message(delivery) => {
                    let permit = tokio::select! {
                        () = shutdown.cancelled() => break,
                        permit = permits.clone().acquire_owned() => permit,
                    };
                    // The semaphore is never closed, so this is always a permit.
                    let Ok(permit) = permit else { break };
                    let consumer = self.clone();
                    tokio::spawn(async move {
                        consumer.handle(&delivery).await;
                        if let Err(error) = consumer.inner.transport.ack(&delivery).await {
                            tracing::warn!(%error, "MQTT PUBACK could not be queued");
                        }
                        drop(permit);
                    });
                }
            }
        }
        let all = u32::try_from(max).unwrap_or(u32::MAX);
        if tokio::time::timeout(Duration::from_secs(5), permits.acquire_many(all))
            .await
            .is_err()
        {
            tracing::warn!("MQTT messages still being handled after 5 s; stopping anyway");
        }
    }

    /// Handles one delivery (without the PUBACK). Public for benchmarks and consumers fed otherwise.
    pub async fn handle(&self, delivery: &Delivery) {
        match topics::route(&delivery.topic) {
            Ok(Route::Panic(device)) => self.panic(&device, delivery).await,
            Ok(Route::Location(user)) => self.location(user, delivery).await,
            Err(why) => {
                count("unknown", "malformed");
                tracing::warn!(topic = %delivery.topic, %why, "MQTT message on an unknown topic dropped");
            }
        }
    }

    async fn location(&self, user: uuid::Uuid, delivery: &Delivery) {
        let payload = match LocationPayload::parse(&delivery.payload) {
            Ok(payload) => payload,
            Err(problem) => {
                count("location", "malformed");
                tracing::warn!(%user, problem = %problem, "malformed MQTT location dropped");
                return;
            }
        };
        let recorded_at = payload.recorded_at.unwrap_or_else(Utc::now);
        match self
            .inner
            .locations
            .location(
                user,
                payload.lat,
                payload.lng,
                payload.accuracy_m,
                recorded_at,
            )
            .await
        {
            Ok(()) => count("location", "ok"),
            Err(problem) => {
                count("location", "failed");
                tracing::warn!(%user, problem = %problem, "MQTT location not recorded");
            }
        }
    }

    async fn panic(&self, device: &DeviceId, delivery: &Delivery) {
        if delivery.redelivered {
            metrics::counter!("mqtt_redelivered_total").increment(1);
        }
        let owner = match store::find_live(&self.inner.pool, device).await {
            Ok(Some((owner, DeviceKind::Panic))) => owner,
            Ok(_) => {
                // Unknown, revoked, or a tracker: the broker's ACL should have stopped it; do not
                // answer a device we do not know.
                count("panic", "refused");
                tracing::warn!(%device, "MQTT panic from a device that is not a live panic button dropped");
                return;
            }
            Err(error) => {
                count("panic", "failed");
                tracing::error!(%device, %error, "device registry unavailable; panic not handled");
                let problem = kreki_platform::problem::from_sqlx(&error);
                self.answer(device, &json!({"status": "error", "problem": problem}))
                    .await;
                return;
            }
        };
        let payload = match PanicPayload::parse(&delivery.payload) {
            Ok(payload) => payload,
            Err(problem) => {
                count("panic", "malformed");
                tracing::warn!(%device, problem = %problem, "malformed MQTT panic dropped");
                self.answer(device, &json!({"status": "rejected", "problem": problem}))
                    .await;
                return;
            }
        };
        let key = self.inner.dedup.key(
            device,
            &delivery.payload,
            payload.msg_id.as_deref(),
            Utc::now().timestamp(),
        );
        let mut attempt = 0;
        let result = loop {
            attempt += 1;
            let result = self
                .inner
                .panics
                .panic(
                    owner,
                    device.as_str(),
                    key.clone(),
                    payload.lat,
                    payload.lng,
                    payload.accuracy_m,
                    payload.kind.clone(),
                )
                .await;
            match result {
                Err(problem) if problem.status >= 500 && attempt < self.inner.sink_attempts => {
                    let wait = Duration::from_millis(200 * 2_u64.pow(attempt.min(6) - 1));
                    tracing::warn!(%device, attempt, problem = %problem, "panic not taken yet; retrying");
                    tokio::time::sleep(wait).await;
                }
                other => break other,
            }
        };
        let answer = match result {
            Ok(alert_id) => {
                count("panic", "ok");
                tracing::info!(%device, %alert_id, "MQTT panic became an alert");
                json!({"status": "accepted", "alert_id": alert_id, "msg_id": payload.msg_id})
            }
            Err(problem) if problem.status < 500 => {
                count("panic", "rejected");
                tracing::warn!(%device, problem = %problem, "dispatch refused an MQTT panic");
                json!({"status": "rejected", "problem": problem, "msg_id": payload.msg_id})
            }
            Err(problem) => {
                count("panic", "failed");
                tracing::error!(%device, problem = %problem, "MQTT panic could not be handed to dispatch");
                json!({"status": "error", "problem": problem, "msg_id": payload.msg_id})
            }
        };
        self.answer(device, &answer).await;
    }

    async fn answer(&self, device: &DeviceId, body: &serde_json::Value) {
        let bytes = body.to_string().into_bytes();
        if let Err(error) = self
            .inner
            .transport
            .publish(topics::ack(device), bytes)
            .await
        {
            tracing::warn!(%device, %error, "MQTT panic acknowledgement could not be queued");
        }
    }
}
