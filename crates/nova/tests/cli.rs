//! The `nova` binary as a user runs it: `catalog validate`, `serve --demo`, configuration errors.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

fn nova() -> Command {
    Command::new(env!("CARGO_BIN_EXE_nova"))
}

#[test]
fn validate_accepts_the_example_catalog() {
    let out = nova().args(["catalog", "validate"]).arg(example_catalog()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stderr).contains("48 entities, 0 errors"));
}

#[test]
fn validate_reports_each_error_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "a.yaml", &format!("{}---\napiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata: {{name: b}}\nspec: {{type: service, lifecycle: production}}\n", component_yaml("a", "team")));
    let out = nova().current_dir(dir.path()).args(["catalog", "validate", "a.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.trim(), "a.yaml:2: spec.owner: is required and must be a non-empty string");
    let out = nova().current_dir(dir.path()).args(["catalog", "validate", "--output", "json", "a.yaml"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(v["entities"], 1);
    assert_eq!(v["errors"][0]["field"], "spec.owner");
    assert_eq!(v["errors"][0]["document"], 2);
}

#[test]
fn unknown_config_keys_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_file(dir.path(), "nova.toml", "[server]\nlisten = \"127.0.0.1:0\"\nlistn = 1\n");
    let out = nova().args(["serve", "--config"]).arg(&cfg).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("server.listn") || err.contains("listn"), "{err}");
    let out = nova().args(["serve"]).env("NOVA_DATABASE__URL", "mysql://x").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("database.url"));
}

#[test]
fn serve_demo_answers_and_logs_json_with_request_ids() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    // --demo serves ./examples/catalog, so run from the repository root with the data dir elsewhere.
    let root = example_catalog().join("../..");
    let mut child = nova()
        .current_dir(&root)
        .args(["serve", "--demo", "--listen", &format!("127.0.0.1:{port}"), "--database-url"])
        .arg(format!("sqlite://{}/nova.db", dir.path().display()))
        .env("RUST_LOG", "nova=debug,info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let ready = loop {
        if let Ok(r) = reqwest::blocking::get(format!("{base}/ready")) {
            if r.status() == 200 {
                break true;
            }
        }
        if started.elapsed() > Duration::from_secs(20) {
            break false;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let page = reqwest::blocking::get(format!("{base}/")).map(|r| r.text().unwrap_or_default()).unwrap_or_default();
    let r = reqwest::blocking::Client::new().get(format!("{base}/api/catalog/entities/by-name/component/default/nova")).header("x-request-id", "cli-test-42").send().unwrap();
    assert_eq!(r.status(), 200);
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let status = child.wait().unwrap();
    let lines: Vec<String> = BufReader::new(child.stdout.take().unwrap()).lines().map_while(Result::ok).collect();
    assert!(ready, "never ready; log:\n{}", lines.join("\n"));
    assert!(status.success(), "a SIGTERM stops Nova cleanly");
    assert!(page.contains("Demo mode"), "the demo banner is shown");
    for line in &lines {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|_| panic!("not a JSON log line: {line}"));
    }
    assert!(lines.iter().any(|l| l.contains("Nova is serving")));
    let request_lines: Vec<&String> = lines.iter().filter(|l| l.contains("cli-test-42")).collect();
    assert!(!request_lines.is_empty(), "the request's log line carries its id:\n{}", lines.join("\n"));
}

#[test]
fn policy_check_and_hydrate_are_subcommands() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_file(dir.path(), "deploy.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          image: nginx:latest\n");
    let out = nova().args(["policy", "check"]).arg(&manifest).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "Enforce rules fail");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Deployment/web disallow-latest-tag"), "{stdout}");
    let template = write_file(dir.path(), "t.txt", "host=${HOST}\n");
    let out = nova().args(["hydrate"]).arg(&template).env("HOST", "db.internal").output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "host=db.internal\n");
    let out = nova().args(["hydrate"]).arg(&template).env_remove("HOST").output().unwrap();
    assert!(!out.status.success());
}

/// `nova credentials`: the secret comes from standard input and is printed nowhere (nor an SSH
/// key's passphrase, read from a file); add refuses an existing name, rotate a missing one;
/// every change is audited.
#[test]
fn credentials_are_managed_from_the_command_line_without_echoing_the_secret() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_file(dir.path(), "nova.toml", &format!("[database]\nurl = \"sqlite://{0}/nova.db\"\n\n[secrets]\ntype = \"file\"\npath = \"{0}/secrets.enc\"\n\n# git.example.com is not reachable from the tests\n[builds]\ncheck_credentials = false\n", dir.path().display()));
    let secret = format!("canary-{}", uuid::Uuid::new_v4().simple());
    let run = |args: &[&str], stdin: Option<&str>| {
        let mut child = nova().arg("credentials").args(args).arg("--config").arg(&cfg).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            input.write_all(s.as_bytes()).unwrap();
        }
        drop(input);
        let out = child.wait_with_output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(!text.contains(&secret), "the secret was printed: {text}");
        (out.status.success(), text)
    };
    let add = ["add", "payments", "git", "--kind", "https-token", "--repo", "https://git.example.com/p/app.git", "--username", "ci", "--secret-file", "-"];
    let (ok, text) = run(&add, Some(&format!("{secret}\n")));
    assert!(ok && text.contains("registered"), "{text}");
    let (ok, text) = run(&add, Some(&secret));
    assert!(!ok && text.contains("use `nova credentials rotate`"), "{text}");
    let mut rotate = add;
    rotate[0] = "rotate";
    let (ok, text) = run(&rotate, Some(&secret));
    assert!(ok && text.contains("rotated"), "{text}");
    let (ok, text) = run(&["list", "payments"], None);
    assert!(ok && text.contains("https://git.example.com/p/app") && text.contains("https-token"), "{text}");
    let (ok, text) = run(&["revoke", "payments", "git"], None);
    assert!(ok && text.contains("revoked"), "{text}");
    let (ok, text) = run(&["rotate", "payments", "git", "--kind", "https-token", "--repo", "https://git.example.com/p/app", "--username", "ci", "--secret-file", "-"], Some(&secret));
    assert!(!ok && text.contains("has no credential"), "{text}");
    let (ok, text) = run(&["add", "payments", "bad", "--kind", "https-token", "--repo", "file:///etc", "--username", "ci", "--secret-file", "-"], Some(&secret));
    assert!(!ok && text.contains("repositories[0]"), "{text}");
    // A passphrase-protected key with its passphrase from a file, the key from standard input.
    let key_dir = tempfile::tempdir().unwrap();
    let key_file = key_dir.path().join("id");
    let made = std::process::Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-C", "cli", "-N", &secret, "-f"]).arg(&key_file).output().unwrap();
    assert!(made.status.success());
    let key = std::fs::read_to_string(&key_file).unwrap();
    let passphrase = write_file(dir.path(), "passphrase", &format!("{secret}\n"));
    let wrong = write_file(dir.path(), "wrong", "not it\n");
    let ssh = |file: &std::path::Path| {
        let file = file.display().to_string();
        run(&["add", "payments", "deploy", "--kind", "ssh-key", "--repo", "ssh://git@git.example.com/p/app.git", "--secret-file", "-", "--passphrase-file", &file], Some(&key))
    };
    let (ok, text) = ssh(&wrong);
    assert!(!ok && text.contains("passphrase: does not decrypt the key"), "{text}");
    let (ok, text) = ssh(&passphrase);
    assert!(ok && text.contains("registered"), "{text}");
    let (ok, text) = run(&["add", "payments", "x", "--kind", "ssh-key", "--repo", "ssh://git@git.example.com/p/x.git", "--secret-file", "-", "--passphrase-file", "-"], Some(&key));
    assert!(!ok && text.contains("cannot both be standard input"), "{text}");
    let db = std::fs::read(dir.path().join("nova.db")).unwrap();
    assert!(!String::from_utf8_lossy(&db).contains(&secret));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_copies_a_live_sqlite_database_and_refuses_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/nova.db", dir.path().display());
    let db = nova::storage::Db::connect(&url, 2).await.unwrap();
    db.migrate().await.unwrap();
    sqlx::query("CREATE TABLE backup_probe (x TEXT)").execute(db.pool()).await.unwrap();
    sqlx::query("INSERT INTO backup_probe VALUES ('kept')").execute(db.pool()).await.unwrap();
    let to = dir.path().join("copy.db");
    // The database stays open (as under a running Nova) while the copy is taken.
    let out = nova().args(["backup", "--database-url", &url, "--to"]).arg(&to).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let copy = nova::storage::Db::connect(&format!("sqlite://{}", to.display()), 1).await.unwrap();
    let kept: String = sqlx::query_scalar("SELECT x FROM backup_probe").fetch_one(copy.pool()).await.unwrap();
    assert_eq!(kept, "kept");
    assert!(copy.migration_status().await.unwrap().pending.is_empty(), "the copy is migrated like the original");
    let again = nova().args(["backup", "--database-url", &url, "--to"]).arg(&to).output().unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("does not overwrite"));
    let pg = nova().args(["backup", "--database-url", "postgres://nova@127.0.0.1:1/nova", "--to"]).arg(dir.path().join("pg.db")).output().unwrap();
    assert_eq!(pg.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&pg.stderr).contains("pg_dump"));
}
