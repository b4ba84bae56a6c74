//! Who is inside an area, for area broadcasts (the CAP service asks through the binary's wiring):
//! on-duty volunteers whose last position, fresher than `max_age_s`, lies in the area, and citizens
//! whose own recent panic does. Only ids
//! come back; positions stay here. The cast is on the query area, never on the indexed column,
//! so `volunteers_location_gix` serves it.

use sqlx::PgPool;
use uuid::Uuid;

/// On-duty volunteers with a position newer than `max_age_s` inside `area` (GeoJSON Polygon or
/// MultiPolygon text, WGS84). At most `limit`.
///
/// # Errors
/// Database failures; an area PostGIS cannot read is an error too (the caller made it).
pub async fn on_duty_inside(
    pool: &PgPool,
    area: &str,
    max_age_s: f64,
    limit: i64,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT v.user_id FROM dispatch.volunteers v
         WHERE v.on_duty AND v.location IS NOT NULL
           AND v.location_at > now() - make_interval(secs => $2)
           AND ST_Intersects(v.location, ST_SetSRID(ST_GeomFromGeoJSON($1), 4326)::geography)
         LIMIT $3",
    )
    .bind(area)
    .bind(max_age_s)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Citizens known to be inside `area` (GeoJSON text): those whose own panic, raised within the
/// last `within_s` seconds and not a drill, lies in it (KREKI keeps no other citizen position;
/// exact positions are coarsened by retention later, and coarsened ones do not count). At most
/// `limit`. `alerts_location_gix` serves the spatial test.
///
/// # Errors
/// Database failures; an area PostGIS cannot read.
pub async fn citizens_inside(
    pool: &PgPool,
    area: &str,
    within_s: f64,
    limit: i64,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT DISTINCT a.citizen_id FROM dispatch.alerts a
         WHERE NOT a.drill AND a.location_coarsened_at IS NULL
           AND a.created_at > now() - make_interval(secs => $2)
           AND ST_Intersects(a.location, ST_SetSRID(ST_GeomFromGeoJSON($1), 4326)::geography)
         LIMIT $3",
    )
    .bind(area)
    .bind(within_s)
    .bind(limit)
    .fetch_all(pool)
    .await
}
