//! Image builds: `POST/GET /api/v1/components/{ref}/builds`, `GET /api/v1/builds/{id}`,
//! `POST /api/v1/builds/{id}/cancel`. Only owners may ask for or cancel a build; every request,
//! refused or not, is audited with all its parameters.

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use nova_domain::build::{BuildArgName, GitRef, RepoPath, check_image_tag};
use nova_domain::build_pipeline::BuildPipeline;
use nova_domain::entity_ref::EntityRef;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::{AppError, AppState};
use crate::audit::Outcome;
use crate::auth::Actor;
use crate::authz::{self, Action};
use crate::builds::local::RunBuild;
use crate::builds::tracker::{TrackBuild, cancel_in_backend};
use crate::git_remote;
use crate::secrets::credentials::{self, CredentialError};
use crate::storage::now_ms;
use crate::builds::store::{Build, BuildStore, NewBuild, StoredBuildArg};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/components/{component}/builds", get(list).post(request))
        .route("/builds/{id}", get(one))
        .route("/builds/{id}/cancel", post(cancel))
        .route("/builds/{id}/log", get(log))
        .route("/builds/{id}/events", get(events))
}

/// The most build arguments one build may have.
const MAX_BUILD_ARGS: usize = 64;

/// What an owner asks to build. The repository and the image repository come from the
/// component's annotations, never from the request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BuildRequest {
    /// Branch, tag or full commit id.
    pub git_ref: String,
    /// The Dockerfile, relative to the repository root, e.g. `docker/Dockerfile`.
    pub dockerfile: String,
    /// The build context directory; default: the Dockerfile's directory.
    pub context: Option<String>,
    /// The image tag, without the component's tag prefix; default: `YYYYMMDDTHHMMSSZ-<sha7>`
    /// of the commit `gitRef` names when the build is asked for.
    pub tag: Option<String>,
    /// `--build-arg` names and values.
    #[serde(default)]
    pub build_args: Vec<BuildArgInput>,
}

/// One `--build-arg`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BuildArgInput {
    pub name: String,
    pub value: String,
}

/// `?offset=` for a build's log.
#[derive(Debug, Deserialize)]
struct LogQuery {
    offset: Option<usize>,
}

/// `?limit=` for build history.
#[derive(Debug, Deserialize)]
struct ListQuery {
    limit: Option<i64>,
}

/// The build store on the app's database.
pub fn store(state: &AppState) -> BuildStore {
    BuildStore::new(state.db.clone())
}

/// The component named in the path, which must be in the catalog, with its document.
fn component(state: &AppState, raw: &str) -> Result<(EntityRef, Value), AppError> {
    let entity = EntityRef::parse_with(raw, Some("component"), "default").map_err(|e| AppError::invalid("component", e.to_string()))?;
    if entity.kind() != "component" {
        return Err(AppError::invalid("component", format!("must be a component, not a {}", entity.kind())));
    }
    let snap = state.catalog.snapshot();
    let record = snap.get(&entity).ok_or_else(|| AppError::NotFound(format!("no component {entity} in the catalog")))?;
    Ok((entity, record.value()))
}

fn annotation<'a>(doc: &'a Value, key: &str) -> Option<&'a str> {
    doc.pointer("/metadata/annotations").and_then(|a| a.get(key)).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty())
}

/// Who asks for a build of what, before the request body is checked.
struct Asker {
    component_ref: String,
    requested_by: String,
    idempotency_key: Option<String>,
}

/// A checked request; `default_tag` is set when the tag is to be made from the commit a
/// branch or tag names, which [`resolve_default_tag`] asks the repository for.
struct Checked {
    new: NewBuild,
    default_tag: Option<DefaultTag>,
}

/// The parts of a default tag `<prefix>YYYYMMDDTHHMMSSZ-<sha7>` known before the commit.
struct DefaultTag {
    prefix: String,
    stamp: String,
}

impl DefaultTag {
    /// The full tag for `commit`, checked against the OCI tag grammar.
    fn with(&self, commit: &str) -> Result<String, AppError> {
        let tag = format!("{}{}-{}", self.prefix, self.stamp, &commit[..7.min(commit.len())]);
        check_image_tag(&tag).map_err(|e| AppError::invalid("tag", format!("with the component's tag prefix, {}", e.0)))?;
        Ok(tag)
    }
}

/// Turns the request and the component's annotations into a checked build, or names the
/// field and the rule it broke.
fn validate(doc: &Value, req: &BuildRequest, asker: Asker, now: time::OffsetDateTime) -> Result<Checked, AppError> {
    let field = |name: &'static str| move |e: nova_domain::build::BuildParamError| AppError::invalid(name, e.0);
    let git_url = annotation(doc, "nova.dev/git-repository")
        .or_else(|| annotation(doc, "backstage.io/source-location").map(|s| s.strip_prefix("url:").unwrap_or(s)))
        .ok_or_else(|| AppError::invalid("gitRepository", "the component has neither a nova.dev/git-repository nor a backstage.io/source-location annotation"))?;
    if git_url.starts_with('-') || git_url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(AppError::invalid("gitRepository", "the component's repository annotation must not start with '-' or contain spaces or control characters"));
    }
    let image = annotation(doc, "nova.dev/image-repository")
        .ok_or_else(|| AppError::invalid("imageRepository", "the component has no nova.dev/image-repository annotation"))?;
    let pipeline = match annotation(doc, "nova.dev/build-pipeline") {
        Some(p) => BuildPipeline::parse(p).map_err(|e| AppError::invalid("buildPipeline", format!("the component's nova.dev/build-pipeline annotation {e}")))?,
        None => BuildPipeline::Local,
    };
    let git_ref = GitRef::parse(&req.git_ref).map_err(field("gitRef"))?;
    let dockerfile = RepoPath::parse(&req.dockerfile).map_err(field("dockerfile"))?;
    if dockerfile.is_root() {
        return Err(AppError::invalid("dockerfile", "must name a file, not the repository root"));
    }
    let context = match &req.context {
        Some(c) => RepoPath::parse(c).map_err(field("context"))?,
        None => dockerfile.parent(),
    };
    let stamp = now.format(time::macros::format_description!("[year][month][day]T[hour][minute][second]Z")).map_err(|e| AppError::Internal(e.into()))?;
    let prefix = annotation(doc, "nova.dev/image-tag-prefix").unwrap_or("").to_string();
    let commit = git_ref.is_commit().then(|| git_ref.as_str().to_string());
    let default = DefaultTag { prefix: prefix.clone(), stamp };
    let (full_tag, default_tag) = match (&req.tag, &commit) {
        (Some(t), _) => {
            check_image_tag(t).map_err(field("tag"))?;
            let full = format!("{prefix}{t}");
            check_image_tag(&full).map_err(|e| AppError::invalid("tag", format!("with the component's tag prefix, {e}")))?;
            (full, None)
        }
        (None, Some(sha)) => (default.with(sha)?, None),
        // Checked now with a placeholder commit, so a prefix too long is refused before git runs.
        (None, None) => (default.with("0000000")?, Some(default)),
    };
    if req.build_args.len() > MAX_BUILD_ARGS {
        return Err(AppError::invalid("buildArgs", format!("must have at most {MAX_BUILD_ARGS} entries")));
    }
    let mut args = Vec::with_capacity(req.build_args.len());
    for (i, a) in req.build_args.iter().enumerate() {
        let name = BuildArgName::parse(&a.name).map_err(|e| AppError::invalid(format!("buildArgs[{i}].name"), e.0))?;
        if a.value.chars().any(char::is_control) || a.value.len() > 4096 {
            return Err(AppError::invalid(format!("buildArgs[{i}].value"), "must be at most 4096 bytes, without control characters (newlines, tabs, NUL)"));
        }
        if args.iter().any(|s: &StoredBuildArg| s.name == name.as_str()) {
            return Err(AppError::invalid(format!("buildArgs[{i}].name"), format!("{} is given twice", name.as_str())));
        }
        args.push(StoredBuildArg { name: name.as_str().to_string(), value: a.value.clone() });
    }
    let pipeline = match pipeline {
        BuildPipeline::Local => "local".to_string(),
        BuildPipeline::Remote { backend, target } => format!("{backend}:{target}"),
    };
    let new = NewBuild {
        component_ref: asker.component_ref,
        requested_by: asker.requested_by,
        idempotency_key: asker.idempotency_key,
        pipeline,
        git_url: git_url.to_string(),
        git_ref: git_ref.as_str().to_string(),
        git_commit: commit,
        dockerfile: dockerfile.as_str().to_string(),
        context: context.as_str().to_string(),
        image: image.to_string(),
        tag: full_tag,
        build_args: args,
    };
    Ok(Checked { new, default_tag })
}

/// Makes the default tag of a build whose `gitRef` is a branch or tag: asks the repository
/// (`git ls-remote`, with the owning team's credential) which commit the ref names now and
/// records it on the build, so the tag names the commit that is built.
async fn resolve_default_tag(state: &AppState, component: &EntityRef, checked: Checked) -> Result<NewBuild, AppError> {
    let Checked { mut new, default_tag } = checked;
    let Some(default_tag) = default_tag else { return Ok(new) };
    let snapshot = state.catalog.snapshot();
    let credential = match credentials::for_component(state.secrets.as_ref(), &snapshot, component, &new.git_url).await {
        Ok(c) => c,
        Err(CredentialError::Invalid { .. }) => None,
        Err(e) => return Err(AppError::Unavailable(format!("cannot read the team's git credential to resolve gitRef: {e}"))),
    };
    let commit = git_remote::GitRemote::new(&state.config.builds).resolve(&new.git_url, &new.git_ref, credential.as_ref())
        .await
        .map_err(|e| AppError::invalid("gitRef", format!("cannot be resolved to a commit for the default tag (give a tag, or check the repository and the team's credential): {e}")))?
        .ok_or_else(|| AppError::invalid("gitRef", format!("names no branch or tag in {}; the default tag needs the commit it points at", new.git_url)))?;
    new.tag = default_tag.with(&commit)?;
    new.git_commit = Some(commit);
    Ok(new)
}

/// The `Idempotency-Key` header: 1 to 200 visible ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, AppError> {
    let Some(v) = headers.get("idempotency-key") else { return Ok(None) };
    let rule = || AppError::invalid("Idempotency-Key", "must be 1 to 200 visible ASCII characters");
    let s = v.to_str().map_err(|_| rule())?;
    if s.is_empty() || s.len() > 200 || !s.chars().all(|c| c.is_ascii_graphic()) {
        return Err(rule());
    }
    Ok(Some(s.to_string()))
}

/// Asks for an image build of a component. The same `Idempotency-Key` from the same user
/// answers the build made the first time (200) instead of making a second one.
#[utoipa::path(post, path = "/api/v1/components/{component}/builds", request_body = BuildRequest,
    params(("component" = String, Path, description = "Component reference, e.g. `payment-service` or `component:default/payment-service`"),
           ("Idempotency-Key" = Option<String>, Header, description = "Same key, same build")),
    responses((status = 201, body = Build), (status = 200, description = "The build this idempotency key made before", body = Build),
              (status = 400, body = super::error::Problem), (status = 401, body = super::error::Problem), (status = 403, body = super::error::Problem), (status = 404, body = super::error::Problem)))]
async fn request(State(state): State<AppState>, actor: Actor, Path(raw): Path<String>, headers: HeaderMap, body: axum::body::Bytes) -> Result<(StatusCode, Json<Build>), AppError> {
    let parsed = idempotency_key(&headers).and_then(|key| {
        let req: BuildRequest = serde_json::from_slice(&body).map_err(|e| AppError::invalid("body", format!("must be a build request {{gitRef, dockerfile, context?, tag?, buildArgs?}}: {e}")))?;
        Ok((req, key))
    });
    let raw_body: Value = serde_json::from_slice(&body).unwrap_or_else(|_| json!({ "unparsed": String::from_utf8_lossy(&body) }));
    let (build, created) = request_build(&state, &actor, &raw, parsed, raw_body).await?;
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(build)))
}

/// Asks for a build of component `raw` (the API and the console's form both come here): finds
/// the component, checks the caller owns it, checks the request, records and audits it and
/// starts a local build. `parsed` is the request and idempotency key, or why they could not be
/// read; `raw_body` is what the caller sent, for the audit record of a refusal. Answers the
/// build and whether it is new (`false`: the idempotency key's earlier build).
pub async fn request_build(state: &AppState, actor: &Actor, raw: &str, parsed: Result<(BuildRequest, Option<String>), AppError>, raw_body: Value) -> Result<(Build, bool), AppError> {
    let (entity, doc) = component(state, raw)?;
    authz::require(state, actor, Action::Build, &authz::entity_target(state, &entity)).await?;
    let user = actor.user().ok_or_else(|| AppError::Unauthorized("Sign in to build images.".into()))?.entity_ref.to_string();
    let checked = parsed.and_then(|(req, idempotency_key)| {
        let asker = Asker { component_ref: entity.to_string(), requested_by: user, idempotency_key };
        validate(&doc, &req, asker, time::OffsetDateTime::now_utc())
    });
    let checked = match checked {
        Ok(c) => {
            // The idempotency key's earlier build is answered as it is, whatever the limits now.
            if let Some(build) = previous(state, &c.new).await? {
                return Ok((build, false));
            }
            let gate = async {
                check_pipeline(state, &c.new)?;
                within_limits(state, &entity, &c.new.requested_by).await
            };
            match gate.await {
                Ok(()) => resolve_default_tag(state, &entity, c).await,
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    };
    let new = match checked {
        Ok(c) => c,
        Err(e) => {
            authz::record(state, actor, "build.request", entity.to_string(), Outcome::Failure, json!({ "request": raw_body, "refused": e.to_string() })).await?;
            return Err(e);
        }
    };
    let key = new.idempotency_key.clone();
    let (build, created) = store(state).create(new).await?;
    if !created {
        return Ok((build, false));
    }
    let details = json!({ "build": build.id, "idempotencyKey": key, "pipeline": build.pipeline, "gitUrl": build.git_url, "gitRef": build.git_ref, "gitCommit": build.git_commit,
        "dockerfile": build.dockerfile, "context": build.context, "image": build.image, "tag": build.tag, "buildArgs": build.build_args });
    authz::record(state, actor, "build.request", entity.to_string(), Outcome::Success, details).await?;
    if build.pipeline == "local" {
        state.jobs.enqueue(&RunBuild { build_id: build.id.clone() }, Some(&format!("build.run:{}", build.id)), now_ms()).await?;
    } else {
        state.jobs.enqueue(&TrackBuild { build_id: build.id.clone() }, Some(&format!("build.track:{}", build.id)), now_ms()).await?;
    }
    Ok((build, true))
}

/// The build this user's idempotency key already made, if any.
async fn previous(state: &AppState, new: &NewBuild) -> Result<Option<Build>, AppError> {
    match &new.idempotency_key {
        Some(key) => Ok(store(state).by_key(&new.requested_by, key).await?),
        None => Ok(None),
    }
}

/// A remote pipeline must name a configured backend and a target of its shape.
fn check_pipeline(state: &AppState, new: &NewBuild) -> Result<(), AppError> {
    state.build_backends.select(&new.pipeline).map(drop).map_err(|e| AppError::invalid("buildPipeline", format!("the component's nova.dev/build-pipeline annotation: {e}")))
}

/// `builds.max_requests_per_user` per `builds.request_window`, and
/// `builds.max_active_per_team` unfinished builds of the owning team's components.
async fn within_limits(state: &AppState, component: &EntityRef, user: &str) -> Result<(), AppError> {
    let limits = &state.config.builds;
    let builds = store(state);
    if limits.max_requests_per_user > 0 {
        let window = limits.request_window.as_millis() as i64;
        let now = now_ms();
        let recent = builds.requests_since(user, now - window).await?;
        if recent.len() >= limits.max_requests_per_user as usize {
            let oldest = recent[recent.len() - limits.max_requests_per_user as usize];
            let retry_after_secs = ((oldest + window - now).max(1000) as u64).div_ceil(1000);
            return Err(AppError::TooManyRequests {
                message: format!("{user} asked for {} builds in the last {}s; builds.max_requests_per_user is {}", recent.len(), window / 1000, limits.max_requests_per_user),
                retry_after_secs,
            });
        }
    }
    if limits.max_active_per_team > 0 {
        let snapshot = state.catalog.snapshot();
        let owner = |c: &EntityRef| snapshot.get(c).and_then(|r| r.summary.owner.clone());
        let Some(team) = owner(component) else { return Ok(()) };
        let active: i64 = builds
            .active_by_component()
            .await?
            .into_iter()
            .filter(|(c, _)| EntityRef::parse(c).ok().and_then(|c| owner(&c)).is_some_and(|o| o == team))
            .map(|(_, n)| n)
            .sum();
        if active >= i64::from(limits.max_active_per_team) {
            return Err(AppError::TooManyRequests {
                message: format!("{team} has {active} unfinished builds; builds.max_active_per_team is {}. Wait for one to finish or cancel one", limits.max_active_per_team),
                retry_after_secs: limits.poll_interval.as_secs().max(30),
            });
        }
    }
    Ok(())
}

/// A component's builds, newest first (`?limit=`, 1 to 500, default 50).
#[utoipa::path(get, path = "/api/v1/components/{component}/builds",
    params(("component" = String, Path, description = "Component reference"), ("limit" = Option<i64>, Query, description = "1 to 500, default 50")),
    responses((status = 200, body = [Build]), (status = 400, body = super::error::Problem), (status = 404, body = super::error::Problem)))]
async fn list(State(state): State<AppState>, Path(raw): Path<String>, Query(q): Query<ListQuery>) -> Result<Json<Vec<Build>>, AppError> {
    let (entity, _) = component(&state, &raw)?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(AppError::invalid("limit", "must be between 1 and 500"));
    }
    Ok(Json(store(&state).list(&entity.to_string(), limit).await?))
}

async fn find(state: &AppState, id: &str) -> Result<Build, AppError> {
    store(state).get(id).await?.ok_or_else(|| AppError::NotFound(format!("no build {id}")))
}

/// One build.
#[utoipa::path(get, path = "/api/v1/builds/{id}", params(("id" = String, Path, description = "Build id")),
    responses((status = 200, body = Build), (status = 404, body = super::error::Problem)))]
async fn one(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Build>, AppError> {
    Ok(Json(find(&state, &id).await?))
}

/// Cancels a build that has not finished. Owners only.
#[utoipa::path(post, path = "/api/v1/builds/{id}/cancel", params(("id" = String, Path, description = "Build id")),
    responses((status = 200, body = Build), (status = 403, body = super::error::Problem), (status = 404, body = super::error::Problem), (status = 409, body = super::error::Problem)))]
async fn cancel(State(state): State<AppState>, actor: Actor, Path(id): Path<String>) -> Result<Json<Build>, AppError> {
    // Anonymous callers are refused before they can learn which build ids exist.
    if actor.user().is_none() {
        authz::require(&state, &actor, Action::CancelBuild, &authz::Target::Platform).await?;
    }
    let build = find(&state, &id).await?;
    let entity = EntityRef::parse(&build.component_ref).map_err(|e| AppError::Internal(e.into()))?;
    authz::require(&state, &actor, Action::CancelBuild, &authz::entity_target(&state, &entity)).await?;
    if !store(&state).cancel(&id).await? {
        return Err(AppError::Conflict(format!("build {id} has already finished ({})", build.state)));
    }
    let mut backend = None;
    if let Some((run, _)) = store(&state).run_of(&id).await? {
        // Nova's state is cancelled either way; the backend's answer goes in the log and audit.
        let outcome = cancel_in_backend(&state.build_backends, &run).await;
        let note = match &outcome {
            Ok(()) => format!("[nova] cancelled; asked {} to stop the run\n", run.backend),
            Err(e) => format!("[nova] cancelled in Nova; {} could not be asked to stop the run: {e}\n", run.backend),
        };
        store(&state).append_log(&id, &note).await?;
        backend = Some(json!({ "backend": run.backend, "stopped": outcome.is_ok() }));
    }
    authz::record(&state, &actor, "build.cancel", build.component_ref.clone(), Outcome::Success, json!({ "build": id, "backend": backend })).await?;
    Ok(Json(find(&state, &id).await?))
}

/// A build's log from byte `offset` (default 0) as text; `X-Log-Size` is the log's total size
/// in bytes, the offset to ask from next.
#[utoipa::path(get, path = "/api/v1/builds/{id}/log", params(("id" = String, Path, description = "Build id"), ("offset" = Option<usize>, Query, description = "Byte offset")),
    responses((status = 200, description = "Log text", content_type = "text/plain"), (status = 404, body = super::error::Problem)))]
async fn log(State(state): State<AppState>, Path(id): Path<String>, Query(q): Query<LogQuery>) -> Result<impl axum::response::IntoResponse, AppError> {
    let (text, size) = store(&state).log(&id, q.offset.unwrap_or(0)).await?.ok_or_else(|| AppError::NotFound(format!("no build {id}")))?;
    Ok(([(axum::http::header::CONTENT_TYPE, "text/plain; charset=utf-8".to_string()), (axum::http::HeaderName::from_static("x-log-size"), size.to_string())], text))
}

/// How often a followed build is looked at.
const FOLLOW_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// Follows a build as Server-Sent Events: `log` events carry new output (one event per chunk,
/// its lines as data lines), `status` events the build as JSON whenever its state changes. The
/// stream ends after the final state. `Last-Event-ID` (a log byte offset) resumes a stream.
#[utoipa::path(get, path = "/api/v1/builds/{id}/events", params(("id" = String, Path, description = "Build id")),
    responses((status = 200, description = "An event stream", content_type = "text/event-stream"), (status = 404, body = super::error::Problem)))]
async fn events(State(state): State<AppState>, Path(id): Path<String>, headers: HeaderMap) -> Result<impl axum::response::IntoResponse, AppError> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let first = find(&state, &id).await?;
    let resume = headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok()).unwrap_or(0);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Event, std::convert::Infallible>>(16);
    tokio::spawn(async move {
        let builds = store(&state);
        let (mut offset, mut last_state) = (resume, String::new());
        let mut build = first;
        loop {
            if let Ok(Some((text, size))) = builds.log(&id, offset).await
                && !text.is_empty()
            {
                offset = size;
                if tx.send(Ok(Event::default().event("log").id(size.to_string()).data(text.trim_end_matches('\n')))).await.is_err() {
                    return;
                }
            }
            if build.state != last_state {
                last_state = build.state.clone();
                let json = serde_json::to_string(&build).unwrap_or_default();
                if tx.send(Ok(Event::default().event("status").data(json))).await.is_err() || build.finished_at.is_some() {
                    return;
                }
            }
            tokio::time::sleep(FOLLOW_EVERY).await;
            match builds.get(&id).await {
                Ok(Some(b)) => build = b,
                _ => return,
            }
        }
    });
    Ok(Sse::new(tokio_stream::wrappers::ReceiverStream::new(rx)).keep_alive(KeepAlive::default()))
}
