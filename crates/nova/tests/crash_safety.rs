//! Crash safety: `nova serve` is killed with SIGKILL while everything is in flight at once — a
//! catalog refresh stuck reading a slow URL location, 50 builds at every stage of their life in
//! Jenkins, and a burst of audited writes — then restarted on the same data, on SQLite and on
//! PostgreSQL. After the restart no build is lost or started twice, each reaches one final
//! state, the catalog converges, every acknowledged write is there and `nova audit verify`
//! passes. A promotion killed between its GitOps commit and its push (the push held by a slow
//! pre-receive hook on the git server) completes exactly once after the restart. (A SIGKILL
//! mid-build of the local runner is build_restart.rs.)
//!
//! Jenkins is the documented-protocol double of tests/support (no Jenkins runs here); it lives
//! in the test process, so it outlives the killed server, as a real Jenkins would.

mod support;
#[path = "support/jenkins_double.rs"]
mod jenkins_double;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use jenkins_double::{JenkinsDouble, NOVA_PARAMETERS, Options as JenkinsOptions, Perm};
use serde_json::{Value, json};
use support::faults::WatchedLocation;
use support::serve::{self, Served};
use support::*;

const JOB: &str = "team-a/svc-build";
const DIGEST: &str = "sha256:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945";
const BUILDS: usize = 50;
const BURST: usize = 100;

async fn count(db: &nova::storage::Db, query: &'static str) -> i64 {
    sqlx::query_scalar(db.sql(query)).fetch_one(db.pool()).await.unwrap()
}

on_both_backends! {
    async fn killed_mid_refresh_mid_builds_and_mid_audit_burst_nothing_is_lost_or_doubled(backend: Backend) {
        let dir = tempfile::tempdir().unwrap();
        let database = fresh_database(backend, dir.path()).await;
        let jenkins = JenkinsDouble::start(JenkinsOptions::default()).await;
        jenkins.add_job(JOB, &NOVA_PARAMETERS, &[]);
        jenkins.add_user("nova", "api-token-1", false, Perm::Build);
        let jenkins_token = write_file(dir.path(), "jenkins-token", "api-token-1\n");
        let url_location = WatchedLocation::start().await;
        let local = write_file(dir.path(), "catalog.yaml", serve::JENKINS_CATALOG);
        let port = support::faults::free_port();
        let settings = serve::jenkins_settings(&[local.display().to_string(), url_location.url.clone()], Duration::from_secs(2), &jenkins.url, &jenkins_token);
        let config = serve::config(dir.path(), "nova", port, &database, &settings);
        let alice = serve::token(&database, "user:default/alice").await;
        let client = reqwest::Client::new();

        let first = Served::start(&config, port).await;
        let builds_url = first.url("/api/v1/components/svc/builds");
        wait_for("the component in the catalog", 30, async || (client.get(&builds_url).bearer_auth(&alice).send().await.ok()?.status() == 200).then_some(())).await;
        // 50 builds, requested at once: each is stored before it is answered.
        let requests = (0..BUILDS).map(|i| {
            let (client, url, token) = (client.clone(), builds_url.clone(), alice.clone());
            async move {
                let r = client.post(url).bearer_auth(token).json(&json!({ "gitRef": "main", "dockerfile": "Dockerfile", "tag": format!("v{i}") })).send().await.unwrap();
                assert_eq!(r.status(), 201, "build {i}");
                r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string()
            }
        });
        let ids: BTreeSet<String> = futures_util::future::join_all(requests).await.into_iter().collect();
        assert_eq!(ids.len(), BUILDS);
        // Some reach Jenkins' queue, some of those become running builds, some are not started.
        wait_for("builds to reach Jenkins", 60, async || (jenkins.queue_items() >= 10).then_some(())).await;
        jenkins.release_queue();
        // The next catalog refresh hangs on the URL location.
        url_location.hang.store(true, Ordering::SeqCst);
        wait_for("a catalog refresh in flight", 30, async || (url_location.hung.load(Ordering::SeqCst) > 0).then_some(())).await;
        // A burst of audited writes (API tokens, each `auth.token.create`), killed halfway.
        let acked = Arc::new(AtomicUsize::new(0));
        let burst: Vec<_> = (0..BURST)
            .map(|i| {
                let (client, url, token, acked) = (client.clone(), first.url("/api/v1/tokens"), alice.clone(), acked.clone());
                tokio::spawn(async move {
                    if let Ok(r) = client.post(url).bearer_auth(token).json(&json!({ "name": format!("burst-{i}") })).send().await
                        && r.status() == 201
                    {
                        acked.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        wait_for("part of the burst to be answered", 60, async || (acked.load(Ordering::SeqCst) >= 10).then_some(())).await;
        first.kill();
        for t in burst {
            let _ = t.await;
        }
        let acked = acked.load(Ordering::SeqCst);
        let in_jenkins_at_kill = jenkins.queue_items();

        url_location.hang.store(false, Ordering::SeqCst);
        let second = Served::start(&config, port).await;
        // Jenkins finishes whatever it was given; Nova starts the rest and follows all of them.
        let all = wait_for("every build to reach a final state", 180, async || {
            jenkins.release_queue();
            for b in jenkins.builds(JOB).iter().filter(|b| b.result.is_none()) {
                jenkins.finish(JOB, b.number, "SUCCESS", Some(&format!("pushed {DIGEST}")));
            }
            let r = client.get(second.url("/api/v1/components/svc/builds?limit=500")).bearer_auth(&alice).send().await.ok()?;
            let list: Vec<Value> = r.json().await.ok()?;
            list.iter().all(|b| b["finishedAt"].is_i64()).then_some(list)
        })
        .await;
        let nova_ids: BTreeSet<String> = all.iter().map(|b| b["id"].as_str().unwrap().to_string()).collect();
        assert_eq!(nova_ids, ids, "the same 50 builds, none lost, none added");
        let states: Vec<&str> = all.iter().map(|b| b["state"].as_str().unwrap()).collect();
        assert!(states.iter().all(|s| *s == "succeeded"), "{states:?}\n{}", second.log_text());
        let started: Vec<String> = jenkins.builds(JOB).iter().map(|b| b.params.iter().find(|p| p.0 == "NOVA_BUILD_ID").unwrap().1.clone()).collect();
        assert_eq!(started.len(), BUILDS, "each build started once in Jenkins ({in_jenkins_at_kill} were there at the kill)");
        assert_eq!(started.iter().cloned().collect::<BTreeSet<_>>(), ids, "one Jenkins build per Nova build");

        // The catalog converged: the URL location's entity is back from a completed read.
        wait_for("the URL location's entity", 30, async || {
            let r = client.get(second.url("/api/catalog/entities/by-name/component/default/from-url")).send().await.ok()?;
            (r.status() == 200).then_some(())
        })
        .await;
        let locations = client.get(second.url("/api/catalog/locations")).send().await.unwrap().json::<Value>().await.unwrap();
        let db = nova::storage::Db::connect(&database, 2).await.unwrap();
        assert_eq!(count(&db, "SELECT COUNT(*) FROM jobs WHERE kind = 'catalog.refresh'").await, 2, "one refresh job per location: {locations}");
        assert_eq!(count(&db, "SELECT COUNT(*) FROM jobs WHERE kind = 'build.track'").await, BUILDS as i64, "one tracking job per build");
        assert_eq!(count(&db, "SELECT COUNT(*) FROM jobs WHERE kind = 'build.track' AND state <> 'done'").await, 0);

        // Every acknowledged write is kept and audited; the chain is intact.
        let created = count(&db, "SELECT COUNT(*) FROM audit_events WHERE action = 'auth.token.create'").await as usize;
        assert!((acked..=BURST).contains(&created), "{acked} acknowledged, {created} audited of {BURST}");
        let tokens = count(&db, "SELECT COUNT(*) FROM api_tokens WHERE name LIKE 'burst-%'").await as usize;
        assert!((acked..=BURST).contains(&tokens), "{acked} acknowledged, {tokens} stored");
        assert_eq!(tokens, created, "every stored token is audited: the two are one transaction");
        eprintln!("{backend:?}: killed with {acked} of {BURST} writes acknowledged ({created} audited, {tokens} stored) and {in_jenkins_at_kill} of {BUILDS} builds in Jenkins");
        db.pool().close().await;
        second.stop();
        let (ok, out) = serve::nova(&["audit", "verify", "--config", config.to_str().unwrap()]);
        assert!(ok && out.contains("audit chain intact"), "{out}");
    }
}

const KUSTOMIZATION: &str = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- ../base\nimages:\n- name: shop\n  newTag: old\n";

fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git").arg("-C").arg(dir).args(args).output().unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

on_both_backends! {
    async fn a_promotion_killed_between_commit_and_push_completes_exactly_once(backend: Backend) {
        let Some(server) = support::faults::OwnGitServer::start().await else { return };
        let repo = server.publish("gitops", &[("apps/shop/dev/kustomization.yaml", KUSTOMIZATION)]);
        let bare = server.root.join("gitops.git");
        git(&bare, &["config", "http.receivepack", "true"]);
        let dir = tempfile::tempdir().unwrap();
        // The first push waits 8 s in the server's pre-receive hook: Nova has committed and is
        // pushing when it is killed. Its orphaned `git push` finishes later, as it would.
        let marks = dir.path().display().to_string();
        let hook = write_file(&bare, "hooks/pre-receive", &format!("#!/bin/sh\ncat >/dev/null\nif [ ! -e {marks}/slow ]; then touch {marks}/slow; sleep 8; touch {marks}/slow-done; fi\nexit 0\n"));
        std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();

        let database = fresh_database(backend, dir.path()).await;
        let catalog = write_file(dir.path(), "catalog.yaml", &format!("apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata: {{name: shop-team}}\nspec: {{type: team, children: []}}\n---\n\
            apiVersion: backstage.io/v1alpha1\nkind: User\nmetadata: {{name: rita}}\nspec: {{memberOf: [shop-team]}}\n---\n{}", component_yaml("shop", "shop-team")));
        let port = support::faults::free_port();
        let config = serve::config(dir.path(), "nova", port, &database, &format!(
            "[catalog]\nlocations = [\"{}\"]\n\n[jobs]\nlease = \"2s\"\npoll_interval = \"100ms\"\n\n\
             [environments.dev]\norder = 1\n[environments.dev.gitops]\nrepository = \"{repo}\"\npath = \"apps/{{component}}/dev/kustomization.yaml\"\nimage_name = \"shop\"\n",
            catalog.display()));
        let rita = serve::token(&database, "user:default/rita").await;
        let digest = format!("sha256:{}", "ab".repeat(32));
        let db = nova::storage::Db::connect(&database, 2).await.unwrap();
        nova::release::artifacts::ArtifactStore::new(db.clone())
            .record(nova::release::artifacts::NewArtifact {
                component_ref: "component:default/shop".into(),
                repository: "registry.example.com/shop/shop".into(),
                digest: nova_domain::Digest::parse(&digest).unwrap(),
                tags: vec!["v1".into()],
                git_ref: Some("main".into()),
                git_revision: None,
                build_id: None,
                source: "intake",
            })
            .await
            .unwrap();
        let client = reqwest::Client::new();

        let first = Served::start(&config, port).await;
        let r = client.post(first.url("/api/v1/components/shop/promotions")).bearer_auth(&rita).json(&json!({ "digest": digest, "environment": "dev" })).send().await.unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
        wait_for("the push to reach the server", 60, async || dir.path().join("slow").exists().then_some(())).await;
        first.kill();

        let second = Served::start(&config, port).await;
        let promotion = wait_for("the promotion to finish", 120, async || {
            let p: Value = client.get(second.url(&format!("/api/v1/promotions/{id}"))).bearer_auth(&rita).send().await.ok()?.json().await.ok()?;
            (!["awaiting_approval", "waiting", "writing"].contains(&p["state"].as_str()?)).then_some(p)
        })
        .await;
        assert_eq!(promotion["state"], "done", "{promotion:#}\n{}", second.log_text());
        // The orphaned push from before the kill has finished too; still one commit.
        wait_for("the first push to finish", 60, async || dir.path().join("slow-done").exists().then_some(())).await;
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        assert_eq!(git(&bare, &["rev-list", "--count", "main"]).trim(), "2", "exactly one promotion commit");
        let file = git(&bare, &["show", "main:apps/shop/dev/kustomization.yaml"]);
        assert!(file.contains(&digest), "{file}");
        assert_eq!(git(&bare, &["rev-parse", "main"]).trim(), promotion["commitSha"].as_str().unwrap());
        let done = count(&db, "SELECT COUNT(*) FROM audit_events WHERE action = 'release.promotion.done'").await;
        let failed = count(&db, "SELECT COUNT(*) FROM audit_events WHERE action = 'release.promotion.failed'").await;
        assert_eq!((done, failed), (1, 0), "one final state, audited once");
        db.pool().close().await;
        second.stop();
        let (ok, out) = serve::nova(&["audit", "verify", "--config", config.to_str().unwrap()]);
        assert!(ok, "{out}");
    }
}
