//! Nova's own API under `/api/v1`, described by the OpenAPI document at
//! `/api/v1/openapi.json`.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use nova_domain::EntityRef;
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use super::error::Problem;
use crate::audit::Outcome;
use crate::auth::Actor;
use crate::authz::{self, Action, Target};
use super::{AppError, AppState};
use crate::catalog::{CatalogError, StoredLocation};
use crate::config::OwnershipMode;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/catalog/errors", get(catalog_errors))
        .route("/catalog/locations", get(catalog_locations))
        .route("/catalog/locations/{id}/refresh", post(refresh_location))
        .route("/users/{user_ref}/claims", get(user_claims))
        .route("/me", get(me))
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Nova API", description = "Nova's own API. The Backstage-compatible catalog API lives under /api/catalog and follows Backstage's documentation."),
    paths(
        catalog_errors, catalog_locations, refresh_location, user_claims, me,
        super::tokens_api::list, super::tokens_api::create, super::tokens_api::revoke,
        super::flags_api::list, super::flags_api::one, super::flags_api::create, super::flags_api::change, super::flags_api::evaluation,
        super::audit_api::query, super::audit_api::verify,
        super::credentials_api::list, super::credentials_api::one, super::credentials_api::put, super::credentials_api::revoke,
        super::builds_api::request, super::builds_api::list, super::builds_api::one, super::builds_api::cancel, super::builds_api::log, super::builds_api::events,
        super::release_api::artifacts, super::release_api::environments, super::release_api::promotions, super::release_api::promote, super::release_api::one,
        super::release_api::approve, super::release_api::reject, super::release_api::release_pin, super::release_api::rollback, super::release_api::intake, super::release_api::rotate_intake_secret,
    ),
    components(schemas(ErrorsResponse, ErrorItem, LocationItem, ClaimsResponse, MeResponse, Problem,
        crate::git_remote::AccessCheck, crate::secrets::credential_uses::LastUse,
        crate::auth::tokens::TokenInfo, super::tokens_api::NewToken, crate::flags::Flag, crate::flags::Rollout, super::flags_api::NewFlag, crate::audit::StoredEvent,
        crate::secrets::credentials::CredentialInfo, crate::secrets::credentials::CredentialRequest, crate::secrets::credentials::CredentialKind,
        super::builds_api::BuildRequest, super::builds_api::BuildArgInput, crate::builds::store::Build, crate::builds::store::StoredBuildArg,
        crate::release::artifacts::Artifact, crate::release::store::Promotion, crate::release::store::PromotionState, crate::release::store::Approval,
        crate::release::store::Pin, crate::release::EnvironmentStatus, crate::release::PromotionRequest, super::release_api::IntakeRequest, super::release_api::RollbackRequest))
)]
struct ApiDoc;

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    let mut doc = ApiDoc::openapi();
    doc.merge(super::registry_api::RegistryApiDoc::openapi());
    Json(doc)
}

/// One catalog error.
#[derive(Serialize, ToSchema)]
struct ErrorItem {
    location: String,
    document: Option<usize>,
    #[serde(rename = "entityRef")]
    entity_ref: Option<String>,
    field: Option<String>,
    rule: String,
    /// location, too-large, yaml, validation, conflict or cycle.
    kind: String,
    message: String,
}

impl From<&CatalogError> for ErrorItem {
    fn from(e: &CatalogError) -> Self {
        Self {
            location: e.location.clone(),
            document: e.document,
            entity_ref: e.entity_ref.clone(),
            field: e.field.clone(),
            rule: e.rule.clone(),
            kind: serde_json::to_value(e.kind).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default(),
            message: e.message.clone(),
        }
    }
}

#[derive(Serialize, ToSchema)]
struct ErrorsResponse {
    total: usize,
    errors: Vec<ErrorItem>,
}

/// Every current location and entity error.
#[utoipa::path(get, path = "/api/v1/catalog/errors", responses((status = 200, body = ErrorsResponse)))]
async fn catalog_errors(State(state): State<AppState>) -> Json<ErrorsResponse> {
    let snap = state.catalog.snapshot();
    let errors: Vec<ErrorItem> = snap.errors.iter().map(ErrorItem::from).collect();
    Json(ErrorsResponse { total: errors.len(), errors })
}

/// A location with its refresh status (times are Unix milliseconds).
#[derive(Serialize, ToSchema)]
struct LocationItem {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    target: String,
    /// `config` or `registered`.
    origin: String,
    #[serde(rename = "refreshedAt")]
    refreshed_at: Option<i64>,
    #[serde(rename = "lastSuccessAt")]
    last_success_at: Option<i64>,
    #[serde(rename = "lastError")]
    last_error: Option<String>,
}

impl From<StoredLocation> for LocationItem {
    fn from(l: StoredLocation) -> Self {
        Self {
            id: l.id,
            kind: l.spec.kind.as_str().into(),
            target: l.spec.target,
            origin: serde_json::to_value(l.origin).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default(),
            refreshed_at: l.refreshed_at,
            last_success_at: l.last_success_at,
            last_error: l.last_error,
        }
    }
}

/// Every catalog location and its last refresh.
#[utoipa::path(get, path = "/api/v1/catalog/locations", responses((status = 200, body = [LocationItem])))]
async fn catalog_locations(State(state): State<AppState>) -> Result<Json<Vec<LocationItem>>, AppError> {
    Ok(Json(state.catalog.locations().await?.into_iter().map(LocationItem::from).collect()))
}

/// Re-reads a location now; answers when it has been read.
#[utoipa::path(post, path = "/api/v1/catalog/locations/{id}/refresh",
    params(("id" = String, Path, description = "Location id")),
    responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn refresh_location(State(state): State<AppState>, actor: Actor, Path(id): Path<String>) -> Result<StatusCode, AppError> {
    authz::require(&state, &actor, Action::Refresh, &Target::Platform).await?;
    if !state.catalog.locations().await?.iter().any(|l| l.id == id) {
        return Err(AppError::NotFound(format!("location {id} does not exist")));
    }
    state.catalog.refresh(&id).await?;
    authz::record(&state, &actor, "catalog.location.refresh", format!("location:{id}"), Outcome::Success, serde_json::json!({})).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
struct ClaimsResponse {
    user: String,
    /// Whether the user is defined in the catalog (unknown users own nothing).
    known: bool,
    /// `transitive` (ancestor groups count) or `direct`.
    mode: String,
    claims: Vec<String>,
}

/// A user's ownership claims: the user, their direct groups and (in transitive mode) every
/// ancestor of those groups.
#[utoipa::path(get, path = "/api/v1/users/{user_ref}/claims",
    params(("user_ref" = String, Path, description = "user:namespace/name, or just the name")),
    responses((status = 200, body = ClaimsResponse), (status = 400, body = Problem, content_type = "application/problem+json")))]
async fn user_claims(State(state): State<AppState>, Path(user_ref): Path<String>) -> Result<Json<ClaimsResponse>, AppError> {
    let user = EntityRef::parse_with(&user_ref, Some("User"), "default").map_err(|e| AppError::invalid("user_ref", e.to_string()))?;
    if user.kind() != "user" {
        return Err(AppError::invalid("user_ref", format!("{user} is not a User reference")));
    }
    let mode = state.config.catalog.ownership;
    let snap = state.catalog.snapshot();
    let claims = snap.claims(&user, mode);
    Ok(Json(ClaimsResponse {
        known: snap.get(&user).is_some(),
        user: user.to_string(),
        mode: match mode {
            OwnershipMode::Transitive => "transitive",
            OwnershipMode::Direct => "direct",
        }
        .into(),
        claims: claims.iter().map(ToString::to_string).collect(),
    }))
}

/// The caller as Nova sees them.
#[derive(Serialize, ToSchema)]
struct MeResponse {
    user: String,
    #[serde(rename = "displayName")]
    display_name: String,
    /// How they signed in: `dev`, `oidc`, `proxy` or `token`.
    method: crate::auth::SignInMethod,
    /// Whether they are a platform admin (a member of `auth.admin_group`).
    admin: bool,
    /// Whether the catalog knows them (unknown users own nothing).
    known: bool,
    /// Their ownership claims: themselves, their groups and (in transitive mode) those groups'
    /// ancestors.
    claims: Vec<String>,
}

/// Who the caller is: the check `nova login` makes with a token, and what sign-in resolved to.
#[utoipa::path(get, path = "/api/v1/me",
    responses((status = 200, body = MeResponse), (status = 401, body = Problem, content_type = "application/problem+json")))]
async fn me(State(state): State<AppState>, actor: Actor) -> Result<Json<MeResponse>, AppError> {
    let user = actor.user().ok_or_else(|| AppError::Unauthorized("Sign in, or send an API token (Authorization: Bearer nova_...).".into()))?;
    Ok(Json(MeResponse {
        user: user.entity_ref.to_string(),
        display_name: user.display_name.clone(),
        method: user.method,
        admin: user.admin,
        known: state.catalog.snapshot().get(&user.entity_ref).is_some(),
        claims: user.claims.iter().map(ToString::to_string).collect(),
    }))
}
