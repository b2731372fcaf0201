//! HTTP hardening on representative routes (console page, Backstage API, Nova API, probes,
//! errors): security headers on every answer, the request body limit (413), the request
//! timeout (408, also when a dependency hangs), and slow-loris clients — headers sent one byte
//! at a time — disconnected by the header-read timeout while other clients are served.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::faults::{FaultProxy, Mode};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Slack on top of a configured timeout: the machine is shared, the assertion is "no hang".
const MARGIN: Duration = Duration::from_secs(5);

fn assert_security_headers(path: &str, r: &reqwest::Response) {
    let h = r.headers();
    assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
    assert_eq!(h["x-frame-options"], "DENY", "{path}");
    assert_eq!(h["referrer-policy"], "same-origin", "{path}");
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
    assert!(h.contains_key("x-request-id"), "{path}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_headers_body_limit_and_request_timeout_on_representative_routes() {
    // Credentials live in a "Vault" that accepts connections and never answers.
    let mut silent = FaultProxy::start("127.0.0.1:9".parse().unwrap()).await;
    silent.set(Mode::BlackHole).await;
    let address = silent.url();
    let token_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(token_file.path(), "unused-token").unwrap();
    let token_path = token_file.path().to_path_buf();
    let app = spawn_app_with(
        Backend::Sqlite,
        Options {
            locations: vec![example_catalog().display().to_string()],
            configure: Some(Box::new(move |c| {
                c.server.max_body_bytes = 4096;
                c.server.request_timeout = Duration::from_secs(1);
                c.builds.check_credentials = false;
                c.secrets = support::faults::vault_at(address, token_path, Duration::from_secs(60));
            })),
            ..Default::default()
        },
    )
    .await;
    for path in ["/", "/catalog/default/component/payment-service", "/api/catalog/entities?limit=1", "/api/v1/me", "/health", "/ready", "/no/such/route", "/api/v1/builds/nope"] {
        let r = app.get(path).await;
        assert_security_headers(path, &r);
    }

    // A body over server.max_body_bytes: 413, and nothing is registered.
    let token = app.token_for("user:default/maria.garcia").await;
    let big = json!({ "type": "url", "target": format!("https://example.com/{}", "x".repeat(8192)) });
    let r = app.client.post(app.url("/api/catalog/locations")).bearer_auth(&token).json(&big).send().await.unwrap();
    assert_eq!(r.status(), 413);
    assert_security_headers("413", &r);
    let e: serde_json::Value = r.json().await.unwrap();
    assert_eq!(e["error"]["name"], "InputError", "Backstage's error shape under /api/catalog: {e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("server.max_body_bytes"), "{e}");
    let locations = app.get_json("/api/catalog/locations", 200).await;
    assert!(!locations.to_string().contains("xxxxxxxx"), "{locations}");

    // A request waiting on a hung dependency is answered 408 at server.request_timeout.
    let started = Instant::now();
    let body = json!({ "kind": "https-token", "username": "ci", "repositories": ["https://git.example.com/payments/x.git"], "secret": "s3cret-token-value" });
    let r = app.client.put(app.url("/api/v1/teams/payments/credentials/ci")).bearer_auth(&token).json(&body).send().await.unwrap();
    let took = started.elapsed();
    assert_security_headers("408", &r);
    let (status, content_type) = (r.status(), r.headers()["content-type"].clone());
    let p: serde_json::Value = r.json().await.unwrap();
    assert_eq!(status, 408, "{p}");
    assert_eq!(content_type, "application/problem+json");
    assert!(p["detail"].as_str().unwrap().contains("server.request_timeout") && p["requestId"].is_string(), "{p}");
    assert!(took < Duration::from_secs(1) + MARGIN, "answered in {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_loris_client_is_disconnected_by_the_header_read_timeout() {
    let timeout = Duration::from_secs(1);
    let app = spawn_app_with(
        Backend::Sqlite,
        Options { locations: vec![example_catalog().display().to_string()], configure: Some(Box::new(move |c| c.server.header_read_timeout = timeout)), ..Default::default() },
    )
    .await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut loris = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let started = Instant::now();
    let head = b"GET /health HTTP/1.1\r\nHost: nova\r\nX-Padding: ";
    let mut cut_off = None;
    // One byte every 200 ms, for up to 20 s: far longer than the timeout allows.
    for i in 0..100 {
        let byte = [head.get(i).copied().unwrap_or(b'a')];
        if loris.write_all(&byte).await.is_err() {
            cut_off = Some(started.elapsed());
            break;
        }
        // A closed connection shows as end of file (or a reset) on read.
        let mut buf = [0u8; 512];
        match tokio::time::timeout(Duration::from_millis(200), loris.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                cut_off = Some(started.elapsed());
                break;
            }
            Ok(Ok(n)) => {
                let answer = String::from_utf8_lossy(&buf[..n]).to_string();
                assert!(answer.starts_with("HTTP/1.1 408"), "only a timeout answer is expected: {answer}");
            }
            Err(_) => {}
        }
        // Meanwhile, other clients are served.
        if i == 3 {
            assert_eq!(app.get("/health").await.status(), 200);
        }
    }
    let cut_off = cut_off.expect("the slow client was never disconnected");
    assert!(cut_off < timeout + MARGIN, "disconnected after {cut_off:?}");
    assert_eq!(app.get("/health").await.status(), 200, "Nova still serves");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_deny_keeps_catalog_url_locations_off_a_range() {
    // A catalog file served on this machine: readable by default, refused once loopback is
    // in `[outbound] deny`.
    let app_server = axum::Router::new().route("/catalog.yaml", axum::routing::get(|| async { component_yaml("served", "payments") }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/catalog.yaml", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app_server).await.unwrap() });
    for (deny, readable) in [(vec![], true), (vec!["127.0.0.0/8".to_string()], false)] {
        let app = spawn_app_with(
            Backend::Sqlite,
            Options { locations: vec![url.clone()], configure: Some(Box::new(move |c| c.outbound.deny = deny)), ..Default::default() },
        )
        .await;
        let found = app.get("/api/catalog/entities/by-name/component/default/served").await.status() == 200;
        assert_eq!(found, readable);
        let errors = app.get_json("/api/v1/catalog/errors", 200).await.to_string();
        assert_eq!(errors.contains("allowed-address") && errors.contains("outbound.deny"), !readable, "{errors}");
    }
}
