//! The hot path after ingest: waves of offers to the nearest eligible volunteers, timers, accept
//! and decline with their races, and dispatch surviving a restart between commit and offers.

pub mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use common::{MONAS, Person, TestApp, alert_body, offset};
use http::{Method, StatusCode};
use kreki_auth::Role;
use kreki_dispatch::domain::{AlertKind, KindSettings, WaveSpec};
use serde_json::{Value, json};
use sqlx::PgPool;

const WAIT: Duration = Duration::from_secs(10);

async fn volunteer_north(app: &TestApp, name: &str, metres: f64, certs: &[&str]) -> Person {
    let (lat, lng) = offset(MONAS.0, MONAS.1, metres, 0.0);
    app.volunteer_at(name, lat, lng, certs).await
}

async fn offer_for(app: &TestApp, volunteer: &Person) -> Value {
    app.notifier
        .wait_for_user(volunteer.id, "offer", WAIT)
        .await
        .unwrap_or_else(|| panic!("{} got no offer", volunteer.name))["offer"]
        .clone()
}

fn offered(app: &TestApp, volunteer: &Person) -> bool {
    !app.notifier.to_user(volunteer.id, "offer").is_empty()
}

/// Gives the dispatcher time to do what it should not do.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(400)).await;
}

async fn set_kind(app: &TestApp, kind: AlertKind, needed: u32, waves: &[(u32, u32)]) {
    app.service
        .put_kind(
            kind,
            &KindSettings {
                required_certifications: Vec::new(),
                requires_verified_practitioner: false,
                responders_needed: needed,
                waves: waves
                    .iter()
                    .map(|(count, radius_m)| WaveSpec {
                        count: *count,
                        radius_m: *radius_m,
                        timeout_s: 30,
                    })
                    .collect(),
                policy: kreki_dispatch::domain::OfferPolicy::default(),
                roles: Vec::new(),
            },
        )
        .await
        .expect("settings stored");
}

async fn accept(app: &TestApp, volunteer: &Person, offer: &Value) -> (StatusCode, Value) {
    let id = offer["id"].as_str().expect("an offer id");
    app.call(
        Method::POST,
        &format!("/v1/offers/{id}/accept"),
        Some(volunteer),
        None,
    )
    .await
}

#[sqlx::test(migrations = "../migrations")]
async fn the_first_wave_goes_to_the_three_nearest_eligible_volunteers(pool: PgPool) {
    let mut app = TestApp::new(pool.clone()).await;
    app.start_workers();
    let uncertified = volunteer_north(&app, "uncertified", 50.0, &[]).await;
    let v100 = volunteer_north(&app, "v100", 100.0, &["first_aid"]).await;
    let v200 = volunteer_north(&app, "v200", 200.0, &["first_aid", "bls"]).await;
    let v300 = volunteer_north(&app, "v300", 300.0, &["first_aid"]).await;
    let v400 = volunteer_north(&app, "v400", 400.0, &["first_aid"]).await;
    let off_duty = volunteer_north(&app, "off", 20.0, &["first_aid"]).await;
    let (status, _) = app
        .call(
            Method::PUT,
            "/v1/volunteers/me/duty",
            Some(&off_duty),
            Some(json!({"on_duty": false})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let citizen = app.citizen("Sari");
    let (status, alert) = app
        .panic(&citizen, "w-1", alert_body("medical", MONAS))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    for (volunteer, metres) in [(&v100, 100.0), (&v200, 200.0), (&v300, 300.0)] {
        let offer = offer_for(&app, volunteer).await;
        assert_eq!(offer["alert"]["id"], alert["id"]);
        assert_eq!(offer["status"], "pending");
        let distance = offer["distance_m"].as_f64().expect("a distance");
        assert!((distance - metres).abs() < 2.0, "{distance} vs {metres}");
    }
    settle().await;
    for left_out in [&uncertified, &v400, &off_duty] {
        assert!(
            !offered(&app, left_out),
            "{} must not be offered",
            left_out.name
        );
    }
    let (status, offers) = app
        .call(Method::GET, "/v1/volunteers/me/offers", Some(&v100), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(offers.as_array().expect("a list").len(), 1);
    // An offered volunteer may read the alert.
    let id = alert["id"].as_str().expect("id");
    let (status, _) = app
        .call(Method::GET, &format!("/v1/alerts/{id}"), Some(&v100), None)
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[sqlx::test(migrations = "../migrations")]
async fn declines_send_the_next_wider_wave_at_once_and_accept_withdraws_the_rest(pool: PgPool) {
    let mut app = TestApp::new(pool.clone()).await;
    app.start_workers();
    let first: Vec<Person> = {
        let mut people = Vec::new();
        for metres in [100.0, 200.0, 300.0] {
            people.push(volunteer_north(&app, &format!("v{metres}"), metres, &[]).await);
        }
        people
    };
    let v1500 = volunteer_north(&app, "v1500", 1500.0, &[]).await;
    let v3000 = volunteer_north(&app, "v3000", 3000.0, &[]).await;
    let citizen = app.citizen("Sari");
    let (_, alert) = app
        .panic(&citizen, "w-2", alert_body("security", MONAS))
        .await;
    for volunteer in &first {
        let offer = offer_for(&app, volunteer).await;
        let id = offer["id"].as_str().expect("id");
        let (status, body) = app
            .call(
                Method::POST,
                &format!("/v1/offers/{id}/decline"),
                Some(volunteer),
                Some(json!({"reason": "jauh"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["status"], "declined");
    }
    // Wave 2 (2 km) reaches v1500 without waiting 30 s; v3000 is for wave 3.
    let offer = offer_for(&app, &v1500).await;
    settle().await;
    assert!(!offered(&app, &v3000));
    let (status, assignment) = accept(&app, &v1500, &offer).await;
    assert_eq!(status, StatusCode::OK, "{assignment}");
    assert_eq!(assignment["status"], "accepted");
    assert_eq!(assignment["volunteer"]["name"], "v1500");
    // A retry (the answer was lost on a bad network) gets the same assignment, not a second one.
    let (status, again) = accept(&app, &v1500, &offer).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["id"], assignment["id"]);

    let updated = app
        .notifier
        .wait_for_user(citizen.id, "alert.updated", WAIT)
        .await
        .expect("the citizen hears");
    assert_eq!(updated["alert"]["id"], alert["id"]);
    let id = alert["id"].as_str().expect("id");
    let (_, read) = app
        .call(
            Method::GET,
            &format!("/v1/alerts/{id}"),
            Some(&citizen),
            None,
        )
        .await;
    assert_eq!(read["status"], "assigned");
    assert_eq!(
        read["assignments"][0]["volunteer"]["id"],
        v1500.id.to_string()
    );
    let (_, timeline) = app
        .call(
            Method::GET,
            &format!("/v1/alerts/{id}/timeline"),
            Some(&citizen),
            None,
        )
        .await;
    let types: Vec<&str> = timeline
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    assert_eq!(
        types,
        [
            "created",
            "offers_sent",
            "offer_declined",
            "offer_declined",
            "offer_declined",
            "offers_sent",
            "accepted"
        ]
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn twenty_volunteers_accepting_at_once_give_exactly_the_responders_needed(pool: PgPool) {
    let mut app = TestApp::new(pool.clone()).await;
    set_kind(&app, AlertKind::Fire, 2, &[(20, 2000)]).await;
    app.start_workers();
    let mut volunteers = Vec::new();
    for index in 0..20 {
        volunteers.push(
            volunteer_north(
                &app,
                &format!("v{index}"),
                50.0 + 40.0 * f64::from(index),
                &[],
            )
            .await,
        );
    }
    let citizen = app.citizen("Sari");
    let (_, alert) = app.panic(&citizen, "race", alert_body("fire", MONAS)).await;
    let mut offers = Vec::new();
    for volunteer in &volunteers {
        offers.push(offer_for(&app, volunteer).await);
    }
    let app = Arc::new(app);
    let mut tasks = Vec::new();
    for (volunteer, offer) in volunteers.iter().cloned().zip(offers) {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            (volunteer.id, accept(&app, &volunteer, &offer).await)
        }));
    }
    let mut winners = HashSet::new();
    for task in tasks {
        let (id, (status, body)) = task.await.expect("ran");
        match status {
            StatusCode::OK => {
                winners.insert(id);
            }
            StatusCode::CONFLICT => assert_eq!(
                body["type"], "https://kreki.id/problems/alert-covered",
                "{body}"
            ),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(winners.len(), 2);
    let active: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM dispatch.assignments WHERE alert_id = $1::uuid AND status = 'accepted'",
    )
    .bind(alert["id"].as_str().expect("id"))
    .fetch_one(&pool)
    .await
    .expect("count");
    assert_eq!(active, 2);
    let pending: i64 =
        sqlx::query_scalar("SELECT count(*) FROM dispatch.offers WHERE status = 'pending'")
            .fetch_one(&pool)
            .await
            .expect("count");
    assert_eq!(pending, 0, "the other offers are withdrawn");
    // Every loser's offer was still pending when the alert was covered: each is told once.
    for volunteer in volunteers.iter().filter(|v| !winners.contains(&v.id)) {
        let withdrawn = app.notifier.to_user(volunteer.id, "offer.withdrawn");
        assert_eq!(withdrawn.len(), 1, "{}", volunteer.name);
        assert_eq!(withdrawn[0]["reason"], "covered");
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn one_volunteer_accepting_two_offers_at_once_gets_at_most_one_assignment(pool: PgPool) {
    let mut app = TestApp::new(pool.clone()).await;
    app.start_workers();
    let volunteer = volunteer_north(&app, "solo", 100.0, &[]).await;
    let sari = app.citizen("Sari");
    let budi = app.citizen("Budi");
    let (_, first) = app.panic(&sari, "a", alert_body("security", MONAS)).await;
    let (_, second) = app
        .panic(
            &budi,
            "b",
            alert_body("security", offset(MONAS.0, MONAS.1, 0.0, 300.0)),
        )
        .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let offers = loop {
        let offers = app.notifier.to_user(volunteer.id, "offer");
        if offers.len() == 2 || tokio::time::Instant::now() > deadline {
            break offers;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(offers.len(), 2, "both alerts are offered");
    let alerts: HashSet<&Value> = offers.iter().map(|o| &o["offer"]["alert"]["id"]).collect();
    assert!(alerts.contains(&first["id"]) && alerts.contains(&second["id"]));
    let app = Arc::new(app);
    let tasks: Vec<_> = offers
        .into_iter()
        .map(|offer| {
            let app = app.clone();
            let volunteer = volunteer.clone();
            tokio::spawn(async move { accept(&app, &volunteer, &offer["offer"]).await })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        let (status, body) = task.await.expect("ran");
        if status == StatusCode::OK {
            ok += 1;
        } else {
            assert_eq!(status, StatusCode::CONFLICT, "{body}");
            assert_eq!(
                body["type"], "https://kreki.id/problems/volunteer-busy",
                "{body}"
            );
        }
    }
    assert_eq!(ok, 1);
    let active: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM dispatch.assignments WHERE volunteer_id = $1 AND status = 'accepted'",
    )
    .bind(volunteer.id)
    .fetch_one(&pool)
    .await
    .expect("count");
    assert_eq!(active, 1);
}

#[sqlx::test(migrations = "../migrations")]
async fn an_alert_committed_before_a_crash_is_dispatched_after_restart(pool: PgPool) {
    // First "process": takes the location and the alert, then dies before any dispatcher ran.
    let before = TestApp::new(pool.clone()).await;
    assert!(before.service.is_prepared());
    let volunteer = volunteer_north(&before, "v", 150.0, &["bls"]).await;
    let citizen = before.citizen("Sari");
    let (status, alert) = before
        .panic(&citizen, "crash", alert_body("cardiac_arrest", MONAS))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    settle().await;
    assert!(!offered(&before, &volunteer));
    drop(before);

    // The restarted process rebuilds its matcher from PostGIS and finds the outbox row.
    let mut after = TestApp::new(pool.clone()).await;
    after.start_workers();
    let offer = offer_for(&after, &volunteer).await;
    assert_eq!(offer["alert"]["id"], alert["id"]);
    settle().await;
    assert_eq!(
        after.notifier.to_user(volunteer.id, "offer").len(),
        1,
        "exactly one wave"
    );
    let offers: i64 = sqlx::query_scalar("SELECT count(*) FROM dispatch.offers")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(offers, 1);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_due_timer_expires_the_wave_and_expired_offers_cannot_be_accepted(pool: PgPool) {
    let mut app = TestApp::new(pool.clone()).await;
    app.start_workers();
    let near = volunteer_north(&app, "near", 100.0, &[]).await;
    let far = volunteer_north(&app, "far", 1800.0, &[]).await;
    let citizen = app.citizen("Sari");
    let (_, alert) = app.panic(&citizen, "t", alert_body("other", MONAS)).await;
    let offer = offer_for(&app, &near).await;
    // Let the deadline pass (as 30 s would).
    sqlx::query("UPDATE dispatch.offers SET expires_at = now() - interval '1 second'")
        .execute(&pool)
        .await
        .expect("expire");
    sqlx::query("UPDATE dispatch.timers SET due_at = now() - interval '1 second'")
        .execute(&pool)
        .await
        .expect("due");
    let second = offer_for(&app, &far).await;
    assert_eq!(second["alert"]["id"], alert["id"]);
    let withdrawn = app
        .notifier
        .wait_for_user(near.id, "offer.withdrawn", WAIT)
        .await
        .expect("the late volunteer is told");
    assert_eq!(withdrawn["reason"], "expired");
    let (status, problem) = accept(&app, &near, &offer).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(problem["type"], "https://kreki.id/problems/offer-expired");
    // Someone else's offer is forbidden.
    let (status, _) = accept(&app, &near, &second).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[sqlx::test(migrations = "../migrations")]
async fn an_alert_nobody_can_take_is_unmatched_and_coordinators_are_told(pool: PgPool) {
    let mut app = TestApp::new(pool.clone()).await;
    app.start_workers();
    let citizen = app.citizen("Sari");
    let (_, alert) = app
        .panic(&citizen, "u", alert_body("disaster", MONAS))
        .await;
    let id = alert["id"].as_str().expect("id").to_owned();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let updates = app.notifier.to_role(Role::Coordinator, "alert.updated");
        if updates.iter().any(|m| m["alert"]["status"] == "unmatched") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no unmatched alert.updated"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (_, read) = app
        .call(
            Method::GET,
            &format!("/v1/alerts/{id}"),
            Some(&citizen),
            None,
        )
        .await;
    assert_eq!(read["status"], "unmatched");
}

#[sqlx::test(migrations = "../migrations")]
async fn taking_one_alert_withdraws_the_volunteers_other_offers_and_moves_that_alert_on(
    pool: PgPool,
) {
    let mut app = TestApp::new(pool.clone()).await;
    app.start_workers();
    let both = volunteer_north(&app, "both", 100.0, &[]).await;
    let b_point = offset(MONAS.0, MONAS.1, 0.0, 300.0);
    let (lat, lng) = offset(b_point.0, b_point.1, -1500.0, 0.0);
    let backup = app.volunteer_at("backup", lat, lng, &[]).await;
    let sari = app.citizen("Sari");
    let budi = app.citizen("Budi");
    let (_, a) = app.panic(&sari, "a", alert_body("security", MONAS)).await;
    let (_, b) = app.panic(&budi, "b", alert_body("security", b_point)).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let offers = loop {
        let offers = app.notifier.to_user(both.id, "offer");
        if offers.len() == 2 {
            break offers;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "both alerts are offered"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    settle().await;
    assert!(
        !offered(&app, &backup),
        "the backup is outside the first waves"
    );
    let offer_a = offers
        .iter()
        .find(|o| o["offer"]["alert"]["id"] == a["id"])
        .expect("offer for a")["offer"]
        .clone();
    let (status, _) = accept(&app, &both, &offer_a).await;
    assert_eq!(status, StatusCode::OK);

    let withdrawn = app
        .notifier
        .wait_for_user(both.id, "offer.withdrawn", WAIT)
        .await
        .expect("the other offer is withdrawn");
    assert_eq!(withdrawn["alert_id"], b["id"]);
    assert_eq!(withdrawn["reason"], "busy");
    // b does not wait 30 s for an answer that cannot come: its second wave reaches the backup.
    let offer = offer_for(&app, &backup).await;
    assert_eq!(offer["alert"]["id"], b["id"]);
    let offer_b = offers
        .iter()
        .find(|o| o["offer"]["alert"]["id"] == b["id"])
        .expect("offer for b")["offer"]
        .clone();
    let (status, problem) = accept(&app, &both, &offer_b).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(problem["type"], "https://kreki.id/problems/volunteer-busy");
}

#[sqlx::test(migrations = "../migrations")]
async fn two_instances_on_one_database_send_each_wave_once(pool: PgPool) {
    let mut first = TestApp::new(pool.clone()).await;
    let near = volunteer_north(&first, "near", 100.0, &[]).await;
    let far = volunteer_north(&first, "far", 1500.0, &[]).await;
    // The second instance learns the volunteers from PostGIS when it prepares.
    let mut second = TestApp::new(pool.clone()).await;
    first.start_workers();
    second.start_workers();
    let citizen = first.citizen("Sari");
    let (_, alert) = first
        .panic(&citizen, "two", alert_body("other", MONAS))
        .await;
    // Whichever instance claims the outbox row sends the wave (and publishes it).
    let deadline = tokio::time::Instant::now() + WAIT;
    let offer = loop {
        let mut offers = first.notifier.to_user(near.id, "offer");
        offers.extend(second.notifier.to_user(near.id, "offer"));
        if let Some(offer) = offers.pop() {
            break offer;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the first wave never went out"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(offer["offer"]["alert"]["id"], alert["id"]);
    // Both pollers race for the deadline of the first wave.
    sqlx::query("UPDATE dispatch.offers SET expires_at = now() - interval '1 second'")
        .execute(&pool)
        .await
        .expect("expire");
    sqlx::query("UPDATE dispatch.timers SET due_at = now() - interval '1 second'")
        .execute(&pool)
        .await
        .expect("due");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let waves = first.notifier.to_user(far.id, "offer").len()
            + second.notifier.to_user(far.id, "offer").len();
        if waves > 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the second wave never went out"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Give a doubled wave the chance to happen.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let per_volunteer: Vec<(String, i64)> = sqlx::query_as(
        "SELECT volunteer_id::text, count(*) FROM dispatch.offers GROUP BY volunteer_id ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .expect("counts");
    assert_eq!(per_volunteer.len(), 2, "{per_volunteer:?}");
    assert!(
        per_volunteer.iter().all(|(_, count)| *count == 1),
        "{per_volunteer:?}"
    );
    let sent: i64 =
        sqlx::query_scalar("SELECT count(*) FROM dispatch.alert_events WHERE type = 'offers_sent'")
            .fetch_one(&pool)
            .await
            .expect("count");
    assert_eq!(sent, 2, "one event per wave");
    let fired: i64 =
        sqlx::query_scalar("SELECT count(*) FROM dispatch.timers WHERE fired_at IS NOT NULL")
            .fetch_one(&pool)
            .await
            .expect("count");
    assert_eq!(fired, 1);
}
