//! Child processes: the one way Nova starts a program (git, buildah, ...).
//!
//! [`command`] wraps [`tokio::process::Command`] and offers what Nova needs of it. A secret
//! goes to a child through [`Command::env`] or its standard input, never [`Command::arg`]: a
//! process's argv is visible to every user of the machine (`ps`, `/proc/PID/cmdline`). To
//! check that, tests install an [`ArgvLog`] with [`record_argv`]; every child spawned while it
//! lives has its argv recorded (never its environment).

use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::process::{ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex, Weak};

/// A program to run, built up like [`std::process::Command`].
pub struct Command {
    inner: tokio::process::Command,
    argv: Vec<OsString>,
}

/// A new command running `program`. Children are killed when their handle is dropped.
pub fn command(program: impl AsRef<OsStr>) -> Command {
    let mut inner = tokio::process::Command::new(program.as_ref());
    inner.kill_on_drop(true);
    Command { inner, argv: vec![program.as_ref().to_owned()] }
}

impl Command {
    /// Adds an argument. Never a secret: pass those with [`Command::env`] or standard input.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Self {
        self.argv.push(arg.as_ref().to_owned());
        self.inner.arg(arg);
        self
    }

    /// Adds arguments. Never secrets.
    pub fn args<I, S>(&mut self, args: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        for a in args {
            self.arg(a);
        }
        self
    }

    /// Sets an environment variable of the child: the way to hand it a secret.
    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Self {
        self.inner.env(key, value);
        self
    }

    /// Removes an environment variable from the child's environment.
    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Self {
        self.inner.env_remove(key);
        self
    }

    /// Starts the child with an empty environment (plus what [`Command::env`] sets).
    pub fn env_clear(&mut self) -> &mut Self {
        self.inner.env_clear();
        self
    }

    /// The child's working directory.
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Self {
        self.inner.current_dir(dir);
        self
    }

    /// Starts the child in a process group of its own, so that a terminal's Ctrl-C reaches
    /// only Nova, which then stops the child itself.
    #[cfg(unix)]
    pub fn own_process_group(&mut self) -> &mut Self {
        self.inner.process_group(0);
        self
    }

    /// The child's standard input.
    pub fn stdin(&mut self, cfg: impl Into<Stdio>) -> &mut Self {
        self.inner.stdin(cfg);
        self
    }

    /// The child's standard output.
    pub fn stdout(&mut self, cfg: impl Into<Stdio>) -> &mut Self {
        self.inner.stdout(cfg);
        self
    }

    /// The child's standard error.
    pub fn stderr(&mut self, cfg: impl Into<Stdio>) -> &mut Self {
        self.inner.stderr(cfg);
        self
    }

    /// The program and arguments so far.
    pub fn argv(&self) -> &[OsString] {
        &self.argv
    }

    /// Starts the child.
    pub fn spawn(&mut self) -> std::io::Result<tokio::process::Child> {
        self.record();
        self.inner.spawn()
    }

    /// Runs the child to completion, collecting its output.
    pub async fn output(&mut self) -> std::io::Result<Output> {
        self.record();
        self.inner.output().await
    }

    /// Runs the child to completion.
    pub async fn status(&mut self) -> std::io::Result<ExitStatus> {
        self.record();
        self.inner.status().await
    }

    fn record(&self) {
        tracing::debug!(program = %Path::new(&self.argv[0]).display(), args = self.argv.len() - 1, "starting a child process");
        let mut logs = LOGS.lock().unwrap_or_else(|e| e.into_inner());
        logs.retain(|log| match log.upgrade() {
            Some(log) => {
                log.lock().unwrap_or_else(|e| e.into_inner()).push(self.argv.clone());
                true
            }
            None => false,
        });
    }
}

type Recorded = Mutex<Vec<Vec<OsString>>>;

/// Every live [`ArgvLog`].
static LOGS: Mutex<Vec<Weak<Recorded>>> = Mutex::new(Vec::new());

/// The argv of every child spawned since it was made, for tests that check no secret reaches
/// a command line. Recording stops when it is dropped.
pub struct ArgvLog(Arc<Recorded>);

/// Starts recording the argv of spawned children.
pub fn record_argv() -> ArgvLog {
    let log = Arc::new(Mutex::new(Vec::new()));
    LOGS.lock().unwrap_or_else(|e| e.into_inner()).push(Arc::downgrade(&log));
    ArgvLog(log)
}

impl ArgvLog {
    /// What has been recorded: one entry per child, program first.
    pub fn recorded(&self) -> Vec<Vec<OsString>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_argv_but_not_environment_while_a_log_lives() {
        let log = record_argv();
        let out = command("sh").args(["-c", "printf %s \"$SECRET_FOR_CHILD\""]).env("SECRET_FOR_CHILD", "hunter2").output().await.unwrap();
        assert_eq!(out.stdout, b"hunter2");
        let recorded = log.recorded();
        let mine: Vec<_> = recorded.iter().filter(|a| a.get(2).is_some_and(|s| s.to_string_lossy().contains("SECRET_FOR_CHILD"))).collect();
        assert_eq!(mine.len(), 1);
        assert!(!format!("{recorded:?}").contains("hunter2"));
    }
}
