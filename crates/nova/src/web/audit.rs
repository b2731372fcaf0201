//! The audit log, `/audit`: events newest first, filtered by actor, action, target and time
//! (the same filters and scope as `GET /api/v1/audit`: platform admins see everything, others
//! the events on what they own), paged by cursor. Admins also see whether the hash chain
//! verifies.

use askama::Template;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use super::view::{Chrome, time_text};
use super::{PageError, render};
use crate::audit::{StoredEvent, Verification};
use crate::auth::Actor;
use crate::http::AppState;
use crate::http::audit_api::scoped_query;
use crate::http::params::Params;

/// An event as the page shows it.
struct Row {
    at: String,
    actor: String,
    action: String,
    target: String,
    outcome: String,
    details: String,
}

impl From<StoredEvent> for Row {
    fn from(e: StoredEvent) -> Self {
        Self { at: time_text(Some(e.at)), actor: e.actor, action: e.action, target: e.target, outcome: e.outcome, details: e.details.to_string() }
    }
}

/// The filter form's values, kept in every link.
#[derive(Default)]
struct Filters {
    actor: String,
    action: String,
    target: String,
    since: String,
    until: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    chrome: Chrome,
    filters: Filters,
    rows: Vec<Row>,
    /// The link to older events, if any.
    older: Option<String>,
    /// Whether the viewer sees every event.
    admin: bool,
    /// The chain's verification (admins).
    verification: Option<Verification>,
}

/// `GET /audit?actor=&action=&target=&since=&until=&cursor=`.
pub async fn show(State(state): State<AppState>, actor: Actor, params: Params) -> Result<Response, PageError> {
    let page = scoped_query(&state, &actor, &params).await?;
    let value = |name: &str| params.get(name).unwrap_or_default().trim().to_string();
    let filters = Filters { actor: value("actor"), action: value("action"), target: value("target"), since: value("since"), until: value("until") };
    let older = page.next.map(|cursor| {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in [("actor", &filters.actor), ("action", &filters.action), ("target", &filters.target), ("since", &filters.since), ("until", &filters.until)] {
            if !v.is_empty() {
                q.append_pair(k, v);
            }
        }
        format!("/audit?{}", q.append_pair("cursor", &cursor.to_string()).finish())
    });
    let verification = if page.admin { Some(state.audit.verify().await?) } else { None };
    Ok(render(&AuditPage {
        chrome: Chrome::new(&state, &actor, "Audit log", "audit"),
        filters,
        rows: page.events.into_iter().map(Row::from).collect(),
        older,
        admin: page.admin,
        verification,
    })?
    .into_response())
}
