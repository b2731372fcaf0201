//! Several replicas: three `nova serve` processes on one PostgreSQL database. Background jobs
//! are leased, so one never runs on two replicas at once (the side effects are counted: 50
//! Jenkins builds started once each, a URL location never read by two replicas at the same
//! time); a flag changed on one replica is in effect on the others within 2 s (the bound is the
//! assertion); and a replica killed while holding a job's lease hands the job to another once
//! the lease expires.
//!
//! Jenkins is the documented-protocol double of tests/support (no Jenkins runs here).

mod support;
#[path = "support/jenkins_double.rs"]
mod jenkins_double;

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use jenkins_double::{JenkinsDouble, NOVA_PARAMETERS, Options as JenkinsOptions, Perm};
use serde_json::{Value, json};
use support::faults::WatchedLocation;
use support::serve::{self, Served};
use support::*;

const JOB: &str = "team-a/svc-build";
const DIGEST: &str = "sha256:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945";
const BUILDS: usize = 50;
const LEASE: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_share_jobs_flags_and_take_over_a_dead_replicas_lease() {
    if require_postgres().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let database = fresh_database(Backend::Postgres, dir.path()).await;
    let jenkins = JenkinsDouble::start(JenkinsOptions::default()).await;
    jenkins.add_job(JOB, &NOVA_PARAMETERS, &[]);
    jenkins.add_user("nova", "api-token-1", false, Perm::Build);
    let jenkins_token = write_file(dir.path(), "jenkins-token", "api-token-1\n");
    let location = WatchedLocation::start().await;
    let local = write_file(dir.path(), "catalog.yaml", serve::JENKINS_CATALOG);
    let extra = serve::jenkins_settings(&[local.display().to_string(), location.url.clone()], LEASE, &jenkins.url, &jenkins_token);
    let alice = serve::token(&database, "user:default/alice").await;
    let admin = serve::token(&database, ADMIN_USER).await;
    let mut replicas = Vec::new();
    for i in 0..3 {
        let port = support::faults::free_port();
        let config = serve::config(dir.path(), &format!("replica-{i}"), port, &database, &extra);
        replicas.push(Served::start(&config, port).await);
    }
    let client = reqwest::Client::new();
    for r in &replicas {
        let url = r.url("/api/v1/components/svc/builds");
        wait_for("the component on every replica", 30, async || (client.get(&url).bearer_auth(&alice).send().await.ok()?.status() == 200).then_some(())).await;
    }
    // Each replica reads every location once as it starts (not as a job); from here on, reads
    // are the refresh job's.
    location.max_overlap.store(0, Ordering::SeqCst);
    let reads_at_start = location.reads.load(Ordering::SeqCst);

    // 50 builds requested round-robin across the replicas; each is started in Jenkins once.
    let requests = (0..BUILDS).map(|i| {
        let (client, url, token) = (client.clone(), replicas[i % 3].url("/api/v1/components/svc/builds"), alice.clone());
        async move {
            let r = client.post(url).bearer_auth(token).json(&json!({ "gitRef": "main", "dockerfile": "Dockerfile", "tag": format!("v{i}") })).send().await.unwrap();
            assert_eq!(r.status(), 201, "build {i}");
            r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string()
        }
    });
    let ids: BTreeSet<String> = futures_util::future::join_all(requests).await.into_iter().collect();
    let list_url = replicas[0].url("/api/v1/components/svc/builds?limit=500");
    let all = wait_for("every build to finish", 180, async || {
        jenkins.release_queue();
        for b in jenkins.builds(JOB).iter().filter(|b| b.result.is_none()) {
            jenkins.finish(JOB, b.number, "SUCCESS", Some(&format!("pushed {DIGEST}")));
        }
        let list: Vec<Value> = client.get(&list_url).bearer_auth(&alice).send().await.ok()?.json().await.ok()?;
        (list.len() == BUILDS && list.iter().all(|b| b["finishedAt"].is_i64())).then_some(list)
    })
    .await;
    assert!(all.iter().all(|b| b["state"] == "succeeded"), "{all:#?}");
    let started: Vec<String> = jenkins.builds(JOB).iter().map(|b| b.params.iter().find(|p| p.0 == "NOVA_BUILD_ID").unwrap().1.clone()).collect();
    assert_eq!(started.len(), BUILDS, "each build started once, not once per replica");
    assert_eq!(started.into_iter().collect::<BTreeSet<_>>(), ids);
    let triggers = jenkins.requests().iter().filter(|r| r.starts_with("POST") && r.contains("buildWithParameters")).count();
    assert_eq!(triggers, BUILDS, "one trigger per build");

    // The URL location's refresh job ran all along on the three replicas, never twice at once.
    wait_for("five refreshes of the location", 60, async || (location.reads.load(Ordering::SeqCst) >= reads_at_start + 5).then_some(())).await;
    assert_eq!(location.max_overlap.load(Ordering::SeqCst), 1, "two replicas read the location at the same time");

    // A flag switched off on one replica is off on the others within 2 s.
    let changed = client.put(replicas[0].url("/api/v1/flags/registry.image-view")).bearer_auth(&admin).json(&json!({ "enabled": false })).send().await.unwrap();
    assert_eq!(changed.status(), 200, "{}", changed.text().await.unwrap());
    let at = Instant::now();
    for r in &replicas[1..] {
        let url = r.url("/api/v1/flags/registry.image-view");
        wait_for("the flag change on another replica", 5, async || {
            let flag: Value = client.get(&url).bearer_auth(&admin).send().await.ok()?.json().await.ok()?;
            (flag["rollout"]["enabled"] == false).then_some(())
        })
        .await;
    }
    let seen = at.elapsed();
    assert!(seen <= Duration::from_secs(2), "the change reached every replica in {seen:?}, more than 2 s");

    // The replica holding the location's refresh job dies mid-read; another takes it over once
    // the lease has expired, and the refresh completes.
    location.hang.store(true, Ordering::SeqCst);
    wait_for("a refresh to hang", 30, async || (location.hung.load(Ordering::SeqCst) > 0).then_some(())).await;
    let db = nova::storage::Db::connect(&database, 2).await.unwrap();
    // The URL location's refresh job (its dedupe key names the location).
    let owner_query = "SELECT j.lease_owner FROM jobs j JOIN catalog_locations l ON j.dedupe_key = 'catalog.refresh:' || l.id WHERE l.type = 'url' AND j.state = 'running'";
    let owner: String = wait_for("the hung job's lease", 10, async || sqlx::query_scalar::<_, Option<String>>(db.sql(owner_query)).fetch_optional(db.pool()).await.unwrap().flatten()).await;
    let pid: u32 = owner.split('-').next().unwrap().parse().unwrap();
    let holder = replicas.iter().position(|r| r.pid() == pid).expect("the lease names a replica's process");
    location.hang.store(false, Ordering::SeqCst);
    let killed_at = Instant::now();
    replicas.remove(holder).kill();
    let taker = wait_for("another replica to take the job over", 30, async || {
        let owner = sqlx::query_scalar::<_, Option<String>>(db.sql(owner_query)).fetch_optional(db.pool()).await.ok().flatten().flatten()?;
        (!owner.starts_with(&format!("{pid}-"))).then_some(owner)
    })
    .await;
    let waited = killed_at.elapsed();
    assert!(replicas.iter().any(|r| taker.starts_with(&format!("{}-", r.pid()))), "taken by a live replica: {taker}");
    let reads_before = location.reads.load(Ordering::SeqCst);
    wait_for("the location to be read again", 30, async || (location.reads.load(Ordering::SeqCst) > reads_before).then_some(())).await;
    eprintln!("lease {LEASE:?}: the job was taken over {waited:?} after the kill; the flag change reached the other replicas in {seen:?}");
    db.pool().close().await;
}
