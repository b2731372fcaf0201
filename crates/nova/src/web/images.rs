//! The component page's "Images" tab (rendered by [`crate::registry::view`]), with one image's
//! scan findings above the list when asked for (`?findings=<digest>`), and its refresh form:
//! `POST /catalog/{namespace}/component/{name}/images/refresh`.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::PageError;
use super::entity::{TabContext, TabFuture};
use crate::auth::Actor;
use crate::http::registry_api::{FindingsResponse, authorize_refresh, component, image_findings, request_refresh};
use crate::http::{AppError, AppState};
use crate::registry::view::{self, ImageQuery};

/// Renders the tab: the filter form, the images, and a notice after a refresh request. A
/// component without image annotations, or a user for whom the view is switched off, gets the
/// reason in words, and so does one whose annotations are broken or name a registry this Nova
/// has not configured (the API answers that with 400).
pub fn images_tab(ctx: TabContext) -> TabFuture {
    Box::pin(async move {
        let (kind, namespace, name) = (ctx.entity.kind(), ctx.entity.namespace(), ctx.entity.name());
        let c = match component(&ctx.state, &ctx.actor, kind, namespace, name).await {
            Ok(c) => c,
            Err(e @ (AppError::NotFound(_) | AppError::Invalid { .. })) => return Ok(notice_html("banner error", &e.public_message())),
            Err(e) => return Err(e.into()),
        };
        let query = ImageQuery::parse(|k| ctx.params.get(k).map(str::to_string)).map_err(|(field, message)| AppError::invalid(field, message))?;
        let v = view::build(&ctx.state.registry, &c.entity_ref, &c.links, &query).await?;
        let path = format!("{}/images", super::view::entity_href(&ctx.entity));
        let mut html = match ctx.params.get("refresh") {
            Some("queued") => notice_html("banner", "A refresh from the registry is running; reload in a moment."),
            Some("too-soon") => notice_html("banner", "This component was refreshed moments ago; the images below are current."),
            _ => String::new(),
        };
        if let Some(raw) = ctx.params.get("findings") {
            let digest = nova_domain::Digest::parse(raw).map_err(|e| AppError::invalid("findings", e.to_string()))?;
            let r = image_findings(&ctx.state, &c, &digest).await?;
            let json = format!("/api/v1/components/{kind}/{namespace}/{name}/images/{digest}/findings");
            let part = FindingsPart { short: digest.as_str().chars().take(19).collect(), back: path.clone(), json, r };
            html.push_str(&part.render().map_err(|e| AppError::Internal(e.into()))?);
        }
        html.push_str(&view::render_images_tab(&v, &path, &[]).map_err(|e| AppError::Internal(e.into()))?);
        Ok(html)
    })
}

/// One image's findings.
#[derive(Template)]
#[template(path = "findings_part.html")]
struct FindingsPart {
    short: String,
    back: String,
    json: String,
    r: FindingsResponse,
}

impl FindingsPart {
    fn time(&self, ms: &Option<i64>) -> String {
        super::view::time_text(*ms)
    }
}

fn notice_html(class: &str, text: &str) -> String {
    format!("<div class=\"{class}\" role=\"status\">{}</div>", askama::filters::escape(text, askama::filters::Html).map(|e| e.to_string()).unwrap_or_default())
}

/// `POST /catalog/{namespace}/component/{name}/images/refresh`: queues a refresh and returns
/// to the tab with a notice.
pub async fn refresh(State(state): State<AppState>, actor: Actor, Path((namespace, name)): Path<(String, String)>) -> Result<Response, PageError> {
    authorize_refresh(&state, &actor, "component", &namespace, &name).await?;
    let c = component(&state, &actor, "component", &namespace, &name).await?;
    let outcome = match request_refresh(&state, &c).await {
        Ok(_) => "queued",
        Err(AppError::TooManyRequests { .. }) => "too-soon",
        Err(e) => return Err(e.into()),
    };
    let to = format!("{}/images?refresh={outcome}", super::view::entity_href(&c.entity_ref));
    Ok((StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response())
}
