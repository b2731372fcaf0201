//! The HTTP server: shared state, the router and its middleware.
//!
//! Routes live in one module per area: `catalog_api` (Backstage-compatible `/api/catalog`),
//! `api_v1` (Nova's own API), `ops` (health, readiness, metrics) and `home`.

pub mod api_v1;
pub mod catalog_api;
pub mod error;
pub mod home;
pub mod images_page;
pub mod ops;
pub mod params;
pub mod registry_api;

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

use crate::catalog::Catalog;
use crate::config::Config;
use crate::jobs::JobQueue;
use crate::storage::Db;

/// Everything handlers share.
pub struct AppInner {
    pub config: Config,
    pub db: Db,
    pub jobs: JobQueue,
    pub catalog: Arc<Catalog>,
    pub metrics: PrometheusHandle,
    pub registry: Arc<crate::registry::RegistryService>,
    pub features: Arc<crate::features::FeatureSwitches>,
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
        .merge(home::routes())
        .merge(ops::routes())
        .merge(images_page::routes())
        .nest("/api/catalog", catalog_api::routes())
        .nest("/api/v1", api_v1::routes().merge(registry_api::routes()))
        .fallback(not_found)
        .layer(middleware::from_fn(request_context))
        .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::REQUEST_TIMEOUT, timeout))
        .layer(RequestBodyLimitLayer::new(max_body))
        .layer(SetResponseHeaderLayer::if_not_present(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(SetResponseHeaderLayer::if_not_present(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .layer(SetResponseHeaderLayer::if_not_present(header::REFERRER_POLICY, HeaderValue::from_static("same-origin")))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'"),
        ))
        .with_state(state)
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
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_else(|| "unmatched".into());
    let method = req.method().as_str().to_string();
    let info = RequestInfo { id: id.clone(), method: method.clone(), path: req.uri().path().to_string() };
    let span = tracing::info_span!("request", request_id = %id, method = %method, route = %route);
    let mut response = {
        use tracing::Instrument;
        REQUEST.scope(info, next.run(req)).instrument(span.clone()).await
    };
    let status = response.status().as_u16();
    let elapsed = started.elapsed().as_secs_f64();
    span.in_scope(|| {
        if status >= 500 {
            tracing::warn!(status, elapsed_ms = elapsed * 1000.0, "request answered with a server error");
        } else {
            tracing::debug!(status, elapsed_ms = elapsed * 1000.0, "request");
        }
    });
    metrics::counter!("nova_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status.to_string()).increment(1);
    metrics::histogram!("nova_http_request_duration_seconds", "method" => method, "route" => route).record(elapsed);
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(X_REQUEST_ID.clone(), v);
    }
    response
}
