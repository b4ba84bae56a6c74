//! Erasing a health worker from the SATUSEHAT bridge when their account is deleted (called through
//! KREKI ID's `AccountErasure` port, wired in the binary): their practitioner verification (NIK,
//! IHS number) goes; tasks already sent keep an opaque pseudonym instead of their id.

use sqlx::PgPool;
use uuid::Uuid;

/// Erases person `id`, replacing them by `pseudonym` in kept tasks. Idempotent. Returns the rows
/// deleted or changed.
///
/// # Errors
/// The database error; the transaction is rolled back and erasing again is safe.
pub async fn erase_person(pool: &PgPool, id: Uuid, pseudonym: Uuid) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let mut rows = sqlx::query("DELETE FROM bridge.practitioners WHERE user_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    rows += sqlx::query("UPDATE bridge.tasks SET volunteer_id = $2 WHERE volunteer_id = $1")
        .bind(id)
        .bind(pseudonym)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(rows)
}
