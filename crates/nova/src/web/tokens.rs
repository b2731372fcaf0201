//! The signed-in user's API tokens, `/tokens`: a form to make one (name, optional lifetime),
//! which shows the new token once on the answer page (never in a URL, never again), the list
//! with prefix, expiry and last use, and a revoke button per token. Same rules and audit as the
//! API ([`crate::http::tokens_api`]).

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::view::{Chrome, time_text};
use super::{PageError, render};
use crate::auth::Actor;
use crate::auth::tokens::TokenInfo;
use crate::http::tokens_api::{NewToken, create_token, revoke_token, signed_in};
use crate::http::{AppError, AppState};
use crate::storage::now_ms;

/// A token as the page lists it.
struct Row {
    id: String,
    name: String,
    prefix: String,
    created: String,
    expires: String,
    last_used: String,
    /// `active`, `expired` or `revoked`.
    state: &'static str,
}

impl From<TokenInfo> for Row {
    fn from(t: TokenInfo) -> Self {
        let state = match (t.revoked_at, t.expires_at) {
            (Some(_), _) => "revoked",
            (None, Some(e)) if e <= now_ms() => "expired",
            _ => "active",
        };
        Self {
            id: t.id,
            name: t.name,
            prefix: t.prefix,
            created: time_text(Some(t.created_at)),
            expires: t.expires_at.map_or_else(|| "never".to_string(), |e| time_text(Some(e))),
            last_used: time_text(t.last_used_at),
            state,
        }
    }
}

#[derive(Template)]
#[template(path = "tokens.html")]
struct TokensPage {
    chrome: Chrome,
    rows: Vec<Row>,
    /// The token just made, shown this once.
    created: Option<(String, String)>,
    /// The form's values after a refusal.
    name: String,
    days: String,
    error: Option<String>,
    notice: Option<&'static str>,
}

async fn page(state: &AppState, actor: &Actor, form: (String, String), error: Option<String>, created: Option<(String, String)>, notice: Option<&'static str>) -> Result<Response, PageError> {
    let user = signed_in(actor)?;
    let rows = state.auth.tokens.list(&user.entity_ref).await?.into_iter().map(Row::from).collect();
    let mut response = render(&TokensPage { chrome: Chrome::new(state, actor, "API tokens", "tokens"), rows, created, name: form.0, days: form.1, error, notice })?.into_response();
    // The page may hold a new token: keep it out of every cache.
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// The query of the page shown after a revocation.
#[derive(serde::Deserialize)]
pub struct Done {
    done: Option<String>,
}

/// `GET /tokens`.
pub async fn show(State(state): State<AppState>, actor: Actor, Query(q): Query<Done>) -> Result<Response, PageError> {
    let notice = (q.done.as_deref() == Some("revoked")).then_some("Token revoked: it no longer works.");
    page(&state, &actor, Default::default(), None, None, notice).await
}

/// `POST /tokens` (form: `name`, `expires_in_days` empty for no expiry): makes a token and shows
/// it once.
pub async fn create(State(state): State<AppState>, actor: Actor, body: Bytes) -> Result<Response, PageError> {
    signed_in(&actor)?;
    let fields: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| fields.iter().find(|(k, _)| k == name).map_or(String::new(), |(_, v)| v.trim().to_string());
    let (name, days) = (field("name"), field("expires_in_days"));
    let made = async {
        let expires_in_days = match days.as_str() {
            "" => None,
            d => Some(d.parse::<u32>().map_err(|_| AppError::invalid("expiresInDays", "must be a whole number of days between 1 and 3650, or empty for no expiry"))?),
        };
        let (token, info) = create_token(&state, &actor, &NewToken { name: name.clone(), expires_in_days }).await?;
        Ok::<_, AppError>((info.name, token.expose().to_string()))
    }
    .await;
    match made {
        Ok(created) => page(&state, &actor, Default::default(), None, Some(created), None).await,
        Err(e) => {
            let status = e.status();
            let mut response = page(&state, &actor, (name, days), Some(e.to_string()), None, None).await?;
            *response.status_mut() = status;
            Ok(response)
        }
    }
}

/// `POST /tokens/{id}/revoke`.
pub async fn revoke(State(state): State<AppState>, actor: Actor, Path(id): Path<String>) -> Result<Response, PageError> {
    revoke_token(&state, &actor, &id).await?;
    let mut response = StatusCode::SEE_OTHER.into_response();
    response.headers_mut().insert(header::LOCATION, HeaderValue::from_static("/tokens?done=revoked"));
    Ok(response)
}
