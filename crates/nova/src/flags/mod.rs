//! Feature flags with staged rollout: off → named groups and users → a sticky percentage of
//! users → everyone. Flags live in the database; each process keeps them in memory and reloads
//! a flag when its version changes ([`Flags::sync`], every second), so a change takes effect at
//! once on the replica that made it and within about a second everywhere else.
//!
//! Capabilities declare their flags as [`FlagDef`] constants listed in [`BUILTIN`]; they are
//! created with their default rollout at start. Other services may create flags of their own
//! and read them through OFREP (`http/ofrep.rs`).

use std::collections::HashMap;
use std::sync::RwLock;

use nova_domain::EntityRef;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::storage::{Db, StorageError, now_ms};

/// A flag a capability of Nova declares.
#[derive(Debug, Clone, Copy)]
pub struct FlagDef {
    pub key: &'static str,
    pub description: &'static str,
    /// On for everyone when first created; otherwise off until someone rolls it out.
    pub default_on: bool,
}

/// Flags declared by Nova's own capabilities. Adding a capability behind a flag means adding
/// its `FlagDef` here.
pub const BUILTIN: &[FlagDef] = &[FlagDef {
    key: REGISTRY_IMAGE_VIEW,
    description: "Each component's container images (API, page and tab), read from its registries",
    default_on: true,
}];

/// The registry image view (docs/REGISTRY.md).
pub const REGISTRY_IMAGE_VIEW: &str = "registry.image-view";

/// Who a flag is on for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Rollout {
    /// The kill switch: when false the flag is off for everyone, whatever else is set.
    #[serde(default)]
    pub enabled: bool,
    /// On for everyone (general availability).
    #[serde(default)]
    pub everyone: bool,
    /// On for members of these groups (their ownership claims, so sub-team members count).
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub groups: Vec<EntityRef>,
    /// On for these users.
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub users: Vec<EntityRef>,
    /// On for this share of all other signed-in users, 0 to 100. Sticky: a user's bucket is a
    /// hash of the flag key and their reference, so raising 25 → 50 keeps the first 25% on.
    #[serde(default)]
    pub percentage: f64,
}

impl Rollout {
    /// Off for everyone.
    pub fn off() -> Self {
        Self { enabled: false, everyone: false, groups: vec![], users: vec![], percentage: 0.0 }
    }

    /// On for everyone.
    pub fn on() -> Self {
        Self { enabled: true, everyone: true, ..Self::off() }
    }

    /// Checks the ranges; the message names the field.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(0.0..=100.0).contains(&self.percentage) || self.percentage.is_nan() {
            return Err(("percentage", format!("must be between 0 and 100, got {}", self.percentage)));
        }
        if let Some(g) = self.groups.iter().find(|g| g.kind() != "group") {
            return Err(("groups", format!("{g} is not a Group reference")));
        }
        if let Some(u) = self.users.iter().find(|u| u.kind() != "user") {
            return Err(("users", format!("{u} is not a User reference")));
        }
        Ok(())
    }

    /// The rollout stage, for people: `off`, `targeted`, `percentage` or `on`.
    pub fn stage(&self) -> &'static str {
        match self {
            r if !r.enabled => "off",
            r if r.everyone => "on",
            r if r.percentage > 0.0 => "percentage",
            r if !r.groups.is_empty() || !r.users.is_empty() => "targeted",
            _ => "off",
        }
    }
}

/// Why a flag evaluated as it did, in OpenFeature's vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Reason {
    /// The kill switch is off.
    Disabled,
    /// On for everyone.
    Static,
    /// The user or one of their groups is named.
    TargetingMatch,
    /// The user's bucket falls inside the percentage.
    Split,
    /// Nothing matched: off.
    Default,
}

/// Who is asking: their reference (if signed in) and ownership claims.
#[derive(Debug, Clone, Default)]
pub struct Subject<'a> {
    pub user: Option<&'a EntityRef>,
    pub claims: &'a [EntityRef],
}

/// A user's bucket for a flag, 0..10000 (hundredths of a percent).
pub fn bucket(flag: &str, user: &EntityRef) -> u32 {
    let h = Sha256::digest(format!("{flag}\n{}", user.key()).as_bytes());
    (u64::from_be_bytes(h[..8].try_into().expect("8 bytes")) % 10_000) as u32
}

/// Evaluates a rollout for a subject.
pub fn evaluate(key: &str, rollout: &Rollout, subject: &Subject<'_>) -> (bool, Reason) {
    if !rollout.enabled {
        return (false, Reason::Disabled);
    }
    if rollout.everyone {
        return (true, Reason::Static);
    }
    let Some(user) = subject.user else { return (false, Reason::Default) };
    if rollout.users.contains(user) || rollout.groups.iter().any(|g| subject.claims.contains(g)) {
        return (true, Reason::TargetingMatch);
    }
    if rollout.percentage > 0.0 && f64::from(bucket(key, user)) < rollout.percentage * 100.0 {
        return (true, Reason::Split);
    }
    (false, Reason::Default)
}

/// A stored flag.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Flag {
    pub key: String,
    pub description: String,
    pub rollout: Rollout,
    /// `off`, `targeted`, `percentage` or `on`.
    pub stage: &'static str,
    /// Declared by Nova itself (cannot be deleted).
    pub builtin: bool,
    pub version: i64,
    #[serde(rename = "updatedAt")]
    pub updated_at: i64,
    #[serde(rename = "updatedBy")]
    pub updated_by: String,
}

/// Why a flag change was refused.
#[derive(Debug, thiserror::Error)]
pub enum FlagError {
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    #[error("unknown flag {0:?}")]
    NotFound(String),
    #[error("flag {0:?} already exists")]
    Exists(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// A flag key: 1 to 63 lowercase letters, digits, `.`, `-`, `_`, starting with a letter or digit.
pub fn check_key(key: &str) -> Result<(), FlagError> {
    let ok = !key.is_empty()
        && key.len() <= 63
        && key.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && key.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(FlagError::Invalid { field: "key", message: format!("{key:?} must be 1 to 63 lowercase letters, digits, '.', '-' or '_'") })
    }
}

/// The flag service: an in-memory copy of the table, kept in step by [`Flags::sync`].
pub struct Flags {
    db: Db,
    cache: RwLock<HashMap<String, Flag>>,
}

impl Flags {
    /// Creates the built-in flags that do not exist yet and loads every flag.
    pub async fn open(db: Db, builtin: &[FlagDef]) -> Result<Self, StorageError> {
        for def in builtin {
            let rollout = if def.default_on { Rollout::on() } else { Rollout::off() };
            sqlx::query(db.sql(
                "INSERT INTO feature_flags (key, description, rollout, version, builtin, updated_at, updated_by)
                 VALUES ($1, $2, $3, 1, 1, $4, 'nova') ON CONFLICT (key) DO NOTHING",
            ))
            .bind(def.key)
            .bind(def.description)
            .bind(serde_json::to_string(&rollout).expect("rollout serializes"))
            .bind(now_ms())
            .execute(db.pool())
            .await?;
        }
        let flags = Self { db, cache: RwLock::new(HashMap::new()) };
        flags.sync().await?;
        Ok(flags)
    }

    /// Reloads flags whose version changed (cheap: one small query).
    pub async fn sync(&self) -> Result<(), StorageError> {
        let rows = sqlx::query("SELECT key, version FROM feature_flags").fetch_all(self.db.pool()).await?;
        let stale: Vec<String> = {
            let cache = self.cache.read().unwrap_or_else(|e| e.into_inner());
            rows.iter()
                .filter(|r| cache.get(&r.get::<String, _>(0)).is_none_or(|f| f.version != r.get::<i64, _>(1)))
                .map(|r| r.get(0))
                .collect()
        };
        let present: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        let mut loaded = Vec::new();
        for key in stale {
            if let Some(f) = self.load(&key).await? {
                loaded.push(f);
            }
        }
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        cache.retain(|k, _| present.contains(k));
        for f in loaded {
            cache.insert(f.key.clone(), f);
        }
        Ok(())
    }

    async fn load(&self, key: &str) -> Result<Option<Flag>, StorageError> {
        let row = sqlx::query(self.db.sql(
            "SELECT key, description, rollout, version, builtin, updated_at, updated_by FROM feature_flags WHERE key = $1",
        ))
        .bind(key)
        .fetch_optional(self.db.pool())
        .await?;
        row.map(|r| {
            let rollout: Rollout = serde_json::from_str(&r.get::<String, _>(2)).map_err(|e| StorageError::Corrupt(format!("flag {key}: {e}")))?;
            Ok(Flag {
                key: r.get(0),
                description: r.get(1),
                stage: rollout.stage(),
                rollout,
                version: r.get(3),
                builtin: r.get::<i32, _>(4) == 1,
                updated_at: r.get(5),
                updated_by: r.get(6),
            })
        })
        .transpose()
    }

    /// Every flag, sorted by key.
    pub fn list(&self) -> Vec<Flag> {
        let mut all: Vec<Flag> = self.cache.read().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
        all.sort_by(|a, b| a.key.cmp(&b.key));
        all
    }

    /// One flag.
    pub fn get(&self, key: &str) -> Option<Flag> {
        self.cache.read().unwrap_or_else(|e| e.into_inner()).get(key).cloned()
    }

    /// Evaluates a flag; `None` for an unknown key.
    pub fn evaluate(&self, key: &str, subject: &Subject<'_>) -> Option<(bool, Reason)> {
        let cache = self.cache.read().unwrap_or_else(|e| e.into_inner());
        let flag = cache.get(key)?;
        let result = evaluate(key, &flag.rollout, subject);
        metrics::counter!("nova_flag_evaluations_total", "flag" => key.to_string(), "value" => if result.0 { "on" } else { "off" }).increment(1);
        Some(result)
    }

    /// Whether a flag is on for a subject (unknown flags are off).
    pub fn is_on(&self, key: &str, subject: &Subject<'_>) -> bool {
        self.evaluate(key, subject).is_some_and(|(on, _)| on)
    }

    /// Creates a flag (for other services, read through OFREP), off until rolled out.
    pub async fn create(&self, key: &str, description: &str, rollout: Rollout, by: &str) -> Result<Flag, FlagError> {
        check_key(key)?;
        rollout.validate().map_err(|(field, message)| FlagError::Invalid { field, message })?;
        let n = sqlx::query(self.db.sql(
            "INSERT INTO feature_flags (key, description, rollout, version, builtin, updated_at, updated_by)
             VALUES ($1, $2, $3, 1, 0, $4, $5) ON CONFLICT (key) DO NOTHING",
        ))
        .bind(key)
        .bind(description)
        .bind(serde_json::to_string(&rollout).expect("rollout serializes"))
        .bind(now_ms())
        .bind(by)
        .execute(self.db.pool())
        .await
        .map_err(StorageError::from)?
        .rows_affected();
        if n == 0 {
            return Err(FlagError::Exists(key.to_string()));
        }
        self.sync().await?;
        self.get(key).ok_or_else(|| FlagError::NotFound(key.to_string()))
    }

    /// Changes a flag's rollout; effective on this replica when it returns. Returns the flag
    /// before and after.
    pub async fn set(&self, key: &str, rollout: Rollout, by: &str) -> Result<(Flag, Flag), FlagError> {
        rollout.validate().map_err(|(field, message)| FlagError::Invalid { field, message })?;
        let before = self.load(key).await?.ok_or_else(|| FlagError::NotFound(key.to_string()))?;
        sqlx::query(self.db.sql(
            "UPDATE feature_flags SET rollout = $1, version = version + 1, updated_at = $2, updated_by = $3 WHERE key = $4",
        ))
        .bind(serde_json::to_string(&rollout).expect("rollout serializes"))
        .bind(now_ms())
        .bind(by)
        .bind(key)
        .execute(self.db.pool())
        .await
        .map_err(StorageError::from)?;
        self.sync().await?;
        let after = self.get(key).ok_or_else(|| FlagError::NotFound(key.to_string()))?;
        Ok((before, after))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(i: usize) -> EntityRef {
        EntityRef::new("user", "default", &format!("user-{i}"))
    }

    #[test]
    fn percentage_rollout_is_close_and_sticky() {
        let users: Vec<EntityRef> = (0..1000).map(user).collect();
        let on_at = |pct: f64| -> Vec<bool> {
            let r = Rollout { enabled: true, percentage: pct, ..Rollout::off() };
            users.iter().map(|u| evaluate("registry.image-view", &r, &Subject { user: Some(u), claims: &[] }).0).collect()
        };
        let at25 = on_at(25.0);
        let share = at25.iter().filter(|&&b| b).count();
        assert!((220..=280).contains(&share), "25% gave {share} of 1000");
        let at50 = on_at(50.0);
        assert!(at25.iter().zip(&at50).all(|(a, b)| !a || *b), "everyone on at 25% stays on at 50%");
        assert!(at50.iter().filter(|&&b| b).count() > share);
    }

    #[test]
    fn stages_and_reasons() {
        let admins = EntityRef::new("group", "default", "admins");
        let alice = user(1);
        let claims = [alice.clone(), admins.clone()];
        let me = Subject { user: Some(&alice), claims: &claims };
        assert_eq!(evaluate("f", &Rollout::off(), &me), (false, Reason::Disabled));
        let targeted = Rollout { enabled: true, groups: vec![admins.clone()], ..Rollout::off() };
        assert_eq!(targeted.stage(), "targeted");
        assert_eq!(evaluate("f", &targeted, &me), (true, Reason::TargetingMatch));
        assert_eq!(evaluate("f", &targeted, &Subject::default()), (false, Reason::Default));
        assert_eq!(evaluate("f", &Rollout::on(), &Subject::default()), (true, Reason::Static));
        let killed = Rollout { enabled: false, ..targeted };
        assert_eq!(evaluate("f", &killed, &me), (false, Reason::Disabled));
    }

    #[test]
    fn validation_names_the_field() {
        assert_eq!(Rollout { percentage: 101.0, ..Rollout::on() }.validate().unwrap_err().0, "percentage");
        assert_eq!(Rollout { groups: vec![user(1)], ..Rollout::on() }.validate().unwrap_err().0, "groups");
        assert!(check_key("Bad Key").is_err());
        assert!(check_key("registry.image-view").is_ok());
    }
}
