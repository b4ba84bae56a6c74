//! Aftercare's shapes: a [`Checkin`] as the volunteer sees it (`GET /v1/volunteers/me/checkins`,
//! WebSocket `checkin`), and an [`AnsweredCheckin`] as coordinators see it
//! (`GET /v1/checkins`, WebSocket `checkin.answered`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::PersonRef;
use crate::domain::{AlertId, CheckinId};
use crate::store::CheckinRow;

/// A check-in: "how are you?" some time after the volunteer's assignment ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Checkin {
    /// Its id (answer with `POST /v1/checkins/{id}`).
    pub id: CheckinId,
    /// The alert the volunteer responded to.
    pub alert_id: AlertId,
    /// When it was due (UTC).
    pub due_at: DateTime<Utc>,
    /// When the volunteer answered (UTC); null while unanswered.
    pub answered_at: Option<DateTime<Utc>>,
}

impl From<&CheckinRow> for Checkin {
    fn from(row: &CheckinRow) -> Self {
        Self {
            id: row.id,
            alert_id: row.alert_id,
            due_at: row.due_at,
            answered_at: row.answered_at,
        }
    }
}

/// A volunteer's answer, for coordinators.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AnsweredCheckin {
    /// The check-in.
    pub id: CheckinId,
    /// The alert the volunteer responded to.
    pub alert_id: AlertId,
    /// Who answered.
    pub volunteer: PersonRef,
    /// How they are, 1 (very bad) to 5 (fine).
    pub wellbeing: u8,
    /// They want someone to contact them.
    pub wants_contact: bool,
    /// What they wrote.
    pub note: Option<String>,
    /// They asked for contact or rated their wellbeing 2 or lower: reach out.
    pub support_requested: bool,
    /// When they answered (UTC).
    pub answered_at: DateTime<Utc>,
}

impl AnsweredCheckin {
    /// The view of an answered row; `None` while it is unanswered.
    pub fn from_row(row: &CheckinRow) -> Option<Self> {
        Some(Self {
            id: row.id,
            alert_id: row.alert_id,
            volunteer: PersonRef {
                id: row.volunteer_id,
                name: row.volunteer_name.clone(),
            },
            wellbeing: u8::try_from(row.wellbeing?).ok()?,
            wants_contact: row.wants_contact?,
            note: row.note.clone(),
            support_requested: row.support_requested?,
            answered_at: row.answered_at?,
        })
    }
}
