//! The bus's outbox: what this instance has published and the publisher has not yet carried to
//! Redis, bounded, and what the instance owes its clients when something could not be carried.
//!
//! Decisions only, no I/O (the publisher does the I/O, [`super::publisher`]):
//!
//! - a publish goes into a bounded queue (`realtime.redis.queue` commands, publishes and presence
//!   changes alike). When the queue is full the message is not delivered anywhere: its audience
//!   is recorded as a *gap*, and the publisher's next batch starts with a numbered `resync` to
//!   that audience, so every recipient, on every instance, refetches. Never a local-only
//!   numbering that a cursor of the shared one could skip;
//! - while Redis is down the publisher delivers each message here (local numbering, its own
//!   epoch) and *holds* messages to users, to hand them to the other instances once Redis is back
//!   (at most `queue` of them, none older than `replay_window_s`); a role or topic broadcast, a
//!   held message pushed out by a newer one, or one held too long becomes a gap instead;
//! - gaps are bounded too: past [`MAX_GAP_USERS`] users or [`MAX_GAP_TOPICS`] topics they
//!   collapse into one gap for everyone (every session on every instance resyncs).

use std::collections::{HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use kreki_auth::{Role, Roles};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::hub::{Audience, Envelope};

/// Distinct users a gap may name before it becomes a gap for everyone.
pub(crate) const MAX_GAP_USERS: usize = 65_536;
/// Distinct topics a gap may name before it becomes a gap for everyone.
pub(crate) const MAX_GAP_TOPICS: usize = 4_096;
/// Users per `resync` publish when a gap is paid back.
const RESYNC_CHUNK: usize = 1_000;

/// What the publisher carries to Redis, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
    /// Number a message for its audience and append it to the stream. With `delivered_here`, this
    /// instance delivered it to its own sockets already (while Redis was away): the stream entry
    /// names this instance as its origin, so its own reader only records it.
    Publish {
        /// The message.
        envelope: Envelope,
        /// Handed over after an outage.
        delivered_here: bool,
    },
    /// Number a `resync` message for `audience` (they lost a message: see the module docs).
    Resync(Audience),
    /// Append an entry that makes every instance resync every session it holds.
    ResyncEveryone,
    /// `user` attached a connection here with these roles.
    Attached(Uuid, Roles),
    /// The last connection of `user` here closed.
    Detached(Uuid),
    /// `user` follows `topic`.
    Subscribed(Uuid, String),
    /// `user` no longer follows `topic`.
    Unsubscribed(Uuid, String),
    /// A connection of `user` acknowledged `seq` of `epoch`.
    Acked(Uuid, u64, u64),
}

impl Command {
    /// Whether losing this command would lose a message (presence changes are written again by
    /// the periodic refresh).
    fn carries_a_message(&self) -> bool {
        matches!(
            self,
            Self::Publish { .. } | Self::Resync(_) | Self::ResyncEveryone
        )
    }
}

/// Audiences that lost a message and are owed a `resync`.
#[derive(Debug, Default)]
struct Gaps {
    everyone: bool,
    users: HashSet<Uuid>,
    roles: HashSet<Role>,
    topics: HashSet<String>,
}

impl Gaps {
    fn is_empty(&self) -> bool {
        !self.everyone && self.users.is_empty() && self.roles.is_empty() && self.topics.is_empty()
    }

    fn record(&mut self, audience: &Audience) {
        if self.everyone {
            return;
        }
        match audience {
            Audience::User(user) => {
                self.users.insert(*user);
            }
            Audience::Users(users) => self.users.extend(users.iter().copied()),
            // Everyone of the role resyncs: more than lost the message, never fewer.
            Audience::Role(role) | Audience::RoleExcept(role, _) => {
                self.roles.insert(*role);
            }
            Audience::Topic(topic) => {
                self.topics.insert(topic.clone());
            }
        }
        if self.users.len() > MAX_GAP_USERS || self.topics.len() > MAX_GAP_TOPICS {
            self.collapse();
        }
    }

    fn collapse(&mut self) {
        *self = Self {
            everyone: true,
            ..Self::default()
        };
    }

    /// The commands that pay the gaps back (emptying them).
    fn take(&mut self) -> Vec<Command> {
        let gaps = std::mem::take(self);
        if gaps.everyone {
            return vec![Command::ResyncEveryone];
        }
        let mut users: Vec<Uuid> = gaps.users.into_iter().collect();
        users.sort_unstable();
        let mut commands: Vec<Command> = users
            .chunks(RESYNC_CHUNK)
            .map(|chunk| Command::Resync(Audience::Users(chunk.to_vec())))
            .collect();
        commands.extend(
            gaps.roles
                .into_iter()
                .map(|role| Command::Resync(Audience::Role(role))),
        );
        commands.extend(
            gaps.topics
                .into_iter()
                .map(|topic| Command::Resync(Audience::Topic(topic))),
        );
        commands
    }
}

#[derive(Default)]
struct State {
    queue: VecDeque<Command>,
    gaps: Gaps,
    held: VecDeque<(Instant, Envelope)>,
    /// The publisher said goodbye: nothing carries messages any more.
    closed: bool,
}

/// The outbox: filled by the hub through [`super::handle::HubBus`], never waiting; emptied by
/// the publisher.
pub(crate) struct Outbox {
    state: Mutex<State>,
    wake: Notify,
    capacity: usize,
    hold_for: Duration,
    /// Asks the publisher to carry what is left and say goodbye.
    pub(crate) finish: CancellationToken,
    /// Cancelled when the publisher has stopped.
    pub(crate) finished: CancellationToken,
}

impl Outbox {
    /// An outbox of `capacity` commands (and as many held messages), holding messages for the
    /// other instances at most `hold_for`.
    pub(crate) fn new(capacity: usize, hold_for: Duration) -> Self {
        for reason in [
            "queue_full",
            "held_overflow",
            "held_too_long",
            "broadcast_while_down",
        ] {
            metrics::counter!("realtime_bus_gaps_total", "reason" => reason).increment(0);
        }
        Self {
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            capacity,
            hold_for,
            finish: CancellationToken::new(),
            finished: CancellationToken::new(),
        }
    }

    /// Queues a message; when the queue is full, records a gap for its audience instead. Never
    /// waits. False when the publisher is gone (after shutdown): the message is lost (logged).
    pub(crate) fn publish(&self, envelope: Envelope) -> bool {
        let mut state = self.lock();
        if state.closed {
            drop(state);
            metrics::counter!("realtime_bus_lost_after_shutdown_total").increment(1);
            tracing::error!(
                audience = ?envelope.audience,
                kind = envelope.frame.kind(),
                "message published after the Redis bus stopped: not delivered"
            );
            return false;
        }
        if state.queue.len() < self.capacity {
            state.queue.push_back(Command::Publish {
                envelope,
                delivered_here: false,
            });
        } else {
            let first = state.gaps.is_empty();
            state.gaps.record(&envelope.audience);
            drop(state);
            metrics::counter!("realtime_bus_gaps_total", "reason" => "queue_full").increment(1);
            if first {
                tracing::warn!(
                    audience = ?envelope.audience,
                    "realtime.redis.queue is full: the recipients will be sent `resync`"
                );
            }
        }
        self.wake.notify_one();
        true
    }

    /// Queues a presence change, or drops it when the queue is full (the refresh writes it again).
    pub(crate) fn notify(&self, command: Command) {
        let mut state = self.lock();
        if state.closed || state.queue.len() >= self.capacity {
            tracing::debug!("realtime.redis.queue is full: presence update deferred");
            return;
        }
        state.queue.push_back(command);
        drop(state);
        self.wake.notify_one();
    }

    /// Waits until a command is queued, or (with `with_gaps`: Redis is reachable) a `resync` is
    /// owed; returns at once if one is.
    pub(crate) async fn ready(&self, with_gaps: bool) {
        loop {
            let notified = self.wake.notified();
            {
                let state = self.lock();
                if !state.queue.is_empty() || (with_gaps && !state.gaps.is_empty()) {
                    return;
                }
            }
            notified.await;
        }
    }

    /// Wakes the publisher (to notice a shutdown, for example).
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    /// Nothing queued, owed or held.
    pub(crate) fn is_idle(&self) -> bool {
        let state = self.lock();
        state.queue.is_empty() && state.gaps.is_empty() && state.held.is_empty()
    }

    /// Nothing queued and no gap owed (held messages wait for Redis).
    pub(crate) fn is_drained(&self) -> bool {
        let state = self.lock();
        state.queue.is_empty() && state.gaps.is_empty()
    }

    /// The next batch: the `resync`s owed first (when `with_gaps`: Redis is reachable), then up to
    /// `max` queued commands.
    pub(crate) fn take_batch(&self, max: usize, with_gaps: bool) -> Vec<Command> {
        let mut state = self.lock();
        let mut batch = if with_gaps {
            state.gaps.take()
        } else {
            Vec::new()
        };
        let count = state.queue.len().min(max);
        batch.extend(state.queue.drain(..count));
        batch
    }

    /// Records that `audience` lost a message (`reason` names why, for the metric).
    pub(crate) fn gap(&self, audience: &Audience, reason: &'static str) {
        self.lock().gaps.record(audience);
        metrics::counter!("realtime_bus_gaps_total", "reason" => reason).increment(1);
    }

    /// Records again a `resync` owed that could not be carried (no metric: it was counted).
    pub(crate) fn owe(&self, audience: &Audience) {
        self.lock().gaps.record(audience);
    }

    /// Records that some message to an unknown audience was lost: everyone resyncs.
    pub(crate) fn gap_everyone(&self) {
        self.lock().gaps.collapse();
    }

    /// Keeps a message this instance delivered alone (Redis down) for the other instances. Role
    /// and topic broadcasts are not kept (they are the high-volume ones: positions on the
    /// coordinators' map, alert updates): their audience gets a `resync` instead, as does the
    /// oldest held message when the hold is full.
    pub(crate) fn hold(&self, envelope: Envelope) {
        if !matches!(envelope.audience, Audience::User(_) | Audience::Users(_)) {
            self.gap(&envelope.audience, "broadcast_while_down");
            return;
        }
        let mut state = self.lock();
        if state.held.len() >= self.capacity
            && let Some((_, oldest)) = state.held.pop_front()
        {
            state.gaps.record(&oldest.audience);
            metrics::counter!("realtime_bus_gaps_total", "reason" => "held_overflow").increment(1);
        }
        state.held.push_back((Instant::now(), envelope));
    }

    /// Puts back messages taken with [`Self::take_held`] that could not be handed over.
    pub(crate) fn hold_again(&self, envelopes: Vec<Envelope>) {
        let mut state = self.lock();
        for envelope in envelopes.into_iter().rev() {
            state.held.push_front((Instant::now(), envelope));
        }
        while state.held.len() > self.capacity {
            if let Some((_, oldest)) = state.held.pop_front() {
                state.gaps.record(&oldest.audience);
            }
        }
    }

    /// The held messages, oldest first (emptying the hold); those held longer than
    /// `replay_window_s` become gaps (their recipients refetch rather than get a stale message).
    pub(crate) fn take_held(&self) -> Vec<Envelope> {
        let mut state = self.lock();
        let held: Vec<(Instant, Envelope)> = state.held.drain(..).collect();
        let mut fresh = Vec::with_capacity(held.len());
        for (at, envelope) in held {
            if at.elapsed() <= self.hold_for {
                fresh.push(envelope);
            } else {
                state.gaps.record(&envelope.audience);
                metrics::counter!("realtime_bus_gaps_total", "reason" => "held_too_long")
                    .increment(1);
            }
        }
        fresh
    }

    /// Stops taking messages (after the publisher's goodbye). Returns what was still owed: true
    /// when nothing was.
    pub(crate) fn close(&self) -> bool {
        let mut state = self.lock();
        state.closed = true;
        state
            .queue
            .iter()
            .all(|command| !command.carries_a_message())
            && state.gaps.is_empty()
            && state.held.is_empty()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every mutation completes before anything that could panic: a poisoned lock is usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::frame::Frame;

    fn envelope(audience: Audience) -> Envelope {
        Envelope {
            audience,
            frame: Frame::from_value(json!({"type": "offer"})).expect("a frame"),
        }
    }

    #[test]
    fn a_full_queue_turns_messages_into_one_resync_per_audience_paid_first() {
        let outbox = Outbox::new(2, Duration::from_secs(60));
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        for _ in 0..5 {
            assert!(outbox.publish(envelope(Audience::User(a))));
        }
        outbox.publish(envelope(Audience::Users(vec![a, b])));
        outbox.publish(envelope(Audience::Role(Role::Coordinator)));
        outbox.publish(envelope(Audience::Topic("alert:1".into())));
        let batch = outbox.take_batch(10, true);
        let mut pair = vec![a, b];
        pair.sort_unstable();
        assert_eq!(
            batch[..3],
            [
                Command::Resync(Audience::Users(pair)),
                Command::Resync(Audience::Role(Role::Coordinator)),
                Command::Resync(Audience::Topic("alert:1".into())),
            ]
        );
        assert_eq!(batch.len(), 5, "then the two queued: {batch:?}");
        assert!(outbox.is_idle());
    }

    #[test]
    fn gaps_wait_for_redis_and_collapse_past_their_bound() {
        let outbox = Outbox::new(1, Duration::from_secs(60));
        outbox.publish(envelope(Audience::User(Uuid::new_v4())));
        for _ in 0..=MAX_GAP_USERS {
            outbox.publish(envelope(Audience::User(Uuid::new_v4())));
        }
        assert_eq!(outbox.take_batch(10, false).len(), 1, "no gap while down");
        assert_eq!(outbox.take_batch(10, true), vec![Command::ResyncEveryone]);
    }

    #[test]
    fn held_messages_are_bounded_and_what_falls_out_is_owed_a_resync() {
        let outbox = Outbox::new(2, Duration::from_secs(60));
        let users: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
        for user in &users {
            outbox.hold(envelope(Audience::User(*user)));
        }
        outbox.hold(envelope(Audience::Role(Role::Coordinator)));
        let held = outbox.take_held();
        assert_eq!(
            held.iter().map(|e| e.audience.clone()).collect::<Vec<_>>(),
            vec![Audience::User(users[1]), Audience::User(users[2])]
        );
        outbox.hold_again(held);
        assert_eq!(outbox.take_held().len(), 2);
        let owed = outbox.take_batch(10, true);
        assert!(owed.contains(&Command::Resync(Audience::Users(vec![users[0]]))));
        assert!(owed.contains(&Command::Resync(Audience::Role(Role::Coordinator))));
    }

    #[test]
    fn messages_held_too_long_become_resyncs() {
        let outbox = Outbox::new(4, Duration::ZERO);
        let user = Uuid::new_v4();
        outbox.hold(envelope(Audience::User(user)));
        std::thread::sleep(Duration::from_millis(2));
        assert!(outbox.take_held().is_empty());
        assert_eq!(
            outbox.take_batch(10, true),
            vec![Command::Resync(Audience::Users(vec![user]))]
        );
    }

    #[test]
    fn closing_tells_whether_anything_was_owed_and_later_messages_are_refused() {
        let outbox = Outbox::new(4, Duration::from_secs(60));
        outbox.notify(Command::Detached(Uuid::new_v4()));
        assert!(outbox.close(), "a presence change is not a message");
        assert!(!outbox.publish(envelope(Audience::User(Uuid::new_v4()))));
        let outbox = Outbox::new(4, Duration::from_secs(60));
        outbox.publish(envelope(Audience::User(Uuid::new_v4())));
        assert!(!outbox.close());
    }
}
