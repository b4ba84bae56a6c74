//! Dispatch's validated values: typed ids, state names (alert kinds and statuses, offer and
//! assignment statuses), the idempotency key, checked positions, and per-kind wave settings.
//!
//! Each is parsed once at the edge; past that, holding one means it follows the rules.
//!
//! - [`ids`]: [`AlertId`], [`OfferId`], [`AssignmentId`], [`AedId`], [`CheckinId`], [`RegionId`],
//!   [`EscalationId`].
//! - [`states`]: [`AlertKind`], [`AlertStatus`], [`OfferStatus`], [`AssignmentStatus`],
//!   [`WithdrawReason`], [`ResponderRole`], [`Outcome`], mapped once to their wire and database
//!   spelling.
//! - [`idempotency`]: the [`IdempotencyKey`] of a panic.
//! - [`position`]: [`Position`], [`parse_position`], [`parse_accuracy`], [`h3_cell`].
//! - [`kinds`]: [`KindSettings`], [`WaveSpec`] and the [`OfferPolicy`] within the waves.
//! - [`aeds`]: the AED registry's checked input and [`aeds::available_at`], whether a device may be
//!   used at an instant (its hours judged in Asia/Jakarta).
//! - [`regions`]: regions' areas (GeoJSON checked once), which region an alert belongs to, and
//!   each region's triage policy.
//! - [`checkins`]: a volunteer's answer to an aftercare check-in and when it asks for support.

pub mod aeds;
pub mod checkins;
pub mod idempotency;
pub mod ids;
pub mod kinds;
pub mod position;
pub mod regions;
pub mod states;

pub use idempotency::IdempotencyKey;
pub use ids::{AedId, AlertId, AssignmentId, CheckinId, EscalationId, OfferId, RegionId};
pub use kinds::{KindSettings, OfferPolicy, WaveSpec};
pub use position::{Position, h3_cell, parse_accuracy, parse_position};
pub use states::{
    AlertKind, AlertStatus, AssignmentStatus, EscalationReason, OfferStatus, Outcome,
    ResponderRole, WithdrawReason,
};

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
            policy: OfferPolicy::default(),
            roles: Vec::new(),
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
