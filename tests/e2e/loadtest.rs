//! The load generator kept honest: small `steady` and `surge` runs of `kreki::loadtest` against a
//! real `kreki serve`, asserting the correctness checks (every panic acknowledged and dispatched,
//! none lost, no volunteer double-booked, every offer delivered), never timing.

use std::time::Duration;

use kreki::config::Config;
use kreki::loadtest::volunteers::Behaviour;
use kreki::loadtest::{Plan, Report};
use kreki_dispatch::domain::AlertKind;
use sqlx::PgPool;

use crate::support::{Server, TempDir, database_url, signing_key};

async fn start(pool: &PgPool, dir: &TempDir) -> (Server, Config) {
    let key = signing_key(&dir.0);
    let url = database_url(pool);
    let server = Server::start(&[
        ("KREKI_DATABASE__URL", url.clone()),
        ("KREKI_AUTH__SIGNING_KEY_FILE", key.display().to_string()),
        // Volunteers who completed are offered again soon, as in the benchmark.
        ("KREKI_DISPATCH__REST_PERIOD_S", "2".to_owned()),
        // PostgreSQL's connections are shared with every other test running at the same time.
        ("KREKI_DATABASE__MAX_CONNECTIONS", "10".to_owned()),
    ])
    .await;
    let mut config = Config::default();
    config.database.url = url.into();
    config.database.acquire_timeout_ms = 15_000;
    config.database.max_connections = 4;
    config.auth.signing_key_file = Some(key);
    (server, config)
}

fn plan(server: &Server, mode: &'static str, volunteers: usize, panics: usize, rate: f64) -> Plan {
    Plan {
        mode,
        url: server.base.clone(),
        volunteers,
        panics,
        rate_per_s: rate,
        kind: AlertKind::Medical,
        seed: kreki::loadtest::DEFAULT_SEED,
        behaviour: Behaviour {
            think_min: Duration::from_millis(20),
            think_max: Duration::from_millis(200),
            busy: Duration::from_millis(300),
        },
        settle: Duration::from_secs(20),
        server_pid: None,
    }
}

fn assert_clean(report: &Report, panics: usize) {
    let problems = report.problems();
    assert!(problems.is_empty(), "{problems:?}\n{}", report.render());
    assert_eq!(
        report.created + report.replayed,
        panics,
        "{}",
        report.render()
    );
    assert_eq!(
        report.alerts,
        panics,
        "one alert per panic: {}",
        report.render()
    );
    assert_eq!(report.offered + report.unmatched, report.alerts);
    assert!(
        report.offered > 0 && report.accepted > 0,
        "the run dispatched and volunteers accepted: {}",
        report.render()
    );
    assert_eq!(report.offer_latency.count, report.offered);
}

#[sqlx::test(migrations = false)]
async fn a_small_steady_run_loses_nothing(pool: PgPool) {
    let dir = TempDir::new();
    let (server, config) = start(&pool, &dir).await;
    let report = kreki::loadtest::run(&config, &plan(&server, "steady", 200, 20, 20.0))
        .await
        .expect("the run completes");
    assert_clean(&report, 20);
    assert_eq!(report.volunteers, 200);
    assert!(report.offers_in_db > 0);
    assert_eq!(report.offer_frames as usize, report.offers_in_db);

    // The run's volunteers went off duty at its end: nobody is offered an alert any more.
    let (on_duty,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM dispatch.volunteers WHERE on_duty")
            .fetch_one(&pool)
            .await
            .expect("counted");
    assert_eq!(on_duty, 0);
}

#[sqlx::test(migrations = false)]
async fn a_mini_surge_loses_nothing_and_books_nobody_twice(pool: PgPool) {
    let dir = TempDir::new();
    let (server, config) = start(&pool, &dir).await;
    // 150 panics within a second against 200 volunteers: many alerts compete for the same
    // volunteers, every volunteer accepts every offer it gets.
    let report = kreki::loadtest::run(&config, &plan(&server, "surge", 200, 150, 150.0))
        .await
        .expect("the run completes");
    assert_clean(&report, 150);
    let refused: u64 = report.refused.values().sum();
    assert!(
        refused > 0,
        "competing accepts were refused (409), not all granted: {}",
        report.render()
    );
    let (active_twice,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM (SELECT volunteer_id FROM dispatch.assignments
           WHERE status IN ('accepted', 'en_route', 'on_scene')
           GROUP BY volunteer_id HAVING count(*) > 1) AS x",
    )
    .fetch_one(&pool)
    .await
    .expect("counted");
    assert_eq!(active_twice, 0);
}
