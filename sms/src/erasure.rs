//! An account's erasure in the `sms` schema (called through KREKI ID's erasure port by the
//! binary): every text sent to the person, by account or number, and their STOP record go; the
//! number can register again as a new person.

use sqlx::PgPool;
use uuid::Uuid;

/// Deletes the person's texts and opt-out; answers the rows deleted.
///
/// # Errors
/// Database failures (the erasure stops and can be run again).
pub async fn erase_person(pool: &PgPool, user: Uuid, phone: &str) -> Result<u64, sqlx::Error> {
    let texts = sqlx::query("DELETE FROM sms.messages WHERE user_id = $1 OR to_phone = $2")
        .bind(user)
        .bind(phone)
        .execute(pool)
        .await?
        .rows_affected();
    let opt_out = sqlx::query("DELETE FROM sms.opt_outs WHERE phone = $1")
        .bind(phone)
        .execute(pool)
        .await?
        .rows_affected();
    Ok(texts + opt_out)
}
