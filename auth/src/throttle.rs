//! Login throttling, per client address and per account, stored in PostgreSQL so every instance
//! shares it.
//!
//! The rule that keeps an attacker from locking a person out: an account's own lock applies only to
//! addresses it has never signed in from successfully (in the last 90 days), and it lasts at most
//! `auth.account_lock_max_s` (15 minutes by default). So guessing from elsewhere slows the guesser,
//! while the person on their usual phone or network keeps signing in. Addresses that fail too often
//! (over all accounts) wait until their counting window ends.
//!
//! An attempt is counted against its account before its password is checked ([`admit`]), so
//! sending many guesses at once buys no more than sending them one by one.

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

/// Lets an attempt through to the password check, or refuses it with 429 when its address must
/// wait, or its account must wait and the address is not one it signed in from.
///
/// The attempt is counted against its account here, *before* the password is checked, and the lock
/// it would earn by failing is set at once, all under the lock of the account's counter row. So
/// guesses sent concurrently are admitted one after another and each sees the lock its
/// predecessors set: an account gets `auth.account_max_failures` password checks however many
/// requests arrive at once. A success clears the count ([`record_success`]).
///
/// # Errors
/// [`AuthError::Throttled`] with the seconds to wait; database failures.
pub async fn admit(pool: &PgPool, config: &AuthConfig, attempt: &Attempt) -> AuthResult<()> {
    let ip_blocked: Option<DateTime<Utc>> = sqlx::query_scalar(
        "SELECT blocked_until FROM auth.login_throttle WHERE key = $1 AND blocked_until > now()",
    )
    .bind(&attempt.ip_key)
    .fetch_optional(pool)
    .await?;
    if let Some(until) = ip_blocked {
        return Err(throttled(until, Utc::now()));
    }

    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO auth.login_throttle (key, failures, window_started_at) VALUES ($1, 0, now())
         ON CONFLICT (key) DO NOTHING",
    )
    .bind(&attempt.account_key)
    .execute(&mut *tx)
    .await?;
    let (failures, window_started_at, blocked_until, now): (
        i32,
        DateTime<Utc>,
        Option<DateTime<Utc>>,
        DateTime<Utc>,
    ) = sqlx::query_as(
        "SELECT failures, window_started_at, blocked_until, now() FROM auth.login_throttle
         WHERE key = $1 FOR UPDATE",
    )
    .bind(&attempt.account_key)
    .fetch_one(&mut *tx)
    .await?;
    if let Some(until) = blocked_until.filter(|until| *until > now)
        && !known_source(&mut tx, attempt).await?
    {
        return Err(throttled(until, now));
    }

    let window = Duration::seconds(i64::try_from(config.throttle_window_s).unwrap_or(i64::MAX));
    let (failures, window_started_at) = if window_started_at < now - window {
        (1, now)
    } else {
        (i64::from(failures) + 1, window_started_at)
    };
    let over = failures - i64::from(config.account_max_failures);
    let blocked_until = if over >= 0 {
        // 30 s, 60 s, 120 s... capped: an attacker keeps slowing down, a person is out for minutes.
        let base = i64::try_from(config.account_lock_base_s).unwrap_or(i64::MAX);
        let cap = i64::try_from(config.account_lock_max_s).unwrap_or(i64::MAX);
        let lock_s = base.saturating_mul(1_i64 << over.min(20)).min(cap);
        blocked_until.max(Some(now + Duration::seconds(lock_s)))
    } else {
        blocked_until
    };
    sqlx::query(
        "UPDATE auth.login_throttle SET failures = $2, window_started_at = $3, blocked_until = $4
         WHERE key = $1",
    )
    .bind(&attempt.account_key)
    .bind(i32::try_from(failures).unwrap_or(i32::MAX))
    .bind(window_started_at)
    .bind(blocked_until)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

fn throttled(until: DateTime<Utc>, now: DateTime<Utc>) -> AuthError {
    AuthError::Throttled {
        retry_after_s: u64::try_from((until - now).num_seconds()).unwrap_or(0) + 1,
    }
}

/// True when the attempt's account signed in successfully from its address lately.
async fn known_source(conn: &mut sqlx::PgConnection, attempt: &Attempt) -> AuthResult<bool> {
    let Some(user) = attempt.user else {
        return Ok(false);
    };
    Ok(sqlx::query_scalar::<_, bool>(
        "SELECT EXISTS (SELECT 1 FROM auth.login_sources
         WHERE user_id = $1 AND source_hash = $2 AND last_success_at > now() - make_interval(days => $3))",
    )
    .bind(user.0)
    .bind(&attempt.source_hash)
    .bind(KNOWN_SOURCE_DAYS)
    .fetch_one(conn)
    .await?)
}

/// Counts a failed password check against the address, and blocks the address once over its
/// limit. (The account's count and lock were taken by [`admit`].)
///
/// # Errors
/// Database failures.
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
    Ok(())
}

/// Clears the account's count (and any lock [`admit`] set in advance) and remembers the address
/// as one this account signs in from.
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
