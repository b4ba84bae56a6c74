//! Traces from a real `kreki` process: with `telemetry.otlp_endpoint` set, the panic request's
//! server span reaches an OTLP receiver inside the trace its caller started (`traceparent`), named
//! by its route and carrying the answer's status; inside it, the first wave's planning and the
//! ingest statement; and a later wave of that alert (after the volunteer declined) joins the same
//! trace, although another task runs it. Across instances: the offer's socket write on the
//! instance holding the volunteer's socket and the push sent by the instance that ran the wave join
//! the panic's trace too (the trace context rides on the Redis bus with the message).

use std::time::Duration;

use kreki_platform::telemetry::receiver::{OtlpReceiver, ReceivedSpan};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::support::{
    JsonApi, Server, TempDir, create_account, database_url, frame_where, open_socket, signing_key,
};

fn server_span<'a>(spans: &'a [ReceivedSpan], name: &str) -> Option<&'a ReceivedSpan> {
    spans
        .iter()
        .find(|span| span.name == name && span.kind == 2)
}

#[sqlx::test(migrations = false)]
async fn the_panic_request_is_a_server_span_in_the_callers_trace(pool: PgPool) {
    let receiver = OtlpReceiver::start().await.expect("receiver starts");
    let dir = TempDir::new();
    let key = signing_key(&dir.0);
    let server = Server::start(&[
        ("KREKI_DATABASE__URL", database_url(&pool)),
        ("KREKI_AUTH__SIGNING_KEY_FILE", key.display().to_string()),
        ("KREKI_TELEMETRY__OTLP_ENDPOINT", receiver.endpoint()),
        ("KREKI_TELEMETRY__SERVICE_NAME", "kreki-e2e".to_owned()),
        ("KREKI_TELEMETRY__BATCH_DELAY_MS", "100".to_owned()),
    ])
    .await;
    let api = JsonApi::new(&server.base);
    let (status, body) = api
        .send(
            reqwest::Method::POST,
            "/v1/auth/register",
            None,
            Some(
                json!({"phone": "0813-5555-0101", "password": "kata-sandi-aman", "name": "Warga"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let citizen = api.login("081355550101", "kata-sandi-aman").await;
    create_account(
        &database_url(&pool),
        "081355550102",
        "kata-sandi-aman",
        "Relawan",
        &["volunteer"],
    );
    let volunteer = api.login("081355550102", "kata-sandi-aman").await;
    let (status, body) = api
        .send(
            reqwest::Method::PUT,
            "/v1/volunteers/me/duty",
            Some(&volunteer),
            Some(json!({"on_duty": true})),
        )
        .await;
    assert!(status.is_success(), "{body}");
    let (status, body) = api
        .send(
            reqwest::Method::POST,
            "/v1/volunteers/me/location",
            Some(&volunteer),
            Some(json!({"lat": -6.1758, "lng": 106.8272, "accuracy_m": 5})),
        )
        .await;
    assert!(status.is_success(), "{body}");

    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let caller_span = "b7ad6b7169203331";
    let response = api
        .client
        .post(format!("{}/v1/alerts", server.base))
        .bearer_auth(&citizen)
        .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
        .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
        .json(&json!({"kind": "other", "location": {"lat": -6.1754, "lng": 106.8272, "accuracy_m": 10}}))
        .send()
        .await
        .expect("panic answered");
    assert_eq!(response.status(), StatusCode::CREATED);
    let alert: Value = response.json().await.expect("JSON");
    assert!(alert["id"].is_string(), "{alert}");

    let spans = receiver
        .wait_for(Duration::from_secs(15), |spans| {
            server_span(spans, "POST /v1/alerts").is_some()
        })
        .await;
    let panic = server_span(&spans, "POST /v1/alerts")
        .unwrap_or_else(|| panic!("no server span for the panic in {spans:#?}"));
    assert_eq!(panic.trace_id, trace_id, "the caller's trace continues");
    assert_eq!(panic.parent_span_id, caller_span);
    assert_eq!(panic.service_name, "kreki-e2e");
    assert_eq!(panic.attributes["http.route"], "/v1/alerts");
    assert_eq!(panic.attributes["http.response.status_code"], "201");
    // The sign-in before it is a trace of its own: no traceparent was sent.
    let login = server_span(&spans, "POST /v1/auth/login").expect("the login's span");
    assert_ne!(login.trace_id, trace_id);
    assert_eq!(login.parent_span_id, "");
    // Inside the panic: its first wave planned, then the one statement that stores it.
    for name in ["dispatch.first_wave", "dispatch.ingest"] {
        let span = spans
            .iter()
            .find(|span| span.name == name && span.trace_id == trace_id)
            .unwrap_or_else(|| panic!("no {name} span in the panic's trace: {spans:#?}"));
        assert_eq!(
            span.parent_span_id, panic.span_id,
            "{name} is the request's child"
        );
    }

    // The volunteer declines: the next wave runs in the dispatcher, still in the panic's trace.
    let (status, offers) = api
        .send(
            reqwest::Method::GET,
            "/v1/volunteers/me/offers",
            Some(&volunteer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{offers}");
    let offer = offers[0]["id"].as_str().expect("an offer").to_owned();
    let (status, body) = api
        .send(
            reqwest::Method::POST,
            &format!("/v1/offers/{offer}/decline"),
            Some(&volunteer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let spans = receiver
        .wait_for(Duration::from_secs(15), |spans| {
            spans
                .iter()
                .any(|span| span.name == "dispatch.wave" && span.trace_id == trace_id)
        })
        .await;
    assert!(
        spans
            .iter()
            .any(|span| span.name == "dispatch.wave" && span.trace_id == trace_id),
        "a later wave joins the panic's trace: {spans:#?}"
    );

    // SIGTERM flushes what is still queued: the process exits cleanly with the exporter on.
    server.terminate();
    assert!(server.wait().await.success());
}

fn redis_url() -> String {
    std::env::var("KREKI_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

#[sqlx::test(migrations = false)]
async fn the_offers_socket_write_and_push_join_the_panics_trace_across_instances(pool: PgPool) {
    drop(rustls::crypto::aws_lc_rs::default_provider().install_default());
    let receiver = OtlpReceiver::start().await.expect("receiver starts");
    let fcm = kreki_realtime::push::FakeFcm::start(
        "kreki-e2e",
        "127.0.0.1:0".parse().expect("an address"),
    )
    .await
    .expect("the fake FCM starts");
    let dir = TempDir::new();
    let key = signing_key(&dir.0);
    let account_file = dir.0.join("fcm-service-account.json");
    std::fs::write(&account_file, fcm.service_account_json()).expect("written");
    let prefix = format!("kreki-e2e-traces-{}:", uuid::Uuid::new_v4().simple());
    let env = |service: &str| {
        vec![
            ("KREKI_DATABASE__URL", database_url(&pool)),
            ("KREKI_AUTH__SIGNING_KEY_FILE", key.display().to_string()),
            ("KREKI_REALTIME__REDIS__URL", redis_url()),
            ("KREKI_REALTIME__REDIS__KEY_PREFIX", prefix.clone()),
            (
                "KREKI_PUSH__FCM__SERVICE_ACCOUNT_FILE",
                account_file.display().to_string(),
            ),
            ("KREKI_PUSH__FCM__BASE_URL", fcm.base_url()),
            ("KREKI_PUSH__FCM__TOKEN_URL", fcm.token_url()),
            ("KREKI_PUSH__PUSH_WHEN", "always".to_owned()),
            ("KREKI_TELEMETRY__OTLP_ENDPOINT", receiver.endpoint()),
            ("KREKI_TELEMETRY__SERVICE_NAME", service.to_owned()),
            ("KREKI_TELEMETRY__BATCH_DELAY_MS", "100".to_owned()),
        ]
    };
    let a = Server::start(&env("kreki-a")).await;
    let b = Server::start(&env("kreki-b")).await;
    let url = database_url(&pool);
    create_account(&url, "081355550201", "kata-sandi-aman", "Warga", &[]);
    create_account(
        &url,
        "081355550202",
        "kata-sandi-aman",
        "Relawan",
        &["volunteer"],
    );
    let api_a = JsonApi::new(&a.base);
    let api_b = JsonApi::new(&b.base);
    let citizen = api_a.login("081355550201", "kata-sandi-aman").await;
    let volunteer = api_b.login("081355550202", "kata-sandi-aman").await;
    for (method, path, body) in [
        (
            reqwest::Method::POST,
            "/v1/devices",
            json!({"platform": "android", "token": "fcm-token-relawan"}),
        ),
        (
            reqwest::Method::PUT,
            "/v1/volunteers/me/duty",
            json!({"on_duty": true}),
        ),
        (
            reqwest::Method::POST,
            "/v1/volunteers/me/location",
            json!({"lat": -6.1758, "lng": 106.8272, "accuracy_m": 5}),
        ),
    ] {
        let (status, answer) = api_b.send(method, path, Some(&volunteer), Some(body)).await;
        assert!(status.is_success(), "{path}: {answer}");
    }
    // The volunteer's socket is on B; the panic arrives at A, which runs the first wave.
    let mut socket = open_socket(&b.base, &volunteer).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let response = api_a
        .client
        .post(format!("{}/v1/alerts", a.base))
        .bearer_auth(&citizen)
        .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .json(&json!({"kind": "other", "location": {"lat": -6.1754, "lng": 106.8272, "accuracy_m": 10}}))
        .send()
        .await
        .expect("panic answered");
    assert_eq!(response.status(), StatusCode::CREATED);
    let offer = frame_where(&mut socket, "offer", Duration::from_secs(15), |_| true).await;
    assert!(offer.is_some(), "the offer reaches the socket on B");

    let in_trace = |spans: &[ReceivedSpan], name: &str, service: &str| {
        spans
            .iter()
            .find(|span| {
                span.name == name && span.trace_id == trace_id && span.service_name == service
            })
            .cloned()
    };
    let spans = receiver
        .wait_for(Duration::from_secs(20), |spans| {
            in_trace(spans, "realtime.socket_write", "kreki-b").is_some()
                && in_trace(spans, "push.send", "kreki-a").is_some()
        })
        .await;
    let publish = in_trace(&spans, "realtime.publish", "kreki-a")
        .unwrap_or_else(|| panic!("no realtime.publish on A in the panic's trace: {spans:#?}"));
    let write = in_trace(&spans, "realtime.socket_write", "kreki-b")
        .unwrap_or_else(|| panic!("no socket write on B in the panic's trace: {spans:#?}"));
    assert_eq!(
        write.parent_span_id, publish.span_id,
        "B's socket write is a child of A's publish"
    );
    let push = in_trace(&spans, "push.send", "kreki-a")
        .unwrap_or_else(|| panic!("no push.send on A in the panic's trace: {spans:#?}"));
    assert_eq!(push.parent_span_id, publish.span_id);
    assert!(
        fcm.requests()
            .iter()
            .any(|request| request.body["message"]["token"] == "fcm-token-relawan"),
        "the push reached the fake FCM"
    );
    drop(socket);
    a.terminate();
    b.terminate();
    assert!(a.wait().await.success());
    assert!(b.wait().await.success());
}
