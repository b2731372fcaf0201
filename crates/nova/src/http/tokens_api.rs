//! Personal API tokens: `GET/POST /api/v1/tokens`, `DELETE /api/v1/tokens/{id}`. A token is
//! shown once, when it is made; afterwards only its prefix and metadata are.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::{AppError, AppState};
use crate::audit::Outcome;
use crate::auth::Actor;
use crate::auth::tokens::TokenInfo;
use crate::authz;
use nova_domain::Sensitive;

pub fn routes() -> Router<AppState> {
    Router::new().route("/tokens", get(list).post(create)).route("/tokens/{id}", delete(revoke))
}

/// A new token's name and lifetime.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NewToken {
    /// What the token is for (1 to 100 characters), e.g. `ci-pipeline`.
    pub name: String,
    /// Days until it expires (1 to 3650); omit for no expiry (unless `auth.max_token_ttl` is set).
    pub expires_in_days: Option<u32>,
}

/// Checks a new token's name and lifetime against the rules and `auth.max_token_ttl`; returns
/// the lifetime in milliseconds (none: no expiry).
pub fn validate_new_token(state: &AppState, req: &NewToken) -> Result<Option<i64>, AppError> {
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(AppError::invalid("name", "must be 1 to 100 characters, without control characters"));
    }
    if req.expires_in_days.is_some_and(|d| !(1..=3650).contains(&d)) {
        return Err(AppError::invalid("expiresInDays", "must be between 1 and 3650"));
    }
    let ttl_ms = req.expires_in_days.map(|d| i64::from(d) * 86_400_000);
    if let Some(max) = state.config.auth.max_token_ttl {
        let max_ms = max.as_millis() as i64;
        if ttl_ms.is_none_or(|t| t > max_ms) {
            return Err(AppError::invalid("expiresInDays", format!("tokens may last at most {} days here (auth.max_token_ttl)", max_ms / 86_400_000)));
        }
    }
    Ok(ttl_ms)
}

/// The signed-in caller; tokens are personal, so anonymous callers have none.
pub fn signed_in(actor: &Actor) -> Result<&crate::auth::User, AppError> {
    actor.user().ok_or_else(|| AppError::Unauthorized("Sign in to manage API tokens.".into()))
}

/// The caller's tokens, newest first (metadata only).
#[utoipa::path(get, path = "/api/v1/tokens", responses((status = 200, body = [TokenInfo]), (status = 401, body = super::error::Problem)))]
async fn list(State(state): State<AppState>, actor: Actor) -> Result<Json<Vec<TokenInfo>>, AppError> {
    let user = signed_in(&actor)?;
    Ok(Json(state.auth.tokens.list(&user.entity_ref).await?))
}

/// Makes a token for the caller. The answer holds the token itself, shown this once.
#[utoipa::path(post, path = "/api/v1/tokens", request_body = NewToken,
    responses((status = 201, description = "`{token, info}`; the token is shown only here"), (status = 400, body = super::error::Problem), (status = 401, body = super::error::Problem)))]
async fn create(State(state): State<AppState>, actor: Actor, body: axum::body::Bytes) -> Result<(StatusCode, Json<serde_json::Value>), AppError> {
    signed_in(&actor)?;
    let req: NewToken = serde_json::from_slice(&body).map_err(|e| AppError::invalid("body", format!("must be {{\"name\": ..., \"expiresInDays\": ...}}: {e}")))?;
    let (token, info) = create_token(&state, &actor, &req).await?;
    Ok((StatusCode::CREATED, Json(json!({ "token": token.expose(), "info": info }))))
}

/// Makes a token for the signed-in caller after checking the request, and audits it (the API
/// and the console's tokens page both come here). The token is returned to be shown once.
pub async fn create_token(state: &AppState, actor: &Actor, req: &NewToken) -> Result<(Sensitive<String>, TokenInfo), AppError> {
    let user = signed_in(actor)?;
    let lifetime_ms = validate_new_token(state, req)?;
    let known = state.catalog.snapshot().get(&user.entity_ref).is_some();
    // The token and its audit event in one transaction: never a token the log does not show.
    let mut tx = state.db.begin().await?;
    let (token, info) = state.auth.tokens.create_on(&mut tx, &user.entity_ref, req.name.trim(), lifetime_ms, known).await?;
    let event = authz::event(actor, "auth.token.create", format!("token:{}", info.id), Outcome::Success, json!({ "name": info.name, "prefix": info.prefix, "expiresAt": info.expires_at }));
    state.audit.record_in(&mut tx, event).await?;
    tx.commit().await.map_err(crate::storage::StorageError::from)?;
    Ok((token, info))
}

/// Revokes one of the caller's tokens.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", params(("id" = String, Path, description = "Token id")),
    responses((status = 204), (status = 404, body = super::error::Problem), (status = 401, body = super::error::Problem)))]
async fn revoke(State(state): State<AppState>, actor: Actor, Path(id): Path<String>) -> Result<StatusCode, AppError> {
    revoke_token(&state, &actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes one of the signed-in caller's tokens and audits it; 404 when they have no such
/// active token.
pub async fn revoke_token(state: &AppState, actor: &Actor, id: &str) -> Result<(), AppError> {
    let user = signed_in(actor)?;
    if !state.auth.tokens.revoke(&user.entity_ref, id).await? {
        return Err(AppError::NotFound(format!("you have no active token {id}")));
    }
    authz::record(state, actor, "auth.token.revoke", format!("token:{id}"), Outcome::Success, json!({})).await?;
    Ok(())
}
