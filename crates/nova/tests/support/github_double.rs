//! A test double of the GitHub REST API's Actions endpoints — not GitHub. No GitHub can run
//! here, so this small axum server imitates the documented behaviour Nova relies on:
//!
//! - `POST /repos/{o}/{r}/actions/workflows/{w}/dispatches` with `ref` and `inputs`: 422 for
//!   an unknown ref or undeclared inputs, otherwise a new `queued` run named by the workflow's
//!   `run-name` (inputs substituted) and `204 No Content`; with `return_run_details: true`,
//!   `200` and `workflow_run_id`, `run_url`, `html_url` — or, imitating a GitHub Enterprise
//!   Server without the flag, `204` (ignored) or `422 "return_run_details" is not a permitted
//!   key` (refused);
//! - `GET .../workflows/{w}/runs?event=&created=>=...&per_page=&page=`, newest first; a new run
//!   may stay invisible to the list for a number of list calls, as runs appear after a delay;
//! - `GET .../runs/{id}`, `.../runs/{id}/jobs`, `POST .../runs/{id}/cancel` (202; 409 once
//!   completed), `GET .../workflows/{w}` and `GET .../contents/{path}` (base64);
//! - `Authorization: Bearer`: 401 `Bad credentials`; 403 `Resource not accessible` for a token
//!   without the permission; 404 for an unknown repository or workflow; the primary rate limit
//!   (403 with `x-ratelimit-remaining: 0` and `x-ratelimit-reset`) and the secondary one (429
//!   with `retry-after`) on demand.
//!
//! Every request line and JSON body is recorded for the tests to inspect.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde_json::{Value, json};

/// How the server treats `return_run_details`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunDetails {
    /// github.com: 200 with the run's id.
    Supported,
    /// An older server that ignores the key: 204.
    Ignored,
    /// An older server that refuses the key: 422.
    Refused,
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// actions:write and contents:read.
    Full,
    /// actions:read only: dispatch and cancel are refused.
    ReadOnly,
    /// actions:write but not contents:read.
    NoContents,
}

/// A rate limit to answer the next request with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// 403, `x-ratelimit-remaining: 0`, reset in 60 s.
    Primary,
    /// 429, `retry-after: 30`.
    Secondary,
}

/// A workflow file.
#[derive(Debug, Clone)]
pub struct Workflow {
    pub inputs: Vec<String>,
    /// `run-name`, e.g. `Nova build ${{ inputs.nova_build_id }}`; `None`: runs are named after
    /// the workflow.
    pub run_name: Option<String>,
}

#[derive(Debug, Clone)]
struct Run {
    id: u64,
    repo: String,
    workflow: String,
    title: String,
    status: String,
    conclusion: Option<String>,
    created: i64,
    updated: i64,
    hidden_for_lists: usize,
    inputs: Value,
    jobs: Vec<Job>,
}

#[derive(Debug, Clone)]
struct Job {
    id: u64,
    name: String,
    status: String,
    conclusion: Option<String>,
    completed: Option<i64>,
    steps: Vec<(String, String, Option<String>, Option<i64>)>,
}

struct DoubleState {
    url: String,
    details: RunDetails,
    hide_new_runs_for: usize,
    tokens: HashMap<String, Access>,
    /// `owner/repo/file` → workflow; `owner/repo` branches.
    workflows: HashMap<String, Workflow>,
    branches: Vec<String>,
    runs: Vec<Run>,
    limits: VecDeque<Limit>,
    requests: Vec<String>,
    bodies: Vec<String>,
}

/// A running double.
#[derive(Clone)]
pub struct GithubDouble {
    /// The API root, e.g. `http://127.0.0.1:PORT/api/v3`.
    pub api: String,
    state: Arc<Mutex<DoubleState>>,
}

/// The inputs Nova sends (see docs/BUILDS.md).
pub const NOVA_INPUTS: [&str; 9] = ["nova_build_id", "git_url", "git_ref", "commit", "dockerfile", "context", "image", "tag", "build_args"];

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn iso(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs).unwrap().format(&time::format_description::well_known::Rfc3339).unwrap()
}

fn message(status: StatusCode, text: &str) -> Response {
    (status, axum::Json(json!({"message": text, "documentation_url": "https://docs.github.com/rest", "status": status.as_u16().to_string()}))).into_response()
}

impl GithubDouble {
    /// Starts a double on a random port, with branches `main` and `release`.
    pub async fn start(details: RunDetails) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(DoubleState {
            url: base.clone(),
            details,
            hide_new_runs_for: 0,
            tokens: HashMap::new(),
            workflows: HashMap::new(),
            branches: vec!["main".into(), "release".into()],
            runs: Vec::new(),
            limits: VecDeque::new(),
            requests: Vec::new(),
            bodies: Vec::new(),
        }));
        let app = axum::Router::new()
            .route("/api/v3/repos/{owner}/{repo}/actions/workflows/{workflow}", get(workflow))
            .route("/api/v3/repos/{owner}/{repo}/actions/workflows/{workflow}/dispatches", post(dispatch))
            .route("/api/v3/repos/{owner}/{repo}/actions/workflows/{workflow}/runs", get(list_runs))
            .route("/api/v3/repos/{owner}/{repo}/actions/runs/{id}", get(run))
            .route("/api/v3/repos/{owner}/{repo}/actions/runs/{id}/jobs", get(jobs))
            .route("/api/v3/repos/{owner}/{repo}/actions/runs/{id}/cancel", post(cancel))
            .route("/api/v3/repos/{owner}/{repo}/contents/{*path}", get(contents))
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { api: format!("{base}/api/v3"), state }
    }

    fn with<T>(&self, f: impl FnOnce(&mut DoubleState) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }

    pub fn add_token(&self, token: &str, access: Access) {
        self.with(|s| s.tokens.insert(token.into(), access));
    }

    /// Adds `owner/repo/file.yml`.
    pub fn add_workflow(&self, target: &str, inputs: &[&str], run_name: Option<&str>) {
        let w = Workflow { inputs: inputs.iter().map(|s| s.to_string()).collect(), run_name: run_name.map(str::to_string) };
        self.with(|s| s.workflows.insert(target.into(), w));
    }

    /// New runs stay out of the runs list for this many list calls.
    pub fn hide_new_runs_for(&self, lists: usize) {
        self.with(|s| s.hide_new_runs_for = lists);
    }

    /// Answers the next request with this rate limit.
    pub fn limit_next(&self, limit: Limit) {
        self.with(|s| s.limits.push_back(limit));
    }

    /// The runs, oldest first: (id, title, status, conclusion, inputs).
    pub fn runs(&self) -> Vec<(u64, String, String, Option<String>, Value)> {
        self.with(|s| s.runs.iter().map(|r| (r.id, r.title.clone(), r.status.clone(), r.conclusion.clone(), r.inputs.clone())).collect())
    }

    /// Sets a run's status (`queued`, `in_progress`, `completed`) and conclusion.
    pub fn set_run(&self, id: u64, status: &str, conclusion: Option<&str>) {
        self.with(|s| {
            let run = s.runs.iter_mut().find(|r| r.id == id).unwrap();
            run.status = status.into();
            run.conclusion = conclusion.map(str::to_string);
            run.updated = now();
            if status == "completed" {
                for job in run.jobs.iter_mut().filter(|j| j.status != "completed") {
                    job.status = "completed".into();
                    job.conclusion = conclusion.map(str::to_string);
                    job.completed = Some(now());
                }
            }
        });
    }

    /// Records a finished step in a run's job (created, in progress, if new).
    pub fn step(&self, id: u64, job: &str, step: &str, conclusion: &str) {
        self.with(|s| {
            let run = s.runs.iter_mut().find(|r| r.id == id).unwrap();
            let next_job = id * 100 + run.jobs.len() as u64;
            if !run.jobs.iter().any(|j| j.name == job) {
                run.jobs.push(Job { id: next_job, name: job.into(), status: "in_progress".into(), conclusion: None, completed: None, steps: Vec::new() });
            }
            let j = run.jobs.iter_mut().find(|j| j.name == job).unwrap();
            j.steps.push((step.into(), "completed".into(), Some(conclusion.into()), Some(now())));
            if conclusion == "failure" {
                j.status = "completed".into();
                j.conclusion = Some("failure".into());
                j.completed = Some(now());
            }
        });
    }

    /// Every request line so far (`POST /api/v3/... -> 204`).
    pub fn requests(&self) -> Vec<String> {
        self.with(|s| s.requests.clone())
    }

    /// Every JSON request body so far.
    pub fn bodies(&self) -> Vec<String> {
        self.with(|s| s.bodies.clone())
    }
}

type Shared = State<Arc<Mutex<DoubleState>>>;

impl DoubleState {
    /// Records the request and checks the rate limit and the token.
    fn admit(&mut self, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Result<Access, Response> {
        self.requests.push(format!("{method} {uri} [api-version {}]", headers.get("x-github-api-version").and_then(|v| v.to_str().ok()).unwrap_or("none")));
        if !body.is_empty() {
            self.bodies.push(String::from_utf8_lossy(body).into_owned());
        }
        match self.limits.pop_front() {
            Some(Limit::Primary) => {
                let reset = (now() + 60).to_string();
                let headers = [("x-ratelimit-limit", "5000".to_string()), ("x-ratelimit-remaining", "0".to_string()), ("x-ratelimit-reset", reset)];
                return Err((headers, message(StatusCode::FORBIDDEN, "API rate limit exceeded for user ID 1.")).into_response());
            }
            Some(Limit::Secondary) => {
                return Err(([("retry-after", "30")], message(StatusCode::TOO_MANY_REQUESTS, "You have exceeded a secondary rate limit.")).into_response());
            }
            None => {}
        }
        let token = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        token.and_then(|t| self.tokens.get(t).copied()).ok_or_else(|| message(StatusCode::UNAUTHORIZED, "Bad credentials"))
    }

    fn run_json(&self, r: &Run) -> Value {
        let (owner_repo, id) = (&r.repo, r.id);
        json!({
            "id": id,
            "name": r.workflow.trim_end_matches(".yml"),
            "display_title": r.title,
            "event": "workflow_dispatch",
            "status": r.status,
            "conclusion": r.conclusion,
            "url": format!("{}/api/v3/repos/{owner_repo}/actions/runs/{id}", self.url),
            "html_url": format!("{}/{owner_repo}/actions/runs/{id}", self.url),
            "created_at": iso(r.created),
            "updated_at": iso(r.updated),
            "run_started_at": iso(r.created),
        })
    }

    fn find_run(&self, owner: &str, repo: &str, id: &str) -> Option<usize> {
        let repo = format!("{owner}/{repo}");
        self.runs.iter().position(|r| r.repo == repo && id.parse() == Ok(r.id))
    }
}

fn workflow_text(w: &Workflow) -> String {
    let mut text = String::from("name: build\n");
    if let Some(run_name) = &w.run_name {
        text.push_str(&format!("run-name: {run_name}\n"));
    }
    text.push_str("on:\n  workflow_dispatch:\n    inputs:\n");
    for input in &w.inputs {
        text.push_str(&format!("      {input}:\n        type: string\n        required: false\n"));
    }
    text.push_str("jobs:\n  build:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo build\n");
    text
}

async fn workflow(State(s): Shared, Path((owner, repo, wf)): Path<(String, String, String)>, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let mut s = s.lock().unwrap();
    if let Err(r) = s.admit(&method, &uri, &headers, &[]) {
        return r;
    }
    if !s.workflows.contains_key(&format!("{owner}/{repo}/{wf}")) {
        return message(StatusCode::NOT_FOUND, "Not Found");
    }
    axum::Json(json!({"id": 161335, "name": "build", "path": format!(".github/workflows/{wf}"), "state": "active"})).into_response()
}

async fn contents(State(s): Shared, Path((owner, repo, path)): Path<(String, String, String)>, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let mut s = s.lock().unwrap();
    let access = match s.admit(&method, &uri, &headers, &[]) {
        Ok(a) => a,
        Err(r) => return r,
    };
    if access == Access::NoContents {
        return message(StatusCode::FORBIDDEN, "Resource not accessible by personal access token");
    }
    let file = path.strip_prefix(".github/workflows/").unwrap_or(&path);
    let Some(w) = s.workflows.get(&format!("{owner}/{repo}/{file}")) else { return message(StatusCode::NOT_FOUND, "Not Found") };
    let encoded = base64::engine::general_purpose::STANDARD.encode(workflow_text(w));
    // GitHub wraps the base64 text at 60 characters.
    let wrapped: Vec<String> = encoded.as_bytes().chunks(60).map(|c| String::from_utf8_lossy(c).into_owned()).collect();
    axum::Json(json!({"type": "file", "encoding": "base64", "path": path, "content": wrapped.join("\n")})).into_response()
}

async fn dispatch(State(s): Shared, Path((owner, repo, wf)): Path<(String, String, String)>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let mut s = s.lock().unwrap();
    let access = match s.admit(&method, &uri, &headers, &body) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let Ok(body) = serde_json::from_slice::<serde_json::Map<String, Value>>(&body) else { return message(StatusCode::BAD_REQUEST, "Problems parsing JSON") };
    let details = body.get("return_run_details") == Some(&json!(true));
    if let Some(key) = body.keys().find(|k| !matches!(k.as_str(), "ref" | "inputs" | "return_run_details")) {
        return message(StatusCode::UNPROCESSABLE_ENTITY, &format!("Invalid request.\n\n\"{key}\" is not a permitted key."));
    }
    if body.contains_key("return_run_details") && s.details == RunDetails::Refused {
        return message(StatusCode::UNPROCESSABLE_ENTITY, "Invalid request.\n\n\"return_run_details\" is not a permitted key.");
    }
    let target = format!("{owner}/{repo}/{wf}");
    let Some(workflow) = s.workflows.get(&target).cloned() else { return message(StatusCode::NOT_FOUND, "Not Found") };
    if access == Access::ReadOnly {
        return message(StatusCode::FORBIDDEN, "Resource not accessible by personal access token");
    }
    let git_ref = body.get("ref").and_then(Value::as_str).unwrap_or("");
    if !s.branches.iter().any(|b| b == git_ref || format!("refs/heads/{b}") == git_ref) {
        return message(StatusCode::UNPROCESSABLE_ENTITY, &format!("No ref found for: {git_ref}"));
    }
    let inputs = body.get("inputs").cloned().unwrap_or(json!({}));
    let unexpected: Vec<&String> = inputs.as_object().map(|o| o.keys().filter(|k| !workflow.inputs.contains(k)).collect()).unwrap_or_default();
    if !unexpected.is_empty() {
        return message(StatusCode::UNPROCESSABLE_ENTITY, &format!("Unexpected inputs provided: {unexpected:?}"));
    }
    let title = match &workflow.run_name {
        Some(template) => workflow.inputs.iter().fold(template.clone(), |t, i| t.replace(&format!("${{{{ inputs.{i} }}}}"), inputs.get(i).and_then(Value::as_str).unwrap_or(""))),
        None => "build".to_string(),
    };
    let id = 9000 + s.runs.len() as u64 + 1;
    let run = Run {
        id,
        repo: format!("{owner}/{repo}"),
        workflow: wf,
        title,
        status: "queued".into(),
        conclusion: None,
        created: now(),
        updated: now(),
        hidden_for_lists: s.hide_new_runs_for,
        inputs,
        jobs: Vec::new(),
    };
    s.runs.push(run);
    if details && s.details == RunDetails::Supported {
        let answer = json!({
            "workflow_run_id": id,
            "run_url": format!("{}/api/v3/repos/{owner}/{repo}/actions/runs/{id}", s.url),
            "html_url": format!("{}/{owner}/{repo}/actions/runs/{id}", s.url),
        });
        return axum::Json(answer).into_response();
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn list_runs(State(s): Shared, Path((owner, repo, wf)): Path<(String, String, String)>, Query(q): Query<HashMap<String, String>>, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let mut s = s.lock().unwrap();
    if let Err(r) = s.admit(&method, &uri, &headers, &[]) {
        return r;
    }
    if !s.workflows.contains_key(&format!("{owner}/{repo}/{wf}")) {
        return message(StatusCode::NOT_FOUND, "Not Found");
    }
    let since = q.get("created").and_then(|c| c.strip_prefix(">=")).map(|t| time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).unwrap().unix_timestamp());
    let per_page: usize = q.get("per_page").and_then(|p| p.parse().ok()).unwrap_or(30);
    let page: usize = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
    let repo_name = format!("{owner}/{repo}");
    let mut visible = Vec::new();
    for r in s.runs.iter_mut().rev().filter(|r| r.repo == repo_name && r.workflow == wf) {
        if r.hidden_for_lists > 0 {
            r.hidden_for_lists -= 1;
            continue;
        }
        if since.is_none_or(|t| r.created >= t) && q.get("event").is_none_or(|e| e == "workflow_dispatch") {
            visible.push(r.clone());
        }
    }
    let total = visible.len();
    let runs: Vec<Value> = visible.iter().skip((page - 1) * per_page).take(per_page).map(|r| s.run_json(r)).collect();
    axum::Json(json!({"total_count": total, "workflow_runs": runs})).into_response()
}

async fn run(State(s): Shared, Path((owner, repo, id)): Path<(String, String, String)>, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let mut s = s.lock().unwrap();
    if let Err(r) = s.admit(&method, &uri, &headers, &[]) {
        return r;
    }
    match s.find_run(&owner, &repo, &id) {
        Some(i) => axum::Json(s.run_json(&s.runs[i])).into_response(),
        None => message(StatusCode::NOT_FOUND, "Not Found"),
    }
}

async fn jobs(State(s): Shared, Path((owner, repo, id)): Path<(String, String, String)>, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let mut s = s.lock().unwrap();
    if let Err(r) = s.admit(&method, &uri, &headers, &[]) {
        return r;
    }
    let Some(i) = s.find_run(&owner, &repo, &id) else { return message(StatusCode::NOT_FOUND, "Not Found") };
    let jobs: Vec<Value> = s.runs[i]
        .jobs
        .iter()
        .map(|j| {
            let steps: Vec<Value> = j
                .steps
                .iter()
                .enumerate()
                .map(|(n, (name, status, conclusion, done))| json!({"name": name, "status": status, "conclusion": conclusion, "number": n + 1, "completed_at": done.map(iso)}))
                .collect();
            json!({"id": j.id, "name": j.name, "status": j.status, "conclusion": j.conclusion, "completed_at": j.completed.map(iso), "steps": steps})
        })
        .collect();
    axum::Json(json!({"total_count": jobs.len(), "jobs": jobs})).into_response()
}

async fn cancel(State(s): Shared, Path((owner, repo, id)): Path<(String, String, String)>, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let mut s = s.lock().unwrap();
    let access = match s.admit(&method, &uri, &headers, &[]) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let Some(i) = s.find_run(&owner, &repo, &id) else { return message(StatusCode::NOT_FOUND, "Not Found") };
    if access == Access::ReadOnly {
        return message(StatusCode::FORBIDDEN, "Resource not accessible by personal access token");
    }
    let run = &mut s.runs[i];
    if run.status == "completed" {
        return message(StatusCode::CONFLICT, "Cannot cancel a workflow run that is completed.");
    }
    run.status = "completed".into();
    run.conclusion = Some("cancelled".into());
    run.updated = now();
    (StatusCode::ACCEPTED, axum::Json(json!({}))).into_response()
}
