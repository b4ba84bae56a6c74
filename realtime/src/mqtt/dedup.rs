//! De-duplication of panics: the idempotency key handed to [`super::PanicSink`].
//!
//! MQTT QoS 1 is "at least once": the broker re-delivers a panic it did not see acknowledged, a
//! device re-sends when it gets no ack, and with several `kreki` instances the same message may be
//! seen twice. Each becomes one alert because the key is derived from the device and the message
//! alone, so dispatch's idempotent ingest answers every copy with the same alert, on any instance:
//!
//! - with `msg_id` in the payload: `sha256("msg", device, msg_id)` — exact, for devices that number
//!   their presses;
//! - otherwise `sha256("payload", device, payload bytes, time bucket)`, the bucket being
//!   `floor(received_at / window)`. Two copies straddling a bucket boundary would differ, so this
//!   instance also remembers the key it gave each (device, payload) for one window and reuses it:
//!   a copy within the window gets the first copy's key. Presses with the same payload further
//!   apart than the window are new alerts, as they should be.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::credentials::DeviceId;

/// (device, SHA-256 of the payload) -> (first seen, key given).
type Seen = HashMap<(DeviceId, [u8; 32]), (Instant, String)>;

/// Remembers recent panic keys per (device, payload); bounded by `max_entries`.
#[derive(Debug)]
pub struct Deduplicator {
    window: Duration,
    max_entries: usize,
    seen: Mutex<Seen>,
}

impl Deduplicator {
    /// `window`: how long copies of one payload from one device count as the same panic (at least
    /// 1 s). `max_entries`: how many (device, payload) pairs are remembered at once.
    pub fn new(window: Duration, max_entries: usize) -> Self {
        Self {
            window: window.max(Duration::from_secs(1)),
            max_entries: max_entries.max(1),
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// The idempotency key of a panic from `device` with raw `payload` and optional `msg_id`,
    /// received now at `unix_s` (seconds since 1970, UTC).
    pub fn key(
        &self,
        device: &DeviceId,
        payload: &[u8],
        msg_id: Option<&str>,
        unix_s: i64,
    ) -> String {
        if let Some(msg_id) = msg_id {
            return hex_key(&[b"msg", device.as_str().as_bytes(), msg_id.as_bytes()]);
        }
        let payload_hash: [u8; 32] = Sha256::digest(payload).into();
        let now = Instant::now();
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = (device.clone(), payload_hash);
        if let Some((at, key)) = seen.get(&entry)
            && now.duration_since(*at) < self.window
        {
            return key.clone();
        }
        let window_s = i64::try_from(self.window.as_secs()).unwrap_or(i64::MAX);
        let bucket = unix_s.div_euclid(window_s);
        let key = hex_key(&[
            b"payload",
            device.as_str().as_bytes(),
            &payload_hash,
            &bucket.to_be_bytes(),
        ]);
        if seen.len() >= self.max_entries {
            let window = self.window;
            seen.retain(|_, (at, _)| now.duration_since(*at) < window);
            if seen.len() >= self.max_entries {
                // Still full of fresh entries: forget them all; the time bucket still catches most
                // copies, and dispatch's key check is the last word anyway.
                seen.clear();
            }
        }
        seen.insert(entry, (now, key.clone()));
        key
    }

    /// How many (device, payload) pairs are remembered now.
    pub fn len(&self) -> usize {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn hex_key(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        // Length-prefixed, so ("ab","c") and ("a","bc") differ.
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    let digest = hasher.finalize();
    let mut key = String::with_capacity(5 + 64);
    key.push_str("mqtt:");
    for byte in digest {
        key.push(char::from(b"0123456789abcdef"[usize::from(byte >> 4)]));
        key.push(char::from(b"0123456789abcdef"[usize::from(byte & 15)]));
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::credentials::DeviceKind;

    #[test]
    fn copies_within_the_window_share_a_key_even_across_a_bucket_boundary() {
        let dedup = Deduplicator::new(Duration::from_secs(60), 100);
        let device = DeviceId::generate(DeviceKind::Panic);
        let payload = br#"{"lat":-6.2,"lng":106.8}"#;
        let first = dedup.key(&device, payload, None, 119);
        assert_eq!(dedup.key(&device, payload, None, 121), first);
        // Another instance (a fresh memory) in the same bucket agrees.
        let other = Deduplicator::new(Duration::from_secs(60), 100);
        assert_eq!(other.key(&device, payload, None, 61), first);
        assert!(first.starts_with("mqtt:") && first.len() == 69);
    }

    #[test]
    fn other_payloads_devices_and_msg_ids_differ() {
        let dedup = Deduplicator::new(Duration::from_secs(60), 100);
        let a = DeviceId::generate(DeviceKind::Panic);
        let b = DeviceId::generate(DeviceKind::Panic);
        let key = dedup.key(&a, b"{\"lat\":1,\"lng\":1}", None, 0);
        assert_ne!(dedup.key(&a, b"{\"lat\":1,\"lng\":2}", None, 0), key);
        assert_ne!(dedup.key(&b, b"{\"lat\":1,\"lng\":1}", None, 0), key);
        let by_id = dedup.key(&a, b"x", Some("press-1"), 0);
        assert_eq!(dedup.key(&a, b"y", Some("press-1"), 99_999), by_id);
        assert_ne!(dedup.key(&a, b"x", Some("press-2"), 0), by_id);
        assert_ne!(dedup.key(&b, b"x", Some("press-1"), 0), by_id);
    }

    #[test]
    fn memory_stays_bounded() {
        let dedup = Deduplicator::new(Duration::from_secs(60), 10);
        let device = DeviceId::generate(DeviceKind::Panic);
        for i in 0..100 {
            dedup.key(&device, format!("{i}").as_bytes(), None, 0);
            assert!(dedup.len() <= 10);
        }
        assert!(!dedup.is_empty());
    }
}
