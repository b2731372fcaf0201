//! The catalog's health: every current error (the data of `/api/v1/catalog/errors`) and every
//! location with its last refresh, success and failure.

use askama::Template;
use axum::extract::State;
use axum::response::Html;

use super::view::{Chrome, time_text};
use super::{PageError, render};
use crate::auth::Actor;
use crate::catalog::CatalogError;
use crate::http::AppState;

#[derive(Template)]
#[template(path = "errors.html")]
struct ErrorsPage {
    chrome: Chrome,
    errors: Vec<CatalogError>,
}

/// `GET /catalog-errors`.
pub async fn errors(State(state): State<AppState>, actor: Actor) -> Result<Html<String>, PageError> {
    let errors = state.catalog.snapshot().errors.clone();
    render(&ErrorsPage { chrome: Chrome::new(&state, &actor, "Catalog errors", "errors"), errors })
}

/// A location as the page shows it.
struct LocationRow {
    kind: &'static str,
    target: String,
    origin: &'static str,
    refreshed: String,
    last_success: String,
    /// The last refresh failed with this message.
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "locations.html")]
struct LocationsPage {
    chrome: Chrome,
    locations: Vec<LocationRow>,
    interval: String,
}

/// `GET /locations`.
pub async fn locations(State(state): State<AppState>, actor: Actor) -> Result<Html<String>, PageError> {
    let locations = state
        .catalog
        .locations()
        .await?
        .into_iter()
        .map(|l| LocationRow {
            kind: l.spec.kind.as_str(),
            target: l.spec.target,
            origin: match l.origin {
                crate::catalog::Origin::Config => "configuration",
                crate::catalog::Origin::Registered => "registered",
            },
            refreshed: time_text(l.refreshed_at),
            last_success: time_text(l.last_success_at),
            error: l.last_error,
        })
        .collect();
    let interval = format!("{:?}", state.config.catalog.refresh_interval);
    render(&LocationsPage { chrome: Chrome::new(&state, &actor, "Locations", "locations"), locations, interval })
}
