//! SQL of the retention job ([`crate::retention`]). Each function handles at most `batch` rows in
//! one short statement or transaction, found through an index on their age, so no lock is held
//! for long and the hot path (ingest, waves, positions) never waits behind it.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

/// Deletes up to `batch` location-history rows recorded before `cutoff`. Returns how many.
///
/// # Errors
/// The database error.
pub async fn prune_location_history(
    pool: &PgPool,
    cutoff: DateTime<Utc>,
    batch: i64,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "DELETE FROM dispatch.location_history WHERE ctid = ANY (ARRAY(
             SELECT ctid FROM dispatch.location_history WHERE recorded_at < $1 LIMIT $2))",
    )
    .bind(cutoff)
    .bind(batch)
    .execute(pool)
    .await?
    .rows_affected())
}

/// Forgets the last known position of up to `batch` volunteers whose position is older than
/// `cutoff` (long off duty: the position is useless to dispatch and still says where they were).
/// Returns how many.
///
/// # Errors
/// The database error.
pub async fn forget_stale_positions(
    pool: &PgPool,
    cutoff: DateTime<Utc>,
    batch: i64,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE dispatch.volunteers
         SET location = NULL, h3_cell = NULL, accuracy_m = NULL, location_at = NULL,
             updated_at = now()
         WHERE user_id IN (SELECT user_id FROM dispatch.volunteers
                           WHERE location_at < $1 AND NOT on_duty LIMIT $2)",
    )
    .bind(cutoff)
    .bind(batch)
    .execute(pool)
    .await?
    .rows_affected())
}

/// Deletes up to `batch` finished drill alerts created before `cutoff`, with everything that
/// hangs off them, in one transaction. Returns how many alerts.
///
/// # Errors
/// The database error.
pub async fn prune_drills(
    pool: &PgPool,
    cutoff: DateTime<Utc>,
    batch: i64,
) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM dispatch.alerts
         WHERE drill AND created_at < $1 AND status IN ('resolved', 'cancelled', 'unmatched')
         ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(cutoff)
    .bind(batch)
    .fetch_all(&mut *tx)
    .await?;
    if ids.is_empty() {
        return Ok(0);
    }
    for statement in [
        "DELETE FROM dispatch.checkins WHERE alert_id = ANY ($1)",
        "DELETE FROM dispatch.escalations WHERE alert_id = ANY ($1)",
        "DELETE FROM dispatch.assignments WHERE alert_id = ANY ($1)",
        "DELETE FROM dispatch.offers WHERE alert_id = ANY ($1)",
        "DELETE FROM dispatch.timers WHERE alert_id = ANY ($1)",
        "DELETE FROM dispatch.outbox WHERE alert_id = ANY ($1)",
        "DELETE FROM dispatch.alert_events WHERE alert_id = ANY ($1)",
        "DELETE FROM dispatch.idempotency_keys WHERE alert_id = ANY ($1)",
    ] {
        sqlx::query(statement).bind(&ids).execute(&mut *tx).await?;
    }
    let deleted = sqlx::query("DELETE FROM dispatch.alerts WHERE id = ANY ($1)")
        .bind(&ids)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(deleted)
}

/// Coarsens the position of up to `batch` closed alerts created before `cutoff` to a grid of
/// `grid_deg` degrees (0.01° is about 1.1 km), and their H3 cell to the snapped point's, once.
/// The incident stays for statistics and SATUSEHAT; where exactly someone was does not. Returns
/// how many.
///
/// # Errors
/// The database error.
pub async fn coarsen_closed_alerts(
    pool: &PgPool,
    cutoff: DateTime<Utc>,
    grid_deg: f64,
    batch: i64,
) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let due: Vec<(Uuid, f64, f64)> = sqlx::query_as(
        "SELECT id, ST_Y(location::geometry), ST_X(location::geometry) FROM dispatch.alerts
         WHERE location_coarsened_at IS NULL AND created_at < $1
           AND status IN ('resolved', 'cancelled')
         LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(cutoff)
    .bind(batch)
    .fetch_all(&mut *tx)
    .await?;
    if due.is_empty() {
        return Ok(0);
    }
    let mut ids = Vec::with_capacity(due.len());
    let mut lats = Vec::with_capacity(due.len());
    let mut lngs = Vec::with_capacity(due.len());
    let mut cells = Vec::with_capacity(due.len());
    for (id, lat, lng) in due {
        // Stored positions are always valid; one that is not stays as it is (and the short
        // count ends this drain).
        let Ok(coarse) = crate::retention::coarsen(lat, lng, grid_deg) else {
            continue;
        };
        ids.push(id);
        lats.push(coarse.lat());
        lngs.push(coarse.lng());
        cells.push(crate::domain::h3_cell(coarse));
    }
    let changed = sqlx::query(
        "UPDATE dispatch.alerts AS a
         SET location = ST_SetSRID(ST_MakePoint(t.lng, t.lat), 4326)::geography,
             h3_cell = t.cell, location_coarsened_at = now()
         FROM unnest($1::uuid[], $2::float8[], $3::float8[], $4::int8[]) AS t(id, lat, lng, cell)
         WHERE a.id = t.id",
    )
    .bind(&ids)
    .bind(&lats)
    .bind(&lngs)
    .bind(&cells)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    // The timeline repeats the position (`created`, a repeated press): the same coarse point.
    sqlx::query(
        "UPDATE dispatch.alert_events AS e
         SET data = jsonb_set(jsonb_set(e.data, '{location,lat}', to_jsonb(t.lat)),
                              '{location,lng}', to_jsonb(t.lng))
         FROM unnest($1::uuid[], $2::float8[], $3::float8[]) AS t(id, lat, lng)
         WHERE e.alert_id = t.id AND jsonb_typeof(e.data -> 'location') = 'object'",
    )
    .bind(&ids)
    .bind(&lats)
    .bind(&lngs)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(changed)
}
