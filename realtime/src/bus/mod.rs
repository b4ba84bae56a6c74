//! Fan-out across instances (issue 7): several `kreki` instances sharing Redis act as one hub.
//!
//! # Design
//!
//! Numbering is central, delivery is everywhere:
//!
//! 1. [`Hub::publish`] hands the envelope to [`RedisBus`] (bounded queue, never waits).
//! 2. The bus's publisher task runs one Lua script (`publish.lua`) per message. Atomically, it
//!    resolves the audience (a user list as given; a role or topic from the sorted sets
//!    `{prefix}role:{role}` / `{prefix}topic:{topic}` whose members carry their session's expiry),
//!    gives each recipient the next `seq` of their numbering (`HINCRBY {prefix}user:{id} seq`,
//!    with an `epoch` made when the hash is created: Unix ms, above every epoch of the prefix),
//!    and appends one entry `{r: "user:epoch:seq,…", b: body}` to the global stream
//!    `{prefix}stream` (`XADD MAXLEN ~ stream_max_entries`).
//! 3. Every instance (the publisher included) reads the stream in order (`XREAD BLOCK`) and
//!    calls [`Hub::deliver_numbered`] for each recipient: the frame with that `seq`/`epoch`
//!    goes to the user's local sockets and into a local replay ring. A frame at or below the
//!    session's `seq` in the same epoch is a duplicate and is skipped.
//!
//! So every instance mirrors the sessions (numbering and replay ring) of every recipient, and a
//! client that reconnects to any instance with `resume_after`/`epoch` is replayed exactly what
//! it missed from that instance's ring. An instance that starts reads the stream from
//! `replay_window_s` ago, so it mirrors the sessions it would have had. The cost: each instance
//! holds every active user's ring (bounded by `replay_messages`, `replay_window_s`,
//! `max_sessions`), as one instance would.
//!
//! Presence: each instance keeps `{prefix}presence:{user}` (a sorted set of instance ids scored by
//! expiry, key TTL `presence_ttl_s`) for the users with a socket on it, refreshed every third of
//! the TTL and removed when the user's last local socket closes: [`RedisBus::instances_of`]
//! tells which instances hold a user (for example, to push to a phone only when none does).
//! The same refresh keeps the connected users' role and topic memberships and numbering alive.
//!
//! # Redis down
//!
//! The hub never waits for Redis. While the bus cannot reach it (a command failed or timed out
//! after `response_timeout_ms`; probed every 250 ms), [`Hub::publish`] delivers on this instance
//! only: each recipient's session switches to a local numbering under a new epoch (so a cursor of
//! it is never taken for a position in the shared numbering: resuming it elsewhere gives
//! `resync`). When Redis answers again, the next shared frame replaces the local numbering (the
//! client sees a new epoch; resuming from a local cursor gives `resync`). What the hub
//! guarantees:
//!
//! - local sockets keep getting what this instance publishes, with or without Redis;
//! - every message published while Redis is reachable reaches every instance's sockets, in
//!   `seq` order, once, including messages published while an instance's reader was
//!   reconnecting (the stream keeps them; unless Redis itself restarted empty in between);
//! - messages to users (offers, withdrawals, a citizen's alert updates) an instance published
//!   while Redis was down reach the other instances' sockets once Redis answers again: the
//!   instance holds them (at most `realtime.redis.queue`, none older than `replay_window_s`;
//!   role and topic broadcasts are not held, dashboards refetch after the new epoch) and hands them over on reconnection, numbered like any
//!   other but marked with it as their origin, so its own reader only records them in the
//!   replay rings and its sockets do not get them twice. Clients that resume across the gap
//!   get `resync` and refetch over HTTP.
//!
//! Keys are built inside the script, so the bus needs a single Redis node (or a cluster with one
//! hash slot per prefix, which this code does not arrange).

pub mod config;
mod redis_bus;

pub use config::RedisBusConfig;
pub use redis_bus::{BusError, RedisBus, SharedAcknowledgements};

use tokio_util::sync::CancellationToken;

use crate::config::RealtimeConfig;
use crate::hub::Hub;

/// The hub this instance should run: with the Redis bus when `config.redis` is set, else one
/// that delivers in this process. Must be called inside the Tokio runtime (it spawns the bus's
/// tasks, which stop when `shutdown` is cancelled). Fails only on an unusable Redis URL; Redis
/// being down is not an error (see the module docs).
pub fn hub(
    config: RealtimeConfig,
    shutdown: CancellationToken,
) -> Result<(Hub, Option<RedisBus>), BusError> {
    match config.redis.clone() {
        Some(redis) => {
            let (hub, bus) = RedisBus::start(config, redis, shutdown)?;
            Ok((hub, Some(bus)))
        }
        None => Ok((Hub::new(config, shutdown), None)),
    }
}

#[cfg(test)]
mod tests;
