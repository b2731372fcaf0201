//! Operations endpoints: `/health` (the process answers), `/ready` (it can serve: database
//! reachable and every configured location read once) and `/metrics` (Prometheus).

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;

use super::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/health", get(health)).route("/ready", get(ready)).route("/metrics", get(metrics_text))
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn ready(State(state): State<AppState>) -> impl IntoResponse {
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
    (status, Json(json!({"status": if ok { "ready" } else { "not-ready" }, "checks": {"database": database, "catalog": catalog}})))
}

async fn metrics_text(State(state): State<AppState>) -> impl IntoResponse {
    if let Ok(counts) = state.jobs.counts().await {
        for (kind, job_state, n) in counts {
            metrics::gauge!("nova_jobs", "kind" => kind, "state" => job_state).set(n as f64);
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}
