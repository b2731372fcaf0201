//! The background-job mechanism on SQLite and PostgreSQL: deduplication, retries with backoff,
//! exactly-once execution across two runners, and takeover after a runner dies.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nova::config::JobsConfig;
use nova::jobs::{Job, JobOutcome, JobQueue, JobRunner};
use nova::storage::{Db, now_ms};
use serde::{Deserialize, Serialize};
use support::*;
use tokio_util::sync::CancellationToken;

#[derive(Serialize, Deserialize)]
struct Work {
    n: u32,
}

impl Job for Work {
    const KIND: &'static str = "test.work";
}

fn fast_config() -> JobsConfig {
    JobsConfig {
        workers: 4,
        lease: Duration::from_millis(600),
        poll_interval: Duration::from_millis(20),
        max_attempts: 3,
        retry_base: Duration::from_millis(20),
    }
}

async fn db(backend: Backend) -> (Db, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(backend, dir.path()).await;
    let db = Db::connect(&url, 8).await.unwrap();
    db.migrate().await.unwrap();
    (db, dir)
}

/// A runner that records how often each job ran.
fn counting_runner(queue: &JobQueue, runs: Arc<Mutex<HashMap<u32, u32>>>, delay: Duration) -> JobRunner {
    let mut runner = JobRunner::new(queue.clone());
    runner.register::<Work, _, _>(move |job, _| {
        let runs = runs.clone();
        async move {
            *runs.lock().unwrap().entry(job.n).or_default() += 1;
            tokio::time::sleep(delay).await;
            Ok(JobOutcome::Done)
        }
    });
    runner
}

async fn wait_for(mut f: impl FnMut() -> bool, what: &str) {
    for _ in 0..300 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

on_both_backends! {
    async fn dedupe_key_returns_the_same_job(backend: Backend) {
        let (db, _dir) = db(backend).await;
        let q = JobQueue::new(db.clone(), fast_config());
        let a = q.enqueue(&Work { n: 1 }, Some("k"), now_ms()).await.unwrap();
        let b = q.enqueue(&Work { n: 2 }, Some("k"), now_ms()).await.unwrap();
        assert_eq!(a, b);
        let c = q.enqueue(&Work { n: 3 }, None, now_ms()).await.unwrap();
        assert_ne!(a, c);
        let counts = q.counts().await.unwrap();
        assert_eq!(counts, vec![("test.work".to_string(), "queued".to_string(), 2)]);
    }

    async fn failures_are_retried_then_marked_failed(backend: Backend) {
        let (db, _dir) = db(backend).await;
        let q = JobQueue::new(db, fast_config());
        let attempts = Arc::new(Mutex::new(Vec::new()));
        let mut runner = JobRunner::new(q.clone());
        let seen = attempts.clone();
        runner.register::<Work, _, _>(move |job, meta| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push((job.n, meta.attempt));
                if job.n == 1 && meta.attempt < 2 { Err("transient".to_string()) }
                else if job.n == 2 { Err("permanent".to_string()) }
                else { Ok(JobOutcome::Done) }
            }
        });
        let ok = q.enqueue(&Work { n: 1 }, None, now_ms()).await.unwrap();
        let bad = q.enqueue(&Work { n: 2 }, None, now_ms()).await.unwrap();
        let stop = CancellationToken::new();
        let handle = tokio::spawn(runner.run(stop.clone()));
        for _ in 0..200 {
            let a = q.status(&ok).await.unwrap().unwrap();
            let b = q.status(&bad).await.unwrap().unwrap();
            if a.0 == "done" && b.0 == "failed" {
                assert_eq!(a.1, 2, "succeeded on the second attempt");
                assert_eq!(b.1, 3, "gave up after max_attempts");
                assert_eq!(b.2.as_deref(), Some("permanent"));
                stop.cancel();
                handle.await.unwrap();
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("jobs did not settle: {:?}", attempts.lock().unwrap());
    }

    async fn two_runners_never_run_a_job_twice(backend: Backend) {
        let (db, _dir) = db(backend).await;
        let q1 = JobQueue::new(db.clone(), fast_config());
        let q2 = JobQueue::new(db.clone(), fast_config());
        let runs = Arc::new(Mutex::new(HashMap::new()));
        for n in 0..60 {
            q1.enqueue(&Work { n }, None, now_ms()).await.unwrap();
        }
        let stop = CancellationToken::new();
        let h1 = tokio::spawn(counting_runner(&q1, runs.clone(), Duration::from_millis(5)).run(stop.clone()));
        let h2 = tokio::spawn(counting_runner(&q2, runs.clone(), Duration::from_millis(5)).run(stop.clone()));
        let r = runs.clone();
        wait_for(move || r.lock().unwrap().len() == 60, "all 60 jobs to run").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.cancel();
        let _ = tokio::join!(h1, h2);
        assert!(runs.lock().unwrap().values().all(|&c| c == 1), "a job ran twice: {:?}", runs.lock().unwrap());
        assert_eq!(q1.counts().await.unwrap(), vec![("test.work".to_string(), "done".to_string(), 60)]);
    }

    async fn a_dead_runners_job_is_taken_over_after_its_lease(backend: Backend) {
        let (db, _dir) = db(backend).await;
        let runs = Arc::new(Mutex::new(HashMap::new()));
        let q1 = JobQueue::new(db.clone(), fast_config());
        let id = q1.enqueue(&Work { n: 7 }, None, now_ms()).await.unwrap();
        // Runner 1 lives on its own runtime, claims the job and hangs in it; then the whole
        // runtime is dropped, as if the process had been killed.
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let r1 = counting_runner(&q1, runs.clone(), Duration::from_secs(3600));
        rt.spawn(r1.run(CancellationToken::new()));
        let r = runs.clone();
        wait_for(move || r.lock().unwrap().get(&7) == Some(&1), "runner 1 to claim").await;
        rt.shutdown_background();
        // Runner 2 takes it over once the lease has expired, and completes it.
        let q2 = JobQueue::new(db.clone(), fast_config());
        let stop = CancellationToken::new();
        let h = tokio::spawn(counting_runner(&q2, runs.clone(), Duration::ZERO).run(stop.clone()));
        let mut state = String::new();
        for _ in 0..100 {
            state = q2.status(&id).await.unwrap().unwrap().0;
            if state == "done" { break; }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stop.cancel();
        h.await.unwrap();
        assert_eq!(state, "done");
        assert_eq!(runs.lock().unwrap().get(&7), Some(&2), "ran once on each runner");
    }
}
