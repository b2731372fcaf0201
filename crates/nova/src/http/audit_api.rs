//! The audit log over HTTP: `GET /api/v1/audit` (filters and cursor paging; platform admins see
//! everything, others the events on what they own: their own actions, their teams, their
//! teams' entities) and `GET /api/v1/audit/verify` (admins).

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use nova_domain::RelationType;
use serde_json::json;

use super::params::Params;
use super::{AppError, AppState};
use crate::audit::{AuditQuery, StoredEvent};
use crate::auth::Actor;
use crate::authz::{self, Action, Target};

pub fn routes() -> Router<AppState> {
    Router::new().route("/audit", get(query)).route("/audit/verify", get(verify))
}

fn time_param(params: &Params, name: &str) -> Result<Option<i64>, AppError> {
    params
        .get(name)
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.parse::<i64>().or_else(|_| {
                time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
                    .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
                    .map_err(|_| AppError::invalid(name, "must be Unix milliseconds or an RFC 3339 time"))
            })
        })
        .transpose()
}

/// The targets a non-admin may see events for: themselves, their teams, and what those own.
pub fn visible_targets(state: &AppState, actor: &Actor) -> Vec<String> {
    let Some(user) = actor.user() else { return Vec::new() };
    let snap = state.catalog.snapshot();
    let mut out: Vec<String> = user.claims.iter().map(ToString::to_string).collect();
    for claim in &user.claims {
        if let Some(r) = snap.get(claim) {
            out.extend(r.related(RelationType::OwnerOf).map(ToString::to_string));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Audit events, newest first. `next` is the cursor of the next page.
#[utoipa::path(get, path = "/api/v1/audit",
    params(("actor" = Option<String>, Query), ("action" = Option<String>, Query, description = "exact, or a prefix ending in `.`"),
           ("target" = Option<String>, Query), ("since" = Option<String>, Query), ("until" = Option<String>, Query),
           ("cursor" = Option<i64>, Query), ("limit" = Option<usize>, Query)),
    responses((status = 200, description = "`{events, next}`"), (status = 401, body = super::error::Problem)))]
async fn query(State(state): State<AppState>, actor: Actor, params: Params) -> Result<Json<serde_json::Value>, AppError> {
    let page = scoped_query(&state, &actor, &params).await?;
    Ok(Json(json!({ "events": page.events, "next": page.next, "scope": if page.admin { "all" } else { "owned" } })))
}

/// One page of the audit log as a caller may see it.
pub struct ScopedPage {
    pub events: Vec<StoredEvent>,
    /// The cursor of the next page.
    pub next: Option<i64>,
    /// Whether the caller sees everything (a platform admin) or only what they own.
    pub admin: bool,
}

/// The events `actor` may see, filtered by `params` (`actor`, `action`, `target`, `since`,
/// `until`, `cursor`, `limit`); the API and the console's audit page both come here.
pub async fn scoped_query(state: &AppState, actor: &Actor, params: &Params) -> Result<ScopedPage, AppError> {
    if actor.user().is_none() {
        authz::require(state, actor, Action::ReadSensitive, &Target::Platform).await?;
    }
    let admin = actor.user().is_some_and(|u| u.admin);
    let cursor = params.get("cursor").map(|c| c.parse::<i64>().map_err(|_| AppError::invalid("cursor", "must be an event sequence number"))).transpose()?;
    let text = |name: &str| params.get(name).map(str::trim).filter(|v| !v.is_empty()).map(str::to_string);
    let q = AuditQuery {
        actor: text("actor"),
        action: text("action"),
        target: text("target"),
        targets_in: (!admin).then(|| visible_targets(state, actor)),
        since: time_param(params, "since")?,
        until: time_param(params, "until")?,
        before_seq: cursor,
        limit: params.usize("limit")?.unwrap_or(100).min(1000),
    };
    let (events, next) = state.audit.query(&q).await?;
    Ok(ScopedPage { events, next, admin })
}

/// Verifies the hash chain (platform admins).
#[utoipa::path(get, path = "/api/v1/audit/verify", responses((status = 200, description = "`{checked, broken}`"), (status = 403, body = super::error::Problem)))]
async fn verify(State(state): State<AppState>, actor: Actor) -> Result<Json<crate::audit::Verification>, AppError> {
    authz::require(&state, &actor, Action::ReadAudit, &Target::Platform).await?;
    Ok(Json(state.audit.verify().await?))
}
