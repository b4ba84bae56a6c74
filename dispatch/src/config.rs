//! `[dispatch]` configuration: the per-kind defaults that seed `dispatch.kind_settings`, position
//! freshness, rest period, and the sizes of the background queues.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::domain::{AlertKind, KindSettings, OfferPolicy, ResponderRole, WaveSpec};

/// `[dispatch]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DispatchConfig {
    /// Per-kind settings used to seed the database where a kind has none yet
    /// (`[dispatch.kinds.fire]`); a kind not named here gets the built-in default. After the first
    /// start, admins change them with `PUT /v1/dispatch/kinds/{kind}`.
    pub kinds: BTreeMap<AlertKind, KindSettings>,
    /// A position older than this takes a volunteer out of matching, in seconds.
    pub position_max_age_s: u64,
    /// After completing an assignment, a volunteer gets no offers for this long, in seconds.
    pub rest_period_s: u64,
    /// A second press by the same citizen, same kind, within this distance of an open alert attaches
    /// to it, in metres.
    pub repeat_press_radius_m: f64,
    /// How often the safety-net poller claims unprocessed outbox rows and due timers, in ms.
    pub poll_interval_ms: u64,
    /// Capacity of the location-history queue; positions beyond it are dropped and counted.
    pub location_history_queue: usize,
    /// Most positions written per batch insert.
    pub location_history_batch: usize,
    /// How often the write-behind flusher writes the latest positions of located on-duty
    /// volunteers to PostgreSQL, in ms ([`crate::positions`]). Other instances see a position at
    /// most this much (plus their catch-up bound) later than the instance that took it.
    pub position_flush_interval_ms: u64,
    /// Most volunteers whose positions wait to be written; beyond it a new volunteer's position
    /// waits for room (backpressure), then fails with 503.
    pub position_pending_max: usize,
    /// How long after an assignment ends (completed, withdrawn, its alert cancelled or resolved)
    /// its volunteer gets an aftercare check-in, in seconds (default 90 minutes).
    pub checkin_after_s: u64,
    /// An `aed` responder is routed via an available AED within this distance of the alert, in
    /// metres.
    pub aed_radius_m: u32,
    /// A panic in triage that no coordinator releases or closes goes to volunteers by itself after
    /// this many seconds, so triage never leaves a real emergency waiting.
    pub triage_auto_release_s: u32,
    /// Panics one account may raise per minute; the next one is 429 with `Retry-After`, and
    /// coordinators are told.
    pub panics_per_minute: u32,
    /// Panics one network address may raise per minute (0, the default: no address limit; behind
    /// an ingress every request comes from the proxy, so set it only where clients connect
    /// directly).
    pub panics_per_minute_per_address: u32,
    /// A responder still `accepted` without a new position this many seconds after accepting
    /// raises a `responder_stalled` escalation.
    pub responder_stalled_s: u32,
    /// An alert open longer than this raises an `open_too_long` escalation, in seconds.
    pub open_too_long_s: u32,
    /// How often each instance looks for stalled responders and alerts open too long, in seconds.
    pub escalation_sweep_s: u32,
    /// `[dispatch.retention]`: how long positions, drills and exact alert positions are kept.
    pub retention: crate::retention::RetentionConfig,
    /// Volunteers must have verified their phone (trust `verified` or `trusted` in their access
    /// token) to go on duty, so an offer can always reach them by text.
    pub require_verified_phone: bool,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        Self {
            kinds: BTreeMap::new(),
            position_max_age_s: 600,
            rest_period_s: 300,
            repeat_press_radius_m: 500.0,
            poll_interval_ms: 1000,
            location_history_queue: 10_000,
            location_history_batch: 500,
            position_flush_interval_ms: 200,
            position_pending_max: 100_000,
            checkin_after_s: 5400,
            aed_radius_m: 1000,
            triage_auto_release_s: 60,
            panics_per_minute: 10,
            panics_per_minute_per_address: 0,
            responder_stalled_s: 300,
            open_too_long_s: 3600,
            escalation_sweep_s: 15,
            retention: crate::retention::RetentionConfig::default(),
            require_verified_phone: false,
        }
    }
}

/// The default waves: nearest 3 within 1 km, then 5 more within 2 km, then 10 more within 5 km,
/// 30 s each.
pub fn default_waves() -> Vec<WaveSpec> {
    vec![
        WaveSpec {
            count: 3,
            radius_m: 1000,
            timeout_s: 30,
        },
        WaveSpec {
            count: 5,
            radius_m: 2000,
            timeout_s: 30,
        },
        WaveSpec {
            count: 10,
            radius_m: 5000,
            timeout_s: 30,
        },
    ]
}

/// The built-in settings of `kind` (docs/API.md: `cardiac_arrest` needs `bls`; `medical` and
/// `accident` need `first_aid`; `fire` needs `fire_basic`; the rest nothing). A cardiac arrest
/// follows what the studies of volunteer responders found ([`cardiac_arrest_settings`]); the
/// other kinds keep the plain waves.
pub fn default_kind_settings(kind: AlertKind) -> KindSettings {
    let required = match kind {
        AlertKind::CardiacArrest => return cardiac_arrest_settings(),
        AlertKind::Medical | AlertKind::Accident => vec!["first_aid".to_owned()],
        AlertKind::Fire => vec!["fire_basic".to_owned()],
        AlertKind::Disaster | AlertKind::Security | AlertKind::Other => Vec::new(),
    };
    KindSettings {
        required_certifications: required,
        requires_verified_practitioner: false,
        responders_needed: 1,
        waves: default_waves(),
        policy: OfferPolicy::default(),
        roles: Vec::new(),
    }
}

/// A cardiac arrest: every minute without CPR costs about a tenth of the chance to survive.
/// Seven offers live at once and each decliner or non-responder replaced at once (GoodSAM New
/// Zealand: more lives, no more volunteers disturbed), within 500 m, then 1 km, then 2 km; three
/// responders with roles (FirstAED Denmark: CPR, fetch the AED, lead), at most 30 volunteers
/// disturbed.
pub fn cardiac_arrest_settings() -> KindSettings {
    KindSettings {
        required_certifications: vec!["bls".to_owned()],
        requires_verified_practitioner: false,
        responders_needed: 3,
        waves: [500, 1000, 2000]
            .into_iter()
            .map(|radius_m| WaveSpec {
                count: 7,
                radius_m,
                timeout_s: 30,
            })
            .collect(),
        policy: OfferPolicy {
            live_offers: 7,
            replace_on_decline: true,
            replace_on_expiry: true,
            max_alerted: 30,
        },
        roles: vec![ResponderRole::Cpr, ResponderRole::Aed, ResponderRole::Lead],
    }
}

impl DispatchConfig {
    /// The settings that seed `kind`: the configured ones, else the built-in default.
    pub fn kind_settings(&self, kind: AlertKind) -> KindSettings {
        self.kinds
            .get(&kind)
            .cloned()
            .unwrap_or_else(|| default_kind_settings(kind))
    }

    /// Range checks; each problem names its key under `dispatch.`.
    pub fn validate(&self) -> Vec<String> {
        let mut problems: Vec<String> = self
            .retention
            .problems()
            .into_iter()
            .map(|(key, why)| format!("{key}: {why}"))
            .collect();
        for (kind, settings) in &self.kinds {
            problems.extend(
                settings
                    .validate(&format!("dispatch.kinds.{kind}."))
                    .into_iter()
                    .map(|error| format!("{}: {}", error.field, error.message)),
            );
        }
        if !(10..=86_400).contains(&self.position_max_age_s) {
            problems.push("dispatch.position_max_age_s: must be 10 to 86400 seconds".to_owned());
        }
        if self.rest_period_s > 86_400 {
            problems.push("dispatch.rest_period_s: must be at most 86400 seconds".to_owned());
        }
        if !self.repeat_press_radius_m.is_finite()
            || !(0.0..=10_000.0).contains(&self.repeat_press_radius_m)
        {
            problems.push("dispatch.repeat_press_radius_m: must be 0 to 10000 metres".to_owned());
        }
        if !(50..=60_000).contains(&self.poll_interval_ms) {
            problems.push("dispatch.poll_interval_ms: must be 50 to 60000 ms".to_owned());
        }
        if !(1..=1_000_000).contains(&self.location_history_queue) {
            problems.push("dispatch.location_history_queue: must be 1 to 1000000".to_owned());
        }
        if !(1..=10_000).contains(&self.location_history_batch) {
            problems.push("dispatch.location_history_batch: must be 1 to 10000".to_owned());
        }
        if !(10..=10_000).contains(&self.position_flush_interval_ms) {
            problems.push("dispatch.position_flush_interval_ms: must be 10 to 10000 ms".to_owned());
        }
        if !(1..=10_000_000).contains(&self.position_pending_max) {
            problems.push("dispatch.position_pending_max: must be 1 to 10000000".to_owned());
        }
        if self.checkin_after_s > 7 * 86_400 {
            problems.push("dispatch.checkin_after_s: must be at most 604800 seconds".to_owned());
        }
        if !(50..=10_000).contains(&self.aed_radius_m) {
            problems.push("dispatch.aed_radius_m: must be 50 to 10000 metres".to_owned());
        }
        if !(1..=3600).contains(&self.triage_auto_release_s) {
            problems.push("dispatch.triage_auto_release_s: must be 1 to 3600 seconds".to_owned());
        }
        if !(1..=10_000).contains(&self.panics_per_minute) {
            problems.push("dispatch.panics_per_minute: must be 1 to 10000".to_owned());
        }
        if !(10..=86_400).contains(&self.responder_stalled_s) {
            problems.push("dispatch.responder_stalled_s: must be 10 to 86400 seconds".to_owned());
        }
        if !(60..=604_800).contains(&self.open_too_long_s) {
            problems.push("dispatch.open_too_long_s: must be 60 to 604800 seconds".to_owned());
        }
        if !(1..=3600).contains(&self.escalation_sweep_s) {
            problems.push("dispatch.escalation_sweep_s: must be 1 to 3600 seconds".to_owned());
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_follow_the_contract() {
        let config = DispatchConfig::default();
        assert!(config.validate().is_empty());
        assert_eq!(config.checkin_after_s, 90 * 60);
        assert_eq!(
            config
                .kind_settings(AlertKind::CardiacArrest)
                .required_certifications,
            ["bls"]
        );
        assert!(
            config
                .kind_settings(AlertKind::Security)
                .required_certifications
                .is_empty()
        );
        assert_eq!(config.kind_settings(AlertKind::Fire).waves.len(), 3);
    }

    #[test]
    fn bad_values_name_their_key() {
        let mut config = DispatchConfig {
            poll_interval_ms: 0,
            checkin_after_s: 8 * 86_400,
            aed_radius_m: 10,
            ..DispatchConfig::default()
        };
        let mut fire = default_kind_settings(AlertKind::Fire);
        fire.responders_needed = 0;
        config.kinds.insert(AlertKind::Fire, fire);
        let problems = config.validate().join("\n");
        assert!(problems.contains("dispatch.poll_interval_ms"), "{problems}");
        assert!(problems.contains("dispatch.checkin_after_s"), "{problems}");
        assert!(problems.contains("dispatch.aed_radius_m"), "{problems}");
        assert!(
            problems.contains("dispatch.kinds.fire.responders_needed"),
            "{problems}"
        );
    }
}
