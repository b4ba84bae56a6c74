//! The hot path's queries can use their indexes (shown by EXPLAIN with sequential scans
//! discouraged, so the answer does not depend on how few rows a test table has).

use kreki_dispatch::store;
use sqlx::PgPool;
use uuid::Uuid;

async fn plan(pool: &PgPool, sql: &'static str, binds: &[Option<Uuid>]) -> String {
    let mut conn = pool.acquire().await.expect("a connection");
    sqlx::query("SET enable_seqscan = off")
        .execute(&mut *conn)
        .await
        .expect("set");
    let explain = sqlx::AssertSqlSafe(format!("EXPLAIN {sql}"));
    let mut query = sqlx::query_scalar::<_, String>(explain);
    for bind in binds {
        query = query.bind(*bind);
    }
    query
        .fetch_all(&mut *conn)
        .await
        .expect("explained")
        .join("\n")
}

/// EXPLAIN of the outbox claim of the alerts a dispatcher was woken for.
async fn woken_outbox_plan(pool: &PgPool, alerts: Vec<Uuid>) -> String {
    let mut conn = pool.acquire().await.expect("a connection");
    sqlx::query("SET enable_seqscan = off")
        .execute(&mut *conn)
        .await
        .expect("set");
    let explain = sqlx::AssertSqlSafe(format!("EXPLAIN {}", store::CLAIM_WOKEN_OUTBOX_SQL));
    sqlx::query_scalar::<_, String>(explain)
        .bind(alerts)
        .fetch_all(&mut *conn)
        .await
        .expect("explained")
        .join("\n")
}

#[sqlx::test(migrations = "../migrations")]
async fn claiming_work_uses_the_partial_indexes(pool: PgPool) {
    // Either partial index holds only the pending rows (an empty test table ties their costs).
    let outbox = plan(&pool, store::CLAIM_OUTBOX_SQL, &[]).await;
    assert!(
        outbox.contains("outbox_pending_idx") || outbox.contains("outbox_alert_pending_idx"),
        "{outbox}"
    );
    let woken = woken_outbox_plan(&pool, vec![Uuid::now_v7()]).await;
    assert!(woken.contains("outbox_alert_pending_idx"), "{woken}");
    let timers = plan(&pool, store::CLAIM_DUE_TIMER_SQL, &[]).await;
    assert!(timers.contains("timers_due_idx"), "{timers}");
    let live = plan(&pool, store::HAS_LIVE_OFFERS_SQL, &[Some(Uuid::now_v7())]).await;
    assert!(live.contains("offers_alert_pending_idx"), "{live}");
}

#[sqlx::test(migrations = "../migrations")]
async fn the_repeat_press_check_uses_an_index(pool: PgPool) {
    let mut conn = pool.acquire().await.expect("a connection");
    sqlx::query("SET enable_seqscan = off")
        .execute(&mut *conn)
        .await
        .expect("set");
    let explain = sqlx::AssertSqlSafe(format!("EXPLAIN {}", store::OPEN_ALERT_NEARBY_SQL));
    let rows: Vec<String> = sqlx::query_scalar(explain)
        .bind(Uuid::now_v7())
        .bind("medical")
        .bind(106.8_f64)
        .bind(-6.2_f64)
        .bind(500.0_f64)
        .bind(false)
        .fetch_all(&mut *conn)
        .await
        .expect("explained");
    let plan = rows.join("\n");
    assert!(
        plan.contains("alerts_citizen_open_idx") || plan.contains("alerts_location_gix"),
        "{plan}"
    );
}
