//! The hub: who is connected, what each user has been sent, and who gets a published message.
//!
//! Every user the hub knows has a *session*: a sequence counter (`seq`, 1, 2, 3 … per user), an
//! `epoch` naming this numbering (unique per session; a session the hub forgot, by idle expiry or a
//! restart, starts again at 1 under a new epoch, so a client's old cursor is never mistaken for a
//! position in the new one), a
//! bounded replay ring of the frames sent to them (newest `replay_messages`, none older than
//! `replay_window_s`), the topics they follow, the roles their last token carried, and the
//! connections they hold now. A published message is serialised once; each recipient's frame is
//! that JSON with the recipient's next `seq` in front, stored in their ring and offered to each of
//! their connections without waiting (`try_send` into a bounded queue). A connection whose queue is
//! full is too slow: it is told to close with 4008 and resumes from the ring.
//!
//! All of it sits behind one mutex that is never held across an `.await`, so [`Hub::publish`] is
//! synchronous and never waits for a client. Sessions outlive their last connection by
//! `session_idle_s` so a reconnecting user loses nothing within the window; the sweeper
//! ([`crate::worker`]) removes them after.
//!
//! The seam for issue 7 (several instances): [`Bus`]. Without one, `publish` delivers here; with
//! one, `publish` hands the [`Envelope`] to the bus, which carries it to every instance's
//! [`Hub::deliver`] (this one included).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use kreki_auth::{Role, Roles};
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::config::RealtimeConfig;

/// Who a published message is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Every user with a session subscribed to this topic (`alert:{id}`).
    Topic(String),
}

/// A message on its way to the hubs: what [`Bus`] implementations carry between instances.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Who it is for.
    pub audience: Audience,
    /// The message: a JSON object with a string `type`; each hub adds the recipient's `seq`.
    pub message: serde_json::Value,
}

/// Carries published messages to every instance's hub (issue 7: Redis fan-out, [`crate::bus`]).
///
/// `send` must not block: queue the envelope (bounded) and return. The bus delivers each envelope
/// to [`Hub::deliver`] on every instance, this one included (or numbers it centrally and hands
/// each instance the numbered frames, as [`crate::bus::RedisBus`] does).
///
/// The other methods tell the bus what this instance's connections do, so it can keep presence
/// and role and topic audiences across instances; they must not block either. By default they do
/// nothing.
pub trait Bus: Send + Sync + 'static {
    /// Takes `envelope` for delivery everywhere, or gives it back (`Err`) when it cannot (its
    /// queue is full, its backend is down): the hub then delivers it on this instance only, with
    /// local numbering, so local sockets keep being served.
    fn send(&self, envelope: Envelope) -> Result<(), Envelope>;

    /// `user` attached a connection to this instance, with the roles of its token.
    fn attached(&self, _user: Uuid, _roles: &Roles) {}

    /// The last connection of `user` on this instance closed (the session stays).
    fn detached(&self, _user: Uuid) {}

    /// `user` now follows `topic`.
    fn subscribed(&self, _user: Uuid, _topic: &str) {}

    /// `user` no longer follows `topic`.
    fn unsubscribed(&self, _user: Uuid, _topic: &str) {}

    /// A connection of `user` here acknowledged every message up to `seq` of `epoch`, so other
    /// instances can tell that an offer reached the user (the pusher's `no_ack` policy).
    fn acked(&self, _user: Uuid, _epoch: u64, _seq: u64) {}
}

/// Counts of what the hub holds, for tests and diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubStats {
    /// Users with a session (connected, or within `session_idle_s` of their last connection or
    /// message).
    pub sessions: usize,
    /// Open connections attached to sessions.
    pub connections: usize,
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
    /// The newest epoch handed out: epochs are Unix milliseconds, made strictly increasing.
    last_epoch: AtomicU64,
    connection_slots: Arc<Semaphore>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

#[derive(Default)]
struct State {
    sessions: HashMap<Uuid, Session>,
    by_role: HashMap<Role, HashSet<Uuid>>,
    by_topic: HashMap<String, HashSet<Uuid>>,
}

struct Session {
    /// The numbering comes from the bus ([`Hub::deliver_numbered`]), not from this instance.
    shared: bool,
    /// Names this numbering: Unix milliseconds at creation, unique within the process and
    /// increasing across restarts (while the clock does not go back).
    epoch: u64,
    /// The `seq` of the newest frame sent to this user (0 before the first).
    seq: u64,
    /// The highest `seq` of this epoch a connection acknowledged (`{"type":"ack","seq":n}`);
    /// 0 before any. Read by the pusher's `no_ack` policy.
    acked: u64,
    ring: VecDeque<Stored>,
    connections: Vec<Connection>,
    /// Roles of the newest token this user connected with; `None` until they connect.
    roles: Option<Roles>,
    topics: HashSet<String>,
    /// Since when the session has had no connection (or since its creation).
    idle_since: Instant,
}

struct Stored {
    seq: u64,
    at: Instant,
    frame: Utf8Bytes,
}

struct Connection {
    id: u64,
    outbound: mpsc::Sender<Utf8Bytes>,
    kicked: CancellationToken,
}

/// What a new connection starts with (crate-internal: the socket task's side of a session).
pub(crate) struct Attachment {
    /// Identifies the connection within its session, for [`Hub::detach`].
    pub id: u64,
    /// Frames to write before any live one: a `resync`, or the replayed frames after
    /// `resume_after`, oldest first.
    pub backlog: Vec<Utf8Bytes>,
    /// Live frames, in `seq` order.
    pub outbound: mpsc::Receiver<Utf8Bytes>,
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

    /// A hub whose [`publish`](Self::publish) goes through `bus` (which must call
    /// [`deliver`](Self::deliver) on every instance, this one included).
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
        for gauge in ["realtime_connections", "realtime_sessions"] {
            metrics::gauge!(gauge).increment(0.0);
        }
        for counter in [
            "realtime_messages_sent_total",
            "realtime_slow_consumer_disconnects_total",
            "realtime_dropped_messages_total",
            "realtime_rejected_publishes_total",
        ] {
            metrics::counter!(counter).increment(0);
        }
        Self {
            inner: Arc::new(Inner {
                config,
                state: Mutex::new(State::default()),
                bus,
                next_connection: AtomicU64::new(1),
                last_epoch: AtomicU64::new(0),
                connection_slots,
                shutdown,
                tracker: TaskTracker::new(),
            }),
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &RealtimeConfig {
        &self.inner.config
    }

    /// Sends `message` to `audience`: synchronous, never waits for a client.
    ///
    /// `message` must be a JSON object with a non-empty string `type` (`offer`, `alert.updated`, …);
    /// the hub sets `seq` and `epoch` (any given are replaced). Anything else is a bug of the caller: it is
    /// logged and dropped. Slow connections are disconnected (4008), never waited for.
    pub fn publish(&self, audience: Audience, message: serde_json::Value) {
        let envelope = Envelope { audience, message };
        let unsent = match &self.inner.bus {
            Some(bus) => bus.send(envelope).err(),
            None => Some(envelope),
        };
        if let Some(envelope) = unsent {
            self.deliver(envelope);
        }
    }

    /// Delivers `envelope` to the sessions of this instance and returns how many users it reached.
    /// [`Bus`] implementations call this on every instance; others call [`publish`](Self::publish).
    pub fn deliver(&self, envelope: Envelope) -> usize {
        self.deliver_at(envelope, Instant::now())
    }

    /// The frame body of `message` (its JSON without the opening brace, `seq` and `epoch`), or
    /// `None` when it has no string `type` or is too long to write (logged and counted as a
    /// rejected publish).
    pub(crate) fn frame_body(
        &self,
        audience: &Audience,
        message: serde_json::Value,
    ) -> Option<String> {
        let config = &self.inner.config;
        let Some(body) = message_body(message) else {
            metrics::counter!("realtime_rejected_publishes_total").increment(1);
            tracing::error!(
                ?audience,
                "published message is not a JSON object with a string `type`; dropped"
            );
            return None;
        };
        // `{"seq":n,"epoch":e,` in front of the body, with up to 20 digits each.
        let longest = body.len() + 60;
        if longest > config.max_outbound_frame_bytes() {
            metrics::counter!("realtime_rejected_publishes_total").increment(1);
            tracing::error!(
                ?audience,
                bytes = longest,
                max_bytes = config.max_outbound_frame_bytes(),
                "published message is too long to write (realtime.max_write_buffer_bytes); dropped"
            );
            return None;
        }
        Some(body)
    }

    fn deliver_at(&self, envelope: Envelope, now: Instant) -> usize {
        let Envelope { audience, message } = envelope;
        let config = &self.inner.config;
        let Some(body) = self.frame_body(&audience, message) else {
            return 0;
        };
        let mut state = self.lock();
        let recipients: Vec<Uuid> = match audience {
            Audience::User(id) => vec![id],
            Audience::Users(mut ids) => {
                ids.sort_unstable();
                ids.dedup();
                ids
            }
            Audience::Role(role) => state
                .by_role
                .get(&role)
                .map(|ids| ids.iter().copied().collect())
                .unwrap_or_default(),
            Audience::Topic(topic) => state
                .by_topic
                .get(&topic)
                .map(|ids| ids.iter().copied().collect())
                .unwrap_or_default(),
        };
        let mut reached = 0;
        for id in recipients {
            if !state.sessions.contains_key(&id) {
                if state.sessions.len() >= config.max_sessions {
                    metrics::counter!("realtime_dropped_messages_total").increment(1);
                    tracing::warn!(
                        user = %id,
                        max_sessions = config.max_sessions,
                        "realtime.max_sessions reached: message to a user without a session dropped"
                    );
                    continue;
                }
                state
                    .sessions
                    .insert(id, Session::new(now, self.next_epoch()));
                metrics::gauge!("realtime_sessions").increment(1.0);
            }
            let Some(session) = state.sessions.get_mut(&id) else {
                continue;
            };
            if session.shared {
                // The bus numbered this user until now and cannot be reached: number locally under
                // a new epoch, so these frames are never confused with the bus's (clients that
                // resume elsewhere with this cursor get `resync`).
                session.restart(self.next_epoch());
            }
            session.seq += 1;
            let frame = Utf8Bytes::from(format!(
                "{{\"seq\":{},\"epoch\":{},{body}",
                session.seq, session.epoch
            ));
            session.ring.push_back(Stored {
                seq: session.seq,
                at: now,
                frame: frame.clone(),
            });
            session.prune(config, now);
            session.offer(&frame, now);
            reached += 1;
        }
        reached
    }

    /// Delivers a frame the bus has numbered: `body` (from [`Hub::frame_body`]) as message `seq`
    /// of `user` in `epoch`. Frames arrive in `seq` order; one at or below the session's `seq` in
    /// the same epoch was delivered already and is skipped (the `seq` de-duplicates). Another
    /// epoch, or a local numbering, is replaced by the bus's; a gap empties the replay ring, so a
    /// client resuming from before it gets `resync`. Returns whether the frame was delivered.
    pub(crate) fn deliver_numbered(&self, user: Uuid, epoch: u64, seq: u64, body: &str) -> bool {
        self.numbered_frame(user, epoch, seq, body, true)
    }

    /// As [`Hub::deliver_numbered`], but only into the replay ring, not to the sockets here: for a
    /// message this instance delivered to its own sockets already (while Redis was away) and
    /// handed to the other instances once Redis was back.
    pub(crate) fn record_numbered(&self, user: Uuid, epoch: u64, seq: u64, body: &str) -> bool {
        self.numbered_frame(user, epoch, seq, body, false)
    }

    fn numbered_frame(&self, user: Uuid, epoch: u64, seq: u64, body: &str, send: bool) -> bool {
        let now = Instant::now();
        let config = &self.inner.config;
        let mut state = self.lock();
        if !state.sessions.contains_key(&user) {
            if state.sessions.len() >= config.max_sessions {
                metrics::counter!("realtime_dropped_messages_total").increment(1);
                tracing::warn!(
                    %user,
                    max_sessions = config.max_sessions,
                    "realtime.max_sessions reached: message to a user without a session dropped"
                );
                return false;
            }
            state.sessions.insert(user, Session::new(now, epoch));
            metrics::gauge!("realtime_sessions").increment(1.0);
        }
        let Some(session) = state.sessions.get_mut(&user) else {
            return false;
        };
        if !session.shared || session.epoch != epoch {
            session.shared = true;
            session.epoch = epoch;
            session.seq = seq.saturating_sub(1);
            session.ring.clear();
        } else if seq <= session.seq {
            return false;
        } else if seq > session.seq + 1 {
            session.ring.clear();
        }
        session.seq = seq;
        let frame = Utf8Bytes::from(format!("{{\"seq\":{seq},\"epoch\":{epoch},{body}"));
        session.ring.push_back(Stored {
            seq,
            at: now,
            frame: frame.clone(),
        });
        session.prune(config, now);
        if send {
            session.offer(&frame, now);
        }
        if session.connections.is_empty() {
            // Mirrored sessions of users connected elsewhere live while their messages arrive.
            session.idle_since = now;
        }
        true
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

    /// Counts of sessions and connections.
    pub fn stats(&self) -> HubStats {
        let state = self.lock();
        HubStats {
            sessions: state.sessions.len(),
            connections: state
                .sessions
                .values()
                .map(|session| session.connections.len())
                .sum(),
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

    /// Tracks the socket tasks, so shutdown can wait for them to close.
    pub(crate) fn tracker(&self) -> &TaskTracker {
        &self.inner.tracker
    }

    /// Attaches a new connection of `user` holding `roles`. With `resume = Some(cursor)` the
    /// backlog holds the frames after the cursor still in the ring, or a `resync` frame when some
    /// of them are gone or the cursor belongs to another epoch.
    pub(crate) fn attach(&self, user: Uuid, roles: &Roles, resume: Option<Cursor>) -> Attachment {
        self.attach_at(user, roles, resume, Instant::now())
    }

    fn attach_at(
        &self,
        user: Uuid,
        roles: &Roles,
        resume: Option<Cursor>,
        now: Instant,
    ) -> Attachment {
        let config = &self.inner.config;
        let id = self.inner.next_connection.fetch_add(1, Ordering::Relaxed);
        let (sender, outbound) = mpsc::channel(config.outbound_queue);
        let kicked = CancellationToken::new();
        let mut guard = self.lock();
        let state = &mut *guard;
        let session = state.sessions.entry(user).or_insert_with(|| {
            metrics::gauge!("realtime_sessions").increment(1.0);
            Session::new(now, self.next_epoch())
        });
        if session.roles.as_ref() != Some(roles) {
            session.roles = Some(roles.clone());
            for role in Role::ALL {
                let members = state.by_role.entry(role).or_default();
                if roles.grants(role) {
                    members.insert(user);
                } else {
                    members.remove(&user);
                }
            }
        }
        session.prune(config, now);
        let backlog = match resume {
            None => Vec::new(),
            Some(cursor) => session.backlog_after(cursor),
        };
        session.connections.push(Connection {
            id,
            outbound: sender,
            kicked: kicked.clone(),
        });
        drop(guard);
        if let Some(bus) = &self.inner.bus {
            bus.attached(user, roles);
        }
        Attachment {
            id,
            backlog,
            outbound,
            kicked,
        }
    }

    /// Removes connection `id` of `user` (idempotent). The session stays for `session_idle_s`.
    pub(crate) fn detach(&self, user: Uuid, id: u64) {
        let now = Instant::now();
        let mut state = self.lock();
        let mut gone = false;
        if let Some(session) = state.sessions.get_mut(&user) {
            let before = session.connections.len();
            session.connections.retain(|connection| connection.id != id);
            if before > 0 && session.connections.is_empty() {
                session.idle_since = now;
                gone = true;
            }
        }
        drop(state);
        if let (true, Some(bus)) = (gone, &self.inner.bus) {
            bus.detached(user);
        }
    }

    /// Records a client's `{"type":"ack","seq":n}`: every message of `user` up to `seq` (in
    /// `epoch` when given; an ack of another epoch is ignored) was processed by a connection.
    /// Acknowledgements are cumulative, like the resume cursor; a `seq` not sent yet counts as the
    /// newest sent.
    pub(crate) fn ack(&self, user: Uuid, epoch: Option<u64>, seq: u64) {
        let acked = {
            let mut state = self.lock();
            match state.sessions.get_mut(&user) {
                Some(session) if epoch.is_none_or(|epoch| epoch == session.epoch) => {
                    session.acked = session.acked.max(seq.min(session.seq));
                    Some((session.epoch, session.acked))
                }
                _ => None,
            }
        };
        if let (Some((epoch, seq)), Some(bus)) = (acked, &self.inner.bus) {
            bus.acked(user, epoch, seq);
        }
    }

    /// The `(epoch, seq)` of the newest message of `user` equal to `message` (compared without
    /// `seq` and `epoch`) still in their replay ring here, acknowledged or not. With the Redis
    /// bus every instance numbers a message alike, so another instance's acknowledgement of that
    /// `seq` can be checked against it.
    pub fn numbered(&self, user: Uuid, message: &serde_json::Value) -> Option<(u64, u64)> {
        let (epoch, frames): (u64, Vec<(u64, Utf8Bytes)>) = {
            let state = self.lock();
            let session = state.sessions.get(&user)?;
            (
                session.epoch,
                session
                    .ring
                    .iter()
                    .rev()
                    .map(|stored| (stored.seq, stored.frame.clone()))
                    .collect(),
            )
        };
        let wanted = without_numbering(message.clone());
        frames.into_iter().find_map(|(seq, frame)| {
            let sent = serde_json::from_str::<serde_json::Value>(frame.as_str()).ok()?;
            (without_numbering(sent) == wanted).then_some((epoch, seq))
        })
    }

    /// True when a connection of `user` acknowledged a message equal to `message` (compared
    /// without `seq` and `epoch`) that is still in their replay ring: how the pusher's `no_ack`
    /// policy learns that the WebSocket got an offer. False when the session was forgotten or
    /// the message left the ring (then a push is the safe side).
    pub fn acknowledged(&self, user: Uuid, message: &serde_json::Value) -> bool {
        let frames: Vec<Utf8Bytes> = {
            let state = self.lock();
            let Some(session) = state.sessions.get(&user) else {
                return false;
            };
            session
                .ring
                .iter()
                .rev()
                .filter(|stored| stored.seq <= session.acked)
                .map(|stored| stored.frame.clone())
                .collect()
        };
        let mut wanted = message.clone();
        if let Some(object) = wanted.as_object_mut() {
            object.remove("seq");
            object.remove("epoch");
        }
        // Parsed off the lock: publishing never waits for this.
        frames.iter().any(|frame| {
            let Ok(mut sent) = serde_json::from_str::<serde_json::Value>(frame.as_str()) else {
                return false;
            };
            if let Some(object) = sent.as_object_mut() {
                object.remove("seq");
                object.remove("epoch");
            }
            sent == wanted
        })
    }

    /// Records that `user` follows `topic` (authorisation is the caller's job).
    pub(crate) fn subscribe(&self, user: Uuid, topic: &str) -> Result<(), SubscribeError> {
        let max = self.inner.config.max_topics_per_session;
        let mut guard = self.lock();
        let state = &mut *guard;
        let Some(session) = state.sessions.get_mut(&user) else {
            // The connection asking is attached, so its session exists; a race with the sweeper is
            // impossible while it is attached.
            return Ok(());
        };
        if !session.topics.contains(topic) {
            if session.topics.len() >= max {
                return Err(SubscribeError::TooMany(max));
            }
            session.topics.insert(topic.to_owned());
            state
                .by_topic
                .entry(topic.to_owned())
                .or_default()
                .insert(user);
        }
        drop(guard);
        if let Some(bus) = &self.inner.bus {
            bus.subscribed(user, topic);
        }
        Ok(())
    }

    /// Forgets that `user` follows `topic`.
    pub(crate) fn unsubscribe(&self, user: Uuid, topic: &str) {
        let mut guard = self.lock();
        let state = &mut *guard;
        if let Some(session) = state.sessions.get_mut(&user) {
            session.topics.remove(topic);
        }
        remove_from_index(&mut state.by_topic, topic, user);
        drop(guard);
        if let Some(bus) = &self.inner.bus {
            bus.unsubscribed(user, topic);
        }
    }

    /// Drops sessions idle for longer than `session_idle_s` and replay frames older than
    /// `replay_window_s`. Returns how many sessions were dropped.
    pub(crate) fn sweep(&self) -> usize {
        self.sweep_at(Instant::now())
    }

    fn sweep_at(&self, now: Instant) -> usize {
        let config = &self.inner.config;
        let idle = Duration::from_secs(config.session_idle_s);
        let mut state = self.lock();
        let state = &mut *state;
        let mut expired = Vec::new();
        for (id, session) in &mut state.sessions {
            session.prune(config, now);
            if session.connections.is_empty() && now.duration_since(session.idle_since) >= idle {
                expired.push(*id);
            }
        }
        for id in &expired {
            if let Some(session) = state.sessions.remove(id) {
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
        #[expect(
            clippy::cast_precision_loss,
            reason = "a gauge; sessions are far below 2^52"
        )]
        metrics::gauge!("realtime_sessions").set(state.sessions.len() as f64);
        expired.len()
    }

    /// A new epoch: now in Unix milliseconds, or one more than the last if that is not later.
    fn next_epoch(&self) -> u64 {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| {
                u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
            });
        let next = |last: u64| now_ms.max(last.saturating_add(1));
        match self
            .inner
            .last_epoch
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
                Some(next(last))
            }) {
            Ok(last) | Err(last) => next(last),
        }
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

impl Session {
    fn new(now: Instant, epoch: u64) -> Self {
        Self {
            shared: false,
            epoch,
            seq: 0,
            acked: 0,
            ring: VecDeque::new(),
            connections: Vec::new(),
            roles: None,
            topics: HashSet::new(),
            idle_since: now,
        }
    }

    /// Starts a local numbering under `epoch`: `seq` 0, nothing to replay.
    fn restart(&mut self, epoch: u64) {
        self.shared = false;
        self.epoch = epoch;
        self.seq = 0;
        self.ring.clear();
    }

    /// Keeps the newest `replay_messages` frames, none older than `replay_window_s`.
    fn prune(&mut self, config: &RealtimeConfig, now: Instant) {
        let window = Duration::from_secs(config.replay_window_s);
        while self.ring.len() > config.replay_messages
            || self
                .ring
                .front()
                .is_some_and(|stored| now.duration_since(stored.at) > window)
        {
            self.ring.pop_front();
        }
    }

    /// Frames after the cursor, or a lone `resync` when some of them are no longer kept, or the
    /// cursor is of another epoch, or ahead of this session (a client that sends no epoch, after
    /// the session it knew expired or the server restarted).
    fn backlog_after(&self, cursor: Cursor) -> Vec<Utf8Bytes> {
        let Cursor { after, epoch } = cursor;
        let first_kept = self.ring.front().map_or(self.seq + 1, |stored| stored.seq);
        let other_epoch = epoch.is_some_and(|epoch| epoch != self.epoch);
        if other_epoch || after > self.seq || after.saturating_add(1) < first_kept {
            return vec![resync_frame(self.seq, self.epoch)];
        }
        self.ring
            .iter()
            .filter(|stored| stored.seq > after)
            .map(|stored| stored.frame.clone())
            .collect()
    }

    /// Offers `frame` to every connection without waiting; a full queue marks its connection too
    /// slow (kicked, removed), a closed one is removed.
    fn offer(&mut self, frame: &Utf8Bytes, now: Instant) {
        let before = self.connections.len();
        self.connections.retain(
            |connection| match connection.outbound.try_send(frame.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    connection.kicked.cancel();
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            },
        );
        if before > 0 && self.connections.is_empty() {
            self.idle_since = now;
        }
    }
}

/// `{"type":"resync","seq":n,"epoch":e}`: the client missed messages that are no longer kept; it
/// refetches its state over HTTP and takes `n` (in epoch `e`) as its new cursor (the next message
/// has `seq` n+1).
fn resync_frame(seq: u64, epoch: u64) -> Utf8Bytes {
    Utf8Bytes::from(format!(
        "{{\"type\":\"resync\",\"seq\":{seq},\"epoch\":{epoch}}}"
    ))
}

/// The JSON of `message` without its opening brace and without any `seq` or `epoch`, ready to have
/// `{"seq":n,"epoch":e,` put in front; `None` unless it is an object with a non-empty string `type`.
fn message_body(message: serde_json::Value) -> Option<String> {
    let serde_json::Value::Object(mut object) = message else {
        return None;
    };
    let has_type = object
        .get("type")
        .and_then(serde_json::Value::as_str)
        .is_some_and(|kind| !kind.is_empty());
    if !has_type {
        return None;
    }
    object.remove("seq");
    object.remove("epoch");
    let json = serde_json::to_string(&object).ok()?;
    // An object with at least `type` serialises as `{"type":…}`; dropping the brace leaves the
    // members and the closing brace.
    json.strip_prefix('{').map(str::to_owned)
}

fn remove_from_index<K, Q>(index: &mut HashMap<K, HashSet<Uuid>>, key: &Q, user: Uuid)
where
    K: std::hash::Hash + Eq + std::borrow::Borrow<Q>,
    Q: std::hash::Hash + Eq + ?Sized,
{
    if let Some(members) = index.get_mut(key) {
        members.remove(&user);
        if members.is_empty() {
            index.remove(key);
        }
    }
}

/// `message` without the fields each hub numbers it with.
fn without_numbering(mut message: serde_json::Value) -> serde_json::Value {
    if let Some(object) = message.as_object_mut() {
        object.remove("seq");
        object.remove("epoch");
    }
    message
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn hub(config: RealtimeConfig) -> Hub {
        Hub::new(config, CancellationToken::new())
    }

    /// A frame as JSON, without its `epoch` (checked to be there).
    fn parse(frame: &Utf8Bytes) -> Value {
        let mut value: Value = serde_json::from_str(frame.as_str()).expect("frames are JSON");
        let epoch = value
            .as_object_mut()
            .and_then(|object| object.remove("epoch"));
        assert!(epoch.is_some_and(|epoch| epoch.is_u64()), "{frame}");
        value
    }

    fn epoch_of(frame: &Utf8Bytes) -> u64 {
        let value: Value = serde_json::from_str(frame.as_str()).expect("frames are JSON");
        value["epoch"].as_u64().expect("an epoch")
    }

    fn after(seq: u64) -> Option<Cursor> {
        Some(Cursor {
            after: seq,
            epoch: None,
        })
    }

    fn drain(attachment: &mut Attachment) -> Vec<Value> {
        let mut frames = Vec::new();
        while let Ok(frame) = attachment.outbound.try_recv() {
            frames.push(parse(&frame));
        }
        frames
    }

    #[test]
    fn seq_is_per_user_and_replaces_any_given_seq() {
        let hub = hub(RealtimeConfig::default());
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let mut conn_a = hub.attach(a, &Roles::default(), None);
        hub.publish(
            Audience::User(a),
            json!({"type": "offer", "seq": 99, "epoch": 7}),
        );
        hub.publish(
            Audience::Users(vec![a, b, a]),
            json!({"type": "alert.updated"}),
        );
        let first = conn_a.outbound.try_recv().expect("the offer");
        assert_eq!(first.as_str().matches("\"epoch\"").count(), 1, "{first}");
        assert_ne!(epoch_of(&first), 7);
        assert_eq!(parse(&first), json!({"seq": 1, "type": "offer"}));
        let frames = drain(&mut conn_a);
        assert_eq!(frames.len(), 1, "{frames:?}");
        assert_eq!(frames[0], json!({"seq": 2, "type": "alert.updated"}));
        let conn_b = hub.attach(b, &Roles::default(), after(0));
        let replayed: Vec<Value> = conn_b.backlog.iter().map(parse).collect();
        assert_eq!(replayed, vec![json!({"seq": 1, "type": "alert.updated"})]);
    }

    #[test]
    fn messages_without_a_type_or_too_long_to_write_are_dropped() {
        let hub = hub(RealtimeConfig::default());
        let user = Uuid::new_v4();
        let limit = RealtimeConfig::default().max_outbound_frame_bytes();
        let fits = json!({"type": "offer", "note": "x".repeat(limit - 100)});
        assert_eq!(
            hub.deliver(Envelope {
                audience: Audience::User(user),
                message: fits,
            }),
            1
        );
        let user = Uuid::new_v4();
        let too_long = json!({"type": "offer", "note": "x".repeat(limit)});
        for message in [
            json!("offer"),
            json!({"kind": "offer"}),
            json!({"type": ""}),
            too_long,
        ] {
            assert_eq!(
                hub.deliver(Envelope {
                    audience: Audience::User(user),
                    message,
                }),
                0
            );
        }
        assert_eq!(hub.stats().sessions, 1);
    }

    /// Keeps what it is given, like a bus whose other side is not running.
    #[derive(Default)]
    struct Captured(Mutex<Vec<Envelope>>);

    impl Bus for Arc<Captured> {
        fn send(&self, envelope: Envelope) -> Result<(), Envelope> {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(envelope);
            Ok(())
        }
    }

    #[test]
    fn with_a_bus_publish_goes_through_it_and_deliver_numbers_on_arrival() {
        let bus = Arc::new(Captured::default());
        let hub = Hub::with_bus(
            RealtimeConfig::default(),
            CancellationToken::new(),
            Arc::new(Arc::clone(&bus)),
        );
        let user = Uuid::new_v4();
        let mut conn = hub.attach(user, &Roles::default(), None);
        hub.publish(Audience::User(user), json!({"type": "offer"}));
        assert!(
            drain(&mut conn).is_empty(),
            "nothing is delivered until the bus brings it"
        );
        let carried = std::mem::take(&mut *bus.0.lock().unwrap_or_else(PoisonError::into_inner));
        assert_eq!(carried.len(), 1);
        for envelope in carried {
            assert_eq!(hub.deliver(envelope), 1);
        }
        assert_eq!(drain(&mut conn), vec![json!({"seq": 1, "type": "offer"})]);
    }

    #[test]
    fn roles_reach_holders_and_admins_but_not_others() {
        let hub = hub(RealtimeConfig::default());
        let coordinator = Uuid::new_v4();
        let admin = Uuid::new_v4();
        let volunteer = Uuid::new_v4();
        let mut c = hub.attach(coordinator, &Roles::new([Role::Coordinator]), None);
        let mut a = hub.attach(admin, &Roles::new([Role::Admin]), None);
        let mut v = hub.attach(volunteer, &Roles::new([Role::Volunteer]), None);
        assert_eq!(
            hub.deliver(Envelope {
                audience: Audience::Role(Role::Coordinator),
                message: json!({"type": "volunteer.position"}),
            }),
            2
        );
        assert_eq!(drain(&mut c).len(), 1);
        assert_eq!(drain(&mut a).len(), 1);
        assert!(drain(&mut v).is_empty());
        // A new token without the role takes the user out of the audience.
        let _c2 = hub.attach(coordinator, &Roles::new([Role::Volunteer]), None);
        hub.publish(
            Audience::Role(Role::Coordinator),
            json!({"type": "volunteer.position"}),
        );
        assert!(drain(&mut c).is_empty());
    }

    #[test]
    fn a_full_queue_kicks_the_connection_and_the_ring_keeps_everything() {
        let hub = hub(RealtimeConfig {
            outbound_queue: 2,
            ..RealtimeConfig::default()
        });
        let user = Uuid::new_v4();
        let conn = hub.attach(user, &Roles::default(), None);
        for _ in 0..3 {
            hub.publish(Audience::User(user), json!({"type": "offer"}));
        }
        assert!(conn.kicked.is_cancelled());
        assert_eq!(hub.stats().connections, 0);
        let again = hub.attach(user, &Roles::default(), after(1));
        let seqs: Vec<Value> = again
            .backlog
            .iter()
            .map(|f| parse(f)["seq"].clone())
            .collect();
        assert_eq!(seqs, vec![json!(2), json!(3)]);
    }

    #[test]
    fn resume_replays_after_the_cursor_or_asks_for_a_resync() {
        let hub = hub(RealtimeConfig {
            replay_messages: 3,
            ..RealtimeConfig::default()
        });
        let user = Uuid::new_v4();
        for _ in 0..5 {
            hub.publish(Audience::User(user), json!({"type": "offer"}));
        }
        let backlog = |seq| {
            hub.attach(user, &Roles::default(), after(seq))
                .backlog
                .iter()
                .map(parse)
                .collect::<Vec<_>>()
        };
        // Kept: 3, 4, 5.
        assert_eq!(backlog(2).len(), 3);
        assert_eq!(backlog(4), vec![json!({"seq": 5, "type": "offer"})]);
        assert!(backlog(5).is_empty());
        assert_eq!(backlog(1), vec![json!({"type": "resync", "seq": 5})]);
        // A cursor from a session this hub no longer has.
        assert_eq!(backlog(77), vec![json!({"type": "resync", "seq": 5})]);
    }

    #[test]
    fn a_cursor_of_a_forgotten_session_gets_resync_even_when_its_seq_fits() {
        let hub = hub(RealtimeConfig {
            session_idle_s: 60,
            ..RealtimeConfig::default()
        });
        let user = Uuid::new_v4();
        let mut first = hub.attach(user, &Roles::default(), None);
        for _ in 0..3 {
            hub.publish(Audience::User(user), json!({"type": "offer"}));
        }
        let old_epoch = first
            .outbound
            .try_recv()
            .map(|frame| epoch_of(&frame))
            .expect("a frame");
        hub.detach(user, first.id);
        assert_eq!(hub.sweep_at(Instant::now() + Duration::from_secs(61)), 1);
        // The user's next messages start a new session: seq 1..5 under a new epoch.
        for _ in 0..5 {
            hub.publish(Audience::User(user), json!({"type": "offer"}));
        }
        let stale = Some(Cursor {
            after: 3,
            epoch: Some(old_epoch),
        });
        let backlog = hub.attach(user, &Roles::default(), stale).backlog;
        assert_eq!(backlog.len(), 1);
        assert_eq!(parse(&backlog[0]), json!({"type": "resync", "seq": 5}));
        let new_epoch = epoch_of(&backlog[0]);
        assert!(new_epoch > old_epoch);
        // With the right epoch, the same seq replays.
        let current = Some(Cursor {
            after: 3,
            epoch: Some(new_epoch),
        });
        let backlog = hub.attach(user, &Roles::default(), current).backlog;
        assert_eq!(
            backlog.iter().map(parse).collect::<Vec<_>>(),
            vec![
                json!({"seq": 4, "type": "offer"}),
                json!({"seq": 5, "type": "offer"}),
            ]
        );
    }

    #[test]
    fn epochs_are_unique_and_increasing() {
        let hub = hub(RealtimeConfig::default());
        let epochs: Vec<u64> = (0..1000).map(|_| hub.next_epoch()).collect();
        assert!(epochs.windows(2).all(|pair| pair[0] < pair[1]));
    }

    #[test]
    fn old_frames_leave_the_ring_and_idle_sessions_expire() {
        let hub = hub(RealtimeConfig {
            replay_window_s: 60,
            session_idle_s: 120,
            ..RealtimeConfig::default()
        });
        let user = Uuid::new_v4();
        let start = Instant::now();
        let envelope = || Envelope {
            audience: Audience::User(user),
            message: json!({"type": "offer"}),
        };
        hub.deliver_at(envelope(), start);
        hub.deliver_at(envelope(), start + Duration::from_secs(50));
        let later = start + Duration::from_secs(70);
        let attachment = hub.attach_at(user, &Roles::default(), after(0), later);
        assert_eq!(
            attachment.backlog.iter().map(parse).collect::<Vec<_>>(),
            vec![json!({"type": "resync", "seq": 2})]
        );
        let attachment = hub.attach_at(user, &Roles::default(), after(1), later);
        assert_eq!(attachment.backlog.len(), 1);
        // Connected sessions never expire; idle ones do after session_idle_s.
        assert_eq!(hub.sweep_at(later + Duration::from_secs(1000)), 0);
        let ids: Vec<u64> = {
            let state = hub.lock();
            state.sessions[&user]
                .connections
                .iter()
                .map(|c| c.id)
                .collect()
        };
        for id in ids {
            hub.detach(user, id);
        }
        assert_eq!(hub.sweep_at(Instant::now() + Duration::from_secs(60)), 0);
        assert_eq!(hub.sweep_at(Instant::now() + Duration::from_secs(121)), 1);
        assert_eq!(hub.stats().sessions, 0);
        assert!(hub.lock().by_role.values().all(HashSet::is_empty));
    }

    #[test]
    fn topics_reach_subscribers_within_their_limit() {
        let hub = hub(RealtimeConfig {
            max_topics_per_session: 1,
            ..RealtimeConfig::default()
        });
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let mut conn_a = hub.attach(a, &Roles::default(), None);
        let mut conn_b = hub.attach(b, &Roles::default(), None);
        assert_eq!(hub.subscribe(a, "alert:1"), Ok(()));
        assert_eq!(hub.subscribe(a, "alert:1"), Ok(()));
        assert_eq!(hub.subscribe(a, "alert:2"), Err(SubscribeError::TooMany(1)));
        hub.publish(
            Audience::Topic("alert:1".into()),
            json!({"type": "alert.updated"}),
        );
        assert_eq!(drain(&mut conn_a).len(), 1);
        assert!(drain(&mut conn_b).is_empty());
        hub.unsubscribe(a, "alert:1");
        hub.publish(
            Audience::Topic("alert:1".into()),
            json!({"type": "alert.updated"}),
        );
        assert!(drain(&mut conn_a).is_empty());
    }

    #[test]
    fn new_sessions_stop_at_max_sessions_but_connections_still_get_one() {
        let hub = hub(RealtimeConfig {
            max_sessions: 1,
            ..RealtimeConfig::default()
        });
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        hub.publish(Audience::User(a), json!({"type": "offer"}));
        hub.publish(Audience::User(b), json!({"type": "offer"}));
        assert_eq!(hub.stats().sessions, 1);
        let _conn = hub.attach(b, &Roles::default(), None);
        assert_eq!(hub.stats().sessions, 2);
    }

    #[test]
    fn acks_are_cumulative_per_epoch_and_match_messages_by_content() {
        let hub = hub(RealtimeConfig::default());
        let user = Uuid::new_v4();
        let mut conn = hub.attach(user, &Roles::default(), None);
        let offer = json!({"type": "offer", "offer": {"id": 1}});
        let other = json!({"type": "offer", "offer": {"id": 2}});
        hub.publish(Audience::User(user), offer.clone());
        hub.publish(Audience::User(user), other.clone());
        let epoch = conn
            .outbound
            .try_recv()
            .map(|f| epoch_of(&f))
            .expect("a frame");
        assert!(!hub.acknowledged(user, &offer));
        hub.ack(user, Some(epoch + 1), 2);
        assert!(
            !hub.acknowledged(user, &offer),
            "another epoch's ack counts for nothing"
        );
        hub.ack(user, Some(epoch), 1);
        assert!(hub.acknowledged(user, &offer));
        assert!(!hub.acknowledged(user, &other));
        hub.ack(user, None, 99);
        assert!(hub.acknowledged(user, &other));
        let later = json!({"type": "offer", "offer": {"id": 3}});
        hub.publish(Audience::User(user), later.clone());
        assert!(
            !hub.acknowledged(user, &later),
            "an ack ahead of seq does not cover later messages"
        );
        assert!(!hub.acknowledged(Uuid::new_v4(), &offer));
    }

    #[test]
    fn envelopes_round_trip_as_json_for_buses() {
        let envelope = Envelope {
            audience: Audience::Role(Role::Coordinator),
            message: json!({"type": "alert.updated"}),
        };
        let wire = serde_json::to_value(&envelope).expect("serialises");
        assert_eq!(
            wire["audience"],
            json!({"kind": "role", "to": "coordinator"})
        );
        let back: Envelope = serde_json::from_value(wire).expect("deserialises");
        assert_eq!(back, envelope);
    }
}
