//! The policy gate (`gates.policy = true`): after the image is set in the clone and before the
//! commit, the manifests in the edited file's directory (searched as `nova policy check` does)
//! are checked with nova-policy's rules, under the platform policy file (`[release] policy`)
//! or nova-policy's defaults. An Enforce violation, or a manifest that cannot be checked,
//! fails the promotion with the violations listed and nothing is pushed; Audit violations are
//! recorded on the promotion. The result is kept in `release_policy_results`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use nova_policy::policy::{CheckOptions, Policy, Status, cli};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use utoipa::ToSchema;

use crate::storage::{Db, StorageError, now_ms};

/// Violations listed in a failure's reason (all are kept in the result).
const IN_REASON: usize = 5;

/// What the gate found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyResult {
    /// No Enforce violation and every manifest could be checked.
    pub passed: bool,
    /// The directory checked, relative to the repository root.
    pub directory: String,
    /// Rule checks that passed.
    pub pass: usize,
    /// Enforce violations, Audit violations and manifests that could not be checked.
    pub findings: Vec<PolicyFinding>,
    /// Unix ms.
    pub checked_at: i64,
}

/// One violation (or unreadable manifest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyFinding {
    /// `enforce` (fails the promotion), `audit` (recorded), or `error` (could not be checked;
    /// fails it too).
    pub mode: String,
    /// The rule, e.g. `require-probes`.
    pub rule: Option<String>,
    /// The file, relative to the repository root.
    pub file: String,
    /// `Kind namespace/name`.
    pub object: Option<String>,
    pub message: String,
}

impl PolicyResult {
    /// The Audit violations.
    pub fn audit_count(&self) -> usize {
        self.findings.iter().filter(|f| f.mode == "audit").count()
    }

    /// Why the gate failed the promotion: the blocking findings (rule, file, object).
    pub fn reason(&self) -> String {
        let blocking: Vec<&PolicyFinding> = self.findings.iter().filter(|f| f.mode != "audit").collect();
        let listed: Vec<String> = blocking
            .iter()
            .take(IN_REASON)
            .map(|f| format!("{} in {}{}: {}", f.rule.as_deref().unwrap_or("unreadable"), f.file, f.object.as_ref().map(|o| format!(" ({o})")).unwrap_or_default(), f.message))
            .collect();
        let more = blocking.len().saturating_sub(IN_REASON);
        format!(
            "policy gate: {} blocking finding(s) in {}/: {}{}; nothing was pushed",
            blocking.len(),
            self.directory,
            listed.join("; "),
            if more > 0 { format!("; and {more} more") } else { String::new() }
        )
    }
}

/// Checks the manifests in the directory of `file` (relative to the clone `root`).
pub fn check(policy: &Policy, root: &Path, file: &str) -> PolicyResult {
    let directory = Path::new(file).parent().map(|d| d.to_string_lossy().into_owned()).filter(|d| !d.is_empty()).unwrap_or_else(|| ".".into());
    let options = CheckOptions::default();
    let contents = cli::read_manifests(&[root.join(&directory)], None, &options);
    let report = cli::check_contents(policy, &contents, &options);
    let prefix = format!("{}/", root.display());
    let findings = report
        .entries
        .iter()
        .filter_map(|e| {
            let mode = match e.status {
                Status::Fail => "enforce",
                Status::Warn => "audit",
                Status::Error => "error",
                Status::Info => return None,
            };
            Some(PolicyFinding {
                mode: mode.into(),
                rule: e.rule.map(|r| r.as_str().to_string()),
                file: e.file.strip_prefix(&prefix).unwrap_or(&e.file).to_string(),
                object: e.resource.as_ref().map(|r| format!("{} {}/{}", r.kind, r.namespace, r.name)),
                message: e.message.clone(),
            })
        })
        .collect();
    PolicyResult { passed: !report.enforce_failed() && !report.has_errors(), directory, pass: report.summary.pass, findings, checked_at: now_ms() }
}

/// The platform policy: `[release] policy`, or nova-policy's defaults.
pub fn load(path: Option<&PathBuf>) -> Result<Policy, String> {
    match path {
        Some(p) => Policy::load(p).map_err(|e| format!("release.policy: {e}")),
        None => Ok(Policy::default()),
    }
}

/// A gate for one write: the check the writer calls in the clone, and where its result waits
/// to be recorded.
#[derive(Clone)]
pub struct Gate {
    policy: Arc<Policy>,
    result: Arc<Mutex<Option<PolicyResult>>>,
}

impl Gate {
    pub fn new(policy: Policy) -> Self {
        Self { policy: Arc::new(policy), result: Arc::default() }
    }

    /// The check [`super::gitops::GitOpsWrite::check`] runs: `Err` (the reason) stops the write.
    pub fn hook(&self) -> super::gitops::Check {
        let gate = self.clone();
        Arc::new(move |root: &Path, file: &str| {
            let result = check(&gate.policy, root, file);
            let outcome = if result.passed { Ok(()) } else { Err(result.reason()) };
            *gate.result.lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
            outcome
        })
    }

    /// The last result, once the writer has run the check.
    pub fn take(&self) -> Option<PolicyResult> {
        self.result.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Records a promotion's result (replacing an earlier one, e.g. of a retried write).
pub async fn record(db: &Db, promotion_id: &str, result: &PolicyResult) -> Result<(), StorageError> {
    let json = serde_json::to_string(result).expect("a policy result serializes");
    sqlx::query(db.sql(
        "INSERT INTO release_policy_results (promotion_id, result, checked_at) VALUES ($1, $2, $3)
         ON CONFLICT (promotion_id) DO UPDATE SET result = excluded.result, checked_at = excluded.checked_at",
    ))
    .bind(promotion_id)
    .bind(json)
    .bind(result.checked_at)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// A promotion's result, if its write ran the gate.
pub async fn result(db: &Db, promotion_id: &str) -> Result<Option<PolicyResult>, StorageError> {
    let row = sqlx::query(db.sql("SELECT result FROM release_policy_results WHERE promotion_id = $1")).bind(promotion_id).fetch_optional(db.pool()).await?;
    row.map(|r| {
        let text: String = r.try_get(0)?;
        serde_json::from_str(&text).map_err(|e| StorageError::Corrupt(format!("release_policy_results.result: {e}")))
    })
    .transpose()
}
