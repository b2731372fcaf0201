//! Development sign-in and sign-out. Sign-in lists the catalog's users and starts a session for
//! the one picked, without a password — only where [`crate::auth::Auth::dev_sign_in`] allows it
//! (demo mode or `auth.dev_sign_in`, on a loopback address unless allowed remotely). Both forms
//! pass the console's same-origin check.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use bytes::Bytes;
use nova_domain::EntityRef;

use super::view::{Chrome, display_name};
use super::{PageError, render};
use crate::auth::{Actor, SignInMethod};
use crate::catalog::query::{Filter, QuerySpec};
use crate::http::params::Params;
use crate::http::{AppError, AppState};

/// Users listed at once on the sign-in page.
const MAX_USERS: usize = 100;

struct UserChoice {
    reference: String,
    name: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage {
    chrome: Chrome,
    q: String,
    next: String,
    users: Vec<UserChoice>,
    more: usize,
}

/// Where to go after signing in: a path on this site only (never `//host` or a URL).
fn local_path(next: Option<&str>) -> String {
    match next {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') && !p.chars().any(char::is_control) => p.to_string(),
        _ => "/".to_string(),
    }
}

/// `GET /sign-in?q=&next=`: the catalog's users, filtered by `q`.
pub async fn page(State(state): State<AppState>, actor: Actor, params: Params) -> Result<Html<String>, PageError> {
    state.auth.dev_sign_in()?;
    let snap = state.catalog.snapshot();
    let q = params.get("q").unwrap_or_default().trim().to_string();
    let spec = QuerySpec {
        filter: Filter::parse(["kind=user"]).expect("static filter"),
        text: Some(q.clone()).filter(|q| !q.is_empty()),
        ..Default::default()
    };
    let page = spec.page(&snap, 0, MAX_USERS);
    let users = page
        .items
        .iter()
        .map(|u| {
            let value = u.value();
            UserChoice {
                reference: u.entity_ref.to_string(),
                name: display_name(u),
                detail: value["spec"]["profile"]["email"].as_str().map(str::to_string).unwrap_or_else(|| u.entity_ref.short()),
            }
        })
        .collect();
    render(&SignInPage {
        chrome: Chrome::new(&state, &actor, "Sign in", "sign-in"),
        q,
        next: local_path(params.get("next")),
        more: page.total.saturating_sub(MAX_USERS),
        users,
    })
}

fn see_other(location: &str, cookie: String) -> Result<Response, PageError> {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, HeaderValue::from_str(location).map_err(|e| AppError::Internal(e.into()))?);
    headers.insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).map_err(|e| AppError::Internal(e.into()))?);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// `POST /sign-in` (form: `user`, `next`): starts a session for a catalog User.
pub async fn sign_in(State(state): State<AppState>, body: Bytes) -> Result<Response, PageError> {
    state.auth.dev_sign_in()?;
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let user = field("user").ok_or_else(|| AppError::invalid("user", "choose a user to sign in as"))?;
    let user = EntityRef::parse_with(user, Some("user"), "default").map_err(|e| AppError::invalid("user", e.to_string()))?;
    let snap = state.catalog.snapshot();
    let record = snap.get(&user).filter(|r| r.kind == nova_domain::EntityKind::User).ok_or_else(|| AppError::invalid("user", format!("{user} is not a User in the catalog")))?;
    let cookie = state.auth.start_session(record.entity_ref.clone(), SignInMethod::Dev)?;
    tracing::info!(user = %record.entity_ref, method = "dev", "signed in");
    see_other(&local_path(field("next")), cookie)
}

/// `POST /sign-out`: ends the session.
pub async fn sign_out(State(state): State<AppState>, actor: Actor) -> Result<Response, PageError> {
    if let Some(u) = actor.user() {
        tracing::info!(user = %u.entity_ref, "signed out");
    }
    see_other("/", state.auth.end_session())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_a_local_path() {
        assert_eq!(local_path(Some("/catalog?q=x")), "/catalog?q=x");
        for bad in ["//evil.example", "https://evil.example", "/\\evil.example", "javascript:x", ""] {
            assert_eq!(local_path(Some(bad)), "/", "{bad}");
        }
    }
}
