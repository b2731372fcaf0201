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

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;

use super::store::{Build, BuildStore};
use crate::config::BuildsConfig;
use crate::jobs::{Job, JobOutcome, JobQueue};

/// The job that runs one local build.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunBuild {
    pub build_id: String,
}

impl Job for RunBuild {
    const KIND: &'static str = "build.run";
}

/// A git credential for cloning a component's repository.
#[derive(Clone)]
pub struct GitCredential {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for GitCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitCredential").field("username", &self.username).field("password", &"<redacted>").finish()
    }
}

/// Where the runner gets the git credential for a component (the owning team's, from the
/// credentials store); `None` clones without one (public and local repositories).
pub type GitCredentials = Arc<dyn Fn(&str) -> Option<GitCredential> + Send + Sync>;

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
    credentials: GitCredentials,
    registries: PushRegistries,
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
    pub fn new(store: BuildStore, config: BuildsConfig, data_dir: &Path, credentials: GitCredentials, registries: PushRegistries) -> Self {
        Self { store, config, root: data_dir.join("builds"), credentials, registries }
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

        let mut clone = self.git(build);
        clone.args(["clone", "--quiet", "--no-checkout", "--"]).arg(self.config.clone_url(&build.git_url)).arg(&src);
        self.step(&log, build, "git clone", clone, deadline).await?;
        let commit = self.resolve(build, &src).await?;
        let mut checkout = self.git(build);
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
        push.arg("--digestfile").arg(&digest_file).arg("--").arg(&reference).arg(format!("docker://{reference}"));
        self.step(&log, build, "push", push, deadline).await?;
        let digest = tokio::fs::read_to_string(&digest_file).await.map_err(|e| Stop::Failed(format!("the push left no digest: {e}")))?;
        log.line(&format!("[nova] pushed {reference}@{}", digest.trim())).await;
        Ok(digest.trim().to_string())
    }

    fn git(&self, build: &Build) -> Command {
        let mut c = Command::new(&self.config.git);
        c.env("GIT_TERMINAL_PROMPT", "0").env_remove("GIT_ASKPASS").env_remove("SSH_ASKPASS");
        if let Some(cred) = (self.credentials)(&build.component_ref) {
            // The helper reads the credential from the environment: it never appears in argv.
            c.args(["-c", "credential.helper=", "-c", "credential.helper=!f() { echo \"username=$NOVA_GIT_USERNAME\"; echo \"password=$NOVA_GIT_PASSWORD\"; }; f"]);
            c.env("NOVA_GIT_USERNAME", cred.username).env("NOVA_GIT_PASSWORD", cred.password);
        }
        c
    }

    fn builder(&self) -> Command {
        let storage = self.root.join("storage");
        let mut c = Command::new(&self.config.builder);
        c.arg("--root").arg(storage.join("root")).arg("--runroot").arg(storage.join("run")).args(["--storage-driver", "vfs"]);
        c
    }

    /// The commit the build's ref names: a commit id, a remote branch or a tag.
    async fn resolve(&self, build: &Build, src: &Path) -> Result<String, Stop> {
        for candidate in [build.git_ref.clone(), format!("origin/{}", build.git_ref)] {
            let out = self.git(build).arg("-C").arg(src).args(["rev-parse", "--verify", "--quiet", "--end-of-options"]).arg(format!("{candidate}^{{commit}}")).output().await;
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
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| Stop::Failed(format!("{name}: cannot start {:?}: {e}", cmd.as_std().get_program())))?;
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
