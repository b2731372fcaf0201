//! Builds run by a remote backend (Jenkins, GitHub Actions): one `build.track` job per build
//! starts it there, then polls its status and log into the build store (and so into the
//! console's event stream) every `builds.poll_interval` until a final state.
//!
//! The job is leased like every job, so two replicas never track the same build at once, and
//! its state is in the database, so tracking resumes after a restart. Starting is idempotent
//! per build (the backends find a run they already started by the build's id), so a crash
//! between the backend's answer and the handle being stored starts nothing twice. A run the
//! backend no longer knows ends `lost`; a build cancelled in Nova is cancelled in the backend.

use std::time::Duration;

use nova_domain::EntityRef;
use nova_domain::build::{BuildArgName, GitRef, RepoPath};
use serde::{Deserialize, Serialize};

use super::backend::{BackendError, BuildArg, BuildBackend, BuildBackends, BuildSpec, RunHandle, RunState, Selected};
use super::store::{Build, BuildStore};
use crate::config::BuildsConfig;
use crate::jobs::{Job, JobOutcome};
use crate::storage::now_ms;

/// The job that starts and follows one remote build.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrackBuild {
    pub build_id: String,
}

impl Job for TrackBuild {
    const KIND: &'static str = "build.track";
}

/// How many log chunks one poll copies at most, so a chatty build cannot hold the worker.
const LOG_CHUNKS_PER_POLL: usize = 20;

/// Starts and follows remote builds.
#[derive(Clone)]
pub struct Tracker {
    store: BuildStore,
    backends: BuildBackends,
    config: BuildsConfig,
}

impl Tracker {
    pub fn new(store: BuildStore, backends: BuildBackends, config: BuildsConfig) -> Self {
        Self { store, backends, config }
    }

    /// The job handler: one step of a build's life in its backend.
    pub async fn run_job(&self, job: TrackBuild) -> Result<JobOutcome, String> {
        let e = |e: crate::storage::StorageError| e.to_string();
        let Some(build) = self.store.get(&job.build_id).await.map_err(e)? else { return Ok(JobOutcome::Done) };
        let run = self.store.run_of(&build.id).await.map_err(e)?;
        if build.finished_at.is_some() {
            if build.state == "cancelled"
                && let Some((handle, _)) = run
            {
                self.cancel_run(&handle).await;
            }
            return Ok(JobOutcome::Done);
        }
        let (name, backend, target) = match self.backends.select(&build.pipeline) {
            Ok(Selected::Remote { name, backend, target }) => (name, backend, target),
            Ok(Selected::Local) => return Ok(JobOutcome::Done),
            Err(err) => return self.fail(&build, &format!("nova.dev/build-pipeline {}: {err}", build.pipeline)).await,
        };
        let (handle, offset) = match run {
            Some(run) => run,
            None => match self.start(&build, &name, backend.as_ref(), target).await? {
                Some(handle) => (handle, 0),
                None => return Ok(self.again(true)),
            },
        };
        let status = match backend.status(&handle).await {
            Ok(status) => status,
            Err(BackendError::NotFound(why)) => {
                let reason = format!("{name} no longer knows this build's run ({why})");
                self.store.finish(&build.id, "lost", Some(&reason), None).await.map_err(e)?;
                return Ok(JobOutcome::Done);
            }
            Err(err) => {
                tracing::warn!(build = %build.id, backend = %name, error = %err, "cannot read a remote build's status; retrying");
                return Ok(self.again(true));
            }
        };
        self.copy_log(&build, backend.as_ref(), &handle, offset, status.state.is_finished()).await;
        match status.state {
            RunState::Queued => self.store.set_state(&build.id, "queued").await.map_err(e)?,
            RunState::Running => self.store.set_state(&build.id, "running").await.map_err(e)?,
            RunState::Succeeded => {
                self.store.finish(&build.id, "succeeded", None, status.digest.as_deref()).await.map_err(e)?;
                return Ok(JobOutcome::Done);
            }
            RunState::Failed(why) => return self.fail(&build, &format!("{name}: {why}")).await,
            RunState::Cancelled => {
                self.store.cancel(&build.id).await.map_err(e)?;
                return Ok(JobOutcome::Done);
            }
            RunState::TimedOut => {
                self.store.finish(&build.id, "timed_out", Some(&format!("{name} reports the build timed out")), None).await.map_err(e)?;
                return Ok(JobOutcome::Done);
            }
        }
        Ok(self.again(false))
    }

    /// Starts the build in its backend and records the run; `None` to try again later.
    async fn start(&self, build: &Build, name: &str, backend: &dyn BuildBackend, target: String) -> Result<Option<RunHandle>, String> {
        let spec = match spec(build, target) {
            Ok(spec) => spec,
            Err(why) => {
                self.fail(build, &why).await?;
                return Ok(None);
            }
        };
        match backend.start(&spec).await {
            Ok(handle) => {
                self.store.set_run(&build.id, &handle).await.map_err(|e| e.to_string())?;
                let link = handle.url.as_deref().map(|u| format!(": {u}")).unwrap_or_default();
                let _ = self.store.append_log(&build.id, &format!("[nova] started on {name}{link}\n")).await;
                Ok(Some(handle))
            }
            Err(err) if err.is_transient() => {
                tracing::warn!(build = %build.id, backend = %name, error = %err, "cannot start a remote build yet; retrying");
                Ok(None)
            }
            Err(err) => {
                self.fail(build, &format!("{name} refused the build: {err}")).await?;
                Ok(None)
            }
        }
    }

    /// Copies new log text from the backend; at the end of a run, all that is left.
    async fn copy_log(&self, build: &Build, backend: &dyn BuildBackend, handle: &RunHandle, mut offset: u64, finished: bool) {
        let Ok(Some((_, mut size))) = self.store.log(&build.id, usize::MAX).await else { return };
        for _ in 0..LOG_CHUNKS_PER_POLL {
            let chunk = match backend.logs(handle, offset).await {
                Ok(chunk) => chunk,
                Err(err) => {
                    tracing::debug!(build = %build.id, error = %err, "cannot read a remote build's log yet");
                    return;
                }
            };
            if chunk.next_offset == offset {
                return;
            }
            let text = bounded(&chunk.text, size, self.config.max_log_bytes);
            if self.store.append_run_log(&build.id, &text, chunk.next_offset).await.is_err() {
                return;
            }
            size += text.len();
            offset = chunk.next_offset;
            if !(finished || chunk.more) {
                return;
            }
        }
    }

    async fn cancel_run(&self, handle: &RunHandle) {
        if let Some(backend) = self.backends.get(&handle.backend)
            && let Err(err) = backend.cancel(handle).await
        {
            tracing::warn!(backend = %handle.backend, error = %err, "cannot cancel a remote build");
        }
    }

    async fn fail(&self, build: &Build, reason: &str) -> Result<JobOutcome, String> {
        self.store.finish(&build.id, "failed", Some(reason), None).await.map_err(|e| e.to_string())?;
        Ok(JobOutcome::Done)
    }

    /// The next poll: the configured interval, four times longer after an error.
    fn again(&self, after_error: bool) -> JobOutcome {
        let wait = if after_error { self.config.poll_interval * 4 } else { self.config.poll_interval };
        JobOutcome::RunAgainAt(now_ms() + wait.min(Duration::from_secs(300)).as_millis() as i64)
    }
}

/// Asks the backend that runs `handle` to stop it (the cancel endpoint's part).
pub async fn cancel_in_backend(backends: &BuildBackends, handle: &RunHandle) -> Result<(), BackendError> {
    match backends.get(&handle.backend) {
        Some(backend) => backend.cancel(handle).await,
        None => Err(BackendError::NotFound(format!("no build backend {} is configured any more", handle.backend))),
    }
}

/// `text` as much as fits in a log of `size` bytes capped at `max`, with the cut marked.
fn bounded(text: &str, size: usize, max: usize) -> String {
    if size + text.len() <= max {
        return text.to_string();
    }
    if size > max {
        return String::new();
    }
    let mut end = max - size;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n[nova] log truncated at {max} bytes (builds.max_log_bytes)\n", &text[..end])
}

/// What the backend is asked to build: the build row's fields, parsed again (they were checked
/// when the build was asked for).
fn spec(build: &Build, target: String) -> Result<BuildSpec, String> {
    let bad = |what: &str, e: String| format!("the stored build has an invalid {what}: {e}");
    Ok(BuildSpec {
        build_id: build.id.parse().map_err(|e: uuid::Error| bad("id", e.to_string()))?,
        component: EntityRef::parse(&build.component_ref).map_err(|e| bad("component", e.to_string()))?,
        target,
        git_url: build.git_url.clone(),
        git_ref: GitRef::parse(&build.git_ref).map_err(|e| bad("gitRef", e.0))?,
        commit: build.git_commit.clone(),
        dockerfile: RepoPath::parse(&build.dockerfile).map_err(|e| bad("dockerfile", e.0))?,
        context: RepoPath::parse(&build.context).map_err(|e| bad("context", e.0))?,
        image: build.image.clone(),
        tag: build.tag.clone(),
        build_args: build
            .build_args
            .iter()
            .map(|a| Ok(BuildArg { name: BuildArgName::parse(&a.name).map_err(|e| bad("build argument", e.0))?, value: nova_domain::Sensitive::new(a.value.clone()), secret: false }))
            .collect::<Result<_, String>>()?,
    })
}

#[cfg(test)]
mod tests {
    use super::bounded;

    #[test]
    fn remote_logs_are_cut_at_the_cap_on_a_character_boundary() {
        assert_eq!(bounded("abc", 0, 10), "abc");
        assert_eq!(bounded("ééé", 7, 10), "é\n[nova] log truncated at 10 bytes (builds.max_log_bytes)\n");
        assert_eq!(bounded("x", 11, 10), "");
    }
}
