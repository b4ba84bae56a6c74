//! The expiry sweep and the reminders before it (a module of the `api` test binary).

use std::time::{Duration, Instant};

use chrono::Utc;
use http::StatusCode;
use kreki_auth::Role;
use serde_json::json;
use sqlx::PgPool;

use crate::certificates::record;
use crate::support::TestApp;

#[sqlx::test(migrations = "../migrations")]
async fn the_sweep_acts_on_expiry_within_a_second_and_only_once(pool: PgPool) {
    let app = TestApp::new(pool);
    let trainer = app.person("Pelatih", &[Role::Trainer]);
    let volunteer = app.person("Budi", &[Role::Volunteer]);
    let shutdown = kreki_platform::shutdown::CancellationToken::new();
    let worker = tokio::spawn(kreki_lms::worker::run(
        app.service.clone(),
        shutdown.clone(),
    ));
    // Let the worker plan its first (long) sleep, so the issue below has to wake it.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let expires_at = Utc::now() + chrono::Duration::seconds(2);
    record(
        &app,
        &trainer,
        json!({"user_id": volunteer.id, "certification": "bls", "issued_at": Utc::now() - chrono::Duration::days(700),
               "expires_at": expires_at, "holder_name": "Budi"}),
    )
    .await;
    record(
        &app,
        &trainer,
        json!({"user_id": volunteer.id, "certification": "first_aid", "issued_at": Utc::now() - chrono::Duration::days(1), "holder_name": "Budi"}),
    )
    .await;
    assert_eq!(
        app.service.valid_certifications(volunteer.id).await.ok(),
        Some(vec!["bls".to_owned(), "first_aid".to_owned()])
    );
    app.recorder.clear();

    let deadline = Instant::now() + Duration::from_secs(6);
    while app.recorder.changes_of(volunteer.id) == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let noticed = Utc::now();
    assert_eq!(
        app.recorder.changes_of(volunteer.id),
        1,
        "the listener heard of the expiry"
    );
    let lag = noticed - expires_at;
    assert!(
        lag < chrono::Duration::seconds(1),
        "noticed {lag} after the expiry"
    );
    assert_eq!(
        app.service.valid_certifications(volunteer.id).await.ok(),
        Some(vec!["first_aid".to_owned()]),
        "bls lapsed; first aid still counts"
    );
    shutdown.cancel();
    worker.await.expect("the worker stops");

    // Acted on once: further sweeps, even two at once, find nothing.
    let (a, b) = tokio::join!(app.service.sweep_once(), app.service.sweep_once());
    assert_eq!(a.expect("sweep").expired + b.expect("sweep").expired, 0);
    assert_eq!(app.recorder.changes_of(volunteer.id), 1);
}

#[sqlx::test(migrations = "../migrations")]
async fn concurrent_sweeps_claim_each_expiry_once(pool: PgPool) {
    let app = TestApp::new(pool);
    let mut people = Vec::new();
    for n in 0..20 {
        let person = app.person(&format!("Relawan {n}"), &[Role::Volunteer]);
        sqlx::query(
            "INSERT INTO lms.certificates (id, user_id, certification, holder_name, issued_at, expires_at, code, source)
             VALUES (gen_random_uuid(), $1, 'bls', 'x', now() - interval '2 years', now() - interval '1 minute', $2, 'external')",
        )
        .bind(person.id)
        .bind(format!("TEST-{n}"))
        .execute(&app.pool)
        .await
        .expect("an expired certificate");
        people.push(person);
    }
    let (a, b, c) = tokio::join!(
        app.service.sweep_once(),
        app.service.sweep_once(),
        app.service.sweep_once()
    );
    let total = a.expect("sweep").expired + b.expect("sweep").expired + c.expect("sweep").expired;
    assert_eq!(total, 20);
    for person in &people {
        assert_eq!(app.recorder.changes_of(person.id), 1);
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn reminders_are_stored_and_delivered_once(pool: PgPool) {
    let app = TestApp::new(pool);
    let trainer = app.person("Pelatih", &[Role::Trainer]);
    let soon = app.person("Budi", &[Role::Volunteer]);
    let later = app.person("Sari", &[Role::Volunteer]);
    let renewed = app.person("Dewi", &[Role::Volunteer]);
    let now = Utc::now();
    let cert = |user: uuid::Uuid, days: i64, issued_days_ago: i64| {
        json!({"user_id": user, "certification": "bls", "issued_at": now - chrono::Duration::days(issued_days_ago),
               "expires_at": now + chrono::Duration::days(days), "holder_name": "X"})
    };
    let expiring = record(&app, &trainer, cert(soon.id, 5, 700)).await;
    record(&app, &trainer, cert(later.id, 25, 700)).await;
    record(&app, &trainer, cert(renewed.id, 3, 700)).await;
    record(&app, &trainer, cert(renewed.id, 700, 1)).await;

    let (a, b) = tokio::join!(app.service.sweep_once(), app.service.sweep_once());
    assert_eq!(a.expect("sweep").reminders + b.expect("sweep").reminders, 2);
    let notes = app.recorder.notes_of(soon.id);
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0]["type"], "certificate.expiring");
    assert_eq!(notes[0]["days_before"], 7);
    assert_eq!(notes[0]["certificate_id"], expiring["id"]);
    assert!(
        notes[0]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("WIB")
    );
    assert_eq!(app.recorder.notes_of(later.id)[0]["days_before"], 30);
    assert!(
        app.recorder.notes_of(renewed.id).is_empty(),
        "a renewed certificate needs no reminder"
    );

    assert_eq!(app.service.sweep_once().await.expect("sweep").reminders, 0);
    // Four days later the 1-day reminder is due.
    sqlx::query(
        "UPDATE lms.certificates SET expires_at = now() + interval '20 hours' WHERE user_id = $1",
    )
    .bind(soon.id)
    .execute(&app.pool)
    .await
    .expect("time passes");
    assert_eq!(app.service.sweep_once().await.expect("sweep").reminders, 1);

    let (status, stored) = app
        .call("GET", "/v1/lms/notifications/me", Some(&soon), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let kinds: Vec<&str> = stored
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["expiry_1d", "expiry_7d"]);
}
