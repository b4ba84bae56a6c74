//! Push (issue 7, items 1 to 3): offers reach a volunteer whose app is in the background.
//!
//! - [`config`]: [`PushConfig`], the `[push]` section (policy, grace, queue, concurrency,
//!   retries, FCM service account, VAPID key).
//! - [`device`]: [`Platform`], FCM tokens and Web Push subscriptions, validated at the edge.
//! - [`store`]: `realtime.devices` (one row per app install or browser).
//! - [`routes`]: `POST/GET /v1/devices`, `DELETE /v1/devices/{id}`, `GET /v1/devices/vapid`.
//! - [`pusher`]: [`Pusher::offer`], the entry point when dispatch publishes an offer: the
//!   WebSocket frame through the hub, then a push by the delivery policy (`push_when`: `no_ack`
//!   waits `push_grace_ms` for a `{"type":"ack","seq":n}` on a socket; `always`).
//!   [`Pusher::broadcast_frame`] does the same for an area broadcast (one task per broadcast).
//! - [`content`]: what a push may say ([`PushContent`] of an offer, [`BroadcastContent`]).
//! - [`fcm`]: the FCM HTTP v1 client (OAuth2 by `gcp_auth`, `messages:send`, error reading).
//! - [`webpush`]: Web Push with VAPID (`web-push-native` encrypts; ES256 by `jsonwebtoken`).
//! - [`fake_fcm`]: [`FakeFcm`], a faithful fake of FCM (and of a browser push service) for tests
//!   and `kreki demo`.
//! - [`error`]: [`PushError`] and its problem+json.

pub mod config;
pub mod content;
pub mod device;
pub mod error;
pub mod fake_fcm;
pub mod fcm;
pub mod pusher;
pub mod routes;
pub mod store;
pub mod webpush;

pub use config::{FcmConfig, PushConfig, PushWhen, WebPushConfig};
pub use content::{BroadcastContent, Payload};
pub use device::Platform;
pub use error::PushError;
pub use fake_fcm::{FakeFcm, Fault};
pub use fcm::FcmClient;
pub use pusher::{Acknowledgements, Outcome, PushContent, Pusher};
pub use routes::{DevicesState, router};
pub use webpush::{VapidKey, WebPushClient};
