//! Fan-out across instances: several `kreki` instances sharing Redis act as one hub.
//!
//! # Design
//!
//! Numbering is central, delivery is everywhere:
//!
//! 1. [`Hub::publish_frame`](crate::Hub::publish_frame) hands the envelope (audience and
//!    [`Frame`](crate::Frame): the message encoded once) to [`RedisBus`], which puts it in its
//!    bounded outbox ([`outbox`]) and returns; it never waits.
//! 2. The publisher task ([`publisher`]) takes up to 256 commands at a time and runs them in one
//!    pipelined round trip: per message one Lua script (`publish.lua`) that, atomically, resolves
//!    the audience (a user list as given; a role or topic from the sorted sets
//!    `{prefix}role:{role}` / `{prefix}topic:{topic}` whose members carry their session's expiry),
//!    gives each recipient the next `seq` of their numbering (`HINCRBY {prefix}user:{id} seq`,
//!    with an `epoch` made when the hash is created: Unix ms, above every epoch of the prefix),
//!    and appends one entry `{r: "user:epoch:seq,…", b: body, n}` to the global stream
//!    `{prefix}stream` (`XADD MAXLEN ~ stream_max_entries`); `n` numbers the entries themselves.
//! 3. Every instance (the publisher included) reads the stream in order ([`reader`]) and hands
//!    each entry to [`Hub::deliver_numbered`](crate::Hub): the same body goes to the recipients'
//!    local sockets and replay rings with their `seq`/`epoch`.
//!
//! So every instance mirrors the sessions (numbering and replay ring) of every recipient, and a
//! client that reconnects to any instance with `resume_after`/`epoch` is replayed exactly what
//! it missed from that instance's ring, or told `resync`. An instance that starts reads the stream
//! from `replay_window_s` ago, so it mirrors the sessions it would have had.
//!
//! # Never a silent gap
//!
//! Every message a user should get is delivered in `seq` order, or replayed on resume, or the
//! user's clients are sent `resync` (they refetch over HTTP):
//!
//! - **outbox full** (Redis slow, a burst): the message is not delivered anywhere; its audience is
//!   recorded as a gap and the next batch starts with a numbered `resync` message to it (one per
//!   audience however many messages it lost). Never a local-only numbering that a cursor of the
//!   shared one could replay past;
//! - **Redis down** (a command failed or timed out after `response_timeout_ms`; probed every
//!   250 ms): the publisher delivers each message on this instance under a local numbering (each
//!   recipient's session starts an epoch of its own, and its open sockets get `resync`, so a
//!   cursor of it is never taken for a position in the shared numbering) and holds messages to
//!   users for the other instances (at most `queue`, none older than `replay_window_s`); when
//!   Redis answers again it hands them over, numbered like any other but marked with this
//!   instance as their origin (its own reader only records them), then pays the gaps: role and
//!   topic broadcasts and whatever did not fit in the hold get `resync`;
//! - **an instance dies** (SIGKILL, a crash) with messages in its outbox: every instance records
//!   that it is alive in `{prefix}alive` (`alive.lua`, every third of `presence_ttl_s`) and says
//!   goodbye when it stops with nothing owed. One that stops refreshing without a goodbye is
//!   reaped by the next instance that refreshes: a `{g, n}` entry makes every instance resync
//!   every session (nobody knows whom the lost messages were for). An instance restarted under the
//!   same configured `instance_id` finds its own record and does the same;
//! - **the stream loses entries** this instance had not read (it fell `stream_max_entries`
//!   behind, or Redis restarted empty): the entry numbers `n` jump or start again; every session
//!   here resyncs;
//! - **a number jumps or the epoch changes** for one user (Redis restarted empty, a local
//!   numbering ends): the session's ring is emptied (resuming from before gets `resync`) and its
//!   open sockets get `resync` before the next message.
//!
//! An instance that starts waits for Redis before publishing anything (messages wait in the
//! outbox; it delivers locally only once Redis failed to answer), so what it publishes right
//! after a restart reaches every instance.
//!
//! Presence: each instance keeps `{prefix}presence:{user}` (a sorted set of instance ids scored by
//! expiry, key TTL `presence_ttl_s`) for the users with a socket on it, refreshed every third of
//! the TTL and removed when the user's last local socket closes: [`RedisBus::instances_of`]
//! tells which instances hold a user (for example, to push to a phone only when none does).
//! The same refresh keeps the connected users' role and topic memberships and numbering alive.
//!
//! Keys are built inside the scripts, so the bus needs a single Redis node (or a cluster with one
//! hash slot per prefix, which this code does not arrange).

mod acks;
mod backend;
pub mod config;
mod handle;
#[cfg(test)]
mod model;
mod outbox;
mod publisher;
mod reader;
mod redis_bus;

pub use acks::SharedAcknowledgements;
pub use config::RedisBusConfig;
pub use redis_bus::{BusError, RedisBus};

use tokio_util::sync::CancellationToken;

use crate::config::RealtimeConfig;
use crate::hub::Hub;

/// The hub this instance should run: with the Redis bus when `config.redis` is set, else one
/// that delivers in this process. Must be called inside the Tokio runtime (it spawns the bus's
/// tasks, which stop after `shutdown` is cancelled). Fails only on an unusable Redis URL; Redis
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
