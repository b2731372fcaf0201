//! Promotion rows: the promotions, their approvals and the pins rollbacks leave. Every state
//! change is a compare-and-set on the current state, so two replicas (or a rerun job) cannot
//! move one promotion twice.

use serde::Serialize;
use sqlx::Row;
use utoipa::ToSchema;

use crate::storage::{Db, StorageError, now_ms};

/// Where a promotion is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PromotionState {
    /// Needs more approvals.
    AwaitingApproval,
    /// Approved; waiting for its wait timer, then for the writer.
    Waiting,
    /// The image is being copied into the environment's repository (release/copy.rs).
    Copying,
    /// The GitOps write is under way.
    Writing,
    /// Written; the environment's check has not passed yet (release/verify.rs).
    Verifying,
    /// Written: the commit holds the artifact's digest.
    Done,
    Failed,
    /// An approver rejected it.
    Rejected,
    /// A newer promotion to the same environment replaced it before it was written.
    Superseded,
}

impl PromotionState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AwaitingApproval => "awaiting_approval",
            Self::Waiting => "waiting",
            Self::Copying => "copying",
            Self::Writing => "writing",
            Self::Verifying => "verifying",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Rejected => "rejected",
            Self::Superseded => "superseded",
        }
    }

    fn parse(s: &str) -> Result<Self, StorageError> {
        Ok(match s {
            "awaiting_approval" => Self::AwaitingApproval,
            "waiting" => Self::Waiting,
            "copying" => Self::Copying,
            "writing" => Self::Writing,
            "verifying" => Self::Verifying,
            "done" => Self::Done,
            "failed" => Self::Failed,
            "rejected" => Self::Rejected,
            "superseded" => Self::Superseded,
            other => return Err(StorageError::Corrupt(format!("release_promotions.state {other:?}"))),
        })
    }

    /// Not finished yet.
    pub fn is_pending(self) -> bool {
        matches!(self, Self::AwaitingApproval | Self::Waiting | Self::Copying | Self::Writing | Self::Verifying)
    }
}

/// One approval.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Approval {
    pub approver: String,
    pub created_at: i64,
}

/// A promotion, with its artifact's identity and its approvals.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Promotion {
    pub id: String,
    pub component_ref: String,
    pub environment: String,
    pub artifact_id: String,
    pub repository: String,
    pub digest: String,
    pub tags: Vec<String>,
    pub requested_by: String,
    pub state: PromotionState,
    /// Why it failed, was rejected or superseded, or what it waits for.
    pub reason: Option<String>,
    /// An earlier artifact than the environment had: it pins the environment once done.
    pub rollback: bool,
    /// Made by auto-promotion.
    pub automatic: bool,
    /// Not written before this time (the wait gate), Unix ms.
    pub not_before: Option<i64>,
    /// The GitOps commit holding it.
    pub commit_sha: Option<String>,
    pub approvals: Vec<Approval>,
    /// The repository the GitOps write named: the environment's copy, or the artifact's own.
    pub deployed_repository: Option<String>,
    /// While `verifying`: when the check gives up, Unix ms.
    pub verify_deadline: Option<i64>,
    /// When the environment's check passed, Unix ms.
    pub verified_at: Option<i64>,
    /// What the policy gate found, once the write has run it.
    pub policy: Option<super::policy_gate::PolicyResult>,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
}

impl Promotion {
    /// `sha256:` and 12 hex digits.
    pub fn digest_short(&self) -> &str {
        let end = self.digest.find(':').map_or(0, |i| i + 1) + 12;
        &self.digest[..end.min(self.digest.len())]
    }
}

/// A rollback's pin on an environment.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Pin {
    pub promotion_id: String,
    pub pinned_by: String,
    pub pinned_at: i64,
}

/// A promotion to record.
pub struct NewPromotion<'a> {
    pub component_ref: &'a str,
    pub environment: &'a str,
    pub artifact_id: &'a str,
    pub requested_by: &'a str,
    pub state: PromotionState,
    pub rollback: bool,
    pub automatic: bool,
    pub not_before: Option<i64>,
}

const SELECT: &str = "SELECT p.id, p.component_ref, p.environment, p.artifact_id, a.repository, a.digest, a.tags, p.requested_by, p.state, p.reason, p.rollback, p.automatic,
        p.not_before, p.commit_sha, p.created_at, p.updated_at, p.finished_at, p.deployed_repository, p.verify_deadline, p.verified_at
    FROM release_promotions p JOIN release_artifacts a ON a.id = p.artifact_id ";

fn select(rest: &'static str) -> &'static str {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static CACHE: OnceLock<Mutex<HashMap<&'static str, &'static str>>> = OnceLock::new();
    let mut cache = CACHE.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    cache.entry(rest).or_insert_with(|| Box::leak(format!("{SELECT}{rest}").into_boxed_str()))
}

/// Reads and writes promotions, approvals and pins.
#[derive(Clone)]
pub struct PromotionStore {
    db: Db,
}

impl PromotionStore {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Records a promotion and marks the environment's other pending promotions of the
    /// component superseded (their approvals do not carry over).
    pub async fn create(&self, new: NewPromotion<'_>) -> Result<Promotion, StorageError> {
        let id = uuid::Uuid::now_v7().to_string();
        let now = now_ms();
        let mut tx = self.db.begin().await?;
        sqlx::query(self.db.sql(
            "UPDATE release_promotions SET state = 'superseded', reason = $1, updated_at = $2, finished_at = $2
             WHERE component_ref = $3 AND environment = $4 AND state IN ('awaiting_approval', 'waiting')",
        ))
        .bind(format!("superseded by promotion {id}"))
        .bind(now)
        .bind(new.component_ref)
        .bind(new.environment)
        .execute(&mut *tx)
        .await?;
        sqlx::query(self.db.sql(
            "INSERT INTO release_promotions (id, component_ref, environment, artifact_id, requested_by, state, rollback, automatic, not_before, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
        ))
        .bind(&id)
        .bind(new.component_ref)
        .bind(new.environment)
        .bind(new.artifact_id)
        .bind(new.requested_by)
        .bind(new.state.as_str())
        .bind(i64::from(new.rollback))
        .bind(i64::from(new.automatic))
        .bind(new.not_before)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.get(&id).await?.ok_or_else(|| StorageError::from(sqlx::Error::RowNotFound))
    }

    /// One promotion with its approvals.
    pub async fn get(&self, id: &str) -> Result<Option<Promotion>, StorageError> {
        let row = sqlx::query(self.db.sql(select("WHERE p.id = $1"))).bind(id).fetch_optional(self.db.pool()).await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(self.complete(from_row(&row)?).await?))
    }

    /// A promotion read from its row, with its approvals and policy result.
    async fn complete(&self, mut p: Promotion) -> Result<Promotion, StorageError> {
        p.approvals = self.approvals(&p.id).await?;
        p.policy = super::policy_gate::result(&self.db, &p.id).await?;
        Ok(p)
    }

    /// A component's promotions, newest first, with their approvals.
    pub async fn list(&self, component_ref: &str, limit: i64) -> Result<Vec<Promotion>, StorageError> {
        let rows = sqlx::query(self.db.sql(select("WHERE p.component_ref = $1 ORDER BY p.created_at DESC, p.id DESC LIMIT $2"))).bind(component_ref).bind(limit).fetch_all(self.db.pool()).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(self.complete(from_row(r)?).await?);
        }
        Ok(out)
    }

    /// The promotion that put what is now in the environment (the last one done).
    pub async fn current(&self, component_ref: &str, environment: &str) -> Result<Option<Promotion>, StorageError> {
        let sql = select("WHERE p.component_ref = $1 AND p.environment = $2 AND p.state = 'done' ORDER BY p.finished_at DESC, p.id DESC LIMIT 1");
        let row = sqlx::query(self.db.sql(sql)).bind(component_ref).bind(environment).fetch_optional(self.db.pool()).await?;
        match row {
            Some(r) => Ok(Some(self.complete(from_row(&r)?).await?)),
            None => Ok(None),
        }
    }

    /// When the digest was first deployed in the environment, if ever.
    pub async fn deployed_at(&self, component_ref: &str, environment: &str, digest: &str) -> Result<Option<i64>, StorageError> {
        let row = sqlx::query(self.db.sql(
            "SELECT MIN(p.finished_at) FROM release_promotions p JOIN release_artifacts a ON a.id = p.artifact_id
             WHERE p.component_ref = $1 AND p.environment = $2 AND a.digest = $3 AND p.state = 'done'",
        ))
        .bind(component_ref)
        .bind(environment)
        .bind(digest)
        .fetch_one(self.db.pool())
        .await?;
        Ok(row.try_get::<Option<i64>, _>(0)?)
    }

    async fn approvals(&self, id: &str) -> Result<Vec<Approval>, StorageError> {
        let rows = sqlx::query(self.db.sql("SELECT approver, created_at FROM release_approvals WHERE promotion_id = $1 ORDER BY created_at, approver")).bind(id).fetch_all(self.db.pool()).await?;
        rows.iter().map(|r| Ok(Approval { approver: r.try_get(0)?, created_at: r.try_get(1)? })).collect()
    }

    /// Adds an approval; `false` when this approver had already approved.
    pub async fn approve(&self, id: &str, approver: &str) -> Result<bool, StorageError> {
        let n = sqlx::query(self.db.sql("INSERT INTO release_approvals (promotion_id, approver, created_at) VALUES ($1, $2, $3) ON CONFLICT (promotion_id, approver) DO NOTHING"))
            .bind(id)
            .bind(approver)
            .bind(now_ms())
            .execute(self.db.pool())
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    /// Moves a promotion from `from` to `to`; `false` when it was no longer in `from`.
    pub async fn transition(&self, id: &str, from: PromotionState, to: PromotionState, reason: Option<&str>, commit: Option<&str>) -> Result<bool, StorageError> {
        let now = now_ms();
        let finished = (!to.is_pending()).then_some(now);
        let n = sqlx::query(self.db.sql(
            "UPDATE release_promotions SET state = $1, reason = $2, commit_sha = COALESCE($3, commit_sha), updated_at = $4, finished_at = $5
             WHERE id = $6 AND state = $7",
        ))
        .bind(to.as_str())
        .bind(reason)
        .bind(commit)
        .bind(now)
        .bind(finished)
        .bind(id)
        .bind(from.as_str())
        .execute(self.db.pool())
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// The environment's pin, if a rollback left one.
    pub async fn pin(&self, component_ref: &str, environment: &str) -> Result<Option<Pin>, StorageError> {
        let row = sqlx::query(self.db.sql("SELECT promotion_id, pinned_by, pinned_at FROM release_pins WHERE component_ref = $1 AND environment = $2"))
            .bind(component_ref)
            .bind(environment)
            .fetch_optional(self.db.pool())
            .await?;
        row.map(|r| Ok(Pin { promotion_id: r.try_get(0)?, pinned_by: r.try_get(1)?, pinned_at: r.try_get(2)? })).transpose()
    }

    /// Pins the environment to a rollback.
    pub async fn set_pin(&self, component_ref: &str, environment: &str, promotion_id: &str, by: &str) -> Result<(), StorageError> {
        sqlx::query(self.db.sql(
            "INSERT INTO release_pins (component_ref, environment, promotion_id, pinned_by, pinned_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (component_ref, environment) DO UPDATE SET promotion_id = excluded.promotion_id, pinned_by = excluded.pinned_by, pinned_at = excluded.pinned_at",
        ))
        .bind(component_ref)
        .bind(environment)
        .bind(promotion_id)
        .bind(by)
        .bind(now_ms())
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    /// Releases the environment's pin; `false` when there was none.
    pub async fn clear_pin(&self, component_ref: &str, environment: &str) -> Result<bool, StorageError> {
        let n = sqlx::query(self.db.sql("DELETE FROM release_pins WHERE component_ref = $1 AND environment = $2")).bind(component_ref).bind(environment).execute(self.db.pool()).await?.rows_affected();
        Ok(n == 1)
    }
}

/// Copy and verification (release/copy.rs, release/verify.rs).
impl PromotionStore {
    /// Records the repository the GitOps write names.
    pub async fn set_deployed_repository(&self, id: &str, repository: &str) -> Result<(), StorageError> {
        sqlx::query(self.db.sql("UPDATE release_promotions SET deployed_repository = $1, updated_at = $2 WHERE id = $3")).bind(repository).bind(now_ms()).bind(id).execute(self.db.pool()).await?;
        Ok(())
    }

    /// `writing` → `verifying` with the commit and the check's deadline; `false` when it was
    /// no longer writing.
    pub async fn start_verifying(&self, id: &str, commit: &str, deadline: i64) -> Result<bool, StorageError> {
        let n = sqlx::query(self.db.sql(
            "UPDATE release_promotions SET state = 'verifying', reason = NULL, commit_sha = $1, verify_deadline = $2, updated_at = $3 WHERE id = $4 AND state = 'writing'",
        ))
        .bind(commit)
        .bind(deadline)
        .bind(now_ms())
        .bind(id)
        .execute(self.db.pool())
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// `verifying` → `done`, verified (and finished) now; `false` when it was no longer verifying.
    pub async fn verified(&self, id: &str) -> Result<bool, StorageError> {
        let now = now_ms();
        let n = sqlx::query(self.db.sql(
            "UPDATE release_promotions SET state = 'done', reason = NULL, verified_at = $1, updated_at = $1, finished_at = $1 WHERE id = $2 AND state = 'verifying'",
        ))
        .bind(now)
        .bind(id)
        .execute(self.db.pool())
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Sets the reason of a promotion still in `state` (what a check last saw).
    pub async fn note(&self, id: &str, state: PromotionState, reason: &str) -> Result<(), StorageError> {
        sqlx::query(self.db.sql("UPDATE release_promotions SET reason = $1, updated_at = $2 WHERE id = $3 AND state = $4"))
            .bind(reason)
            .bind(now_ms())
            .bind(id)
            .bind(state.as_str())
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    /// A later promotion of the same component and environment that has been written (or is
    /// being written) since `p` was requested, if any.
    pub async fn written_after(&self, p: &Promotion) -> Result<Option<String>, StorageError> {
        let row = sqlx::query(self.db.sql(
            "SELECT id FROM release_promotions WHERE component_ref = $1 AND environment = $2 AND id <> $3 AND created_at >= $4
             AND state IN ('copying', 'writing', 'verifying', 'done') ORDER BY created_at DESC, id DESC LIMIT 1",
        ))
        .bind(&p.component_ref)
        .bind(&p.environment)
        .bind(&p.id)
        .bind(p.created_at)
        .fetch_optional(self.db.pool())
        .await?;
        row.map(|r| r.try_get::<String, _>(0)).transpose().map_err(Into::into)
    }
}

fn from_row(r: &sqlx::any::AnyRow) -> Result<Promotion, StorageError> {
    let tags: String = r.try_get("tags")?;
    let state: String = r.try_get("state")?;
    Ok(Promotion {
        id: r.try_get("id")?,
        component_ref: r.try_get("component_ref")?,
        environment: r.try_get("environment")?,
        artifact_id: r.try_get("artifact_id")?,
        repository: r.try_get("repository")?,
        digest: r.try_get("digest")?,
        tags: serde_json::from_str(&tags).map_err(|e| StorageError::Corrupt(format!("release_artifacts.tags: {e}")))?,
        requested_by: r.try_get("requested_by")?,
        state: PromotionState::parse(&state)?,
        reason: r.try_get("reason")?,
        rollback: r.try_get::<i64, _>("rollback")? != 0,
        automatic: r.try_get::<i64, _>("automatic")? != 0,
        not_before: r.try_get("not_before")?,
        commit_sha: r.try_get("commit_sha")?,
        approvals: Vec::new(),
        deployed_repository: r.try_get("deployed_repository")?,
        verify_deadline: r.try_get("verify_deadline")?,
        verified_at: r.try_get("verified_at")?,
        policy: None,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        finished_at: r.try_get("finished_at")?,
    })
}
