//! A user's replay ring: the messages after some `seq`, consecutively, each a reference to a body
//! shared with every other ring and socket that has it (40 bytes an entry besides its share).

use std::collections::VecDeque;

use axum::extract::ws::Utf8Bytes;

/// One kept message.
struct Kept {
    body: Utf8Bytes,
    /// When it was kept, in seconds since the hub started.
    at_s: u32,
    /// What it is charged against the replay budget, in bytes.
    share: u32,
}

/// Consecutive messages, oldest first: entry `i` is message `first_seq + i`.
#[derive(Default)]
pub(super) struct Ring {
    kept: VecDeque<Kept>,
    first_seq: u64,
    bytes: usize,
}

impl Ring {
    /// Keeps message `seq` (which must follow the newest kept one; when it does not, the ring
    /// starts again from it). Returns the bytes charged.
    pub(super) fn push(&mut self, seq: u64, body: Utf8Bytes, at_s: u32, share: usize) -> usize {
        if self.kept.is_empty() || self.next_seq() != seq {
            self.clear();
            self.first_seq = seq;
        }
        let share = u32::try_from(share).unwrap_or(u32::MAX);
        self.kept.push_back(Kept { body, at_s, share });
        self.bytes += share as usize;
        share as usize
    }

    /// Forgets the oldest message; returns the bytes released.
    pub(super) fn pop_front(&mut self) -> usize {
        match self.kept.pop_front() {
            Some(kept) => {
                self.first_seq += 1;
                self.bytes -= kept.share as usize;
                if self.kept.is_empty() {
                    self.kept = VecDeque::new();
                }
                kept.share as usize
            }
            None => 0,
        }
    }

    /// Forgets everything; returns the bytes released.
    pub(super) fn clear(&mut self) -> usize {
        let released = self.bytes;
        self.kept = VecDeque::new();
        self.bytes = 0;
        released
    }

    pub(super) fn len(&self) -> usize {
        self.kept.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }

    /// The `seq` of the oldest kept message, if any.
    pub(super) fn first_seq(&self) -> Option<u64> {
        (!self.kept.is_empty()).then_some(self.first_seq)
    }

    /// When the oldest kept message was kept (seconds since the hub started).
    pub(super) fn oldest_at_s(&self) -> Option<u32> {
        self.kept.front().map(|kept| kept.at_s)
    }

    /// Bytes charged for what is kept.
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    fn next_seq(&self) -> u64 {
        self.first_seq + self.kept.len() as u64
    }

    /// `(seq, body)` of every kept message, oldest first.
    pub(super) fn iter(&self) -> impl DoubleEndedIterator<Item = (u64, &Utf8Bytes)> {
        let first = self.first_seq;
        self.kept
            .iter()
            .enumerate()
            .map(move |(index, kept)| (first + index as u64, &kept.body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_messages_with_their_charges() {
        let body = Utf8Bytes::from_static("\"type\":\"x\"}");
        let mut ring = Ring::default();
        assert_eq!(ring.first_seq(), None);
        assert_eq!(ring.push(5, body.clone(), 1, 100), 100);
        ring.push(6, body.clone(), 2, 100);
        assert_eq!(ring.first_seq(), Some(5));
        assert_eq!(ring.bytes(), 200);
        assert_eq!(
            ring.iter().map(|(seq, _)| seq).collect::<Vec<_>>(),
            vec![5, 6]
        );
        // A message that does not follow starts the ring again.
        ring.push(9, body.clone(), 3, 50);
        assert_eq!(ring.first_seq(), Some(9));
        assert_eq!((ring.len(), ring.bytes()), (1, 50));
        ring.push(10, body, 4, 50);
        assert_eq!(ring.pop_front(), 50);
        assert_eq!((ring.first_seq(), ring.oldest_at_s()), (Some(10), Some(4)));
        assert_eq!(ring.clear(), 50);
        assert!(ring.is_empty());
    }
}
