//! What follows an accept and what coordinators do: assignment status through completion and the
//! rest period, cancel, coordinator assignment, the map lists; kind settings, duty and eligibility,
//! and the location history are in `operations_cases/volunteers.rs`.

#[path = "operations_cases/volunteers.rs"]
mod volunteers;

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
