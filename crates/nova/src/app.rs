//! Assembling Nova: storage, jobs, catalog, registries and the HTTP router, and running them together.
//! `nova serve` and the integration tests both start Nova through [`App::build`].

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::builds::local::{LocalRunner, PushRegistries, RunBuild, RunnerContext};
use crate::builds::backend::BuildBackends;
use crate::builds::store::BuildStore;
use crate::builds::tracker::{TrackBuild, Tracker};
use crate::audit::{ApplyRetention, AuditLog};
use crate::auth::Auth;
use crate::catalog::{Catalog, LocationSpec, RefreshLocation, RemoteContext};
use crate::config::{Config, LocationConfig};
use crate::flags::{self, Flags};
use crate::http::{AppInner, AppState, router};
use crate::jobs::{Job, JobQueue, JobRunner};
use crate::secrets::credential_uses::CredentialUses;
use crate::storage::Db;
use crate::telemetry;

/// How often each process picks up catalog and flag changes written by other replicas.
const SYNC_INTERVAL: Duration = Duration::from_secs(1);

/// A built, not yet running, Nova.
pub struct App {
    pub state: AppState,
    runner: JobRunner,
}

/// Turns configured locations into validated specs; relative targets are resolved against
/// `base` (the config file's directory, or the working directory for flags).
pub fn resolve_locations(locations: &[LocationConfig], base: &Path) -> anyhow::Result<Vec<LocationSpec>> {
    locations
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let spec = match l {
                LocationConfig::Target(t) => LocationSpec::infer(t, base),
                LocationConfig::Typed(t) => LocationSpec::parse_typed(t, base),
            };
            spec.map_err(|e| anyhow::anyhow!("config: catalog.locations[{i}]: {e}"))
        })
        .collect()
}

/// Connects to the configured database and brings its schema up to date.
pub async fn open_database(config: &Config) -> anyhow::Result<Db> {
    let db = Db::connect_with(&config.database.url, config.database.max_connections, config.database.acquire_timeout)
        .await
        .with_context(|| format!("cannot open the database ({})", redact_url(&config.database.url)))?;
    db.migrate().await.context("cannot migrate the database")?;
    Ok(db)
}

impl App {
    /// Connects and migrates the database and opens the catalog (serving what was last read).
    pub async fn build(config: Config, locations: Vec<LocationSpec>) -> anyhow::Result<Self> {
        let db = open_database(&config).await?;
        let auth = Auth::from_config(&config, db.clone())?;
        auth.sync().await.context("cannot load signed-out sessions")?;
        let audit = AuditLog::new(db.clone(), config.audit.log_events);
        let flags = Arc::new(Flags::open(db.clone(), flags::BUILTIN).await.context("cannot load feature flags")?);
        let secrets = crate::secrets::open(&config.secrets).await.context("cannot open the secret store")?;
        let jobs = JobQueue::new(db.clone(), config.jobs.clone());
        let remote = RemoteContext::new(config.server.data_dir.join("git-cache"), &config.catalog, config.outbound());
        let catalog = Catalog::open(db.clone(), jobs.clone(), config.catalog.clone(), remote, locations).await.context("cannot open the catalog")?;
        let mut runner = JobRunner::new(jobs.clone());
        let c = catalog.clone();
        runner.register::<RefreshLocation, _, _>(move |job, _| {
            let c = c.clone();
            async move { c.run_refresh_job(job).await }
        });
        let a = audit.clone();
        runner.register::<ApplyRetention, _, _>(move |job, _| {
            let a = a.clone();
            async move { a.run_retention_job(job).await }
        });
        let registries = PushRegistries::new(&config.registries, jobs.clone());
        let cx = RunnerContext { catalog: catalog.clone(), secrets: secrets.clone(), audit: audit.clone(), uses: CredentialUses::new(db.clone()), registries };
        let builds = LocalRunner::new(BuildStore::new(db.clone()), config.builds.clone(), &config.server.data_dir, cx);
        runner.register::<RunBuild, _, _>(move |job, _| {
            let b = builds.clone();
            async move { b.run_job(job).await }
        });
        let build_backends = BuildBackends::from_config(&config.build_backends).map_err(|e| anyhow::anyhow!("config: {e}"))?;
        let tracker = Tracker::new(BuildStore::new(db.clone()), build_backends.clone(), config.builds.clone());
        runner.register::<TrackBuild, _, _>(move |job, _| {
            let t = tracker.clone();
            async move { t.run_job(job).await }
        });
        if let Some(keep) = config.audit.retention {
            let job = ApplyRetention { keep_ms: keep.as_millis() as i64 };
            jobs.schedule_recurring(&job, ApplyRetention::KIND, crate::storage::now_ms()).await.context("cannot schedule audit retention")?;
        }
        crate::release::install(&config, &db, &jobs, &audit, &secrets, &mut runner).await?;
        let registry = crate::registry::service::install(&config, &db, &jobs, &catalog, &mut runner).await?;
        let state = AppState(Arc::new(AppInner { config, db, jobs, catalog, audit, flags, auth, metrics: telemetry::metrics_handle(), registry, secrets, build_backends, ready_detail: Default::default() }));
        Ok(Self { state, runner })
    }

    /// Serves on `listener` until `shutdown` is cancelled: reads every location once, runs
    /// background jobs, keeps the catalog in step with other replicas and the metrics drained.
    pub async fn serve(self, listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
        let App { state, runner } = self;
        let catalog = state.catalog.clone();
        let first_load = tokio::spawn(async move {
            if let Err(e) = catalog.load_all().await {
                tracing::error!(error = %e, "first catalog load failed");
            }
        });
        let jobs = tokio::spawn(runner.run(shutdown.clone()));
        let upkeep = tokio::spawn(telemetry::metrics_upkeep(state.metrics.clone(), shutdown.clone()));
        let replica_state = state.clone();
        let sync_shutdown = shutdown.clone();
        let sync = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = sync_shutdown.cancelled() => return,
                    _ = tokio::time::sleep(SYNC_INTERVAL) => {}
                }
                let s = &replica_state;
                if let Err(e) = s.catalog.sync().await {
                    tracing::warn!(error = %e, "catalog sync with the database failed; retrying");
                }
                if let Err(e) = s.flags.sync().await {
                    tracing::warn!(error = %e, "feature flag sync with the database failed; retrying");
                }
                if let Err(e) = s.auth.sync().await {
                    tracing::warn!(error = %e, "signed-out session sync with the database failed; retrying");
                }
            }
        });
        let header_read_timeout = state.config.server.header_read_timeout;
        let result = crate::http::serve::serve(listener, router(state), header_read_timeout, shutdown.clone()).await;
        shutdown.cancel();
        first_load.abort();
        let _ = tokio::join!(jobs, sync, upkeep);
        result.context("the HTTP server stopped")
    }
}

/// A database URL with any password removed, for messages.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("REDACTED"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}
