//! The dispatcher's scheduling: the safety-net poller must not stand in the way of the wake-ups
//! that send first waves right after commit (found by the end-to-end load test, BENCHMARKS.md).

pub mod common;

use std::time::Duration;

use common::{MONAS, TestApp, alert_body};
use http::StatusCode;
use sqlx::PgPool;

const WAIT: Duration = Duration::from_secs(20);
/// Far from Jakarta (Surabaya): nobody is on duty there, so every backlog alert runs its waves
/// empty and becomes `unmatched`.
const FAR: (f64, f64) = (-7.2575, 112.7521);
/// Fewer than one poll's batch, so a poller drained inline would take the new alert's row too.
const BACKLOG: usize = 150;

#[sqlx::test(migrations = "../migrations")]
async fn a_backlog_for_the_poller_does_not_hold_up_a_new_alerts_first_wave(pool: PgPool) {
    // An instance that commits alerts and dies before sending their waves leaves a backlog.
    let crashed = TestApp::new(pool.clone()).await;
    for index in 0..BACKLOG {
        let citizen = crashed.citizen(&format!("Warga {index}"));
        let (status, _) = crashed
            .panic(
                &citizen,
                &format!("backlog-{index}"),
                alert_body("other", FAR),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    // The next instance starts: its first poll finds the backlog and works through it.
    let mut app = TestApp::new(pool.clone()).await;
    let near = app.volunteer_at("Dekat", MONAS.0, MONAS.1, &[]).await;
    app.start_workers();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (done,): (i64,) =
            sqlx::query_as("SELECT count(*) FROM dispatch.outbox WHERE processed_at IS NOT NULL")
                .fetch_one(&pool)
                .await
                .expect("counted");
        if done > 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the poller never started on the backlog"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // A panic now gets its first wave through the wake-up, while the backlog is still being worked.
    let citizen = app.citizen("Sari");
    let (status, alert) = app
        .panic(&citizen, "fresh", alert_body("other", MONAS))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{alert}");
    let offer = app
        .notifier
        .wait_for_user(near.id, "offer", WAIT)
        .await
        .expect("the new alert's first wave went out");
    let (pending,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM dispatch.outbox WHERE processed_at IS NULL")
            .fetch_one(&pool)
            .await
            .expect("counted");
    assert_eq!(offer["offer"]["alert"]["id"], alert["id"]);
    assert!(
        pending > 0,
        "the new alert's wave waited until the poller had drained the whole backlog"
    );

    // And the backlog is not lost: every alert of it ends dispatched (here: unmatched).
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (open,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM dispatch.alerts a
             WHERE a.status <> 'unmatched' AND NOT EXISTS
               (SELECT 1 FROM dispatch.offers o WHERE o.alert_id = a.id)",
        )
        .fetch_one(&pool)
        .await
        .expect("counted");
        if open == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{open} alerts of the backlog were never dispatched"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(crashed);
}
