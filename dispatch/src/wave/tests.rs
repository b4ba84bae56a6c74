//! The wave policy without a database: a table of today's behaviour, case by case, and properties
//! that hold for any snapshot.

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use uuid::Uuid;

use super::*;
use crate::domain::{AlertId, AlertStatus, KindSettings, OfferId, WaveSpec};
use crate::matcher::Candidate;
use crate::timeline::Event;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 5, 10, 0, 0)
        .single()
        .expect("a valid instant")
}

fn volunteer(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn settings(waves: &[(u32, u32, u32)]) -> KindSettings {
    KindSettings {
        required_certifications: Vec::new(),
        requires_verified_practitioner: false,
        responders_needed: 1,
        waves: waves
            .iter()
            .map(|&(count, radius_m, timeout_s)| WaveSpec {
                count,
                radius_m,
                timeout_s,
            })
            .collect(),
    }
}

/// Today's defaults: 3 within 1 km, 5 within 2 km, 10 within 5 km, 30 s each.
fn default_waves() -> KindSettings {
    settings(&[(3, 1000, 30), (5, 2000, 30), (10, 5000, 30)])
}

fn alert_at(status: AlertStatus, wave: u32) -> Snapshot {
    let mut snapshot = Snapshot::new_alert(AlertId::new(), 1, default_waves());
    snapshot.alert.status = status;
    snapshot.alert.wave = wave;
    snapshot
}

/// Volunteers `n` metres away, for each `n` given (ids 1, 2, 3, ... in that order).
fn at(distances_m: &[f64]) -> Vec<Candidate> {
    distances_m
        .iter()
        .zip(1..)
        .map(|(&distance_m, n)| Candidate {
            id: volunteer(n),
            distance_m,
        })
        .collect()
}

fn pending(n: u128, wave: u32, expires_in_s: i64) -> PendingOffer {
    PendingOffer {
        id: OfferId(Uuid::from_u128(1000 + n)),
        volunteer: volunteer(n),
        wave,
        expires_at: now() + Duration::seconds(expires_in_s),
    }
}

fn run(snapshot: &Snapshot, trigger: Trigger, candidates: Vec<Candidate>) -> Plan {
    plan(snapshot, trigger, now(), |_| candidates)
}

fn written(plan: Plan) -> Changes {
    match plan {
        Plan::Write(changes) => changes,
        Plan::Nothing(skip) => panic!("expected changes, got nothing: {skip:?}"),
    }
}

fn offered(changes: &Changes) -> Vec<Uuid> {
    changes.offers.iter().map(|offer| offer.volunteer).collect()
}

/// A matcher that must not be asked.
fn no_matcher(_: CandidateQuery) -> Vec<Candidate> {
    panic!("the matcher was asked although no wave can go out")
}

#[test]
fn a_new_alert_offers_the_three_nearest_within_the_first_radius() {
    let snapshot = alert_at(AlertStatus::Dispatching, 0);
    let changes = written(run(
        &snapshot,
        Trigger::NeedsWave,
        at(&[400.0, 100.0, 300.0, 200.0, 1500.0]),
    ));
    assert_eq!(
        offered(&changes),
        [volunteer(2), volunteer(4), volunteer(3)]
    );
    let expires_at = now() + Duration::seconds(30);
    assert!(
        changes
            .offers
            .iter()
            .all(|offer| offer.wave == 1 && offer.expires_at == expires_at)
    );
    assert_eq!(changes.wave, 1);
    assert_eq!(changes.status, None);
    assert_eq!(
        changes.timer,
        Some(WaveDeadline {
            wave: 1,
            due_at: expires_at
        })
    );
    assert_eq!(
        changes.events,
        [Event::OffersSent {
            wave: 1,
            radius_m: 1000,
            volunteers: vec![volunteer(2), volunteer(4), volunteer(3)],
            expires_at,
        }]
    );
    assert!(changes.expire.is_empty());
}

#[test]
fn the_matcher_is_asked_once_for_the_widest_radius_and_largest_count_left() {
    let snapshot = alert_at(AlertStatus::Dispatching, 1);
    let mut asked = Vec::new();
    let plan = plan(&snapshot, Trigger::Deadline { wave: 1 }, now(), |query| {
        asked.push(query);
        at(&[1500.0])
    });
    assert!(matches!(plan, Plan::Write(_)));
    assert_eq!(
        asked,
        [CandidateQuery {
            radius_m: 5000,
            count: 10
        }]
    );
    assert_eq!(
        alert_at(AlertStatus::Dispatching, 3).candidate_query(),
        None
    );
}

#[test]
fn nothing_happens_to_an_alert_that_is_no_longer_dispatching() {
    for status in [
        AlertStatus::Cancelled,
        AlertStatus::Resolved,
        AlertStatus::Unmatched,
    ] {
        let snapshot = alert_at(status, 1);
        for trigger in [Trigger::NeedsWave, Trigger::Deadline { wave: 1 }] {
            assert_eq!(
                plan(&snapshot, trigger, now(), no_matcher),
                Plan::Nothing(Skip::NotDispatching(status))
            );
        }
    }
}

#[test]
fn waves_continue_while_assigned_or_on_scene_and_short_of_responders() {
    for status in [AlertStatus::Assigned, AlertStatus::OnScene] {
        let mut snapshot = alert_at(status, 1);
        snapshot.alert.responders_needed = 2;
        snapshot.active = 1;
        let changes = written(run(&snapshot, Trigger::Deadline { wave: 1 }, at(&[1500.0])));
        assert_eq!(offered(&changes), [volunteer(1)]);
        assert_eq!(changes.wave, 2);
    }
}

#[test]
fn the_timer_of_an_old_wave_does_nothing() {
    let snapshot = alert_at(AlertStatus::Dispatching, 2);
    assert_eq!(
        plan(&snapshot, Trigger::Deadline { wave: 1 }, now(), no_matcher),
        Plan::Nothing(Skip::StaleDeadline {
            deadline: 1,
            current: 2
        })
    );
}

#[test]
fn a_covered_alert_sends_nothing() {
    let mut snapshot = alert_at(AlertStatus::Assigned, 1);
    snapshot.alert.responders_needed = 2;
    snapshot.active = 2;
    assert_eq!(
        plan(&snapshot, Trigger::Deadline { wave: 1 }, now(), no_matcher),
        Plan::Nothing(Skip::Covered)
    );
    assert_eq!(
        plan(&snapshot, Trigger::NeedsWave, now(), no_matcher),
        Plan::Nothing(Skip::Covered)
    );
}

#[test]
fn an_outbox_row_waits_while_an_offer_is_live_but_not_for_expired_ones() {
    let mut live = alert_at(AlertStatus::Dispatching, 1);
    live.pending = vec![pending(1, 1, 10)];
    live.offered = vec![volunteer(1)];
    assert_eq!(
        plan(&live, Trigger::NeedsWave, now(), no_matcher),
        Plan::Nothing(Skip::OfferLive)
    );

    let mut lapsed = live.clone();
    lapsed.pending = vec![pending(1, 1, 0)];
    let changes = written(run(&lapsed, Trigger::NeedsWave, at(&[100.0, 1500.0])));
    assert_eq!(changes.expire, lapsed.pending);
    assert_eq!(
        offered(&changes),
        [volunteer(2)],
        "volunteer 1 was asked before"
    );
    assert_eq!(changes.wave, 2);
}

#[test]
fn a_deadline_expires_the_pending_offers_and_sends_the_next_wider_wave() {
    let mut snapshot = alert_at(AlertStatus::Dispatching, 1);
    snapshot.pending = vec![pending(1, 1, 5), pending(2, 1, 5)];
    snapshot.offered = vec![volunteer(1), volunteer(2), volunteer(3)];
    let changes = written(run(
        &snapshot,
        Trigger::Deadline { wave: 1 },
        at(&[100.0, 200.0, 300.0, 1200.0, 1900.0, 2500.0]),
    ));
    assert_eq!(
        changes.expire, snapshot.pending,
        "deadlines expire live offers"
    );
    assert_eq!(offered(&changes), [volunteer(4), volunteer(5)]);
    assert_eq!(changes.timer.map(|timer| timer.wave), Some(2));
}

#[test]
fn an_empty_wave_is_recorded_and_the_next_wider_one_goes_at_once() {
    let snapshot = alert_at(AlertStatus::Dispatching, 0);
    let changes = written(run(&snapshot, Trigger::NeedsWave, at(&[4000.0, 1500.0])));
    assert_eq!(offered(&changes), [volunteer(2)]);
    assert_eq!(changes.wave, 2);
    assert_eq!(
        changes.events[0],
        Event::WaveEmpty {
            wave: 1,
            radius_m: 1000
        }
    );
    assert!(matches!(
        changes.events[1],
        Event::OffersSent { wave: 2, .. }
    ));
}

#[test]
fn when_waves_run_out_the_alert_is_unmatched_only_if_nobody_is_active() {
    let nobody = alert_at(AlertStatus::Dispatching, 0);
    let changes = written(run(&nobody, Trigger::NeedsWave, Vec::new()));
    assert!(changes.offers.is_empty());
    assert_eq!(changes.wave, 3);
    assert_eq!(changes.status, Some(AlertStatus::Unmatched));
    assert!(changes.unmatched());
    assert_eq!(
        changes.events,
        [
            Event::WaveEmpty {
                wave: 1,
                radius_m: 1000
            },
            Event::WaveEmpty {
                wave: 2,
                radius_m: 2000
            },
            Event::WaveEmpty {
                wave: 3,
                radius_m: 5000
            },
            Event::WavesExhausted { waves: 3 },
            Event::Unmatched,
        ]
    );
    assert_eq!(changes.timer, None);

    let mut someone = alert_at(AlertStatus::Assigned, 3);
    someone.alert.responders_needed = 2;
    someone.active = 1;
    let changes = written(run(&someone, Trigger::Deadline { wave: 3 }, Vec::new()));
    assert_eq!(changes.status, None, "someone is on the way");
    assert_eq!(changes.events, [Event::WavesExhausted { waves: 3 }]);
}

#[test]
fn fewer_waves_after_a_settings_change_exhaust_at_the_current_wave() {
    let mut snapshot = alert_at(AlertStatus::Dispatching, 3);
    snapshot.settings = settings(&[(3, 1000, 30)]);
    let changes = written(run(&snapshot, Trigger::Deadline { wave: 3 }, at(&[10.0])));
    assert!(changes.offers.is_empty());
    assert_eq!(changes.wave, 3);
    assert_eq!(changes.events[0], Event::WavesExhausted { waves: 3 });
}

#[test]
fn nobody_is_asked_twice() {
    let mut snapshot = alert_at(AlertStatus::Dispatching, 1);
    snapshot.offered = vec![volunteer(1), volunteer(2)];
    // A matcher that did not leave them out: the policy does.
    let changes = written(run(
        &snapshot,
        Trigger::Deadline { wave: 1 },
        at(&[100.0, 200.0, 1800.0]),
    ));
    assert_eq!(offered(&changes), [volunteer(3)]);
}

#[test]
fn a_multi_responder_kind_offers_until_it_has_its_responders() {
    let mut snapshot = alert_at(AlertStatus::Dispatching, 0);
    snapshot.alert.responders_needed = 3;
    snapshot.settings = settings(&[(6, 1000, 20)]);
    let changes = written(run(
        &snapshot,
        Trigger::NeedsWave,
        at(&[10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0]),
    ));
    assert_eq!(changes.offers.len(), 6);
    assert_eq!(changes.offers[0].expires_at, now() + Duration::seconds(20));
}

fn statuses() -> impl Strategy<Value = AlertStatus> {
    prop::sample::select(AlertStatus::ALL.to_vec())
}

prop_compose! {
    fn waves()(specs in prop::collection::vec((1u32..6, 10u32..6000, 5u32..120), 1..5)) -> KindSettings {
        settings(&specs)
    }
}

prop_compose! {
    fn snapshots()(
        status in statuses(),
        settings in waves(),
        wave in 0u32..6,
        needed in 1u32..4,
        active in 0u32..4,
        offered in prop::collection::vec(1u128..40, 0..10),
        pending_in in prop::collection::vec(-20i64..20, 0..4),
    ) -> Snapshot {
        let mut snapshot = Snapshot::new_alert(AlertId::new(), needed, settings);
        snapshot.alert.status = status;
        snapshot.alert.wave = wave;
        snapshot.active = active;
        snapshot.offered = offered.iter().map(|n| volunteer(*n)).collect();
        snapshot.offered.sort();
        snapshot.offered.dedup();
        snapshot.pending = snapshot
            .offered
            .iter()
            .zip(&pending_in)
            .map(|(id, secs)| PendingOffer {
                id: OfferId(*id),
                volunteer: *id,
                wave,
                expires_at: now() + Duration::seconds(*secs),
            })
            .collect();
        snapshot
    }
}

prop_compose! {
    fn candidates()(distances in prop::collection::vec(0.0f64..8000.0, 0..40)) -> Vec<Candidate> {
        distances
            .iter()
            .zip(1u128..)
            .map(|(&distance_m, n)| Candidate { id: volunteer(n), distance_m })
            .collect()
    }
}

fn triggers() -> impl Strategy<Value = Trigger> {
    prop_oneof![
        Just(Trigger::NeedsWave),
        (0u32..6).prop_map(|wave| Trigger::Deadline { wave }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn every_plan_follows_the_rules(snapshot in snapshots(), trigger in triggers(), candidates in candidates()) {
        let plan = run(&snapshot, trigger, candidates.clone());
        let alert = &snapshot.alert;
        let dispatching = matches!(alert.status, AlertStatus::Dispatching | AlertStatus::Assigned | AlertStatus::OnScene);
        let stale = matches!(trigger, Trigger::Deadline { wave } if wave != alert.wave);
        let live = trigger == Trigger::NeedsWave && snapshot.pending.iter().any(|offer| offer.expires_at > now());
        let covered = snapshot.active >= alert.responders_needed;
        let Plan::Write(changes) = plan else {
            prop_assert!(!dispatching || stale || live || covered, "skipped without a reason");
            return Ok(());
        };
        prop_assert!(dispatching && !stale && !live && !covered, "wrote although it had to skip");
        // Every pending offer expires.
        prop_assert_eq!(&changes.expire, &snapshot.pending);
        // Nobody is asked twice, nor anyone the matcher did not propose.
        for offer in &changes.offers {
            prop_assert!(!snapshot.offered.contains(&offer.volunteer));
            prop_assert!(candidates.iter().any(|c| c.id == offer.volunteer));
        }
        let mut asked: Vec<Uuid> = changes.offers.iter().map(|offer| offer.volunteer).collect();
        asked.sort();
        asked.dedup();
        prop_assert_eq!(asked.len(), changes.offers.len());
        // The waves skipped were empty, the one sent took the nearest within its radius.
        let fresh: Vec<&Candidate> = candidates.iter().filter(|c| !snapshot.offered.contains(&c.id)).collect();
        let left: Vec<(u32, &WaveSpec)> = snapshot.waves_left().collect();
        for (wave, spec) in &left {
            let within = fresh.iter().filter(|c| c.distance_m <= f64::from(spec.radius_m)).count();
            if *wave < changes.wave || (changes.offers.is_empty() && *wave <= changes.wave) {
                prop_assert_eq!(within, 0, "wave {} was skipped with volunteers in reach", wave);
            }
            if !changes.offers.is_empty() && *wave == changes.wave {
                prop_assert_eq!(changes.offers.len(), within.min(spec.count as usize));
                let farthest = changes.offers.iter().map(|o| o.distance_m).fold(0.0, f64::max);
                prop_assert!(farthest <= f64::from(spec.radius_m));
                let nearer_left_out = fresh.iter().any(|c| c.distance_m < farthest
                    && !changes.offers.iter().any(|o| o.volunteer == c.id));
                prop_assert!(!nearer_left_out, "a nearer volunteer was left out");
                let due = now() + Duration::seconds(i64::from(spec.timeout_s));
                prop_assert!(changes.offers.iter().all(|o| o.wave == *wave && o.expires_at == due));
                prop_assert_eq!(changes.timer, Some(WaveDeadline { wave: *wave, due_at: due }));
            }
        }
        if changes.offers.is_empty() {
            prop_assert_eq!(changes.timer, None);
            let exhausted = Event::WavesExhausted { waves: changes.wave };
            prop_assert!(changes.events.contains(&exhausted));
            prop_assert_eq!(changes.unmatched(), snapshot.active == 0);
        } else {
            prop_assert!(changes.wave > alert.wave);
            prop_assert_eq!(changes.status, None);
        }
        prop_assert!(changes.wave >= alert.wave);
    }
}
