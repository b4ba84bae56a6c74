//! OpenTelemetry traces: `tracing` spans exported over OTLP/HTTP (protobuf) to a collector, off
//! unless `telemetry.otlp_endpoint` is set. The W3C `traceparent` header of an incoming request
//! becomes the parent of its server span ([`crate::http`]), so a trace that starts in a client, a
//! load balancer or another service continues here.

use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider,
};
use serde::Deserialize;

/// `[telemetry]` (`KREKI_TELEMETRY__*`): where spans go, how many are kept, and how they are batched.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Base URL of an OTLP/HTTP receiver (an OpenTelemetry Collector, Tempo, Jaeger), for example
    /// `http://otel-collector.monitoring:4318`; spans are posted to `{otlp_endpoint}/v1/traces`.
    /// Unset (the default): no spans leave the process and nothing is exported.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the exported spans (one per role helps: `kreki-api`, `kreki-bridge`).
    pub service_name: String,
    /// Share of new traces recorded, 0 to 1; a request whose caller sampled its trace is always
    /// recorded (parent-based), so a trace is never cut in half.
    pub sample_ratio: f64,
    /// Which spans are exported, `RUST_LOG` syntax; independent of `log.filter`, so quiet logs
    /// still give whole traces.
    pub span_filter: String,
    /// How long spans wait to be sent in one batch, in milliseconds.
    pub batch_delay_ms: u64,
    /// Spans held for export; when full, new spans are dropped (never blocks a request).
    pub max_queue_spans: usize,
    /// Longest one export request may take, in milliseconds.
    pub export_timeout_ms: u64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            service_name: "kreki".to_owned(),
            sample_ratio: 1.0,
            span_filter: "info,sqlx=warn,h2=warn,hyper=warn,reqwest=warn".to_owned(),
            batch_delay_ms: 2000,
            max_queue_spans: 4096,
            export_timeout_ms: 10_000,
        }
    }
}

impl TelemetryConfig {
    /// Range checks, one message per problem, each naming its key.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(endpoint) = &self.otlp_endpoint {
            let scheme_ok = endpoint.starts_with("http://") || endpoint.starts_with("https://");
            if !scheme_ok || endpoint.parse::<http::Uri>().is_err() {
                problems.push(
                    "telemetry.otlp_endpoint: must be an http(s) URL such as http://otel-collector:4318"
                        .to_owned(),
                );
            }
        }
        if self.service_name.trim().is_empty() || self.service_name.len() > 128 {
            problems.push("telemetry.service_name: must be 1 to 128 characters".to_owned());
        }
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            problems.push("telemetry.sample_ratio: must be 0 to 1".to_owned());
        }
        if tracing_subscriber::EnvFilter::try_new(&self.span_filter).is_err() {
            problems.push(format!(
                "telemetry.span_filter: `{}` is not a valid filter (example: info,sqlx=warn)",
                self.span_filter
            ));
        }
        if !(10..=60_000).contains(&self.batch_delay_ms) {
            problems.push("telemetry.batch_delay_ms: must be 10 to 60000 milliseconds".to_owned());
        }
        if !(16..=1_000_000).contains(&self.max_queue_spans) {
            problems.push("telemetry.max_queue_spans: must be 16 to 1000000".to_owned());
        }
        if !(100..=60_000).contains(&self.export_timeout_ms) {
            problems
                .push("telemetry.export_timeout_ms: must be 100 to 60000 milliseconds".to_owned());
        }
        problems
    }

    /// The URL spans are posted to, when export is on.
    pub fn traces_url(&self) -> Option<String> {
        self.otlp_endpoint
            .as_deref()
            .map(|base| format!("{}/v1/traces", base.trim_end_matches('/')))
    }
}

/// Why the exporter could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("telemetry.otlp_endpoint: cannot set up the OTLP exporter: {0}")]
pub struct ExporterError(String);

/// A tracer provider exporting to `config.otlp_endpoint` in batches from its own thread (no async
/// runtime needed), or `None` when no endpoint is configured. It also installs the W3C trace
/// context propagator, which [`crate::http`] uses to continue callers' traces.
///
/// # Errors
/// When the exporter cannot be built from the configuration.
pub fn provider(config: &TelemetryConfig) -> Result<Option<SdkTracerProvider>, ExporterError> {
    let Some(url) = config.traces_url() else {
        return Ok(None);
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(url)
        .with_timeout(Duration::from_millis(config.export_timeout_ms))
        .build()
        .map_err(|error| ExporterError(error.to_string()))?;
    let batch = BatchConfigBuilder::default()
        .with_max_queue_size(config.max_queue_spans)
        .with_scheduled_delay(Duration::from_millis(config.batch_delay_ms))
        .build();
    let processor = BatchSpanProcessor::builder(exporter)
        .with_batch_config(batch)
        .build();
    let resource = Resource::builder()
        .with_service_name(config.service_name.clone())
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            config.sample_ratio,
        ))))
        .with_resource(resource)
        .build();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    Ok(Some(provider))
}

/// The `tracing` layer that turns spans into OpenTelemetry spans of `provider`.
pub fn layer<S>(
    provider: &SdkTracerProvider,
) -> tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    tracing_opentelemetry::layer().with_tracer(provider.tracer("kreki"))
}

/// Reads the W3C trace context (`traceparent`, `tracestate`) of an incoming request. Without a
/// configured exporter no propagator is installed and this is an empty context.
pub fn remote_context(headers: &http::HeaderMap) -> opentelemetry::Context {
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&HeaderExtractor(headers))
    })
}

/// The trace context of `span` as a W3C `traceparent` value, to store with work another task or
/// instance picks up later (an alert's waves, a frame written to a socket). `None` without an
/// exporter (no propagator is installed) or outside a recorded trace.
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    let context = tracing_opentelemetry::OpenTelemetrySpanExt::context(span);
    let mut carrier = std::collections::HashMap::new();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut carrier);
    });
    carrier.remove("traceparent")
}

/// Makes `span` continue the trace of a stored `traceparent` (see [`traceparent_of`]); nothing
/// happens for `None` or a value that does not parse.
pub fn continue_trace(span: &tracing::Span, traceparent: Option<&str>) {
    let Some(traceparent) = traceparent else {
        return;
    };
    let carrier =
        std::collections::HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    let parent =
        opentelemetry::global::get_text_map_propagator(|propagator| propagator.extract(&carrier));
    drop(tracing_opentelemetry::OpenTelemetrySpanExt::set_parent(
        span, parent,
    ));
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl opentelemetry::propagation::Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// Keeps the exporter alive; dropping it sends the spans still queued (bounded by
/// `telemetry.export_timeout_ms`), so the last requests before a shutdown are not lost.
#[derive(Debug, Default)]
#[must_use = "dropping the guard stops trace export"]
pub struct TelemetryGuard(Option<SdkTracerProvider>);

impl TelemetryGuard {
    pub(crate) fn new(provider: Option<SdkTracerProvider>) -> Self {
        Self(provider)
    }

    /// True when spans are exported.
    pub fn exporting(&self) -> bool {
        self.0.is_some()
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.0.take()
            && let Err(error) = provider.shutdown()
        {
            tracing::warn!(%error, "spans still queued could not be exported at shutdown");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_export_nothing() {
        let config = TelemetryConfig::default();
        assert!(config.validate().is_empty());
        assert_eq!(config.traces_url(), None);
        assert!(provider(&config).expect("no exporter needed").is_none());
    }

    #[test]
    fn wrong_values_name_their_key() {
        let config = TelemetryConfig {
            otlp_endpoint: Some("otel-collector:4318".to_owned()),
            sample_ratio: 1.5,
            span_filter: "info,sqlx=loud".to_owned(),
            batch_delay_ms: 0,
            ..TelemetryConfig::default()
        };
        let problems = config.validate().join("\n");
        for key in [
            "telemetry.otlp_endpoint",
            "telemetry.sample_ratio",
            "telemetry.span_filter",
            "telemetry.batch_delay_ms",
        ] {
            assert!(problems.contains(key), "{key} missing in {problems}");
        }
    }

    #[test]
    fn spans_go_to_the_traces_path_of_the_endpoint() {
        let config = TelemetryConfig {
            otlp_endpoint: Some("http://collector:4318/".to_owned()),
            ..TelemetryConfig::default()
        };
        assert_eq!(
            config.traces_url().as_deref(),
            Some("http://collector:4318/v1/traces")
        );
    }
}
