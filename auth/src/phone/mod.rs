//! Phone verification: a six-digit code texted to the account's number, valid for
//! `auth.phone_code_ttl_s` (10 minutes), at most `auth.phone_code_max_tries` (5) wrong tries before
//! verification locks for `auth.phone_code_lock_s`, a new code at most every
//! `auth.phone_code_resend_s`. A verified phone raises the account's trust from `new` to
//! `verified` (never lowers `trusted` or `blocked`).
//!
//! Codes are stored as SHA-256 over the account id and the code, never in clear: a database
//! reader learns no live code without guessing, and guessing online is what the tries limit stops.
//!
//! - [`send_code`]: `POST /v1/auth/phone/code`.
//! - [`verify_code`]: `POST /v1/auth/phone/verify`.

pub mod send_code;
pub mod verify_code;

use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The stored form of `code` for `user`.
pub(crate) fn code_hash(user: Uuid, code: &str) -> Vec<u8> {
    let mut hasher = Sha256::new();
    hasher.update(b"kreki-phone-code\0");
    hasher.update(user.as_bytes());
    hasher.update(code.as_bytes());
    hasher.finalize().to_vec()
}

/// Seconds from now until `at` (at least 1).
pub(crate) fn seconds_until(at: chrono::DateTime<chrono::Utc>) -> u64 {
    u64::try_from((at - chrono::Utc::now()).num_seconds())
        .unwrap_or(0)
        .max(1)
}
