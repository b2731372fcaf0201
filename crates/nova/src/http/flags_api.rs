//! Feature flags: `GET /api/v1/flags`, `POST /api/v1/flags` (create), `PUT
//! /api/v1/flags/{key}` (change the rollout), `GET /api/v1/flags/{key}/evaluation` (for the
//! caller). Changing flags is for platform admins and is audited with the rollout before and
//! after.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::{AppError, AppState};
use crate::audit::Outcome;
use crate::auth::Actor;
use crate::authz::{self, Action, Target};
use crate::flags::{Flag, FlagError, Rollout};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/flags", get(list).post(create))
        .route("/flags/{key}", get(one).put(change))
        .route("/flags/{key}/evaluation", get(evaluation))
}

impl From<FlagError> for AppError {
    fn from(e: FlagError) -> Self {
        match e {
            FlagError::Invalid { field, message } => AppError::invalid(field, message),
            FlagError::NotFound(_) => AppError::NotFound(e.to_string()),
            FlagError::Exists(_) => AppError::Conflict(e.to_string()),
            FlagError::Storage(s) => s.into(),
        }
    }
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8], shape: &str) -> Result<T, AppError> {
    serde_json::from_slice(body).map_err(|e| {
        let text = e.to_string();
        let field = text.split('`').nth(1).unwrap_or("body").to_string();
        AppError::invalid(field, format!("must be {shape}: {text}"))
    })
}

/// Every flag and its rollout.
#[utoipa::path(get, path = "/api/v1/flags", responses((status = 200, body = [Flag])))]
async fn list(State(state): State<AppState>, actor: Actor) -> Result<Json<Vec<Flag>>, AppError> {
    authz::require(&state, &actor, Action::Read, &Target::Platform).await?;
    Ok(Json(state.flags.list()))
}

/// One flag.
#[utoipa::path(get, path = "/api/v1/flags/{key}", params(("key" = String, Path)), responses((status = 200, body = Flag), (status = 404, body = super::error::Problem)))]
async fn one(State(state): State<AppState>, actor: Actor, Path(key): Path<String>) -> Result<Json<Flag>, AppError> {
    authz::require(&state, &actor, Action::Read, &Target::Platform).await?;
    state.flags.get(&key).map(Json).ok_or_else(|| AppError::NotFound(format!("unknown flag {key:?}")))
}

/// A new flag, for another service to read through OFREP.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewFlag {
    pub key: String,
    #[serde(default)]
    pub description: String,
    pub rollout: Option<Rollout>,
}

/// Creates a flag (off unless a rollout is given).
#[utoipa::path(post, path = "/api/v1/flags", request_body = NewFlag, responses((status = 201, body = Flag), (status = 400, body = super::error::Problem), (status = 403, body = super::error::Problem), (status = 409, body = super::error::Problem)))]
async fn create(State(state): State<AppState>, actor: Actor, body: axum::body::Bytes) -> Result<(StatusCode, Json<Flag>), AppError> {
    authz::require(&state, &actor, Action::ManageFlags, &Target::Platform).await?;
    let req: NewFlag = parse(&body, "{\"key\": ..., \"description\": ..., \"rollout\": {...}}")?;
    let rollout = req.rollout.unwrap_or_else(Rollout::off);
    let flag = state.flags.create(&req.key, &req.description, rollout, &actor.audit_name()).await?;
    authz::record(&state, &actor, "flags.create", format!("flag:{}", flag.key), Outcome::Success, json!({ "rollout": flag.rollout })).await?;
    Ok((StatusCode::CREATED, Json(flag)))
}

/// Replaces a flag's rollout; effective at once on this replica and within about a second
/// on the others.
#[utoipa::path(put, path = "/api/v1/flags/{key}", params(("key" = String, Path)), request_body = Rollout,
    responses((status = 200, body = Flag), (status = 400, body = super::error::Problem), (status = 403, body = super::error::Problem), (status = 404, body = super::error::Problem)))]
async fn change(State(state): State<AppState>, actor: Actor, Path(key): Path<String>, body: axum::body::Bytes) -> Result<Json<Flag>, AppError> {
    authz::require(&state, &actor, Action::ManageFlags, &Target::Platform).await?;
    let rollout: Rollout = parse(&body, "a rollout {\"enabled\", \"everyone\", \"groups\", \"users\", \"percentage\"}")?;
    Ok(Json(set_rollout(&state, &actor, &key, rollout).await?))
}

/// Replaces a flag's rollout as `actor` (platform admins only) and audits the change with the
/// rollout before and after; the API and the console's flags page both come here.
pub async fn set_rollout(state: &AppState, actor: &Actor, key: &str, rollout: Rollout) -> Result<Flag, AppError> {
    authz::require(state, actor, Action::ManageFlags, &Target::Platform).await?;
    let (before, after) = state.flags.set(key, rollout, &actor.audit_name()).await?;
    authz::record(state, actor, "flags.set", format!("flag:{key}"), Outcome::Success, json!({ "before": before.rollout, "after": after.rollout })).await?;
    Ok(after)
}

/// How a flag evaluates for the caller.
#[utoipa::path(get, path = "/api/v1/flags/{key}/evaluation", params(("key" = String, Path)), responses((status = 200, description = "`{key, value, reason}`"), (status = 404, body = super::error::Problem)))]
async fn evaluation(State(state): State<AppState>, actor: Actor, Path(key): Path<String>) -> Result<Json<serde_json::Value>, AppError> {
    let subject = actor.flag_subject();
    let (value, reason) = state.flags.evaluate(&key, &subject).ok_or_else(|| AppError::NotFound(format!("unknown flag {key:?}")))?;
    Ok(Json(json!({ "key": key, "value": value, "reason": reason })))
}
