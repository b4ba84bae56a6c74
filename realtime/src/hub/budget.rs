//! The replay budget: a bound on the memory all replay rings of this instance hold together.
//!
//! Each ring is bounded on its own (`replay_messages`, `replay_window_s`), but with many users
//! that still multiplies: 2,000 volunteers times 512 offers of a kilobyte is a gigabyte. So every
//! message kept for replay is also charged to one instance-wide budget
//! (`realtime.replay_budget_bytes`): its share of the body (a body shared by N rings costs each of
//! them 1/N of it) plus the bookkeeping of one ring entry. Over the budget, the oldest kept
//! messages are forgotten first, whoever they belong to, down to nine tenths of the budget (so it
//! runs now and then, not on every message). A client that resumes from before a forgotten
//! message gets `resync` (the ring no longer covers its cursor), never a silent gap.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use uuid::Uuid;

use super::session::Session;

/// What one ring entry costs besides its share of the body: the entry itself and the ring's and
/// allocator's overhead, rounded up.
pub(super) const ENTRY_BYTES: usize = 48;

/// What keeping a body of `body_bytes` costs each of `recipients` rings.
pub(super) fn share(body_bytes: usize, recipients: usize) -> usize {
    ENTRY_BYTES + body_bytes.div_ceil(recipients.max(1))
}

/// When `used_bytes` is over `limit_bytes`, forgets the oldest kept messages of any ring until it
/// is down to nine tenths of the limit. Returns how many it forgot.
pub(super) fn enforce(
    sessions: &mut HashMap<Uuid, Session>,
    used_bytes: &mut usize,
    limit_bytes: usize,
) -> usize {
    if *used_bytes <= limit_bytes {
        return 0;
    }
    let target = limit_bytes - limit_bytes / 10;
    let mut oldest: BinaryHeap<Reverse<(u32, Uuid)>> = sessions
        .iter()
        .filter_map(|(user, session)| Some(Reverse((session.ring.oldest_at_s()?, *user))))
        .collect();
    let mut evicted = 0;
    while *used_bytes > target
        && let Some(Reverse((_, user))) = oldest.pop()
    {
        let Some(session) = sessions.get_mut(&user) else {
            continue;
        };
        *used_bytes -= session.ring.pop_front();
        evicted += 1;
        if let Some(at_s) = session.ring.oldest_at_s() {
            oldest.push(Reverse((at_s, user)));
        }
    }
    metrics::counter!("realtime_replay_evictions_total").increment(evicted as u64);
    evicted
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use axum::extract::ws::Utf8Bytes;

    use super::*;
    use crate::config::RealtimeConfig;

    #[test]
    fn over_the_limit_the_oldest_messages_of_anyone_go_first() {
        let config = RealtimeConfig::default();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let mut sessions = HashMap::new();
        for user in [a, b] {
            let mut session = Session::new(Instant::now(), 1);
            session.renumber(true, 1, 0);
            sessions.insert(user, session);
        }
        let body = Utf8Bytes::from("\"type\":\"x\"}".to_owned());
        let mut used = 0;
        // a: seconds 0..=4, b: seconds 2..=6.
        for (user, start) in [(a, 0), (b, 2)] {
            for seq in 1..=5 {
                let session = sessions.get_mut(&user).expect("a session");
                session.keep(seq, body.clone(), 100, start + seq as u32 - 1, &config);
                session.seq = seq;
                used += 100;
            }
        }
        assert_eq!(
            enforce(&mut sessions, &mut used, 1000),
            0,
            "within the limit"
        );
        // Over 800: down to 720, so three go: a's seconds 0 and 1, then one of second 2.
        assert_eq!(enforce(&mut sessions, &mut used, 800), 3);
        assert_eq!(used, 700);
        let firsts = (sessions[&a].ring.first_seq(), sessions[&b].ring.first_seq());
        assert!(
            matches!(firsts, (Some(4), Some(1)) | (Some(3), Some(2))),
            "{firsts:?}"
        );
    }

    #[test]
    fn a_shared_body_is_charged_once_across_its_rings() {
        assert_eq!(share(1000, 10) * 10, 1000 + 10 * ENTRY_BYTES);
        assert_eq!(share(1000, 0), 1000 + ENTRY_BYTES);
    }
}
