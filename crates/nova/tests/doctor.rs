//! `nova doctor` as an operator runs it, against the real components scripts/test starts
//! (PostgreSQL, OpenBao, a CNCF distribution registry, the git server over HTTP holding an
//! environment's GitOps repository), an OIDC issuer served here (discovery and JWKS
//! documents), the Jenkins test double (tests/support/jenkins_double.rs) and catalog files: everything up passes and exits 0; each component down fails with a reason naming
//! it and exits 1; secrets (a database password, a registry password, a Vault token) never
//! appear in the output. Also the admin detail of `/ready`.

mod support;
#[path = "support/jenkins_double.rs"]
mod jenkins_double;

use std::path::Path;
use std::process::{Command, Output};

use jenkins_double::{JenkinsDouble, NOVA_PARAMETERS, Perm};
use serde_json::{Value, json};
use support::otlp::Collector;
use support::canary::Canary;
use support::registry::{Auth, READER, TestRegistry};
use support::*;

const JOB: &str = "payments/payment-service-build";

async fn doctor(config: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nova"));
    cmd.arg("doctor").arg("--config").arg(config).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    tokio::task::spawn_blocking(move || cmd.output().expect("nova runs")).await.unwrap()
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("doctor printed no JSON ({e}): {}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// The check whose component and target are as given.
fn check<'a>(report: &'a Value, component: &str, target_contains: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["component"] == component && c["target"].as_str().unwrap_or("").contains(target_contains))
        .unwrap_or_else(|| panic!("no {component} check on {target_contains}: {report:#}"))
}

/// An OIDC provider's two documents, served on a random port; answers its issuer URL.
async fn oidc_issuer() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let discovery = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/auth"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    });
    let jwks = json!({"keys": [{"kty": "RSA", "kid": "k1", "use": "sig", "alg": "RS256", "e": "AQAB",
        "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw"}]});
    let app = axum::Router::new()
        .route("/.well-known/openid-configuration", axum::routing::get(move || std::future::ready(axum::Json(discovery.clone()))))
        .route("/jwks", axum::routing::get(move || std::future::ready(axum::Json(jwks.clone()))));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    issuer
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Every kind of integration configured: a migrated PostgreSQL database reached with a
/// password (the canary; the test server trusts local connections, so any password works),
/// a registry with basic auth, OpenBao, an OIDC issuer, a Jenkins job, a catalog directory.
struct Setup {
    dir: tempfile::TempDir,
    registry: TestRegistry,
    database_url: String,
    issuer: String,
    jenkins: JenkinsDouble,
    locations: Vec<&'static str>,
    /// `[environments.<name>]` and their GitOps repository URLs.
    environments: Vec<(&'static str, String)>,
    /// The git server's password, the environments' write credential.
    git_password: Canary,
    /// The git server's repository root, and its URL.
    git_root: std::path::PathBuf,
    git_url: String,
    /// The OTLP collector traces go to, and the key it is sent with (a secret).
    collector: Collector,
    otlp_endpoint: String,
    otlp_key: Canary,
}

impl Setup {
    async fn start(canary: &Canary) -> Option<Self> {
        require_postgres()?;
        require("OpenBao", std::env::var("NOVA_TEST_VAULT_ADDR").ok(), "run the tests through scripts/test, which starts `bao server -dev`")?;
        let git_url = require("git HTTP server", std::env::var("NOVA_TEST_GIT_HTTP_URL").ok(), "scripts/test starts it with start_git_http")?;
        let git_root = std::path::PathBuf::from(std::env::var("NOVA_TEST_GIT_HTTP_ROOT").expect("set with the URL"));
        let git_password = Canary::of(&std::env::var("NOVA_TEST_GIT_HTTP_PASSWORD").expect("set with the URL"));
        let registry = TestRegistry::start(Auth::Basic).await?;
        let dir = tempfile::tempdir().unwrap();
        let url = fresh_database(Backend::Postgres, dir.path()).await;
        let db = nova::storage::Db::connect(&url, 1).await.unwrap();
        db.migrate().await.unwrap();
        let database_url = url.replacen("postgres@", &format!("postgres:{}@", canary.value()), 1);
        assert!(database_url.contains(canary.value()), "{database_url}");
        let jenkins = JenkinsDouble::start(Default::default()).await;
        jenkins.add_user("nova", "jenkins-token", false, Perm::Build);
        jenkins.add_job(JOB, &NOVA_PARAMETERS, &[]);
        write_file(dir.path(), "reader-password", READER.1);
        write_file(
            dir.path(),
            "catalog/catalog-info.yaml",
            &format!(
                "{}---\napiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: payment-service\n  annotations:\n    nova.dev/build-pipeline: ci:{JOB}\nspec: {{type: service, lifecycle: production, owner: payments}}\n",
                component_yaml("a", "team")
            ),
        );
        let issuer = oidc_issuer().await;
        let collector = Collector::start().await;
        let otlp_endpoint = collector.endpoint.clone();
        let mut s = Self { dir, registry, database_url, issuer, jenkins, locations: vec!["catalog"], environments: Vec::new(), git_password, git_root, git_url, collector, otlp_endpoint, otlp_key: Canary::new() };
        let dev = s.gitops_repository("private");
        s.environments.push(("dev", dev));
        Some(s)
    }

    /// A new GitOps repository (one commit on `main`) under `dir` of the git server (pushes
    /// with the password are accepted under `private/`, refused elsewhere); answers its URL.
    fn gitops_repository(&self, dir: &str) -> String {
        let name = format!("{dir}/doctor-gitops-{}.git", uuid::Uuid::new_v4().simple());
        let work = tempfile::tempdir().unwrap();
        let git = |args: &[&str]| {
            let out = Command::new("git").arg("-C").arg(work.path()).args(["-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "init.defaultBranch=main"]).args(args).output().unwrap();
            assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        git(&["init", "--quiet"]);
        git(&["commit", "--quiet", "--allow-empty", "-m", "first"]);
        let bare = self.git_root.join(&name);
        std::fs::create_dir_all(bare.parent().unwrap()).unwrap();
        git(&["clone", "--quiet", "--bare", ".", bare.to_str().unwrap()]);
        format!("{}/{name}", self.git_url)
    }

    /// Writes nova.toml; the catalog is named relative to it.
    fn config(&self) -> std::path::PathBuf {
        let locations = self.locations.iter().map(|l| format!("{l:?}")).collect::<Vec<_>>().join(", ");
        let environments: String = self
            .environments
            .iter()
            .enumerate()
            .map(|(i, (name, url))| {
                format!(
                    "[environments.{name}]\norder = {}\n[environments.{name}.gitops]\nrepository = \"{url}\"\npath = \"apps/{name}.yaml\"\nusername = \"nova-test\"\ncredential = {{ env = \"DOCTOR_GIT_PASSWORD\" }}\n",
                    i + 1
                )
            })
            .collect();
        write_file(
            self.dir.path(),
            "nova.toml",
            &format!(
                r#"[database]
url = "{url}"

[auth]
session_key = {{ env = "DOCTOR_SESSION_KEY" }}

[auth.oidc]
issuer = "{issuer}"
client_id = "nova"
redirect_url = "http://127.0.0.1:7700/auth/oidc/callback"

[secrets]
type = "vault"
address = "{vault}"
prefix = "doctor-{prefix}"
[secrets.auth]
method = "token"
token = {{ env = "DOCTOR_VAULT_TOKEN" }}

[registries.local]
type = "oci"
url = "{registry}"
username = "{reader}"
password = {{ file = "{password}" }}

[build_backends.ci]
type = "jenkins"
url = "{jenkins}"
user = "nova"
token = {{ env = "DOCTOR_JENKINS_TOKEN" }}

[catalog]
locations = [{locations}]

[observability]
otlp_endpoint = "{otlp}"

{environments}"#,
                url = self.database_url,
                issuer = self.issuer,
                vault = std::env::var("NOVA_TEST_VAULT_ADDR").unwrap(),
                prefix = uuid::Uuid::new_v4().simple(),
                registry = self.registry.url,
                reader = READER.0,
                password = self.dir.path().join("reader-password").display(),
                jenkins = self.jenkins.url,
                otlp = self.otlp_endpoint,
            ),
        )
    }
}

fn env_for(vault_token: &str, s: &Setup) -> Vec<(&'static str, String)> {
    vec![
        ("DOCTOR_SESSION_KEY", "0123456789abcdef0123456789abcdef-session".into()),
        ("DOCTOR_VAULT_TOKEN", vault_token.into()),
        ("DOCTOR_JENKINS_TOKEN", "jenkins-token".into()),
        ("DOCTOR_GIT_PASSWORD", s.git_password.value().into()),
        // Percent-encoded, as the variable's format has it: the space arrives decoded.
        ("OTEL_EXPORTER_OTLP_HEADERS", format!("authorization=Key%20{}", s.otlp_key.value())),
    ]
}

fn assert_no_canary(canaries: &[&Canary], out: &Output) {
    for canary in canaries {
        let mut check = canary.check();
        check.bytes("stdout", &out.stdout).bytes("stderr", &out.stderr);
        check.assert_clean();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_up_passes_in_json_and_as_a_table() {
    let canary = Canary::new();
    let Some(s) = Setup::start(&canary).await else { return };
    let config = s.config();
    let root = std::env::var("NOVA_TEST_VAULT_TOKEN").unwrap();
    let env = env_for(&root, &s);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();

    let out = doctor(&config, &["--output", "json"], &env).await;
    let report = json_of(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(report["status"], "pass", "{report:#}");
    for c in report["checks"].as_array().unwrap() {
        assert_eq!(c["status"], "pass", "{c}");
        assert!(c["reason"].as_str().is_some_and(|r| !r.is_empty()), "{c}");
        assert!(c.get("fix").is_none(), "a passing check has no fix: {c}");
    }
    let components: Vec<&str> = report["checks"].as_array().unwrap().iter().map(|c| c["component"].as_str().unwrap()).collect();
    assert_eq!(components, ["config", "database", "oci", "jenkins", "vault", "oidc", "gitops", "otlp", "catalog"], "{report:#}");
    let probes = s.collector.received();
    assert!(!probes.is_empty() && probes.iter().all(|(headers, export)| export.resource_spans.is_empty() && headers["authorization"] == format!("Key {}", s.otlp_key.value())), "the collector got an empty export with the configured header");
    assert!(check(&report, "database", "postgres").to_string().contains("REDACTED"), "the database URL is shown without its password");
    assert!(check(&report, "database", "").get("reason").unwrap().as_str().unwrap().contains("all"), "{report:#}");
    assert!(check(&report, "jenkins", JOB)["reason"].as_str().unwrap().contains("reads job"), "{report:#}");
    assert!(check(&report, "oidc", "http://")["reason"].as_str().unwrap().contains("1 signing keys"), "{report:#}");
    assert!(check(&report, "catalog", "catalog")["reason"].as_str().unwrap().contains("2 entities"), "{report:#}");
    assert!(check(&report, "gitops", "dev: ")["reason"].as_str().unwrap().contains("branch main is at") && check(&report, "gitops", "dev: ")["reason"].as_str().unwrap().contains("dry-run push is accepted"), "{report:#}");
    assert!(report["elapsed_ms"].as_u64().unwrap() < 5000, "checks run concurrently and answer within 5 s: {report:#}");
    eprintln!("doctor: {} checks in {} ms", components.len(), report["elapsed_ms"]);
    assert_no_canary(&[&canary, &s.git_password, &s.otlp_key], &out);

    let out = doctor(&config, &[], &env).await;
    assert_eq!(out.status.code(), Some(0));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.lines().filter(|l| l.starts_with("pass  ")).count() == 9, "{table}");
    assert!(table.contains("9 checks in") && table.contains("9 pass, 0 warn, 0 fail"), "{table}");
    assert_no_canary(&[&canary, &s.git_password, &s.otlp_key], &out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_component_down_fails_naming_it() {
    let canary = Canary::new();
    let Some(mut s) = Setup::start(&canary).await else { return };
    // Take every component but Jenkins away at once; each check must fail on its own and say why.
    let dead = closed_port();
    s.registry.stop();
    let pg_port = reqwest::Url::parse(&s.database_url).unwrap().port().unwrap();
    s.database_url = s.database_url.replace(&format!(":{pg_port}/"), &format!(":{dead}/"));
    s.issuer = format!("http://127.0.0.1:{dead}");
    s.locations.push("missing-dir");
    s.otlp_endpoint = format!("http://127.0.0.1:{dead}");
    // The git server, as far as `dev` can tell, is gone; `prod`'s repository is up but refuses
    // pushes (outside private/), so its credential could not write a promotion.
    s.environments[0].1 = s.environments[0].1.replace(&s.git_url, &format!("http://127.0.0.1:{dead}"));
    let read_only = s.gitops_repository("public");
    s.environments.push(("prod", read_only));
    let config = s.config();
    let env = env_for(canary.value(), &s); // a wrong Vault token, which must never be printed
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();

    let out = doctor(&config, &["--output", "json"], &env).await;
    let report = json_of(&out);
    assert_eq!(out.status.code(), Some(1), "{report:#}");
    assert_eq!(report["status"], "fail");
    let failed = |component: &str, target: &str, words: &[&str]| {
        let c = check(&report, component, target);
        assert_eq!(c["status"], "fail", "{c}");
        let reason = c["reason"].as_str().unwrap();
        assert!(words.iter().any(|w| reason.contains(w)), "{component}: {reason}");
        assert!(c["fix"].as_str().is_some_and(|f| !f.is_empty()), "{c}");
    };
    failed("database", "postgres", &["cannot connect"]);
    failed("oci", "local", &["unavailable"]);
    failed("vault", "", &["cannot sign in", "denied", "permission"]);
    failed("oidc", &format!(":{dead}"), &[&format!("127.0.0.1:{dead}")]);
    failed("catalog", "missing-dir", &["missing-dir", "not exist", "No such file"]);
    failed("gitops", &format!("dev: http://127.0.0.1:{dead}/"), &["Failed to connect", "Could not connect", "Connection refused"]);
    failed("gitops", "prod: ", &["refuses a push"]);
    assert_eq!(check(&report, "catalog", "/catalog")["status"], "pass", "the readable location still passes");
    assert_eq!(check(&report, "config", "nova.toml")["status"], "pass");
    assert_eq!(check(&report, "jenkins", JOB)["status"], "pass", "Jenkins is still up");
    let otlp = check(&report, "otlp", &format!(":{dead}"));
    assert_eq!(otlp["status"], "warn", "traces are optional: a collector that is down is a warning");
    assert!(otlp["reason"].as_str().unwrap().contains("cannot be reached"), "{otlp}");
    assert_no_canary(&[&canary, &s.git_password, &s.otlp_key], &out);

    let out = doctor(&config, &[], &env).await;
    assert_eq!(out.status.code(), Some(1));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.lines().any(|l| l.starts_with("FAIL  database")), "{table}");
    assert!(table.contains("      fix: "), "{table}");
    assert_no_canary(&[&canary, &s.git_password, &s.otlp_key], &out);
    drop(s.dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_that_hangs_fails_at_the_timeout() {
    // Accepts connections (the kernel completes them) but never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let config = write_file(
        dir.path(),
        "nova.toml",
        &format!(
            "[database]\nurl = \"sqlite://{db}\"\n[auth]\nsession_key = {{ env = \"K\" }}\n[auth.oidc]\nissuer = \"http://127.0.0.1:{port}\"\nclient_id = \"nova\"\nredirect_url = \"http://h/auth/oidc/callback\"\n[secrets]\ntype = \"file\"\npath = \"{secrets}\"\n",
            db = dir.path().join("nova.db").display(),
            secrets = dir.path().join("secrets.enc").display()
        ),
    );
    let started = std::time::Instant::now();
    let out = doctor(&config, &["--output", "json", "--timeout", "1"], &[("K", "0123456789abcdef0123456789abcdef-k")]).await;
    let report = json_of(&out);
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "the doctor waits for the timeout, not for the provider");
    assert_eq!(out.status.code(), Some(1), "{report:#}");
    let oidc = check(&report, "oidc", &port.to_string());
    assert_eq!(oidc["reason"], "no answer within 1.0s", "{oidc}");
    // Nothing was created: no database, no secret store; both are warnings, not failures.
    assert_eq!(check(&report, "database", "sqlite")["status"], "warn", "{report:#}");
    assert_eq!(check(&report, "file", "secrets.enc")["status"], "warn", "{report:#}");
    assert_eq!(check(&report, "catalog", "catalog.locations")["status"], "warn", "{report:#}");
    assert!(!dir.path().join("nova.db").exists() && !dir.path().join("secrets.enc").exists(), "the doctor creates nothing");
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_pending_migrations_warn_and_a_bad_config_fails() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("nova.db");
    // A database with tables but no migrations (as if created by hand): every migration pending.
    let db = nova::storage::Db::connect(&format!("sqlite://{}", db_path.display()), 1).await.unwrap();
    sqlx::query("CREATE TABLE t (x INTEGER)").execute(db.pool()).await.unwrap();
    let config = write_file(dir.path(), "nova.toml", &format!("[database]\nurl = \"sqlite://{}\"\n", db_path.display()));
    let out = doctor(&config, &["--output", "json"], &[]).await;
    let report = json_of(&out);
    let database = check(&report, "database", "sqlite");
    assert_eq!(database["status"], "warn", "{report:#}");
    assert!(database["reason"].as_str().unwrap().contains("migrations not applied yet"), "{database}");
    assert_eq!(database["fix"], "start nova serve: migrations run at start");
    // Migrated: passes.
    db.migrate().await.unwrap();
    let report = json_of(&doctor(&config, &["--output", "json"], &[]).await);
    assert_eq!(check(&report, "database", "sqlite")["status"], "pass", "{report:#}");
    // A migration this binary does not know: a newer Nova migrated the database.
    sqlx::query("INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (299912310001, 'future', TRUE, x'00', 1)").execute(db.pool()).await.unwrap();
    let out = doctor(&config, &["--output", "json"], &[]).await;
    let report = json_of(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(check(&report, "database", "sqlite")["reason"].as_str().unwrap().contains("299912310001"), "{report:#}");

    let bad = write_file(dir.path(), "bad.toml", "[database]\nurl = \"mysql://x\"\n");
    let out = doctor(&bad, &["--output", "json"], &[]).await;
    let report = json_of(&out);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(report["checks"].as_array().unwrap().len(), 1, "{report:#}");
    assert!(check(&report, "config", "bad.toml")["reason"].as_str().unwrap().contains("database.url"), "{report:#}");
}

on_both_backends! {
    async fn ready_shows_integrations_to_admins_only(backend: Backend) {
        let app = spawn_app_with(backend, with_admin(Options::default())).await;
        let anonymous = app.get_json("/ready", 200).await;
        assert!(anonymous.get("integrations").is_none(), "{anonymous:#}");
        let token = app.token_for(ADMIN_USER).await;
        let admin: Value = app.client.get(app.url("/ready")).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
        let detail = &admin["integrations"];
        assert_eq!(detail["status"], "pass", "{admin:#}");
        let components: Vec<&str> = detail["checks"].as_array().unwrap().iter().map(|c| c["component"].as_str().unwrap()).collect();
        assert_eq!(components, ["database", "file"], "{admin:#}");
        // Cached: a second call answers the same report (same elapsed time) without new checks.
        let again: Value = app.client.get(app.url("/ready")).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
        assert_eq!(again["integrations"], admin["integrations"]);
        let user = app.token_for("user:default/someone").await;
        let other: Value = app.client.get(app.url("/ready")).bearer_auth(&user).send().await.unwrap().json().await.unwrap();
        assert!(other.get("integrations").is_none(), "{other:#}");
    }
}
