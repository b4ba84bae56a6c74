//! The load generator kept honest: small `steady`, `surge` and `throughput` runs of
//! `kreki_sim::loadtest` against a real `kreki serve`, asserting the correctness checks (every
//! panic acknowledged and dispatched, none lost, no volunteer double-booked, every offer
//! delivered), never timing.

use std::time::Duration;

use kreki::config::Config;
use kreki_dispatch::domain::AlertKind;
use kreki_sim::loadtest::volunteers::Behaviour;
use kreki_sim::loadtest::{Mode, Plan, Ramp, Report};
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

fn plan(server: &Server, mode: Mode, volunteers: usize) -> Plan {
    Plan {
        mode,
        url: server.base.clone(),
        volunteers,
        kind: AlertKind::Medical,
        seed: kreki_sim::loadtest::DEFAULT_SEED,
        behaviour: Behaviour {
            accepts: true,
            think_min: Duration::from_millis(20),
            think_max: Duration::from_millis(200),
            busy: Duration::from_millis(300),
        },
        settle: Duration::from_secs(20),
        server_pid: None,
        commit: Some("test".to_owned()),
    }
}

async fn run(config: &Config, plan: &Plan) -> Report {
    let instance = kreki::cli::loadtest_instance(config).expect("valid database settings");
    kreki_sim::loadtest::run(instance, plan)
        .await
        .expect("the run completes")
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
    let steady = Mode::Steady {
        rate_per_s: 20.0,
        duration: Duration::from_secs(1),
    };
    let report = run(&config, &plan(&server, steady, 200)).await;
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
    let surge = Mode::Surge {
        panics: 150,
        within: Duration::from_secs(1),
    };
    let report = run(&config, &plan(&server, surge, 200)).await;
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
    // The surge's headline: when the last offers went out after the first panic.
    assert!(
        report.last_offers_s > 0.0 && report.last_offers_s <= report.last_dispatched_s,
        "{}",
        report.render()
    );
    assert!(
        report
            .render()
            .contains("| last offers out after the first panic |")
    );
}

#[sqlx::test(migrations = false)]
async fn a_mini_throughput_ramp_cancels_each_step_and_loses_nothing(pool: PgPool) {
    let dir = TempDir::new();
    let (server, config) = start(&pool, &dir).await;
    // Three one-second steps of 10, 20 and 30 panics/s against 200 volunteers who never accept.
    let ramp = Ramp {
        from_per_s: 10.0,
        step_per_s: 10.0,
        to_per_s: 30.0,
        step: Duration::from_secs(1),
        grace: Duration::from_secs(2),
    };
    let report = run(&config, &plan(&server, Mode::Throughput(ramp), 200)).await;
    let problems = report.problems();
    assert!(problems.is_empty(), "{problems:?}\n{}", report.render());
    let steps = &report.steps;
    assert!(!steps.is_empty(), "{}", report.render());
    // The ramp climbs while steps are sustained and stops at the first that is not.
    let climbed: Vec<f64> = steps.iter().map(|step| step.rate_per_s).collect();
    assert_eq!(
        climbed,
        [10.0, 20.0, 30.0][..steps.len()],
        "{}",
        report.render()
    );
    assert!(
        steps[..steps.len() - 1]
            .iter()
            .all(|step| step.verdict.sustained()),
        "{}",
        report.render()
    );
    assert!(steps.len() == 3 || !steps[steps.len() - 1].verdict.sustained());
    let panics: usize = steps.iter().map(|step| step.panics).sum();
    assert_eq!(report.planned, panics);
    assert_eq!(report.created, panics, "{}", report.render());
    assert!(steps.iter().all(|step| step.acknowledged == step.panics));
    assert_eq!(report.offered + report.unmatched, report.alerts);
    assert!(
        steps[0].waves_per_s.is_some(),
        "the database shows the first step's waves: {}",
        report.render()
    );
    assert_eq!(report.accepted, 0, "throughput volunteers only read offers");
    assert!(report.render().contains("Highest sustained step") || report.sustained().is_none());

    // Every step's alerts were cancelled before the next: none is left open.
    let (open,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM dispatch.alerts WHERE status <> 'cancelled'")
            .fetch_one(&pool)
            .await
            .expect("counted");
    assert_eq!(open, 0);
}
