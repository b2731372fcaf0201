//! The built-in rules: their ids, and what each checks on a workload.

mod images;
mod labels;
mod probes;
mod resources;

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use super::config::Policy;
use super::tree::Tree;
use super::workload::{Container, Group, Workload};

/// A built-in rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuleId {
    /// `app.kubernetes.io/name` on the workload and its pod template.
    RequireLabels,
    /// Liveness and readiness probes on every container, `httpGet` unless configured off.
    RequireProbes,
    /// No `:latest` and no untagged image; digests pass.
    DisallowLatestTag,
    /// Images only from the allowed registries.
    RestrictImageRegistries,
    /// CPU and memory requests and a memory limit on every container.
    RequireRequestsLimits,
}

impl RuleId {
    /// Every rule, in the order they are checked and reported.
    pub const ALL: [RuleId; 5] = [
        RuleId::RequireLabels,
        RuleId::RequireProbes,
        RuleId::DisallowLatestTag,
        RuleId::RestrictImageRegistries,
        RuleId::RequireRequestsLimits,
    ];

    /// The id as written in policy files and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleId::RequireLabels => "require-labels",
            RuleId::RequireProbes => "require-probes",
            RuleId::DisallowLatestTag => "disallow-latest-tag",
            RuleId::RestrictImageRegistries => "restrict-image-registries",
            RuleId::RequireRequestsLimits => "require-requests-limits",
        }
    }

    /// One sentence on what the rule wants, for SARIF and JUnit readers.
    pub fn description(self) -> &'static str {
        match self {
            RuleId::RequireLabels => {
                "Workloads and their pod templates carry the app.kubernetes.io/name label."
            }
            RuleId::RequireProbes => {
                "Every container has liveness and readiness probes (httpGet unless configured otherwise)."
            }
            RuleId::DisallowLatestTag => {
                "Images are pinned to a tag other than latest, or to a digest."
            }
            RuleId::RestrictImageRegistries => "Images come from an allowed registry.",
            RuleId::RequireRequestsLimits => "Containers request CPU and memory and limit memory.",
        }
    }
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text is not the id of a built-in rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown rule id `{0}`")]
pub struct UnknownRule(String);

impl FromStr for RuleId {
    type Err = UnknownRule;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        RuleId::ALL
            .into_iter()
            .find(|rule| rule.as_str() == text)
            .ok_or_else(|| UnknownRule(text.to_owned()))
    }
}

/// What a rule found on one workload.
#[derive(Debug, Default)]
pub(crate) struct Findings {
    /// Each a violation of the rule.
    pub violations: Vec<String>,
    /// Advice that is neither a warning nor a failure.
    pub infos: Vec<String>,
}

/// Runs `rule` on `workload`.
pub(crate) fn check(
    rule: RuleId,
    policy: &Policy,
    workload: &Workload<'_>,
    tree: &Tree<'_>,
) -> Findings {
    let mut findings = Findings::default();
    match rule {
        RuleId::RequireLabels => labels::check(workload, tree, &mut findings),
        RuleId::RequireProbes => {
            probes::check(policy.require_http_get(), workload, tree, &mut findings)
        }
        RuleId::DisallowLatestTag => images::check_tags(workload, tree, &mut findings),
        RuleId::RestrictImageRegistries => {
            images::check_registries(policy.allowed_registries(), workload, tree, &mut findings)
        }
        RuleId::RequireRequestsLimits => resources::check(workload, tree, &mut findings),
    }
    findings
}

/// The containers of `groups` to check; a workload without any `containers` is itself a
/// violation of every rule that checks containers.
fn containers<'w, 't>(
    workload: &'w Workload<'t>,
    groups: &'static [Group],
    findings: &mut Findings,
) -> impl Iterator<Item = &'w Container<'t>> + use<'w, 't> {
    findings.violations.extend(workload.missing_containers());
    workload
        .containers
        .iter()
        .filter(move |c| groups.contains(&c.group))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        for rule in RuleId::ALL {
            assert_eq!(rule.as_str().parse::<RuleId>(), Ok(rule));
        }
        assert_eq!(
            "no-such-rule".parse::<RuleId>(),
            Err(UnknownRule("no-such-rule".into()))
        );
    }
}
