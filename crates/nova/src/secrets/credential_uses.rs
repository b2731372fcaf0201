//! When each team credential was last handed to a build, kept in Nova's database (the secret
//! store holds the credential itself; writing a new secret version per use would be neither
//! cheap nor useful).

use std::collections::BTreeMap;

use sqlx::Row;

use crate::storage::{Db, StorageError, now_ms};

/// The last use of one credential.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct LastUse {
    /// Milliseconds since the epoch.
    pub at_ms: i64,
    /// The build it was used for.
    pub build: String,
}

/// Reads and writes `credential_uses`.
#[derive(Clone)]
pub struct CredentialUses {
    db: Db,
}

impl CredentialUses {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Records that `team`'s credential `name` was used now for `build`.
    pub async fn record(&self, team: &str, name: &str, build: &str) -> Result<(), StorageError> {
        sqlx::query(self.db.sql(
            "INSERT INTO credential_uses (team, name, last_used_at, last_build) VALUES ($1, $2, $3, $4)
             ON CONFLICT (team, name) DO UPDATE SET last_used_at = excluded.last_used_at, last_build = excluded.last_build",
        ))
        .bind(team)
        .bind(name)
        .bind(now_ms())
        .bind(build)
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    /// The last use of each of `team`'s credentials that was ever used, by name.
    pub async fn for_team(&self, team: &str) -> Result<BTreeMap<String, LastUse>, StorageError> {
        let rows = sqlx::query(self.db.sql("SELECT name, last_used_at, last_build FROM credential_uses WHERE team = $1")).bind(team).fetch_all(self.db.pool()).await?;
        rows.iter().map(|r| Ok((r.try_get("name")?, LastUse { at_ms: r.try_get("last_used_at")?, build: r.try_get("last_build")? }))).collect()
    }
}
