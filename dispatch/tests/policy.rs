//! The offer policy and roles of a cardiac arrest as configured by default: seven offers live,
//! each decliner (or non-responder) replaced at once within the current radius, the first three
//! accepts given the roles CPR, AED and lead, and co-responders seeing each other while they are
//! assigned.

pub mod common;

use std::time::{Duration, Instant};

use common::{MONAS, Person, TestApp, alert_body, offset};
use http::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;

const WAIT: Duration = Duration::from_secs(10);

/// `n` BLS volunteers north of Monas, 40 m apart starting at 40 m (all within 500 m for n <= 12).
async fn responders(app: &TestApp, n: usize) -> Vec<Person> {
    let mut people = Vec::new();
    for index in 0..n {
        let metres = 40.0 * (index as f64 + 1.0);
        let (lat, lng) = offset(MONAS.0, MONAS.1, metres, 0.0);
        people.push(
            app.volunteer_at(&format!("Relawan {index}"), lat, lng, &["bls"])
                .await,
        );
    }
    people
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

async fn answer(
    app: &TestApp,
    volunteer: &Person,
    offer: &Value,
    verb: &str,
) -> (StatusCode, Value) {
    let id = offer["id"].as_str().expect("an offer id");
    app.call(
        Method::POST,
        &format!("/v1/offers/{id}/{verb}"),
        Some(volunteer),
        None,
    )
    .await
}

async fn moved(app: &TestApp, who: &Person, at: (f64, f64)) -> (StatusCode, Value) {
    app.call(
        Method::POST,
        "/v1/volunteers/me/location",
        Some(who),
        Some(json!({"lat": at.0, "lng": at.1, "accuracy_m": 5})),
    )
    .await
}

async fn started(pool: PgPool) -> TestApp {
    let mut app = TestApp::new(pool).await;
    app.start_workers();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !app.service.is_dispatching() {
        assert!(tokio::time::Instant::now() < deadline, "never dispatching");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    app
}

#[sqlx::test(migrations = "../migrations")]
async fn a_decline_is_answered_with_its_replacement_already_offered(pool: PgPool) {
    let app = started(pool).await;
    let volunteers = responders(&app, 9).await;
    let citizen = app.citizen("Sari");
    let (status, alert) = app
        .panic(&citizen, "cpr-1", alert_body("cardiac_arrest", MONAS))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{alert}");
    // Seven live at once, the nearest first.
    for volunteer in &volunteers[..7] {
        offer_for(&app, volunteer).await;
    }
    assert!(!offered(&app, &volunteers[7]) && !offered(&app, &volunteers[8]));

    let nearest = offer_for(&app, &volunteers[0]).await;
    let before = Instant::now();
    let (status, declined) = answer(&app, &volunteers[0], &nearest, "decline").await;
    let took = before.elapsed();
    assert_eq!(status, StatusCode::OK, "{declined}");
    assert!(
        offered(&app, &volunteers[7]),
        "the eighth nearest was offered before the decline was answered"
    );
    assert!(took < Duration::from_secs(1), "the decline took {took:?}");
    assert!(
        !offered(&app, &volunteers[8]),
        "one replacement for one decline"
    );

    let (_, timeline) = app
        .call(
            Method::GET,
            &format!("/v1/alerts/{}/timeline", alert["id"].as_str().expect("id")),
            Some(&citizen),
            None,
        )
        .await;
    let kinds: Vec<&str> = timeline
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|event| event["type"].as_str())
        .collect();
    assert!(kinds.contains(&"replacements_sent"), "{kinds:?}");
}

#[sqlx::test(migrations = "../migrations")]
async fn the_first_three_accepts_get_cpr_aed_and_lead_and_a_freed_role_goes_to_the_next(
    pool: PgPool,
) {
    let app = started(pool).await;
    let volunteers = responders(&app, 5).await;
    let citizen = app.citizen("Sari");
    let (_, alert) = app
        .panic(&citizen, "cpr-2", alert_body("cardiac_arrest", MONAS))
        .await;
    let mut roles = Vec::new();
    for volunteer in &volunteers[..3] {
        let offer = offer_for(&app, volunteer).await;
        let (status, assignment) = answer(&app, volunteer, &offer, "accept").await;
        assert_eq!(status, StatusCode::OK, "{assignment}");
        roles.push(assignment["role"].clone());
    }
    assert_eq!(roles, [json!("cpr"), json!("aed"), json!("lead")]);
    // Covered with three: the others are told.
    let offer = offer_for(&app, &volunteers[3]).await;
    let (status, problem) = answer(&app, &volunteers[3], &offer, "accept").await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");

    // The CPR responder withdraws; the next one sent takes CPR.
    let (_, read) = app
        .call(
            Method::GET,
            &format!("/v1/alerts/{}", alert["id"].as_str().expect("id")),
            Some(&citizen),
            None,
        )
        .await;
    let cpr = read["assignments"]
        .as_array()
        .expect("assignments")
        .iter()
        .find(|assignment| assignment["role"] == "cpr")
        .expect("a CPR responder")
        .clone();
    let (status, _) = app
        .call(
            Method::POST,
            &format!("/v1/assignments/{}/status", cpr["id"].as_str().expect("id")),
            Some(&volunteers[0]),
            Some(json!({"status": "withdrawn"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let coordinator = app.person("Kor", &[kreki_auth::Role::Coordinator]);
    let (status, assigned) = app
        .call(
            Method::POST,
            &format!("/v1/alerts/{}/assign", alert["id"].as_str().expect("id")),
            Some(&coordinator),
            Some(json!({"volunteer_id": volunteers[4].id})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{assigned}");
    let newcomer = assigned["assignments"]
        .as_array()
        .expect("assignments")
        .iter()
        .find(|assignment| assignment["volunteer"]["id"] == volunteers[4].id.to_string())
        .expect("assigned")
        .clone();
    assert_eq!(newcomer["role"], "cpr");
}

#[sqlx::test(migrations = "../migrations")]
async fn co_responders_see_each_other_while_assigned_and_not_after(pool: PgPool) {
    let app = started(pool).await;
    let volunteers = responders(&app, 3).await;
    let citizen = app.citizen("Sari");
    app.panic(&citizen, "cpr-3", alert_body("cardiac_arrest", MONAS))
        .await;
    let mut assignments = Vec::new();
    for volunteer in &volunteers[..2] {
        let offer = offer_for(&app, volunteer).await;
        let (status, assignment) = answer(&app, volunteer, &offer, "accept").await;
        assert_eq!(status, StatusCode::OK, "{assignment}");
        assignments.push(assignment);
    }
    let (lat, lng) = offset(MONAS.0, MONAS.1, 20.0, 5.0);
    let (status, _) = moved(&app, &volunteers[0], (lat, lng)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let seen = app
        .notifier
        .wait_for_user(volunteers[1].id, "responder.position", WAIT)
        .await
        .expect("the AED responder sees the CPR responder");
    assert_eq!(seen["volunteer"]["id"], volunteers[0].id.to_string());
    assert_eq!(seen["role"], "cpr");
    assert!((seen["lat"].as_f64().expect("lat") - lat).abs() < 1e-9);
    assert!(
        app.notifier
            .to_user(volunteers[2].id, "responder.position")
            .is_empty(),
        "a volunteer not on the team sees nothing"
    );

    // The first completes: from then on neither sees the other.
    let (status, _) = app
        .call(
            Method::POST,
            &format!(
                "/v1/assignments/{}/status",
                assignments[0]["id"].as_str().expect("id")
            ),
            Some(&volunteers[0]),
            Some(json!({"status": "completed"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let before = app
        .notifier
        .to_user(volunteers[1].id, "responder.position")
        .len();
    moved(&app, &volunteers[0], (lat, lng)).await;
    moved(&app, &volunteers[1], (lat, lng)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        app.notifier
            .to_user(volunteers[1].id, "responder.position")
            .len(),
        before
    );
    assert!(
        app.notifier
            .to_user(volunteers[0].id, "responder.position")
            .iter()
            .all(
                |message| message["volunteer"]["id"] != volunteers[1].id.to_string()
                    || message["lat"].as_f64() != Some(lat)
            )
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn an_offer_that_lapses_is_replaced_and_a_volunteer_who_takes_another_alert_too(
    pool: PgPool,
) {
    let app = started(pool.clone()).await;
    let volunteers = responders(&app, 10).await;
    let citizen = app.citizen("Sari");
    let (_, cardiac) = app
        .panic(&citizen, "cpr-4", alert_body("cardiac_arrest", MONAS))
        .await;
    let first = offer_for(&app, &volunteers[0]).await;
    // The nearest volunteer's offer lapses (as 30 s would) and its deadline falls due.
    sqlx::query(
        "UPDATE dispatch.offers SET expires_at = now() - interval '1 second' WHERE id = $1",
    )
    .bind(uuid::Uuid::parse_str(first["id"].as_str().expect("id")).expect("uuid"))
    .execute(&pool)
    .await
    .expect("lapsed");
    sqlx::query("UPDATE dispatch.timers SET due_at = now() - interval '1 second'")
        .execute(&pool)
        .await
        .expect("due");
    app.service
        .process_due_timers()
        .await
        .expect("the deadline fired");
    offer_for(&app, &volunteers[7]).await;
    let withdrawn = app
        .notifier
        .wait_for_user(volunteers[0].id, "offer.withdrawn", WAIT)
        .await
        .expect("the lapsed offer is withdrawn");
    assert_eq!(withdrawn["reason"], "expired");

    // The second nearest takes another alert: their cardiac-arrest offer is replaced at once.
    let budi = app.citizen("Budi");
    let elsewhere = offset(MONAS.0, MONAS.1, 80.0, 30.0);
    let (_, other) = app
        .panic(&budi, "other-1", alert_body("other", elsewhere))
        .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let other_offer = loop {
        if let Some(message) = app
            .notifier
            .to_user(volunteers[1].id, "offer")
            .into_iter()
            .find(|message| message["offer"]["alert"]["id"] == other["id"])
        {
            break message["offer"].clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no offer of the other alert"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let (status, _) = answer(&app, &volunteers[1], &other_offer, "accept").await;
    assert_eq!(status, StatusCode::OK);
    let deadline = tokio::time::Instant::now() + WAIT;
    while !offered(&app, &volunteers[8]) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the busy volunteer's cardiac-arrest offer was not replaced"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let replacement = offer_for(&app, &volunteers[8]).await;
    assert_eq!(replacement["alert"]["id"], cardiac["id"]);
}

#[sqlx::test(migrations = "../migrations")]
async fn the_aed_responder_is_routed_via_an_aed_open_now_never_a_closed_one(pool: PgPool) {
    use kreki_dispatch::domain::aeds::jakarta_day_and_minute;

    let app = started(pool).await;
    let volunteers = responders(&app, 3).await;
    let admin = app.person("Admin", &[kreki_auth::Role::Admin]);
    let (today, _) = jakarta_day_and_minute(chrono::Utc::now());
    let always: Vec<Value> = (0..=6)
        .map(|day| json!({"day": day, "open": "00:00", "close": "24:00"}))
        .collect();
    let closed_now = json!([{"day": (today + 3) % 7, "open": "00:00", "close": "24:00"}]);
    let mut aeds = Vec::new();
    // The closed one lies right on the way; the open one a little aside.
    for (north_m, east_m, hours, place) in [
        (60.0, 0.0, json!(closed_now), "Kantor pos, dikunci malam"),
        (
            90.0,
            120.0,
            json!(always),
            "Lobi hotel, samping resepsionis",
        ),
    ] {
        let (lat, lng) = offset(MONAS.0, MONAS.1, north_m, east_m);
        let (status, aed) = app
            .call(
                Method::POST,
                "/v1/aeds",
                Some(&admin),
                Some(json!({"lat": lat, "lng": lng, "description": place, "hours": hours})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{aed}");
        let (status, verified) = app
            .call(
                Method::PATCH,
                &format!("/v1/aeds/{}", aed["id"].as_str().expect("id")),
                Some(&admin),
                Some(json!({"verified": true})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{verified}");
        aeds.push(verified);
    }
    let citizen = app.citizen("Sari");
    app.panic(&citizen, "cpr-5", alert_body("cardiac_arrest", MONAS))
        .await;
    let mut assignments = Vec::new();
    for volunteer in &volunteers {
        let offer = offer_for(&app, volunteer).await;
        let (status, assignment) = answer(&app, volunteer, &offer, "accept").await;
        assert_eq!(status, StatusCode::OK, "{assignment}");
        assignments.push(assignment);
    }
    let aed_responder = &assignments[1];
    assert_eq!(aed_responder["role"], "aed");
    assert_eq!(
        aed_responder["aed"]["id"], aeds[1]["id"],
        "routed via the AED open now: {aed_responder}"
    );
    assert_eq!(
        aed_responder["aed"]["description"],
        "Lobi hotel, samping resepsionis"
    );
    let via = aed_responder["aed"]["distance_via_m"]
        .as_f64()
        .expect("the walk via the AED");
    assert!(via > 80.0 && via < 600.0, "{via}");
    assert!(assignments[0]["aed"].is_null() && assignments[2]["aed"].is_null());
}
