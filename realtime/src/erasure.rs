//! Erasing a person's devices when their account is deleted (called through KREKI ID's
//! `AccountErasure` port, wired in the binary): push tokens (FCM, Web Push) and MQTT devices they
//! own. A broker's credentials file drops the MQTT devices at its next `kreki mqtt sync-credentials`.

use sqlx::PgPool;
use uuid::Uuid;

/// Deletes every device of person `id`. Idempotent. Returns the rows deleted.
///
/// # Errors
/// The database error; the transaction is rolled back and erasing again is safe.
pub async fn erase_person(pool: &PgPool, id: Uuid) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let mut rows = sqlx::query("DELETE FROM realtime.devices WHERE user_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    rows += sqlx::query("DELETE FROM realtime.mqtt_devices WHERE owner_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(rows)
}
