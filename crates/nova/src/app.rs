//! Assembling Nova: storage, jobs, catalog, registries and the HTTP router, and running them together.
//! `nova serve` and the integration tests both start Nova through [`App::build`].

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::catalog::{Catalog, LocationSpec, RefreshLocation};
use crate::config::{Config, LocationConfig};
use crate::http::{AppInner, AppState, router};
use crate::jobs::{JobQueue, JobRunner};
use crate::storage::Db;
use crate::telemetry;

/// How often each process looks for catalog changes written by other replicas.
const CATALOG_SYNC_INTERVAL: Duration = Duration::from_secs(2);

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
                LocationConfig::Typed { kind, target } => LocationSpec::parse(kind, target, base),
            };
            spec.map_err(|e| anyhow::anyhow!("config: catalog.locations[{i}]: {e}"))
        })
        .collect()
}

impl App {
    /// Connects and migrates the database and opens the catalog (serving what was last read).
    pub async fn build(config: Config, locations: Vec<LocationSpec>) -> anyhow::Result<Self> {
        let db = Db::connect(&config.database.url, config.database.max_connections)
            .await
            .with_context(|| format!("cannot open the database ({})", redact_url(&config.database.url)))?;
        db.migrate().await.context("cannot migrate the database")?;
        let jobs = JobQueue::new(db.clone(), config.jobs.clone());
        let catalog = Catalog::open(db.clone(), jobs.clone(), config.catalog.clone(), locations).await.context("cannot open the catalog")?;
        let mut runner = JobRunner::new(jobs.clone());
        let c = catalog.clone();
        runner.register::<RefreshLocation, _, _>(move |job, _| {
            let c = c.clone();
            async move { c.run_refresh_job(job).await }
        });
        let registry = crate::registry::service::install(&config, &db, &jobs, &catalog, &mut runner).await?;
        let features = Arc::new(crate::features::FeatureSwitches::new(db.clone(), config.registry.switch_cache));
        let state = AppState(Arc::new(AppInner { config, db, jobs, catalog, metrics: telemetry::metrics_handle(), registry, features }));
        Ok(Self { state, runner })
    }

    /// Serves on `listener` until `shutdown` is cancelled: reads every location once, runs
    /// background jobs and keeps the catalog in step with other replicas.
    pub async fn serve(self, listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
        let App { state, runner } = self;
        let catalog = state.catalog.clone();
        let first_load = tokio::spawn(async move {
            if let Err(e) = catalog.load_all().await {
                tracing::error!(error = %e, "first catalog load failed");
            }
        });
        let jobs = tokio::spawn(runner.run(shutdown.clone()));
        let catalog = state.catalog.clone();
        let sync_shutdown = shutdown.clone();
        let sync = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = sync_shutdown.cancelled() => return,
                    _ = tokio::time::sleep(CATALOG_SYNC_INTERVAL) => {}
                }
                if let Err(e) = catalog.sync().await {
                    tracing::warn!(error = %e, "catalog sync with the database failed; retrying");
                }
            }
        });
        let app = router(state);
        let result = axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
            .with_graceful_shutdown(shutdown.clone().cancelled_owned())
            .await;
        shutdown.cancel();
        first_load.abort();
        let _ = tokio::join!(jobs, sync);
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
