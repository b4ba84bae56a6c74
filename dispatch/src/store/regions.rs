//! The SQL of regions: add one (its area from GeoJSON, checked by PostGIS too), list them, set
//! their coordinators, and read them all for the in-memory [`crate::domain::regions::RegionMap`].

use sqlx::PgPool;
use sqlx::types::Json;
use uuid::Uuid;

use crate::domain::RegionId;
use crate::domain::regions::TriagePolicy;

/// A region as stored, its area as GeoJSON.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RegionRow {
    /// The region.
    pub id: RegionId,
    /// Its name.
    pub name: String,
    /// Its area (a GeoJSON MultiPolygon).
    pub area: Json<serde_json::Value>,
    /// Which trust levels its panics triage.
    pub triage: Json<TriagePolicy>,
    /// Its coordinators.
    pub coordinators: Vec<Uuid>,
}

macro_rules! region_columns {
    () => {
        "r.id, r.name, ST_AsGeoJSON(r.area)::jsonb AS area, r.triage,
         coalesce((SELECT array_agg(c.user_id ORDER BY c.user_id) FROM dispatch.region_coordinators c
                   WHERE c.region_id = r.id), '{}') AS coordinators"
    };
}

/// The coordinators answering for `region` (none for an unknown region).
pub async fn coordinators_of(pool: &PgPool, region: RegionId) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT user_id FROM dispatch.region_coordinators WHERE region_id = $1 ORDER BY user_id",
    )
    .bind(region.0)
    .fetch_all(pool)
    .await
}

/// Adds a region. A name taken is a unique violation on `regions_name_key`; an area PostGIS finds
/// invalid (self-intersecting) violates `regions_area_valid`.
pub async fn insert_region(
    pool: &PgPool,
    id: RegionId,
    name: &str,
    area: &serde_json::Value,
    triage: &TriagePolicy,
) -> Result<RegionRow, sqlx::Error> {
    sqlx::query_as(concat!(
        "WITH r AS (
             INSERT INTO dispatch.regions (id, name, area, triage)
             VALUES ($1, $2, ST_Multi(ST_SetSRID(ST_GeomFromGeoJSON($3::text), 4326)), $4)
             RETURNING *
         )
         SELECT ",
        region_columns!(),
        " FROM r"
    ))
    .bind(id)
    .bind(name)
    .bind(area.to_string())
    .bind(Json(triage))
    .fetch_one(pool)
    .await
}

/// Every region, by name.
pub async fn regions(pool: &PgPool) -> Result<Vec<RegionRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        region_columns!(),
        " FROM dispatch.regions r ORDER BY r.name"
    ))
    .fetch_all(pool)
    .await
}

/// Replaces a region's coordinators; `None` when there is no such region.
pub async fn set_coordinators(
    pool: &PgPool,
    id: RegionId,
    users: &[Uuid],
) -> Result<Option<RegionRow>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let exists: Option<RegionId> =
        sqlx::query_scalar("SELECT id FROM dispatch.regions WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    if exists.is_none() {
        return Ok(None);
    }
    // Two statements: a DELETE and an INSERT of the same rows in one statement would see the
    // same snapshot, and the INSERT's conflict check would find the rows being deleted.
    sqlx::query("DELETE FROM dispatch.region_coordinators WHERE region_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO dispatch.region_coordinators (region_id, user_id)
         SELECT $1, u FROM unnest($2::uuid[]) AS u ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .bind(users)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    let row = sqlx::query_as(concat!(
        "SELECT ",
        region_columns!(),
        " FROM dispatch.regions r WHERE r.id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    Ok(row)
}

/// Adds a region unless one of that name exists (demo data); answers whether it was added.
pub async fn insert_region_if_missing(
    pool: &PgPool,
    name: &str,
    area: &serde_json::Value,
    triage: &TriagePolicy,
) -> Result<bool, sqlx::Error> {
    let added = sqlx::query(
        "INSERT INTO dispatch.regions (id, name, area, triage)
         VALUES (dispatch.uuid_v7(), $1, ST_Multi(ST_SetSRID(ST_GeomFromGeoJSON($2::text), 4326)), $3)
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(area.to_string())
    .bind(Json(triage))
    .execute(pool)
    .await?;
    Ok(added.rows_affected() == 1)
}
