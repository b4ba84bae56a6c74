//! Aftercare: a check-in for every volunteer whose assignment ended (completed, withdrawn, the
//! alert cancelled or resolved), delivered once when due (even with two instances), answered once,
//! the answer to coordinators with support requests flagged; and a coordinator resolving an alert
//! with its outcome, which the volunteers who responded see.

pub mod common;

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::{MONAS, Person, TestApp, alert_body, offset};
use http::{Method, StatusCode};
use kreki_auth::Role;
use kreki_dispatch::config::DispatchConfig;
use kreki_dispatch::domain::AlertId;
use kreki_dispatch::notify::Audience;
use kreki_dispatch::store;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(10);

/// A service that schedules check-ins `after_s` after an assignment ends and polls often.
async fn app(pool: PgPool, after_s: u64) -> TestApp {
    let mut app = TestApp::with_config(
        pool,
        DispatchConfig {
            checkin_after_s: after_s,
            poll_interval_ms: 100,
            ..DispatchConfig::default()
        },
    )
    .await;
    app.start_workers();
    app
}

fn fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|error| error["field"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A citizen's `other` alert `north_m - 100` metres north of Monas, taken by a volunteer at
/// `north_m`: (alert id, assignment id, the volunteer, the citizen).
async fn assigned(app: &TestApp, name: &str, north_m: f64) -> (String, String, Person, Person) {
    let (lat, lng) = offset(MONAS.0, MONAS.1, north_m, 0.0);
    let volunteer = app.volunteer_at(name, lat, lng, &[]).await;
    let citizen = app.citizen(&format!("Warga of {name}"));
    let (status, alert) = app
        .panic(
            &citizen,
            &Uuid::now_v7().to_string(),
            alert_body("other", offset(MONAS.0, MONAS.1, north_m - 100.0, 0.0)),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{alert}");
    let offer = app
        .notifier
        .wait_for_user(volunteer.id, "offer", WAIT)
        .await
        .expect("an offer")["offer"]
        .clone();
    let (status, assignment) = app
        .call(
            Method::POST,
            &format!("/v1/offers/{}/accept", offer["id"].as_str().expect("id")),
            Some(&volunteer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{assignment}");
    (
        alert["id"].as_str().expect("id").to_owned(),
        assignment["id"].as_str().expect("id").to_owned(),
        volunteer,
        citizen,
    )
}

async fn set_status(app: &TestApp, volunteer: &Person, assignment: &str, status: &str) {
    let (code, body) = app
        .call(
            Method::POST,
            &format!("/v1/assignments/{assignment}/status"),
            Some(volunteer),
            Some(json!({"status": status})),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
}

async fn my_checkins(app: &TestApp, volunteer: &Person) -> Value {
    let (status, list) = app
        .call(
            Method::GET,
            "/v1/volunteers/me/checkins",
            Some(volunteer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list
}

async fn due_at(pool: &PgPool, volunteer: &Person) -> Option<DateTime<Utc>> {
    sqlx::query_scalar("SELECT due_at FROM dispatch.checkins WHERE volunteer_id = $1")
        .bind(volunteer.id)
        .fetch_optional(pool)
        .await
        .expect("read")
}

async fn answer(app: &TestApp, who: &Person, checkin: &str, body: Value) -> (StatusCode, Value) {
    app.call(
        Method::POST,
        &format!("/v1/checkins/{checkin}"),
        Some(who),
        Some(body),
    )
    .await
}

#[sqlx::test(migrations = "../migrations")]
async fn a_completed_assignment_gets_its_checkin_when_due(pool: PgPool) {
    let app = app(pool.clone(), 2).await;
    let (alert, assignment, volunteer, _) = assigned(&app, "Rina", 200.0).await;
    assert_eq!(
        due_at(&pool, &volunteer).await,
        None,
        "nothing while assigned"
    );
    let ended = Utc::now();
    set_status(&app, &volunteer, &assignment, "completed").await;
    let due = due_at(&pool, &volunteer).await.expect("scheduled");
    let delay = (due - ended).num_milliseconds();
    assert!((1500..=3000).contains(&delay), "due {delay} ms after");
    assert_eq!(
        my_checkins(&app, &volunteer).await,
        json!([]),
        "not due yet"
    );
    assert!(app.notifier.to_user(volunteer.id, "checkin").is_empty());

    let message = app
        .notifier
        .wait_for_user(volunteer.id, "checkin", WAIT)
        .await
        .expect("the check-in arrives");
    assert!(Utc::now() >= due, "never before it is due");
    assert_eq!(message["checkin"]["alert_id"], alert);
    assert!(message["checkin"]["answered_at"].is_null());
    let list = my_checkins(&app, &volunteer).await;
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list[0]["id"], message["checkin"]["id"]);
    // Sent once.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.notifier.to_user(volunteer.id, "checkin").len(), 1);
    // Someone else's list does not show it.
    let other = app.person("Other", &[Role::Citizen, Role::Volunteer]);
    assert_eq!(my_checkins(&app, &other).await, json!([]));
}

#[sqlx::test(migrations = "../migrations")]
async fn withdrawn_and_cancelled_assignments_get_checkins_too(pool: PgPool) {
    let app = app(pool.clone(), 0).await;
    let (_, assignment, withdrew, _) = assigned(&app, "Withdrew", 200.0).await;
    set_status(&app, &withdrew, &assignment, "withdrawn").await;
    let (alert, _, cancelled_on, citizen) = assigned(&app, "Cancelled on", 6000.0).await;
    let (status, body) = app
        .call(
            Method::POST,
            &format!("/v1/alerts/{alert}/cancel"),
            Some(&citizen),
            Some(json!({"reason": "sudah ditangani"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for volunteer in [&withdrew, &cancelled_on] {
        app.notifier
            .wait_for_user(volunteer.id, "checkin", WAIT)
            .await
            .unwrap_or_else(|| panic!("{} gets a check-in", volunteer.name));
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM dispatch.checkins")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(count, 2, "one per ended assignment");
}

#[sqlx::test(migrations = "../migrations")]
async fn two_instances_send_each_checkin_once(pool: PgPool) {
    let first = app(pool.clone(), 3600).await;
    let citizen = first.citizen("Sari");
    let (_, alert) = first
        .panic(&citizen, "many", alert_body("other", MONAS))
        .await;
    let alert_id = AlertId(Uuid::parse_str(alert["id"].as_str().expect("id")).expect("uuid"));
    // 150 volunteers whose assignments on this alert ended, due at once: more than one batch.
    let volunteers: Vec<Uuid> = (0..150).map(|_| Uuid::now_v7()).collect();
    sqlx::query(
        "INSERT INTO dispatch.assignments (id, alert_id, volunteer_id, volunteer_name, status)
         SELECT gen_random_uuid(), $1, v, 'Relawan', 'completed' FROM unnest($2::uuid[]) AS v",
    )
    .bind(alert_id)
    .bind(&volunteers)
    .execute(&pool)
    .await
    .expect("assignments");
    let second = app(pool.clone(), 3600).await;
    let mut tx = pool.begin().await.expect("a transaction");
    let scheduled = store::schedule_checkins(&mut tx, alert_id, 0)
        .await
        .expect("scheduled");
    assert_eq!(scheduled, 150);
    assert_eq!(
        store::schedule_checkins(&mut tx, alert_id, 0)
            .await
            .expect("again"),
        0,
        "one check-in per assignment"
    );
    tx.commit().await.expect("commit");

    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let unsent: i64 =
            sqlx::query_scalar("SELECT count(*) FROM dispatch.checkins WHERE sent_at IS NULL")
                .fetch_one(&pool)
                .await
                .expect("count");
        if unsent == 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{unsent} unsent");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut received: HashMap<Uuid, usize> = HashMap::new();
    for notifier in [&first.notifier, &second.notifier] {
        for (audience, message) in notifier.messages() {
            if message["type"] == "checkin"
                && let Audience::User(user) = audience
            {
                *received.entry(user).or_default() += 1;
            }
        }
    }
    assert_eq!(received.len(), 150);
    assert!(received.values().all(|count| *count == 1), "{received:?}");
}

#[sqlx::test(migrations = "../migrations")]
async fn answers_reach_coordinators_and_support_requests_are_listed(pool: PgPool) {
    let app = app(pool.clone(), 0).await;
    let (_, first, rina, _) = assigned(&app, "Rina", 200.0).await;
    set_status(&app, &rina, &first, "completed").await;
    let (_, second, dewi, _) = assigned(&app, "Dewi", 8000.0).await;
    set_status(&app, &dewi, &second, "completed").await;
    let rina_checkin = app
        .notifier
        .wait_for_user(rina.id, "checkin", WAIT)
        .await
        .expect("Rina's check-in")["checkin"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let dewi_checkin = app
        .notifier
        .wait_for_user(dewi.id, "checkin", WAIT)
        .await
        .expect("Dewi's check-in")["checkin"]["id"]
        .as_str()
        .expect("id")
        .to_owned();

    // Bad answers name the field; someone else's is 403; an unknown one 404.
    for (body, field) in [
        (json!({"wellbeing": 0, "wants_contact": false}), "wellbeing"),
        (json!({"wellbeing": 6, "wants_contact": false}), "wellbeing"),
        (
            json!({"wellbeing": "ok", "wants_contact": false}),
            "wellbeing",
        ),
        (json!({"wellbeing": 3}), "wants_contact"),
        (
            json!({"wellbeing": 3, "wants_contact": false, "note": "x".repeat(1001)}),
            "note",
        ),
    ] {
        let (status, problem) = answer(&app, &rina, &rina_checkin, body.clone()).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {problem}"
        );
        assert_eq!(fields(&problem), [field], "{body}");
    }
    let fine = json!({"wellbeing": 5, "wants_contact": false});
    let (status, _) = answer(&app, &dewi, &rina_checkin, fine.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = answer(&app, &rina, &Uuid::now_v7().to_string(), fine.clone()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Rina feels bad (2 of 5) without asking for contact: still a support request.
    let (status, answered) = answer(
        &app,
        &rina,
        &rina_checkin,
        json!({"wellbeing": 2, "wants_contact": false, "note": "Pasiennya tidak selamat"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answered}");
    assert!(answered["answered_at"].is_string());
    let (status, problem) = answer(&app, &rina, &rina_checkin, fine.clone()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(
        problem["type"],
        "https://kreki.id/problems/checkin-answered"
    );
    let (status, _) = answer(&app, &dewi, &dewi_checkin, fine).await;
    assert_eq!(status, StatusCode::OK);

    let to_coordinators = app.notifier.to_role(Role::Coordinator, "checkin.answered");
    assert_eq!(to_coordinators.len(), 2, "{to_coordinators:?}");
    let rina_answer = &to_coordinators[0]["checkin"];
    assert_eq!(rina_answer["volunteer"]["name"], "Rina");
    assert_eq!(rina_answer["wellbeing"], 2);
    assert_eq!(rina_answer["support_requested"], true);
    assert_eq!(rina_answer["note"], "Pasiennya tidak selamat");
    assert_eq!(to_coordinators[1]["checkin"]["support_requested"], false);
    let list = my_checkins(&app, &rina).await;
    assert!(list[0]["answered_at"].is_string(), "{list}");

    let coordinator = app.person("Koordinator", &[Role::Citizen, Role::Coordinator]);
    let (status, support) = app
        .call(
            Method::GET,
            "/v1/checkins?support=true",
            Some(&coordinator),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{support}");
    assert_eq!(support.as_array().map(Vec::len), Some(1), "{support}");
    assert_eq!(support[0]["id"], rina_checkin);
    let (_, all) = app
        .call(Method::GET, "/v1/checkins", Some(&coordinator), None)
        .await;
    assert_eq!(all.as_array().map(Vec::len), Some(2), "{all}");
    assert_eq!(all[0]["id"], dewi_checkin, "newest answer first");
    let (status, problem) = app
        .call(
            Method::GET,
            "/v1/checkins?support=maybe",
            Some(&coordinator),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(fields(&problem), ["support"]);
    for person in [&rina, &app.citizen("Warga")] {
        let (status, _) = app
            .call(Method::GET, "/v1/checkins?support=true", Some(person), None)
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{}", person.name);
    }
    for path in ["/v1/checkins", "/v1/volunteers/me/checkins"] {
        let (status, _) = app.call(Method::GET, path, None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn resolving_records_the_outcome_that_responders_see(pool: PgPool) {
    let app = app(pool.clone(), 3600).await;
    let coordinator = app.person("Koordinator", &[Role::Citizen, Role::Coordinator]);
    let (alert, assignment, volunteer, citizen) = assigned(&app, "Rina", 200.0).await;
    let resolve = |id: &str, who: &Person, body: Value| {
        let path = format!("/v1/alerts/{id}/resolve");
        let who = who.clone();
        let app = &app;
        async move { app.call(Method::POST, &path, Some(&who), Some(body)).await }
    };

    // Roles and bad input.
    for person in [&citizen, &volunteer] {
        let (status, _) = resolve(&alert, person, json!({"outcome": "to_hospital"})).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{}", person.name);
    }
    for (body, field) in [
        (json!({"outcome": "healed"}), "outcome"),
        (json!({}), "outcome"),
        (
            json!({"outcome": "other", "note": "x".repeat(1001)}),
            "note",
        ),
    ] {
        let (status, problem) = resolve(&alert, &coordinator, body.clone()).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {problem}"
        );
        assert_eq!(fields(&problem), [field], "{body}");
    }
    let (status, _) = resolve(
        &Uuid::now_v7().to_string(),
        &coordinator,
        json!({"outcome": "other"}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // An open alert with an active responder: resolved, the responder completed and told.
    let (status, resolved) = resolve(
        &alert,
        &coordinator,
        json!({"outcome": "to_hospital", "note": "Dibawa ke RSCM"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{resolved}");
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["outcome"], "to_hospital");
    assert_eq!(resolved["assignments"][0]["status"], "completed");
    let deadline = tokio::time::Instant::now() + WAIT;
    let update = loop {
        let seen = app
            .notifier
            .to_user(volunteer.id, "alert.updated")
            .into_iter()
            .find(|message| message["alert"]["outcome"] == "to_hospital");
        if let Some(update) = seen {
            break update;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no alert.updated with the outcome"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(update["alert"]["id"], alert);
    let (status, read) = app
        .call(
            Method::GET,
            &format!("/v1/alerts/{alert}"),
            Some(&volunteer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(read["outcome"], "to_hospital");
    let (_, timeline) = app
        .call(
            Method::GET,
            &format!("/v1/alerts/{alert}/timeline"),
            Some(&volunteer),
            None,
        )
        .await;
    let last = timeline
        .as_array()
        .and_then(|events| events.last())
        .expect("events")
        .clone();
    assert_eq!(last["type"], "resolved");
    assert_eq!(
        last["data"],
        json!({"outcome": "to_hospital", "note": "Dibawa ke RSCM"})
    );
    assert_eq!(last["actor"], coordinator.id.to_string());
    assert!(
        due_at(&pool, &volunteer).await.is_some(),
        "the responder gets a check-in"
    );
    // The volunteer is free again (after the rest period) and the assignment cannot move on.
    let (status, _) = app
        .call(
            Method::POST,
            &format!("/v1/assignments/{assignment}/status"),
            Some(&volunteer),
            Some(json!({"status": "on_scene"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    // An alert that resolved by itself (its responder completed) has no outcome until a
    // coordinator records one; recording again replaces it.
    let (other, other_assignment, dewi, _) = assigned(&app, "Dewi", 8000.0).await;
    set_status(&app, &dewi, &other_assignment, "completed").await;
    let (_, before) = app
        .call(
            Method::GET,
            &format!("/v1/alerts/{other}"),
            Some(&dewi),
            None,
        )
        .await;
    assert_eq!(
        (before["status"].clone(), before["outcome"].clone()),
        (json!("resolved"), Value::Null)
    );
    let (status, recorded) =
        resolve(&other, &coordinator, json!({"outcome": "treated_on_scene"})).await;
    assert_eq!(status, StatusCode::OK, "{recorded}");
    assert_eq!(recorded["outcome"], "treated_on_scene");
    let (_, corrected) = resolve(&other, &coordinator, json!({"outcome": "false_alarm"})).await;
    assert_eq!(corrected["outcome"], "false_alarm");
    let checkins: i64 =
        sqlx::query_scalar("SELECT count(*) FROM dispatch.checkins WHERE volunteer_id = $1")
            .bind(dewi.id)
            .fetch_one(&pool)
            .await
            .expect("count");
    assert_eq!(
        checkins, 1,
        "one check-in per assignment, however often it is resolved"
    );

    // A cancelled alert has no outcome to record.
    let (cancelled, _, _, cancelled_citizen) = assigned(&app, "Sari", 16_000.0).await;
    let (status, _) = app
        .call(
            Method::POST,
            &format!("/v1/alerts/{cancelled}/cancel"),
            Some(&cancelled_citizen),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, problem) = resolve(&cancelled, &coordinator, json!({"outcome": "other"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(problem["type"], "https://kreki.id/problems/alert-cancelled");
}

#[sqlx::test(migrations = "../migrations")]
async fn resolving_withdraws_pending_offers(pool: PgPool) {
    let app = app(pool.clone(), 3600).await;
    let coordinator = app.person("Koordinator", &[Role::Citizen, Role::Coordinator]);
    let (lat, lng) = offset(MONAS.0, MONAS.1, 100.0, 0.0);
    let volunteer = app.volunteer_at("Rina", lat, lng, &[]).await;
    let citizen = app.citizen("Sari");
    let (_, alert) = app
        .panic(&citizen, "offered", alert_body("other", MONAS))
        .await;
    let offer = app
        .notifier
        .wait_for_user(volunteer.id, "offer", WAIT)
        .await
        .expect("an offer");
    let alert = alert["id"].as_str().expect("id");
    let (status, resolved) = app
        .call(
            Method::POST,
            &format!("/v1/alerts/{alert}/resolve"),
            Some(&coordinator),
            Some(json!({"outcome": "not_found"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{resolved}");
    let withdrawn = app
        .notifier
        .wait_for_user(volunteer.id, "offer.withdrawn", WAIT)
        .await
        .expect("the offer is withdrawn");
    assert_eq!(withdrawn["offer_id"], offer["offer"]["id"]);
    assert_eq!(withdrawn["reason"], "resolved");
    let (status, _) = app
        .call(
            Method::POST,
            &format!(
                "/v1/offers/{}/accept",
                offer["offer"]["id"].as_str().expect("id")
            ),
            Some(&volunteer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let checkins: i64 = sqlx::query_scalar("SELECT count(*) FROM dispatch.checkins")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(checkins, 0, "an offer is not an assignment");
}
