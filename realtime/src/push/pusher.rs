//! The [`Pusher`]: what the binary calls when dispatch publishes an offer. It publishes the
//! WebSocket frame through the hub and, by the delivery policy, pushes the offer to the user's
//! registered devices (FCM for apps, Web Push for PWAs). Area broadcasts go the same two ways
//! ([`broadcasts`]).
//!
//! Bounded everywhere: at most `push.queue` offers wait (for their grace or a send slot; more
//! are not pushed, counted in `push_dropped_total`), at most `push.concurrency` requests are in
//! flight, at most `push.max_attempts` attempts per device, never past the offer's deadline.
//! 429 and 5xx answers are retried after `Retry-After` when given (capped by
//! `push.max_retry_after_s`), else after an exponential back-off with jitter. Tokens the push
//! service calls dead are deleted.
//!
//! An offer is never only on a socket: with `push_when = "no_ack"` it is pushed unless a socket
//! acknowledged it within `push_grace_ms`, whether or not a socket of the volunteer looked alive
//! (a socket can be open and still not show the offer: a frozen app, a half-open connection, a
//! `resync` the app has not acted on yet). Those pushes are counted by whether a socket was open:
//! `push_unacknowledged_offers_total{socket="open"|"none"}`.
//!
//! Metrics: `push_sent_total{channel}`, `push_pruned_total{channel}`, `push_failed_total{channel}`,
//! `push_retries_total{channel}`, `push_skipped_acked_total`, `push_dropped_total`,
//! `push_unacknowledged_offers_total{socket}`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::Utc;
use kreki_platform::telemetry::traces::continue_trace;
use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;
use uuid::Uuid;

use crate::frame::Frame;
use crate::hub::{Audience, Hub};
use crate::ports::BoxFuture;
use crate::push::config::{PushConfig, PushWhen};
use crate::push::content::Payload;
pub use crate::push::content::PushContent;
use crate::push::device::Target;
use crate::push::error::PushError;
use crate::push::fcm::FcmClient;
use crate::push::store::{self, DeviceRow};
use crate::push::webpush::{VapidKey, WebPushClient};

/// Most broadcasts being pushed at once (each walks its recipients' devices in one task).
const MAX_BROADCASTS_PENDING: usize = 16;

/// What became of one push request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted by the push service.
    Sent,
    /// The token or subscription no longer exists: delete it.
    Dead,
    /// Worth another attempt (429, 5xx, network), after `after` when the service said so.
    Retry {
        /// The service's `Retry-After`.
        after: Option<Duration>,
    },
    /// Refused for a reason another attempt will not fix (logged).
    Failed(String),
    /// The offer's deadline has passed: nothing to send.
    Expired,
}

/// Whether a WebSocket of a user acknowledged a message: what the `no_ack` policy asks after the
/// grace. [`Hub`] answers for its own sockets (the default). With several instances behind a
/// bus, a volunteer's socket may be on another instance: the binary wires an implementation that
/// also knows the acks seen there.
pub trait Acknowledgements: Send + Sync + 'static {
    /// True when a connection of `user` acknowledged `frame` (a message with the same bytes).
    /// Answer `false` when unsure: a push too many is better than an offer missed.
    fn acknowledged(&self, user: Uuid, frame: &Frame) -> BoxFuture<'_, bool>;

    /// True when `user` holds a socket now (here or, with a bus, on any instance): only for
    /// counting offers pushed although a socket looked alive.
    fn connected(&self, user: Uuid) -> BoxFuture<'_, bool>;
}

impl Acknowledgements for Hub {
    fn acknowledged(&self, user: Uuid, frame: &Frame) -> BoxFuture<'_, bool> {
        Box::pin(std::future::ready(Hub::acknowledged(self, user, frame)))
    }

    fn connected(&self, user: Uuid) -> BoxFuture<'_, bool> {
        Box::pin(std::future::ready(self.connections_of(user) > 0))
    }
}

/// Sends offers by push. Cheap to clone; every clone is the same pusher.
#[derive(Clone)]
pub struct Pusher {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Pusher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pusher")
            .field("fcm", &self.inner.fcm.is_some())
            .field("web_push", &self.inner.web.is_some())
            .finish_non_exhaustive()
    }
}

struct Inner {
    config: PushConfig,
    pool: PgPool,
    hub: Hub,
    acks: Arc<dyn Acknowledgements>,
    fcm: Option<FcmClient>,
    web: Option<WebPushClient>,
    pending: Arc<Semaphore>,
    /// Broadcasts being pushed (each one task): apart from `pending`, so many broadcasts never
    /// leave offers without a place in the queue.
    broadcasts_pending: Arc<Semaphore>,
    /// Send slots of offers.
    sends: Semaphore,
    /// Send slots of broadcasts, apart from offers' so a city-wide broadcast never makes an
    /// offer wait for a slot.
    broadcast_sends: Semaphore,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    /// Offers pushed because no socket acknowledged them in time although one was open.
    unacknowledged_open: AtomicU64,
    /// Offers pushed because no socket acknowledged them in time, none being open.
    unacknowledged_none: AtomicU64,
}

impl Pusher {
    /// A pusher with the given clients (`None`: that channel is off, its devices are skipped).
    /// Its work stops when `shutdown` is cancelled.
    pub fn new(
        config: PushConfig,
        pool: PgPool,
        hub: Hub,
        fcm: Option<FcmClient>,
        web: Option<WebPushClient>,
        shutdown: CancellationToken,
    ) -> Self {
        for counter in [
            "push_skipped_acked_total",
            "push_dropped_total",
            "push_broadcast_devices_total",
        ] {
            metrics::counter!(counter).increment(0);
        }
        for socket in ["open", "none"] {
            metrics::counter!("push_unacknowledged_offers_total", "socket" => socket).increment(0);
        }
        let pending = Arc::new(Semaphore::new(config.queue));
        let sends = Semaphore::new(config.concurrency);
        let broadcast_sends = Semaphore::new((config.concurrency / 4).max(1));
        Self {
            inner: Arc::new(Inner {
                config,
                pool,
                acks: Arc::new(hub.clone()),
                hub,
                fcm,
                web,
                pending,
                broadcasts_pending: Arc::new(Semaphore::new(MAX_BROADCASTS_PENDING)),
                sends,
                broadcast_sends,
                tracker: TaskTracker::new(),
                shutdown,
                unacknowledged_open: AtomicU64::new(0),
                unacknowledged_none: AtomicU64::new(0),
            }),
        }
    }

    /// A pusher whose clients come from `config`: FCM when `fcm.service_account_file` is set,
    /// Web Push when `web_push.vapid_private_key` is.
    ///
    /// # Errors
    /// [`PushError::Setup`] naming the key that cannot be used.
    pub fn from_config(
        config: PushConfig,
        pool: PgPool,
        hub: Hub,
        shutdown: CancellationToken,
    ) -> Result<Self, PushError> {
        let timeout = Duration::from_millis(config.request_timeout_ms);
        let fcm = FcmClient::from_config(&config.fcm, timeout)?;
        let web = match &config.web_push.vapid_private_key {
            None => None,
            Some(key) => Some(WebPushClient::new(
                VapidKey::from_base64(key)?,
                config.web_push.subject.clone(),
                timeout,
            )?),
        };
        if fcm.is_none() {
            tracing::warn!("push.fcm.service_account_file is not set: apps get no push");
        }
        if web.is_none() {
            tracing::warn!("push.web_push.vapid_private_key is not set: PWAs get no push");
        }
        Ok(Self::new(config, pool, hub, fcm, web, shutdown))
    }

    /// Replaces where acknowledgements are looked up (the hub of this instance by default). Call
    /// it before the first clone; on a pusher already cloned it is refused (logged).
    #[must_use]
    pub fn with_acknowledgements(mut self, acks: Arc<dyn Acknowledgements>) -> Self {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => inner.acks = acks,
            None => tracing::error!(
                "Pusher::with_acknowledgements on a pusher already cloned: the hub's acks stay"
            ),
        }
        self
    }

    /// The VAPID public key PWAs subscribe with, when Web Push is on.
    pub fn vapid_public_key(&self) -> Option<String> {
        self.inner
            .web
            .as_ref()
            .map(|web| web.key().public_key().to_owned())
    }

    /// The settings in force.
    pub fn config(&self) -> &PushConfig {
        &self.inner.config
    }

    /// Delivers an offer to `user`: publishes `frame` (the WebSocket message, encoded once)
    /// through the hub at once, and pushes `push` to the user's devices: after `push_grace_ms`
    /// unless a WebSocket acknowledged the frame (`push_when = "no_ack"`), or at once
    /// (`"always"`). Synchronous and never waits; call it inside the Tokio runtime. When
    /// `push.queue` offers are waiting already, this one is not pushed (logged, counted).
    pub fn offer_frame(&self, user: Uuid, frame: &Frame, push: PushContent) {
        self.inner.hub.publish_frame(Audience::User(user), frame);
        self.schedule(user, Some(frame.clone()), push);
    }

    /// [`offer_frame`](Self::offer_frame) for a JSON value (a JSON object with `type`). A value
    /// that is not a valid message is not published (logged, counted as a rejected publish); the
    /// push still goes, after the grace under `no_ack` (nothing can acknowledge it).
    pub fn offer(&self, user: Uuid, message: Value, push: PushContent) {
        match Frame::from_value(message) {
            Ok(frame) => self.offer_frame(user, &frame, push),
            Err(error) => {
                metrics::counter!("realtime_rejected_publishes_total").increment(1);
                tracing::error!(%user, offer = %push.offer_id, %error, "offer message not published; pushed only");
                self.schedule(user, None, push);
            }
        }
    }

    fn schedule(&self, user: Uuid, frame: Option<Frame>, push: PushContent) {
        let inner = &self.inner;
        let Ok(permit) = Arc::clone(&inner.pending).try_acquire_owned() else {
            metrics::counter!("push_dropped_total").increment(1);
            tracing::warn!(%user, offer = %push.offer_id, queue = inner.config.queue,
                "push.queue is full: offer not pushed");
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!(%user, "Pusher::offer called outside the Tokio runtime: not pushed");
            return;
        };
        let this = self.clone();
        let published_at = Instant::now();
        runtime.spawn(inner.tracker.track_future(async move {
            this.deliver(user, frame.as_ref(), &push, published_at)
                .await;
            drop(permit);
        }));
    }

    /// Offers that needed the push because no socket acknowledged them within the grace
    /// (`no_ack` policy), since this pusher started: `(with a socket open, with none)`. The same
    /// counts as `push_unacknowledged_offers_total{socket="open"|"none"}`.
    pub fn unacknowledged_offers(&self) -> (u64, u64) {
        (
            self.inner.unacknowledged_open.load(Ordering::Relaxed),
            self.inner.unacknowledged_none.load(Ordering::Relaxed),
        )
    }

    /// Stops taking work and waits up to `within` for pushes in flight (shutdown).
    pub async fn drain(&self, within: Duration) {
        self.inner.tracker.close();
        if tokio::time::timeout(within, self.inner.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("pushes still in flight at shutdown were abandoned");
        }
    }

    async fn deliver(
        &self,
        user: Uuid,
        frame: Option<&Frame>,
        push: &PushContent,
        published_at: Instant,
    ) {
        let inner = &self.inner;
        if inner.config.push_when == PushWhen::NoAck {
            let grace = Duration::from_millis(inner.config.push_grace_ms);
            tokio::select! {
                () = tokio::time::sleep_until(published_at + grace) => {}
                () = inner.shutdown.cancelled() => return,
            }
            if let Some(frame) = frame
                && inner.acks.acknowledged(user, frame).await
            {
                metrics::counter!("push_skipped_acked_total").increment(1);
                tracing::debug!(%user, offer = %push.offer_id, "offer acknowledged on a WebSocket: not pushed");
                return;
            }
            if inner.acks.connected(user).await {
                inner.unacknowledged_open.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("push_unacknowledged_offers_total", "socket" => "open")
                    .increment(1);
                tracing::info!(%user, offer = %push.offer_id,
                    "offer not acknowledged within the grace although a socket is open: pushed");
            } else {
                inner.unacknowledged_none.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("push_unacknowledged_offers_total", "socket" => "none")
                    .increment(1);
            }
        }
        let devices = match store::list(&inner.pool, user).await {
            Ok(devices) => devices,
            Err(error) => {
                tracing::error!(%user, offer = %push.offer_id, %error, "devices could not be read: offer not pushed");
                return;
            }
        };
        // Each device's push is a span in the trace of the work that made the offer (a wave).
        let trace = frame.and_then(Frame::trace).map(|trace| &**trace);
        let sends = devices.iter().map(|device| {
            let span =
                tracing::info_span!("push.send", device = %device.id, offer = %push.offer_id);
            continue_trace(&span, trace);
            self.send_to(device, Payload::Offer(push), &inner.sends)
                .instrument(span)
        });
        futures_util::future::join_all(sends).await;
    }

    /// Pushes to one device with retries, each attempt holding one of `slots`; deletes the
    /// device when the service calls it dead.
    async fn send_to(&self, device: &DeviceRow, payload: Payload<'_>, slots: &Semaphore) {
        let inner = &self.inner;
        let Some(target) = device.target() else {
            tracing::error!(device = %device.id, "stored device does not read; skipped");
            return;
        };
        let channel = match target {
            Target::Fcm { .. } => "fcm",
            Target::Web(_) => "web_push",
        };
        let mut backoff = Duration::from_millis(inner.config.retry_base_ms);
        let cap = Duration::from_secs(inner.config.max_retry_after_s);
        for attempt in 1..=inner.config.max_attempts {
            let outcome = {
                let Ok(_slot) = slots.acquire().await else {
                    return;
                };
                let now = Utc::now();
                match (&target, &inner.fcm, &inner.web) {
                    (Target::Fcm { platform, token }, Some(fcm), _) => {
                        fcm.send(*platform, token, payload, now).await
                    }
                    (Target::Web(subscription), _, Some(web)) => {
                        web.send(subscription, payload, now).await
                    }
                    _ => {
                        tracing::debug!(device = %device.id, channel, "channel not configured; skipped");
                        return;
                    }
                }
            };
            match outcome {
                Outcome::Sent => {
                    metrics::counter!("push_sent_total", "channel" => channel).increment(1);
                    return;
                }
                Outcome::Expired => return,
                Outcome::Dead => {
                    metrics::counter!("push_pruned_total", "channel" => channel).increment(1);
                    match store::prune(&inner.pool, device.id, &device.token).await {
                        Ok(_) => {
                            tracing::info!(device = %device.id, user = %device.user_id, channel, "dead push token deleted")
                        }
                        Err(error) => {
                            tracing::error!(device = %device.id, %error, "dead push token could not be deleted")
                        }
                    }
                    return;
                }
                Outcome::Failed(why) => {
                    metrics::counter!("push_failed_total", "channel" => channel).increment(1);
                    tracing::warn!(device = %device.id, channel, error = %why, "push refused");
                    return;
                }
                Outcome::Retry { after } => {
                    let wait = match after {
                        Some(after) => after.min(cap),
                        None => {
                            let jitter_ms = rand::random_range(0..=inner.config.retry_base_ms / 2);
                            (backoff + Duration::from_millis(jitter_ms)).min(cap)
                        }
                    };
                    backoff = backoff.saturating_mul(2);
                    let deadline =
                        payload.expires_at() - chrono::Duration::from_std(wait).unwrap_or_default();
                    if attempt == inner.config.max_attempts || Utc::now() >= deadline {
                        metrics::counter!("push_failed_total", "channel" => channel).increment(1);
                        tracing::warn!(device = %device.id, channel, attempt, id = %payload.id(), "push given up: retries or its time are spent");
                        return;
                    }
                    metrics::counter!("push_retries_total", "channel" => channel).increment(1);
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = inner.shutdown.cancelled() => return,
                    }
                }
            }
        }
    }
}

mod broadcasts;
