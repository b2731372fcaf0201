//! `nova hydrate --secrets PATH` as a user runs it: values from the file store and from OpenBao,
//! never printed — not in `--dry-run`, not in errors.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};

use nova::secrets::{self, FileStoreConfig, Precondition, SecretData, SecretPath, SecretsConfig};
use nova_domain::Sensitive;
use support::canary::Canary;
use support::*;

/// Runs `nova hydrate ARGS` with `stdin`; returns (exit code, stdout, stderr).
fn hydrate(dir: &Path, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> (i32, String, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_nova"))
        .current_dir(dir)
        .arg("hydrate")
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.code().unwrap(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

async fn put(config: &SecretsConfig, path: &str, fields: &[(&str, &str)]) {
    let store = secrets::open(config).await.unwrap();
    let mut data = SecretData::new();
    for (k, v) in fields {
        data.insert(*k, Sensitive::new((*v).to_owned()));
    }
    store.put(&SecretPath::parse(path).unwrap(), &data, Precondition::None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hydrate_reads_the_file_store_and_never_prints_values() {
    let dir = tempfile::tempdir().unwrap();
    let canary = Canary::new();
    let store = dir.path().join("data/secrets.enc");
    let config = SecretsConfig::File(FileStoreConfig { path: store.clone(), key_file: None, key_env: None });
    put(&config, "apps/web/prod", &[("DB_PASS", canary.value()), ("HOST", "db.internal")]).await;
    put(&config, "apps/web/override", &[("HOST", "db.override")]).await;
    let cfg = write_file(dir.path(), "nova.toml", &format!("[secrets]\ntype = \"file\"\npath = \"{}\"\n", store.display()));
    let cfg = cfg.to_str().unwrap();
    let template = "host=$HOST pass=${DB_PASS} port=${PORT:-5432}\n";

    let (code, out, err) = hydrate(dir.path(), &["--config", cfg, "--secrets", "apps/web/prod", "-"], template, &[]);
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(out, format!("host=db.internal pass={} port=5432\n", canary.value()));

    // A later --secrets wins; the environment wins over the store.
    let (code, out, _) = hydrate(dir.path(), &["--config", cfg, "--secrets", "apps/web/prod", "--secrets", "apps/web/override", "-"], template, &[("PORT", "1")]);
    assert_eq!((code, out), (0, format!("host=db.override pass={} port=1\n", canary.value())));

    // Dry run: origins, never values.
    let (code, out, err) = hydrate(dir.path(), &["--config", cfg, "--secrets", "apps/web/prod", "--dry-run", "-"], template, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "HOST (1:6): from secret store apps/web/prod\nDB_PASS (1:17): from secret store apps/web/prod\nPORT (1:33): the template's default\n");

    // A missing secret, a bad path, a missing variable: errors name the path, never a value.
    let (code, out, err) = hydrate(dir.path(), &["--config", cfg, "--secrets", "apps/none", "-"], template, &[]);
    assert_eq!((code, out.as_str()), (2, ""));
    assert!(err.contains("--secrets apps/none: secret apps/none not found"), "{err}");
    let (code, _, err) = hydrate(dir.path(), &["--config", cfg, "--secrets", "../x", "-"], template, &[]);
    assert_eq!(code, 2);
    assert!(err.contains("invalid secret path"), "{err}");
    let (code, out, err) = hydrate(dir.path(), &["--config", cfg, "--secrets", "apps/web/prod", "-"], "$DB_PASS $NOPE\n", &[]);
    assert_eq!((code, out.as_str()), (1, ""));
    assert!(err.contains("NOPE is not set"), "{err}");

    // The store's key gone: refused, saying what to do.
    std::fs::rename(dir.path().join("data/secrets.key"), dir.path().join("moved.key")).unwrap();
    let (code, _, err) = hydrate(dir.path(), &["--config", cfg, "--secrets", "apps/web/prod", "-"], template, &[]);
    assert_eq!(code, 2);
    assert!(err.contains("key is missing"), "{err}");

    let mut check = canary.check();
    check.text("stderr", &err).file(&store);
    check.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hydrate_reads_openbao() {
    let Some(addr) = require("OpenBao", std::env::var("NOVA_TEST_VAULT_ADDR").ok(), "run the tests through scripts/test") else { return };
    let dir = tempfile::tempdir().unwrap();
    let canary = Canary::new();
    let prefix = format!("nova-test-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let toml = format!("[secrets]\ntype = \"vault\"\naddress = \"{addr}\"\nprefix = \"{prefix}\"\nauth = {{ method = \"token\", token = {{ env = \"NOVA_TEST_VAULT_TOKEN\" }} }}\n");
    let cfg = write_file(dir.path(), "nova.toml", &toml);
    let config = nova::config::Config::load(Some(&cfg), std::iter::empty()).unwrap();
    put(&config.secrets, "apps/web/prod", &[("API_KEY", canary.value())]).await;
    let cfg = cfg.to_str().unwrap();
    let (code, out, err) = hydrate(dir.path(), &["--config", cfg, "--secrets", "apps/web/prod", "-"], "key: ${API_KEY}\n", &[]);
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(out, format!("key: {}\n", canary.value()));
    let (code, out, err) = hydrate(dir.path(), &["--config", cfg, "--secrets", "apps/web/prod", "--dry-run", "-"], "key: ${API_KEY}\n", &[]);
    assert_eq!((code, out.as_str()), (0, "API_KEY (1:6): from secret store apps/web/prod\n"));
    let mut check = canary.check();
    check.text("dry-run output", &out).text("stderr", &err);
    check.assert_clean();
}
