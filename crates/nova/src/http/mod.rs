//! The HTTP server: shared state, the router and its middleware.
//!
//! Routes live in one module per area: `catalog_api` (Backstage-compatible `/api/catalog`),
//! `api_v1` (Nova's own API), `registry_api` (component images) and `ops` (health, readiness, metrics). The console's HTML pages
//! live in [`crate::web`].

pub mod api_v1;
pub mod audit_api;
pub mod builds_api;
pub mod catalog_api;
pub mod credentials_api;
pub mod error;
pub mod flags_api;
pub mod ofrep;
pub mod ops;
pub mod params;
pub mod registry_api;
pub mod release_api;
pub mod serve;
pub mod tokens_api;

use std::ops::Deref;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;

pub use error::{AppError, BackstageError};
use error::{REQUEST, RequestInfo};

use crate::audit::AuditLog;
use crate::auth::Auth;
use crate::catalog::Catalog;
use crate::config::Config;
use crate::flags::Flags;
use crate::jobs::JobQueue;
use crate::storage::Db;

/// Everything handlers share.
pub struct AppInner {
    pub config: Config,
    pub db: Db,
    pub jobs: JobQueue,
    pub catalog: Arc<Catalog>,
    pub audit: AuditLog,
    pub flags: Arc<Flags>,
    pub metrics: PrometheusHandle,
    /// The secret store (`[secrets]`).
    pub secrets: Arc<dyn crate::secrets::SecretStore>,
    pub registry: Arc<crate::registry::RegistryService>,
    pub auth: Auth,
    /// The remote build backends (`[build_backends.<name>]`).
    pub build_backends: crate::builds::backend::BuildBackends,
    /// The integration checks `/ready` shows platform admins, kept briefly.
    pub ready_detail: crate::doctor::ReadyCache,
}

/// Cheap-to-clone handle on [`AppInner`].
#[derive(Clone)]
pub struct AppState(pub Arc<AppInner>);

impl Deref for AppState {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Builds the whole application router.
pub fn router(state: AppState) -> Router {
    let timeout = state.config.server.request_timeout;
    let max_body = state.config.server.max_body_bytes;
    Router::new()
        .merge(crate::web::routes())
        .merge(ops::routes())
        .nest("/api/catalog", catalog_api::routes())
        .nest("/api/v1", api_v1::routes().merge(registry_api::routes()).merge(tokens_api::routes()).merge(flags_api::routes()).merge(audit_api::routes()).merge(builds_api::routes()).merge(credentials_api::routes()).merge(release_api::routes()))
        .nest("/ofrep", ofrep::routes())
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), read_gate))
        .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::REQUEST_TIMEOUT, timeout))
        .layer(RequestBodyLimitLayer::new(max_body))
        .layer(middleware::from_fn(request_context))
        .layer(SetResponseHeaderLayer::if_not_present(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(SetResponseHeaderLayer::if_not_present(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .layer(SetResponseHeaderLayer::if_not_present(header::REFERRER_POLICY, HeaderValue::from_static("same-origin")))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'"),
        ))
        .with_state(state)
}

/// Paths anyone may fetch even when anonymous reads are off: probes, assets, and the ways in.
fn open_path(path: &str) -> bool {
    matches!(path, "/health" | "/ready" | "/metrics" | "/sign-in" | "/api/v1/openapi.json")
        || ["/static/", "/auth/", "/ofrep/"].iter().any(|p| path.starts_with(p))
}

/// Identifies the caller of every request outside the open paths, so presented credentials
/// that are refused (a revoked token, identity headers from an untrusted address) are answered
/// 401 and audited even on routes anyone may read. When `auth.anonymous_read` is off, reads
/// need a signed-in caller: the API answers 401, the console sends the browser to the sign-in
/// page. (Writes are decided by each handler.)
async fn read_gate(axum::extract::State(state): axum::extract::State<AppState>, mut req: Request, next: Next) -> Response {
    use axum::response::IntoResponse;
    if open_path(req.uri().path()) {
        return next.run(req).await;
    }
    let remote = req.extensions().get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
    match crate::auth::actor_of(&state, req.headers(), remote).await {
        Err(e) => e.into_response(),
        Ok(crate::auth::Actor::Anonymous) if state.auth.anonymous_read => next.run(req).await,
        Ok(crate::auth::Actor::Anonymous) if req.uri().path().starts_with("/api/") => {
            AppError::Unauthorized("Sign in, or send an API token (Authorization: Bearer nova_...).".into()).into_response()
        }
        Ok(crate::auth::Actor::Anonymous) => {
            let next_path = req.uri().path_and_query().map_or("/", |p| p.as_str());
            let target = format!("/sign-in?next={}", url::form_urlencoded::byte_serialize(next_path.as_bytes()).collect::<String>());
            (axum::http::StatusCode::SEE_OTHER, [(header::LOCATION, target)]).into_response()
        }
        Ok(actor) => {
            req.extensions_mut().insert(actor);
            next.run(req).await
        }
    }
}

async fn not_found(req: Request) -> AppError {
    AppError::NotFound(format!("no route for {} {}", req.method(), req.uri().path()))
}

/// Gives every request an id (kept from a valid incoming `x-request-id`), a tracing span that
/// carries it onto every log line, the task-local that error bodies read, and metrics.
async fn request_context(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = req
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", |p| intern_route(p.as_str()));
    let method = method_label(req.method());
    let info = RequestInfo { id: id.clone(), method: method.to_string(), path: req.uri().path().to_string() };
    // `otel.*` name and classify the span where traces are exported (telemetry.rs).
    let span = tracing::info_span!("request", otel.name = %format_args!("{method} {route}"), otel.kind = "server", request_id = %id, method, route, status = tracing::field::Empty);
    crate::telemetry::continue_trace(&span, req.headers());
    let backstage = req.uri().path().starts_with("/api/catalog/");
    let mut response = {
        use tracing::Instrument;
        REQUEST.scope(info, async { bare_errors_as_problems(next.run(req).await, backstage) }).instrument(span.clone()).await
    };
    let status = response.status();
    span.record("status", status.as_u16());
    let elapsed = started.elapsed().as_secs_f64();
    span.in_scope(|| {
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), elapsed_ms = elapsed * 1000.0, "request answered with a server error");
        } else {
            tracing::debug!(status = status.as_u16(), elapsed_ms = elapsed * 1000.0, "request");
        }
    });
    let labels = [("method", method), ("route", route), ("status", status_label(status))];
    metrics::counter!("nova_http_requests_total", &labels).increment(1);
    metrics::histogram!("nova_http_request_duration_seconds", &labels[..2]).record(elapsed);
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(X_REQUEST_ID.clone(), v);
    }
    response
}

/// The body limit and the timeout answer 413 and 408 themselves, with an empty or plain-text
/// body; they are answered like every other error instead (problem+json with the request id,
/// or Backstage's shape under `/api/catalog`).
fn bare_errors_as_problems(response: Response, backstage: bool) -> Response {
    use axum::response::IntoResponse;
    let problem = response.headers().get(header::CONTENT_TYPE).is_some_and(|t| t.as_bytes().starts_with(b"application/problem+json"));
    let error = match response.status() {
        _ if problem => return response,
        axum::http::StatusCode::PAYLOAD_TOO_LARGE => AppError::TooLarge("the request body is larger than this server accepts (server.max_body_bytes)".into()),
        axum::http::StatusCode::REQUEST_TIMEOUT => AppError::Timeout("the request took longer than this server allows (server.request_timeout); try again".into()),
        _ => return response,
    };
    if backstage { BackstageError(error).into_response() } else { error.into_response() }
}

/// The matched route as a `'static` string, so metric labels need no allocation per request.
/// Routes come from the router's finite set, so the interned set stays small.
fn intern_route(route: &str) -> &'static str {
    static ROUTES: std::sync::OnceLock<std::sync::RwLock<std::collections::HashSet<&'static str>>> = std::sync::OnceLock::new();
    let routes = ROUTES.get_or_init(Default::default);
    if let Some(r) = routes.read().unwrap_or_else(|e| e.into_inner()).get(route) {
        return r;
    }
    let mut w = routes.write().unwrap_or_else(|e| e.into_inner());
    if let Some(r) = w.get(route) {
        return r;
    }
    let leaked: &'static str = Box::leak(route.to_string().into_boxed_str());
    w.insert(leaked);
    leaked
}

fn method_label(m: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

fn status_label(s: axum::http::StatusCode) -> &'static str {
    const CLASSES: [&str; 6] = ["0xx", "1xx", "2xx", "3xx", "4xx", "5xx"];
    match s.as_u16() {
        200 => "200",
        201 => "201",
        204 => "204",
        304 => "304",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        409 => "409",
        429 => "429",
        500 => "500",
        503 => "503",
        n => CLASSES[usize::from(n / 100).min(5)],
    }
}
