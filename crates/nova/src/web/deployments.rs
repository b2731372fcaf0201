//! The component's Deployments tab: a matrix of the environments in promotion order with what
//! runs in each (tag, short digest, when, by whom, the GitOps commit and its link, the policy
//! gate's result, a rollback's pin), pending promotions with their gates (approvals `1/2` and
//! who gave them, the wait timer's time left, the policy gate), recently finished ones with
//! their reasons, and the artifacts. Buttons appear for those allowed: Promote, Roll back and
//! Release pin for owners, Approve and Reject for approvers. The forms post to `/promotions`,
//! `/rollbacks` and `/pins/release` here, which go back to the tab; no script is needed.

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
use crate::http::release_api::{decide_promotion, owner_of, release_environment_pin, request_promotion, request_rollback, RollbackRequest};
use crate::http::{AppError, AppState};
use crate::release::artifacts::Artifact;
use crate::release::policy_gate::PolicyResult;
use crate::release::store::{Promotion, PromotionState};
use crate::release::{EnvironmentStatus, PromotionRequest, Release, Who};
use crate::storage::now_ms;

/// Artifacts offered in the Promote form.
const ARTIFACTS: i64 = 20;
/// Finished promotions shown under "Recent".
const RECENT: usize = 8;

/// One environment's row of the matrix.
struct EnvRow {
    e: EnvironmentStatus,
    /// A rollback target exists (something ran there before the current artifact).
    can_roll_back: bool,
}

/// A pending promotion as the tab shows it.
struct PendingRow {
    p: Promotion,
    /// The actor may approve or reject it.
    can_decide: bool,
    needed: u32,
    /// The wait timer's time left, while it runs.
    wait_left: Option<String>,
    policy_gate: bool,
}

#[derive(Template)]
#[template(path = "deployments_tab.html")]
struct DeploymentsTab {
    component: String,
    environments: Vec<EnvRow>,
    pending: Vec<PendingRow>,
    recent: Vec<Promotion>,
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

    fn sha(&self, sha: &str) -> String {
        sha.chars().take(12).collect()
    }

    /// `passed`, `passed, 2 audit findings` or `failed: 3 blocking findings`.
    fn policy(&self, r: &PolicyResult) -> String {
        let audit = r.audit_count();
        let blocking = r.findings.len() - audit;
        match (r.passed, audit) {
            (true, 0) => "passed".into(),
            (true, n) => format!("passed, {n} audit finding(s)"),
            (false, _) => format!("failed: {blocking} blocking finding(s)"),
        }
    }

    /// One finding in a line: mode, rule, file, object, message.
    fn finding(&self, f: &crate::release::policy_gate::PolicyFinding) -> String {
        format!("{} {} in {}{}: {}", f.mode, f.rule.as_deref().unwrap_or("unreadable"), f.file, f.object.as_ref().map(|o| format!(" ({o})")).unwrap_or_default(), f.message)
    }
}

/// `1h 5m`, `4m 10s`, `12s`.
fn duration_text(ms: i64) -> String {
    let s = (ms.max(0) + 999) / 1000;
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m {s}s"),
        (h, m, _) => format!("{h}h {m}m"),
    }
}

/// The component's Deployments tab.
pub fn deployments_tab(ctx: TabContext) -> TabFuture {
    Box::pin(async move {
        let release = Release::from_state(&ctx.state)?;
        let component = ctx.entity.to_string();
        let status = release.status(&ctx.entity).await?;
        let artifacts = release.artifacts().list(&component, ARTIFACTS).await.map_err(AppError::from)?;
        let history = release.promotions().list(&component, 200).await.map_err(AppError::from)?;
        let owner = owner_of(&ctx.state, &component);
        let who = Who::of(&ctx.actor, "act").ok();
        let can_promote = who.as_ref().is_some_and(|w| w.admin || owner.as_ref().is_some_and(|o| w.claims.contains(o)));
        let now = now_ms();
        let pending = status
            .iter()
            .flat_map(|e| e.pending.iter().map(move |p| (e, p)))
            .map(|(e, p)| PendingRow {
                can_decide: p.state == PromotionState::AwaitingApproval && who.as_ref().is_some_and(|w| release.refusal(w, p, owner.as_ref(), "approve").is_none()),
                needed: e.approvals_needed,
                wait_left: p.not_before.filter(|at| *at > now && p.state == PromotionState::Waiting).map(|at| duration_text(at - now)),
                policy_gate: e.policy_gate,
                p: p.clone(),
            })
            .collect();
        let recent = history.iter().filter(|p| !p.state.is_pending()).take(RECENT).cloned().collect();
        let environments = status
            .into_iter()
            .map(|e| {
                let current = e.current.as_ref().map(|c| c.digest.as_str());
                let can_roll_back = history.iter().any(|p| p.environment == e.name && p.state == PromotionState::Done && Some(p.digest.as_str()) != current);
                EnvRow { e, can_roll_back }
            })
            .collect();
        let tab = DeploymentsTab { component, environments, pending, recent, artifacts, can_promote };
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

/// The Roll back and Release pin forms' fields.
#[derive(Debug, Deserialize)]
pub struct EnvironmentForm {
    component: String,
    environment: String,
}

/// `POST /rollbacks`: rolls the environment back to what it ran before, then shows the tab.
pub async fn rollback(State(state): State<AppState>, actor: Actor, Form(form): Form<EnvironmentForm>) -> Result<Response, PageError> {
    let p = request_rollback(&state, &actor, &form.component, form.environment.trim(), Ok(RollbackRequest::default())).await?;
    Ok(back(&p.component_ref))
}

/// `POST /pins/release`: releases a rollback's pin, then shows the tab.
pub async fn release_pin(State(state): State<AppState>, actor: Actor, Form(form): Form<EnvironmentForm>) -> Result<Response, PageError> {
    let entity = release_environment_pin(&state, &actor, &form.component, form.environment.trim()).await?;
    Ok(back(&entity.to_string()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(super::duration_text(12_000), "12s");
        assert_eq!(super::duration_text(250_500), "4m 11s");
        assert_eq!(super::duration_text(3_900_000), "1h 5m");
        assert_eq!(super::duration_text(-5), "0s");
    }
}
