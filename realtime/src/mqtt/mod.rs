//! MQTT devices (issue 7, item 4): panic buttons and location trackers talking to the broker
//! (Mosquitto locally, EMQX in production).
//!
//! - [`credentials`]: device ids (= MQTT usernames), passwords, Mosquitto's `$7$` hash, and the
//!   broker's password and ACL files.
//! - [`store`]: the registry, `realtime.mqtt_devices`.
//! - [`routes`]: `POST`/`GET /v1/mqtt/devices`, `DELETE /v1/mqtt/devices/{id}`.
//! - [`sync`]: `kreki mqtt sync-credentials`: the registry to the broker's files.
//! - [`topics`], [`payload`]: the wire of docs/API.md, validated once.
//! - [`transport`]: our own seam over rumqttc ([`MqttTransport`], [`connect_rumqttc`]).
//! - [`consumer`]: QoS 1 consumer, bounded in-flight work, acks, robust to bad input.
//! - [`dedup`]: the idempotency key that makes a re-delivered panic one alert.
//! - [`ports`]: [`PanicSink`], [`LocationSink`], implemented by dispatch, wired by the binary.
//! - [`config`]: the `[mqtt]` section.
//!
//! Metrics: `mqtt_messages_total{topic, outcome}` (`ok`, `malformed`, `refused`, `rejected`,
//! `failed`), `mqtt_redelivered_total`, `mqtt_connects_total`, `mqtt_disconnects_total`,
//! `mqtt_subscribe_refused_total`.

pub mod config;
pub mod consumer;
pub mod credentials;
pub mod dedup;
pub mod error;
pub mod payload;
pub mod ports;
pub mod routes;
pub mod store;
pub mod sync;
pub mod topics;
pub mod transport;

pub use config::MqttConfig;
pub use consumer::Consumer;
pub use error::MqttError;
pub use ports::{LocationSink, PanicSink};
pub use routes::{MqttState, router};
pub use transport::{Delivery, MqttTransport, TransportEvent, TransportOptions, connect_rumqttc};

use kreki_platform::shutdown::CancellationToken;
use std::sync::Arc;

/// Starts the consumer from `[mqtt]`: connects (retrying forever in the background), subscribes
/// to every panic and location topic (shared through `$share/<group>/` when configured) and runs
/// until `shutdown`. The binary spawns this when `mqtt.enabled` and dispatch's sinks exist.
pub async fn run(
    config: MqttConfig,
    pool: sqlx::PgPool,
    panics: Arc<dyn PanicSink>,
    locations: Arc<dyn LocationSink>,
    shutdown: CancellationToken,
) {
    let (transport, events, driver) =
        connect_rumqttc(TransportOptions::from_config(&config), shutdown.clone());
    let consumer = Consumer::new(&config, transport, pool, panics, locations);
    consumer.run(events, shutdown).await;
    let _ = driver.await;
}
