//! The SQL of the AED registry: adding a device with its custodians, reading one (locked for a
//! change), saving a change, the devices near a point, and the candidates for routing a responder
//! to an alert via a device (one statement each; availability is then judged by
//! [`crate::domain::aeds::available_at`]).
//!
//! Both spatial reads filter with `ST_DWithin` on the query point, so `aeds_location_gix` serves
//! them (`dispatch/tests/aeds.rs` shows it with EXPLAIN).

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::AedId;
use crate::domain::aeds::{HoursWindow, NewAed};
use crate::geo::LatLng;

/// An AED as stored, with its custodians.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AedRow {
    /// Its id.
    pub id: AedId,
    /// Latitude, degrees.
    pub lat: f64,
    /// Longitude, degrees.
    pub lng: f64,
    /// The exact place.
    pub description: String,
    /// Weekly windows, Asia/Jakarta (checked before they were written).
    pub hours: Json<Vec<HoursWindow>>,
    /// The admin who verified it.
    pub verified_by: Option<Uuid>,
    /// When (UTC).
    pub verified_at: Option<DateTime<Utc>>,
    /// Broken, pads expired, or taken away.
    pub out_of_service: bool,
    /// Accounts that look after it, sorted.
    pub custodian_ids: Vec<Uuid>,
    /// Last change (UTC).
    pub updated_at: DateTime<Utc>,
}

macro_rules! aed_columns {
    () => {
        "d.id, ST_Y(d.location::geometry) AS lat, ST_X(d.location::geometry) AS lng, d.description,
         d.hours, d.verified_by, d.verified_at, d.out_of_service, d.updated_at,
         ARRAY(SELECT c.user_id FROM dispatch.aed_custodians c WHERE c.aed_id = d.id ORDER BY c.user_id)
             AS custodian_ids"
    };
}

/// Adds an AED and its custodians in one statement; it starts unverified and in service.
pub async fn insert_aed(
    conn: &mut PgConnection,
    id: AedId,
    aed: &NewAed,
    created_by: Uuid,
) -> Result<AedRow, sqlx::Error> {
    let mut custodians = aed.custodians.clone();
    custodians.sort_unstable();
    sqlx::query_as(
        "WITH d AS (
             INSERT INTO dispatch.aeds (id, location, description, hours, created_by)
             VALUES ($1, ST_SetSRID(ST_MakePoint($2, $3), 4326)::geography, $4, $5, $6)
             RETURNING *
         ), custodians AS (
             INSERT INTO dispatch.aed_custodians (aed_id, user_id)
             SELECT $1, u FROM unnest($7::uuid[]) AS u
         )
         SELECT d.id, ST_Y(d.location::geometry) AS lat, ST_X(d.location::geometry) AS lng,
                d.description, d.hours, d.verified_by, d.verified_at, d.out_of_service, d.updated_at,
                $7::uuid[] AS custodian_ids
         FROM d",
    )
    .bind(id)
    .bind(aed.at.lng())
    .bind(aed.at.lat())
    .bind(&aed.description)
    .bind(Json(aed.hours.to_wire()))
    .bind(created_by)
    .bind(&custodians)
    .fetch_one(conn)
    .await
}

/// One AED, locked for the rest of the transaction (a change reads, checks and saves it).
pub async fn lock_aed(conn: &mut PgConnection, id: AedId) -> Result<Option<AedRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        aed_columns!(),
        " FROM dispatch.aeds d WHERE d.id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Saves every field of `aed` (as changed by the caller) and, when `custodians_changed`, replaces
/// its custodians with `aed.custodian_ids`; answers the row as stored (`updated_at` now).
pub async fn save_aed(
    conn: &mut PgConnection,
    aed: &AedRow,
    custodians_changed: bool,
) -> Result<AedRow, sqlx::Error> {
    sqlx::query_as(
        "WITH d AS (
             UPDATE dispatch.aeds
             SET location = ST_SetSRID(ST_MakePoint($2, $3), 4326)::geography, description = $4,
                 hours = $5, verified_by = $6, verified_at = $7, out_of_service = $8,
                 updated_at = now()
             WHERE id = $1
             RETURNING *
         ), removed AS (
             DELETE FROM dispatch.aed_custodians c
             WHERE $9 AND c.aed_id = $1 AND c.user_id <> ALL($10::uuid[])
         ), added AS (
             INSERT INTO dispatch.aed_custodians (aed_id, user_id)
             SELECT $1, u FROM unnest($10::uuid[]) AS u WHERE $9
             ON CONFLICT DO NOTHING
         )
         SELECT d.id, ST_Y(d.location::geometry) AS lat, ST_X(d.location::geometry) AS lng,
                d.description, d.hours, d.verified_by, d.verified_at, d.out_of_service, d.updated_at,
                $10::uuid[] AS custodian_ids
         FROM d",
    )
    .bind(aed.id)
    .bind(aed.lng)
    .bind(aed.lat)
    .bind(&aed.description)
    .bind(&aed.hours)
    .bind(aed.verified_by)
    .bind(aed.verified_at)
    .bind(aed.out_of_service)
    .bind(custodians_changed)
    .bind(&aed.custodian_ids)
    .fetch_one(conn)
    .await
}

/// Who is asking for AEDs near a point: admins see every device; anyone else the verified ones
/// and those they look after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AedViewer {
    /// An admin: every device.
    Admin,
    /// Anyone else signed in.
    User(Uuid),
}

/// The AEDs within `radius_m` of `at` that `viewer` may see, nearest first, at most `limit`.
pub async fn aeds_near(
    pool: &PgPool,
    at: LatLng,
    radius_m: f64,
    limit: i64,
    viewer: AedViewer,
) -> Result<Vec<AedRow>, sqlx::Error> {
    let (admin, user) = match viewer {
        AedViewer::Admin => (true, None),
        AedViewer::User(id) => (false, Some(id)),
    };
    sqlx::query_as(concat!(
        "SELECT ",
        aed_columns!(),
        " FROM dispatch.aeds d
         WHERE ST_DWithin(d.location, ST_SetSRID(ST_MakePoint($1, $2), 4326)::geography, $3)
           AND ($5 OR d.verified_at IS NOT NULL
                OR EXISTS (SELECT 1 FROM dispatch.aed_custodians c
                           WHERE c.aed_id = d.id AND c.user_id = $6))
         ORDER BY ST_Distance(d.location, ST_SetSRID(ST_MakePoint($1, $2), 4326)::geography), d.id
         LIMIT $4"
    ))
    .bind(at.lng())
    .bind(at.lat())
    .bind(radius_m)
    .bind(limit)
    .bind(admin)
    .bind(user)
    .fetch_all(pool)
    .await
}

macro_rules! aed_route_sql {
    () => {
        concat!(
            "SELECT ",
            aed_columns!(),
            ", ST_Distance(ST_SetSRID(ST_MakePoint($3, $4), 4326)::geography, d.location)
               + ST_Distance(d.location, ST_SetSRID(ST_MakePoint($1, $2), 4326)::geography)
                 AS distance_via_m
             FROM dispatch.aeds d
             WHERE ST_DWithin(d.location, ST_SetSRID(ST_MakePoint($1, $2), 4326)::geography, $5)
               AND d.verified_at IS NOT NULL AND NOT d.out_of_service
               AND jsonb_array_length(d.hours) > 0
             ORDER BY distance_via_m, d.id
             LIMIT $6"
        )
    };
}

/// The routing read of [`aed_route_candidates`]. Binds: alert lng, alert lat, volunteer lng,
/// volunteer lat, radius_m around the alert, limit. Public for the EXPLAIN test.
pub const AED_ROUTE_SQL: &str = aed_route_sql!();

/// A device a responder could fetch on the way, with the walk volunteer -> AED -> alert.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AedCandidate {
    /// The device.
    #[sqlx(flatten)]
    pub aed: AedRow,
    /// Volunteer to AED plus AED to alert, metres (geodesic).
    pub distance_via_m: f64,
}

/// The verified, in-service AEDs with hours within `radius_m` of the alert, shortest walk
/// volunteer -> AED -> alert first, at most `limit` (one statement; the caller keeps the first
/// one open at the instant in question).
pub async fn aed_route_candidates(
    conn: &mut PgConnection,
    alert: LatLng,
    volunteer: LatLng,
    radius_m: f64,
    limit: i64,
) -> Result<Vec<AedCandidate>, sqlx::Error> {
    sqlx::query_as(AED_ROUTE_SQL)
        .bind(alert.lng())
        .bind(alert.lat())
        .bind(volunteer.lng())
        .bind(volunteer.lat())
        .bind(radius_m)
        .bind(limit)
        .fetch_all(conn)
        .await
}
