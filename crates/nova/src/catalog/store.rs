//! Persistence of catalog locations and of the last result of reading each.

use sqlx::Row;

use super::location::{LocationSpec, LocationType};
use crate::storage::{Db, StorageError, now_ms};

/// Where a location came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// From `nova.toml` or `--catalog`: re-read at every start, not deletable through the API.
    Config,
    /// Registered through the API; persists until deleted.
    Registered,
}

impl Origin {
    fn as_str(self) -> &'static str {
        match self {
            Origin::Config => "config",
            Origin::Registered => "registered",
        }
    }
}

/// A location row with its refresh status.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoredLocation {
    pub id: String,
    #[serde(flatten)]
    pub spec: LocationSpec,
    pub origin: Origin,
    #[serde(skip)]
    pub position: i64,
    #[serde(rename = "refreshedAt")]
    pub refreshed_at: Option<i64>,
    #[serde(rename = "lastSuccessAt")]
    pub last_success_at: Option<i64>,
    #[serde(rename = "lastError")]
    pub last_error: Option<String>,
    #[serde(skip)]
    pub digest: Option<String>,
}

/// Offset added to registered locations' positions so configured ones always come first.
const REGISTERED_POSITION_BASE: i64 = 1 << 40;

pub(super) async fn list(db: &Db) -> Result<Vec<StoredLocation>, StorageError> {
    let rows = sqlx::query(
        "SELECT l.id, l.type, l.target, l.origin, l.position, s.refreshed_at, s.last_success_at, s.last_error, s.digest
         FROM catalog_locations l LEFT JOIN catalog_location_state s ON s.location_id = l.id
         ORDER BY l.position, l.created_at",
    )
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            let kind: String = r.get(1);
            let kind = LocationType::parse(&kind).map_err(StorageError::Corrupt)?;
            let origin: String = r.get(3);
            Ok(StoredLocation {
                id: r.get(0),
                spec: LocationSpec { kind, target: r.get(2) },
                origin: if origin == "config" { Origin::Config } else { Origin::Registered },
                position: r.get(4),
                refreshed_at: r.get(5),
                last_success_at: r.get(6),
                last_error: r.get(7),
                digest: r.get(8),
            })
        })
        .collect()
}

/// Makes the configured locations exactly `specs`, in order; registered ones are untouched.
pub(super) async fn sync_configured(db: &Db, specs: &[LocationSpec]) -> Result<(), StorageError> {
    let existing = list(db).await?;
    let mut tx = db.begin().await?;
    for loc in existing.iter().filter(|l| l.origin == Origin::Config && !specs.contains(&l.spec)) {
        sqlx::query(db.sql("DELETE FROM catalog_location_state WHERE location_id = $1")).bind(&loc.id).execute(&mut *tx).await?;
        sqlx::query(db.sql("DELETE FROM catalog_locations WHERE id = $1")).bind(&loc.id).execute(&mut *tx).await?;
    }
    for (i, spec) in specs.iter().enumerate() {
        match existing.iter().find(|l| &l.spec == spec) {
            Some(l) => {
                sqlx::query(db.sql("UPDATE catalog_locations SET origin = 'config', position = $1 WHERE id = $2"))
                    .bind(i as i64)
                    .bind(&l.id)
                    .execute(&mut *tx)
                    .await?;
            }
            None => {
                sqlx::query(db.sql(
                    "INSERT INTO catalog_locations (id, type, target, origin, position, created_at) VALUES ($1, $2, $3, 'config', $4, $5)
                     ON CONFLICT (type, target) DO NOTHING",
                ))
                .bind(uuid::Uuid::new_v4().to_string())
                .bind(spec.kind.as_str())
                .bind(&spec.target)
                .bind(i as i64)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
            }
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Adds a registered location; `None` when one with the same type and target exists.
pub(super) async fn insert_registered(db: &Db, spec: &LocationSpec) -> Result<Option<String>, StorageError> {
    let id = uuid::Uuid::new_v4().to_string();
    let now = now_ms();
    let n = sqlx::query(db.sql(
        "INSERT INTO catalog_locations (id, type, target, origin, position, created_at) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (type, target) DO NOTHING",
    ))
    .bind(&id)
    .bind(spec.kind.as_str())
    .bind(&spec.target)
    .bind(Origin::Registered.as_str())
    .bind(REGISTERED_POSITION_BASE + now)
    .bind(now)
    .execute(db.pool())
    .await?
    .rows_affected();
    Ok((n == 1).then_some(id))
}

pub(super) async fn delete(db: &Db, id: &str) -> Result<(), StorageError> {
    let mut tx = db.begin().await?;
    sqlx::query(db.sql("DELETE FROM catalog_location_state WHERE location_id = $1")).bind(id).execute(&mut *tx).await?;
    sqlx::query(db.sql("DELETE FROM catalog_locations WHERE id = $1")).bind(id).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn load_state(db: &Db, id: &str) -> Result<Option<(String, String)>, StorageError> {
    let row = sqlx::query(db.sql("SELECT state, digest FROM catalog_location_state WHERE location_id = $1"))
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}

/// Records a refresh: the new state when it changed, and the status either way.
pub(super) async fn save_state(
    db: &Db,
    id: &str,
    state: Option<(&str, &str)>,
    success: bool,
    error: Option<&str>,
) -> Result<(), StorageError> {
    let now = now_ms();
    let last_success = success.then_some(now);
    match state {
        Some((state, digest)) => {
            sqlx::query(db.sql(
                "INSERT INTO catalog_location_state (location_id, state, digest, refreshed_at, last_success_at, last_error)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (location_id) DO UPDATE SET state = excluded.state, digest = excluded.digest,
                   refreshed_at = excluded.refreshed_at,
                   last_success_at = COALESCE(excluded.last_success_at, catalog_location_state.last_success_at),
                   last_error = excluded.last_error",
            ))
            .bind(id)
            .bind(state)
            .bind(digest)
            .bind(now)
            .bind(last_success)
            .bind(error)
            .execute(db.pool())
            .await?;
        }
        None => {
            sqlx::query(db.sql(
                "UPDATE catalog_location_state SET refreshed_at = $1, last_success_at = COALESCE($2, last_success_at), last_error = $3
                 WHERE location_id = $4",
            ))
            .bind(now)
            .bind(last_success)
            .bind(error)
            .bind(id)
            .execute(db.pool())
            .await?;
        }
    }
    Ok(())
}
