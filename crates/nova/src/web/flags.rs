//! Feature flags, `/flags`: every flag with its stage and who changed it last. Platform admins
//! get a form per flag to move it through the rollout stages (off → named groups and users → a
//! percentage of users → everyone) and a switch-off button that turns it off for everyone at
//! once while keeping its targeting; everyone else reads. Changes go through
//! [`crate::http::flags_api::set_rollout`] (authorised, validated, audited).

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use nova_domain::EntityRef;

use super::view::{Chrome, time_text};
use super::{PageError, render};
use crate::auth::Actor;
use crate::authz::{self, Action, Target};
use crate::flags::{Flag, Rollout};
use crate::http::flags_api::set_rollout;
use crate::http::{AppError, AppState};

/// A flag as the page shows it.
struct Row {
    key: String,
    description: String,
    /// `off`, `targeted`, `percentage` or `on`.
    stage: &'static str,
    enabled: bool,
    /// Whether the rollout, once enabled, is for everyone.
    everyone: bool,
    groups: String,
    users: String,
    percentage: String,
    updated: String,
}

impl From<Flag> for Row {
    fn from(f: Flag) -> Self {
        let join = |refs: &[EntityRef]| refs.iter().map(EntityRef::short).collect::<Vec<_>>().join("\n");
        Self {
            stage: f.stage,
            enabled: f.rollout.enabled,
            everyone: f.rollout.everyone,
            groups: join(&f.rollout.groups),
            users: join(&f.rollout.users),
            percentage: f.rollout.percentage.to_string(),
            updated: format!("{} by {}", time_text(Some(f.updated_at)), f.updated_by),
            description: f.description,
            key: f.key,
        }
    }
}

#[derive(Template)]
#[template(path = "flags.html")]
struct FlagsPage {
    chrome: Chrome,
    rows: Vec<Row>,
    /// Whether the viewer may change flags.
    admin: bool,
    error: Option<(String, String)>,
    notice: Option<String>,
}

async fn page(state: &AppState, actor: &Actor, error: Option<(String, String)>, notice: Option<String>) -> Result<Response, PageError> {
    authz::require(state, actor, Action::Read, &Target::Platform).await?;
    let admin = authz::decide(actor, Action::ManageFlags, &Target::Platform, state.auth.anonymous_read) == authz::Decision::Allow;
    let rows = state.flags.list().into_iter().map(Row::from).collect();
    Ok(render(&FlagsPage { chrome: Chrome::new(state, actor, "Feature flags", "flags"), rows, admin, error, notice })?.into_response())
}

/// The query of the page shown after a change.
#[derive(serde::Deserialize)]
pub struct Done {
    changed: Option<String>,
}

/// `GET /flags` (`?changed=KEY` after a change).
pub async fn show(State(state): State<AppState>, actor: Actor, Query(q): Query<Done>) -> Result<Response, PageError> {
    let notice = q.changed.filter(|k| state.flags.get(k).is_some()).map(|k| format!("Flag {k} changed: in effect now."));
    page(&state, &actor, None, notice).await
}

/// Reads the stage form: `stage` (`off`, `targeted`, `percentage`, `on`), `groups` and `users`
/// (one reference per line or comma), `percentage`. `off` keeps the targeting for later.
fn rollout_from_form(fields: &[(String, String)]) -> Result<Rollout, AppError> {
    let field = |name: &str| fields.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.trim());
    let refs = |name: &'static str, kind: &str| -> Result<Vec<EntityRef>, AppError> {
        field(name)
            .split(|c| c == '\n' || c == ',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| EntityRef::parse_with(s, Some(kind), "default").map_err(|e| AppError::invalid(name, e.to_string())))
            .collect()
    };
    let percentage = match field("percentage") {
        "" => 0.0,
        p => p.parse::<f64>().map_err(|_| AppError::invalid("percentage", "must be a number between 0 and 100"))?,
    };
    let mut rollout = Rollout { enabled: true, everyone: false, groups: refs("groups", "Group")?, users: refs("users", "User")?, percentage };
    match field("stage") {
        "off" => rollout.enabled = false,
        "targeted" => rollout.percentage = 0.0,
        "percentage" => {}
        "on" => rollout.everyone = true,
        other => return Err(AppError::invalid("stage", format!("must be off, targeted, percentage or on, not {other:?}"))),
    }
    Ok(rollout)
}

/// `POST /flags/{key}` (the stage form), or `POST /flags/{key}/switch-off`.
async fn apply(state: &AppState, actor: &Actor, key: &str, rollout: Result<Rollout, AppError>) -> Result<Response, PageError> {
    match rollout {
        Ok(rollout) => match set_rollout(state, actor, key, rollout).await {
            Ok(_) => {
                let mut response = StatusCode::SEE_OTHER.into_response();
                let location = format!("/flags?changed={}", url::form_urlencoded::byte_serialize(key.as_bytes()).collect::<String>());
                response.headers_mut().insert(header::LOCATION, HeaderValue::from_str(&location).map_err(|e| AppError::Internal(e.into()))?);
                Ok(response)
            }
            Err(e) => refused(state, actor, key, e).await,
        },
        Err(e) => {
            // Check the right to change flags before explaining a bad form.
            authz::require(state, actor, Action::ManageFlags, &Target::Platform).await?;
            refused(state, actor, key, e).await
        }
    }
}

async fn refused(state: &AppState, actor: &Actor, key: &str, e: AppError) -> Result<Response, PageError> {
    if matches!(e, AppError::Unauthorized(_) | AppError::Forbidden(_) | AppError::NotFound(_)) {
        return Err(PageError(e));
    }
    let status = e.status();
    let mut response = page(state, actor, Some((key.to_string(), e.to_string())), None).await?;
    *response.status_mut() = status;
    Ok(response)
}

/// `POST /flags/{key}`: sets the flag's stage from the form.
pub async fn change(State(state): State<AppState>, actor: Actor, Path(key): Path<String>, body: Bytes) -> Result<Response, PageError> {
    let fields: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    apply(&state, &actor, &key, rollout_from_form(&fields)).await
}

/// `POST /flags/{key}/switch-off`: off for everyone now, targeting kept.
pub async fn switch_off(State(state): State<AppState>, actor: Actor, Path(key): Path<String>) -> Result<Response, PageError> {
    let rollout = state.flags.get(&key).map(|f| Rollout { enabled: false, ..f.rollout }).ok_or_else(|| AppError::NotFound(format!("unknown flag {key:?}")));
    apply(&state, &actor, &key, rollout).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_stage_form_expresses_the_rollout_plan() {
        let admins = rollout_from_form(&form(&[("stage", "targeted"), ("groups", "platform"), ("percentage", "25")])).unwrap();
        assert_eq!((admins.stage(), admins.percentage), ("targeted", 0.0));
        assert_eq!(admins.groups, vec![EntityRef::parse("group:default/platform").unwrap()]);
        let quarter = rollout_from_form(&form(&[("stage", "percentage"), ("groups", "platform"), ("percentage", "25")])).unwrap();
        assert_eq!((quarter.stage(), quarter.percentage), ("percentage", 25.0));
        assert_eq!(rollout_from_form(&form(&[("stage", "on")])).unwrap().stage(), "on");
        let off = rollout_from_form(&form(&[("stage", "off"), ("users", "alex.kim, user:default/jo.novak")])).unwrap();
        assert_eq!((off.stage(), off.users.len()), ("off", 2), "switching off keeps the targeting");
        assert!(matches!(rollout_from_form(&form(&[("stage", "sometimes")])), Err(AppError::Invalid { .. })));
        assert!(matches!(rollout_from_form(&form(&[("stage", "percentage"), ("percentage", "lots")])), Err(AppError::Invalid { .. })));
    }
}
