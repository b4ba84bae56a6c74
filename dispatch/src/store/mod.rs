//! SQL of dispatch (schema `dispatch`), one file per use case. Functions taking a `PgConnection`
//! run inside the caller's transaction or on its connection; each is exercised by the integration
//! tests against PostgreSQL + PostGIS. Rows come back typed: ids, kinds and statuses are decoded
//! into their domain types here, once.
//!
//! - [`kinds`]: per-kind dispatch settings.
//! - [`alerts`]: ingest (an alert, its first event and its first wave in one statement), reading
//!   alerts, their timelines and the change feed.
//! - [`waves`]: claiming due work with its snapshot (one statement), writing wave plans (one
//!   statement), hurrying a wave's deadline.
//! - [`offers`]: reading, answering and withdrawing offers.
//! - [`assignments`]: accepting, assigning, moving an assignment along, cancelling.
//! - [`volunteers`]: duty, positions (one at a time and in write-behind batches), history, rest,
//!   practitioner verification, the coordinators' map.
//! - [`changes`]: the catch-up read of volunteer changes made by other instances.
//! - [`aeds`]: the AED registry (add, change, near a point, candidates for a route via a device).
//! - [`checkins`]: aftercare check-ins (scheduled when an assignment ends, claimed for delivery,
//!   answered).
//! - [`outcomes`]: how an incident ended, as a coordinator records it.
//! - [`regions`]: regions, their areas and coordinators.
//! - [`escalations`]: escalations (open ones, acknowledging, the sweep of stalled responders and
//!   alerts open too long).
//! - [`retention`]: the retention job's batches (old positions, drills, coarsening).
//! - [`areas`]: on-duty volunteers inside an area (area broadcasts), ids only.
//! - [`erasure`]: erasing a person whose account is deleted (history kept, anonymised).
//!
//! Spatial predicates cast the query point, never an indexed column, so the GiST indexes serve them.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;

use crate::domain::{
    AlertId, AlertKind, AlertStatus, AssignmentId, AssignmentStatus, OfferId, OfferStatus, Outcome,
    ResponderRole,
};

/// An alert as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AlertRow {
    /// Alert id.
    pub id: AlertId,
    /// Who pressed panic.
    pub citizen_id: Uuid,
    /// Their name, from the access token.
    pub citizen_name: String,
    /// Kind.
    pub kind: AlertKind,
    /// Status.
    pub status: AlertStatus,
    /// Latitude, degrees.
    pub lat: f64,
    /// Longitude, degrees.
    pub lng: f64,
    /// Reported accuracy, metres.
    pub accuracy_m: Option<f32>,
    /// The citizen's note.
    pub note: Option<String>,
    /// Raised to practise, not a real emergency.
    pub drill: bool,
    /// Responders this alert needs.
    pub responders_needed: i32,
    /// How it ended, once a coordinator recorded it.
    pub outcome: Option<Outcome>,
    /// Last wave sent (0: none).
    pub wave: i32,
    /// Created (UTC).
    pub created_at: DateTime<Utc>,
    /// Last change (UTC).
    pub updated_at: DateTime<Utc>,
    /// The region it belongs to (none while no region is defined).
    pub region_id: Option<crate::domain::RegionId>,
}

macro_rules! alert_columns {
    () => {
        "a.id, a.citizen_id, a.citizen_name, a.kind, a.status, ST_Y(a.location::geometry) AS lat,
         ST_X(a.location::geometry) AS lng, a.accuracy_m, a.note, a.drill, a.responders_needed, a.outcome, a.wave,
         a.created_at, a.updated_at, a.region_id"
    };
}

/// An assignment as stored (also read from JSON, where an alert's assignments are aggregated).
#[derive(Debug, Clone, sqlx::FromRow, Deserialize)]
pub struct AssignmentRow {
    /// Assignment id.
    pub id: AssignmentId,
    /// Its alert.
    pub alert_id: AlertId,
    /// The volunteer.
    pub volunteer_id: Uuid,
    /// Their name.
    pub volunteer_name: String,
    /// Status.
    pub status: AssignmentStatus,
    /// Distance from the volunteer to the alert when accepted, metres.
    pub distance_m: Option<f64>,
    /// Accepted (UTC).
    pub accepted_at: DateTime<Utc>,
    /// Last change (UTC).
    pub updated_at: DateTime<Utc>,
    /// What the responder does on scene, when the kind gives roles.
    pub role: Option<ResponderRole>,
    /// For the `aed` role: the AED to fetch on the way, and the walk via it.
    #[sqlx(json(nullable))]
    pub aed: Option<crate::views::AssignedAed>,
}

/// The AED of an assignment `s` as JSON (null without one): where it is, the place in words, and
/// the walk via it.
macro_rules! assigned_aed {
    () => {
        "(SELECT json_build_object('id', d.id, 'lat', ST_Y(d.location::geometry),
                 'lng', ST_X(d.location::geometry), 'description', d.description,
                 'distance_via_m', s.aed_distance_via_m)
          FROM dispatch.aeds d WHERE d.id = s.aed_id)"
    };
}

macro_rules! assignment_columns {
    () => {
        concat!(
            "s.id, s.alert_id, s.volunteer_id, s.volunteer_name, s.status, s.distance_m, s.accepted_at,
             s.updated_at, s.role, ",
            assigned_aed!(),
            " AS aed"
        )
    };
}

/// An alert's assignments as one JSON array, oldest first (for reading an alert in one statement).
macro_rules! assignments_json {
    () => {
        concat!(
            "coalesce((SELECT json_agg(json_build_object(
                 'id', s.id, 'alert_id', s.alert_id, 'volunteer_id', s.volunteer_id,
                 'volunteer_name', s.volunteer_name, 'status', s.status, 'distance_m', s.distance_m,
                 'accepted_at', s.accepted_at, 'updated_at', s.updated_at, 'role', s.role,
                 'aed', ",
            assigned_aed!(),
            ") ORDER BY s.accepted_at, s.id)
               FROM dispatch.assignments s WHERE s.alert_id = a.id), '[]') AS assignments"
        )
    };
}

/// An offer with the alert it is for.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OfferRow {
    /// Offer id.
    pub id: OfferId,
    /// The alert.
    pub alert_id: AlertId,
    /// Who is asked.
    pub volunteer_id: Uuid,
    /// Wave number (1-based).
    pub wave: i32,
    /// Distance to the alert at offer time, metres.
    pub distance_m: f64,
    /// Status.
    pub status: OfferStatus,
    /// When it was made (UTC).
    pub offered_at: DateTime<Utc>,
    /// Answer deadline (UTC).
    pub expires_at: DateTime<Utc>,
    /// The alert's kind.
    pub kind: AlertKind,
    /// The alert's latitude.
    pub lat: f64,
    /// The alert's longitude.
    pub lng: f64,
    /// The alert's accuracy, metres.
    pub accuracy_m: Option<f32>,
    /// The alert's note.
    pub note: Option<String>,
    /// The alert is a drill.
    pub drill: bool,
}

macro_rules! offer_columns {
    () => {
        "o.id, o.alert_id, o.volunteer_id, o.wave, o.distance_m, o.status, o.offered_at, o.expires_at,
         a.kind, ST_Y(a.location::geometry) AS lat, ST_X(a.location::geometry) AS lng, a.accuracy_m, a.note,
         a.drill"
    };
}

/// A volunteer as stored (also read from JSON, where a catch-up aggregates a page).
#[derive(Debug, Clone, sqlx::FromRow, Deserialize)]
pub struct VolunteerRow {
    /// Account id.
    pub user_id: Uuid,
    /// Name from the access token.
    pub name: String,
    /// On duty.
    pub on_duty: bool,
    /// Latitude, when a position is known.
    pub lat: Option<f64>,
    /// Longitude, when a position is known.
    pub lng: Option<f64>,
    /// When the position was recorded.
    pub location_at: Option<DateTime<Utc>>,
    /// Verified health practitioner.
    pub practitioner_verified: bool,
    /// No offers before this instant.
    pub rest_until: Option<DateTime<Utc>>,
    /// Holds an active assignment.
    pub busy: bool,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

macro_rules! volunteer_columns {
    () => {
        "v.user_id, v.name, v.on_duty, ST_Y(v.location::geometry) AS lat, ST_X(v.location::geometry) AS lng,
         v.location_at, v.practitioner_verified, v.rest_until,
         EXISTS (SELECT 1 FROM dispatch.assignments s WHERE s.volunteer_id = v.user_id
                 AND s.status IN ('accepted', 'en_route', 'on_scene')) AS busy,
         v.updated_at"
    };
}

/// One timeline entry.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRow {
    /// When (UTC).
    pub at: DateTime<Utc>,
    /// What (`created`, `repeat_press`, `offers_sent`, `accepted`, ...).
    pub r#type: String,
    /// Who did it, when a person did.
    pub actor: Option<Uuid>,
    /// Details.
    pub data: serde_json::Value,
}

pub mod aeds;
pub mod alerts;
pub mod areas;
pub mod assignments;
pub mod changes;
pub mod checkins;
pub mod contacts;
pub mod erasure;
pub mod escalations;
pub mod kinds;
pub mod offers;
pub mod outcomes;
pub mod regions;
pub mod retention;
pub mod volunteers;
pub mod waves;

pub use aeds::*;
pub use alerts::*;
pub use assignments::*;
pub use changes::*;
pub use checkins::*;
pub use kinds::*;
pub use offers::*;
pub use outcomes::*;
pub use volunteers::*;
pub use waves::*;
