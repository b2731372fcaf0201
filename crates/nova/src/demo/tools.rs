//! The programs the demo environment needs, and what to do when some are missing: say exactly
//! which and how to install them, ask before installing on a terminal, install directly under
//! CI as root, and otherwise fall back to the catalog-only demo.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

/// A program the demo environment runs, and the Debian/Ubuntu package that has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tool {
    pub program: &'static str,
    pub package: &'static str,
    pub purpose: &'static str,
}

/// Every program the demo environment runs.
pub const TOOLS: &[Tool] = &[
    Tool { program: "docker-registry", package: "docker-registry", purpose: "the CNCF registry images are pushed to and read from" },
    Tool { program: "git", package: "git", purpose: "the git server (git http-backend) of the example repositories" },
    Tool { program: "buildah", package: "buildah", purpose: "builds the seeded images and the images you build" },
];

/// What to do about missing tools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Everything is installed.
    Ready,
    /// Ask on the terminal, then run this install command.
    Ask(Vec<String>),
    /// Run this install command without asking (CI, as root).
    Install(Vec<String>),
    /// Serve the catalog-only demo, for this reason.
    Fallback(String),
}

/// Where the decision is made: what is missing and what kind of session this is.
#[derive(Debug, Clone, Copy)]
pub struct Situation {
    pub interactive: bool,
    pub ci: bool,
    pub root: bool,
    pub apt: bool,
}

impl Situation {
    /// This process's situation.
    pub fn current() -> Self {
        Self {
            interactive: std::io::stdin().is_terminal() && std::io::stderr().is_terminal(),
            ci: std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false" && v != "0"),
            // SAFETY: getuid has no preconditions and cannot fail.
            root: unsafe { libc::getuid() } == 0,
            apt: on_path("apt-get"),
        }
    }
}

/// The tools not found on `PATH`.
pub fn missing() -> Vec<Tool> {
    TOOLS.iter().copied().filter(|t| !on_path(t.program)).collect()
}

/// Decides what to do about `missing` tools.
pub fn plan(missing: &[Tool], s: Situation) -> Plan {
    if missing.is_empty() {
        return Plan::Ready;
    }
    let packages: Vec<String> = missing.iter().map(|t| t.package.to_string()).collect();
    if !s.apt {
        return Plan::Fallback(format!("this machine has no apt-get; install {} with its package manager", packages.join(" ")));
    }
    let mut cmd: Vec<String> = if s.root { vec![] } else { vec!["sudo".into()] };
    cmd.extend(["apt-get", "install", "-y", "--no-install-recommends"].map(String::from));
    cmd.extend(packages);
    if s.interactive {
        Plan::Ask(cmd)
    } else if s.ci && s.root {
        Plan::Install(cmd)
    } else {
        Plan::Fallback(format!("not installing without asking; install them with: {}", cmd.join(" ")))
    }
}

/// Makes sure the tools are installed, asking or installing as [`plan`] decides. `Ok(true)`:
/// the demo environment can start; `Ok(false)`: serve the catalog-only demo (the reason has been
/// printed).
pub async fn ensure() -> anyhow::Result<bool> {
    let missing = missing();
    let situation = Situation::current();
    let plan = plan(&missing, situation);
    if plan == Plan::Ready {
        return Ok(true);
    }
    super::progress("the demo environment (a local registry, git server and builds) needs programs that are not installed:");
    for t in &missing {
        super::progress(&format!("  {} (Debian/Ubuntu package {}): {}", t.program, t.package, t.purpose));
    }
    let cmd = match plan {
        Plan::Ready => return Ok(true),
        Plan::Fallback(reason) => {
            super::progress(&format!("{reason}; serving the example catalog only"));
            return Ok(false);
        }
        Plan::Ask(cmd) => {
            eprint!("demo: install them now with `{}`? [y/N] ", cmd.join(" "));
            std::io::stderr().flush()?;
            let mut answer = String::new();
            std::io::stdin().lock().read_line(&mut answer)?;
            if !matches!(answer.trim(), "y" | "Y" | "yes") {
                super::progress("not installing; serving the example catalog only");
                return Ok(false);
            }
            cmd
        }
        Plan::Install(cmd) => cmd,
    };
    super::progress(&format!("running {}", cmd.join(" ")));
    let program = &cmd[0];
    let update: Vec<&str> = if situation.root { vec!["apt-get", "update", "-qq"] } else { vec!["sudo", "apt-get", "update", "-qq"] };
    let updated = crate::process::command(update[0]).args(&update[1..]).status().await;
    if !updated.is_ok_and(|s| s.success()) {
        super::progress("apt-get update failed; trying to install from the package lists there are");
    }
    let status = crate::process::command(program).args(&cmd[1..]).env("DEBIAN_FRONTEND", "noninteractive").status().await;
    let still = self::missing();
    if !status.is_ok_and(|s| s.success()) || !still.is_empty() {
        let names: Vec<&str> = still.iter().map(|t| t.program).collect();
        super::progress(&format!("installing failed (still missing: {}); serving the example catalog only", names.join(", ")));
        return Ok(false);
    }
    Ok(true)
}

/// Whether `program` is an executable file in a `PATH` directory.
fn on_path(program: &str) -> bool {
    let Some(path) = std::env::var_os("PATH") else { return false };
    std::env::split_paths(&path).any(|dir| is_executable(&dir.join(program))) && (program != "git" || git_http_backend().is_some())
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// git's smart-HTTP server program (`git http-backend`) in git's exec path: part of Debian's
/// git package, but some builds of git leave it out.
pub fn git_http_backend() -> Option<std::path::PathBuf> {
    let out = std::process::Command::new("git").arg("--exec-path").output().ok().filter(|o| o.status.success())?;
    let path = Path::new(String::from_utf8_lossy(&out.stdout).trim()).join("git-http-backend");
    is_executable(&path).then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGISTRY: Tool = TOOLS[0];
    const BUILDAH: Tool = TOOLS[2];

    fn s(interactive: bool, ci: bool, root: bool) -> Situation {
        Situation { interactive, ci, root, apt: true }
    }

    #[test]
    fn decides_by_session() {
        assert_eq!(plan(&[], s(false, false, false)), Plan::Ready);
        let both = [REGISTRY, BUILDAH];
        assert_eq!(plan(&both, s(true, false, false)), Plan::Ask("sudo apt-get install -y --no-install-recommends docker-registry buildah".split(' ').map(String::from).collect()));
        assert_eq!(plan(&both, s(false, true, true)), Plan::Install("apt-get install -y --no-install-recommends docker-registry buildah".split(' ').map(String::from).collect()));
        let Plan::Fallback(why) = plan(&both, s(false, true, false)) else { panic!("CI without root falls back") };
        assert!(why.contains("sudo apt-get install -y --no-install-recommends docker-registry buildah"), "{why}");
        assert!(matches!(plan(&both, s(false, false, true)), Plan::Fallback(_)), "no terminal, no CI: never installs");
        let Plan::Fallback(why) = plan(&[BUILDAH], Situation { apt: false, ..s(true, false, true) }) else { panic!("no apt") };
        assert!(why.contains("buildah"), "{why}");
    }
}
