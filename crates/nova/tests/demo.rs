//! The demo environment `nova serve --demo` brings up: a real CNCF registry and git's smart-HTTP
//! server in a temporary directory, seeded from examples/repos; the registry serves every seeded
//! tag (the multi-platform ones as an image index), the repositories clone with their team's
//! token only and refuse pushes, the tokens register as the teams' credentials, a second start
//! seeds nothing, and stopping leaves no child running.

mod support;

use std::path::{Path, PathBuf};
use std::time::Instant;

use nova::config::Config;
use nova::demo::{DemoEnvironment, DemoOptions, Seeded, seed, tools};
use base64::Engine;
use serde_json::Value;

const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/repos")
}

fn git(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new("git").args(args).env("GIT_TERMINAL_PROMPT", "0").output().expect("git runs");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

async fn tags(client: &reqwest::Client, host: &str, repository: &str) -> Vec<String> {
    let body: Value = client.get(format!("http://{host}/v2/{repository}/tags/list")).send().await.unwrap().json().await.unwrap();
    body["tags"].as_array().map(|t| t.iter().filter_map(|v| v.as_str().map(String::from)).collect()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_environment_serves_seeded_images_and_repositories() {
    let missing: Vec<&str> = tools::missing().iter().map(|t| t.package).collect();
    let present = missing.is_empty().then(String::new);
    if support::require("the demo's programs", present, &format!("apt-get install {}", missing.join(" "))).is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let options = DemoOptions { dir: tmp.path().join("demo"), examples: examples() };
    let plan = seed::SeedPlan::load(&options.examples).unwrap();

    let started = Instant::now();
    let env = DemoEnvironment::start(&options).await.expect("the demo environment starts");
    eprintln!("first start, seeding included: {:.1}s", started.elapsed().as_secs_f64());
    assert_eq!(env.seeded, Seeded { repositories: plan.repositories.len() + 1, images: plan.image_count() });

    // Every seeded tag is in the registry; multi-platform tags are image indexes.
    let client = reqwest::Client::new();
    let mut indexes = 0;
    for r in &plan.repositories {
        let have = tags(&client, &env.registry_host, &r.image).await;
        for image in &r.images {
            assert!(have.contains(&image.tag), "{}:{} is in the registry ({have:?})", r.image, image.tag);
            let manifest: Value =
                client.get(format!("http://{}/v2/{}/manifests/{}", env.registry_host, r.image, image.tag)).header("accept", ACCEPT).send().await.unwrap().json().await.unwrap();
            if image.platforms.is_empty() {
                assert_ne!(manifest["mediaType"], INDEX, "{}:{} is a single image", r.image, image.tag);
                continue;
            }
            indexes += 1;
            assert_eq!(manifest["mediaType"], INDEX, "{}:{} is an image index", r.image, image.tag);
            let platforms: Vec<String> = manifest["manifests"].as_array().unwrap().iter().map(|m| format!("{}/{}", m["platform"]["os"].as_str().unwrap(), m["platform"]["architecture"].as_str().unwrap())).collect();
            assert_eq!(platforms, image.platforms, "{}:{} lists its platforms in the plan's order", r.image, image.tag);
        }
    }
    assert!(indexes >= 1, "the plan has a multi-platform image");

    // The example repositories clone with their team's token, and with nothing else; pushes
    // are refused: the token is a read-only deploy token.
    let clone = tmp.path().join("clone");
    let url = format!("{}storefront/storefront-web.git", env.git.base);
    let auth = |team: &str| {
        let token = env.git.tokens[team].expose();
        format!("http.extraHeader=Authorization: Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{team}:{token}")))
    };
    let (ok, out) = git(&["clone", "--quiet", &url, clone.to_str().unwrap()]);
    assert!(!ok, "no token, no clone: {out}");
    let (ok, out) = git(&["-c", &auth("data-platform"), "clone", "--quiet", &url, clone.to_str().unwrap()]);
    assert!(!ok && out.contains("403"), "another team's token: {out}");
    let (ok, out) = git(&["-c", &auth("storefront"), "clone", "--quiet", &url, clone.to_str().unwrap()]);
    assert!(ok, "git clone {url} with the storefront token: {out}");
    assert!(clone.join("docker/Dockerfile").is_file());
    let c = clone.to_str().unwrap();
    std::fs::write(clone.join("CHANGELOG.md"), "v1.3.0\n").unwrap();
    assert!(git(&["-C", c, "add", "CHANGELOG.md"]).0);
    let (ok, out) = git(&["-C", c, "-c", "user.name=Test", "-c", "user.email=t@example.com", "commit", "--quiet", "-m", "Changelog"]);
    assert!(ok, "{out}");
    let (ok, out) = git(&["-C", c, "-c", &auth("storefront"), "push", "--quiet", "origin", "main"]);
    assert!(!ok && out.contains("403"), "the team token may not push: {out}");

    // Registered as the teams' credentials, each checked readable and read-only.
    let settings = Config::load_over(env.settings(), None, Vec::new()).expect("the generated settings are valid");
    let builds = settings.builds.clone();
    let app = support::spawn_app_with(support::Backend::Sqlite, support::Options { configure: Some(Box::new(move |c| c.builds = builds)), ..Default::default() }).await;
    env.register_credentials(&app.state).await;
    for team in plan.teams() {
        let info = nova::secrets::credentials::info(app.state.secrets.as_ref(), &team, nova::demo::CREDENTIAL_NAME).await.expect("the team's demo credential is registered");
        let urls: Vec<String> = plan.repository_urls(&team).iter().map(|u| u.trim_end_matches(".git").to_string()).collect();
        assert_eq!(info.repositories, urls, "{team}: the catalog URLs, normalised");
        assert!(!info.checks.is_empty() && info.checks.iter().all(|c| c.readable && c.read_only == Some(true)), "{team}: {:?}", info.checks);
    }
    env.register_credentials(&app.state).await;
    let rotated = nova::secrets::credentials::info(app.state.secrets.as_ref(), "storefront", nova::demo::CREDENTIAL_NAME).await.unwrap();
    assert!(rotated.rotated_at_ms.is_some(), "a second registration rotates: {rotated:?}");

    // The seeded images become artifacts to promote, once each, by their registry digest.
    env.record_artifacts(&app.state).await;
    env.record_artifacts(&app.state).await;
    let artifacts = nova::release::artifacts::ArtifactStore::new(app.state.db.clone());
    let web = artifacts.list("component:default/storefront-web", 50).await.unwrap();
    let mut seeded: Vec<String> = web.iter().flat_map(|a| a.tags.clone()).collect();
    seeded.sort();
    assert_eq!(seeded, ["v1.0.0", "v1.1.0", "v1.2.0"], "one artifact per seeded image, recorded once");
    let head = client.head(format!("http://{}/v2/storefront/storefront-web/manifests/v1.2.0", env.registry_host)).header("accept", ACCEPT).send().await.unwrap();
    let v120 = web.iter().find(|a| a.tags == ["v1.2.0"]).unwrap();
    assert_eq!(v120.repository, "demo/storefront/storefront-web");
    assert_eq!(v120.digest, head.headers()["docker-content-digest"].to_str().unwrap(), "the multi-platform tag's artifact is its index, by digest");
    assert!(v120.git_ref.is_none() && v120.git_revision.as_deref().is_some_and(|r| r.len() == 40), "{v120:?}");

    // The GitOps repository (read and written by path): kustomize overlays per environment,
    // the newest image in dev.
    let gitops = tmp.path().join("gitops");
    let (ok, out) = git(&["clone", "--quiet", env.gitops_path.to_str().unwrap(), gitops.to_str().unwrap()]);
    assert!(ok, "{out}");
    let overlay = |e: &str| std::fs::read_to_string(gitops.join(format!("apps/storefront-web/overlays/{e}/kustomization.yaml"))).unwrap();
    assert!(overlay("dev").contains("newTag: v1.2.0") && overlay("staging").contains("newTag: v1.1.0") && overlay("production").contains("newTag: v1.0.0"));
    assert!(overlay("dev").contains("- ../../base") && gitops.join("apps/storefront-web/base/deployment.yaml").is_file());

    // The generated settings point Nova at the registry and the git server.
    let config = Config::load_over(env.settings(), None, Vec::new()).expect("the generated settings are valid");
    assert!(config.registries.contains_key("demo"));
    assert_eq!(config.builds.insecure_registries, [env.registry_host.clone()]);
    assert_eq!(config.builds.clone_url("https://git.example.com/storefront/storefront-web.git"), url);
    // The environments waiting for promotion: dev -> staging -> production on the GitOps repository.
    let envs: toml::Table = env.environments_toml().parse().expect("the environments are TOML");
    let envs = envs["environments"].as_table().unwrap();
    assert_eq!(envs.keys().collect::<Vec<_>>(), ["dev", "production", "staging"]);
    assert_eq!(envs["production"]["gates"]["approvals"].as_integer(), Some(2));
    let repository = envs["staging"]["gitops"]["repository"].as_str().unwrap();
    let (ok, out) = git(&["ls-remote", repository, "main"]);
    assert!(ok && out.contains("refs/heads/main"), "{repository}: {out}");

    // Stopping stops every child; a second start reuses the data and seeds nothing.
    let host = env.registry_host.clone();
    let pid: i32 = std::fs::read_to_string(options.dir.join("run/registry.pid")).unwrap().trim().parse().unwrap();
    env.stop().await;
    assert!(!Path::new(&format!("/proc/{pid}")).exists() || std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z ")), "the registry (PID {pid}) was stopped");
    assert!(tokio::net::TcpStream::connect(&host).await.is_err(), "nothing listens on {host} any more");
    assert!(!options.dir.join("run/registry.pid").exists());

    let started = Instant::now();
    let env = DemoEnvironment::start(&options).await.expect("the demo environment starts again");
    eprintln!("second start: {:.1}s", started.elapsed().as_secs_f64());
    assert_eq!(env.seeded, Seeded::default(), "nothing is seeded twice");
    assert!(tags(&client, &env.registry_host, "storefront/storefront-web").await.contains(&"v1.2.0".to_string()));
    env.stop().await;
}
