//! A small HTTP proxy in front of a real registry that logs every request (method, path and
//! query, status, basic-auth user) and can answer chosen requests with 503 a number of times:
//! how the tests interrupt a copy at a known step and see what the retry did again.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;

/// One request the proxy saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Path and query.
    pub target: String,
    pub status: u16,
    /// The basic-auth user, or `-`.
    pub user: String,
}

/// A request to fail: method, a path the request's path must equal, times left.
type Fault = (Method, String, u32);

/// A running proxy.
pub struct FaultProxy {
    pub url: String,
    pub log: Arc<Mutex<Vec<Seen>>>,
    faults: Arc<Mutex<Vec<Fault>>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct S {
    upstream: String,
    base: String,
    client: reqwest::Client,
    log: Arc<Mutex<Vec<Seen>>>,
    faults: Arc<Mutex<Vec<Fault>>>,
}

impl FaultProxy {
    /// Starts a proxy on a free loopback port forwarding to `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let log: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let faults: Arc<Mutex<Vec<Fault>>> = Arc::default();
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let s = S { upstream: upstream.trim_end_matches('/').to_string(), base: url.clone(), client, log: log.clone(), faults: faults.clone() };
        let app = axum::Router::new().fallback(forward).with_state(s);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, log, faults, task }
    }

    /// Answers the next `times` requests `method path` with 503.
    pub fn fail(&self, method: Method, path: &str, times: u32) {
        self.faults.lock().unwrap().push((method, path.to_string(), times));
    }

    /// Everything seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn user(headers: &HeaderMap) -> String {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .map_or("-".to_string(), |u| u.split(':').next().unwrap_or("").to_string())
}

async fn forward(axum::extract::State(s): axum::extract::State<S>, req: Request<Body>) -> Response {
    let (parts, body) = req.into_parts();
    let target = parts.uri.path_and_query().map_or("/".to_string(), |p| p.to_string());
    let mut seen = Seen { method: parts.method.to_string(), target: target.clone(), status: 503, user: user(&parts.headers) };
    let injected = {
        let mut faults = s.faults.lock().unwrap();
        match faults.iter_mut().find(|(m, p, n)| *m == parts.method && *p == parts.uri.path() && *n > 0) {
            Some(f) => {
                f.2 -= 1;
                true
            }
            None => false,
        }
    };
    if injected {
        s.log.lock().unwrap().push(seen);
        return (StatusCode::SERVICE_UNAVAILABLE, "injected by the test's proxy").into_response();
    }
    let bytes = axum::body::to_bytes(body, 256 * 1024 * 1024).await.unwrap();
    let mut out = s.client.request(parts.method.clone(), format!("{}{target}", s.upstream)).body(bytes);
    for (k, v) in &parts.headers {
        if k != "host" && k != "content-length" {
            out = out.header(k, v);
        }
    }
    let answer = out.send().await.unwrap();
    let status = answer.status();
    let mut response = Response::builder().status(status.as_u16());
    for (k, v) in answer.headers() {
        if k == "transfer-encoding" || k == "connection" || k == "content-length" {
            continue;
        }
        // The registry names itself in upload locations: send the client back through here.
        let value = if k == "location" { v.to_str().unwrap().replace(&s.upstream, &s.base) } else { v.to_str().unwrap_or("").to_string() };
        response = response.header(k.as_str(), value);
    }
    let body = answer.bytes().await.unwrap();
    seen.status = status.as_u16();
    s.log.lock().unwrap().push(seen);
    response.body(Body::from(body)).unwrap()
}
