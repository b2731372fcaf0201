//! Logs, traces and metrics set-up.
//!
//! Logs are one JSON object per line when not on a terminal (or with `log.format = "json"`),
//! human-readable otherwise; every line of a request carries its `request_id` through the
//! request span. Rules: never log a secret or a token; log a failure once, where it is handled.
//!
//! With `observability.otlp_endpoint`, `nova serve` also exports its spans (the same ones the
//! log filter lets through: each request, and what runs inside it) to an OpenTelemetry
//! collector over OTLP/HTTP, continuing a caller's W3C `traceparent`.

use std::io::IsTerminal;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::{LogConfig, LogFormat, ObservabilityConfig};

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTarget {
    /// The server logs to stdout, as containers expect.
    Stdout,
    /// Command-line tools keep stdout for their output.
    Stderr,
}

type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// Installs the global log subscriber. Calling it twice is harmless.
pub fn init_logging(config: &LogConfig, target: LogTarget) {
    install(config, target, None);
}

/// Installs the server's subscriber: logs on stdout, and spans to the OTLP collector when one
/// is configured. Keep the answer until the server stops and then [`TraceExport::finish`] it,
/// which sends the spans still queued.
pub fn init_serving(log: &LogConfig, observability: &ObservabilityConfig) -> anyhow::Result<TraceExport> {
    let Some(endpoint) = &observability.otlp_endpoint else {
        install(log, LogTarget::Stdout, None);
        return Ok(TraceExport(None));
    };
    let traces = traces_url(endpoint);
    use opentelemetry_otlp::WithExportConfig as _;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(traces.clone())
        .with_timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| anyhow::anyhow!("observability.otlp_endpoint: cannot set up the OTLP exporter: {e}"))?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(observability.service_name.trim().to_string())
        .with_attribute(opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(observability.trace_sample_ratio))))
        .with_resource(resource)
        .build();
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("nova")).boxed();
    install(log, LogTarget::Stdout, Some(layer));
    tracing::info!(endpoint = %traces, "exporting traces over OTLP");
    Ok(TraceExport(Some(provider)))
}

/// Where spans are posted: the OTLP/HTTP trace path under the configured endpoint.
fn traces_url(endpoint: &url::Url) -> String {
    format!("{}/v1/traces", endpoint.as_str().trim_end_matches('/'))
}

/// The OTLP export `nova serve` runs, if any.
pub struct TraceExport(Option<SdkTracerProvider>);

impl TraceExport {
    /// Sends the spans still queued and stops the exporter (waits at most its timeout).
    pub async fn finish(self) {
        let Some(provider) = self.0 else { return };
        match tokio::task::spawn_blocking(move || provider.shutdown()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "the last spans could not be exported"),
            Err(e) => tracing::warn!(error = %e, "the trace exporter did not stop cleanly"),
        }
    }
}

/// Makes `span` a child of the caller's span when the request carries a W3C `traceparent`
/// (and `tracestate`), so a trace that began elsewhere continues through Nova. Without an
/// exporter it changes nothing.
pub fn continue_trace(span: &tracing::Span, headers: &axum::http::HeaderMap) {
    use opentelemetry::propagation::TextMapPropagator as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    struct Headers<'a>(&'a axum::http::HeaderMap);
    impl opentelemetry::propagation::Extractor for Headers<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|v| v.to_str().ok())
        }
        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(|k| k.as_str()).collect()
        }
    }
    if headers.contains_key("traceparent") {
        let parent = opentelemetry_sdk::propagation::TraceContextPropagator::new().extract(&Headers(headers));
        // Fails only when no OpenTelemetry layer is installed: then there is nothing to join.
        let _ = span.set_parent(parent);
    }
}

/// `nova doctor`'s check of the OTLP collector: an empty export (a valid, empty protobuf
/// request) posted to `<endpoint>/v1/traces` with the headers of `OTEL_EXPORTER_OTLP_HEADERS`
/// (or `..._TRACES_HEADERS`), as the exporter sends them. Traces are optional, so a collector
/// that refuses or does not answer is a warning, not a failure.
pub async fn collector_check(endpoint: &url::Url) -> crate::health::HealthReport {
    use crate::health::HealthReport;
    const COMPONENT: &str = "otlp";
    let traces = traces_url(endpoint);
    let client = match reqwest::Client::builder().timeout(std::time::Duration::from_secs(5)).build() {
        Ok(c) => c,
        Err(e) => return HealthReport::fail(COMPONENT, traces, format!("cannot make an HTTP client: {e}"), "report this as a bug"),
    };
    let headers = std::env::var("OTEL_EXPORTER_OTLP_TRACES_HEADERS").or_else(|_| std::env::var("OTEL_EXPORTER_OTLP_HEADERS")).unwrap_or_default();
    let mut request = client.post(&traces).header("content-type", "application/x-protobuf").body(Vec::new());
    for (name, value) in headers.split(',').filter_map(|pair| pair.split_once('=')) {
        let value = percent_encoding::percent_decode_str(value.trim()).decode_utf8_lossy().into_owned();
        request = request.header(name.trim(), value);
    }
    match request.send().await {
        Ok(r) if r.status().is_success() => HealthReport::pass(COMPONENT, traces, "the collector accepted an empty export"),
        Ok(r) => HealthReport::warn(
            COMPONENT,
            traces,
            format!("the collector answered {} to an empty export; spans are being dropped", r.status()),
            "check observability.otlp_endpoint (the collector's OTLP/HTTP receiver, usually port 4318) and the headers in OTEL_EXPORTER_OTLP_HEADERS",
        ),
        // reqwest's error names the URL and the cause; never a header.
        Err(e) => HealthReport::warn(COMPONENT, traces, format!("the collector cannot be reached: {}", e.without_url()), "start the collector or fix observability.otlp_endpoint; until then spans are dropped"),
    }
}

fn install(config: &LogConfig, target: LogTarget, traces: Option<BoxedLayer>) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.level));
    let terminal = match target {
        LogTarget::Stdout => std::io::stdout().is_terminal(),
        LogTarget::Stderr => std::io::stderr().is_terminal(),
    };
    let json = match config.format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !terminal,
    };
    let fmt = tracing_subscriber::fmt::layer();
    let lines: BoxedLayer = match (json, target) {
        (true, LogTarget::Stdout) => fmt.json().with_current_span(true).with_span_list(false).boxed(),
        (true, LogTarget::Stderr) => fmt.json().with_current_span(true).with_span_list(false).with_writer(std::io::stderr).boxed(),
        (false, LogTarget::Stdout) => fmt.boxed(),
        (false, LogTarget::Stderr) => fmt.with_writer(std::io::stderr).boxed(),
    };
    let layers: Vec<BoxedLayer> = std::iter::once(lines).chain(traces).collect();
    // Already installed (tests, or a second call): the first one stays.
    let _ = tracing_subscriber::registry().with(layers).with(filter).try_init();
}

/// Counts a promotion that reached its end, by environment and outcome (`done`, `failed`):
/// `nova_promotions_total`.
pub fn promotion_finished(environment: &str, outcome: &'static str) {
    metrics::counter!("nova_promotions_total", "environment" => environment.to_string(), "outcome" => outcome).increment(1);
}

/// Drains the recorded histogram samples into their buckets every 5 s until `shutdown`. The
/// recorder keeps every sample until it is drained (which reading `/metrics` also does), so
/// without this a Nova that nobody scrapes grew by every request's samples, about 20 bytes a
/// request (found by `bench/load/soak.sh`).
pub async fn metrics_upkeep(handle: PrometheusHandle, shutdown: tokio_util::sync::CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => handle.run_upkeep(),
        }
    }
}

/// The process-wide Prometheus recorder. Every metric is listed in docs/METRICS.md.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0])
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full("nova_build_duration_seconds".into()), &[5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0]))
                .expect("static buckets are valid")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (tests); ours then just renders empty.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}
