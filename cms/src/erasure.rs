//! Erasing a person from the guidance CMS when their account is deleted (called through KREKI
//! ID's `AccountErasure` port, wired in the binary): the pages they wrote stay (what citizens were
//! told must stay readable), without their account id.

use sqlx::PgPool;
use uuid::Uuid;

/// Forgets that person `id` wrote any guidance version. Idempotent. Returns the rows changed.
///
/// # Errors
/// The database error.
pub async fn erase_person(pool: &PgPool, id: Uuid) -> Result<u64, sqlx::Error> {
    Ok(
        sqlx::query("UPDATE cms.guidance SET author_id = NULL WHERE author_id = $1")
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected(),
    )
}
