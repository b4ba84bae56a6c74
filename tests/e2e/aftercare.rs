//! Aftercare through the real `kreki` process and real WebSockets (issue 13): a volunteer
//! completes an assignment; the check-in reaches their socket once it falls due (two seconds
//! later here, `dispatch.checkin_after_s`); they answer asking for support; a coordinator's socket
//! gets the answer flagged and the coordinators' list shows it; a coordinator resolves the alert
//! with its outcome, and the responder's socket gets the alert with that outcome.

use std::time::{Duration, Instant};

use futures_util::SinkExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio_tungstenite::tungstenite::Message;

use crate::support::{
    JsonApi, MONAS, Server, Socket, TempDir, create_account, database_url, frame_where, ok,
    open_socket, signing_key,
};

const PATIENCE: Duration = Duration::from_secs(15);
const PASSWORD: &str = "kata-sandi-aman";

/// Creates an account with the CLI (extra `roles` beyond citizen).
fn account(url: &str, phone: &str, name: &str, roles: &[&str]) {
    create_account(url, phone, PASSWORD, name, roles);
}

async fn connect(server: &Server, token: &str) -> Socket {
    open_socket(&server.base, token).await
}

/// The next frame of `kind` that satisfies `wanted`, skipping the others.
async fn next_where(socket: &mut Socket, kind: &str, wanted: impl Fn(&Value) -> bool) -> Value {
    frame_where(socket, kind, PATIENCE, wanted)
        .await
        .unwrap_or_else(|| panic!("no {kind} frame in time"))
}

async fn next_of(socket: &mut Socket, kind: &str) -> Value {
    next_where(socket, kind, |_| true).await
}

#[sqlx::test(migrations = false)]
async fn a_checkin_follows_an_assignment_and_a_support_request_reaches_coordinators(pool: PgPool) {
    let dir = TempDir::new();
    let key = signing_key(&dir.0);
    let url = database_url(&pool);
    let env = vec![
        ("KREKI_DATABASE__URL", url.clone()),
        ("KREKI_AUTH__SIGNING_KEY_FILE", key.display().to_string()),
        ("KREKI_DISPATCH__CHECKIN_AFTER_S", "2".to_owned()),
        ("KREKI_DISPATCH__POLL_INTERVAL_MS", "200".to_owned()),
    ];
    let server = Server::start(&env).await;
    account(&url, "081300000001", "Rina", &["volunteer"]);
    account(&url, "081300000002", "Sari", &[]);
    account(&url, "081300000003", "Koordinator", &["coordinator"]);
    let api = JsonApi::new(&server.base);
    let volunteer = api.login("081300000001", PASSWORD).await;
    let citizen = api.login("081300000002", PASSWORD).await;
    let coordinator = api.login("081300000003", PASSWORD).await;
    let mut volunteer_socket = connect(&server, &volunteer).await;
    let mut coordinator_socket = connect(&server, &coordinator).await;

    // On duty 150 m from the alert; `other` needs no certification.
    let (status, body) = api
        .send(
            Method::PUT,
            "/v1/volunteers/me/duty",
            Some(&volunteer),
            Some(json!({"on_duty": true})),
        )
        .await;
    ok(status, &body);
    let (status, body) = api
        .send(
            Method::POST,
            "/v1/volunteers/me/location",
            Some(&volunteer),
            Some(json!({"lat": MONAS.0 + 150.0 / 110_574.0, "lng": MONAS.1, "accuracy_m": 5})),
        )
        .await;
    ok(status, &body);
    let response = api
        .client
        .post(format!("{}/v1/alerts", server.base))
        .bearer_auth(&citizen)
        .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
        .json(&json!({"kind": "other", "location": {"lat": MONAS.0, "lng": MONAS.1, "accuracy_m": 10}}))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), StatusCode::CREATED);
    let alert: Value = response.json().await.expect("JSON");
    let alert_id = alert["id"].as_str().expect("an id").to_owned();

    // The volunteer takes it and completes it.
    let offer = next_of(&mut volunteer_socket, "offer").await;
    let offer_id = offer["offer"]["id"].as_str().expect("an offer id");
    let (status, assignment) = api
        .send(
            Method::POST,
            &format!("/v1/offers/{offer_id}/accept"),
            Some(&volunteer),
            None,
        )
        .await;
    ok(status, &assignment);
    let assignment_id = assignment["id"].as_str().expect("an id");
    let completed_at = Instant::now();
    let (status, body) = api
        .send(
            Method::POST,
            &format!("/v1/assignments/{assignment_id}/status"),
            Some(&volunteer),
            Some(json!({"status": "completed"})),
        )
        .await;
    ok(status, &body);

    // The check-in arrives on the volunteer's socket once due, not before.
    let checkin = next_of(&mut volunteer_socket, "checkin").await;
    let waited = completed_at.elapsed();
    assert!(
        waited >= Duration::from_millis(1500),
        "arrived after {waited:?}, before it was due"
    );
    assert_eq!(checkin["checkin"]["alert_id"], alert_id);
    assert!(checkin["checkin"]["answered_at"].is_null());
    let checkin_id = checkin["checkin"]["id"].as_str().expect("an id").to_owned();
    let (status, mine) = api
        .send(
            Method::GET,
            "/v1/volunteers/me/checkins",
            Some(&volunteer),
            None,
        )
        .await;
    ok(status, &mine);
    assert_eq!(mine[0]["id"], checkin_id.as_str());

    // They answer asking to be contacted; the coordinator's socket gets it flagged.
    let (status, problem) = api
        .send(
            Method::POST,
            &format!("/v1/checkins/{checkin_id}"),
            Some(&volunteer),
            Some(json!({"wellbeing": 9, "wants_contact": true})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["errors"][0]["field"], "wellbeing");
    let (status, body) = api
        .send(
            Method::POST,
            &format!("/v1/checkins/{checkin_id}"),
            Some(&volunteer),
            Some(json!({"wellbeing": 3, "wants_contact": true, "note": "Saya ingin bicara"})),
        )
        .await;
    ok(status, &body);
    let answered = next_of(&mut coordinator_socket, "checkin.answered").await;
    assert_eq!(answered["checkin"]["id"], checkin_id.as_str());
    assert_eq!(answered["checkin"]["support_requested"], true);
    assert_eq!(answered["checkin"]["volunteer"]["name"], "Rina");
    let (status, support) = api
        .send(
            Method::GET,
            "/v1/checkins?support=true",
            Some(&coordinator),
            None,
        )
        .await;
    ok(status, &support);
    assert_eq!(support.as_array().map(Vec::len), Some(1), "{support}");
    assert_eq!(support[0]["id"], checkin_id.as_str());
    assert_eq!(support[0]["note"], "Saya ingin bicara");

    // The coordinator records the outcome; the responder's socket gets the alert with it.
    let (status, resolved) = api
        .send(
            Method::POST,
            &format!("/v1/alerts/{alert_id}/resolve"),
            Some(&coordinator),
            Some(json!({"outcome": "to_hospital", "note": "Dibawa ke RSCM"})),
        )
        .await;
    ok(status, &resolved);
    assert_eq!(resolved["outcome"], "to_hospital");
    let update = next_where(&mut volunteer_socket, "alert.updated", |frame| {
        frame["alert"]["outcome"] == "to_hospital"
    })
    .await;
    assert_eq!(update["alert"]["id"], alert_id.as_str());
    assert_eq!(update["alert"]["status"], "resolved");

    let _ = volunteer_socket.send(Message::Close(None)).await;
    let _ = coordinator_socket.send(Message::Close(None)).await;
    server.terminate();
    assert!(server.wait().await.success());
}
