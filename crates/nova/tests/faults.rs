//! Fault injection: Nova's dependencies fail while it runs, and come back. Each test starts the
//! real component itself (a CNCF registry, OpenBao, the git HTTP server, PostgreSQL) so that it
//! can stop it; a TCP proxy in the test (support/faults.rs) stands in for a slow or unreachable
//! network. What the user sees is asserted: pages keep rendering with stale-marked data, writes
//! that need the missing component fail fast with problem+json and a reason, `/ready` names
//! what is down, and Nova recovers without a restart. Durations are asserted only as upper
//! bounds (configured timeout plus a generous margin), never as speed goals.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::faults::{FaultProxy, Mode, OwnBao, OwnGitServer, OwnPostgres};
use support::registry::{Auth, ImageSpec, TestRegistry};
use support::*;

/// Slack on top of a configured timeout for "answered within the timeout": the machine is
/// shared and slow, the assertion is about not hanging.
const MARGIN: Duration = Duration::from_secs(5);

/// The admin group and user (support::ADMIN_*), a team and its member.
const ORG: &str = "apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata: {name: platform}\nspec: {type: team, children: []}\n---\n\
apiVersion: backstage.io/v1alpha1\nkind: User\nmetadata: {name: pat.chen}\nspec: {memberOf: [platform]}\n---\n\
apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata: {name: team-a}\nspec: {type: team, children: []}\n---\n\
apiVersion: backstage.io/v1alpha1\nkind: User\nmetadata: {name: alice}\nspec: {memberOf: [team-a]}\n";

/// Polls `probe` every 100 ms until it answers `Some`, at most `secs` seconds.
/// `/ready` as a platform admin: (status, body).
async fn ready_as_admin(app: &TestApp, token: &str) -> (u16, Value) {
    let r = app.client.get(app.url("/ready")).bearer_auth(token).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// The admin detail's check of `component` (or of the target of that name) in a `/ready` body.
fn integration<'a>(ready: &'a Value, component: &str) -> &'a Value {
    ready["integrations"]["checks"].as_array().and_then(|c| c.iter().find(|c| c["component"] == component || c["target"] == component)).unwrap_or(&Value::Null)
}

/// Asserts an `application/problem+json` answer with `status`; returns its body.
async fn problem(r: reqwest::Response, status: u16) -> Value {
    assert_eq!(r.status().as_u16(), status, "status");
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_registry_leaves_stale_images_ready_names_it_and_nova_recovers() {
    let Some(mut reg) = TestRegistry::start(Auth::Anonymous).await else { return };
    let img = reg.push_image("team-a/svc", &["v1"], &ImageSpec::new("2026-02-01T00:00:00Z", "abc")).await;
    let catalog = format!("{ORG}{}", support::registry::component("svc", "team-a", None, &[("nova.dev/image-repository", "local/team-a/svc")]));
    let app = support::registry::nova(Backend::Sqlite, vec![("local", reg.config(None))], &catalog, |c| {
        c.registry.refresh_interval = Duration::from_secs(1);
        c.registry.retry_interval = Duration::from_secs(1);
        c.registry.request_timeout = Duration::from_secs(2);
        c.server.ready_detail_ttl = Duration::from_millis(200);
    })
    .await;
    let admin = app.token_for(ADMIN_USER).await;
    let path = "/api/v1/components/component/default/svc/images";
    let v = support::registry::settled(&app, path).await;
    assert_eq!(v["repositories"][0]["status"]["state"], "fresh", "{v:#}");
    let (status, ready) = ready_as_admin(&app, &admin).await;
    assert_eq!((status, &integration(&ready, "local")["status"]), (200, &json!("pass")), "{ready:#}");

    reg.stop();
    let stale = wait_for("the images to be marked stale", 60, async || {
        let v = app.get_json(path, 200).await;
        (v["repositories"][0]["status"]["state"] == "stale").then_some(v)
    })
    .await;
    assert_eq!(stale["repositories"][0]["status"]["reason"], "unavailable", "{stale:#}");
    assert_eq!(stale["images"][0]["digest"], img.digest, "the last known images are still shown");
    let page = app.get("/catalog/default/component/svc/images").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("Stale:") && html.contains(&img.digest[..19]), "the page renders the stale images: {html}");
    let ready = wait_for("/ready to name the registry", 30, async || {
        let (status, ready) = ready_as_admin(&app, &admin).await;
        assert_eq!(status, 200, "a registry outage does not take Nova out of service: {ready:#}");
        (integration(&ready, "local")["status"] == "fail").then_some(ready)
    })
    .await;
    let check = integration(&ready, "local");
    assert!(check["target"].as_str().unwrap().contains("local"), "{check}");
    assert!(!check["reason"].as_str().unwrap().is_empty(), "{check}");

    // The same registry comes back: Nova notices on its own, with no restart.
    reg.resume().await;
    let fresh = wait_for("the images to be fresh again", 60, async || {
        let v = app.get_json(path, 200).await;
        (v["repositories"][0]["status"]["state"] == "fresh").then_some(v)
    })
    .await;
    assert_eq!(fresh["images"][0]["digest"], img.digest);
    wait_for("/ready to pass the registry again", 30, async || (integration(&ready_as_admin(&app, &admin).await.1, "local")["status"] == "pass").then_some(())).await;
}

/// Nova with team credentials in an OpenBao reached through `proxy`, Vault requests limited to
/// `timeout`.
async fn nova_on_vault(bao: &OwnBao, proxy: &FaultProxy, timeout: Duration) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "org.yaml", ORG);
    let token_file = write_file(dir.path(), "vault-token", &bao.root_token);
    let address = proxy.url();
    spawn_app_with(
        Backend::Sqlite,
        Options {
            locations: vec!["org.yaml".into()],
            dir: Some(dir),
            configure: Some(Box::new(move |c| {
                c.builds.check_credentials = false;
                c.server.ready_detail_ttl = Duration::from_millis(200);
                c.secrets = support::faults::vault_at(address, token_file, timeout);
            })),
            ..Default::default()
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_or_silent_openbao_fails_credential_writes_fast_and_writes_nothing() {
    let Some(bao) = OwnBao::start().await else { return };
    // A proxy in front of the real OpenBao: refusing connections stands in for a stopped server
    // (a dev-mode OpenBao forgets everything when stopped), black-holing for a hung one.
    let mut proxy = FaultProxy::start(bao.addr()).await;
    let timeout = Duration::from_secs(2);
    let app = nova_on_vault(&bao, &proxy, timeout).await;
    let alice = app.token_for("user:default/alice").await;
    let admin = app.token_for(ADMIN_USER).await;
    let credentials = app.url("/api/v1/teams/team-a/credentials");
    let put = async |name: &str| {
        let body = json!({ "kind": "https-token", "username": "ci", "repositories": [format!("https://git.example.com/a/{name}.git")], "secret": format!("value-of-{name}") });
        let started = Instant::now();
        let r = app.client.put(format!("{credentials}/{name}")).bearer_auth(&alice).json(&body).send().await.unwrap();
        (r, started.elapsed())
    };
    let (r, _) = put("first").await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());

    proxy.set(Mode::Refuse).await;
    let (r, took) = put("second").await;
    let p = problem(r, 503).await;
    assert!(p["detail"].as_str().unwrap().contains("cannot reach Vault"), "a clear reason: {p}");
    assert!(took < timeout + MARGIN, "answered in {took:?}");
    let p = problem(app.client.get(&credentials).bearer_auth(&alice).send().await.unwrap(), 503).await;
    assert!(p["detail"].as_str().unwrap().contains("Vault"), "{p}");

    proxy.set(Mode::BlackHole).await;
    let (r, took) = put("third").await;
    let p = problem(r, 503).await;
    assert!(p["detail"].as_str().unwrap().contains("timed out"), "the timeout answers: {p}");
    assert!(took < timeout + MARGIN, "answered within the Vault timeout, in {took:?}");
    // /ready's admin detail is bounded too, and names the secret store.
    let started = Instant::now();
    let (status, ready) = ready_as_admin(&app, &admin).await;
    assert!(started.elapsed() < Duration::from_secs(5) + MARGIN, "/ready answered in {:?}", started.elapsed());
    assert_eq!(status, 200, "the secret store does not decide readiness: {ready:#}");
    assert_eq!(integration(&ready, "vault")["status"], "fail", "{ready:#}");

    proxy.set(Mode::Pass).await;
    let listed = wait_for("the credentials to be listed again", 30, async || {
        let r = app.client.get(&credentials).bearer_auth(&alice).send().await.ok()?;
        (r.status() == 200).then_some(())?;
        r.json::<Value>().await.ok()
    })
    .await;
    let names: Vec<&str> = listed.as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["first"], "the failed writes left nothing behind");
    let (r, _) = put("second").await;
    assert_eq!(r.status(), 201, "recovered without a restart: {}", r.text().await.unwrap());
    // Every failed attempt is in the audit log as a failure, none as a registration.
    let audit = app.get_json_as("/api/v1/audit?action=credentials.put", &admin).await;
    let failures = audit["events"].as_array().unwrap().iter().filter(|e| e["outcome"] == "failure").count();
    assert_eq!(failures, 2, "{audit:#}");
    let audit = app.get_json_as("/api/v1/audit?action=credentials.register", &admin).await;
    assert_eq!(audit["events"].as_array().unwrap().len(), 2, "{audit:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_git_server_fails_the_build_with_a_reason_and_the_next_build_succeeds() {
    if require("buildah", on_path("buildah"), "apt-get install buildah").is_none() {
        return;
    }
    let Some(mut git) = OwnGitServer::start().await else { return };
    let Some(reg) = TestRegistry::start(Auth::Anonymous).await else { return };
    let repo = git.publish("svc", &[("Dockerfile", "FROM scratch\nCOPY hello.txt /hello.txt\n"), ("hello.txt", "hello\n")]);
    let host = reg.url.trim_start_matches("http://").to_string();
    let component = support::registry::component("svc", "team-a", None, &[("nova.dev/git-repository", &repo), ("nova.dev/image-repository", &format!("{host}/team-a/svc"))]);
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "catalog.yaml", &format!("{ORG}{component}"));
    let app = spawn_app_with(
        Backend::Sqlite,
        Options {
            locations: vec!["catalog.yaml".into()],
            dir: Some(dir),
            configure: Some(Box::new(move |c| {
                c.builds.check_credentials = false;
                c.builds.insecure_registries = vec![host];
            })),
            ..Default::default()
        },
    )
    .await;
    let alice = app.token_for("user:default/alice").await;
    let build = async || {
        let r = app.client.post(app.url("/api/v1/components/svc/builds")).bearer_auth(&alice).json(&json!({ "gitRef": "main", "dockerfile": "Dockerfile", "tag": "v1" })).send().await.unwrap();
        assert_eq!(r.status(), 201, "the build request is accepted");
        let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
        let done = wait_for("the build to finish", 120, async || {
            let b = app.get_json_as(&format!("/api/v1/builds/{id}"), &alice).await;
            b["finishedAt"].is_i64().then_some(b)
        })
        .await;
        let log = app.client.get(app.url(&format!("/api/v1/builds/{id}/log"))).bearer_auth(&alice).send().await.unwrap().text().await.unwrap();
        (done, log)
    };

    git.stop();
    let (failed, log) = build().await;
    assert_eq!(failed["state"], "failed", "{failed:#}\n{log}");
    assert!(failed["reason"].as_str().unwrap().contains("git clone failed"), "the reason names the step: {failed:#}");
    let port = git.port.to_string();
    assert!(log.contains(&port) && (log.contains("Failed to connect") || log.contains("Could not connect")), "the log says the server cannot be reached: {log}");

    git.resume().await;
    let (done, log) = build().await;
    assert_eq!(done["state"], "succeeded", "recovered without a restart: {done:#}\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_postgresql_fails_requests_fast_keeps_catalog_reads_and_nova_recovers() {
    let Some(pg) = OwnPostgres::start() else { return };
    let acquire = Duration::from_secs(2);
    let app = spawn_app_with(
        Backend::Postgres,
        Options {
            locations: vec![example_catalog().display().to_string()],
            database_url: Some(pg.url()),
            configure: Some(Box::new(move |c| c.database.acquire_timeout = acquire)),
            ..Default::default()
        },
    )
    .await;
    let admin = app.token_for(ADMIN_USER).await;
    let entities = app.get_json("/api/catalog/entities?filter=kind=component", 200).await;
    assert!(!entities.as_array().unwrap().is_empty());
    let new_token = async || {
        let started = Instant::now();
        let r = app.client.post(app.url("/api/v1/tokens")).bearer_auth(&admin).json(&json!({ "name": "during-outage" })).send().await.unwrap();
        (r, started.elapsed())
    };

    pg.stop();
    // Writes (and anything reading the database) answer 503 problem+json, within the bound.
    let (r, took) = new_token().await;
    let p = problem(r, 503).await;
    assert!(p["detail"].as_str().unwrap().contains("database"), "{p}");
    assert!(took < acquire + MARGIN, "answered in {took:?}");
    let started = Instant::now();
    let r = app.get("/ready").await;
    assert!(started.elapsed() < Duration::from_secs(2) + MARGIN, "/ready answered in {:?}", started.elapsed());
    assert_eq!(r.status(), 503);
    let ready: Value = r.json().await.unwrap();
    assert_eq!(ready["checks"]["database"]["status"], "fail", "{ready:#}");
    assert_eq!(ready["checks"]["catalog"]["status"], "ok", "{ready:#}");
    // Catalog reads are served from memory: they keep working, API and console.
    let during = app.get_json("/api/catalog/entities?filter=kind=component", 200).await;
    assert_eq!(during, entities);
    let page = app.get("/catalog/default/component/payment-service").await;
    assert_eq!(page.status(), 200, "{}", page.text().await.unwrap());

    pg.resume();
    wait_for("/ready to pass again", 60, async || (app.get("/ready").await.status() == 200).then_some(())).await;
    let (r, _) = new_token().await;
    assert_eq!(r.status(), 201, "writes work again without a restart: {}", r.text().await.unwrap());
}

impl TestApp {
    /// GET returning JSON as the holder of `token`, asserting 200.
    async fn get_json_as(&self, path: &str, token: &str) -> Value {
        let r = self.client.get(self.url(path)).bearer_auth(token).send().await.unwrap();
        assert_eq!(r.status(), 200, "GET {path}");
        r.json().await.unwrap()
    }
}
