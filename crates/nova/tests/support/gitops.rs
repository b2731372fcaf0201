//! GitOps repositories on the git server scripts/test starts (`git http-backend` behind basic
//! authentication): publishing a repository with some files, reading a file back.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The git server: base URL, repository root, password of `private/`.
pub fn git_server() -> Option<(String, PathBuf, String)> {
    let url = super::require("git HTTP server", std::env::var("NOVA_TEST_GIT_HTTP_URL").ok(), "scripts/test starts it with start_git_http")?;
    let root = std::env::var("NOVA_TEST_GIT_HTTP_ROOT").expect("set with the URL");
    Some((url, root.into(), std::env::var("NOVA_TEST_GIT_HTTP_PASSWORD").expect("set with the URL")))
}

/// Runs git in `dir` as a test user; answers its output.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git").args(["-c", "user.name=Nova Test", "-c", "user.email=test@example.com", "-c", "init.defaultBranch=main"]).args(args).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Publishes a repository holding `files` (path, text) under `private/`; answers its name.
pub fn publish(root: &Path, files: &[(&str, &str)]) -> String {
    let name = format!("private/gitops-{}", uuid::Uuid::new_v4().simple());
    let work = tempfile::tempdir().unwrap();
    git(work.path(), &["init", "--quiet"]);
    for (path, text) in files {
        super::write_file(work.path(), path, text);
    }
    git(work.path(), &["add", "-A"]);
    git(work.path(), &["commit", "--quiet", "-m", "files"]);
    let bare = root.join(format!("{name}.git"));
    std::fs::create_dir_all(bare.parent().unwrap()).unwrap();
    git(work.path(), &["clone", "--quiet", "--bare", ".", bare.to_str().unwrap()]);
    name
}

/// A file on `main` of a published repository.
pub fn show(root: &Path, name: &str, path: &str) -> String {
    git(&root.join(format!("{name}.git")), &["show", &format!("main:{path}")])
}
