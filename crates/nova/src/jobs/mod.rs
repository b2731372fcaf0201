//! Background jobs: typed, idempotent units of work stored in the database and claimed with a
//! lease, so a restart loses nothing and several replicas never run the same job at once.
//!
//! On PostgreSQL a claim is `FOR UPDATE SKIP LOCKED`; on SQLite claims are serialized by the
//! database's single writer (one claimer per process, handlers still run concurrently). A job
//! whose lease expires (its process died) is claimed again. Failures are retried with
//! exponential backoff. Recurring jobs (catalog refresh) reschedule themselves by returning
//! [`JobOutcome::RunAgainAt`] and are keyed by a `dedupe_key` so there is only ever one row.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::Row;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::config::JobsConfig;
use crate::storage::{Backend, Db, StorageError, now_ms};

/// A job payload type. `KIND` names it in the `jobs` table; handlers must be idempotent,
/// because a job whose process dies mid-run is run again.
pub trait Job: Serialize + DeserializeOwned + Send + 'static {
    const KIND: &'static str;
}

/// What a handler reports when it finishes without error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOutcome {
    /// Finished; the row is marked done.
    Done,
    /// Run again at this time (Unix ms): used by recurring and polling jobs.
    RunAgainAt(i64),
}

/// A claimed job as a handler sees it.
#[derive(Debug, Clone)]
pub struct JobMeta {
    pub id: String,
    pub attempt: u32,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
type Handler = Arc<dyn Fn(String, JobMeta) -> BoxFuture<Result<JobOutcome, String>> + Send + Sync>;

/// The queue: enqueue from anywhere; [`JobRunner`] claims and runs.
#[derive(Clone)]
pub struct JobQueue {
    db: Db,
    owner: Arc<str>,
    wake: Arc<Notify>,
    config: JobsConfig,
}

impl JobQueue {
    /// A queue whose claims are marked with a fresh owner id for this process.
    pub fn new(db: Db, config: JobsConfig) -> Self {
        let owner: Arc<str> = format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()).into();
        Self { db, owner, wake: Arc::new(Notify::new()), config }
    }

    /// Adds a job due at `run_at` (Unix ms). With a `dedupe_key`, a second enqueue of the same
    /// key while the first is not done returns the existing job's id instead of adding one.
    pub async fn enqueue<J: Job>(&self, payload: &J, dedupe_key: Option<&str>, run_at: i64) -> Result<String, StorageError> {
        let payload = serde_json::to_string(payload).map_err(|e| StorageError::Corrupt(e.to_string()))?;
        let id = uuid::Uuid::now_v7().to_string();
        let now = now_ms();
        let inserted = sqlx::query(self.db.sql(
            "INSERT INTO jobs (id, kind, dedupe_key, payload, state, attempts, run_at, created_at, updated_at)
             VALUES ($1, $2, $3, $4, 'queued', 0, $5, $6, $6) ON CONFLICT (dedupe_key) DO NOTHING",
        ))
        .bind(&id)
        .bind(J::KIND)
        .bind(dedupe_key)
        .bind(payload)
        .bind(run_at)
        .bind(now)
        .execute(self.db.pool())
        .await?
        .rows_affected();
        self.wake.notify_one();
        if inserted == 1 {
            return Ok(id);
        }
        let existing: String = sqlx::query_scalar(self.db.sql("SELECT id FROM jobs WHERE dedupe_key = $1"))
            .bind(dedupe_key)
            .fetch_one(self.db.pool())
            .await?;
        Ok(existing)
    }

    /// Creates or updates the single row of a recurring job: its payload is replaced (so a
    /// changed setting takes effect), its schedule is kept if it exists.
    pub async fn schedule_recurring<J: Job>(&self, payload: &J, key: &str, first_run: i64) -> Result<(), StorageError> {
        let payload = serde_json::to_string(payload).map_err(|e| StorageError::Corrupt(e.to_string()))?;
        let now = now_ms();
        sqlx::query(self.db.sql(
            "INSERT INTO jobs (id, kind, dedupe_key, payload, state, attempts, run_at, created_at, updated_at)
             VALUES ($1, $2, $3, $4, 'queued', 0, $5, $6, $6)
             ON CONFLICT (dedupe_key) DO UPDATE SET payload = excluded.payload, updated_at = excluded.updated_at",
        ))
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(J::KIND)
        .bind(key)
        .bind(payload)
        .bind(first_run)
        .bind(now)
        .execute(self.db.pool())
        .await?;
        self.wake.notify_one();
        Ok(())
    }

    /// Makes a deduplicated job due now (e.g. "refresh this location now"), creating it if
    /// needed.
    pub async fn run_now<J: Job>(&self, payload: &J, dedupe_key: &str) -> Result<String, StorageError> {
        let id = self.enqueue(payload, Some(dedupe_key), now_ms()).await?;
        sqlx::query(self.db.sql("UPDATE jobs SET run_at = $1, state = 'queued' WHERE id = $2 AND state <> 'running'"))
            .bind(now_ms())
            .bind(&id)
            .execute(self.db.pool())
            .await?;
        self.wake.notify_one();
        Ok(id)
    }

    /// A job's state (`queued`, `running`, `done`, `failed`), attempts and last error.
    pub async fn status(&self, id: &str) -> Result<Option<(String, i32, Option<String>)>, StorageError> {
        let row = sqlx::query(self.db.sql("SELECT state, attempts, last_error FROM jobs WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.db.pool())
            .await?;
        Ok(row.map(|r| (r.get(0), r.get(1), r.get(2))))
    }

    /// Counts jobs by kind and state, for `/metrics`.
    pub async fn counts(&self) -> Result<Vec<(String, String, i64)>, StorageError> {
        let rows = sqlx::query("SELECT kind, state, COUNT(*) AS n FROM jobs GROUP BY kind, state")
            .fetch_all(self.db.pool())
            .await?;
        Ok(rows.iter().map(|r| (r.get::<String, _>(0), r.get::<String, _>(1), r.get::<i64, _>(2))).collect())
    }

    async fn claim(&self) -> Result<Option<(String, String, String, u32)>, StorageError> {
        let now = now_ms();
        let lease_until = now + self.config.lease.as_millis() as i64;
        let query = match self.db.backend() {
            Backend::Postgres => {
                "UPDATE jobs SET state = 'running', lease_owner = $1, lease_until = $2, attempts = attempts + 1, updated_at = $3
                 WHERE id = (SELECT id FROM jobs
                             WHERE (state = 'queued' AND run_at <= $3) OR (state = 'running' AND lease_until < $3)
                             ORDER BY run_at LIMIT 1 FOR UPDATE SKIP LOCKED)
                 RETURNING id, kind, payload, attempts"
            }
            Backend::Sqlite => {
                "UPDATE jobs SET state = 'running', lease_owner = $1, lease_until = $2, attempts = attempts + 1, updated_at = $3
                 WHERE id = (SELECT id FROM jobs
                             WHERE (state = 'queued' AND run_at <= $3) OR (state = 'running' AND lease_until < $3)
                             ORDER BY run_at LIMIT 1)
                 RETURNING id, kind, payload, attempts"
            }
        };
        let row = sqlx::query(self.db.sql(query))
            .bind(&*self.owner)
            .bind(lease_until)
            .bind(now)
            .fetch_optional(self.db.pool())
            .await?;
        Ok(row.map(|r| (r.get(0), r.get(1), r.get(2), r.get::<i32, _>(3) as u32)))
    }

    async fn renew(&self, id: &str) -> Result<bool, StorageError> {
        let until = now_ms() + self.config.lease.as_millis() as i64;
        let n = sqlx::query(self.db.sql("UPDATE jobs SET lease_until = $1 WHERE id = $2 AND lease_owner = $3 AND state = 'running'"))
            .bind(until)
            .bind(id)
            .bind(&*self.owner)
            .execute(self.db.pool())
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    async fn finish(&self, id: &str, attempt: u32, result: &Result<JobOutcome, String>) -> Result<(), StorageError> {
        let now = now_ms();
        let (state, run_at, error, attempts_reset) = match result {
            Ok(JobOutcome::Done) => ("done", now, None, false),
            Ok(JobOutcome::RunAgainAt(at)) => ("queued", *at, None, true),
            Err(e) if attempt >= self.config.max_attempts => ("failed", now, Some(e.as_str()), false),
            Err(e) => ("queued", now + backoff(self.config.retry_base, attempt).as_millis() as i64, Some(e.as_str()), false),
        };
        sqlx::query(self.db.sql(
            "UPDATE jobs SET state = $1, run_at = $2, last_error = $3, lease_owner = NULL, lease_until = NULL, updated_at = $4,
                    attempts = CASE WHEN $5 = 1 THEN 0 ELSE attempts END
             WHERE id = $6 AND lease_owner = $7",
        ))
        .bind(state)
        .bind(run_at)
        .bind(error)
        .bind(now)
        .bind(i32::from(attempts_reset))
        .bind(id)
        .bind(&*self.owner)
        .execute(self.db.pool())
        .await?;
        Ok(())
    }
}

/// Retry delay after the `attempt`-th failure: base, 2×base, 4×base ... capped at 5 minutes.
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    base.saturating_mul(1u32 << attempt.saturating_sub(1).min(16)).min(Duration::from_secs(300))
}

/// Claims due jobs and runs their handlers until cancelled.
pub struct JobRunner {
    queue: JobQueue,
    handlers: HashMap<&'static str, Handler>,
}

impl JobRunner {
    /// A runner with no handlers yet.
    pub fn new(queue: JobQueue) -> Self {
        Self { queue, handlers: HashMap::new() }
    }

    /// Registers the handler for jobs of type `J`.
    pub fn register<J, F, Fut>(&mut self, handler: F)
    where
        J: Job,
        F: Fn(J, JobMeta) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<JobOutcome, String>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        self.handlers.insert(
            J::KIND,
            Arc::new(move |payload: String, meta: JobMeta| {
                let handler = handler.clone();
                Box::pin(async move {
                    let job: J = serde_json::from_str(&payload).map_err(|e| format!("undecodable {} payload: {e}", J::KIND))?;
                    handler(job, meta).await
                }) as BoxFuture<_>
            }),
        );
    }

    /// Runs until `shutdown` is cancelled, with at most `jobs.workers` handlers at once.
    pub async fn run(self, shutdown: CancellationToken) {
        let slots = Arc::new(Semaphore::new(self.queue.config.workers));
        let this = Arc::new(self);
        loop {
            let permit = tokio::select! {
                _ = shutdown.cancelled() => return,
                p = slots.clone().acquire_owned() => p.expect("semaphore is never closed"),
            };
            let claimed = match this.queue.claim().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "job claim failed; retrying");
                    None
                }
            };
            let Some((id, kind, payload, attempt)) = claimed else {
                drop(permit);
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = this.queue.wake.notified() => {}
                    _ = tokio::time::sleep(this.queue.config.poll_interval) => {}
                }
                continue;
            };
            let this = this.clone();
            tokio::spawn(async move {
                this.execute(id, kind, payload, attempt).await;
                drop(permit);
            });
        }
    }

    /// Runs one claimed job in a span of its own (`job <kind>`: the job's log lines carry its
    /// id, and where traces are exported it is one span with what it called inside).
    async fn execute(&self, id: String, kind: String, payload: String, attempt: u32) {
        use tracing::Instrument as _;
        let span = tracing::info_span!("job", otel.name = %format_args!("job {kind}"), job = %id, kind = %kind, attempt);
        self.run_job(id, kind, payload, attempt).instrument(span).await
    }

    async fn run_job(&self, id: String, kind: String, payload: String, attempt: u32) {
        let started = Instant::now();
        let result = match self.handlers.get(kind.as_str()) {
            None => Err(format!("no handler for job kind {kind:?} in this version of Nova")),
            Some(handler) => {
                let run = handler(payload, JobMeta { id: id.clone(), attempt });
                let renew_every = self.queue.config.lease / 3;
                tokio::pin!(run);
                loop {
                    tokio::select! {
                        r = &mut run => break r,
                        _ = tokio::time::sleep(renew_every) => {
                            if let Err(e) = self.queue.renew(&id).await {
                                tracing::warn!(job = %id, error = %e, "job lease renewal failed");
                            }
                        }
                    }
                }
            }
        };
        let outcome = match &result {
            Ok(_) => "ok",
            Err(_) => "error",
        };
        metrics::counter!("nova_jobs_completed_total", "kind" => kind.clone(), "outcome" => outcome).increment(1);
        metrics::histogram!("nova_job_duration_seconds", "kind" => kind.clone()).record(started.elapsed().as_secs_f64());
        if let Err(e) = &result {
            tracing::warn!(job = %id, kind = %kind, attempt, error = %e, "job failed");
        }
        if let Err(e) = self.queue.finish(&id, attempt, &result).await {
            tracing::error!(job = %id, error = %e, "could not record job result; it will be retried after its lease");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        let s = Duration::from_secs(1);
        assert_eq!(backoff(s, 1), s);
        assert_eq!(backoff(s, 3), Duration::from_secs(4));
        assert_eq!(backoff(s, 40), Duration::from_secs(300));
    }
}
