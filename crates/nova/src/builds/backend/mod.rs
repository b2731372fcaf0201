//! Remote build backends: the systems that run an image build for Nova — Jenkins through its
//! remote access API ([`jenkins`]) and GitHub Actions through `workflow_dispatch`
//! ([`github`]). The local runner is not here; a component that names `local` is recognised
//! by [`BuildBackends::select`] and handed to it.
//!
//! Every backend is idempotent per build: the build's id travels with the run as a
//! correlation value (`NOVA_BUILD_ID` in Jenkins, the `nova_build_id` input and the run's name
//! on GitHub), so `start` after a crash finds the run it already started. A [`RunHandle`] is
//! what the caller persists; status, logs and cancel need nothing else. docs/BUILDS.md
//! describes what a Jenkins job and a GitHub workflow must accept.

pub mod github;
mod http;
pub mod jenkins;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use nova_domain::build::{BuildArgName, GitRef, RepoPath};
use nova_domain::build_pipeline::{BuildPipeline, LOCAL, PipelineError, check_backend_name};
use nova_domain::{EntityRef, Sensitive};
use serde::{Deserialize, Serialize};

use crate::health::HealthReport;

/// What to build: everything a backend passes on to the job or workflow.
#[derive(Debug, Clone)]
pub struct BuildSpec {
    /// Nova's id for this build; the correlation id that makes `start` idempotent.
    pub build_id: uuid::Uuid,
    /// The component being built.
    pub component: EntityRef,
    /// Backend-specific: a Jenkins job path `folder/job`, a GitHub `owner/repo/workflow.yml`.
    pub target: String,
    /// The repository to clone.
    pub git_url: String,
    pub git_ref: GitRef,
    /// The commit the ref pointed at when the build was asked for, if known.
    pub commit: Option<String>,
    pub dockerfile: RepoPath,
    pub context: RepoPath,
    /// The repository to push to, e.g. `registry.example.com/payments/payment-service`.
    pub image: String,
    pub tag: String,
    pub build_args: Vec<BuildArg>,
}

/// A `--build-arg`. A secret one is sent only where the backend can keep it secret.
#[derive(Debug, Clone)]
pub struct BuildArg {
    pub name: BuildArgName,
    pub value: Sensitive<String>,
    pub secret: bool,
}

/// A started run, as the caller persists it. `id` is the backend's own (opaque) reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunHandle {
    /// The configured backend's name.
    pub backend: String,
    pub id: String,
    /// Where a person can follow the run.
    pub url: Option<String>,
}

/// Where a run is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunStatus {
    pub state: RunState,
    pub url: Option<String>,
    /// When it started running (Unix milliseconds).
    pub started_at_ms: Option<i64>,
    /// How long it ran, once finished.
    pub duration_ms: Option<i64>,
    /// The pushed image's digest, when the backend reports one.
    pub digest: Option<String>,
}

/// A run's state. `Failed` says why, in the backend's words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum RunState {
    Queued,
    Running,
    Succeeded,
    Failed(String),
    Cancelled,
    TimedOut,
}

impl RunState {
    /// Whether the run is over.
    pub fn is_finished(&self) -> bool {
        !matches!(self, Self::Queued | Self::Running)
    }
}

/// Log text from an offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChunk {
    pub text: String,
    /// The offset to ask for next.
    pub next_offset: u64,
    /// Whether the run is still producing output.
    pub more: bool,
}

/// Why a backend call failed, in variants a caller can act on. Messages name the backend, the
/// job or workflow and the setting to check; they never carry a secret or a request body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The credential was refused (401).
    #[error("{0}")]
    Unauthorized(String),
    /// The credential works but lacks a permission (403).
    #[error("{0}")]
    Forbidden(String),
    /// The job, workflow or run does not exist (or is invisible to the credential).
    #[error("{0}")]
    NotFound(String),
    /// The backend asks to slow down; retry after the given time (when it said).
    #[error("the build backend is rate limiting Nova{}", retry_after.map(|d| format!("; retry after {}s", d.as_secs())).unwrap_or_default())]
    RateLimited { retry_after: Option<Duration> },
    /// The backend cannot be reached or answered 5xx; retrying later may work.
    #[error("{0}")]
    Unavailable(String),
    /// The backend or Nova refused this build as asked (bad parameters, a secret it cannot
    /// keep, a job that lacks Nova's parameters); retrying the same request will not help.
    #[error("{0}")]
    Rejected(String),
    /// The backend answered something Nova does not understand.
    #[error("{0}")]
    Protocol(String),
}

impl BackendError {
    /// Whether the same call may succeed later without a change of configuration.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::RateLimited { .. } | Self::Unavailable(_))
    }

    /// The same error with every one of `secrets` cut from its message: a service may echo
    /// what it was sent.
    fn redact(self, secrets: &[&str]) -> Self {
        let r = |m: String| secrets.iter().filter(|s| !s.is_empty()).fold(m, |m, s| m.replace(s, "**REDACTED**"));
        match self {
            Self::Unauthorized(m) => Self::Unauthorized(r(m)),
            Self::Forbidden(m) => Self::Forbidden(r(m)),
            Self::NotFound(m) => Self::NotFound(r(m)),
            Self::Unavailable(m) => Self::Unavailable(r(m)),
            Self::Rejected(m) => Self::Rejected(r(m)),
            Self::Protocol(m) => Self::Protocol(r(m)),
            limited @ Self::RateLimited { .. } => limited,
        }
    }
}

/// A system that runs builds.
#[async_trait]
pub trait BuildBackend: Send + Sync {
    /// Starts the build; idempotent per spec.build_id: a retry after a crash finds the run it already started (correlation id) instead of starting a second one.
    async fn start(&self, spec: &BuildSpec) -> Result<RunHandle, BackendError>;
    /// Where the run is now.
    async fn status(&self, run: &RunHandle) -> Result<RunStatus, BackendError>;
    /// Log text from byte `offset`; `more` tells whether the run is still producing output.
    async fn logs(&self, run: &RunHandle, offset: u64) -> Result<LogChunk, BackendError>;
    /// Asks the backend to stop the run (queued or running); a finished run is left as it is.
    async fn cancel(&self, run: &RunHandle) -> Result<(), BackendError>;
    /// A real, cheap call: authentication works and the target job/workflow exists.
    async fn health_check(&self, target: &str) -> HealthReport;
}

/// `[build_backends.<name>]`: one configured backend, chosen by `type`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum BuildBackendConfig {
    /// `type = "jenkins"`.
    Jenkins(jenkins::JenkinsConfig),
    /// `type = "github-actions"`.
    GithubActions(github::GithubActionsConfig),
}

/// The kinds of remote backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Jenkins,
    GithubActions,
}

impl BackendKind {
    /// Every kind.
    pub const ALL: [BackendKind; 2] = [Self::Jenkins, Self::GithubActions];

    /// The `type` in configuration, and the name an annotation may use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jenkins => jenkins::KIND,
            Self::GithubActions => github::KIND,
        }
    }

    /// Whether `target` has the shape this kind of backend needs; the error says which.
    pub fn check_target(self, target: &str) -> Result<(), String> {
        match self {
            Self::Jenkins => jenkins::JobPath::parse(target).map(drop),
            Self::GithubActions => github::WorkflowTarget::parse(target).map(drop),
        }
    }
}

impl BuildBackendConfig {
    /// Which kind of backend this configures.
    pub fn kind(&self) -> BackendKind {
        match self {
            Self::Jenkins(_) => BackendKind::Jenkins,
            Self::GithubActions(_) => BackendKind::GithubActions,
        }
    }

    /// Checks what serde cannot: the name's shape, the URL. The error is a sentence for the
    /// key `build_backends.<name>`.
    pub fn validate(&self, name: &str) -> Result<(), String> {
        check_backend_name(name).map_err(|rule| format!("the name {rule}"))?;
        if name == LOCAL {
            return Err("the name local is the local runner's; choose another".into());
        }
        if let Some(other) = BackendKind::ALL.into_iter().find(|k| k.as_str() == name && *k != self.kind()) {
            return Err(format!("a backend named {name:?} must have type {:?}, or annotations naming it would be ambiguous", other.as_str()));
        }
        match self {
            Self::Jenkins(c) => c.validate(),
            Self::GithubActions(c) => c.validate(),
        }
    }

    /// Builds the backend. Credentials are read when they are used, not here.
    pub fn build(&self, name: &str) -> Result<Arc<dyn BuildBackend>, String> {
        Ok(match self {
            Self::Jenkins(c) => Arc::new(jenkins::JenkinsBackend::new(name, c.clone())?),
            Self::GithubActions(c) => Arc::new(github::GithubActionsBackend::new(name, c.clone())?),
        })
    }
}

/// The configured backends, by name.
#[derive(Clone, Default)]
pub struct BuildBackends {
    by_name: BTreeMap<String, (BackendKind, Arc<dyn BuildBackend>)>,
}

/// What a component's `nova.dev/build-pipeline` annotation selects.
#[derive(Clone)]
pub enum Selected {
    /// Nova's own runner.
    Local,
    /// A configured remote backend and the target to run there.
    Remote { name: String, backend: Arc<dyn BuildBackend>, target: String },
}

impl BuildBackends {
    /// Builds every configured backend.
    pub fn from_config(config: &BTreeMap<String, BuildBackendConfig>) -> Result<Self, String> {
        let mut by_name = BTreeMap::new();
        for (name, c) in config {
            c.validate(name).map_err(|e| format!("build_backends.{name}: {e}"))?;
            let backend = c.build(name).map_err(|e| format!("build_backends.{name}: {e}"))?;
            by_name.insert(name.clone(), (c.kind(), backend));
        }
        Ok(Self { by_name })
    }

    /// The backend with this configured name (a [`RunHandle`]'s `backend`).
    pub fn get(&self, name: &str) -> Option<&Arc<dyn BuildBackend>> {
        self.by_name.get(name).map(|(_, b)| b)
    }

    /// The configured names with their kinds.
    pub fn names(&self) -> impl Iterator<Item = (&str, BackendKind)> {
        self.by_name.iter().map(|(n, (k, _))| (n.as_str(), *k))
    }

    /// Resolves an annotation value: a configured name first, otherwise a type of which
    /// exactly one backend is configured. The target's shape is checked for that kind.
    pub fn select(&self, annotation: &str) -> Result<Selected, PipelineError> {
        let (backend, target) = match BuildPipeline::parse(annotation)? {
            BuildPipeline::Local => return Ok(Selected::Local),
            BuildPipeline::Remote { backend, target } => (backend, target),
        };
        let error = |rule: String| PipelineError::new(rule);
        let (name, kind, chosen) = if let Some((kind, b)) = self.by_name.get(&backend) {
            (backend.clone(), *kind, b.clone())
        } else if let Some(kind) = BackendKind::ALL.into_iter().find(|k| k.as_str() == backend) {
            let of_kind: Vec<_> = self.by_name.iter().filter(|(_, (k, _))| *k == kind).collect();
            match of_kind.as_slice() {
                [(name, (_, b))] => ((*name).clone(), kind, b.clone()),
                [] => return Err(error(format!("no {backend} backend is configured (add one under [build_backends.<name>] with type = \"{backend}\")"))),
                many => {
                    let names = many.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ");
                    return Err(error(format!("several {backend} backends are configured ({names}); name one of them instead of the type")));
                }
            }
        } else {
            let known = self.by_name.keys().map(String::as_str).chain([LOCAL]).collect::<Vec<_>>().join(", ");
            return Err(error(format!("no build backend named {backend:?} is configured (known: {known})")));
        };
        kind.check_target(&target).map_err(|rule| error(format!("{} target {target:?}: {rule}", kind.as_str())))?;
        Ok(Selected::Remote { name, backend: chosen, target })
    }
}

/// A run's id as the HTTP backends write it: `<target>#<where>#<build id>`, where `<where>` is
/// the backend's own position (a queue item, a build number, a run id). The target comes
/// first and may itself contain `#`.
struct RunId<'a> {
    target: &'a str,
    at: &'a str,
    build_id: uuid::Uuid,
}

impl<'a> RunId<'a> {
    fn encode(target: &str, at: &str, build_id: uuid::Uuid) -> String {
        format!("{target}#{at}#{build_id}")
    }

    fn decode(handle: &'a RunHandle, backend: &str) -> Result<Self, BackendError> {
        let bad = || BackendError::Protocol(format!("run id {:?} was not made by build backend {backend}", handle.id));
        if handle.backend != backend {
            return Err(bad());
        }
        let mut parts = handle.id.rsplitn(3, '#');
        let (Some(id), Some(at), Some(target)) = (parts.next(), parts.next(), parts.next()) else { return Err(bad()) };
        let build_id = id.parse().map_err(|_| bad())?;
        Ok(Self { target, at, build_id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configs(toml: &str) -> BTreeMap<String, BuildBackendConfig> {
        toml::from_str(toml).unwrap()
    }

    const TWO_JENKINS: &str = r#"
        [ci-eu]
        type = "jenkins"
        url = "https://ci-eu.example.com"
        user = "nova"
        token = { env = "JENKINS_EU_TOKEN" }
        [ci-us]
        type = "jenkins"
        url = "https://ci-us.example.com"
        user = "nova"
        token = { env = "JENKINS_US_TOKEN" }
        [gh]
        type = "github-actions"
        token = { file = "/run/secrets/gh" }
    "#;

    #[test]
    fn select_by_name_by_type_and_local() {
        let backends = BuildBackends::from_config(&configs(TWO_JENKINS)).unwrap();
        assert!(matches!(backends.select("local").unwrap(), Selected::Local));
        let Selected::Remote { name, target, .. } = backends.select("ci-eu:payments/build").unwrap() else { panic!("remote") };
        assert_eq!((name.as_str(), target.as_str()), ("ci-eu", "payments/build"));
        let Selected::Remote { name, .. } = backends.select("github-actions:org/repo/build.yml").unwrap() else { panic!("remote") };
        assert_eq!(name, "gh");
        let err = |s: &str| backends.select(s).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err("jenkins:payments/build").contains("several jenkins backends are configured (ci-eu, ci-us)"), "{}", err("jenkins:x"));
        assert!(err("nope:a/b").contains("no build backend named \"nope\" is configured (known: ci-eu, ci-us, gh, local)"));
        assert!(err("gh:org/repo").contains("github-actions target \"org/repo\""), "{}", err("gh:org/repo"));
        assert!(err("ci-eu:a/../b").contains("jenkins target"));
        let none = BuildBackends::default();
        assert!(none.select("jenkins:a").err().unwrap().to_string().contains("no jenkins backend is configured"));
    }

    #[test]
    fn config_is_tagged_strict_and_validated() {
        let c = configs(TWO_JENKINS);
        assert_eq!(c["gh"].kind(), BackendKind::GithubActions);
        let BuildBackendConfig::Jenkins(j) = &c["ci-eu"] else { panic!("jenkins") };
        assert_eq!(j.timeout, Duration::from_secs(30));
        for (bad, words) in [
            ("[x]\ntype = \"jenkins\"\nurl = \"https://j\"\nuser = \"u\"\ntoken = { env = \"T\" }\ncrumb = true", "unknown field `crumb`"),
            ("[x]\ntype = \"jenkins\"\nurl = \"https://j\"\nuser = \"u\"\ntoken = \"hunter2\"", "an inline value is refused"),
            ("[x]\ntype = \"gitlab\"", "unknown variant `gitlab`"),
        ] {
            let e = toml::from_str::<BTreeMap<String, BuildBackendConfig>>(bad).unwrap_err().to_string();
            assert!(e.contains(words) && !e.contains("hunter2"), "{e}");
        }
        let named = |name: &str, toml: &str| configs(&format!("[{name}]\n{toml}"))[name].validate(name);
        let gh = "type = \"github-actions\"\ntoken = { env = \"T\" }";
        assert!(named("local", gh).unwrap_err().contains("local runner"));
        assert!(named("jenkins", gh).unwrap_err().contains("must have type \"jenkins\""));
        assert!(named("github-actions", gh).is_ok());
        assert!(named("gh", "type = \"github-actions\"\ntoken = { env = \"T\" }\napi_url = \"ftp://x\"").unwrap_err().contains("api_url"));
    }

    #[test]
    fn run_ids_round_trip() {
        let id = uuid::Uuid::nil();
        let handle = RunHandle { backend: "ci".into(), id: RunId::encode("a/b#c", "queue/5", id), url: None };
        let decoded = RunId::decode(&handle, "ci").unwrap();
        assert_eq!((decoded.target, decoded.at, decoded.build_id), ("a/b#c", "queue/5", id));
        assert!(RunId::decode(&handle, "other").is_err());
        assert!(RunId::decode(&RunHandle { backend: "ci".into(), id: "x#y".into(), url: None }, "ci").is_err());
    }
}
