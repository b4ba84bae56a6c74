//! The matcher against PostGIS, the source of truth: for random volunteer sets around random points
//! of greater Jakarta, `Matcher::nearest` must return exactly the volunteers, in the same order, that
//! PostGIS returns for the same rule (`ST_DWithin` on `geography` + the eligibility filters +
//! `ORDER BY ST_Distance LIMIT n`).
//!
//! Parity is exact, not approximate: the matcher measures with the WGS84 ellipsoid flattened around
//! the query point, which stays within 0.05 mm of PostGIS's geodesic distance at Jakarta's latitude
//! up to 5 km (see `kreki_dispatch::geo`). So the lists must have the same length and the same ids
//! in the same order; the only leeway is for volunteers whose distances differ by less than 1 cm
//! (the generator places some at identical positions on purpose), which may come in either order or
//! trade places at the cut-off of `limit`. Distances must agree within 1 cm.
//!
//! The cases come from proptest with a fixed seed (48 cases, a few seconds; set
//! `KREKI_ORACLE_CASES` for more). Proptest's runner is
//! synchronous, so it runs on a blocking thread and each case drives its SQL with
//! `Handle::block_on`, while the test's own runtime keeps driving the connections.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use kreki_dispatch::geo::LatLng;
use kreki_dispatch::matcher::{
    Candidate, CertSet, MatchQuery, Matcher, MatcherConfig, VolunteerState,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use sqlx::PgPool;
use uuid::Uuid;

/// Certification codes the generator draws from (bit i of a mask = `CODES[i]`).
const CODES: [&str; 3] = ["bls", "first_aid", "fire_basic"];

const MAX_AGE: Duration = Duration::from_secs(600);

/// Metres per degree of latitude, roughly; only used to scatter points.
const M_PER_DEG: f64 = 111_000.0;

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_795_000_000, 0).unwrap_or_default()
}

#[derive(Debug, Clone)]
struct GenVolunteer {
    /// Offset from the case's centre, metres east and north.
    east_m: f64,
    north_m: f64,
    /// Sits exactly on the previous volunteer's position (exercises ties).
    same_as_previous: bool,
    on_duty: bool,
    busy: bool,
    age_s: i64,
    /// None, ended (past) or ongoing (future), in seconds from now.
    rest_s: Option<i64>,
    cert_mask: u8,
    verified: bool,
    excluded: bool,
}

#[derive(Debug, Clone)]
struct Case {
    center_lat: f64,
    center_lng: f64,
    resolution: u8,
    volunteers: Vec<GenVolunteer>,
    query_east_m: f64,
    query_north_m: f64,
    radius_m: f64,
    limit: usize,
    required_mask: u8,
    requires_verified: bool,
}

fn volunteer_strategy() -> impl Strategy<Value = GenVolunteer> {
    (
        (
            -6_000.0..6_000.0_f64,
            -6_000.0..6_000.0_f64,
            prop::bool::weighted(0.05),
        ),
        (
            prop::bool::weighted(0.85),
            prop::bool::weighted(0.1),
            0..900_i64,
        ),
        prop::option::weighted(0.2, -600..600_i64),
        (0..8_u8, any::<bool>(), prop::bool::weighted(0.05)),
    )
        .prop_map(
            |(
                (east_m, north_m, same_as_previous),
                (on_duty, busy, age_s),
                rest_s,
                (cert_mask, verified, excluded),
            )| GenVolunteer {
                east_m,
                north_m,
                same_as_previous,
                on_duty,
                busy,
                age_s,
                rest_s,
                cert_mask,
                verified,
                excluded,
            },
        )
}

fn case_strategy() -> impl Strategy<Value = Case> {
    (
        (-6.40..-6.05_f64, 106.65..107.05_f64, 8..=10_u8),
        prop::collection::vec(volunteer_strategy(), 0..400),
        (-1_500.0..1_500.0_f64, -1_500.0..1_500.0_f64),
        prop_oneof![
            Just(1_000.0),
            Just(2_000.0),
            Just(5_000.0),
            50.0..5_000.0_f64
        ],
        1..30_usize,
        (prop_oneof![Just(0_u8), 0..8_u8], prop::bool::weighted(0.2)),
    )
        .prop_map(
            |(
                (center_lat, center_lng, resolution),
                volunteers,
                (query_east_m, query_north_m),
                radius_m,
                limit,
                (required_mask, requires_verified),
            )| Case {
                center_lat,
                center_lng,
                resolution,
                volunteers,
                query_east_m,
                query_north_m,
                radius_m,
                limit,
                required_mask,
                requires_verified,
            },
        )
}

fn offset(lat: f64, lng: f64, east_m: f64, north_m: f64) -> Result<LatLng, TestCaseError> {
    let lat2 = lat + north_m / M_PER_DEG;
    let lng2 = lng + east_m / (M_PER_DEG * lat.to_radians().cos());
    LatLng::new(lat2, lng2).map_err(|e| TestCaseError::fail(e.to_string()))
}

fn codes(mask: u8) -> Vec<&'static str> {
    CODES
        .iter()
        .enumerate()
        .filter(|(bit, _)| mask & (1 << bit) != 0)
        .map(|(_, code)| *code)
        .collect()
}

fn cert_set(mask: u8) -> Result<CertSet, TestCaseError> {
    CertSet::from_codes(&codes(mask)).map_err(|e| TestCaseError::fail(e.to_string()))
}

/// The volunteers of a case as the matcher sees them, plus the excluded ids.
fn states(case: &Case) -> Result<(Vec<VolunteerState>, HashSet<Uuid>), TestCaseError> {
    let mut states: Vec<VolunteerState> = Vec::with_capacity(case.volunteers.len());
    let mut excluded = HashSet::new();
    for (i, v) in case.volunteers.iter().enumerate() {
        let position = match states.last() {
            Some(previous) if v.same_as_previous => previous.position,
            _ => offset(case.center_lat, case.center_lng, v.east_m, v.north_m)?,
        };
        // Deterministic ids, so a failing case prints the same ids every run.
        let id = Uuid::from_u128(0x6b72_656b_6900_0000_0000_0000_0000_0000 + i as u128);
        if v.excluded {
            excluded.insert(id);
        }
        states.push(VolunteerState {
            id,
            position,
            position_at: now() - TimeDelta::seconds(v.age_s),
            on_duty: v.on_duty,
            busy: v.busy,
            rest_until: v.rest_s.map(|s| now() + TimeDelta::seconds(s)),
            certifications: cert_set(v.cert_mask)?,
            verified_practitioner: v.verified,
        });
    }
    Ok((states, excluded))
}

async fn create_table(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query("CREATE EXTENSION IF NOT EXISTS postgis")
        .execute(pool)
        .await?;
    sqlx::query(
        "CREATE TABLE oracle_volunteer (
            id uuid PRIMARY KEY,
            position geography(Point, 4326) NOT NULL,
            position_at timestamptz NOT NULL,
            on_duty boolean NOT NULL,
            busy boolean NOT NULL,
            rest_until timestamptz,
            certifications text[] NOT NULL,
            verified_practitioner boolean NOT NULL
        )",
    )
    .execute(pool)
    .await?;
    sqlx::query("CREATE INDEX oracle_volunteer_position ON oracle_volunteer USING gist (position)")
        .execute(pool)
        .await?;
    Ok(())
}

async fn load(pool: &PgPool, states: &[VolunteerState]) -> Result<(), sqlx::Error> {
    sqlx::query("TRUNCATE oracle_volunteer")
        .execute(pool)
        .await?;
    let ids: Vec<Uuid> = states.iter().map(|v| v.id).collect();
    let lats: Vec<f64> = states.iter().map(|v| v.position.lat()).collect();
    let lngs: Vec<f64> = states.iter().map(|v| v.position.lng()).collect();
    let position_ats: Vec<DateTime<Utc>> = states.iter().map(|v| v.position_at).collect();
    let on_duty: Vec<bool> = states.iter().map(|v| v.on_duty).collect();
    let busy: Vec<bool> = states.iter().map(|v| v.busy).collect();
    let rest_until: Vec<Option<DateTime<Utc>>> = states.iter().map(|v| v.rest_until).collect();
    let certs: Vec<String> = states
        .iter()
        .map(|v| v.certifications.codes().join(","))
        .collect();
    let verified: Vec<bool> = states.iter().map(|v| v.verified_practitioner).collect();
    sqlx::query(
        "INSERT INTO oracle_volunteer
         SELECT id, ST_SetSRID(ST_MakePoint(lng, lat), 4326)::geography, position_at, on_duty,
                busy, rest_until, COALESCE(string_to_array(NULLIF(certs, ''), ','), '{}'), verified
         FROM UNNEST($1::uuid[], $2::float8[], $3::float8[], $4::timestamptz[], $5::bool[],
                     $6::bool[], $7::timestamptz[], $8::text[], $9::bool[])
              AS t(id, lat, lng, position_at, on_duty, busy, rest_until, certs, verified)",
    )
    .bind(&ids)
    .bind(&lats)
    .bind(&lngs)
    .bind(&position_ats)
    .bind(&on_duty)
    .bind(&busy)
    .bind(&rest_until)
    .bind(&certs)
    .bind(&verified)
    .execute(pool)
    .await?;
    Ok(())
}

/// The rule, in SQL. `ST_DWithin` and `ST_Distance` on `geography` are geodesic on WGS84.
async fn oracle(
    pool: &PgPool,
    query: &MatchQuery<'_>,
    required: &[&str],
) -> Result<Vec<(Uuid, f64)>, sqlx::Error> {
    let exclude: Vec<Uuid> = query.exclude.iter().copied().collect();
    let max_age_s = MAX_AGE.as_secs_f64();
    sqlx::query_as(
        "SELECT id, ST_Distance(position, q.point) AS distance_m
         FROM oracle_volunteer,
              (SELECT ST_SetSRID(ST_MakePoint($1, $2), 4326)::geography AS point) AS q
         WHERE ST_DWithin(position, q.point, $3)
           AND on_duty AND NOT busy
           AND position_at > $4 - make_interval(secs => $5)
           AND (rest_until IS NULL OR rest_until <= $4)
           AND certifications @> $6::text[]
           AND (verified_practitioner OR NOT $7)
           AND NOT (id = ANY($8))
         ORDER BY distance_m
         LIMIT $9",
    )
    .bind(query.point.lng())
    .bind(query.point.lat())
    .bind(query.radius_m)
    .bind(query.now)
    .bind(max_age_s)
    .bind(required)
    .bind(query.requires_verified)
    .bind(&exclude)
    .bind(i64::try_from(query.limit).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await
}

/// Distances closer than this count as a tie.
const TIE_M: f64 = 0.01;

fn compare(found: &[Candidate], expected: &[(Uuid, f64)]) -> Result<(), TestCaseError> {
    let show = || format!("matcher {found:?}\n postgis {expected:?}");
    prop_assert_eq!(found.len(), expected.len(), "lengths differ: {}", show());
    for (i, (got, &(id, distance_m))) in found.iter().zip(expected).enumerate() {
        prop_assert!(
            (got.distance_m - distance_m).abs() < TIE_M,
            "distance #{} differs: {}",
            i,
            show()
        );
        if got.id != id {
            // Only acceptable among ties: someone in the PostGIS list at the same distance, or,
            // at the cut-off, someone PostGIS left out at the same distance as its last one.
            let tied_in_list = expected
                .iter()
                .any(|&(other, d)| other == got.id && (d - got.distance_m).abs() < TIE_M);
            let tied_at_cut = expected
                .last()
                .is_some_and(|&(_, last)| (last - got.distance_m).abs() < TIE_M);
            prop_assert!(
                tied_in_list || tied_at_cut,
                "#{} is {} instead of {}: {}",
                i,
                got.id,
                id,
                show()
            );
        }
    }
    Ok(())
}

/// Returns how many candidates PostGIS found, so the test can tell it was not vacuous.
async fn check(pool: &PgPool, case: &Case) -> Result<usize, TestCaseError> {
    let (states, excluded) = states(case)?;
    load(pool, &states)
        .await
        .map_err(|e| TestCaseError::fail(format!("load: {e}")))?;
    let mut matcher = Matcher::new(MatcherConfig {
        h3_resolution: case.resolution,
        position_max_age: MAX_AGE,
    });
    for state in &states {
        matcher.upsert(*state);
    }
    let required_codes = codes(case.required_mask);
    let required = cert_set(case.required_mask)?;
    let query = MatchQuery {
        point: offset(
            case.center_lat,
            case.center_lng,
            case.query_east_m,
            case.query_north_m,
        )?,
        radius_m: case.radius_m,
        limit: case.limit,
        required: &required,
        requires_verified: case.requires_verified,
        exclude: &excluded,
        now: now(),
    };
    let expected = oracle(pool, &query, &required_codes)
        .await
        .map_err(|e| TestCaseError::fail(format!("oracle query: {e}")))?;
    compare(&matcher.nearest(&query), &expected)?;
    Ok(expected.len())
}

#[sqlx::test]
async fn matcher_agrees_with_postgis(pool: PgPool) -> Result<(), sqlx::Error> {
    create_table(&pool).await?;
    // KREKI_ORACLE_CASES=1000 (say) for a deeper run; the seed stays fixed.
    let cases: u32 = std::env::var("KREKI_ORACLE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48);
    let handle = tokio::runtime::Handle::current();
    let non_empty = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&non_empty);
    let result = tokio::task::spawn_blocking(move || {
        let config = Config {
            cases,
            failure_persistence: None,
            max_shrink_iters: 200,
            ..Config::default()
        };
        let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[42; 32]);
        let mut runner = TestRunner::new_with_rng(config, rng);
        runner
            .run(&case_strategy(), |case| {
                let found = handle.block_on(check(&pool, &case))?;
                if found > 0 {
                    counted.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            })
            .map_err(|e| e.to_string())
    })
    .await;
    match result {
        Ok(Ok(())) => {
            let non_empty = non_empty.load(Ordering::Relaxed);
            assert!(
                non_empty >= cases as usize / 2,
                "only {non_empty} of {cases} cases found anyone"
            );
            Ok(())
        }
        Ok(Err(failure)) => panic!("the matcher disagrees with PostGIS: {failure}"),
        Err(join) => panic!("the property test thread died: {join}"),
    }
}

/// The oracle itself must not be vacuous: on a known layout it finds what a person would.
#[sqlx::test]
async fn oracle_finds_the_obvious(pool: PgPool) -> Result<(), sqlx::Error> {
    create_table(&pool).await?;
    let case = Case {
        center_lat: -6.2,
        center_lng: 106.85,
        resolution: 9,
        volunteers: [100.0, 900.0, 3_000.0]
            .iter()
            .map(|&north_m| GenVolunteer {
                east_m: 0.0,
                north_m,
                same_as_previous: false,
                on_duty: true,
                busy: false,
                age_s: 10,
                rest_s: None,
                cert_mask: 0b001,
                verified: true,
                excluded: false,
            })
            .collect(),
        query_east_m: 0.0,
        query_north_m: 0.0,
        radius_m: 2_000.0,
        limit: 10,
        required_mask: 0b001,
        requires_verified: false,
    };
    let (states, excluded) = states(&case).map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
    load(&pool, &states).await?;
    let required = cert_set(0b001).map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
    let point = LatLng::new(-6.2, 106.85).map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
    let query = MatchQuery {
        point,
        radius_m: 2_000.0,
        limit: 10,
        required: &required,
        requires_verified: false,
        exclude: &excluded,
        now: now(),
    };
    let found = oracle(&pool, &query, &["bls"]).await?;
    let ids: Vec<Uuid> = found.iter().map(|&(id, _)| id).collect();
    assert_eq!(ids, [states[0].id, states[1].id]);
    assert!((found[0].1 - 100.0).abs() < 1.0, "{found:?}");
    Ok(())
}
