//! The console: server-rendered HTML pages over the catalog, separate from the JSON API in
//! [`crate::http`]. One file per page area; templates in `crates/nova/templates` (askama,
//! escaping HTML by default), one stylesheet in `crates/nova/static`. Pages work without
//! JavaScript; forms that change state are checked with [`crate::auth::check_same_origin`].
//!
//! - `catalog.rs`: the catalog list (search, facets, sorting, paging)
//! - `entity.rs`: entity pages; a component's tabs ([`entity::COMPONENT_TABS`])
//! - `org.rs`: group and user pages
//! - `system.rs`: system and domain pages
//! - `status.rs`: catalog errors and locations
//! - `credentials.rs`: a team's credentials (metadata, register, rotate, revoke)
//! - `tokens.rs`: the signed-in user's API tokens (make, shown once; list; revoke)
//! - `flags.rs`: feature flags (admins change stages and switch off; others read)
//! - `audit.rs`: the audit log (the viewer's scope, filters, chain verification for admins)
//! - `session.rs`: development sign-in and sign-out
//! - `view.rs`: what pages share (links to entities, the page chrome)

pub mod audit;
pub mod builds;
pub mod catalog;
pub mod credentials;
pub mod deployments;
pub mod entity;
pub mod flags;
pub mod images;
pub mod org;
pub mod session;
pub mod status;
pub mod system;
pub mod tokens;
pub mod view;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Request};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};

use crate::auth::check_same_origin;
use crate::http::{AppError, AppState};

/// The console's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(catalog::list))
        .route("/catalog", get(catalog::list))
        .route("/catalog/{namespace}/{kind}/{name}", get(entity::overview))
        .route("/catalog/{namespace}/{kind}/{name}/{tab}", get(entity::tab))
        .route("/builds", post(builds::submit))
        .route("/builds/{id}", get(builds::page))
        .route("/promotions", post(deployments::promote))
        .route("/promotions/{id}/approve", post(deployments::approve))
        .route("/promotions/{id}/reject", post(deployments::reject))
        .route("/rollbacks", post(deployments::rollback))
        .route("/pins/release", post(deployments::release_pin))
        .route("/catalog/{namespace}/component/{name}/images/refresh", post(images::refresh))
        .route("/catalog-errors", get(status::errors))
        .route("/locations", get(status::locations))
        .route("/teams/{team}/credentials", get(credentials::show).post(credentials::submit))
        .route("/teams/{team}/credentials/{name}/revoke", post(credentials::revoke))
        .route("/tokens", get(tokens::show).post(tokens::create))
        .route("/tokens/{id}/revoke", post(tokens::revoke))
        .route("/flags", get(flags::show))
        .route("/flags/{key}", post(flags::change))
        .route("/flags/{key}/switch-off", post(flags::switch_off))
        .route("/audit", get(audit::show))
        .route("/sign-in", get(session::page).post(session::sign_in))
        .route("/sign-out", post(session::sign_out))
        .route("/auth/oidc/start", get(session::oidc_start))
        .route("/auth/oidc/callback", get(session::oidc_callback))
        .route("/static/{file}", get(static_file))
        .layer(middleware::from_fn(same_origin_forms))
}

/// Every state-changing console request must come from Nova's own pages.
async fn same_origin_forms(req: Request, next: Next) -> Response {
    if !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
        && let Err(e) = check_same_origin(req.headers())
    {
        return PageError(e).into_response();
    }
    next.run(req).await
}

/// An [`AppError`] answered as an HTML page, for console routes.
#[derive(Debug)]
pub struct PageError(pub AppError);

impl<E: Into<AppError>> From<E> for PageError {
    fn from(e: E) -> Self {
        Self(e.into())
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    chrome: view::Chrome,
    status: u16,
    reason: String,
    message: String,
    request_id: String,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        self.0.log();
        let status = self.0.status();
        let page = ErrorPage {
            chrome: view::Chrome::bare(status.canonical_reason().unwrap_or("Error")),
            status: status.as_u16(),
            reason: status.canonical_reason().unwrap_or("Error").to_string(),
            message: self.0.public_message(),
            request_id: crate::http::error::request_id(),
        };
        match page.render() {
            Ok(html) => (status, Html(html)).into_response(),
            Err(_) => (status, self.0.public_message()).into_response(),
        }
    }
}

/// Renders a page template.
pub fn render(page: &impl Template) -> Result<Html<String>, PageError> {
    page.render().map(Html).map_err(|e| PageError(AppError::Internal(e.into())))
}

/// Files under `static/`, compiled into the binary.
const STATIC_FILES: &[(&str, &str, &str)] = &[
    ("nova.css", "text/css; charset=utf-8", include_str!("../../static/nova.css")),
    ("build.js", "text/javascript; charset=utf-8", include_str!("../../static/build.js")),
];

async fn static_file(Path(file): Path<String>) -> Result<Response, PageError> {
    let (_, content_type, body) =
        STATIC_FILES.iter().find(|(name, _, _)| *name == file).ok_or_else(|| AppError::NotFound(format!("no static file {file}")))?;
    let mut response = (StatusCode::OK, *body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    Ok(response)
}
