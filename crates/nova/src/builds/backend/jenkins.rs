//! Jenkins through its remote access API.
//!
//! `start` posts the build's parameters (form-encoded, in the request body) to
//! `/job/<a>/job/<b>/buildWithParameters` and reads the queue item from the `Location` of the
//! `201 Created` answer, or of `303 See Other` when Jenkins merged the request into an
//! identical item still queued. The queue item (`/queue/item/N/api/json`) gains `executable`
//! when the build starts, or `cancelled`. Jenkins forgets items five minutes after they left
//! the queue; after that, and after a crash, the build is found by its `NOVA_BUILD_ID`
//! parameter among the job's recent builds. Logs come from `logText/progressiveText`
//! (`X-Text-Size`, `X-More-Data`); cancelling is `/queue/cancelItem` or `/<n>/stop`.
//!
//! Authentication is HTTP basic with a user and an API token, which needs no CSRF crumb; with
//! `auth = "password"` a crumb is fetched from `/crumbIssuer/api/json` (with the session
//! cookie it is bound to) and sent with every POST.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use nova_domain::Sensitive;
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Method, Response, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use url::Url;
use uuid::Uuid;

use super::http::{self, Wording};
use super::{BackendError, BuildBackend, BuildSpec, LogChunk, RunHandle, RunId, RunState, RunStatus};
use crate::secrets::SecretRef;
use crate::health::HealthReport;

/// The `type` of a Jenkins backend.
pub const KIND: &str = "jenkins";

/// The parameters every job Nova starts must define (string parameters; `BUILD_ARGS` may be
/// a multi-line string). Jenkins silently drops parameters a job does not define, so `start`
/// refuses a job that lacks one rather than start a build Nova could not find again.
pub const PARAMETERS: [&str; 9] = ["NOVA_BUILD_ID", "GIT_URL", "GIT_REF", "COMMIT", "DOCKERFILE", "CONTEXT", "IMAGE", "TAG", "BUILD_ARGS"];

/// The password parameter that carries secret build arguments, when `password_parameters`
/// is on.
pub const SECRET_PARAMETER: &str = "SECRET_BUILD_ARGS";

/// `[build_backends.<name>]` with `type = "jenkins"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JenkinsConfig {
    /// Jenkins' root URL, e.g. `https://jenkins.example.com/` (with its context path, if any).
    pub url: String,
    /// The Jenkins user Nova acts as.
    pub user: String,
    /// The user's API token (or password, with `auth = "password"`), by reference.
    pub token: SecretRef,
    /// `api-token` (the default; no CSRF crumb needed) or `password` (crumb fetched).
    #[serde(default)]
    pub auth: JenkinsAuth,
    /// Send secret build arguments as the password parameter `SECRET_BUILD_ARGS`. Off, a
    /// build with a secret argument is refused.
    #[serde(default)]
    pub password_parameters: bool,
    /// Longest a single request may take.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// How many of a job's most recent builds are searched for a build's `NOVA_BUILD_ID`.
    #[serde(default = "default_search_depth")]
    pub search_depth: u32,
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_search_depth() -> u32 {
    100
}

/// How the token authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JenkinsAuth {
    /// An API token: basic authentication, no crumb.
    #[default]
    ApiToken,
    /// A password: basic authentication plus a CSRF crumb on every POST.
    Password,
}

impl JenkinsConfig {
    pub(super) fn validate(&self) -> Result<(), String> {
        http::base_url(&self.url).map_err(|e| format!("url: {e}"))?;
        if self.user.trim().is_empty() {
            return Err("user: must not be empty".into());
        }
        if self.timeout < Duration::from_secs(1) {
            return Err("timeout: must be at least 1s".into());
        }
        if !(1..=1000).contains(&self.search_depth) {
            return Err("search_depth: must be between 1 and 1000".into());
        }
        Ok(())
    }
}

/// A job's full name, `folder/sub/job`: segments separated by `/`, each a Jenkins item name
/// (none of `?*/\%!@#$^&|<>[]:;`, not `.` or `..`, no control characters).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JobPath(Vec<String>);

impl JobPath {
    /// Parses `folder/job`.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("must name a job, e.g. folder/job".into());
        }
        let mut segments = Vec::new();
        for segment in s.split('/') {
            if segment.is_empty() || segment == "." || segment == ".." {
                return Err("must be job names separated by single '/' (no empty, '.' or '..' parts)".into());
            }
            if let Some(c) = segment.chars().find(|c| "?*\\%!@#$^&|<>[]:;".contains(*c) || c.is_control()) {
                return Err(format!("must not contain {c:?} (Jenkins does not allow it in job names)"));
            }
            segments.push(segment.to_string());
        }
        Ok(Self(segments))
    }

    /// URL path segments: `job/<a>/job/<b>`, followed by `rest`.
    fn segments<'a>(&'a self, rest: &[&'a str]) -> Vec<&'a str> {
        self.0.iter().flat_map(|s| ["job", s.as_str()]).chain(rest.iter().copied()).collect()
    }
}

impl fmt::Display for JobPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("/"))
    }
}

/// Where a run is, as its id records it: still a queue item, or a build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    Queue(u64),
    Build(u64),
}

impl At {
    fn encode(self) -> String {
        match self {
            Self::Queue(n) => format!("queue/{n}"),
            Self::Build(n) => n.to_string(),
        }
    }

    fn decode(s: &str) -> Option<Self> {
        match s.strip_prefix("queue/") {
            Some(n) => n.parse().ok().map(Self::Queue),
            None => s.parse().ok().map(Self::Build),
        }
    }
}

/// A run, decoded from its handle.
struct Run {
    job: JobPath,
    at: At,
    build_id: Uuid,
}

/// Where the run was found to be now.
enum Located {
    Queued,
    CancelledInQueue,
    Build(u64),
    /// Neither the queue item nor a build carrying the id exists any more.
    Lost(u64),
}

/// A CSRF crumb and the session cookie it is bound to.
#[derive(Clone)]
struct Crumb {
    field: String,
    value: Sensitive<String>,
    cookie: Option<Sensitive<String>>,
}

/// A Jenkins server.
pub struct JenkinsBackend {
    name: String,
    config: JenkinsConfig,
    base: Url,
    client: reqwest::Client,
    crumb: tokio::sync::Mutex<Option<Crumb>>,
    /// Queue items already seen to have become builds, by build id (saves a request; lost on
    /// restart, when the build is found again through the queue or its parameter).
    builds: Mutex<HashMap<Uuid, u64>>,
}

// Jenkins' JSON, only the fields read.
#[derive(Deserialize)]
struct QueueItem {
    #[serde(default)]
    cancelled: Option<bool>,
    executable: Option<Executable>,
}

#[derive(Deserialize)]
struct Executable {
    number: u64,
}

#[derive(Deserialize, Default)]
struct JobInfo {
    #[serde(default)]
    buildable: Option<bool>,
    #[serde(default)]
    builds: Vec<BuildRef>,
    #[serde(default)]
    property: Vec<Option<JobProperty>>,
}

#[derive(Deserialize)]
struct BuildRef {
    number: u64,
    #[serde(default)]
    actions: Vec<Option<Action>>,
}

#[derive(Deserialize)]
struct Action {
    #[serde(default)]
    parameters: Vec<Parameter>,
}

#[derive(Deserialize)]
struct Parameter {
    name: String,
    #[serde(default)]
    value: serde_json::Value,
}

#[derive(Deserialize)]
struct JobProperty {
    #[serde(default, rename = "parameterDefinitions")]
    parameter_definitions: Vec<ParameterDefinition>,
}

#[derive(Deserialize)]
struct ParameterDefinition {
    name: String,
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

#[derive(Deserialize)]
struct BuildInfo {
    #[serde(default)]
    building: bool,
    result: Option<String>,
    #[serde(default)]
    duration: i64,
    #[serde(default)]
    timestamp: i64,
    description: Option<String>,
}

#[derive(Deserialize)]
struct CrumbAnswer {
    crumb: String,
    #[serde(rename = "crumbRequestField")]
    field: String,
}

impl JobInfo {
    fn definitions(&self) -> impl Iterator<Item = &ParameterDefinition> {
        self.property.iter().flatten().flat_map(|p| &p.parameter_definitions)
    }

    /// The parameters Nova needs that the job does not define.
    fn missing_parameters(&self, with_secret: bool) -> Vec<&'static str> {
        let defined: Vec<&str> = self.definitions().map(|d| d.name.as_str()).collect();
        PARAMETERS.into_iter().chain(with_secret.then_some(SECRET_PARAMETER)).filter(|p| !defined.contains(p)).collect()
    }

    /// The build whose `NOVA_BUILD_ID` is `id`, the oldest if several.
    fn build_with_id(&self, id: Uuid) -> Option<u64> {
        let id = id.to_string();
        self.builds
            .iter()
            .filter(|b| b.actions.iter().flatten().flat_map(|a| &a.parameters).any(|p| p.name == "NOVA_BUILD_ID" && p.value.as_str() == Some(&id)))
            .map(|b| b.number)
            .min()
    }
}

impl JenkinsBackend {
    /// A backend for `[build_backends.<name>]`.
    pub fn new(name: &str, config: JenkinsConfig) -> Result<Self, String> {
        config.validate()?;
        let base = http::base_url(&config.url)?;
        Ok(Self {
            name: name.to_string(),
            client: http::client(config.timeout)?,
            base,
            config,
            crumb: tokio::sync::Mutex::new(None),
            builds: Mutex::new(HashMap::new()),
        })
    }

    fn token(&self) -> Result<Sensitive<String>, BackendError> {
        self.config.token.resolve_local(&format!("build_backends.{}.token", self.name)).map_err(|e| BackendError::Unauthorized(format!("build backend {}: cannot read the Jenkins token: {e}", self.name)))
    }

    /// The error for an answer that is not a success, worded for `what` (e.g. "read job a/b");
    /// `not_found` replaces the generic 404 message.
    async fn error(&self, resp: Response, what: &str, not_found: Option<String>) -> BackendError {
        let (status, headers) = (resp.status(), resp.headers().clone());
        // Jenkins answers errors with an HTML page; its first line of text says enough.
        let detail = if status.is_client_error() && status != StatusCode::NOT_FOUND {
            http::clean(&first_text_line(&resp.text().await.unwrap_or_default()), &[])
        } else {
            String::new()
        };
        if status == StatusCode::BAD_REQUEST || status == StatusCode::CONFLICT {
            let detail = if detail.is_empty() { String::new() } else { format!(": {detail}") };
            return BackendError::Rejected(format!("Jenkins refused to {what} ({status}){detail}"));
        }
        let wording = Wording {
            service: "Jenkins",
            unauthorized: format!(
                "Jenkins at {} rejected the credentials of user {} (401); check build_backends.{}.user and the token in {}",
                self.base,
                self.config.user,
                self.name,
                self.config.token
            ),
            forbidden: format!("Jenkins user {} may not {what} (403)", self.config.user),
            not_found: not_found.unwrap_or_else(|| format!("Jenkins cannot {what}: not found (404)")),
        };
        http::status_error(status, &headers, wording, &detail)
    }

    /// Sends a request with the user's credentials (and, for a POST in password mode, the
    /// crumb, fetched again once if Jenkins refuses it).
    async fn send(&self, method: Method, url: Url, form: Option<String>) -> Result<Response, BackendError> {
        let token = self.token()?;
        let post = method == Method::POST;
        let mut refreshed = false;
        loop {
            let mut request = self.client.request(method.clone(), url.clone()).basic_auth(&self.config.user, Some(token.expose()));
            if post {
                if self.config.auth == JenkinsAuth::Password {
                    let crumb = self.crumb(&token, refreshed).await?;
                    request = request.header(crumb.field.as_str(), crumb.value.expose().as_str());
                    if let Some(cookie) = &crumb.cookie {
                        request = request.header(COOKIE, cookie.expose().as_str());
                    }
                }
                request = request.header(CONTENT_TYPE, "application/x-www-form-urlencoded").body(form.clone().unwrap_or_default());
            }
            tracing::debug!(backend = %self.name, %method, path = url.path(), "Jenkins request");
            let resp = request.send().await.map_err(|e| http::transport("Jenkins", &self.base, e))?;
            if post && self.config.auth == JenkinsAuth::Password && resp.status() == StatusCode::FORBIDDEN && !refreshed {
                refreshed = true; // the crumb may have expired with its session
                continue;
            }
            return Ok(resp);
        }
    }

    /// The crumb for POSTs, fetched once and again when `refresh`.
    async fn crumb(&self, token: &Sensitive<String>, refresh: bool) -> Result<Crumb, BackendError> {
        let mut held = self.crumb.lock().await;
        if let (Some(c), false) = (held.as_ref(), refresh) {
            return Ok(c.clone());
        }
        let url = http::join(&self.base, &["crumbIssuer", "api", "json"], &[]);
        let resp = self.client.get(url).basic_auth(&self.config.user, Some(token.expose())).send().await.map_err(|e| http::transport("Jenkins", &self.base, e))?;
        if !resp.status().is_success() {
            return Err(self.error(resp, "read a CSRF crumb", Some(format!("Jenkins at {} issues no CSRF crumb (404); use auth = \"api-token\"", self.base))).await);
        }
        let cookie = resp.headers().get_all(SET_COOKIE).iter().filter_map(|v| v.to_str().ok()).filter_map(|v| v.split(';').next()).collect::<Vec<_>>().join("; ");
        let answer: CrumbAnswer = resp.json().await.map_err(|e| BackendError::Protocol(format!("Jenkins' crumb answer is not understood: {e}")))?;
        let crumb = Crumb { field: answer.field, value: Sensitive::new(answer.crumb), cookie: (!cookie.is_empty()).then(|| Sensitive::new(cookie)) };
        *held = Some(crumb.clone());
        Ok(crumb)
    }

    async fn get_json<T: DeserializeOwned>(&self, url: Url, what: &str, not_found: Option<String>) -> Result<T, BackendError> {
        let resp = self.send(Method::GET, url, None).await?;
        if !resp.status().is_success() {
            return Err(self.error(resp, what, not_found).await);
        }
        resp.json().await.map_err(|e| BackendError::Protocol(format!("Jenkins' answer to {what} is not understood: {e}")))
    }

    fn job_not_found(&self, job: &JobPath) -> String {
        format!("Jenkins job {job} not found at {} (check the nova.dev/build-pipeline annotation, and that user {} can see the job)", self.base, self.config.user)
    }

    /// The job's parameter definitions and its recent builds with their parameters.
    async fn job_info(&self, job: &JobPath) -> Result<JobInfo, BackendError> {
        let tree = format!("buildable,property[parameterDefinitions[name,type]],builds[number,actions[parameters[name,value]]]{{0,{}}}", self.config.search_depth);
        let url = http::join(&self.base, &job.segments(&["api", "json"]), &[("tree", &tree)]);
        self.get_json(url, &format!("read job {job}"), Some(self.job_not_found(job))).await
    }

    /// The form parameters of a build. Secret arguments go in `SECRET_BUILD_ARGS` (a password
    /// parameter) when that is configured; otherwise the build is refused.
    fn parameters(&self, spec: &BuildSpec) -> Result<Vec<(&'static str, Sensitive<String>)>, BackendError> {
        let mut plain = String::new();
        let mut secret = String::new();
        for arg in &spec.build_args {
            if arg.value.expose().contains(['\n', '\r']) {
                return Err(BackendError::Rejected(format!("build argument {}: the Jenkins backend passes arguments one per line, so a value must not contain a line break", arg.name.as_str())));
            }
            if arg.secret && !self.config.password_parameters {
                return Err(BackendError::Rejected(format!(
                    "build argument {} is secret, and build backend {} does not send secrets; set build_backends.{}.password_parameters = true and give the job a password parameter {SECRET_PARAMETER}",
                    arg.name.as_str(),
                    self.name,
                    self.name
                )));
            }
            let target = if arg.secret { &mut secret } else { &mut plain };
            target.push_str(&format!("{}={}\n", arg.name.as_str(), arg.value.expose()));
        }
        let open = |s: &str| Sensitive::new(s.to_string());
        let mut params = vec![
            ("NOVA_BUILD_ID", open(&spec.build_id.to_string())),
            ("GIT_URL", open(&spec.git_url)),
            ("GIT_REF", open(spec.git_ref.as_str())),
            ("COMMIT", open(spec.commit.as_deref().unwrap_or(""))),
            ("DOCKERFILE", open(spec.dockerfile.as_str())),
            ("CONTEXT", open(spec.context.as_str())),
            ("IMAGE", open(&spec.image)),
            ("TAG", open(&spec.tag)),
            ("BUILD_ARGS", Sensitive::new(plain)),
        ];
        if self.config.password_parameters {
            params.push((SECRET_PARAMETER, Sensitive::new(secret)));
        }
        Ok(params)
    }

    fn handle(&self, job: &JobPath, at: At, build_id: Uuid) -> RunHandle {
        let url = match at {
            At::Queue(_) => http::join(&self.base, &job.segments(&[""]), &[]),
            At::Build(n) => http::join(&self.base, &job.segments(&[&n.to_string(), ""]), &[]),
        };
        RunHandle { backend: self.name.clone(), id: RunId::encode(&job.to_string(), &at.encode(), build_id), url: Some(url.to_string()) }
    }

    fn decode(&self, handle: &RunHandle) -> Result<Run, BackendError> {
        let id = RunId::decode(handle, &self.name)?;
        let bad = || BackendError::Protocol(format!("run id {:?} is not a Jenkins run", handle.id));
        Ok(Run { job: JobPath::parse(id.target).map_err(|_| bad())?, at: At::decode(id.at).ok_or_else(bad)?, build_id: id.build_id })
    }

    /// Where the run is: its build, once the queue item has one (or, once Jenkins forgot the
    /// item, the build carrying its id).
    async fn locate(&self, run: &Run) -> Result<Located, BackendError> {
        let queue_id = match run.at {
            At::Build(n) => return Ok(Located::Build(n)),
            At::Queue(q) => q,
        };
        if let Some(n) = self.builds.lock().expect("not poisoned").get(&run.build_id) {
            return Ok(Located::Build(*n));
        }
        let url = http::join(&self.base, &["queue", "item", &queue_id.to_string(), "api", "json"], &[]);
        let resp = self.send(Method::GET, url, None).await?;
        let found = if resp.status() == StatusCode::NOT_FOUND {
            // Jenkins keeps items for five minutes after they leave the queue.
            tracing::debug!(backend = %self.name, queue_item = queue_id, "queue item expired; searching builds by NOVA_BUILD_ID");
            match self.job_info(&run.job).await?.build_with_id(run.build_id) {
                Some(n) => n,
                None => return Ok(Located::Lost(queue_id)),
            }
        } else if resp.status().is_success() {
            let item: QueueItem = resp.json().await.map_err(|e| BackendError::Protocol(format!("Jenkins queue item {queue_id} is not understood: {e}")))?;
            match (item.executable, item.cancelled) {
                (Some(e), _) => e.number,
                (None, Some(true)) => return Ok(Located::CancelledInQueue),
                (None, _) => return Ok(Located::Queued),
            }
        } else {
            return Err(self.error(resp, &format!("read queue item {queue_id}"), None).await);
        };
        self.builds.lock().expect("not poisoned").insert(run.build_id, found);
        Ok(Located::Build(found))
    }

    async fn build_status(&self, job: &JobPath, number: u64) -> Result<RunStatus, BackendError> {
        let url = http::join(&self.base, &job.segments(&[&number.to_string(), "api", "json"]), &[("tree", "building,result,duration,timestamp,description")]);
        let info: BuildInfo = self.get_json(url, &format!("read build {job} #{number}"), Some(format!("Jenkins build {job} #{number} not found (deleted?)"))).await?;
        let state = match (info.building, info.result.as_deref()) {
            (true, _) | (false, None) => RunState::Running,
            (false, Some("SUCCESS")) => RunState::Succeeded,
            (false, Some("ABORTED")) => RunState::Cancelled,
            (false, Some("UNSTABLE")) => RunState::Failed("Jenkins marked the build UNSTABLE".into()),
            (false, Some("FAILURE")) => RunState::Failed("the Jenkins build failed (FAILURE)".into()),
            (false, Some("NOT_BUILT")) => RunState::Failed("Jenkins did not build it (NOT_BUILT)".into()),
            (false, Some(other)) => RunState::Failed(format!("Jenkins result {other}")),
        };
        let finished = state.is_finished();
        Ok(RunStatus {
            url: Some(http::join(&self.base, &job.segments(&[&number.to_string(), ""]), &[]).to_string()),
            started_at_ms: (info.timestamp > 0).then_some(info.timestamp),
            duration_ms: finished.then_some(info.duration),
            digest: info.description.as_deref().and_then(find_digest),
            state,
        })
    }

    async fn post_ok(&self, url: Url, what: &str, not_found: Option<String>) -> Result<(), BackendError> {
        let resp = self.send(Method::POST, url, None).await?;
        // Jenkins answers these with a redirect (302/303) or 200/204.
        if resp.status().is_success() || resp.status().is_redirection() {
            return Ok(());
        }
        Err(self.error(resp, what, not_found).await)
    }
}

/// The first line of text in an HTML or plain answer (Jenkins' error pages are HTML).
fn first_text_line(body: &str) -> String {
    let mut text = String::new();
    let mut in_tag = false;
    for c in body.chars() {
        match c {
            '<' => {
                in_tag = true;
                text.push('\n');
            }
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or_default().to_string()
}

/// `sha256:<64 hex>` anywhere in `text` (the job may put the pushed digest in the build's
/// description).
fn find_digest(text: &str) -> Option<String> {
    text.match_indices("sha256:").find_map(|(i, _)| {
        let hex = text.get(i + 7..i + 71)?;
        hex.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()).then(|| format!("sha256:{hex}"))
    })
}

/// The queue item number in a `Location` such as `https://jenkins/queue/item/17/`.
fn queue_item(location: &str) -> Option<u64> {
    let rest = &location[location.find("/queue/item/")? + "/queue/item/".len()..];
    rest.trim_end_matches('/').split('/').next()?.parse().ok()
}

/// Text from bytes, keeping an incomplete UTF-8 sequence at the end for the next read while
/// more is coming; returns the text and how many bytes it used.
fn utf8_prefix(bytes: &[u8], more: bool) -> (String, usize) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (s.to_string(), bytes.len()),
        Err(e) if more && e.error_len().is_none() => {
            let used = e.valid_up_to();
            (String::from_utf8_lossy(&bytes[..used]).into_owned(), used)
        }
        Err(_) => (String::from_utf8_lossy(bytes).into_owned(), bytes.len()),
    }
}

#[async_trait]
impl BuildBackend for JenkinsBackend {
    async fn start(&self, spec: &BuildSpec) -> Result<RunHandle, BackendError> {
        let job = JobPath::parse(&spec.target).map_err(|e| BackendError::Rejected(format!("Jenkins job {:?}: {e}", spec.target)))?;
        let params = self.parameters(spec)?;
        let info = self.job_info(&job).await?;
        let missing = info.missing_parameters(self.config.password_parameters);
        if !missing.is_empty() {
            return Err(BackendError::Rejected(format!(
                "Jenkins job {job} does not define the parameters {} that Nova passes (Jenkins would drop them silently); see docs/BUILDS.md",
                missing.join(", ")
            )));
        }
        if let Some(n) = info.build_with_id(spec.build_id) {
            tracing::info!(backend = %self.name, %job, build_id = %spec.build_id, build = n, "Jenkins already has this build; not starting another");
            return Ok(self.handle(&job, At::Build(n), spec.build_id));
        }
        let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.expose().as_str())).collect();
        let url = http::join(&self.base, &job.segments(&["buildWithParameters"]), &[]);
        let resp = self.send(Method::POST, url, Some(http::form(&pairs))).await?;
        let status = resp.status();
        if status != StatusCode::CREATED && status != StatusCode::SEE_OTHER {
            if status.is_success() || status.is_redirection() {
                return Err(BackendError::Protocol(format!("Jenkins answered {status} without a queue item to build {job} (is the job disabled?)")));
            }
            let secrets: Vec<&str> = spec.build_args.iter().map(|a| a.value.expose().as_str()).collect();
            return Err(self.error(resp, &format!("build job {job}"), Some(self.job_not_found(&job))).await.redact(&secrets));
        }
        let location = http::header(resp.headers(), LOCATION.as_str()).unwrap_or_default();
        let Some(queue_id) = queue_item(location) else {
            return Err(BackendError::Protocol(format!("Jenkins answered {status} to build {job} without a queue item in Location")));
        };
        if status == StatusCode::SEE_OTHER {
            tracing::info!(backend = %self.name, %job, build_id = %spec.build_id, queue_item = queue_id, "Jenkins merged the request into the identical queued item");
        } else {
            tracing::info!(backend = %self.name, %job, build_id = %spec.build_id, queue_item = queue_id, "Jenkins queued the build");
        }
        Ok(self.handle(&job, At::Queue(queue_id), spec.build_id))
    }

    async fn status(&self, handle: &RunHandle) -> Result<RunStatus, BackendError> {
        let run = self.decode(handle)?;
        let waiting = |state| RunStatus { state, url: handle.url.clone(), started_at_ms: None, duration_ms: None, digest: None };
        match self.locate(&run).await? {
            Located::Queued => Ok(waiting(RunState::Queued)),
            Located::CancelledInQueue => Ok(waiting(RunState::Cancelled)),
            Located::Build(n) => self.build_status(&run.job, n).await,
            Located::Lost(q) => Ok(waiting(RunState::Failed(format!(
                "Jenkins no longer knows queue item {q}, and none of the last {} builds of {} carries NOVA_BUILD_ID {} (cancelled more than five minutes ago, or the build was deleted)",
                self.config.search_depth, run.job, run.build_id
            )))),
        }
    }

    async fn logs(&self, handle: &RunHandle, offset: u64) -> Result<LogChunk, BackendError> {
        let run = self.decode(handle)?;
        let number = match self.locate(&run).await? {
            Located::Build(n) => n,
            Located::Queued => return Ok(LogChunk { text: String::new(), next_offset: offset, more: true }),
            Located::CancelledInQueue | Located::Lost(_) => return Ok(LogChunk { text: String::new(), next_offset: offset, more: false }),
        };
        let start = offset.to_string();
        let url = http::join(&self.base, &run.job.segments(&[&number.to_string(), "logText", "progressiveText"]), &[("start", &start)]);
        let resp = self.send(Method::GET, url, None).await?;
        if !resp.status().is_success() {
            return Err(self.error(resp, &format!("read the log of {} #{number}", run.job), Some(format!("Jenkins build {} #{number} not found (deleted?)", run.job))).await);
        }
        let size = http::header(resp.headers(), "x-text-size").and_then(|v| v.trim().parse::<u64>().ok());
        let more = http::header(resp.headers(), "x-more-data").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        let bytes = resp.bytes().await.map_err(|e| http::transport("Jenkins", &self.base, e))?;
        let (text, used) = utf8_prefix(&bytes, more);
        let held_back = (bytes.len() - used) as u64;
        let next_offset = size.map_or(offset + used as u64, |s| s.saturating_sub(held_back).max(offset));
        Ok(LogChunk { text, next_offset, more })
    }

    async fn cancel(&self, handle: &RunHandle) -> Result<(), BackendError> {
        let run = self.decode(handle)?;
        let mut located = self.locate(&run).await?;
        if let (Located::Queued, At::Queue(q)) = (&located, run.at) {
            let url = http::join(&self.base, &["queue", "cancelItem"], &[("id", &q.to_string())]);
            // An item that left the queue meanwhile is not found; it is stopped below.
            match self.post_ok(url, &format!("cancel queue item {q}"), None).await {
                Ok(()) | Err(BackendError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
            located = self.locate(&run).await?;
        }
        if let Located::Build(n) = located {
            let url = http::join(&self.base, &run.job.segments(&[&n.to_string(), "stop"]), &[]);
            self.post_ok(url, &format!("stop build {} #{n}", run.job), Some(format!("Jenkins build {} #{n} not found (deleted?)", run.job))).await?;
        }
        tracing::info!(backend = %self.name, job = %run.job, build_id = %run.build_id, "asked Jenkins to cancel the build");
        Ok(())
    }

    async fn health_check(&self, target: &str) -> HealthReport {
        let label = format!("{}: {target} at {}", self.name, self.base);
        let job = match JobPath::parse(target) {
            Ok(job) => job,
            Err(e) => return HealthReport::fail(KIND, label, format!("{target:?} is not a Jenkins job path: {e}"), "fix the nova.dev/build-pipeline annotation: jenkins:folder/job"),
        };
        if self.config.auth == JenkinsAuth::Password
            && let Ok(token) = self.token()
            && let Err(e) = self.crumb(&token, true).await
        {
            return HealthReport::fail(KIND, label, e.to_string(), "use an API token (auth = \"api-token\"), or check that Jenkins' CSRF protection issues crumbs to this user");
        }
        let info = match self.job_info(&job).await {
            Ok(info) => info,
            Err(e) => {
                let fix = match &e {
                    BackendError::Unauthorized(_) => format!("check build_backends.{}.user and the API token in {} (create one on the user's Security page in Jenkins)", self.name, self.config.token),
                    BackendError::Forbidden(_) => format!("grant Jenkins user {} Overall/Read, Job/Read, Job/Build and Job/Cancel on {job}", self.config.user),
                    BackendError::NotFound(_) => format!("check the job path in the annotation and that user {} can see it", self.config.user),
                    _ => format!("check build_backends.{}.url and that Nova's host can reach Jenkins", self.name),
                };
                return HealthReport::fail(KIND, label, e.to_string(), fix);
            }
        };
        let missing = info.missing_parameters(self.config.password_parameters);
        if !missing.is_empty() {
            return HealthReport::fail(KIND, label, format!("job {job} lacks the parameters {}", missing.join(", ")), "add them to the job as string parameters (see docs/BUILDS.md); Jenkins drops parameters a job does not define");
        }
        if self.config.password_parameters
            && let Some(d) = info.definitions().find(|d| d.name == SECRET_PARAMETER)
            && d.kind.as_deref() != Some("PasswordParameterDefinition")
        {
            return HealthReport::fail(KIND, label, format!("{SECRET_PARAMETER} on {job} is not a password parameter, so Jenkins would show secret build arguments"), format!("make {SECRET_PARAMETER} a password parameter"));
        }
        if info.buildable == Some(false) {
            return HealthReport::warn(KIND, label, format!("job {job} is disabled"), "enable the job in Jenkins");
        }
        HealthReport::pass(KIND, label, format!("user {} reads job {job}, which defines Nova's parameters", self.config.user))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_paths() {
        assert_eq!(JobPath::parse("payments/payment-service-build").unwrap().segments(&["api"]), ["job", "payments", "job", "payment-service-build", "api"]);
        assert_eq!(JobPath::parse("My Folder/job 1").unwrap().to_string(), "My Folder/job 1");
        for bad in ["", "/a", "a/", "a//b", "a/../b", "a#b", "a;b", "a%2Fb"] {
            assert!(JobPath::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn queue_locations_and_digests() {
        assert_eq!(queue_item("https://ci.example.com/jenkins/queue/item/17/"), Some(17));
        assert_eq!(queue_item("/queue/item/3"), Some(3));
        assert_eq!(queue_item("https://ci.example.com/job/a/"), None);
        let d = format!("pushed sha256:{}", "ab".repeat(32));
        assert_eq!(find_digest(&d), Some(format!("sha256:{}", "ab".repeat(32))));
        assert_eq!(find_digest("sha256:abc"), None);
        assert_eq!(first_text_line("<html><head><title>Error 400</title></head><body>Nothing is submitted</body></html>"), "Error 400");
    }

    #[test]
    fn logs_keep_a_split_character_for_the_next_read() {
        let bytes = "héllo".as_bytes();
        assert_eq!(utf8_prefix(&bytes[..2], true), ("h".to_string(), 1));
        assert_eq!(utf8_prefix(&bytes[..2], false).1, 2);
        assert_eq!(utf8_prefix(bytes, true), ("héllo".to_string(), 6));
    }
}
