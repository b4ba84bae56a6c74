//! SQL of `realtime.devices`. Every function is one statement (or one transaction, said so),
//! covered by the integration tests against PostgreSQL. The per-user lookups use
//! `devices_user_id_last_seen_idx`; token lookups use the `devices_token_key` unique index.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::push::device::{FcmToken, Platform, Target, WebSubscription};

/// A device as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeviceRow {
    /// Device id (what `DELETE /v1/devices/{id}` takes).
    pub id: Uuid,
    /// Owner.
    pub user_id: Uuid,
    /// `android`, `ios` or `web`.
    pub platform: String,
    /// FCM token or Web Push endpoint.
    pub token: String,
    /// Web Push key (web only).
    pub p256dh: Option<String>,
    /// Web Push secret (web only).
    pub auth: Option<String>,
    /// First registration.
    pub created_at: DateTime<Utc>,
    /// Newest registration of the same token.
    pub last_seen_at: DateTime<Utc>,
}

impl DeviceRow {
    /// Where to push, or `None` for a row that no longer reads (logged by the caller).
    pub fn target(&self) -> Option<Target> {
        match Platform::parse(&self.platform)? {
            Platform::Web => Some(Target::Web(WebSubscription {
                endpoint: self.token.clone(),
                p256dh: self.p256dh.clone()?,
                auth: self.auth.clone()?,
            })),
            platform => Some(Target::Fcm {
                platform,
                token: FcmToken::parse(&self.token).ok()?,
            }),
        }
    }
}

macro_rules! device_columns {
    () => {
        "id, user_id, platform, token, p256dh, auth, created_at, last_seen_at"
    };
}

/// Registers `target` for `user`, or refreshes it when the token is known (it moves to `user`
/// if another account had it: one install, one account). Then forgets that user's devices
/// beyond the newest `max_per_user`. One transaction. Returns the row and whether it is new.
pub async fn register(
    pool: &PgPool,
    user: Uuid,
    target: &Target,
    max_per_user: usize,
) -> Result<(DeviceRow, bool), sqlx::Error> {
    let (token, p256dh, auth) = match target {
        Target::Fcm { token, .. } => (token.as_str(), None, None),
        Target::Web(sub) => (
            sub.endpoint.as_str(),
            Some(sub.p256dh.as_str()),
            Some(sub.auth.as_str()),
        ),
    };
    let mut tx = pool.begin().await?;
    let (row, inserted): (DeviceRow, bool) = {
        let row: DeviceRow = sqlx::query_as(concat!(
            "INSERT INTO realtime.devices (id, user_id, platform, token, p256dh, auth)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (token) DO UPDATE SET user_id = EXCLUDED.user_id,
                 platform = EXCLUDED.platform, p256dh = EXCLUDED.p256dh, auth = EXCLUDED.auth,
                 last_seen_at = now()
             RETURNING ",
            device_columns!()
        ))
        .bind(Uuid::now_v7())
        .bind(user)
        .bind(target.platform().as_str())
        .bind(token)
        .bind(p256dh)
        .bind(auth)
        .fetch_one(&mut *tx)
        .await?;
        // Both columns default to the transaction's `now()` on insert; a refresh moves only
        // `last_seen_at`, to a later transaction's time.
        let inserted = row.created_at == row.last_seen_at;
        (row, inserted)
    };
    sqlx::query(
        "DELETE FROM realtime.devices WHERE id IN (
             SELECT id FROM realtime.devices WHERE user_id = $1
             ORDER BY last_seen_at DESC, id DESC OFFSET $2)",
    )
    .bind(user)
    .bind(i64::try_from(max_per_user).unwrap_or(i64::MAX))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((row, inserted))
}

/// A user's devices, newest first.
pub async fn list(pool: &PgPool, user: Uuid) -> Result<Vec<DeviceRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        device_columns!(),
        " FROM realtime.devices WHERE user_id = $1 ORDER BY last_seen_at DESC, id DESC"
    ))
    .bind(user)
    .fetch_all(pool)
    .await
}

/// The devices of any of `users` (a page of a broadcast's recipients), by user.
pub async fn list_of(pool: &PgPool, users: &[Uuid]) -> Result<Vec<DeviceRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        device_columns!(),
        " FROM realtime.devices WHERE user_id = ANY ($1) ORDER BY user_id, last_seen_at DESC, id DESC"
    ))
    .bind(users)
    .fetch_all(pool)
    .await
}

/// Removes one of `user`'s devices; false when they have none with that id.
pub async fn delete_own(pool: &PgPool, user: Uuid, id: Uuid) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM realtime.devices WHERE id = $1 AND user_id = $2")
        .bind(id)
        .bind(user)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Forgets a token the push service called dead (FCM `UNREGISTERED`, Web Push 404/410). Keyed
/// by id and token, so a token registered again meanwhile under a new row is kept.
pub async fn prune(pool: &PgPool, id: Uuid, token: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM realtime.devices WHERE id = $1 AND token = $2")
        .bind(id)
        .bind(token)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() > 0)
}
