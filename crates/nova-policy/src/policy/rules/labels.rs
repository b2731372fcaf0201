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

pub(super) fn check(workload: &Workload<'_>, tree: &Tree<'_>, findings: &mut Findings) {
    for (place, labels) in &workload.label_sets {
        let value = |key: &str| {
            labels
                .and_then(|labels| tree.get(labels, key))
                .and_then(|v| tree.text(v))
        };
        match value(REQUIRED) {
            None => findings
                .violations
                .push(format!("label {REQUIRED} is missing from {place}")),
            Some(name) if name.trim().is_empty() => findings
                .violations
                .push(format!("label {REQUIRED} is empty in {place}")),
            Some(_) => {}
        }
        let missing: Vec<&str> = RECOMMENDED
            .into_iter()
            .filter(|key| value(key).is_none_or(|v| v.trim().is_empty()))
            .collect();
        if !missing.is_empty() {
            findings.infos.push(format!(
                "recommended labels missing from {place}: {}",
                missing.join(", ")
            ));
        }
    }
}
