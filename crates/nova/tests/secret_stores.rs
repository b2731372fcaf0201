//! The three secret stores against real components: the encrypted file store, OpenBao (a real
//! Vault-API server, started by scripts/test) and moto's Secrets Manager. Each test puts a
//! canary secret through put/get/rotate/delete and its error paths, then checks that the
//! canary appears in no log line, error message or argv — and, for the file store, not in the
//! file on disk.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use nova::secrets::{self, FileStoreConfig, HealthStatus, Precondition, SecretData, SecretError, SecretPath, SecretRef, SecretStore, VaultAuthConfig, VaultConfig};
use nova_domain::Sensitive;
use support::canary::{self, Canary};
use support::require;

/// Texts the test saw (error messages, reports), to search for the canary.
#[derive(Default)]
struct Seen(Vec<String>);

impl Seen {
    fn error<T: std::fmt::Debug>(&mut self, r: Result<T, SecretError>) -> SecretError {
        let e = r.expect_err("an error was expected");
        self.0.push(format!("{e} / {e:?}"));
        e
    }
    fn add(&mut self, text: impl std::fmt::Debug) {
        self.0.push(format!("{text:?}"));
    }
}

fn secret(fields: &[(&str, &str)]) -> SecretData {
    let mut d = SecretData::new();
    for (k, v) in fields {
        d.insert(*k, Sensitive::new((*v).to_owned()));
    }
    d
}

/// put, get, conflicting puts, rotation with the previous version kept, list, delete — the
/// same contract for every store. Returns what it saw.
async fn exercise(store: &dyn SecretStore, team: &str, canary: &Canary) -> Seen {
    let mut seen = Seen::default();
    let path = SecretPath::team(team, "git/main").unwrap();
    let first = format!("{}-1", canary.value());
    let second = format!("{}-2", canary.value());

    let e = seen.error(store.get(&path).await);
    assert!(matches!(e, SecretError::NotFound(_)), "{e:?}");
    let v1 = store.put(&path, &secret(&[("token", &first), ("username", "git")]), Precondition::Absent).await.unwrap();
    let got = store.get(&path).await.unwrap();
    seen.add(&got);
    assert_eq!(got.version, v1);
    assert_eq!(got.data.get("token").unwrap().expose(), &first);
    assert_eq!(got.data.get("username").unwrap().expose(), "git");
    let e = seen.error(store.put(&path, &secret(&[("token", &second)]), Precondition::Absent).await);
    assert!(matches!(e, SecretError::Conflict(_)), "{e:?}");

    // Rotate with check-and-set; the stale version cannot write again.
    let v2 = store.put(&path, &secret(&[("token", &second)]), Precondition::Current(v1.clone())).await.unwrap();
    assert_ne!(v1, v2);
    let e = seen.error(store.put(&path, &secret(&[("token", "stale")]), Precondition::Current(v1.clone())).await);
    assert!(matches!(e, SecretError::Conflict(_)), "{e:?}");
    let got = store.get(&path).await.unwrap();
    assert_eq!((got.version.clone(), got.data.get("token").unwrap().expose().as_str()), (v2.clone(), second.as_str()));
    assert!(got.data.get("username").is_none(), "a write replaces every field");
    let old = store.get_version(&path, &v1).await.unwrap();
    assert_eq!(old.data.get("token").unwrap().expose(), &first, "the previous version is kept");
    let v3 = store.put(&path, &secret(&[("token", &first)]), Precondition::None).await.unwrap();
    assert!(v3 != v2 && v3 != v1);

    // List by whole segments.
    let other = SecretPath::team(team, "git/other").unwrap();
    let sibling = SecretPath::team(&format!("{team}x"), "git/main").unwrap();
    store.put(&other, &secret(&[("token", "o")]), Precondition::None).await.unwrap();
    store.put(&sibling, &secret(&[("token", "s")]), Precondition::None).await.unwrap();
    let team_root = SecretPath::parse(&format!("teams/{team}")).unwrap();
    assert_eq!(store.list(Some(&team_root)).await.unwrap(), vec![path.clone(), other.clone()]);
    assert_eq!(store.list(Some(&team_root.join("git").unwrap())).await.unwrap(), vec![path.clone(), other.clone()]);
    let all = store.list(None).await.unwrap();
    assert!(all.contains(&path) && all.contains(&sibling), "{all:?}");

    // Delete removes every version and is idempotent.
    store.delete(&path).await.unwrap();
    let e = seen.error(store.get(&path).await);
    assert!(matches!(e, SecretError::NotFound(_)), "{e:?}");
    let e = seen.error(store.get_version(&path, &v2).await);
    assert!(matches!(e, SecretError::NotFound(_)), "{e:?}");
    store.delete(&path).await.unwrap();
    store.delete(&other).await.unwrap();
    store.delete(&sibling).await.unwrap();
    assert_eq!(store.list(Some(&team_root)).await.unwrap(), Vec::<SecretPath>::new());

    let report = store.health_check().await;
    seen.add(&report);
    assert_eq!(report.status, HealthStatus::Pass, "{report:?}");
    seen
}

/// Asserts the canary reached no log line, no text the test saw and no child's argv.
fn assert_no_leak(canary: &Canary, logs: &canary::CapturedLogs, seen: &Seen, argv: &nova::process::ArgvLog, files: &[&Path]) {
    let mut check = canary.check();
    check.logs(logs).bodies(&seen.0).argv(argv);
    for f in files {
        check.file(f);
    }
    check.assert_clean();
}

fn unique(name: &str) -> String {
    format!("{name}-{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}

// ---------------------------------------------------------------------------------------------
// The file store

fn file_config(dir: &Path) -> FileStoreConfig {
    FileStoreConfig { path: dir.join("secrets.enc"), key_file: None, key_env: None }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_store_contract_and_error_paths_leak_nothing() {
    let logs = canary::capture_logs();
    let argv = nova::process::record_argv();
    let canary = Canary::new();
    let dir = tempfile::tempdir().unwrap();
    let config = file_config(dir.path());
    let store = secrets::open(&secrets::SecretsConfig::File(config.clone())).await.unwrap();
    assert_eq!(store.kind(), "file");
    let mut seen = exercise(store.as_ref(), "payments", &canary).await;
    let path = SecretPath::team("payments", "kept").unwrap();
    store.put(&path, &SecretData::single(canary.sensitive()), Precondition::None).await.unwrap();

    // Reopened from disk: the same secret.
    let reopened = secrets::open(&secrets::SecretsConfig::File(config.clone())).await.unwrap();
    assert_eq!(reopened.get(&path).await.unwrap().data.get("value").unwrap().expose(), canary.value());

    // The key from an environment variable: the same key opens the store.
    let key = std::fs::read_to_string(config.key_path()).unwrap();
    let var = format!("NOVA_TEST_KEY_{}", uuid::Uuid::new_v4().simple());
    // SAFETY: a variable no other code reads, set before anything reads it.
    unsafe { std::env::set_var(&var, key.trim()) };
    let by_env = FileStoreConfig { key_env: Some(var.clone()), key_file: Some(dir.path().join("absent.key")), ..config.clone() };
    assert!(secrets::open(&secrets::SecretsConfig::File(by_env)).await.unwrap().get(&path).await.is_ok());

    // Missing key, wrong key: refused with what to do.
    std::fs::rename(config.key_path(), dir.path().join("backup.key")).unwrap();
    let e = seen.error(secrets::open(&secrets::SecretsConfig::File(config.clone())).await.map(|_| ()));
    assert!(e.to_string().contains("key is missing") && e.to_string().contains("restore the key from backup"), "{e}");
    let wrong = FileStoreConfig { key_env: Some(format!("{var}_WRONG")), ..config.clone() };
    // SAFETY: as above.
    unsafe { std::env::set_var(format!("{var}_WRONG"), "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=") };
    let e = seen.error(secrets::open(&secrets::SecretsConfig::File(wrong)).await.map(|_| ()));
    assert!(e.to_string().contains("another key"), "{e}");
    std::fs::rename(dir.path().join("backup.key"), config.key_path()).unwrap();

    // A store that cannot be written: the health check fails and says what to do.
    let blocked = dir.path().join("blocked");
    std::fs::write(&blocked, "a file where a directory should be").unwrap();
    let unwritable = secrets::open(&secrets::SecretsConfig::File(file_config(&blocked))).await.unwrap();
    let report = unwritable.health_check().await;
    assert_eq!(report.status, HealthStatus::Fail, "{report:?}");
    assert!(report.fix.as_deref().unwrap_or("").contains("writable"), "{report:?}");
    seen.add(&report);

    assert_no_leak(&canary, &logs, &seen, &argv, &[&config.path, &config.key_path()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_store_writers_in_parallel_lose_nothing() {
    let _logs = canary::capture_logs();
    let dir = tempfile::tempdir().unwrap();
    let config = secrets::SecretsConfig::File(file_config(dir.path()));
    // Two store handles on one file, as two processes would have.
    let (a, b) = (secrets::open(&config).await.unwrap(), secrets::open(&config).await.unwrap());
    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move { store.put(&SecretPath::parse(&format!("p/{i}")).unwrap(), &secret(&[("v", &i.to_string())]), Precondition::Absent).await }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(a.list(None).await.unwrap().len(), 40);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).filter(|n| n.starts_with(".nova-secrets-")).collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

// ---------------------------------------------------------------------------------------------
// Vault / OpenBao

struct Bao {
    addr: String,
    root: String,
    http: reqwest::Client,
}

fn bao() -> Option<Bao> {
    let addr = require("OpenBao", std::env::var("NOVA_TEST_VAULT_ADDR").ok(), "run the tests through scripts/test, which starts `bao server -dev`")?;
    Some(Bao { addr, root: std::env::var("NOVA_TEST_VAULT_TOKEN").expect("NOVA_TEST_VAULT_TOKEN is set with the address"), http: reqwest::Client::new() })
}

impl Bao {
    /// A root-token call to the sys or auth API.
    async fn root(&self, method: reqwest::Method, path: &str, body: serde_json::Value) -> serde_json::Value {
        let r = self.http.request(method, format!("{}/v1/{path}", self.addr)).header("X-Vault-Token", &self.root).json(&body).send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
    }

    /// Installs a policy file from docs/vault with the test's prefix (and team).
    async fn install_policy(&self, name: &str, file: &str, prefix: &str, team: &str) {
        let hcl = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/vault").join(file)).unwrap();
        let hcl = hcl.replace("/nova/", &format!("/{prefix}/")).replace("TEAM", team);
        self.root(reqwest::Method::PUT, &format!("sys/policies/acl/{name}"), serde_json::json!({ "policy": hcl })).await;
    }

    /// Makes an AppRole with `policy` and returns its sign-in config, the secret id in a file.
    async fn approle(&self, name: &str, policy: &str, ttl: &str, max_ttl: &str, dir: &Path) -> VaultAuthConfig {
        self.root(reqwest::Method::POST, &format!("auth/approle/role/{name}"), serde_json::json!({"token_policies": [policy], "token_ttl": ttl, "token_max_ttl": max_ttl})).await;
        let role_id = self.root(reqwest::Method::GET, &format!("auth/approle/role/{name}/role-id"), serde_json::Value::Null).await["data"]["role_id"].as_str().unwrap().to_owned();
        let secret_id = self.root(reqwest::Method::POST, &format!("auth/approle/role/{name}/secret-id"), serde_json::json!({})).await["data"]["secret_id"].as_str().unwrap().to_owned();
        let file = dir.join(format!("{name}.secret-id"));
        std::fs::write(&file, secret_id).unwrap();
        VaultAuthConfig::Approle { role_id, secret_id: SecretRef::File(file), mount: "approle".into() }
    }

    fn config(&self, prefix: &str, auth: VaultAuthConfig) -> VaultConfig {
        VaultConfig { address: self.addr.clone(), mount: "secret".into(), prefix: prefix.into(), namespace: None, auth, team_auth: BTreeMap::new(), timeout: Duration::from_secs(10) }
    }

    fn root_auth(&self) -> VaultAuthConfig {
        VaultAuthConfig::Token { token: SecretRef::Env("NOVA_TEST_VAULT_TOKEN".into()) }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_kv2_contract_and_error_paths_leak_nothing() {
    let logs = canary::capture_logs();
    let argv = nova::process::record_argv();
    let Some(bao) = bao() else { return };
    let canary = Canary::new();
    let prefix = unique("nova-test");
    let store = secrets::open(&secrets::SecretsConfig::Vault(bao.config(&prefix, bao.root_auth()))).await.unwrap();
    assert_eq!(store.kind(), "vault");
    let mut seen = exercise(store.as_ref(), "payments", &canary).await;
    let path = SecretPath::team("payments", "kept").unwrap();
    let v = store.put(&path, &SecretData::single(canary.sensitive()), Precondition::None).await.unwrap();
    assert_eq!(v.as_str(), "1", "KV v2 numbers versions from 1");

    // Wrong token: denied, and the health check says what to fix.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad-token"), "s.not-a-real-token\n").unwrap();
    let bad = secrets::open(&secrets::SecretsConfig::Vault(bao.config(&prefix, VaultAuthConfig::Token { token: SecretRef::File(dir.path().join("bad-token")) }))).await.unwrap();
    let e = seen.error(bad.get(&path).await);
    assert!(matches!(e, SecretError::Denied(_)), "{e:?}");
    let report = bad.health_check().await;
    assert_eq!(report.status, HealthStatus::Fail);
    assert!(report.fix.as_deref().unwrap().contains("secrets.auth"), "{report:?}");
    seen.add(&report);

    // A wrong AppRole secret id: denied.
    let role = bao.approle(&unique("wrong"), "default", "60s", "120s", dir.path()).await;
    let VaultAuthConfig::Approle { role_id, mount, .. } = role else { unreachable!() };
    std::fs::write(dir.path().join("wrong-secret-id"), "00000000-0000-0000-0000-000000000000").unwrap();
    let wrong = VaultAuthConfig::Approle { role_id, mount, secret_id: SecretRef::File(dir.path().join("wrong-secret-id")) };
    let e = seen.error(secrets::open(&secrets::SecretsConfig::Vault(bao.config(&prefix, wrong))).await.unwrap().get(&path).await);
    assert!(matches!(e, SecretError::Denied(_)), "{e:?}");

    // Vault down: unavailable, naming the address.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut down = bao.config(&prefix, bao.root_auth());
    down.address = format!("http://{closed}");
    let down = secrets::open(&secrets::SecretsConfig::Vault(down)).await.unwrap();
    let e = seen.error(down.put(&path, &SecretData::single(canary.sensitive()), Precondition::None).await);
    assert!(matches!(&e, SecretError::Unavailable(m) if m.contains(&closed.to_string())), "{e:?}");
    let report = down.health_check().await;
    assert_eq!(report.status, HealthStatus::Fail);
    seen.add(&report);

    store.delete(&path).await.unwrap();
    assert_no_leak(&canary, &logs, &seen, &argv, &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_team_policies_keep_teams_apart() {
    let logs = canary::capture_logs();
    let argv = nova::process::record_argv();
    let Some(bao) = bao() else { return };
    let canary = Canary::new();
    let prefix = unique("nova-test");
    let dir = tempfile::tempdir().unwrap();
    let id = unique("t");
    bao.install_policy(&format!("{id}-nova"), "nova.hcl", &prefix, "").await;
    bao.install_policy(&format!("{id}-a"), "team.hcl", &prefix, "team-a").await;
    bao.install_policy(&format!("{id}-b"), "team.hcl", &prefix, "team-b").await;
    let nova_role = bao.approle(&format!("{id}-nova"), &format!("{id}-nova"), "60s", "300s", dir.path()).await;
    let role_a = bao.approle(&format!("{id}-a"), &format!("{id}-a"), "60s", "300s", dir.path()).await;
    let role_b = bao.approle(&format!("{id}-b"), &format!("{id}-b"), "60s", "300s", dir.path()).await;

    // Nova with per-team sign-ins: each team's folder through its own role.
    let mut config = bao.config(&prefix, nova_role.clone());
    config.team_auth = BTreeMap::from([("team-a".to_owned(), role_a.clone()), ("team-b".to_owned(), role_b.clone())]);
    let store = secrets::open(&secrets::SecretsConfig::Vault(config)).await.unwrap();
    let (a, b) = (SecretPath::team("team-a", "git/main").unwrap(), SecretPath::team("team-b", "git/main").unwrap());
    store.put(&a, &SecretData::single(canary.sensitive()), Precondition::Absent).await.unwrap();
    store.put(&b, &secret(&[("value", "b-secret")]), Precondition::Absent).await.unwrap();
    assert_eq!(store.get(&a).await.unwrap().data.get("value").unwrap().expose(), canary.value());
    assert_eq!(store.list(None).await.unwrap(), vec![a.clone(), b.clone()]);
    let report = store.health_check().await;
    assert_eq!(report.status, HealthStatus::Pass, "{report:?}");
    assert_eq!(store.list(Some(&SecretPath::parse("teams/team-a").unwrap())).await.unwrap(), vec![a.clone()]);

    let mut seen = Seen::default();
    seen.add(&report);
    // Team A's role, used for everything: Vault refuses team B's folder.
    let role_a_raw = role_a.clone();
    let as_a = secrets::open(&secrets::SecretsConfig::Vault(bao.config(&prefix, role_a))).await.unwrap();
    assert!(as_a.get(&a).await.is_ok());
    for e in [seen.error(as_a.get(&b).await.map(drop)), seen.error(as_a.put(&b, &SecretData::single(canary.sensitive()), Precondition::None).await.map(drop)), seen.error(as_a.list(Some(&SecretPath::parse("teams/team-b").unwrap())).await.map(drop))] {
        assert!(matches!(e, SecretError::Denied(_)), "{e:?}");
    }
    // Nova's own role (nova.hcl): no team folder at all.
    let as_nova = secrets::open(&secrets::SecretsConfig::Vault(bao.config(&prefix, nova_role))).await.unwrap();
    let e = seen.error(as_nova.get(&a).await);
    assert!(matches!(e, SecretError::Denied(_)), "{e:?}");
    assert_eq!(as_nova.health_check().await.status, HealthStatus::Pass, "Nova's own role can run the health probe");
    // And the raw API answers 403 to team A's token on team B's path.
    let VaultAuthConfig::Approle { role_id, secret_id, .. } = &role_a_raw else { unreachable!() };
    let secret_id = secret_id.resolve_local("test").unwrap();
    let login: serde_json::Value = bao.http.post(format!("{}/v1/auth/approle/login", bao.addr)).json(&serde_json::json!({"role_id": role_id, "secret_id": secret_id.expose()})).send().await.unwrap().json().await.unwrap();
    let token = login["auth"]["client_token"].as_str().unwrap();
    let r = bao.http.get(format!("{}/v1/secret/data/{prefix}/teams/team-b/git/main", bao.addr)).header("X-Vault-Token", token).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let r = bao.http.get(format!("{}/v1/secret/data/{prefix}/teams/team-a/git/main", bao.addr)).header("X-Vault-Token", token).send().await.unwrap();
    assert_eq!(r.status(), 200);

    store.delete(&a).await.unwrap();
    store.delete(&b).await.unwrap();
    assert_no_leak(&canary, &logs, &seen, &argv, &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_approle_tokens_are_renewed_then_replaced_at_their_max_ttl() {
    let logs = canary::capture_logs();
    let Some(bao) = bao() else { return };
    let canary = Canary::new();
    let prefix = unique("nova-test");
    let dir = tempfile::tempdir().unwrap();
    let id = unique("renew");
    bao.install_policy(&id, "nova.hcl", &prefix, "").await;
    // A 3 s token that can be renewed up to 7 s after login.
    let role = bao.approle(&id, &id, "3s", "7s", dir.path()).await;
    let store = nova::secrets::vault::VaultStore::new(&bao.config(&prefix, role)).unwrap();
    let path = SecretPath::parse("apps/renewal").unwrap();
    store.put(&path, &SecretData::single(canary.sensitive()), Precondition::None).await.unwrap();
    // Every call succeeds across two maximum lifetimes of a token.
    for _ in 0..30 {
        assert_eq!(store.get(&path).await.unwrap().data.get("value").unwrap().expose(), canary.value());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let stats = store.auth_stats(None);
    assert!(stats.renewals >= 2, "renewed before expiry: {stats:?}");
    assert!(stats.logins >= 2, "signed in again when renewal could not extend the token: {stats:?}");
    store.delete(&path).await.unwrap();
    let mut check = canary.check();
    check.logs(&logs).assert_clean();
}

// ---------------------------------------------------------------------------------------------
// AWS Secrets Manager (moto)

#[cfg(feature = "aws")]
fn moto_config(url: &str, dir: &Path, prefix: &str) -> nova::secrets::AwsSecretsConfig {
    std::fs::write(dir.join("key-id"), "testing").unwrap();
    std::fs::write(dir.join("secret-key"), "testing").unwrap();
    nova::secrets::AwsSecretsConfig {
        region: Some("us-east-1".into()),
        endpoint: Some(url.into()),
        prefix: prefix.into(),
        access_key_id: Some(SecretRef::File(dir.join("key-id"))),
        secret_access_key: Some(SecretRef::File(dir.join("secret-key"))),
        ..Default::default()
    }
}

#[cfg(feature = "aws")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_secrets_manager_contract_tags_stages_and_error_paths_leak_nothing() {
    use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};

    let logs = canary::capture_logs();
    let argv = nova::process::record_argv();
    let Some(url) = require("moto", std::env::var("NOVA_TEST_MOTO_URL").ok(), "run the tests through scripts/test, which starts moto_server") else { return };
    let canary = Canary::new();
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique("nova-test");
    let config = moto_config(&url, dir.path(), &prefix);
    let store = secrets::open(&secrets::SecretsConfig::AwsSecretsManager(config.clone())).await.unwrap();
    assert_eq!(store.kind(), "aws-secrets-manager");
    let mut seen = exercise(store.as_ref(), "payments", &canary).await;

    // Tags and stages, seen through the SDK directly.
    let path = SecretPath::team("payments", "git/tagged").unwrap();
    let v1 = store.put(&path, &SecretData::single(canary.sensitive()), Precondition::Absent).await.unwrap();
    let v2 = store.put(&path, &secret(&[("value", "rotated")]), Precondition::Current(v1.clone())).await.unwrap();
    let sdk = aws_config::defaults(BehaviorVersion::latest()).region(Region::new("us-east-1")).endpoint_url(&url).credentials_provider(Credentials::new("testing", "testing", None, None, "test")).load().await;
    let client = aws_sdk_secretsmanager::Client::new(&sdk);
    let described = client.describe_secret().secret_id(format!("{prefix}/teams/payments/git/tagged")).send().await.unwrap();
    let tags: BTreeMap<_, _> = described.tags().iter().map(|t| (t.key().unwrap().to_owned(), t.value().unwrap().to_owned())).collect();
    assert_eq!(tags, BTreeMap::from([("nova:credential".to_owned(), "git/tagged".to_owned()), ("nova:team".to_owned(), "payments".to_owned())]));
    let stages = described.version_ids_to_stages().unwrap();
    assert!(stages[v2.as_str()].contains(&"AWSCURRENT".to_owned()), "{stages:?}");
    assert!(stages[v1.as_str()].contains(&"AWSPREVIOUS".to_owned()), "{stages:?}");
    // A plain-string secret written by someone else reads as the field `value`.
    client.create_secret().name(format!("{prefix}/apps/plain")).secret_string("plain-text").send().await.unwrap();
    assert_eq!(store.get(&SecretPath::parse("apps/plain").unwrap()).await.unwrap().data.get("value").unwrap().expose(), "plain-text");
    store.delete(&SecretPath::parse("apps/plain").unwrap()).await.unwrap();
    store.delete(&path).await.unwrap();

    // Secrets Manager down: unavailable, and the health check fails. (moto does not check
    // credentials or IAM policies, so a wrong key cannot be tested here.)
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let down = nova::secrets::AwsSecretsConfig { endpoint: Some(format!("http://{closed}")), timeout: Duration::from_secs(3), ..config };
    let down = secrets::open(&secrets::SecretsConfig::AwsSecretsManager(down)).await.unwrap();
    let e = seen.error(down.put(&path, &SecretData::single(canary.sensitive()), Precondition::None).await);
    assert!(matches!(e, SecretError::Unavailable(_)), "{e:?}");
    let report = down.health_check().await;
    assert_eq!(report.status, HealthStatus::Fail);
    seen.add(&report);

    assert_no_leak(&canary, &logs, &seen, &argv, &[]);
}

/// Team credentials on a store: register, list (metadata only), rotate, revoke; the value
/// comes back only through the store and appears in no metadata or error.
async fn credentials_round_trip(store: &dyn SecretStore, team: &str, canary: &Canary) -> Seen {
    use nova::secrets::credentials::{self, CredentialKind, CredentialRequest};
    let mut seen = Seen::default();
    let req = |secret: String| CredentialRequest {
        kind: CredentialKind::HttpsToken,
        repositories: vec!["https://git.example.com/team/app.git".into()],
        username: Some("ci".into()),
        description: "read-only".into(),
        secret: Sensitive::new(secret),
        passphrase: None,
    };
    let first = credentials::put(store, None, team, "git", &req(format!("{}-1", canary.value())), "user:default/a", 1).await.unwrap();
    let info = first.info;
    assert!(!first.rotated);
    let second = credentials::put(store, None, team, "git", &req(format!("{}-2", canary.value())), "user:default/b", 2).await.unwrap();
    let info2 = second.info;
    assert!(second.rotated && info2.created_by == info.created_by && info2.rotated_by.as_deref() == Some("user:default/b"));
    let listed = credentials::list(store, team).await.unwrap();
    assert_eq!(listed, vec![info2.clone()]);
    seen.add(&listed);
    let e = credentials::put(store, None, team, "other", &req(canary.value().into()), "user:default/a", 3).await.unwrap_err();
    seen.add(e.to_string());
    assert!(e.to_string().contains("already covered"), "{e}");
    let stored = store.get(&SecretPath::team(team, "credentials/git").unwrap()).await.unwrap();
    assert_eq!(stored.data.get("secret").unwrap().expose(), &format!("{}-2", canary.value()));
    credentials::revoke(store, team, "git").await.unwrap();
    assert!(credentials::list(store, team).await.unwrap().is_empty());
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn team_credentials_on_openbao() {
    let logs = canary::capture_logs();
    let argv = nova::process::record_argv();
    let Some(bao) = bao() else { return };
    let canary = Canary::new();
    let store = secrets::open(&secrets::SecretsConfig::Vault(bao.config(&unique("nova-cred"), bao.root_auth()))).await.unwrap();
    let seen = credentials_round_trip(store.as_ref(), "payments", &canary).await;
    assert_no_leak(&canary, &logs, &seen, &argv, &[]);
}

#[cfg(feature = "aws")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn team_credentials_on_aws_secrets_manager() {
    let logs = canary::capture_logs();
    let argv = nova::process::record_argv();
    let Some(url) = require("moto", std::env::var("NOVA_TEST_MOTO_URL").ok(), "run the tests through scripts/test, which starts moto_server") else { return };
    let canary = Canary::new();
    let dir = tempfile::tempdir().unwrap();
    let store = secrets::open(&secrets::SecretsConfig::AwsSecretsManager(moto_config(&url, dir.path(), &unique("nova-cred")))).await.unwrap();
    let seen = credentials_round_trip(store.as_ref(), "payments", &canary).await;
    assert_no_leak(&canary, &logs, &seen, &argv, &[]);
}
