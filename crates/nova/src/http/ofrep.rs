//! The OpenFeature Remote Evaluation Protocol (OFREP) over Nova's flags, so any OpenFeature
//! SDK can read them: `POST /ofrep/v1/evaluate/flags/{key}`, `POST /ofrep/v1/evaluate/flags`
//! (bulk, with an ETag) and `GET /ofrep/v1/configuration`. Callers authenticate with an API
//! token (`Authorization: Bearer nova_...`). The evaluation context's `targetingKey` names the
//! user (`user:default/jdoe` or `jdoe`); their groups come from the catalog, not from the
//! caller, so a caller cannot put a user into a group.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use nova_domain::EntityRef;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::AppState;
use crate::auth::Actor;
use crate::flags::{Flag, Subject, evaluate};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/evaluate/flags/{key}", post(single))
        .route("/v1/evaluate/flags", post(bulk))
        .route("/v1/configuration", get(configuration))
}

fn failure(status: StatusCode, key: Option<&str>, code: &str, details: &str) -> Response {
    let mut body = json!({ "errorCode": code, "errorDetails": details });
    if let Some(k) = key {
        body["key"] = json!(k);
    }
    (status, Json(body)).into_response()
}

fn unauthorized() -> Response {
    (StatusCode::UNAUTHORIZED, Json(json!({ "errorDetails": "send an API token: Authorization: Bearer nova_..." }))).into_response()
}

/// The targeting key from a request body, if any; an error message when the body is unusable.
fn targeting_key(body: &[u8]) -> Result<Option<EntityRef>, String> {
    if body.is_empty() {
        return Ok(None);
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let Some(context) = v.get("context") else { return Ok(None) };
    if !context.is_object() {
        return Err("context must be an object".into());
    }
    match context.get("targetingKey") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(k)) => EntityRef::parse_with(k, Some("User"), "default").map(Some).map_err(|e| format!("targetingKey: {e}")),
        Some(_) => Err("targetingKey must be a string".into()),
    }
}

fn evaluation(state: &AppState, flag: &Flag, user: Option<&EntityRef>) -> Value {
    let claims = user.map(|u| state.catalog.snapshot().claims(u, state.config.catalog.ownership)).unwrap_or_default();
    let (value, reason) = evaluate(&flag.key, &flag.rollout, &Subject { user, claims: &claims });
    json!({
        "key": flag.key,
        "value": value,
        "reason": reason,
        "variant": if value { "on" } else { "off" },
        "metadata": { "stage": flag.stage, "version": flag.version },
    })
}

async fn single(State(state): State<AppState>, actor: Actor, Path(key): Path<String>, body: axum::body::Bytes) -> Response {
    if actor.user().is_none() {
        return unauthorized();
    }
    let user = match targeting_key(&body) {
        Ok(u) => u,
        Err(e) => return failure(StatusCode::BAD_REQUEST, Some(&key), "INVALID_CONTEXT", &e),
    };
    match state.flags.get(&key) {
        None => failure(StatusCode::NOT_FOUND, Some(&key), "FLAG_NOT_FOUND", &format!("no flag {key:?}")),
        Some(flag) => Json(evaluation(&state, &flag, user.as_ref())).into_response(),
    }
}

async fn bulk(State(state): State<AppState>, actor: Actor, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    if actor.user().is_none() {
        return unauthorized();
    }
    let user = match targeting_key(&body) {
        Ok(u) => u,
        Err(e) => return failure(StatusCode::BAD_REQUEST, None, "INVALID_CONTEXT", &e),
    };
    let flags = state.flags.list();
    // The ETag covers every flag's version and the context, so it changes exactly when an
    // answer could.
    let mut h = Sha256::new();
    for f in &flags {
        h.update(format!("{}:{};", f.key, f.version));
    }
    h.update(user.as_ref().map(EntityRef::key).unwrap_or_default());
    let etag = format!("\"{}\"", hex::encode(&h.finalize()[..12]));
    if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|v| v.split(',').any(|t| t.trim() == etag)) {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    let body = json!({ "flags": flags.iter().map(|f| evaluation(&state, f, user.as_ref())).collect::<Vec<_>>() });
    let mut response = Json(body).into_response();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        response.headers_mut().insert(header::ETAG, v);
    }
    response
}

async fn configuration() -> Json<Value> {
    Json(json!({
        "name": "nova",
        "capabilities": {
            "cacheInvalidation": { "polling": { "enabled": true, "minPollingIntervalMs": 1000 } },
            "flagEvaluation": { "supportedTypes": ["boolean"] },
        }
    }))
}
