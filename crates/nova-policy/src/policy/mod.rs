//! Platform checks on Kubernetes manifests: labels, probes, image tags and registries,
//! resource requests and limits, each rule in Enforce or Audit mode.
//!
//! [`check_documents`] is what both `nova policy check` and the promotion gate call:
//!
//! ```
//! use nova_policy::policy::{Input, Policy, check_documents};
//!
//! let policy = Policy::from_yaml("rules:\n  require-probes: {mode: Audit}\n", "policy.yaml").unwrap();
//! let rendered = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\n";
//! let report = check_documents(&policy, &[Input::text("rendered/web.yaml", rendered)]);
//! assert!(!report.enforce_failed() && !report.has_errors());
//! assert_eq!(report.summary.skip, 1);
//! ```

mod check;
pub mod cli;
mod config;
mod documents;
pub mod output;
mod report;
mod rules;
mod tree;
mod workload;

pub use check::{CheckOptions, Input, check_documents, check_documents_with};
pub use config::{Exclude, Mode, Policy, PolicyFileError, RuleSettings};
pub use report::{Entry, Report, Resource, Status, Summary};
pub use rules::{RuleId, UnknownRule};
