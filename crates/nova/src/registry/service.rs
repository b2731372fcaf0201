//! The registry service: which repositories the catalog links, their background refresh
//! (typed, leased jobs), the per-process copy of the cache, on-demand refresh with a rate
//! limit, and the findings drill-down.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use nova_domain::{Digest, EntityRef, TagPrefix};
use serde::{Deserialize, Serialize};

use super::provider::{ImageRecord, RegistryError, ScanReport};
use super::store::{self, RepoRow, RepoState};
use super::{ComponentLinks, RegistrySettings, Registries, RepoKey};
use crate::catalog::{Catalog, Snapshot};
use crate::jobs::{Job, JobOutcome, JobQueue};
use crate::storage::{Db, StorageError, now_ms};

/// How often the linked repositories are re-read from the catalog and their refresh jobs
/// made sure of.
const RECONCILE_INTERVAL: Duration = Duration::from_secs(30);
/// The name the drift report is stored under.
pub const DRIFT_REPORT: &str = "drift";

/// Re-reads one repository from its registry. Recurring; idempotent (a rerun writes the same
/// rows).
#[derive(Debug, Serialize, Deserialize)]
pub struct RefreshRepository {
    pub key: String,
}

impl Job for RefreshRepository {
    const KIND: &'static str = "registry.refresh";
}

/// Makes sure every repository the catalog links has a refresh job, and recomputes the drift
/// report. Recurring; idempotent.
#[derive(Debug, Serialize, Deserialize, Default)]
pub struct ReconcileRegistries {}

impl Job for ReconcileRegistries {
    const KIND: &'static str = "registry.reconcile";
}

fn refresh_key(key: &str) -> String {
    format!("registry.refresh:{key}")
}

/// Asks for a refresh of the repository `key` (`<registry>/<repository>`) now, e.g. after
/// Nova pushed an image to it.
pub async fn refresh_soon(jobs: &JobQueue, key: &str) -> Result<String, StorageError> {
    jobs.run_now(&RefreshRepository { key: key.to_string() }, &refresh_key(key)).await
}

/// A component that links a repository.
#[derive(Debug, Clone)]
pub struct Linker {
    pub component: EntityRef,
    pub tag_prefix: Option<TagPrefix>,
    pub environment: Option<String>,
}

/// The catalog's image links, computed once per catalog snapshot.
#[derive(Debug, Default)]
pub struct LinkIndex {
    /// Components by the repository they link.
    pub by_repo: BTreeMap<RepoKey, Vec<Linker>>,
    /// Components whose annotations cannot be used, with every reason.
    pub errors: Vec<(EntityRef, Vec<String>)>,
}

/// A repository's cache row with its images, as this process last loaded them.
#[derive(Debug)]
pub struct CachedRepo {
    pub row: RepoRow,
    /// Newest first; shared between requests.
    pub images: Arc<Vec<ImageRecord>>,
}

/// What a findings drill-down found.
#[derive(Debug)]
pub struct FindingsResult {
    pub report: Option<ScanReport>,
    pub fetched_at: Option<i64>,
    /// Why the registry could not be asked now (the report, if any, is the last known one).
    pub stale: Option<RegistryError>,
}

/// The result of asking for an on-demand refresh.
#[derive(Debug)]
pub enum RefreshRequest {
    /// Refresh jobs are due now.
    Queued(Vec<String>),
    /// Too soon after the last request; retry after this many milliseconds.
    TooSoon(i64),
}

/// The registry service.
pub struct RegistryService {
    db: Db,
    jobs: JobQueue,
    catalog: Arc<Catalog>,
    registries: Arc<Registries>,
    pub settings: RegistrySettings,
    cache: RwLock<HashMap<String, Arc<CachedRepo>>>,
    links: RwLock<Option<(Arc<Snapshot>, Arc<LinkIndex>)>>,
}

impl RegistryService {
    /// The service over configured registries.
    pub fn new(db: Db, jobs: JobQueue, catalog: Arc<Catalog>, registries: Registries, settings: RegistrySettings) -> Arc<Self> {
        Arc::new(Self { db, jobs, catalog, registries: Arc::new(registries), settings, cache: RwLock::default(), links: RwLock::default() })
    }

    /// The configured registries.
    pub fn registries(&self) -> &Registries {
        &self.registries
    }

    /// The catalog's image links for the current snapshot.
    pub fn link_index(&self) -> Arc<LinkIndex> {
        let snapshot = self.catalog.snapshot();
        if let Some((s, index)) = self.links.read().unwrap_or_else(|e| e.into_inner()).as_ref()
            && Arc::ptr_eq(s, &snapshot) {
                return index.clone();
            }
        let index = Arc::new(build_link_index(&snapshot, &self.registries));
        *self.links.write().unwrap_or_else(|e| e.into_inner()) = Some((snapshot, index.clone()));
        index
    }

    /// A component's links (`Ok(None)`: it links no repository).
    pub fn component_links(&self, entity: &crate::catalog::EntityRecord) -> Result<Option<ComponentLinks>, Vec<String>> {
        self.registries.component_links(entity)
    }

    /// Makes sure a repository has a cache row and a recurring refresh job, due now when it
    /// was never read.
    pub async fn ensure_scheduled(&self, key: &RepoKey) -> Result<(), StorageError> {
        let k = key.to_string();
        store::ensure(&self.db, &k, &key.registry, key.repository.as_str()).await?;
        let row = store::repo(&self.db, &k).await?;
        let job = RefreshRepository { key: k.clone() };
        if row.is_some_and(|r| r.state == RepoState::Pending) {
            self.jobs.enqueue(&job, Some(&refresh_key(&k)), now_ms()).await?;
        } else {
            let next = now_ms() + self.settings.refresh_interval.as_millis() as i64;
            self.jobs.enqueue(&job, Some(&refresh_key(&k)), next).await?;
        }
        Ok(())
    }

    /// Reads a repository from its registry now and records the result (the job handler
    /// and `nova registry drift` call this). Registry failures are recorded, not returned.
    pub async fn refresh(&self, key: &RepoKey) -> Result<Result<(), RegistryError>, StorageError> {
        let k = key.to_string();
        store::ensure(&self.db, &k, &key.registry, key.repository.as_str()).await?;
        let Some(registry) = self.registries.get(&key.registry) else {
            let e = RegistryError::Config(format!("registry {} is no longer in the configuration", key.registry));
            store::save_failure(&self.db, &k, RepoState::Error, e.category(), &e.to_string()).await?;
            return Ok(Err(e));
        };
        let previous: HashMap<String, ImageRecord> = store::images(&self.db, &k).await?.into_iter().map(|i| (i.digest.clone(), i)).collect();
        let started = std::time::Instant::now();
        let result = registry.provider.repository(&key.repository, &previous).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.category(),
        };
        metrics::counter!("nova_registry_refresh_total", "registry" => key.registry.clone(), "outcome" => outcome).increment(1);
        metrics::histogram!("nova_registry_refresh_seconds", "registry" => key.registry.clone()).record(started.elapsed().as_secs_f64());
        match result {
            Ok(data) => {
                let changed = store::save_success(&self.db, &k, &data.info, &data.images, &previous).await?;
                tracing::info!(repository = %k, images = data.images.len(), changed, elapsed_ms = started.elapsed().as_millis() as u64, "registry repository refreshed");
                Ok(Ok(()))
            }
            Err(e) => {
                let state = if matches!(e, RegistryError::NotFound(_)) { RepoState::NotFound } else { RepoState::Error };
                store::save_failure(&self.db, &k, state, e.category(), &e.to_string()).await?;
                tracing::warn!(repository = %k, category = e.category(), error = %e, "registry refresh failed; the last known images stay in place");
                Ok(Err(e))
            }
        }
    }

    /// The job handler for [`RefreshRepository`]: refreshes when the catalog still links the
    /// repository, and always reschedules (a repository linked again later is picked up).
    pub async fn run_refresh_job(&self, job: RefreshRepository) -> Result<JobOutcome, String> {
        let Some(key) = RepoKey::parse(&job.key) else { return Ok(JobOutcome::Done) };
        let linked = self.link_index().by_repo.contains_key(&key);
        let ok = if linked { self.refresh(&key).await.map_err(|e| e.to_string())?.is_ok() } else { true };
        let wait = if ok { self.settings.refresh_interval } else { self.settings.retry_interval.min(self.settings.refresh_interval) };
        Ok(JobOutcome::RunAgainAt(now_ms() + wait.as_millis() as i64))
    }

    /// The job handler for [`ReconcileRegistries`].
    pub async fn run_reconcile_job(&self) -> Result<JobOutcome, String> {
        let index = self.link_index();
        for key in index.by_repo.keys() {
            self.ensure_scheduled(key).await.map_err(|e| e.to_string())?;
        }
        let due = match store::report(&self.db, DRIFT_REPORT).await.map_err(|e| e.to_string())? {
            Some((_, at)) => now_ms() - at >= self.settings.refresh_interval.as_millis() as i64,
            None => true,
        };
        if due && self.catalog.first_load_done() {
            let report = super::drift::report(self, &index, false).await.map_err(|e| e.to_string())?;
            report.record_metrics();
            store::save_report(&self.db, DRIFT_REPORT, &serde_json::to_value(&report).expect("report serializes")).await.map_err(|e| e.to_string())?;
        }
        Ok(JobOutcome::RunAgainAt(now_ms() + RECONCILE_INTERVAL.as_millis() as i64))
    }

    /// Schedules the reconcile job (at start).
    pub async fn schedule(&self) -> Result<(), StorageError> {
        self.jobs.run_now(&ReconcileRegistries::default(), ReconcileRegistries::KIND).await?;
        Ok(())
    }

    /// The cached repository, reloading this process's copy when another refresh changed it.
    pub async fn cached(&self, key: &RepoKey) -> Result<Option<Arc<CachedRepo>>, StorageError> {
        let k = key.to_string();
        let Some(row) = store::repo(&self.db, &k).await? else { return Ok(None) };
        if let Some(c) = self.cache.read().unwrap_or_else(|e| e.into_inner()).get(&k)
            && c.row.generation == row.generation {
                // Same images; the row's times and state may have moved on.
                return Ok(Some(Arc::new(CachedRepo { row, images: c.images.clone() })));
            }
        let images = Arc::new(store::images(&self.db, &k).await?);
        let cached = Arc::new(CachedRepo { row, images });
        self.cache.write().unwrap_or_else(|e| e.into_inner()).insert(k, cached.clone());
        Ok(Some(cached))
    }

    /// Asks for an immediate refresh of `keys`, at most once per `registry.min_refresh_interval`
    /// per repository.
    pub async fn request_refresh(&self, keys: &[RepoKey]) -> Result<RefreshRequest, StorageError> {
        let min = self.settings.min_refresh_interval.as_millis() as i64;
        let mut queued = Vec::new();
        let mut wait = i64::MAX;
        for key in keys {
            let k = key.to_string();
            store::ensure(&self.db, &k, &key.registry, key.repository.as_str()).await?;
            match store::request_refresh(&self.db, &k, min).await? {
                None => queued.push(self.jobs.run_now(&RefreshRepository { key: k.clone() }, &refresh_key(&k)).await?),
                Some(ms) => wait = wait.min(ms),
            }
        }
        Ok(if queued.is_empty() && !keys.is_empty() { RefreshRequest::TooSoon(wait) } else { RefreshRequest::Queued(queued) })
    }

    /// An image's findings: from the cache when fresh, else from the registry (within the
    /// request timeout), else the last known report marked stale.
    pub async fn findings(&self, key: &RepoKey, digest: &Digest) -> Result<FindingsResult, StorageError> {
        let k = key.to_string();
        let cached = store::findings(&self.db, &k, digest.as_str()).await?;
        let fresh_for = self.settings.refresh_interval.as_millis() as i64;
        if let Some((report, at)) = &cached
            && now_ms() - at < fresh_for {
                return Ok(FindingsResult { report: Some(report.clone()), fetched_at: Some(*at), stale: None });
            }
        let asked = match self.registries.get(&key.registry) {
            None => Err(RegistryError::Config(format!("registry {} is not in the configuration", key.registry))),
            Some(r) => match tokio::time::timeout(self.settings.request_timeout, r.provider.findings(&key.repository, digest)).await {
                Ok(result) => result,
                Err(_) => Err(RegistryError::Unavailable("the registry did not answer in time (registry.request_timeout)".into())),
            },
        };
        match asked {
            Ok(report) => {
                store::save_findings(&self.db, &k, digest.as_str(), &report).await?;
                Ok(FindingsResult { report: Some(report), fetched_at: Some(now_ms()), stale: None })
            }
            Err(e) => {
                tracing::warn!(repository = %k, digest = %digest, category = e.category(), error = %e, "scan findings could not be read; serving the last known ones");
                let (report, fetched_at) = cached.map(|(r, at)| (Some(r), Some(at))).unwrap_or((None, None));
                Ok(FindingsResult { report, fetched_at, stale: Some(e) })
            }
        }
    }

    /// The database, for reports.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The catalog.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }
}

/// Builds the registry service from the configuration, registers its job handlers and
/// schedules the first reconcile (`App::build` calls this).
pub async fn install(config: &crate::config::Config, db: &Db, jobs: &JobQueue, catalog: &Arc<Catalog>, runner: &mut crate::jobs::JobRunner) -> anyhow::Result<Arc<RegistryService>> {
    let registries = Registries::build(&config.registries, &config.registry, &config.outbound()).await?;
    let svc = RegistryService::new(db.clone(), jobs.clone(), catalog.clone(), registries, config.registry.clone());
    let s = svc.clone();
    runner.register::<RefreshRepository, _, _>(move |job, _| {
        let s = s.clone();
        async move { s.run_refresh_job(job).await }
    });
    let s = svc.clone();
    runner.register::<ReconcileRegistries, _, _>(move |_, _| {
        let s = s.clone();
        async move { s.run_reconcile_job().await }
    });
    svc.schedule().await?;
    Ok(svc)
}

/// Reads every component's image annotations once.
pub fn build_link_index(snapshot: &Snapshot, registries: &Registries) -> LinkIndex {
    let mut index = LinkIndex::default();
    for e in snapshot.entities.iter().filter(|e| e.kind == nova_domain::EntityKind::Component) {
        // Most components link nothing: skip them without parsing their JSON.
        let text = std::str::from_utf8(&e.json).unwrap_or_default();
        if !nova_domain::image_links::ANNOTATIONS.iter().any(|a| text.contains(a)) {
            continue;
        }
        match registries.component_links(e) {
            Ok(None) => {}
            Ok(Some(links)) => {
                for r in links.repositories {
                    index.by_repo.entry(r.key).or_default().push(Linker {
                        component: e.entity_ref.clone(),
                        tag_prefix: links.tag_prefix.clone(),
                        environment: r.environment,
                    });
                }
            }
            Err(errors) => index.errors.push((e.entity_ref.clone(), errors)),
        }
    }
    index
}
