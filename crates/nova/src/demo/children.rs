//! The demo's child processes: started in process groups of their own with their output in
//! log files, their PIDs written to files, and stopped by PID — SIGTERM, then SIGKILL after a
//! grace period. A child left over by a Nova that was killed is found by its PID file and
//! stopped at the next start, before its port is needed again.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use tokio::process::Child;

/// How long a child may take to exit after SIGTERM.
const GRACE: Duration = Duration::from_secs(5);

/// The children started so far.
pub struct Children {
    run: PathBuf,
    logs: PathBuf,
    started: Vec<(String, Child)>,
}

impl Children {
    /// Children with PID files in `run` and output in `logs`.
    pub fn new(run: PathBuf, logs: PathBuf) -> anyhow::Result<Self> {
        for d in [&run, &logs] {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
        }
        Ok(Self { run, logs, started: Vec::new() })
    }

    /// Stops children a previous run left behind: a PID file whose process still runs with
    /// this directory in its command line.
    pub async fn stop_stale(&self) {
        let Ok(entries) = std::fs::read_dir(&self.run) else { return };
        let marker = self.run.parent().unwrap_or(&self.run).display().to_string();
        for entry in entries.flatten() {
            let path = entry.path();
            let pid = std::fs::read_to_string(&path).ok().and_then(|t| t.trim().parse::<i32>().ok());
            if let Some(pid) = pid
                && pid > 1
                && std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| String::from_utf8_lossy(&c).contains(&marker))
            {
                super::progress(&format!("stopping {} (PID {pid}) left over from an earlier run", path.file_stem().unwrap_or_default().to_string_lossy()));
                signal(pid, libc::SIGTERM);
                for _ in 0..50 {
                    if !alive(pid) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                if alive(pid) {
                    signal(pid, libc::SIGKILL);
                }
            }
            let _ = std::fs::remove_file(&path);
        }
    }

    /// Starts `cmd` as the child `name`, its output appended to `logs/<name>.log`.
    pub fn start(&mut self, name: &str, mut cmd: crate::process::Command) -> anyhow::Result<()> {
        let log_path = self.logs.join(format!("{name}.log"));
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).with_context(|| format!("cannot open {}", log_path.display()))?;
        cmd.stdin(std::process::Stdio::null()).stdout(log.try_clone()?).stderr(log);
        #[cfg(unix)]
        cmd.own_process_group();
        let child = cmd.spawn().with_context(|| format!("cannot start {name} ({})", cmd.argv()[0].to_string_lossy()))?;
        if let Some(pid) = child.id() {
            std::fs::write(self.pid_file(name), pid.to_string()).with_context(|| format!("cannot write the PID file of {name}"))?;
        }
        self.started.push((name.to_string(), child));
        Ok(())
    }

    /// Waits until `url` answers (any HTTP status) or the child `name` exits.
    pub async fn wait_http(&mut self, name: &str, url: &str, limit: Duration) -> anyhow::Result<()> {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(1)).build()?;
        let url = url.to_string();
        self.wait(name, limit, move || {
            let client = client.clone();
            let url = url.clone();
            async move { client.get(&url).send().await.is_ok() }
        })
        .await
    }

    /// Waits until 127.0.0.1:`port` accepts connections or the child `name` exits.
    pub async fn wait_tcp(&mut self, name: &str, port: u16, limit: Duration) -> anyhow::Result<()> {
        self.wait(name, limit, move || async move { tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() }).await
    }

    async fn wait<F, Fut>(&mut self, name: &str, limit: Duration, ready: F) -> anyhow::Result<()>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = tokio::time::Instant::now() + limit;
        let log = self.logs.join(format!("{name}.log"));
        loop {
            if ready().await {
                return Ok(());
            }
            let exited = match self.started.iter_mut().find(|(n, _)| n == name) {
                Some((_, child)) => child.try_wait()?.map(|s| s.to_string()),
                None => Some("not started".into()),
            };
            if let Some(status) = exited {
                anyhow::bail!("{name} stopped ({status}); its output is in {}:\n{}", log.display(), tail(&log));
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!("{name} did not answer within {}s; its output is in {}", limit.as_secs(), log.display());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops every child, the last started first: SIGTERM by PID, SIGKILL after the grace
    /// period; removes their PID files.
    pub async fn stop_all(mut self) {
        while let Some((name, mut child)) = self.started.pop() {
            if let Some(pid) = child.id() {
                signal(pid as i32, libc::SIGTERM);
                if tokio::time::timeout(GRACE, child.wait()).await.is_err() {
                    let _ = child.kill().await;
                }
                super::progress(&format!("stopped {name} (PID {pid})"));
            }
            let _ = std::fs::remove_file(self.pid_file(&name));
        }
    }

    fn pid_file(&self, name: &str) -> PathBuf {
        self.run.join(format!("{name}.pid"))
    }
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) with a PID this module started (or read from its own PID file after
    // checking the process's command line); it has no memory effects on this process.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// Whether `pid` is running: it exists and is not a zombie waiting for its parent (an orphan's
/// new parent may be slow to reap it, or never do so in a container).
fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    let exists = unsafe { libc::kill(pid, 0) == 0 };
    let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')));
    exists && !zombie
}

/// The last lines of a log file, for an error message.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}
