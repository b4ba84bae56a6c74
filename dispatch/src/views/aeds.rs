//! The AED registry's shapes (docs/API.md "Dispatch policy, roles, AEDs, aftercare"): an [`Aed`] as
//! `GET /v1/aeds` and the `aed` role show it, and an [`AedRoute`], the device a responder fetches
//! on the way and the walk via it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::AedId;
use crate::domain::aeds::{HoursWindow, WeeklyHours, available_at};
use crate::store::AedRow;

/// An AED in the registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Aed {
    /// Its id.
    pub id: AedId,
    /// Latitude, degrees (WGS84).
    pub lat: f64,
    /// Longitude, degrees (WGS84).
    pub lng: f64,
    /// The exact place, for someone running to fetch it.
    pub description: String,
    /// Weekly windows when it can be reached, Asia/Jakarta local time (`day` 0 = Sunday); none
    /// means never.
    pub hours: Vec<HoursWindow>,
    /// An admin checked it is there and works.
    pub verified: bool,
    /// When it was verified (UTC).
    pub verified_at: Option<DateTime<Utc>>,
    /// Broken, pads expired, or taken away: never available.
    pub out_of_service: bool,
    /// Verified, in service, and inside one of its windows now: the ones the citizen app shows and
    /// the only ones a responder is sent to.
    pub available_now: bool,
    /// Accounts that look after it (shown to admins and its custodians only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custodian_ids: Option<Vec<Uuid>>,
}

impl Aed {
    /// The view of `row` at `now`; `show_custodians` for admins and the device's custodians.
    pub fn from_row(row: AedRow, now: DateTime<Utc>, show_custodians: bool) -> Self {
        let hours = stored_hours(&row);
        let verified = row.verified_at.is_some();
        Self {
            id: row.id,
            lat: row.lat,
            lng: row.lng,
            description: row.description,
            available_now: available_at(verified, row.out_of_service, &hours, now),
            hours: hours.to_wire(),
            verified,
            verified_at: row.verified_at,
            out_of_service: row.out_of_service,
            custodian_ids: show_custodians.then_some(row.custodian_ids),
        }
    }
}

/// The hours of a stored row. They were checked before they were written; a row that no longer
/// passes (edited by hand) counts as never open, which never sends anyone to a closed door.
fn stored_hours(row: &AedRow) -> WeeklyHours {
    WeeklyHours::parse(&row.hours.0, "hours").unwrap_or_else(|errors| {
        tracing::error!(aed_id = %row.id, ?errors, "stored AED hours do not pass their checks");
        WeeklyHours::default()
    })
}

/// The AED a responder fetches on the way to an alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AedRoute {
    /// The device: available at the instant it was chosen.
    pub aed: Aed,
    /// The walk volunteer -> AED -> alert, metres (geodesic, as the crow flies).
    pub distance_via_m: f64,
}
