//! Typed ids of dispatch's records. Each wraps a UUID (v7, so ids sort by creation time), reads
//! and writes as a plain UUID in JSON and PostgreSQL, and cannot be mixed up with another kind of
//! id. Volunteers and citizens are KREKI ID accounts and keep their account id (`Uuid`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
            sqlx::Type, ToSchema,
        )]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new id (UUID v7: time-ordered).
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }
    };
}

id_type! {
    /// An alert: one emergency, from the panic press to its resolution.
    AlertId
}

id_type! {
    /// An offer: one volunteer asked to take one alert.
    OfferId
}

id_type! {
    /// An assignment: one volunteer committed to one alert.
    AssignmentId
}

id_type! {
    /// An AED (automated external defibrillator) in the registry.
    AedId
}

id_type! {
    /// A check-in: how a volunteer is, asked some time after their assignment ended.
    CheckinId
}

id_type! {
    /// A region: an area (usually a kabupaten/kota) and the coordinators who answer for it.
    RegionId
}

id_type! {
    /// An escalation: something a region's coordinators must acknowledge.
    EscalationId
}
