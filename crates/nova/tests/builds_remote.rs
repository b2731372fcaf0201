//! Builds handed to Jenkins and GitHub Actions, end to end through Nova's HTTP API: the
//! component's `nova.dev/build-pipeline` picks the configured backend, the `build.track` job
//! starts the run and copies its state and log into the build (and its event stream) until a
//! final state, cancel reaches the backend, and the per-team and per-user limits answer 429.
//! The backends are the documented-protocol doubles of tests/support, not real servers.

mod support;
#[path = "support/github_double.rs"]
mod github_double;
#[path = "support/jenkins_double.rs"]
mod jenkins_double;

use std::io::Write as _;
use std::time::Duration;

use github_double::{Access, GithubDouble, NOVA_INPUTS, RunDetails};
use jenkins_double::{JenkinsDouble, NOVA_PARAMETERS, Options as JenkinsOptions, Perm};
use nova_domain::EntityRef;
use serde_json::{Value, json};
use support::*;

const JOB: &str = "team-a/svc-build";
const WORKFLOW: &str = "team-a/svc/build.yml";
const DIGEST: &str = "sha256:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945";

fn catalog() -> String {
    let component = |name: &str, pipeline: &str| {
        format!(
            "---\napiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\n  annotations:\n    nova.dev/git-repository: https://git.example.com/team-a/svc.git\n    nova.dev/image-repository: registry.example.com/team-a/{name}\n    nova.dev/build-pipeline: \"{pipeline}\"\nspec: {{ type: service, lifecycle: production, owner: team-a }}\n"
        )
    };
    format!(
        "apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata: {{ name: team-a }}\nspec: {{ type: team, children: [] }}\n---\napiVersion: backstage.io/v1alpha1\nkind: User\nmetadata: {{ name: alice }}\nspec: {{ memberOf: [team-a] }}\n{}{}{}",
        component("svc", &format!("jenkins:{JOB}")),
        component("gh-svc", &format!("github-actions:{WORKFLOW}")),
        component("nowhere", "gitlab:x/y"),
    )
}

fn secret_file(value: &str) -> tempfile::TempPath {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    write!(f, "{value}\n").unwrap();
    f.into_temp_path()
}

struct Setup {
    app: TestApp,
    token: String,
    _secrets: Vec<tempfile::TempPath>,
}

async fn setup(jenkins: &JenkinsDouble, github: Option<&GithubDouble>, limits: (u32, u32)) -> Setup {
    let jenkins_token = secret_file("api-token-1");
    let github_token = secret_file("ghs_token");
    let mut backends = format!("[ci]\ntype = \"jenkins\"\nurl = \"{}\"\nuser = \"nova\"\ntoken = {{ file = \"{}\" }}\n", jenkins.url, jenkins_token.display());
    if let Some(g) = github {
        backends.push_str(&format!("[gh]\ntype = \"github-actions\"\napi_url = \"{}\"\ntoken = {{ file = \"{}\" }}\n", g.api, github_token.display()));
    }
    let backends: std::collections::BTreeMap<String, nova::builds::backend::BuildBackendConfig> = toml::from_str(&backends).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "catalog.yaml", &catalog());
    let configure = move |c: &mut nova::config::Config| {
        c.build_backends = backends;
        c.builds.poll_interval = Duration::from_millis(100);
        (c.builds.max_active_per_team, c.builds.max_requests_per_user) = limits;
    };
    let app = spawn_app_with(Backend::Sqlite, Options { locations: vec![file.display().to_string()], dir: Some(dir), configure: Some(Box::new(configure)), ..Default::default() }).await;
    let user = EntityRef::new("user", "default", "alice");
    let token = app.state.auth.tokens.create(&user, "test", None, true).await.unwrap().0.expose().clone();
    Setup { app, token, _secrets: vec![jenkins_token, github_token] }
}

impl Setup {
    async fn request(&self, component: &str, tag: &str, key: Option<&str>) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut req = self.app.client.post(self.app.url(&format!("/api/v1/components/{component}/builds"))).bearer_auth(&self.token).json(&json!({ "gitRef": "main", "dockerfile": "Dockerfile", "tag": tag }));
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        let res = req.send().await.unwrap();
        let (status, headers) = (res.status().as_u16(), res.headers().clone());
        (status, headers, res.json().await.unwrap_or(Value::Null))
    }

    /// Polls the build until `done` holds for it.
    async fn wait(&self, id: &str, what: &str, done: impl Fn(&Value, &str) -> bool) -> Value {
        for _ in 0..200 {
            let b = self.app.get_json(&format!("/api/v1/builds/{id}"), 200).await;
            let log = self.app.get(&format!("/api/v1/builds/{id}/log")).await.text().await.unwrap();
            if done(&b, &log) {
                return b;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("build {id} never got {what}");
    }
}

async fn jenkins() -> JenkinsDouble {
    let d = JenkinsDouble::start(JenkinsOptions::default()).await;
    d.add_job(JOB, &NOVA_PARAMETERS, &[]);
    d.add_user("nova", "api-token-1", false, Perm::Build);
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jenkins_and_github_builds_are_started_tracked_and_cancelled_through_the_api() {
    let d = jenkins().await;
    let g = GithubDouble::start(RunDetails::Supported).await;
    g.add_workflow(WORKFLOW, &NOVA_INPUTS, Some("Nova build ${{ inputs.image }}:${{ inputs.tag }} (${{ inputs.nova_build_id }})"));
    g.add_token("ghs_token", Access::Full);
    let s = setup(&d, Some(&g), (10, 30)).await;

    // Jenkins: queued, running with its log streamed, succeeded with the digest it reports.
    let (status, _, build) = s.request("svc", "v1", None).await;
    assert_eq!(status, 201, "{build}");
    assert_eq!(build["pipeline"], format!("jenkins:{JOB}"));
    let id = build["id"].as_str().unwrap().to_string();
    let queued = s.wait(&id, "queued in Jenkins", |b, _| b["state"] == "queued").await;
    assert!(queued["runUrl"].as_str().unwrap().contains("/job/team-a/job/svc-build/"), "{queued}");
    let started = &d.builds(JOB);
    assert!(started.is_empty(), "still in Jenkins' queue");
    d.release_queue();
    s.wait(&id, "running", |b, _| b["state"] == "running").await;
    let jenkins_build = &d.builds(JOB)[0];
    assert_eq!(jenkins_build.params.iter().find(|p| p.0 == "NOVA_BUILD_ID").unwrap().1, id, "the correlation id is the build's id");
    d.append_log(JOB, 1, "STEP 1/2: FROM scratch\n");
    s.wait(&id, "Jenkins' log", |_, log| log.contains("STEP 1/2: FROM scratch")).await;
    d.append_log(JOB, 1, "pushed\n");
    d.finish(JOB, 1, "SUCCESS", Some(&format!("pushed {DIGEST}")));
    let done = s.wait(&id, "a final state", |b, _| b["finishedAt"].is_i64()).await;
    assert_eq!((done["state"].as_str(), done["digest"].as_str()), (Some("succeeded"), Some(DIGEST)), "{done}");
    let log = s.app.get(&format!("/api/v1/builds/{id}/log")).await.text().await.unwrap();
    assert!(log.contains("[nova] started on ci") && log.contains("pushed\nFinished: SUCCESS"), "the whole log, once: {log}");
    assert_eq!(log.matches("STEP 1/2").count(), 1, "{log}");
    let events = s.app.get(&format!("/api/v1/builds/{id}/events")).await.text().await.unwrap();
    assert!(events.contains("data: STEP 1/2: FROM scratch") && events.contains("\"state\":\"succeeded\""), "{events}");
    let page = s.app.get(&format!("/builds/{id}")).await.text().await.unwrap();
    assert!(page.contains(&format!("/images#image-{DIGEST}\">registry.example.com/team-a/svc@{DIGEST}</a>")), "the page links to the pushed image: {page}");

    // Cancelled in Nova while running: Jenkins is asked to stop the build.
    let (_, _, second) = s.request("svc", "v2", None).await;
    let second = second["id"].as_str().unwrap().to_string();
    s.wait(&second, "queued", |b, _| b["state"] == "queued").await;
    d.release_queue();
    s.wait(&second, "running", |b, _| b["state"] == "running").await;
    let cancel = s.app.client.post(s.app.url(&format!("/api/v1/builds/{second}/cancel"))).bearer_auth(&s.token).send().await.unwrap();
    assert_eq!(cancel.status(), 200);
    assert_eq!(d.builds(JOB)[1].result.as_deref(), Some("ABORTED"), "Jenkins stopped it");
    let cancelled = s.app.get_json(&format!("/api/v1/builds/{second}"), 200).await;
    assert_eq!(cancelled["state"], "cancelled");

    // Jenkins forgets a running build (deleted, or lost in a restart): the build is lost.
    let (_, _, third) = s.request("svc", "v3", None).await;
    let third = third["id"].as_str().unwrap().to_string();
    s.wait(&third, "queued", |b, _| b["state"] == "queued").await;
    d.release_queue();
    s.wait(&third, "running", |b, _| b["state"] == "running").await;
    d.delete_build(JOB, 3);
    let lost = s.wait(&third, "a final state", |b, _| b["finishedAt"].is_i64()).await;
    assert_eq!(lost["state"], "lost", "{lost}");
    assert!(lost["reason"].as_str().unwrap().starts_with("ci no longer knows this build's run"), "{lost}");

    // GitHub Actions: dispatched with the build's id, followed to its failure.
    let (status, _, gh) = s.request("gh-svc", "v1", None).await;
    assert_eq!(status, 201, "{gh}");
    let gh = gh["id"].as_str().unwrap().to_string();
    s.wait(&gh, "queued on GitHub", |b, _| b["state"] == "queued").await;
    let (run, _, _, _, inputs) = g.runs().into_iter().next().expect("one run");
    assert_eq!(inputs["nova_build_id"], gh.as_str());
    g.set_run(run, "in_progress", None);
    g.step(run, "build", "Set up job", "success");
    s.wait(&gh, "running", |b, _| b["state"] == "running").await;
    g.step(run, "build", "Build and push", "failure");
    g.set_run(run, "completed", Some("failure"));
    let failed = s.wait(&gh, "a final state", |b, _| b["finishedAt"].is_i64()).await;
    assert_eq!(failed["state"], "failed");
    assert!(failed["reason"].as_str().unwrap().contains("Build and push"), "{failed}");

    // A pipeline naming no configured backend is refused before anything is recorded.
    let (status, _, problem) = s.request("nowhere", "v1", None).await;
    assert_eq!(status, 400);
    assert!(problem["detail"].as_str().unwrap().starts_with("buildPipeline:"), "{problem}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn team_and_user_limits_answer_429_with_retry_after() {
    let d = jenkins().await;
    let s = setup(&d, None, (2, 3)).await;
    let doc = s.app.get_json("/api/v1/openapi.json", 200).await;
    let schemas = &doc["components"]["schemas"];
    assert!(schemas["Build"]["properties"]["gitCommit"].is_object() && schemas["Build"]["properties"]["runUrl"].is_object(), "{}", schemas["Build"]);
    assert!(schemas["AccessCheck"].is_object() && schemas["LastUse"].is_object(), "the credential metadata's parts are documented");
    let (status, _, first) = s.request("svc", "a", Some("key-a")).await;
    assert_eq!(status, 201, "{first}");
    let (status, _, _) = s.request("svc", "b", None).await;
    assert_eq!(status, 201);

    // Two unfinished builds of team-a: a third is refused.
    let (status, headers, problem) = s.request("svc", "c", None).await;
    assert_eq!(status, 429, "{problem}");
    assert_eq!(headers["content-type"], "application/problem+json");
    assert!(headers["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    assert!(problem["detail"].as_str().unwrap().contains("builds.max_active_per_team is 2"), "{problem}");
    // The same idempotency key still answers its build.
    let (status, _, again) = s.request("svc", "a", Some("key-a")).await;
    assert_eq!((status, &again["id"]), (200, &first["id"]));

    // One cancelled: room for one more; then alice has asked 3 times within the window.
    let id = first["id"].as_str().unwrap();
    assert_eq!(s.app.client.post(s.app.url(&format!("/api/v1/builds/{id}/cancel"))).bearer_auth(&s.token).send().await.unwrap().status(), 200);
    let (status, _, _) = s.request("svc", "c", None).await;
    assert_eq!(status, 201);
    let cancel_all = s.app.get_json("/api/v1/components/svc/builds", 200).await;
    for b in cancel_all.as_array().unwrap().iter().filter(|b| b["finishedAt"].is_null()) {
        s.app.client.post(s.app.url(&format!("/api/v1/builds/{}/cancel", b["id"].as_str().unwrap()))).bearer_auth(&s.token).send().await.unwrap();
    }
    let (status, headers, problem) = s.request("svc", "d", None).await;
    assert_eq!(status, 429, "{problem}");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert!(problem["detail"].as_str().unwrap().contains("builds.max_requests_per_user is 3"), "{problem}");
    let refused = s.app.state.audit.query(&nova::audit::AuditQuery { action: Some("build.request".into()), limit: 100, ..Default::default() }).await.unwrap().0;
    assert_eq!(refused.iter().filter(|e| e.outcome == "failure").count(), 2, "both refusals are audited");
}
