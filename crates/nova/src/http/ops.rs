//! Operations endpoints: `/health` (the process answers), `/ready` (it can serve: database
//! reachable and every configured location read once) and `/metrics` (Prometheus).
//!
//! For platform admins, `/ready` adds `integrations`: `nova doctor`'s checks made with this
//! process's registries, build backends, secret store and OIDC issuer, cached for
//! `server.ready_detail_ttl`. They inform; they do not change readiness, so an
//! orchestrator does not take every replica out because Jenkins is down.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;

use super::{AppError, AppState};
use crate::auth::Actor;
use crate::authz::{self, Action, Decision, Target};

/// Longest one integration check of the admin detail may take.
const DETAIL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

pub fn routes() -> Router<AppState> {
    Router::new().route("/health", get(health)).route("/ready", get(ready)).route("/metrics", get(metrics_text))
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn ready(State(state): State<AppState>, actor: Result<Actor, AppError>) -> impl IntoResponse {
    let database = match tokio::time::timeout(std::time::Duration::from_secs(2), state.db.ping()).await {
        Ok(Ok(())) => json!({"status": "ok", "backend": state.db.backend().as_str()}),
        Ok(Err(e)) => json!({"status": "fail", "reason": e.to_string()}),
        Err(_) => json!({"status": "fail", "reason": "no answer within 2s"}),
    };
    let catalog = if state.catalog.first_load_done() {
        json!({"status": "ok", "entities": state.catalog.snapshot().entities.len()})
    } else {
        json!({"status": "fail", "reason": "the first load of the catalog locations is still running"})
    };
    let ok = database["status"] == "ok" && catalog["status"] == "ok";
    let status = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let mut body = json!({"status": if ok { "ready" } else { "not-ready" }, "checks": {"database": database, "catalog": catalog}});
    let admin = actor.is_ok_and(|a| authz::decide(&a, Action::Admin, &Target::Platform, false) == Decision::Allow);
    if admin {
        body["integrations"] = json!(*state.ready_detail.get(&state, DETAIL_TIMEOUT).await);
    }
    (status, Json(body))
}

async fn metrics_text(State(state): State<AppState>) -> impl IntoResponse {
    if let Ok(counts) = state.jobs.counts().await {
        for (kind, job_state, n) in counts {
            metrics::gauge!("nova_jobs", "kind" => kind, "state" => job_state).set(n as f64);
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}
