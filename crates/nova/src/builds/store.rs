//! Build rows in the database: the record of every build an owner asked for and where it is.

use serde::Serialize;
use sqlx::Row;
use utoipa::ToSchema;

use super::backend::RunHandle;
use crate::storage::{Db, StorageError, now_ms};

/// A `--build-arg` as stored and shown. Secret arguments are not accepted yet, so every value
/// here may be shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
pub struct StoredBuildArg {
    pub name: String,
    pub value: String,
}

/// One build, as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Build {
    pub id: String,
    /// The component built, e.g. `component:default/payment-service`.
    pub component_ref: String,
    /// The user who asked for it.
    pub requested_by: String,
    /// `local` or `<backend>:<target>` from the component's `nova.dev/build-pipeline`.
    pub pipeline: String,
    pub git_url: String,
    pub git_ref: String,
    /// The commit `gitRef` resolved to: when the build was asked for (a branch or tag without
    /// a tag given, or a commit id), else when it was cloned.
    pub git_commit: Option<String>,
    pub dockerfile: String,
    pub context: String,
    /// The repository pushed to.
    pub image: String,
    /// The full tag, tag prefix included.
    pub tag: String,
    pub build_args: Vec<StoredBuildArg>,
    pub state: String,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
    /// Why it failed, for builds that did not succeed.
    pub reason: Option<String>,
    /// The pushed image's digest, for succeeded builds.
    pub digest: Option<String>,
    /// Where to follow the build in its remote backend (a Jenkins build, a GitHub run).
    pub run_url: Option<String>,
}

/// A build to record; the store adds the id, state and times.
#[derive(Debug, Clone)]
pub struct NewBuild {
    pub component_ref: String,
    pub requested_by: String,
    pub idempotency_key: Option<String>,
    pub pipeline: String,
    pub git_url: String,
    pub git_ref: String,
    pub git_commit: Option<String>,
    pub dockerfile: String,
    pub context: String,
    pub image: String,
    pub tag: String,
    pub build_args: Vec<StoredBuildArg>,
}

/// The columns [`from_row`] reads.
macro_rules! select_builds {
    ($rest:literal) => {
        concat!(
            "SELECT id, component_ref, requested_by, pipeline, git_url, git_ref, git_commit, dockerfile, context, image, tag, build_args, state, created_at, updated_at, finished_at, reason, digest, run_handle FROM builds ",
            $rest
        )
    };
}

/// Reads and writes the `builds` table.
#[derive(Clone)]
pub struct BuildStore {
    db: Db,
}

impl BuildStore {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Records a new build in state `requested`. With an idempotency key the user already used,
    /// answers the build made then and `false` (nothing new was made).
    pub async fn create(&self, new: NewBuild) -> Result<(Build, bool), StorageError> {
        if let Some(key) = &new.idempotency_key
            && let Some(existing) = self.by_key(&new.requested_by, key).await?
        {
            return Ok((existing, false));
        }
        let id = uuid::Uuid::new_v4().to_string();
        let now = now_ms();
        let args = serde_json::to_string(&new.build_args).expect("build args serialize");
        let inserted = sqlx::query(self.db.sql(
            "INSERT INTO builds (id, component_ref, requested_by, idempotency_key, pipeline, git_url, git_ref, dockerfile, context, image, tag, build_args, state, created_at, updated_at, git_commit)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'requested', $13, $13, $14)",
        ))
        .bind(&id)
        .bind(&new.component_ref)
        .bind(&new.requested_by)
        .bind(&new.idempotency_key)
        .bind(&new.pipeline)
        .bind(&new.git_url)
        .bind(&new.git_ref)
        .bind(&new.dockerfile)
        .bind(&new.context)
        .bind(&new.image)
        .bind(&new.tag)
        .bind(&args)
        .bind(now)
        .bind(&new.git_commit)
        .execute(self.db.pool())
        .await;
        if let Err(e) = inserted {
            // A concurrent request with the same key won the race: answer its build.
            if let Some(key) = &new.idempotency_key
                && let Some(existing) = self.by_key(&new.requested_by, key).await?
            {
                return Ok((existing, false));
            }
            return Err(e.into());
        }
        Ok((self.get(&id).await?.ok_or_else(|| StorageError::from(sqlx::Error::RowNotFound))?, true))
    }

    /// The build `user` made with this idempotency key, if any.
    pub async fn by_key(&self, user: &str, key: &str) -> Result<Option<Build>, StorageError> {
        let row = sqlx::query(self.db.sql(select_builds!("WHERE requested_by = $1 AND idempotency_key = $2"))).bind(user).bind(key).fetch_optional(self.db.pool()).await?;
        row.map(|r| from_row(&r)).transpose()
    }

    /// One build by id.
    pub async fn get(&self, id: &str) -> Result<Option<Build>, StorageError> {
        let row = sqlx::query(self.db.sql(select_builds!("WHERE id = $1"))).bind(id).fetch_optional(self.db.pool()).await?;
        row.map(|r| from_row(&r)).transpose()
    }

    /// A component's builds, newest first, at most `limit`.
    pub async fn list(&self, component_ref: &str, limit: i64) -> Result<Vec<Build>, StorageError> {
        let rows = sqlx::query(self.db.sql(select_builds!("WHERE component_ref = $1 ORDER BY created_at DESC, id LIMIT $2"))).bind(component_ref).bind(limit).fetch_all(self.db.pool()).await?;
        rows.iter().map(from_row).collect()
    }

    /// Marks a build `running` unless it has finished; answers the build when it is to run.
    /// A build found `running` was being run by a process that died: it is run again, its
    /// earlier output marked as such.
    pub async fn start_running(&self, id: &str) -> Result<Option<Build>, StorageError> {
        let n = sqlx::query(self.db.sql(
            "UPDATE builds SET log = CASE WHEN state = 'running' THEN log || '\n[nova: the process running this build stopped; running it again]\n' ELSE log END,
                    state = 'running', updated_at = $1
             WHERE id = $2 AND state IN ('requested', 'queued', 'running')",
        ))
        .bind(now_ms())
        .bind(id)
        .execute(self.db.pool())
        .await?
        .rows_affected();
        if n == 0 {
            return Ok(None);
        }
        self.get(id).await
    }

    /// Records the run a remote backend started for a build, which is then `queued`.
    pub async fn set_run(&self, id: &str, run: &RunHandle) -> Result<(), StorageError> {
        let json = serde_json::to_string(run).expect("run handles serialize");
        sqlx::query(self.db.sql(
            "UPDATE builds SET run_handle = $1, state = CASE WHEN state = 'requested' THEN 'queued' ELSE state END, updated_at = $2 WHERE id = $3",
        ))
        .bind(json)
        .bind(now_ms())
        .bind(id)
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    /// A build's remote run and the log offset copied from it so far.
    pub async fn run_of(&self, id: &str) -> Result<Option<(RunHandle, u64)>, StorageError> {
        let row = sqlx::query(self.db.sql("SELECT run_handle, run_log_offset FROM builds WHERE id = $1")).bind(id).fetch_optional(self.db.pool()).await?;
        let Some(row) = row else { return Ok(None) };
        let offset: i64 = row.try_get("run_log_offset")?;
        Ok(run_handle(&row)?.map(|h| (h, offset.max(0) as u64)))
    }

    /// Moves a build that has not finished to `queued` or `running` as its backend reports.
    pub async fn set_state(&self, id: &str, state: &str) -> Result<(), StorageError> {
        sqlx::query(self.db.sql("UPDATE builds SET state = $1, updated_at = $2 WHERE id = $3 AND state <> $1 AND state NOT IN ('succeeded', 'failed', 'cancelled', 'timed_out', 'lost')"))
            .bind(state)
            .bind(now_ms())
            .bind(id)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    /// Appends remote log text and records the remote offset it ended at.
    pub async fn append_run_log(&self, id: &str, text: &str, next_offset: u64) -> Result<(), StorageError> {
        sqlx::query(self.db.sql("UPDATE builds SET log = log || $1, run_log_offset = $2, updated_at = $3 WHERE id = $4"))
            .bind(text)
            .bind(next_offset as i64)
            .bind(now_ms())
            .bind(id)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    /// The number of unfinished builds of each component that has some.
    pub async fn active_by_component(&self) -> Result<Vec<(String, i64)>, StorageError> {
        let rows = sqlx::query(self.db.sql("SELECT component_ref, COUNT(*) AS n FROM builds WHERE state IN ('requested', 'queued', 'running') GROUP BY component_ref")).fetch_all(self.db.pool()).await?;
        rows.iter().map(|r| Ok((r.try_get("component_ref")?, r.try_get("n")?))).collect()
    }

    /// When `user`'s requests since `since_ms` were made, oldest first.
    pub async fn requests_since(&self, user: &str, since_ms: i64) -> Result<Vec<i64>, StorageError> {
        Ok(sqlx::query_scalar(self.db.sql("SELECT created_at FROM builds WHERE requested_by = $1 AND created_at >= $2 ORDER BY created_at")).bind(user).bind(since_ms).fetch_all(self.db.pool()).await?)
    }

    /// Records the commit a build checked out.
    pub async fn set_commit(&self, id: &str, commit: &str) -> Result<(), StorageError> {
        sqlx::query(self.db.sql("UPDATE builds SET git_commit = $1, updated_at = $2 WHERE id = $3")).bind(commit).bind(now_ms()).bind(id).execute(self.db.pool()).await?;
        Ok(())
    }

    /// Appends output to a build's log.
    pub async fn append_log(&self, id: &str, text: &str) -> Result<(), StorageError> {
        sqlx::query(self.db.sql("UPDATE builds SET log = log || $1, updated_at = $2 WHERE id = $3")).bind(text).bind(now_ms()).bind(id).execute(self.db.pool()).await?;
        Ok(())
    }

    /// A build's log from byte `offset` (clamped to a character boundary), and the log's
    /// total length in bytes; `None` for an unknown build.
    pub async fn log(&self, id: &str, offset: usize) -> Result<Option<(String, usize)>, StorageError> {
        let row = sqlx::query(self.db.sql("SELECT log FROM builds WHERE id = $1")).bind(id).fetch_optional(self.db.pool()).await?;
        let Some(row) = row else { return Ok(None) };
        let log: String = row.try_get("log")?;
        let mut start = offset.min(log.len());
        while !log.is_char_boundary(start) {
            start += 1;
        }
        Ok(Some((log[start..].to_string(), log.len())))
    }

    /// Ends a build that has not finished in `state` (`succeeded`, `failed`, `timed_out` or
    /// `lost`); `false` when it had already finished (e.g. it was cancelled meanwhile).
    pub async fn finish(&self, id: &str, state: &str, reason: Option<&str>, digest: Option<&str>) -> Result<bool, StorageError> {
        let now = now_ms();
        let row = sqlx::query(self.db.sql(
            "UPDATE builds SET state = $1, reason = $2, digest = $3, updated_at = $4, finished_at = $4
             WHERE id = $5 AND state NOT IN ('succeeded', 'failed', 'cancelled', 'timed_out', 'lost')
             RETURNING pipeline, created_at",
        ))
        .bind(state)
        .bind(reason)
        .bind(digest)
        .bind(now)
        .bind(id)
        .fetch_optional(self.db.pool())
        .await?;
        let Some(row) = row else { return Ok(false) };
        count_finished(&row, state, now)?;
        if state == "succeeded" {
            crate::release::artifacts::record_build(&self.db, id).await?;
        }
        Ok(true)
    }

    /// Moves a build that has not finished to `cancelled`; `false` when it had already finished.
    pub async fn cancel(&self, id: &str) -> Result<bool, StorageError> {
        let now = now_ms();
        let row = sqlx::query(self.db.sql(
            "UPDATE builds SET state = 'cancelled', updated_at = $1, finished_at = $1
             WHERE id = $2 AND state NOT IN ('succeeded', 'failed', 'cancelled', 'timed_out', 'lost')
             RETURNING pipeline, created_at",
        ))
        .bind(now)
        .bind(id)
        .fetch_optional(self.db.pool())
        .await?;
        let Some(row) = row else { return Ok(false) };
        count_finished(&row, "cancelled", now)?;
        Ok(true)
    }
}

/// Counts a build that just finished (`nova_builds_total`, `nova_build_duration_seconds`,
/// docs/METRICS.md) from the `pipeline, created_at` its update returned. The backend is the
/// pipeline's backend name (`local`, `ci-eu`), never its target, to keep the labels few.
fn count_finished(row: &sqlx::any::AnyRow, state: &str, now: i64) -> Result<(), StorageError> {
    let pipeline: String = row.try_get("pipeline")?;
    let created_at: i64 = row.try_get("created_at")?;
    let backend = pipeline.split(':').next().unwrap_or("local").to_string();
    metrics::counter!("nova_builds_total", "state" => state.to_string(), "backend" => backend.clone()).increment(1);
    metrics::histogram!("nova_build_duration_seconds", "backend" => backend).record((now - created_at).max(0) as f64 / 1000.0);
    Ok(())
}

fn from_row(r: &sqlx::any::AnyRow) -> Result<Build, StorageError> {
    let args: String = r.try_get("build_args")?;
    Ok(Build {
        id: r.try_get("id")?,
        component_ref: r.try_get("component_ref")?,
        requested_by: r.try_get("requested_by")?,
        pipeline: r.try_get("pipeline")?,
        git_url: r.try_get("git_url")?,
        git_ref: r.try_get("git_ref")?,
        git_commit: r.try_get("git_commit")?,
        dockerfile: r.try_get("dockerfile")?,
        context: r.try_get("context")?,
        image: r.try_get("image")?,
        tag: r.try_get("tag")?,
        build_args: serde_json::from_str(&args).map_err(|e| StorageError::Corrupt(format!("builds.build_args: {e}")))?,
        state: r.try_get("state")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        finished_at: r.try_get("finished_at")?,
        reason: r.try_get("reason")?,
        digest: r.try_get("digest")?,
        run_url: run_handle(r)?.and_then(|h| h.url).filter(|u| u.starts_with("https://") || u.starts_with("http://")),
    })
}

fn run_handle(r: &sqlx::any::AnyRow) -> Result<Option<RunHandle>, StorageError> {
    let text: Option<String> = r.try_get("run_handle")?;
    text.map(|t| serde_json::from_str(&t).map_err(|e| StorageError::Corrupt(format!("builds.run_handle: {e}")))).transpose()
}
