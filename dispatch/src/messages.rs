//! What dispatch tells people, as one typed enum: [`Message`]. It is the only thing dispatch hands
//! to its [`crate::Notifier`] port; the binary's wiring sends it on as the realtime hub's frames
//! (serialised once), as a push for an offer, and so on, by matching on the variant, never on a
//! string. The JSON each variant serialises to is the WebSocket message of docs/API.md ("Real time"):
//! `{"type": "offer", "offer": {...}}`, `{"type": "offer.withdrawn", ...}`, and so on (the
//! transport adds `seq`). `responder.position`, `checkin`, `checkin.answered` and `escalation`
//! are docs/API.md's second-round additions; `panic.limited` tells coordinators of a refused press.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::domain::{AlertId, OfferId, ResponderRole, WithdrawReason};
use crate::views::{Alert, AnsweredCheckin, Assignment, Checkin, Escalation, Offer, PersonRef};

/// A message from dispatch to the people concerned.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type")]
pub enum Message {
    /// A volunteer is asked to take an alert (to that volunteer; also by push).
    #[serde(rename = "offer")]
    Offer {
        /// The offer, as `GET /v1/volunteers/me/offers` shows it.
        offer: Box<Offer>,
    },
    /// A pending offer was taken back (to its volunteer).
    #[serde(rename = "offer.withdrawn")]
    OfferWithdrawn {
        /// The offer.
        offer_id: OfferId,
        /// Its alert.
        alert_id: AlertId,
        /// Why.
        reason: WithdrawReason,
    },
    /// An alert changed (to its citizen, its responders, coordinators and its topic).
    #[serde(rename = "alert.updated")]
    AlertUpdated {
        /// The alert as it is now.
        alert: Box<Alert>,
    },
    /// An assignment changed (to its volunteer and coordinators).
    #[serde(rename = "assignment.updated")]
    AssignmentUpdated {
        /// The assignment as it is now.
        assignment: Box<Assignment>,
    },
    /// A responder moved (to the other responders of their alert, while they are assigned).
    #[serde(rename = "responder.position")]
    ResponderPosition {
        /// Their alert.
        alert_id: AlertId,
        /// Who.
        volunteer: PersonRef,
        /// Their role on scene, when the kind gives roles.
        role: Option<ResponderRole>,
        /// Latitude, degrees.
        lat: f64,
        /// Longitude, degrees.
        lng: f64,
    },
    /// An on-duty volunteer moved (to coordinators).
    #[serde(rename = "volunteer.position")]
    VolunteerPosition {
        /// Who.
        volunteer_id: Uuid,
        /// Latitude, degrees.
        lat: f64,
        /// Longitude, degrees.
        lng: f64,
        /// Accuracy radius, metres.
        accuracy_m: Option<f32>,
        /// When the device took the fix (UTC).
        recorded_at: DateTime<Utc>,
    },
    /// Some time after an assignment ended: how is the volunteer? (to that volunteer).
    #[serde(rename = "checkin")]
    CheckinDue {
        /// The check-in, as `GET /v1/volunteers/me/checkins` shows it.
        checkin: Box<Checkin>,
    },
    /// A volunteer answered a check-in (to coordinators; flagged when they asked for support).
    #[serde(rename = "checkin.answered")]
    CheckinAnswered {
        /// The answer, as `GET /v1/checkins` shows it.
        checkin: Box<AnsweredCheckin>,
    },
    /// Something coordinators must acknowledge was raised, or acknowledged (to coordinators: an
    /// alarm on the dashboard while `acknowledged_at` is null).
    #[serde(rename = "escalation")]
    Escalation {
        /// The escalation as `GET /v1/escalations` shows it.
        escalation: Box<Escalation>,
    },
    /// An account pressed panic past its limit and was refused (to coordinators, so they can
    /// call back or block it).
    #[serde(rename = "panic.limited")]
    PanicLimited {
        /// Who pressed.
        citizen: PersonRef,
        /// When they may press again, in seconds.
        retry_after_s: u64,
    },
}

impl Message {
    /// The message's `type` on the wire.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Offer { .. } => "offer",
            Self::OfferWithdrawn { .. } => "offer.withdrawn",
            Self::AlertUpdated { .. } => "alert.updated",
            Self::AssignmentUpdated { .. } => "assignment.updated",
            Self::ResponderPosition { .. } => "responder.position",
            Self::VolunteerPosition { .. } => "volunteer.position",
            Self::CheckinDue { .. } => "checkin",
            Self::CheckinAnswered { .. } => "checkin.answered",
            Self::Escalation { .. } => "escalation",
            Self::PanicLimited { .. } => "panic.limited",
        }
    }

    /// The message as JSON (what a WebSocket client receives, without `seq`).
    pub fn to_json(&self) -> serde_json::Value {
        // Plain data with string keys: serialising cannot fail.
        serde_json::to_value(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_variant_carries_its_wire_type() {
        let message = Message::OfferWithdrawn {
            offer_id: OfferId::new(),
            alert_id: AlertId::new(),
            reason: WithdrawReason::Covered,
        };
        let json = message.to_json();
        assert_eq!(json["type"], message.kind());
        assert_eq!(json["reason"], "covered");
        let position = Message::VolunteerPosition {
            volunteer_id: Uuid::nil(),
            lat: -6.2,
            lng: 106.8,
            accuracy_m: None,
            recorded_at: Utc::now(),
        };
        assert_eq!(position.to_json()["type"], "volunteer.position");
        let checkin = Message::CheckinDue {
            checkin: Box::new(Checkin {
                id: crate::domain::CheckinId::new(),
                alert_id: AlertId::new(),
                due_at: Utc::now(),
                answered_at: None,
            }),
        };
        let json = checkin.to_json();
        assert_eq!(json["type"], checkin.kind());
        assert_eq!(json["type"], "checkin");
        assert!(json["checkin"]["answered_at"].is_null());
    }
}
