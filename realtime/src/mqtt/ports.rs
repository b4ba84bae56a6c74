//! What the MQTT consumer hands on, in transport terms: a panic becomes an alert and a tracker's
//! position feeds the matcher. Dispatch implements both and the binary wires them in; realtime never
//! learns what an alert is beyond its id.

use chrono::{DateTime, Utc};
use kreki_platform::Problem;
use uuid::Uuid;

use crate::ports::BoxFuture;

/// Turns a panic from a device into an alert (dispatch's idempotent ingest, the same as
/// `POST /v1/alerts` with an `Idempotency-Key`).
///
/// Must be idempotent on `idempotency_key`: the consumer derives it from the device and the
/// message, so a re-delivered panic, the same press seen by two instances, or a device's retry
/// within the window all carry the same key and must yield the same alert id.
///
/// Errors: a 4xx problem refuses the panic for good (the device is told why on its ack topic); a
/// 5xx (dispatch or the database is down) is retried a few times with back-off, then the device is
/// told to send again.
pub trait PanicSink: Send + Sync + 'static {
    /// Creates (or finds, by key) the alert of `citizen` at `lat`/`lng` (WGS84 degrees) and returns
    /// its id. `accuracy_m` is the device's fix radius in metres; `kind` is the alert kind the
    /// device asked for (`None`: dispatch's default), unchecked here.
    #[expect(
        clippy::too_many_arguments,
        reason = "the port agreed with dispatch: one call per panic, plain transport values"
    )]
    fn panic(
        &self,
        citizen: Uuid,
        device_id: &str,
        idempotency_key: String,
        lat: f64,
        lng: f64,
        accuracy_m: Option<f64>,
        kind: Option<String>,
    ) -> BoxFuture<'_, Result<Uuid, Problem>>;
}

/// Records a volunteer's position from a tracker (dispatch's matcher and location history).
///
/// Called concurrently (up to `mqtt.max_in_flight` at once), so two positions of one user may
/// arrive out of order: keep the newest `recorded_at`. Errors are counted and logged; positions
/// are not retried (the next one supersedes it).
pub trait LocationSink: Send + Sync + 'static {
    /// One position of `user`: `lat`/`lng` in WGS84 degrees, `accuracy_m` in metres, and when the
    /// device took it (UTC; the time of receipt when the device did not say).
    fn location(
        &self,
        user: Uuid,
        lat: f64,
        lng: f64,
        accuracy_m: Option<f64>,
        recorded_at: DateTime<Utc>,
    ) -> BoxFuture<'_, Result<(), Problem>>;
}
