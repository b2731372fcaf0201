//! The build lane's benchmark (bench/builds/run.sh runs it; ignored in normal test runs):
//! against the Jenkins double, through Nova's HTTP API,
//! - time from `POST .../builds` to Jenkins being asked (`buildWithParameters`),
//! - time from a status change in Jenkins to it being visible through `GET /api/v1/builds/{id}`,
//! - 200 concurrent build requests: every one started in Jenkins exactly once, none lost.
//!
//! Prints Markdown for docs/BENCHMARKS.md.

mod support;
#[path = "support/jenkins_double.rs"]
mod jenkins_double;

use std::collections::HashMap;
use std::io::Write as _;
use std::time::{Duration, Instant};

use jenkins_double::{JenkinsDouble, NOVA_PARAMETERS, Options as JenkinsOptions, Perm};
use nova_domain::EntityRef;
use serde_json::{Value, json};
use support::*;

const JOB: &str = "team-a/svc-build";
const CONCURRENT: usize = 200;
const SAMPLES: usize = 20;

fn quantiles(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.95), v[v.len() - 1])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: bench/builds/run.sh"]
async fn build_lane_benchmark() {
    let poll: u64 = std::env::var("BENCH_POLL_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(500);
    let d = JenkinsDouble::start(JenkinsOptions { queue_delay: Some(Duration::ZERO), ..Default::default() }).await;
    d.add_job(JOB, &NOVA_PARAMETERS, &[]);
    d.add_user("nova", "api-token-1", false, Perm::Build);
    let mut token_file = tempfile::NamedTempFile::new().unwrap();
    writeln!(token_file, "api-token-1").unwrap();
    let backends = format!("[ci]\ntype = \"jenkins\"\nurl = \"{}\"\nuser = \"nova\"\ntoken = {{ file = \"{}\" }}\n", d.url, token_file.path().display());
    let backends: std::collections::BTreeMap<String, nova::builds::backend::BuildBackendConfig> = toml::from_str(&backends).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let catalog = "apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata: { name: team-a }\nspec: { type: team, children: [] }\n---\napiVersion: backstage.io/v1alpha1\nkind: User\nmetadata: { name: alice }\nspec: { memberOf: [team-a] }\n---\napiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: svc\n  annotations:\n    nova.dev/git-repository: https://git.example.com/team-a/svc.git\n    nova.dev/image-repository: registry.example.com/team-a/svc\n    nova.dev/build-pipeline: \"jenkins:team-a/svc-build\"\nspec: { type: service, lifecycle: production, owner: team-a }\n";
    let file = write_file(dir.path(), "catalog.yaml", catalog);
    let configure = move |c: &mut nova::config::Config| {
        c.build_backends = backends;
        c.builds.poll_interval = Duration::from_millis(poll);
        c.builds.max_active_per_team = 0;
        c.builds.max_requests_per_user = 0;
        c.jobs.workers = 8;
    };
    let app = spawn_app_with(Backend::Sqlite, Options { locations: vec![file.display().to_string()], dir: Some(dir), configure: Some(Box::new(configure)), ..Default::default() }).await;
    let token = app.state.auth.tokens.create(&EntityRef::new("user", "default", "alice"), "bench", None, true).await.unwrap().0.expose().clone();
    let post = |tag: String, key: String| {
        let req = app.client.post(app.url("/api/v1/components/svc/builds")).bearer_auth(&token).header("Idempotency-Key", key).json(&json!({ "gitRef": "main", "dockerfile": "Dockerfile", "tag": tag }));
        async move {
            let r = req.send().await.unwrap();
            assert!(r.status().is_success(), "{}", r.status());
            r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string()
        }
    };
    let started = || d.requests().iter().filter(|r| r.contains("buildWithParameters")).count();

    // POST → Jenkins asked, one build at a time.
    let mut to_backend = Vec::new();
    let mut to_api = Vec::new();
    for i in 0..SAMPLES {
        let before = started();
        let t0 = Instant::now();
        let id = post(format!("seq-{i}"), format!("seq-{i}")).await;
        while started() == before {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        to_backend.push(t0.elapsed().as_secs_f64() * 1000.0);
        // Wait until Nova knows it runs, then change its status in Jenkins and time the API.
        let number = loop {
            if let Some(b) = d.builds(JOB).iter().find(|b| b.params.iter().any(|p| p.0 == "NOVA_BUILD_ID" && p.1 == id)) {
                break b.number;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        loop {
            if app.get_json(&format!("/api/v1/builds/{id}"), 200).await["state"] == "running" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let t1 = Instant::now();
        d.finish(JOB, number, "SUCCESS", None);
        loop {
            if app.get_json(&format!("/api/v1/builds/{id}"), 200).await["state"] == "succeeded" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        to_api.push(t1.elapsed().as_secs_f64() * 1000.0);
    }

    // 200 at once, each key sent twice: 200 builds, each started in Jenkins exactly once.
    let t0 = Instant::now();
    let requests = (0..CONCURRENT * 2).map(|i| post(format!("c-{}", i % CONCURRENT), format!("c-{}", i % CONCURRENT)));
    let ids: Vec<String> = futures_util::future::join_all(requests).await;
    let accepted = t0.elapsed();
    let distinct: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), CONCURRENT, "the same key gave the same build");
    let deadline = Instant::now() + Duration::from_secs(300);
    let per_id = loop {
        let mut per_id: HashMap<String, usize> = HashMap::new();
        for b in d.builds(JOB) {
            if let Some(p) = b.params.iter().find(|p| p.0 == "NOVA_BUILD_ID") {
                *per_id.entry(p.1.clone()).or_default() += 1;
            }
        }
        if distinct.iter().all(|id| per_id.contains_key(*id)) || Instant::now() > deadline {
            break per_id;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let all_started = t0.elapsed();
    let lost = distinct.iter().filter(|id| !per_id.contains_key(**id)).count();
    let duplicated = distinct.iter().filter(|id| per_id.get(**id).copied().unwrap_or(0) > 1).count();
    for b in d.builds(JOB).iter().filter(|b| b.result.is_none()) {
        d.finish(JOB, b.number, "SUCCESS", None);
    }
    let finished = loop {
        let list = app.get_json("/api/v1/components/svc/builds?limit=500", 200).await;
        let done = list.as_array().unwrap().iter().filter(|b| b["state"] == "succeeded").count();
        if done == CONCURRENT + SAMPLES || Instant::now() > deadline {
            break done;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let all_done = t0.elapsed();

    let (b50, b95, bmax) = quantiles(to_backend);
    let (a50, a95, amax) = quantiles(to_api);
    println!("\n| measure (builds.poll_interval = {poll} ms, Jenkins double, SQLite) | median | p95 | max |");
    println!("|---|---|---|---|");
    println!("| POST → Jenkins `buildWithParameters` ({SAMPLES} sequential) | {b50:.1} ms | {b95:.1} ms | {bmax:.1} ms |");
    println!("| Jenkins result → visible in `GET /api/v1/builds/{{id}}` ({SAMPLES}) | {a50:.0} ms | {a95:.0} ms | {amax:.0} ms |");
    println!(
        "\n{CONCURRENT} concurrent requests (each key twice, {} requests): accepted in {:.2} s, all started in Jenkins after {:.2} s, all succeeded in Nova after {:.2} s; lost {lost}, started twice {duplicated}, succeeded {}/{}.\n",
        CONCURRENT * 2,
        accepted.as_secs_f64(),
        all_started.as_secs_f64(),
        all_done.as_secs_f64(),
        finished - SAMPLES,
        CONCURRENT
    );
    assert_eq!((lost, duplicated), (0, 0));
    assert_eq!(finished, CONCURRENT + SAMPLES);
}
