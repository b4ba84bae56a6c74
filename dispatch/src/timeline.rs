//! The timeline: every state change of an alert, appended to `dispatch.alert_events` and never
//! changed. [`Event`] lists every kind of entry with its data; it is written as the `type` column
//! and a JSON `data` column (the shapes `GET /v1/alerts/{id}/timeline` shows), so the spelling of
//! each lives here only.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::domain::{AlertKind, AssignmentId, AssignmentStatus, OfferId, Outcome};

/// A point as the timeline shows it (degrees, WGS84).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Point {
    /// Latitude.
    pub lat: f64,
    /// Longitude.
    pub lng: f64,
}

/// A point with the accuracy the device reported.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Fix {
    /// Latitude.
    pub lat: f64,
    /// Longitude.
    pub lng: f64,
    /// Accuracy radius, metres (null when not reported).
    pub accuracy_m: Option<f32>,
}

/// A person in a timeline entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Person {
    /// Account id.
    pub id: Uuid,
    /// Display name.
    pub name: String,
}

/// One timeline entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum Event {
    /// The alert was raised.
    Created {
        /// Its kind.
        kind: AlertKind,
        /// A drill, not a real emergency.
        drill: bool,
        /// Where.
        location: Fix,
    },
    /// The same citizen pressed again near the open alert.
    RepeatPress {
        /// Where they pressed.
        location: Point,
        /// Their note.
        note: Option<String>,
    },
    /// A wave of offers went out.
    OffersSent {
        /// Its number (1-based).
        wave: u32,
        /// Its radius, metres.
        radius_m: u32,
        /// Who was asked, nearest first.
        volunteers: Vec<Uuid>,
        /// Their answer deadline.
        expires_at: DateTime<Utc>,
    },
    /// Declined or lapsed offers were replaced at once within the current wave.
    ReplacementsSent {
        /// The current wave.
        wave: u32,
        /// Its radius, metres.
        radius_m: u32,
        /// Who was asked, nearest first.
        volunteers: Vec<Uuid>,
        /// Their answer deadline.
        expires_at: DateTime<Utc>,
    },
    /// A wave started without new offers (as many are live as the policy keeps): replacements
    /// now come from its wider radius.
    WaveWidened {
        /// Its number.
        wave: u32,
        /// Its radius, metres.
        radius_m: u32,
    },
    /// A wave found nobody; the next one was tried at once.
    WaveEmpty {
        /// Its number.
        wave: u32,
        /// Its radius, metres.
        radius_m: u32,
    },
    /// Every wave was tried.
    WavesExhausted {
        /// How many waves the alert went through.
        waves: u32,
    },
    /// Every wave was tried and nobody is active: coordinators were told.
    Unmatched,
    /// A volunteer declined an offer.
    OfferDeclined {
        /// The offer.
        offer_id: OfferId,
        /// Their reason, if given.
        reason: Option<String>,
    },
    /// A volunteer accepted an offer.
    Accepted {
        /// The assignment made.
        assignment_id: AssignmentId,
        /// The offer accepted.
        offer_id: OfferId,
        /// Their distance when offered, metres.
        distance_m: f64,
        /// Who.
        volunteer: Person,
    },
    /// A coordinator assigned a volunteer directly.
    Assigned {
        /// The assignment made.
        assignment_id: AssignmentId,
        /// Who was sent.
        volunteer: Person,
    },
    /// A responder reported progress.
    AssignmentStatus {
        /// The assignment.
        assignment_id: AssignmentId,
        /// Its status before.
        from: AssignmentStatus,
        /// Its status now.
        to: AssignmentStatus,
    },
    /// The alert was cancelled.
    Cancelled {
        /// Why, if given.
        reason: Option<String>,
    },
    /// Every responder completed: the alert is resolved (no outcome recorded yet).
    Resolved,
    /// A coordinator resolved the alert, or recorded how it ended after it resolved: a `resolved`
    /// entry carrying the outcome.
    #[serde(rename = "resolved")]
    ResolvedWithOutcome {
        /// How it ended.
        outcome: Outcome,
        /// The coordinator's note, if given.
        note: Option<String>,
    },
    /// The panic came from an account its region triages: it waits for a coordinator.
    Triaged {
        /// The caller's trust level then.
        trust: kreki_auth::Trust,
        /// When it goes to volunteers by itself if nobody touches it.
        auto_release_at: DateTime<Utc>,
    },
    /// Triage let the alert through to volunteers: a coordinator (`by`), or nobody in time.
    Released {
        /// The coordinator who released it; null when it went by itself.
        by: Option<Person>,
    },
    /// A coordinator wrote a note on the timeline.
    Note {
        /// The note.
        text: String,
        /// Who wrote it.
        by: Person,
    },
    /// A coordinator raised the alert for an emergency phoned in to them.
    PhonedIn {
        /// The coordinator.
        by: Person,
        /// The caller's number masked to its last four digits (`*******7890`), when given; the
        /// whole number only through a recorded call-back view (`POST /v1/alerts/{id}/contacts/view`).
        caller_phone: Option<String>,
    },
    /// A coordinator was shown the caller's and the responders' phone numbers for a call-back
    /// (each view is also in KREKI ID's audit log).
    ContactsViewed {
        /// Who.
        by: Person,
        /// Why, as they gave it.
        reason: String,
    },
    /// A coordinator sent the alert out again, to a wider radius than its kind's waves.
    Redispatched {
        /// The new wave's radius, metres.
        radius_m: u32,
        /// Who.
        by: Person,
    },
    /// A coordinator handed the alert to another service (112, PSC 119) with their reference.
    HandedOff {
        /// The service: `112`, `psc119` or `other`.
        to: String,
        /// The reference that service gave.
        reference: String,
        /// Who.
        by: Person,
    },
    /// A coordinator acknowledged an escalation of this alert.
    EscalationAcknowledged {
        /// The escalation.
        escalation_id: crate::domain::EscalationId,
        /// Why it was raised.
        reason: crate::domain::EscalationReason,
        /// Who acknowledged it.
        by: Person,
    },
}

impl Event {
    /// The `type` column and the `data` column of the entry.
    pub fn columns(&self) -> (String, serde_json::Value) {
        // Serialising plain data types cannot fail; an empty object stands in if it ever did.
        let value = serde_json::to_value(self).unwrap_or_default();
        let kind = value["type"].as_str().unwrap_or_default().to_owned();
        let data = match value.get("data") {
            Some(data) => data.clone(),
            None => serde_json::Value::Object(serde_json::Map::new()),
        };
        (kind, data)
    }

    /// The `type` column alone.
    pub fn kind(&self) -> String {
        self.columns().0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn entries_keep_the_shapes_the_timeline_always_had() {
        let (kind, data) = Event::Unmatched.columns();
        assert_eq!((kind.as_str(), data), ("unmatched", json!({})));
        let (kind, data) = Event::WaveEmpty {
            wave: 2,
            radius_m: 2000,
        }
        .columns();
        assert_eq!(kind, "wave_empty");
        assert_eq!(data, json!({"wave": 2, "radius_m": 2000}));
        let (kind, data) = Event::Created {
            kind: AlertKind::Medical,
            drill: false,
            location: Fix {
                lat: -6.2,
                lng: 106.8,
                accuracy_m: None,
            },
        }
        .columns();
        assert_eq!(kind, "created");
        assert_eq!(
            data,
            json!({"kind": "medical", "drill": false, "location": {"lat": -6.2, "lng": 106.8, "accuracy_m": null}})
        );
        let (_, data) = Event::RepeatPress {
            location: Point { lat: 1.0, lng: 2.0 },
            note: None,
        }
        .columns();
        assert_eq!(
            data,
            json!({"location": {"lat": 1.0, "lng": 2.0}, "note": null})
        );
        let (kind, data) = Event::Resolved.columns();
        assert_eq!((kind.as_str(), data), ("resolved", json!({})));
        let (kind, data) = Event::ResolvedWithOutcome {
            outcome: Outcome::ToHospital,
            note: Some("RSCM".into()),
        }
        .columns();
        assert_eq!(kind, "resolved");
        assert_eq!(data, json!({"outcome": "to_hospital", "note": "RSCM"}));
    }
}
