//! Abuse limits on panic: at most `panics_per_minute` alerts per account, and, where configured,
//! `panics_per_minute_per_address` per network address (off by default: behind an ingress every
//! request comes from the proxy's address, and a limit there would hold back a whole city during
//! an earthquake). Counted per instance in a fixed window of one minute. The press past the limit is refused with 429 and `Retry-After` before anything
//! is stored, and the coordinators are told who it was. A press that attaches to the citizen's
//! open alert or repeats a key counts too: a flood is a flood.
//!
//! Memory is bounded: at most [`MAX_KEYS`] keys are tracked; past that, windows that ended are
//! dropped first, and if that is not enough the oldest tenth goes (a flood of distinct keys
//! forgets the oldest ones rather than growing without end).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

/// Most keys (accounts and addresses) tracked at once.
pub const MAX_KEYS: usize = 100_000;

/// Who is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PanicKey {
    /// An account.
    Account(Uuid),
    /// A network address.
    Address(IpAddr),
}

/// One minute of presses of one key.
#[derive(Debug, Clone, Copy)]
struct Window {
    started_at: DateTime<Utc>,
    presses: u32,
}

/// The panic counters of this instance.
#[derive(Debug)]
pub struct PanicLimiter {
    per_account: u32,
    per_address: u32,
    windows: Mutex<HashMap<PanicKey, Window>>,
}

impl PanicLimiter {
    /// Limits of `per_account` panics a minute per account and `per_address` per address (0: no
    /// address limit).
    pub fn new(per_account: u32, per_address: u32) -> Self {
        Self {
            per_account,
            per_address,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a press by `account` from `address` at `now`: `Ok` when it may go on, else the
    /// seconds until it may (and the press is not counted).
    ///
    /// # Errors
    /// The seconds to wait, at least 1.
    pub fn check(
        &self,
        account: Uuid,
        address: Option<IpAddr>,
        now: DateTime<Utc>,
    ) -> Result<(), u64> {
        let mut windows = self
            .windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let minute = Duration::minutes(1);
        let keys = std::iter::once((PanicKey::Account(account), self.per_account)).chain(
            address
                .filter(|_| self.per_address > 0)
                .map(|ip| (PanicKey::Address(ip), self.per_address)),
        );
        let keys: Vec<(PanicKey, u32)> = keys.collect();
        // Refuse when any key is over its limit, before counting any (all or nothing).
        for (key, limit) in &keys {
            if let Some(window) = windows.get(key)
                && now < window.started_at + minute
                && window.presses >= *limit
            {
                let wait_ms = (window.started_at + minute - now).num_milliseconds();
                // Whole seconds, rounded up: retrying after them always finds the window over.
                return Err(u64::try_from((wait_ms + 999) / 1000).unwrap_or(1).max(1));
            }
        }
        for (key, _) in keys {
            let window = windows.entry(key).or_insert(Window {
                started_at: now,
                presses: 0,
            });
            if now >= window.started_at + minute {
                *window = Window {
                    started_at: now,
                    presses: 0,
                };
            }
            window.presses += 1;
        }
        if windows.len() > MAX_KEYS {
            windows.retain(|_, window| now < window.started_at + minute);
            if windows.len() > MAX_KEYS {
                // Forget the oldest tenth at once, so a flood pays for this rarely.
                let mut by_age: Vec<(DateTime<Utc>, PanicKey)> = windows
                    .iter()
                    .map(|(key, window)| (window.started_at, *key))
                    .collect();
                by_age.sort_unstable_by_key(|(started_at, _)| *started_at);
                let forget = windows.len() - MAX_KEYS * 9 / 10;
                for (_, key) in by_age.into_iter().take(forget) {
                    windows.remove(&key);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 5, 10, 0, 0)
            .single()
            .expect("valid")
            + Duration::seconds(s)
    }

    #[test]
    fn the_eleventh_panic_in_a_minute_waits_for_the_window_to_end() {
        let limiter = PanicLimiter::new(10, 0);
        let citizen = Uuid::from_u128(1);
        for s in 0..10 {
            assert_eq!(limiter.check(citizen, None, at(s)), Ok(()));
        }
        assert_eq!(limiter.check(citizen, None, at(15)), Err(45));
        assert_eq!(limiter.check(citizen, None, at(59)), Err(1));
        assert_eq!(limiter.check(citizen, None, at(60)), Ok(()));
        // Another account is not held back by the first.
        assert_eq!(limiter.check(Uuid::from_u128(2), None, at(15)), Ok(()));
    }

    #[test]
    fn an_address_limit_counts_every_account_behind_it() {
        let limiter = PanicLimiter::new(2, 10);
        let ip: IpAddr = "10.0.0.7".parse().expect("an address");
        for n in 0..10 {
            assert_eq!(limiter.check(Uuid::from_u128(n), Some(ip), at(0)), Ok(()));
        }
        assert!(limiter.check(Uuid::from_u128(99), Some(ip), at(1)).is_err());
        // A refused press is not counted against its account.
        assert_eq!(limiter.check(Uuid::from_u128(99), None, at(1)), Ok(()));
        // Without an address limit, the address is not counted.
        let open = PanicLimiter::new(2, 0);
        for n in 0..50 {
            assert_eq!(open.check(Uuid::from_u128(n), Some(ip), at(0)), Ok(()));
        }
    }

    #[test]
    fn memory_stays_bounded_under_a_flood_of_accounts() {
        let limiter = PanicLimiter::new(10, 0);
        for n in 0..(MAX_KEYS as u128 + 500) {
            let _ = limiter.check(Uuid::from_u128(n), None, at(0));
        }
        let len = limiter.windows.lock().map(|w| w.len()).unwrap_or(0);
        assert!(len <= MAX_KEYS, "{len} keys");
    }
}
