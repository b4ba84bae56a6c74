//! A CAP 1.2 alert as KREKI keeps it: the header fields that identify and order messages, and per
//! `info` block (one per language) what people read. Enumerations are closed enums parsed from
//! the standard's exact spellings (CAP 1.2 §3.2), so an unknown value is refused, not guessed.

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::geometry::Area;

macro_rules! cap_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
        pub enum $name { $($(#[$vdoc])* #[doc = concat!("CAP `", stringify!($variant), "`.")] $variant),+ }

        impl $name {
            /// Its spelling in CAP (and in KREKI's JSON).
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => stringify!($variant)),+ }
            }

            /// The value spelled exactly as CAP 1.2 spells it; `None` otherwise.
            pub fn parse(text: &str) -> Option<Self> {
                match text { $(stringify!($variant) => Some(Self::$variant),)+ _ => None }
            }
        }
    };
}

cap_enum!(
    /// `status`: only `Actual` warnings reach the map; the others are stored and logged.
    Status { Actual, Exercise, System, Test, Draft }
);
cap_enum!(
    /// `msgType`: `Update` and `Cancel` apply to the messages in `references`.
    MsgType { Alert, Update, Cancel, Ack, Error }
);
cap_enum!(
    /// `scope`.
    Scope { Public, Restricted, Private }
);
cap_enum!(
    /// `severity`, most severe first (so `Extreme < Severe` in the derived order).
    Severity { Extreme, Severe, Moderate, Minor, Unknown }
);
cap_enum!(
    /// `urgency`, most urgent first.
    Urgency { Immediate, Expected, Future, Past, Unknown }
);
cap_enum!(
    /// `certainty`, most certain first.
    Certainty { Observed, Likely, Possible, Unlikely, Unknown }
);

impl Severity {
    /// True for `Severe` and `Extreme`: such a warning raises escalations and may broadcast.
    pub fn is_severe(self) -> bool {
        matches!(self, Self::Extreme | Self::Severe)
    }

    /// True when `self` is `min` or worse.
    pub fn at_least(self, min: Severity) -> bool {
        self <= min
    }
}

/// A message `references` names: `sender,identifier,sent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Its sender.
    pub sender: String,
    /// Its identifier.
    pub identifier: String,
    /// When it was sent (with its offset).
    pub sent: DateTime<FixedOffset>,
}

/// One `info` block: what one language says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Info {
    /// RFC 3066 language (`id-ID`, `en-US`; CAP's default `en-US` when absent).
    pub language: String,
    /// What happened (`Gempabumi`, `Earthquake`).
    pub event: String,
    /// `Immediate`, `Expected`, `Future`, `Past` or `Unknown`.
    pub urgency: Urgency,
    /// `Extreme`, `Severe`, `Moderate`, `Minor` or `Unknown`.
    pub severity: Severity,
    /// `Observed`, `Likely`, `Possible`, `Unlikely` or `Unknown`.
    pub certainty: Certainty,
    /// One line for people.
    pub headline: Option<String>,
    /// What is happening.
    pub description: Option<String>,
    /// What people should do.
    pub instruction: Option<String>,
    /// Until when it holds (UTC).
    pub expires: Option<DateTime<chrono::Utc>>,
    /// A page with more.
    pub web: Option<String>,
    /// `areaDesc` of each area, joined.
    pub area_desc: Option<String>,
}

/// A parsed, validated CAP 1.2 alert.
#[derive(Debug, Clone)]
pub struct CapAlert {
    /// `identifier`, unique per sender.
    pub identifier: String,
    /// `sender`.
    pub sender: String,
    /// `sent`, with its offset as written (the de-duplication key keeps the instant).
    pub sent: DateTime<FixedOffset>,
    /// `status`.
    pub status: Status,
    /// `msgType`.
    pub msg_type: MsgType,
    /// `scope`.
    pub scope: Scope,
    /// `references` (for `Update` and `Cancel`).
    pub references: Vec<Reference>,
    /// The `info` blocks, in document order.
    pub infos: Vec<Info>,
    /// Every area of every `info`, united (empty when only unmapped geocodes).
    pub area: Area,
}

impl CapAlert {
    /// The most severe `info`'s severity (`Unknown` without `info`).
    pub fn severity(&self) -> Severity {
        self.infos
            .iter()
            .map(|info| info.severity)
            .min()
            .unwrap_or(Severity::Unknown)
    }

    /// The latest `expires` of its `info` blocks.
    pub fn expires(&self) -> Option<DateTime<chrono::Utc>> {
        self.infos.iter().filter_map(|info| info.expires).max()
    }
}
