//! The prune worker: long-expired refresh tokens and finished throttle counters go, live ones stay,
//! and the worker stops when shutdown is signalled.

use std::time::Duration;

use kreki_platform::shutdown::CancellationToken;
use sqlx::PgPool;

use crate::common::{self, PASSWORD};

async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(pool)
        .await
        .expect("counted")
}

#[sqlx::test(migrations = "../migrations")]
async fn the_worker_prunes_only_what_is_over_and_stops_on_shutdown(pool: PgPool) {
    let app = common::spawn(pool.clone()).await;
    let phone = common::phone(1);
    app.create_user(&phone, &[]).await;
    app.tokens(&phone, PASSWORD).await;
    // One sign-in whose refresh token expired eight days ago, one that expired an hour ago.
    sqlx::query(
        "UPDATE auth.refresh_tokens SET expires_at = now() - interval '8 days'
         WHERE id = (SELECT id FROM auth.refresh_tokens ORDER BY issued_at, id LIMIT 1)",
    )
    .execute(&pool)
    .await
    .expect("aged");
    app.tokens(&phone, PASSWORD).await;
    sqlx::query(
        "UPDATE auth.refresh_tokens SET expires_at = now() - interval '1 hour'
         WHERE id = (SELECT id FROM auth.refresh_tokens ORDER BY issued_at DESC, id DESC LIMIT 1)",
    )
    .execute(&pool)
    .await
    .expect("aged");
    let live = app.tokens(&phone, PASSWORD).await;
    sqlx::query(
        "INSERT INTO auth.login_throttle (key, failures, window_started_at, blocked_until) VALUES
           ('ip:192.0.2.1', 4, now() - interval '2 hours', NULL),
           ('ip:192.0.2.2', 9, now() - interval '2 hours', now() + interval '5 minutes'),
           ('ip:192.0.2.3', 1, now(), NULL)",
    )
    .execute(&pool)
    .await
    .expect("counters");
    assert_eq!(
        count(&pool, "SELECT count(*) FROM auth.refresh_tokens").await,
        3
    );

    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(kreki_auth::worker::run(
        pool.clone(),
        app.config.throttle_window_s,
        shutdown.clone(),
    ));
    let mut waited_ms = 0;
    while count(&pool, "SELECT count(*) FROM auth.refresh_tokens").await > 2 {
        assert!(waited_ms < 10_000, "the first prune runs at once");
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited_ms += 50;
    }
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), worker)
        .await
        .expect("the worker stops on shutdown")
        .expect("the worker did not panic");

    assert_eq!(
        count(&pool, "SELECT count(*) FROM auth.refresh_tokens").await,
        2,
        "only the token a week past expiry is gone"
    );
    let keys: Vec<String> = sqlx::query_scalar("SELECT key FROM auth.login_throttle ORDER BY key")
        .fetch_all(&pool)
        .await
        .expect("keys");
    assert_eq!(
        keys,
        ["ip:192.0.2.2", "ip:192.0.2.3"],
        "a counter still blocking or still counting stays"
    );
    let renewed = app.refresh(&live.refresh).await;
    assert_eq!(renewed.status, reqwest::StatusCode::OK, "{renewed:#?}");
}
