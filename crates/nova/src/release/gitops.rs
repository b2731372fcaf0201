//! Writing an image reference into a GitOps repository with the `git` executable: a shallow
//! clone of the branch, the file edited ([`super::kustomize`], [`super::yaml_path`] or
//! [`super::helm_values`]), a
//! commit, a push. A push that
//! another writer beat is retried from a fresh fetch with the edit re-applied; a file that
//! already names the digest is left alone (so a job that reruns after a crash, when its push
//! had landed, finds its change there and commits nothing).
//!
//! The write credential reaches git only through its environment (`GIT_ASKPASS` names a small
//! helper printing `NOVA_GIT_USERNAME` / `NOVA_GIT_PASSWORD`), never its argv, and is scrubbed
//! from any git message kept. One writer per repository and branch runs at a time per process.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use nova_domain::Sensitive;

use super::kustomize::{Edit, set_image};
use super::helm_values::ValuesKey;
use super::yaml_path::{YamlPath, set_reference};

/// One write to make.
pub struct GitOpsWrite {
    pub repository: String,
    pub branch: String,
    /// The file, relative to the repository root.
    pub path: String,
    /// What in the file names the image.
    pub target: WriteTarget,
    /// The repository the image is pulled from (`newName`).
    pub new_name: String,
    pub digest: String,
    pub message: String,
    pub username: String,
    pub credential: Option<Sensitive<String>>,
    /// Runs in the clone after the edit, before the commit, with the clone's root and `path`;
    /// `Err` (a reason) stops the write with nothing pushed (the policy gate).
    pub check: Option<Check>,
}

/// A check of the edited clone: [`GitOpsWrite::check`].
pub type Check = Arc<dyn Fn(&Path, &str) -> Result<(), String> + Send + Sync>;

/// What in the file names the image.
#[derive(Debug, Clone)]
pub enum WriteTarget {
    /// The kustomize `images` entry with this `name`.
    Kustomize { image_name: String },
    /// The string at a YAML path (`shown` as configured, for messages).
    YamlPath { path: YamlPath, shown: String },
    /// A Helm values file's mapping at `key`; `tag` replaces its `tag`, if it has one.
    HelmValues { key: ValuesKey, tag: Option<String> },
}

/// What a write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The commit on the branch that holds the change.
    pub commit: String,
    /// `false`: the file already named the digest; nothing was committed.
    pub changed: bool,
}

/// Why a write did not land: a sentence without the credential, and whether retrying cannot
/// help (the file is missing or is not a kustomization, other writers kept winning).
#[derive(Debug, Clone)]
pub struct WriteError {
    pub message: String,
    pub permanent: bool,
}

/// Limits of a write.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub push_attempts: u32,
    pub git_timeout: Duration,
}

/// Makes the write under `root` (a scratch directory of Nova's own); the error is a sentence
/// for the promotion's record, without the credential.
pub async fn write(root: &Path, w: &GitOpsWrite, limits: Limits) -> Result<Written, WriteError> {
    let transient = |message: String| WriteError { message, permanent: false };
    let lock = writer_lock(&w.repository, &w.branch);
    let _guard = lock.lock().await;
    tokio::fs::create_dir_all(root).await.map_err(|e| transient(format!("cannot create the GitOps work directory: {e}")))?;
    let git = Git { askpass: crate::git_remote::write_askpass(root).map_err(|e| transient(format!("cannot write the git askpass helper: {e}")))?, credential: w.credential.clone(), username: w.username.clone(), timeout: limits.git_timeout };
    let work = root.join(uuid::Uuid::new_v4().simple().to_string());
    let result = write_in(&git, &work, w, limits.push_attempts.max(1)).await;
    let _ = tokio::fs::remove_dir_all(&work).await;
    result.map_err(|e| WriteError { message: git.scrub(e.message), permanent: e.permanent })
}

async fn write_in(git: &Git, work: &Path, w: &GitOpsWrite, attempts: u32) -> Result<Written, WriteError> {
    let permanent = |message: String| WriteError { message, permanent: true };
    let transient = |message: String| WriteError { message, permanent: false };
    let dir = work.to_string_lossy().into_owned();
    git.run(None, &["clone", "--quiet", "--depth", "1", "--single-branch", "--branch", &w.branch, "--", &w.repository, &dir])
        .await
        .map_err(|e| transient(format!("cannot clone branch {} of {}: {e}", w.branch, w.repository)))?;
    let file = work.join(&w.path);
    for attempt in 1..=attempts {
        let text = match tokio::fs::read_to_string(&file).await {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(permanent(format!("{} does not exist on branch {} of {}", w.path, w.branch, w.repository))),
            Err(e) => return Err(permanent(format!("cannot read {}: {e}", w.path))),
        };
        let edit = match &w.target {
            WriteTarget::Kustomize { image_name } => set_image(&text, image_name, &w.new_name, &w.digest),
            WriteTarget::YamlPath { path, shown } => set_reference(&text, path, shown, &format!("{}@{}", w.new_name, w.digest)),
            WriteTarget::HelmValues { key, tag } => super::helm_values::set_image(&text, key, &w.new_name, &w.digest, tag.as_deref()),
        };
        let changed = match edit.map_err(|e| permanent(format!("{} {e}", w.path)))? {
            Edit::AlreadySet => return Ok(Written { commit: git.head(work).await.map_err(transient)?, changed: false }),
            Edit::Changed(t) => t,
        };
        tokio::fs::write(&file, changed).await.map_err(|e| transient(format!("cannot write {}: {e}", w.path)))?;
        if let Some(check) = &w.check {
            check(work, &w.path).map_err(permanent)?;
        }
        git.run(Some(work), &["add", "--", &w.path]).await.map_err(transient)?;
        git.run(Some(work), &["-c", "user.name=Nova", "-c", "user.email=nova@localhost", "commit", "--quiet", "--no-verify", "-m", &w.message]).await.map_err(transient)?;
        match git.run(Some(work), &["push", "--quiet", "--porcelain", "origin", &format!("HEAD:refs/heads/{}", w.branch)]).await {
            Ok(_) => return Ok(Written { commit: git.head(work).await.map_err(transient)?, changed: true }),
            Err(e) if attempt < attempts && is_stale(&e) => {
                tracing::info!(repository = %w.repository, branch = %w.branch, attempt, "GitOps push was beaten by another writer; fetching and applying again");
                git.run(Some(work), &["fetch", "--quiet", "--depth", "1", "origin", &w.branch]).await.map_err(transient)?;
                git.run(Some(work), &["reset", "--quiet", "--hard", "FETCH_HEAD"]).await.map_err(transient)?;
            }
            Err(e) => return Err(transient(format!("push to branch {} of {} failed: {e}", w.branch, w.repository))),
        }
    }
    Err(permanent(format!("push to branch {} of {} kept being beaten by other writers ({attempts} tries)", w.branch, w.repository)))
}

/// Whether a push failed because the branch moved (another writer got there first).
fn is_stale(message: &str) -> bool {
    ["non-fast-forward", "fetch first", "[rejected]", "stale info", "cannot lock ref"].iter().any(|m| message.contains(m))
}

struct Git {
    askpass: PathBuf,
    credential: Option<Sensitive<String>>,
    username: String,
    timeout: Duration,
}

impl Git {
    /// Runs git with `args` (in `dir`), answering stdout or git's last error lines.
    async fn run(&self, dir: Option<&Path>, args: &[&str]) -> Result<String, String> {
        let mut cmd = crate::process::command("git");
        if let Some(d) = dir {
            cmd.arg("-C").arg(d);
        }
        cmd.args(["-c", "credential.helper=", "-c", "protocol.allow=never", "-c", "protocol.https.allow=always", "-c", "protocol.http.allow=always", "-c", "protocol.file.allow=always"]);
        cmd.args(args).env("GIT_TERMINAL_PROMPT", "0").env("LC_ALL", "C").env("GIT_ASKPASS", &self.askpass).env("SSH_ASKPASS", "/bin/false");
        cmd.env("NOVA_GIT_USERNAME", &self.username).env("NOVA_GIT_PASSWORD", self.credential.as_ref().map_or("", |c| c.expose().as_str()));
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let out = match tokio::time::timeout(self.timeout, cmd.output()).await {
            Err(_) => return Err(format!("git {} took longer than release.git_timeout ({}s)", args.first().unwrap_or(&""), self.timeout.as_secs())),
            Ok(Err(e)) => return Err(format!("cannot run git (is it installed?): {e}")),
            Ok(Ok(o)) => o,
        };
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        let text = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        let tail: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("hint:")).collect();
        let tail = tail[tail.len().saturating_sub(4)..].join(" / ");
        Err(self.scrub(if tail.is_empty() { format!("git exited with {}", out.status) } else { tail }))
    }

    async fn head(&self, dir: &Path) -> Result<String, String> {
        Ok(self.run(Some(dir), &["rev-parse", "HEAD"]).await?.trim().to_string())
    }

    /// Removes the credential from a message, should git ever echo it.
    fn scrub(&self, message: String) -> String {
        match &self.credential {
            Some(c) if !c.expose().is_empty() => message.replace(c.expose().as_str(), "[redacted]"),
            _ => message,
        }
    }
}

/// One lock per repository and branch: this process's writers take turns.
fn writer_lock(repository: &str, branch: &str) -> Arc<tokio::sync::Mutex<()>> {
    static LOCKS: OnceLock<Mutex<HashMap<(String, String), Arc<tokio::sync::Mutex<()>>>>> = OnceLock::new();
    let mut locks = LOCKS.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    locks.entry((repository.to_string(), branch.to_string())).or_default().clone()
}
