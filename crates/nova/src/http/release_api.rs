//! Release: artifacts, environments and promotions (docs/RELEASE.md).
//!
//! `GET /api/v1/components/{ref}/artifacts`, `GET /api/v1/components/{ref}/environments`,
//! `GET|POST /api/v1/components/{ref}/promotions`, `GET /api/v1/promotions/{id}`,
//! `POST /api/v1/promotions/{id}/approvals`, `POST /api/v1/promotions/{id}/reject`,
//! `DELETE /api/v1/components/{ref}/environments/{env}/pin`,
//! `POST /api/v1/components/{ref}/environments/{env}/rollback`; the intake webhook for external CI,
//! `POST /api/v1/artifacts`, and its per-team secret, `POST /api/v1/teams/{team}/intake-secret`.
//! Promoting needs ownership of the component; approving needs membership of the environment's
//! approver groups; intake needs the owning team's signature. Every change and every refusal is
//! audited.

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
use crate::release::artifacts::{Artifact, NewArtifact};
use crate::release::intake;
use crate::release::store::Promotion;
use crate::release::{EnvironmentStatus, PromotionRequest, Release, Who};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/components/{component}/artifacts", get(artifacts))
        .route("/components/{component}/environments", get(environments))
        .route("/components/{component}/environments/{environment}/pin", delete(release_pin))
        .route("/components/{component}/environments/{environment}/rollback", post(rollback))
        .route("/components/{component}/promotions", get(promotions).post(promote))
        .route("/promotions/{id}", get(one))
        .route("/promotions/{id}/approvals", post(approve))
        .route("/promotions/{id}/reject", post(reject))
        .route("/artifacts", post(intake))
        .route("/teams/{team}/intake-secret", post(rotate_intake_secret))
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

/// Asks for a promotion (the API and the console's form both come here).
pub async fn request_promotion(state: &AppState, actor: &Actor, raw: &str, parsed: Result<PromotionRequest, AppError>) -> Result<Promotion, AppError> {
    let (entity, who, req) = owner_request(state, actor, raw, parsed, "promote").await?;
    Release::from_state(state)?.request(&who, &entity, &req).await
}

/// What promoting and rolling back share: the component must exist and the caller own it; a
/// body that could not be read is audited as a refused request.
async fn owner_request<T>(state: &AppState, actor: &Actor, raw: &str, parsed: Result<T, AppError>, to: &str) -> Result<(EntityRef, Who, T), AppError> {
    let entity = component(state, raw)?;
    authz::require(state, actor, Action::Promote, &authz::entity_target(state, &entity)).await?;
    let req = match parsed {
        Ok(r) => r,
        Err(e) => {
            authz::record(state, actor, "release.promotion.request", entity.to_string(), Outcome::Failure, json!({ "refused": e.to_string() })).await?;
            return Err(e);
        }
    };
    Ok((entity, Who::of(actor, to)?, req))
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
    let verb = if approve { "approve" } else { "reject" };
    // Anonymous callers are refused before anything is looked up: they learn nothing of which
    // promotions exist.
    let who = match Who::of(actor, &format!("{verb} promotions")) {
        Ok(w) => w,
        Err(e) => {
            authz::record(state, actor, &format!("authz.deny.{verb}"), format!("promotion:{id}"), Outcome::Denied, json!({ "promotion": id, "reason": e.to_string() })).await?;
            return Err(e);
        }
    };
    let p = release.promotions().get(id).await?.ok_or_else(|| AppError::NotFound(format!("no promotion {id}")))?;
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
    let entity = release_environment_pin(&state, &actor, &raw, &environment).await?;
    Ok(Json(json!({ "component": entity.to_string(), "environment": environment, "pinned": false })))
}

/// Releases a pin (the API and the console's form both come here): owners only.
pub async fn release_environment_pin(state: &AppState, actor: &Actor, raw: &str, environment: &str) -> Result<EntityRef, AppError> {
    let entity = component(state, raw)?;
    authz::require(state, actor, Action::Promote, &authz::entity_target(state, &entity)).await?;
    let who = Who::of(actor, "release pins")?;
    Release::from_state(state)?.release_pin(&who, &entity, environment).await?;
    Ok(entity)
}

/// What a rollback asks for.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// The artifact to go back to; default: the one deployed before the current one.
    pub digest: Option<String>,
}

/// Rolls an environment back: promotes the artifact it ran before the current one (or the
/// given earlier one). Owners only; the environment's gates apply; once done it pins the
/// environment.
#[utoipa::path(post, path = "/api/v1/components/{component}/environments/{environment}/rollback", request_body = RollbackRequest,
    params(("component" = String, Path, description = "Component reference"), ("environment" = String, Path, description = "Environment name")),
    responses((status = 201, body = Promotion), (status = 400, body = super::error::Problem), (status = 403, body = super::error::Problem),
              (status = 404, body = super::error::Problem), (status = 409, description = "Nothing earlier to roll back to, or a gate refused it", body = super::error::Problem)))]
async fn rollback(State(state): State<AppState>, actor: Actor, Path((raw, environment)): Path<(String, String)>, body: axum::body::Bytes) -> Result<(StatusCode, Json<Promotion>), AppError> {
    let parsed = if body.iter().all(u8::is_ascii_whitespace) { Ok(RollbackRequest::default()) } else { serde_json::from_slice::<RollbackRequest>(&body).map_err(|e| AppError::invalid("body", format!("must be {{digest?}}: {e}"))) };
    let p = request_rollback(&state, &actor, &raw, &environment, parsed).await?;
    Ok((StatusCode::CREATED, Json(p)))
}

/// Asks for a rollback (the API and the console's form both come here).
pub async fn request_rollback(state: &AppState, actor: &Actor, raw: &str, environment: &str, parsed: Result<RollbackRequest, AppError>) -> Result<Promotion, AppError> {
    let (entity, who, req) = owner_request(state, actor, raw, parsed, "roll back").await?;
    Release::from_state(state)?.rollback(&who, &entity, environment, req.digest.as_deref()).await
}

/// An artifact external CI reports.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IntakeRequest {
    /// The component, e.g. `payment-service` or `component:default/payment-service`.
    pub component: String,
    /// Where the image was pushed, e.g. `registry.example.com/payments/payment-service`.
    pub repository: String,
    /// The pushed image's digest, `sha256:<64 hex digits>`.
    pub digest: String,
    /// Tags it was pushed with.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The branch or tag it was built from (checked against environments' `refs` gates).
    pub git_ref: Option<String>,
    /// The commit it was built from.
    pub git_revision: Option<String>,
}

async fn audit_intake(state: &AppState, actor: &str, action: &str, target: &str, outcome: Outcome, details: Value) -> Result<(), AppError> {
    let event = crate::audit::AuditEvent { actor: actor.into(), teams: Vec::new(), action: action.into(), target: target.into(), outcome, request_id: super::error::request_id(), details };
    state.audit.record(event).await?;
    Ok(())
}

/// Records an artifact external CI built, signed with the owning team's intake secret
/// (`X-Nova-Timestamp`, `X-Nova-Signature-256`; docs/RELEASE.md). The same digest again only
/// adds tags (200).
#[utoipa::path(post, path = "/api/v1/artifacts", request_body = IntakeRequest,
    params(("X-Nova-Timestamp" = String, Header, description = "Unix seconds"), ("X-Nova-Signature-256" = String, Header, description = "sha256=<hex HMAC-SHA256 of \"<timestamp>.<body>\">")),
    responses((status = 201, body = Artifact), (status = 200, body = Artifact), (status = 400, body = super::error::Problem), (status = 401, body = super::error::Problem),
              (status = 404, body = super::error::Problem), (status = 409, description = "A replayed request", body = super::error::Problem)))]
async fn intake(State(state): State<AppState>, headers: axum::http::HeaderMap, body: axum::body::Bytes) -> Result<(StatusCode, Json<Artifact>), AppError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let result = accept_intake(&state, header(intake::TIMESTAMP_HEADER), header(intake::SIGNATURE_HEADER), &body).await;
    match result {
        Ok((artifact, created, team)) => {
            let details = json!({ "artifact": artifact.id, "repository": artifact.repository, "digest": artifact.digest, "tags": artifact.tags, "gitRef": artifact.git_ref, "new": created });
            audit_intake(&state, &format!("intake:{team}"), "release.artifact.intake", &artifact.component_ref, Outcome::Success, details).await?;
            Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(artifact)))
        }
        Err((target, e)) => {
            let outcome = if matches!(e, AppError::Unauthorized(_)) { Outcome::Denied } else { Outcome::Failure };
            audit_intake(&state, "intake", "release.artifact.intake", &target, outcome, json!({ "refused": e.to_string() })).await?;
            Err(e)
        }
    }
}

/// Checks a signed intake request and records its artifact; the error comes with the target
/// named for the audit record.
async fn accept_intake(state: &AppState, timestamp: Option<String>, signature: Option<String>, body: &[u8]) -> Result<(Artifact, bool, String), (String, AppError)> {
    let req: IntakeRequest = serde_json::from_slice(body)
        .map_err(|e| ("unknown".to_string(), AppError::invalid("body", format!("must be {{component, repository, digest, tags?, gitRef?, gitRevision?}}: {e}"))))?;
    let entity = component(state, &req.component).map_err(|e| (req.component.clone(), e))?;
    let target = entity.to_string();
    let fail = |e: AppError| (target.clone(), e);
    let owner = owner_of(state, &target).filter(|o| o.kind() == "group" && o.namespace() == "default");
    let team = owner.ok_or_else(|| fail(AppError::Unauthorized(format!("{target} is not owned by a team in namespace default, so no intake secret can sign for it"))))?;
    let team_name = team.name().to_string();
    let path = intake::secret_path(&team_name).map_err(|e| fail(AppError::Internal(anyhow::anyhow!(e))))?;
    let secret = match state.secrets.get(&path).await {
        Ok(s) => s.data.get(crate::secrets::DEFAULT_FIELD).cloned().ok_or_else(|| fail(AppError::Unavailable("the team's intake secret is unreadable; rotate it".into())))?,
        Err(crate::secrets::SecretError::NotFound(_)) => {
            return Err(fail(AppError::Unauthorized(format!("team {team_name} has no intake secret; an owner makes one with POST /api/v1/teams/{team_name}/intake-secret"))));
        }
        Err(e) => return Err(fail(AppError::Unavailable(e.to_string()))),
    };
    let window = state.config.release.intake_window;
    let now = crate::storage::now_ms();
    intake::verify(&secret, timestamp.as_deref(), signature.as_deref(), body, now / 1000, window.as_secs() as i64).map_err(|m| fail(AppError::Unauthorized(m)))?;
    if !intake::first_use(&state.db, signature.as_deref().unwrap_or_default(), window.as_millis() as i64).await.map_err(|e| fail(e.into()))? {
        return Err(fail(AppError::Conflict("this signed request was already received (a replay); sign each request anew".into())));
    }
    let digest = nova_domain::Digest::parse(req.digest.trim()).map_err(|e| fail(AppError::invalid("digest", e.to_string())))?;
    let repo = req.repository.trim();
    let tagged = repo.contains('@') || repo.split('/').skip(1).any(|s| s.contains(':'));
    if repo.len() > 255 || !repo.contains('/') || tagged || repo.split('/').any(str::is_empty) || repo.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(fail(AppError::invalid("repository", "must be an image repository such as registry.example.com/team/app, without tag or digest")));
    }
    for (i, t) in req.tags.iter().enumerate() {
        nova_domain::build::check_image_tag(t).map_err(|e| fail(AppError::invalid(format!("tags[{i}]"), e.0)))?;
    }
    for (field, v) in [("gitRef", &req.git_ref), ("gitRevision", &req.git_revision)] {
        if v.as_ref().is_some_and(|v| v.is_empty() || v.len() > 255 || v.chars().any(|c| c.is_whitespace() || c.is_control())) {
            return Err(fail(AppError::invalid(field, "must be 1 to 255 characters without spaces or control characters")));
        }
    }
    let snapshot = state.catalog.snapshot();
    let record = snapshot.get(&entity).ok_or_else(|| fail(AppError::NotFound(format!("no component {target} in the catalog"))))?;
    crate::release::registry_check::verify(&state.registry, record, repo, &digest).await.map_err(fail)?;
    let new = NewArtifact {
        component_ref: target.clone(),
        repository: repo.to_string(),
        digest,
        tags: req.tags,
        git_ref: req.git_ref,
        git_revision: req.git_revision,
        build_id: None,
        source: "intake",
    };
    let release = Release::from_state(state).map_err(fail)?;
    let (artifact, created) = release.artifacts().record(new).await.map_err(|e| fail(e.into()))?;
    Ok((artifact, created, team.to_string()))
}

/// Makes (or replaces) a team's intake secret and shows it, once. Members of the team only.
#[utoipa::path(post, path = "/api/v1/teams/{team}/intake-secret", params(("team" = String, Path, description = "Team (group) name")),
    responses((status = 201, description = "`{team, secret, headers}`: the secret is shown only now"), (status = 403, body = super::error::Problem)))]
async fn rotate_intake_secret(State(state): State<AppState>, actor: Actor, Path(team): Path<String>) -> Result<(StatusCode, Json<Value>), AppError> {
    let team_ref = crate::secrets::credentials::team_ref(&team);
    authz::require(&state, &actor, Action::ManageCredentials, &authz::Target::Team(team_ref.clone())).await?;
    intake::secret_path(&team).map_err(|e| AppError::invalid("team", e))?;
    let secret = intake::rotate(state.secrets.as_ref(), &team).await.map_err(|e| AppError::Unavailable(e.to_string()))?;
    authz::record(&state, &actor, "release.intake-secret.rotate", team_ref.to_string(), Outcome::Success, json!({})).await?;
    let body = json!({ "team": team_ref.to_string(), "secret": secret.expose(), "timestampHeader": "X-Nova-Timestamp", "signatureHeader": "X-Nova-Signature-256",
        "note": "Shown only now. Sign \"<timestamp>.<body>\" with HMAC-SHA256; see docs/RELEASE.md." });
    Ok((StatusCode::CREATED, Json(body)))
}
