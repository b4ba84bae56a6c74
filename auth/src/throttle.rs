//! Login throttling, per client address and per account, stored in PostgreSQL so every instance
//! shares it.
//!
//! The rule that keeps an attacker from locking a person out: an account's own lock applies only to
//! addresses it has never signed in from successfully (in the last 90 days), and it lasts at most
//! `auth.account_lock_max_s` (15 minutes by default). So guessing from elsewhere slows the guesser,
//! while the person on their usual phone or network keeps signing in. Addresses that fail too often
//! (over all accounts) wait until their counting window ends.

use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::config::AuthConfig;
use crate::domain::UserId;
use crate::error::{AuthError, AuthResult};

/// How long a successful sign-in makes an address "known" for its account, in days.
const KNOWN_SOURCE_DAYS: i32 = 90;

/// Counters of one login attempt: the client address and the account (or the login string when no
/// such account exists, so unknown logins are throttled alike and reveal nothing).
pub struct Attempt {
    ip_key: String,
    account_key: String,
    source_hash: Vec<u8>,
    user: Option<UserId>,
}

impl Attempt {
    /// The counters for a login of `user` (if it exists) or `login` from `ip`.
    pub fn new(ip: IpAddr, user: Option<UserId>, login: &str) -> Self {
        let account_key = match user {
            Some(id) => format!("account:{id}"),
            // Hashed: an unknown login is whatever a stranger typed (any length, NUL bytes that
            // PostgreSQL text refuses, someone's mistyped number), none of which belongs in a key.
            None => format!("login:{}", hex(&Sha256::digest(login.as_bytes()))),
        };
        Self {
            ip_key: format!("ip:{ip}"),
            account_key,
            source_hash: Sha256::digest(ip.to_string().as_bytes()).to_vec(),
            user,
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, byte| {
            let _ = write!(out, "{byte:02x}");
            out
        })
}

/// Refuses the attempt with 429 when its address, or its account from an unknown address, must wait.
pub async fn check(pool: &PgPool, attempt: &Attempt) -> AuthResult<()> {
    let blocks: Vec<(String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT key, blocked_until FROM auth.login_throttle WHERE key = ANY ($1) AND blocked_until > now()",
    )
    .bind([attempt.ip_key.as_str(), attempt.account_key.as_str()])
    .fetch_all(pool)
    .await?;
    if blocks.is_empty() {
        return Ok(());
    }
    let known_source = match attempt.user {
        Some(user) => sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM auth.login_sources
             WHERE user_id = $1 AND source_hash = $2 AND last_success_at > now() - make_interval(days => $3))",
        )
        .bind(user.0)
        .bind(&attempt.source_hash)
        .bind(KNOWN_SOURCE_DAYS)
        .fetch_one(pool)
        .await?,
        None => false,
    };
    let now = Utc::now();
    let wait = blocks
        .iter()
        .filter(|(key, _)| *key == attempt.ip_key || !known_source)
        .map(|(_, until)| *until - now)
        .max();
    match wait {
        Some(wait) => Err(AuthError::Throttled {
            retry_after_s: u64::try_from(wait.num_seconds()).unwrap_or(0) + 1,
        }),
        None => Ok(()),
    }
}

/// Counts a failure against the address and the account, and blocks them once over their limits.
pub async fn record_failure(
    pool: &PgPool,
    config: &AuthConfig,
    attempt: &Attempt,
) -> AuthResult<()> {
    let window_s = i64::try_from(config.throttle_window_s).unwrap_or(i64::MAX);
    let (ip_failures, ip_window_start) = bump(pool, &attempt.ip_key, window_s).await?;
    if ip_failures >= i64::from(config.ip_max_failures) {
        block(
            pool,
            &attempt.ip_key,
            ip_window_start + Duration::seconds(window_s),
        )
        .await?;
    }
    let (account_failures, _) = bump(pool, &attempt.account_key, window_s).await?;
    let over = account_failures - i64::from(config.account_max_failures);
    if over >= 0 {
        // 30 s, 60 s, 120 s... capped: an attacker keeps slowing down, a person is out for minutes.
        let base = i64::try_from(config.account_lock_base_s).unwrap_or(i64::MAX);
        let cap = i64::try_from(config.account_lock_max_s).unwrap_or(i64::MAX);
        let lock_s = base.saturating_mul(1_i64 << over.min(20)).min(cap);
        block(
            pool,
            &attempt.account_key,
            Utc::now() + Duration::seconds(lock_s),
        )
        .await?;
    }
    Ok(())
}

/// Clears the account's counter and remembers the address as one this account signs in from.
pub async fn record_success(pool: &PgPool, attempt: &Attempt) -> AuthResult<()> {
    sqlx::query("DELETE FROM auth.login_throttle WHERE key = $1")
        .bind(&attempt.account_key)
        .execute(pool)
        .await?;
    if let Some(user) = attempt.user {
        sqlx::query(
            "INSERT INTO auth.login_sources (user_id, source_hash, last_success_at) VALUES ($1, $2, now())
             ON CONFLICT (user_id, source_hash) DO UPDATE SET last_success_at = now()",
        )
        .bind(user.0)
        .bind(&attempt.source_hash)
        .execute(pool)
        .await?;
    }
    Ok(())
}

async fn bump(pool: &PgPool, key: &str, window_s: i64) -> AuthResult<(i64, DateTime<Utc>)> {
    let row: (i32, DateTime<Utc>) = sqlx::query_as(
        "INSERT INTO auth.login_throttle AS t (key, failures, window_started_at) VALUES ($1, 1, now())
         ON CONFLICT (key) DO UPDATE SET
           failures = CASE WHEN t.window_started_at < now() - make_interval(secs => $2::double precision)
                           THEN 1 ELSE t.failures + 1 END,
           window_started_at = CASE WHEN t.window_started_at < now() - make_interval(secs => $2::double precision)
                                    THEN now() ELSE t.window_started_at END
         RETURNING failures, window_started_at",
    )
    .bind(key)
    .bind(window_s)
    .fetch_one(pool)
    .await?;
    Ok((i64::from(row.0), row.1))
}

async fn block(pool: &PgPool, key: &str, until: DateTime<Utc>) -> AuthResult<()> {
    sqlx::query(
        "UPDATE auth.login_throttle SET blocked_until = GREATEST(blocked_until, $2) WHERE key = $1",
    )
    .bind(key)
    .bind(until)
    .execute(pool)
    .await?;
    Ok(())
}
