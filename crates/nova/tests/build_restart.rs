//! A local build survives `nova serve` being killed with SIGKILL in the middle of it: after a
//! restart on the same database the build is run again (its lease expired), reaches one final
//! state, pushes one image and stays one build — no duplicate, no second final state.

mod support;

use std::process::Command;

use nova_domain::EntityRef;
use serde_json::{Value, json};
use support::registry::{Auth, TestRegistry};
use support::*;

fn git(dir: &std::path::Path, args: &[&str]) {
    let ok = Command::new("git").arg("-C").arg(dir).args(["-c", "user.name=t", "-c", "user.email=t@example.com"]).args(args).status().unwrap().success();
    assert!(ok, "git {args:?}");
}

async fn get(client: &reqwest::Client, url: &str, token: &str) -> Option<Value> {
    let r = client.get(url).bearer_auth(token).send().await.ok()?;
    if r.status() != 200 {
        return None;
    }
    r.json().await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_build_finishes_once_after_the_server_is_killed_mid_build() {
    if require("buildah", on_path("buildah"), "apt-get install buildah").is_none() || require("git", on_path("git"), "apt-get install git").is_none() {
        return;
    }
    let Some(registry) = TestRegistry::start(Auth::Anonymous).await else { return };
    let host = registry.url.trim_start_matches("http://").to_string();
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    write_file(&repo, "Dockerfile", "FROM scratch\nCOPY hello.txt /hello.txt\n");
    write_file(&repo, "hello.txt", "hello\n");
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "app"]);
    // The real buildah, four seconds late to build: time to kill the server mid-build.
    let builder = write_file(dir.path(), "slow-buildah", "#!/bin/sh\nfor a in \"$@\"; do if [ \"$a\" = build ]; then sleep 4; fi; done\nexec buildah \"$@\"\n");
    std::fs::set_permissions(&builder, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let catalog = write_file(
        dir.path(),
        "catalog.yaml",
        &format!(
            "apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata: {{ name: team-a }}\nspec: {{ type: team, children: [] }}\n---\napiVersion: backstage.io/v1alpha1\nkind: User\nmetadata: {{ name: alice }}\nspec: {{ memberOf: [team-a] }}\n---\napiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: svc\n  annotations:\n    nova.dev/git-repository: {}\n    nova.dev/image-repository: {host}/team-a/svc\nspec: {{ type: service, lifecycle: production, owner: team-a }}\n",
            repo.display()
        ),
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let database = format!("sqlite://{}/nova.db", dir.path().display());
    let config = write_file(
        dir.path(),
        "nova.toml",
        &format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"{d}/data\"\n\n[database]\nurl = \"{database}\"\n\n[catalog]\nlocations = [\"{c}\"]\n\n[secrets]\ntype = \"file\"\npath = \"{d}/secrets.enc\"\n\n[jobs]\nlease = \"2s\"\npoll_interval = \"100ms\"\n\n[builds]\nbuilder = \"{b}\"\ninsecure_registries = [\"{host}\"]\n",
            d = dir.path().display(),
            c = catalog.display(),
            b = builder.display()
        ),
    );
    let db = nova::storage::Db::connect(&database, 2).await.unwrap();
    db.migrate().await.unwrap();
    let token = nova::auth::TokenStore::new(db.clone()).create(&EntityRef::new("user", "default", "alice"), "test", None, true).await.unwrap().0.expose().clone();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();

    let first = support::serve::Served::start(&config, port).await;
    wait_for("the component in the first server's catalog", 30, async || get(&client, &format!("{base}/api/v1/components/svc/builds"), &token).await).await;
    let created = client.post(format!("{base}/api/v1/components/svc/builds")).bearer_auth(&token).json(&json!({ "gitRef": "main", "dockerfile": "Dockerfile", "tag": "v1" })).send().await.unwrap();
    assert_eq!(created.status(), 201);
    let id = created.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let log_url = format!("{base}/api/v1/builds/{id}/log");
    wait_for("the build step", 60, async || {
        let log = client.get(&log_url).bearer_auth(&token).send().await.ok()?.text().await.ok()?;
        log.contains("[nova] build\n").then_some(())
    })
    .await;
    first.kill(); // SIGKILL, mid-build

    let second = support::serve::Served::start(&config, port).await;
    let done = wait_for("the build's final state after the restart", 180, async || {
        let b = get(&client, &format!("{base}/api/v1/builds/{id}"), &token).await?;
        b["finishedAt"].is_i64().then_some(b)
    })
    .await;
    let log = client.get(&log_url).bearer_auth(&token).send().await.unwrap().text().await.unwrap();
    let builds = get(&client, &format!("{base}/api/v1/components/svc/builds"), &token).await.unwrap();
    second.stop();

    assert_eq!(done["state"], "succeeded", "{done}\n{log}");
    assert_eq!(builds.as_array().unwrap().len(), 1, "still one build: {builds}");
    assert_eq!(log.matches("running it again").count(), 1, "run again once: {log}");
    assert_eq!(log.matches("[nova] pushed").count(), 1, "pushed once: {log}");
    let manifest = client
        .get(format!("{}/v2/team-a/svc/manifests/v1", registry.url))
        .header("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json")
        .send()
        .await
        .unwrap();
    assert_eq!(manifest.headers()["docker-content-digest"].to_str().unwrap(), done["digest"].as_str().unwrap());
    let jobs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE kind = 'build.run'").fetch_one(db.pool()).await.unwrap();
    assert_eq!(jobs, 1, "one job for the build");
}
