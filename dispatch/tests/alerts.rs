//! Ingest: durable, idempotent `POST /v1/alerts`, repeat presses, reading alerts and timelines, and
//! bad input answered with problems naming the field.

pub mod common;

use common::{MONAS, TestApp, alert_body, offset};
use http::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;

#[sqlx::test(migrations = "../migrations")]
async fn an_alert_is_stored_with_its_timeline_and_outbox_row(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let citizen = app.citizen("Sari");
    let (status, alert) = app
        .panic(&citizen, "k-1", alert_body("medical", MONAS))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{alert}");
    assert_eq!(alert["kind"], "medical");
    assert_eq!(alert["status"], "dispatching");
    assert_eq!(alert["citizen"]["name"], "Sari");
    assert_eq!(alert["citizen"]["id"], citizen.id.to_string());
    assert!((alert["location"]["lat"].as_f64().expect("lat") - MONAS.0).abs() < 1e-9);
    assert_eq!(alert["assignments"], json!([]));
    let id = alert["id"].as_str().expect("an id").to_owned();

    let (status, read) = app
        .call(
            Method::GET,
            &format!("/v1/alerts/{id}"),
            Some(&citizen),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read["id"], alert["id"]);

    let (status, timeline) = app
        .call(
            Method::GET,
            &format!("/v1/alerts/{id}/timeline"),
            Some(&citizen),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(timeline[0]["type"], "created");
    assert_eq!(timeline[0]["actor"], citizen.id.to_string());

    let outbox: i64 =
        sqlx::query_scalar("SELECT count(*) FROM dispatch.outbox WHERE processed_at IS NULL")
            .fetch_one(&pool)
            .await
            .expect("count");
    assert_eq!(outbox, 1);
    let cell: i64 = sqlx::query_scalar("SELECT h3_cell FROM dispatch.alerts")
        .fetch_one(&pool)
        .await
        .expect("cell");
    assert!(cell > 0);
}

#[sqlx::test(migrations = "../migrations")]
async fn the_same_key_returns_the_same_alert_and_another_body_is_a_conflict(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let citizen = app.citizen("Sari");
    let (first, alert) = app
        .panic(&citizen, "key-a", alert_body("fire", MONAS))
        .await;
    assert_eq!(first, StatusCode::CREATED);
    let (again, same) = app
        .panic(&citizen, "key-a", alert_body("fire", MONAS))
        .await;
    assert_eq!(again, StatusCode::OK);
    assert_eq!(same["id"], alert["id"]);

    let far = offset(MONAS.0, MONAS.1, 5000.0, 0.0);
    let (status, problem) = app.panic(&citizen, "key-a", alert_body("fire", far)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "Idempotency-Key");

    // The key belongs to its citizen: someone else's identical key is a new alert.
    let other = app.citizen("Budi");
    let (status, theirs) = app.panic(&other, "key-a", alert_body("fire", MONAS)).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_ne!(theirs["id"], alert["id"]);
}

#[sqlx::test(migrations = "../migrations")]
async fn ten_concurrent_retries_with_one_key_make_one_alert(pool: PgPool) {
    let app = std::sync::Arc::new(TestApp::new(pool.clone()).await);
    let citizen = app.citizen("Sari");
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let app = app.clone();
        let citizen = citizen.clone();
        tasks.push(tokio::spawn(async move {
            app.panic(&citizen, "same-key", alert_body("cardiac_arrest", MONAS))
                .await
        }));
    }
    let mut ids = std::collections::HashSet::new();
    let mut created = 0;
    for task in tasks {
        let (status, alert) = task.await.expect("the task ran");
        assert!(
            status == StatusCode::CREATED || status == StatusCode::OK,
            "{status} {alert}"
        );
        if status == StatusCode::CREATED {
            created += 1;
        }
        ids.insert(alert["id"].as_str().expect("an id").to_owned());
    }
    assert_eq!(ids.len(), 1, "every retry sees the same alert");
    assert_eq!(created, 1, "exactly one answer is 201");
    let alerts: i64 = sqlx::query_scalar("SELECT count(*) FROM dispatch.alerts")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(alerts, 1);
    let outbox: i64 = sqlx::query_scalar("SELECT count(*) FROM dispatch.outbox")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(outbox, 1);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_second_press_nearby_attaches_to_the_open_alert(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let citizen = app.citizen("Sari");
    let (_, alert) = app
        .panic(&citizen, "p-1", alert_body("accident", MONAS))
        .await;
    let near = offset(MONAS.0, MONAS.1, 200.0, 100.0);
    let (status, again) = app
        .panic(&citizen, "p-2", alert_body("accident", near))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["id"], alert["id"]);
    let id = alert["id"].as_str().expect("id");
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
        .expect("a list")
        .iter()
        .map(|event| event["type"].as_str().expect("a type"))
        .collect();
    assert_eq!(types, ["created", "repeat_press"]);

    // Another kind, or far away, is a new alert.
    let (status, other_kind) = app.panic(&citizen, "p-3", alert_body("fire", near)).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_ne!(other_kind["id"], alert["id"]);
    let far = offset(MONAS.0, MONAS.1, 3000.0, 0.0);
    let (status, far_alert) = app
        .panic(&citizen, "p-4", alert_body("accident", far))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_ne!(far_alert["id"], alert["id"]);
}

#[sqlx::test(migrations = "../migrations")]
async fn bad_input_is_a_problem_naming_the_field(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let citizen = app.citizen("Sari");

    let (status, problem) = app
        .call(
            Method::POST,
            "/v1/alerts",
            Some(&citizen),
            Some(alert_body("medical", MONAS)),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "Idempotency-Key");

    let cases = [
        (
            json!({"kind": "medical", "location": {"lat": 91.0, "lng": 106.8}}),
            "location.lat",
        ),
        (
            json!({"kind": "medical", "location": {"lat": -6.2, "lng": 181.0}}),
            "location.lng",
        ),
        (
            json!({"kind": "medical", "location": {"lat": "north", "lng": 106.8}}),
            "location.lat",
        ),
        (
            json!({"kind": "medical", "location": {"lng": 106.8}}),
            "location.lat",
        ),
        (
            json!({"kind": "flood", "location": {"lat": -6.2, "lng": 106.8}}),
            "kind",
        ),
        (
            json!({"kind": "medical", "location": {"lat": -6.2, "lng": 106.8, "accuracy_m": -1}}),
            "location.accuracy_m",
        ),
        (
            json!({"kind": "medical", "location": {"lat": -6.2, "lng": 106.8}, "patient": {"nik": "123"}}),
            "patient.nik",
        ),
    ];
    for (index, (body, field)) in cases.into_iter().enumerate() {
        let (status, problem) = app
            .panic(&citizen, &format!("bad-{index}"), body.clone())
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body} -> {problem}"
        );
        assert_eq!(problem["errors"][0]["field"], field, "{body} -> {problem}");
    }
    let (status, _) = app
        .call_with(
            Method::POST,
            "/v1/alerts",
            Some(&citizen),
            Some(alert_body("medical", MONAS)),
            &[("idempotency-key", "has space")],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let (status, _) = app.panic(&citizen, "no-body", json!("not an object")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = app
        .call(Method::GET, "/v1/alerts/not-a-uuid", Some(&citizen), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = app
        .call(
            Method::POST,
            "/v1/alerts",
            None,
            Some(alert_body("medical", MONAS)),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let nothing: i64 = sqlx::query_scalar("SELECT count(*) FROM dispatch.alerts")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(nothing, 0, "no bad request stored anything");
}

#[sqlx::test(migrations = "../migrations")]
async fn only_its_citizen_offered_volunteers_and_coordinators_see_an_alert(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let citizen = app.citizen("Sari");
    let (_, alert) = app
        .panic(&citizen, "v-1", alert_body("security", MONAS))
        .await;
    let id = alert["id"].as_str().expect("id");
    let stranger = app.citizen("Budi");
    let (status, _) = app
        .call(
            Method::GET,
            &format!("/v1/alerts/{id}"),
            Some(&stranger),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let coordinator = app.person("Kor", &[kreki_auth::Role::Coordinator]);
    let (status, _) = app
        .call(
            Method::GET,
            &format!("/v1/alerts/{id}"),
            Some(&coordinator),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .call(
            Method::GET,
            &format!("/v1/alerts/{}", uuid::Uuid::now_v7()),
            Some(&coordinator),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// The change feed other services read (the SATUSEHAT bridge): each changed alert once per batch,
/// as its full state with the patient's NIK, after the events settled; the cursor moves past it.
#[sqlx::test(migrations = "../migrations")]
async fn the_change_feed_gives_each_changed_alert_with_its_patient_after_settling(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let ani = app.citizen("Ani");
    let budi = app.citizen("Budi");
    let mut with_patient = alert_body("medical", MONAS);
    with_patient["patient"] = json!({"nik": "3171234567890001"});
    let (status, first) = app.panic(&ani, "feed-1", with_patient).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, second) = app
        .panic(
            &budi,
            "feed-2",
            alert_body("fire", offset(MONAS.0, MONAS.1, 3000.0, 0.0)),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{second}");

    tokio::time::sleep(std::time::Duration::from_secs_f64(
        kreki_dispatch::service::CHANGE_SETTLE_S + 0.5,
    ))
    .await;
    let changes = app.service.changes_after(0, 100).await.expect("feed");
    let ids: Vec<String> = changes
        .iter()
        .map(|change| change.alert.id.to_string())
        .collect();
    assert_eq!(
        ids,
        [
            first["id"].as_str().expect("id"),
            second["id"].as_str().expect("id")
        ]
    );
    assert_eq!(
        changes[0]
            .patient_nik
            .as_ref()
            .map(kreki_platform::pii::Nik::expose),
        Some("3171234567890001")
    );
    assert_eq!(changes[1].patient_nik, None);
    assert!(changes[0].seq < changes[1].seq);
    let after = changes[1].seq;
    assert!(
        app.service
            .changes_after(after, 100)
            .await
            .expect("feed")
            .is_empty(),
        "nothing after the cursor"
    );
}
