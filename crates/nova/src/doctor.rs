//! `nova doctor` and the integration detail of `/ready`: every configured integration checked
//! with a real, cheap call — the database and its migrations, each registry, each build
//! backend (on the jobs the catalog names), the secret store (a probe secret written, read and
//! deleted), the OIDC issuer, each environment's GitOps repository (read, and a dry-run push
//! accepted, with its credential), the OTLP collector, each catalog location. Checks run
//! concurrently, each within a time limit, and answer with [`HealthReport`]s: what was
//! checked, pass/warn/fail, why, and the fix. No report holds a secret: checks name references
//! (`environment variable X`), never values, and database URLs are shown without their password.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::{BoxFuture, FutureExt, join_all};
use nova_domain::build_pipeline::BUILD_PIPELINE_ANNOTATION;
use serde::Serialize;

use crate::builds::backend::{BuildBackends, Selected};
use crate::catalog::location::{LocationRead, LocationSpec, ReadContext, ReadLimits, read_location};
use crate::catalog::RemoteContext;
use crate::config::{Config, OidcConfig};
use crate::health::{HealthReport, HealthStatus};
use crate::git_remote::GitRemote;
use crate::release::config::GitOpsTarget;
use crate::secrets::credentials::{CredentialKind, TeamCredential};
use crate::secrets::{SecretStore, SecretsConfig};
use crate::storage::{Backend, Db};

/// How many jobs or workflows of one build backend are checked; the rest are counted.
const TARGETS_PER_BACKEND: usize = 3;

/// One check to run: what it is about (for the report when it times out) and the work.
pub struct Check {
    component: &'static str,
    target: String,
    work: BoxFuture<'static, Vec<HealthReport>>,
}

impl Check {
    /// A check answering one report.
    pub fn one(component: &'static str, target: impl Into<String>, work: impl Future<Output = HealthReport> + Send + 'static) -> Self {
        Self { component, target: target.into(), work: work.map(|r| vec![r]).boxed() }
    }

    /// A check answering several reports (one per build backend target, per location).
    pub fn many(component: &'static str, target: impl Into<String>, work: impl Future<Output = Vec<HealthReport>> + Send + 'static) -> Self {
        Self { component, target: target.into(), work: work.boxed() }
    }
}

/// Every check's report, and the worst status among them.
#[derive(Debug, Clone, Serialize)]
pub struct DoctorReport {
    pub status: HealthStatus,
    /// How long the checks took together.
    pub elapsed_ms: u64,
    pub checks: Vec<HealthReport>,
}

impl DoctorReport {
    /// A report of checks already made.
    pub fn of(checks: Vec<HealthReport>, elapsed: Duration) -> Self {
        let status = worst(&checks);
        Self { status, elapsed_ms: elapsed.as_millis() as u64, checks }
    }

    /// The report as a table for people: one block per check, with the fix under a problem.
    pub fn table(&self) -> String {
        let width = self.checks.iter().map(|c| c.component.len()).max().unwrap_or(0);
        let mut out = String::new();
        for c in &self.checks {
            let status = match c.status {
                HealthStatus::Pass => "pass",
                HealthStatus::Warn => "WARN",
                HealthStatus::Fail => "FAIL",
            };
            out.push_str(&format!("{status}  {:width$}  {}\n      {}\n", c.component, c.target, c.reason));
            if let Some(fix) = &c.fix {
                out.push_str(&format!("      fix: {fix}\n"));
            }
        }
        let count = |s: HealthStatus| self.checks.iter().filter(|c| c.status == s).count();
        out.push_str(&format!(
            "{} checks in {:.1}s: {} pass, {} warn, {} fail\n",
            self.checks.len(),
            self.elapsed_ms as f64 / 1000.0,
            count(HealthStatus::Pass),
            count(HealthStatus::Warn),
            count(HealthStatus::Fail)
        ));
        out
    }
}

fn worst(checks: &[HealthReport]) -> HealthStatus {
    let has = |s: HealthStatus| checks.iter().any(|c| c.status == s);
    if has(HealthStatus::Fail) {
        HealthStatus::Fail
    } else if has(HealthStatus::Warn) {
        HealthStatus::Warn
    } else {
        HealthStatus::Pass
    }
}

/// Runs every check concurrently; one that does not answer within `timeout` fails, naming
/// what it was checking. Reports keep the order of `checks`.
pub async fn run(checks: Vec<Check>, timeout: Duration) -> DoctorReport {
    let started = Instant::now();
    let results = join_all(checks.into_iter().map(|c| async move {
        match tokio::time::timeout(timeout, c.work).await {
            Ok(reports) => reports,
            Err(_) => vec![HealthReport::fail(
                c.component,
                c.target,
                format!("no answer within {:.1}s", timeout.as_secs_f64()),
                "check that it runs and that this host can reach it (firewall, DNS, proxy)",
            )],
        }
    }))
    .await;
    DoctorReport::of(results.into_iter().flatten().collect(), started.elapsed())
}

/// Every check of a configuration, as `nova doctor` runs them: each integration is built from
/// `config` here, so nothing is shared with a running Nova. `base` is where relative catalog
/// locations are resolved (the configuration file's directory).
pub fn checks_for(config: &Config, source: &str, base: &Path) -> Vec<Check> {
    let mut checks = vec![Check::one("config", source.to_string(), std::future::ready(config_report(config, source)))];
    let database = config.database.url.clone();
    checks.push(Check::one("database", crate::app::redact_url(&database), async move { database_check(&database).await }));
    for (name, def) in &config.registries {
        let (name, def, settings, outbound) = (name.clone(), def.clone(), config.registry.clone(), config.outbound());
        checks.push(Check::one("registry", name.clone(), async move {
            let one = BTreeMap::from([(name.clone(), def)]);
            match crate::registry::Registries::build(&one, &settings, &outbound).await {
                Ok(r) => match r.get(&name) {
                    Some(r) => r.health().await,
                    None => HealthReport::fail("registry", name, "the registry was not built", "report this as a bug"),
                },
                Err(e) => HealthReport::fail("registry", name.clone(), format!("{e:#}"), format!("fix registries.{name}")),
            }
        }));
    }
    let locations = match crate::app::resolve_locations(&config.catalog.locations, base) {
        Ok(l) => l,
        Err(e) => {
            checks.push(Check::one("catalog", "catalog.locations", std::future::ready(HealthReport::fail("catalog", "catalog.locations", format!("{e:#}"), "fix the location as the message says"))));
            Vec::new()
        }
    };
    let reads = read_locations(config, locations);
    if !config.build_backends.is_empty() {
        match BuildBackends::from_config(&config.build_backends) {
            Ok(backends) => {
                let reads = reads.clone();
                checks.push(Check::many("build-backend", "build_backends", async move {
                    let pipelines: Vec<String> = reads.await.iter().flat_map(|(_, read)| pipelines_of(read)).collect();
                    build_backend_reports(&backends, pipelines).await
                }));
            }
            Err(e) => checks.push(Check::one("build-backend", "build_backends", std::future::ready(HealthReport::fail("build-backend", "build_backends", e, "fix the backend's settings")))),
        }
    }
    let secrets = config.secrets.clone();
    checks.push(Check::one(secrets_kind(&secrets), "secrets", async move { secret_store_check(&secrets).await }));
    if let Some(oidc) = &config.auth.oidc {
        let oidc = oidc.clone();
        checks.push(Check::one("oidc", oidc.issuer.clone(), async move { oidc_check(oidc).await }));
    }
    let store = {
        let secrets = config.secrets.clone();
        async move { doctor_store(&secrets).await }.boxed().shared()
    };
    gitops_checks(&mut checks, config, move || store.clone());
    otlp_check(&mut checks, config);
    checks.push(Check::many("catalog", "catalog.locations", async move { location_reports(&reads.await) }));
    checks
}

/// The checks `/ready` shows platform admins, made with the running Nova's own integrations.
/// Catalog locations are left out: `/ready` reports the catalog itself.
pub fn checks_for_app(state: &crate::http::AppState) -> Vec<Check> {
    let db = state.db.clone();
    let mut checks = vec![Check::one("database", db.backend().as_str(), async move { migration_report(&db, db.backend().as_str()).await })];
    for r in state.registry.registries().iter() {
        let (name, provider) = (r.name.clone(), r.provider.clone());
        checks.push(Check::one("registry", name.clone(), async move { crate::registry::health_report(&name, provider).await }));
    }
    if state.build_backends.names().next().is_some() {
        let snapshot = state.catalog.snapshot();
        let pipelines: Vec<String> = snapshot.entities.iter().filter_map(|e| annotation(&e.value(), BUILD_PIPELINE_ANNOTATION)).collect();
        let backends = state.build_backends.clone();
        checks.push(Check::many("build-backend", "build_backends", async move { build_backend_reports(&backends, pipelines).await }));
    }
    let store = state.secrets.clone();
    checks.push(Check::one(secrets_kind(&state.config.secrets), "secrets", async move { store.health_check().await }));
    if let Some(oidc) = &state.config.auth.oidc {
        let oidc = oidc.clone();
        checks.push(Check::one("oidc", oidc.issuer.clone(), async move { oidc_check(oidc).await }));
    }
    let store = state.secrets.clone();
    gitops_checks(&mut checks, &state.config, move || std::future::ready(Ok(store.clone())));
    otlp_check(&mut checks, &state.config);
    checks
}

/// The OTLP collector, when traces are exported.
fn otlp_check(checks: &mut Vec<Check>, config: &Config) {
    if let Some(endpoint) = config.observability.otlp_endpoint.clone() {
        checks.push(Check::one("otlp", endpoint.to_string(), async move { crate::telemetry::collector_check(&endpoint).await }));
    }
}

/// One check per `[environments.<name>]`: its GitOps repository read with the configured
/// credential (`git ls-remote`: the branch exists) and a dry-run push to a new branch that
/// the server accepts — what every promotion there needs. `store` gives the secret store for
/// `store` credential references.
fn gitops_checks<S>(checks: &mut Vec<Check>, config: &Config, store: impl Fn() -> S)
where
    S: Future<Output = Result<Arc<dyn SecretStore>, String>> + Send + 'static,
{
    // The GitOps writer reaches each repository at its configured URL: no build rewrites.
    let git = GitRemote { rewrites: Default::default(), ..GitRemote::new(&config.builds) };
    for (name, env) in &config.environments {
        let (name, target, git, store) = (name.clone(), env.gitops.clone(), git.clone(), store());
        checks.push(Check::one("gitops", format!("{name}: {} {}", target.repository, target.branch), async move { gitops_check(&name, &target, &git, store).await }));
    }
}

async fn gitops_check(env: &str, target: &GitOpsTarget, git: &GitRemote, store: impl Future<Output = Result<Arc<dyn SecretStore>, String>>) -> HealthReport {
    let shown = format!("{env}: {} {}", target.repository, target.branch);
    let key = format!("environments.{env}.gitops.credential");
    let fail = |reason: String, fix: String| HealthReport::fail("gitops", shown.clone(), reason, fix);
    let credential = match &target.credential {
        None => None,
        Some(r) => {
            let secret = match r {
                r if r.is_store() => match store.await {
                    Ok(store) => r.resolve(&key, store.as_ref()).await,
                    Err(e) => return fail(format!("{key}: {r}: {e}"), "fix [secrets] first (its own check says how)".into()),
                },
                r => r.resolve_local(&key),
            };
            match secret {
                Ok(s) => Some(TeamCredential::unregistered(CredentialKind::HttpsToken, vec![target.repository.clone()], Some(target.username.clone()), s)),
                Err(e) => return fail(e.to_string(), format!("make {r} hold the write credential")),
            }
        }
    };
    let reach = format!("check environments.{env}.gitops.repository, that this host can reach it, and the credential (gitops.username and {key})");
    let commit = match git.resolve(&target.repository, &target.branch, credential.as_ref()).await {
        Ok(Some(c)) => c,
        Ok(None) => return fail(format!("the repository answers but has no branch {}", target.branch), format!("create the branch, or fix environments.{env}.gitops.branch")),
        Err(e) => return fail(e.0, reach),
    };
    match git.accepts_push(&target.repository, credential.as_ref()).await {
        Ok(true) => HealthReport::pass("gitops", shown, format!("branch {} is at {}; a dry-run push is accepted", target.branch, &commit[..commit.len().min(12)])),
        Ok(false) => fail(
            format!("branch {} is readable, but the server refuses a push with this credential (dry run)", target.branch),
            format!("give {key} write access to the repository: promotions to {env} push a commit there"),
        ),
        Err(e) => fail(e.0, reach),
    }
}

/// The last `/ready` detail, kept briefly so that `/ready` stays cheap however often it is
/// asked: the checks call other systems (and write a probe secret).
#[derive(Default)]
pub struct ReadyCache(tokio::sync::Mutex<Option<(Instant, Arc<DoctorReport>)>>);

impl ReadyCache {
    /// The cached report, or a fresh one when it is older than `server.ready_detail_ttl`.
    /// Concurrent callers wait for the one run in progress instead of starting their own.
    pub async fn get(&self, state: &crate::http::AppState, timeout: Duration) -> Arc<DoctorReport> {
        let ttl = state.config.server.ready_detail_ttl;
        let mut cached = self.0.lock().await;
        if let Some((_, report)) = cached.as_ref().filter(|(at, _)| at.elapsed() < ttl) {
            return report.clone();
        }
        let report = Arc::new(run(checks_for_app(state), timeout).await);
        *cached = Some((Instant::now(), report.clone()));
        report
    }
}

fn config_report(config: &Config, source: &str) -> HealthReport {
    if let Some(key) = &config.auth.session_key
        && let Err(e) = key.resolve_local("auth.session_key")
    {
        return HealthReport::fail("config", source, e.to_string(), format!("make {key} hold the session key (at least 32 bytes)"));
    }
    let summary = format!(
        "valid: {} registries, {} build backends, {} secret store, {} catalog locations, OIDC {}",
        config.registries.len(),
        config.build_backends.len(),
        secrets_kind(&config.secrets),
        config.catalog.locations.len(),
        if config.auth.oidc.is_some() { "on" } else { "off" }
    );
    if config.server.demo {
        return HealthReport::warn("config", source, format!("{summary}; demo mode is on"), "turn server.demo off outside a demo: it allows development sign-in");
    }
    HealthReport::pass("config", source, summary)
}

/// Connects (without creating a missing SQLite file) and compares the migrations.
async fn database_check(url: &str) -> HealthReport {
    let shown = crate::app::redact_url(url);
    if let Some(path) = crate::storage::sqlite_path(url)
        && path != ":memory:"
        && !Path::new(path).exists()
    {
        return HealthReport::warn("database", shown, format!("no database file at {path} yet"), "start nova serve once (it creates and migrates the database), or fix database.url");
    }
    let cannot_connect = |e: &dyn std::fmt::Display| {
        HealthReport::fail(
            "database",
            shown.clone(),
            format!("cannot connect: {e}"),
            "check database.url, that the database server runs and this host can reach it, and the password (PGPASSWORD or .pgpass)",
        )
    };
    // One connection attempt first: a pool keeps retrying a refused connection until its
    // acquire timeout, which would hide the reason behind "no answer".
    if !url.starts_with("sqlite:") {
        sqlx::any::install_default_drivers();
        match <sqlx::AnyConnection as sqlx::Connection>::connect(url).await {
            Ok(conn) => drop(sqlx::Connection::close(conn).await),
            Err(e) => return cannot_connect(&e),
        }
    }
    match Db::connect(url, 1).await {
        Ok(db) => migration_report(&db, &shown).await,
        Err(e) => cannot_connect(&e),
    }
}

async fn migration_report(db: &Db, target: &str) -> HealthReport {
    let status = match db.ping().await {
        Ok(()) => db.migration_status().await,
        Err(e) => Err(e),
    };
    let s = match status {
        Ok(s) => s,
        Err(e) => return HealthReport::fail("database", target, e.to_string(), "check that the database server runs and that Nova's user may read it"),
    };
    let list = |v: &[i64]| v.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
    if !s.failed.is_empty() {
        return HealthReport::fail("database", target, format!("migrations {} started but did not finish", list(&s.failed)), "restore the database from the backup taken before the upgrade (docs/DEPLOY.md)");
    }
    if !s.modified.is_empty() {
        return HealthReport::fail("database", target, format!("migrations {} were applied with other contents than this binary's", list(&s.modified)), "run the Nova version that migrated this database");
    }
    if !s.unknown.is_empty() {
        return HealthReport::fail(
            "database",
            target,
            format!("the database has migrations this binary does not know ({}): a newer Nova migrated it", list(&s.unknown)),
            "run the newer Nova; going back a version needs the backup taken before the upgrade",
        );
    }
    let engine = if db.backend() == Backend::Sqlite { "SQLite" } else { "PostgreSQL" };
    if !s.pending.is_empty() {
        return HealthReport::warn(
            "database",
            target,
            format!("{engine} answers; {} of {} migrations not applied yet (next {})", s.pending.len(), s.embedded, s.pending[0]),
            "start nova serve: migrations run at start",
        );
    }
    HealthReport::pass("database", target, format!("{engine} answers; all {} migrations applied", s.embedded))
}

fn secrets_kind(config: &SecretsConfig) -> &'static str {
    match config {
        SecretsConfig::File(_) => "file",
        SecretsConfig::Vault(_) => "vault",
        SecretsConfig::AwsSecretsManager(_) => "aws-secrets-manager",
    }
}

async fn secret_store_check(config: &SecretsConfig) -> HealthReport {
    let kind = secrets_kind(config);
    if let SecretsConfig::File(f) = config
        && !f.path.exists()
    {
        return HealthReport::warn(kind, f.path.display().to_string(), "no secret store file yet", "start nova serve once (it creates the store and its key), or fix secrets.path");
    }
    match doctor_store(config).await {
        Ok(store) => store.health_check().await,
        Err(e) => HealthReport::fail(kind, "secrets", e, "fix [secrets] as the message says (docs/CREDENTIALS.md)"),
    }
}

/// The configured secret store as the doctor may open it: a file store that does not exist
/// yet is not created.
async fn doctor_store(config: &SecretsConfig) -> Result<Arc<dyn SecretStore>, String> {
    if let SecretsConfig::File(f) = config
        && !f.path.exists()
    {
        return Err(format!("no secret store file at {} yet", f.path.display()));
    }
    crate::secrets::open(config).await.map_err(|e| format!("cannot open the store: {e}"))
}

async fn oidc_check(config: OidcConfig) -> HealthReport {
    let issuer = config.issuer.clone();
    if let Some(secret) = &config.client_secret
        && let Err(e) = secret.resolve_local("auth.oidc.client_secret")
    {
        return HealthReport::fail("oidc", issuer, e.to_string(), format!("make {secret} hold the client secret"));
    }
    match crate::auth::Oidc::new(config, None).check().await {
        Ok(keys) => HealthReport::pass("oidc", issuer, format!("discovery read; JWKS has {keys} signing keys")),
        Err(e) => HealthReport::fail(
            "oidc",
            issuer,
            e.to_string(),
            "check auth.oidc.issuer (discovery must name exactly this issuer) and that this host can reach the provider",
        ),
    }
}

/// Every configured location read once, shared by the catalog and build backend checks.
type Reads = futures_util::future::Shared<BoxFuture<'static, Arc<Vec<(LocationSpec, LocationRead)>>>>;

fn read_locations(config: &Config, locations: Vec<LocationSpec>) -> Reads {
    let limits = ReadLimits::from_config(&config.catalog);
    let catalog = config.catalog.clone();
    let outbound = config.outbound();
    async move {
        // Git locations are fetched into a directory of their own: the doctor may run as
        // another user than Nova and must not leave files in Nova's cache.
        let Ok(cache) = tempfile::tempdir() else { return Arc::new(Vec::new()) };
        let remote = RemoteContext::new(cache.path().to_path_buf(), &catalog, outbound);
        let reads = join_all(locations.into_iter().map(|spec| {
            let remote = remote.clone();
            tokio::task::spawn_blocking(move || {
                let ctx = ReadContext { limits, remote: &remote, previous: None, progress: None };
                let read = read_location(&spec, &ctx);
                (spec, read)
            })
        }))
        .await;
        Arc::new(reads.into_iter().filter_map(Result::ok).collect())
    }
    .boxed()
    .shared()
}

fn location_reports(reads: &[(LocationSpec, LocationRead)]) -> Vec<HealthReport> {
    if reads.is_empty() {
        return vec![HealthReport::warn("catalog", "catalog.locations", "no catalog location is configured", "add catalog.locations (docs/CONFIG.md)")];
    }
    reads
        .iter()
        .map(|(spec, read)| {
            let target = spec.display();
            if let Some(e) = &read.error {
                let fix = if spec.kind.is_remote() { "check the URL, the ref, and the credential in catalog.credentials for it" } else { "check the path and that Nova's user may read it" };
                return HealthReport::fail("catalog", target, e.message.clone(), fix);
            }
            let entities = read.entities().count();
            let errors: Vec<_> = read.errors().collect();
            let files = read.sources.len();
            match errors.first() {
                None => HealthReport::pass("catalog", target, format!("read {files} files, {entities} entities")),
                Some(first) => HealthReport::warn(
                    "catalog",
                    target,
                    format!("read {files} files, {entities} entities and {} errors; first: {}", errors.len(), first.one_line()),
                    "run nova catalog validate on the location and fix what it reports",
                ),
            }
        })
        .collect()
}

fn annotation(entity: &serde_json::Value, key: &str) -> Option<String> {
    entity.pointer("/metadata/annotations")?.get(key)?.as_str().map(str::to_string)
}

fn pipelines_of(read: &LocationRead) -> Vec<String> {
    read.entities().filter_map(|(_, d)| annotation(&d.entity.to_value(), BUILD_PIPELINE_ANNOTATION)).collect()
}

/// Checks each backend on up to [`TARGETS_PER_BACKEND`] of the jobs or workflows the catalog's
/// `nova.dev/build-pipeline` annotations name; a backend no component names gets a warning.
async fn build_backend_reports(backends: &BuildBackends, pipelines: Vec<String>) -> Vec<HealthReport> {
    let mut targets: BTreeMap<String, BTreeSet<String>> = backends.names().map(|(n, _)| (n.to_string(), BTreeSet::new())).collect();
    for p in pipelines {
        if let Ok(Selected::Remote { name, target, .. }) = backends.select(&p) {
            targets.entry(name).or_default().insert(target);
        }
    }
    let mut checks = Vec::new();
    let mut reports = Vec::new();
    for (name, kind) in backends.names() {
        let all = &targets[name];
        if all.is_empty() {
            reports.push(HealthReport::warn(
                kind.as_str(),
                name,
                "no catalog component names this backend, so no job or workflow was checked",
                format!("annotate a component with {BUILD_PIPELINE_ANNOTATION}: {name}:<target>, or remove build_backends.{name}"),
            ));
            continue;
        }
        let backend = backends.get(name).expect("a configured backend").clone();
        for t in all.iter().take(TARGETS_PER_BACKEND) {
            let (backend, t) = (backend.clone(), t.clone());
            checks.push(async move { backend.health_check(&t).await });
        }
        if all.len() > TARGETS_PER_BACKEND {
            reports.push(HealthReport::pass(kind.as_str(), name, format!("{} more targets not checked (doctor checks {TARGETS_PER_BACKEND} per backend)", all.len() - TARGETS_PER_BACKEND)));
        }
    }
    let mut checked = join_all(checks).await;
    checked.append(&mut reports);
    checked
}
