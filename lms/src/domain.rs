//! The LMS's rules as plain functions and validated values, so they are unit-tested without a
//! database: certification codes, quiz scoring with partial credit, the attempt limit with its
//! cool-down, verification codes, and what makes a certificate valid.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A certification code (`bls`, `first_aid`): 2 to 40 characters, lower-case ASCII letters, digits
/// and `_`, starting with a letter. It is the key dispatch's per-kind requirements name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
pub struct CertificationCode(String);

impl CertificationCode {
    /// Parses a code.
    ///
    /// # Errors
    /// What is expected, for a field error.
    pub fn parse(input: &str) -> Result<Self, &'static str> {
        let code = input.trim();
        let mut chars = code.chars();
        let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_lowercase());
        let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if (2..=40).contains(&code.len()) && starts_with_letter && rest_ok {
            Ok(Self(code.to_owned()))
        } else {
            Err("must be 2 to 40 lower-case letters, digits or _, starting with a letter")
        }
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Single choice (exactly one option is correct and one may be chosen) or multiple choice (one or
/// more are correct; any number may be chosen).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum QuestionKind {
    /// One correct option; choosing it earns the question's points, anything else nothing.
    Single,
    /// Several correct options; partial credit per option (see [`question_credit`]).
    Multiple,
}

impl QuestionKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Single => "single",
            Self::Multiple => "multiple",
        }
    }

    /// Parses the stored name.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "single" => Some(Self::Single),
            "multiple" => Some(Self::Multiple),
            _ => None,
        }
    }
}

/// The share of a question's points (0.0 to 1.0) earned by choosing `chosen` when `correct` are
/// the right options.
///
/// - Single choice: 1 when exactly the correct option is chosen, else 0.
/// - Multiple choice, per option: each correct option chosen earns `1/|correct|`, each wrong option
///   chosen takes `1/|correct|` away, and the total never goes below 0. So choosing every option
///   earns nothing unless nearly all are correct, choosing none earns 0, and choosing exactly the
///   correct ones earns 1.
pub fn question_credit(kind: QuestionKind, correct: &[String], chosen: &[String]) -> f64 {
    let correct: HashSet<&str> = correct.iter().map(String::as_str).collect();
    let chosen: HashSet<&str> = chosen.iter().map(String::as_str).collect();
    if correct.is_empty() {
        return 0.0;
    }
    match kind {
        QuestionKind::Single => {
            if chosen.len() == 1 && chosen.is_subset(&correct) {
                1.0
            } else {
                0.0
            }
        }
        QuestionKind::Multiple => {
            let hits = chosen.intersection(&correct).count();
            let misses = chosen.len() - hits;
            let net = hits.saturating_sub(misses);
            let credit = net as f64 / correct.len() as f64;
            credit.clamp(0.0, 1.0)
        }
    }
}

/// Rounds a percentage to one decimal, as shown and stored.
pub fn round_pct(pct: f64) -> f64 {
    (pct * 10.0).round() / 10.0
}

/// True when `score_pct` reaches `pass_mark_pct` (compared after rounding, so 69.96 % shown as
/// 70.0 % passes a 70 % mark: what the learner sees is what counts).
pub fn passes(score_pct: f64, pass_mark_pct: i32) -> bool {
    round_pct(score_pct) >= f64::from(pass_mark_pct)
}

/// Where a learner stands in the attempt limit of a quiz.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    /// Failed attempts in the current round.
    pub failures: usize,
    /// End of the lock, while the quiz is locked.
    pub locked_until: Option<DateTime<Utc>>,
}

/// The attempt round at `now`.
///
/// The rule: a learner may fail `max_attempts` attempts in a row; the failure that uses up the last
/// one locks the quiz for `cooldown_s` seconds from that failure; after the lock a fresh round of
/// `max_attempts` begins. Passing never locks. `failed_at` are the submission times of the
/// learner's failed attempts, oldest first.
pub fn attempt_round(
    failed_at: &[DateTime<Utc>],
    max_attempts: i32,
    cooldown_s: i32,
    now: DateTime<Utc>,
) -> Round {
    let max_attempts = usize::try_from(max_attempts.max(1)).unwrap_or(1);
    let cooldown = Duration::seconds(i64::from(cooldown_s.max(0)));
    let mut failures = 0usize;
    let mut lock_end: Option<DateTime<Utc>> = None;
    for &at in failed_at {
        if lock_end.is_some_and(|end| at >= end) {
            failures = 0;
            lock_end = None;
        }
        failures += 1;
        if failures >= max_attempts {
            lock_end = Some(at + cooldown);
        }
    }
    match lock_end {
        Some(end) if end > now => Round {
            failures,
            locked_until: Some(end),
        },
        Some(_) => Round {
            failures: 0,
            locked_until: None,
        },
        None => Round {
            failures,
            locked_until: None,
        },
    }
}

/// When the quiz unlocks for this learner, or `None` when an attempt may start now. See
/// [`attempt_round`] for the rule.
pub fn locked_until(
    failed_at: &[DateTime<Utc>],
    max_attempts: i32,
    cooldown_s: i32,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    attempt_round(failed_at, max_attempts, cooldown_s, now).locked_until
}

/// Characters of verification codes: Crockford's base 32 (no I, L, O, U), so codes read aloud or
/// typed from paper survive.
const CODE_ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A new verification code: 24 characters of base 32 (120 random bits from the thread's CSPRNG),
/// grouped `XXXXXX-XXXXXX-XXXXXX-XXXXXX`. Unguessable, so it can be printed and checked publicly.
pub fn new_verification_code() -> String {
    let bytes: [u8; 24] = rand::random();
    let mut code = String::with_capacity(27);
    for (index, byte) in bytes.iter().enumerate() {
        if index > 0 && index % 6 == 0 {
            code.push('-');
        }
        code.push(char::from(CODE_ALPHABET[usize::from(byte & 31)]));
    }
    code
}

/// Normalises a code as typed by a person: upper case, spaces removed, and the letters base 32
/// leaves out read as the digits they look like.
pub fn normalise_code(input: &str) -> String {
    input
        .trim()
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| match c.to_ascii_uppercase() {
            'O' => '0',
            'I' | 'L' => '1',
            other => other,
        })
        .collect()
}

/// Where a certificate stands now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CertificateStatus {
    /// Issued, not expired, not revoked: it counts for dispatch.
    Valid,
    /// Its period ended.
    Expired,
    /// A trainer revoked it.
    Revoked,
    /// Its `issued_at` is still in the future (recorded ahead of time).
    Pending,
}

/// The status at `now`. Revocation wins over expiry.
pub fn certificate_status(
    issued_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> CertificateStatus {
    if revoked_at.is_some() {
        CertificateStatus::Revoked
    } else if expires_at <= now {
        CertificateStatus::Expired
    } else if issued_at > now {
        CertificateStatus::Pending
    } else {
        CertificateStatus::Valid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|id| (*id).to_owned()).collect()
    }

    #[test]
    fn single_choice_is_all_or_nothing() {
        let correct = ids(&["b"]);
        assert!((question_credit(QuestionKind::Single, &correct, &ids(&["b"])) - 1.0).abs() < 1e-9);
        assert!(question_credit(QuestionKind::Single, &correct, &ids(&["a"])).abs() < 1e-9);
        assert!(question_credit(QuestionKind::Single, &correct, &ids(&["a", "b"])).abs() < 1e-9);
        assert!(question_credit(QuestionKind::Single, &correct, &[]).abs() < 1e-9);
    }

    #[test]
    fn multiple_choice_gives_partial_credit_never_negative() {
        let correct = ids(&["a", "c", "d"]);
        let credit =
            |chosen: &[&str]| question_credit(QuestionKind::Multiple, &correct, &ids(chosen));
        assert!((credit(&["a", "c", "d"]) - 1.0).abs() < 1e-9);
        assert!((credit(&["a", "c"]) - 2.0 / 3.0).abs() < 1e-9);
        assert!((credit(&["a", "c", "b"]) - 1.0 / 3.0).abs() < 1e-9);
        assert!(credit(&["a", "b", "e"]).abs() < 1e-9, "never below zero");
        assert!((credit(&["a", "b", "c", "d", "e"]) - 1.0 / 3.0).abs() < 1e-9);
        assert!(credit(&[]).abs() < 1e-9);
        assert!(
            (credit(&["a", "a"]) - 1.0 / 3.0).abs() < 1e-9,
            "duplicates count once"
        );
    }

    #[test]
    fn pass_mark_compares_the_rounded_score() {
        assert!(passes(69.96, 70));
        assert!(!passes(69.94, 70));
        assert!(passes(100.0, 100));
    }

    #[test]
    fn attempts_lock_after_the_limit_then_a_new_round_begins() {
        let t0 = DateTime::parse_from_rfc3339("2026-11-21T08:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default();
        let s = |seconds: i64| t0 + Duration::seconds(seconds);
        // Two failures of three allowed: free.
        assert_eq!(locked_until(&[s(0), s(10)], 3, 600, s(20)), None);
        // Third failure locks for 600 s from it.
        assert_eq!(
            locked_until(&[s(0), s(10), s(20)], 3, 600, s(30)),
            Some(s(620))
        );
        // After the lock: free again, and the next failure starts a new round.
        assert_eq!(locked_until(&[s(0), s(10), s(20)], 3, 600, s(620)), None);
        assert_eq!(
            locked_until(&[s(0), s(10), s(20), s(700)], 3, 600, s(710)),
            None
        );
        // One attempt with no cool-down never locks.
        assert_eq!(locked_until(&[s(0)], 1, 0, s(0)), None);
        // Failures count within the round, and start again after a lock.
        assert_eq!(attempt_round(&[s(0)], 3, 600, s(5)).failures, 1);
        assert_eq!(
            attempt_round(&[s(0), s(10), s(20)], 3, 600, s(30)).failures,
            3
        );
        assert_eq!(
            attempt_round(&[s(0), s(10), s(20)], 3, 600, s(700)).failures,
            0
        );
        assert_eq!(
            attempt_round(&[s(0), s(10), s(20), s(700)], 3, 600, s(710)).failures,
            1
        );
    }

    #[test]
    fn codes_are_long_random_and_read_back_from_paper() {
        let a = new_verification_code();
        let b = new_verification_code();
        assert_ne!(a, b);
        assert_eq!(a.len(), 27);
        assert!(
            a.chars()
                .all(|c| c == '-' || CODE_ALPHABET.contains(&(c as u8)))
        );
        assert_eq!(normalise_code(&a.to_lowercase()), a);
        assert_eq!(normalise_code(" ab0o-1il "), "AB00-111");
    }

    #[test]
    fn certification_codes() {
        assert!(CertificationCode::parse("bls").is_ok());
        assert!(CertificationCode::parse("water_rescue_2").is_ok());
        assert!(CertificationCode::parse("B").is_err());
        assert!(CertificationCode::parse("2bls").is_err());
        assert!(CertificationCode::parse("first-aid").is_err());
    }

    #[test]
    fn status_prefers_revoked_then_expired() {
        let now = Utc::now();
        let day = Duration::days(1);
        assert_eq!(
            certificate_status(now - day, now + day, None, now),
            CertificateStatus::Valid
        );
        assert_eq!(
            certificate_status(now - day, now, None, now),
            CertificateStatus::Expired
        );
        assert_eq!(
            certificate_status(now - day, now - day / 2, Some(now), now),
            CertificateStatus::Revoked
        );
        assert_eq!(
            certificate_status(now + day, now + day * 2, None, now),
            CertificateStatus::Pending
        );
    }
}
