//! The shared HTTP edge as a client meets it: every error, including the ones axum and tower make
//! themselves, is problem+json naming what is wrong.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode, header};
use kreki_platform::extract::Path;
use kreki_platform::http::{Limits, finish};
use serde_json::Value;
use tower::ServiceExt;

fn app() -> Router {
    let router = Router::new()
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
        .route(
            "/things/{id}",
            get(|Path(id): Path<uuid::Uuid>| async move { id.to_string() }),
        )
        .route("/panic", get(panics));
    finish(
        router,
        Limits {
            request_timeout: Duration::from_millis(100),
            body_limit_bytes: 1024,
        },
    )
}

async fn panics() -> &'static str {
    panic!("a bug")
}

async fn call(uri: &str) -> (StatusCode, http::HeaderMap, Value) {
    let response = app()
        .oneshot(Request::get(uri).body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .expect("body");
    (
        status,
        headers,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn a_request_over_the_time_limit_is_a_retryable_503_problem() {
    let (status, headers, body) = call("/slow").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
    assert!(headers.contains_key(header::RETRY_AFTER));
    assert_eq!(body["status"], 503);
}

#[tokio::test]
async fn a_malformed_path_id_names_the_parameter() {
    let (status, _, body) = call("/things/not-a-uuid").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"][0]["field"], "id", "{body}");
}

#[tokio::test]
async fn unknown_routes_wrong_methods_and_panics_are_problems() {
    let (status, headers, body) = call("/nowhere").await;
    assert_eq!(
        (status, body["status"].as_u64()),
        (StatusCode::NOT_FOUND, Some(404))
    );
    assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
    assert!(
        headers.contains_key("x-request-id"),
        "every answer has a request id"
    );

    let response = app()
        .oneshot(
            Request::post("/things/1")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "application/problem+json"
    );

    let (status, headers, body) = call("/panic").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
    assert!(
        !body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("a bug"),
        "internals never leak"
    );
}
