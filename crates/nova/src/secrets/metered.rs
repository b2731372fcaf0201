//! [`Metered`]: the configured store with its failures counted, so an operator sees a store
//! that denies or is unavailable before users do. [`super::open`] wraps every store in it.

use std::sync::Arc;

use super::{HealthReport, Precondition, SecretData, SecretError, SecretPath, SecretStore, Version, Versioned};

/// A store whose failed operations are counted in `nova_secret_store_errors_total` by store
/// type, operation and error kind (docs/METRICS.md). `not-found` is an answer, not a failure
/// (a registration looks for the credential it may replace), and is not counted.
pub struct Metered(pub Arc<dyn SecretStore>);

impl Metered {
    fn count<T>(&self, operation: &'static str, result: Result<T, SecretError>) -> Result<T, SecretError> {
        if let Err(e) = &result
            && !matches!(e, SecretError::NotFound(_))
        {
            metrics::counter!("nova_secret_store_errors_total", "store" => self.0.kind(), "operation" => operation, "error" => e.kind()).increment(1);
        }
        result
    }
}

#[async_trait::async_trait]
impl SecretStore for Metered {
    fn kind(&self) -> &'static str {
        self.0.kind()
    }

    fn describe(&self) -> String {
        self.0.describe()
    }

    async fn read(&self, path: &SecretPath, version: Option<&Version>) -> Result<Versioned, SecretError> {
        self.count("read", self.0.read(path, version).await)
    }

    async fn put(&self, path: &SecretPath, data: &SecretData, precondition: Precondition) -> Result<Version, SecretError> {
        self.count("put", self.0.put(path, data, precondition).await)
    }

    async fn delete(&self, path: &SecretPath) -> Result<(), SecretError> {
        self.count("delete", self.0.delete(path).await)
    }

    async fn list(&self, prefix: Option<&SecretPath>) -> Result<Vec<SecretPath>, SecretError> {
        self.count("list", self.0.list(prefix).await)
    }

    async fn health_check(&self) -> HealthReport {
        self.0.health_check().await
    }
}
