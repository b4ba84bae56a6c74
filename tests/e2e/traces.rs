//! Traces from a real `kreki` process: with `telemetry.otlp_endpoint` set, the panic request's
//! server span reaches an OTLP receiver inside the trace its caller started (`traceparent`), named
//! by its route and carrying the answer's status; inside it, the first wave's planning and the
//! ingest statement; and a later wave of that alert (after the volunteer declined) joins the same
//! trace, although another task runs it.

use std::time::Duration;

use kreki_platform::telemetry::receiver::{OtlpReceiver, ReceivedSpan};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::support::{JsonApi, Server, TempDir, create_account, database_url, signing_key};

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
