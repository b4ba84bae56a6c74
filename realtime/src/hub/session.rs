//! One user's session on this instance: the numbering (`epoch`, `seq`), the replay ring, the
//! connections, and the rules that keep a client's cursor honest.
//!
//! The ring holds consecutive `seq`s ending at the session's `seq` (or nothing). Whatever breaks
//! that run (a `seq` that jumps, another epoch, a message lost elsewhere) empties the ring, so a
//! cursor from before the break can only get `resync`; and the connections open at that moment
//! get a `resync` before the next message, so a live socket never skips a number silently either.

use std::collections::HashSet;
use std::time::Instant;

use axum::extract::ws::Utf8Bytes;
use kreki_auth::Roles;
use tokio_util::sync::CancellationToken;

use super::Cursor;
use super::outbound::{OutboundSender, TrySendError};
use super::ring::Ring;
use crate::config::RealtimeConfig;
use crate::frame::Outgoing;

pub(super) struct Session {
    /// The numbering comes from the bus ([`super::Hub::deliver_numbered`]), not from this instance.
    pub(super) shared: bool,
    /// Made by a connection while the bus could not tell the user's shared numbering: the
    /// first shared message is a starting point, not news (see [`super::Numbering::Unknown`]).
    pub(super) numbering_unknown: bool,
    /// Names this numbering (see [`super::Hub`]).
    pub(super) epoch: u64,
    /// The `seq` of the newest message of this numbering (0 before the first).
    pub(super) seq: u64,
    /// A cursor below this cannot be replayed even if the ring seems to cover it: this instance
    /// learnt that a message that never got a number was lost around then (an instance died with
    /// messages in its queue). 0: no such loss.
    pub(super) resync_below: u64,
    /// The highest `seq` of this numbering a connection acknowledged (0 before any). Read by the
    /// pusher's `no_ack` policy.
    pub(super) acked: u64,
    pub(super) ring: Ring,
    pub(super) connections: Vec<Connection>,
    /// Roles of the newest token this user connected with; `None` until they connect.
    pub(super) roles: Option<Roles>,
    pub(super) topics: HashSet<String>,
    /// Since when the session has had no connection (or since its creation).
    pub(super) idle_since: Instant,
}

pub(super) struct Connection {
    pub(super) id: u64,
    pub(super) outbound: OutboundSender,
    pub(super) kicked: CancellationToken,
    /// The client resumed from `(epoch, seq)` ahead of this instance (its reader had not caught
    /// up yet): messages of that epoch up to that `seq` are not sent to it again.
    pub(super) skip_through: Option<(u64, u64)>,
}

/// Why a session's numbering did not continue where it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Continuity {
    /// `seq` is the next number of the same numbering.
    Next,
    /// At or below the session's `seq` in the same numbering: delivered already.
    Duplicate,
    /// A jump or another numbering: the ring was emptied; open connections need a `resync`
    /// unless nothing was ever numbered before (`announce` false).
    Broken {
        /// Whether a connection may hold a cursor of the old run.
        announce: bool,
    },
}

impl Session {
    pub(super) fn new(now: Instant, epoch: u64) -> Self {
        Self {
            shared: false,
            numbering_unknown: false,
            epoch,
            seq: 0,
            resync_below: 0,
            acked: 0,
            ring: Ring::default(),
            connections: Vec::new(),
            roles: None,
            topics: HashSet::new(),
            idle_since: now,
        }
    }

    /// Starts a new numbering: `epoch`, nothing sent yet, nothing to replay.
    pub(super) fn renumber(&mut self, shared: bool, epoch: u64, seq: u64) {
        self.shared = shared;
        self.epoch = epoch;
        self.seq = seq;
        self.resync_below = 0;
        self.acked = 0;
        self.ring.clear();
    }

    /// Where message `seq` of the shared numbering `epoch` stands against this session; when the
    /// run is broken, the session is renumbered so that `seq` comes next.
    pub(super) fn continuity(&mut self, epoch: u64, seq: u64) -> Continuity {
        if self.shared && self.epoch == epoch {
            if seq <= self.seq {
                return Continuity::Duplicate;
            }
            if seq == self.seq + 1 {
                return Continuity::Next;
            }
        }
        // Nothing numbered yet (a session a connection just made): no cursor can point into it.
        let announce = self.seq > 0 || !self.ring.is_empty();
        self.renumber(true, epoch, seq.saturating_sub(1));
        Continuity::Broken { announce }
    }

    /// Keeps message `seq` (the session's next) for replay, charging `share` bytes; the caller
    /// updates `seq`. `now_s` is the hub's clock (seconds since it started).
    pub(super) fn keep(
        &mut self,
        seq: u64,
        body: Utf8Bytes,
        share: usize,
        now_s: u32,
        config: &RealtimeConfig,
    ) {
        self.ring.push(seq, body, now_s, share);
        self.prune(config, now_s);
    }

    /// Keeps the newest `replay_messages` frames, none older than `replay_window_s`.
    pub(super) fn prune(&mut self, config: &RealtimeConfig, now_s: u32) {
        let window_s = u32::try_from(config.replay_window_s).unwrap_or(u32::MAX);
        while self.ring.len() > config.replay_messages
            || self
                .ring
                .oldest_at_s()
                .is_some_and(|at_s| now_s.saturating_sub(at_s) > window_s)
        {
            self.ring.pop_front();
        }
    }

    /// The `resync` that puts a client's cursor at this session's current position.
    pub(super) fn resync(&self) -> Outgoing {
        Outgoing::Resync {
            epoch: self.epoch,
            seq: self.seq,
        }
    }

    /// Frames after the cursor, or a lone `resync` when some of them are no longer kept, or the
    /// cursor is of another epoch, or ahead of this session (a client that sends no epoch, after
    /// the session it knew expired or the server restarted), or before a loss this instance
    /// learnt of.
    pub(super) fn backlog_after(&self, cursor: Cursor) -> Vec<Outgoing> {
        let Cursor { after, epoch } = cursor;
        let first_kept = self.ring.first_seq().unwrap_or(self.seq + 1);
        let other_epoch = epoch.is_some_and(|epoch| epoch != self.epoch);
        if other_epoch
            || after > self.seq
            || after.saturating_add(1) < first_kept
            || after < self.resync_below
        {
            metrics::counter!("realtime_resyncs_total", "reason" => "resume").increment(1);
            return vec![self.resync()];
        }
        self.ring
            .iter()
            .filter(|(seq, _)| *seq > after)
            .map(|(seq, body)| Outgoing::Message {
                epoch: self.epoch,
                seq,
                body: body.clone(),
                trace: None,
            })
            .collect()
    }

    /// Where a client resuming from `cursor` stands: ahead of this session in its own shared
    /// numbering (this instance's reader has not caught up), it is sent nothing it has already,
    /// else [`Self::backlog_after`].
    pub(super) fn resume(&self, cursor: Cursor) -> (Vec<Outgoing>, Option<(u64, u64)>) {
        if self.shared && cursor.epoch == Some(self.epoch) && cursor.after > self.seq {
            return (Vec::new(), Some((self.epoch, cursor.after)));
        }
        (self.backlog_after(cursor), None)
    }

    /// Offers `frame` to every connection without waiting; a full queue marks its connection too
    /// slow (kicked, removed), a closed one is removed.
    pub(super) fn offer(&mut self, frame: &Outgoing, now: Instant) {
        if self.connections.is_empty() {
            return;
        }
        self.connections.retain_mut(|connection| {
            let frame = match (connection.skip_through, frame) {
                // The client has these already (it resumed ahead of this instance's reader).
                (Some((epoch, through)), Outgoing::Message { epoch: e, seq, .. })
                    if *e == epoch && *seq <= through =>
                {
                    return true;
                }
                // A resync must not move the client's cursor back behind what it has.
                (Some((epoch, through)), Outgoing::Resync { epoch: e, seq })
                    if *e == epoch && *seq < through =>
                {
                    Outgoing::Resync {
                        epoch,
                        seq: through,
                    }
                }
                (_, frame) => {
                    if !matches!(frame, Outgoing::Resync { .. }) {
                        connection.skip_through = None;
                    }
                    frame.clone()
                }
            };
            match connection.outbound.try_send(frame) {
                Ok(()) => true,
                Err(TrySendError::Full) => {
                    connection.kicked.cancel();
                    false
                }
                Err(TrySendError::Closed) => false,
            }
        });
        if self.connections.is_empty() {
            self.idle_since = now;
        }
    }

    /// The connections here learn that the numbering was broken: a `resync` to the current
    /// position (counted by `reason`).
    pub(super) fn announce_resync(&mut self, reason: &'static str, now: Instant) {
        if self.connections.is_empty() {
            return;
        }
        metrics::counter!("realtime_resyncs_total", "reason" => reason).increment(1);
        let resync = self.resync();
        self.offer(&resync, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        Session::new(Instant::now(), 7)
    }

    fn keep(session: &mut Session, seq: u64) {
        session.keep(
            seq,
            Utf8Bytes::from_static("\"type\":\"x\"}"),
            100,
            0,
            &RealtimeConfig::default(),
        );
        session.seq = seq;
    }

    #[test]
    fn continuity_of_a_shared_numbering() {
        let mut session = session();
        assert_eq!(
            session.continuity(9, 5),
            Continuity::Broken { announce: false },
            "a new session takes the bus's numbering without telling anyone"
        );
        assert_eq!((session.epoch, session.seq), (9, 4));
        keep(&mut session, 5);
        assert_eq!(session.continuity(9, 6), Continuity::Next);
        keep(&mut session, 6);
        assert_eq!(session.continuity(9, 6), Continuity::Duplicate);
        assert_eq!(session.continuity(9, 2), Continuity::Duplicate);
        assert_eq!(
            session.continuity(9, 9),
            Continuity::Broken { announce: true }
        );
        assert!(session.ring.is_empty());
        assert_eq!(session.seq, 8);
        assert_eq!(
            session.continuity(10, 1),
            Continuity::Broken { announce: true }
        );
        assert_eq!((session.epoch, session.seq, session.acked), (10, 0, 0));
    }

    #[test]
    fn backlog_replays_a_contiguous_run_or_resyncs() {
        let mut session = session();
        session.renumber(true, 7, 0);
        for seq in 1..=4 {
            keep(&mut session, seq);
        }
        let cursor = |after, epoch| Cursor { after, epoch };
        assert_eq!(session.backlog_after(cursor(2, Some(7))).len(), 2);
        assert!(session.backlog_after(cursor(4, Some(7))).is_empty());
        assert_eq!(
            session.backlog_after(cursor(4, Some(8))),
            vec![Outgoing::Resync { epoch: 7, seq: 4 }]
        );
        assert_eq!(
            session.backlog_after(cursor(5, None)),
            vec![Outgoing::Resync { epoch: 7, seq: 4 }]
        );
        session.resync_below = 4;
        assert_eq!(
            session.backlog_after(cursor(3, Some(7))),
            vec![Outgoing::Resync { epoch: 7, seq: 4 }]
        );
        assert!(session.backlog_after(cursor(4, Some(7))).is_empty());
    }
}
