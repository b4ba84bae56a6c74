//! Traces from a real `kreki` process: with `telemetry.otlp_endpoint` set, the panic request's
//! server span reaches an OTLP receiver inside the trace its caller started (`traceparent`), named
//! by its route and carrying the answer's status. (The chain on through the wave, the socket write
//! and the push needs spans inside dispatch and realtime; this test covers the edge.)

use std::time::Duration;

use kreki_platform::telemetry::receiver::{OtlpReceiver, ReceivedSpan};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::support::{JsonApi, Server, TempDir, database_url, signing_key};

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

    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let caller_span = "b7ad6b7169203331";
    let response = api
        .client
        .post(format!("{}/v1/alerts", server.base))
        .bearer_auth(&citizen)
        .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
        .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
        .json(&json!({"kind": "medical", "location": {"lat": -6.1754, "lng": 106.8272, "accuracy_m": 10}}))
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

    // SIGTERM flushes what is still queued: the process exits cleanly with the exporter on.
    server.terminate();
    assert!(server.wait().await.success());
}
