//! Validated values and the two ports through which the bridge meets the rest of KREKI: the
//! [`IncidentFeed`] it reads dispatch's incidents from, and the [`PractitionerStatusSink`] it tells
//! verification results to. The binary wires both to dispatch; tests feed them by hand.

use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A boxed, sendable future (the ports are object-safe traits).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The identifier system of an Indonesian national id number (NIK) in SATUSEHAT.
pub const NIK_SYSTEM: &str = "https://fhir.kemkes.go.id/id/nik";
/// The identifier system of a health worker's IHS number in SATUSEHAT.
pub const IHS_SYSTEM: &str = "https://fhir.kemkes.go.id/id/nakes-his-number";
/// The identifier system of a patient's IHS number in SATUSEHAT.
pub const PATIENT_IHS_SYSTEM: &str = "https://fhir.kemkes.go.id/id/ihs-number";

/// An Indonesian national id number, validated, masked in `Debug`/`Display` (shared with dispatch).
pub use kreki_platform::pii::Nik;

/// Status of an alert as dispatch reports it (the `status` of docs/API.md's Alert).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    /// Offers are out; nobody has accepted yet.
    Dispatching,
    /// At least one volunteer accepted.
    Assigned,
    /// A responder is at the scene.
    OnScene,
    /// Over: help was given.
    Resolved,
    /// Called off by the citizen or a coordinator.
    Cancelled,
    /// Nobody could be found.
    Unmatched,
}

impl IncidentStatus {
    /// The name stored and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dispatching => "dispatching",
            Self::Assigned => "assigned",
            Self::OnScene => "on_scene",
            Self::Resolved => "resolved",
            Self::Cancelled => "cancelled",
            Self::Unmatched => "unmatched",
        }
    }

    /// Parses a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "dispatching" => Self::Dispatching,
            "assigned" => Self::Assigned,
            "on_scene" => Self::OnScene,
            "resolved" => Self::Resolved,
            "cancelled" => Self::Cancelled,
            "unmatched" => Self::Unmatched,
            _ => return None,
        })
    }

    /// True once the alert is over (no further Encounter changes but this one).
    pub fn is_final(self) -> bool {
        matches!(self, Self::Resolved | Self::Cancelled | Self::Unmatched)
    }

    /// The FHIR R4 `Encounter.status` this maps to.
    pub fn encounter_status(self) -> &'static str {
        match self {
            Self::Dispatching | Self::Assigned => "arrived",
            Self::OnScene => "in-progress",
            Self::Resolved => "finished",
            Self::Cancelled | Self::Unmatched => "cancelled",
        }
    }
}

/// One responder of an incident, as dispatch reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Responder {
    /// The volunteer's account id.
    pub volunteer_id: Uuid,
    /// The assignment id (the FHIR Task id).
    pub assignment_id: Uuid,
    /// Assignment status: `accepted`, `en_route`, `on_scene`, `completed` or `withdrawn`.
    pub status: String,
    /// The volunteer's SATUSEHAT IHS number when dispatch knows them verified; when `None` the bridge
    /// uses its own verification record.
    pub ihs_number: Option<String>,
}

/// The state of one incident after a change, as the feed delivers it. Each event carries the whole
/// current state (not a delta), so applying the latest one is enough and replays are harmless.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentEvent {
    /// Position in dispatch's event stream: strictly increasing, the bridge's cursor.
    pub seq: i64,
    /// The alert.
    pub alert_id: Uuid,
    /// Alert kind (`medical`, `cardiac_arrest`, ...).
    pub kind: String,
    /// Alert status after this event.
    pub status: IncidentStatus,
    /// Where, WGS84 degrees, as `(lat, lng)` (latitude first).
    pub location: (f64, f64),
    /// When the alert was raised (UTC).
    pub occurred_at: DateTime<Utc>,
    /// When this change happened (UTC).
    pub changed_at: DateTime<Utc>,
    /// The patient's NIK when the citizen gave one (sealed before the bridge stores it).
    pub patient_nik: Option<Nik>,
    /// Every assignment of the alert, current state.
    pub responders: Vec<Responder>,
    /// The alert is a drill (practice): not a health record, so the bridge neither projects it
    /// (the FHIR API never serves it) nor records it in SATUSEHAT.
    #[serde(default)]
    pub drill: bool,
}

/// Where the bridge reads incidents from. The binary implements it over dispatch's event stream; it
/// must return events with `seq > after`, in increasing `seq` order, at most `limit` of them.
pub trait IncidentFeed: Send + Sync + 'static {
    /// The next events after `after`.
    ///
    /// # Errors
    /// When the source cannot be read now; the consumer logs it and tries again later.
    fn next_batch(
        &self,
        after: i64,
        limit: u32,
    ) -> BoxFuture<'_, anyhow::Result<Vec<IncidentEvent>>>;
}

/// Where practitioner verification results go (the binary wires it to dispatch's eligibility).
/// Called with `Some(ihs_number)` when verified, `None` when SATUSEHAT says the person is not (or
/// not unambiguously) a registered health worker. Must not block: queue the change if needed.
pub trait PractitionerStatusSink: Send + Sync + 'static {
    /// Records the verification result of `user`.
    fn set_verified(&self, user: Uuid, ihs_number: Option<String>);
}

/// A sink that drops every result (for processes that run the bridge without dispatch).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoSink;

impl PractitionerStatusSink for NoSink {
    fn set_verified(&self, _user: Uuid, _ihs_number: Option<String>) {}
}

/// A feed with nothing in it (until the binary wires dispatch's stream).
#[derive(Debug, Default, Clone, Copy)]
pub struct EmptyFeed;

impl IncidentFeed for EmptyFeed {
    fn next_batch(
        &self,
        _after: i64,
        _limit: u32,
    ) -> BoxFuture<'_, anyhow::Result<Vec<IncidentEvent>>> {
        Box::pin(std::future::ready(Ok(Vec::new())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_encounter_statuses() {
        assert_eq!(IncidentStatus::Resolved.encounter_status(), "finished");
        assert_eq!(IncidentStatus::OnScene.encounter_status(), "in-progress");
        assert_eq!(
            IncidentStatus::parse("on_scene"),
            Some(IncidentStatus::OnScene)
        );
        assert_eq!(IncidentStatus::parse("nope"), None);
    }
}
