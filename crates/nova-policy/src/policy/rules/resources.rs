//! `require-requests-limits`: containers say what they need and cap their memory.

use super::{Findings, containers};
use crate::policy::tree::Tree;
use crate::policy::workload::{Group, Workload};

const REQUIRED: [[&str; 3]; 3] = [
    ["resources", "requests", "cpu"],
    ["resources", "requests", "memory"],
    ["resources", "limits", "memory"],
];

/// Regular and init containers are checked (init containers count towards a pod's
/// requests); ephemeral containers may not set resources.
pub(super) fn check(workload: &Workload<'_>, tree: &Tree<'_>, findings: &mut Findings) {
    for container in containers(workload, &[Group::Regular, Group::Init], findings) {
        let missing: Vec<String> = REQUIRED
            .iter()
            .filter(|path| {
                tree.path(container.node, &path[..])
                    .and_then(|v| tree.text(v))
                    .is_none_or(|v| v.trim().is_empty())
            })
            .map(|path| path.join("."))
            .collect();
        if !missing.is_empty() {
            findings.violations.push(format!(
                "{}: missing {}",
                container.label(),
                missing.join(", ")
            ));
        }
    }
}
