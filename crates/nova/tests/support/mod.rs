//! The integration-test harness: `spawn_app()` starts Nova in-process on a random port with an
//! isolated database (a fresh SQLite file, or a fresh database on the PostgreSQL server that
//! scripts/test starts), and real components are found through environment variables.
#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod canary;
pub mod client;
pub mod faults;
pub mod gitops;
pub mod oidc;
pub mod otlp;
pub mod registry;
pub mod serve;
pub mod sshd;

use std::path::{Path, PathBuf};
use std::time::Duration;

use nova::app::App;
use nova::catalog::LocationSpec;
use nova::config::Config;
use tokio_util::sync::CancellationToken;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generates one `#[tokio::test]` per backend from `async fn name(backend: Backend)`.
#[macro_export]
macro_rules! on_both_backends {
    ($(async fn $name:ident($b:ident: Backend) $body:block)*) => {
        $(
            mod $name {
                use super::*;
                async fn run($b: Backend) $body
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() { run(Backend::Sqlite).await }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if $crate::support::require_postgres().is_some() {
                        run(Backend::Postgres).await
                    }
                }
            }
        )*
    };
}

/// Whether a required component is missing: fails under `CI`, skips loudly elsewhere.
pub fn require(component: &str, value: Option<String>, hint: &str) -> Option<String> {
    match value {
        Some(v) => Some(v),
        None if std::env::var_os("CI").is_some() => panic!("{component} is required under CI but is not available ({hint})"),
        None => {
            eprintln!("\n*** SKIPPED: {component} is not available ({hint}) ***\n");
            None
        }
    }
}

/// Where `exe` is on PATH, if it is.
pub fn on_path(exe: &str) -> Option<String> {
    std::process::Command::new("sh").args(["-c", &format!("command -v {exe}")]).output().ok().filter(|o| o.status.success()).map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

/// Polls `probe` every 100 ms until it answers `Some`, at most `secs` seconds.
pub async fn wait_for<T>(what: &str, secs: u64, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..secs * 10 {
        if let Some(v) = probe().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

/// The PostgreSQL server URL scripts/test exports.
pub fn require_postgres() -> Option<String> {
    require("PostgreSQL", std::env::var("NOVA_TEST_POSTGRES_URL").ok(), "run the tests through scripts/test, which starts it")
}

/// A running Nova for one test.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub state: nova::http::AppState,
    pub dir: tempfile::TempDir,
    shutdown: CancellationToken,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// Options for [`spawn_app_with`].
#[derive(Default)]
pub struct Options {
    /// Catalog locations, relative to the test's directory.
    pub locations: Vec<String>,
    /// Adjusts the configuration before start.
    pub configure: Option<Box<dyn FnOnce(&mut Config) + Send>>,
    /// Use this database URL instead of a fresh one (to restart on the same data).
    pub database_url: Option<String>,
    /// Use this directory instead of a fresh one.
    pub dir: Option<tempfile::TempDir>,
    /// Serve on this listener (bound beforehand when the configuration must name Nova's own
    /// address, as an OIDC redirect URL does) instead of a fresh one.
    pub listener: Option<tokio::net::TcpListener>,
}

/// The example catalog shipped in `examples/catalog`.
pub fn example_catalog() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/catalog")
}

/// A fresh database URL on `backend`.
pub async fn fresh_database(backend: Backend, dir: &Path) -> String {
    match backend {
        Backend::Sqlite => format!("sqlite://{}/nova.db", dir.display()),
        Backend::Postgres => {
            let admin = require_postgres().expect("postgres tests are only run when it is available");
            let name = format!("nova_{}", uuid::Uuid::new_v4().simple());
            sqlx::any::install_default_drivers();
            let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin).await.expect("connect to the test PostgreSQL");
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await.expect("create test database");
            let (base, _) = admin.rsplit_once('/').expect("URL has a database");
            format!("{base}/{name}")
        }
    }
}

/// Starts Nova on the example catalog.
pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, Options { locations: vec![example_catalog().display().to_string()], ..Default::default() }).await
}

/// Sends Nova's logs to the test's captured output (shown when a test fails).
fn init_test_logging() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
    });
}

/// Starts Nova with options; returns once `/ready` answers 200.
pub async fn spawn_app_with(backend: Backend, opts: Options) -> TestApp {
    init_test_logging();
    let dir = opts.dir.unwrap_or_else(|| tempfile::tempdir().expect("temp dir"));
    let mut config = Config::default();
    config.database.url = match opts.database_url {
        Some(u) => u,
        None => fresh_database(backend, dir.path()).await,
    };
    config.jobs.poll_interval = Duration::from_millis(50);
    config.catalog.registration_roots = vec![dir.path().to_path_buf()];
    config.secrets = nova::secrets::SecretsConfig::File(nova::secrets::FileStoreConfig { path: dir.path().join("secrets.enc"), key_file: None, key_env: None });
    config.server.data_dir = dir.path().join("data");
    config.auth.admin_group = Some(ADMIN_GROUP.to_string());
    if let Some(f) = opts.configure {
        f(&mut config);
    }
    let locations: Vec<LocationSpec> = opts.locations.iter().map(|l| LocationSpec::infer(l, dir.path()).expect("valid test location")).collect();
    let app = App::build(config, locations).await.expect("Nova builds");
    let state = app.state.clone();
    let listener = match opts.listener {
        Some(l) => l,
        None => tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind"),
    };
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(app.serve(listener, shutdown.clone()));
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let test_app = TestApp { base, client, state, dir, shutdown, handle: Some(handle) };
    test_app.wait_ready().await;
    test_app
}

/// The platform-admin group of the tests, and one of its members in the example catalog.
pub const ADMIN_GROUP: &str = "group:default/platform";
pub const ADMIN_USER: &str = "user:default/pat.chen";

/// Adds a catalog file holding just [`ADMIN_GROUP`] and [`ADMIN_USER`] to `opts`, for tests whose
/// own catalog has no users but which act as the admin.
pub fn with_admin(mut opts: Options) -> Options {
    let dir = opts.dir.take().unwrap_or_else(|| tempfile::tempdir().expect("temp dir"));
    write_file(
        dir.path(),
        "admin-org.yaml",
        "apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata: {name: platform}\nspec: {type: team, children: []}\n---\n\
         apiVersion: backstage.io/v1alpha1\nkind: User\nmetadata: {name: pat.chen}\nspec: {memberOf: [platform]}\n",
    );
    opts.locations.push("admin-org.yaml".into());
    opts.dir = Some(dir);
    opts
}

impl TestApp {
    /// Waits until `/ready` answers 200 (at most 20 s).
    pub async fn wait_ready(&self) {
        for _ in 0..400 {
            if let Ok(r) = self.client.get(format!("{}/ready", self.base)).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("Nova did not become ready");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("request")
    }

    /// GET returning JSON, asserting the status.
    pub async fn get_json(&self, path: &str, status: u16) -> serde_json::Value {
        let r = self.get(path).await;
        assert_eq!(r.status().as_u16(), status, "GET {path}");
        r.json().await.expect("JSON body")
    }

    /// POST as a platform admin ([`ADMIN_USER`], by API token).
    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        let token = self.token_for(ADMIN_USER).await;
        self.client.post(self.url(path)).bearer_auth(token).json(body).send().await.expect("request")
    }

    /// DELETE as a platform admin ([`ADMIN_USER`], by API token).
    pub async fn delete(&self, path: &str) -> reqwest::Response {
        let token = self.token_for(ADMIN_USER).await;
        self.client.delete(self.url(path)).bearer_auth(token).send().await.expect("request")
    }

    /// A request as `user` (by API token; anonymous without one) with an optional JSON body:
    /// the status, the body as text, and the body as JSON (`Null` when it is not JSON).
    pub async fn call(&self, method: reqwest::Method, path: &str, user: Option<&str>, body: Option<serde_json::Value>) -> (u16, String, serde_json::Value) {
        let mut req = self.client.request(method, self.url(path));
        if let Some(u) = user {
            req = req.bearer_auth(self.token_for(u).await);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("request");
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        (status, text, json)
    }

    /// A fresh personal API token for `user` (e.g. `user:default/alex.kim`).
    pub async fn token_for(&self, user: &str) -> String {
        let user = nova_domain::EntityRef::parse(user).expect("a user reference");
        // A user the catalog knows (once it has loaded) gets their claims; others sign in owning nothing.
        let mut known = false;
        for _ in 0..40 {
            known = self.state.catalog.snapshot().get(&user).is_some();
            if known {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (token, _) = self.state.auth.tokens.create(&user, "test", None, known).await.expect("token created");
        token.expose().to_string()
    }

    /// Writes a file under the test directory and returns its path.
    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        write_file(self.dir.path(), rel, text)
    }

    /// The database URL, to restart on the same data.
    pub fn database_url(&self) -> String {
        self.state.config.database.url.clone()
    }

    /// Stops the server and hands back its directory.
    pub async fn stop(mut self) -> tempfile::TempDir {
        self.shutdown.cancel();
        if let Some(h) = self.handle.take() {
            let _ = h.await;
        }
        self.state.db.pool().close().await;
        let dir = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.dir, dir)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Writes `text` to `dir/rel`, creating directories.
pub fn write_file(dir: &Path, rel: &str, text: &str) -> PathBuf {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    p
}

/// Two teams, a member of each and a component of each (`svc` of team-a, `theirs` of team-b),
/// both built from `git_url` and pushed below `registry`: the credential tests' catalog.
pub fn two_teams_catalog(git_url: &str, registry: &str) -> String {
    TWO_TEAMS.replace("GIT_URL", git_url).replace("REGISTRY", registry)
}

const TWO_TEAMS: &str = "\
apiVersion: backstage.io/v1alpha1
kind: Group
metadata: { name: team-a }
spec: { type: team, children: [] }
---
apiVersion: backstage.io/v1alpha1
kind: Group
metadata: { name: team-b }
spec: { type: team, children: [] }
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata: { name: alice }
spec: { memberOf: [team-a] }
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata: { name: bob }
spec: { memberOf: [team-b] }
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: svc
  annotations:
    nova.dev/git-repository: GIT_URL
    nova.dev/image-repository: REGISTRY/team-a/svc
spec: { type: service, lifecycle: production, owner: team-a }
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: theirs
  annotations:
    nova.dev/git-repository: GIT_URL
    nova.dev/image-repository: REGISTRY/team-b/theirs
spec: { type: service, lifecycle: production, owner: team-b }
";

/// A minimal valid Component document.
pub fn component_yaml(name: &str, owner: &str) -> String {
    format!("apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\nspec:\n  type: service\n  lifecycle: production\n  owner: {owner}\n")
}
