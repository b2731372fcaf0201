//! Logs and metrics set-up.
//!
//! Logs are one JSON object per line when not on a terminal (or with `log.format = "json"`),
//! human-readable otherwise; every line of a request carries its `request_id` through the
//! request span. Rules: never log a secret or a token; log a failure once, where it is handled.

use std::io::IsTerminal;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTarget {
    /// The server logs to stdout, as containers expect.
    Stdout,
    /// Command-line tools keep stdout for their output.
    Stderr,
}

/// Installs the global log subscriber. Calling it twice is harmless.
pub fn init_logging(config: &LogConfig, target: LogTarget) {
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
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let result = match (json, target) {
        (true, LogTarget::Stdout) => builder.json().with_current_span(true).with_span_list(false).try_init(),
        (true, LogTarget::Stderr) => builder.json().with_current_span(true).with_span_list(false).with_writer(std::io::stderr).try_init(),
        (false, LogTarget::Stdout) => builder.try_init(),
        (false, LogTarget::Stderr) => builder.with_writer(std::io::stderr).try_init(),
    };
    drop(result); // already installed (tests, or a second call)
}

/// Counts a promotion that reached its end, by environment and outcome (`done`, `failed`):
/// `nova_promotions_total`.
pub fn promotion_finished(environment: &str, outcome: &'static str) {
    metrics::counter!("nova_promotions_total", "environment" => environment.to_string(), "outcome" => outcome).increment(1);
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
