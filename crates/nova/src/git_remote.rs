//! Asking a git server about a repository without cloning it, with the team's credential:
//! which commit a branch or tag names (`git ls-remote`), and whether the credential can read
//! it and is refused a push (`git push --dry-run`).
//!
//! Every process gets the credential through [`TeamCredential::materialise`], never argv;
//! SSH host keys are pinned to `builds.ssh_known_hosts` when it is set;
//! error messages carry git's last line of output with the secret cut out, never the secret.
//! [`ASKPASS`] is the one program every git Nova runs asks for a username or password.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::config::BuildsConfig;
use crate::secrets::credentials::{CredentialError, Materialised, SSH, TeamCredential};

/// The askpass program git runs for a username or password (`GIT_ASKPASS`): it answers from
/// the environment of the one git child it serves (`NOVA_GIT_USERNAME`, `NOVA_GIT_PASSWORD`),
/// so the value is in no file and no argv; the program holds no secret itself.
pub const ASKPASS: &str = "#!/bin/sh\n# Written by Nova: answers git's credential prompts from its environment.\ncase \"$1\" in\n  Username*) printf '%s\\n' \"$NOVA_GIT_USERNAME\" ;;\n  *) printf '%s\\n' \"$NOVA_GIT_PASSWORD\" ;;\nesac\n";

/// Writes [`ASKPASS`] as `dir/askpass.sh` (mode 0700) unless it is there already, through a
/// rename so that a git started meanwhile never runs half a file; answers its path.
pub fn write_askpass(dir: &Path) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join("askpass.sh");
    if std::fs::read_to_string(&path).ok().as_deref() != Some(ASKPASS) {
        let tmp = dir.join(format!("askpass.{}.tmp", uuid::Uuid::new_v4().simple()));
        std::fs::write(&tmp, ASKPASS)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o700))?;
        std::fs::rename(&tmp, &path)?;
    }
    Ok(path)
}

/// Longest a single `git ls-remote` or `git push --dry-run` may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Why git could not answer: a sentence safe to show and log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RemoteError(pub String);

/// How Nova runs `git` against remote repositories: the executable (`builds.git`) and the SSH
/// host keys it trusts (`builds.ssh_known_hosts`). Builds, registration checks and the doctor
/// all start git through it.
#[derive(Debug, Clone)]
pub struct GitRemote {
    /// The `git` executable.
    pub program: String,
    /// The known_hosts file SSH host keys are pinned to; `None`: accepted on first use.
    pub known_hosts: Option<PathBuf>,
    /// `builds.git_url_rewrites`: where a repository URL is really reached.
    pub rewrites: std::collections::BTreeMap<String, String>,
}

impl GitRemote {
    /// The git Nova's settings name.
    pub fn new(config: &BuildsConfig) -> Self {
        Self { program: config.git.clone(), known_hosts: config.ssh_known_hosts.clone(), rewrites: config.git_url_rewrites.clone() }
    }

    /// A `git` command that runs no remote helper executing a command (`ext::`), whatever
    /// git's own configuration says, asks no credential helper of the machine, offers no SSH
    /// key of the machine (its ssh_config, `~/.ssh/id_*`, its agent) and never prompts: only
    /// the credential Nova hands over counts.
    pub fn command(&self) -> crate::process::Command {
        let mut cmd = crate::process::command(&self.program);
        cmd.args(["-c", "protocol.ext.allow=never", "-c", "credential.helper="]);
        cmd.env("GIT_TERMINAL_PROMPT", "0").env("GIT_ASKPASS", "true").env("SSH_ASKPASS", "true").stdin(Stdio::null());
        // An identity file that holds no key stops ssh from trying its default ones.
        cmd.env("GIT_SSH_COMMAND", format!("{SSH} -o IdentityFile=/dev/null")).env_remove("SSH_AUTH_SOCK");
        cmd
    }

    /// Hands `credential` to `cmd` ([`TeamCredential::materialise`]) with this git's known hosts.
    pub fn materialise(&self, credential: &TeamCredential, cmd: &mut crate::process::Command) -> Result<Materialised, CredentialError> {
        credential.materialise(cmd, self.known_hosts.as_deref())
    }

    /// The full commit id `git_ref` (a branch, a tag — peeled — or a full ref name) points at
    /// in `url`; `None` when the repository has no such ref.
    pub async fn resolve(&self, url: &str, git_ref: &str, credential: Option<&TeamCredential>) -> Result<Option<String>, RemoteError> {
        let wanted = [format!("refs/heads/{git_ref}"), format!("refs/tags/{git_ref}^{{}}"), format!("refs/tags/{git_ref}"), git_ref.to_string()];
        let out = self.ls_remote(url, credential, &[&wanted[0], &wanted[1], &wanted[2], git_ref]).await?;
        let refs: Vec<(&str, &str)> = out.lines().filter_map(|l| l.split_once('\t')).map(|(sha, name)| (name, sha)).collect();
        Ok(wanted.iter().find_map(|w| refs.iter().find(|(name, _)| name == w)).map(|(_, sha)| sha.to_string()))
    }

    /// Checks that `credential` can list `url`'s refs and that a push with it is refused.
    pub async fn check_access(&self, url: &str, credential: &TeamCredential) -> AccessCheck {
        let mut check = AccessCheck { repository: url.to_string(), readable: false, read_only: None, error: None };
        if let Err(e) = self.ls_remote(url, Some(credential), &["HEAD"]).await {
            check.error = Some(e.0);
            return check;
        }
        check.readable = true;
        check.read_only = self.push_refused(url, Some(credential)).await.ok();
        check
    }

    /// Whether the server would accept a push to `url` with `credential` (a dry run to a new
    /// branch; see [`GitRemote::check_access`] for what a dry run can tell): the GitOps
    /// writer's check.
    pub async fn accepts_push(&self, url: &str, credential: Option<&TeamCredential>) -> Result<bool, RemoteError> {
        self.push_refused(url, credential).await.map(|refused| !refused)
    }

    async fn ls_remote(&self, url: &str, credential: Option<&TeamCredential>, patterns: &[&str]) -> Result<String, RemoteError> {
        let mut cmd = self.command();
        cmd.args(["ls-remote", "--"]).arg(crate::config::rewrite_git_url(&self.rewrites, url)).args(patterns);
        let out = self.run(cmd, credential, "git ls-remote").await?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Whether the server refuses a (dry-run) push of an empty commit to a new branch. A dry
    /// run sends nothing, so only a refusal when git asks to push counts (HTTP: the server
    /// refuses `git-receive-pack` to this user; SSH: the key may not start
    /// `git-receive-pack`, as with read-only deploy keys); hooks and branch protections are
    /// never reached.
    async fn push_refused(&self, url: &str, credential: Option<&TeamCredential>) -> Result<bool, RemoteError> {
        let dir = tempfile::tempdir().map_err(|e| RemoteError(format!("cannot make a scratch repository: {e}")))?;
        for args in [&["init", "--quiet"][..], &["-c", "user.name=nova", "-c", "user.email=nova@localhost", "commit", "--quiet", "--allow-empty", "-m", "nova read-only check"]] {
            let mut cmd = self.command();
            cmd.arg("-C").arg(dir.path()).args(args);
            self.run(cmd, None, "git init").await?;
        }
        let mut cmd = self.command();
        cmd.arg("-C").arg(dir.path()).args(["push", "--dry-run", "--quiet", "--"]).arg(crate::config::rewrite_git_url(&self.rewrites, url)).arg("HEAD:refs/heads/nova-read-only-check");
        Ok(self.run(cmd, credential, "git push --dry-run").await.is_err())
    }

    /// Runs `cmd` with the credential, within [`TIMEOUT`]; a failure is git's last line of
    /// output, the secret cut out.
    async fn run(&self, mut cmd: crate::process::Command, credential: Option<&TeamCredential>, what: &str) -> Result<std::process::Output, RemoteError> {
        let _kept = match credential {
            Some(c) => Some(self.materialise(c, &mut cmd).map_err(|e| RemoteError(e.to_string()))?),
            None => None,
        };
        let out = tokio::time::timeout(TIMEOUT, cmd.output())
            .await
            .map_err(|_| RemoteError(format!("{what} took longer than {}s", TIMEOUT.as_secs())))?
            .map_err(|e| RemoteError(format!("cannot start {what}: {e}")))?;
        if out.status.success() {
            return Ok(out);
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let mut last = stderr.lines().rev().map(str::trim).find(|l| !l.is_empty() && !GIT_BOILERPLATE.contains(l)).unwrap_or("").chars().take(300).collect::<String>();
        if let Some(c) = credential
            && !c.secret.expose().is_empty()
        {
            last = last.replace(c.secret.expose().as_str(), "**REDACTED**");
        }
        Err(RemoteError(format!("{what} failed ({}){}", out.status, if last.is_empty() { String::new() } else { format!(": {last}") })))
    }
}

/// Lines git adds under every failed SSH connection, which say nothing about the cause.
const GIT_BOILERPLATE: [&str; 3] = ["and the repository exists.", "Please make sure you have the correct access rights", "fatal: Could not read from remote repository."];

/// What registering a credential found out about one repository.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct AccessCheck {
    pub repository: String,
    /// `git ls-remote` with the credential succeeded.
    pub readable: bool,
    /// `Some(true)`: a `git push --dry-run` was refused, so the credential is read-only here;
    /// `Some(false)`: the server would accept a push; `None`: not tested (unreadable).
    pub read_only: Option<bool>,
    /// Why it is not readable, in git's words with the secret cut out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote() -> GitRemote {
        GitRemote { program: "git".into(), known_hosts: None, rewrites: Default::default() }
    }

    #[tokio::test]
    async fn a_command_running_remote_helper_never_runs() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let err = remote().resolve(&format!("ext::touch {}", marker.display()), "main", None).await.unwrap_err();
        assert!(!marker.exists(), "ext:: ran a command");
        assert!(err.0.starts_with("git ls-remote failed") && err.0.contains("not allowed"), "{err}");
    }

    #[tokio::test]
    async fn branches_and_annotated_tags_resolve_to_commits() {
        let dir = tempfile::tempdir().unwrap();
        let git = |args: &[&str]| {
            let out = std::process::Command::new("git").arg("-C").arg(dir.path()).args(["-c", "user.name=t", "-c", "user.email=t@example.com"]).args(args).output().unwrap();
            assert!(out.status.success(), "{args:?}");
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        git(&["init", "-q", "-b", "main"]);
        git(&["commit", "-q", "--allow-empty", "-m", "one"]);
        git(&["tag", "-a", "v1", "-m", "v1"]);
        let one = git(&["rev-parse", "HEAD"]);
        git(&["commit", "-q", "--allow-empty", "-m", "two"]);
        let two = git(&["rev-parse", "HEAD"]);
        let url = dir.path().display().to_string();
        assert_eq!(remote().resolve(&url, "main", None).await.unwrap().as_deref(), Some(two.as_str()));
        assert_eq!(remote().resolve(&url, "v1", None).await.unwrap().as_deref(), Some(one.as_str()));
        assert_eq!(remote().resolve(&url, "refs/heads/main", None).await.unwrap().as_deref(), Some(two.as_str()));
        assert_eq!(remote().resolve(&url, "nope", None).await.unwrap(), None);
    }
}
