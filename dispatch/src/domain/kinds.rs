//! How each alert kind is dispatched: its waves of offers and who qualifies, as admins set them
//! (`PUT /v1/dispatch/kinds/{kind}`) and configuration seeds them.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use kreki_platform::FieldError;

use super::ResponderRole;

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

/// How offers go out within the waves: how many may be pending at once, whether a volunteer who
/// declines (or lets an offer expire) is replaced at once by the next nearest one within the
/// current wave's radius, and how many volunteers one alert may disturb in all. Replacing each
/// decliner at once finds a responder sooner without disturbing more people (GoodSAM New Zealand,
/// PLOS One 2026); without replacement a wave's offers all wait for its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct OfferPolicy {
    /// Most offers pending at once (1 to 100). A wave starts with at most this many.
    pub live_offers: u32,
    /// A decline (or a volunteer taking another alert) offers the next nearest eligible volunteer
    /// within the current wave's radius at once.
    pub replace_on_decline: bool,
    /// Each offer has its own deadline (`timeout_s` of its wave after it was made); one that
    /// expires is replaced the same way, and the wave widens at its own deadline without
    /// withdrawing offers still live.
    pub replace_on_expiry: bool,
    /// Most volunteers ever offered one alert (1 to 500).
    pub max_alerted: u32,
}

impl Default for OfferPolicy {
    /// Waves as they always were: each offers its `count`, and all wait for its deadline.
    fn default() -> Self {
        Self {
            live_offers: 100,
            replace_on_decline: false,
            replace_on_expiry: false,
            max_alerted: 500,
        }
    }
}

impl OfferPolicy {
    /// True when some offer is replaced as soon as it is answered or lapses.
    pub fn replaces(&self) -> bool {
        self.replace_on_decline || self.replace_on_expiry
    }
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
    /// How offers go out within the waves (default: as waves always did).
    #[serde(default)]
    pub policy: OfferPolicy,
    /// Roles given to accepts in this order (`cpr`, `aed`, `lead`); empty for none. At most
    /// `responders_needed` of them, each once.
    #[serde(default)]
    pub roles: Vec<ResponderRole>,
}

impl KindSettings {
    /// These settings with one more wave per radius a coordinator added to an alert, after the
    /// kind's own: each asks as many as the last wave, waits as long, within its radius.
    pub fn with_extra_radii(mut self, radii_m: &[u32]) -> Self {
        let Some(last) = self.waves.last().copied() else {
            return self;
        };
        self.waves.extend(
            radii_m
                .iter()
                .map(|&radius_m| WaveSpec { radius_m, ..last }),
        );
        self
    }

    /// The widest radius its waves reach, metres.
    pub fn widest_radius_m(&self) -> u32 {
        self.waves
            .iter()
            .map(|wave| wave.radius_m)
            .max()
            .unwrap_or(0)
    }

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
        if !(1..=100).contains(&self.policy.live_offers) {
            errors.push(FieldError::new(
                format!("{prefix}policy.live_offers"),
                "must be 1 to 100",
            ));
        }
        if !(1..=500).contains(&self.policy.max_alerted) {
            errors.push(FieldError::new(
                format!("{prefix}policy.max_alerted"),
                "must be 1 to 500",
            ));
        }
        if self.roles.len() > self.responders_needed as usize {
            errors.push(FieldError::new(
                format!("{prefix}roles"),
                "must list at most responders_needed roles",
            ));
        }
        for (index, role) in self.roles.iter().enumerate() {
            if self.roles[..index].contains(role) {
                errors.push(FieldError::new(
                    format!("{prefix}roles[{index}]"),
                    "must not repeat a role",
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
    fn extra_radii_add_waves_like_the_last_one() {
        let settings = crate::config::default_kind_settings(crate::domain::AlertKind::Fire)
            .with_extra_radii(&[8000, 12_000]);
        assert_eq!(settings.waves.len(), 5);
        assert_eq!(
            settings.waves[3],
            WaveSpec {
                count: 10,
                radius_m: 8000,
                timeout_s: 30
            }
        );
        assert_eq!(settings.widest_radius_m(), 12_000);
    }
}
