//! The console's build pages: the component's Builds tab (the "Build image" form and the build
//! history), the form's target, and a build's page, which follows the build live over
//! Server-Sent Events with a small script and shows the stored log without it.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::json;

use super::entity::{TabContext, TabFuture};
use super::view::{Chrome, entity_href};
use super::{PageError, render};
use crate::auth::Actor;
use crate::builds::store::Build;
use crate::http::builds_api::{BuildRequest, request_build, store};
use crate::http::{AppError, AppState};

/// Builds shown in the tab's history.
const HISTORY: i64 = 50;

#[derive(Template)]
#[template(path = "builds_tab.html")]
struct BuildsTab {
    /// The component's reference.
    component: String,
    /// A fresh idempotency key per rendered form: submitting it twice makes one build.
    key: String,
    builds: Vec<Build>,
}

/// The component's Builds tab.
pub fn builds_tab(ctx: TabContext) -> TabFuture {
    Box::pin(async move {
        let builds = store(&ctx.state).list(&ctx.entity.to_string(), HISTORY).await.map_err(AppError::from)?;
        let tab = BuildsTab { component: ctx.entity.to_string(), key: uuid::Uuid::new_v4().to_string(), builds };
        tab.render().map_err(|e| PageError(AppError::Internal(e.into())))
    })
}

/// The "Build image" form's fields.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildForm {
    component: String,
    git_ref: String,
    dockerfile: String,
    #[serde(default)]
    context: String,
    #[serde(default)]
    tag: String,
    idempotency_key: String,
}

/// `POST /builds`: asks for the build, then shows its page.
pub async fn submit(State(state): State<AppState>, actor: Actor, Form(form): Form<BuildForm>) -> Result<Response, PageError> {
    let some = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_string());
    let raw_body = json!({ "gitRef": form.git_ref, "dockerfile": form.dockerfile, "context": form.context, "tag": form.tag });
    let req = BuildRequest { git_ref: form.git_ref.trim().to_string(), dockerfile: form.dockerfile.trim().to_string(), context: some(&form.context), tag: some(&form.tag), build_args: Vec::new() };
    let key = some(&form.idempotency_key).filter(|k| k.len() <= 200 && k.chars().all(|c| c.is_ascii_graphic()));
    let (build, _) = request_build(&state, &actor, &form.component, Ok((req, key)), raw_body).await?;
    Ok(Redirect::to(&format!("/builds/{}", build.id)).into_response())
}

#[derive(Template)]
#[template(path = "build.html")]
struct BuildPage {
    chrome: Chrome,
    build: Build,
    component_href: String,
    log: String,
    log_size: usize,
}

/// `GET /builds/{id}`.
pub async fn page(State(state): State<AppState>, actor: Actor, Path(id): Path<String>) -> Result<Html<String>, PageError> {
    let builds = store(&state);
    let build = builds.get(&id).await.map_err(AppError::from)?.ok_or_else(|| AppError::NotFound(format!("no build {id}")))?;
    let (log, log_size) = builds.log(&id, 0).await.map_err(AppError::from)?.unwrap_or_default();
    let component_href = nova_domain::entity_ref::EntityRef::parse(&build.component_ref).map(|r| entity_href(&r)).unwrap_or_default();
    let chrome = Chrome::new(&state, &actor, format!("Build {}", build.tag), "catalog");
    render(&BuildPage { chrome, build, component_href, log, log_size })
}
