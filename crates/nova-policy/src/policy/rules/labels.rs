//! `require-labels`: the workload and its pod template name their application.

use super::Findings;
use crate::policy::tree::Tree;
use crate::policy::workload::Workload;

/// Must be present and non-empty on the workload and on its pod template.
const REQUIRED: &str = "app.kubernetes.io/name";

/// Recommended by Kubernetes' common labels; a missing one is only an `info` line.
const RECOMMENDED: [&str; 3] = [
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/version",
];

/// One violation per place missing the required label, and one `info` line for all the
/// places missing recommended ones.
pub(super) fn check(workload: &Workload<'_>, tree: &Tree<'_>, findings: &mut Findings) {
    let mut advice = Vec::new();
    for (place, labels) in &workload.label_sets {
        let value = |key: &str| {
            labels
                .and_then(|labels| tree.get(labels, key))
                .and_then(|v| tree.text(v))
                .filter(|v| !v.trim().is_empty())
        };
        if value(REQUIRED).is_none() {
            let present = labels
                .and_then(|labels| tree.get(labels, REQUIRED))
                .is_some();
            let problem = if present {
                "is empty in"
            } else {
                "is missing from"
            };
            findings
                .violations
                .push(format!("label {REQUIRED} {problem} {place}"));
        }
        let missing: Vec<&str> = RECOMMENDED
            .into_iter()
            .filter(|key| value(key).is_none())
            .collect();
        if !missing.is_empty() {
            advice.push(format!("{} in {place}", missing.join(", ")));
        }
    }
    if !advice.is_empty() {
        findings
            .infos
            .push(format!("recommended labels missing: {}", advice.join("; ")));
    }
}
