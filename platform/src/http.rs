//! The middleware stack every KREKI HTTP server runs, applied once in [`finish`].
//!
//! Order, from the outside in: hide secrets from logs, assign a request id (or keep the caller's),
//! echo it back, log the request as a JSON line, turn a panic into a 500, turn any bare error
//! status into problem+json (including the timeout's 503), bound the time a request may take,
//! record latency metrics per route.

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use http::{HeaderName, HeaderValue, StatusCode, header};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{
    MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::problem::{PROBLEM_JSON, Problem};

/// The header carrying the request id, in and out.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Limits the stack enforces on every request.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest a request may take before it is answered 503.
    pub request_timeout: Duration,
    /// Largest request body accepted, in bytes (413 beyond).
    pub body_limit_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            body_limit_bytes: 64 * 1024,
        }
    }
}

/// Wraps the assembled application router in the shared stack and gives it a problem+json 404.
pub fn finish(router: Router, limits: Limits) -> Router {
    router
        .route_layer(middleware::from_fn(record_metrics))
        .fallback(|| async { Problem::not_found("resource") })
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            limits.request_timeout,
        ))
        .layer(middleware::from_fn(problem_for_bare_errors))
        .layer(DefaultBodyLimit::max(limits.body_limit_bytes))
        .layer(CatchPanicLayer::custom(
            |_panic: Box<dyn std::any::Any + Send>| {
                tracing::error!("a request handler panicked");
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "Internal server error",
                )
                .with_detail("Something went wrong on our side; it has been logged.")
                .into_response()
            },
        ))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request| {
                    let request_id = request
                        .extensions()
                        .get::<RequestId>()
                        .and_then(|id| id.header_value().to_str().ok())
                        .unwrap_or_default();
                    // The path only: query strings may carry tokens (`?access_token=` on WebSockets).
                    // The `otel.*` and `http.*` fields name the exported server span; the route
                    // and status are recorded once known (`record_metrics`, `on_response`).
                    let span = tracing::info_span!(
                        "request",
                        method = %request.method(),
                        path = %request.uri().path(),
                        request_id = %request_id,
                        otel.name = %request.method(),
                        otel.kind = "server",
                        otel.status_code = tracing::field::Empty,
                        http.request.method = %request.method(),
                        http.route = tracing::field::Empty,
                        http.response.status_code = tracing::field::Empty,
                    );
                    // A caller's `traceparent` makes this span part of its trace.
                    let parent = crate::telemetry::traces::remote_context(request.headers());
                    drop(tracing_opentelemetry::OpenTelemetrySpanExt::set_parent(
                        &span, parent,
                    ));
                    span
                })
                .on_request(())
                .on_response(
                    |response: &Response, latency: Duration, span: &tracing::Span| {
                        let status = response.status();
                        span.record("http.response.status_code", status.as_u16());
                        if status.is_server_error() {
                            span.record("otel.status_code", "ERROR");
                        }
                        tracing::info!(
                            status = status.as_u16(),
                            latency_ms = latency.as_secs_f64() * 1000.0,
                            "answered"
                        );
                    },
                ),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
            header::COOKIE,
        ]))
}

async fn record_metrics(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    // The request span (opened before routing) learns its route: traces group by it.
    let span = tracing::Span::current();
    span.record("http.route", route.as_str());
    // The exported span is started already (its name was the method alone): rename it.
    opentelemetry::trace::TraceContextExt::span(
        &tracing_opentelemetry::OpenTelemetrySpanExt::context(&span),
    )
    .update_name(format!("{method} {route}"));
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!(
        "http_request_duration_seconds",
        "method" => method,
        "route" => route,
        "status" => status,
    )
    .record(started.elapsed().as_secs_f64());
    response
}

/// Any 4xx/5xx that is not already a problem (axum's own 405, a timeout's 503, a plain-text
/// rejection) becomes one, so clients can rely on a single error shape. FHIR answers keep their
/// OperationOutcome bodies.
async fn problem_for_bare_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if content_type.starts_with(PROBLEM_JSON) || content_type.starts_with("application/fhir+json") {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = if content_type.starts_with("text/plain") {
        axum::body::to_bytes(body, 2048)
            .await
            .ok()
            .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned())
            .filter(|text| !text.is_empty())
    } else {
        None
    };
    let title = status.canonical_reason().unwrap_or("Error");
    let slug = title.to_ascii_lowercase().replace(' ', "-");
    let mut problem = Problem::new(status, &slug, title);
    problem.detail = text;
    if status == StatusCode::SERVICE_UNAVAILABLE && !parts.headers.contains_key(header::RETRY_AFTER)
    {
        problem.retry_after_s = Some(1);
    }
    let fresh = problem.into_response();
    parts.headers.remove(header::CONTENT_LENGTH);
    for (name, value) in fresh.headers() {
        parts.headers.insert(name.clone(), value.clone());
    }
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    Response::from_parts(parts, Body::new(fresh.into_body()))
}

/// `GET /metrics`: the Prometheus text exposition of this process.
pub fn metrics_router() -> Router {
    let handle = crate::telemetry::metrics_handle();
    Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let handle = handle.clone();
            async move {
                (
                    [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    handle.render(),
                )
            }
        }),
    )
}
