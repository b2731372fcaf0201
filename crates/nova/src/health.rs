//! What an integration's health check found, in the shape `nova doctor` and `/ready` report.
//! Every integration (build backends, secret stores, ...) answers with a [`HealthReport`].

use serde::Serialize;

/// The verdict of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Works.
    Pass,
    /// Works, but something needs attention.
    Warn,
    /// Does not work.
    Fail,
}

/// The result of a health check: what was checked, the verdict, why, and what to do about it.
/// Holds no secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthReport {
    /// The kind of integration checked (`jenkins`, `github-actions`, `vault`, `file`, ...).
    pub component: &'static str,
    /// What was checked: the configured name and the endpoint or target.
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
    pub fn pass(component: &'static str, target: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { component, target: target.into(), status: HealthStatus::Pass, reason: reason.into(), fix: None }
    }

    /// A check that passed with a caveat, with what to do.
    pub fn warn(component: &'static str, target: impl Into<String>, reason: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { component, target: target.into(), status: HealthStatus::Warn, reason: reason.into(), fix: Some(fix.into()) }
    }

    /// A failed check, with what to do.
    pub fn fail(component: &'static str, target: impl Into<String>, reason: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { component, target: target.into(), status: HealthStatus::Fail, reason: reason.into(), fix: Some(fix.into()) }
    }
}
