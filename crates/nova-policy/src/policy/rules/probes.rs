//! `require-probes`: every long-running container has liveness and readiness probes.
//!
//! Kyverno's stock rule accepts any probe; the platform asks for `httpGet` (configurable),
//! because only an HTTP endpoint shows that the application itself answers.

use super::{Findings, containers};
use crate::policy::tree::Tree;
use crate::policy::workload::{Group, Workload};

const PROBES: [&str; 2] = ["livenessProbe", "readinessProbe"];
const OTHER_HANDLERS: [&str; 3] = ["exec", "tcpSocket", "grpc"];

/// Regular containers are checked, and init containers that run as sidecars
/// (`restartPolicy: Always`); other init containers and ephemeral containers take no probes.
pub(super) fn check(
    require_http_get: bool,
    workload: &Workload<'_>,
    tree: &Tree<'_>,
    findings: &mut Findings,
) {
    for container in containers(workload, &[Group::Regular, Group::Init], findings) {
        let sidecar = tree
            .get(container.node, "restartPolicy")
            .and_then(|p| tree.text(p))
            == Some("Always");
        if container.group == Group::Init && !sidecar {
            continue;
        }
        for probe in PROBES {
            let Some(handlers) = tree.get(container.node, probe) else {
                findings
                    .violations
                    .push(format!("{}: {probe} is missing", container.label()));
                continue;
            };
            if require_http_get && tree.get(handlers, "httpGet").is_none() {
                let problem = match OTHER_HANDLERS
                    .into_iter()
                    .find(|h| tree.get(handlers, h).is_some())
                {
                    Some(other) => format!("uses {other}, not httpGet"),
                    None => "has no httpGet".to_owned(),
                };
                findings
                    .violations
                    .push(format!("{}: {probe} {problem}", container.label()));
            }
        }
    }
}
