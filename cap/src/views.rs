//! What the API and the sockets say about warnings and broadcasts (JSON shapes of docs/API.md),
//! and the typed WebSocket messages ([`CapMessage`]), encoded once by the hub.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::model::Info;
use crate::store::{BroadcastRow, WarningRow};

/// A warning on the map.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Warning {
    /// KREKI's id of the message.
    pub id: Uuid,
    /// The configured feed it came from (`bmkg`).
    pub feed: String,
    /// CAP `sender` (`bmkg@bmkg.go.id`).
    pub sender: String,
    /// CAP `identifier`.
    pub identifier: String,
    /// CAP `sent` (UTC).
    pub sent: DateTime<Utc>,
    /// `Alert` or `Update`.
    pub msg_type: String,
    /// What happened (`Gempabumi`), from the first `info`.
    pub event: String,
    /// `Extreme`, `Severe`, `Moderate`, `Minor` or `Unknown` (the most severe `info`).
    pub severity: String,
    /// `Immediate`, `Expected`, `Future`, `Past` or `Unknown`.
    pub urgency: String,
    /// `Observed`, `Likely`, `Possible`, `Unlikely` or `Unknown`.
    pub certainty: String,
    /// Headline in the first language given (BMKG: Bahasa Indonesia).
    pub headline: Option<String>,
    /// What to do, in the first language given.
    pub instruction: Option<String>,
    /// Every `info` block (one per language: `id-ID`, `en-US`...).
    pub infos: Vec<Info>,
    /// Its area as a GeoJSON MultiPolygon (`[lng, lat]`); null when only unmapped geocodes.
    #[schema(value_type = Option<Object>)]
    pub area: Option<serde_json::Value>,
    /// When it leaves the map by itself (UTC).
    pub expires_at: DateTime<Utc>,
    /// When KREKI read it (UTC).
    pub received_at: DateTime<Utc>,
}

impl From<WarningRow> for Warning {
    fn from(row: WarningRow) -> Self {
        let infos = row.infos.0;
        let first = infos.first();
        Self {
            headline: first.and_then(|i| i.headline.clone()),
            instruction: first.and_then(|i| i.instruction.clone()),
            id: row.id,
            feed: row.feed,
            sender: row.sender,
            identifier: row.identifier,
            sent: row.sent,
            msg_type: row.msg_type,
            event: row.event,
            severity: row.severity,
            urgency: row.urgency,
            certainty: row.certainty,
            area: row.area.map(|area| area.0),
            expires_at: row.expires_at,
            received_at: row.received_at,
            infos,
        }
    }
}

/// The text of a broadcast in both languages.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Texts {
    /// Bahasa Indonesia.
    pub id: String,
    /// English.
    pub en: String,
}

/// How many a broadcast reached (counted, never listed).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
pub struct Reached {
    /// On-duty volunteers inside the area.
    pub volunteers: u32,
    /// Citizens inside the area (with a known recent position).
    pub citizens: u32,
}

/// A broadcast as its sender and the public feed see it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Broadcast {
    /// Its id (also the CAP `identifier` tail).
    pub id: Uuid,
    /// When it was sent (UTC).
    pub sent_at: DateTime<Utc>,
    /// `everyone`, `volunteers` or `citizens`.
    pub audience: String,
    /// Its text.
    pub message: Texts,
    /// Its area in words.
    pub area_desc: String,
    /// Its area (GeoJSON MultiPolygon).
    #[schema(value_type = Object)]
    pub area: serde_json::Value,
    /// The warning it relays.
    pub warning_id: Option<Uuid>,
    /// CAP severity.
    pub severity: String,
    /// How many it reached.
    pub reached: Reached,
    /// Until when it holds (UTC).
    pub expires_at: DateTime<Utc>,
    /// Its CAP 1.2 document (`/cap/alerts/{id}.xml`).
    pub cap_url: String,
}

impl Broadcast {
    /// The view of a stored broadcast.
    pub fn from_row(row: BroadcastRow, base_url: &str) -> Self {
        Self {
            cap_url: format!(
                "{}/cap/alerts/{}.xml",
                base_url.trim_end_matches('/'),
                row.id
            ),
            id: row.id,
            sent_at: row.sent_at,
            audience: row.audience,
            message: Texts {
                id: row.message_id,
                en: row.message_en,
            },
            area_desc: row.area_desc,
            area: row.area.0,
            warning_id: row.warning_id,
            severity: row.severity,
            reached: Reached {
                volunteers: u32::try_from(row.volunteers).unwrap_or(0),
                citizens: u32::try_from(row.citizens).unwrap_or(0),
            },
            expires_at: row.expires_at,
        }
    }
}

/// What a recipient's socket gets: the text, no area, no other recipient.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BroadcastMessage {
    /// The broadcast.
    pub id: Uuid,
    /// Its text in both languages.
    pub message: Texts,
    /// Its area in words.
    pub area_desc: String,
    /// CAP severity.
    pub severity: String,
    /// The warning it relays.
    pub warning_id: Option<Uuid>,
    /// When it was sent (UTC).
    pub sent_at: DateTime<Utc>,
    /// Until when it holds (UTC).
    pub expires_at: DateTime<Utc>,
}

/// The WebSocket messages of this service.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type")]
pub enum CapMessage<'a> {
    /// `warning`: a warning appeared or changed (coordinators).
    #[serde(rename = "warning")]
    Warning {
        /// The warning.
        warning: &'a Warning,
    },
    /// `warning.removed`: warnings left the map (coordinators).
    #[serde(rename = "warning.removed")]
    WarningsRemoved {
        /// Their ids.
        ids: &'a [Uuid],
    },
    /// `broadcast`: a message to the people inside an area (each recipient).
    #[serde(rename = "broadcast")]
    Broadcast {
        /// The message.
        broadcast: &'a BroadcastMessage,
    },
}
