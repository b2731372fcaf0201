//! Trace export over OTLP/HTTP: `nova serve` with `observability.otlp_endpoint` posts its
//! request spans, as protobuf, to a collector this test runs (a small HTTP server that decodes
//! what it is sent with the OpenTelemetry protocol's own message types). A request that carries
//! a W3C `traceparent` continues its caller's trace; the spans still queued when Nova is
//! stopped are sent before it exits.

mod support;

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use support::Backend;
use support::otlp::Collector;
use support::serve::{self, Served};

fn string_attribute(attributes: &[opentelemetry_proto::tonic::common::v1::KeyValue], key: &str) -> Option<String> {
    attributes.iter().find(|a| a.key == key).and_then(|a| match a.value.as_ref()?.value.as_ref()? {
        Value::StringValue(s) => Some(s.clone()),
        Value::IntValue(i) => Some(i.to_string()),
        _ => None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_spans_reach_the_collector_in_the_callers_trace() {
    let collector = Collector::start().await;
    let dir = tempfile::tempdir().unwrap();
    let database = support::fresh_database(Backend::Sqlite, dir.path()).await;
    let port = support::faults::free_port();
    let settings = format!("[observability]\notlp_endpoint = \"{}\"\nservice_name = \"nova-under-test\"\n", collector.endpoint);
    let config = serve::config(dir.path(), "nova", port, &database, &settings);
    let served = Served::start(&config, port).await;

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let response = reqwest::Client::new()
        .get(served.url("/api/catalog/entities"))
        .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    // The batch exporter would wait up to 5 s; stopping Nova sends what is queued at once.
    let log = served.log_text();
    served.stop();

    let exports = collector.received();
    assert!(!exports.is_empty(), "nothing was exported; Nova's log:\n{log}");
    for (headers, _) in &exports {
        assert_eq!(headers.get("content-type").and_then(|v| v.to_str().ok()), Some("application/x-protobuf"));
    }
    let resources: Vec<_> = exports.iter().flat_map(|(_, r)| &r.resource_spans).collect();
    for r in &resources {
        let attributes = &r.resource.as_ref().expect("a resource").attributes;
        assert_eq!(string_attribute(attributes, "service.name").as_deref(), Some("nova-under-test"));
        assert_eq!(string_attribute(attributes, "service.version").as_deref(), Some(env!("CARGO_PKG_VERSION")));
    }
    let spans: Vec<_> = resources.iter().flat_map(|r| &r.scope_spans).flat_map(|s| &s.spans).collect();
    let request = spans.iter().find(|s| s.name == "GET /api/catalog/entities").unwrap_or_else(|| panic!("no request span among {:?}", spans.iter().map(|s| &s.name).collect::<Vec<_>>()));
    assert_eq!(hex::encode(&request.trace_id), trace_id, "the span continues the caller's trace");
    assert_eq!(hex::encode(&request.parent_span_id), caller_span, "the caller's span is its parent");
    assert_eq!(request.kind, SpanKind::Server as i32);
    assert_eq!(string_attribute(&request.attributes, "route").as_deref(), Some("/api/catalog/entities"));
    assert_eq!(string_attribute(&request.attributes, "status"), Some(status.to_string()));
    assert!(string_attribute(&request.attributes, "request_id").is_some_and(|id| !id.is_empty()));
    // Background work is traced too: each job that ran (at start, e.g. registry.reconcile) is a span.
    let job = spans.iter().find(|s| s.name.starts_with("job ")).unwrap_or_else(|| panic!("no job span among {:?}", spans.iter().map(|s| &s.name).collect::<Vec<_>>()));
    assert_eq!(string_attribute(&job.attributes, "kind").as_deref(), job.name.strip_prefix("job "));
    assert!(job.parent_span_id.is_empty(), "a job begins its own trace");
}

#[tokio::test]
async fn a_collector_address_that_is_not_plain_http_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let config = support::write_file(dir.path(), "nova.toml", "[observability]\notlp_endpoint = \"grpc://collector:4317\"\n");
    let (ok, output) = serve::nova(&["serve", "--config", &config.display().to_string()]);
    assert!(!ok);
    assert!(output.contains("observability.otlp_endpoint") && output.contains("http:// or https://"), "{output}");
    // A password in the URL would end up in log lines and reports: refused, and not repeated.
    let config = support::write_file(dir.path(), "nova.toml", "[observability]\notlp_endpoint = \"https://nova:hunter2-otlp@collector:4318\"\n");
    let (ok, output) = serve::nova(&["serve", "--config", &config.display().to_string()]);
    assert!(!ok);
    assert!(output.contains("observability.otlp_endpoint") && output.contains("OTEL_EXPORTER_OTLP_HEADERS") && !output.contains("hunter2"), "{output}");
}
