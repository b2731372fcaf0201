//! Release: artifacts, environments and promotions (docs/RELEASE.md).
//!
//! `GET /api/v1/components/{ref}/artifacts`, `GET /api/v1/components/{ref}/environments`,
//! `GET|POST /api/v1/components/{ref}/promotions`, `GET /api/v1/promotions/{id}`,
//! `POST /api/v1/promotions/{id}/approvals`, `POST /api/v1/promotions/{id}/reject`,
//! `DELETE /api/v1/components/{ref}/environments/{env}/pin`. Promoting needs ownership of the
//! component; approving needs membership of the environment's approver groups. Every change
//! and every refusal is audited.

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use nova_domain::EntityRef;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AppError, AppState};
use crate::audit::Outcome;
use crate::auth::Actor;
use crate::authz::{self, Action};
use crate::release::artifacts::Artifact;
use crate::release::store::Promotion;
use crate::release::{EnvironmentStatus, PromotionRequest, Release, Who};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/components/{component}/artifacts", get(artifacts))
        .route("/components/{component}/environments", get(environments))
        .route("/components/{component}/environments/{environment}/pin", delete(release_pin))
        .route("/components/{component}/promotions", get(promotions).post(promote))
        .route("/promotions/{id}", get(one))
        .route("/promotions/{id}/approvals", post(approve))
        .route("/promotions/{id}/reject", post(reject))
}

/// `?limit=` for lists.
#[derive(Debug, Deserialize)]
struct ListQuery {
    limit: Option<i64>,
}

fn limit(q: &ListQuery) -> Result<i64, AppError> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(AppError::invalid("limit", "must be between 1 and 500"));
    }
    Ok(limit)
}

/// The component named in the path, which must be in the catalog.
pub fn component(state: &AppState, raw: &str) -> Result<EntityRef, AppError> {
    let entity = EntityRef::parse_with(raw, Some("component"), "default").map_err(|e| AppError::invalid("component", e.to_string()))?;
    if entity.kind() != "component" {
        return Err(AppError::invalid("component", format!("must be a component, not a {}", entity.kind())));
    }
    state.catalog.snapshot().get(&entity).ok_or_else(|| AppError::NotFound(format!("no component {entity} in the catalog")))?;
    Ok(entity)
}

/// A component's artifacts, newest first (`?limit=`, 1 to 500, default 50).
#[utoipa::path(get, path = "/api/v1/components/{component}/artifacts",
    params(("component" = String, Path, description = "Component reference"), ("limit" = Option<i64>, Query, description = "1 to 500, default 50")),
    responses((status = 200, body = [Artifact]), (status = 400, body = super::error::Problem), (status = 404, body = super::error::Problem)))]
async fn artifacts(State(state): State<AppState>, Path(raw): Path<String>, Query(q): Query<ListQuery>) -> Result<Json<Vec<Artifact>>, AppError> {
    let entity = component(&state, &raw)?;
    Ok(Json(Release::from_state(&state)?.artifacts().list(&entity.to_string(), limit(&q)?).await?))
}

/// The configured environments in order, each with the component's current artifact, its pin
/// and pending promotions.
#[utoipa::path(get, path = "/api/v1/components/{component}/environments",
    params(("component" = String, Path, description = "Component reference")),
    responses((status = 200, body = [EnvironmentStatus]), (status = 404, body = super::error::Problem)))]
async fn environments(State(state): State<AppState>, Path(raw): Path<String>) -> Result<Json<Vec<EnvironmentStatus>>, AppError> {
    let entity = component(&state, &raw)?;
    Ok(Json(Release::from_state(&state)?.status(&entity).await?))
}

/// A component's promotions, newest first.
#[utoipa::path(get, path = "/api/v1/components/{component}/promotions",
    params(("component" = String, Path, description = "Component reference"), ("limit" = Option<i64>, Query, description = "1 to 500, default 50")),
    responses((status = 200, body = [Promotion]), (status = 404, body = super::error::Problem)))]
async fn promotions(State(state): State<AppState>, Path(raw): Path<String>, Query(q): Query<ListQuery>) -> Result<Json<Vec<Promotion>>, AppError> {
    let entity = component(&state, &raw)?;
    Ok(Json(Release::from_state(&state)?.promotions().list(&entity.to_string(), limit(&q)?).await?))
}

/// Asks for an artifact (by digest) to be promoted to an environment. Owners only; the
/// environment's gates are checked here and again before the write.
#[utoipa::path(post, path = "/api/v1/components/{component}/promotions", request_body = PromotionRequest,
    params(("component" = String, Path, description = "Component reference")),
    responses((status = 201, body = Promotion), (status = 400, body = super::error::Problem), (status = 401, body = super::error::Problem),
              (status = 403, body = super::error::Problem), (status = 404, body = super::error::Problem), (status = 409, description = "A gate refused it", body = super::error::Problem)))]
async fn promote(State(state): State<AppState>, actor: Actor, Path(raw): Path<String>, body: axum::body::Bytes) -> Result<(StatusCode, Json<Promotion>), AppError> {
    let parsed = serde_json::from_slice::<PromotionRequest>(&body).map_err(|e| AppError::invalid("body", format!("must be a promotion request {{digest, environment}}: {e}")));
    let p = request_promotion(&state, &actor, &raw, parsed).await?;
    Ok((StatusCode::CREATED, Json(p)))
}

/// Asks for a promotion (the API and the console's form both come here): the component must
/// exist and the caller own it; a body that could not be read is audited as refused.
pub async fn request_promotion(state: &AppState, actor: &Actor, raw: &str, parsed: Result<PromotionRequest, AppError>) -> Result<Promotion, AppError> {
    let entity = component(state, raw)?;
    authz::require(state, actor, Action::Promote, &authz::entity_target(state, &entity)).await?;
    let req = match parsed {
        Ok(r) => r,
        Err(e) => {
            authz::record(state, actor, "release.promotion.request", entity.to_string(), Outcome::Failure, json!({ "refused": e.to_string() })).await?;
            return Err(e);
        }
    };
    let who = Who::of(actor, "promote")?;
    Release::from_state(state)?.request(&who, &entity, &req).await
}

/// One promotion with its approvals.
#[utoipa::path(get, path = "/api/v1/promotions/{id}", params(("id" = String, Path, description = "Promotion id")),
    responses((status = 200, body = Promotion), (status = 404, body = super::error::Problem)))]
async fn one(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Promotion>, AppError> {
    let p = Release::from_state(&state)?.promotions().get(&id).await?.ok_or_else(|| AppError::NotFound(format!("no promotion {id}")))?;
    Ok(Json(p))
}

/// The owner of a promotion's component, for approvals without approver groups.
pub fn owner_of(state: &AppState, component_ref: &str) -> Option<EntityRef> {
    let entity = EntityRef::parse(component_ref).ok()?;
    match authz::entity_target(state, &entity) {
        authz::Target::Entity { owner, .. } => owner,
        _ => None,
    }
}

/// What approving and rejecting share: the caller, the promotion, its component's owner.
pub async fn decide_promotion(state: &AppState, actor: &Actor, id: &str, approve: bool) -> Result<Promotion, AppError> {
    let release = Release::from_state(state)?;
    let p = release.promotions().get(id).await?.ok_or_else(|| AppError::NotFound(format!("no promotion {id}")))?;
    let verb = if approve { "approve" } else { "reject" };
    let who = match Who::of(actor, &format!("{verb} promotions")) {
        Ok(w) => w,
        Err(e) => {
            authz::record(state, actor, &format!("authz.deny.{verb}"), p.component_ref.clone(), Outcome::Denied, json!({ "promotion": id, "reason": e.to_string() })).await?;
            return Err(e);
        }
    };
    let owner = owner_of(state, &p.component_ref);
    if approve { release.approve(&who, id, owner.as_ref()).await } else { release.reject(&who, id, owner.as_ref()).await }
}

/// Approves a promotion. The requester cannot approve their own; each approver counts once.
#[utoipa::path(post, path = "/api/v1/promotions/{id}/approvals", params(("id" = String, Path, description = "Promotion id")),
    responses((status = 200, body = Promotion), (status = 401, body = super::error::Problem), (status = 403, body = super::error::Problem),
              (status = 404, body = super::error::Problem), (status = 409, body = super::error::Problem)))]
async fn approve(State(state): State<AppState>, actor: Actor, Path(id): Path<String>) -> Result<Json<Promotion>, AppError> {
    Ok(Json(decide_promotion(&state, &actor, &id, true).await?))
}

/// Rejects a promotion that has not been written yet.
#[utoipa::path(post, path = "/api/v1/promotions/{id}/reject", params(("id" = String, Path, description = "Promotion id")),
    responses((status = 200, body = Promotion), (status = 403, body = super::error::Problem), (status = 404, body = super::error::Problem), (status = 409, body = super::error::Problem)))]
async fn reject(State(state): State<AppState>, actor: Actor, Path(id): Path<String>) -> Result<Json<Promotion>, AppError> {
    Ok(Json(decide_promotion(&state, &actor, &id, false).await?))
}

/// Releases a rollback's pin, so auto-promotion may write the environment again. Owners only.
#[utoipa::path(delete, path = "/api/v1/components/{component}/environments/{environment}/pin",
    params(("component" = String, Path, description = "Component reference"), ("environment" = String, Path, description = "Environment name")),
    responses((status = 200, description = "Released"), (status = 403, body = super::error::Problem), (status = 404, body = super::error::Problem)))]
async fn release_pin(State(state): State<AppState>, actor: Actor, Path((raw, environment)): Path<(String, String)>) -> Result<Json<Value>, AppError> {
    let entity = component(&state, &raw)?;
    authz::require(&state, &actor, Action::Promote, &authz::entity_target(&state, &entity)).await?;
    let who = Who::of(&actor, "release pins")?;
    Release::from_state(&state)?.release_pin(&who, &entity, &environment).await?;
    Ok(Json(json!({ "component": entity.to_string(), "environment": environment, "pinned": false })))
}
