//! The component's Deployments tab: the environments in promotion order with what runs in each
//! (digest, tags, when, by whom, the GitOps commit), pending promotions with their approvals and
//! an Approve/Reject form for those who may, and a Promote form per artifact. The forms post to
//! `/promotions...` here, which answer by going back to the tab; they work without JavaScript.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use nova_domain::EntityRef;
use serde::Deserialize;

use super::entity::{TabContext, TabFuture};
use super::view::{entity_href, time_text};
use super::PageError;
use crate::auth::Actor;
use crate::http::release_api::{decide_promotion, owner_of, request_promotion};
use crate::http::{AppError, AppState};
use crate::release::artifacts::Artifact;
use crate::release::store::Promotion;
use crate::release::{EnvironmentStatus, PromotionRequest, Release, Who};

/// Artifacts offered in the Promote form.
const ARTIFACTS: i64 = 20;

/// A pending promotion as the tab shows it.
struct PendingRow {
    p: Promotion,
    /// The actor may approve or reject it.
    can_decide: bool,
    needed: u32,
}

#[derive(Template)]
#[template(path = "deployments_tab.html")]
struct DeploymentsTab {
    component: String,
    environments: Vec<EnvironmentStatus>,
    pending: Vec<PendingRow>,
    artifacts: Vec<Artifact>,
    can_promote: bool,
}

impl DeploymentsTab {
    fn time(&self, ms: &Option<i64>) -> String {
        time_text(*ms)
    }

    fn at(&self, ms: &i64) -> String {
        time_text(Some(*ms))
    }

    fn short(&self, digest: &str) -> String {
        let end = digest.find(':').map_or(0, |i| i + 1) + 12;
        digest[..end.min(digest.len())].to_string()
    }
}

/// The component's Deployments tab.
pub fn deployments_tab(ctx: TabContext) -> TabFuture {
    Box::pin(async move {
        let release = Release::from_state(&ctx.state)?;
        let component = ctx.entity.to_string();
        let environments = release.status(&ctx.entity).await?;
        let artifacts = release.artifacts().list(&component, ARTIFACTS).await.map_err(AppError::from)?;
        let owner = owner_of(&ctx.state, &component);
        let who = Who::of(&ctx.actor, "act").ok();
        let can_promote = who.as_ref().is_some_and(|w| w.admin || owner.as_ref().is_some_and(|o| w.claims.contains(o)));
        let pending = environments
            .iter()
            .flat_map(|e| e.pending.iter().map(move |p| (e.approvals_needed, p)))
            .map(|(needed, p)| PendingRow { can_decide: who.as_ref().is_some_and(|w| release.refusal(w, p, owner.as_ref(), "approve").is_none()), needed, p: p.clone() })
            .collect();
        let tab = DeploymentsTab { component, environments, pending, artifacts, can_promote };
        tab.render().map_err(|e| PageError(AppError::Internal(e.into())))
    })
}

/// Back to the component's Deployments tab.
fn back(component: &str) -> Response {
    let href = EntityRef::parse(component).map(|r| format!("{}/deployments", entity_href(&r))).unwrap_or_else(|_| "/".into());
    Redirect::to(&href).into_response()
}

/// The Promote form's fields.
#[derive(Debug, Deserialize)]
pub struct PromoteForm {
    component: String,
    digest: String,
    environment: String,
}

/// `POST /promotions`: asks for the promotion, then shows the tab.
pub async fn promote(State(state): State<AppState>, actor: Actor, Form(form): Form<PromoteForm>) -> Result<Response, PageError> {
    let req = PromotionRequest { digest: form.digest.trim().to_string(), environment: form.environment.trim().to_string(), override_path: false };
    let p = request_promotion(&state, &actor, &form.component, Ok(req)).await?;
    Ok(back(&p.component_ref))
}

/// `POST /promotions/{id}/approve`.
pub async fn approve(State(state): State<AppState>, actor: Actor, Path(id): Path<String>) -> Result<Response, PageError> {
    let p = decide_promotion(&state, &actor, &id, true).await?;
    Ok(back(&p.component_ref))
}

/// `POST /promotions/{id}/reject`.
pub async fn reject(State(state): State<AppState>, actor: Actor, Path(id): Path<String>) -> Result<Response, PageError> {
    let p = decide_promotion(&state, &actor, &id, false).await?;
    Ok(back(&p.component_ref))
}
