//! The policy: which rules run, in which mode, on which resources; read from a YAML file.
//!
//! ```yaml
//! rules:
//!   require-labels:
//!     mode: Enforce
//!     exclude:
//!       namespaces: [kube-system]
//!       labels: {nova.dev/policy-exempt: "true"}
//!   require-probes:
//!     mode: Audit
//!     requireHttpGet: false
//!   restrict-image-registries:
//!     allowedRegistries: [registry.example.com/, ghcr.io/acme/]
//! ```
//!
//! Rules the file does not name keep their defaults (see [`Policy::default`]).

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::rules::RuleId;

/// What a rule's violation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum Mode {
    /// A violation fails the check (exit code 1, promotion blocked).
    #[serde(alias = "enforce")]
    Enforce,
    /// A violation is reported as a warning only.
    #[serde(alias = "audit")]
    Audit,
    /// The rule does not run.
    #[serde(alias = "off")]
    Off,
}

/// Resources a rule leaves alone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exclude {
    /// Namespaces whose resources are excluded; a resource without a namespace is in
    /// `default`.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// A resource carrying any of these labels (key and value equal) on its own metadata is
    /// excluded.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl Exclude {
    /// Whether a resource in `namespace` with `labels` is excluded.
    pub fn matches<'l>(
        &self,
        namespace: &str,
        mut labels: impl FnMut(&str) -> Option<&'l str>,
    ) -> bool {
        self.namespaces.iter().any(|excluded| excluded == namespace)
            || self
                .labels
                .iter()
                .any(|(key, value)| labels(key) == Some(value.as_str()))
    }
}

/// How one rule is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSettings {
    /// Enforce, Audit or Off.
    pub mode: Mode,
    /// Resources the rule skips.
    pub exclude: Exclude,
}

/// The rules to apply and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    rules: [RuleSettings; RuleId::ALL.len()],
    require_http_get: bool,
    allowed_registries: Vec<String>,
}

impl Default for Policy {
    /// `require-labels`, `require-probes` (with `httpGet` required), `disallow-latest-tag`
    /// and `require-requests-limits` in Enforce; `restrict-image-registries` off, since it
    /// has no registries to allow.
    fn default() -> Self {
        let rules = RuleId::ALL.map(|rule| RuleSettings {
            mode: if rule == RuleId::RestrictImageRegistries {
                Mode::Off
            } else {
                Mode::Enforce
            },
            exclude: Exclude::default(),
        });
        Policy {
            rules,
            require_http_get: true,
            allowed_registries: Vec::new(),
        }
    }
}

/// A policy file that cannot be used. Its display names the file and, where there is one,
/// the rule and field.
#[derive(Debug, thiserror::Error)]
#[error("policy file {file}: {problem}")]
pub struct PolicyFileError {
    file: String,
    problem: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    rules: BTreeMap<String, RuleEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RuleEntry {
    mode: Option<Mode>,
    #[serde(default)]
    exclude: Exclude,
    require_http_get: Option<bool>,
    allowed_registries: Option<Vec<String>>,
}

/// Policy files are small; anything near these limits is not a policy file.
fn policy_file_budget() -> Option<serde_saphyr::Budget> {
    serde_saphyr::budget! { max_events: 100_000, max_nodes: 50_000, max_aliases: 100, max_documents: 1 }
}

impl Policy {
    /// Reads a policy from YAML text; `name` is how errors refer to it.
    pub fn from_yaml(text: &str, name: &str) -> Result<Policy, PolicyFileError> {
        let fail = |problem: String| PolicyFileError {
            file: name.to_owned(),
            problem,
        };
        let options = serde_saphyr::options! { budget: policy_file_budget(), with_snippet: false };
        let file: PolicyFile = serde_saphyr::from_str_with_options(text, options)
            .map_err(|error| fail(error.to_string()))?;
        let unknown: Vec<&str> = file
            .rules
            .keys()
            .map(String::as_str)
            .filter(|id| id.parse::<RuleId>().is_err())
            .collect();
        if !unknown.is_empty() {
            let known: Vec<&str> = RuleId::ALL.iter().map(|rule| rule.as_str()).collect();
            return Err(fail(format!(
                "unknown rule ids: {} (known rules: {})",
                unknown.join(", "),
                known.join(", ")
            )));
        }
        let mut policy = Policy::default();
        for (id, entry) in file.rules {
            let rule: RuleId = id.parse().expect("rule ids were checked above");
            policy
                .apply(rule, entry)
                .map_err(|problem| fail(format!("rule {rule}: {problem}")))?;
        }
        Ok(policy)
    }

    /// Reads a policy file.
    pub fn load(path: &Path) -> Result<Policy, PolicyFileError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| PolicyFileError {
            file: name.clone(),
            problem: error.to_string(),
        })?;
        Policy::from_yaml(&text, &name)
    }

    /// How `rule` is applied.
    pub fn rule(&self, rule: RuleId) -> &RuleSettings {
        &self.rules[rule as usize]
    }

    /// Whether `require-probes` wants `httpGet` probes rather than any probe.
    pub fn require_http_get(&self) -> bool {
        self.require_http_get
    }

    /// Image reference prefixes `restrict-image-registries` allows.
    pub fn allowed_registries(&self) -> &[String] {
        &self.allowed_registries
    }

    fn apply(&mut self, rule: RuleId, entry: RuleEntry) -> Result<(), String> {
        if entry.require_http_get.is_some() && rule != RuleId::RequireProbes {
            return Err(format!(
                "field `requireHttpGet` belongs to {}",
                RuleId::RequireProbes
            ));
        }
        if entry.allowed_registries.is_some() && rule != RuleId::RestrictImageRegistries {
            return Err(format!(
                "field `allowedRegistries` belongs to {}",
                RuleId::RestrictImageRegistries
            ));
        }
        if let Some(require) = entry.require_http_get {
            self.require_http_get = require;
        }
        let settings = &mut self.rules[rule as usize];
        settings.exclude = entry.exclude;
        if let Some(registries) = entry.allowed_registries {
            if let Some(empty) = registries
                .iter()
                .position(|prefix| prefix.trim().is_empty())
            {
                return Err(format!("allowedRegistries[{empty}] is empty"));
            }
            self.allowed_registries = registries;
            settings.mode = Mode::Enforce;
        }
        if let Some(mode) = entry.mode {
            settings.mode = mode;
        }
        if rule == RuleId::RestrictImageRegistries
            && settings.mode != Mode::Off
            && self.allowed_registries.is_empty()
        {
            return Err("mode is set but `allowedRegistries` is empty or missing".to_owned());
        }
        Ok(())
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Enforce => "Enforce",
            Mode::Audit => "Audit",
            Mode::Off => "Off",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        Policy::from_yaml(text, "p.yaml").unwrap_err().to_string()
    }

    #[test]
    fn defaults_enforce_four_rules_and_leave_registries_off() {
        let policy = Policy::default();
        for rule in RuleId::ALL {
            let expected = if rule == RuleId::RestrictImageRegistries {
                Mode::Off
            } else {
                Mode::Enforce
            };
            assert_eq!(policy.rule(rule).mode, expected, "{rule}");
        }
        assert!(policy.require_http_get());
    }

    #[test]
    fn an_empty_file_is_the_default_policy() {
        assert_eq!(
            Policy::from_yaml("rules: {}\n", "p.yaml").unwrap(),
            Policy::default()
        );
    }

    #[test]
    fn settings_apply_per_rule() {
        let policy = Policy::from_yaml(
            "rules:\n  require-probes:\n    mode: Audit\n    requireHttpGet: false\n    exclude:\n      namespaces: [kube-system]\n      labels: {tier: legacy}\n  restrict-image-registries:\n    allowedRegistries: [registry.example.com/]\n",
            "p.yaml",
        )
        .unwrap();
        let probes = policy.rule(RuleId::RequireProbes);
        assert_eq!(probes.mode, Mode::Audit);
        assert!(!policy.require_http_get());
        assert!(probes.exclude.matches("kube-system", |_| None));
        assert!(
            probes
                .exclude
                .matches("default", |key| (key == "tier").then_some("legacy"))
        );
        assert!(
            !probes
                .exclude
                .matches("default", |key| (key == "tier").then_some("web"))
        );
        assert_eq!(
            policy.rule(RuleId::RestrictImageRegistries).mode,
            Mode::Enforce
        );
        assert_eq!(policy.allowed_registries(), ["registry.example.com/"]);
    }

    #[test]
    fn unknown_rule_ids_are_all_named() {
        let message = error("rules:\n  require-label: {}\n  no-root: {}\n  require-probes: {}\n");
        assert!(message.starts_with("policy file p.yaml: unknown rule ids: no-root, require-label (known rules: require-labels,"), "{message}");
    }

    #[test]
    fn unknown_and_misplaced_fields_are_named() {
        assert!(
            error("rules:\n  require-probes:\n    requireHttpGets: true\n")
                .contains("requireHttpGets")
        );
        assert_eq!(
            error("rules:\n  require-labels:\n    allowedRegistries: [a/]\n"),
            "policy file p.yaml: rule require-labels: field `allowedRegistries` belongs to restrict-image-registries"
        );
        assert!(error("rule: {}\n").contains("rule"));
        assert!(error("rules:\n  require-labels:\n    mode: Block\n").contains("Block"));
    }

    #[test]
    fn registries_cannot_be_enforced_without_a_list() {
        assert_eq!(
            error("rules:\n  restrict-image-registries:\n    mode: Enforce\n"),
            "policy file p.yaml: rule restrict-image-registries: mode is set but `allowedRegistries` is empty or missing"
        );
        assert!(
            error("rules:\n  restrict-image-registries:\n    allowedRegistries: ['']\n")
                .contains("allowedRegistries[0] is empty")
        );
    }

    #[test]
    fn a_yaml_bomb_as_policy_file_is_refused() {
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for level in 1..9 {
            bomb.push_str(&format!(
                "a{level}: &a{level} [{}]\n",
                vec![format!("*a{}", level - 1); 10].join(", ")
            ));
        }
        assert!(error(&bomb).starts_with("policy file p.yaml:"));
    }
}
