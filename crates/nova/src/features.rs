//! A minimal, database-backed on/off switch per feature, read per request with a short
//! per-process cache (`registry.switch_cache`), so a feature can be switched off without a
//! deploy (`nova feature set KEY off`). The feature-flag system (staged rollout, audit,
//! OFREP) replaces this module; keep it this small.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::storage::{Db, StorageError, now_ms};

/// The registry image view (API, page and tab). Default: on.
pub const REGISTRY_IMAGE_VIEW: &str = "registry.image-view";

/// Every switch this version knows, with its default.
pub const KNOWN: [(&str, bool); 1] = [(REGISTRY_IMAGE_VIEW, true)];

/// The switches, cached per process for `ttl`.
pub struct FeatureSwitches {
    db: Db,
    ttl: Duration,
    cache: Mutex<HashMap<&'static str, (bool, Instant)>>,
}

impl FeatureSwitches {
    /// Switches stored in `db`, each read at most once per `ttl`.
    pub fn new(db: Db, ttl: Duration) -> Self {
        Self { db, ttl, cache: Mutex::new(HashMap::new()) }
    }

    /// Whether `key` is on. A database failure keeps the last known value (or the default).
    pub async fn is_on(&self, key: &'static str) -> bool {
        let default = KNOWN.iter().find(|(k, _)| *k == key).is_some_and(|(_, d)| *d);
        let cached = self.cache.lock().unwrap_or_else(|e| e.into_inner()).get(key).copied();
        if let Some((value, at)) = cached
            && at.elapsed() < self.ttl {
                return value;
            }
        let value = match get(&self.db, key).await {
            Ok(v) => v.unwrap_or(default),
            Err(e) => {
                tracing::warn!(key, error = %e, "cannot read a feature switch; keeping its last known value");
                cached.map_or(default, |(v, _)| v)
            }
        };
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).insert(key, (value, Instant::now()));
        value
    }
}

/// The stored value of a switch (`None`: never set, so its default applies).
pub async fn get(db: &Db, key: &str) -> Result<Option<bool>, StorageError> {
    let v: Option<i64> = sqlx::query_scalar(db.sql("SELECT enabled FROM feature_switches WHERE key = $1")).bind(key).fetch_optional(db.pool()).await?;
    Ok(v.map(|v| v != 0))
}

/// Sets a switch.
pub async fn set(db: &Db, key: &str, on: bool) -> Result<(), StorageError> {
    sqlx::query(db.sql(
        "INSERT INTO feature_switches (key, enabled, updated_at) VALUES ($1, $2, $3)
         ON CONFLICT (key) DO UPDATE SET enabled = excluded.enabled, updated_at = excluded.updated_at",
    ))
    .bind(key)
    .bind(i64::from(on))
    .bind(now_ms())
    .execute(db.pool())
    .await?;
    Ok(())
}
