//! What follows an accept and what coordinators do: assignment status through completion and the
//! rest period, cancel, coordinator assignment, the map lists, kind settings, duty and eligibility,
//! and the location history.

pub mod common;

use std::time::Duration;

use common::{MONAS, Person, TestApp, alert_body, offset};
use http::{Method, StatusCode};
use kreki_auth::Role;
use serde_json::{Value, json};
use sqlx::PgPool;

const WAIT: Duration = Duration::from_secs(10);

async fn offer_for(app: &TestApp, volunteer: &Person) -> Value {
    app.notifier
        .wait_for_user(volunteer.id, "offer", WAIT)
        .await
        .unwrap_or_else(|| panic!("{} got no offer", volunteer.name))["offer"]
        .clone()
}

async fn accepted(app: &TestApp, volunteer: &Person) -> Value {
    let offer = offer_for(app, volunteer).await;
    let id = offer["id"].as_str().expect("id");
    let (status, assignment) = app
        .call(
            Method::POST,
            &format!("/v1/offers/{id}/accept"),
            Some(volunteer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{assignment}");
    assignment
}

async fn set_status(
    app: &TestApp,
    volunteer: &Person,
    assignment: &Value,
    to: &str,
) -> (StatusCode, Value) {
    let id = assignment["id"].as_str().expect("id");
    app.call(
        Method::POST,
        &format!("/v1/assignments/{id}/status"),
        Some(volunteer),
        Some(json!({"status": to})),
    )
    .await
}

async fn alert_of(app: &TestApp, who: &Person, alert: &Value) -> Value {
    let id = alert["id"].as_str().expect("id");
    app.call(Method::GET, &format!("/v1/alerts/{id}"), Some(who), None)
        .await
        .1
}

#[sqlx::test(migrations = "../migrations")]
async fn an_assignment_runs_to_completion_then_the_volunteer_rests(pool: PgPool) {
    let mut app = TestApp::new(pool.clone()).await;
    app.start_workers();
    let (lat, lng) = offset(MONAS.0, MONAS.1, 100.0, 0.0);
    let volunteer = app.volunteer_at("Rina", lat, lng, &[]).await;
    let citizen = app.citizen("Sari");
    let (_, alert) = app
        .panic(&citizen, "s-1", alert_body("security", MONAS))
        .await;
    let assignment = accepted(&app, &volunteer).await;

    let (status, body) = set_status(&app, &volunteer, &assignment, "en_route").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = set_status(&app, &volunteer, &assignment, "on_scene").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(alert_of(&app, &citizen, &alert).await["status"], "on_scene");
    let (status, problem) = set_status(&app, &volunteer, &assignment, "en_route").await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "status");
    let (status, _) = set_status(&app, &volunteer, &assignment, "bogus").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let other = app.person("Other", &[Role::Citizen, Role::Volunteer]);
    let (status, _) = set_status(&app, &other, &assignment, "completed").await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, done) = set_status(&app, &volunteer, &assignment, "completed").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(done["status"], "completed");
    let read = alert_of(&app, &citizen, &alert).await;
    assert_eq!(read["status"], "resolved");
    assert!(
        app.notifier
            .wait_for_user(volunteer.id, "assignment.updated", WAIT)
            .await
            .is_some()
    );

    // Free again but resting: a new alert right here does not reach them.
    let rest: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT rest_until FROM dispatch.volunteers WHERE user_id = $1")
            .bind(volunteer.id)
            .fetch_one(&pool)
            .await
            .expect("row");
    assert!(rest.expect("a rest period") > chrono::Utc::now());
    let budi = app.citizen("Budi");
    let (_, second) = app.panic(&budi, "s-2", alert_body("security", MONAS)).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let offers = app.notifier.to_user(volunteer.id, "offer");
    assert!(
        offers
            .iter()
            .all(|o| o["offer"]["alert"]["id"] != second["id"])
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn withdrawing_frees_the_volunteer_and_sends_the_next_wave(pool: PgPool) {
    let mut app = TestApp::new(pool.clone()).await;
    app.start_workers();
    let (lat, lng) = offset(MONAS.0, MONAS.1, 100.0, 0.0);
    let first = app.volunteer_at("Rina", lat, lng, &[]).await;
    let (lat, lng) = offset(MONAS.0, MONAS.1, 1500.0, 0.0);
    let second = app.volunteer_at("Dewi", lat, lng, &[]).await;
    let citizen = app.citizen("Sari");
    let (_, alert) = app.panic(&citizen, "wd", alert_body("other", MONAS)).await;
    let assignment = accepted(&app, &first).await;
    let (status, _) = set_status(&app, &first, &assignment, "withdrawn").await;
    assert_eq!(status, StatusCode::OK);
    let offer = offer_for(&app, &second).await;
    assert_eq!(offer["alert"]["id"], alert["id"]);
    assert_eq!(
        alert_of(&app, &citizen, &alert).await["status"],
        "dispatching"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn cancelling_withdraws_offers_and_assignments(pool: PgPool) {
    let mut app = TestApp::new(pool.clone()).await;
    app.start_workers();
    let (lat, lng) = offset(MONAS.0, MONAS.1, 100.0, 0.0);
    let volunteer = app.volunteer_at("Rina", lat, lng, &[]).await;
    let citizen = app.citizen("Sari");
    let (_, alert) = app
        .panic(&citizen, "c-1", alert_body("security", MONAS))
        .await;
    let offer = offer_for(&app, &volunteer).await;
    let id = alert["id"].as_str().expect("id");

    let stranger = app.citizen("Budi");
    let (status, _) = app
        .call(
            Method::POST,
            &format!("/v1/alerts/{id}/cancel"),
            Some(&stranger),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, cancelled) = app
        .call(
            Method::POST,
            &format!("/v1/alerts/{id}/cancel"),
            Some(&citizen),
            Some(json!({"reason": "salah tekan"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    let withdrawn = app
        .notifier
        .wait_for_user(volunteer.id, "offer.withdrawn", WAIT)
        .await
        .expect("told");
    assert_eq!(withdrawn["reason"], "cancelled");
    let offer_id = offer["id"].as_str().expect("id");
    let (status, problem) = app
        .call(
            Method::POST,
            &format!("/v1/offers/{offer_id}/accept"),
            Some(&volunteer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(problem["type"], "https://kreki.id/problems/alert-cancelled");
    let (status, _) = app
        .call(
            Method::POST,
            &format!("/v1/alerts/{id}/cancel"),
            Some(&citizen),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    // A coordinator may cancel an alert with an active assignment; the volunteer is freed.
    let (_, second) = app
        .panic(
            &stranger,
            "c-2",
            alert_body("security", offset(MONAS.0, MONAS.1, 0.0, 200.0)),
        )
        .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let offer = loop {
        let offers = app.notifier.to_user(volunteer.id, "offer");
        if let Some(offer) = offers
            .into_iter()
            .find(|o| o["offer"]["alert"]["id"] == second["id"])
        {
            break offer["offer"].clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "no second offer");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let offer_id = offer["id"].as_str().expect("id");
    let (status, _) = app
        .call(
            Method::POST,
            &format!("/v1/offers/{offer_id}/accept"),
            Some(&volunteer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let coordinator = app.person("Kor", &[Role::Citizen, Role::Coordinator]);
    let second_id = second["id"].as_str().expect("id");
    let (status, cancelled) = app
        .call(
            Method::POST,
            &format!("/v1/alerts/{second_id}/cancel"),
            Some(&coordinator),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(cancelled["assignments"][0]["status"], "withdrawn");
    let busy: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM dispatch.assignments WHERE volunteer_id = $1 AND status IN ('accepted', 'en_route', 'on_scene'))",
    )
    .bind(volunteer.id)
    .fetch_one(&pool)
    .await
    .expect("query");
    assert!(!busy);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_coordinator_assigns_directly_and_lists_the_map(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await; // no dispatcher: only the coordinator acts
    let (lat, lng) = offset(MONAS.0, MONAS.1, 300.0, 0.0);
    let volunteer = app.volunteer_at("Rina", lat, lng, &[]).await;
    let citizen = app.citizen("Sari");
    let (_, alert) = app.panic(&citizen, "a-1", alert_body("other", MONAS)).await;
    let id = alert["id"].as_str().expect("id");
    let coordinator = app.person("Kor", &[Role::Citizen, Role::Coordinator]);

    let stranger = app.person("Nobody", &[Role::Citizen, Role::Volunteer]);
    let (status, problem) = app
        .call(
            Method::POST,
            &format!("/v1/alerts/{id}/assign"),
            Some(&coordinator),
            Some(json!({"volunteer_id": stranger.id})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(
        problem["type"],
        "https://kreki.id/problems/volunteer-off-duty"
    );

    let (status, assigned) = app
        .call(
            Method::POST,
            &format!("/v1/alerts/{id}/assign"),
            Some(&coordinator),
            Some(json!({"volunteer_id": volunteer.id})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{assigned}");
    assert_eq!(assigned["status"], "assigned");
    assert_eq!(assigned["assignments"][0]["volunteer"]["name"], "Rina");
    let (status, problem) = app
        .call(
            Method::POST,
            &format!("/v1/alerts/{id}/assign"),
            Some(&coordinator),
            Some(json!({"volunteer_id": volunteer.id})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(problem["type"], "https://kreki.id/problems/alert-covered");
    // The assigned volunteer may read the alert.
    assert_eq!(alert_of(&app, &volunteer, &alert).await["id"], alert["id"]);

    let (status, list) = app
        .call(
            Method::GET,
            "/v1/alerts?status=assigned&bbox=106.7,-6.3,106.9,-6.1",
            Some(&coordinator),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().expect("list").len(), 1);
    assert_eq!(
        list[0]["assignments"][0]["volunteer"]["id"],
        volunteer.id.to_string()
    );
    let (_, elsewhere) = app
        .call(
            Method::GET,
            "/v1/alerts?bbox=110,-8,111,-7",
            Some(&coordinator),
            None,
        )
        .await;
    assert_eq!(elsewhere, json!([]));
    let (_, none) = app
        .call(
            Method::GET,
            "/v1/alerts?status=resolved",
            Some(&coordinator),
            None,
        )
        .await;
    assert_eq!(none, json!([]));
    let (status, problem) = app
        .call(
            Method::GET,
            "/v1/alerts?status=open",
            Some(&coordinator),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["errors"][0]["field"], "status");

    let (status, volunteers) = app
        .call(
            Method::GET,
            "/v1/volunteers?bbox=106.7,-6.3,106.9,-6.1",
            Some(&coordinator),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(volunteers.as_array().expect("list").len(), 1);
    assert_eq!(volunteers[0]["name"], "Rina");
    assert_eq!(volunteers[0]["busy"], true);
    assert_eq!(volunteers[0]["on_duty"], true);
    assert!((volunteers[0]["lat"].as_f64().expect("lat") - lat).abs() < 1e-9);
    let (status, problem) = app
        .call(
            Method::GET,
            "/v1/volunteers?bbox=1,2",
            Some(&coordinator),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["errors"][0]["field"], "bbox");
}

#[sqlx::test(migrations = "../migrations")]
async fn duty_tells_eligible_kinds_and_certifications_change_eligibility_at_once(pool: PgPool) {
    let mut app = TestApp::new(pool.clone()).await;
    app.start_workers();
    let volunteer = app.person("Rina", &[Role::Citizen, Role::Volunteer]);
    let (status, duty) = app
        .call(
            Method::PUT,
            "/v1/volunteers/me/duty",
            Some(&volunteer),
            Some(json!({"on_duty": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(duty["on_duty"], true);
    let kinds: Vec<&str> = duty["eligible_kinds"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(kinds, ["disaster", "other", "security"]);
    let (lat, lng) = offset(MONAS.0, MONAS.1, 100.0, 0.0);
    let (status, _) = app
        .call(
            Method::POST,
            "/v1/volunteers/me/location",
            Some(&volunteer),
            Some(json!({"lat": lat, "lng": lng})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);

    // No bls: a cardiac arrest next door is not offered.
    let citizen = app.citizen("Sari");
    let (_, first) = app
        .panic(&citizen, "e-1", alert_body("cardiac_arrest", MONAS))
        .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(app.notifier.to_user(volunteer.id, "offer").is_empty());

    kreki_dispatch::eligibility::grant(&pool, volunteer.id, "bls", None)
        .await
        .expect("grant");
    app.service
        .eligibility_changed(volunteer.id)
        .await
        .expect("re-read");
    let budi = app.citizen("Budi");
    let (_, second) = app
        .panic(&budi, "e-2", alert_body("cardiac_arrest", MONAS))
        .await;
    let offer = offer_for(&app, &volunteer).await;
    assert_eq!(offer["alert"]["id"], second["id"]);
    assert_ne!(offer["alert"]["id"], first["id"]);

    let (_, duty) = app
        .call(
            Method::PUT,
            "/v1/volunteers/me/duty",
            Some(&volunteer),
            Some(json!({"on_duty": true})),
        )
        .await;
    assert!(
        duty["eligible_kinds"]
            .as_array()
            .expect("list")
            .contains(&json!("cardiac_arrest"))
    );

    // An expired certification does not count.
    kreki_dispatch::eligibility::grant(
        &pool,
        volunteer.id,
        "first_aid",
        Some(chrono::Utc::now() - chrono::Duration::days(1)),
    )
    .await
    .expect("grant");
    let (_, duty) = app
        .call(
            Method::PUT,
            "/v1/volunteers/me/duty",
            Some(&volunteer),
            Some(json!({"on_duty": true})),
        )
        .await;
    assert!(
        !duty["eligible_kinds"]
            .as_array()
            .expect("list")
            .contains(&json!("medical"))
    );

    // Off duty: out of the matcher.
    let (_, duty) = app
        .call(
            Method::PUT,
            "/v1/volunteers/me/duty",
            Some(&volunteer),
            Some(json!({"on_duty": false})),
        )
        .await;
    assert_eq!(duty["on_duty"], false);
    let dian = app.citizen("Dian");
    let (_, third) = app.panic(&dian, "e-3", alert_body("security", MONAS)).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        app.notifier
            .to_user(volunteer.id, "offer")
            .iter()
            .all(|o| o["offer"]["alert"]["id"] != third["id"])
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn kind_settings_are_listed_and_admins_change_them(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let admin = app.person("Admin", &[Role::Citizen, Role::Admin]);
    let (status, kinds) = app
        .call(Method::GET, "/v1/dispatch/kinds", Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let cardiac = kinds
        .as_array()
        .expect("list")
        .iter()
        .find(|k| k["kind"] == "cardiac_arrest")
        .expect("seeded");
    assert_eq!(cardiac["required_certifications"], json!(["bls"]));
    // A cardiac arrest keeps seven offers live and replaces each decliner, 500 m first.
    assert_eq!(
        cardiac["waves"][0],
        json!({"count": 7, "radius_m": 500, "timeout_s": 30})
    );
    assert_eq!(
        cardiac["policy"],
        json!({"live_offers": 7, "replace_on_decline": true, "replace_on_expiry": true, "max_alerted": 30})
    );
    assert_eq!(cardiac["roles"], json!(["cpr", "aed", "lead"]));

    let settings = json!({"required_certifications": ["bls", "first_aid"], "requires_verified_practitioner": true,
                          "responders_needed": 2, "waves": [{"count": 5, "radius_m": 1500, "timeout_s": 20}]});
    let (status, stored) = app
        .call(
            Method::PUT,
            "/v1/dispatch/kinds/cardiac_arrest",
            Some(&admin),
            Some(settings.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    let (_, kinds) = app
        .call(Method::GET, "/v1/dispatch/kinds", Some(&admin), None)
        .await;
    let cardiac = kinds
        .as_array()
        .expect("list")
        .iter()
        .find(|k| k["kind"] == "cardiac_arrest")
        .expect("kind");
    assert_eq!(cardiac["responders_needed"], 2);
    assert_eq!(cardiac["requires_verified_practitioner"], true);

    let coordinator = app.person("Kor", &[Role::Citizen, Role::Coordinator]);
    let (status, _) = app
        .call(
            Method::PUT,
            "/v1/dispatch/kinds/cardiac_arrest",
            Some(&coordinator),
            Some(settings.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, problem) = app
        .call(
            Method::PUT,
            "/v1/dispatch/kinds/flood",
            Some(&admin),
            Some(settings),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["errors"][0]["field"], "kind");
    let (status, problem) = app
        .call(
            Method::PUT,
            "/v1/dispatch/kinds/fire",
            Some(&admin),
            Some(json!({"required_certifications": [], "responders_needed": 1, "waves": [{"count": 0, "radius_m": 100, "timeout_s": 30}]})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["errors"][0]["field"], "waves[0].count");

    // The new needs apply to the next alert.
    let citizen = app.citizen("Sari");
    let (_, alert) = app
        .panic(&citizen, "k", alert_body("cardiac_arrest", MONAS))
        .await;
    assert_eq!(alert["responders_needed"], 2);
}

#[sqlx::test(migrations = "../migrations")]
async fn locations_are_validated_kept_in_history_and_shown_to_coordinators(pool: PgPool) {
    let mut app = TestApp::new(pool.clone()).await;
    app.start_workers();
    let volunteer = app.person("Rina", &[Role::Citizen, Role::Volunteer]);
    // Off duty: the latest position is kept, but no history and no map.
    let (status, _) = app
        .call(
            Method::POST,
            "/v1/volunteers/me/location",
            Some(&volunteer),
            Some(json!({"lat": MONAS.0, "lng": MONAS.1})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(
        app.notifier
            .to_role(Role::Coordinator, "volunteer.position")
            .is_empty()
    );
    let (status, _) = app
        .call(
            Method::PUT,
            "/v1/volunteers/me/duty",
            Some(&volunteer),
            Some(json!({"on_duty": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    for (index, north) in [0.0, 50.0, 100.0].iter().enumerate() {
        let (lat, lng) = offset(MONAS.0, MONAS.1, *north, 0.0);
        let (status, body) = app
            .call(
                Method::POST,
                "/v1/volunteers/me/location",
                Some(&volunteer),
                Some(json!({"lat": lat, "lng": lng, "accuracy_m": 4 + index, "recorded_at": chrono::Utc::now()})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    let (status, problem) = app
        .call(
            Method::POST,
            "/v1/volunteers/me/location",
            Some(&volunteer),
            Some(json!({"lat": -100, "lng": 500})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["errors"][0]["field"], "lat");
    assert_eq!(problem["errors"][1]["field"], "lng");
    let (status, problem) = app
        .call(
            Method::POST,
            "/v1/volunteers/me/location",
            Some(&volunteer),
            Some(json!({"lat": "x", "lng": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["errors"][0]["field"], "lat");

    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let rows: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM dispatch.location_history WHERE volunteer_id = $1",
        )
        .bind(volunteer.id)
        .fetch_one(&pool)
        .await
        .expect("count");
        if rows == 3 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "history has {rows} rows"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(app.service.history_dropped(), 0);
    let positions = app
        .notifier
        .to_role(Role::Coordinator, "volunteer.position");
    assert_eq!(positions.len(), 3);
    assert_eq!(positions[2]["volunteer_id"], volunteer.id.to_string());
    // A fix older than the stored one goes to history only: the map keeps the newest.
    let (status, _) = app
        .call(
            Method::POST,
            "/v1/volunteers/me/location",
            Some(&volunteer),
            Some(json!({"lat": MONAS.0, "lng": MONAS.1, "recorded_at": chrono::Utc::now() - chrono::Duration::minutes(5)})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    // The row follows the matcher within a flush interval (write-behind); flush now.
    app.service
        .flush_positions()
        .await
        .expect("positions written");
    let stored: f64 = sqlx::query_scalar(
        "SELECT ST_Y(location::geometry) FROM dispatch.volunteers WHERE user_id = $1",
    )
    .bind(volunteer.id)
    .fetch_one(&pool)
    .await
    .expect("row");
    assert!((stored - offset(MONAS.0, MONAS.1, 100.0, 0.0).0).abs() < 1e-9);
    assert_eq!(
        app.notifier
            .to_role(Role::Coordinator, "volunteer.position")
            .len(),
        3
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn a_full_history_queue_drops_and_counts_without_blocking(pool: PgPool) {
    let config = kreki_dispatch::DispatchConfig {
        location_history_queue: 2,
        ..Default::default()
    };
    let app = TestApp::with_config(pool.clone(), config).await; // no writer draining the queue
    let volunteer = app.person("Rina", &[Role::Citizen, Role::Volunteer]);
    let (status, _) = app
        .call(
            Method::PUT,
            "/v1/volunteers/me/duty",
            Some(&volunteer),
            Some(json!({"on_duty": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    for _ in 0..5 {
        let (status, _) = app
            .call(
                Method::POST,
                "/v1/volunteers/me/location",
                Some(&volunteer),
                Some(json!({"lat": MONAS.0, "lng": MONAS.1})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    assert_eq!(app.service.history_dropped(), 3);
}

#[sqlx::test(migrations = "../migrations")]
async fn kinds_requiring_a_practitioner_reach_only_verified_volunteers(pool: PgPool) {
    let mut app = TestApp::new(pool.clone()).await;
    app.service
        .put_kind(
            kreki_dispatch::domain::AlertKind::Medical,
            &kreki_dispatch::domain::KindSettings {
                required_certifications: Vec::new(),
                requires_verified_practitioner: true,
                responders_needed: 1,
                waves: kreki_dispatch::config::default_waves(),
                policy: kreki_dispatch::domain::OfferPolicy::default(),
                roles: Vec::new(),
            },
        )
        .await
        .expect("stored");
    app.start_workers();
    let (lat, lng) = offset(MONAS.0, MONAS.1, 100.0, 0.0);
    let plain = app.volunteer_at("Rina", lat, lng, &[]).await;
    let (lat, lng) = offset(MONAS.0, MONAS.1, 300.0, 0.0);
    let nurse = app.volunteer_at("Dewi", lat, lng, &[]).await;
    // The bridge verified her NIK with SATUSEHAT.
    app.service
        .set_practitioner_verified(nurse.id, true)
        .await
        .expect("stored");
    let verified: bool = sqlx::query_scalar(
        "SELECT practitioner_verified FROM dispatch.volunteers WHERE user_id = $1",
    )
    .bind(nurse.id)
    .fetch_one(&pool)
    .await
    .expect("row");
    assert!(verified);
    let citizen = app.citizen("Sari");
    let (_, alert) = app
        .panic(&citizen, "pr", alert_body("medical", MONAS))
        .await;
    let offer = offer_for(&app, &nurse).await;
    assert_eq!(offer["alert"]["id"], alert["id"]);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(app.notifier.to_user(plain.id, "offer").is_empty());
    let (_, duty) = app
        .call(
            Method::PUT,
            "/v1/volunteers/me/duty",
            Some(&plain),
            Some(json!({"on_duty": true})),
        )
        .await;
    assert!(
        !duty["eligible_kinds"]
            .as_array()
            .expect("list")
            .contains(&json!("medical"))
    );
    let (_, duty) = app
        .call(
            Method::PUT,
            "/v1/volunteers/me/duty",
            Some(&nurse),
            Some(json!({"on_duty": true})),
        )
        .await;
    assert!(
        duty["eligible_kinds"]
            .as_array()
            .expect("list")
            .contains(&json!("medical"))
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn readiness_waits_for_the_matcher(pool: PgPool) {
    use kreki_platform::health::ReadinessCheck;
    let (service, _queues) = kreki_dispatch::DispatchService::new(
        pool.clone(),
        kreki_dispatch::DispatchConfig::default(),
        kreki_dispatch::service::Ports {
            notifier: std::sync::Arc::new(kreki_dispatch::notify::NullNotifier),
            certs: std::sync::Arc::new(kreki_dispatch::PgCertificationSource::new(pool.clone())),
            pii: kreki_platform::pii::Pii::dev(),
        },
    );
    let check = kreki_dispatch::worker::DispatchReadiness(service.clone());
    assert!(check.check().await.is_err());
    service.prepare().await.expect("prepares");
    assert_eq!(check.check().await, Ok(()));
    let kinds: i64 = sqlx::query_scalar("SELECT count(*) FROM dispatch.kind_settings")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(kinds, 7, "every kind is seeded");
}
