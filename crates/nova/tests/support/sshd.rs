//! The git server over SSH that `start_sshd` (scripts/lib/services.sh) runs: a real OpenSSH
//! sshd on loopback whose only user, `git`, has git-shell as its shell. One client key is
//! read-only (a forced command refuses `git-receive-pack`, as read-only deploy keys do), one
//! may push; the host key is pinned in a known_hosts file.

use std::path::{Path, PathBuf};

/// The running server, as scripts/test exported it.
pub struct SshServer {
    pub port: u16,
    /// Where bare repositories are created; their URLs name this absolute path.
    pub root: PathBuf,
    /// A known_hosts file with the server's host key on each address.
    pub known_hosts: PathBuf,
    /// The private key allowed to fetch only.
    pub read_only_key: String,
    /// The private key allowed to push too.
    pub read_write_key: String,
    /// A loopback address where the same server listens on port 22, for scp-like URLs.
    pub scp_host: Option<String>,
}

impl SshServer {
    /// The server, or `None` (skipped loudly; a failure under CI) when it was not started.
    pub fn require() -> Option<Self> {
        let port = super::require("git server over SSH", std::env::var("NOVA_TEST_SSHD_PORT").ok(), "scripts/test starts it with start_sshd (needs root and openssh-server)")?;
        let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is set with NOVA_TEST_SSHD_PORT"));
        let key = |name: &str| std::fs::read_to_string(var(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        Some(Self {
            port: port.parse().expect("a port"),
            root: var("NOVA_TEST_SSHD_ROOT").into(),
            known_hosts: var("NOVA_TEST_SSHD_KNOWN_HOSTS").into(),
            read_only_key: key("NOVA_TEST_SSHD_KEY"),
            read_write_key: key("NOVA_TEST_SSHD_RW_KEY"),
            scp_host: std::env::var("NOVA_TEST_SSHD_SCP_HOST").ok(),
        })
    }

    /// A new bare repository `<name>-<random>.git` holding one commit on `main` with `files`;
    /// answers its path.
    pub fn repository(&self, name: &str, files: &[(&str, &str)]) -> PathBuf {
        let work = tempfile::tempdir().unwrap();
        for (path, text) in files {
            super::write_file(work.path(), path, text);
        }
        git(work.path(), &["init", "--quiet"]);
        git(work.path(), &["add", "-A"]);
        git(work.path(), &["commit", "--quiet", "--allow-empty", "-m", "first"]);
        let bare = self.root.join(format!("{name}-{}.git", uuid::Uuid::new_v4().simple()));
        git(work.path(), &["clone", "--quiet", "--bare", ".", bare.to_str().unwrap()]);
        bare
    }

    /// `ssh://git@127.0.0.1:PORT/<path>`.
    pub fn ssh_url(&self, repository: &Path) -> String {
        format!("ssh://git@127.0.0.1:{}{}", self.port, repository.display())
    }

    /// `git@HOST:<path>` (scp-like), when the server also listens on port 22.
    pub fn scp_url(&self, repository: &Path) -> Option<String> {
        self.scp_host.as_ref().map(|h| format!("git@{h}:{}", repository.display()))
    }
}

/// Runs git in `dir`; panics with its output when it fails.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git").arg("-C").arg(dir).args(["-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "init.defaultBranch=main"]).args(args).output().unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A new ed25519 private key with `comment` (which the key's text carries, base64-encoded),
/// protected by `passphrase` when one is given.
pub fn new_key(comment: &str, passphrase: Option<&str>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("id");
    let out = std::process::Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-C", comment, "-N", passphrase.unwrap_or(""), "-f"]).arg(&file).output().expect("ssh-keygen runs");
    assert!(out.status.success(), "ssh-keygen: {}", String::from_utf8_lossy(&out.stderr));
    std::fs::read_to_string(file).unwrap()
}
