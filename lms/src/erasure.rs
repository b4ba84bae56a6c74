//! Erasing a learner when their account is deleted (called through KREKI ID's `AccountErasure`
//! port, wired in the binary). Progress goes (learner name, enrolments, lessons, attempts,
//! notifications). Certificates they hold are revoked with reason [`REVOKED_REASON`] and kept,
//! anonymised, so a printed code still verifies as revoked; certificates they recorded or revoked
//! for others keep an opaque pseudonym instead of their id. Dispatch hears the revocation through
//! the usual change announcement.

use sqlx::PgPool;
use uuid::Uuid;

/// Why a deleted person's certificates are revoked.
pub const REVOKED_REASON: &str = "account deleted";

/// What replaces the holder's name on a kept certificate.
pub const ERASED_NAME: &str = "(deleted)";

/// Erases learner `id`, replacing them by `pseudonym` where history stays. Idempotent. Returns
/// the rows deleted or changed.
///
/// # Errors
/// The database error; the transaction is rolled back and erasing again is safe.
pub async fn erase_person(pool: &PgPool, id: Uuid, pseudonym: Uuid) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let mut rows = sqlx::query(
        "UPDATE lms.certificates
         SET revoked_at = COALESCE(revoked_at, now()),
             revoked_reason = COALESCE(revoked_reason, $3),
             user_id = $2, holder_name = $4, evidence = NULL
         WHERE user_id = $1",
    )
    .bind(id)
    .bind(pseudonym)
    .bind(REVOKED_REASON)
    .bind(ERASED_NAME)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    rows += sqlx::query(
        "UPDATE lms.certificates
         SET recorded_by = CASE WHEN recorded_by = $1 THEN $2 ELSE recorded_by END,
             revoked_by = CASE WHEN revoked_by = $1 THEN $2 ELSE revoked_by END
         WHERE recorded_by = $1 OR revoked_by = $1",
    )
    .bind(id)
    .bind(pseudonym)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    rows += sqlx::query("UPDATE lms.courses SET created_by = NULL WHERE created_by = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    for statement in [
        "DELETE FROM lms.notifications WHERE user_id = $1",
        "DELETE FROM lms.attempts WHERE user_id = $1",
        "DELETE FROM lms.lesson_progress WHERE user_id = $1",
        "DELETE FROM lms.enrollments WHERE user_id = $1",
        "DELETE FROM lms.learners WHERE user_id = $1",
    ] {
        rows += sqlx::query(statement)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
    }
    // Dispatch drops the person's certifications (it finds none valid any more).
    crate::store::announce(&mut tx, &[id]).await?;
    tx.commit().await?;
    Ok(rows)
}
