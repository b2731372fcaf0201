//! Asking a git server about a repository without cloning it, with the team's credential:
//! which commit a branch or tag names (`git ls-remote`), and whether the credential can read
//! it and is refused a push (`git push --dry-run`).
//!
//! Every process gets the credential through [`TeamCredential::materialise`], never argv;
//! error messages carry git's last line of output with the secret cut out, never the secret.

use std::process::Stdio;
use std::time::Duration;

use crate::secrets::credentials::TeamCredential;

/// Longest a single `git ls-remote` or `git push --dry-run` may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Why git could not answer: a sentence safe to show and log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RemoteError(pub String);

/// The full commit id `git_ref` (a branch, a tag — peeled — or a full ref name) points at in
/// `url`; `None` when the repository has no such ref.
pub async fn resolve(git: &str, url: &str, git_ref: &str, credential: Option<&TeamCredential>) -> Result<Option<String>, RemoteError> {
    let wanted = [format!("refs/heads/{git_ref}"), format!("refs/tags/{git_ref}^{{}}"), format!("refs/tags/{git_ref}"), git_ref.to_string()];
    let out = ls_remote(git, url, credential, &[&wanted[0], &wanted[1], &wanted[2], git_ref]).await?;
    let refs: Vec<(&str, &str)> = out.lines().filter_map(|l| l.split_once('\t')).map(|(sha, name)| (name, sha)).collect();
    Ok(wanted.iter().find_map(|w| refs.iter().find(|(name, _)| name == w)).map(|(_, sha)| sha.to_string()))
}

/// What registering a credential found out about one repository.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct AccessCheck {
    pub repository: String,
    /// `git ls-remote` with the credential succeeded.
    pub readable: bool,
    /// `Some(true)`: a `git push --dry-run` was refused, so the credential is read-only here;
    /// `Some(false)`: the server would accept a push; `None`: not tested (SSH, or unreadable).
    pub read_only: Option<bool>,
    /// Why it is not readable, in git's words with the secret cut out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Checks that `credential` can list `url`'s refs and, over HTTP(S), that a push with it is
/// refused.
pub async fn check_access(git: &str, url: &str, credential: &TeamCredential) -> AccessCheck {
    let mut check = AccessCheck { repository: url.to_string(), readable: false, read_only: None, error: None };
    if let Err(e) = ls_remote(git, url, Some(credential), &["HEAD"]).await {
        check.error = Some(e.0);
        return check;
    }
    check.readable = true;
    if url.starts_with("https://") || url.starts_with("http://") {
        check.read_only = push_refused(git, url, credential).await.ok();
    }
    check
}

async fn ls_remote(git: &str, url: &str, credential: Option<&TeamCredential>, patterns: &[&str]) -> Result<String, RemoteError> {
    let mut cmd = command(git);
    cmd.args(["ls-remote", "--"]).arg(url).args(patterns);
    let out = run(cmd, credential, "git ls-remote").await?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether the server refuses a (dry-run) push of an empty commit to a new branch.
async fn push_refused(git: &str, url: &str, credential: &TeamCredential) -> Result<bool, RemoteError> {
    let dir = tempfile::tempdir().map_err(|e| RemoteError(format!("cannot make a scratch repository: {e}")))?;
    for args in [&["init", "--quiet"][..], &["-c", "user.name=nova", "-c", "user.email=nova@localhost", "commit", "--quiet", "--allow-empty", "-m", "nova read-only check"]] {
        let mut cmd = command(git);
        cmd.arg("-C").arg(dir.path()).args(args);
        run(cmd, None, "git init").await?;
    }
    let mut cmd = command(git);
    cmd.arg("-C").arg(dir.path()).args(["push", "--dry-run", "--quiet", "--"]).arg(url).arg("HEAD:refs/heads/nova-read-only-check");
    Ok(run(cmd, Some(credential), "git push --dry-run").await.is_err())
}

fn command(git: &str) -> crate::process::Command {
    let mut cmd = crate::process::command(git);
    // Never a remote helper that runs a command (`ext::`), whatever git's own configuration says,
    // and no credential helper of the machine: only the team credential Nova hands over.
    cmd.args(["-c", "protocol.ext.allow=never", "-c", "credential.helper="]);
    cmd.env("GIT_TERMINAL_PROMPT", "0").env("GIT_ASKPASS", "true").stdin(Stdio::null());
    cmd
}

/// Runs `cmd` with the credential, within [`TIMEOUT`]; a failure is git's last line of
/// output, the secret cut out.
async fn run(mut cmd: crate::process::Command, credential: Option<&TeamCredential>, what: &str) -> Result<std::process::Output, RemoteError> {
    let _kept = match credential {
        Some(c) => Some(c.materialise(&mut cmd, None).map_err(|e| RemoteError(e.to_string()))?),
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
    let mut last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim().chars().take(300).collect::<String>();
    if let Some(c) = credential
        && !c.secret.expose().is_empty()
    {
        last = last.replace(c.secret.expose().as_str(), "**REDACTED**");
    }
    Err(RemoteError(format!("{what} failed ({}){}", out.status, if last.is_empty() { String::new() } else { format!(": {last}") })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_command_running_remote_helper_never_runs() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let err = resolve("git", &format!("ext::touch {}", marker.display()), "main", None).await.unwrap_err();
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
        assert_eq!(resolve("git", &url, "main", None).await.unwrap().as_deref(), Some(two.as_str()));
        assert_eq!(resolve("git", &url, "v1", None).await.unwrap().as_deref(), Some(one.as_str()));
        assert_eq!(resolve("git", &url, "refs/heads/main", None).await.unwrap().as_deref(), Some(two.as_str()));
        assert_eq!(resolve("git", &url, "nope", None).await.unwrap(), None);
    }
}
