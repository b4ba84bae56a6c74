//! Drills: `"drill": true` on `POST /v1/alerts` is stored with the alert and shown in its
//! representation, in `alert.updated` and in `offer` frames; a retry with the key keeps it; a repeat
//! press never attaches a drill to a real alert or a real press to a drill.

pub mod common;

use std::time::Duration;

use common::{MONAS, TestApp, alert_body, offset};
use http::{Method, StatusCode};
use kreki_auth::Role;
use serde_json::{Value, json};
use sqlx::PgPool;

fn drill_body(kind: &str, at: (f64, f64)) -> Value {
    let mut body = alert_body(kind, at);
    body["drill"] = json!(true);
    body
}

#[sqlx::test(migrations = "../migrations")]
async fn a_drill_is_stored_and_shown_and_alerts_are_real_by_default(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let citizen = app.citizen("Sari");
    let (status, drill) = app.panic(&citizen, "d-1", drill_body("fire", MONAS)).await;
    assert_eq!(status, StatusCode::CREATED, "{drill}");
    assert_eq!(drill["drill"], true);
    let far = offset(MONAS.0, MONAS.1, 5000.0, 0.0);
    let (status, real) = app.panic(&citizen, "r-1", alert_body("fire", far)).await;
    assert_eq!(status, StatusCode::CREATED, "{real}");
    assert_eq!(real["drill"], false, "no flag means a real emergency");

    let id = drill["id"].as_str().expect("an id");
    let (status, read) = app
        .call(
            Method::GET,
            &format!("/v1/alerts/{id}"),
            Some(&citizen),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read["drill"], true);
    let stored: bool = sqlx::query_scalar("SELECT drill FROM dispatch.alerts WHERE id = $1")
        .bind(uuid::Uuid::parse_str(id).expect("a uuid"))
        .fetch_one(&pool)
        .await
        .expect("stored");
    assert!(stored);

    let coordinator = app.person("Kor", &[Role::Coordinator]);
    let (status, list) = app
        .call(Method::GET, "/v1/alerts", Some(&coordinator), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let flags: Vec<(String, bool)> = list
        .as_array()
        .expect("a list")
        .iter()
        .map(|alert| {
            (
                alert["id"].as_str().expect("id").to_owned(),
                alert["drill"]
                    .as_bool()
                    .expect("a drill flag on every alert"),
            )
        })
        .collect();
    assert!(flags.contains(&(id.to_owned(), true)), "{flags:?}");
    assert!(
        flags.contains(&(real["id"].as_str().expect("id").to_owned(), false)),
        "{flags:?}"
    );

    // Coordinators hear of the new alert with its flag.
    let frames = app.notifier.to_role(Role::Coordinator, "alert.updated");
    assert!(
        frames
            .iter()
            .any(|frame| frame["alert"]["id"] == drill["id"] && frame["alert"]["drill"] == true),
        "{frames:?}"
    );

    // Not a boolean: a problem naming the field, never a 500.
    let (status, problem) = app
        .panic(
            &citizen,
            "d-bad",
            json!({"kind": "fire", "location": {"lat": MONAS.0, "lng": MONAS.1}, "drill": "yes"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_retry_returns_the_original_and_the_key_cannot_flip_the_flag(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let citizen = app.citizen("Sari");
    let (first, drill) = app
        .panic(&citizen, "key-d", drill_body("medical", MONAS))
        .await;
    assert_eq!(first, StatusCode::CREATED);
    let (again, same) = app
        .panic(&citizen, "key-d", drill_body("medical", MONAS))
        .await;
    assert_eq!(again, StatusCode::OK);
    assert_eq!(same["id"], drill["id"]);
    assert_eq!(same["drill"], true);

    // The same key with the flag dropped is another request: 409, not the drill passed off as real.
    let (status, problem) = app
        .panic(&citizen, "key-d", alert_body("medical", MONAS))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");

    // A real alert's key with the flag added is refused too.
    let far = offset(MONAS.0, MONAS.1, 5000.0, 0.0);
    let (status, _) = app
        .panic(&citizen, "key-r", alert_body("medical", far))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, problem) = app
        .panic(&citizen, "key-r", drill_body("medical", far))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");

    let alerts: i64 = sqlx::query_scalar("SELECT count(*) FROM dispatch.alerts")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(alerts, 2);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_repeat_press_never_crosses_between_drill_and_real(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let citizen = app.citizen("Sari");
    let near = offset(MONAS.0, MONAS.1, 100.0, 50.0);

    // A drill is open; a real press next to it is a new, real alert.
    let (_, drill) = app
        .panic(&citizen, "a-1", drill_body("accident", MONAS))
        .await;
    let (status, real) = app
        .panic(&citizen, "a-2", alert_body("accident", near))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{real}");
    assert_ne!(real["id"], drill["id"]);
    assert_eq!(real["drill"], false);

    // Now both are open: a further real press joins the real one, a drill press the drill.
    let (status, real_again) = app
        .panic(&citizen, "a-3", alert_body("accident", MONAS))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(real_again["id"], real["id"]);
    let (status, drill_again) = app
        .panic(&citizen, "a-4", drill_body("accident", near))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(drill_again["id"], drill["id"]);

    // The other way round: a real alert open first, then a drill press beside it.
    let other = app.citizen("Budi");
    let (_, real) = app.panic(&other, "b-1", alert_body("medical", MONAS)).await;
    let (status, drill) = app.panic(&other, "b-2", drill_body("medical", near)).await;
    assert_eq!(status, StatusCode::CREATED, "{drill}");
    assert_ne!(drill["id"], real["id"]);
    assert_eq!(drill["drill"], true);

    let (_, timeline) = app
        .call(
            Method::GET,
            &format!("/v1/alerts/{}/timeline", real["id"].as_str().expect("id")),
            Some(&other),
            None,
        )
        .await;
    let types: Vec<&str> = timeline
        .as_array()
        .expect("a list")
        .iter()
        .map(|event| event["type"].as_str().expect("a type"))
        .collect();
    assert_eq!(types, ["created"], "no drill press on the real alert");
}

#[sqlx::test(migrations = "../migrations")]
async fn offers_and_updates_carry_the_flag(pool: PgPool) {
    let mut app = TestApp::new(pool.clone()).await;
    app.start_workers();
    let (lat, lng) = offset(MONAS.0, MONAS.1, 150.0, 0.0);
    let volunteer = app.volunteer_at("Rina", lat, lng, &["first_aid"]).await;
    let citizen = app.citizen("Sari");
    let (_, drill) = app
        .panic(&citizen, "o-1", drill_body("medical", MONAS))
        .await;
    let frame = app
        .notifier
        .wait_for_user(volunteer.id, "offer", Duration::from_secs(10))
        .await
        .expect("an offer");
    assert_eq!(frame["offer"]["alert"]["id"], drill["id"]);
    assert_eq!(frame["offer"]["alert"]["drill"], true, "{frame}");

    let (status, pending) = app
        .call(
            Method::GET,
            "/v1/volunteers/me/offers",
            Some(&volunteer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{pending}");
    assert_eq!(pending[0]["alert"]["drill"], true, "{pending}");

    let offer_id = frame["offer"]["id"].as_str().expect("an offer id");
    let (status, body) = app
        .call(
            Method::POST,
            &format!("/v1/offers/{offer_id}/accept"),
            Some(&volunteer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let updates = app.notifier.to_user(citizen.id, "alert.updated");
    let assigned = updates
        .iter()
        .find(|frame| frame["alert"]["status"] == "assigned")
        .expect("the citizen hears of the accept");
    assert_eq!(assigned["alert"]["drill"], true);
}
