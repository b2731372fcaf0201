//! Git repository locations: a shallow fetch of one ref into a bare cache repository, then
//! files are listed and read from that commit's objects (never a checkout, so symlinks in the
//! repository cannot point Nova at files on its host).
//!
//! `git` runs with an argument vector, never a shell; URLs and refs were validated when the
//! location was parsed and follow `--`. A credential reaches git only through its environment:
//! `GIT_ASKPASS` names a small helper that prints `NOVA_GIT_USERNAME` / `NOVA_GIT_PASSWORD`.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::{RemoteContext, check_host};
use crate::catalog::error::{CatalogError, ErrorKind};
use crate::catalog::location::{
    Fetched, GitTarget, LocationRead, LocationSpec, ReadLimits, Source, SourceFile, SourceRead, is_catalog_file, normalize_repo_path, too_large, utf8,
};

/// How long local git commands (listing, reading objects) may take.
const LOCAL_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest `ls-tree` listing read.
const MAX_LISTING_BYTES: usize = 64 << 20;

/// A git location being read.
pub struct GitSource<'a> {
    target: GitTarget,
    canonical: String,
    remote: &'a RemoteContext,
    limits: ReadLimits,
    tree: Option<Tree>,
}

/// The fetched commit's files.
struct Tree {
    repo: PathBuf,
    commit: String,
    /// path → (object id, size); symlinks and submodules are left out.
    blobs: BTreeMap<String, (String, u64)>,
}

fn fail(rule: &str, message: impl Into<String>) -> CatalogError {
    CatalogError::location("", ErrorKind::Location, rule, message)
}

impl<'a> GitSource<'a> {
    /// A source for `spec`, which must be a git location.
    pub fn new(spec: &LocationSpec, remote: &'a RemoteContext, limits: ReadLimits) -> Self {
        let target = spec.git().expect("GitSource is only built for git locations");
        Self { canonical: target.target(), target, remote, limits, tree: None }
    }

    fn file(&self, path: &str) -> SourceFile {
        SourceFile { key: format!("git:{}#{}:{path}", self.target.url, self.target.reference), locator: path.to_string() }
    }

    /// Files matching `path` in the fetched tree: the file itself, every catalog file under a
    /// directory, or every file a glob matches.
    fn matching(&self, path: &str) -> Result<Vec<SourceFile>, CatalogError> {
        let tree = self.tree.as_ref().expect("root() fetched the tree");
        let paths: Vec<&String> = if path.contains(['*', '?', '[']) {
            let pattern = glob::Pattern::new(path).map_err(|e| fail("glob", format!("invalid glob pattern: {}", e.msg)))?;
            let options = glob::MatchOptions { require_literal_separator: true, ..Default::default() };
            tree.blobs.keys().filter(|p| pattern.matches_with(p, options)).collect()
        } else if tree.blobs.contains_key(path) {
            tree.blobs.keys().filter(|p| *p == path).collect()
        } else {
            let prefix = format!("{path}/");
            let under: Vec<&String> = tree.blobs.range(prefix.clone()..).take_while(|(p, _)| p.starts_with(&prefix)).map(|(p, _)| p).collect();
            if under.is_empty() {
                let short = &tree.commit[..tree.commit.len().min(12)];
                return Err(fail("exists", format!("{path} does not exist in the repository at {} (commit {short})", self.target.reference)));
            }
            under
                .into_iter()
                .filter(|p| !p[prefix.len()..].split('/').any(|c| c.starts_with('.')) && is_catalog_file(p))
                .collect()
        };
        Ok(paths.into_iter().map(|p| self.file(p)).collect())
    }

    fn fetch(&mut self) -> Result<Tree, CatalogError> {
        if let Some((host, port)) = url_host(&self.target.url) {
            check_host(&self.remote.outbound, &host, port)?;
        }
        let credential = if self.target.url.starts_with("http") { self.remote.credential_for(&self.target.url)? } else { None };
        let repo = self.remote.cache_dir.join(hex::encode(&Sha256::digest(self.canonical.as_bytes())[..12]));
        let lock = repo_lock(&repo);
        let _held = lock.lock().unwrap_or_else(|e| e.into_inner());
        std::fs::create_dir_all(&self.remote.cache_dir)
            .map_err(|e| fail("cache", format!("cannot create the git cache {}: {e}", self.remote.cache_dir.display())))?;
        if !repo.join("HEAD").exists() {
            git(None, &["init", "--bare", "--quiet", path_arg(&repo)?], &[], LOCAL_TIMEOUT, usize::MAX)?;
        }
        let mut env: Vec<(&str, String)> = Vec::new();
        if let Some(c) = &credential {
            let askpass = crate::git_remote::write_askpass(&self.remote.cache_dir).map_err(|e| fail("cache", format!("cannot write the git askpass helper: {e}")))?;
            env.push(("GIT_ASKPASS", askpass.to_string_lossy().into_owned()));
            env.push(("NOVA_GIT_USERNAME", c.username.clone().unwrap_or_else(|| "git".into())));
            env.push(("NOVA_GIT_PASSWORD", c.secret.expose().clone()));
        }
        let refspec = format!("+{}:refs/nova/fetched", self.target.reference);
        let args = ["fetch", "--depth=1", "--no-tags", "--quiet", "--no-recurse-submodules", "--", &self.target.url, &refspec];
        git(Some(&repo), &args, &env, self.remote.timeout, usize::MAX).map_err(|e| CatalogError { rule: "fetch".into(), ..e })?;
        let commit = git(Some(&repo), &["rev-parse", "--verify", "refs/nova/fetched^{commit}"], &[], LOCAL_TIMEOUT, 1024)?;
        let commit = String::from_utf8_lossy(&commit).trim().to_string();
        let listing = git(Some(&repo), &["ls-tree", "-r", "-z", "-l", "--full-tree", &commit], &[], LOCAL_TIMEOUT, MAX_LISTING_BYTES)?;
        let mut blobs = BTreeMap::new();
        for entry in listing.split(|b| *b == 0).filter(|e| !e.is_empty()) {
            let entry = String::from_utf8_lossy(entry);
            let Some((meta, path)) = entry.split_once('\t') else { continue };
            let fields: Vec<&str> = meta.split_whitespace().collect();
            if let [mode, "blob", oid, size] = fields[..]
                && mode != "120000"
            {
                blobs.insert(path.to_string(), (oid.to_string(), size.parse().unwrap_or(u64::MAX)));
            }
        }
        Ok(Tree { repo, commit, blobs })
    }
}

impl Source for GitSource<'_> {
    fn root(&mut self, _previous: Option<&LocationRead>) -> Result<Vec<SourceFile>, CatalogError> {
        self.tree = Some(self.fetch()?);
        let path = self.target.path.clone();
        self.matching(&path)
    }

    fn resolve(&mut self, from: &SourceFile, target: &str) -> Result<Vec<SourceFile>, CatalogError> {
        if target.contains("://") || target.starts_with("git:") || target.starts_with("url:") {
            return Err(fail("valid-target", "a Location entity in a git location may only name paths inside the same repository"));
        }
        let joined = match target.strip_prefix('/') {
            Some(rooted) => rooted.to_string(),
            None => format!("{}/{target}", from.locator.rsplit_once('/').map_or("", |(dir, _)| dir)),
        };
        let path = normalize_repo_path(&joined).ok_or_else(|| fail("valid-target", format!("target {target:?} leads outside the repository")))?;
        self.matching(&path)
    }

    fn read(&mut self, file: &SourceFile, _previous: Option<&SourceRead>) -> Result<Fetched, CatalogError> {
        let tree = self.tree.as_ref().expect("root() fetched the tree");
        let (oid, size) = tree.blobs.get(&file.locator).ok_or_else(|| fail("exists", format!("{} is not in the fetched commit", file.locator)))?;
        if *size > self.limits.max_file_bytes {
            return Err(too_large(*size, self.limits.max_file_bytes));
        }
        let bytes = git(Some(&tree.repo), &["cat-file", "blob", oid], &[], LOCAL_TIMEOUT, self.limits.max_file_bytes as usize)?;
        Ok(Fetched::Text { text: utf8(bytes)?, etag: None })
    }
}

/// Host and port of a URL git connects to over the network, for the address check.
fn url_host(url: &str) -> Option<(String, u16)> {
    if let Some((scheme, _)) = url.split_once("://") {
        let u = ::url::Url::parse(url).ok()?;
        let port = u.port().unwrap_or(match scheme {
            "https" => 443,
            "http" => 80,
            "git" => 9418,
            _ => 22,
        });
        return u.host_str().map(|h| (h.to_string(), port));
    }
    // scp-like user@host:path
    let (host, _) = url.split_once(':')?;
    Some((host.rsplit('@').next()?.to_string(), 22))
}

fn path_arg(p: &Path) -> Result<&str, CatalogError> {
    p.to_str().ok_or_else(|| fail("cache", format!("the git cache path {} is not UTF-8", p.display())))
}

/// One lock per cache repository, so two reads of the same location never fetch at once.
fn repo_lock(repo: &Path) -> Arc<Mutex<()>> {
    static LOCKS: OnceLock<Mutex<HashMap<PathBuf, Arc<Mutex<()>>>>> = OnceLock::new();
    let mut locks = LOCKS.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    locks.entry(repo.to_path_buf()).or_default().clone()
}

/// Runs git with `args` (never through a shell) in `repo`, killing it and everything it
/// started after `timeout`. Answers stdout, or an error carrying git's own last message.
fn git(repo: Option<&Path>, args: &[&str], env: &[(&str, String)], timeout: Duration, max_stdout: usize) -> Result<Vec<u8>, CatalogError> {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new("git");
    if let Some(r) = repo {
        cmd.arg("-C").arg(r);
    }
    // No credential helper may store or supply secrets; only the transports Nova allows.
    cmd.args(["-c", "credential.helper=", "-c", "protocol.allow=never"]);
    for p in ["https", "http", "ssh", "git", "file"] {
        cmd.arg("-c").arg(format!("protocol.{p}.allow=always"));
    }
    cmd.args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C")
        .env_remove("GIT_ASKPASS")
        .env_remove("SSH_ASKPASS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if std::env::var_os("GIT_SSH_COMMAND").is_none() {
        cmd.env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes");
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().map_err(|e| fail("git", format!("cannot run git (is it installed?): {e}")))?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = (&mut stdout).take((max_stdout as u64).saturating_add(1)).read_to_end(&mut buf);
        std::io::copy(&mut stdout, &mut std::io::sink()).ok();
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = (&mut stderr).take(64 * 1024).read_to_end(&mut buf);
        std::io::copy(&mut stderr, &mut std::io::sink()).ok();
        buf
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => {
                // SAFETY: signals the process group git leads (its own pid), created above.
                unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(fail("git", format!("waiting for git failed: {e}"))),
        }
    };
    let out = out_reader.join().unwrap_or_default();
    let err = String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).into_owned();
    match status {
        None => Err(fail("timeout", format!("git {} did not finish within {timeout:?} (catalog.remote_timeout)", args[0]))),
        Some(s) if !s.success() => Err(fail("git", format!("git {} failed: {}", args[0], last_message(&err)))),
        Some(_) if out.len() > max_stdout => Err(fail("git", format!("git {} printed more than {max_stdout} bytes", args[0]))),
        Some(_) => Ok(out),
    }
}

/// git's own explanation: its last `fatal:`/`error:` line, else its last line.
fn last_message(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let line = lines.iter().rev().find(|l| l.starts_with("fatal:") || l.starts_with("error:")).or(lines.last()).copied().unwrap_or("no message");
    let line = line.trim_start_matches("fatal: ").trim_start_matches("error: ");
    line.chars().take(400).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_found_for_every_url_form() {
        assert_eq!(url_host("https://git.example.com/a.git"), Some(("git.example.com".into(), 443)));
        assert_eq!(url_host("ssh://git@h:2222/a.git"), Some(("h".into(), 2222)));
        assert_eq!(url_host("git@h:org/a.git"), Some(("h".into(), 22)));
        assert_eq!(url_host("file:///srv/a.git"), None);
    }

    #[test]
    fn git_messages_are_its_last_error() {
        assert_eq!(last_message("warning: x\nfatal: couldn't find remote ref nope\n"), "couldn't find remote ref nope");
        assert_eq!(last_message(""), "no message");
    }
}
