//! A team's credentials page, `/teams/{team}/credentials`: the metadata of each credential,
//! a form to register or rotate one and a button to revoke one. Plain HTML forms; the same
//! rules, authorisation and audit as the API ([`crate::http::credentials_api`]). The secret
//! field is write-only: never shown, never put back into the form after an error.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use nova_domain::Sensitive;

use super::view::{Chrome, time_text};
use super::{PageError, render};
use crate::auth::Actor;
use crate::authz::{self, Action, Target};
use crate::http::credentials_api::{listed, remove, save};
use crate::http::{AppError, AppState};
use crate::secrets::credentials::{self, CredentialInfo, CredentialKind, CredentialRequest};

/// A credential as the page shows it.
struct Row {
    name: String,
    kind: &'static str,
    repositories: Vec<String>,
    username: String,
    description: String,
    created: String,
    rotated: String,
    last_used: String,
    check: String,
}

impl From<CredentialInfo> for Row {
    fn from(c: CredentialInfo) -> Self {
        Self {
            kind: kind_name(c.kind),
            repositories: c.repositories,
            username: c.username.unwrap_or_default(),
            description: c.description,
            created: format!("{} by {}", time_text(Some(c.created_at_ms)), c.created_by),
            check: check_text(&c.checks),
            last_used: c.last_use.as_ref().map_or_else(|| "never".into(), |u| format!("{} (build {})", time_text(Some(u.at_ms)), u.build)),
            rotated: c.rotated_at_ms.map_or_else(|| "never".into(), |t| format!("{} by {}", time_text(Some(t)), c.rotated_by.unwrap_or_default())),
            name: c.name,
        }
    }
}

/// What registering found out, per repository.
fn check_text(checks: &[crate::git_remote::AccessCheck]) -> String {
    if checks.is_empty() {
        return "not checked".into();
    }
    let one = |c: &crate::git_remote::AccessCheck| match c.read_only {
        Some(true) => "readable, read-only (push refused)",
        Some(false) => "readable, but the server accepts pushes with it",
        None => "readable",
    };
    if checks.len() == 1 {
        return one(&checks[0]).into();
    }
    checks.iter().map(|c| format!("{}: {}", c.repository, one(c))).collect::<Vec<_>>().join("; ")
}

fn kind_name(kind: CredentialKind) -> &'static str {
    match kind {
        CredentialKind::SshKey => "ssh-key",
        CredentialKind::HttpsToken => "https-token",
        CredentialKind::Registry => "registry",
    }
}

/// The form's values, kept after a refusal (all but the secret).
#[derive(Default)]
struct FormValues {
    name: String,
    kind: String,
    username: String,
    repositories: String,
    description: String,
}

#[derive(Template)]
#[template(path = "credentials.html")]
struct CredentialsPage {
    chrome: Chrome,
    team: String,
    rows: Vec<Row>,
    form: FormValues,
    error: Option<String>,
    notice: Option<String>,
}

async fn page(state: &AppState, actor: &Actor, team: &str, form: FormValues, error: Option<String>, notice: Option<String>) -> Result<CredentialsPage, PageError> {
    authz::require(state, actor, Action::ReadSensitive, &Target::Team(credentials::team_ref(team))).await?;
    let rows = listed(state, team).await?.into_iter().map(Row::from).collect();
    Ok(CredentialsPage { chrome: Chrome::new(state, actor, format!("Credentials of {team}"), ""), team: team.to_string(), rows, form, error, notice })
}

/// The query of the page shown after a change.
#[derive(serde::Deserialize)]
pub struct Done {
    done: Option<String>,
}

/// `GET /teams/{team}/credentials` (`?done=registered|rotated|revoked` after a change).
pub async fn show(State(state): State<AppState>, actor: Actor, Path(team): Path<String>, Query(q): Query<Done>) -> Result<Response, PageError> {
    let notice = match q.done.as_deref() {
        Some("registered") => Some("Credential registered."),
        Some("rotated") => Some("Credential rotated: builds use the new value from now on."),
        Some("revoked") => Some("Credential revoked and deleted from the secret store."),
        _ => None,
    };
    Ok(render(&page(&state, &actor, &team, FormValues::default(), None, notice.map(String::from)).await?)?.into_response())
}

/// `POST /teams/{team}/credentials` (form: `name`, `kind`, `username`, `repositories` one per
/// line, `description`, `secret`, `passphrase` for an SSH key that has one): registers or
/// rotates, then shows the page again.
pub async fn submit(State(state): State<AppState>, actor: Actor, Path(team): Path<String>, body: Bytes) -> Result<Response, PageError> {
    let fields: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| fields.iter().find(|(k, _)| k == name).map_or(String::new(), |(_, v)| v.clone());
    let form = FormValues { name: field("name"), kind: field("kind"), username: field("username"), repositories: field("repositories"), description: field("description") };
    let kind = match form.kind.as_str() {
        "ssh-key" => Some(CredentialKind::SshKey),
        "https-token" => Some(CredentialKind::HttpsToken),
        "registry" => Some(CredentialKind::Registry),
        _ => None,
    };
    let result = match kind {
        None => Err(AppError::invalid("kind", "choose ssh-key, https-token or registry")),
        Some(kind) => {
            let req = CredentialRequest {
                kind,
                repositories: form.repositories.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect(),
                username: Some(form.username.clone()).filter(|u| !u.trim().is_empty()),
                description: form.description.clone(),
                secret: Sensitive::new(field("secret")),
                passphrase: Some(Sensitive::new(field("passphrase"))).filter(|p| !p.expose().is_empty()),
            };
            save(&state, &actor, &team, &form.name, &req).await
        }
    };
    match result {
        Ok(info) => {
            let what = if info.rotated_at_ms.is_some() { "rotated" } else { "registered" };
            see_other(&format!("/teams/{team}/credentials?done={what}"))
        }
        Err(e @ (AppError::Unauthorized(_) | AppError::Forbidden(_))) => Err(PageError(e)),
        Err(e) => {
            let status = e.status();
            let mut response = render(&page(&state, &actor, &team, form, Some(e.to_string()), None).await?)?.into_response();
            *response.status_mut() = status;
            Ok(response)
        }
    }
}

/// `POST /teams/{team}/credentials/{name}/revoke`.
pub async fn revoke(State(state): State<AppState>, actor: Actor, Path((team, name)): Path<(String, String)>) -> Result<Response, PageError> {
    remove(&state, &actor, &team, &name).await?;
    see_other(&format!("/teams/{team}/credentials?done=revoked"))
}

fn see_other(location: &str) -> Result<Response, PageError> {
    let mut response = StatusCode::SEE_OTHER.into_response();
    response.headers_mut().insert(header::LOCATION, HeaderValue::from_str(location).map_err(|e| AppError::Internal(e.into()))?);
    Ok(response)
}
