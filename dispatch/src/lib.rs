//! KREKI dispatch: from a citizen's panic to the nearest eligible volunteers.
//!
//! - [`geo`]: validated positions ([`LatLng`]) and distances in metres.
//! - [`matcher`]: the in-memory H3 index of volunteers that answers "the nearest N eligible within
//!   R metres" in microseconds.

pub mod geo;
pub mod matcher;

pub use geo::{GeoError, LatLng};
pub use matcher::{Candidate, CertSet, MatchQuery, Matcher, MatcherConfig, VolunteerState};
