//! Per-environment image repositories and verification after the GitOps write (issue 9, items
//! 5 and 6), through Nova's HTTP API against real components: CNCF distribution registries
//! (anonymous, htpasswd basic auth, bearer tokens), the git server scripts/test starts, and a
//! small HTTP server in the test standing in for the deployed service's version endpoint. A
//! logging proxy of the test's own sits in front of one registry to interrupt a copy at a
//! known step.

mod support;
#[path = "support/fault_proxy.rs"]
mod fault_proxy;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use fault_proxy::FaultProxy;
use nova::release::EnvironmentConfig;
use nova::release::artifacts::{ArtifactStore, NewArtifact};
use nova::secrets::{Precondition, SecretData, SecretPath};
use nova_domain::{Digest, Sensitive};
use serde_json::{Value, json};
use support::canary::{Canary, capture_logs};
use support::gitops::{git_server, publish, show};
use support::registry::{Auth, ImageSpec, PUSHER, READER, TestRegistry};
use support::*;

const KUSTOMIZATION: &str = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- ../base\nimages:\n- name: shop\n  newTag: old\n";

const ORG: &str = "apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata: {name: shop-team}\nspec: {type: team, children: []}\n---\n\
apiVersion: backstage.io/v1alpha1\nkind: User\nmetadata: {name: rita}\nspec: {memberOf: [shop-team]}\n";

/// A GitOps repository with one kustomization per environment for `shop` and `lab`.
fn gitops_repo(root: &std::path::Path, envs: &[&str]) -> String {
    let files: Vec<(String, &str)> = envs.iter().flat_map(|e| ["shop", "lab"].map(|c| (format!("apps/{c}/{e}/kustomization.yaml"), KUSTOMIZATION))).collect();
    let files: Vec<(&str, &str)> = files.iter().map(|(p, t)| (p.as_str(), *t)).collect();
    publish(root, &files)
}

/// `[environments.<name>]` tables: each writes `apps/{component}/<name>/kustomization.yaml`
/// of `repo` with the deploy credential, plus the `extra` keys given per environment.
fn environments(git_url: &str, repo: &str, envs: &[(&str, &str)]) -> BTreeMap<String, EnvironmentConfig> {
    let mut text = String::new();
    for (i, (name, extra)) in envs.iter().enumerate() {
        text.push_str(&format!(
            "[{name}]\norder = {}\n{extra}\n[{name}.gitops]\nrepository = \"{git_url}/{repo}.git\"\npath = \"apps/{{component}}/{name}/kustomization.yaml\"\nimage_name = \"shop\"\nusername = \"nova-test\"\ncredential = {{ store = \"platform/gitops\" }}\n",
            i + 1
        ));
    }
    toml::from_str(&text).unwrap_or_else(|e| panic!("environments parse: {e}\n{text}"))
}

/// An OCI registry definition for Nova: `url`, optionally the reader's credentials (a file).
fn registry_def(url: &str, reader_password_file: Option<&std::path::Path>, max_attempts: u32) -> nova::registry::RegistryDef {
    let auth = reader_password_file.map_or(String::new(), |p| format!("username = \"{}\"\npassword = {{ file = \"{}\" }}\n", READER.0, p.display()));
    toml::from_str(&format!("type = \"oci\"\nurl = \"{url}\"\nmax_attempts = {max_attempts}\n{auth}")).expect("registry definition")
}

async fn put_secret(app: &TestApp, path: &str, value: &str) {
    app.state.secrets.put(&SecretPath::parse(path).unwrap(), &SecretData::single(Sensitive::new(value.to_string())), Precondition::None).await.expect("secret stored");
}

async fn record_artifact(app: &TestApp, component: &str, repository: &str, digest: &str, tags: &[&str]) {
    let new = NewArtifact {
        component_ref: format!("component:default/{component}"),
        repository: repository.into(),
        digest: Digest::parse(digest).unwrap(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        git_ref: Some("main".into()),
        git_revision: None,
        build_id: None,
        source: "intake",
    };
    ArtifactStore::new(app.state.db.clone()).record(new).await.expect("artifact recorded");
}

/// Requests as rita; every body is kept for the leak check.
struct Api<'a> {
    app: &'a TestApp,
    bodies: Vec<String>,
}

impl Api<'_> {
    async fn call(&mut self, method: reqwest::Method, path: &str, user: &str, body: Option<Value>) -> (u16, Value) {
        let (status, text, json) = self.app.call(method, path, Some(user), body).await;
        self.bodies.push(text);
        (status, json)
    }

    async fn promote(&mut self, component: &str, digest: &str, environment: &str) -> String {
        let (s, p) = self.call(reqwest::Method::POST, &format!("/api/v1/components/{component}/promotions"), "user:default/rita", Some(json!({ "digest": digest, "environment": environment }))).await;
        assert_eq!(s, 201, "{p}");
        p["id"].as_str().unwrap().to_string()
    }

    async fn promotion(&mut self, id: &str) -> Value {
        let (s, p) = self.call(reqwest::Method::GET, &format!("/api/v1/promotions/{id}"), "user:default/rita", None).await;
        assert_eq!(s, 200, "{p}");
        p
    }

    /// Waits (at most 60 s) until the promotion's state is one of `states`.
    async fn until(&mut self, id: &str, states: &[&str]) -> Value {
        for _ in 0..600 {
            let p = self.promotion(id).await;
            if states.contains(&p["state"].as_str().unwrap()) {
                return p;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("promotion {id} never reached {states:?}: {}", self.promotion(id).await);
    }

    /// The details of every audit event with `action`, oldest first.
    async fn audited(&mut self, action: &str) -> Vec<Value> {
        let (_, audit) = self.call(reqwest::Method::GET, "/api/v1/audit?limit=500", ADMIN_USER, None).await;
        let mut events: Vec<Value> = audit["events"].as_array().unwrap().iter().filter(|e| e["action"] == action).map(|e| e["details"].clone()).collect();
        events.reverse();
        events
    }
}

async fn start(backend: Backend, registries: Vec<(&str, nova::registry::RegistryDef)>, envs: BTreeMap<String, EnvironmentConfig>, database_url: Option<String>, dir: Option<tempfile::TempDir>) -> TestApp {
    let dir = dir.unwrap_or_else(|| tempfile::tempdir().unwrap());
    write_file(dir.path(), "org.yaml", ORG);
    write_file(dir.path(), "shop.yaml", &format!("{}---\n{}", component_yaml("shop", "shop-team"), component_yaml("lab", "shop-team")));
    let registries: BTreeMap<String, nova::registry::RegistryDef> = registries.into_iter().map(|(n, d)| (n.to_string(), d)).collect();
    spawn_app_with(
        backend,
        with_admin(Options {
            locations: vec!["org.yaml".into(), "shop.yaml".into()],
            dir: Some(dir),
            database_url,
            configure: Some(Box::new(move |c| {
                c.environments = envs;
                c.registries = registries;
                c.registry.request_timeout = Duration::from_secs(10);
                c.jobs.lease = Duration::from_secs(2);
                c.jobs.retry_base = Duration::from_millis(200);
            })),
            ..Default::default()
        }),
    )
    .await
}

on_both_backends! {
    // dev lives in another repository of the artifact's registry (blobs mounted), staging in
    // a registry with bearer tokens, production in one with basic auth whose first attempt is
    // cut off before the index is put (the job is retried and skips what is there). Each copy
    // keeps the digest byte for byte, carries the tag, and the GitOps write names it.
    async fn promotion_copies_the_image_into_each_environments_repository(backend: Backend) {
        let logs = capture_logs();
        let Some((git_url, root, git_password)) = git_server() else { return };
        let Some(src) = TestRegistry::start(Auth::Anonymous).await else { return };
        let Some(tok) = TestRegistry::start(Auth::Token).await else { return };
        let Some(basic) = TestRegistry::start(Auth::Basic).await else { return };
        let proxy = FaultProxy::start(&basic.url).await;

        // A multi-arch OCI index (amd64, arm64 and an attestation entry); one layer is larger
        // than an upload chunk, so streaming it takes several PATCH requests.
        let mut amd = ImageSpec::new("2026-05-01T00:00:00Z", "3333333ccccccc");
        amd.oci = true;
        amd.layer_sizes = vec![9 * 1024 * 1024, 300];
        let mut arm = amd.clone();
        arm.architecture = "arm64".into();
        arm.variant = Some("v8".into());
        arm.layer_sizes = vec![999];
        arm.salt = 99;
        let amd = src.push_image("shop/shop", &[], &amd).await;
        let arm = src.push_image("shop/shop", &[], &arm).await;
        let index = src.push_index("shop/shop", &["v1"], &[(&amd, "amd64", None), (&arm, "arm64", Some("v8"))], true).await;

        let repo = gitops_repo(&root, &["dev", "staging", "production"]);
        let envs = environments(&git_url, &repo, &[
            ("dev", "repository = \"src/shop/{component}-dev\""),
            ("staging", "repository = \"tok/shop/{component}\"\npush_username = \"pusher\"\npush_credential = { store = \"platform/registry-push\" }"),
            ("production", "repository = \"vault/shop/{component}-prod\"\npush_username = \"pusher\"\npush_credential = { store = \"platform/registry-push\" }"),
        ]);
        let reader = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(reader.path(), READER.1).unwrap();
        let registries = vec![
            ("src", registry_def(&src.url, None, 4)),
            ("tok", registry_def(&tok.url, Some(reader.path()), 4)),
            // One attempt per call, so the injected 503 ends the job's attempt at once.
            ("vault", registry_def(&proxy.url, Some(reader.path()), 1)),
        ];
        let app = start(backend, registries, envs, None, None).await;
        put_secret(&app, "platform/gitops", &git_password).await;
        put_secret(&app, "platform/registry-push", PUSHER.1).await;
        let mut api = Api { app: &app, bodies: Vec::new() };
        // The artifact names its registry by host, as CI reports it.
        let source_ref = format!("127.0.0.1:{}/shop/shop", src.port);
        record_artifact(&app, "shop", &source_ref, &index.digest, &["v1"]).await;

        // dev: the same registry, another repository: blobs are mounted, nothing streamed.
        let id = api.promote("shop", &index.digest, "dev").await;
        let p = api.until(&id, &["done", "failed"]).await;
        assert_eq!(p["state"], "done", "{p}");
        let dev_ref = format!("127.0.0.1:{}/shop/shop-dev", src.port);
        assert_eq!(p["deployedRepository"], dev_ref, "{p}");
        let text = show(&root, &repo, "apps/shop/dev/kustomization.yaml");
        assert!(text.contains(&format!("newName: {dev_ref}")) && text.contains(&index.digest), "the write names the copy: {text}");
        for (reference, body) in [(index.digest.as_str(), &index.body), ("v1", &index.body), (amd.digest.as_str(), &amd.body), (arm.digest.as_str(), &arm.body)] {
            let (status, content_type, bytes) = src.get_manifest("shop/shop-dev", reference).await;
            assert_eq!(status, 200, "{reference} is in shop/shop-dev");
            assert_eq!(&bytes, body, "{reference}: byte-identical");
            assert!(content_type.starts_with("application/vnd.oci.image"), "{content_type}");
        }
        let copied = api.audited("release.promotion.copied").await;
        let report = &copied[0]["copy"];
        assert_eq!((report["manifestsCopied"].as_u64(), report["blobsStreamed"].as_u64(), report["tagsPut"].as_u64()), (Some(3), Some(0), Some(1)), "{report}");
        assert_eq!(report["blobsMounted"].as_u64(), Some(5), "two configs and three layers mounted: {report}");

        // staging: another registry with bearer tokens, as the pusher: every blob streamed.
        let id = api.promote("shop", &index.digest, "staging").await;
        let p = api.until(&id, &["done", "failed"]).await;
        assert_eq!(p["state"], "done", "{p}");
        assert_eq!(p["deployedRepository"], format!("127.0.0.1:{}/shop/shop", tok.port));
        let (status, _, bytes) = tok.get_manifest("shop/shop", &index.digest).await;
        assert_eq!((status, &bytes), (200, &index.body));
        let (status, _, bytes) = tok.get_manifest("shop/shop", "v1").await;
        assert_eq!((status, &bytes), (200, &index.body), "the tag came along");
        let report = &api.audited("release.promotion.copied").await[1]["copy"];
        assert_eq!((report["blobsStreamed"].as_u64(), report["blobsMounted"].as_u64()), (Some(5), Some(0)), "{report}");
        assert!(report["bytesStreamed"].as_u64().unwrap() > 9 * 1024 * 1024, "{report}");
        let scopes = tok.issuer_log.lock().unwrap().clone();
        assert!(scopes.iter().any(|(user, s)| user == PUSHER.0 && s.contains(&"repository:shop/shop:pull,push".to_string())), "a push token was asked for as the pusher: {scopes:?}");

        // production: basic auth through the proxy; the first PUT of the index fails.
        let index_path = format!("/v2/shop/shop-prod/manifests/{}", index.digest);
        proxy.fail(reqwest::Method::PUT, &index_path, 1);
        let id = api.promote("shop", &index.digest, "production").await;
        let p = api.until(&id, &["done", "failed"]).await;
        assert_eq!(p["state"], "done", "the job was retried and finished: {p}");
        let seen = proxy.seen();
        let cut = seen.iter().position(|s| s.method == "PUT" && s.target == index_path && s.status == 503).expect("the fault was hit");
        let uploads = |range: &[fault_proxy::Seen]| range.iter().filter(|s| s.method == "POST" && s.target.starts_with("/v2/shop/shop-prod/blobs/uploads/")).count();
        assert_eq!(uploads(&seen[..cut]), 5, "every blob was uploaded before the cut");
        assert_eq!(uploads(&seen[cut..]), 0, "the retry uploaded nothing again");
        assert!(seen[cut..].iter().any(|s| s.method == "PUT" && s.target == index_path && s.status == 201), "the retry put the index");
        assert!(seen.iter().filter(|s| s.method != "GET" && s.method != "HEAD").all(|s| s.user == PUSHER.0), "writes authenticate as the pusher");
        let (status, _, bytes) = basic.get_manifest("shop/shop-prod", &index.digest).await;
        assert_eq!((status, &bytes), (200, &index.body));
        let resumed = &api.audited("release.promotion.copied").await[2]["copy"];
        assert_eq!((resumed["manifestsPresent"].as_u64(), resumed["manifestsCopied"].as_u64(), resumed["blobsStreamed"].as_u64()), (Some(3), Some(1), Some(0)), "{resumed}");
        let text = show(&root, &repo, "apps/shop/production/kustomization.yaml");
        assert!(text.contains(&format!("newName: {}/shop/shop-prod", proxy.url.trim_start_matches("http://"))), "{text}");

        // The push credential appears nowhere.
        let canary = Canary::of(PUSHER.1);
        let mut check = canary.check();
        check.logs(&logs).bodies(&api.bodies).metrics(&app).await;
        check.database(&app.state.db).await.sqlite_files(&app.database_url());
        check.assert_clean();
    }

    // staging checks the service's version endpoint: 503, then the old digest, then the new
    // one; the promotion is done and verified only then, survives a restart while verifying,
    // and production's wait timer counts from the verification. A check that never sees the
    // digest fails with the last answer; one written over it while verifying is superseded.
    // No `repository` (or the artifact's own): no copy.
    async fn promotion_is_verified_after_the_write(backend: Backend) {
        let _logs = capture_logs();
        let Some((git_url, root, git_password)) = git_server() else { return };
        let Some(src) = TestRegistry::start(Auth::Anonymous).await else { return };
        let new = src.push_image("shop/shop", &["v2"], &ImageSpec::new("2026-05-01T00:00:00Z", "2222222")).await;
        let old_digest = format!("sha256:{}", "0".repeat(64));

        // The service: /shop/version answers 503 twice, the old digest twice, then the new
        // one; /lab/version always the old one.
        let hits = Arc::new(AtomicUsize::new(0));
        let (h, new_digest, old) = (hits.clone(), new.digest.clone(), old_digest.clone());
        let service = axum::Router::new()
            .route("/shop/version", axum::routing::get(move || {
                let n = h.fetch_add(1, Ordering::SeqCst);
                let (new_digest, old) = (new_digest.clone(), old.clone());
                async move {
                    match n {
                        0 | 1 => (axum::http::StatusCode::SERVICE_UNAVAILABLE, "starting".to_string()),
                        2 | 3 => (axum::http::StatusCode::OK, format!("{{\"digest\": \"{old}\"}}")),
                        _ => (axum::http::StatusCode::OK, format!("{{\"digest\": \"{new_digest}\"}}")),
                    }
                }
            }))
            .route("/lab/version", axum::routing::get(move || { let old = old_digest.clone(); async move { format!("{{\"digest\": \"{old}\"}}") } }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let service_url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move { axum::serve(listener, service).await.unwrap() });

        let repo = gitops_repo(&root, &["dev", "staging", "production"]);
        let verify = format!("verify = {{ url = \"{service_url}/{{component}}/version\", expect = \"digest\", timeout = \"10s\", interval = \"100ms\" }}");
        let env_list = [("dev", "repository = \"src/shop/shop\""), ("staging", verify.as_str()), ("production", "gates = { wait = \"1h\" }")];
        let registries = || vec![("src", registry_def(&src.url, None, 4))];
        let app = start(backend, registries(), environments(&git_url, &repo, &env_list), None, None).await;
        put_secret(&app, "platform/gitops", &git_password).await;
        let mut api = Api { app: &app, bodies: Vec::new() };
        record_artifact(&app, "shop", "src/shop/shop", &new.digest, &["v2"]).await;
        record_artifact(&app, "lab", "src/shop/shop", &new.digest, &["v2"]).await;

        // dev names the artifact's own repository: nothing is copied, and the GitOps file
        // names it as a cluster pulls it (the registry's host, not Nova's name for it).
        let id = api.promote("shop", &new.digest, "dev").await;
        let p = api.until(&id, &["done", "failed"]).await;
        let pulled = format!("{}/shop/shop", src.url.trim_start_matches("http://"));
        assert_eq!((p["state"].as_str(), p["deployedRepository"].as_str(), p["verifiedAt"].as_i64()), (Some("done"), Some(pulled.as_str()), None), "{p}");
        assert!(api.audited("release.promotion.copied").await.is_empty());

        // staging: written, then verifying until the new digest shows; Nova restarts meanwhile.
        let id = api.promote("shop", &new.digest, "staging").await;
        let p = api.until(&id, &["verifying", "done", "failed"]).await;
        assert_eq!(p["state"], "verifying", "{p}");
        assert!(p["commitSha"].is_string() && p["verifyDeadline"].is_i64(), "{p}");
        assert!(show(&root, &repo, "apps/shop/staging/kustomization.yaml").contains(&new.digest), "written before verification");
        drop(api);
        let database_url = app.database_url();
        let dir = app.stop().await;
        let app = start(backend, registries(), environments(&git_url, &repo, &env_list), Some(database_url), Some(dir)).await;
        let mut api = Api { app: &app, bodies: Vec::new() };
        let p = api.until(&id, &["done", "failed"]).await;
        assert_eq!(p["state"], "done", "{p}");
        assert!(hits.load(Ordering::SeqCst) >= 5, "503 twice and the old digest twice did not pass");
        let verified_at = p["verifiedAt"].as_i64().expect("verified");
        assert_eq!(p["finishedAt"].as_i64(), Some(verified_at));
        let verifying = api.audited("release.promotion.verifying").await;
        assert_eq!(verifying.len(), 1, "{verifying:?}");

        // production's wait timer counts from the verification.
        let id = api.promote("shop", &new.digest, "production").await;
        let p = api.promotion(&id).await;
        assert_eq!((p["state"].as_str(), p["notBefore"].as_i64()), (Some("waiting"), Some(verified_at + 3_600_000)), "{p}");

        // lab never reports the digest: failed after the timeout, with the last answer.
        let id = api.promote("lab", &new.digest, "dev").await;
        api.until(&id, &["done"]).await;
        let first = api.promote("lab", &new.digest, "staging").await;
        api.until(&first, &["verifying"]).await;
        let mut p = Value::Null;
        for _ in 0..100 {
            p = api.promotion(&first).await;
            if !p["reason"].is_null() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(p["reason"].as_str().is_some_and(|r| r.contains("last answer: HTTP 200 OK without")), "the last answer is shown while verifying: {p}");
        let (_, html, _) = app.call(reqwest::Method::GET, "/catalog/default/component/lab/deployments", Some("user:default/rita"), None).await;
        assert!(html.contains("verifying") && html.contains("last answer"), "the Deployments tab shows the check");
        // Promoted again while verifying: the new write supersedes the one still verifying.
        let id = api.promote("lab", &new.digest, "staging").await;
        let p = api.until(&first, &["superseded", "failed"]).await;
        assert_eq!(p["state"], "superseded", "{p}");
        assert!(p["reason"].as_str().unwrap().contains(&id), "{p}");
        let p = api.until(&id, &["done", "failed"]).await;
        assert_eq!(p["state"], "failed", "{p}");
        let reason = p["reason"].as_str().unwrap();
        assert!(reason.contains("not verified within 10s") && reason.contains(&format!("without {}", new.digest)) && reason.contains(&"0".repeat(64)), "{reason}");
        assert!(api.promotion(&id).await["verifiedAt"].is_null());
        server.abort();
    }
}

/// A double of Argo CD's documented API (no Argo CD can run here): `GET
/// /api/v1/applications/{name}` with a bearer token, answering the application's health, sync
/// status and running images. Answers in turn: progressing, healthy with the old image, then
/// healthy and synced with `image`.
async fn argo_cd_double(token: String, image: String, hits: Arc<AtomicUsize>) -> (String, tokio::task::JoinHandle<()>) {
    use axum::extract::Path;
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;
    let app = axum::Router::new().route("/api/v1/applications/{name}", axum::routing::get(move |Path(name): Path<String>, headers: HeaderMap| {
        let (token, image, hits) = (token.clone(), image.clone(), hits.clone());
        async move {
            if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Bearer {token}")) {
                return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "invalid session", "code": 16}))).into_response();
            }
            if name != "shop-staging" {
                return (StatusCode::NOT_FOUND, axum::Json(json!({"error": "not found", "code": 5}))).into_response();
            }
            let old = format!("127.0.0.1/shop/shop@sha256:{}", "0".repeat(64));
            let (health, sync, images) = match hits.fetch_add(1, Ordering::SeqCst) {
                0 => ("Progressing", "OutOfSync", vec![old]),
                1 => ("Healthy", "Synced", vec![old]),
                _ => ("Healthy", "Synced", vec![image, "busybox:1.36".to_string()]),
            };
            axum::Json(json!({"metadata": {"name": name, "namespace": "argocd"}, "spec": {"project": "default"},
                "status": {"health": {"status": health}, "sync": {"status": sync, "revision": "abc"}, "summary": {"images": images}}})).into_response()
        }
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    (url, tokio::spawn(async move { axum::serve(listener, app).await.unwrap() }))
}

on_both_backends! {
    // Verification by Argo CD (against the double above): done only once the application is
    // healthy, synced and running the digest; the API token appears nowhere.
    async fn promotion_is_verified_by_argo_cd(backend: Backend) {
        let logs = capture_logs();
        let Some((git_url, root, git_password)) = git_server() else { return };
        let digest = format!("sha256:{}", "7".repeat(64));
        let token = format!("argocd-token-{}", uuid::Uuid::new_v4().simple());
        let hits = Arc::new(AtomicUsize::new(0));
        let (argo, server) = argo_cd_double(token.clone(), format!("registry.example.com/shop/shop@{digest}"), hits.clone()).await;
        let repo = gitops_repo(&root, &["dev", "staging"]);
        let verify = format!("verify = {{ argocd = {{ server = \"{argo}\", application = \"{{component}}-staging\", token = {{ store = \"platform/argocd\" }} }}, timeout = \"30s\", interval = \"100ms\" }}");
        let app = start(backend, Vec::new(), environments(&git_url, &repo, &[("dev", ""), ("staging", verify.as_str())]), None, None).await;
        put_secret(&app, "platform/gitops", &git_password).await;
        put_secret(&app, "platform/argocd", &token).await;
        let mut api = Api { app: &app, bodies: Vec::new() };
        record_artifact(&app, "shop", "registry.example.com/shop/shop", &digest, &["v7"]).await;
        let id = api.promote("shop", &digest, "dev").await;
        api.until(&id, &["done"]).await;
        let id = api.promote("shop", &digest, "staging").await;
        let p = api.until(&id, &["done", "failed"]).await;
        assert_eq!(p["state"], "done", "{p}");
        assert!(p["verifiedAt"].is_i64(), "{p}");
        assert!(hits.load(Ordering::SeqCst) >= 3, "progressing, and healthy with the old image, did not pass");
        let verified = api.audited("release.promotion.verified").await;
        assert!(verified[0]["answer"].as_str().unwrap().contains("health Healthy, sync Synced, running"), "{verified:?}");
        let canary = Canary::of(&token);
        let mut check = canary.check();
        check.logs(&logs).bodies(&api.bodies).metrics(&app).await;
        check.database(&app.state.db).await.sqlite_files(&app.database_url());
        check.assert_clean();
        server.abort();
    }
}

/// Bad settings are refused at start with the key and the rule, and Nova does not start.
#[test]
fn bad_repository_and_verify_settings_are_refused() {
    let base = "[registries.local]\ntype = \"oci\"\nurl = \"http://127.0.0.1:5000\"\n[registries.aws]\ntype = \"ecr\"\nregion = \"eu-west-1\"\naccount_id = \"123456789012\"\n\
        [environments.dev]\norder = 1\ngitops = { repository = \"https://git.example.com/d.git\", path = \"a.yaml\" }\n";
    let cases = [
        ("repository = \"nowhere/shop/{component}\"", "environments.dev.repository", "not configured"),
        ("repository = \"aws/shop/{component}\"", "environments.dev.repository", "not an OCI registry"),
        ("repository = \"local\"", "environments.dev.repository", "<registry>/<path>"),
        ("repository = \"local/Shop/{component}\"", "environments.dev.repository", "not a repository path"),
        ("repository = \"local/shop/{component}\"\npush_credential = { env = \"X\" }", "environments.dev.push_username", "required"),
        ("push_username = \"nova\"", "environments.dev.push_credential", "names a repository"),
        ("verify = { url = \"file:///etc/passwd\" }", "environments.dev.verify.url", "http:// or https://"),
        ("verify = { url = \"https://u:p@{component}.example.com/v\" }", "environments.dev.verify.url", "user or password"),
        ("verify = { url = \"https://{component}.example.com/v\", interval = \"20m\" }", "environments.dev.verify.interval", "at most the timeout"),
        ("verify = { url = \"https://{component}.example.com/v\", expect = \"vibes\" }", "environments.dev.verify", "unknown variant"),
        ("verify = { url = \"https://x.example.com/v\", argocd = { server = \"https://argocd.example.com\", application = \"a\", token = { env = \"T\" } } }", "environments.dev.verify", "exactly one of url and argocd"),
        ("verify = { argocd = { server = \"https://argocd.example.com\", application = \"{component}_Staging\", token = { env = \"T\" } } }", "environments.dev.verify.argocd.application", "application name"),
        ("verify = { argocd = { server = \"ftp://argocd.example.com\", application = \"a\", token = { env = \"T\" } } }", "environments.dev.verify.argocd.server", "http:// or https://"),
    ];
    for (extra, key, rule) in cases {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut f, format!("{base}{extra}\n").as_bytes()).unwrap();
        let e = nova::config::Config::load(Some(f.path()), std::iter::empty()).unwrap_err().to_string();
        assert!(e.contains(key) && e.contains(rule), "{extra}: {e}");
    }
    let mut f = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut f, format!("{base}repository = \"local/shop/{{component}}-dev\"\npush_username = \"nova\"\npush_credential = {{ store = \"platform/push\" }}\nverify = {{ url = \"https://{{component}}.example.com/version\" }}\n").as_bytes()).unwrap();
    nova::config::Config::load(Some(f.path()), std::iter::empty()).expect("a good configuration loads");
}
