//! `nova login` as a user runs it against a running Nova: the token comes from standard input
//! (never an argument), is checked with the server, and is stored readable only by the user;
//! commands that call the API then use `--token`, `NOVA_TOKEN` or the stored login, in that
//! order, and never send a stored token to another server.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

use support::*;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `nova ARGS` with `XDG_CONFIG_HOME=config`, `stdin` on standard input and `env` set.
async fn nova(config: &std::path::Path, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nova"));
    cmd.args(args).env("XDG_CONFIG_HOME", config).env_remove("NOVA_TOKEN").env_remove("NOVA_SERVER").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    let out = child.wait_with_output().await.unwrap();
    Run { code: out.status.code(), stdout: String::from_utf8_lossy(&out.stdout).into(), stderr: String::from_utf8_lossy(&out.stderr).into() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_checks_and_stores_the_token_for_later_commands() {
    let app = spawn_app(Backend::Sqlite).await;
    let config = tempfile::tempdir().unwrap();
    let token = app.token_for("user:default/alex.kim").await;

    // Nothing stored yet: API commands say how to sign in.
    let r = nova(config.path(), &["build", "follow", "some-build", "--server", &app.base], "", &[]).await;
    assert_eq!(r.code, Some(2));
    assert!(r.stderr.contains("nova login"), "{}", r.stderr);

    // A refused token stores nothing.
    let forged = format!("nova_{}", "x".repeat(43));
    let r = nova(config.path(), &["login", "--server", &app.base], &format!("{forged}\n"), &[]).await;
    assert_eq!(r.code, Some(2), "{}", r.stdout);
    assert!(r.stderr.contains("refused the token (401 Unauthorized)"), "{}", r.stderr);
    assert!(!r.stderr.contains(&forged), "the token is never echoed");
    let stored = config.path().join("nova/login.json");
    assert!(!stored.exists());
    let r = nova(config.path(), &["login", "--server", &app.base], "not-a-token\n", &[]).await;
    assert!(r.stderr.contains("not a Nova API token"), "{}", r.stderr);

    // A good token is checked and stored, 0600 in a 0700 directory.
    let r = nova(config.path(), &["login", "--server", &format!("{}/", app.base)], &format!("{token}\n"), &[]).await;
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stdout.contains("Signed in to") && r.stdout.contains("as Alex Kim (user:default/alex.kim)"), "{}", r.stdout);
    assert!(!r.stdout.contains(&token) && !r.stderr.contains(&token));
    assert_eq!(std::fs::metadata(&stored).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(stored.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&stored).unwrap()).unwrap();
    assert_eq!((v["server"].as_str(), v["token"].as_str()), (Some(app.base.as_str()), Some(token.as_str())));

    // Later commands use it (the server answers 404 for a build that does not exist: the
    // token was accepted)...
    let r = nova(config.path(), &["build", "follow", "no-such-build"], "", &[]).await;
    assert_eq!(r.code, Some(2));
    assert!(r.stderr.contains("404"), "{}", r.stderr);
    // ...unless NOVA_TOKEN or --token says otherwise, in that order.
    let r = nova(config.path(), &["build", "follow", "no-such-build"], "", &[("NOVA_TOKEN", &forged)]).await;
    assert!(r.stderr.contains("401"), "NOVA_TOKEN wins over the stored login: {}", r.stderr);
    let r = nova(config.path(), &["build", "follow", "no-such-build", "--token", &token], "", &[("NOVA_TOKEN", &forged)]).await;
    assert!(r.stderr.contains("404"), "--token wins over NOVA_TOKEN: {}", r.stderr);
    // A stored token is never sent to another server.
    let r = nova(config.path(), &["build", "follow", "no-such-build", "--server", "http://127.0.0.1:9"], "", &[]).await;
    assert!(r.stderr.contains("no API token for http://127.0.0.1:9"), "{}", r.stderr);
}
