//! Development sign-in and sign-out. Sign-in lists the catalog's users and starts a session for
//! the one picked, without a password — only where [`crate::auth::Auth::dev_sign_in`] allows it
//! (demo mode or `auth.dev_sign_in`, on a loopback address unless allowed remotely). Both forms
//! pass the console's same-origin check.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use bytes::Bytes;
use nova_domain::EntityRef;

use super::view::{Chrome, display_name};
use super::{PageError, render};
use crate::audit::{AuditEvent, Outcome};
use crate::auth::{Actor, SignInMethod};
use crate::http::error::request_id;
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
    /// Development sign-in is available.
    dev: bool,
    /// The OIDC issuer, when single sign-on is configured.
    oidc: Option<String>,
}

/// Where to go after signing in: a path on this site only (never `//host` or a URL).
pub fn local_path(next: Option<&str>) -> String {
    match next {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') && !p.chars().any(char::is_control) => p.to_string(),
        _ => "/".to_string(),
    }
}

/// `GET /sign-in?q=&next=`: single sign-on when OIDC is configured, and (in demo mode) the
/// catalog's users for development sign-in, filtered by `q`.
pub async fn page(State(state): State<AppState>, actor: Actor, params: Params) -> Result<Html<String>, PageError> {
    let oidc = state.auth.oidc.as_ref().map(|o| o.issuer().to_string());
    let dev = state.auth.dev_sign_in().is_ok();
    if !dev && oidc.is_none() {
        state.auth.dev_sign_in()?;
    }
    let snap = state.catalog.snapshot();
    let q = params.get("q").unwrap_or_default().trim().to_string();
    let spec = QuerySpec {
        filter: Filter::parse(["kind=user"]).expect("static filter"),
        text: Some(q.clone()).filter(|q| !q.is_empty()),
        ..Default::default()
    };
    let page = spec.page(&snap, 0, if dev { MAX_USERS } else { 0 });
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
        more: if dev { page.total.saturating_sub(MAX_USERS) } else { 0 },
        users,
        dev,
        oidc,
    })
}

/// `GET /auth/oidc/start?next=`: sends the browser to the identity provider.
pub async fn oidc_start(State(state): State<AppState>, params: Params) -> Result<Response, PageError> {
    let oidc = state.auth.oidc.as_ref().ok_or_else(|| AppError::NotFound("single sign-on is not configured".into()))?;
    let key = state.auth.session_key()?;
    let (url, sealed) = oidc.start(&local_path(params.get("next")), key).await.map_err(|e| AppError::Unavailable(e.to_string()))?;
    see_other(&url, crate::auth::oidc::login_cookie(&sealed, state.auth.secure_cookie()))
}

/// `GET /auth/oidc/callback?code=&state=`: the provider's answer; starts a session. A failed
/// sign-in is audited and explained.
pub async fn oidc_callback(State(state): State<AppState>, params: Params, headers: HeaderMap) -> Result<Response, PageError> {
    match finish_oidc(&state, &params, &headers).await {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(reason)) => {
            let event = AuditEvent {
                actor: "anonymous".into(),
                teams: vec![],
                action: "auth.sign_in".into(),
                target: "auth:oidc".into(),
                outcome: Outcome::Failure,
                request_id: request_id(),
                details: serde_json::json!({ "method": SignInMethod::Oidc, "reason": reason }),
            };
            state.audit.record(event).await?;
            Err(PageError(AppError::Unauthorized(format!("Single sign-on failed: {reason}"))))
        }
        Err(e) => Err(e),
    }
}

/// The callback's work: `Ok(Err(reason))` when the provider's answer is refused.
async fn finish_oidc(state: &AppState, params: &Params, headers: &HeaderMap) -> Result<Result<Response, String>, PageError> {
    let oidc = state.auth.oidc.as_ref().ok_or_else(|| AppError::NotFound("single sign-on is not configured".into()))?;
    let key = state.auth.session_key()?;
    if let Some(error) = params.get("error") {
        let detail = params.get("error_description").unwrap_or("");
        return Ok(Err(format!("the identity provider answered {error} {detail}").trim().to_string()));
    }
    let (Some(code), Some(st)) = (params.get("code"), params.get("state")) else {
        return Ok(Err("the answer has no code or state".into()));
    };
    let sealed = crate::auth::session::cookie_value(headers, crate::auth::oidc::LOGIN_COOKIE);
    let identity = match oidc.finish(code, st, sealed, key).await {
        Ok(i) => i,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let snap = state.catalog.snapshot();
    let user = match crate::auth::resolve_user(&snap, identity.username.as_deref(), identity.email.as_deref(), &oidc.config().user_namespace) {
        Ok(u) => u,
        Err(reason) => return Ok(Err(reason)),
    };
    let cookie = state.auth.start_session(user.clone(), SignInMethod::Oidc)?;
    audit_sign_in(state, &user, SignInMethod::Oidc).await?;
    let mut response = see_other(&local_path(Some(&identity.next)), cookie)?;
    if let Ok(v) = HeaderValue::from_str(&crate::auth::oidc::clear_login_cookie(state.auth.secure_cookie())) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(Ok(response))
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
    audit_sign_in(&state, &record.entity_ref, SignInMethod::Dev).await?;
    see_other(&local_path(field("next")), cookie)
}

/// Records a sign-in in the audit log.
pub async fn audit_sign_in(state: &AppState, user: &EntityRef, method: SignInMethod) -> Result<(), AppError> {
    tracing::info!(user = %user, method = method.label(), "signed in");
    state
        .audit
        .record(AuditEvent {
            actor: user.to_string(),
            teams: vec![],
            action: "auth.sign_in".into(),
            target: user.to_string(),
            outcome: Outcome::Success,
            request_id: request_id(),
            details: serde_json::json!({ "method": method }),
        })
        .await?;
    Ok(())
}

/// `POST /sign-out`: ends the session, on every replica.
pub async fn sign_out(State(state): State<AppState>, actor: Actor, headers: HeaderMap) -> Result<Response, PageError> {
    let cookie = state.auth.end_session(&headers).await?;
    if let Some(u) = actor.user() {
        tracing::info!(user = %u.entity_ref, "signed out");
        state
            .audit
            .record(AuditEvent {
                actor: u.entity_ref.to_string(),
                teams: actor.audit_teams(),
                action: "auth.sign_out".into(),
                target: u.entity_ref.to_string(),
                outcome: Outcome::Success,
                request_id: request_id(),
                details: serde_json::json!({ "method": u.method }),
            })
            .await?;
    }
    see_other("/", cookie)
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
