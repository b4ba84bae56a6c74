//! Dispatch's state names: alert kinds and statuses, offer and assignment statuses, and why an
//! offer was withdrawn. Each is an enum from the HTTP edge to the database: PostgreSQL stores the
//! wire spelling as checked `text`, and the mapping between the two is written once, here (the
//! [`string_enum!`] macro implements serde, OpenAPI and sqlx for each).

use serde::{Deserialize, Serialize};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgHasArrayType, PgTypeInfo, PgValueRef};
use sqlx::{Decode, Encode, Postgres, Type};
use utoipa::ToSchema;

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire and database spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// Parses the wire spelling; `None` for anything else.
            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl Type<Postgres> for $name {
            fn type_info() -> PgTypeInfo {
                <&str as Type<Postgres>>::type_info()
            }

            fn compatible(ty: &PgTypeInfo) -> bool {
                <&str as Type<Postgres>>::compatible(ty)
            }
        }

        impl PgHasArrayType for $name {
            fn array_type_info() -> PgTypeInfo {
                <&str as PgHasArrayType>::array_type_info()
            }
        }

        impl Encode<'_, Postgres> for $name {
            fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
                <&str as Encode<Postgres>>::encode(self.as_str(), buf)
            }
        }

        /// A spelling the database holds that this build does not know is a decode error (the
        /// columns have CHECK constraints, so it means a newer schema than the code).
        impl<'r> Decode<'r, Postgres> for $name {
            fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
                let text = <&str as Decode<Postgres>>::decode(value)?;
                Self::parse(text).ok_or_else(|| {
                    format!("unknown {} {text:?} stored", stringify!($name)).into()
                })
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum! {
    /// What happened: decides which certifications a responder needs and how offers go out.
    AlertKind {
        /// A medical emergency.
        Medical = "medical",
        /// Someone collapsed, not breathing: needs CPR (`bls`) at once.
        CardiacArrest = "cardiac_arrest",
        /// A traffic or other accident.
        Accident = "accident",
        /// A fire.
        Fire = "fire",
        /// Flood, earthquake, landslide.
        Disaster = "disaster",
        /// A threat to someone's safety.
        Security = "security",
        /// Anything else.
        Other = "other",
    }
}

string_enum! {
    /// Where an alert is in its life.
    AlertStatus {
        /// Waiting for a coordinator of its region to release it to volunteers (or close it as
        /// false); released by itself when nobody touches it in time.
        Triage = "triage",
        /// Offers are going out; not enough responders yet.
        Dispatching = "dispatching",
        /// At least one volunteer accepted.
        Assigned = "assigned",
        /// A volunteer reported arriving.
        OnScene = "on_scene",
        /// Done: every active assignment completed.
        Resolved = "resolved",
        /// Cancelled by its citizen or a coordinator.
        Cancelled = "cancelled",
        /// Every wave went out and nobody accepted; coordinators were alerted.
        Unmatched = "unmatched",
    }
}

impl AlertStatus {
    /// True while the alert still needs or has people working on it.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            Self::Triage | Self::Dispatching | Self::Assigned | Self::OnScene | Self::Unmatched
        )
    }
}

string_enum! {
    /// Where an offer is.
    OfferStatus {
        /// Waiting for the volunteer's answer until `expires_at`.
        Pending = "pending",
        /// The volunteer accepted: an assignment exists.
        Accepted = "accepted",
        /// The volunteer said no.
        Declined = "declined",
        /// Nobody answered before `expires_at`.
        Expired = "expired",
        /// The alert was covered or cancelled before the volunteer answered.
        Withdrawn = "withdrawn",
    }
}

string_enum! {
    /// Where an assignment is.
    AssignmentStatus {
        /// Accepted, not moving yet.
        Accepted = "accepted",
        /// On the way.
        EnRoute = "en_route",
        /// Arrived.
        OnScene = "on_scene",
        /// Finished; the volunteer is free again after the rest period.
        Completed = "completed",
        /// The volunteer (or a cancellation) ended it before completion.
        Withdrawn = "withdrawn",
    }
}

impl AssignmentStatus {
    /// True while the volunteer is busy with it.
    pub fn is_active(self) -> bool {
        matches!(self, Self::Accepted | Self::EnRoute | Self::OnScene)
    }
}

string_enum! {
    /// Why a pending offer was taken back (`offer.withdrawn`'s `reason`).
    WithdrawReason {
        /// Its wave's deadline passed and the next wave went out.
        Expired = "expired",
        /// The alert has all the responders it needs.
        Covered = "covered",
        /// The alert was cancelled.
        Cancelled = "cancelled",
        /// The volunteer took another alert.
        Busy = "busy",
        /// A coordinator resolved the alert.
        Resolved = "resolved",
    }
}

string_enum! {
    /// How an incident ended, as the coordinator who resolved it recorded it (the volunteers who
    /// responded see it on the alert).
    Outcome {
        /// Help given on the spot; nobody needed to go to hospital.
        TreatedOnScene = "treated_on_scene",
        /// The patient was taken to hospital.
        ToHospital = "to_hospital",
        /// There was no emergency.
        FalseAlarm = "false_alarm",
        /// Nobody was found at the place.
        NotFound = "not_found",
        /// Anything else (the note says what).
        Other = "other",
    }
}

string_enum! {
    /// What a responder does on scene, given to accepts in the order the kind lists them
    /// (FirstAED: the first starts CPR, the second fetches the nearest AED, the third leads).
    ResponderRole {
        /// Starts chest compressions at once.
        Cpr = "cpr",
        /// Fetches the nearest available AED on the way.
        Aed = "aed",
        /// Leads on scene: calls, guides the others, meets the ambulance.
        Lead = "lead",
    }
}

string_enum! {
    /// Why an escalation was raised: each is an alarm on the region's dashboards until a
    /// coordinator acknowledges it.
    EscalationReason {
        /// Every wave went out and nobody accepted.
        Unmatched = "unmatched",
        /// An untrusted account's panic waits in triage for a coordinator.
        TriageWaiting = "triage_waiting",
        /// A responder accepted but has not moved for too long.
        ResponderStalled = "responder_stalled",
        /// The alert has been open longer than its kind allows.
        OpenTooLong = "open_too_long",
        /// A `Severe` or `Extreme` CAP warning (BMKG) covers the region (no alert: `warning_id`).
        SevereWarning = "severe_warning",
    }
}
