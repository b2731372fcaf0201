//! The software catalog: locations are read into entities, which are validated, related and
//! indexed into an immutable [`Snapshot`] that every query reads.
//!
//! Each location's last read is stored in the database, so a restart serves the catalog at
//! once and a location that later fails keeps its entities. Registration is write-through: the
//! location is read before the request returns. Another replica's changes are noticed by
//! comparing stored digests every few seconds ([`Catalog::sync`]).

pub mod error;
pub mod location;
pub mod query;
pub mod remote;
pub mod snapshot;
pub mod store;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use serde::{Deserialize, Serialize};

pub use error::{CatalogError, ErrorKind};
pub use location::{LocationSpec, LocationType, ReadLimits};
pub use snapshot::{EntityRecord, Snapshot};
pub use store::{Origin, StoredLocation};

pub use location::{LocationRead, Progress, ReadContext, read_location};
pub use remote::RemoteContext;
use snapshot::{SnapshotInput, digest_of};

use crate::config::CatalogConfig;
use crate::jobs::{Job, JobOutcome, JobQueue};
use crate::storage::{Db, StorageError, now_ms};

/// The background job that re-reads one location.
#[derive(Debug, Serialize, Deserialize)]
pub struct RefreshLocation {
    pub location_id: String,
}

impl Job for RefreshLocation {
    const KIND: &'static str = "catalog.refresh";
}

fn refresh_key(id: &str) -> String {
    format!("catalog.refresh:{id}")
}

/// Failures of catalog operations that callers act on.
#[derive(Debug, thiserror::Error)]
pub enum CatalogOpError {
    #[error("location {0} does not exist")]
    NotFound(String),
    #[error("location {0} is already registered")]
    Exists(String),
    #[error("location {0} comes from the configuration; remove it there")]
    Configured(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// The result of registering a location (or of a dry run).
pub struct Registered {
    pub location: StoredLocation,
    pub entities: Vec<serde_json::Value>,
    pub errors: Vec<CatalogError>,
}

struct Loaded {
    locations: Vec<StoredLocation>,
    reads: HashMap<String, Arc<LocationRead>>,
}

/// The catalog service.
pub struct Catalog {
    db: Db,
    jobs: JobQueue,
    config: CatalogConfig,
    remote: RemoteContext,
    base_dir: PathBuf,
    loaded: tokio::sync::Mutex<Loaded>,
    snapshot: RwLock<Arc<Snapshot>>,
    first_load_done: AtomicBool,
}

impl Catalog {
    /// Opens the catalog: makes the configured locations those of `configured`, and serves
    /// what was last read from every location straight away.
    pub async fn open(db: Db, jobs: JobQueue, config: CatalogConfig, remote: RemoteContext, configured: Vec<LocationSpec>) -> Result<Arc<Self>, StorageError> {
        store::sync_configured(&db, &configured).await?;
        let base_dir = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        let catalog = Arc::new(Self {
            db,
            jobs,
            config,
            remote,
            base_dir,
            loaded: tokio::sync::Mutex::new(Loaded { locations: Vec::new(), reads: HashMap::new() }),
            snapshot: RwLock::new(Arc::new(Snapshot::empty())),
            first_load_done: AtomicBool::new(false),
        });
        catalog.sync().await?;
        Ok(catalog)
    }

    /// The current snapshot. Cheap; hold it for the duration of one request.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether every location has been read at least once by this process.
    pub fn first_load_done(&self) -> bool {
        self.first_load_done.load(Ordering::Relaxed)
    }

    /// The directory relative location targets are resolved against.
    pub fn base_dir(&self) -> &std::path::Path {
        &self.base_dir
    }

    /// Limits used when reading locations.
    pub fn limits(&self) -> ReadLimits {
        ReadLimits::from_config(&self.config)
    }

    /// Every location with its refresh status.
    pub async fn locations(&self) -> Result<Vec<StoredLocation>, StorageError> {
        store::list(&self.db).await
    }

    /// Reads every location now, then schedules their periodic refresh.
    pub async fn load_all(&self) -> Result<(), StorageError> {
        let locations = store::list(&self.db).await?;
        for loc in &locations {
            self.refresh(&loc.id).await?;
        }
        self.first_load_done.store(true, Ordering::Relaxed);
        let next = now_ms() + self.config.refresh_interval.as_millis() as i64;
        for loc in &locations {
            self.jobs.enqueue(&RefreshLocation { location_id: loc.id.clone() }, Some(&refresh_key(&loc.id)), next).await?;
        }
        Ok(())
    }

    /// Re-reads one location, stores the result and rebuilds the snapshot. A location that no
    /// longer exists is ignored. The read itself (which for git and URL locations may take up to
    /// `catalog.remote_timeout`) runs without holding the catalog's lock.
    pub async fn refresh(&self, id: &str) -> Result<(), StorageError> {
        let started = Instant::now();
        let (spec, previous) = {
            let mut loaded = self.loaded.lock().await;
            let locations = store::list(&self.db).await?;
            let Some(loc) = locations.iter().find(|l| l.id == id).cloned() else { return Ok(()) };
            (loc.spec.clone(), self.current_read(&mut loaded, &loc).await?)
        };
        let t_read = Instant::now();
        let read = self.read(spec, previous, None).await;
        let read_ms = t_read.elapsed().as_millis();
        let mut loaded = self.loaded.lock().await;
        let locations = store::list(&self.db).await?;
        let Some(loc) = locations.iter().find(|l| l.id == id).cloned() else { return Ok(()) };
        let previous = self.current_read(&mut loaded, &loc).await?;
        let success = read.error.is_none();
        let error_text = read.error.as_ref().map(|e| e.message.clone());
        let read = read.merge_previous(previous.as_deref());
        let t_store = Instant::now();
        let text = serde_json::to_string(&read).map_err(|e| StorageError::Corrupt(e.to_string()))?;
        let digest = digest_of(&text);
        let changed = loc.digest.as_deref() != Some(digest.as_str());
        store::save_state(&self.db, id, changed.then_some((text.as_str(), digest.as_str())), success, error_text.as_deref()).await?;
        let store_ms = t_store.elapsed().as_millis();
        loaded.reads.insert(id.to_string(), Arc::new(read));
        loaded.locations = store::list(&self.db).await?;
        let t_build = Instant::now();
        if changed || previous.is_none() {
            self.rebuild(&loaded).await;
        }
        match &error_text {
            None => tracing::info!(location = %loc.spec.display(), read_ms, store_ms, build_ms = t_build.elapsed().as_millis(), changed, "location refreshed"),
            Some(e) => tracing::warn!(location = %loc.spec.display(), read_ms, error = %e, "location could not be read; keeping its previous entities"),
        }
        metrics::histogram!("nova_catalog_refresh_seconds").record(started.elapsed().as_secs_f64());
        Ok(())
    }

    async fn current_read(&self, loaded: &mut Loaded, loc: &StoredLocation) -> Result<Option<Arc<LocationRead>>, StorageError> {
        if let Some(r) = loaded.reads.get(&loc.id) {
            return Ok(Some(r.clone()));
        }
        Ok(match store::load_state(&self.db, &loc.id).await? {
            Some((text, _)) => decode_state(&text).map(Arc::new),
            None => None,
        })
    }

    /// Picks up changes made by other replicas (or at start, by earlier runs): reloads every
    /// location whose stored digest differs from what this process holds.
    pub async fn sync(&self) -> Result<(), StorageError> {
        let mut loaded = self.loaded.lock().await;
        let locations = store::list(&self.db).await?;
        let mut changed = locations.len() != loaded.locations.len()
            || locations.iter().zip(&loaded.locations).any(|(a, b)| a.id != b.id);
        for loc in &locations {
            let known = loaded.locations.iter().find(|l| l.id == loc.id).and_then(|l| l.digest.clone());
            if known != loc.digest || !loaded.reads.contains_key(&loc.id) {
                if let Some((text, _)) = store::load_state(&self.db, &loc.id).await? {
                    if let Some(read) = decode_state(&text) {
                        loaded.reads.insert(loc.id.clone(), Arc::new(read));
                        changed = true;
                    }
                }
            }
        }
        loaded.reads.retain(|id, _| locations.iter().any(|l| &l.id == id));
        loaded.locations = locations;
        if changed {
            self.rebuild(&loaded).await;
        }
        Ok(())
    }

    async fn rebuild(&self, loaded: &Loaded) {
        let inputs: Vec<(String, Arc<LocationRead>)> = loaded
            .locations
            .iter()
            .filter_map(|l| loaded.reads.get(&l.id).map(|r| (l.spec.display(), r.clone())))
            .collect();
        let snapshot = tokio::task::spawn_blocking(move || {
            let inputs: Vec<SnapshotInput<'_>> = inputs.iter().map(|(origin, read)| SnapshotInput { origin: origin.clone(), read }).collect();
            Snapshot::build(&inputs)
        })
        .await
        .expect("snapshot build does not panic");
        for (kind, n) in &snapshot.kind_counts {
            metrics::gauge!("nova_catalog_entities", "kind" => kind.as_str()).set(*n as f64);
        }
        metrics::gauge!("nova_catalog_errors").set(snapshot.errors.len() as f64);
        *self.snapshot.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(snapshot);
    }

    /// Reads a location on a blocking thread, reporting each file read to `progress`.
    /// `previous` (the location's last read) lets URL files be asked for conditionally.
    pub async fn read(&self, spec: LocationSpec, previous: Option<Arc<LocationRead>>, progress: Option<Progress>) -> LocationRead {
        let limits = self.limits();
        let remote = self.remote.clone();
        tokio::task::spawn_blocking(move || {
            let ctx = ReadContext { limits, remote: &remote, previous: previous.as_deref(), progress: progress.as_deref() };
            read_location(&spec, &ctx)
        })
        .await
        .expect("location reader does not panic")
    }

    /// Parses a location as the API and CLI name it.
    pub fn parse_location(&self, kind: &str, target: &str) -> Result<LocationSpec, CatalogOpError> {
        LocationSpec::parse(kind, target, &self.base_dir).map_err(CatalogOpError::Invalid)
    }

    /// Refuses API registrations outside `catalog.registration_roots`, so that callers cannot
    /// make Nova read arbitrary files on its host.
    pub fn check_registrable(&self, spec: &LocationSpec) -> Result<(), CatalogOpError> {
        // A git repository on this machine (file://) falls under the same roots as files; other
        // remote locations must be under catalog.registration_url_prefixes, so that callers
        // cannot make Nova fetch arbitrary addresses.
        let local_path = match spec.git() {
            Some(git) if git.url.starts_with("file://") => git.url.trim_start_matches("file://").to_string(),
            None if !spec.kind.is_remote() => spec.target.clone(),
            _ => {
                let url = spec.git().map(|g| g.url).unwrap_or_else(|| spec.target.clone());
                if self.config.registration_url_prefixes.iter().any(|p| !p.is_empty() && url.starts_with(p.as_str())) {
                    return Ok(());
                }
                return Err(CatalogOpError::Invalid(format!(
                    "{url} is not under a URL prefix where locations may be registered (catalog.registration_url_prefixes)"
                )));
            }
        };
        let roots: Vec<&std::path::Path> = if self.config.registration_roots.is_empty() {
            vec![self.base_dir.as_path()]
        } else {
            self.config.registration_roots.iter().map(PathBuf::as_path).collect()
        };
        if roots.iter().any(|r| std::path::Path::new(&local_path).starts_with(r)) {
            Ok(())
        } else {
            Err(CatalogOpError::Invalid(format!(
                "{local_path} is outside the directories where locations may be registered (catalog.registration_roots)"
            )))
        }
    }

    /// Registers a location and reads it before returning (write-through). With `dry_run`,
    /// reads it and reports what it would add without storing anything.
    pub async fn register(&self, spec: LocationSpec, dry_run: bool) -> Result<Registered, CatalogOpError> {
        let existing = store::list(&self.db).await?;
        if !dry_run {
            if let Some(l) = existing.iter().find(|l| l.spec == spec) {
                return Err(CatalogOpError::Exists(l.spec.display()));
            }
        }
        let read = self.read(spec.clone(), None, None).await;
        if dry_run {
            let location = StoredLocation {
                id: String::new(),
                spec,
                origin: Origin::Registered,
                position: 0,
                refreshed_at: None,
                last_success_at: None,
                last_error: None,
                digest: None,
            };
            return Ok(describe(location, &read));
        }
        self.adopt(spec, read).await
    }

    /// Registers a location whose content was already read (by `nova catalog import`).
    pub async fn adopt(&self, spec: LocationSpec, read: LocationRead) -> Result<Registered, CatalogOpError> {
        let id = store::insert_registered(&self.db, &spec).await?.ok_or_else(|| CatalogOpError::Exists(spec.display()))?;
        let mut loaded = self.loaded.lock().await;
        let text = serde_json::to_string(&read).map_err(|e| StorageError::Corrupt(e.to_string()))?;
        let error = read.error.as_ref().map(|e| e.message.clone());
        store::save_state(&self.db, &id, Some((&text, &digest_of(&text))), error.is_none(), error.as_deref()).await?;
        loaded.reads.insert(id.clone(), Arc::new(read));
        loaded.locations = store::list(&self.db).await?;
        self.rebuild(&loaded).await;
        let next = now_ms() + self.config.refresh_interval.as_millis() as i64;
        self.jobs.enqueue(&RefreshLocation { location_id: id.clone() }, Some(&refresh_key(&id)), next).await?;
        let location = loaded.locations.iter().find(|l| l.id == id).cloned().ok_or_else(|| CatalogOpError::NotFound(id.clone()))?;
        let read = loaded.reads.get(&id).cloned().unwrap_or_default();
        Ok(describe(location, &read))
    }

    /// Removes a registered location; its entities leave the catalog at once.
    pub async fn unregister(&self, id: &str) -> Result<(), CatalogOpError> {
        let locations = store::list(&self.db).await?;
        let loc = locations.iter().find(|l| l.id == id).ok_or_else(|| CatalogOpError::NotFound(id.to_string()))?;
        if loc.origin == Origin::Config {
            return Err(CatalogOpError::Configured(loc.spec.display()));
        }
        store::delete(&self.db, id).await?;
        sqlx::query(self.db.sql("DELETE FROM jobs WHERE dedupe_key = $1")).bind(refresh_key(id)).execute(self.db.pool()).await.map_err(StorageError::from)?;
        self.sync().await?;
        Ok(())
    }

    /// The job handler for [`RefreshLocation`].
    pub async fn run_refresh_job(&self, job: RefreshLocation) -> Result<JobOutcome, String> {
        let exists = store::list(&self.db).await.map_err(|e| e.to_string())?.iter().any(|l| l.id == job.location_id);
        if !exists {
            return Ok(JobOutcome::Done);
        }
        self.refresh(&job.location_id).await.map_err(|e| e.to_string())?;
        Ok(JobOutcome::RunAgainAt(now_ms() + self.config.refresh_interval.as_millis() as i64))
    }
}

fn describe(location: StoredLocation, read: &LocationRead) -> Registered {
    Registered {
        location,
        entities: read.entities().map(|(_, d)| d.entity.to_value()).collect(),
        errors: read.errors().cloned().collect(),
    }
}

fn decode_state(text: &str) -> Option<LocationRead> {
    match serde_json::from_str(text) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!(error = %e, "stored catalog state is unreadable; the location will be read again");
            None
        }
    }
}
