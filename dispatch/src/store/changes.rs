//! The SQL of catching up: the volunteer rows other instances changed since this instance last
//! looked (see `crate::sync`), and the notifications that say when to look.

use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::VolunteerRow;

/// The channel on which an instance says that volunteers changed (payload: its instance id), so
/// the others catch up before their next poll. Sent at most every few hundred milliseconds per
/// instance, never per row.
pub const VOLUNTEER_CHANGES_CHANNEL: &str = "kreki_dispatch_volunteers";

/// A volunteer row with the id of the transaction that last wrote it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ChangedVolunteer {
    /// The row.
    #[serde(flatten)]
    pub row: VolunteerRow,
    /// `change_xid` (an `xid8`) as text.
    pub change_xid: String,
}

/// The `xmin` of the current snapshot: every transaction it does not see has an id at or above it.
pub async fn snapshot_xmin(conn: &mut PgConnection) -> Result<u64, sqlx::Error> {
    let text: String = sqlx::query_scalar("SELECT pg_snapshot_xmin(pg_current_snapshot())::text")
        .fetch_one(conn)
        .await?;
    parse_xid(&text)
}

fn parse_xid(text: &str) -> Result<u64, sqlx::Error> {
    text.parse()
        .map_err(|error| sqlx::Error::Decode(format!("xid8 {text:?}: {error}").into()))
}

/// One page of a catch-up: the statement's snapshot `xmin` and the volunteers changed in it.
#[derive(Debug, Clone)]
pub struct ChangedPage {
    /// The `xmin` of the snapshot the page was read in.
    pub xmin: u64,
    /// The volunteers whose `(change_xid, user_id)` follows the cursor, in that order.
    pub rows: Vec<ChangedVolunteer>,
}

/// Volunteers whose `(change_xid, user_id)` follows `(xid, after)`, in that order, at most
/// `limit` (served by `volunteers_change_xid_idx`), with the `xmin` of the snapshot they were
/// read in: one statement, so one snapshot and one round trip.
pub async fn volunteers_changed(
    conn: &mut PgConnection,
    xid: u64,
    after: Uuid,
    limit: i64,
) -> Result<ChangedPage, sqlx::Error> {
    let (xmin, rows): (String, Json<Vec<ChangedVolunteer>>) = sqlx::query_as(concat!(
        "SELECT pg_snapshot_xmin(pg_current_snapshot())::text,
                coalesce((SELECT json_agg(row_to_json(c)) FROM (SELECT ",
        volunteer_columns!(),
        ", v.change_xid::text AS change_xid FROM dispatch.volunteers v
             WHERE (v.change_xid, v.user_id) > ($1::text::xid8, $2)
             ORDER BY v.change_xid, v.user_id LIMIT $3) c), '[]')"
    ))
    .bind(xid.to_string())
    .bind(after)
    .bind(limit)
    .fetch_one(conn)
    .await?;
    Ok(ChangedPage {
        xmin: parse_xid(&xmin)?,
        rows: rows.0,
    })
}

/// Tells the other instances that volunteers changed.
pub async fn announce_volunteer_changes(pool: &PgPool, instance: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(VOLUNTEER_CHANGES_CHANNEL)
        .bind(instance.to_string())
        .execute(pool)
        .await?;
    Ok(())
}
