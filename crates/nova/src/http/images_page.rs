//! A minimal standalone page around the "Images" tab, until the console's component page
//! mounts the tab (`registry::view::render_images_tab`): `GET /components/{kind}/{namespace}/{name}/images`
//! and its refresh form's `POST .../images/refresh`.

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};

use super::params::Params;
use super::registry_api::{component, request_refresh};
use super::{AppError, AppState};
use crate::registry::view::{self, ImageQuery};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/components/{kind}/{namespace}/{name}/images", get(page))
        .route("/components/{kind}/{namespace}/{name}/images/refresh", post(refresh))
}

#[derive(Template)]
#[template(path = "images_page.html")]
struct ImagesPage {
    component: String,
    notice: Option<String>,
    /// The rendered tab (trusted HTML from `images_tab.html`).
    body: String,
    /// Shown instead of the tab.
    error: Option<String>,
}

fn html(status: StatusCode, page: ImagesPage) -> Result<Response, AppError> {
    let page = page.render().map_err(|e| AppError::Internal(e.into()))?;
    Ok((status, Html(page)).into_response())
}

/// Errors as a page, so a browser shows words rather than JSON.
fn error_page(e: AppError, title: String) -> Result<Response, AppError> {
    if matches!(e, AppError::Internal(_)) {
        return Err(e);
    }
    html(e.status(), ImagesPage { component: title, notice: None, body: String::new(), error: Some(e.public_message()) })
}

async fn page(State(state): State<AppState>, Path((kind, namespace, name)): Path<(String, String, String)>, params: Params) -> Result<Response, AppError> {
    let title = format!("{kind}:{namespace}/{name}");
    let c = match component(&state, &kind, &namespace, &name).await {
        Ok(c) => c,
        Err(e) => return error_page(e, title),
    };
    let query = match ImageQuery::parse(|k| params.get(k).map(str::to_string)) {
        Ok(q) => q,
        Err((field, message)) => return error_page(AppError::invalid(field, message), title),
    };
    let v = view::build(&state.registry, &c.entity_ref, &c.links, &query).await?;
    let path = format!("/components/{kind}/{namespace}/{name}/images");
    let body = view::render_images_tab(&v, &path, &[]).map_err(|e| AppError::Internal(e.into()))?;
    let notice = match params.get("refresh") {
        Some("queued") => Some("A refresh from the registry is running; reload in a moment.".to_string()),
        Some("too-soon") => Some("This component was refreshed moments ago; the images below are current.".to_string()),
        _ => None,
    };
    html(StatusCode::OK, ImagesPage { component: c.entity_ref.to_string(), notice, body, error: None })
}

async fn refresh(State(state): State<AppState>, Path((kind, namespace, name)): Path<(String, String, String)>) -> Result<Response, AppError> {
    let title = format!("{kind}:{namespace}/{name}");
    let c = match component(&state, &kind, &namespace, &name).await {
        Ok(c) => c,
        Err(e) => return error_page(e, title),
    };
    let outcome = match request_refresh(&state, &c).await {
        Ok(_) => "queued",
        Err(AppError::TooManyRequests { .. }) => "too-soon",
        Err(e) => return Err(e),
    };
    let to = format!("/components/{kind}/{namespace}/{name}/images?refresh={outcome}");
    Ok((StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response())
}
