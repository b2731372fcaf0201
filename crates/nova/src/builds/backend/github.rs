//! GitHub Actions through the REST API's `workflow_dispatch`.
//!
//! `start` dispatches the workflow (`POST /repos/{o}/{r}/actions/workflows/{w}/dispatches`)
//! with Nova's inputs, among them `nova_build_id`, and asks for `return_run_details`: GitHub
//! then answers `200` with the run's id. A server that predates that flag (GitHub Enterprise
//! Server) answers `204` without a body, or refuses the flag with `400`/`422`; Nova then
//! dispatches without it and finds the run in the workflow's runs by its name, which the
//! workflow sets to contain the build id (`run-name: ... ${{ inputs.nova_build_id }}`). The
//! same search makes `start` idempotent: a retry after a crash finds the run already
//! dispatched.
//!
//! GitHub keeps a run's log as a zip archive per job, not as text that grows; `logs` offers the
//! run's link and its jobs' steps as they finish, one line each.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use nova_domain::Sensitive;
use nova_domain::build::GitRef;
use reqwest::header::ACCEPT;
use reqwest::{Method, Response, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use url::Url;
use uuid::Uuid;

use super::http::{self, Wording};
use super::{BackendError, BuildBackend, BuildSpec, LogChunk, RunHandle, RunId, RunState, RunStatus};
use crate::secrets::SecretRef;
use crate::health::HealthReport;

/// The `type` of a GitHub Actions backend.
pub const KIND: &str = "github-actions";

/// The `workflow_dispatch` inputs every workflow Nova starts must declare (GitHub refuses a
/// dispatch with undeclared inputs).
pub const INPUTS: [&str; 9] = ["nova_build_id", "git_url", "git_ref", "commit", "dockerfile", "context", "image", "tag", "build_args"];

const API_VERSION: &str = "2022-11-28";

/// How long after its dispatch a run that never appeared in the runs list counts as lost.
const PENDING_LIMIT_MS: i64 = 10 * 60 * 1000;

/// How far before a dispatch the runs list is searched (clocks differ).
const CLOCK_SLACK_MS: i64 = 5 * 60 * 1000;

/// `[build_backends.<name>]` with `type = "github-actions"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubActionsConfig {
    /// The REST API's root: `https://api.github.com`, or `https://HOST/api/v3` for GitHub
    /// Enterprise Server.
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// A personal access token or a GitHub App installation token, by reference; read at every
    /// request, so a file rewritten by a token refresher is picked up.
    pub token: SecretRef,
    /// The branch or tag whose workflow file is run. Unset: the build's own git ref (which
    /// must then be a branch or tag of the workflow's repository).
    #[serde(default)]
    pub workflow_ref: Option<String>,
    /// Ask GitHub for the run's id in the dispatch answer. Turned off by itself for the rest
    /// of the process when the server does not support it.
    #[serde(default = "yes")]
    pub return_run_details: bool,
    /// Longest a single request may take.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Without run details, how long `start` looks for the dispatched run before it returns a
    /// handle that `status` resolves later.
    #[serde(default = "default_lookup_wait", with = "humantime_serde")]
    pub run_lookup_wait: Duration,
}

fn default_api_url() -> String {
    "https://api.github.com".into()
}

fn yes() -> bool {
    true
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_lookup_wait() -> Duration {
    Duration::from_secs(10)
}

impl GithubActionsConfig {
    pub(super) fn validate(&self) -> Result<(), String> {
        http::base_url(&self.api_url).map_err(|e| format!("api_url: {e}"))?;
        if let Some(r) = &self.workflow_ref {
            let r = GitRef::parse(r).map_err(|e| format!("workflow_ref: {e}"))?;
            if r.is_commit() {
                return Err("workflow_ref: GitHub dispatches workflows on a branch or tag, not a commit".into());
            }
        }
        if self.timeout < Duration::from_secs(1) {
            return Err("timeout: must be at least 1s".into());
        }
        if self.run_lookup_wait > Duration::from_secs(300) {
            return Err("run_lookup_wait: must be at most 5m".into());
        }
        Ok(())
    }
}

/// `owner/repo/workflow`: the workflow a file name (`build.yml`) or a numeric id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WorkflowTarget {
    pub owner: String,
    pub repo: String,
    pub workflow: String,
}

impl WorkflowTarget {
    /// Parses `owner/repo/workflow.yml`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split('/').collect();
        let [owner, repo, workflow] = parts.as_slice() else {
            return Err("must be owner/repo/workflow.yml (the workflow's file name under .github/workflows, or its id)".into());
        };
        let name_chars = |s: &str, extra: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || extra.contains(c));
        if !name_chars(owner, "-") || owner.len() > 39 {
            return Err(format!("owner {owner:?} must be letters, digits and '-'"));
        }
        if !name_chars(repo, "-_.") || repo.len() > 100 || *repo == "." || *repo == ".." {
            return Err(format!("repository {repo:?} must be letters, digits, '-', '_' and '.'"));
        }
        let is_id = workflow.chars().all(|c| c.is_ascii_digit()) && !workflow.is_empty();
        let is_file = name_chars(workflow, "-_.") && (workflow.ends_with(".yml") || workflow.ends_with(".yaml"));
        if !is_id && !is_file {
            return Err(format!("workflow {workflow:?} must be a file name ending in .yml or .yaml, or a workflow id"));
        }
        Ok(Self { owner: owner.to_string(), repo: repo.to_string(), workflow: workflow.to_string() })
    }

    fn repo_segments<'a>(&'a self, rest: &[&'a str]) -> Vec<&'a str> {
        ["repos", self.owner.as_str(), self.repo.as_str()].into_iter().chain(rest.iter().copied()).collect()
    }
}

impl std::fmt::Display for WorkflowTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.owner, self.repo, self.workflow)
    }
}

/// Where a run is, as its id records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    /// A run id.
    Run(u64),
    /// Dispatched at this time (Unix ms), run not seen yet.
    Pending(i64),
}

impl At {
    fn encode(self) -> String {
        match self {
            Self::Run(id) => format!("run/{id}"),
            Self::Pending(ms) => format!("pending/{ms}"),
        }
    }

    fn decode(s: &str) -> Option<Self> {
        if let Some(id) = s.strip_prefix("run/") {
            return id.parse().ok().map(Self::Run);
        }
        s.strip_prefix("pending/")?.parse().ok().map(Self::Pending)
    }
}

// GitHub's JSON, only the fields read.
#[derive(Deserialize)]
struct DispatchDetails {
    workflow_run_id: u64,
    html_url: Option<String>,
}

#[derive(Deserialize)]
struct RunList {
    #[serde(default)]
    workflow_runs: Vec<Run>,
}

#[derive(Deserialize)]
struct Run {
    id: u64,
    name: Option<String>,
    display_title: Option<String>,
    status: Option<String>,
    conclusion: Option<String>,
    html_url: Option<String>,
    run_started_at: Option<String>,
    updated_at: Option<String>,
}

#[derive(Deserialize)]
struct JobList {
    #[serde(default)]
    jobs: Vec<Job>,
}

#[derive(Deserialize)]
struct Job {
    id: u64,
    name: String,
    status: Option<String>,
    conclusion: Option<String>,
    completed_at: Option<String>,
    #[serde(default)]
    steps: Vec<Step>,
}

#[derive(Deserialize)]
struct Step {
    name: String,
    status: Option<String>,
    conclusion: Option<String>,
    number: u64,
    completed_at: Option<String>,
}

#[derive(Deserialize)]
struct Workflow {
    path: String,
    state: String,
}

#[derive(Deserialize)]
struct Contents {
    content: String,
}

/// GitHub Actions on github.com or a GitHub Enterprise Server.
pub struct GithubActionsBackend {
    name: String,
    config: GithubActionsConfig,
    api: Url,
    client: reqwest::Client,
    /// Whether to ask for run details; cleared when the server shows it does not know them.
    run_details: AtomicBool,
}

/// Unix milliseconds of an RFC 3339 time.
fn parse_ms(s: Option<&str>) -> Option<i64> {
    let t = time::OffsetDateTime::parse(s?, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// An RFC 3339 time, whole seconds, for GitHub's `created` filter.
fn format_ms(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// Whether the run carries the build id in its name (`run-name`) or title.
fn carries(run: &Run, build_id: &str) -> bool {
    [&run.display_title, &run.name].into_iter().flatten().any(|t| t.contains(build_id))
}

impl GithubActionsBackend {
    /// A backend for `[build_backends.<name>]`.
    pub fn new(name: &str, config: GithubActionsConfig) -> Result<Self, String> {
        config.validate()?;
        Ok(Self {
            name: name.to_string(),
            api: http::base_url(&config.api_url)?,
            client: http::client(config.timeout)?,
            run_details: AtomicBool::new(config.return_run_details),
            config,
        })
    }

    fn token(&self) -> Result<Sensitive<String>, BackendError> {
        self.config.token.resolve_local(&format!("build_backends.{}.token", self.name)).map_err(|e| BackendError::Unauthorized(format!("build backend {}: cannot read the GitHub token: {e}", self.name)))
    }

    async fn send(&self, method: Method, url: Url, body: Option<&serde_json::Value>) -> Result<Response, BackendError> {
        let token = self.token()?;
        tracing::debug!(backend = %self.name, %method, path = url.path(), "GitHub request");
        let mut request = self.client.request(method, url).bearer_auth(token.expose()).header(ACCEPT, "application/vnd.github+json").header("X-GitHub-Api-Version", API_VERSION);
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.map_err(|e| http::transport("GitHub", &self.api, e))
    }

    /// The error for an answer that is not a success, worded for `what` ("dispatch o/r/w").
    async fn error(&self, resp: Response, what: &str, not_found: String, secrets: &[&str]) -> BackendError {
        let (status, headers) = (resp.status(), resp.headers().clone());
        let detail = http::error_text(resp, secrets).await;
        if matches!(status, StatusCode::BAD_REQUEST | StatusCode::CONFLICT | StatusCode::UNPROCESSABLE_ENTITY) {
            return BackendError::Rejected(format!("GitHub refused to {what} ({status}): {detail}"));
        }
        let wording = Wording {
            service: "GitHub",
            unauthorized: format!(
                "GitHub rejected the token in {} (401); check build_backends.{}.token (an App installation token expires after an hour)",
                self.config.token,
                self.name
            ),
            forbidden: format!("the GitHub token of build backend {} may not {what} (403; it needs actions:write on the repository)", self.name),
            not_found,
        };
        http::status_error(status, &headers, wording, &detail)
    }

    fn not_found(&self, wf: &WorkflowTarget) -> String {
        format!("GitHub workflow {wf} not found (or the token of build backend {} cannot see {}/{})", self.name, wf.owner, wf.repo)
    }

    async fn get_json<T: DeserializeOwned>(&self, url: Url, what: &str, not_found: String) -> Result<T, BackendError> {
        let resp = self.send(Method::GET, url, None).await?;
        if !resp.status().is_success() {
            return Err(self.error(resp, what, not_found, &[]).await);
        }
        resp.json().await.map_err(|e| BackendError::Protocol(format!("GitHub's answer to {what} is not understood: {e}")))
    }

    async fn get_run(&self, wf: &WorkflowTarget, id: u64) -> Result<Run, BackendError> {
        let url = http::join(&self.api, &wf.repo_segments(&["actions", "runs", &id.to_string()]), &[]);
        self.get_json(url, &format!("read run {id} of {wf}"), format!("GitHub run {id} of {}/{} not found (deleted?)", wf.owner, wf.repo)).await
    }

    async fn get_jobs(&self, wf: &WorkflowTarget, id: u64) -> Result<Vec<Job>, BackendError> {
        let url = http::join(&self.api, &wf.repo_segments(&["actions", "runs", &id.to_string(), "jobs"]), &[("per_page", "100")]);
        let list: JobList = self.get_json(url, &format!("read the jobs of run {id} of {wf}"), format!("GitHub run {id} of {}/{} not found (deleted?)", wf.owner, wf.repo)).await?;
        Ok(list.jobs)
    }

    /// The oldest `workflow_dispatch` run of the workflow created since `since_ms` whose name
    /// carries `build_id`.
    async fn find_run(&self, wf: &WorkflowTarget, build_id: Uuid, since_ms: i64) -> Result<Option<Run>, BackendError> {
        let id = build_id.to_string();
        let created = format!(">={}", format_ms(since_ms));
        let mut found: Option<Run> = None;
        for page in 1..=5 {
            let page_text = page.to_string();
            let url = http::join(
                &self.api,
                &wf.repo_segments(&["actions", "workflows", &wf.workflow, "runs"]),
                &[("event", "workflow_dispatch"), ("created", &created), ("per_page", "100"), ("page", &page_text)],
            );
            let list: RunList = self.get_json(url, &format!("list the runs of {wf}"), self.not_found(wf)).await?;
            let full = list.workflow_runs.len() == 100;
            for run in list.workflow_runs.into_iter().filter(|r| carries(r, &id)) {
                if found.as_ref().is_none_or(|f| run.id < f.id) {
                    found = Some(run);
                }
            }
            if !full {
                break;
            }
        }
        Ok(found)
    }

    /// Where to start looking for a build's run: shortly before its id was made (a UUIDv7
    /// carries its time), otherwise a day back.
    fn search_since(build_id: Uuid) -> i64 {
        let made = build_id.get_timestamp().map(|t| {
            let (secs, nanos) = t.to_unix();
            secs as i64 * 1000 + i64::from(nanos / 1_000_000)
        });
        made.unwrap_or_else(|| http::now_ms() - 24 * 3600 * 1000) - CLOCK_SLACK_MS
    }

    fn handle(&self, wf: &WorkflowTarget, at: At, build_id: Uuid, url: Option<String>) -> RunHandle {
        RunHandle { backend: self.name.clone(), id: RunId::encode(&wf.to_string(), &at.encode(), build_id), url }
    }

    fn decode(&self, handle: &RunHandle) -> Result<(WorkflowTarget, At, Uuid), BackendError> {
        let id = RunId::decode(handle, &self.name)?;
        let bad = || BackendError::Protocol(format!("run id {:?} is not a GitHub Actions run", handle.id));
        Ok((WorkflowTarget::parse(id.target).map_err(|_| bad())?, At::decode(id.at).ok_or_else(bad)?, id.build_id))
    }

    /// Dispatches the workflow; the run's id when the server returned it.
    async fn dispatch(&self, wf: &WorkflowTarget, git_ref: &str, inputs: &serde_json::Value, secrets: &[&str]) -> Result<Option<DispatchDetails>, BackendError> {
        let url = http::join(&self.api, &wf.repo_segments(&["actions", "workflows", &wf.workflow, "dispatches"]), &[]);
        let what = format!("dispatch workflow {wf} on {git_ref}");
        loop {
            let details = self.run_details.load(Ordering::Relaxed);
            let mut body = json!({ "ref": git_ref, "inputs": inputs });
            if details {
                body["return_run_details"] = json!(true);
            }
            let resp = self.send(Method::POST, url.clone(), Some(&body)).await?;
            match resp.status() {
                StatusCode::OK if details => {
                    let d: DispatchDetails = resp.json().await.map_err(|e| BackendError::Protocol(format!("GitHub's answer to {what} is not understood: {e}")))?;
                    return Ok(Some(d));
                }
                StatusCode::OK | StatusCode::NO_CONTENT => {
                    if details {
                        self.run_details.store(false, Ordering::Relaxed);
                        tracing::info!(backend = %self.name, "GitHub does not return run details; finding runs by nova_build_id from now on");
                    }
                    return Ok(None);
                }
                StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY if details => {
                    let message = http::error_text(resp, secrets).await;
                    if !message.contains("return_run_details") {
                        return Err(BackendError::Rejected(format!("GitHub refused to {what}: {message}")));
                    }
                    self.run_details.store(false, Ordering::Relaxed);
                    tracing::info!(backend = %self.name, "GitHub refused return_run_details; dispatching without it and finding runs by nova_build_id");
                }
                _ => return Err(self.error(resp, &what, self.not_found(wf), secrets).await),
            }
        }
    }

    /// After a dispatch without run details: looks for the run for `run_lookup_wait`, then
    /// hands back a pending handle that `status` resolves.
    async fn await_run(&self, wf: &WorkflowTarget, build_id: Uuid, dispatched_ms: i64) -> Result<RunHandle, BackendError> {
        let deadline = tokio::time::Instant::now() + self.config.run_lookup_wait;
        let pause = Duration::from_secs(1).min(self.config.run_lookup_wait);
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(pause).await;
            if let Some(run) = self.find_run(wf, build_id, dispatched_ms - CLOCK_SLACK_MS).await? {
                return Ok(self.handle(wf, At::Run(run.id), build_id, run.html_url));
            }
        }
        tracing::info!(backend = %self.name, workflow = %wf, %build_id, "the dispatched run has not appeared yet; status will look for it");
        Ok(self.handle(wf, At::Pending(dispatched_ms), build_id, None))
    }

    /// The run a handle points at, if it has appeared; `Err(state)` when it has not.
    async fn resolve(&self, wf: &WorkflowTarget, at: At, build_id: Uuid) -> Result<Result<Run, RunState>, BackendError> {
        match at {
            At::Run(id) => Ok(Ok(self.get_run(wf, id).await?)),
            At::Pending(ms) => match self.find_run(wf, build_id, ms - CLOCK_SLACK_MS).await? {
                Some(run) => Ok(Ok(run)),
                None if http::now_ms() - ms > PENDING_LIMIT_MS => Ok(Err(RunState::Failed(format!(
                    "no run of {wf} named with nova_build_id {build_id} appeared within 10 minutes of the dispatch; the workflow must set run-name to contain ${{{{ inputs.nova_build_id }}}} (docs/BUILDS.md)"
                )))),
                None => Ok(Err(RunState::Queued)),
            },
        }
    }

    /// Why a failed run failed: the first failed job and step.
    async fn failure_reason(&self, wf: &WorkflowTarget, run: &Run, conclusion: &str) -> String {
        let jobs = match self.get_jobs(wf, run.id).await {
            Ok(jobs) => jobs,
            Err(e) => {
                tracing::debug!(backend = %self.name, error = %e, "cannot read the failed run's jobs");
                Vec::new()
            }
        };
        let failed = jobs.iter().find(|j| j.conclusion.as_deref() == Some("failure"));
        match failed {
            Some(job) => match job.steps.iter().find(|s| s.conclusion.as_deref() == Some("failure")) {
                Some(step) => format!("job {} failed at step {:?}", job.name, step.name),
                None => format!("job {} failed", job.name),
            },
            None => format!("the run concluded {conclusion}"),
        }
    }

    async fn run_status(&self, wf: &WorkflowTarget, run: &Run) -> RunStatus {
        let state = match (run.status.as_deref(), run.conclusion.as_deref()) {
            (Some("completed"), Some("success")) => RunState::Succeeded,
            (Some("completed"), Some("cancelled")) => RunState::Cancelled,
            (Some("completed"), Some("timed_out")) => RunState::TimedOut,
            (Some("completed"), conclusion) => RunState::Failed(self.failure_reason(wf, run, conclusion.unwrap_or("without a conclusion")).await),
            (Some("in_progress"), _) => RunState::Running,
            _ => RunState::Queued, // queued, requested, waiting, pending
        };
        let started = if state == RunState::Queued { None } else { parse_ms(run.run_started_at.as_deref()) };
        let duration = if state.is_finished() { started.zip(parse_ms(run.updated_at.as_deref())).map(|(s, e)| (e - s).max(0)) } else { None };
        RunStatus { state, url: run.html_url.clone(), started_at_ms: started, duration_ms: duration, digest: None }
    }
}

/// The text `logs` offers: the run's link, then a line for each finished step and job, in
/// the order they finished (so that the text only grows while the run goes on).
fn render_log(run: &Run, jobs: &[Job]) -> String {
    let mut lines: Vec<(String, u64, u64, String)> = Vec::new();
    for job in jobs {
        for step in job.steps.iter().filter(|s| s.status.as_deref() == Some("completed")) {
            let line = format!("[{}] {}: {}\n", job.name, step.name, step.conclusion.as_deref().unwrap_or("done"));
            lines.push((step.completed_at.clone().unwrap_or_default(), job.id, step.number, line));
        }
        if job.status.as_deref() == Some("completed") {
            let line = format!("[{}] job finished: {}\n", job.name, job.conclusion.as_deref().unwrap_or("done"));
            lines.push((job.completed_at.clone().unwrap_or_default(), job.id, u64::MAX, line));
        }
    }
    lines.sort();
    let mut text = format!(
        "GitHub keeps this run's full log as a zip archive; it is at {}\nNova shows each step as it finishes.\n",
        run.html_url.as_deref().unwrap_or("the run's page on GitHub")
    );
    text.extend(lines.into_iter().map(|(.., line)| line));
    text
}

#[async_trait]
impl BuildBackend for GithubActionsBackend {
    async fn start(&self, spec: &BuildSpec) -> Result<RunHandle, BackendError> {
        let wf = WorkflowTarget::parse(&spec.target).map_err(|e| BackendError::Rejected(format!("GitHub workflow {:?}: {e}", spec.target)))?;
        if let Some(arg) = spec.build_args.iter().find(|a| a.secret) {
            return Err(BackendError::Rejected(format!(
                "build argument {} is secret, and workflow_dispatch inputs are visible to anyone who can read the run; keep it in a GitHub Actions secret of {}/{} instead",
                arg.name.as_str(),
                wf.owner,
                wf.repo
            )));
        }
        let git_ref = match &self.config.workflow_ref {
            Some(r) => r.clone(),
            None if spec.git_ref.is_commit() => {
                return Err(BackendError::Rejected(format!(
                    "GitHub runs workflows from a branch or tag, and {} looks like a commit; build a branch or tag, or set build_backends.{}.workflow_ref",
                    spec.git_ref, self.name
                )));
            }
            None => spec.git_ref.as_str().to_string(),
        };
        let args: serde_json::Map<String, serde_json::Value> = spec.build_args.iter().map(|a| (a.name.as_str().to_string(), json!(a.value.expose()))).collect();
        let inputs = json!({
            "nova_build_id": spec.build_id.to_string(),
            "git_url": spec.git_url,
            "git_ref": spec.git_ref.as_str(),
            "commit": spec.commit.as_deref().unwrap_or(""),
            "dockerfile": spec.dockerfile.as_str(),
            "context": spec.context.as_str(),
            "image": spec.image,
            "tag": spec.tag,
            "build_args": serde_json::Value::Object(args).to_string(),
        });
        if let Some(run) = self.find_run(&wf, spec.build_id, Self::search_since(spec.build_id)).await? {
            tracing::info!(backend = %self.name, workflow = %wf, build_id = %spec.build_id, run = run.id, "GitHub already has a run for this build; not dispatching another");
            return Ok(self.handle(&wf, At::Run(run.id), spec.build_id, run.html_url));
        }
        let dispatched_ms = http::now_ms();
        let values: Vec<&str> = spec.build_args.iter().map(|a| a.value.expose().as_str()).collect();
        match self.dispatch(&wf, &git_ref, &inputs, &values).await? {
            Some(details) => {
                tracing::info!(backend = %self.name, workflow = %wf, build_id = %spec.build_id, run = details.workflow_run_id, "GitHub dispatched the workflow");
                Ok(self.handle(&wf, At::Run(details.workflow_run_id), spec.build_id, details.html_url))
            }
            None => self.await_run(&wf, spec.build_id, dispatched_ms).await,
        }
    }

    async fn status(&self, handle: &RunHandle) -> Result<RunStatus, BackendError> {
        let (wf, at, build_id) = self.decode(handle)?;
        match self.resolve(&wf, at, build_id).await? {
            Ok(run) => Ok(self.run_status(&wf, &run).await),
            Err(state) => Ok(RunStatus { state, url: handle.url.clone(), started_at_ms: None, duration_ms: None, digest: None }),
        }
    }

    async fn logs(&self, handle: &RunHandle, offset: u64) -> Result<LogChunk, BackendError> {
        let (wf, at, build_id) = self.decode(handle)?;
        let run = match self.resolve(&wf, at, build_id).await? {
            Ok(run) => run,
            Err(state) => return Ok(LogChunk { text: String::new(), next_offset: offset, more: !state.is_finished() }),
        };
        let jobs = self.get_jobs(&wf, run.id).await?;
        let text = render_log(&run, &jobs);
        let more = run.status.as_deref() != Some("completed");
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let chunk = match text.get(start..) {
            Some(rest) => LogChunk { text: rest.to_string(), next_offset: text.len() as u64, more },
            // Past the end, or (if an earlier line changed) inside a character: nothing new.
            None => LogChunk { text: String::new(), next_offset: offset.max(text.len() as u64), more },
        };
        Ok(chunk)
    }

    async fn cancel(&self, handle: &RunHandle) -> Result<(), BackendError> {
        let (wf, at, build_id) = self.decode(handle)?;
        let id = match self.resolve(&wf, at, build_id).await? {
            Ok(run) => run.id,
            Err(RunState::Queued) => {
                return Err(BackendError::Unavailable(format!("the run dispatched for build {build_id} has not appeared on GitHub yet; cancel again in a moment")));
            }
            Err(_) => return Ok(()),
        };
        let url = http::join(&self.api, &wf.repo_segments(&["actions", "runs", &id.to_string(), "cancel"]), &[]);
        let resp = self.send(Method::POST, url, None).await?;
        match resp.status() {
            s if s.is_success() => {}
            // "Cannot cancel a workflow run that is completed."
            StatusCode::CONFLICT => {}
            _ => return Err(self.error(resp, &format!("cancel run {id} of {wf}"), format!("GitHub run {id} of {}/{} not found (deleted?)", wf.owner, wf.repo), &[]).await),
        }
        tracing::info!(backend = %self.name, workflow = %wf, %build_id, run = id, "asked GitHub to cancel the run");
        Ok(())
    }

    async fn health_check(&self, target: &str) -> HealthReport {
        let label = format!("{}: {target} at {}", self.name, self.api);
        let wf = match WorkflowTarget::parse(target) {
            Ok(wf) => wf,
            Err(e) => return HealthReport::fail(KIND, label, format!("{target:?} is not a GitHub workflow: {e}"), "fix the nova.dev/build-pipeline annotation: github-actions:owner/repo/workflow.yml"),
        };
        let url = http::join(&self.api, &wf.repo_segments(&["actions", "workflows", &wf.workflow]), &[]);
        let workflow: Workflow = match self.get_json(url, &format!("read workflow {wf}"), self.not_found(&wf)).await {
            Ok(w) => w,
            Err(e) => {
                let fix = match &e {
                    BackendError::Unauthorized(_) => format!("put a valid token in {} (a fine-grained token or App installation with actions:write on {}/{})", self.config.token, wf.owner, wf.repo),
                    BackendError::Forbidden(_) => format!("give the token actions:write (and contents:read) on {}/{}", wf.owner, wf.repo),
                    BackendError::NotFound(_) => format!("check the workflow file name in the annotation and that the token can see {}/{}", wf.owner, wf.repo),
                    BackendError::RateLimited { .. } => return HealthReport::warn(KIND, label, e.to_string(), "wait for the rate limit to reset; a GitHub App installation has a higher limit"),
                    _ => format!("check build_backends.{}.api_url and that Nova's host can reach it", self.name),
                };
                return HealthReport::fail(KIND, label, e.to_string(), fix);
            }
        };
        if workflow.state != "active" {
            return HealthReport::fail(KIND, label, format!("workflow {wf} is {}", workflow.state), "enable the workflow in the repository's Actions tab");
        }
        let segments: Vec<&str> = workflow.path.split('/').collect();
        let url = http::join(&self.api, &wf.repo_segments(&[&["contents"], segments.as_slice()].concat()), &[]);
        let text = match self.get_json::<Contents>(url, &format!("read {}", workflow.path), self.not_found(&wf)).await {
            Ok(c) => {
                let compact: String = c.content.split_whitespace().collect();
                String::from_utf8_lossy(&base64::engine::general_purpose::STANDARD.decode(compact).unwrap_or_default()).into_owned()
            }
            Err(e) => {
                return HealthReport::warn(KIND, label, format!("workflow {wf} is active, but its file could not be read to check Nova's inputs: {e}"), "grant the token contents:read, or compare the workflow with docs/BUILDS.md by hand");
            }
        };
        let missing: Vec<&str> = INPUTS.into_iter().filter(|i| !text.contains(&format!("{i}:"))).collect();
        if !text.contains("workflow_dispatch") || !missing.is_empty() {
            return HealthReport::fail(KIND, label, format!("{} lacks the workflow_dispatch inputs {}", workflow.path, missing.join(", ")), "declare every input Nova sends (docs/BUILDS.md); GitHub refuses a dispatch with undeclared inputs");
        }
        if !text.lines().any(|l| l.trim_start().starts_with("run-name:") && l.contains("inputs.nova_build_id")) {
            return HealthReport::fail(KIND, label, format!("{} does not name its runs with inputs.nova_build_id", workflow.path), "add run-name: \"Nova build ${{ inputs.nova_build_id }}\" so that Nova can find its runs again after a restart");
        }
        HealthReport::pass(KIND, label, format!("the token reads workflow {wf} (active), which declares Nova's inputs and names runs by nova_build_id"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workflow_targets() {
        let t = WorkflowTarget::parse("org/repo.name/build.yml").unwrap();
        assert_eq!((t.owner.as_str(), t.repo.as_str(), t.workflow.as_str()), ("org", "repo.name", "build.yml"));
        assert!(WorkflowTarget::parse("org/repo/1234").is_ok());
        for bad in ["org/repo", "org/repo/build", "org/repo/a/b.yml", "org/../x.yml", "o rg/r/b.yml", "org/repo/", "org/repo/b.yml?x"] {
            assert!(WorkflowTarget::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn times() {
        assert_eq!(parse_ms(Some("2026-11-20T10:00:01Z")), Some(1_795_168_801_000));
        assert_eq!(format_ms(1_795_168_801_999), "2026-11-20T10:00:01Z");
        assert_eq!(parse_ms(Some("yesterday")), None);
        let v7 = Uuid::now_v7();
        let since = GithubActionsBackend::search_since(v7);
        assert!((http::now_ms() - since - CLOCK_SLACK_MS).abs() < 5_000);
    }

    #[test]
    fn handles_round_trip() {
        assert_eq!(At::decode(&At::Run(42).encode()), Some(At::Run(42)));
        assert_eq!(At::decode(&At::Pending(7).encode()), Some(At::Pending(7)));
        assert_eq!(At::decode("queue/1"), None);
    }
}
