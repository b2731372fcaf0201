//! The start page: until the console arrives, a small page that lists the catalog and links the
//! API.

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;

use super::{AppError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new().route("/", get(home)).route("/static/nova.css", get(stylesheet))
}

struct Row {
    kind: &'static str,
    entity_ref: String,
    api_path: String,
    title: String,
    description: String,
    owner: String,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    demo: bool,
    total: usize,
    errors: usize,
    rows: Vec<Row>,
}

async fn home(State(state): State<AppState>) -> Result<Html<String>, AppError> {
    let snap = state.catalog.snapshot();
    let rows = snap
        .entities
        .iter()
        .take(500)
        .map(|e| Row {
            kind: e.kind.as_str(),
            entity_ref: e.entity_ref.to_string(),
            api_path: format!("{}/{}/{}", e.entity_ref.kind(), e.entity_ref.namespace(), e.entity_ref.name()),
            title: e.display_name().to_string(),
            description: e.summary.description.clone().unwrap_or_default(),
            owner: e.summary.owner.as_ref().map(|o| o.short()).unwrap_or_default(),
        })
        .collect();
    let page = HomePage { demo: state.config.server.demo, total: snap.entities.len(), errors: snap.errors.len(), rows };
    Ok(Html(page.render().map_err(|e| AppError::Internal(e.into()))?))
}

async fn stylesheet() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")], include_str!("../../static/nova.css"))
}
