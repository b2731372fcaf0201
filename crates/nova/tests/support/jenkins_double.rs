//! A test double of Jenkins' remote access API — not Jenkins. No Jenkins can run on this
//! machine, so this small axum server imitates the documented behaviour Nova relies on, and
//! nothing more:
//!
//! - `POST /job/<a>/job/<b>/buildWithParameters` (form body or query) keeps only the
//!   parameters the job defines, answers `201 Created` with `Location: <root>/queue/item/N/`,
//!   or `303 See Other` to the existing item when identical parameters are still queued;
//! - `/queue/item/N/api/json` has no `executable` until the item leaves the queue (after
//!   `queue_delay`, or when the test releases it), then `executable.number`; a cancelled item
//!   has `cancelled: true`; an item that left the queue answers 404 after `left_item_ttl`
//!   (Jenkins: five minutes) while its build stays;
//! - `/job/.../api/json` lists parameter definitions and builds with their parameters
//!   (password values are not shown), honouring a `builds[...]{0,N}` range;
//! - `/job/.../N/api/json` (building, result, duration, timestamp, description),
//!   `/N/logText/progressiveText?start=K` with `X-Text-Size` and `X-More-Data`,
//!   `POST /N/stop` (result ABORTED), `POST /queue/cancelItem?id=N` (204; 404 unknown; 422 left);
//!   a deleted build (`doDelete`, done by the test) answers 404;
//! - basic authentication: 401 on a wrong token, 403 without a user or without the permission,
//!   404 on an unknown job; with `crumb_required`, a POST authenticated by a password (not an
//!   API token) needs the crumb from `/crumbIssuer/api/json` and its session cookie.
//!
//! Every request line (method, path and query) is recorded for the tests to inspect.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Perm {
    /// Overall/Read and Job/Read.
    Read,
    /// Also Job/Build and Job/Cancel.
    Build,
}

/// How the double behaves.
#[derive(Debug, Clone)]
pub struct Options {
    /// How long a new queue item waits before it becomes a build; `None`: until released.
    pub queue_delay: Option<Duration>,
    /// How long an item that left the queue stays readable.
    pub left_item_ttl: Duration,
    /// Password-authenticated POSTs need a crumb.
    pub crumb_required: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self { queue_delay: None, left_item_ttl: Duration::from_secs(300), crumb_required: false }
    }
}

struct User {
    secret: String,
    password: bool,
    perm: Perm,
}

struct Job {
    /// Parameter name and definition type (`StringParameterDefinition`, ...).
    definitions: Vec<(String, String)>,
    builds: Vec<Build>,
}

/// A build, as the test sees it (with password values).
#[derive(Debug, Clone)]
pub struct Build {
    pub number: u64,
    /// Name, value, and whether it is a password parameter.
    pub params: Vec<(String, String, bool)>,
    pub log: String,
    pub result: Option<String>,
    pub timestamp: i64,
    pub duration: i64,
    pub description: Option<String>,
    /// Deleted (`doDelete`, or lost by a Jenkins restart): answers 404 and is not listed.
    pub deleted: bool,
}

struct QueueItem {
    job: String,
    params: Vec<(String, String, bool)>,
    ready_at: Option<Instant>,
    cancelled: bool,
    left_at: Option<Instant>,
    build: Option<u64>,
}

struct DoubleState {
    root: String,
    options: Options,
    users: HashMap<String, User>,
    jobs: BTreeMap<String, Job>,
    queue: BTreeMap<u64, QueueItem>,
    next_item: u64,
    sessions: HashMap<String, String>,
    requests: Vec<String>,
}

/// A running double.
#[derive(Clone)]
pub struct JenkinsDouble {
    /// The root URL, e.g. `http://127.0.0.1:PORT/jenkins/`.
    pub url: String,
    state: Arc<Mutex<DoubleState>>,
}

/// The parameters Nova's jobs define (see docs/BUILDS.md).
pub const NOVA_PARAMETERS: [&str; 9] = ["NOVA_BUILD_ID", "GIT_URL", "GIT_REF", "COMMIT", "DOCKERFILE", "CONTEXT", "IMAGE", "TAG", "BUILD_ARGS"];

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

impl JenkinsDouble {
    /// Starts a double on a random port, served under the context path `/jenkins`.
    pub async fn start(options: Options) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jenkins/", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(DoubleState {
            root: url.clone(),
            options,
            users: HashMap::new(),
            jobs: BTreeMap::new(),
            queue: BTreeMap::new(),
            next_item: 1,
            sessions: HashMap::new(),
            requests: Vec::new(),
        }));
        let app = axum::Router::new().fallback(handle).with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, state }
    }

    fn with<T>(&self, f: impl FnOnce(&mut DoubleState) -> T) -> T {
        let mut s = self.state.lock().unwrap();
        s.tick();
        f(&mut s)
    }

    /// Adds a user with an API token (`password` false) or a password.
    pub fn add_user(&self, name: &str, secret: &str, password: bool, perm: Perm) {
        self.with(|s| s.users.insert(name.into(), User { secret: secret.into(), password, perm }));
    }

    /// Adds a job with string parameters (and, for names in `passwords`, password ones).
    pub fn add_job(&self, path: &str, params: &[&str], passwords: &[&str]) {
        let definitions = params
            .iter()
            .map(|p| (p.to_string(), "StringParameterDefinition".to_string()))
            .chain(passwords.iter().map(|p| (p.to_string(), "PasswordParameterDefinition".to_string())))
            .collect();
        self.with(|s| s.jobs.insert(path.into(), Job { definitions, builds: Vec::new() }));
    }

    /// Lets every waiting queue item become a build now.
    pub fn release_queue(&self) {
        self.with(|s| {
            for item in s.queue.values_mut().filter(|i| i.left_at.is_none()) {
                item.ready_at = Some(Instant::now());
            }
            s.tick();
        });
    }

    /// Appends text to a running build's log.
    pub fn append_log(&self, job: &str, number: u64, text: &str) {
        self.with(|s| s.build_mut(job, number).log.push_str(text));
    }

    /// Ends a build with a result (`SUCCESS`, `FAILURE`, `UNSTABLE`, `ABORTED`, ...).
    pub fn finish(&self, job: &str, number: u64, result: &str, description: Option<&str>) {
        self.with(|s| {
            let b = s.build_mut(job, number);
            b.result = Some(result.into());
            b.duration = (now_ms() - b.timestamp).max(1);
            b.description = description.map(str::to_string);
            b.log.push_str(&format!("Finished: {result}\n"));
        });
    }

    /// Deletes a build, as `POST .../N/doDelete` does (or a Jenkins that lost it): from then
    /// on it answers 404 and is not listed.
    pub fn delete_build(&self, job: &str, number: u64) {
        self.with(|s| s.build_mut(job, number).deleted = true);
    }

    /// A job's builds, oldest first.
    pub fn builds(&self, job: &str) -> Vec<Build> {
        self.with(|s| s.jobs[job].builds.clone())
    }

    /// Queue items still known (waiting, or left less than `left_item_ttl` ago).
    pub fn queue_items(&self) -> usize {
        self.with(|s| s.queue.len())
    }

    /// Whether queue item `id` was cancelled.
    pub fn cancelled(&self, id: u64) -> bool {
        self.with(|s| s.queue.get(&id).is_some_and(|i| i.cancelled))
    }

    /// Every request line so far (`POST /jenkins/job/a/buildWithParameters -> 201`).
    pub fn requests(&self) -> Vec<String> {
        self.with(|s| s.requests.clone())
    }
}

impl DoubleState {
    /// Moves queue items whose time has come into builds, and forgets left items after the TTL.
    fn tick(&mut self) {
        let now = Instant::now();
        let ready: Vec<u64> = self.queue.iter().filter(|(_, i)| i.left_at.is_none() && i.ready_at.is_some_and(|t| t <= now)).map(|(id, _)| *id).collect();
        for id in ready {
            let item = self.queue.get_mut(&id).unwrap();
            let job = self.jobs.get_mut(&item.job).unwrap();
            let number = job.builds.len() as u64 + 1;
            job.builds.push(Build {
                number,
                params: item.params.clone(),
                log: "Started by remote API\n".into(),
                result: None,
                timestamp: now_ms(),
                duration: 0,
                description: None,
                deleted: false,
            });
            item.build = Some(number);
            item.left_at = Some(now);
        }
        let ttl = self.options.left_item_ttl;
        self.queue.retain(|_, i| i.left_at.is_none_or(|t| now.duration_since(t) < ttl));
    }

    fn build_mut(&mut self, job: &str, number: u64) -> &mut Build {
        &mut self.jobs.get_mut(job).unwrap().builds[number as usize - 1]
    }

    /// The user a request authenticates as, or the answer refusing it.
    fn authenticate(&self, headers: &HeaderMap) -> Result<(&User, bool), Response> {
        let Some(basic) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Basic ")) else {
            return Err(html(StatusCode::FORBIDDEN, "Authentication required"));
        };
        let decoded = base64::engine::general_purpose::STANDARD.decode(basic).unwrap_or_default();
        let text = String::from_utf8(decoded).unwrap_or_default();
        let (name, secret) = text.split_once(':').unwrap_or_default();
        match self.users.get(name) {
            Some(user) if user.secret == secret => Ok((user, user.password)),
            _ => Err(([(header::WWW_AUTHENTICATE, "Basic realm=\"Jenkins\"")], html(StatusCode::UNAUTHORIZED, "Invalid password/token for user")).into_response()),
        }
    }

    fn crumb_ok(&self, headers: &HeaderMap) -> bool {
        let crumb = headers.get("Jenkins-Crumb").and_then(|v| v.to_str().ok());
        let session = headers.get(header::COOKIE).and_then(|v| v.to_str().ok()).and_then(|c| c.split(';').find_map(|p| p.trim().strip_prefix("JSESSIONID.double=")));
        matches!((crumb, session), (Some(c), Some(sid)) if self.sessions.get(sid).is_some_and(|expected| expected == c))
    }

    fn job_url(&self, job: &str) -> String {
        let path: String = job.split('/').map(|s| format!("job/{}/", s.replace(' ', "%20"))).collect();
        format!("{}{path}", self.root)
    }
}

fn html(status: StatusCode, message: &str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/html;charset=utf-8")], format!("<html><head><title>Error {} {message}</title></head><body><h2>HTTP ERROR {} {message}</h2></body></html>", status.as_u16(), status.as_u16())).into_response()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn form_pairs(text: &str) -> Vec<(String, String)> {
    text.split('&').filter(|p| !p.is_empty()).map(|p| p.split_once('=').unwrap_or((p, ""))).map(|(k, v)| (percent_decode(k), percent_decode(v))).collect()
}

async fn handle(State(state): State<Arc<Mutex<DoubleState>>>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let mut s = state.lock().unwrap();
    s.tick();
    let response = route(&mut s, &method, &uri, &headers, &body);
    let line = format!("{method} {uri} -> {}", response.status().as_u16());
    s.requests.push(line);
    response
}

fn route(s: &mut DoubleState, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Response {
    let Some(path) = uri.path().strip_prefix("/jenkins/") else { return html(StatusCode::NOT_FOUND, "Not Found") };
    let query = form_pairs(uri.query().unwrap_or(""));
    let (user, by_password) = match s.authenticate(headers) {
        Ok((u, p)) => (u.perm, p),
        Err(response) => return response,
    };
    if method == Method::POST && s.options.crumb_required && by_password && !s.crumb_ok(headers) {
        return html(StatusCode::FORBIDDEN, "No valid crumb was included in the request");
    }
    let segments: Vec<String> = path.trim_end_matches('/').split('/').map(percent_decode).collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    match (method.clone(), segments.as_slice()) {
        (Method::GET, ["crumbIssuer", "api", "json"]) => {
            let sid = format!("s{}", s.sessions.len() + 1);
            let crumb = format!("crumb-{}", uuid::Uuid::new_v4().simple());
            s.sessions.insert(sid.clone(), crumb.clone());
            let cookie = format!("JSESSIONID.double={sid}; Path=/jenkins; HttpOnly");
            ([(header::SET_COOKIE, cookie)], axum::Json(json!({"_class": "hudson.security.csrf.DefaultCrumbIssuer", "crumb": crumb, "crumbRequestField": "Jenkins-Crumb"}))).into_response()
        }
        (Method::GET, ["queue", "item", id, "api", "json"]) => {
            let Some((id, item)) = id.parse::<u64>().ok().and_then(|id| s.queue.get(&id).map(|i| (id, i))) else { return html(StatusCode::NOT_FOUND, "Not Found") };
            let mut answer = json!({"id": id, "task": {"url": s.job_url(&item.job)}, "url": format!("queue/item/{id}/")});
            if item.left_at.is_some() {
                answer["_class"] = json!("hudson.model.Queue$LeftItem");
                answer["cancelled"] = json!(item.cancelled);
                answer["executable"] = match item.build {
                    Some(n) => json!({"_class": "org.jenkinsci.plugins.workflow.job.WorkflowRun", "number": n, "url": format!("{}{n}/", s.job_url(&item.job))}),
                    None => Value::Null,
                };
            } else {
                answer["_class"] = json!("hudson.model.Queue$WaitingItem");
                answer["why"] = json!("In the quiet period");
            }
            axum::Json(answer).into_response()
        }
        (Method::POST, ["queue", "cancelItem"]) => {
            if user != Perm::Build {
                return html(StatusCode::FORBIDDEN, "missing the Job/Cancel permission");
            }
            let id = query.iter().find(|(k, _)| k == "id").and_then(|(_, v)| v.parse::<u64>().ok()).unwrap_or(0);
            match s.queue.get_mut(&id) {
                None => html(StatusCode::NOT_FOUND, &format!("Provided id ({id}) not found")),
                Some(item) if item.left_at.is_some() => html(StatusCode::UNPROCESSABLE_ENTITY, &format!("Item for id ({id}) is not cancellable")),
                Some(item) => {
                    item.cancelled = true;
                    item.left_at = Some(Instant::now());
                    StatusCode::NO_CONTENT.into_response()
                }
            }
        }
        (_, ["job", ..]) => job_route(s, method, user, &segments, &query, body),
        _ => html(StatusCode::NOT_FOUND, "Not Found"),
    }
}

fn job_route(s: &mut DoubleState, method: &Method, perm: Perm, segments: &[&str], query: &[(String, String)], body: &[u8]) -> Response {
    let mut names = Vec::new();
    let mut rest = segments;
    while let ["job", name, tail @ ..] = rest {
        names.push(*name);
        rest = tail;
    }
    let job_name = names.join("/");
    if !s.jobs.contains_key(&job_name) {
        return html(StatusCode::NOT_FOUND, "Not Found");
    }
    let job_url = s.job_url(&job_name);
    let build_perm = || if perm == Perm::Build { None } else { Some(html(StatusCode::FORBIDDEN, "missing the Job/Build permission")) };
    match (method.clone(), rest) {
        (Method::POST, ["buildWithParameters"]) => {
            if let Some(refused) = build_perm() {
                return refused;
            }
            let mut given = query.to_vec();
            given.extend(form_pairs(&String::from_utf8_lossy(body)));
            let job = &s.jobs[&job_name];
            // Jenkins keeps only the parameters the job defines.
            let params: Vec<(String, String, bool)> = job
                .definitions
                .iter()
                .map(|(name, kind)| {
                    let value = given.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or_default();
                    (name.clone(), value, kind == "PasswordParameterDefinition")
                })
                .collect();
            let existing = s.queue.iter().find(|(_, i)| i.left_at.is_none() && i.job == job_name && i.params == params).map(|(id, _)| *id);
            let (status, id) = match existing {
                Some(id) => (StatusCode::SEE_OTHER, id),
                None => {
                    let id = s.next_item;
                    s.next_item += 1;
                    let ready_at = s.options.queue_delay.map(|d| Instant::now() + d);
                    s.queue.insert(id, QueueItem { job: job_name, params, ready_at, cancelled: false, left_at: None, build: None });
                    (StatusCode::CREATED, id)
                }
            };
            (status, [(header::LOCATION, format!("{}queue/item/{id}/", s.root))]).into_response()
        }
        (Method::GET, ["api", "json"]) => {
            let tree = query.iter().find(|(k, _)| k == "tree").map(|(_, v)| v.as_str()).unwrap_or("");
            let limit = tree.rsplit_once("]{0,").and_then(|(_, n)| n.trim_end_matches('}').parse::<usize>().ok()).unwrap_or(usize::MAX);
            let job = &s.jobs[&job_name];
            let builds: Vec<Value> = job
                .builds
                .iter()
                .rev()
                .filter(|b| !b.deleted)
                .take(limit)
                .map(|b| {
                    let parameters: Vec<Value> = b
                        .params
                        .iter()
                        .map(|(name, value, password)| {
                            if *password { json!({"_class": "hudson.model.PasswordParameterValue", "name": name}) } else { json!({"_class": "hudson.model.StringParameterValue", "name": name, "value": value}) }
                        })
                        .collect();
                    json!({"number": b.number, "url": format!("{job_url}{}/", b.number), "actions": [{"_class": "hudson.model.ParametersAction", "parameters": parameters}, {}, {"_class": "hudson.model.CauseAction"}]})
                })
                .collect();
            let definitions: Vec<Value> = job.definitions.iter().map(|(name, kind)| json!({"name": name, "type": kind})).collect();
            axum::Json(json!({
                "_class": "org.jenkinsci.plugins.workflow.job.WorkflowJob",
                "buildable": true,
                "property": [{"_class": "hudson.model.ParametersDefinitionProperty", "parameterDefinitions": definitions}],
                "builds": builds,
            }))
            .into_response()
        }
        (m, [number, tail @ ..]) => {
            let Some(n) = number.parse::<usize>().ok().filter(|n| *n >= 1 && *n <= s.jobs[&job_name].builds.len() && !s.jobs[&job_name].builds[*n - 1].deleted) else { return html(StatusCode::NOT_FOUND, "Not Found") };
            let build = &mut s.jobs.get_mut(&job_name).unwrap().builds[n - 1];
            match (m, tail) {
                (Method::GET, ["api", "json"]) => axum::Json(json!({
                    "_class": "org.jenkinsci.plugins.workflow.job.WorkflowRun",
                    "number": build.number,
                    "url": format!("{job_url}{n}/"),
                    "building": build.result.is_none(),
                    "result": build.result,
                    "duration": build.duration,
                    "timestamp": build.timestamp,
                    "description": build.description,
                }))
                .into_response(),
                (Method::GET, ["logText", "progressiveText"]) => {
                    let start = query.iter().find(|(k, _)| k == "start").and_then(|(_, v)| v.parse::<usize>().ok()).unwrap_or(0);
                    let bytes = build.log.as_bytes();
                    let text = bytes.get(start..).unwrap_or_default().to_vec();
                    let more = if build.result.is_none() { "true" } else { "false" };
                    ([(header::CONTENT_TYPE, "text/plain;charset=utf-8".to_string()), (header::HeaderName::from_static("x-text-size"), bytes.len().to_string()), (header::HeaderName::from_static("x-more-data"), more.to_string())], text).into_response()
                }
                (Method::POST, ["stop"]) => {
                    if perm != Perm::Build {
                        return html(StatusCode::FORBIDDEN, "missing the Job/Cancel permission");
                    }
                    if build.result.is_none() {
                        build.log.push_str("Aborted by nova\nFinished: ABORTED\n");
                        build.result = Some("ABORTED".into());
                        build.duration = (now_ms() - build.timestamp).max(1);
                    }
                    (StatusCode::FOUND, [(header::LOCATION, format!("{job_url}{n}/"))]).into_response()
                }
                _ => html(StatusCode::NOT_FOUND, "Not Found"),
            }
        }
        _ => html(StatusCode::NOT_FOUND, "Not Found"),
    }
}
