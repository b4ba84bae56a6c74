//! Erasing a person from dispatch when their account is deleted (called through KREKI ID's
//! `AccountErasure` port, wired in the binary). What is theirs goes: the volunteer row, positions
//! and location history, granted certifications, AED custodianships, region assignments, pending
//! idempotency keys. What the service needs to keep (alerts, offers, assignments, check-ins, the
//! timeline: incident statistics and SATUSEHAT) stays with the person replaced by an opaque
//! pseudonym, names replaced by [`ERASED_NAME`], free text they wrote and the caller's phone gone.
//!
//! The volunteer row is first taken off duty in its own commit, so every dispatch instance's
//! matcher hears it (the catch-up reads changed rows, and a deleted row is no longer there to read),
//! then deleted with the rest.

use sqlx::PgPool;
use uuid::Uuid;

/// What replaces a deleted person's name in the history that is kept.
pub const ERASED_NAME: &str = "(deleted)";

/// Erases person `id` (with name `name` and phone `phone`), replacing them by `pseudonym` where
/// history stays. Idempotent. Returns the rows deleted or changed.
///
/// # Errors
/// The database error; the transaction is rolled back and erasing again is safe.
pub async fn erase_person(
    pool: &PgPool,
    id: Uuid,
    pseudonym: Uuid,
    name: &str,
    phone: &str,
) -> Result<u64, sqlx::Error> {
    // Off duty and without a position, committed on its own so other instances take them out of
    // their matcher before the row disappears.
    let mut rows = sqlx::query(
        "UPDATE dispatch.volunteers
         SET on_duty = false, location = NULL, h3_cell = NULL, accuracy_m = NULL,
             location_at = NULL, name = $2, updated_at = now()
         WHERE user_id = $1",
    )
    .bind(id)
    .bind(ERASED_NAME)
    .execute(pool)
    .await?
    .rows_affected();

    let mut tx = pool.begin().await?;
    // Free text they wrote into a timeline (a repeated press's note) goes.
    rows += sqlx::query(
        "UPDATE dispatch.alert_events SET data = data - 'note' WHERE actor = $1 AND data ? 'note'",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    // The timeline first, while the alerts still name the person: every event of an alert they
    // raised, answered or acted on, with their id, name and phone replaced inside the JSON.
    rows += sqlx::query(
        "UPDATE dispatch.alert_events
         SET actor = CASE WHEN actor = $1 THEN $2 ELSE actor END,
             data = replace(replace(replace(data::text, $1::text, $2::text),
                                    to_jsonb($3::text)::text, to_jsonb($5::text)::text),
                            $4, '')::jsonb
         WHERE actor = $1
            OR alert_id IN (SELECT id FROM dispatch.alerts WHERE citizen_id = $1 OR outcome_by = $1)
            OR alert_id IN (SELECT alert_id FROM dispatch.offers WHERE volunteer_id = $1)
            OR alert_id IN (SELECT alert_id FROM dispatch.assignments WHERE volunteer_id = $1)",
    )
    .bind(id)
    .bind(pseudonym)
    .bind(name)
    .bind(phone)
    .bind(ERASED_NAME)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    rows += sqlx::query(
        "UPDATE dispatch.alerts
         SET citizen_id = $2, citizen_name = $3, caller_phone = NULL, note = NULL, patient_nik = NULL
         WHERE citizen_id = $1",
    )
    .bind(id)
    .bind(pseudonym)
    .bind(ERASED_NAME)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    rows += sqlx::query("UPDATE dispatch.alerts SET outcome_by = $2 WHERE outcome_by = $1")
        .bind(id)
        .bind(pseudonym)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    rows += sqlx::query("UPDATE dispatch.offers SET volunteer_id = $2 WHERE volunteer_id = $1")
        .bind(id)
        .bind(pseudonym)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    rows += sqlx::query(
        "UPDATE dispatch.assignments SET volunteer_id = $2, volunteer_name = $3
         WHERE volunteer_id = $1",
    )
    .bind(id)
    .bind(pseudonym)
    .bind(ERASED_NAME)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    rows += sqlx::query(
        "UPDATE dispatch.checkins SET volunteer_id = $2, volunteer_name = $3, note = NULL
         WHERE volunteer_id = $1",
    )
    .bind(id)
    .bind(pseudonym)
    .bind(ERASED_NAME)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    rows += sqlx::query(
        "UPDATE dispatch.escalations SET acknowledged_by = $2 WHERE acknowledged_by = $1",
    )
    .bind(id)
    .bind(pseudonym)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    rows += sqlx::query(
        "UPDATE dispatch.aeds
         SET created_by = CASE WHEN created_by = $1 THEN $2 ELSE created_by END,
             verified_by = CASE WHEN verified_by = $1 THEN $2 ELSE verified_by END
         WHERE created_by = $1 OR verified_by = $1",
    )
    .bind(id)
    .bind(pseudonym)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    for statement in [
        "DELETE FROM dispatch.idempotency_keys WHERE citizen_id = $1",
        "DELETE FROM dispatch.aed_custodians WHERE user_id = $1",
        "DELETE FROM dispatch.region_coordinators WHERE user_id = $1",
        "DELETE FROM dispatch.granted_certifications WHERE user_id = $1",
        "DELETE FROM dispatch.location_history WHERE volunteer_id = $1",
        "DELETE FROM dispatch.volunteers WHERE user_id = $1",
    ] {
        rows += sqlx::query(statement)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
    }
    tx.commit().await?;
    Ok(rows)
}
