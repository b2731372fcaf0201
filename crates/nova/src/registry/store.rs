//! The registry cache in the database: one row per linked repository (state of the last
//! attempt, last success, error), one per image, one per fetched scan report, and stored
//! reports. Images are written as a diff, so an unchanged refresh writes one row.

use std::collections::HashMap;

use sqlx::Row;

use super::provider::{ImageRecord, RepositoryInfo, ScanReport};
use crate::storage::{Db, StorageError, now_ms};

/// The state of a repository's last refresh attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepoState {
    /// Never attempted yet.
    Pending,
    Ok,
    /// The last attempt failed; `fetched_at` tells whether older data is kept.
    Error,
    /// The registry says the repository does not exist.
    NotFound,
}

impl RepoState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Ok => "ok",
            Self::Error => "error",
            Self::NotFound => "not-found",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "ok" => Self::Ok,
            "error" => Self::Error,
            "not-found" => Self::NotFound,
            _ => Self::Pending,
        }
    }
}

/// A repository's cache row.
#[derive(Debug, Clone)]
pub struct RepoRow {
    pub key: String,
    pub state: RepoState,
    pub generation: i64,
    pub fetched_at: Option<i64>,
    pub attempted_at: Option<i64>,
    pub error_category: Option<String>,
    pub error_message: Option<String>,
    pub info: RepositoryInfo,
    pub image_count: i64,
}

/// The columns [`row`] reads, in order.
macro_rules! row_columns {
    () => {
        "key, state, generation, fetched_at, attempted_at, error_category, error_message, info, image_count"
    };
}

fn row(r: &sqlx::any::AnyRow) -> RepoRow {
    RepoRow {
        key: r.get(0),
        state: RepoState::parse(&r.get::<String, _>(1)),
        generation: r.get(2),
        fetched_at: r.get(3),
        attempted_at: r.get(4),
        error_category: r.get(5),
        error_message: r.get(6),
        info: serde_json::from_str(&r.get::<String, _>(7)).unwrap_or_default(),
        image_count: r.get(8),
    }
}

/// One repository's row, if it was ever seen.
pub async fn repo(db: &Db, key: &str) -> Result<Option<RepoRow>, StorageError> {
    let r = sqlx::query(db.sql(concat!("SELECT ", row_columns!(), " FROM registry_repositories WHERE key = $1"))).bind(key).fetch_optional(db.pool()).await?;
    Ok(r.as_ref().map(row))
}

/// Every repository row.
pub async fn repos(db: &Db) -> Result<Vec<RepoRow>, StorageError> {
    let rows = sqlx::query(db.sql(concat!("SELECT ", row_columns!(), " FROM registry_repositories ORDER BY key"))).fetch_all(db.pool()).await?;
    Ok(rows.iter().map(row).collect())
}

/// Makes sure a row exists (state `pending`), so refresh requests and jobs have one to mark.
pub async fn ensure(db: &Db, key: &str, registry: &str, repository: &str) -> Result<(), StorageError> {
    sqlx::query(db.sql("INSERT INTO registry_repositories (key, registry, repository, state) VALUES ($1, $2, $3, 'pending') ON CONFLICT (key) DO NOTHING"))
        .bind(key)
        .bind(registry)
        .bind(repository)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Every image of a repository, newest first.
pub async fn images(db: &Db, key: &str) -> Result<Vec<ImageRecord>, StorageError> {
    let rows = sqlx::query(db.sql("SELECT data FROM registry_images WHERE repo_key = $1 ORDER BY sort_time DESC, digest"))
        .bind(key)
        .fetch_all(db.pool())
        .await?;
    rows.iter()
        .map(|r| serde_json::from_str::<ImageRecord>(&r.get::<String, _>(0)).map_err(|e| StorageError::Corrupt(format!("registry image: {e}"))))
        .collect()
}

/// Records a successful refresh: writes the images that changed, removes the ones that are
/// gone, and bumps the generation when anything did.
pub async fn save_success(db: &Db, key: &str, info: &RepositoryInfo, images: &[ImageRecord], previous: &HashMap<String, ImageRecord>) -> Result<bool, StorageError> {
    let now = now_ms();
    let mut tx = db.begin().await?;
    let mut changed = 0usize;
    let current: std::collections::HashSet<&str> = images.iter().map(|i| i.digest.as_str()).collect();
    for gone in previous.keys().filter(|d| !current.contains(d.as_str())) {
        sqlx::query(db.sql("DELETE FROM registry_images WHERE repo_key = $1 AND digest = $2")).bind(key).bind(gone).execute(&mut *tx).await?;
        changed += 1;
    }
    for image in images {
        if previous.get(&image.digest) == Some(image) {
            continue;
        }
        let data = serde_json::to_string(image).map_err(|e| StorageError::Corrupt(e.to_string()))?;
        sqlx::query(db.sql(
            "INSERT INTO registry_images (repo_key, digest, sort_time, data) VALUES ($1, $2, $3, $4)
             ON CONFLICT (repo_key, digest) DO UPDATE SET sort_time = excluded.sort_time, data = excluded.data",
        ))
        .bind(key)
        .bind(&image.digest)
        .bind(image.sort_time())
        .bind(data)
        .execute(&mut *tx)
        .await?;
        changed += 1;
    }
    let old_info: Option<String> = sqlx::query_scalar(db.sql("SELECT info FROM registry_repositories WHERE key = $1")).bind(key).fetch_optional(&mut *tx).await?;
    let info_text = serde_json::to_string(info).map_err(|e| StorageError::Corrupt(e.to_string()))?;
    let bump = i64::from(changed > 0 || old_info.as_deref() != Some(info_text.as_str()));
    sqlx::query(db.sql(
        "UPDATE registry_repositories SET state = 'ok', fetched_at = $1, attempted_at = $1, error_category = NULL, error_message = NULL,
                info = $2, image_count = $3, generation = generation + $4 WHERE key = $5",
    ))
    .bind(now)
    .bind(info_text)
    .bind(images.len() as i64)
    .bind(bump)
    .bind(key)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(bump == 1)
}

/// Records a failed refresh, keeping the last known images. A repository that does not exist
/// loses its images: they are gone from the registry too.
pub async fn save_failure(db: &Db, key: &str, state: RepoState, category: &str, message: &str) -> Result<(), StorageError> {
    let mut tx = db.begin().await?;
    let mut bump = 0i64;
    if state == RepoState::NotFound {
        bump = sqlx::query(db.sql("DELETE FROM registry_images WHERE repo_key = $1")).bind(key).execute(&mut *tx).await?.rows_affected().min(1) as i64;
    }
    sqlx::query(db.sql(
        "UPDATE registry_repositories SET state = $1, attempted_at = $2, error_category = $3, error_message = $4,
                generation = generation + $5, image_count = CASE WHEN $5 = 1 THEN 0 ELSE image_count END WHERE key = $6",
    ))
    .bind(state.as_str())
    .bind(now_ms())
    .bind(category)
    .bind(message)
    .bind(bump)
    .bind(key)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Claims the right to an on-demand refresh: `Ok(None)` when granted, else how many
/// milliseconds remain before the next one is allowed.
pub async fn request_refresh(db: &Db, key: &str, min_interval_ms: i64) -> Result<Option<i64>, StorageError> {
    let now = now_ms();
    let granted = sqlx::query(db.sql("UPDATE registry_repositories SET requested_at = $1 WHERE key = $2 AND (requested_at IS NULL OR requested_at <= $3)"))
        .bind(now)
        .bind(key)
        .bind(now - min_interval_ms)
        .execute(db.pool())
        .await?
        .rows_affected();
    if granted == 1 {
        return Ok(None);
    }
    let last: Option<i64> = sqlx::query_scalar(db.sql("SELECT requested_at FROM registry_repositories WHERE key = $1")).bind(key).fetch_optional(db.pool()).await?.flatten();
    Ok(Some(last.map_or(min_interval_ms, |l| (l + min_interval_ms - now).max(1))))
}

/// A stored scan report and when it was fetched.
pub async fn findings(db: &Db, key: &str, digest: &str) -> Result<Option<(ScanReport, i64)>, StorageError> {
    let r = sqlx::query(db.sql("SELECT data, fetched_at FROM registry_findings WHERE repo_key = $1 AND digest = $2"))
        .bind(key)
        .bind(digest)
        .fetch_optional(db.pool())
        .await?;
    Ok(r.and_then(|r| serde_json::from_str(&r.get::<String, _>(0)).ok().map(|rep| (rep, r.get(1)))))
}

/// Stores a scan report, and puts its summary on the image in the list when the list had
/// none (some registries only give counts with the findings).
pub async fn save_findings(db: &Db, key: &str, digest: &str, report: &ScanReport) -> Result<(), StorageError> {
    let data = serde_json::to_string(report).map_err(|e| StorageError::Corrupt(e.to_string()))?;
    let mut tx = db.begin().await?;
    sqlx::query(db.sql(
        "INSERT INTO registry_findings (repo_key, digest, fetched_at, data) VALUES ($1, $2, $3, $4)
         ON CONFLICT (repo_key, digest) DO UPDATE SET fetched_at = excluded.fetched_at, data = excluded.data",
    ))
    .bind(key)
    .bind(digest)
    .bind(now_ms())
    .bind(data)
    .execute(&mut *tx)
    .await?;
    let image: Option<String> =
        sqlx::query_scalar(db.sql("SELECT data FROM registry_images WHERE repo_key = $1 AND digest = $2")).bind(key).bind(digest).fetch_optional(&mut *tx).await?;
    if let Some(mut image) = image.and_then(|t| serde_json::from_str::<ImageRecord>(&t).ok())
        && image.scan != report.summary && image.scan.counts.is_none() {
            image.scan = report.summary.clone();
            let text = serde_json::to_string(&image).map_err(|e| StorageError::Corrupt(e.to_string()))?;
            sqlx::query(db.sql("UPDATE registry_images SET data = $1 WHERE repo_key = $2 AND digest = $3")).bind(text).bind(key).bind(digest).execute(&mut *tx).await?;
            sqlx::query(db.sql("UPDATE registry_repositories SET generation = generation + 1 WHERE key = $1")).bind(key).execute(&mut *tx).await?;
        }
    tx.commit().await?;
    Ok(())
}

/// Stores a report under `name`.
pub async fn save_report(db: &Db, name: &str, data: &serde_json::Value) -> Result<(), StorageError> {
    sqlx::query(db.sql(
        "INSERT INTO registry_reports (name, generated_at, data) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO UPDATE SET generated_at = excluded.generated_at, data = excluded.data",
    ))
    .bind(name)
    .bind(now_ms())
    .bind(data.to_string())
    .execute(db.pool())
    .await?;
    Ok(())
}

/// The stored report `name` and when it was made.
pub async fn report(db: &Db, name: &str) -> Result<Option<(serde_json::Value, i64)>, StorageError> {
    let r = sqlx::query(db.sql("SELECT data, generated_at FROM registry_reports WHERE name = $1")).bind(name).fetch_optional(db.pool()).await?;
    Ok(r.and_then(|r| serde_json::from_str(&r.get::<String, _>(0)).ok().map(|v| (v, r.get(1)))))
}
