//! SQL of the device registry (`realtime.mqtt_devices`). Every query is exercised by the tests in
//! `realtime/tests/mqtt_registry.rs` against PostgreSQL. Lookups go by primary key (`id`) or by
//! `mqtt_devices_owner (owner_id, created_at)`; the broker-file export reads the whole table, off
//! the hot path.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::credentials::{BrokerDevice, DeviceId, DeviceKind};

/// A registry row (without the hash).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeviceRow {
    /// Device id and MQTT username.
    pub id: String,
    /// The user it belongs to.
    pub owner_id: Uuid,
    /// `panic` or `tracker`.
    pub kind: String,
    /// The owner's name for it.
    pub label: String,
    /// Registration time.
    pub created_at: DateTime<Utc>,
    /// When it was revoked; `None` while live.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Registers a device with its `$7$` hash. Fails only on database errors.
pub async fn insert(
    pool: &PgPool,
    id: &DeviceId,
    owner: Uuid,
    kind: DeviceKind,
    label: &str,
    credentials_hash: &str,
) -> Result<DeviceRow, sqlx::Error> {
    sqlx::query_as(
        "INSERT INTO realtime.mqtt_devices (id, owner_id, kind, label, credentials_hash) \
         VALUES ($1, $2, $3, $4, $5) \
         RETURNING id, owner_id, kind, label, created_at, revoked_at",
    )
    .bind(id.as_str())
    .bind(owner)
    .bind(kind.as_str())
    .bind(label)
    .bind(credentials_hash)
    .fetch_one(pool)
    .await
}

/// How many live devices `owner` has (for `mqtt.max_devices_per_user`).
pub async fn count_live(pool: &PgPool, owner: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM realtime.mqtt_devices WHERE owner_id = $1 AND revoked_at IS NULL",
    )
    .bind(owner)
    .fetch_one(pool)
    .await
}

/// Every device of `owner`, revoked ones too, oldest first.
pub async fn list(pool: &PgPool, owner: Uuid) -> Result<Vec<DeviceRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, owner_id, kind, label, created_at, revoked_at FROM realtime.mqtt_devices \
         WHERE owner_id = $1 ORDER BY created_at, id",
    )
    .bind(owner)
    .fetch_all(pool)
    .await
}

/// Revokes `id` if `owner` owns it (a second revoke keeps the first time). `None`: no such device
/// of theirs.
pub async fn revoke(
    pool: &PgPool,
    owner: Uuid,
    id: &str,
) -> Result<Option<DeviceRow>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE realtime.mqtt_devices SET revoked_at = coalesce(revoked_at, now()) \
         WHERE id = $1 AND owner_id = $2 \
         RETURNING id, owner_id, kind, label, created_at, revoked_at",
    )
    .bind(id)
    .bind(owner)
    .fetch_optional(pool)
    .await
}

/// The owner and kind of a live device (the consumer's check on every panic). `None`: unknown or
/// revoked.
pub async fn find_live(
    pool: &PgPool,
    id: &DeviceId,
) -> Result<Option<(Uuid, DeviceKind)>, sqlx::Error> {
    let row: Option<(Uuid, String)> = sqlx::query_as(
        "SELECT owner_id, kind FROM realtime.mqtt_devices WHERE id = $1 AND revoked_at IS NULL",
    )
    .bind(id.as_str())
    .fetch_optional(pool)
    .await?;
    Ok(row.and_then(|(owner, kind)| DeviceKind::parse(&kind).map(|kind| (owner, kind))))
}

/// Every live device with its hash, for the broker's password and ACL files.
pub async fn broker_devices(pool: &PgPool) -> Result<Vec<BrokerDevice>, sqlx::Error> {
    let rows: Vec<(String, Uuid, String, String)> = sqlx::query_as(
        "SELECT id, owner_id, kind, credentials_hash FROM realtime.mqtt_devices \
         WHERE revoked_at IS NULL ORDER BY id",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, owner, kind, credentials_hash)| {
            Some(BrokerDevice {
                id: DeviceId::parse(&id).ok()?,
                owner,
                kind: DeviceKind::parse(&kind)?,
                credentials_hash,
            })
        })
        .collect())
}
