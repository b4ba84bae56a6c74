//! Write-behind positions (`kreki_dispatch::positions`): the matcher moves at once, the table
//! follows within a flush interval, coalesced per volunteer, never moving anyone back.

pub mod common;

use std::time::{Duration, Instant};

use chrono::{DateTime, DurationRound, Utc};
use common::{MONAS, Person, TestApp, offset};
use http::{Method, StatusCode};
use kreki_dispatch::LatLng;
use kreki_dispatch::positions::{Full, PositionWriter};
use serde_json::json;
use sqlx::PgPool;

/// Now, to the microsecond PostgreSQL keeps.
fn now_us() -> DateTime<Utc> {
    Utc::now()
        .duration_trunc(chrono::Duration::microseconds(1))
        .expect("truncates")
}

async fn post(app: &TestApp, who: &Person, at: (f64, f64), recorded_at: DateTime<Utc>) {
    let (status, body) = app
        .call(
            Method::POST,
            "/v1/volunteers/me/location",
            Some(who),
            Some(json!({"lat": at.0, "lng": at.1, "accuracy_m": 5, "recorded_at": recorded_at})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}

/// The stored row's position time and latitude.
async fn row(pool: &PgPool, who: &Person) -> (Option<DateTime<Utc>>, f64) {
    sqlx::query_as(
        "SELECT location_at, ST_Y(location::geometry) FROM dispatch.volunteers WHERE user_id = $1",
    )
    .bind(who.id)
    .fetch_one(pool)
    .await
    .expect("the row")
}

#[sqlx::test(migrations = "../migrations")]
async fn positions_reach_the_matcher_at_once_and_the_table_within_the_flush_interval(pool: PgPool) {
    let mut app = TestApp::new(pool.clone()).await;
    app.start_workers();
    let volunteer = app.volunteer_at("Rina", MONAS.0, MONAS.1, &[]).await;
    let moved = offset(MONAS.0, MONAS.1, 500.0, 0.0);
    let at = now_us();
    let sent = Instant::now();
    post(&app, &volunteer, moved, at).await;
    assert_eq!(app.service.matcher_position_at(volunteer.id), Some(at));
    loop {
        let (stored_at, lat) = row(&pool, &volunteer).await;
        if stored_at == Some(at) {
            assert!((lat - moved.0).abs() < 1e-9);
            break;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(3),
            "the row did not follow within 3 s (flush interval 200 ms)"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn older_positions_move_nobody_back_in_the_matcher_or_the_table(pool: PgPool) {
    let a = TestApp::new(pool.clone()).await; // no flusher: flushes are explicit here
    let volunteer = a.volunteer_at("Rina", MONAS.0, MONAS.1, &[]).await;
    let b = TestApp::new(pool.clone()).await; // knows the volunteer from its rebuild
    assert!(b.service.in_matcher(volunteer.id));
    // After the first position, and in the past by the time they are sent.
    let base = now_us();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let ms = |n: i64| base + chrono::Duration::milliseconds(n);
    let (t1, t2, t3) = (ms(10), ms(20), ms(30));
    let north = |m: f64| offset(MONAS.0, MONAS.1, m, 0.0);

    // Out of order on one instance: the matcher keeps the newest, the flush writes it.
    post(&a, &volunteer, north(200.0), t2).await;
    post(&a, &volunteer, north(100.0), t1).await;
    assert_eq!(a.service.matcher_position_at(volunteer.id), Some(t2));
    assert_eq!(a.service.flush_positions().await.expect("flush"), 1);
    let (stored_at, lat) = row(&pool, &volunteer).await;
    assert_eq!(stored_at, Some(t2));
    assert!((lat - north(200.0).0).abs() < 1e-9);

    // A newer position written by another instance is not overwritten by an older flush.
    // (Through the service: B's tokens come from its own key.)
    let far = north(300.0);
    b.service
        .update_location(
            volunteer.id,
            "",
            LatLng::new(far.0, far.1).expect("valid"),
            None,
            Some(t3),
        )
        .await
        .expect("accepted on B");
    b.service.flush_positions().await.expect("flush on B");
    let older = ms(25);
    post(&a, &volunteer, north(250.0), older).await;
    assert_eq!(a.service.matcher_position_at(volunteer.id), Some(older));
    let rows_before = a.service.position_writer().rows_written();
    a.service.flush_positions().await.expect("flush on A");
    assert_eq!(a.service.position_writer().rows_written(), rows_before);
    let (stored_at, lat) = row(&pool, &volunteer).await;
    assert_eq!(stored_at, Some(t3));
    assert!((lat - north(300.0).0).abs() < 1e-9);
    // A's catch-up then takes the newer position from the table.
    a.service.catch_up_volunteers().await.expect("catch-up");
    assert_eq!(a.service.matcher_position_at(volunteer.id), Some(t3));
}

#[sqlx::test(migrations = "../migrations")]
async fn a_thousand_positions_of_one_volunteer_cost_one_row_write(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let volunteer = app.volunteer_at("Rina", MONAS.0, MONAS.1, &[]).await;
    let start = now_us();
    tokio::time::sleep(Duration::from_millis(10)).await;
    let mut last = start;
    for i in 1..=1000 {
        last = start + chrono::Duration::microseconds(i);
        app.service
            .update_location(
                volunteer.id,
                "",
                LatLng::new(MONAS.0 + 1e-6 * i as f64, MONAS.1).expect("valid"),
                Some(5.0),
                Some(last),
            )
            .await
            .expect("accepted");
    }
    let writer = app.service.position_writer();
    assert_eq!(writer.pending(), 1);
    let before = writer.rows_written();
    assert_eq!(app.service.flush_positions().await.expect("flush"), 1);
    assert_eq!(writer.rows_written() - before, 1);
    assert_eq!(writer.pending(), 0);
    let (stored_at, lat) = row(&pool, &volunteer).await;
    assert_eq!(stored_at, Some(last));
    assert!((lat - (MONAS.0 + 1000e-6)).abs() < 1e-9);
}

#[sqlx::test(migrations = "../migrations")]
async fn shutdown_writes_what_is_pending(pool: PgPool) {
    let config = kreki_dispatch::DispatchConfig {
        position_flush_interval_ms: 10_000, // no periodic flush during the test
        ..Default::default()
    };
    let mut app = TestApp::with_config(pool.clone(), config).await;
    let volunteer = app.volunteer_at("Rina", MONAS.0, MONAS.1, &[]).await;
    app.start_workers();
    let at = now_us();
    post(&app, &volunteer, offset(MONAS.0, MONAS.1, 400.0, 0.0), at).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_ne!(
        row(&pool, &volunteer).await.0,
        Some(at),
        "written before the shutdown"
    );
    app.shutdown.cancel();
    let deadline = Instant::now() + Duration::from_secs(3);
    while row(&pool, &volunteer).await.0 != Some(at) || app.service.position_writer().pending() > 0
    {
        assert!(Instant::now() < deadline, "not written at shutdown");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn another_instance_catches_up_on_flushed_positions(pool: PgPool) {
    let a = TestApp::new(pool.clone()).await;
    let volunteer = a.volunteer_at("Budi", MONAS.0, MONAS.1, &[]).await;
    let b = TestApp::new(pool.clone()).await;
    let first = b.service.matcher_position_at(volunteer.id);
    assert!(first.is_some());
    let at = now_us();
    post(&a, &volunteer, offset(MONAS.0, MONAS.1, 800.0, 0.0), at).await;
    b.service.catch_up_volunteers().await.expect("catch-up");
    assert_eq!(
        b.service.matcher_position_at(volunteer.id),
        first,
        "not flushed yet: B cannot know"
    );
    a.service.flush_positions().await.expect("flush");
    b.service.catch_up_volunteers().await.expect("catch-up");
    assert_eq!(b.service.matcher_position_at(volunteer.id), Some(at));
}

#[sqlx::test(migrations = "../migrations")]
async fn a_failed_flush_keeps_the_latest_and_the_map_stays_bounded(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let rina = app.volunteer_at("Rina", MONAS.0, MONAS.1, &[]).await;
    let budi = app.volunteer_at("Budi", MONAS.0, MONAS.1, &[]).await;
    let sari = app.volunteer_at("Sari", MONAS.0, MONAS.1, &[]).await;
    // A database that does not answer.
    let down = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(300))
        .connect_lazy("postgres://postgres@127.0.0.1:1/nothing")
        .expect("a lazy pool");
    let writer = std::sync::Arc::new(PositionWriter::new(2));
    let here = |m: f64| {
        let (lat, lng) = offset(MONAS.0, MONAS.1, m, 0.0);
        LatLng::new(lat, lng).expect("valid")
    };
    let t0 = now_us();
    let t = move |s: i64| t0 + chrono::Duration::seconds(s);
    writer
        .submit(rina.id, "", here(100.0), None, t(1))
        .await
        .expect("room");
    writer
        .submit(budi.id, "", here(100.0), None, t(1))
        .await
        .expect("room");
    assert!(writer.flush(&down).await.is_err());
    assert!(writer.flush(&down).await.is_err());
    assert_eq!(writer.flush_failures(), 2);
    assert_eq!(writer.pending(), 2, "kept for the retry");
    // Newer positions of queued volunteers replace theirs: still two entries.
    writer
        .submit(rina.id, "", here(200.0), None, t(2))
        .await
        .expect("replaces");
    writer
        .submit(rina.id, "", here(50.0), None, t(0))
        .await
        .expect("older: ignored");
    assert_eq!(writer.pending(), 2);
    // A third volunteer finds the map full and gives up after waiting.
    let started = Instant::now();
    assert_eq!(
        writer.submit(sari.id, "", here(300.0), None, t(3)).await,
        Err(Full)
    );
    assert!(started.elapsed() >= kreki_dispatch::positions::FULL_WAIT);
    assert_eq!(writer.pending(), 2, "never beyond its capacity");
    // A waiting position gets in as soon as a flush makes room.
    let waiting = tokio::spawn({
        let writer = writer.clone();
        let sari = sari.id;
        async move { writer.submit(sari, "", here(300.0), None, t(3)).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiting.is_finished());
    assert_eq!(writer.flush(&pool).await.expect("the database is back"), 2);
    assert_eq!(waiting.await.expect("joins"), Ok(()));
    assert_eq!(writer.pending(), 1);
    assert_eq!(row(&pool, &rina).await.0, Some(t(2)));
    assert_eq!(row(&pool, &budi).await.0, Some(t(1)));
    writer.flush(&pool).await.expect("flush");
    assert_eq!(row(&pool, &sari).await.0, Some(t(3)));
}
