//! What a store's health check found, in the shape `nova doctor` and `/ready` report.

use serde::Serialize;

/// The verdict of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Works.
    Pass,
    /// Works, but something needs attention (a token close to its maximum lifetime, say).
    Warn,
    /// Does not work.
    Fail,
}

/// The result of [`super::SecretStore::health_check`]: what was checked, the verdict, why, and
/// what to do about it. Holds no secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthReport {
    /// The store kind (`file`, `vault`, `aws-secrets-manager`).
    pub store: &'static str,
    /// Where the store is (path, URL and mount, region).
    pub target: String,
    pub status: HealthStatus,
    /// What was found, in a sentence.
    pub reason: String,
    /// What to do when the status is not `pass`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl HealthReport {
    /// A passing check.
    pub fn pass(store: &'static str, target: String, reason: impl Into<String>) -> Self {
        Self { store, target, status: HealthStatus::Pass, reason: reason.into(), fix: None }
    }

    /// A failed check, with what to do.
    pub fn fail(store: &'static str, target: String, reason: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { store, target, status: HealthStatus::Fail, reason: reason.into(), fix: Some(fix.into()) }
    }

    /// A check that passed with a caveat, with what to do.
    pub fn warn(store: &'static str, target: String, reason: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { store, target, status: HealthStatus::Warn, reason: reason.into(), fix: Some(fix.into()) }
    }
}
