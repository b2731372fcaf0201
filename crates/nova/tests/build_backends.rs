//! The remote build backends against test doubles of Jenkins and the GitHub REST API
//! (tests/support/jenkins_double.rs, tests/support/github_double.rs). Neither Jenkins nor
//! GitHub can run on this machine, so these tests check Nova against doubles written from the
//! two systems' documented behaviour — not against the real systems.

mod support {
    pub mod github_double;
    pub mod jenkins_double;
}

use std::io::Write as _;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use nova::builds::backend::{BackendError, BuildArg, BuildBackend, BuildBackendConfig, BuildSpec, RunHandle, RunState};
use nova::health::HealthStatus;
use nova_domain::build::{BuildArgName, GitRef, RepoPath};
use nova_domain::{EntityRef, Sensitive};
use support::github_double::{Access, GithubDouble, Limit, NOVA_INPUTS, RunDetails};
use support::jenkins_double::{JenkinsDouble, NOVA_PARAMETERS, Options, Perm};
use uuid::Uuid;

const JOB: &str = "payments/payment-service-build";
const WORKFLOW: &str = "payments/payment-service/build.yml";
const RUN_NAME: &str = "Nova build ${{ inputs.image }}:${{ inputs.tag }} (${{ inputs.nova_build_id }})";

/// Every log line of the test process, to check that no secret reaches a log.
fn logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = buffer.clone();
        tracing_subscriber::fmt().with_max_level(tracing::Level::TRACE).with_ansi(false).with_writer(move || Sink(sink.clone())).init();
        buffer
    })
    .clone()
}

/// A secret in a file, as a configuration references it.
struct SecretFile(tempfile::TempPath);

impl SecretFile {
    fn new(value: &str) -> Self {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        write!(f, "{value}\n").unwrap();
        Self(f.into_temp_path())
    }

    fn reference(&self) -> String {
        format!("{{ file = \"{}\" }}", self.0.display())
    }
}

fn backend(toml: &str) -> Arc<dyn BuildBackend> {
    logs();
    let config: BuildBackendConfig = toml::from_str(toml).unwrap();
    config.validate("ci").unwrap();
    config.build("ci").unwrap()
}

fn jenkins(d: &JenkinsDouble, user: &str, token: &SecretFile, extra: &str) -> Arc<dyn BuildBackend> {
    backend(&format!("type = \"jenkins\"\nurl = \"{}\"\nuser = \"{user}\"\ntoken = {}\n{extra}", d.url, token.reference()))
}

fn github(d: &GithubDouble, token: &SecretFile, extra: &str) -> Arc<dyn BuildBackend> {
    backend(&format!("type = \"github-actions\"\napi_url = \"{}\"\ntoken = {}\n{extra}", d.api, token.reference()))
}

fn arg(name: &str, value: &str, secret: bool) -> BuildArg {
    BuildArg { name: BuildArgName::parse(name).unwrap(), value: Sensitive::new(value.into()), secret }
}

fn spec(target: &str) -> BuildSpec {
    BuildSpec {
        build_id: Uuid::now_v7(),
        component: EntityRef::parse("component:default/payment-service").unwrap(),
        target: target.into(),
        git_url: "https://git.example.com/payments/payment-service.git".into(),
        git_ref: GitRef::parse("main").unwrap(),
        commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
        dockerfile: RepoPath::parse("./docker/Dockerfile.prod").unwrap(),
        context: RepoPath::parse(".").unwrap(),
        image: "registry.example.com/payments/payment-service".into(),
        tag: "20261120T100000Z-0123456".into(),
        build_args: vec![arg("GO_VERSION", "1.23", false)],
    }
}

/// A Jenkins double with Nova's job and a user `nova` holding `token`.
async fn jenkins_double(options: Options) -> (JenkinsDouble, SecretFile) {
    let d = JenkinsDouble::start(options).await;
    d.add_job(JOB, &NOVA_PARAMETERS, &[]);
    d.add_user("nova", "api-token-1", false, Perm::Build);
    (d, SecretFile::new("api-token-1"))
}

async fn github_double(details: RunDetails) -> (GithubDouble, SecretFile) {
    let d = GithubDouble::start(details).await;
    d.add_workflow(WORKFLOW, &NOVA_INPUTS, Some(RUN_NAME));
    d.add_token("ghs_token", Access::Full);
    (d, SecretFile::new("ghs_token"))
}

fn param<'a>(build: &'a support::jenkins_double::Build, name: &str) -> &'a str {
    &build.params.iter().find(|(n, ..)| n == name).unwrap().1
}

#[tokio::test]
async fn jenkins_build_goes_from_queue_to_success_with_logs_by_offset() {
    let (d, token) = jenkins_double(Options::default()).await;
    let ci = jenkins(&d, "nova", &token, "");
    let s = spec(JOB);
    let run = ci.start(&s).await.unwrap();
    assert_eq!(run.backend, "ci");
    assert!(run.url.as_deref().unwrap().ends_with("/jenkins/job/payments/job/payment-service-build/"), "{run:?}");
    assert_eq!(ci.status(&run).await.unwrap().state, RunState::Queued);
    let queued_logs = ci.logs(&run, 0).await.unwrap();
    assert_eq!((queued_logs.text.as_str(), queued_logs.next_offset, queued_logs.more), ("", 0, true));

    d.release_queue();
    let builds = d.builds(JOB);
    assert_eq!(builds.len(), 1);
    assert_eq!(param(&builds[0], "NOVA_BUILD_ID"), s.build_id.to_string());
    assert_eq!(param(&builds[0], "DOCKERFILE"), "docker/Dockerfile.prod");
    assert_eq!(param(&builds[0], "GIT_REF"), "main");
    assert_eq!(param(&builds[0], "BUILD_ARGS"), "GO_VERSION=1.23\n");
    let running = ci.status(&run).await.unwrap();
    assert_eq!(running.state, RunState::Running);
    assert!(running.url.as_deref().unwrap().ends_with("/job/payment-service-build/1/"));
    assert!(running.started_at_ms.is_some() && running.duration_ms.is_none());

    d.append_log(JOB, 1, "STEP 1/3: FROM golang:1.23\n");
    let first = ci.logs(&run, 0).await.unwrap();
    assert_eq!(first.text, "Started by remote API\nSTEP 1/3: FROM golang:1.23\n");
    assert!(first.more);
    let nothing_new = ci.logs(&run, first.next_offset).await.unwrap();
    assert_eq!((nothing_new.text.as_str(), nothing_new.next_offset), ("", first.next_offset));
    d.append_log(JOB, 1, "Pushed é\n");
    let second = ci.logs(&run, first.next_offset).await.unwrap();
    assert_eq!(second.text, "Pushed é\n");

    let digest = format!("sha256:{}", "4f".repeat(32));
    d.finish(JOB, 1, "SUCCESS", Some(&format!("pushed {digest}")));
    let done = ci.status(&run).await.unwrap();
    assert_eq!(done.state, RunState::Succeeded);
    assert_eq!(done.digest.as_deref(), Some(digest.as_str()));
    assert!(done.duration_ms.is_some_and(|d| d >= 1));
    let last = ci.logs(&run, second.next_offset).await.unwrap();
    assert_eq!((last.text.as_str(), last.more), ("Finished: SUCCESS\n", false));
    // The parameters went in the form body, never in a URL.
    assert!(d.requests().iter().all(|line| !line.contains(&s.build_id.to_string())), "{:#?}", d.requests());
}

#[tokio::test]
async fn jenkins_failure_unstable_and_abort_are_reported() {
    let (d, token) = jenkins_double(Options { queue_delay: Some(Duration::ZERO), ..Options::default() }).await;
    let ci = jenkins(&d, "nova", &token, "");
    let mut runs = Vec::new();
    for (n, result) in ["FAILURE", "UNSTABLE", "ABORTED", "NOT_BUILT"].into_iter().enumerate() {
        let run = ci.start(&spec(JOB)).await.unwrap();
        assert_eq!(ci.status(&run).await.unwrap().state, RunState::Running);
        d.finish(JOB, n as u64 + 1, result, None);
        runs.push(ci.status(&run).await.unwrap().state);
    }
    assert_eq!(runs[0], RunState::Failed("the Jenkins build failed (FAILURE)".into()));
    assert_eq!(runs[1], RunState::Failed("Jenkins marked the build UNSTABLE".into()));
    assert_eq!(runs[2], RunState::Cancelled);
    assert_eq!(runs[3], RunState::Failed("Jenkins did not build it (NOT_BUILT)".into()));
}

#[tokio::test]
async fn jenkins_cancel_while_queued_and_while_running() {
    let (d, token) = jenkins_double(Options::default()).await;
    let ci = jenkins(&d, "nova", &token, "");
    let queued = ci.start(&spec(JOB)).await.unwrap();
    ci.cancel(&queued).await.unwrap();
    assert!(d.cancelled(1), "{:#?}", d.requests());
    assert_eq!(ci.status(&queued).await.unwrap().state, RunState::Cancelled);
    let logs = ci.logs(&queued, 0).await.unwrap();
    assert!(!logs.more && logs.text.is_empty());

    let running = ci.start(&spec(JOB)).await.unwrap();
    d.release_queue();
    assert_eq!(ci.status(&running).await.unwrap().state, RunState::Running);
    ci.cancel(&running).await.unwrap();
    assert_eq!(ci.status(&running).await.unwrap().state, RunState::Cancelled);
    assert_eq!(d.builds(JOB).len(), 1, "the cancelled queue item never became a build");
    assert!(d.requests().iter().any(|l| l.starts_with("POST /jenkins/job/payments/job/payment-service-build/1/stop -> 302")), "{:#?}", d.requests());
    // Cancelling a finished build changes nothing.
    ci.cancel(&running).await.unwrap();
    assert_eq!(ci.status(&running).await.unwrap().state, RunState::Cancelled);
}

#[tokio::test]
async fn jenkins_start_is_idempotent_across_a_crash_through_303_and_the_correlation_id() {
    let (d, token) = jenkins_double(Options::default()).await;
    let s = spec(JOB);
    let first = jenkins(&d, "nova", &token, "").start(&s).await.unwrap();
    // A new process (nothing in memory) retries while the item is still queued: Jenkins
    // answers 303 See Other to the identical queued item.
    let retry = jenkins(&d, "nova", &token, "").start(&s).await.unwrap();
    assert_eq!(retry, first);
    assert_eq!(d.queue_items(), 1);
    let posts: Vec<String> = d.requests().into_iter().filter(|l| l.contains("buildWithParameters")).collect();
    assert!(posts[0].ends_with("-> 201") && posts[1].ends_with("-> 303"), "{posts:#?}");

    // Once it is a build, a retry finds the build by NOVA_BUILD_ID and posts nothing.
    d.release_queue();
    let after = jenkins(&d, "nova", &token, "").start(&s).await.unwrap();
    assert_eq!(d.builds(JOB).len(), 1);
    assert_eq!(d.requests().iter().filter(|l| l.contains("buildWithParameters")).count(), 2);
    let ci = jenkins(&d, "nova", &token, "");
    assert_eq!(ci.status(&after).await.unwrap().url, ci.status(&first).await.unwrap().url);
}

#[tokio::test]
async fn jenkins_finds_the_build_by_correlation_id_after_the_queue_item_expired() {
    let (d, token) = jenkins_double(Options { left_item_ttl: Duration::ZERO, ..Options::default() }).await;
    let s = spec(JOB);
    let run = jenkins(&d, "nova", &token, "").start(&s).await.unwrap();
    // Another build of the same job, so that the search must pick by parameter.
    jenkins(&d, "nova", &token, "").start(&spec(JOB)).await.unwrap();
    d.release_queue();
    assert_eq!(d.queue_items(), 0, "items that left the queue are forgotten");
    let fresh = jenkins(&d, "nova", &token, "");
    let status = fresh.status(&run).await.unwrap();
    assert_eq!(status.state, RunState::Running);
    assert!(status.url.as_deref().unwrap().ends_with("/payment-service-build/1/"), "{status:?}");
    assert!(d.requests().iter().any(|l| l.starts_with("GET /jenkins/queue/item/1/api/json -> 404")));

    // A queue item cancelled and then forgotten leaves nothing to find.
    let cancelled = fresh.start(&spec(JOB)).await.unwrap();
    fresh.cancel(&cancelled).await.unwrap();
    let RunState::Failed(reason) = jenkins(&d, "nova", &token, "").status(&cancelled).await.unwrap().state else { panic!("lost") };
    assert!(reason.contains("no longer knows queue item 3"), "{reason}");
}

#[tokio::test]
async fn jenkins_refusals_are_clear() {
    let (d, token) = jenkins_double(Options::default()).await;
    d.add_user("reader", "reader-token", false, Perm::Read);
    d.add_job("payments/old-build", &["GIT_URL", "IMAGE"], &[]);
    let bad_token = SecretFile::new("wrong");
    let e = jenkins(&d, "nova", &bad_token, "").start(&spec(JOB)).await.unwrap_err();
    assert!(matches!(&e, BackendError::Unauthorized(m) if m.contains("rejected the credentials of user nova (401)") && m.contains("build_backends.ci.user")), "{e}");
    let e = jenkins(&d, "reader", &SecretFile::new("reader-token"), "").start(&spec(JOB)).await.unwrap_err();
    assert!(matches!(&e, BackendError::Forbidden(m) if m.contains("user reader may not build job payments/payment-service-build (403)")), "{e}");
    let e = jenkins(&d, "nova", &token, "").start(&spec("payments/x")).await.unwrap_err();
    assert!(matches!(&e, BackendError::NotFound(m) if m.starts_with("Jenkins job payments/x not found")), "{e}");
    let e = jenkins(&d, "nova", &token, "").start(&spec("payments/old-build")).await.unwrap_err();
    assert!(matches!(&e, BackendError::Rejected(m) if m.contains("NOVA_BUILD_ID, GIT_REF, COMMIT")), "{e}");
    let e = backend(&format!("type = \"jenkins\"\nurl = \"{}\"\nuser = \"nova\"\ntoken = {{ env = \"NOVA_TEST_UNSET_JENKINS_TOKEN\" }}", d.url)).start(&spec(JOB)).await.unwrap_err();
    assert!(matches!(&e, BackendError::Unauthorized(m) if m.contains("env NOVA_TEST_UNSET_JENKINS_TOKEN: the environment variable is not set")), "{e}");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let e = backend(&format!("type = \"jenkins\"\nurl = \"http://{closed}/\"\nuser = \"nova\"\ntoken = {}", token.reference())).start(&spec(JOB)).await.unwrap_err();
    assert!(matches!(&e, BackendError::Unavailable(m) if m.contains("cannot reach Jenkins")) && e.is_transient(), "{e}");
    assert_eq!(d.builds(JOB).len() + d.queue_items(), 0);
}

#[tokio::test]
async fn jenkins_password_authentication_sends_the_crumb() {
    let (d, _) = jenkins_double(Options { crumb_required: true, ..Options::default() }).await;
    d.add_user("human", "a-password", true, Perm::Build);
    let password = SecretFile::new("a-password");
    // Without the crumb, the double refuses the POST as Jenkins does.
    let e = jenkins(&d, "human", &password, "").start(&spec(JOB)).await.unwrap_err();
    assert!(matches!(&e, BackendError::Forbidden(m) if m.contains("No valid crumb")), "{e}");
    let ci = jenkins(&d, "human", &password, "auth = \"password\"");
    let run = ci.start(&spec(JOB)).await.unwrap();
    ci.cancel(&run).await.unwrap();
    assert_eq!(ci.status(&run).await.unwrap().state, RunState::Cancelled);
    assert!(d.requests().iter().any(|l| l.starts_with("GET /jenkins/crumbIssuer/api/json -> 200")));
}

#[tokio::test]
async fn a_secret_build_argument_never_leaks() {
    const CANARY: &str = "canary-3f9a1c-must-not-leak";
    let (d, token) = jenkins_double(Options::default()).await;
    d.add_job("payments/with-secrets", &NOVA_PARAMETERS, &["SECRET_BUILD_ARGS"]);
    let mut s = spec("payments/with-secrets");
    s.build_args.push(arg("NPM_TOKEN", CANARY, true));

    let mut said = vec![format!("{s:?}")];
    // Without password parameters configured, Jenkins is not sent the secret at all.
    let e = jenkins(&d, "nova", &token, "").start(&s).await.unwrap_err();
    said.push(format!("{e} {e:?}"));
    assert!(matches!(&e, BackendError::Rejected(m) if m.contains("NPM_TOKEN is secret") && m.contains("password_parameters")), "{e}");
    assert!(d.requests().iter().all(|l| !l.contains("buildWithParameters")));

    // With them, it goes as a password parameter in the form body.
    let ci = jenkins(&d, "nova", &token, "password_parameters = true");
    assert_eq!(ci.health_check("payments/with-secrets").await.status, HealthStatus::Pass);
    let run = ci.start(&s).await.unwrap();
    d.release_queue();
    let build = &d.builds("payments/with-secrets")[0];
    assert_eq!(build.params.iter().find(|(n, ..)| n == "SECRET_BUILD_ARGS").unwrap(), &("SECRET_BUILD_ARGS".into(), format!("NPM_TOKEN={CANARY}\n"), true));
    assert!(!param(build, "BUILD_ARGS").contains(CANARY));
    ci.status(&run).await.unwrap();
    ci.logs(&run, 0).await.unwrap();
    ci.cancel(&run).await.unwrap();
    // The job does not define the password parameter: refused before anything is sent.
    let e = ci.start(&spec(JOB)).await.unwrap_err();
    assert!(e.to_string().contains("SECRET_BUILD_ARGS"), "{e}");
    said.push(format!("{e} {e:?}"));

    // GitHub workflow inputs are readable by anyone who reads the run: refused.
    let (g, gh_token) = github_double(RunDetails::Supported).await;
    let mut gs = spec(WORKFLOW);
    gs.build_args.push(arg("NPM_TOKEN", CANARY, true));
    let e = github(&g, &gh_token, "").start(&gs).await.unwrap_err();
    assert!(matches!(&e, BackendError::Rejected(m) if m.contains("NPM_TOKEN is secret")), "{e}");
    assert!(g.requests().is_empty());
    said.push(format!("{e} {e:?} {gs:?}"));

    for text in [said.join("\n"), d.requests().join("\n"), g.requests().join("\n"), g.bodies().join("\n"), String::from_utf8_lossy(&logs().lock().unwrap()).into_owned()] {
        assert!(!text.contains(CANARY), "the canary leaked: {text}");
    }
}

#[tokio::test]
async fn github_dispatch_with_run_details_tracks_the_run() {
    let (g, token) = github_double(RunDetails::Supported).await;
    let gh = github(&g, &token, "");
    let s = spec(WORKFLOW);
    let run = gh.start(&s).await.unwrap();
    let runs = g.runs();
    assert_eq!(runs.len(), 1);
    let (id, title, _, _, inputs) = &runs[0];
    assert_eq!(run.url.as_deref(), Some(format!("{}/payments/payment-service/actions/runs/{id}", g.api.trim_end_matches("/api/v3")).as_str()));
    assert!(title.contains(&s.build_id.to_string()));
    assert_eq!(inputs["nova_build_id"], s.build_id.to_string());
    assert_eq!(inputs["dockerfile"], "docker/Dockerfile.prod");
    assert_eq!(inputs["build_args"], r#"{"GO_VERSION":"1.23"}"#);
    let dispatch = g.bodies().into_iter().find(|b| b.contains("\"ref\"")).unwrap();
    assert!(dispatch.contains("\"return_run_details\":true") && dispatch.contains("\"ref\":\"main\""), "{dispatch}");
    assert!(g.requests().iter().all(|l| l.ends_with("[api-version 2022-11-28]")), "{:#?}", g.requests());
    assert_eq!(gh.status(&run).await.unwrap().state, RunState::Queued);

    g.set_run(*id, "in_progress", None);
    g.step(*id, "build", "Set up job", "success");
    let running = gh.status(&run).await.unwrap();
    assert_eq!(running.state, RunState::Running);
    assert!(running.started_at_ms.is_some());
    let first = gh.logs(&run, 0).await.unwrap();
    assert!(first.more && first.text.contains(&format!("/actions/runs/{id}")) && first.text.ends_with("[build] Set up job: success\n"), "{}", first.text);
    g.step(*id, "build", "Build and push", "success");
    let second = gh.logs(&run, first.next_offset).await.unwrap();
    assert_eq!(second.text, "[build] Build and push: success\n");
    g.set_run(*id, "completed", Some("success"));
    let done = gh.status(&run).await.unwrap();
    assert_eq!(done.state, RunState::Succeeded);
    assert!(done.duration_ms.is_some());
    let last = gh.logs(&run, second.next_offset).await.unwrap();
    assert_eq!((last.text.as_str(), last.more), ("[build] job finished: success\n", false));
}

#[tokio::test]
async fn github_enterprise_without_run_details_finds_the_run_by_its_name() {
    // A server that ignores return_run_details answers 204: the run is found by run-name.
    let (g, token) = github_double(RunDetails::Ignored).await;
    g.hide_new_runs_for(1); // runs appear in the list a moment after the dispatch
    let gh = github(&g, &token, "run_lookup_wait = \"5s\"");
    let s = spec(WORKFLOW);
    let run = gh.start(&s).await.unwrap();
    let (id, ..) = g.runs()[0].clone();
    assert!(run.id.contains(&format!("run/{id}")), "{run:?}");
    // A retry after a crash finds the same run instead of dispatching again.
    let again = github(&g, &token, "").start(&s).await.unwrap();
    assert_eq!(again, run);
    assert_eq!(g.runs().len(), 1);

    // When the run has not appeared before start gives up waiting, status finds it later.
    g.hide_new_runs_for(1);
    let pending = github(&g, &token, "run_lookup_wait = \"0s\"").start(&spec(WORKFLOW)).await.unwrap();
    assert!(pending.id.contains("#pending/"), "{pending:?}");
    assert_eq!(gh.status(&pending).await.unwrap().state, RunState::Queued, "still hidden");
    let (id2, ..) = g.runs()[1].clone();
    g.set_run(id2, "in_progress", None);
    assert_eq!(gh.status(&pending).await.unwrap().state, RunState::Running);
    gh.cancel(&pending).await.unwrap();
    assert_eq!(g.runs()[1].3.as_deref(), Some("cancelled"));
}

#[tokio::test]
async fn github_enterprise_refusing_the_flag_falls_back_once() {
    let (g, token) = github_double(RunDetails::Refused).await;
    let gh = github(&g, &token, "run_lookup_wait = \"5s\"");
    let run = gh.start(&spec(WORKFLOW)).await.unwrap();
    assert_eq!(gh.status(&run).await.unwrap().state, RunState::Queued);
    gh.start(&spec(WORKFLOW)).await.unwrap();
    let dispatches: Vec<String> = g.requests().into_iter().filter(|l| l.contains("/dispatches")).collect();
    assert_eq!(dispatches.len(), 3, "refused, resent without the flag, then the next build without it: {dispatches:#?}");
    let bodies: Vec<String> = g.bodies();
    assert!(bodies[0].contains("return_run_details") && !bodies[1].contains("return_run_details") && !bodies[2].contains("return_run_details"));
    assert_eq!(g.runs().len(), 2);
}

#[tokio::test]
async fn github_failure_timeout_and_cancel() {
    let (g, token) = github_double(RunDetails::Supported).await;
    let gh = github(&g, &token, "");
    let failed = gh.start(&spec(WORKFLOW)).await.unwrap();
    let timed_out = gh.start(&spec(WORKFLOW)).await.unwrap();
    let cancelled = gh.start(&spec(WORKFLOW)).await.unwrap();
    let ids: Vec<u64> = g.runs().iter().map(|r| r.0).collect();
    g.set_run(ids[0], "in_progress", None);
    g.step(ids[0], "build", "Checkout", "success");
    g.step(ids[0], "build", "Build and push", "failure");
    g.set_run(ids[0], "completed", Some("failure"));
    assert_eq!(gh.status(&failed).await.unwrap().state, RunState::Failed("job build failed at step \"Build and push\"".into()));
    g.set_run(ids[1], "completed", Some("timed_out"));
    assert_eq!(gh.status(&timed_out).await.unwrap().state, RunState::TimedOut);
    g.set_run(ids[2], "in_progress", None);
    gh.cancel(&cancelled).await.unwrap();
    assert_eq!(gh.status(&cancelled).await.unwrap().state, RunState::Cancelled);
    // Cancelling a completed run (GitHub answers 409) is not an error.
    gh.cancel(&failed).await.unwrap();
    assert!(g.requests().iter().any(|l| l.contains(&format!("/runs/{}/cancel", ids[0]))));
}

#[tokio::test]
async fn github_rate_limits_and_refusals_are_clear() {
    let (g, token) = github_double(RunDetails::Supported).await;
    g.add_token("read_only", Access::ReadOnly);
    g.add_workflow("payments/payment-service/old.yml", &["image", "tag"], None);
    let gh = github(&g, &token, "");
    g.limit_next(Limit::Primary);
    let Err(BackendError::RateLimited { retry_after: Some(wait) }) = gh.start(&spec(WORKFLOW)).await else { panic!("primary rate limit") };
    assert!((50..=60).contains(&wait.as_secs()), "{wait:?}");
    g.limit_next(Limit::Secondary);
    let e = gh.start(&spec(WORKFLOW)).await.unwrap_err();
    assert_eq!(e, BackendError::RateLimited { retry_after: Some(Duration::from_secs(30)) });
    assert!(e.is_transient() && e.to_string().contains("retry after 30s"));
    assert!(g.runs().is_empty());

    let e = github(&g, &SecretFile::new("ghp_wrong"), "").start(&spec(WORKFLOW)).await.unwrap_err();
    assert!(matches!(&e, BackendError::Unauthorized(m) if m.contains("build_backends.ci.token")), "{e}");
    let e = github(&g, &SecretFile::new("read_only"), "").start(&spec(WORKFLOW)).await.unwrap_err();
    assert!(matches!(&e, BackendError::Forbidden(m) if m.contains("actions:write") && m.contains("Resource not accessible")), "{e}");
    let e = gh.start(&spec("payments/payment-service/nope.yml")).await.unwrap_err();
    assert!(matches!(&e, BackendError::NotFound(m) if m.starts_with("GitHub workflow payments/payment-service/nope.yml not found")), "{e}");
    let e = gh.start(&spec("payments/payment-service/old.yml")).await.unwrap_err();
    assert!(matches!(&e, BackendError::Rejected(m) if m.contains("Unexpected inputs provided")), "{e}");
    let mut on_commit = spec(WORKFLOW);
    on_commit.git_ref = GitRef::parse("0123abcd").unwrap();
    let e = gh.start(&on_commit).await.unwrap_err();
    assert!(matches!(&e, BackendError::Rejected(m) if m.contains("workflow_ref")), "{e}");
    let mut unknown_branch = spec(WORKFLOW);
    unknown_branch.git_ref = GitRef::parse("feature/x").unwrap();
    let e = gh.start(&unknown_branch).await.unwrap_err();
    assert!(matches!(&e, BackendError::Rejected(m) if m.contains("No ref found for: feature/x")), "{e}");
    // With workflow_ref, the workflow runs from that branch and the commit is an input.
    github(&g, &token, "workflow_ref = \"release\"").start(&on_commit).await.unwrap();
    assert_eq!(g.runs()[0].4["git_ref"], "0123abcd");
}

#[tokio::test]
async fn health_checks_make_a_real_call_and_say_what_to_fix() {
    let (d, token) = jenkins_double(Options::default()).await;
    d.add_job("payments/old-build", &["GIT_URL"], &[]);
    let report = jenkins(&d, "nova", &token, "").health_check(JOB).await;
    assert_eq!(report.status, HealthStatus::Pass, "{report:?}");
    assert_eq!(report.component, "jenkins");
    let report = jenkins(&d, "nova", &SecretFile::new("wrong"), "").health_check(JOB).await;
    assert_eq!(report.status, HealthStatus::Fail);
    assert!(report.reason.contains("401") && report.fix.as_deref().unwrap().contains("API token"), "{report:?}");
    let report = jenkins(&d, "nova", &token, "").health_check("payments/old-build").await;
    assert!(report.status == HealthStatus::Fail && report.reason.contains("NOVA_BUILD_ID"), "{report:?}");
    let report = jenkins(&d, "nova", &token, "").health_check("payments/missing").await;
    assert!(report.status == HealthStatus::Fail && report.reason.contains("not found"), "{report:?}");
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["status"], "fail");

    let (g, gh_token) = github_double(RunDetails::Supported).await;
    g.add_workflow("payments/payment-service/unnamed.yml", &NOVA_INPUTS, None);
    g.add_token("no_contents", Access::NoContents);
    let report = github(&g, &gh_token, "").health_check(WORKFLOW).await;
    assert_eq!(report.status, HealthStatus::Pass, "{report:?}");
    let report = github(&g, &SecretFile::new("ghp_wrong"), "").health_check(WORKFLOW).await;
    assert_eq!(report.status, HealthStatus::Fail);
    assert!(report.fix.as_deref().unwrap().contains("valid token"), "{report:?}");
    let report = github(&g, &gh_token, "").health_check("payments/payment-service/unnamed.yml").await;
    assert!(report.status == HealthStatus::Fail && report.fix.as_deref().unwrap().contains("run-name"), "{report:?}");
    let report = github(&g, &SecretFile::new("no_contents"), "").health_check(WORKFLOW).await;
    assert_eq!(report.status, HealthStatus::Warn, "{report:?}");
    let report = github(&g, &gh_token, "").health_check("payments/payment-service").await;
    assert_eq!(report.status, HealthStatus::Fail);
}

/// Benchmark helper (bench/builds/run.sh): 200 concurrent starts for distinct builds against
/// the Jenkins double; none may be lost or duplicated. Prints one line of results.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run by bench/builds/run.sh"]
async fn bench_concurrent_jenkins_starts() {
    let count: usize = std::env::var("NOVA_BENCH_STARTS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let (d, token) = jenkins_double(Options::default()).await;
    let ci = jenkins(&d, "nova", &token, "");
    let specs: Vec<BuildSpec> = (0..count).map(|_| spec(JOB)).collect();
    let started = std::time::Instant::now();
    let handles: Vec<RunHandle> = join_all(specs.iter().map(|s| {
        let ci = ci.clone();
        let s = s.clone();
        tokio::spawn(async move { ci.start(&s).await.unwrap() })
    }))
    .await;
    let wall = started.elapsed();
    let mut ids: Vec<&str> = handles.iter().map(|h| h.id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), count, "every start got its own run");
    assert_eq!(d.queue_items(), count, "none lost, none merged");
    d.release_queue();
    let builds = d.builds(JOB);
    let mut correlation: Vec<String> = builds.iter().map(|b| param(b, "NOVA_BUILD_ID").to_string()).collect();
    correlation.sort();
    let mut expected: Vec<String> = specs.iter().map(|s| s.build_id.to_string()).collect();
    expected.sort();
    assert_eq!(correlation, expected, "one build per build id");
    for (h, s) in handles.iter().zip(&specs).step_by(count.div_ceil(20).max(1)) {
        let number = ci.status(h).await.unwrap().url.unwrap();
        let n: usize = number.trim_end_matches('/').rsplit('/').next().unwrap().parse().unwrap();
        assert_eq!(param(&builds[n - 1], "NOVA_BUILD_ID"), s.build_id.to_string(), "the handle leads to its own build");
    }
    println!("BENCH starts={count} lost=0 duplicated=0 wall_ms={:.1}", wall.as_secs_f64() * 1000.0);
}

async fn join_all<T: Send + 'static>(tasks: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for t in tasks.collect::<Vec<_>>() {
        out.push(t.await.unwrap());
    }
    out
}
