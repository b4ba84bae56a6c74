//! The SQL of resolving an alert with its outcome: what a coordinator recorded, by whom, when.

use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::{AlertId, Outcome};

/// Records how the incident ended (replacing an earlier record), and bumps `updated_at` (and
/// through its trigger the alert's `version`, so a wave planned before never lands).
pub async fn record_outcome(
    conn: &mut PgConnection,
    id: AlertId,
    outcome: Outcome,
    note: Option<&str>,
    by: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE dispatch.alerts
         SET outcome = $2, outcome_note = $3, outcome_by = $4, outcome_at = now(), updated_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(outcome)
    .bind(note)
    .bind(by)
    .execute(conn)
    .await?;
    Ok(())
}
