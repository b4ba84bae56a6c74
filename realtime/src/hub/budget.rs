//! The replay budget: a bound on the memory all replay rings of this instance hold together.
//!
//! Each ring is bounded on its own (`replay_messages`, `replay_window_s`), but with many users
//! that still multiplies: 2,000 volunteers times 512 offers of a kilobyte is a gigabyte. So every
//! message kept for replay is also charged to one instance-wide budget
//! (`realtime.replay_budget_bytes`): its share of the body (a body shared by N rings costs each
//! of them 1/N of it) plus the bookkeeping of one ring entry. Over the budget, the oldest kept
//! messages are forgotten first, whoever they belong to. A client that resumes from before a
//! forgotten message gets `resync` (the ring no longer covers its cursor), never a silent gap.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::session::Session;

/// What one ring entry costs besides its share of the body: the entry in the ring and its charge
/// here (a `seq`, an instant, a shared body handle, a user id, an epoch), rounded up.
pub(super) const ENTRY_BYTES: usize = 128;

/// Messages kept for replay, oldest first, and what they cost.
pub(super) struct ReplayBudget {
    limit_bytes: usize,
    used_bytes: usize,
    order: VecDeque<Charge>,
}

struct Charge {
    at: Instant,
    user: Uuid,
    epoch: u64,
    seq: u64,
    bytes: usize,
}

impl ReplayBudget {
    pub(super) fn new(limit_bytes: usize) -> Self {
        Self {
            limit_bytes,
            used_bytes: 0,
            order: VecDeque::new(),
        }
    }

    /// Bytes charged now.
    pub(super) fn used_bytes(&self) -> usize {
        self.used_bytes
    }

    /// What keeping a body of `body_bytes` costs each of `recipients` rings.
    pub(super) fn share(body_bytes: usize, recipients: usize) -> usize {
        ENTRY_BYTES + body_bytes.div_ceil(recipients.max(1))
    }

    /// Charges message `seq` of `epoch` kept in `user`'s ring.
    pub(super) fn charge(&mut self, user: Uuid, epoch: u64, seq: u64, bytes: usize, at: Instant) {
        self.used_bytes += bytes;
        self.order.push_back(Charge {
            at,
            user,
            epoch,
            seq,
            bytes,
        });
    }

    /// Releases charges older than `window` (their rings dropped them by age already) and, while
    /// over the limit, forgets the oldest kept messages. Returns how many ring entries it removed.
    pub(super) fn enforce(
        &mut self,
        sessions: &mut HashMap<Uuid, Session>,
        window: Duration,
        now: Instant,
    ) -> usize {
        let mut evicted = 0;
        while let Some(oldest) = self.order.front() {
            let aged = now.duration_since(oldest.at) > window;
            if !aged && self.used_bytes <= self.limit_bytes {
                break;
            }
            let Some(charge) = self.order.pop_front() else {
                break;
            };
            self.used_bytes -= charge.bytes;
            if aged {
                continue;
            }
            // Rings hold consecutive messages in arrival order, and charges are in arrival order:
            // the oldest charge is its ring's front, unless the ring dropped it already.
            if let Some(session) = sessions.get_mut(&charge.user)
                && session.epoch == charge.epoch
                && session
                    .ring
                    .front()
                    .is_some_and(|kept| kept.seq == charge.seq)
            {
                session.ring.pop_front();
                evicted += 1;
            }
        }
        if evicted > 0 {
            metrics::counter!("realtime_replay_evictions_total").increment(evicted as u64);
        }
        evicted
    }
}

#[cfg(test)]
mod tests {
    use axum::extract::ws::Utf8Bytes;

    use super::*;
    use crate::config::RealtimeConfig;

    #[test]
    fn over_the_limit_the_oldest_messages_of_anyone_go_first() {
        let config = RealtimeConfig::default();
        let now = Instant::now();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let mut sessions = HashMap::new();
        let mut budget = ReplayBudget::new(3 * ReplayBudget::share(10, 1));
        for user in [a, b] {
            let mut session = Session::new(now, 1);
            session.renumber(true, 1, 0);
            sessions.insert(user, session);
        }
        let body = Utf8Bytes::from("\"type\":\"x\"}".to_owned());
        let mut keep = |sessions: &mut HashMap<Uuid, Session>, user: Uuid, seq: u64| {
            let session = sessions.get_mut(&user).expect("a session");
            session.keep(seq, body.clone(), now, &config);
            session.seq = seq;
            budget.charge(user, 1, seq, ReplayBudget::share(10, 1), now);
            budget.enforce(sessions, Duration::from_secs(60), now)
        };
        assert_eq!(keep(&mut sessions, a, 1), 0);
        assert_eq!(keep(&mut sessions, b, 1), 0);
        assert_eq!(keep(&mut sessions, a, 2), 0);
        assert_eq!(keep(&mut sessions, b, 2), 1, "a's first message goes");
        assert_eq!(sessions[&a].ring.front().map(|kept| kept.seq), Some(2));
        assert_eq!(sessions[&b].ring.len(), 2);
        assert_eq!(keep(&mut sessions, b, 3), 1, "then b's first");
        assert_eq!(sessions[&b].ring.front().map(|kept| kept.seq), Some(2));
        assert_eq!(budget.used_bytes(), 3 * ReplayBudget::share(10, 1));
        // Everything ages out of the budget with the replay window.
        let later = now + Duration::from_secs(61);
        assert_eq!(
            budget.enforce(&mut sessions, Duration::from_secs(60), later),
            0
        );
        assert_eq!(budget.used_bytes(), 0);
    }

    #[test]
    fn a_shared_body_is_charged_once_across_its_rings() {
        assert_eq!(ReplayBudget::share(1000, 10) * 10, 1000 + 10 * ENTRY_BYTES);
        assert_eq!(ReplayBudget::share(1000, 0), 1000 + ENTRY_BYTES);
    }
}
