//! Connections coming and going: attaching a socket to its user's session (with the backlog a
//! resuming client is owed, or a `resync`), detaching it, acknowledgements, and topic
//! subscriptions.

use std::sync::atomic::Ordering;
use std::time::Instant;

use kreki_auth::{Role, Roles};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::index::remove_from_index;
use super::outbound;
use super::session::{Connection, Session};
use super::{Attachment, Cursor, Hub, Numbering, SubscribeError};
use crate::frame::Frame;

impl Hub {
    /// Attaches a new connection of `user` holding `roles`. With `resume = Some(cursor)` the
    /// backlog holds the messages after the cursor still in the ring, or a `resync` frame when
    /// some of them are gone or the cursor belongs to another epoch. With a bus, a session made
    /// here starts a numbering of its own (see [`Self::attach_resuming`]).
    #[cfg(test)]
    pub(crate) fn attach(&self, user: Uuid, roles: &Roles, resume: Option<Cursor>) -> Attachment {
        self.attach_at(user, roles, resume, Numbering::Fresh, Instant::now())
    }

    /// [`Self::attach`] as a socket does it: with a bus, when this instance has no session for
    /// `user` yet, it first asks the bus where the user's shared numbering is, so the session
    /// starts there: messages up to it that this instance's reader brings later are not sent as
    /// new, and a client already there resumes without a `resync`.
    pub(crate) async fn attach_resuming(
        &self,
        user: Uuid,
        roles: &Roles,
        resume: Option<Cursor>,
    ) -> Attachment {
        let numbering = match &self.inner.bus {
            Some(bus) if !self.lock().sessions.contains_key(&user) => bus.numbering(user).await,
            _ => Numbering::Fresh,
        };
        self.attach_at(user, roles, resume, numbering, Instant::now())
    }

    pub(super) fn attach_at(
        &self,
        user: Uuid,
        roles: &Roles,
        resume: Option<Cursor>,
        numbering: Numbering,
        now: Instant,
    ) -> Attachment {
        let config = &self.inner.config;
        let id = self.inner.next_connection.fetch_add(1, Ordering::Relaxed);
        let (sender, outbound) = outbound::channel(config.outbound_queue);
        let kicked = CancellationToken::new();
        let mut guard = self.lock();
        let state = &mut *guard;
        let session = state.sessions.entry(user).or_insert_with(|| {
            metrics::gauge!("realtime_sessions").increment(1.0);
            let mut session = Session::new(now, self.next_epoch());
            match (numbering, resume) {
                (Numbering::Current { epoch, seq }, _) => session.renumber(true, epoch, seq),
                // The bus cannot tell: the client's own cursor is the best position known.
                (
                    Numbering::Unknown,
                    Some(Cursor {
                        after,
                        epoch: Some(epoch),
                    }),
                ) => session.renumber(true, epoch, after),
                (Numbering::Unknown, _) => session.numbering_unknown = true,
                (Numbering::Fresh, _) => {}
            }
            session
        });
        let before = session.ring.bytes();
        session.prune(config, self.clock_s(now));
        state.replay_bytes = state.replay_bytes + session.ring.bytes() - before;
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
        let (backlog, skip_through) = match resume {
            None => (Vec::new(), None),
            Some(cursor) => session.resume(cursor),
        };
        session.connections.push(Connection {
            id,
            outbound: sender,
            kicked: kicked.clone(),
            skip_through,
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

    /// The `(epoch, seq)` of the newest message of `user` with the same bytes as `frame` still
    /// in their replay ring here, acknowledged or not. With the Redis bus every instance numbers
    /// a message alike, so another instance's acknowledgement of that `seq` can be checked
    /// against it.
    pub fn numbered(&self, user: Uuid, frame: &Frame) -> Option<(u64, u64)> {
        let state = self.lock();
        let session = state.sessions.get(&user)?;
        session
            .ring
            .iter()
            .rev()
            .find(|(_, body)| *body == frame.body())
            .map(|(seq, _)| (session.epoch, seq))
    }

    /// True when a connection of `user` acknowledged a message with the same bytes as `frame`
    /// that is still in their replay ring: how the pusher's `no_ack` policy learns that the
    /// WebSocket got an offer. False when the session was forgotten or the message left the ring
    /// (then a push is the safe side).
    pub fn acknowledged(&self, user: Uuid, frame: &Frame) -> bool {
        let state = self.lock();
        let Some(session) = state.sessions.get(&user) else {
            return false;
        };
        session
            .ring
            .iter()
            .rev()
            .any(|(seq, body)| seq <= session.acked && body == frame.body())
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
}
