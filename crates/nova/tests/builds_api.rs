//! Build requests through the HTTP API, on SQLite and PostgreSQL: owners only, every bad field
//! refused with its name and rule, idempotency keys, history, cancel and the audit trail.

mod support;

use nova::audit::AuditQuery;
use nova_domain::EntityRef;
use serde_json::{Value, json};
use support::*;

const CATALOG: &str = "\
apiVersion: backstage.io/v1alpha1
kind: Group
metadata:
  name: team-a
spec:
  type: team
  children: []
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata:
  name: alice
spec:
  memberOf: [team-a]
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata:
  name: bob
spec:
  memberOf: []
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: svc
  annotations:
    nova.dev/git-repository: https://git.example.com/team-a/svc.git
    nova.dev/image-repository: registry.example.com/team-a/svc
    nova.dev/image-tag-prefix: svc-
spec:
  type: service
  lifecycle: production
  owner: team-a
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: bare
spec:
  type: service
  lifecycle: production
  owner: team-a
";

struct Setup {
    app: TestApp,
    alice: String,
    bob: String,
}

async fn setup(backend: Backend) -> Setup {
    setup_with(backend, CATALOG.to_string(), None).await
}

/// A change to the test server's configuration.
type Configure = Option<Box<dyn FnOnce(&mut nova::config::Config) + Send>>;

async fn setup_with(backend: Backend, catalog: String, configure: Configure) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "catalog.yaml", &catalog);
    let app = spawn_app_with(backend, Options { locations: vec![file.display().to_string()], dir: Some(dir), configure, ..Default::default() }).await;
    let token = |name: &str| {
        let state = app.state.clone();
        let user = EntityRef::parse(&format!("user:default/{name}")).unwrap();
        async move { state.auth.tokens.create(&user, "test", None, true).await.unwrap().0.expose().clone() }
    };
    let (alice, bob) = (token("alice").await, token("bob").await);
    Setup { app, alice, bob }
}

async fn post(s: &Setup, token: &str, component: &str, body: &Value, key: Option<&str>) -> (u16, Value) {
    let mut req = s.app.client.post(s.app.url(&format!("/api/v1/components/{component}/builds"))).bearer_auth(token).json(body);
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn audit(s: &Setup, action: &str) -> Vec<nova::audit::StoredEvent> {
    s.app.state.audit.query(&AuditQuery { action: Some(action.into()), limit: 100, ..Default::default() }).await.unwrap().0
}

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

on_both_backends! {

async fn an_owner_requests_a_build_once_per_idempotency_key(backend: Backend) {
    let s = setup(backend).await;
    let body = json!({ "gitRef": "main", "dockerfile": "docker/app/Dockerfile", "tag": "v1", "buildArgs": [{ "name": "VERSION", "value": "1" }] });
    let (status, first) = post(&s, &s.alice, "svc", &body, Some("k-1")).await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["state"], "requested");
    assert_eq!(first["context"], "docker/app", "the context defaults to the Dockerfile's directory");
    assert_eq!(first["tag"], "svc-v1", "the component's tag prefix is applied");
    assert_eq!(first["image"], "registry.example.com/team-a/svc");
    assert_eq!(first["gitUrl"], "https://git.example.com/team-a/svc.git");
    assert_eq!(first["pipeline"], "local");

    let (status, again) = post(&s, &s.alice, "svc", &body, Some("k-1")).await;
    assert_eq!(status, 200);
    assert_eq!(again["id"], first["id"], "the same key gives the same build");

    let (status, default_tag) = post(&s, &s.alice, "component:default%2Fsvc", &json!({ "gitRef": SHA, "dockerfile": "Dockerfile" }), None).await;
    assert_eq!(status, 201, "{default_tag}");
    let tag = default_tag["tag"].as_str().unwrap();
    assert!(tag.starts_with("svc-") && tag.ends_with("Z-0123456"), "immutable default tag from the commit: {tag}");
    assert_eq!(default_tag["context"], ".");

    let list = s.app.get_json("/api/v1/components/svc/builds", 200).await;
    assert_eq!(list.as_array().unwrap().len(), 2, "two builds, not three: {list}");
    let id = first["id"].as_str().unwrap();
    assert_eq!(s.app.get_json(&format!("/api/v1/builds/{id}"), 200).await["dockerfile"], "docker/app/Dockerfile");

    let requested = audit(&s, "build.request").await;
    assert_eq!(requested.len(), 2);
    let details = &requested.iter().find(|e| e.details["build"] == first["id"]).unwrap().details;
    assert_eq!(details["dockerfile"], "docker/app/Dockerfile");
    assert_eq!(details["idempotencyKey"], "k-1");
    assert_eq!(details["buildArgs"][0]["name"], "VERSION");
}

async fn the_console_asks_for_a_build_without_javascript_and_shows_it(backend: Backend) {
    let s = setup(backend).await;
    let tab = s.app.client.get(s.app.url("/catalog/default/component/svc/builds")).bearer_auth(&s.alice).send().await.unwrap().text().await.unwrap();
    assert!(tab.contains("Build image") && tab.contains("name=\"idempotencyKey\""), "{tab}");
    let key = tab.split("name=\"idempotencyKey\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    let form = [("component", "component:default/svc"), ("gitRef", "main"), ("dockerfile", "Dockerfile"), ("context", ""), ("tag", "form-1"), ("idempotencyKey", key.as_str())];
    let submit = || s.app.client.post(s.app.url("/builds")).bearer_auth(&s.alice).header("Origin", s.app.base.clone()).form(&form).send();
    let res = submit().await.unwrap();
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    let location = res.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(submit().await.unwrap().headers()["location"].to_str().unwrap(), location, "submitting the form twice makes one build");
    let page = s.app.client.get(s.app.url(&location)).bearer_auth(&s.alice).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("registry.example.com/team-a/svc:svc-form-1") && page.contains("/static/build.js") && page.contains("id=\"build-log\""), "{page}");
    let tab = s.app.client.get(s.app.url("/catalog/default/component/svc/builds")).bearer_auth(&s.alice).send().await.unwrap().text().await.unwrap();
    assert!(tab.contains(&location), "the history links the build: {tab}");
    assert_eq!(s.app.get("/static/build.js").await.status(), 200);
    let refused = s.app.client.post(s.app.url("/builds")).bearer_auth(&s.bob).header("Origin", s.app.base.clone()).form(&form).send().await.unwrap();
    assert_eq!(refused.status(), 403);
}

async fn bad_input_is_refused_naming_the_field_and_audited(backend: Backend) {
    let s = setup(backend).await;
    let base = json!({ "gitRef": "main", "dockerfile": "Dockerfile", "tag": "v1" });
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    let cases = [
        (with("dockerfile", json!("../../etc/passwd")), "dockerfile"),
        (with("dockerfile", json!("/abs")), "dockerfile"),
        (with("dockerfile", json!("docker/../../x")), "dockerfile"),
        (with("dockerfile", json!("-f")), "dockerfile"),
        (with("dockerfile", json!("--output=/tmp/x")), "dockerfile"),
        (with("dockerfile", json!(".")), "dockerfile"),
        (with("context", json!("a\nb")), "context"),
        (with("context", json!("../up")), "context"),
        (with("gitRef", json!("--upload-pack=touch /tmp/x")), "gitRef"),
        (with("gitRef", json!("main;rm -rf /")), "gitRef"),
        (with("gitRef", json!("")), "gitRef"),
        (with("tag", json!("a:b")), "tag"),
        (with("tag", json!("a/b")), "tag"),
        (with("tag", json!(".x")), "tag"),
        (with("tag", json!("-x")), "tag"),
        (with("tag", json!("x".repeat(129))), "tag"),
        (with("tag", json!("x".repeat(128))), "tag"),
        (with("tag", json!("")), "tag"),
        (with("buildArgs", json!([{ "name": "A B", "value": "1" }])), "buildArgs[0].name"),
        (with("buildArgs", json!([{ "name": "A", "value": "1\n2" }])), "buildArgs[0].value"),
        (with("buildArgs", json!([{ "name": "A", "value": "1" }, { "name": "A", "value": "2" }])), "buildArgs[1].name"),
        (with("extra", json!(1)), "body"),
    ];
    for (body, field) in &cases {
        let (status, problem) = post(&s, &s.alice, "svc", body, None).await;
        assert_eq!(status, 400, "{body} -> {problem}");
        assert!(problem["detail"].as_str().unwrap_or_default().starts_with(&format!("{field}:")) || problem.to_string().contains(field), "{body} should name {field}: {problem}");
    }
    let (status, problem) = post(&s, &s.alice, "bare", &base, None).await;
    assert_eq!(status, 400);
    assert!(problem.to_string().contains("gitRepository"), "{problem}");
    let (status, _) = post(&s, &s.alice, "svc", &base, Some("bad key")).await;
    assert_eq!(status, 400);
    let (status, _) = post(&s, &s.alice, "nope", &base, None).await;
    assert_eq!(status, 404);
    let (status, _) = post(&s, &s.alice, "group:team-a", &base, None).await;
    assert_eq!(status, 400);

    assert!(s.app.get_json("/api/v1/components/svc/builds", 200).await.as_array().unwrap().is_empty(), "nothing was recorded");
    let refused = audit(&s, "build.request").await;
    assert_eq!(refused.len(), cases.len() + 2, "every refusal of a known component is audited");
    assert!(refused.iter().all(|e| e.outcome == "failure"));
}

async fn only_owners_build_and_cancel(backend: Backend) {
    let s = setup(backend).await;
    let body = json!({ "gitRef": "main", "dockerfile": "Dockerfile", "tag": "v1" });
    let (status, problem) = post(&s, &s.bob, "svc", &body, None).await;
    assert_eq!(status, 403, "{problem}");
    assert!(s.app.state.jobs.counts().await.unwrap().iter().all(|(kind, _, _)| kind != "build.run"), "a refused build starts nothing");
    let anonymous = s.app.client.post(s.app.url("/api/v1/components/svc/builds")).json(&body).send().await.unwrap();
    assert!(matches!(anonymous.status().as_u16(), 401 | 403));
    assert_eq!(audit(&s, "authz.deny.build").await.len(), 2);

    let (_, build) = post(&s, &s.alice, "svc", &body, None).await;
    let cancel = |token: String| {
        let url = s.app.url(&format!("/api/v1/builds/{}/cancel", build["id"].as_str().unwrap()));
        s.app.client.post(url).bearer_auth(token).send()
    };
    assert_eq!(cancel(s.bob.clone()).await.unwrap().status(), 403);
    let res = cancel(s.alice.clone()).await.unwrap();
    assert_eq!(res.status(), 200);
    let cancelled: Value = res.json().await.unwrap();
    assert_eq!(cancelled["state"], "cancelled");
    assert!(cancelled["finishedAt"].is_i64());
    assert_eq!(cancel(s.alice.clone()).await.unwrap().status(), 409, "a finished build cannot be cancelled again");
    assert_eq!(audit(&s, "build.cancel").await.len(), 1);
    assert_eq!(s.app.get("/api/v1/builds/no-such-build").await.status(), 404);
}

}

/// A CNCF registry on a free port, stopped when dropped.
struct Registry {
    child: std::process::Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_registry(exe: &str) -> Registry {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = format!("127.0.0.1:{port}");
    let config = write_file(dir.path(), "config.yml", &format!("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n", dir.path().join("data").display()));
    let child = std::process::Command::new(exe).arg("serve").arg(&config).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().expect("start docker-registry");
    let registry = Registry { child, addr, _dir: dir };
    for _ in 0..100 {
        if reqwest::get(format!("http://{}/v2/", registry.addr)).await.is_ok_and(|r| r.status() == 200) {
            return registry;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("docker-registry did not start on {}", registry.addr);
}

fn git(dir: &std::path::Path, args: &[&str]) {
    let ok = std::process::Command::new("git").arg("-C").arg(dir).args(["-c", "user.name=t", "-c", "user.email=t@example.com"]).args(args).status().unwrap().success();
    assert!(ok, "git {args:?}");
}

async fn wait_final(s: &Setup, id: &str) -> Value {
    for _ in 0..1200 {
        let b = s.app.get_json(&format!("/api/v1/builds/{id}"), 200).await;
        if !matches!(b["state"].as_str(), Some("requested" | "queued" | "running")) {
            return b;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    panic!("build {id} did not finish");
}

/// End to end: a git repository, buildah with vfs storage and chroot isolation, a real registry.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_local_runner_builds_and_pushes_a_real_image() {
    let (Some(_), Some(registry_exe), Some(_)) = (
        require("buildah", on_path("buildah"), "apt-get install buildah"),
        require("docker-registry", on_path("docker-registry"), "apt-get install docker-registry"),
        require("git", on_path("git"), "apt-get install git"),
    ) else {
        return;
    };
    let registry = start_registry(&registry_exe).await;
    let repo = tempfile::tempdir().unwrap();
    write_file(repo.path(), "images/app/Dockerfile", "FROM scratch\nARG GREETING\nCOPY hello.txt /hello.txt\n");
    write_file(repo.path(), "images/app/hello.txt", "hello from nova\n");
    write_file(repo.path(), "README", "not part of the image\n");
    git(repo.path(), &["init", "-q", "-b", "main"]);
    git(repo.path(), &["add", "."]);
    git(repo.path(), &["commit", "-q", "-m", "app"]);
    let catalog = CATALOG
        .replace("https://git.example.com/team-a/svc.git", &repo.path().display().to_string())
        .replace("registry.example.com/team-a/svc", &format!("{}/team-a/svc", registry.addr));
    let insecure = registry.addr.clone();
    let s = setup_with(Backend::Sqlite, catalog, Some(Box::new(move |c: &mut nova::config::Config| c.builds.insecure_registries = vec![insecure]))).await;

    let body = json!({ "gitRef": "main", "dockerfile": "images/app/Dockerfile", "tag": "v1", "buildArgs": [{ "name": "GREETING", "value": "hi" }] });
    let (status, build) = post(&s, &s.alice, "svc", &body, None).await;
    assert_eq!(status, 201, "{build}");
    let done = wait_final(&s, build["id"].as_str().unwrap()).await;
    let log = s.app.get(&format!("/api/v1/builds/{}/log", build["id"].as_str().unwrap())).await.text().await.unwrap();
    assert_eq!(done["state"], "succeeded", "{done}\n{log}");
    let digest = done["digest"].as_str().unwrap();
    assert!(digest.starts_with("sha256:"), "{digest}");
    assert!(log.contains("[nova] git clone") && log.contains("[nova] pushed"), "{log}");
    let events = s.app.get(&format!("/api/v1/builds/{}/events", build["id"].as_str().unwrap())).await;
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    let events = events.text().await.unwrap();
    assert!(events.contains("event: log\n") && events.contains("data: [nova] git clone\n"), "{events}");
    assert!(events.contains("event: status\ndata: {") && events.contains("\"state\":\"succeeded\""), "the stream ends with the final state: {events}");

    let manifest = reqwest::Client::new()
        .get(format!("http://{}/v2/team-a/svc/manifests/svc-v1", registry.addr))
        .header("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json")
        .send()
        .await
        .unwrap();
    assert_eq!(manifest.status(), 200);
    assert_eq!(manifest.headers()["docker-content-digest"].to_str().unwrap(), digest, "the registry holds the digest Nova recorded");

    let cli = tokio::process::Command::new(env!("CARGO_BIN_EXE_nova"))
        .args(["build", "start", "svc", "--ref", "main", "--dockerfile", "images/app/Dockerfile", "--tag", "cli", "--follow"])
        .env("NOVA_SERVER", &s.app.base)
        .env("NOVA_TOKEN", &s.alice)
        .output()
        .await
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&cli.stdout), String::from_utf8_lossy(&cli.stderr));
    assert!(cli.status.success(), "nova build start --follow: {stdout}\n{stderr}");
    assert!(stdout.contains("svc-cli") && stdout.contains("[nova] pushed") && stderr.contains("succeeded sha256:"), "{stdout}\n{stderr}");

    let (_, missing) = post(&s, &s.alice, "svc", &json!({ "gitRef": "main", "dockerfile": "images/none/Dockerfile", "tag": "v2" }), None).await;
    let failed = wait_final(&s, missing["id"].as_str().unwrap()).await;
    assert_eq!(failed["state"], "failed");
    assert!(failed["reason"].as_str().unwrap().contains("dockerfile images/none/Dockerfile"), "{failed}");
    let (_, no_ref) = post(&s, &s.alice, "svc", &json!({ "gitRef": "no-such-branch", "dockerfile": "images/app/Dockerfile", "tag": "v3" }), None).await;
    let failed = wait_final(&s, no_ref["id"].as_str().unwrap()).await;
    assert!(failed["reason"].as_str().unwrap().contains("names no branch"), "{failed}");
}
