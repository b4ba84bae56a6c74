//! Logs and metrics. Logs are JSON lines (one object per event, with the request id of the span) so
//! a log stack can index them; metrics are Prometheus, scraped from `/metrics`.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde::Deserialize;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line (production, log shippers).
    #[default]
    Json,
    /// Coloured, multi-field lines for a person at a terminal.
    Pretty,
}

/// Installs the global `tracing` subscriber. `filter` uses `RUST_LOG` syntax (`info,sqlx=warn`).
/// Calling it twice is harmless (the second call keeps the first subscriber), which tests rely on.
pub fn init_logging(format: LogFormat, filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false),
            )
            .try_init(),
        LogFormat::Pretty => registry
            .with(tracing_subscriber::fmt::layer().compact())
            .try_init(),
    };
    // An error means a subscriber is installed already (a second app in one test process).
    drop(result);
}

/// Seconds buckets for request latencies: the hot path is judged in milliseconds, so the low end is
/// fine-grained.
const LATENCY_BUCKETS_S: &[f64] = &[
    0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process-wide Prometheus recorder, installed on first use. Every app in the process (tests
/// start several) shares it, since `metrics` has one global recorder.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), LATENCY_BUCKETS_S)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder was installed first; metrics then go there instead.
            drop(metrics::set_global_recorder(recorder));
            handle
        })
        .clone()
}
