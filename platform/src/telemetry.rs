//! Logs, metrics and traces. Logs are JSON lines (one object per event, with the request id of the
//! span) so a log stack can index them; metrics are Prometheus, scraped from `/metrics`; traces are
//! OpenTelemetry spans sent over OTLP when `telemetry.otlp_endpoint` is set ([`traces`]).

#[cfg(feature = "otlp-receiver")]
pub mod receiver;
pub mod traces;

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde::Deserialize;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

pub use traces::{ExporterError, TelemetryConfig, TelemetryGuard};

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
    install(format, filter, None);
}

/// Installs the global `tracing` subscriber: logs as [`init_logging`] does and, when
/// `telemetry.otlp_endpoint` is set, spans exported over OTLP (filtered by
/// `telemetry.span_filter`, independently of the log filter). Keep the guard until exit: dropping
/// it sends the spans still queued.
///
/// # Errors
/// When the exporter cannot be built from the configuration.
pub fn init(
    format: LogFormat,
    filter: &str,
    telemetry: &TelemetryConfig,
) -> Result<TelemetryGuard, ExporterError> {
    let provider = traces::provider(telemetry)?;
    let spans = provider.as_ref().map(|provider| {
        let filter =
            EnvFilter::try_new(&telemetry.span_filter).unwrap_or_else(|_| EnvFilter::new("info"));
        traces::layer(provider).with_filter(filter).boxed()
    });
    install(format, filter, spans);
    Ok(TelemetryGuard::new(provider))
}

type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

fn install(format: LogFormat, filter: &str, spans: Option<BoxedLayer>) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let logs: BoxedLayer = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_filter(filter)
            .boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .compact()
            .with_filter(filter)
            .boxed(),
    };
    let mut layers = vec![logs];
    layers.extend(spans);
    // An error means a subscriber is installed already (a second app in one test process).
    drop(tracing_subscriber::registry().with(layers).try_init());
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
