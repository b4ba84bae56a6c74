//! The hub: who is connected, what each user has been sent, and who gets a published message.
//!
//! Every user the hub knows has a *session* ([`session`]): a sequence counter (`seq`, 1, 2, 3 …
//! per user), an `epoch` naming this numbering (unique per session; a session the hub forgot, by
//! idle expiry or a restart, starts again at 1 under a new epoch, so a client's old cursor is never
//! mistaken for a position in the new one), a bounded replay ring of the messages sent to them
//! (newest `replay_messages`, none older than `replay_window_s`, all rings together within
//! `replay_budget_bytes`: [`budget`]), the topics they follow, the roles their last token carried,
//! and the connections they hold now.
//!
//! A published message is a [`Frame`], encoded once: every ring and connection that gets it holds
//! the same bytes, and each connection puts the recipient's `{"seq":n,"epoch":e,` in front when it
//! writes it. Delivery never waits: each connection has a bounded queue (`try_send`); a connection
//! whose queue is full is too slow and is told to close with 4008, and resumes from the ring.
//!
//! No silent gaps: a client's cursor either resumes exactly (the ring holds every message after
//! it, consecutively) or gets `resync`. Whatever breaks a session's run of numbers (a jump in the
//! bus's numbering, another epoch, a message lost on another instance) empties the ring and sends
//! `resync` to the connections open at that moment, before the next message.
//!
//! All of it sits behind one mutex that is never held across an `.await`, so publishing is
//! synchronous and never waits for a client. Sessions outlive their last connection by
//! `session_idle_s` so a reconnecting user loses nothing within the window; the sweeper
//! ([`crate::worker`]) removes them after.
//!
//! Where things are: [`connections`] attaches and detaches sockets, [`index`] finds who an
//! [`Audience`] names, [`port`] is the bus between instances, [`session`] one user's numbering and
//! ring.
//!
//! Several instances: [`Bus`]. Without one, `publish` numbers and delivers here; with one,
//! `publish` hands the [`Envelope`] to the bus, which numbers it once for every instance and
//! brings it to each instance's [`Hub::deliver_numbered`] (this one included).

mod budget;
mod connections;
mod index;
mod outbound;
mod port;
mod ring;
mod session;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use kreki_auth::{Role, Roles};
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use self::index::remove_from_index;
use self::outbound::OutboundReceiver;
pub(crate) use self::port::Numbered;
pub use self::port::{Bus, Envelope, Numbering};
use self::session::{Continuity, Session};
use crate::config::RealtimeConfig;
use crate::frame::{Frame, Outgoing, Traceparent};

/// Who a published message is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "to", rename_all = "snake_case")]
pub enum Audience {
    /// One user (a volunteer's offer, a citizen's alert). Creates the user's session if they have
    /// none, so the message waits in their replay ring while they reconnect.
    User(Uuid),
    /// Several users; each gets the message once, with their own `seq`. Creates sessions like
    /// [`Audience::User`].
    Users(Vec<Uuid>),
    /// Every user with a session whose roles grant this role (`Roles::grants`: admins get what
    /// coordinators get). Users who never connected are not reached.
    Role(Role),
    /// [`Audience::Role`] but for these users: a region's message goes to every coordinator
    /// except those assigned to other regions only (national ones see every region).
    RoleExcept(Role, Vec<Uuid>),
    /// Every user with a session subscribed to this topic (`alert:{id}`).
    Topic(String),
}

/// Counts of what the hub holds, for tests and diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubStats {
    /// Users with a session (connected, or within `session_idle_s` of their last connection or
    /// message).
    pub sessions: usize,
    /// Open connections attached to sessions.
    pub connections: usize,
    /// Messages kept for replay, over all sessions.
    pub replay_messages: usize,
    /// What they are charged against `replay_budget_bytes`.
    pub replay_bytes: usize,
}

/// The WebSocket hub of one instance. Cheap to clone; every clone is the same hub.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

struct Inner {
    config: RealtimeConfig,
    state: Mutex<State>,
    bus: Option<Arc<dyn Bus>>,
    next_connection: AtomicU64,
    /// Where this hub's own epochs continue (see [`Hub::next_epoch`]).
    next_local_epoch: AtomicU64,
    connection_slots: Arc<Semaphore>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    /// The replay rings' clock starts here (they keep seconds since).
    started: Instant,
}

struct State {
    sessions: HashMap<Uuid, Session>,
    by_role: HashMap<Role, HashSet<Uuid>>,
    by_topic: HashMap<String, HashSet<Uuid>>,
    /// What all rings are charged, in bytes (see [`budget`]).
    replay_bytes: usize,
}

/// What a new connection starts with (crate-internal: the socket task's side of a session).
pub(crate) struct Attachment {
    /// Identifies the connection within its session, for [`Hub::detach`].
    pub id: u64,
    /// Frames to write before any live one: a `resync`, or the replayed messages after
    /// `resume_after`, oldest first.
    pub backlog: Vec<Outgoing>,
    /// Live frames, in `seq` order.
    pub outbound: OutboundReceiver,
    /// Cancelled when the connection's queue overflowed: close with 4008.
    pub kicked: CancellationToken,
}

/// Where a reconnecting client left off: `?resume_after=` and `?epoch=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cursor {
    /// The newest `seq` the client has processed.
    pub after: u64,
    /// The `epoch` that `seq` belongs to, when the client sent it.
    pub epoch: Option<u64>,
}

/// Why a subscription was not recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SubscribeError {
    /// The user follows `max_topics_per_session` topics already.
    TooMany(usize),
}

impl Hub {
    /// A hub delivering in this process only; its connections close with 1001 when `shutdown` is
    /// cancelled.
    pub fn new(config: RealtimeConfig, shutdown: CancellationToken) -> Self {
        Self::build(config, shutdown, None)
    }

    /// A hub whose [`publish_frame`](Self::publish_frame) goes through `bus` (which must call
    /// [`deliver_numbered`](Self::deliver_numbered) on every instance, this one included).
    pub fn with_bus(
        config: RealtimeConfig,
        shutdown: CancellationToken,
        bus: Arc<dyn Bus>,
    ) -> Self {
        Self::build(config, shutdown, Some(bus))
    }

    fn build(
        config: RealtimeConfig,
        shutdown: CancellationToken,
        bus: Option<Arc<dyn Bus>>,
    ) -> Self {
        let connection_slots = Arc::new(Semaphore::new(config.max_connections));
        // Register every series at once, so dashboards show zeros rather than gaps.
        for gauge in [
            "realtime_connections",
            "realtime_sessions",
            "realtime_replay_bytes",
        ] {
            metrics::gauge!(gauge).increment(0.0);
        }
        for counter in [
            "realtime_messages_sent_total",
            "realtime_slow_consumer_disconnects_total",
            "realtime_dropped_messages_total",
            "realtime_rejected_publishes_total",
            "realtime_replay_evictions_total",
        ] {
            metrics::counter!(counter).increment(0);
        }
        for reason in ["resume", "numbering", "lost"] {
            metrics::counter!("realtime_resyncs_total", "reason" => reason).increment(0);
        }
        Self {
            inner: Arc::new(Inner {
                config,
                state: Mutex::new(State {
                    sessions: HashMap::new(),
                    by_role: HashMap::new(),
                    by_topic: HashMap::new(),
                    replay_bytes: 0,
                }),
                bus,
                next_connection: AtomicU64::new(1),
                next_local_epoch: AtomicU64::new(rand::random::<u64>()),
                connection_slots,
                shutdown,
                tracker: TaskTracker::new(),
                started: Instant::now(),
            }),
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &RealtimeConfig {
        &self.inner.config
    }

    /// Sends `frame` to `audience`: synchronous, never waits for a client. The same bytes go to
    /// every recipient's connections and replay ring; the hub puts each recipient's `seq` and
    /// `epoch` in front. A frame too long to write (`max_write_buffer_bytes`) is a bug of the
    /// caller: it is logged, counted (`realtime_rejected_publishes_total`) and dropped. Slow
    /// connections are disconnected (4008), never waited for.
    pub fn publish_frame(&self, audience: Audience, frame: &Frame) {
        if !self.fits(&audience, frame) {
            return;
        }
        let envelope = Envelope {
            audience,
            frame: frame.clone(),
        };
        match &self.inner.bus {
            Some(bus) => bus.send(envelope),
            None => {
                self.deliver(envelope);
            }
        }
    }

    /// Sends `message` to `audience`: [`Frame::from_value`] then
    /// [`publish_frame`](Self::publish_frame). `message` must be a JSON object with a non-empty
    /// string `type` (`offer`, `alert.updated`, …); any `seq` or `epoch` in it is replaced.
    /// Anything else is a bug of the caller: logged, counted and dropped.
    pub fn publish(&self, audience: Audience, message: serde_json::Value) {
        match Frame::from_value(message) {
            Ok(frame) => self.publish_frame(audience, &frame),
            Err(error) => {
                metrics::counter!("realtime_rejected_publishes_total").increment(1);
                tracing::error!(?audience, %error, "published message dropped");
            }
        }
    }

    /// Whether `frame` can ever be written (logged and counted when not).
    fn fits(&self, audience: &Audience, frame: &Frame) -> bool {
        let max_bytes = self.inner.config.max_outbound_frame_bytes();
        // `{"seq":n,"epoch":e,` in front of the body, with up to 20 digits each.
        let longest = frame.len() + 60;
        if longest > max_bytes {
            metrics::counter!("realtime_rejected_publishes_total").increment(1);
            tracing::error!(
                ?audience,
                kind = frame.kind(),
                bytes = longest,
                max_bytes,
                "published message is too long to write (realtime.max_write_buffer_bytes); dropped"
            );
            return false;
        }
        true
    }

    /// Numbers `envelope` here (each recipient's next `seq` in this instance's own numbering) and
    /// delivers it to this instance's sessions; returns how many users it reached. The hub does
    /// this itself without a bus; a bus calls it for a message it cannot carry now (Redis down).
    /// A session that followed the bus's numbering starts an epoch of its own first, and its
    /// connections get `resync`: a cursor of this numbering is never taken for a position in the
    /// shared one.
    pub fn deliver(&self, envelope: Envelope) -> usize {
        let Envelope { audience, frame } = envelope;
        self.deliver_at(&audience, frame.body(), frame.trace(), Instant::now())
    }

    fn deliver_at(
        &self,
        audience: &Audience,
        body: &Utf8Bytes,
        trace: Option<&Traceparent>,
        now: Instant,
    ) -> usize {
        let config = &self.inner.config;
        let now_s = self.clock_s(now);
        let mut guard = self.lock();
        let state = &mut *guard;
        let recipients = state.recipients(audience);
        let share = budget::share(body.len(), recipients.len());
        let mut reached = 0;
        for id in recipients {
            if !state.sessions.contains_key(&id) && !self.room_for_session(state, id) {
                continue;
            }
            let session = state
                .sessions
                .entry(id)
                .or_insert_with(|| Session::new(now, self.next_epoch()));
            let before = session.ring.bytes();
            if session.shared {
                session.renumber(false, self.next_epoch(), 0);
                session.announce_resync("numbering", now);
            }
            session.seq += 1;
            let seq = session.seq;
            session.keep(seq, body.clone(), share, now_s, config);
            state.replay_bytes = state.replay_bytes + session.ring.bytes() - before;
            session.offer(
                &Outgoing::Message {
                    epoch: session.epoch,
                    seq,
                    body: body.clone(),
                    trace: trace.cloned(),
                },
                now,
            );
            reached += 1;
        }
        self.enforce_budget(state);
        reached
    }

    /// Delivers a message the bus numbered: `body` (a [`Frame`]'s) as message `seq` of each
    /// recipient's shared numbering `epoch`. Messages arrive in stream order; one at or below the
    /// session's `seq` in the same epoch was delivered already and is skipped (the `seq`
    /// de-duplicates). Anything but the next number (a jump, another epoch, a local numbering)
    /// empties the ring, so a client resuming from before it gets `resync`, and the open
    /// connections get `resync` before this message. With `send` false the message only goes into
    /// the rings: this instance delivered it to its sockets already while Redis was away (under
    /// its local numbering), so they get a `resync` to it instead. Returns how many recipients
    /// took it.
    pub(crate) fn deliver_numbered(
        &self,
        recipients: &[Numbered],
        body: &Utf8Bytes,
        trace: Option<&Traceparent>,
        send: bool,
    ) -> usize {
        let now = Instant::now();
        let now_s = self.clock_s(now);
        let config = &self.inner.config;
        let share = budget::share(body.len(), recipients.len());
        let mut guard = self.lock();
        let state = &mut *guard;
        let mut taken = 0;
        for &Numbered { user, epoch, seq } in recipients {
            if !state.sessions.contains_key(&user) && !self.room_for_session(state, user) {
                continue;
            }
            let session = state
                .sessions
                .entry(user)
                .or_insert_with(|| Session::new(now, epoch));
            let before = session.ring.bytes();
            // A session whose shared numbering was unknown when it was made takes this message
            // as its starting point: it may be older than the connection (a reader catching up),
            // so the connection gets a `resync` to it instead.
            let send = send && !std::mem::take(&mut session.numbering_unknown);
            let announce = match session.continuity(epoch, seq) {
                Continuity::Duplicate => continue,
                Continuity::Next => false,
                Continuity::Broken { announce } => announce,
            };
            if announce && send {
                session.announce_resync("numbering", now);
            }
            session.seq = seq;
            session.keep(seq, body.clone(), share, now_s, config);
            state.replay_bytes = state.replay_bytes + session.ring.bytes() - before;
            if send {
                session.offer(
                    &Outgoing::Message {
                        epoch,
                        seq,
                        body: body.clone(),
                        trace: trace.cloned(),
                    },
                    now,
                );
            } else {
                session.announce_resync("numbering", now);
            }
            if session.connections.is_empty() {
                // Mirrored sessions of users connected elsewhere live while their messages arrive.
                session.idle_since = now;
            }
            taken += 1;
        }
        self.enforce_budget(state);
        taken
    }

    /// Some message never got a number and is lost (an instance died with it in its queue; the
    /// bus's stream lost entries this instance had not read): every session here takes it as a
    /// gap. Open connections get `resync` now; a cursor at or before the current `seq` gets
    /// `resync` when it resumes. Returns how many sessions were marked.
    pub(crate) fn resync_everyone(&self) -> usize {
        let now = Instant::now();
        let mut guard = self.lock();
        let state = &mut *guard;
        let mut marked = 0;
        for session in state.sessions.values_mut() {
            session.resync_below = session.seq + 1;
            state.replay_bytes -= session.ring.clear();
            session.announce_resync("lost", now);
            marked += 1;
        }
        marked
    }

    /// Whether a session may be made for `user` (`max_sessions`); logged and counted when not.
    fn room_for_session(&self, state: &State, user: Uuid) -> bool {
        let max_sessions = self.inner.config.max_sessions;
        if state.sessions.len() < max_sessions {
            metrics::gauge!("realtime_sessions").increment(1.0);
            return true;
        }
        metrics::counter!("realtime_dropped_messages_total").increment(1);
        tracing::warn!(
            %user,
            max_sessions,
            "realtime.max_sessions reached: message to a user without a session dropped"
        );
        false
    }

    fn enforce_budget(&self, state: &mut State) {
        let limit = self.inner.config.replay_budget_bytes;
        budget::enforce(&mut state.sessions, &mut state.replay_bytes, limit);
        #[expect(clippy::cast_precision_loss, reason = "a gauge; bytes far below 2^52")]
        metrics::gauge!("realtime_replay_bytes").set(state.replay_bytes as f64);
    }

    /// The rings' clock: seconds since the hub started.
    fn clock_s(&self, now: Instant) -> u32 {
        u32::try_from(now.saturating_duration_since(self.inner.started).as_secs())
            .unwrap_or(u32::MAX)
    }

    /// Users with at least one connection here, with their roles and topics: what the bus
    /// refreshes in its presence and audience records.
    pub(crate) fn connected_users(&self) -> Vec<(Uuid, Roles, Vec<String>)> {
        self.lock()
            .sessions
            .iter()
            .filter(|(_, session)| !session.connections.is_empty())
            .map(|(id, session)| {
                (
                    *id,
                    session.roles.clone().unwrap_or_default(),
                    session.topics.iter().cloned().collect(),
                )
            })
            .collect()
    }

    /// The `(epoch, seq)` of `user`'s session, if there is one (tests of the bus).
    #[cfg(test)]
    pub(crate) fn numbering_of(&self, user: Uuid) -> Option<(u64, u64)> {
        self.lock()
            .sessions
            .get(&user)
            .map(|session| (session.epoch, session.seq))
    }

    /// Counts of sessions, connections and what is kept for replay.
    pub fn stats(&self) -> HubStats {
        let state = self.lock();
        debug_assert_eq!(
            state.replay_bytes,
            state
                .sessions
                .values()
                .map(|s| s.ring.bytes())
                .sum::<usize>(),
            "the budget's total is the sum of what the rings are charged"
        );
        HubStats {
            sessions: state.sessions.len(),
            connections: state
                .sessions
                .values()
                .map(|session| session.connections.len())
                .sum(),
            replay_messages: state.sessions.values().map(|s| s.ring.len()).sum(),
            replay_bytes: state.replay_bytes,
        }
    }

    /// How many connections `user` holds now.
    pub fn connections_of(&self, user: Uuid) -> usize {
        self.lock()
            .sessions
            .get(&user)
            .map_or(0, |session| session.connections.len())
    }

    /// A connection slot, or `None` when `max_connections` are open.
    pub(crate) fn try_connection_slot(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.inner.connection_slots)
            .try_acquire_owned()
            .ok()
    }

    /// Cancelled when the process shuts down: every connection closes with 1001.
    pub(crate) fn shutdown(&self) -> &CancellationToken {
        &self.inner.shutdown
    }

    /// At shutdown, once the sockets closed: lets the bus carry what is left (see [`Bus::flush`]).
    pub async fn flush_bus(&self) {
        if let Some(bus) = &self.inner.bus {
            bus.flush().await;
        }
    }

    /// Tracks the socket tasks, so shutdown can wait for them to close.
    pub(crate) fn tracker(&self) -> &TaskTracker {
        &self.inner.tracker
    }

    /// Drops sessions idle for longer than `session_idle_s` and replay frames older than
    /// `replay_window_s`. Returns how many sessions were dropped.
    pub(crate) fn sweep(&self) -> usize {
        self.sweep_at(Instant::now())
    }

    fn sweep_at(&self, now: Instant) -> usize {
        let config = &self.inner.config;
        let now_s = self.clock_s(now);
        let idle = Duration::from_secs(config.session_idle_s);
        let mut guard = self.lock();
        let state = &mut *guard;
        let mut expired = Vec::new();
        for (id, session) in &mut state.sessions {
            let before = session.ring.bytes();
            session.prune(config, now_s);
            state.replay_bytes = state.replay_bytes + session.ring.bytes() - before;
            if session.connections.is_empty() && now.duration_since(session.idle_since) >= idle {
                expired.push(*id);
            }
        }
        for id in &expired {
            if let Some(session) = state.sessions.remove(id) {
                state.replay_bytes -= session.ring.bytes();
                for topic in &session.topics {
                    remove_from_index(&mut state.by_topic, topic, *id);
                }
                if session.roles.is_some() {
                    for role in Role::ALL {
                        remove_from_index(&mut state.by_role, &role, *id);
                    }
                }
            }
        }
        if !expired.is_empty() {
            // Maps keep their largest capacity: give it back after a peak.
            state.sessions.shrink_to(state.sessions.len() * 2);
        }
        self.enforce_budget(state);
        #[expect(
            clippy::cast_precision_loss,
            reason = "a gauge; sessions are far below 2^52"
        )]
        metrics::gauge!("realtime_sessions").set(state.sessions.len() as f64);
        expired.len()
    }

    /// A new epoch of this instance's own numbering: unique within the process (a counter) and,
    /// in practice, across instances and restarts (the counter starts at a random point of 2^52),
    /// so a cursor of one instance's local numbering is never taken for a position in another's.
    /// Local epochs are 2^52 and up, above every shared epoch the bus makes (Unix milliseconds),
    /// and below 2^53, so JavaScript clients hold them exactly.
    fn next_epoch(&self) -> u64 {
        const LOCAL: u64 = 1 << 52;
        let next = self.inner.next_local_epoch.fetch_add(1, Ordering::Relaxed);
        LOCAL | (next & (LOCAL - 1))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent even if a panic interrupted a holder: every mutation is
        // complete before anything that could panic, so a poisoned lock is still usable.
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
