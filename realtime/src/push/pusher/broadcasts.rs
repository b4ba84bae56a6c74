//! Area broadcasts by push: what [`Pusher::broadcast_frame`] does when a coordinator (or a rule
//! relaying a BMKG warning) tells everyone in an area.
//!
//! A broadcast may reach a whole city, so it is one task, not one per person (at most 16 such
//! tasks at once, apart from the offers' `push.queue`, so broadcasts never crowd offers out): recipients are walked in pages of [`PAGE_USERS`], each page's devices read in one
//! query, and its sends run at most `push.concurrency / 4` at a time on slots of their own, so
//! offers (whose sends have the other slots) never wait behind a broadcast. Under
//! `push_when = "no_ack"` the push waits the grace and skips the people whose socket acknowledged
//! the broadcast frame (they saw it in the app); under `"always"` it goes at once to everyone's
//! devices. Nothing is pushed after the broadcast's end.
//!
//! Metrics: `push_broadcast_devices_total` (devices a broadcast was pushed to), and the sends'
//! own `push_sent_total{channel}` and friends.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use kreki_platform::telemetry::traces::continue_trace;
use tracing::Instrument as _;
use uuid::Uuid;

use super::Pusher;
use crate::frame::Frame;
use crate::hub::Audience;
use crate::push::config::PushWhen;
use crate::push::content::{BroadcastContent, Payload};
use crate::push::store::{self, DeviceRow};

/// Recipients whose devices are read and pushed together.
pub const PAGE_USERS: usize = 500;

impl Pusher {
    /// Delivers a broadcast: publishes `frame` (the WebSocket message, encoded once) to every
    /// socket of `recipients` at once, and pushes `content` to their devices by the delivery
    /// policy (see the module). Synchronous and never waits; call it inside the Tokio runtime.
    /// When 16 broadcasts are being pushed already this one is not (logged, counted in
    /// `push_dropped_total`); the sockets have it either way.
    pub fn broadcast_frame(&self, recipients: Vec<Uuid>, frame: &Frame, content: BroadcastContent) {
        if recipients.is_empty() {
            return;
        }
        let inner = &self.inner;
        inner
            .hub
            .publish_frame(Audience::Users(recipients.clone()), frame);
        let Ok(permit) = Arc::clone(&inner.broadcasts_pending).try_acquire_owned() else {
            metrics::counter!("push_dropped_total").increment(1);
            tracing::warn!(broadcast = %content.broadcast_id,
                "too many broadcasts being pushed: this one is not");
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!(broadcast = %content.broadcast_id,
                "Pusher::broadcast_frame called outside the Tokio runtime: not pushed");
            return;
        };
        let this = self.clone();
        let frame = frame.clone();
        let published_at = tokio::time::Instant::now();
        runtime.spawn(inner.tracker.track_future(async move {
            this.deliver_broadcast(&recipients, &frame, &content, published_at)
                .await;
            drop(permit);
        }));
    }

    async fn deliver_broadcast(
        &self,
        recipients: &[Uuid],
        frame: &Frame,
        content: &BroadcastContent,
        published_at: tokio::time::Instant,
    ) {
        let inner = &self.inner;
        let no_ack = inner.config.push_when == PushWhen::NoAck;
        if no_ack {
            let grace = Duration::from_millis(inner.config.push_grace_ms);
            tokio::select! {
                () = tokio::time::sleep_until(published_at + grace) => {}
                () = inner.shutdown.cancelled() => return,
            }
        }
        let trace = frame.trace().map(|trace| &**trace);
        let mut pushed = 0usize;
        let mut seen_in_app = 0usize;
        for page in recipients.chunks(PAGE_USERS) {
            if inner.shutdown.is_cancelled() || Utc::now() >= content.expires_at {
                break;
            }
            let devices = match store::list_of(&inner.pool, page).await {
                Ok(devices) => devices,
                Err(error) => {
                    tracing::error!(broadcast = %content.broadcast_id, %error,
                        "devices could not be read: a page of the broadcast not pushed");
                    continue;
                }
            };
            let devices = if no_ack {
                let (unseen, seen) = self.without_acknowledged(devices, frame).await;
                seen_in_app += seen;
                unseen
            } else {
                devices
            };
            pushed += devices.len();
            metrics::counter!("push_broadcast_devices_total").increment(devices.len() as u64);
            let sends = devices.iter().map(|device| {
                let span = tracing::info_span!("push.send", device = %device.id,
                    broadcast = %content.broadcast_id);
                continue_trace(&span, trace);
                self.send_to(device, Payload::Broadcast(content), &inner.broadcast_sends)
                    .instrument(span)
            });
            futures_util::future::join_all(sends).await;
        }
        tracing::info!(broadcast = %content.broadcast_id, recipients = recipients.len(),
            devices = pushed, seen_in_app, "broadcast pushed");
    }

    /// `devices` less those of people whose socket acknowledged `frame`; and how many people
    /// that left out.
    async fn without_acknowledged(
        &self,
        devices: Vec<DeviceRow>,
        frame: &Frame,
    ) -> (Vec<DeviceRow>, usize) {
        let mut users: Vec<Uuid> = devices.iter().map(|device| device.user_id).collect();
        users.dedup();
        let acks = &self.inner.acks;
        let answers = futures_util::future::join_all(
            users
                .iter()
                .map(|user| async move { (*user, acks.acknowledged(*user, frame).await) }),
        )
        .await;
        let seen: HashSet<Uuid> = answers
            .into_iter()
            .filter_map(|(user, acked)| acked.then_some(user))
            .collect();
        if !seen.is_empty() {
            metrics::counter!("push_skipped_acked_total").increment(seen.len() as u64);
        }
        let unseen = devices
            .into_iter()
            .filter(|device| !seen.contains(&device.user_id))
            .collect();
        (unseen, seen.len())
    }
}
