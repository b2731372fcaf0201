//! `/metrics` after real actions (docs/METRICS.md): a local build that fails at its clone, a
//! promotion written to a GitOps repository on the real git server and one that fails, a
//! registry that is down, a secret-store write refused by its precondition, and the image
//! view's flag evaluation — each shows up under its metric with its labels.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use nova::release::EnvironmentConfig;
use nova::release::artifacts::{ArtifactStore, NewArtifact};
use nova::secrets::{Precondition, SecretData, SecretPath};
use nova_domain::{Digest, Sensitive};
use serde_json::json;
use support::client::Client;
use support::*;

/// The value of the sample of `name` carrying every one of `labels`; `None` when there is none.
fn sample(metrics: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| labels.iter().all(|(k, v)| l.contains(&format!("{k}=\"{v}\""))))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn git(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("git").arg("-C").arg(dir).args(["-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "init.defaultBranch=main"]).args(args).output().unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_actions_show_up_on_metrics() {
    let Some(url) = require("git HTTP server", std::env::var("NOVA_TEST_GIT_HTTP_URL").ok(), "scripts/test starts it with start_git_http") else { return };
    let root = std::path::PathBuf::from(std::env::var("NOVA_TEST_GIT_HTTP_ROOT").expect("set with the URL"));
    let password = std::env::var("NOVA_TEST_GIT_HTTP_PASSWORD").expect("set with the URL");

    // A GitOps repository with svc's dev overlay (and no overlay for `broken`).
    let gitops = format!("private/metrics-gitops-{}", uuid::Uuid::new_v4().simple());
    let work = tempfile::tempdir().unwrap();
    write_file(work.path(), "apps/svc/dev/kustomization.yaml", "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nimages:\n- name: svc\n  newTag: old\n");
    git(work.path(), &["init", "--quiet"]);
    git(work.path(), &["add", "-A"]);
    git(work.path(), &["commit", "--quiet", "-m", "overlay"]);
    let bare = root.join(format!("{gitops}.git"));
    std::fs::create_dir_all(bare.parent().unwrap()).unwrap();
    git(work.path(), &["clone", "--quiet", "--bare", ".", bare.to_str().unwrap()]);
    let mut environments = String::new();
    for (order, env) in ["dev", "broken"].iter().enumerate() {
        environments.push_str(&format!(
            "[{env}]\norder = {}\n[{env}.gitops]\nrepository = \"{url}/{gitops}.git\"\npath = \"apps/{{component}}/{env}/kustomization.yaml\"\nimage_name = \"svc\"\nusername = \"nova-test\"\ncredential = {{ store = \"platform/gitops\" }}\n",
            order + 1
        ));
    }
    let environments: BTreeMap<String, EnvironmentConfig> = toml::from_str(&environments).unwrap();
    // A registry nothing answers at.
    let down_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let down: nova::registry::RegistryDef = toml::from_str(&format!("type = \"oci\"\nurl = \"http://127.0.0.1:{down_port}\"\n")).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let catalog = format!(
        "apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata: {{name: team}}\nspec: {{type: team, children: []}}\n---\n\
         apiVersion: backstage.io/v1alpha1\nkind: User\nmetadata: {{name: tess}}\nspec: {{memberOf: [team]}}\n---\n\
         apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: svc\n  annotations:\n    nova.dev/git-repository: {url}/no-such-repo-{}.git\n    nova.dev/image-repository: down/team/svc\n\
         spec: {{type: service, lifecycle: production, owner: team}}\n",
        uuid::Uuid::new_v4().simple()
    );
    write_file(dir.path(), "catalog.yaml", &catalog);
    let configure = move |c: &mut nova::config::Config| {
        c.environments = environments;
        c.registries = [("down".to_string(), down)].into_iter().collect();
        c.registry.request_timeout = Duration::from_secs(2);
    };
    let app = spawn_app_with(Backend::Sqlite, Options { locations: vec!["catalog.yaml".into()], dir: Some(dir), configure: Some(Box::new(configure)), ..Default::default() }).await;
    app.state.secrets.put(&SecretPath::parse("platform/gitops").unwrap(), &SecretData::single(Sensitive::new(password)), Precondition::None).await.unwrap();
    let tess = Client::new(&app, "tess").await;
    use reqwest::Method;

    // A local build whose repository does not exist: it fails at its clone.
    let (status, build) = tess.json(Method::POST, "/api/v1/components/svc/builds", Some(&json!({ "gitRef": "main", "dockerfile": "Dockerfile", "tag": "v1" }))).await;
    assert_eq!(status, 201, "{build}");
    let (done, log) = tess.finished(build["id"].as_str().unwrap()).await;
    assert_eq!(done["state"], "failed", "{done}\n{log}");

    // Two promotions of one artifact: written to dev, failed for `broken` (no such file).
    let digest = format!("sha256:{}", hex::encode([7u8; 32]));
    let artifact = NewArtifact {
        component_ref: "component:default/svc".into(),
        repository: "registry.example.com/team/svc".into(),
        digest: Digest::parse(&digest).unwrap(),
        tags: vec!["v1".into()],
        git_ref: Some("main".into()),
        git_revision: None,
        build_id: None,
        source: "intake",
    };
    ArtifactStore::new(app.state.db.clone()).record(artifact).await.unwrap();
    for (env, outcome) in [("dev", "done"), ("broken", "failed")] {
        let (status, p) = tess.json(Method::POST, "/api/v1/components/svc/promotions", Some(&json!({ "digest": digest, "environment": env }))).await;
        assert_eq!(status, 201, "{p}");
        let id = p["id"].as_str().unwrap().to_string();
        let mut state = String::new();
        for _ in 0..300 {
            let (_, p) = tess.json(Method::GET, &format!("/api/v1/promotions/{id}"), None).await;
            state = p["state"].as_str().unwrap_or_default().to_string();
            if !["awaiting_approval", "waiting", "writing"].contains(&state.as_str()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(state, outcome, "{env}");
    }

    // The image view (a flag evaluation) of a component whose registry is down.
    let images = support::registry::settled(&app, "/api/v1/components/component/default/svc/images").await;
    assert!(images.to_string().contains("unavailable"), "{images}");

    // A store write whose precondition fails.
    let path = SecretPath::parse("metrics/once").unwrap();
    let data = SecretData::single(Sensitive::new("x".into()));
    app.state.secrets.put(&path, &data, Precondition::Absent).await.unwrap();
    assert!(app.state.secrets.put(&path, &data, Precondition::Absent).await.is_err());

    let metrics = app.get("/metrics").await.text().await.unwrap();
    let at_least_one = |name: &str, labels: &[(&str, &str)]| {
        let v = sample(&metrics, name, labels);
        assert!(v.is_some_and(|v| v >= 1.0), "{name} {labels:?}: {v:?}\n{metrics}");
    };
    at_least_one("nova_builds_total", &[("state", "failed"), ("backend", "local")]);
    at_least_one("nova_build_duration_seconds_count", &[("backend", "local")]);
    assert!(metrics.contains("nova_build_duration_seconds_bucket{backend=\"local\",le=\"3600\"}"), "build durations have minute-sized buckets\n{metrics}");
    at_least_one("nova_promotions_total", &[("environment", "dev"), ("outcome", "done")]);
    at_least_one("nova_promotions_total", &[("environment", "broken"), ("outcome", "failed")]);
    assert_eq!(sample(&metrics, "nova_promotions_total", &[("environment", "dev"), ("outcome", "failed")]), None);
    at_least_one("nova_registry_refresh_total", &[("registry", "down"), ("outcome", "unavailable")]);
    at_least_one("nova_secret_store_errors_total", &[("store", "file"), ("operation", "put"), ("error", "conflict")]);
    assert_eq!(sample(&metrics, "nova_secret_store_errors_total", &[("error", "not-found")]), None, "not-found is an answer, not counted");
    at_least_one("nova_flag_evaluations_total", &[("flag", "registry.image-view"), ("value", "on")]);
}
