//! The wave policy without a database: a table of today's behaviour, case by case, and properties
//! that hold for any snapshot.

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use uuid::Uuid;

use super::*;
use crate::domain::{AlertId, AlertStatus, KindSettings, OfferId, OfferPolicy, WaveSpec};
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
        policy: OfferPolicy::default(),
        roles: Vec::new(),
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
        // Triage's timer (wave 0's deadline) releases a triaged alert.
        let released = alert.status == AlertStatus::Triage && trigger == Trigger::Deadline { wave: 0 };
        let dispatching = released
            || matches!(alert.status, AlertStatus::Dispatching | AlertStatus::Assigned | AlertStatus::OnScene);
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
            prop_assert_eq!(changes.status, released.then_some(AlertStatus::Dispatching));
        }
        prop_assert!(changes.wave >= alert.wave);
    }
}

// ------------------------------------------------------------ replacing policies

/// A cardiac arrest as configured by default: 7 live, replaced at once, 500 m -> 1 km -> 2 km,
/// at most 30 disturbed.
fn cardiac(wave: u32, wave_ends_in_s: i64) -> Snapshot {
    let mut snapshot =
        Snapshot::new_alert(AlertId::new(), 3, crate::config::cardiac_arrest_settings());
    snapshot.alert.wave = wave;
    snapshot.alert.wave_ends_at = (wave > 0).then(|| now() + Duration::seconds(wave_ends_in_s));
    snapshot
}

/// Volunteers never asked yet, `n` metres away for each `n` (ids 101, 102, ...).
fn fresh(distances_m: &[f64]) -> Vec<Candidate> {
    distances_m
        .iter()
        .zip(101..)
        .map(|(&distance_m, n)| Candidate {
            id: volunteer(n),
            distance_m,
        })
        .collect()
}

/// `n` volunteers (ids 1..=n) pending in wave `wave`, their offers lapsing in `expires_in_s`.
fn live(snapshot: &mut Snapshot, n: u128, wave: u32, expires_in_s: i64) {
    for id in 1..=n {
        snapshot.pending.push(pending(id, wave, expires_in_s));
        snapshot.offered.push(volunteer(id));
    }
}

#[test]
fn a_cardiac_arrest_starts_with_the_seven_nearest_within_500_metres() {
    let snapshot = cardiac(0, 0);
    let distances: Vec<f64> = (1..=12).map(|n| f64::from(n) * 60.0).collect();
    let changes = written(run(&snapshot, Trigger::NeedsWave, at(&distances)));
    assert_eq!(changes.offers.len(), 7);
    assert_eq!(changes.wave, 1);
    assert_eq!(changes.wave_ends_at, Some(now() + Duration::seconds(30)));
    assert!(changes.offers.iter().all(|offer| offer.distance_m <= 500.0));
}

#[test]
fn with_few_volunteers_near_a_cardiac_arrest_the_seven_come_from_wider_at_once() {
    let snapshot = cardiac(0, 0);
    let changes = written(run(
        &snapshot,
        Trigger::NeedsWave,
        at(&[100.0, 450.0, 700.0, 900.0, 1200.0, 1600.0, 1900.0, 2500.0]),
    ));
    assert_eq!(changes.offers.len(), 7, "the nearest seven within 2 km");
    let waves: Vec<u32> = changes.offers.iter().map(|offer| offer.wave).collect();
    assert_eq!(waves, [1, 1, 2, 2, 3, 3, 3]);
    assert_eq!(changes.wave, 3);
}

#[test]
fn a_decline_is_replaced_at_once_by_the_next_nearest_within_the_wave() {
    let mut snapshot = cardiac(1, 20);
    live(&mut snapshot, 6, 1, 15);
    // Volunteer 7 declined: asked before, no longer pending.
    snapshot.offered.push(volunteer(7));
    let changes = written(run(
        &snapshot,
        Trigger::Replace,
        at(&[10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 450.0, 700.0]),
    ));
    assert!(changes.expire.is_empty(), "live offers stay");
    assert_eq!(
        offered(&changes),
        [volunteer(8)],
        "one replacement, the nearest left"
    );
    assert_eq!(changes.wave, 1, "still the first wave");
    assert_eq!(changes.offers[0].expires_at, now() + Duration::seconds(30));
    assert!(matches!(
        changes.events[..],
        [Event::ReplacementsSent { wave: 1, .. }]
    ));
    // The next look: the earliest of the live offers lapsing (15 s) and the wave's end (20 s).
    assert_eq!(
        changes.timer,
        Some(WaveDeadline {
            wave: 1,
            due_at: now() + Duration::seconds(15)
        })
    );
}

#[test]
fn with_the_live_offers_full_a_replacement_waits() {
    let mut full = cardiac(1, 20);
    live(&mut full, 7, 1, 15);
    assert_eq!(
        plan(&full, Trigger::Replace, now(), |_| fresh(&[100.0])),
        Plan::Nothing(Skip::Full)
    );
    let mut thin = cardiac(1, 20);
    live(&mut thin, 2, 1, 15);
    assert_eq!(
        run(&thin, Trigger::Replace, Vec::new()),
        Plan::Nothing(Skip::Full),
        "nobody anywhere: wait for the live ones"
    );
}

#[test]
fn short_of_live_offers_with_nobody_left_in_reach_the_waves_widen_at_once() {
    let mut thin = cardiac(1, 20);
    live(&mut thin, 2, 1, 15);
    let changes = written(run(&thin, Trigger::Replace, fresh(&[800.0])));
    assert_eq!(offered(&changes), [volunteer(101)], "from 1 km, at once");
    assert_eq!(changes.wave, 2, "the 2 km wave had nobody: stay at 1 km");
    assert!(matches!(
        changes.events[..],
        [Event::OffersSent { wave: 2, .. }]
    ));

    let mut snapshot = cardiac(1, 20);
    snapshot.offered = vec![volunteer(100)];
    let changes = written(run(
        &snapshot,
        Trigger::Replace,
        at(&[800.0, 900.0, 1500.0]),
    ));
    assert_eq!(changes.wave, 3);
    assert_eq!(
        offered(&changes),
        [volunteer(1), volunteer(2), volunteer(3)]
    );
    assert!(matches!(
        changes.events[..],
        [
            Event::OffersSent { wave: 2, .. },
            Event::OffersSent { wave: 3, .. }
        ]
    ));
}

#[test]
fn a_lapsed_offer_is_replaced_and_the_live_ones_are_left_alone() {
    let mut snapshot = cardiac(1, 20);
    live(&mut snapshot, 7, 1, 10);
    snapshot.pending[0].expires_at = now() - Duration::seconds(1);
    snapshot.pending[1].expires_at = now();
    let changes = written(run(
        &snapshot,
        Trigger::Deadline { wave: 1 },
        fresh(&[300.0, 310.0, 320.0]),
    ));
    assert_eq!(
        changes.expire,
        snapshot.pending[..2],
        "only the lapsed ones expire"
    );
    assert_eq!(offered(&changes).len(), 2);
    assert_eq!(changes.wave, 1);
}

#[test]
fn at_its_end_a_wave_widens_without_withdrawing_the_live_offers() {
    let mut snapshot = cardiac(1, 0);
    live(&mut snapshot, 5, 1, 25);
    let changes = written(run(
        &snapshot,
        Trigger::Deadline { wave: 1 },
        fresh(&[700.0, 800.0, 900.0]),
    ));
    assert!(changes.expire.is_empty());
    assert_eq!(changes.wave, 2);
    assert_eq!(
        offered(&changes),
        [volunteer(101), volunteer(102)],
        "topped up to seven"
    );

    let mut full = cardiac(1, 0);
    live(&mut full, 7, 1, 25);
    let changes = written(run(&full, Trigger::Deadline { wave: 1 }, fresh(&[700.0])));
    assert!(changes.offers.is_empty());
    assert_eq!(changes.wave, 2);
    assert_eq!(
        changes.events,
        [Event::WaveWidened {
            wave: 2,
            radius_m: 1000
        }]
    );
    assert_eq!(
        changes.timer.map(|timer| timer.due_at),
        Some(now() + Duration::seconds(25)),
        "the live offers lapse before the new wave ends"
    );
}

#[test]
fn no_more_than_max_alerted_are_ever_disturbed() {
    let mut snapshot = cardiac(2, 20);
    live(&mut snapshot, 3, 2, 10);
    snapshot.offered.extend((200..226).map(volunteer));
    assert_eq!(snapshot.offered.len(), 29);
    let changes = written(run(
        &snapshot,
        Trigger::Deadline { wave: 2 },
        fresh(&[10.0, 20.0, 30.0]),
    ));
    assert_eq!(offered(&changes), [volunteer(101)], "one left before 30");

    let mut spent = cardiac(3, 0);
    spent.offered = (200..230).map(volunteer).collect();
    let changes = written(run(&spent, Trigger::Deadline { wave: 3 }, fresh(&[10.0])));
    assert!(changes.offers.is_empty());
    assert!(changes.unmatched(), "nothing live, nobody left to ask");
}

#[test]
fn with_no_wave_left_the_last_live_offers_are_waited_for() {
    let mut snapshot = cardiac(3, 0);
    live(&mut snapshot, 2, 3, 12);
    let changes = written(run(&snapshot, Trigger::Deadline { wave: 3 }, Vec::new()));
    assert!(!changes.unmatched(), "two may still accept");
    assert_eq!(changes.wave_ends_at, None);
    assert_eq!(
        changes.timer,
        Some(WaveDeadline {
            wave: 3,
            due_at: now() + Duration::seconds(12)
        })
    );
    // When they lapse, the alert is unmatched.
    let mut lapsed = snapshot.clone();
    lapsed.alert.wave_ends_at = None;
    for offer in &mut lapsed.pending {
        offer.expires_at = now();
    }
    let changes = written(run(&lapsed, Trigger::Deadline { wave: 3 }, Vec::new()));
    assert!(changes.unmatched());
    assert_eq!(changes.expire.len(), 2);
}

#[test]
fn a_replacement_under_a_plain_policy_is_an_ordinary_request_for_a_wave() {
    let mut snapshot = alert_at(AlertStatus::Dispatching, 1);
    snapshot.pending = vec![pending(1, 1, 10)];
    snapshot.offered = vec![volunteer(1)];
    assert_eq!(
        plan(&snapshot, Trigger::Replace, now(), no_matcher),
        Plan::Nothing(Skip::OfferLive)
    );
}

prop_compose! {
    fn policies()(live in 1u32..10, decline in any::<bool>(), expiry in any::<bool>(), most in 1u32..40) -> OfferPolicy {
        OfferPolicy { live_offers: live, replace_on_decline: decline, replace_on_expiry: expiry, max_alerted: most }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn every_policy_keeps_its_limits(
        mut snapshot in snapshots(),
        policy in policies(),
        ends_in in -30i64..30,
        trigger in prop_oneof![triggers(), Just(Trigger::Replace)],
        candidates in candidates(),
    ) {
        snapshot.settings.policy = policy;
        snapshot.alert.wave_ends_at = (snapshot.alert.wave > 0).then(|| now() + Duration::seconds(ends_in));
        let Plan::Write(changes) = run(&snapshot, trigger, candidates.clone()) else {
            return Ok(());
        };
        // Nobody is asked twice, and no more than the policy allows.
        for offer in &changes.offers {
            prop_assert!(!snapshot.offered.contains(&offer.volunteer));
        }
        let asked = snapshot.offered.len() + changes.offers.len();
        prop_assert!(asked <= policy.max_alerted as usize || changes.offers.is_empty());
        let still_live = snapshot.pending.iter().filter(|offer| offer.expires_at > now() && !changes.expire.contains(offer)).count();
        prop_assert!(changes.offers.is_empty() || still_live + changes.offers.len() <= policy.live_offers as usize);
        // Offers go to the wave they name, within its radius, and lapse no later than its
        // timeout (nor, for a plain wave, than its end).
        for offer in &changes.offers {
            let spec = snapshot.settings.waves[offer.wave as usize - 1];
            prop_assert!(offer.distance_m <= f64::from(spec.radius_m));
            prop_assert!(offer.expires_at <= now() + Duration::seconds(i64::from(spec.timeout_s)));
            prop_assert!(offer.expires_at > now());
            if let (false, Some(end)) = (policy.replace_on_expiry, changes.wave_ends_at) {
                prop_assert!(offer.expires_at <= end);
            }
        }
        // Expired offers were pending; live ones expire only when a plain wave ends.
        for offer in &changes.expire {
            prop_assert!(snapshot.pending.contains(offer));
            prop_assert!(offer.expires_at <= now() || !policy.replace_on_expiry);
        }
        // Unmatched only with nobody active and nothing live.
        if changes.unmatched() {
            prop_assert_eq!(snapshot.active, 0);
            prop_assert_eq!(still_live, 0);
            prop_assert!(changes.offers.is_empty());
        }
        // The next look is never in the past, and never after the wave's end.
        if let Some(timer) = changes.timer {
            prop_assert!(timer.due_at > now());
            if let Some(end) = changes.wave_ends_at {
                prop_assert!(timer.due_at <= end);
            }
        }
        prop_assert!(changes.wave >= snapshot.alert.wave);
    }
}

// ------------------------------------------------------------ triage (rule 0)

mod triage;
