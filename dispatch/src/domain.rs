//! Dispatch's validated values and state names: alert kinds and statuses, offer and assignment
//! statuses, the idempotency key, a checked WGS84 position, and per-kind wave settings.
//!
//! Each is parsed once at the edge; past that, holding one means it follows the rules.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use kreki_platform::FieldError;

use crate::geo::LatLng;

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
            Self::Dispatching | Self::Assigned | Self::OnScene | Self::Unmatched
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

/// The `Idempotency-Key` header of `POST /v1/alerts`: 1 to 255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The header name, as the problem field.
    pub const HEADER: &'static str = "Idempotency-Key";

    /// Checks the header value.
    ///
    /// # Errors
    /// Why the value is not usable.
    pub fn parse(value: &str) -> Result<Self, &'static str> {
        let value = value.trim();
        if value.is_empty() || value.len() > 255 {
            return Err("must be 1 to 255 characters");
        }
        if !value.bytes().all(|byte| byte.is_ascii_graphic()) {
            return Err("must be visible ASCII characters (a UUID is a good key)");
        }
        Ok(Self(value.to_owned()))
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Checks a position from a request, naming the fields under `prefix` (such as `location.`), both
/// at once when both are wrong. The result is the one position type of dispatch, [`LatLng`].
///
/// # Errors
/// One field error per coordinate that is not a finite number in range.
pub fn parse_position(lat: f64, lng: f64, prefix: &str) -> Result<LatLng, Vec<FieldError>> {
    let mut errors = Vec::new();
    if LatLng::new(lat, 0.0).is_err() {
        errors.push(FieldError::new(
            format!("{prefix}lat"),
            "must be a latitude from -90 to 90 degrees",
        ));
    }
    if LatLng::new(0.0, lng).is_err() {
        errors.push(FieldError::new(
            format!("{prefix}lng"),
            "must be a longitude from -180 to 180 degrees",
        ));
    }
    match LatLng::new(lat, lng) {
        Ok(at) if errors.is_empty() => Ok(at),
        _ => Err(errors),
    }
}

/// The H3 cell of `at` at resolution 9 (about 0.1 km^2, the matcher's default), as PostgreSQL
/// stores it beside the point (`bigint`).
pub fn h3_cell(at: LatLng) -> i64 {
    let cell = u64::from(at.to_cell(h3o::Resolution::Nine));
    // H3 indexes use 63 bits, so this never saturates.
    i64::try_from(cell).unwrap_or(i64::MAX)
}

/// Checks an optional accuracy in metres.
///
/// # Errors
/// A field error naming `field` when negative, not finite or over 100 km.
pub fn parse_accuracy(value: Option<f64>, field: &str) -> Result<Option<f32>, FieldError> {
    match value {
        None => Ok(None),
        Some(metres) if metres.is_finite() && (0.0..=100_000.0).contains(&metres) =>
        {
            #[expect(clippy::cast_possible_truncation, reason = "checked to be at most 1e5")]
            Ok(Some(metres as f32))
        }
        Some(_) => Err(FieldError::new(field, "must be 0 to 100000 metres")),
    }
}

/// One wave of offers: the nearest `count` eligible volunteers within `radius_m` (not offered this
/// alert before) get `timeout_s` to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WaveSpec {
    /// How many volunteers get the offer (1 to 100).
    pub count: u32,
    /// Search radius around the alert, in metres (10 to 50000).
    pub radius_m: u32,
    /// How long they have to answer before the next wave, in seconds (5 to 600).
    pub timeout_s: u32,
}

/// How one alert kind is dispatched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KindSettings {
    /// Certification codes a volunteer must hold (all of them), e.g. `bls`.
    pub required_certifications: Vec<String>,
    /// Only volunteers verified as health practitioners (SATUSEHAT) get offers.
    #[serde(default)]
    pub requires_verified_practitioner: bool,
    /// How many volunteers the alert needs (1 to 50); further accepts get 409 `alert-covered`.
    pub responders_needed: u32,
    /// The waves, in order; after the last one the alert is `unmatched`.
    pub waves: Vec<WaveSpec>,
}

impl KindSettings {
    /// Range checks; each error names its field under `prefix` (such as `dispatch.kinds.fire.`).
    pub fn validate(&self, prefix: &str) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if !(1..=50).contains(&self.responders_needed) {
            errors.push(FieldError::new(
                format!("{prefix}responders_needed"),
                "must be 1 to 50",
            ));
        }
        if self.waves.is_empty() || self.waves.len() > 10 {
            errors.push(FieldError::new(
                format!("{prefix}waves"),
                "must list 1 to 10 waves",
            ));
        }
        for (index, wave) in self.waves.iter().enumerate() {
            if !(1..=100).contains(&wave.count) {
                errors.push(FieldError::new(
                    format!("{prefix}waves[{index}].count"),
                    "must be 1 to 100",
                ));
            }
            if !(10..=50_000).contains(&wave.radius_m) {
                errors.push(FieldError::new(
                    format!("{prefix}waves[{index}].radius_m"),
                    "must be 10 to 50000 metres",
                ));
            }
            if !(5..=600).contains(&wave.timeout_s) {
                errors.push(FieldError::new(
                    format!("{prefix}waves[{index}].timeout_s"),
                    "must be 5 to 600 seconds",
                ));
            }
        }
        for (index, code) in self.required_certifications.iter().enumerate() {
            let ok = !code.is_empty()
                && code.len() <= 64
                && code
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !ok {
                errors.push(FieldError::new(
                    format!("{prefix}required_certifications[{index}]"),
                    "must be a certification code such as bls or first_aid",
                ));
            }
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        for kind in AlertKind::ALL {
            assert_eq!(AlertKind::parse(kind.as_str()), Some(*kind));
        }
        assert_eq!(AlertKind::parse("flood"), None);
    }

    #[test]
    fn points_out_of_range_name_the_field() {
        let errors = parse_position(91.0, 200.0, "location.").expect_err("out of range");
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["location.lat", "location.lng"]);
        assert!(parse_position(f64::NAN, 0.0, "").is_err());
        assert!(parse_position(-6.2, 106.8, "").is_ok());
    }

    #[test]
    fn h3_cells_differ_between_far_points() {
        let a = h3_cell(parse_position(-6.2, 106.8, "").expect("valid"));
        let b = h3_cell(parse_position(-6.3, 106.9, "").expect("valid"));
        assert!(a > 0 && b > 0 && a != b);
    }

    #[test]
    fn idempotency_keys_are_checked() {
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse("a b").is_err());
        assert!(IdempotencyKey::parse(&"x".repeat(256)).is_err());
        assert_eq!(
            IdempotencyKey::parse(" k-1 ").expect("valid").as_str(),
            "k-1"
        );
    }

    #[test]
    fn wave_settings_are_range_checked() {
        let settings = KindSettings {
            required_certifications: vec!["BLS!".into()],
            requires_verified_practitioner: false,
            responders_needed: 0,
            waves: vec![WaveSpec {
                count: 0,
                radius_m: 5,
                timeout_s: 1,
            }],
        };
        let fields: Vec<String> = settings.validate("").into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "responders_needed",
                "waves[0].count",
                "waves[0].radius_m",
                "waves[0].timeout_s",
                "required_certifications[0]"
            ]
        );
    }
}
