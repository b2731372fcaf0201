//! Nova's own build runner (`nova.dev/build-pipeline: local`): clones the repository at the
//! ref with `git`, builds with `buildah` (or podman) using chroot isolation and vfs storage,
//! and pushes to the target registry, recording the pushed digest.
//!
//! An image repository that starts with the name of a configured OCI registry
//! (`demo/storefront/web`, as `nova.dev/image-repository` names it) is pushed to that registry's
//! host, and the registry view refreshes that repository as soon as the push succeeded.
//!
//! Every process is started with an argument vector, never a shell; every field that reaches
//! an argument was checked when the build was asked for, and positional values follow `--` or
//! a flag that takes them. Each build gets its own working directory, removed afterwards.
//! Builds run as [`RunBuild`] jobs, so they are bounded by `jobs.workers`, survive a restart
//! (a build whose process died is run again) and are never run by two replicas at once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use nova_domain::EntityRef;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use super::store::{Build, BuildStore};
use crate::audit::{AuditEvent, AuditLog, Outcome};
use crate::catalog::Catalog;
use crate::config::BuildsConfig;
use crate::jobs::{Job, JobOutcome, JobQueue};
use crate::process::Command;
use crate::secrets::SecretStore;
use crate::secrets::credential_uses::CredentialUses;
use crate::secrets::credentials::{self, CredentialError, TeamCredential};

/// The job that runs one local build.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunBuild {
    pub build_id: String,
}

impl Job for RunBuild {
    const KIND: &'static str = "build.run";
}

/// Why a step of a build stopped.
enum Stop {
    Failed(String),
    Cancelled,
    TimedOut,
}

/// Runs local builds.
#[derive(Clone)]
pub struct LocalRunner {
    store: BuildStore,
    config: BuildsConfig,
    /// `<data_dir>/builds`: per-build working directories and the builder's image storage.
    root: PathBuf,
    /// Where the component's owning team is found.
    catalog: Arc<Catalog>,
    /// Where the team's credentials are.
    secrets: Arc<dyn SecretStore>,
    audit: AuditLog,
    uses: CredentialUses,
    registries: PushRegistries,
}

/// What the runner needs besides the build store and its settings.
pub struct RunnerContext {
    pub catalog: Arc<Catalog>,
    pub secrets: Arc<dyn SecretStore>,
    pub audit: AuditLog,
    pub uses: CredentialUses,
    pub registries: PushRegistries,
}

/// The configured registries images can be pushed to, by name (`[registries.<name>]`), and the
/// job queue that refreshes a repository in the registry view after a push.
#[derive(Clone)]
pub struct PushRegistries {
    hosts: BTreeMap<String, String>,
    jobs: JobQueue,
}

impl PushRegistries {
    /// The hosts of the configured registries that have one.
    pub fn new(registries: &BTreeMap<String, crate::registry::RegistryDef>, jobs: JobQueue) -> Self {
        Self { hosts: registries.iter().filter_map(|(name, def)| Some((name.clone(), def.push_host()?))).collect(), jobs }
    }

    /// `image` with a leading registry name replaced by that registry's host, and whether it
    /// named one.
    fn resolve(&self, image: &str) -> (String, bool) {
        match image.split_once('/').and_then(|(name, path)| Some((self.hosts.get(name)?, path))) {
            Some((host, path)) => (format!("{host}/{path}"), true),
            None => (image.to_string(), false),
        }
    }
}

impl LocalRunner {
    pub fn new(store: BuildStore, config: BuildsConfig, data_dir: &Path, cx: RunnerContext) -> Self {
        Self { store, config, root: data_dir.join("builds"), catalog: cx.catalog, secrets: cx.secrets, audit: cx.audit, uses: cx.uses, registries: cx.registries }
    }

    /// The job handler: runs the build unless it has finished (e.g. cancelled while queued).
    pub async fn run_job(&self, job: RunBuild) -> Result<JobOutcome, String> {
        let Some(build) = self.store.start_running(&job.build_id).await.map_err(|e| e.to_string())? else {
            return Ok(JobOutcome::Done);
        };
        let work = self.root.join("work").join(&build.id);
        let deadline = tokio::time::Instant::now() + self.config.timeout;
        let result = self.steps(&build, &work, deadline).await;
        let (_, named_registry) = self.registries.resolve(&build.image);
        if result.is_ok()
            && named_registry
            && let Err(e) = crate::registry::service::refresh_soon(&self.registries.jobs, &build.image).await
        {
            tracing::warn!(build = %build.id, error = %e, "cannot ask for a refresh of the pushed repository");
        }
        if let Err(e) = tokio::fs::remove_dir_all(&work).await
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(build = %build.id, error = %e, "cannot remove the build's working directory");
        }
        let store_err = |e: crate::storage::StorageError| e.to_string();
        match result {
            Ok(digest) => self.store.finish(&build.id, "succeeded", None, Some(&digest)).await.map_err(store_err)?,
            Err(Stop::Failed(reason)) => self.store.finish(&build.id, "failed", Some(&reason), None).await.map_err(store_err)?,
            Err(Stop::TimedOut) => {
                let reason = format!("took longer than builds.timeout ({}s)", self.config.timeout.as_secs());
                self.store.finish(&build.id, "timed_out", Some(&reason), None).await.map_err(store_err)?
            }
            Err(Stop::Cancelled) => false,
        };
        Ok(JobOutcome::Done)
    }

    async fn steps(&self, build: &Build, work: &Path, deadline: tokio::time::Instant) -> Result<String, Stop> {
        let _ = tokio::fs::remove_dir_all(work).await;
        tokio::fs::create_dir_all(work).await.map_err(|e| Stop::Failed(format!("cannot create the working directory: {e}")))?;
        let src = work.join("src");
        let log = LogSink::new(self.store.clone(), build.id.clone(), self.config.max_log_bytes);

        let git_credential = self.credential(build, &log, Purpose::Clone).await?;
        let mut clone = self.git();
        clone.args(["clone", "--quiet", "--no-checkout", "--"]).arg(self.config.clone_url(&build.git_url)).arg(&src);
        let kept = match &git_credential {
            Some(c) => Some(crate::git_remote::GitRemote::new(&self.config).materialise(c, &mut clone).map_err(|e| Stop::Failed(format!("the team's git credential: {e}")))?),
            None => None,
        };
        self.step(&log, build, "git clone", clone, deadline).await?;
        drop(kept);
        let commit = self.resolve(build, &src).await?;
        if let Err(e) = self.store.set_commit(&build.id, &commit).await {
            tracing::warn!(build = %build.id, error = %e, "cannot record the build's commit");
        }
        let mut checkout = self.git();
        checkout.arg("-C").arg(&src).args(["checkout", "--quiet", "--detach"]).arg(&commit);
        self.step(&log, build, "git checkout", checkout, deadline).await?;

        let dockerfile = inside(&src, &build.dockerfile, "dockerfile")?;
        let context = inside(&src, &build.context, "context")?;
        let (image, _) = self.registries.resolve(&build.image);
        let reference = format!("{image}:{}", build.tag);
        let mut bud = self.builder();
        bud.args(["build", "--isolation", "chroot", "--pull=missing", "-f"]).arg(&dockerfile).arg("-t").arg(&reference);
        // The OCI labels the registry view shows: which commit of which repository this is.
        bud.arg("--label").arg(format!("org.opencontainers.image.revision={commit}"));
        bud.arg("--label").arg(format!("org.opencontainers.image.source={}", source_label(&build.git_url)));
        for arg in &build.build_args {
            bud.arg("--build-arg").arg(format!("{}={}", arg.name, arg.value));
        }
        bud.arg("--").arg(&context);
        self.step(&log, build, "build", bud, deadline).await?;

        let digest_file = work.join("digest");
        let mut push = self.builder();
        push.arg("push");
        if let Some(host) = image.split('/').next()
            && self.config.insecure_registries.iter().any(|r| r == host)
        {
            push.arg("--tls-verify=false");
        }
        let registry_credential = self.credential(build, &log, Purpose::Push).await?;
        let kept = match &registry_credential {
            Some(c) => {
                let (kept, file) = c.registry_auth_file().map_err(|e| Stop::Failed(format!("the team's registry credential: {e}")))?;
                push.arg("--authfile").arg(file);
                Some(kept)
            }
            None => None,
        };
        push.arg("--digestfile").arg(&digest_file).arg("--").arg(&reference).arg(format!("docker://{reference}"));
        self.step(&log, build, "push", push, deadline).await?;
        drop(kept);
        let digest = tokio::fs::read_to_string(&digest_file).await.map_err(|e| Stop::Failed(format!("the push left no digest: {e}")))?;
        log.line(&format!("[nova] pushed {reference}@{}", digest.trim())).await;
        Ok(digest.trim().to_string())
    }

    fn git(&self) -> Command {
        crate::git_remote::GitRemote::new(&self.config).command()
    }

    /// The owning team's credential for this build's clone or push: found through the
    /// catalog's ownership only (never the request), its use audited and recorded, and named
    /// in the build's log without its value. `None` when no team on the chain has one, or the
    /// repository is not one a credential can cover (a local path).
    async fn credential(&self, build: &Build, log: &LogSink, purpose: Purpose) -> Result<Option<TeamCredential>, Stop> {
        let component = EntityRef::parse(&build.component_ref).map_err(|e| Stop::Failed(format!("component {}: {e}", build.component_ref)))?;
        let snapshot = self.catalog.snapshot();
        let store = self.secrets.as_ref();
        let found = match purpose {
            Purpose::Clone => credentials::for_component(store, &snapshot, &component, &build.git_url).await,
            Purpose::Push => credentials::for_registry(store, &snapshot, &component, &build.image).await,
        };
        let credential = match found {
            Ok(c) => c,
            Err(CredentialError::Invalid { .. }) => None,
            Err(e) => return Err(Stop::Failed(format!("cannot read the team's {} credential: {e}", purpose.kind()))),
        };
        let Some(c) = credential else {
            log.line(&format!("[nova] no {} credential of the owning team covers {}", purpose.kind(), purpose.target(build))).await;
            return Ok(None);
        };
        let (team, name) = (c.info.team.clone(), c.info.name.clone());
        log.line(&format!("[nova] using team {team}'s {} credential {name}", purpose.kind())).await;
        let event = AuditEvent {
            actor: "system".into(),
            teams: vec![team.clone()],
            action: "credentials.use".into(),
            target: format!("credential:{team}/{name}"),
            outcome: Outcome::Success,
            request_id: "-".into(),
            details: json!({ "build": build.id, "component": build.component_ref, "purpose": purpose.kind(), "repository": purpose.target(build) }),
        };
        self.audit.record(event).await.map_err(|e| Stop::Failed(format!("cannot audit the credential's use: {e}")))?;
        if let Err(e) = self.uses.record(&team, &name, &build.id).await {
            tracing::warn!(build = %build.id, error = %e, "cannot record when the credential was used");
        }
        Ok(Some(c))
    }

    fn builder(&self) -> Command {
        let storage = self.root.join("storage");
        let mut c = crate::process::command(&self.config.builder);
        c.arg("--root").arg(storage.join("root")).arg("--runroot").arg(storage.join("run")).args(["--storage-driver", "vfs"]);
        c
    }

    /// The commit the build's ref names: a commit id, a remote branch or a tag.
    async fn resolve(&self, build: &Build, src: &Path) -> Result<String, Stop> {
        for candidate in [build.git_ref.clone(), format!("origin/{}", build.git_ref)] {
            let out = self.git().arg("-C").arg(src).args(["rev-parse", "--verify", "--quiet", "--end-of-options"]).arg(format!("{candidate}^{{commit}}")).output().await;
            if let Ok(out) = out
                && out.status.success()
            {
                return Ok(String::from_utf8_lossy(&out.stdout).trim().to_string());
            }
        }
        Err(Stop::Failed(format!("gitRef {} names no branch, tag or commit in {}", build.git_ref, build.git_url)))
    }

    /// Runs one process, its output line by line into the log, stopping it when the build is
    /// cancelled or runs out of time.
    async fn step(&self, log: &LogSink, build: &Build, name: &str, mut cmd: Command, deadline: tokio::time::Instant) -> Result<(), Stop> {
        log.line(&format!("[nova] {name}")).await;
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| Stop::Failed(format!("{name}: cannot start {:?}: {e}", cmd.argv()[0])))?;
        let out = tokio::spawn(pump(child.stdout.take().expect("piped"), log.clone()));
        let err = tokio::spawn(pump(child.stderr.take().expect("piped"), log.clone()));
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let status = loop {
            tokio::select! {
                s = child.wait() => break s.map_err(|e| Stop::Failed(format!("{name}: {e}")))?,
                _ = tokio::time::sleep_until(deadline) => {
                    let _ = child.kill().await;
                    return Err(Stop::TimedOut);
                }
                _ = tick.tick() => {
                    if matches!(self.store.get(&build.id).await, Ok(Some(b)) if b.state == "cancelled") {
                        let _ = child.kill().await;
                        log.line("[nova] cancelled").await;
                        return Err(Stop::Cancelled);
                    }
                }
            }
        };
        let _ = out.await;
        let _ = err.await;
        if !status.success() {
            return Err(Stop::Failed(format!("{name} failed ({status})")));
        }
        Ok(())
    }
}

/// What a credential is looked up for.
#[derive(Clone, Copy)]
enum Purpose {
    Clone,
    Push,
}

impl Purpose {
    fn kind(self) -> &'static str {
        match self {
            Self::Clone => "git",
            Self::Push => "registry",
        }
    }

    fn target(self, build: &Build) -> &str {
        match self {
            Self::Clone => &build.git_url,
            Self::Push => &build.image,
        }
    }
}

/// The repository URL as an image label: without user information (an annotation should never
/// hold a credential, but an image would carry it everywhere) and without `.git`.
fn source_label(git_url: &str) -> String {
    let url = match url::Url::parse(git_url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => git_url.to_string(),
    };
    url.trim_end_matches(".git").to_string()
}

/// `rel` under `root`, refusing a path that leaves it through a symbolic link.
fn inside(root: &Path, rel: &str, field: &str) -> Result<PathBuf, Stop> {
    let path = root.join(rel);
    let real = path.canonicalize().map_err(|e| Stop::Failed(format!("{field} {rel}: {e}")))?;
    let real_root = root.canonicalize().map_err(|e| Stop::Failed(format!("the checkout: {e}")))?;
    if !real.starts_with(&real_root) {
        return Err(Stop::Failed(format!("{field} {rel} leaves the repository through a symbolic link")));
    }
    Ok(real)
}

async fn pump(stream: impl AsyncRead + Unpin, log: LogSink) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        log.line(&line).await;
    }
}

/// Appends a build's output to its stored log, up to `max` bytes, then marks the truncation.
#[derive(Clone)]
struct LogSink {
    store: BuildStore,
    id: String,
    max: usize,
    written: Arc<std::sync::atomic::AtomicUsize>,
}

impl LogSink {
    fn new(store: BuildStore, id: String, max: usize) -> Self {
        Self { store, id, max, written: Default::default() }
    }

    async fn line(&self, line: &str) {
        use std::sync::atomic::Ordering;
        let text = format!("{line}\n");
        let before = self.written.fetch_add(text.len(), Ordering::SeqCst);
        let text = if before + text.len() <= self.max {
            text
        } else if before <= self.max {
            format!("[nova] log truncated at {} bytes (builds.max_log_bytes)\n", self.max)
        } else {
            return;
        };
        if let Err(e) = self.store.append_log(&self.id, &text).await {
            tracing::warn!(build = %self.id, error = %e, "cannot store build output");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_labels_carry_no_user_information() {
        assert_eq!(source_label("https://ci:hunter2@git.example.com/a/b.git"), "https://git.example.com/a/b");
        assert_eq!(source_label("git@git.example.com:a/b.git"), "git@git.example.com:a/b");
    }
}
