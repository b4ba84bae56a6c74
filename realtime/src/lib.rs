//! KREKI's real-time transport: the WebSocket hub at `GET /v1/ws` of one instance.
//!
//! It knows users, roles, topics and connections, never alerts: dispatch publishes a typed
//! message encoded once as a [`Frame`] to a user, a role or a topic through
//! [`Hub::publish_frame`], and the hub numbers
//! it per user (`seq` within an `epoch`), keeps it for replay, and writes it to every connection of each recipient without
//! ever waiting for a slow one.
//!
//! - [`config`]: [`RealtimeConfig`], the `[realtime]` section (every buffer and queue size).
//! - [`frame`]: [`Frame`], a message encoded once whose bytes every socket and replay ring share.
//! - [`hub`]: [`Hub`], sessions (`seq`, replay ring, topics, roles), [`Audience`], and the [`Bus`]
//!   seam for fan-out across instances (issue 7).
//! - [`bus`]: [`bus::RedisBus`], fan-out across instances through Redis (numbering, presence,
//!   behaviour with Redis down), and [`bus::hub`], which picks it when `[realtime.redis]` is set.
//! - [`ports`]: [`TopicAuthorizer`] and [`InboundHandler`], which the binary wires to dispatch, and
//!   their safe defaults.
//! - [`protocol`]: client frames and the frames a connection answers with itself.
//! - [`connection`]: one socket's task: backlog, live frames, heartbeat, backpressure, close codes.
//! - [`routes`]: `GET /v1/ws` and its OpenAPI description.
//! - [`worker`]: sweeping idle sessions; waiting for sockets to close at shutdown.
//! - [`error`]: [`RealtimeError`] and its mapping to problem+json.
//! - [`push`]: device registration, FCM HTTP v1 and Web Push delivery of offers by policy
//!   ([`push::Pusher::offer`]), and the fake FCM.
//! - [`mqtt`]: MQTT panic buttons and trackers: device registry, broker credentials, consumer.
//!
//! Metrics: `realtime_connections` (gauge), `realtime_sessions` (gauge),
//! `realtime_messages_sent_total`, `realtime_slow_consumer_disconnects_total`,
//! `realtime_dropped_messages_total` (no session could be made), `realtime_rejected_publishes_total`
//! (a message without `type`).

pub mod bus;
pub mod config;
pub mod connection;
pub mod erasure;
pub mod error;
pub mod frame;
pub mod hub;
pub mod mqtt;
pub mod ports;
pub mod protocol;
pub mod push;
pub mod routes;
pub mod worker;

pub use config::RealtimeConfig;
pub use error::RealtimeError;
pub use frame::{Frame, FrameError, Traceparent};
pub use hub::{Audience, Bus, Envelope, Hub, HubStats, Numbering};
pub use ports::{BoxFuture, InboundHandler, NoInbound, OwnTopicOnly, TopicAuthorizer};
pub use routes::{RealtimeState, router};
