//! Retention (issue 18) against PostgreSQL + PostGIS: one pass of the job, in small batches,
//! deletes location history older than the period and stale last positions of volunteers off
//! duty, deletes finished drills past theirs with everything hanging off them, and coarsens the
//! exact position of old closed alerts (the incident itself stays); a second pass finds nothing.

use chrono::{Duration, Utc};
use kreki_dispatch::retention::{Pruned, RetentionConfig, run_once};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const LAT: f64 = -6.175392;
const LNG: f64 = 106.827153;

async fn history(pool: &PgPool, volunteer: Uuid, days_ago: i64, n: usize) {
    for _ in 0..n {
        sqlx::query(
            "INSERT INTO dispatch.location_history (volunteer_id, location, recorded_at)
             VALUES ($1, ST_SetSRID(ST_MakePoint($2, $3), 4326)::geography, now() - make_interval(days => $4::int))",
        )
        .bind(volunteer)
        .bind(LNG)
        .bind(LAT)
        .bind(days_ago as i32)
        .execute(pool)
        .await
        .expect("history row");
    }
}

async fn volunteer(pool: &PgPool, on_duty: bool, days_ago: i64) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO dispatch.volunteers (user_id, name, on_duty, location, h3_cell, location_at)
         VALUES ($1, 'Relawan', $2, ST_SetSRID(ST_MakePoint($3, $4), 4326)::geography, 1,
                 now() - make_interval(days => $5::int))",
    )
    .bind(id)
    .bind(on_duty)
    .bind(LNG)
    .bind(LAT)
    .bind(days_ago as i32)
    .execute(pool)
    .await
    .expect("volunteer row");
    id
}

async fn alert(pool: &PgPool, drill: bool, status: &str, days_ago: i64) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO dispatch.alerts (id, citizen_id, citizen_name, kind, status, location, h3_cell,
                                      responders_needed, drill, created_at)
         VALUES ($1, $2, 'Warga', 'medical', $3, ST_SetSRID(ST_MakePoint($4, $5), 4326)::geography,
                 1, 1, $6, now() - make_interval(days => $7::int))",
    )
    .bind(id)
    .bind(Uuid::now_v7())
    .bind(status)
    .bind(LNG)
    .bind(LAT)
    .bind(drill)
    .bind(days_ago as i32)
    .execute(pool)
    .await
    .expect("alert row");
    sqlx::query(
        "INSERT INTO dispatch.alert_events (alert_id, type, actor, data)
         VALUES ($1, 'created', NULL, jsonb_build_object('kind', 'medical', 'drill', $2,
                 'location', jsonb_build_object('lat', $3::float8, 'lng', $4::float8, 'accuracy_m', 5)))",
    )
    .bind(id)
    .bind(drill)
    .bind(LAT)
    .bind(LNG)
    .execute(pool)
    .await
    .expect("event row");
    sqlx::query(
        "INSERT INTO dispatch.offers (id, alert_id, volunteer_id, wave, distance_m, status, expires_at)
         VALUES ($1, $2, $3, 1, 100, 'expired', now())",
    )
    .bind(Uuid::now_v7())
    .bind(id)
    .bind(Uuid::now_v7())
    .execute(pool)
    .await
    .expect("offer row");
    id
}

async fn count(pool: &PgPool, sql: &'static str, id: Uuid) -> i64 {
    sqlx::query_scalar(sql)
        .bind(id)
        .fetch_one(pool)
        .await
        .expect("counted")
}

#[sqlx::test(migrations = "../migrations")]
async fn old_positions_and_drills_go_and_old_alerts_are_coarsened_in_batches(pool: PgPool) {
    let config = RetentionConfig {
        batch_rows: 2,
        batch_pause_ms: 0,
        ..RetentionConfig::default()
    };
    let moving = volunteer(&pool, false, 40).await;
    let on_duty = volunteer(&pool, true, 40).await;
    let recent = volunteer(&pool, false, 1).await;
    history(&pool, moving, 40, 5).await;
    history(&pool, moving, 1, 3).await;
    let old_drill = alert(&pool, true, "resolved", 100).await;
    let young_drill = alert(&pool, true, "cancelled", 10).await;
    let old_real = alert(&pool, false, "resolved", 400).await;
    let old_open = alert(&pool, false, "assigned", 400).await;

    let shutdown = CancellationToken::new();
    let pruned = run_once(&pool, &config, Utc::now(), &shutdown)
        .await
        .expect("a pass");
    assert_eq!(
        pruned,
        Pruned {
            location_history: 5,
            stale_positions: 1,
            drill_alerts: 1,
            coarsened_alerts: 1,
        }
    );

    let history_left: i64 =
        sqlx::query_scalar("SELECT count(*) FROM dispatch.location_history WHERE recorded_at < now() - interval '30 days'")
            .fetch_one(&pool)
            .await
            .expect("counted");
    assert_eq!(history_left, 0);
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM dispatch.location_history WHERE volunteer_id = $1",
            moving
        )
        .await,
        3
    );
    let position =
        "SELECT count(*) FROM dispatch.volunteers WHERE user_id = $1 AND location IS NOT NULL";
    assert_eq!(
        count(&pool, position, moving).await,
        0,
        "stale position forgotten"
    );
    assert_eq!(count(&pool, position, on_duty).await, 1, "on duty: kept");
    assert_eq!(count(&pool, position, recent).await, 1, "recent: kept");

    let alert_exists = "SELECT count(*) FROM dispatch.alerts WHERE id = $1";
    assert_eq!(count(&pool, alert_exists, old_drill).await, 0);
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM dispatch.offers WHERE alert_id = $1",
            old_drill
        )
        .await
            + count(
                &pool,
                "SELECT count(*) FROM dispatch.alert_events WHERE alert_id = $1",
                old_drill
            )
            .await,
        0
    );
    assert_eq!(count(&pool, alert_exists, young_drill).await, 1);
    assert_eq!(
        count(&pool, alert_exists, old_real).await,
        1,
        "the incident stays"
    );

    let (lat, lng, event_lat): (f64, f64, f64) = sqlx::query_as(
        "SELECT ST_Y(a.location::geometry), ST_X(a.location::geometry), (e.data #>> '{location,lat}')::float8
         FROM dispatch.alerts a JOIN dispatch.alert_events e ON e.alert_id = a.id WHERE a.id = $1",
    )
    .bind(old_real)
    .fetch_one(&pool)
    .await
    .expect("read");
    assert!(
        (lat - -6.18).abs() < 1e-9 && (lng - 106.83).abs() < 1e-9,
        "{lat},{lng}"
    );
    assert!((event_lat - -6.18).abs() < 1e-9, "{event_lat}");
    let exact =
        "SELECT count(*) FROM dispatch.alerts WHERE id = $1 AND location_coarsened_at IS NULL";
    assert_eq!(count(&pool, exact, old_open).await, 1, "still open: exact");
    assert_eq!(count(&pool, exact, young_drill).await, 1, "young: exact");

    let again = run_once(&pool, &config, Utc::now() + Duration::seconds(1), &shutdown)
        .await
        .expect("a pass");
    assert_eq!(again, Pruned::default());
}
