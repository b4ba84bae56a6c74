//! SQL of call-backs ([`crate::service::contacts`]).

use sqlx::PgConnection;

use crate::domain::AlertId;

/// For an alert phoned in to a coordinator: `Some(caller's phone as typed, if given)`; `None` for
/// an alert a citizen raised from their account.
pub async fn phoned_in_caller(
    conn: &mut PgConnection,
    id: AlertId,
) -> Result<Option<Option<String>>, sqlx::Error> {
    let row: Option<(Option<String>, bool)> = sqlx::query_as(
        "SELECT a.caller_phone,
                EXISTS (SELECT 1 FROM dispatch.alert_events e WHERE e.alert_id = a.id AND e.type = 'phoned_in')
         FROM dispatch.alerts a WHERE a.id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(row.and_then(|(phone, phoned_in)| phoned_in.then_some(phone)))
}
