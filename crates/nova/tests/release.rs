//! Release: artifacts, promotions through gated environments and the GitOps write-back, against
//! the real git server scripts/test starts (`git http-backend` behind basic authentication, its
//! password being the environments' write credential, kept in Nova's secret store).

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use nova::builds::store::{BuildStore, NewBuild};
use nova::release::EnvironmentConfig;
use nova::release::artifacts::{ArtifactStore, NewArtifact};
use nova::secrets::{Precondition, SecretData, SecretPath};
use nova_domain::{Digest, Sensitive};
use serde_json::{Value, json};
use support::canary::{Canary, capture_logs};
use support::gitops::{git, git_server, publish};
use support::registry::{Auth as RegistryAuth, ImageSpec, TestRegistry, component as registry_component};
use support::*;

const KUSTOMIZATION: &str = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- ../base\nimages:\n- name: shop\n  newTag: old\n";

const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: shop\nspec:\n  template:\n    spec:\n      containers:\n      - name: app\n        image: shop:old\n";

const HELM_VALUES: &str = "# Values for shop (Helm).\nreplicaCount: 2\n\nimage:\n  # the registry Nova writes\n  repository: registry.example.com/shop/old  # kept aligned\n  tag: 'old'\n  pullPolicy: IfNotPresent\n\nservice: {port: 80}   # flow style stays\n";

/// A Deployment that passes nova-policy's default rules except `require-probes`.
const COMPLIANT: &str = "# checked by the policy gate\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: shop\n  namespace: shop\n  labels: {app.kubernetes.io/name: shop}\nspec:\n  template:\n    metadata:\n      labels: {app.kubernetes.io/name: shop}\n    spec:\n      containers:\n      - name: app\n        image: shop:old\n        resources: {requests: {cpu: 100m, memory: 64Mi}, limits: {memory: 64Mi}}\n";

/// A GitOps repository with a dev and a prod overlay for `shop`, published under `private/`.
fn publish_gitops(root: &Path) -> String {
    publish(root, &[
        ("apps/shop/dev/kustomization.yaml", KUSTOMIZATION),
        ("apps/shop/prod/kustomization.yaml", KUSTOMIZATION),
        ("apps/shop/deployment.yaml", DEPLOYMENT),
        ("apps/shop/values.yaml", HELM_VALUES),
        ("apps/shop/ok/deployment.yaml", COMPLIANT),
    ])
}

/// The file on the branch of the bare repository, and the branch's commit count.
fn remote_file(root: &Path, name: &str, path: &str) -> (String, usize) {
    let bare = root.join(format!("{name}.git"));
    let text = git(&bare, &["show", &format!("main:{path}")]);
    let count = git(&bare, &["rev-list", "--count", "main"]).trim().parse().unwrap();
    (text, count)
}

const ORG: &str = "apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata: {name: shop-team}\nspec: {type: team, children: []}\n---\n\
apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata: {name: release-managers}\nspec: {type: team, children: []}\n---\n\
apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata: {name: outsiders}\nspec: {type: team, children: []}\n---\n\
apiVersion: backstage.io/v1alpha1\nkind: User\nmetadata: {name: rita}\nspec: {memberOf: [shop-team]}\n---\n\
apiVersion: backstage.io/v1alpha1\nkind: User\nmetadata: {name: ann}\nspec: {memberOf: [release-managers]}\n---\n\
apiVersion: backstage.io/v1alpha1\nkind: User\nmetadata: {name: ben}\nspec: {memberOf: [release-managers]}\n---\n\
apiVersion: backstage.io/v1alpha1\nkind: User\nmetadata: {name: otto}\nspec: {memberOf: [outsiders]}\n";

/// `dev` (optionally auto-promoting `main`) then `prod` (2 approvals from release-managers),
/// both writing `repo` with the credential from the secret store.
fn environments(url: &str, repo: &str, auto: bool) -> BTreeMap<String, EnvironmentConfig> {
    let auto = if auto { "auto_promote = { refs = [\"main\"] }\n" } else { "" };
    let text = format!(
        "[dev]\norder = 1\n{auto}[dev.gitops]\nrepository = \"{url}/{repo}.git\"\npath = \"apps/{{component}}/dev/kustomization.yaml\"\nimage_name = \"shop\"\ncommit_url = \"https://git.example.com/platform/deploy/commit/{{commit}}\"\nusername = \"nova-test\"\ncredential = {{ store = \"platform/gitops\" }}\n\
         [prod]\norder = 2\n[prod.gitops]\nrepository = \"{url}/{repo}.git\"\npath = \"apps/{{component}}/prod/kustomization.yaml\"\nimage_name = \"shop\"\nusername = \"nova-test\"\ncredential = {{ store = \"platform/gitops\" }}\n\
         [prod.gates]\napprovals = 2\napprover_groups = [\"group:default/release-managers\"]\n"
    );
    toml::from_str(&text).expect("environments parse")
}

async fn start(backend: Backend, url: &str, repo: &str, password: &str, auto: bool) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "org.yaml", ORG);
    write_file(dir.path(), "shop.yaml", &format!("{}---\n{}", component_yaml("shop", "shop-team"), component_yaml("lab", "outsiders")));
    let envs = environments(url, repo, auto);
    let app = spawn_app_with(backend, with_admin(Options {
        locations: vec!["org.yaml".into(), "shop.yaml".into()],
        dir: Some(dir),
        configure: Some(Box::new(move |c| c.environments = envs)),
        ..Default::default()
    }))
    .await;
    let path = SecretPath::parse("platform/gitops").unwrap();
    app.state.secrets.put(&path, &SecretData::single(Sensitive::new(password.to_string())), Precondition::None).await.expect("store the deploy credential");
    app
}

/// Nova over the shop catalog with `environments` (TOML `[name]` tables) and the deploy
/// credential stored; `tweak` adjusts the rest of the configuration.
async fn start_with(backend: Backend, environments: &str, password: &str, tweak: impl FnOnce(&mut nova::config::Config) + Send + 'static) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "org.yaml", ORG);
    write_file(dir.path(), "shop.yaml", &component_yaml("shop", "shop-team"));
    let envs: BTreeMap<String, EnvironmentConfig> = toml::from_str(environments).expect("environments parse");
    let configure = move |c: &mut nova::config::Config| {
        c.environments = envs;
        tweak(c);
    };
    let app = spawn_app_with(backend, with_admin(Options { locations: vec!["org.yaml".into(), "shop.yaml".into()], dir: Some(dir), configure: Some(Box::new(configure)), ..Default::default() })).await;
    app.state.secrets.put(&SecretPath::parse("platform/gitops").unwrap(), &SecretData::single(Sensitive::new(password.to_string())), Precondition::None).await.expect("store the deploy credential");
    app
}

/// Every response body seen, for the leak check.
struct Client<'a> {
    app: &'a TestApp,
    bodies: Vec<String>,
}

impl Client<'_> {
    async fn call(&mut self, method: reqwest::Method, path: &str, user: Option<&str>, body: Option<Value>) -> (u16, Value) {
        let (status, text, json) = self.app.call(method, path, user, body).await;
        self.bodies.push(text);
        (status, json)
    }

    async fn get(&mut self, path: &str) -> Value {
        let (status, v) = self.call(reqwest::Method::GET, path, Some("user:default/rita"), None).await;
        assert_eq!(status, 200, "GET {path}: {v}");
        v
    }

    async fn post(&mut self, path: &str, user: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(user), Some(body)).await
    }

    /// Rita promotes digest `n` of shop to `environment`; answers the promotion once finished.
    async fn promote_shop(&mut self, n: u8, environment: &str) -> Value {
        let (status, p) = self.post("/api/v1/components/shop/promotions", "user:default/rita", json!({ "digest": digest(n), "environment": environment })).await;
        assert_eq!(status, 201, "promotion to {environment}: {p}");
        self.finished(p["id"].as_str().unwrap()).await
    }

    /// Waits until the promotion is finished; answers it.
    async fn finished(&mut self, id: &str) -> Value {
        for _ in 0..300 {
            let p = self.get(&format!("/api/v1/promotions/{id}")).await;
            if !["awaiting_approval", "waiting", "writing"].contains(&p["state"].as_str().unwrap()) {
                return p;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("promotion {id} did not finish");
    }
}

fn digest(n: u8) -> String {
    format!("sha256:{}", hex::encode([n; 32]))
}

async fn record_artifact(app: &TestApp, n: u8, git_ref: &str) {
    let new = NewArtifact {
        component_ref: "component:default/shop".into(),
        repository: "registry.example.com/shop/shop".into(),
        digest: Digest::parse(&digest(n)).unwrap(),
        tags: vec![format!("v{n}")],
        git_ref: Some(git_ref.into()),
        git_revision: None,
        build_id: None,
        source: "intake",
    };
    ArtifactStore::new(app.state.db.clone()).record(new).await.expect("artifact recorded");
}

/// 20 writes into one repository and branch at once, half through another spelling of the
/// server's address (so this process's per-repository lock does not serialize them and pushes
/// really race): every change lands, each in its own commit, in a linear history.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_gitops_writes_all_land() {
    let logs = capture_logs();
    let Some((url, root, password)) = git_server() else { return };
    let name = format!("private/race-{}", uuid::Uuid::new_v4().simple());
    let work = tempfile::tempdir().unwrap();
    git(work.path(), &["init", "--quiet"]);
    for i in 0..20 {
        write_file(work.path(), &format!("apps/c{i}/kustomization.yaml"), KUSTOMIZATION);
    }
    git(work.path(), &["add", "-A"]);
    git(work.path(), &["commit", "--quiet", "-m", "overlays"]);
    let bare = root.join(format!("{name}.git"));
    git(work.path(), &["clone", "--quiet", "--bare", ".", bare.to_str().unwrap()]);
    let scratch = tempfile::tempdir().unwrap();
    let mut tasks = Vec::new();
    for i in 0..20u8 {
        let base = if i % 2 == 0 { url.clone() } else { url.replace("127.0.0.1", "localhost") };
        let w = nova::release::gitops::GitOpsWrite {
            repository: format!("{base}/{name}.git"),
            branch: "main".into(),
            path: format!("apps/c{i}/kustomization.yaml"),
            target: nova::release::gitops::WriteTarget::Kustomize { image_name: "shop".into() },
            new_name: "registry.example.com/shop/shop".into(),
            digest: digest(i + 1),
            message: format!("promote c{i}"),
            username: "nova-test".into(),
            credential: Some(Sensitive::new(password.clone())),
            check: None,
        };
        let dir = scratch.path().to_path_buf();
        tasks.push(tokio::spawn(async move {
            nova::release::gitops::write(&dir, &w, nova::release::gitops::Limits { push_attempts: 30, git_timeout: Duration::from_secs(60) }).await
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        let written = t.await.unwrap().unwrap_or_else(|e| panic!("write {i}: {}", e.message));
        assert!(written.changed);
    }
    for i in 0..20u8 {
        let text = git(&bare, &["show", &format!("main:apps/c{i}/kustomization.yaml")]);
        assert!(text.contains(&digest(i + 1)), "c{i} landed: {text}");
    }
    assert_eq!(git(&bare, &["rev-list", "--count", "main"]).trim(), "21", "one commit each, none lost");
    assert_eq!(git(&bare, &["rev-list", "--merges", "--count", "main"]).trim(), "0", "linear history");
    let retries = logs.text().lines().filter(|l| l.contains("beaten by another writer") && l.contains(&name)).count();
    eprintln!("concurrent GitOps writes: 20 landed after {retries} re-applied pushes");
}

on_both_backends! {
    async fn promotions_are_gated_and_written_to_gitops(backend: Backend) {
        let logs = capture_logs();
        let argv = nova::process::record_argv();
        let Some((url, root, password)) = git_server() else { return };
        let repo = publish_gitops(&root);
        let app = start(backend, &url, &repo, &password, false).await;
        let mut c = Client { app: &app, bodies: Vec::new() };

        // A succeeded build becomes an artifact.
        let builds = BuildStore::new(app.state.db.clone());
        let new = NewBuild { component_ref: "component:default/shop".into(), requested_by: "user:default/rita".into(), idempotency_key: None, pipeline: "local".into(),
            git_url: "https://git.example.com/shop.git".into(), git_ref: "main".into(), git_commit: None, dockerfile: "Dockerfile".into(), context: ".".into(),
            image: "registry.example.com/shop/shop".into(), tag: "v1".into(), build_args: Vec::new() };
        let (build, _) = builds.create(new).await.unwrap();
        assert!(builds.finish(&build.id, "succeeded", None, Some(&digest(1))).await.unwrap());
        let artifacts = c.get("/api/v1/components/shop/artifacts").await;
        assert_eq!(artifacts.as_array().unwrap().len(), 1, "{artifacts}");
        assert_eq!(artifacts[0]["digest"], digest(1));
        assert_eq!(artifacts[0]["tags"], json!(["v1"]));
        assert_eq!(artifacts[0]["buildId"], build.id);
        assert_eq!(artifacts[0]["gitRef"], "main");

        // Bad input changes nothing.
        let promos = "/api/v1/components/shop/promotions";
        let (s, v) = c.post(promos, "user:default/rita", json!({ "digest": digest(1), "environment": "moon" })).await;
        assert_eq!((s, v["field"].as_str()), (400, Some("environment")), "{v}");
        let (s, v) = c.post(promos, "user:default/rita", json!({ "digest": "sha256:xyz", "environment": "dev" })).await;
        assert_eq!((s, v["field"].as_str()), (400, Some("digest")), "{v}");
        let (s, v) = c.post(promos, "user:default/rita", json!({ "digest": digest(9), "environment": "dev" })).await;
        assert_eq!((s, v["field"].as_str()), (400, Some("digest")), "an unknown artifact: {v}");
        let (s, _) = c.post(promos, "user:default/otto", json!({ "digest": digest(1), "environment": "dev" })).await;
        assert_eq!(s, 403, "only owners promote");
        let (s, v) = c.post(promos, "user:default/rita", json!({ "digest": digest(1), "environment": "prod" })).await;
        assert_eq!(s, 409, "prod needs dev first: {v}");
        assert!(v["detail"].as_str().unwrap().contains("dev"), "{v}");
        assert_eq!(c.get(promos).await, json!([]), "nothing was recorded");
        assert_eq!(remote_file(&root, &repo, "apps/shop/dev/kustomization.yaml"), (KUSTOMIZATION.to_string(), 1), "nothing was written");

        // dev has no gates: written at once, by digest.
        let (s, p) = c.post(promos, "user:default/rita", json!({ "digest": digest(1), "environment": "dev" })).await;
        assert_eq!(s, 201, "{p}");
        let p = c.finished(p["id"].as_str().unwrap()).await;
        assert_eq!(p["state"], "done", "{p}");
        let (text, commits) = remote_file(&root, &repo, "apps/shop/dev/kustomization.yaml");
        assert_eq!(commits, 2);
        assert!(text.contains(&digest(1)) && text.contains("newName: registry.example.com/shop/shop") && !text.contains("newTag"), "{text}");
        assert!(text.contains("../base"), "the rest of the file is kept: {text}");
        let bare = root.join(format!("{repo}.git"));
        assert_eq!(git(&bare, &["rev-parse", "main"]).trim(), p["commitSha"].as_str().unwrap());
        let message = git(&bare, &["log", "-1", "--format=%B", "main"]);
        assert!(message.contains(p["id"].as_str().unwrap()) && message.contains("user:default/rita") && message.contains(&digest(1)), "{message}");

        // prod: two distinct approvers from release-managers; not the requester, not outsiders.
        let (s, p) = c.post(promos, "user:default/rita", json!({ "digest": digest(1), "environment": "prod" })).await;
        assert_eq!((s, p["state"].as_str()), (201, Some("awaiting_approval")), "{p}");
        let approvals = format!("/api/v1/promotions/{}/approvals", p["id"].as_str().unwrap());
        let (s, v) = c.post(&approvals, "user:default/rita", json!({})).await;
        assert_eq!(s, 403, "the requester cannot approve: {v}");
        let (s, v) = c.post(&approvals, "user:default/otto", json!({})).await;
        assert_eq!(s, 403, "a non-member cannot approve: {v}");
        assert!(v["detail"].as_str().unwrap().contains("release-managers"), "{v}");
        let (s, v) = c.post(&approvals, "user:default/ann", json!({})).await;
        assert_eq!((s, v["state"].as_str(), v["approvals"].as_array().map(Vec::len)), (200, Some("awaiting_approval"), Some(1)), "{v}");
        let (s, _) = c.post(&approvals, "user:default/ann", json!({})).await;
        assert_eq!(s, 409, "approving twice counts once");
        assert_eq!(remote_file(&root, &repo, "apps/shop/prod/kustomization.yaml").0, KUSTOMIZATION, "one approval writes nothing");
        let (s, v) = c.post(&approvals, "user:default/ben", json!({})).await;
        assert_eq!(s, 200, "{v}");
        let p = c.finished(p["id"].as_str().unwrap()).await;
        assert_eq!(p["state"], "done", "{p}");
        let (text, commits) = remote_file(&root, &repo, "apps/shop/prod/kustomization.yaml");
        assert_eq!(commits, 3);
        assert!(text.contains(&digest(1)), "{text}");
        let message = git(&bare, &["log", "-1", "--format=%B", "main"]);
        assert!(message.contains("Approved-by: user:default/ann, user:default/ben"), "{message}");

        let envs = c.get("/api/v1/components/shop/environments").await;
        assert_eq!(envs[0]["name"], "dev");
        assert_eq!(envs[1]["current"]["digest"], digest(1));
        assert_eq!(envs[1]["approvalsNeeded"], 2);

        // Each step is in the audit log.
        let (_, audit) = c.call(reqwest::Method::GET, "/api/v1/audit?limit=200", Some(ADMIN_USER), None).await;
        let actions: Vec<&str> = audit["events"].as_array().or(audit.as_array()).unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
        for a in ["release.promotion.request", "release.promotion.approve", "release.promotion.approved", "release.promotion.writing", "release.promotion.done", "authz.deny.approve"] {
            assert!(actions.contains(&a), "{a} audited: {actions:?}");
        }

        // The write credential appears nowhere.
        let canary = Canary::of(&password);
        let mut check = canary.check();
        check.logs(&logs).bodies(&c.bodies).argv(&argv).metrics(&app).await;
        check.database(&app.state.db).await.sqlite_files(&app.database_url());
        check.assert_clean();
    }

    async fn rollback_pins_the_environment_against_auto_promotion(backend: Backend) {
        let _logs = capture_logs();
        let Some((url, root, password)) = git_server() else { return };
        let repo = publish_gitops(&root);
        let app = start(backend, &url, &repo, &password, true).await;
        let mut c = Client { app: &app, bodies: Vec::new() };
        let dev_current = |envs: &Value| envs[0]["current"]["digest"].as_str().map(str::to_string);

        // Builds of main are promoted to dev automatically.
        for n in [1, 2] {
            record_artifact(&app, n, "main").await;
            let mut landed = false;
            for _ in 0..200 {
                if dev_current(&c.get("/api/v1/components/shop/environments").await) == Some(digest(n)) {
                    landed = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert!(landed, "artifact {n} was auto-promoted to dev");
        }
        let (_, commits) = remote_file(&root, &repo, "apps/shop/dev/kustomization.yaml");
        assert_eq!(commits, 3);

        // Rolling back to the first artifact pins dev.
        let (s, p) = c.post("/api/v1/components/shop/promotions", "user:default/rita", json!({ "digest": digest(1), "environment": "dev" })).await;
        assert_eq!((s, p["rollback"].as_bool()), (201, Some(true)), "{p}");
        let p = c.finished(p["id"].as_str().unwrap()).await;
        assert_eq!(p["state"], "done", "{p}");
        let envs = c.get("/api/v1/components/shop/environments").await;
        assert_eq!(dev_current(&envs), Some(digest(1)));
        assert_eq!(envs[0]["pin"]["promotionId"], p["id"], "{envs}");

        // A new build of main does not overwrite the rollback.
        record_artifact(&app, 3, "main").await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(dev_current(&c.get("/api/v1/components/shop/environments").await), Some(digest(1)), "the pin holds");
        let (text, _) = remote_file(&root, &repo, "apps/shop/dev/kustomization.yaml");
        assert!(text.contains(&digest(1)), "{text}");

        // Rerunning a write whose push landed (a crash before it was recorded) commits nothing.
        let (_, before) = remote_file(&root, &repo, "apps/shop/dev/kustomization.yaml");
        sqlx::query(app.state.db.sql("UPDATE release_promotions SET state = 'writing' WHERE id = $1")).bind(p["id"].as_str().unwrap()).execute(app.state.db.pool()).await.unwrap();
        app.state.jobs.enqueue(&nova::release::WritePromotion { promotion_id: p["id"].as_str().unwrap().to_string() }, None, 0).await.unwrap();
        let again = c.finished(p["id"].as_str().unwrap()).await;
        assert_eq!((again["state"].as_str(), again["commitSha"].as_str()), (Some("done"), p["commitSha"].as_str()), "{again}");
        assert_eq!(remote_file(&root, &repo, "apps/shop/dev/kustomization.yaml").1, before, "no second commit");

        // Releasing the pin is for owners, audited, and only once.
        let pin = "/api/v1/components/shop/environments/dev/pin";
        let (s, _) = c.call(reqwest::Method::DELETE, pin, Some("user:default/otto"), None).await;
        assert_eq!(s, 403);
        let (s, v) = c.call(reqwest::Method::DELETE, pin, Some("user:default/rita"), None).await;
        assert_eq!(s, 200, "{v}");
        let (s, _) = c.call(reqwest::Method::DELETE, pin, Some("user:default/rita"), None).await;
        assert_eq!(s, 404);
        assert!(c.get("/api/v1/components/shop/environments").await[0]["pin"].is_null());
    }

    async fn the_deployments_tab_shows_environments_and_decides_without_javascript(backend: Backend) {
        let _logs = capture_logs();
        let Some((url, root, password)) = git_server() else { return };
        let repo = publish_gitops(&root);
        let app = start(backend, &url, &repo, &password, false).await;
        let mut c = Client { app: &app, bodies: Vec::new() };
        record_artifact(&app, 1, "main").await;
        let promos = "/api/v1/components/shop/promotions";
        let (_, p) = c.post(promos, "user:default/rita", json!({ "digest": digest(1), "environment": "dev" })).await;
        c.finished(p["id"].as_str().unwrap()).await;
        let (_, p) = c.post(promos, "user:default/rita", json!({ "digest": digest(1), "environment": "prod" })).await;
        let id = p["id"].as_str().unwrap().to_string();

        let tab = "/catalog/default/component/shop/deployments";
        let page = |user: &'static str| {
            let app = &app;
            async move {
                let r = app.client.get(app.url(tab)).bearer_auth(app.token_for(user).await).send().await.unwrap();
                assert_eq!(r.status(), 200);
                r.text().await.unwrap()
            }
        };
        let short = &digest(1)[..19];
        let ann = page("user:default/ann").await;
        assert!(ann.contains("Deployments") && ann.contains(short) && ann.contains("v1") && ann.contains("0/2"), "{ann}");
        assert!(ann.contains(&format!("action=\"/promotions/{id}/approve\"")), "an approver sees Approve");
        assert!(!ann.contains("action=\"/promotions\""), "only owners see Promote");
        let rita = page("user:default/rita").await;
        assert!(rita.contains("action=\"/promotions\"") && !rita.contains("/approve\""), "the owner promotes but does not approve her own");
        assert!(!page("user:default/otto").await.contains("/approve\""));
        assert!(!rita.contains("<script>"), "no inline script");

        // The forms work as plain form posts.
        let post = |user: &'static str, path: String, body: String| {
            let app = &app;
            async move {
                app.client.post(app.url(&path)).bearer_auth(app.token_for(user).await).header("origin", &app.base)
                    .header("content-type", "application/x-www-form-urlencoded").body(body).send().await.unwrap()
            }
        };
        let r = post("user:default/ann", format!("/promotions/{id}/approve"), String::new()).await;
        assert_eq!(r.status(), 303);
        assert_eq!(r.headers()["location"], tab);
        assert_eq!(c.get(&format!("/api/v1/promotions/{id}")).await["approvals"].as_array().unwrap().len(), 1);
        let r = post("user:default/otto", format!("/promotions/{id}/approve"), String::new()).await;
        assert_eq!(r.status(), 403, "the page says why");
        record_artifact(&app, 2, "main").await;
        let body = format!("component=component%3Adefault%2Fshop&digest={}&environment=dev", digest(2).replace(':', "%3A"));
        let r = post("user:default/rita", "/promotions".into(), body).await;
        assert_eq!(r.status(), 303);
        let list = c.get(promos).await;
        assert_eq!(list[0]["digest"], digest(2), "{list}");
        let dev2 = c.finished(list[0]["id"].as_str().unwrap()).await;
        assert_eq!(dev2["state"], "done", "{dev2}");

        // The matrix: tag, short digest, who, and the commit linked through gitops.commit_url;
        // the pending promotion names its approver.
        let rita = page("user:default/rita").await;
        let sha = dev2["commitSha"].as_str().unwrap();
        assert!(rita.contains(&format!("href=\"https://git.example.com/platform/deploy/commit/{sha}\"")) && rita.contains(&sha[..12]), "{rita}");
        assert!(rita.contains(&digest(2)[..19]) && rita.contains("<td>v2</td>"), "{rita}");
        assert!(rita.contains("1/2 · user:default/ann"), "who approved: {rita}");
        assert!(rita.contains("Recent promotions"), "{rita}");

        // Roll back and Release pin are buttons for owners; others are refused with the reason.
        assert!(rita.contains("action=\"/rollbacks\"") && !rita.contains("action=\"/pins/release\""), "{rita}");
        assert!(!page("user:default/ann").await.contains("action=\"/rollbacks\""), "only owners roll back");
        let env_form = "component=component%3Adefault%2Fshop&environment=dev".to_string();
        let r = post("user:default/otto", "/rollbacks".into(), env_form.clone()).await;
        assert_eq!(r.status(), 403);
        let r = post("user:default/rita", "/rollbacks".into(), env_form.clone()).await;
        assert_eq!((r.status().as_u16(), r.headers()["location"].to_str().unwrap()), (303, tab));
        let back = c.get(promos).await;
        assert_eq!((back[0]["digest"].as_str(), back[0]["rollback"].as_bool()), (Some(digest(1).as_str()), Some(true)), "{back}");
        assert_eq!(c.finished(back[0]["id"].as_str().unwrap()).await["state"], "done");
        let rita = page("user:default/rita").await;
        assert!(rita.contains("pinned by user:default/rita") && rita.contains("action=\"/pins/release\""), "{rita}");
        let r = post("user:default/rita", "/pins/release".into(), env_form.clone()).await;
        assert_eq!(r.status(), 303);
        assert!(c.get("/api/v1/components/shop/environments").await[0]["pin"].is_null(), "released");
        let r = post("user:default/rita", "/pins/release".into(), env_form).await;
        assert_eq!(r.status(), 404, "nothing left to release");
    }

    async fn ci_reports_artifacts_through_a_signed_webhook(backend: Backend) {
        let _logs = capture_logs();
        // A real CNCF registry holding the image CI pushed; shop links its repository.
        let Some(reg) = TestRegistry::start(RegistryAuth::Anonymous).await else { return };
        let pushed = reg.push_image("shop/shop", &["v7"], &ImageSpec::new("2026-01-01T00:00:00Z", "abc123")).await;
        let host = reg.url.trim_start_matches("http://").to_string();
        let dir = tempfile::tempdir().unwrap();
        write_file(dir.path(), "org.yaml", ORG);
        let shop = registry_component("shop", "shop-team", None, &[("nova.dev/image-repository", "local/shop/shop")]);
        write_file(dir.path(), "shop.yaml", &format!("{shop}---\n{}", component_yaml("lab", "outsiders")));
        let def = reg.config(None);
        let app = spawn_app_with(backend, with_admin(Options { locations: vec!["org.yaml".into(), "shop.yaml".into()], dir: Some(dir),
            configure: Some(Box::new(move |c| { c.registries.insert("local".into(), def); })), ..Default::default() })).await;
        let mut c = Client { app: &app, bodies: Vec::new() };

        // Only the team makes its secret, which is shown once.
        let (s, _) = c.post("/api/v1/teams/shop-team/intake-secret", "user:default/otto", json!({})).await;
        assert_eq!(s, 403);
        let (s, v) = c.post("/api/v1/teams/shop-team/intake-secret", "user:default/rita", json!({})).await;
        assert_eq!(s, 201, "{v}");
        let secret = v["secret"].as_str().unwrap().to_string();

        let now = || (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()) as i64;
        let send = |body: Value, ts: i64, signature: Option<String>| {
            let app = &app;
            async move {
                let body = serde_json::to_vec(&body).unwrap();
                let mut req = app.client.post(app.url("/api/v1/artifacts")).header("content-type", "application/json").header("x-nova-timestamp", ts.to_string());
                if let Some(sig) = signature {
                    req = req.header("x-nova-signature-256", sig);
                }
                let r = req.body(body).send().await.unwrap();
                let status = r.status().as_u16();
                (status, r.json::<Value>().await.unwrap_or(Value::Null))
            }
        };
        let sign = |body: &Value, ts: i64, key: &str| nova::release::intake::sign(key, ts, &serde_json::to_vec(body).unwrap());
        let repository = format!("{host}/shop/shop");
        let artifact = json!({ "component": "shop", "repository": repository, "digest": pushed.digest, "tags": ["v7"], "gitRef": "main" });

        let ts = now();
        let (s, v) = send(artifact.clone(), ts, Some(sign(&artifact, ts, &secret))).await;
        assert_eq!(s, 201, "{v}");
        assert_eq!((v["digest"].as_str(), v["source"].as_str()), (Some(pushed.digest.as_str()), Some("intake")));
        let (s, _) = send(artifact.clone(), ts, Some(sign(&artifact, ts, &secret))).await;
        assert_eq!(s, 409, "a replay is refused");
        let again = json!({ "component": "shop", "repository": repository, "digest": pushed.digest, "tags": ["stable"] });
        let (s, v) = send(again.clone(), ts + 1, Some(sign(&again, ts + 1, &secret))).await;
        assert_eq!((s, v["tags"].clone()), (200, json!(["v7", "stable"])), "the same digest only adds tags: {v}");
        // The catalog's name for the repository (<registry>/<repository>) is accepted too, and
        // recorded as given (it is what GitOps will name).
        let by_name = json!({ "component": "shop", "repository": "local/shop/shop", "digest": pushed.digest });
        let (s, v) = send(by_name.clone(), ts + 4, Some(sign(&by_name, ts + 4, &secret))).await;
        assert_eq!((s, v["repository"].as_str()), (201, Some("local/shop/shop")), "{v}");

        // Refused: no, wrong or stale signatures, another team's component, a bad digest.
        let other = json!({ "component": "shop", "repository": repository, "digest": digest(8) });
        assert_eq!(send(other.clone(), ts, None).await.0, 401);
        assert_eq!(send(other.clone(), ts, Some(sign(&other, ts, "guess"))).await.0, 401);
        assert_eq!(send(other.clone(), ts - 3600, Some(sign(&other, ts - 3600, &secret))).await.0, 401, "outside the window");
        let lab = json!({ "component": "lab", "repository": "registry.example.com/lab/lab", "digest": digest(8) });
        assert_eq!(send(lab.clone(), ts, Some(sign(&lab, ts, &secret))).await.0, 401, "shop-team cannot sign for outsiders' component");
        let bad = json!({ "component": "shop", "repository": repository, "digest": "sha256:abc" });
        let (s, v) = send(bad.clone(), ts, Some(sign(&bad, ts, &secret))).await;
        assert_eq!((s, v["field"].as_str()), (400, Some("digest")), "{v}");

        // Refused: a digest the registry does not hold, a repository shop does not link, and
        // one it links that does not exist yet.
        let (s, v) = send(other.clone(), ts + 2, Some(sign(&other, ts + 2, &secret))).await;
        assert_eq!((s, v["field"].as_str()), (400, Some("digest")), "{v}");
        let detail = v["detail"].as_str().unwrap();
        assert!(detail.contains(&format!("{repository} (registry local) has no manifest {}", digest(8))), "{detail}");
        let unlinked = json!({ "component": "shop", "repository": format!("{host}/lab/lab"), "digest": pushed.digest });
        let (s, v) = send(unlinked.clone(), ts + 3, Some(sign(&unlinked, ts + 3, &secret))).await;
        assert_eq!((s, v["field"].as_str()), (400, Some("repository")), "{v}");
        assert!(v["detail"].as_str().unwrap().contains(&format!("is not a repository component:default/shop links; it links {repository}")), "{v}");
        let list = c.get("/api/v1/components/shop/artifacts").await;
        assert_eq!(list.as_array().unwrap().len(), 2, "nothing else was recorded: {list}");

        // Rotation retires the old secret.
        let (s, _) = c.post("/api/v1/teams/shop-team/intake-secret", "user:default/rita", json!({})).await;
        assert_eq!(s, 201);
        let t = now();
        assert_eq!(send(other.clone(), t, Some(sign(&other, t, &secret))).await.0, 401);
        let (_, audit) = c.call(reqwest::Method::GET, "/api/v1/audit?action=release.&limit=100", Some(ADMIN_USER), None).await;
        let text = audit.to_string();
        assert!(text.contains("release.artifact.intake") && text.contains("release.intake-secret.rotate") && !text.contains(&secret), "audited, without the secret");
        assert!(text.contains("has no manifest") && text.contains("is not a repository"), "the registry refusals are audited with their reason");
    }

    async fn plain_manifests_are_written_by_yaml_path(backend: Backend) {
        let _logs = capture_logs();
        let Some((url, root, password)) = git_server() else { return };
        let repo = publish_gitops(&root);
        let text = format!(
            "[dev]\norder = 1\n[dev.gitops]\nrepository = \"{url}/{repo}.git\"\npath = \"apps/{{component}}/deployment.yaml\"\nwrite = \"yaml-path\"\nyaml_path = \"spec.template.spec.containers[name=app].image\"\nusername = \"nova-test\"\ncredential = {{ store = \"platform/gitops\" }}\n\
             [prod]\norder = 2\n[prod.gitops]\nrepository = \"{url}/{repo}.git\"\npath = \"apps/{{component}}/deployment.yaml\"\nwrite = \"yaml-path\"\nyaml_path = \"spec.template.spec.containers[name=web].image\"\nusername = \"nova-test\"\ncredential = {{ store = \"platform/gitops\" }}\n"
        );
        let app = start_with(backend, &text, &password, |_| {}).await;
        let mut c = Client { app: &app, bodies: Vec::new() };
        record_artifact(&app, 1, "main").await;
        let p = c.promote_shop(1, "dev").await;
        assert_eq!(p["state"], "done", "{p}");
        let (text, commits) = remote_file(&root, &repo, "apps/shop/deployment.yaml");
        assert!(text.contains(&format!("image: registry.example.com/shop/shop@{}", digest(1))), "{text}");
        assert_eq!(commits, 2);

        // A YAML path that is not in the file fails the promotion with the reason; nothing is written.
        let p = c.promote_shop(1, "prod").await;
        assert_eq!(p["state"], "failed", "{p}");
        assert!(p["reason"].as_str().unwrap().contains("nothing at YAML path spec.template.spec.containers[name=web].image"), "{p}");
        assert_eq!(remote_file(&root, &repo, "apps/shop/deployment.yaml").1, 2, "no commit");
    }

    async fn helm_values_are_edited_in_place(backend: Backend) {
        let _logs = capture_logs();
        let Some((url, root, password)) = git_server() else { return };
        let repo = publish_gitops(&root);
        let text = format!(
            "[dev]\norder = 1\n[dev.gitops]\nrepository = \"{url}/{repo}.git\"\npath = \"apps/{{component}}/values.yaml\"\nwrite = \"helm-values\"\nusername = \"nova-test\"\ncredential = {{ store = \"platform/gitops\" }}\n\
             [prod]\norder = 2\n[prod.gitops]\nrepository = \"{url}/{repo}.git\"\npath = \"apps/{{component}}/values.yaml\"\nwrite = \"helm-values\"\nvalues_key = \"app.image\"\nusername = \"nova-test\"\ncredential = {{ store = \"platform/gitops\" }}\n"
        );
        let app = start_with(backend, &text, &password, |_| {}).await;
        let mut c = Client { app: &app, bodies: Vec::new() };
        record_artifact(&app, 1, "main").await;
        let p = c.promote_shop(1, "dev").await;
        assert_eq!(p["state"], "done", "{p}");
        let (text, commits) = remote_file(&root, &repo, "apps/shop/values.yaml");
        let expected = HELM_VALUES
            .replace("registry.example.com/shop/old", "registry.example.com/shop/shop")
            .replace("tag: 'old'", "tag: 'v1'")
            .replace("pullPolicy: IfNotPresent\n", &format!("pullPolicy: IfNotPresent\n  digest: {}\n", digest(1)));
        assert_eq!(text, expected, "only the image's values changed; comments and formatting are kept");
        assert_eq!(commits, 2);

        // The same artifact again commits nothing; a values key that is not in the file fails
        // the promotion with the reason and writes nothing.
        assert_eq!(c.promote_shop(1, "dev").await["state"], "done");
        assert_eq!(remote_file(&root, &repo, "apps/shop/values.yaml").1, 2, "no second commit");
        let p = c.promote_shop(1, "prod").await;
        assert_eq!(p["state"], "failed", "{p}");
        assert!(p["reason"].as_str().unwrap().contains("apps/shop/values.yaml has no `app` (gitops.values_key)"), "{p}");
        assert_eq!(remote_file(&root, &repo, "apps/shop/values.yaml").1, 2, "no commit");
    }

    async fn the_policy_gate_stops_enforce_violations_and_records_audit_ones(backend: Backend) {
        let _logs = capture_logs();
        let Some((url, root, password)) = git_server() else { return };
        let repo = publish_gitops(&root);
        let dir = tempfile::tempdir().unwrap();
        let policy = write_file(dir.path(), "policy.yaml", "rules:\n  require-probes:\n    mode: Audit\n");
        let target = |env: &str, order: u32, path: &str| format!(
            "[{env}]\norder = {order}\ngates = {{ policy = true }}\n[{env}.gitops]\nrepository = \"{url}/{repo}.git\"\npath = \"{path}\"\nwrite = \"yaml-path\"\nyaml_path = \"spec.template.spec.containers[name=app].image\"\nusername = \"nova-test\"\ncredential = {{ store = \"platform/gitops\" }}\n");
        let text = format!("{}{}", target("dev", 1, "apps/{component}/deployment.yaml"), target("prod", 2, "apps/{component}/ok/deployment.yaml"));
        let app = start_with(backend, &text, &password, move |c| c.release.policy = Some(policy)).await;
        let mut c = Client { app: &app, bodies: Vec::new() };
        record_artifact(&app, 1, "main").await;
        let promos = "/api/v1/components/shop/promotions";

        // dev's directory holds a Deployment without labels or resources: Enforce violations
        // fail the promotion with the rule, file and object named, and nothing is pushed.
        let (_, p) = c.post(promos, "user:default/rita", json!({ "digest": digest(1), "environment": "dev", "overridePath": false })).await;
        let p = c.finished(p["id"].as_str().unwrap()).await;
        assert_eq!(p["state"], "failed", "{p}");
        let reason = p["reason"].as_str().unwrap();
        assert!(reason.starts_with("policy gate:") && reason.contains("require-labels in apps/shop/deployment.yaml (Deployment default/shop)") && reason.contains("nothing was pushed"), "{reason}");
        assert_eq!(p["policy"]["passed"], false, "{p}");
        let findings = p["policy"]["findings"].as_array().unwrap();
        assert!(findings.iter().any(|f| f["mode"] == "enforce" && f["rule"] == "require-requests-limits" && f["file"] == "apps/shop/deployment.yaml"), "{findings:?}");
        assert!(findings.iter().any(|f| f["mode"] == "audit" && f["rule"] == "require-probes"), "Audit mode from the policy file: {findings:?}");
        assert_eq!(remote_file(&root, &repo, "apps/shop/deployment.yaml"), (DEPLOYMENT.to_string(), 1), "nothing was pushed");

        // prod's directory complies but for probes, which the policy file audits: written,
        // with the Audit findings recorded on the promotion.
        let (s, p) = c.post(promos, ADMIN_USER, json!({ "digest": digest(1), "environment": "prod", "overridePath": true })).await;
        assert_eq!(s, 201, "{p}");
        let p = c.finished(p["id"].as_str().unwrap()).await;
        assert_eq!(p["state"], "done", "{p}");
        assert_eq!((p["policy"]["passed"].as_bool(), p["policy"]["directory"].as_str()), (Some(true), Some("apps/shop/ok")), "{p}");
        let findings = p["policy"]["findings"].as_array().unwrap();
        assert!(!findings.is_empty() && findings.iter().all(|f| f["mode"] == "audit" && f["rule"] == "require-probes" && f["object"] == "Deployment shop/shop"), "{findings:?}");
        let (text, commits) = remote_file(&root, &repo, "apps/shop/ok/deployment.yaml");
        assert!(text.contains(&digest(1)) && commits == 2, "{text}");
        let r = app.client.get(app.url("/catalog/default/component/shop/deployments")).bearer_auth(app.token_for("user:default/rita").await).send().await.unwrap();
        let tab = r.text().await.unwrap();
        assert!(tab.contains("policy: failed: ") && tab.contains("enforce require-labels in apps/shop/deployment.yaml (Deployment default/shop)"), "the failed gate on the tab: {tab}");
        assert!(tab.contains("policy: passed, ") && tab.contains("audit finding(s)"), "the passed gate on the tab: {tab}");
        let (_, audit) = c.call(reqwest::Method::GET, "/api/v1/audit?action=release.promotion.policy&limit=10", Some(ADMIN_USER), None).await;
        let events = audit["events"].as_array().or(audit.as_array()).unwrap().clone();
        assert_eq!(events.len(), 2, "both gate results are audited: {audit}");
    }

    async fn the_wait_timer_and_allowed_refs_gate_prod(backend: Backend) {
        let _logs = capture_logs();
        let Some((url, root, password)) = git_server() else { return };
        let repo = publish_gitops(&root);
        let dir = tempfile::tempdir().unwrap();
        write_file(dir.path(), "org.yaml", ORG);
        write_file(dir.path(), "shop.yaml", &component_yaml("shop", "shop-team"));
        let mut envs = environments(&url, &repo, false);
        let prod = envs.get_mut("prod").unwrap();
        prod.gates = toml::from_str("approvals = 0\nwait = \"3s\"\nrefs = [\"main\", \"release/*\"]\n").unwrap();
        let app = spawn_app_with(backend, with_admin(Options { locations: vec!["org.yaml".into(), "shop.yaml".into()], dir: Some(dir), configure: Some(Box::new(move |c| c.environments = envs)), ..Default::default() })).await;
        app.state.secrets.put(&SecretPath::parse("platform/gitops").unwrap(), &SecretData::single(Sensitive::new(password.clone())), Precondition::None).await.unwrap();
        let mut c = Client { app: &app, bodies: Vec::new() };
        record_artifact(&app, 1, "main").await;
        record_artifact(&app, 2, "feature/x").await;
        let promos = "/api/v1/components/shop/promotions";
        for n in [2, 1] {
            assert_eq!(c.promote_shop(n, "dev").await["state"], "done");
        }
        let (s, v) = c.post(promos, "user:default/rita", json!({ "digest": digest(2), "environment": "prod" })).await;
        assert_eq!(s, 409, "a feature branch may not enter prod: {v}");
        assert!(v["detail"].as_str().unwrap().contains("feature/x"), "{v}");

        let dev_done = c.get("/api/v1/components/shop/environments").await[0]["current"]["finishedAt"].as_i64().unwrap();
        let (s, p) = c.post(promos, "user:default/rita", json!({ "digest": digest(1), "environment": "prod" })).await;
        assert_eq!((s, p["state"].as_str()), (201, Some("waiting")), "{p}");
        assert!(p["notBefore"].as_i64().unwrap() >= dev_done + 3000, "{p}");
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let id = p["id"].as_str().unwrap();
        assert_eq!(c.get(&format!("/api/v1/promotions/{id}")).await["state"], "waiting", "still soaking in dev");
        let r = app.client.get(app.url("/catalog/default/component/shop/deployments")).bearer_auth(app.token_for("user:default/rita").await).send().await.unwrap();
        let tab = r.text().await.unwrap();
        let row = tab.split(&format!("data-promotion=\"{id}\"")).nth(1).unwrap().split("</tr>").next().unwrap();
        assert!(row.contains("waiting") && row.contains("s left</td>"), "the wait timer's time left: {row}");
        assert_eq!(remote_file(&root, &repo, "apps/shop/prod/kustomization.yaml").0, KUSTOMIZATION);
        let p = c.finished(id).await;
        assert_eq!(p["state"], "done", "{p}");
        assert!(p["finishedAt"].as_i64().unwrap() >= dev_done + 3000);
        assert!(remote_file(&root, &repo, "apps/shop/prod/kustomization.yaml").0.contains(&digest(1)));
    }
}

/// `nova ARGS` as `user` (through NOVA_TOKEN): exit code, stdout, stderr.
async fn cli(app: &TestApp, user: Option<&str>, args: &[&str]) -> (Option<i32>, String, String) {
    let config = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_nova"));
    cmd.args(args).env("XDG_CONFIG_HOME", config.path()).env("NOVA_SERVER", &app.base).env_remove("NOVA_TOKEN");
    if let Some(u) = user {
        cmd.env("NOVA_TOKEN", app.token_for(u).await);
    }
    let out = cmd.output().await.unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The release commands as a user runs them: `nova promote`, `promotions`, `approve`, `reject`,
/// `rollback`. The server's refusals are printed with their reason and exit 1; a command that
/// cannot run (no token, no server) exits 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_promotes_approves_rejects_and_rolls_back() {
    let _logs = capture_logs();
    let Some((url, root, password)) = git_server() else { return };
    let repo = publish_gitops(&root);
    let app = start(Backend::Sqlite, &url, &repo, &password, false).await;
    let mut c = Client { app: &app, bodies: Vec::new() };
    record_artifact(&app, 1, "main").await;
    record_artifact(&app, 2, "main").await;
    let rita = Some("user:default/rita");
    let (d1, d2) = (digest(1), digest(2));

    let (code, out, err) = cli(&app, rita, &["promotions", "shop"]).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("ENVIRONMENT") && out.contains("dev") && out.contains("prod") && out.contains("No pending promotions."), "{out}");

    // Refusals name the reason and exit 1; nothing is recorded.
    let (code, _, err) = cli(&app, rita, &["promote", "shop", "--digest", &d1, "--env", "prod"]).await;
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("409") && err.contains("has not been deployed in dev"), "{err}");
    let (code, _, err) = cli(&app, rita, &["promote", "shop", "--digest", &d1, "--env", "moon"]).await;
    assert!(code == Some(1) && err.contains("must be one of: dev, prod"), "{err}");
    let (code, _, err) = cli(&app, Some("user:default/otto"), &["promote", "shop", "--digest", &d1, "--env", "dev"]).await;
    assert!(code == Some(1) && err.contains("403"), "only owners promote: {err}");
    let (code, _, err) = cli(&app, rita, &["rollback", "shop", "--env", "dev"]).await;
    assert!(code == Some(1) && err.contains("nothing has been deployed in dev"), "{err}");
    assert_eq!(c.get("/api/v1/components/shop/promotions").await, json!([]));

    // Promote twice, then roll back to the first: the environment is pinned.
    for d in [&d1, &d2] {
        let (code, out, err) = cli(&app, rita, &["promote", "component:default/shop", "--digest", d, "--env", "dev"]).await;
        assert_eq!(code, Some(0), "{err}");
        assert!(out.starts_with("promotion ") && out.contains(" -> dev: waiting"), "{out}");
        let id = out["promotion ".len()..].split(':').next().unwrap().to_string();
        assert_eq!(c.finished(&id).await["state"], "done");
    }
    let (code, _, err) = cli(&app, rita, &["rollback", "shop", "--env", "dev", "--to", &digest(9)]).await;
    assert!(code == Some(1) && err.contains("never deployed in dev"), "{err}");
    let (code, out, err) = cli(&app, rita, &["rollback", "shop", "--env", "dev"]).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains(&d1[..19]) && out.contains("(rollback)"), "the artifact before the current one: {out}");
    let id = out["promotion ".len()..].split(':').next().unwrap().to_string();
    assert_eq!(c.finished(&id).await["state"], "done");
    let (_, out, _) = cli(&app, rita, &["promotions", "shop"]).await;
    let dev = out.lines().find(|l| l.starts_with("dev ")).unwrap();
    assert!(dev.contains(&d1[..19]) && dev.contains("pinned by user:default/rita"), "{out}");

    // prod needs two approvers; the requester and outsiders are refused, with the reason.
    let (_, out, _) = cli(&app, rita, &["promote", "shop", "--digest", &d1, "--env", "prod"]).await;
    assert!(out.contains("awaiting_approval"), "{out}");
    let id = out["promotion ".len()..].split(':').next().unwrap().to_string();
    let (_, out, _) = cli(&app, rita, &["promotions", "shop"]).await;
    assert!(out.contains("Pending promotions:") && out.lines().any(|l| l.starts_with(&id) && l.contains("0/2")), "{out}");
    let (code, _, err) = cli(&app, rita, &["approve", &id]).await;
    assert!(code == Some(1) && err.contains("someone else must approve it"), "{err}");
    let (code, out, err) = cli(&app, Some("user:default/ann"), &["approve", &id]).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("awaiting_approval; approved by user:default/ann"), "{out}");
    let (code, _, err) = cli(&app, Some("user:default/otto"), &["reject", &id]).await;
    assert!(code == Some(1) && err.contains("release-managers"), "{err}");
    let (code, out, err) = cli(&app, Some("user:default/ben"), &["reject", &id]).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains(": rejected; approved by user:default/ann; rejected by user:default/ben"), "{out}");
    let (code, _, err) = cli(&app, Some("user:default/ben"), &["approve", "no-such-promotion"]).await;
    assert!(code == Some(1) && err.contains("404"), "{err}");

    // Commands that cannot run exit 2.
    let (code, _, err) = cli(&app, None, &["promotions", "shop"]).await;
    assert!(code == Some(2) && err.contains("nova login"), "{err}");
    let (code, _, err) = cli(&app, rita, &["promotions", "shop", "--server", "http://127.0.0.1:9"]).await;
    assert!(code == Some(2) && err.contains("cannot reach Nova"), "{err}");
}
