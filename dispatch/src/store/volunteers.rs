//! The SQL of volunteers: duty, positions (one at a time, and the write-behind batches), the
//! location history, rest periods, practitioner verification, and the coordinators' map.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::VolunteerRow;
use crate::domain::h3_cell;
use crate::geo::LatLng;

/// Creates or updates the volunteer row and sets duty; returns the row.
pub async fn set_duty(
    pool: &PgPool,
    user: Uuid,
    name: &str,
    on_duty: bool,
) -> Result<VolunteerRow, sqlx::Error> {
    sqlx::query(
        "INSERT INTO dispatch.volunteers (user_id, name, on_duty) VALUES ($1, $2, $3)
         ON CONFLICT (user_id) DO UPDATE SET name = EXCLUDED.name, on_duty = EXCLUDED.on_duty, updated_at = now()",
    )
    .bind(user)
    .bind(name)
    .bind(on_duty)
    .execute(pool)
    .await?;
    volunteer(pool, user).await?.ok_or(sqlx::Error::RowNotFound)
}

/// What storing a position did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PositionStored {
    /// False when a newer position was stored already (this one is older: history only).
    pub latest: bool,
    /// Whether the volunteer is on duty.
    pub on_duty: bool,
}

/// Stores a volunteer's latest position (creating the row, off duty, when new). A position
/// recorded before the stored one leaves the row as it is.
pub async fn set_position(
    pool: &PgPool,
    user: Uuid,
    name: &str,
    at: LatLng,
    accuracy_m: Option<f32>,
    recorded_at: DateTime<Utc>,
) -> Result<PositionStored, sqlx::Error> {
    let (applied, on_duty): (Option<bool>, Option<bool>) = sqlx::query_as(
        "WITH up AS (
           INSERT INTO dispatch.volunteers (user_id, name, location, h3_cell, accuracy_m, location_at)
           VALUES ($1, $2, ST_SetSRID(ST_MakePoint($3, $4), 4326)::geography, $5, $6, $7)
           ON CONFLICT (user_id) DO UPDATE SET location = EXCLUDED.location, h3_cell = EXCLUDED.h3_cell,
             accuracy_m = EXCLUDED.accuracy_m, location_at = EXCLUDED.location_at, updated_at = now(),
             name = CASE WHEN EXCLUDED.name <> '' THEN EXCLUDED.name ELSE dispatch.volunteers.name END
           WHERE dispatch.volunteers.location_at IS NULL
              OR dispatch.volunteers.location_at <= EXCLUDED.location_at
           RETURNING on_duty)
         SELECT (SELECT on_duty FROM up),
                (SELECT on_duty FROM dispatch.volunteers WHERE user_id = $1)",
    )
    .bind(user)
    .bind(name)
    .bind(at.lng())
    .bind(at.lat())
    .bind(h3_cell(at))
    .bind(accuracy_m)
    .bind(recorded_at)
    .fetch_one(pool)
    .await?;
    Ok(PositionStored {
        latest: applied.is_some(),
        on_duty: applied.or(on_duty).unwrap_or(false),
    })
}

/// Column arrays of a write-behind flush ([`crate::positions`]), one element per volunteer.
#[derive(Debug, Clone, Copy)]
pub struct PositionBatch<'a> {
    /// Volunteers.
    pub ids: &'a [Uuid],
    /// Latitudes, degrees.
    pub lats: &'a [f64],
    /// Longitudes, degrees.
    pub lngs: &'a [f64],
    /// H3 cells of the positions.
    pub cells: &'a [i64],
    /// Accuracies, metres.
    pub accuracies: &'a [Option<f32>],
    /// When the devices recorded them.
    pub recorded: &'a [DateTime<Utc>],
    /// Display names to store, empty to keep the stored ones.
    pub names: &'a [String],
}

/// Writes many volunteers' positions in one statement; a row whose stored position is newer
/// (another instance wrote it, or a later flush did) keeps it. Rows that do not exist are left
/// alone (write-behind only handles volunteers the matcher knows, whose rows exist). Answers how
/// many rows changed. Fires the `change_xid` trigger, so other instances catch up.
pub async fn write_positions(pool: &PgPool, batch: &PositionBatch<'_>) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE dispatch.volunteers v
         SET location = ST_SetSRID(ST_MakePoint(t.lng, t.lat), 4326)::geography, h3_cell = t.cell,
             accuracy_m = t.acc, location_at = t.rec, updated_at = now(),
             name = CASE WHEN t.name <> '' THEN t.name ELSE v.name END
         FROM UNNEST($1::uuid[], $2::float8[], $3::float8[], $4::bigint[], $5::real[],
                     $6::timestamptz[], $7::text[]) AS t(u, lat, lng, cell, acc, rec, name)
         WHERE v.user_id = t.u AND (v.location_at IS NULL OR v.location_at <= t.rec)",
    )
    .bind(batch.ids)
    .bind(batch.lats)
    .bind(batch.lngs)
    .bind(batch.cells)
    .bind(batch.accuracies)
    .bind(batch.recorded)
    .bind(batch.names)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Sets practitioner verification (creating the row when new).
pub async fn set_practitioner_verified(
    pool: &PgPool,
    user: Uuid,
    verified: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO dispatch.volunteers (user_id, name, practitioner_verified) VALUES ($1, '', $2)
         ON CONFLICT (user_id) DO UPDATE SET practitioner_verified = EXCLUDED.practitioner_verified, updated_at = now()",
    )
    .bind(user)
    .bind(verified)
    .execute(pool)
    .await?;
    Ok(())
}

/// Sets the rest period end of a volunteer.
pub async fn set_rest_until(
    conn: &mut PgConnection,
    user: Uuid,
    until: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE dispatch.volunteers SET rest_until = $2, updated_at = now() WHERE user_id = $1",
    )
    .bind(user)
    .bind(until)
    .execute(conn)
    .await?;
    Ok(())
}

/// One volunteer.
pub async fn volunteer(pool: &PgPool, user: Uuid) -> Result<Option<VolunteerRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        volunteer_columns!(),
        " FROM dispatch.volunteers v WHERE v.user_id = $1"
    ))
    .bind(user)
    .fetch_optional(pool)
    .await
}

/// One volunteer, inside a transaction.
pub async fn volunteer_in(
    conn: &mut PgConnection,
    user: Uuid,
) -> Result<Option<VolunteerRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        volunteer_columns!(),
        " FROM dispatch.volunteers v WHERE v.user_id = $1"
    ))
    .bind(user)
    .fetch_optional(conn)
    .await
}

/// Every volunteer that is on duty or has a position (to rebuild the matcher).
pub async fn all_volunteers(pool: &PgPool) -> Result<Vec<VolunteerRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        volunteer_columns!(),
        " FROM dispatch.volunteers v WHERE v.on_duty"
    ))
    .fetch_all(pool)
    .await
}

/// Volunteers with a position inside the box `[min_lng, min_lat, max_lng, max_lat]`, at most `limit`.
pub async fn volunteers_in_box(
    pool: &PgPool,
    bbox: Option<[f64; 4]>,
    limit: i64,
) -> Result<Vec<VolunteerRow>, sqlx::Error> {
    let [min_lng, min_lat, max_lng, max_lat] = bbox.map_or([None; 4], |b| b.map(Some));
    sqlx::query_as(concat!(
        "SELECT ",
        volunteer_columns!(),
        " FROM dispatch.volunteers v
         WHERE v.location IS NOT NULL
           AND ($1::float8 IS NULL
                OR v.location && ST_MakeEnvelope($1, $2, $3, $4, 4326)::geography)
         ORDER BY v.updated_at DESC LIMIT $5"
    ))
    .bind(min_lng)
    .bind(min_lat)
    .bind(max_lng)
    .bind(max_lat)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Appends positions to `location_history` in one statement.
pub async fn insert_history(
    pool: &PgPool,
    users: &[Uuid],
    lats: &[f64],
    lngs: &[f64],
    accuracies: &[Option<f32>],
    recorded: &[DateTime<Utc>],
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO dispatch.location_history (volunteer_id, location, accuracy_m, recorded_at)
         SELECT u, ST_SetSRID(ST_MakePoint(lng, lat), 4326)::geography, acc, rec
         FROM UNNEST($1::uuid[], $2::float8[], $3::float8[], $4::real[], $5::timestamptz[])
              AS t(u, lat, lng, acc, rec)",
    )
    .bind(users)
    .bind(lats)
    .bind(lngs)
    .bind(accuracies)
    .bind(recorded)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}
