//! Team credentials: `GET /api/v1/teams/{team}/credentials` (metadata only), `GET`, `PUT`
//! (register, or rotate when it exists) and `DELETE` (revoke)
//! `/api/v1/teams/{team}/credentials/{name}`.
//!
//! Reading metadata needs [`Action::ReadSensitive`] on the team, changing needs
//! [`Action::ManageCredentials`]: members of the team (or of its sub-teams) and platform
//! admins. Every change is audited with the metadata, never the value; no response, error or
//! log line carries the value (docs/CREDENTIALS.md).

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::json;

use super::{AppError, AppState};
use crate::audit::Outcome;
use crate::auth::Actor;
use crate::authz::{self, Action, Target};
use crate::secrets::SecretError;
use crate::secrets::credential_uses::CredentialUses;
use crate::secrets::credentials::{self, CredentialError, CredentialInfo, CredentialRequest};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/teams/{team}/credentials", get(list))
        .route("/teams/{team}/credentials/{name}", get(one).put(put).delete(revoke))
}

impl From<CredentialError> for AppError {
    fn from(e: CredentialError) -> Self {
        match e {
            CredentialError::Invalid { field, rule } => AppError::invalid(field, rule),
            CredentialError::Covered { .. } => AppError::Conflict(e.to_string()),
            CredentialError::Store(s) => s.into(),
        }
    }
}

impl From<SecretError> for AppError {
    fn from(e: SecretError) -> Self {
        match e {
            SecretError::NotFound(_) => AppError::NotFound("no such credential".into()),
            SecretError::Conflict(_) => AppError::Conflict(e.to_string()),
            SecretError::Invalid(_) => AppError::invalid("credential", e.to_string()),
            SecretError::Denied(_) | SecretError::Unavailable(_) => AppError::Unavailable(e.to_string()),
        }
    }
}

/// Parses a credential request. serde's messages can quote the offending value, which may be
/// the secret, so the error says only where and what kind of problem.
pub(crate) fn parse_request(body: &[u8]) -> Result<CredentialRequest, AppError> {
    serde_json::from_slice(body).map_err(|e| {
        AppError::invalid(
            "body",
            format!(
                "must be {{\"kind\": \"ssh-key\"|\"https-token\"|\"registry\", \"repositories\": [...], \"username\": ..., \"description\": ..., \"secret\": \"...\", \"passphrase\": ... (an SSH key's, if it has one)}} ({:?} error at line {}, column {})",
                e.classify(),
                e.line(),
                e.column()
            ),
        )
    })
}

/// Registers or rotates a credential for `team` as `actor`, audited. Shared with the console.
pub(crate) async fn save(state: &AppState, actor: &Actor, team: &str, name: &str, req: &CredentialRequest) -> Result<CredentialInfo, AppError> {
    authz::require(state, actor, Action::ManageCredentials, &Target::Team(credentials::team_ref(team))).await?;
    let target = format!("credential:{team}/{name}");
    let checker = credentials::checker(&state.config.builds);
    match credentials::put(state.secrets.as_ref(), checker.as_ref(), team, name, req, &actor.audit_name(), crate::storage::now_ms()).await {
        Ok(saved) => {
            authz::record(state, actor, saved.action(), target, Outcome::Success, saved.audit_details()).await?;
            Ok(saved.info)
        }
        Err(e) => {
            let e = AppError::from(e);
            authz::record(state, actor, "credentials.put", target, Outcome::Failure, json!({ "error": e.to_string() })).await?;
            Err(e)
        }
    }
}

/// Revokes a credential of `team` as `actor`, audited. Shared with the console.
pub(crate) async fn remove(state: &AppState, actor: &Actor, team: &str, name: &str) -> Result<CredentialInfo, AppError> {
    authz::require(state, actor, Action::ManageCredentials, &Target::Team(credentials::team_ref(team))).await?;
    let info = credentials::revoke(state.secrets.as_ref(), team, name).await?;
    authz::record(state, actor, "credentials.revoke", format!("credential:{team}/{name}"), Outcome::Success, json!({ "kind": info.kind, "repositories": info.repositories })).await?;
    Ok(info)
}

/// The team's credentials, metadata only.
#[utoipa::path(get, path = "/api/v1/teams/{team}/credentials", params(("team" = String, Path)), responses((status = 200, body = [CredentialInfo]), (status = 403, body = super::error::Problem)))]
async fn list(State(state): State<AppState>, actor: Actor, Path(team): Path<String>) -> Result<Json<Vec<CredentialInfo>>, AppError> {
    authz::require(&state, &actor, Action::ReadSensitive, &Target::Team(credentials::team_ref(&team))).await?;
    Ok(Json(listed(&state, &team).await?))
}

/// The team's credentials with when builds last used them. Shared with the console.
pub(crate) async fn listed(state: &AppState, team: &str) -> Result<Vec<CredentialInfo>, AppError> {
    let mut infos = credentials::list(state.secrets.as_ref(), team).await?;
    let uses = CredentialUses::new(state.db.clone()).for_team(team).await?;
    for info in &mut infos {
        info.last_use = uses.get(&info.name).cloned();
    }
    Ok(infos)
}

/// One credential's metadata.
#[utoipa::path(get, path = "/api/v1/teams/{team}/credentials/{name}", params(("team" = String, Path), ("name" = String, Path)), responses((status = 200, body = CredentialInfo), (status = 403, body = super::error::Problem), (status = 404, body = super::error::Problem)))]
async fn one(State(state): State<AppState>, actor: Actor, Path((team, name)): Path<(String, String)>) -> Result<Json<CredentialInfo>, AppError> {
    authz::require(&state, &actor, Action::ReadSensitive, &Target::Team(credentials::team_ref(&team))).await?;
    let mut info = credentials::info(state.secrets.as_ref(), &team, &name).await?;
    info.last_use = CredentialUses::new(state.db.clone()).for_team(&team).await?.remove(&name);
    Ok(Json(info))
}

/// Registers a credential (201), or rotates it when the team already has one with this name
/// (200). The response is the metadata; the value is never returned.
#[utoipa::path(put, path = "/api/v1/teams/{team}/credentials/{name}", params(("team" = String, Path), ("name" = String, Path)), request_body = CredentialRequest,
    responses((status = 200, body = CredentialInfo), (status = 201, body = CredentialInfo), (status = 400, body = super::error::Problem), (status = 403, body = super::error::Problem), (status = 409, body = super::error::Problem)))]
async fn put(State(state): State<AppState>, actor: Actor, Path((team, name)): Path<(String, String)>, body: axum::body::Bytes) -> Result<(StatusCode, Json<CredentialInfo>), AppError> {
    // Authorise before reading the body, so a refused caller learns nothing about its shape.
    authz::require(&state, &actor, Action::ManageCredentials, &Target::Team(credentials::team_ref(&team))).await?;
    let req = parse_request(&body)?;
    let info = save(&state, &actor, &team, &name, &req).await?;
    let status = if info.rotated_at_ms.is_some() { StatusCode::OK } else { StatusCode::CREATED };
    Ok((status, Json(info)))
}

/// Revokes a credential: deletes it from the secret store with every version.
#[utoipa::path(delete, path = "/api/v1/teams/{team}/credentials/{name}", params(("team" = String, Path), ("name" = String, Path)), responses((status = 204), (status = 403, body = super::error::Problem), (status = 404, body = super::error::Problem)))]
async fn revoke(State(state): State<AppState>, actor: Actor, Path((team, name)): Path<(String, String)>) -> Result<StatusCode, AppError> {
    remove(&state, &actor, &team, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
