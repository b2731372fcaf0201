//! The `nova.dev/build-pipeline` annotation: which build backend builds a component, and
//! what it runs there.
//!
//! `<backend>:<target>` names a configured backend (by its name in `[build_backends.<name>]`,
//! or by its type when exactly one backend of that type is configured) and a target whose
//! meaning is the backend's: a Jenkins job path (`jenkins:payments/payment-service-build`), a
//! GitHub workflow (`github-actions:org/repo/build.yml`). `local` is Nova's own runner and
//! takes no target. Whether the backend exists and the target suits it is decided where the
//! configuration is known; this parser checks the shape only.

use std::fmt;

/// The annotation's key.
pub const BUILD_PIPELINE_ANNOTATION: &str = "nova.dev/build-pipeline";

/// The value that selects the local runner.
pub const LOCAL: &str = "local";

/// Why an annotation value is not a build pipeline; the message names the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{BUILD_PIPELINE_ANNOTATION}: {0}")]
pub struct PipelineError(String);

impl PipelineError {
    /// An error with this rule, for callers that check what only the configuration knows
    /// (whether the backend exists, whether the target suits it).
    pub fn new(rule: impl Into<String>) -> Self {
        Self(rule.into())
    }
}

/// A parsed `nova.dev/build-pipeline` value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BuildPipeline {
    /// `local`: Nova's own runner.
    Local,
    /// `<backend>:<target>`.
    Remote {
        /// A backend's configured name or its type (`jenkins`, `github-actions`), lowercase.
        backend: String,
        /// Backend-specific: a Jenkins job path, a GitHub `owner/repo/workflow.yml`.
        target: String,
    },
}

const EXAMPLE: &str = "write <backend>:<target> (e.g. jenkins:payments/payment-service-build, github-actions:org/repo/build.yml) or local";

impl BuildPipeline {
    /// Parses an annotation value. Surrounding whitespace is ignored; the backend part is
    /// case-insensitive.
    pub fn parse(s: &str) -> Result<Self, PipelineError> {
        let fail = |rule: String| Err(PipelineError(rule));
        let s = s.trim();
        if s.is_empty() {
            return fail(format!("must not be empty; {EXAMPLE}"));
        }
        if s.chars().any(|c| c.is_control()) {
            return fail("must not contain control characters".into());
        }
        if s.eq_ignore_ascii_case(LOCAL) {
            return Ok(Self::Local);
        }
        let Some((backend, target)) = s.split_once(':') else {
            return fail(format!("{s:?} names no target; {EXAMPLE}"));
        };
        let backend = backend.trim().to_ascii_lowercase();
        let target = target.trim();
        if backend == LOCAL {
            return fail("the local runner takes no target: write just local".into());
        }
        if let Err(rule) = check_backend_name(&backend) {
            return fail(format!("backend {backend:?} {rule}; {EXAMPLE}"));
        }
        if target.is_empty() {
            return fail(format!("backend {backend:?} is given no target; {EXAMPLE}"));
        }
        if target.len() > 512 {
            return fail("the target must be at most 512 bytes".into());
        }
        if target.chars().any(char::is_whitespace) {
            return fail(format!("the target {target:?} must not contain spaces"));
        }
        Ok(Self::Remote { backend, target: target.to_string() })
    }
}

/// The rule for a backend's configured name (and the backend part of the annotation):
/// lowercase letters, digits, `-` and `_`, starting with a letter or digit, at most 63 bytes.
pub fn check_backend_name(name: &str) -> Result<(), &'static str> {
    let mut chars = name.chars();
    let ok = (1..=63).contains(&name.len())
        && chars.next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok { Ok(()) } else { Err("must be lowercase letters, digits, '-' or '_' (at most 63, starting with a letter or digit)") }
}

impl fmt::Display for BuildPipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local => f.write_str(LOCAL),
            Self::Remote { backend, target } => write!(f, "{backend}:{target}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(backend: &str, target: &str) -> BuildPipeline {
        BuildPipeline::Remote { backend: backend.into(), target: target.into() }
    }

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!(BuildPipeline::parse("jenkins:payments/payment-service-build").unwrap(), remote("jenkins", "payments/payment-service-build"));
        assert_eq!(BuildPipeline::parse("github-actions:org/repo/build.yml").unwrap(), remote("github-actions", "org/repo/build.yml"));
        assert_eq!(BuildPipeline::parse(" Jenkins-EU : team/job ").unwrap(), remote("jenkins-eu", "team/job"));
        assert_eq!(BuildPipeline::parse("local").unwrap(), BuildPipeline::Local);
        assert_eq!(BuildPipeline::parse("LOCAL").unwrap(), BuildPipeline::Local);
        // Only the first ':' separates: a target may contain more.
        assert_eq!(BuildPipeline::parse("ci:a/b:c").unwrap(), remote("ci", "a/b:c"));
        assert_eq!(remote("jenkins", "a/b").to_string(), "jenkins:a/b");
    }

    #[test]
    fn refuses_with_the_rule() {
        for (bad, words) in [
            ("", "must not be empty"),
            ("jenkins", "names no target"),
            ("jenkins:", "no target"),
            (":a/b", "backend \"\""),
            ("jen kins:a", "backend"),
            ("jenkins:a b", "spaces"),
            ("local:x", "takes no target"),
            ("jenkins:a\nb", "control"),
            ("-x:a", "backend"),
        ] {
            let e = BuildPipeline::parse(bad).unwrap_err().to_string();
            assert!(e.starts_with("nova.dev/build-pipeline: ") && e.contains(words), "{bad:?}: {e}");
        }
        assert!(BuildPipeline::parse(&format!("j:{}", "a".repeat(513))).is_err());
    }

    #[test]
    fn backend_names() {
        for ok in ["jenkins", "github-actions", "ci_2", "1"] {
            assert!(check_backend_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Jenkins", "-a", "a.b", "a b", &"a".repeat(64)] {
            assert!(check_backend_name(bad).is_err(), "{bad:?}");
        }
    }
}
