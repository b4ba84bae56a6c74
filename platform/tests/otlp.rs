//! Server spans leave the process over OTLP as a collector expects them: named by route, in the
//! caller's trace when it sent `traceparent`, with the status recorded, and errors marked.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode};
use kreki_platform::extract::Path;
use kreki_platform::http::{Limits, finish};
use kreki_platform::telemetry::TelemetryConfig;
use kreki_platform::telemetry::receiver::{OtlpReceiver, ReceivedSpan};
use kreki_platform::telemetry::traces;
use tower::ServiceExt;
use tracing_subscriber::layer::SubscriberExt;

fn app() -> Router {
    let router = Router::new()
        .route(
            "/v1/things/{id}",
            get(|Path(id): Path<uuid::Uuid>| async move { id.to_string() }),
        )
        .route(
            "/v1/broken",
            get(|| async { StatusCode::INTERNAL_SERVER_ERROR }),
        );
    finish(router, Limits::default())
}

async fn get_with(uri: &str, traceparent: Option<&str>) -> StatusCode {
    let mut request = Request::get(uri);
    if let Some(traceparent) = traceparent {
        request = request.header("traceparent", traceparent);
    }
    app()
        .oneshot(request.body(Body::empty()).expect("request"))
        .await
        .expect("infallible")
        .status()
}

fn server_span<'a>(spans: &'a [ReceivedSpan], name: &str) -> Option<&'a ReceivedSpan> {
    spans
        .iter()
        .find(|span| span.name == name && span.kind == 2)
}

// Multi-threaded: the exporter posts from its own thread to the receiver served on this runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_spans_continue_the_callers_trace_and_reach_the_collector() {
    let receiver = OtlpReceiver::start().await.expect("receiver starts");
    let config = TelemetryConfig {
        otlp_endpoint: Some(receiver.endpoint()),
        service_name: "kreki-test".to_owned(),
        batch_delay_ms: 50,
        ..TelemetryConfig::default()
    };
    let provider = traces::provider(&config)
        .expect("exporter builds")
        .expect("an endpoint is configured");
    let subscriber = tracing_subscriber::registry().with(traces::layer(&provider));
    let _default = tracing::subscriber::set_default(subscriber);

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let id = uuid::Uuid::new_v4();
    let answered = get_with(
        &format!("/v1/things/{id}"),
        Some(&format!("00-{trace_id}-{caller_span}-01")),
    )
    .await;
    assert_eq!(answered, StatusCode::OK);
    assert_eq!(
        get_with("/v1/broken", None).await,
        StatusCode::INTERNAL_SERVER_ERROR
    );

    let spans = receiver
        .wait_for(Duration::from_secs(10), |spans| {
            server_span(spans, "GET /v1/things/{id}").is_some()
                && server_span(spans, "GET /v1/broken").is_some()
        })
        .await;
    let thing = server_span(&spans, "GET /v1/things/{id}")
        .unwrap_or_else(|| panic!("no server span for the route in {spans:#?}"));
    assert_eq!(thing.trace_id, trace_id, "the caller's trace continues");
    assert_eq!(thing.parent_span_id, caller_span);
    assert_eq!(thing.service_name, "kreki-test");
    assert_eq!(thing.attributes["http.route"], "/v1/things/{id}");
    assert_eq!(thing.attributes["http.request.method"], "GET");
    assert_eq!(thing.attributes["http.response.status_code"], "200");
    let broken = server_span(&spans, "GET /v1/broken").expect("checked above");
    assert_eq!(broken.status_code, 2, "a 5xx marks the span as an error");
    assert_eq!(
        broken.parent_span_id, "",
        "without traceparent a trace starts here"
    );
    assert_ne!(broken.trace_id, trace_id);

    tokio::task::spawn_blocking(move || provider.shutdown())
        .await
        .expect("shutdown runs")
        .expect("the exporter shuts down cleanly");
}

#[tokio::test]
async fn the_receiver_refuses_what_a_collector_refuses() {
    let receiver = OtlpReceiver::start().await.expect("receiver starts");
    let client = reqwest_free_post(&receiver.endpoint()).await;
    assert_eq!(
        client, 415,
        "JSON is not what the exporter is set up to send"
    );
}

/// Posts a JSON body with a bare HTTP/1.1 request (no HTTP client crate needed); the status code.
async fn reqwest_free_post(endpoint: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = endpoint.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("receiver listens");
    let body = "{}";
    let request = format!(
        "POST /v1/traces HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .expect("request is sent");
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .await
        .expect("answer is read");
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}
