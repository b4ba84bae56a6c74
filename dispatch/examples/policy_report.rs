//! Compares offer policies on a synthetic day of cardiac arrests, with the real wave policy
//! (`kreki_dispatch::wave::plan`) and the real matcher, and no database.
//!
//! ```sh
//! cargo run --release -p kreki-dispatch --example policy_report            # defaults below
//! cargo run --release -p kreki-dispatch --example policy_report -- 5000 300 7   # volunteers, incidents, seed
//! ```
//!
//! The day: `incidents` cardiac arrests at times uniform over 24 h and points uniform over greater
//! Jakarta (lng 106.65..107.05, lat -6.40..-6.05, the benchmark box), among `volunteers` on duty,
//! BLS-certified, uniform over the same box. Each volunteer has an acceptance rate drawn uniformly
//! from 17 to 47 % (the range the published studies of volunteer-responder systems report); to
//! each offer they accept with that probability after 10 to 60 s, otherwise they decline after 5
//! to 30 s (half of them) or never answer (the other half). A responder who accepted is busy for
//! 45 minutes. Every policy sees the same volunteers, incidents and answers (a volunteer's answer
//! to an alert is fixed by the seed), so the differences are the policy's.
//!
//! Reported per policy: time from the panic to the first accept (p50, p90), incidents nobody
//! accepted, and volunteers disturbed (offered) per incident.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};

use chrono::{DateTime, Duration, TimeZone, Utc};
use kreki_dispatch::LatLng;
use kreki_dispatch::config::{cardiac_arrest_settings, default_kind_settings};
use kreki_dispatch::domain::{AlertId, AlertKind, AlertStatus, KindSettings, OfferId};
use kreki_dispatch::matcher::{CertSet, MatchQuery, Matcher, MatcherConfig, VolunteerState};
use kreki_dispatch::timeline::Event as Timeline;
use kreki_dispatch::wave::{self, PendingOffer, Plan, Snapshot, Trigger};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

const BUSY_FOR_S: i64 = 45 * 60;

/// What a volunteer does with one offer.
#[derive(Debug, Clone, Copy)]
enum Answer {
    Accept(i64),
    Decline(i64),
    Silence,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Happening {
    Panic(usize),
    Answered { alert: usize, offer: usize },
    Deadline { alert: usize, wave: u32 },
    Free(usize),
}

struct Alert {
    snapshot: Snapshot,
    at: LatLng,
    raised_at: DateTime<Utc>,
    first_accept: Option<DateTime<Utc>>,
    offers: Vec<(Uuid, OfferId, u32, DateTime<Utc>)>,
    assigned: Vec<Uuid>,
    timer: Option<(u32, DateTime<Utc>)>,
}

struct Day {
    volunteers: Vec<LatLng>,
    rates: Vec<f64>,
    incidents: Vec<(DateTime<Utc>, LatLng)>,
    seed: u64,
}

fn point(rng: &mut StdRng) -> LatLng {
    let lat = rng.random_range(-6.40..-6.05);
    let lng = rng.random_range(106.65..107.05);
    LatLng::new(lat, lng).unwrap_or_else(|_| unreachable!("the box is valid"))
}

impl Day {
    fn new(volunteers: usize, incidents: usize, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let start = Utc
            .with_ymd_and_hms(2026, 12, 5, 0, 0, 0)
            .single()
            .unwrap_or_default();
        let positions = (0..volunteers).map(|_| point(&mut rng)).collect();
        let rates = (0..volunteers)
            .map(|_| rng.random_range(0.17..0.47))
            .collect();
        let mut times: Vec<(DateTime<Utc>, LatLng)> = (0..incidents)
            .map(|_| {
                let at = start + Duration::seconds(rng.random_range(0..86_400));
                (at, point(&mut rng))
            })
            .collect();
        times.sort_by_key(|(at, _)| *at);
        Self {
            volunteers: positions,
            rates,
            incidents: times,
            seed,
        }
    }

    /// Volunteer `v`'s answer to alert `alert`: the same in every policy's run.
    fn answer(&self, alert: usize, v: usize) -> Answer {
        let mut rng = StdRng::seed_from_u64(self.seed ^ ((alert as u64) << 32) ^ v as u64);
        if rng.random_bool(self.rates[v]) {
            Answer::Accept(rng.random_range(10..=60))
        } else if rng.random_bool(0.5) {
            Answer::Decline(rng.random_range(5..=30))
        } else {
            Answer::Silence
        }
    }
}

#[derive(Debug, Default)]
struct Outcome {
    first_accept_s: Vec<f64>,
    nobody: usize,
    disturbed: Vec<usize>,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Runs one policy over the day.
fn simulate(day: &Day, settings: &KindSettings) -> Outcome {
    let start = day.incidents.first().map(|(at, _)| *at).unwrap_or_default();
    let mut matcher = Matcher::new(MatcherConfig {
        position_max_age: std::time::Duration::from_secs(3 * 86_400),
        ..MatcherConfig::default()
    });
    let ids: Vec<Uuid> = (0..day.volunteers.len())
        .map(|n| Uuid::from_u128(n as u128 + 1))
        .collect();
    let index: HashMap<Uuid, usize> = ids.iter().enumerate().map(|(n, id)| (*id, n)).collect();
    let bls = CertSet::from_codes(&["bls".to_owned()]).unwrap_or(CertSet::EMPTY);
    for (n, at) in day.volunteers.iter().enumerate() {
        matcher.upsert(VolunteerState {
            id: ids[n],
            position: *at,
            position_at: start,
            on_duty: true,
            busy: false,
            rest_until: None,
            certifications: bls,
            verified_practitioner: false,
        });
    }
    let mut queue: BinaryHeap<Reverse<(DateTime<Utc>, u64, Happening)>> = BinaryHeap::new();
    let mut seq = 0_u64;
    let mut push = |queue: &mut BinaryHeap<_>, at: DateTime<Utc>, what: Happening| {
        seq += 1;
        queue.push(Reverse((at, seq, what)));
    };
    for (n, (at, _)) in day.incidents.iter().enumerate() {
        push(&mut queue, *at, Happening::Panic(n));
    }
    let mut alerts: Vec<Option<Alert>> = (0..day.incidents.len()).map(|_| None).collect();
    while let Some(Reverse((now, _, happening))) = queue.pop() {
        let (alert_index, trigger) = match happening {
            Happening::Panic(n) => {
                let id = AlertId(Uuid::from_u128(10_000_000 + n as u128));
                alerts[n] = Some(Alert {
                    snapshot: Snapshot::new_alert(id, settings.responders_needed, settings.clone()),
                    at: day.incidents[n].1,
                    raised_at: now,
                    first_accept: None,
                    offers: Vec::new(),
                    assigned: Vec::new(),
                    timer: None,
                });
                (n, Trigger::NeedsWave)
            }
            Happening::Free(v) => {
                matcher.set_busy(ids[v], false);
                continue;
            }
            Happening::Deadline { alert, wave } => {
                let Some(state) = alerts[alert].as_ref() else {
                    continue;
                };
                if state.timer != Some((wave, now)) {
                    continue;
                }
                (alert, Trigger::Deadline { wave })
            }
            Happening::Answered { alert, offer } => {
                let Some(state) = alerts[alert].as_mut() else {
                    continue;
                };
                let (volunteer, offer_id, wave, _) = state.offers[offer];
                let Some(position) = state.snapshot.pending.iter().position(|o| o.id == offer_id)
                else {
                    continue; // withdrawn or expired meanwhile
                };
                let v = index[&volunteer];
                match day.answer(alert, v) {
                    Answer::Accept(_) if !matcher_is_free(&matcher, volunteer) => {
                        continue;
                    }
                    Answer::Accept(_) => {
                        state.snapshot.pending.remove(position);
                        state.first_accept.get_or_insert(now);
                        state.assigned.push(volunteer);
                        state.snapshot.active += 1;
                        state.snapshot.alert.status = AlertStatus::Assigned;
                        matcher.set_busy(volunteer, true);
                        push(
                            &mut queue,
                            now + Duration::seconds(BUSY_FOR_S),
                            Happening::Free(v),
                        );
                        if state.snapshot.active >= state.snapshot.alert.responders_needed {
                            state.snapshot.pending.clear();
                            state.timer = None;
                        }
                        continue;
                    }
                    Answer::Decline(_) => {
                        state.snapshot.pending.remove(position);
                        let replaces = settings.policy.replace_on_decline;
                        let live_in_wave = state
                            .snapshot
                            .pending
                            .iter()
                            .any(|o| o.wave == wave && o.expires_at > now);
                        if replaces {
                            (alert, Trigger::Replace)
                        } else if wave == state.snapshot.alert.wave && !live_in_wave {
                            (alert, Trigger::Deadline { wave })
                        } else {
                            continue;
                        }
                    }
                    Answer::Silence => continue,
                }
            }
        };
        let Some(state) = alerts[alert_index].as_mut() else {
            continue;
        };
        let plan = wave::plan(&state.snapshot, trigger, now, |query| {
            let excluded: HashSet<Uuid> = state.snapshot.offered.iter().copied().collect();
            matcher.nearest(&MatchQuery {
                point: state.at,
                radius_m: f64::from(query.radius_m),
                limit: query.count as usize,
                required: &bls,
                requires_verified: false,
                exclude: &excluded,
                now,
            })
        });
        let Plan::Write(changes) = plan else { continue };
        state
            .snapshot
            .pending
            .retain(|offer| !changes.expire.contains(offer));
        for offer in &changes.offers {
            let id = OfferId::new();
            state.snapshot.pending.push(PendingOffer {
                id,
                volunteer: offer.volunteer,
                wave: offer.wave,
                expires_at: offer.expires_at,
            });
            state.snapshot.offered.push(offer.volunteer);
            state
                .offers
                .push((offer.volunteer, id, offer.wave, offer.expires_at));
            let v = index[&offer.volunteer];
            let delay = match day.answer(alert_index, v) {
                Answer::Accept(s) | Answer::Decline(s) => Some(s),
                Answer::Silence => None,
            };
            if let Some(delay) = delay {
                let at = now + Duration::seconds(delay);
                if at < offer.expires_at {
                    push(
                        &mut queue,
                        at,
                        Happening::Answered {
                            alert: alert_index,
                            offer: state.offers.len() - 1,
                        },
                    );
                }
            }
        }
        state.snapshot.alert.wave = changes.wave;
        state.snapshot.alert.wave_ends_at = changes.wave_ends_at;
        if let Some(status) = changes.status {
            state.snapshot.alert.status = status;
        }
        state.timer = changes.timer.map(|timer| (timer.wave, timer.due_at));
        if let Some((wave, due_at)) = state.timer {
            push(
                &mut queue,
                due_at,
                Happening::Deadline {
                    alert: alert_index,
                    wave,
                },
            );
        }
        debug_assert!(!changes.events.contains(&Timeline::Unmatched) || state.assigned.is_empty());
    }
    let mut outcome = Outcome::default();
    for state in alerts.into_iter().flatten() {
        match state.first_accept {
            Some(at) => outcome
                .first_accept_s
                .push((at - state.raised_at).num_milliseconds() as f64 / 1000.0),
            None => outcome.nobody += 1,
        }
        outcome.disturbed.push(state.snapshot.offered.len());
    }
    outcome.first_accept_s.sort_by(f64::total_cmp);
    outcome
}

fn matcher_is_free(matcher: &Matcher, volunteer: Uuid) -> bool {
    !matcher.is_busy(volunteer)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let volunteers: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5_000);
    let incidents: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(300);
    let seed: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_261_205);
    let day = Day::new(volunteers, incidents, seed);

    let plain = KindSettings {
        required_certifications: vec!["bls".to_owned()],
        ..default_kind_settings(AlertKind::Other)
    };
    let evidence = cardiac_arrest_settings();
    let evidence_one = KindSettings {
        responders_needed: 1,
        roles: Vec::new(),
        ..cardiac_arrest_settings()
    };
    let policies = [
        (
            "plain waves (before): 3 in 1 km, 5 in 2 km, 10 in 5 km, 30 s, 1 responder",
            plain,
        ),
        (
            "cardiac default: 7 live, replace at once, 500 m/1 km/2 km, max 30, 3 responders",
            evidence,
        ),
        ("same policy, 1 responder", evidence_one),
    ];
    // A println! is this report's purpose.
    #[expect(clippy::print_stdout, reason = "the report is the program's output")]
    {
        println!(
            "## Offer policies on a synthetic day: {volunteers} volunteers, {incidents} cardiac arrests, seed {seed}\n"
        );
        println!(
            "| policy | first accept p50 s | p90 s | nobody accepted | disturbed per incident (mean) | p90 |"
        );
        println!("|---|---|---|---|---|---|");
        for (name, settings) in policies {
            let outcome = simulate(&day, &settings);
            let mut disturbed: Vec<f64> = outcome.disturbed.iter().map(|n| *n as f64).collect();
            disturbed.sort_by(f64::total_cmp);
            let mean = disturbed.iter().sum::<f64>() / disturbed.len().max(1) as f64;
            println!(
                "| {name} | {:.0} | {:.0} | {} of {incidents} ({:.1} %) | {mean:.1} | {:.0} |",
                percentile(&outcome.first_accept_s, 0.5),
                percentile(&outcome.first_accept_s, 0.9),
                outcome.nobody,
                100.0 * outcome.nobody as f64 / incidents.max(1) as f64,
                percentile(&disturbed, 0.9),
            );
        }
    }
}
