//! Artifacts: images identified by digest, with the tags, git ref and build they came from.
//! Recorded when a Nova build succeeds ([`record_build`]) or external CI reports one (intake).
//! The digest is the identity: reporting the same digest again only adds its tags.

use nova_domain::image::Digest;
use serde::Serialize;
use sqlx::Row;
use utoipa::ToSchema;

use crate::storage::{Db, StorageError, now_ms};

/// One artifact, as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    pub id: String,
    pub component_ref: String,
    /// Where the image lives, e.g. `registry.example.com/payments/payment-service`.
    pub repository: String,
    /// `sha256:...`: the artifact's identity.
    pub digest: String,
    /// Tags it was pushed with (display only).
    pub tags: Vec<String>,
    pub git_ref: Option<String>,
    pub git_revision: Option<String>,
    /// Nova's build that made it.
    pub build_id: Option<String>,
    /// `build`, `intake`, or `demo` (the demo's seeded images).
    pub source: String,
    /// Milliseconds since the epoch.
    pub created_at: i64,
}

impl Artifact {
    /// `sha256:` and 12 hex digits.
    pub fn digest_short(&self) -> &str {
        let end = self.digest.find(':').map_or(0, |i| i + 1) + 12;
        &self.digest[..end.min(self.digest.len())]
    }

    /// `repository@digest`, the reference written to GitOps.
    pub fn reference(&self) -> String {
        format!("{}@{}", self.repository, self.digest)
    }
}

/// An artifact to record.
#[derive(Debug, Clone)]
pub struct NewArtifact {
    pub component_ref: String,
    pub repository: String,
    pub digest: Digest,
    pub tags: Vec<String>,
    pub git_ref: Option<String>,
    pub git_revision: Option<String>,
    pub build_id: Option<String>,
    pub source: &'static str,
}

const SELECT: &str = "SELECT id, component_ref, repository, digest, tags, git_ref, git_revision, build_id, source, created_at FROM release_artifacts ";

/// Reads and writes `release_artifacts`.
#[derive(Clone)]
pub struct ArtifactStore {
    db: Db,
}

impl ArtifactStore {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Records an artifact, or adds tags to the one with the same digest; answers it and
    /// whether it is new.
    pub async fn record(&self, new: NewArtifact) -> Result<(Artifact, bool), StorageError> {
        let id = uuid::Uuid::now_v7().to_string();
        let tags = serde_json::to_string(&new.tags).expect("tags serialize");
        let inserted = sqlx::query(self.db.sql(
            "INSERT INTO release_artifacts (id, component_ref, repository, digest, tags, git_ref, git_revision, build_id, source, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (component_ref, repository, digest) DO NOTHING",
        ))
        .bind(&id)
        .bind(&new.component_ref)
        .bind(&new.repository)
        .bind(new.digest.as_str())
        .bind(&tags)
        .bind(&new.git_ref)
        .bind(&new.git_revision)
        .bind(&new.build_id)
        .bind(new.source)
        .bind(now_ms())
        .execute(self.db.pool())
        .await?
        .rows_affected();
        let existing = self.find(&new.component_ref, &new.repository, new.digest.as_str()).await?.ok_or_else(|| StorageError::from(sqlx::Error::RowNotFound))?;
        if inserted == 1 {
            return Ok((existing, true));
        }
        let mut merged = existing.tags.clone();
        for t in new.tags {
            if !merged.contains(&t) {
                merged.push(t);
            }
        }
        if merged != existing.tags {
            sqlx::query(self.db.sql("UPDATE release_artifacts SET tags = $1 WHERE id = $2"))
                .bind(serde_json::to_string(&merged).expect("tags serialize"))
                .bind(&existing.id)
                .execute(self.db.pool())
                .await?;
        }
        Ok((Artifact { tags: merged, ..existing }, false))
    }

    async fn find(&self, component_ref: &str, repository: &str, digest: &str) -> Result<Option<Artifact>, StorageError> {
        let sql = self.db.sql(concat_select("WHERE component_ref = $1 AND repository = $2 AND digest = $3"));
        let row = sqlx::query(sql).bind(component_ref).bind(repository).bind(digest).fetch_optional(self.db.pool()).await?;
        row.map(|r| from_row(&r)).transpose()
    }

    /// One artifact by id.
    pub async fn get(&self, id: &str) -> Result<Option<Artifact>, StorageError> {
        let row = sqlx::query(self.db.sql(concat_select("WHERE id = $1"))).bind(id).fetch_optional(self.db.pool()).await?;
        row.map(|r| from_row(&r)).transpose()
    }

    /// A component's newest artifact with this digest (in any repository).
    pub async fn by_digest(&self, component_ref: &str, digest: &str) -> Result<Option<Artifact>, StorageError> {
        let sql = self.db.sql(concat_select("WHERE component_ref = $1 AND digest = $2 ORDER BY created_at DESC LIMIT 1"));
        let row = sqlx::query(sql).bind(component_ref).bind(digest).fetch_optional(self.db.pool()).await?;
        row.map(|r| from_row(&r)).transpose()
    }

    /// A component's artifacts, newest first.
    pub async fn list(&self, component_ref: &str, limit: i64) -> Result<Vec<Artifact>, StorageError> {
        let sql = self.db.sql(concat_select("WHERE component_ref = $1 ORDER BY created_at DESC, id DESC LIMIT $2"));
        let rows = sqlx::query(sql).bind(component_ref).bind(limit).fetch_all(self.db.pool()).await?;
        rows.iter().map(from_row).collect()
    }

    /// Artifacts auto-promotion has not looked at yet, oldest first.
    pub async fn unchecked(&self, limit: i64) -> Result<Vec<Artifact>, StorageError> {
        let rows = sqlx::query(self.db.sql(concat_select("WHERE auto_checked = 0 ORDER BY created_at LIMIT $1"))).bind(limit).fetch_all(self.db.pool()).await?;
        rows.iter().map(from_row).collect()
    }

    /// Marks an artifact as seen by auto-promotion.
    pub async fn mark_checked(&self, id: &str) -> Result<(), StorageError> {
        sqlx::query(self.db.sql("UPDATE release_artifacts SET auto_checked = 1 WHERE id = $1")).bind(id).execute(self.db.pool()).await?;
        Ok(())
    }
}

/// `SELECT ... FROM release_artifacts` and `rest`, as one static query.
fn concat_select(rest: &'static str) -> &'static str {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static CACHE: OnceLock<Mutex<HashMap<&'static str, &'static str>>> = OnceLock::new();
    let mut cache = CACHE.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    cache.entry(rest).or_insert_with(|| Box::leak(format!("{SELECT}{rest}").into_boxed_str()))
}

fn from_row(r: &sqlx::any::AnyRow) -> Result<Artifact, StorageError> {
    let tags: String = r.try_get("tags")?;
    Ok(Artifact {
        id: r.try_get("id")?,
        component_ref: r.try_get("component_ref")?,
        repository: r.try_get("repository")?,
        digest: r.try_get("digest")?,
        tags: serde_json::from_str(&tags).map_err(|e| StorageError::Corrupt(format!("release_artifacts.tags: {e}")))?,
        git_ref: r.try_get("git_ref")?,
        git_revision: r.try_get("git_revision")?,
        build_id: r.try_get("build_id")?,
        source: r.try_get("source")?,
        created_at: r.try_get("created_at")?,
    })
}

/// Records the artifact of a build that has just succeeded with a digest (the build lane calls
/// this where it marks a build succeeded). A build without a valid digest records nothing.
pub async fn record_build(db: &Db, build_id: &str) -> Result<(), StorageError> {
    let Some(build) = crate::builds::store::BuildStore::new(db.clone()).get(build_id).await? else { return Ok(()) };
    let Some(digest) = build.digest.as_deref().and_then(|d| Digest::parse(d.trim()).ok()) else { return Ok(()) };
    let revision = build.git_commit.clone().or_else(|| (build.git_ref.len() == 40 && build.git_ref.bytes().all(|b| b.is_ascii_hexdigit())).then(|| build.git_ref.clone()));
    let new = NewArtifact {
        component_ref: build.component_ref,
        repository: build.image,
        digest,
        tags: vec![build.tag],
        git_ref: Some(build.git_ref),
        git_revision: revision,
        build_id: Some(build.id),
        source: "build",
    };
    ArtifactStore::new(db.clone()).record(new).await?;
    Ok(())
}
