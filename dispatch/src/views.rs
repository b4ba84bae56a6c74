//! The shapes dispatch shows on the wire (docs/API.md: Alert, Offer, Assignment, timeline entries,
//! volunteers), built from stored rows. The same JSON goes out over HTTP and in WebSocket messages.
//! The AED registry's and aftercare's shapes are in [`aeds`] and [`checkins`].

mod aeds;
mod checkins;

pub use aeds::{Aed, AedRoute};
pub use checkins::{AnsweredCheckin, Checkin};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::{
    AedId, AlertId, AlertKind, AlertStatus, AssignmentId, AssignmentStatus, OfferId, OfferStatus,
    Outcome, ResponderRole,
};
use crate::store::{AlertRow, AssignmentRow, EventRow, NewAlert, OfferRow, VolunteerRow};

/// A position with its accuracy.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Location {
    /// Latitude, degrees (WGS84).
    pub lat: f64,
    /// Longitude, degrees (WGS84).
    pub lng: f64,
    /// Accuracy radius in metres, if reported.
    pub accuracy_m: Option<f32>,
}

/// A person referred to by an alert or assignment.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PersonRef {
    /// Account id.
    pub id: Uuid,
    /// Display name.
    pub name: String,
}

/// An alert: a panic press and everything that followed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Alert {
    /// Alert id.
    pub id: AlertId,
    /// `medical`, `cardiac_arrest`, `accident`, `fire`, `disaster`, `security` or `other`.
    pub kind: AlertKind,
    /// `triage` (waiting for a coordinator), `dispatching`, `assigned`, `on_scene`, `resolved`,
    /// `cancelled` or `unmatched`.
    pub status: AlertStatus,
    /// Where help is needed.
    pub location: Location,
    /// The citizen's note.
    pub note: Option<String>,
    /// Created (UTC).
    pub created_at: DateTime<Utc>,
    /// Last change (UTC).
    pub updated_at: DateTime<Utc>,
    /// Who pressed panic.
    pub citizen: PersonRef,
    /// Volunteers who accepted (or were assigned), oldest first.
    pub assignments: Vec<Assignment>,
    /// How many responders this alert needs.
    pub responders_needed: i32,
    /// Raised to practise (`kreki simulate`, an exercise), not a real emergency: never recorded in
    /// SATUSEHAT nor served at `/fhir/r4`, and counted apart in the dashboard.
    pub drill: bool,
    /// How the incident ended: `treated_on_scene`, `to_hospital`, `false_alarm`, `not_found` or
    /// `other`; null until a coordinator resolves it (`POST /v1/alerts/{id}/resolve`).
    pub outcome: Option<Outcome>,
    /// The region it belongs to (the one containing it, else the nearest); null while no region
    /// is defined.
    pub region_id: Option<crate::domain::RegionId>,
}

impl Alert {
    /// The view of an alert just stored by ingest (no assignments yet; created and updated at
    /// `created_at`).
    pub fn raised(alert: &NewAlert<'_>, created_at: DateTime<Utc>) -> Self {
        Self {
            id: alert.id,
            kind: alert.kind,
            status: alert.status,
            location: Location {
                lat: alert.at.lat(),
                lng: alert.at.lng(),
                accuracy_m: alert.accuracy_m,
            },
            note: alert.note.map(str::to_owned),
            created_at,
            updated_at: created_at,
            citizen: PersonRef {
                id: alert.citizen_id,
                name: alert.citizen_name.to_owned(),
            },
            assignments: Vec::new(),
            responders_needed: alert.responders_needed,
            drill: alert.drill,
            outcome: None,
            region_id: alert.region_id,
        }
    }

    /// Builds the view of `row` with its `assignments`.
    pub fn from_rows(row: AlertRow, assignments: Vec<AssignmentRow>) -> Self {
        Self {
            id: row.id,
            kind: row.kind,
            status: row.status,
            location: Location {
                lat: row.lat,
                lng: row.lng,
                accuracy_m: row.accuracy_m,
            },
            note: row.note,
            created_at: row.created_at,
            updated_at: row.updated_at,
            citizen: PersonRef {
                id: row.citizen_id,
                name: row.citizen_name,
            },
            assignments: assignments.into_iter().map(Assignment::from).collect(),
            responders_needed: row.responders_needed,
            drill: row.drill,
            outcome: row.outcome,
            region_id: row.region_id,
        }
    }
}

/// A volunteer's commitment to an alert.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Assignment {
    /// Assignment id.
    pub id: AssignmentId,
    /// The alert.
    pub alert_id: AlertId,
    /// The volunteer.
    pub volunteer: PersonRef,
    /// `accepted`, `en_route`, `on_scene`, `completed` or `withdrawn`.
    pub status: AssignmentStatus,
    /// Distance from the volunteer to the alert when accepted, metres.
    pub distance_m: Option<f64>,
    /// Accepted (UTC).
    pub accepted_at: DateTime<Utc>,
    /// Last change (UTC).
    pub updated_at: DateTime<Utc>,
    /// What this responder does on scene (`cpr`, `aed`, `lead`), when the kind gives roles.
    pub role: Option<ResponderRole>,
    /// For the `aed` role: the AED to fetch on the way (one available when they accepted), or null
    /// when none was within reach.
    pub aed: Option<AssignedAed>,
}

/// The AED an `aed` responder fetches on the way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AssignedAed {
    /// The device.
    pub id: AedId,
    /// Latitude, degrees (WGS84).
    pub lat: f64,
    /// Longitude, degrees (WGS84).
    pub lng: f64,
    /// The exact place, for someone running to fetch it.
    pub description: String,
    /// The walk from where the responder was to the AED and on to the alert, metres.
    pub distance_via_m: Option<f64>,
}

impl From<AssignmentRow> for Assignment {
    fn from(row: AssignmentRow) -> Self {
        Self {
            id: row.id,
            alert_id: row.alert_id,
            volunteer: PersonRef {
                id: row.volunteer_id,
                name: row.volunteer_name,
            },
            status: row.status,
            distance_m: row.distance_m,
            accepted_at: row.accepted_at,
            updated_at: row.updated_at,
            role: row.role,
            aed: row.aed,
        }
    }
}

/// What a volunteer sees of the alert in an offer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OfferAlert {
    /// Alert id.
    pub id: AlertId,
    /// Kind.
    pub kind: AlertKind,
    /// Where.
    pub location: Location,
    /// The citizen's note.
    pub note: Option<String>,
    /// A drill, not a real emergency (the volunteer app says so on the offer).
    pub drill: bool,
}

/// A request to one volunteer to take an alert.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Offer {
    /// Offer id.
    pub id: OfferId,
    /// The alert.
    pub alert: OfferAlert,
    /// Distance from the volunteer to the alert, metres.
    pub distance_m: f64,
    /// `pending`, `accepted`, `declined`, `expired` or `withdrawn`.
    pub status: OfferStatus,
    /// Made (UTC).
    pub offered_at: DateTime<Utc>,
    /// Answer before this (UTC).
    pub expires_at: DateTime<Utc>,
}

impl From<OfferRow> for Offer {
    fn from(row: OfferRow) -> Self {
        Self {
            id: row.id,
            alert: OfferAlert {
                id: row.alert_id,
                kind: row.kind,
                location: Location {
                    lat: row.lat,
                    lng: row.lng,
                    accuracy_m: row.accuracy_m,
                },
                note: row.note,
                drill: row.drill,
            },
            distance_m: row.distance_m,
            status: row.status,
            offered_at: row.offered_at,
            expires_at: row.expires_at,
        }
    }
}

/// One timeline entry.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TimelineEvent {
    /// When (UTC).
    pub at: DateTime<Utc>,
    /// `created`, `repeat_press`, `offers_sent`, `offer_declined`, `accepted`, `assigned`,
    /// `assignment_status`, `cancelled`, `unmatched`, `resolved` (with `outcome` and `note` when a
    /// coordinator resolved it).
    #[serde(rename = "type")]
    pub kind: String,
    /// Who did it, when a person did.
    pub actor: Option<Uuid>,
    /// Details of the event.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

impl From<EventRow> for TimelineEvent {
    fn from(row: EventRow) -> Self {
        Self {
            at: row.at,
            kind: row.r#type,
            actor: row.actor,
            data: row.data,
        }
    }
}

/// A volunteer on the coordinators' map.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Volunteer {
    /// Account id.
    pub id: Uuid,
    /// Display name.
    pub name: String,
    /// On duty.
    pub on_duty: bool,
    /// Holds an active assignment.
    pub busy: bool,
    /// Latitude of the last position.
    pub lat: Option<f64>,
    /// Longitude of the last position.
    pub lng: Option<f64>,
    /// When that position was recorded (UTC).
    pub updated_at: Option<DateTime<Utc>>,
}

impl From<VolunteerRow> for Volunteer {
    fn from(row: VolunteerRow) -> Self {
        Self {
            id: row.user_id,
            name: row.name,
            on_duty: row.on_duty,
            busy: row.busy,
            lat: row.lat,
            lng: row.lng,
            updated_at: row.location_at,
        }
    }
}

/// A region: an area and the coordinators who answer for it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Region {
    /// Region id.
    pub id: crate::domain::RegionId,
    /// Its name (a kabupaten/kota, usually).
    pub name: String,
    /// Its area, a GeoJSON MultiPolygon (degrees, WGS84).
    #[schema(value_type = Object)]
    pub area: serde_json::Value,
    /// Which trust levels' panics wait for a coordinator, per kind.
    pub triage: crate::domain::regions::TriagePolicy,
    /// Its coordinators' account ids.
    pub coordinator_ids: Vec<Uuid>,
}

/// Something a region's coordinators must see: an alarm on their dashboards until one of them
/// acknowledges it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Escalation {
    /// Escalation id.
    pub id: crate::domain::EscalationId,
    /// The alert (null for `severe_warning`, which is about a warning).
    pub alert_id: Option<AlertId>,
    /// The CAP warning (`GET /v1/warnings/{id}`) of a `severe_warning`; null otherwise.
    pub warning_id: Option<Uuid>,
    /// The alert's region (for a warning: a region its area covers).
    pub region_id: Option<crate::domain::RegionId>,
    /// `unmatched`, `triage_waiting`, `responder_stalled`, `open_too_long` or `severe_warning`.
    pub reason: crate::domain::EscalationReason,
    /// When it was raised (UTC).
    pub raised_at: DateTime<Utc>,
    /// When a coordinator acknowledged it (null: still open).
    pub acknowledged_at: Option<DateTime<Utc>>,
    /// Who did.
    pub acknowledged_by: Option<Uuid>,
}

impl From<crate::store::escalations::EscalationRow> for Escalation {
    fn from(row: crate::store::escalations::EscalationRow) -> Self {
        Self {
            id: row.id,
            alert_id: row.alert_id,
            warning_id: row.warning_id,
            region_id: row.region_id,
            reason: row.reason,
            raised_at: row.raised_at,
            acknowledged_at: row.acknowledged_at,
            acknowledged_by: row.acknowledged_by,
        }
    }
}
