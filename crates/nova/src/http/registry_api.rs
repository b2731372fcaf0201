//! The image view's API under `/api/v1`: a component's images, their findings, on-demand
//! refresh, and the registry drift report. Answers from the cache; a registry that is down,
//! slow or denying shows as stale data with its reason, never as a server error.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use nova_domain::{Digest, EntityRef};
use serde::Serialize;
use serde_json::json;
use utoipa::{OpenApi, ToSchema};

use super::error::Problem;
use super::params::Params;
use super::{AppError, AppState};
use crate::auth::Actor;
use crate::authz::{self, Action};
use crate::flags::REGISTRY_IMAGE_VIEW;
use crate::registry::drift::{DriftItem, DriftKind, DriftReport, RegistryListing};
use crate::registry::provider::{Finding, ImageLabels, Platform, ScanStatus, ScanSummary, SeverityCounts};
use crate::registry::provisioning::Provisioning;
use crate::registry::service::{DRIFT_REPORT, RefreshRequest};
use crate::registry::view::{self, ImageQuery, ImageRow, ImagesView, RepositoryStatus, RepositoryView};
use crate::registry::{ComponentLinks, RepoKey, store};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/components/{kind}/{namespace}/{name}/images", get(images))
        .route("/components/{kind}/{namespace}/{name}/images/refresh", post(refresh))
        .route("/components/{kind}/{namespace}/{name}/images/{digest}/findings", get(findings))
        .route("/registry/drift", get(drift))
}

/// The image view's part of the OpenAPI document (merged into `/api/v1/openapi.json`).
#[derive(OpenApi)]
#[openapi(
    paths(images, refresh, findings, drift),
    components(schemas(
        ImagesView, RepositoryView, RepositoryStatus, ImageRow, Platform, ImageLabels, ScanSummary, ScanStatus, SeverityCounts,
        Provisioning, FindingsResponse, Finding, RefreshResponse, DriftReport, DriftItem, DriftKind, RegistryListing
    ))
)]
pub struct RegistryApiDoc;

/// A component and its image links, after the feature switch and the annotations are checked.
pub struct Component {
    pub entity_ref: EntityRef,
    pub links: ComponentLinks,
}

/// Looks the component up and reads its image annotations; every refusal is a clear error
/// about this component only.
pub async fn component(state: &AppState, actor: &Actor, kind: &str, namespace: &str, name: &str) -> Result<Component, AppError> {
    if !state.flags.is_on(REGISTRY_IMAGE_VIEW, &actor.flag_subject()) {
        return Err(AppError::NotFound(format!("the image view is switched off (feature flag {REGISTRY_IMAGE_VIEW})")));
    }
    let entity_ref = EntityRef::parse(&format!("{kind}:{namespace}/{name}")).map_err(|e| AppError::invalid("entityRef", e.to_string()))?;
    if entity_ref.kind() != "component" {
        return Err(AppError::invalid("kind", format!("images belong to Component entities, not {}", entity_ref.kind())));
    }
    let snapshot = state.catalog.snapshot();
    let entity = snapshot.get(&entity_ref).ok_or_else(|| AppError::NotFound(format!("no component named {entity_ref} in the catalog")))?;
    match state.registry.component_links(entity) {
        Ok(Some(links)) => Ok(Component { entity_ref: entity.entity_ref.clone(), links }),
        Ok(None) => Err(AppError::NotFound(format!(
            "{entity_ref} links no image repository; set one of the annotations {} (docs/REGISTRY.md)",
            nova_domain::image_links::ANNOTATIONS[..4].join(", ")
        ))),
        Err(errors) => Err(AppError::invalid("metadata.annotations", format!("{entity_ref}: {}", errors.join("; ")))),
    }
}

/// A component's images: linked repositories with their state, and one page of images.
#[utoipa::path(get, path = "/api/v1/components/{kind}/{namespace}/{name}/images",
    params(
        ("kind" = String, Path, description = "component"),
        ("namespace" = String, Path),
        ("name" = String, Path),
        ("tag" = Option<String>, Query, description = "Case-insensitive text the tag (without the component's prefix) contains"),
        ("environment" = Option<String>, Query, description = "Only repositories with this environment label"),
        ("order" = Option<String>, Query, description = "newest (default) or oldest, by push time"),
        ("offset" = Option<usize>, Query),
        ("limit" = Option<usize>, Query, description = "1 to 500, default 50"),
    ),
    responses(
        (status = 200, body = ImagesView),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "Bad parameters, or the component's image annotations are invalid"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such component, it links no repository, or the view is switched off"),
    ))]
async fn images(State(state): State<AppState>, actor: Actor, Path((kind, namespace, name)): Path<(String, String, String)>, params: Params) -> Result<Json<ImagesView>, AppError> {
    let c = component(&state, &actor, &kind, &namespace, &name).await?;
    let query = ImageQuery::parse(|k| params.get(k).map(str::to_string)).map_err(|(f, m)| AppError::invalid(f, m))?;
    Ok(Json(view::build(&state.registry, &c.entity_ref, &c.links, &query).await?))
}

#[derive(Serialize, ToSchema)]
struct RefreshResponse {
    /// Refresh jobs made due now.
    jobs: Vec<String>,
}

/// Refreshes a component's repositories from their registries now (in the background), at most
/// once per `registry.min_refresh_interval` per repository.
#[utoipa::path(post, path = "/api/v1/components/{kind}/{namespace}/{name}/images/refresh",
    params(("kind" = String, Path), ("namespace" = String, Path), ("name" = String, Path)),
    responses(
        (status = 202, body = RefreshResponse),
        (status = 429, body = Problem, content_type = "application/problem+json", description = "Refreshed too recently; see Retry-After"),
    ))]
async fn refresh(State(state): State<AppState>, actor: Actor, Path((kind, namespace, name)): Path<(String, String, String)>) -> Result<Response, AppError> {
    authorize_refresh(&state, &actor, &kind, &namespace, &name).await?;
    let c = component(&state, &actor, &kind, &namespace, &name).await?;
    let jobs = request_refresh(&state, &c).await?;
    Ok((StatusCode::ACCEPTED, Json(RefreshResponse { jobs })).into_response())
}

/// Refuses (and audits) a refresh by someone who may not ask for one (anonymous callers),
/// before anything about the component or the registry configuration is looked up.
pub async fn authorize_refresh(state: &AppState, actor: &Actor, kind: &str, namespace: &str, name: &str) -> Result<(), AppError> {
    let target = match EntityRef::parse(&format!("{kind}:{namespace}/{name}")) {
        Ok(entity) => authz::entity_target(state, &entity),
        Err(_) => authz::Target::Platform,
    };
    authz::require(state, actor, Action::Refresh, &target).await
}

/// Asks for a refresh of every repository of `c`; too soon is a 429 with the wait.
/// Callers check [`authorize_refresh`] first.
pub async fn request_refresh(state: &AppState, c: &Component) -> Result<Vec<String>, AppError> {
    let keys: Vec<RepoKey> = c.links.repositories.iter().map(|r| r.key.clone()).collect();
    match state.registry.request_refresh(&keys).await? {
        RefreshRequest::Queued(jobs) => Ok(jobs),
        RefreshRequest::TooSoon(ms) => Err(AppError::TooManyRequests {
            message: format!("{} was refreshed moments ago; try again in {} s", c.entity_ref, (ms + 999) / 1000),
            retry_after_secs: ((ms + 999) / 1000).max(1) as u64,
        }),
    }
}

/// An image's scan findings.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FindingsResponse {
    pub repository: String,
    pub digest: String,
    /// `fresh`, `stale` (the last known report; see `reason`) or `unavailable` (no report could
    /// be read; see `reason`).
    pub state: String,
    pub fetched_at: Option<i64>,
    pub reason: Option<String>,
    pub message: Option<String>,
    /// `null` when no report could be read.
    pub scan: Option<ScanSummary>,
    /// Most severe first.
    pub findings: Vec<Finding>,
}

/// An image's scan findings: id, severity, package, installed and fixed version, description,
/// link.
#[utoipa::path(get, path = "/api/v1/components/{kind}/{namespace}/{name}/images/{digest}/findings",
    params(("kind" = String, Path), ("namespace" = String, Path), ("name" = String, Path), ("digest" = String, Path, description = "sha256:...")),
    responses(
        (status = 200, body = FindingsResponse),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "The image is not one of this component's"),
    ))]
async fn findings(
    State(state): State<AppState>,
    actor: Actor,
    Path((kind, namespace, name, digest)): Path<(String, String, String, String)>,
) -> Result<Json<FindingsResponse>, AppError> {
    let c = component(&state, &actor, &kind, &namespace, &name).await?;
    let digest = Digest::parse(&digest).map_err(|e| AppError::invalid("digest", e.to_string()))?;
    Ok(Json(image_findings(&state, &c, &digest).await?))
}

/// The findings of one of a component's known images (the API and the Images tab).
pub async fn image_findings(state: &AppState, c: &Component, digest: &Digest) -> Result<FindingsResponse, AppError> {
    let mut found = None;
    for linked in &c.links.repositories {
        let Some(cached) = state.registry.cached(&linked.key).await? else { continue };
        let visible = cached.images.iter().any(|i| {
            i.digest == digest.as_str() && c.links.tag_prefix.as_ref().is_none_or(|p| i.tags.iter().any(|t| p.strip(t).is_some()))
        });
        if visible {
            found = Some(linked.key.clone());
            break;
        }
    }
    let key = found.ok_or_else(|| AppError::NotFound(format!("image {digest} is not among the known images of {}", c.entity_ref)))?;
    let result = state.registry.findings(&key, digest).await?;
    if let Some(crate::registry::RegistryError::NotFound(m)) = &result.stale
        && result.report.is_none() {
            return Err(AppError::NotFound(m.clone()));
        }
    let state_name = match (&result.report, &result.stale) {
        (_, None) => "fresh",
        (Some(_), Some(_)) => "stale",
        (None, Some(_)) => "unavailable",
    };
    Ok(FindingsResponse {
        repository: key.to_string(),
        digest: digest.to_string(),
        state: state_name.into(),
        fetched_at: result.fetched_at,
        reason: result.stale.as_ref().map(|e| e.category().to_string()),
        message: result.stale.as_ref().map(ToString::to_string),
        scan: result.report.as_ref().map(|r| r.summary.clone()),
        findings: result.report.map(|r| r.findings).unwrap_or_default(),
    })
}

/// The drift report between registry tags and catalog annotations (the last one computed in
/// the background; computed now when there is none, or when `fresh=true`).
#[utoipa::path(get, path = "/api/v1/registry/drift",
    params(("fresh" = Option<bool>, Query, description = "Compute the report now from the cached images instead of returning the last one")),
    responses((status = 200, body = DriftReport)))]
async fn drift(State(state): State<AppState>, params: Params) -> Result<Response, AppError> {
    let fresh = match params.get("fresh") {
        None | Some("false") => false,
        Some("true") => true,
        Some(v) => return Err(AppError::invalid("fresh", format!("must be true or false, got {v:?}"))),
    };
    if !fresh && let Some((report, _)) = store::report(&state.db, DRIFT_REPORT).await? {
        return Ok(Json(report).into_response());
    }
    let report = crate::registry::drift::report(&state.registry, &state.registry.link_index(), false).await?;
    let value = serde_json::to_value(&report).unwrap_or_else(|_| json!({}));
    store::save_report(&state.db, DRIFT_REPORT, &value).await?;
    report.record_metrics();
    Ok(Json(value).into_response())
}
