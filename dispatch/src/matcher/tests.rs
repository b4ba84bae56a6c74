//! Unit tests of the matcher: the eligibility rules one by one, index maintenance, and a seeded
//! comparison with brute force (every volunteer, geodesic distance) around cell boundaries and a
//! pentagon.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

use super::*;
use crate::geo::geodesic_m;

fn ll(lat: f64, lng: f64) -> LatLng {
    LatLng::new(lat, lng).unwrap_or_else(|e| panic!("test position {lat},{lng}: {e}"))
}

fn certs(codes: &[&str]) -> CertSet {
    CertSet::from_codes(codes).unwrap_or_else(|e| panic!("{codes:?}: {e}"))
}

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_795_000_000, 0).unwrap_or_default()
}

/// Monas, central Jakarta.
const MONAS: (f64, f64) = (-6.175392, 106.827153);

/// A volunteer `north_m` metres north of Monas, eligible for everything.
fn volunteer(north_m: f64) -> VolunteerState {
    VolunteerState {
        id: Uuid::new_v4(),
        position: ll(MONAS.0 + north_m / 110_574.0, MONAS.1),
        position_at: now() - TimeDelta::seconds(30),
        on_duty: true,
        busy: false,
        rest_until: None,
        certifications: certs(&["bls", "first_aid"]),
        verified_practitioner: true,
    }
}

struct Ask {
    point: LatLng,
    radius_m: f64,
    limit: usize,
    required: CertSet,
    requires_verified: bool,
    exclude: HashSet<Uuid>,
    now: DateTime<Utc>,
}

impl Ask {
    fn new() -> Self {
        Self {
            point: ll(MONAS.0, MONAS.1),
            radius_m: 2_000.0,
            limit: 10,
            required: CertSet::EMPTY,
            requires_verified: false,
            exclude: HashSet::new(),
            now: now(),
        }
    }

    fn run(&self, matcher: &Matcher) -> Vec<Candidate> {
        matcher.nearest(&MatchQuery {
            point: self.point,
            radius_m: self.radius_m,
            limit: self.limit,
            required: &self.required,
            requires_verified: self.requires_verified,
            exclude: &self.exclude,
            now: self.now,
        })
    }

    fn ids(&self, matcher: &Matcher) -> Vec<Uuid> {
        self.run(matcher).into_iter().map(|c| c.id).collect()
    }
}

fn matcher() -> Matcher {
    Matcher::new(MatcherConfig::default())
}

#[test]
fn nearest_first_with_distances_and_limit() {
    let mut m = matcher();
    let far = volunteer(1_500.0);
    let near = volunteer(100.0);
    let mid = volunteer(700.0);
    for v in [&far, &near, &mid] {
        m.upsert(*v);
    }
    let found = Ask::new().run(&m);
    assert_eq!(
        found.iter().map(|c| c.id).collect::<Vec<_>>(),
        [near.id, mid.id, far.id]
    );
    assert!((found[0].distance_m - 100.0).abs() < 1.0, "{found:?}");
    assert!((found[2].distance_m - 1_500.0).abs() < 5.0, "{found:?}");

    let two = Ask {
        limit: 2,
        ..Ask::new()
    };
    assert_eq!(two.ids(&m), [near.id, mid.id]);
    let none = Ask {
        limit: 0,
        ..Ask::new()
    };
    assert!(none.ids(&m).is_empty());
}

#[test]
fn radius_is_inclusive_and_bad_radii_find_nobody() {
    let mut m = matcher();
    let v = volunteer(1_000.0);
    m.upsert(v);
    let exact = geodesic_m(ll(MONAS.0, MONAS.1), v.position);
    assert_eq!(
        Ask {
            radius_m: exact + 0.01,
            ..Ask::new()
        }
        .ids(&m),
        [v.id]
    );
    assert!(
        Ask {
            radius_m: exact - 0.01,
            ..Ask::new()
        }
        .ids(&m)
        .is_empty()
    );
    for radius_m in [f64::NAN, -1.0, f64::NEG_INFINITY] {
        assert!(
            Ask {
                radius_m,
                ..Ask::new()
            }
            .ids(&m)
            .is_empty(),
            "{radius_m}"
        );
    }
    // Infinity is clamped to MAX_RADIUS_M, which still covers 1 km.
    assert_eq!(
        Ask {
            radius_m: f64::INFINITY,
            ..Ask::new()
        }
        .ids(&m),
        [v.id]
    );
}

#[test]
fn each_eligibility_rule_excludes() {
    let base = volunteer(200.0);
    let cases: Vec<(&str, VolunteerState)> = vec![
        (
            "off duty",
            VolunteerState {
                on_duty: false,
                ..base
            },
        ),
        ("busy", VolunteerState { busy: true, ..base }),
        (
            "stale",
            VolunteerState {
                position_at: now() - TimeDelta::minutes(11),
                ..base
            },
        ),
        (
            "exactly max age",
            VolunteerState {
                position_at: now() - TimeDelta::minutes(10),
                ..base
            },
        ),
        (
            "resting",
            VolunteerState {
                rest_until: Some(now() + TimeDelta::seconds(1)),
                ..base
            },
        ),
        (
            "uncertified",
            VolunteerState {
                certifications: certs(&["first_aid"]),
                ..base
            },
        ),
        (
            "unverified",
            VolunteerState {
                verified_practitioner: false,
                ..base
            },
        ),
    ];
    let ask = Ask {
        required: certs(&["bls"]),
        requires_verified: true,
        ..Ask::new()
    };
    for (why, state) in cases {
        let mut m = matcher();
        m.upsert(state);
        assert!(ask.ids(&m).is_empty(), "{why} must not be offered");
    }
    let mut m = matcher();
    m.upsert(base);
    assert_eq!(ask.ids(&m), [base.id], "the base volunteer is eligible");
    let excluded = Ask {
        exclude: HashSet::from([base.id]),
        ..ask
    };
    assert!(excluded.ids(&m).is_empty(), "excluded");
}

#[test]
fn rest_that_ended_and_fresh_positions_are_eligible() {
    let mut m = matcher();
    let v = VolunteerState {
        rest_until: Some(now()),
        position_at: now() - TimeDelta::minutes(9),
        ..volunteer(300.0)
    };
    m.upsert(v);
    assert_eq!(Ask::new().ids(&m), [v.id]);
    // Judged at query time: a minute later the position is stale.
    let later = Ask {
        now: now() + TimeDelta::minutes(2),
        ..Ask::new()
    };
    assert!(later.ids(&m).is_empty());
}

#[test]
fn excluded_volunteers_do_not_take_a_place() {
    let mut m = matcher();
    let first = volunteer(100.0);
    let second = volunteer(200.0);
    let third = volunteer(300.0);
    for v in [&first, &second, &third] {
        m.upsert(*v);
    }
    let ask = Ask {
        limit: 2,
        exclude: HashSet::from([first.id]),
        ..Ask::new()
    };
    assert_eq!(ask.ids(&m), [second.id, third.id]);
}

#[test]
fn setters_change_eligibility_and_refuse_unknown_ids() {
    let mut m = matcher();
    let v = volunteer(400.0);
    m.upsert(v);
    let unknown = Uuid::new_v4();

    assert!(m.set_on_duty(v.id, false));
    assert!(Ask::new().ids(&m).is_empty());
    assert!(m.set_on_duty(v.id, true));
    assert_eq!(Ask::new().ids(&m), [v.id]);

    assert!(m.set_busy(v.id, true));
    assert!(Ask::new().ids(&m).is_empty());
    assert!(m.set_busy(v.id, false));

    assert!(m.set_rest_until(v.id, Some(now() + TimeDelta::hours(1))));
    assert!(Ask::new().ids(&m).is_empty());
    assert!(m.set_rest_until(v.id, None));

    let needs_fire = Ask {
        required: certs(&["fire_basic"]),
        ..Ask::new()
    };
    assert!(needs_fire.ids(&m).is_empty());
    assert!(m.set_certifications(v.id, certs(&["fire_basic"])));
    assert_eq!(needs_fire.ids(&m), [v.id]);

    let verified = Ask {
        requires_verified: true,
        ..Ask::new()
    };
    assert!(m.set_verified_practitioner(v.id, false));
    assert!(verified.ids(&m).is_empty());
    assert!(m.set_verified_practitioner(v.id, true));
    assert_eq!(verified.ids(&m), [v.id]);

    assert!(!m.set_on_duty(unknown, true));
    assert!(!m.set_busy(unknown, true));
    assert!(!m.set_rest_until(unknown, None));
    assert!(!m.set_certifications(unknown, CertSet::EMPTY));
    assert!(!m.set_verified_practitioner(unknown, true));
    assert!(!m.update_position(unknown, ll(0.0, 0.0), now()));
    assert!(!m.remove(unknown));
    assert_eq!(m.len(), 1);
}

#[test]
fn positions_move_between_cells_and_refresh() {
    let mut m = matcher();
    let v = volunteer(100.0);
    let w = volunteer(150.0);
    m.upsert(v);
    m.upsert(w);
    // Move v 30 km away (another cell): gone from Monas, found at its new place.
    let bogor = ll(-6.595, 106.816);
    assert!(m.update_position(v.id, bogor, now()));
    assert_eq!(Ask::new().ids(&m), [w.id]);
    assert_eq!(
        Ask {
            point: bogor,
            ..Ask::new()
        }
        .ids(&m),
        [v.id]
    );
    // A stale position becomes fresh again when updated in place.
    assert!(m.update_position(w.id, w.position, now() - TimeDelta::hours(1)));
    assert!(Ask::new().ids(&m).is_empty());
    assert!(m.update_position(w.id, w.position, now()));
    assert_eq!(Ask::new().ids(&m), [w.id]);
    // Upsert replaces everything, position included.
    m.upsert(VolunteerState {
        position: bogor,
        ..w
    });
    assert!(Ask::new().ids(&m).is_empty());
    assert_eq!(
        Ask {
            point: bogor,
            ..Ask::new()
        }
        .ids(&m)
        .len(),
        2
    );
    assert_eq!(m.len(), 2);
}

#[test]
fn removal_keeps_the_other_entries_of_the_cell_reachable() {
    let mut m = matcher();
    // Five volunteers within a few metres: one cell.
    let vs: Vec<_> = (0..5).map(|i| volunteer(10.0 + f64::from(i))).collect();
    for v in &vs {
        m.upsert(*v);
    }
    assert!(m.remove(vs[1].id));
    assert!(!m.remove(vs[1].id));
    // The entry swapped into the hole must still be addressable by id.
    assert!(m.set_busy(vs[4].id, true));
    assert!(m.update_position(vs[3].id, vs[3].position, now()));
    assert_eq!(Ask::new().ids(&m), [vs[0].id, vs[2].id, vs[3].id]);
    assert_eq!(m.len(), 4);
    for v in &vs {
        m.remove(v.id);
    }
    assert!(m.is_empty());
    assert!(m.buckets.is_empty(), "empty buckets are dropped");
}

#[test]
fn invalid_config_is_reported_and_falls_back() {
    let bad = MatcherConfig {
        h3_resolution: 16,
        position_max_age: Duration::ZERO,
    };
    let problems = bad.validate("dispatch");
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].starts_with("dispatch.h3_resolution"));
    assert!(problems[1].starts_with("dispatch.position_max_age"));
    assert!(MatcherConfig::default().validate("dispatch").is_empty());
    assert_eq!(Matcher::new(bad).resolution(), DEFAULT_H3_RESOLUTION);
}

/// Random volunteers around `center`, a quarter of them ineligible in some way.
fn random_states(
    rng: &mut StdRng,
    center: LatLng,
    spread_deg: f64,
    n: usize,
) -> Vec<VolunteerState> {
    let pool = [
        certs(&["bls"]),
        certs(&["first_aid"]),
        certs(&["bls", "first_aid"]),
        CertSet::EMPTY,
    ];
    (0..n)
        .map(|_| VolunteerState {
            id: Uuid::new_v4(),
            position: ll(
                center.lat() + rng.random_range(-spread_deg..spread_deg),
                center.lng() + rng.random_range(-spread_deg..spread_deg),
            ),
            position_at: now() - TimeDelta::seconds(rng.random_range(0..700)),
            on_duty: rng.random_bool(0.9),
            busy: rng.random_bool(0.1),
            rest_until: rng.random_bool(0.1).then(|| now() + TimeDelta::seconds(60)),
            certifications: pool[rng.random_range(0..pool.len())],
            verified_practitioner: rng.random_bool(0.5),
        })
        .collect()
}

/// The answer by definition: every volunteer, geodesic distance, sorted.
fn brute_force(states: &[VolunteerState], ask: &Ask, max_age: Duration) -> Vec<(Uuid, f64)> {
    let max_age = TimeDelta::from_std(max_age).unwrap_or(TimeDelta::MAX);
    let mut found: Vec<(Uuid, f64)> = states
        .iter()
        .filter(|v| {
            v.on_duty
                && !v.busy
                && v.position_at > ask.now - max_age
                && v.rest_until.is_none_or(|t| t <= ask.now)
                && v.certifications.contains_all(ask.required)
                && (!ask.requires_verified || v.verified_practitioner)
                && !ask.exclude.contains(&v.id)
        })
        .map(|v| (v.id, geodesic_m(ask.point, v.position)))
        .filter(|&(_, d)| d <= ask.radius_m)
        .collect();
    found.sort_by(|a, b| a.1.total_cmp(&b.1));
    found.truncate(ask.limit);
    found
}

fn assert_same(found: &[Candidate], expected: &[(Uuid, f64)], context: &str) {
    assert_eq!(
        found.len(),
        expected.len(),
        "{context}: {found:?} vs {expected:?}"
    );
    for (c, &(id, d)) in found.iter().zip(expected) {
        assert!(
            (c.distance_m - d).abs() < 0.01,
            "{context}: distance {} vs {d}",
            c.distance_m
        );
        // Equal distances may come in either order; distinct ones may not.
        if c.id != id {
            let swapped = expected.iter().find(|e| e.0 == c.id);
            assert!(
                swapped.is_some_and(|e| (e.1 - d).abs() < 0.01),
                "{context}: {found:?} vs {expected:?}"
            );
        }
    }
}

#[test]
fn matches_brute_force_at_every_useful_resolution() {
    let mut rng = StdRng::seed_from_u64(7);
    let center = ll(-6.2, 106.85);
    let states = random_states(&mut rng, center, 0.05, 3_000);
    for resolution in [6_u8, 7, 8, 9, 10, 11] {
        let config = MatcherConfig {
            h3_resolution: resolution,
            ..MatcherConfig::default()
        };
        let mut m = Matcher::new(config);
        for v in &states {
            m.upsert(*v);
        }
        for round in 0..60 {
            let ask = Ask {
                point: ll(
                    center.lat() + rng.random_range(-0.05..0.05),
                    center.lng() + rng.random_range(-0.05..0.05),
                ),
                radius_m: [300.0, 1_000.0, 2_000.0, 5_000.0][round % 4],
                limit: [1, 3, 10, 50][round % 4 / 2 + round % 2],
                required: [CertSet::EMPTY, certs(&["bls"])][round % 2],
                requires_verified: round % 5 == 0,
                exclude: states.iter().take(round * 7).map(|v| v.id).collect(),
                now: now(),
            };
            let expected = brute_force(&states, &ask, config.position_max_age);
            assert_same(
                &ask.run(&m),
                &expected,
                &format!("res {resolution} round {round}"),
            );
        }
    }
}

#[test]
fn matches_brute_force_far_from_the_equator() {
    // The ring and cell bounds must hold where cells and the metric are most distorted too.
    for (lat, lng) in [(59.91, 10.75), (-33.87, 151.21), (64.15, -21.94)] {
        let mut rng = StdRng::seed_from_u64(13);
        let center = ll(lat, lng);
        let states = random_states(&mut rng, center, 0.04, 2_000);
        let mut m = matcher();
        for v in &states {
            m.upsert(*v);
        }
        for round in 0..40 {
            let ask = Ask {
                point: ll(
                    center.lat() + rng.random_range(-0.04..0.04),
                    center.lng() + rng.random_range(-0.04..0.04),
                ),
                radius_m: [500.0, 2_000.0, 5_000.0][round % 3],
                limit: [1, 10, 40][round % 3],
                required: [CertSet::EMPTY, certs(&["bls"])][round % 2],
                ..Ask::new()
            };
            let expected = brute_force(&states, &ask, DEFAULT_POSITION_MAX_AGE);
            assert_same(
                &ask.run(&m),
                &expected,
                &format!("{lat},{lng} round {round}"),
            );
        }
    }
}

#[test]
fn finds_the_neighbour_just_across_a_cell_edge() {
    // Query points on the corners of their cells, volunteers just across: the cases a plain
    // "same cell and first ring" search misses.
    let resolution = Resolution::Nine;
    let mut m = matcher();
    let mut states = Vec::new();
    let cell = ll(MONAS.0, MONAS.1).to_cell(resolution);
    for vertex in cell.boundary().iter() {
        for (dlat, dlng) in [(1e-6, 0.0), (-1e-6, 0.0), (0.0, 1e-6), (0.0, -1e-6)] {
            let v = VolunteerState {
                position: ll(vertex.lat() + dlat, vertex.lng() + dlng),
                ..volunteer(0.0)
            };
            m.upsert(v);
            states.push(v);
        }
    }
    for vertex in cell.boundary().iter() {
        let ask = Ask {
            point: ll(vertex.lat(), vertex.lng()),
            limit: 5,
            ..Ask::new()
        };
        let expected = brute_force(&states, &ask, DEFAULT_POSITION_MAX_AGE);
        assert_same(&ask.run(&m), &expected, "vertex");
    }
}

#[test]
fn works_around_a_pentagon() {
    let resolution = Resolution::Nine;
    let Some(pentagon) = resolution.pentagons().next() else {
        panic!("every resolution has 12 pentagons");
    };
    let center = h3o::LatLng::from(pentagon);
    let center = ll(center.lat(), center.lng());
    let mut rng = StdRng::seed_from_u64(11);
    let states = random_states(&mut rng, center, 0.02, 1_000);
    let mut m = matcher();
    for v in &states {
        m.upsert(*v);
    }
    for round in 0..20 {
        let ask = Ask {
            point: ll(
                center.lat() + rng.random_range(-0.01..0.01),
                center.lng() + rng.random_range(-0.01..0.01),
            ),
            radius_m: 1_500.0,
            limit: 10,
            ..Ask::new()
        };
        let expected = brute_force(&states, &ask, DEFAULT_POSITION_MAX_AGE);
        assert_same(&ask.run(&m), &expected, &format!("pentagon round {round}"));
    }
}

#[test]
fn random_changes_keep_the_index_equal_to_brute_force() {
    // A model-based test: the same random changes applied to a plain list and to the matcher,
    // whose per-cell summaries (available count, certifications held) must never hide anyone.
    let mut rng = StdRng::seed_from_u64(23);
    let center = ll(-6.2, 106.85);
    let mut states = random_states(&mut rng, center, 0.01, 200);
    let mut m = matcher();
    for v in &states {
        m.upsert(*v);
    }
    let pool = [
        certs(&["bls"]),
        certs(&["first_aid"]),
        certs(&["bls", "first_aid"]),
        CertSet::EMPTY,
    ];
    for step in 0..3_000 {
        let i = rng.random_range(0..states.len());
        let id = states[i].id;
        match rng.random_range(0..8) {
            0 => {
                let on = rng.random_bool(0.8);
                assert!(m.set_on_duty(id, on));
                states[i].on_duty = on;
            }
            1 => {
                let busy = rng.random_bool(0.3);
                assert!(m.set_busy(id, busy));
                states[i].busy = busy;
            }
            2 => {
                let c = pool[rng.random_range(0..pool.len())];
                assert!(m.set_certifications(id, c));
                states[i].certifications = c;
            }
            3 => {
                let until = rng.random_bool(0.5).then(|| now() + TimeDelta::seconds(60));
                assert!(m.set_rest_until(id, until));
                states[i].rest_until = until;
            }
            4 => {
                let v = rng.random_bool(0.5);
                assert!(m.set_verified_practitioner(id, v));
                states[i].verified_practitioner = v;
            }
            5 | 6 => {
                let p = ll(
                    center.lat() + rng.random_range(-0.01..0.01),
                    center.lng() + rng.random_range(-0.01..0.01),
                );
                assert!(m.update_position(id, p, now()));
                states[i].position = p;
                states[i].position_at = now();
            }
            _ => {
                assert!(m.remove(id));
                let replacement = random_states(&mut rng, center, 0.01, 1)[0];
                m.upsert(replacement);
                states[i] = replacement;
            }
        }
        if step % 10 == 0 {
            let ask = Ask {
                point: ll(
                    center.lat() + rng.random_range(-0.01..0.01),
                    center.lng() + rng.random_range(-0.01..0.01),
                ),
                radius_m: 1_000.0,
                limit: 5,
                required: pool[step / 10 % pool.len()],
                requires_verified: step % 30 == 0,
                ..Ask::new()
            };
            let expected = brute_force(&states, &ask, DEFAULT_POSITION_MAX_AGE);
            assert_same(&ask.run(&m), &expected, &format!("step {step}"));
        }
    }
    assert_eq!(m.len(), states.len());
}

#[test]
fn surely_contains_never_claims_a_point_of_another_cell() {
    // The shortcut of `update_position` must agree with h3o whenever it answers "inside".
    let mut rng = StdRng::seed_from_u64(5);
    let pentagon = Resolution::Nine.pentagons().next().map(h3o::LatLng::from);
    let mut places = vec![
        (-6.2, 106.85),
        (-8.65, 115.2),
        (3.6, 98.7),
        (60.0, 10.0),
        (-45.0, 170.0),
    ];
    places.extend(pentagon.map(|p| (p.lat(), p.lng())));
    let (mut inside, mut total) = (0_u32, 0_u32);
    for (lat, lng) in places {
        for resolution in [Resolution::Seven, Resolution::Nine, Resolution::Eleven] {
            let cell = ll(lat, lng).to_cell(resolution);
            let bucket = Bucket::new(cell);
            let spread_rad = 1.3 * bucket.radius_m / 6_371_000.0;
            for _ in 0..2_000 {
                let lat_rad = bucket.center_lat_rad + rng.random_range(-spread_rad..spread_rad);
                let lng_rad = bucket.center_lng_rad
                    + rng.random_range(-spread_rad..spread_rad) / lat.to_radians().cos();
                let point = ll(lat_rad.to_degrees(), lng_rad.to_degrees());
                total += 1;
                if bucket.surely_contains(lat_rad, lng_rad) {
                    inside += 1;
                    assert_eq!(point.to_cell(resolution), cell, "{point} in {cell}?");
                }
            }
        }
    }
    // Not vacuous: the disc covers a good share of the cell.
    assert!(inside > total / 5, "{inside} of {total}");
}

#[test]
fn poles_and_the_antimeridian_answer_without_hanging() {
    // Not places KREKI serves, but a query there must return, not loop or panic.
    let mut m = matcher();
    let spots = [
        (89.9999, 0.0),
        (-89.9999, 120.0),
        (0.0, 179.9999),
        (0.0, -179.9999),
    ];
    for (lat, lng) in spots {
        m.upsert(VolunteerState {
            position: ll(lat, lng),
            ..volunteer(0.0)
        });
    }
    for (lat, lng) in [
        (90.0, 0.0),
        (-90.0, 180.0),
        (0.0, 180.0),
        (0.0, -180.0),
        (89.9999, 0.0),
    ] {
        let found = Ask {
            point: ll(lat, lng),
            radius_m: 5_000.0,
            ..Ask::new()
        }
        .run(&m);
        assert!(found.len() <= spots.len(), "{lat},{lng}: {found:?}");
        assert!(found.iter().all(|c| c.distance_m.is_finite()), "{found:?}");
    }
    // Next to the pole the metric still finds the volunteer a few metres away.
    let near_pole = Ask {
        point: ll(89.9999, 0.001),
        radius_m: 100.0,
        ..Ask::new()
    };
    assert_eq!(near_pole.run(&m).len(), 1);
}
