//! The secret store: where secrets such as a team's git credential live, so that Nova's
//! database holds metadata only.
//!
//! One trait, [`SecretStore`], with one module per implementation, chosen by
//! `[secrets] type = ...` ([`SecretsConfig`]):
//!
//! - [`file`]: the embedded store, one XChaCha20-Poly1305-encrypted file. The default, for
//!   `--demo` and single machines.
//! - [`vault`]: HashiCorp Vault or OpenBao, KV version 2, token or AppRole sign-in, optionally
//!   one AppRole per team so that Vault itself keeps teams apart.
//! - `aws`: AWS Secrets Manager (cargo feature `aws`, on by default).
//!
//! A secret is a small map of named fields ([`SecretData`]), each value a
//! [`Sensitive<String>`]: a Vault KV v2 data map, a JSON object in Secrets Manager. Errors
//! ([`SecretError`]) are built only from Nova's own words, the secret's path, HTTP statuses
//! and service error codes, never from a response body, so they cannot carry a value.
//!
//! Paths are relative to the store's own prefix (`nova/` by default) and team secrets live
//! under `teams/<team>/` ([`SecretPath::team`]).

mod config;
pub mod credential_uses;
pub mod credentials;
pub mod file;
mod metered;
mod path;
mod reference;
pub mod vault;

#[cfg(feature = "aws")]
pub mod aws;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

pub use config::{AwsSecretsConfig, FileStoreConfig, SecretsConfig, VaultAuthConfig, VaultConfig};
pub use crate::health::{HealthReport, HealthStatus};
use nova_domain::Sensitive;
pub use path::{PathError, SecretPath};
pub use reference::{SecretRef, SecretRefError};

/// A secret: named fields, each a sensitive string. Field names are not secret.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretData(BTreeMap<String, Sensitive<String>>);

/// The field a single-valued secret keeps its value in.
pub const DEFAULT_FIELD: &str = "value";

impl SecretData {
    /// An empty secret.
    pub fn new() -> Self {
        Self::default()
    }

    /// A secret with one field, [`DEFAULT_FIELD`].
    pub fn single(value: Sensitive<String>) -> Self {
        let mut data = Self::new();
        data.insert(DEFAULT_FIELD, value);
        data
    }

    /// Sets a field.
    pub fn insert(&mut self, field: impl Into<String>, value: Sensitive<String>) {
        self.0.insert(field.into(), value);
    }

    /// A field's value.
    pub fn get(&self, field: &str) -> Option<&Sensitive<String>> {
        self.0.get(field)
    }

    /// The field names, in order.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// Fields and values, in field order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Sensitive<String>)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Checks what every store requires: at least one field, names of 1 to 128 printable
    /// characters.
    pub fn validate(&self) -> Result<(), SecretError> {
        if self.0.is_empty() {
            return Err(SecretError::Invalid("a secret needs at least one field".into()));
        }
        for name in self.0.keys() {
            if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
                return Err(SecretError::Invalid("field names are 1 to 128 printable characters".into()));
            }
        }
        Ok(())
    }

    /// The fields as a JSON object, for the stores that keep one. The result holds the values:
    /// hand it straight to the store.
    pub(crate) fn to_json(&self) -> serde_json::Map<String, serde_json::Value> {
        self.0.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.expose().clone()))).collect()
    }

    /// Reads a JSON object of fields. A value that is not a string (a number, say) is kept as
    /// its JSON text. Anything but an object is refused without quoting it.
    pub(crate) fn from_json(value: serde_json::Value) -> Result<Self, SecretError> {
        let serde_json::Value::Object(map) = value else {
            return Err(SecretError::Invalid("the stored secret is not a JSON object of fields".into()));
        };
        Ok(Self(
            map.into_iter()
                .map(|(k, v)| {
                    let text = match v {
                        serde_json::Value::String(s) => s,
                        other => other.to_string(),
                    };
                    (k, Sensitive::new(text))
                })
                .collect(),
        ))
    }
}

impl fmt::Debug for SecretData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.0.iter()).finish()
    }
}

/// A stored version of a secret: a number in Vault and the file store, a version id in AWS
/// Secrets Manager. Opaque: compare it, show it, pass it back to [`SecretStore::put`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Version(String);

impl Version {
    /// A version as the store names it.
    pub fn new(v: impl Into<String>) -> Self {
        Self(v.into())
    }

    /// The store's name for it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A secret as read: its fields and which version they are.
#[derive(Debug, Clone)]
pub struct Versioned {
    pub data: SecretData,
    pub version: Version,
}

/// What must be true for a write to go ahead (check-and-set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precondition {
    /// Write whatever is there.
    None,
    /// Only create: fail with [`SecretError::Conflict`] if the secret exists.
    Absent,
    /// Only replace this version: fail with [`SecretError::Conflict`] if another is current.
    /// Atomic in Vault and the file store; a check, then a write, in AWS Secrets Manager.
    Current(Version),
}

/// Why a store operation failed. Every message is Nova's own text plus non-secret detail
/// (the path, an HTTP status, a service error code, a transport failure); none can hold a
/// secret value, because none is ever built from a request or response body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// No secret at this path (or no such version).
    #[error("secret {0} not found")]
    NotFound(String),
    /// The store refused Nova's credentials or their policy does not allow this.
    #[error("the secret store denied access: {0}")]
    Denied(String),
    /// The store could not be reached or failed; trying again later may work.
    #[error("the secret store is unavailable: {0}")]
    Unavailable(String),
    /// A check-and-set precondition did not hold.
    #[error("secret {0}: it was changed or created meanwhile; read it again")]
    Conflict(String),
    /// The request or the stored data is not acceptable.
    #[error("invalid secret operation: {0}")]
    Invalid(String),
}

impl SecretError {
    /// A short, stable name of the variant, for metrics and structured logs.
    pub fn kind(&self) -> &'static str {
        match self {
            SecretError::NotFound(_) => "not-found",
            SecretError::Denied(_) => "denied",
            SecretError::Unavailable(_) => "unavailable",
            SecretError::Conflict(_) => "conflict",
            SecretError::Invalid(_) => "invalid",
        }
    }
}

/// A place secrets are kept. Every implementation keeps at least the previous version of a
/// secret after a write, so that a rotation can be inspected or undone.
#[async_trait::async_trait]
pub trait SecretStore: Send + Sync {
    /// The kind of store (`file`, `vault`, `aws-secrets-manager`), for reports.
    fn kind(&self) -> &'static str;

    /// Where the store is, without credentials (a file path, a URL and mount, a region), for
    /// reports.
    fn describe(&self) -> String;

    /// The secret at `path`: its current version, or the given `version`
    /// ([`SecretError::NotFound`] when the store no longer has that version).
    async fn read(&self, path: &SecretPath, version: Option<&Version>) -> Result<Versioned, SecretError>;

    /// The current version of the secret at `path`.
    async fn get(&self, path: &SecretPath) -> Result<Versioned, SecretError> {
        self.read(path, None).await
    }

    /// A given version of the secret at `path`.
    async fn get_version(&self, path: &SecretPath, version: &Version) -> Result<Versioned, SecretError> {
        self.read(path, Some(version)).await
    }

    /// Writes a new version of the secret at `path` if `precondition` holds, and returns it.
    async fn put(&self, path: &SecretPath, data: &SecretData, precondition: Precondition) -> Result<Version, SecretError>;

    /// Deletes the secret at `path` with every version. Idempotent: deleting a missing secret
    /// succeeds, so a retried job does not fail.
    async fn delete(&self, path: &SecretPath) -> Result<(), SecretError>;

    /// Every secret path strictly under `prefix` (whole segments: `teams/a` lists `teams/a/x`,
    /// not `teams/ab/x`), or every path when `prefix` is `None`, sorted.
    async fn list(&self, prefix: Option<&SecretPath>) -> Result<Vec<SecretPath>, SecretError>;

    /// A real, cheap round trip: where the store allows it, a write, a read and a delete of a
    /// probe secret under `_nova/health/`. Never fails; the report says what is wrong.
    async fn health_check(&self) -> HealthReport;
}

/// Opens the configured store. `Err` only for what stops Nova from starting (a file store
/// whose key is missing or wrong, an AWS store in a build without the `aws` feature, an
/// unreadable credential reference); a store that is down is not an error here. The store is
/// wrapped in [`metered::Metered`], which counts its failures.
pub async fn open(config: &SecretsConfig) -> Result<Arc<dyn SecretStore>, SecretError> {
    let store: Arc<dyn SecretStore> = match config {
        SecretsConfig::File(c) => Arc::new(file::FileStore::open(c).await?),
        SecretsConfig::Vault(c) => Arc::new(vault::VaultStore::new(c)?),
        #[cfg(feature = "aws")]
        SecretsConfig::AwsSecretsManager(c) => Arc::new(aws::AwsSecretsStore::new(c).await?),
        #[cfg(not(feature = "aws"))]
        SecretsConfig::AwsSecretsManager(_) => {
            return Err(SecretError::Invalid("secrets.type = \"aws-secrets-manager\" needs a nova built with the `aws` cargo feature".into()));
        }
    };
    Ok(Arc::new(metered::Metered(store)))
}

/// The path of a one-off health probe secret.
pub(crate) fn probe_path() -> SecretPath {
    SecretPath::parse(&format!("_nova/health/{}", uuid::Uuid::new_v4().simple())).expect("probe paths are valid")
}

/// Runs the write/read/delete probe every store's health check uses, with a random value.
pub(crate) async fn probe_round_trip(store: &dyn SecretStore) -> Result<(), (&'static str, SecretError)> {
    let path = probe_path();
    let value = Sensitive::new(uuid::Uuid::new_v4().to_string());
    let data = SecretData::single(value.clone());
    store.put(&path, &data, Precondition::Absent).await.map_err(|e| ("write", e))?;
    let read = store.get(&path).await.map_err(|e| ("read", e));
    let deleted = store.delete(&path).await.map_err(|e| ("delete", e));
    let read = read?;
    deleted?;
    if read.data.get(DEFAULT_FIELD) != Some(&value) {
        return Err(("read", SecretError::Invalid("the probe secret read back differs from what was written".into())));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_data_never_prints_values() {
        let mut data = SecretData::single(Sensitive::new("hunter2".into()));
        data.insert("user", Sensitive::new("alice".into()));
        let shown = format!("{data:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("alice"), "{shown}");
        assert!(shown.contains("value") && shown.contains("user"), "{shown}");
    }

    #[test]
    fn json_round_trip_and_refusals_do_not_quote() {
        let data = SecretData::from_json(serde_json::json!({"a": "x", "n": 5})).unwrap();
        assert_eq!(data.get("n").unwrap().expose(), "5");
        assert_eq!(SecretData::from_json(serde_json::Value::Object(data.to_json())).unwrap(), data);
        let e = SecretData::from_json(serde_json::json!("hunter2")).unwrap_err().to_string();
        assert!(!e.contains("hunter2"), "{e}");
        assert!(SecretData::new().validate().is_err());
    }
}
