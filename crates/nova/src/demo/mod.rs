//! The demo environment `nova serve --demo` brings up next to the example catalog: a CNCF
//! registry and a git server on free loopback ports, seeded from `examples/repos`, and the
//! settings that point Nova at them (docs/DEMO.md).
//!
//! Everything lives under `<server.data_dir>/demo/` and is kept between runs: the second start
//! reuses the repositories, images and (when still free) ports of the first. The registry is
//! a child started in a process group of its own and stopped by PID ([`children::Children`]);
//! the git server runs inside Nova ([`git_http`]), each team reading its own repositories with
//! a read-only token that [`DemoEnvironment::register_credentials`] stores as its credential.
//!
//! ```text
//! demo/nova.toml         the generated settings (registries.demo, builds.*), for reading
//! demo/state.toml        the ports of the last run
//! demo/registry/         config.yml and storage/ of docker-registry
//! demo/git/              bare repositories served over smart HTTP (http://127.0.0.1:PORT/...)
//! demo/buildah/          image storage for seeding (vfs)
//! demo/logs/, demo/run/  the children's output and PID files
//! ```

pub mod children;
pub mod git_http;
pub mod seed;
pub mod tools;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use children::Children;
use git_http::GitHttp;
use seed::SeedPlan;

/// The directory under `examples/` that holds the example service repositories and their
/// seed plan (`seed.toml`).
pub const EXAMPLE_REPOS: &str = "examples/repos";
/// The registry name the example catalog's `nova.dev/image-repository` annotations use.
pub const REGISTRY_NAME: &str = "demo";
/// The URL prefix the example catalog's `nova.dev/git-repository` annotations use; the demo
/// rewrites it to its git server (`builds.git_url_rewrites`).
pub const GIT_URL_PREFIX: &str = "https://git.example.com/";

/// Where the demo environment lives and what it is made of.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// `<server.data_dir>/demo`.
    pub dir: PathBuf,
    /// `examples/repos`: the example repositories and `seed.toml`.
    pub examples: PathBuf,
}

/// The ports of the last run, reused while they are free.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    registry_port: Option<u16>,
    git_port: Option<u16>,
}

/// What one start of the demo environment seeded; nothing on a second start.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Seeded {
    pub repositories: usize,
    pub images: usize,
}

/// What [`DemoEnvironment::bring_up`] started and seeded.
struct Started {
    registry_host: String,
    git: GitHttp,
    seeded: Seeded,
    plan: SeedPlan,
}

/// A running demo environment. Dropping it kills the children; [`DemoEnvironment::stop`]
/// stops them gently.
pub struct DemoEnvironment {
    /// `127.0.0.1:PORT` of the registry.
    pub registry_host: String,
    /// `<server.data_dir>/demo`.
    pub dir: PathBuf,
    /// The GitOps repository, a bare repository under `dir` written by path.
    pub gitops_path: PathBuf,
    /// What this start added to the registry and the git server.
    pub seeded: Seeded,
    /// The example repositories and images.
    pub plan: SeedPlan,
    /// The git server of the example repositories, and each team's token for it.
    pub git: GitHttp,
    children: Children,
}

impl DemoEnvironment {
    /// Starts the registry and the git server, then seeds them (idempotent; progress is printed
    /// on standard error). Children already started are stopped when this fails.
    pub async fn start(options: &DemoOptions) -> anyhow::Result<Self> {
        let dir = &options.dir;
        let plan = SeedPlan::load(&options.examples)?;
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let dir = dir.canonicalize().with_context(|| format!("cannot resolve {}", dir.display()))?;
        let state_file = dir.join("state.toml");
        let previous: State = std::fs::read_to_string(&state_file).ok().and_then(|t| toml::from_str(&t).ok()).unwrap_or_default();
        let mut children = Children::new(dir.join("run"), dir.join("logs"))?;
        children.stop_stale().await;
        match Self::bring_up(&mut children, &dir, &options.examples, plan, previous, &state_file).await {
            Ok(Started { registry_host, git, seeded, plan }) => {
                let gitops_path = dir.join("git").join(seed::GITOPS_REPOSITORY);
                Ok(Self { registry_host, dir, gitops_path, seeded, plan, git, children })
            }
            Err(e) => {
                children.stop_all().await;
                Err(e)
            }
        }
    }

    /// Starts the children and seeds them; [`DemoEnvironment::start`] stops them on failure.
    async fn bring_up(children: &mut Children, dir: &Path, examples: &Path, plan: SeedPlan, previous: State, state_file: &Path) -> anyhow::Result<Started> {
        let registry_port = port(previous.registry_port)?;
        let git_port = port(previous.git_port)?;
        let state = State { registry_port: Some(registry_port), git_port: Some(git_port) };
        std::fs::write(state_file, toml::to_string(&state).expect("state serializes")).with_context(|| format!("cannot write {}", state_file.display()))?;

        let registry_host = format!("127.0.0.1:{registry_port}");
        progress(&format!("starting the registry on http://{registry_host}"));
        let config = write_registry_config(&dir.join("registry"), registry_port)?;
        let mut registry = crate::process::command("docker-registry");
        registry.arg("serve").arg(&config);
        children.start("registry", registry)?;
        children.wait_http("registry", &format!("http://{registry_host}/v2/"), Duration::from_secs(20)).await?;

        let git_root = dir.join("git");
        std::fs::create_dir_all(&git_root).with_context(|| format!("cannot create {}", git_root.display()))?;
        let git = GitHttp::start(git_root, git_port, plan.teams()).await?;
        progress(&format!("serving the git repositories on {}", git.base));

        let seeded = seed::seed(&plan, examples, dir, &git.base, &registry_host).await?;
        Ok(Started { registry_host, git, seeded, plan })
    }

    /// The settings that point Nova at this environment, under the user's own configuration:
    /// the `demo` registry, and builds that clone from the demo git server and push to the
    /// demo registry without TLS.
    pub fn settings(&self) -> toml::Table {
        let text = self.settings_toml();
        text.parse().expect("the generated settings are TOML")
    }

    /// [`DemoEnvironment::settings`] as the file written to `demo/nova.toml`.
    pub fn settings_toml(&self) -> String {
        let host = &self.registry_host;
        let git = &self.git.base;
        format!(
            "# Generated by `nova serve --demo` on every start; a --config file and NOVA_* variables
# override these settings key by key. docs/DEMO.md describes the demo environment.

# The local CNCF registry the example catalog's nova.dev/image-repository annotations name.
[registries.{REGISTRY_NAME}]
type = \"oci\"
url = \"http://{host}\"

[builds]
# Builds of the example components clone from the demo git server and push to the demo registry.
insecure_registries = [\"{host}\"]
git_url_rewrites = {{ \"{GIT_URL_PREFIX}\" = \"{git}\" }}

# dev -> staging -> production on the demo GitOps repository (docs/RELEASE.md).
{environments}",
            environments = self.environments_toml(),
        )
    }

    /// dev → staging → production on the demo GitOps repository (read and written through its
    /// `file://` URL: the git server's team tokens are read-only, and a GitOps repository is
    /// written with a platform deploy credential, which the demo has no server for):
    /// Nova's builds of `main` go to dev by themselves, production needs two approvals from
    /// engineering and two minutes in staging.
    pub fn environments_toml(&self) -> String {
        let repository = format!("file://{}", self.gitops_path.display());
        let mut text = String::new();
        for (i, env) in seed::ENVIRONMENTS.iter().enumerate() {
            text.push_str(&format!("[environments.{env}]\norder = {}\n", i + 1));
            if i == 0 {
                text.push_str("auto_promote = { refs = [\"main\"] }\n");
            }
            text.push_str(&format!(
                "\n[environments.{env}.gitops]\nrepository = \"{repository}\"\nbranch = \"main\"\npath = \"apps/{{component}}/overlays/{env}/kustomization.yaml\"\nwrite = \"kustomize\"\n\n"
            ));
        }
        text.push_str("[environments.production.gates]\napprovals = 2\napprover_groups = [\"group:default/engineering\"]\nwait = \"2m\"\n");
        text
    }

    /// Registers each team's demo git token as its `https-token` credential `demo-git`
    /// (rotating the one of the last run), covering the team's example repositories under
    /// their catalog URLs, checked like any registration (`git ls-remote` through
    /// `builds.git_url_rewrites`, and a refused push proving it read-only) and audited as
    /// `system`. A team whose check fails is reported and left out; its builds then fail to
    /// clone with git's reason.
    pub async fn register_credentials(&self, state: &crate::http::AppState) {
        for (team, token) in self.git.tokens.iter() {
            match register_credential(state, team, token, &self.plan).await {
                Ok(n) => progress(&format!("registered the {team} team's read-only git credential for {n} repositories")),
                Err(e) => progress(&format!("cannot register the {team} team's git credential: {e:#}")),
            }
        }
    }

    /// Records the seeded images as release artifacts (once: an artifact is its digest), so the
    /// Deployments tab offers them for promotion before the first build.
    pub async fn record_artifacts(&self, state: &crate::http::AppState) {
        let store = crate::release::artifacts::ArtifactStore::new(state.db.clone());
        let recorded = async {
            let mut new = 0;
            for artifact in seed::artifacts(&self.plan, &self.dir, &self.registry_host).await? {
                new += usize::from(store.record(artifact).await?.1);
            }
            anyhow::Ok(new)
        };
        match recorded.await {
            Ok(0) => {}
            Ok(n) => progress(&format!("recorded the {n} seeded images as artifacts to promote")),
            Err(e) => progress(&format!("cannot record the seeded images as artifacts: {e:#}")),
        }
    }

    /// Stops the git server and every child this environment started (SIGTERM by PID, then
    /// SIGKILL after a grace period). The data directory stays for the next run.
    pub async fn stop(self) {
        self.git.stop();
        self.children.stop_all().await;
    }
}

/// The name of each team's demo git credential.
pub const CREDENTIAL_NAME: &str = "demo-git";

/// Registers (or rotates) `team`'s credential [`CREDENTIAL_NAME`]; answers how many
/// repositories it covers.
async fn register_credential(state: &crate::http::AppState, team: &str, token: &nova_domain::Sensitive<String>, plan: &SeedPlan) -> anyhow::Result<usize> {
    use crate::audit::AuditEvent;
    use crate::secrets::credentials::{self, CredentialKind, CredentialRequest};
    let req = CredentialRequest {
        kind: CredentialKind::HttpsToken,
        repositories: plan.repository_urls(team),
        username: Some(team.to_string()),
        description: "the demo git server's read-only token for this team (a new one on every start)".into(),
        secret: token.clone(),
        passphrase: None,
    };
    // Checked even where the configuration turns checks off: the demo's own server must answer.
    let checker = crate::git_remote::GitRemote::new(&state.config.builds);
    let saved = credentials::put(state.secrets.as_ref(), Some(&checker), team, CREDENTIAL_NAME, &req, "system", crate::storage::now_ms()).await?;
    state.audit.record(AuditEvent::outside_request("system".into(), saved.action(), format!("credential:{team}/{CREDENTIAL_NAME}"), saved.audit_details())).await?;
    Ok(saved.info.repositories.len())
}

/// Prints one line of progress for the person who started the demo.
pub(crate) fn progress(line: &str) {
    eprintln!("demo: {line}");
}

/// `previous` when it is still free on 127.0.0.1, else a free port.
fn port(previous: Option<u16>) -> anyhow::Result<u16> {
    if let Some(p) = previous
        && TcpListener::bind(("127.0.0.1", p)).is_ok()
    {
        return Ok(p);
    }
    let listener = TcpListener::bind(("127.0.0.1", 0)).context("cannot find a free port on 127.0.0.1")?;
    Ok(listener.local_addr()?.port())
}

/// docker-registry's configuration: filesystem storage under `dir`, anonymous access, loopback.
fn write_registry_config(dir: &Path, port: u16) -> anyhow::Result<PathBuf> {
    let storage = dir.join("storage");
    std::fs::create_dir_all(&storage).with_context(|| format!("cannot create {}", storage.display()))?;
    let config = dir.join("config.yml");
    let text = format!(
        "# Written by nova serve --demo. Anonymous and on loopback only: a demo, not a deployment.
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
  headers:
    X-Content-Type-Options: [nosniff]
",
        storage = serde_json::to_string(&storage.display().to_string()).expect("a string serializes")
    );
    std::fs::write(&config, text).with_context(|| format!("cannot write {}", config.display()))?;
    Ok(config)
}
