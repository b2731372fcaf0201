//! SSH-key team credentials against a real OpenSSH server (`start_sshd` in
//! scripts/lib/services.sh: sshd with git-shell, a read-only and a read-write key, a pinned
//! host key): registration checks the key with `git ls-remote` over ssh:// and scp-like URLs
//! and proves it read-only with a refused `git push --dry-run`; a passphrase-protected key is
//! taken with its passphrase (and stored decrypted); a wrong key, a protected key without its
//! passphrase or with a wrong one, an unknown or changed host key are refused with the field named
//! and no secret; a real local build clones over SSH with the team's key, which lives in a
//! 0600 file for that clone only. The machine's SSH agent (holding a key the server accepts)
//! is never used. The key's text appears in no log, response, database table or file,
//! `/metrics`, or argv (Nova's children's and ssh's own).

mod support;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::{Value, json};
use support::canary::{self, Canary};
use support::client::Client;
use support::registry::{Auth, TestRegistry};
use support::sshd::{SshServer, git, new_key};
use support::*;


/// What every test of this binary shares, set up once before any of them starts a child:
/// `ssh` on PATH is a wrapper that records, for each run, its arguments and the mode of the
/// identity file it was given, then runs the real ssh; and `SSH_AUTH_SOCK` names the test
/// agent, which holds a key the server lets in — so a git that used the machine's agent
/// instead of the team's key would get through.
struct Machine {
    ssh_log: PathBuf,
    _dir: tempfile::TempDir,
}

fn machine() -> &'static Machine {
    static MACHINE: OnceLock<Machine> = OnceLock::new();
    MACHINE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let ssh_log = dir.path().join("ssh.log");
        let real = std::process::Command::new("sh").args(["-c", "command -v ssh"]).output().unwrap();
        let real = String::from_utf8_lossy(&real.stdout).trim().to_string();
        assert!(!real.is_empty(), "ssh is installed with openssh-client");
        let wrapper = format!(
            "#!/bin/sh\nprev=; key=-\nfor a in \"$@\"; do [ \"$prev\" = -i ] && key=\"$a\"; prev=\"$a\"; done\nmode=-; [ \"$key\" != - ] && mode=$(stat -c %a \"$key\")\nprintf '%s %s %s\\n' \"$mode\" \"$key\" \"$*\" >>'{log}'\nexec '{real}' \"$@\"\n",
            log = ssh_log.display()
        );
        let bin = write_file(dir.path(), "bin/ssh", &wrapper);
        std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let path = format!("{}:{}", bin.parent().unwrap().display(), std::env::var("PATH").unwrap_or_default());
        let agent = std::env::var("NOVA_TEST_SSHD_AGENT").expect("set with NOVA_TEST_SSHD_PORT");
        // Before any test of this binary starts a process or a thread of its own.
        unsafe {
            std::env::set_var("PATH", path);
            std::env::set_var("SSH_AUTH_SOCK", agent);
        }
        Machine { ssh_log, _dir: dir }
    })
}

/// The ssh runs recorded so far that name `repository`: (mode of the identity file, its
/// path, the arguments).
fn ssh_runs(machine: &Machine, repository: &Path) -> Vec<(String, String, String)> {
    let log = std::fs::read_to_string(&machine.ssh_log).unwrap_or_default();
    let name = repository.file_name().unwrap().to_str().unwrap();
    log.lines()
        .filter(|l| l.contains(name))
        .map(|l| {
            let mut parts = l.splitn(3, ' ');
            (parts.next().unwrap().to_string(), parts.next().unwrap().to_string(), parts.next().unwrap_or("").to_string())
        })
        .collect()
}

/// The canaries of a private key: its text as registered, and each line of its body after
/// the first two (which hold the key type and the public key): the private part.
fn key_canaries(key: &str) -> Vec<Canary> {
    let body: Vec<&str> = key.lines().filter(|l| !l.starts_with("-----")).collect();
    let mut out = vec![Canary::of(key.trim())];
    out.extend(body.iter().skip(2).filter(|l| l.len() >= 16).map(|l| Canary::of(l)));
    out
}

/// `key` (without a passphrase) protected with `passphrase`, as `ssh-keygen -p` writes it.
fn encrypted(key: &str, passphrase: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("id");
    std::fs::write(&file, key).unwrap();
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let out = std::process::Command::new("ssh-keygen").args(["-q", "-p", "-P", "", "-N", passphrase, "-f"]).arg(&file).output().unwrap();
    assert!(out.status.success(), "ssh-keygen -p: {}", String::from_utf8_lossy(&out.stderr));
    std::fs::read_to_string(file).unwrap()
}

fn ssh_key(repositories: &[&str], key: &str) -> Value {
    json!({ "kind": "ssh-key", "repositories": repositories, "description": "read-only deploy key", "secret": key })
}

/// Nova on the test catalog, SSH host keys pinned to `known_hosts`.
async fn nova(dir: tempfile::TempDir, git_url: &str, registry: &str, known_hosts: PathBuf) -> TestApp {
    let file = write_file(dir.path(), "catalog.yaml", &two_teams_catalog(git_url, registry));
    let insecure = registry.to_string();
    let configure = move |c: &mut nova::config::Config| {
        c.builds.ssh_known_hosts = Some(known_hosts);
        c.builds.insecure_registries = vec![insecure];
    };
    spawn_app_with(Backend::Sqlite, Options { locations: vec![file.display().to_string()], dir: Some(dir), configure: Some(Box::new(configure)), ..Default::default() }).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_checks_the_key_over_ssh_and_pins_the_host_key() {
    let logs = canary::capture_logs();
    let argv = nova::process::record_argv();
    let Some(server) = SshServer::require() else { return };
    let machine = machine();
    let repo = server.repository("register", &[("README", "hello over ssh\n")]);
    let other = server.repository("register-rw", &[]);
    let ssh_url = server.ssh_url(&repo);
    let Some(scp_url) = require("sshd on port 22 of a loopback address", server.scp_url(&repo), "start_sshd could not listen there") else { return };

    let dir = tempfile::tempdir().unwrap();
    let known_hosts = dir.path().join("known_hosts");
    let pinned = std::fs::read_to_string(&server.known_hosts).unwrap();
    std::fs::write(&known_hosts, &pinned).unwrap();
    let app = nova(dir, &ssh_url, "127.0.0.1:1", known_hosts.clone()).await;
    let alice = Client::new(&app, "alice").await;
    use reqwest::Method;
    let base = "/api/v1/teams/team-a/credentials";

    // The read-only key, on both URL forms of the same repository: readable, and the server
    // refuses git-receive-pack to it, so it is proven read-only.
    let (status, info) = alice.json(Method::PUT, &format!("{base}/deploy"), Some(&ssh_key(&[&ssh_url, &scp_url], &server.read_only_key))).await;
    assert_eq!(status, 201, "{info}");
    let expected = |url: &str, read_only: bool| json!({ "repository": url.trim_end_matches(".git"), "readable": true, "read_only": read_only });
    assert_eq!(info["checks"], json!([expected(&ssh_url, true), expected(&scp_url, true)]), "{info}");
    // The key that may push: readable, and the server would accept a push with it.
    let (status, info) = alice.json(Method::PUT, &format!("{base}/writer"), Some(&ssh_key(&[&server.ssh_url(&other)], &server.read_write_key))).await;
    assert_eq!(status, 201, "{info}");
    assert_eq!(info["checks"][0]["read_only"], false, "{info}");

    // A key the server does not know: refused naming the repository, in ssh's words. (The
    // agent of this machine holds a key the server knows; it must not be asked.)
    let stranger = new_key(&Canary::new().value().to_string(), None);
    let third = server.repository("register-stranger", &[]);
    let (status, problem) = alice.json(Method::PUT, &format!("{base}/stranger"), Some(&ssh_key(&[&server.ssh_url(&third)], &stranger))).await;
    assert_eq!(status, 400, "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.starts_with("repositories[0]: git ls-remote with this credential must succeed") && detail.contains("Permission denied"), "{detail}");
    // A passphrase-protected key, no passphrase: refused before any connection, naming the field.
    let locked = new_key("locked", Some("correct horse battery staple"));
    let (status, problem) = alice.json(Method::PUT, &format!("{base}/locked"), Some(&ssh_key(&[&server.ssh_url(&other)], &locked))).await;
    assert_eq!(status, 400, "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.starts_with("passphrase: is required"), "{detail}");
    // The read-only key under a passphrase: with the wrong one refused, with the right one
    // decrypted, checked over SSH like any key, and stored without its passphrase.
    let passphrase = Canary::new();
    let protected = encrypted(&server.read_only_key, passphrase.value());
    let fourth = server.repository("register-protected", &[]);
    let with = |p: &str| {
        let mut body = ssh_key(&[&server.ssh_url(&fourth)], &protected);
        body["passphrase"] = json!(p);
        body
    };
    let (status, problem) = alice.json(Method::PUT, &format!("{base}/protected"), Some(&with("not the passphrase"))).await;
    assert_eq!((status, problem["detail"].as_str()), (400, Some("passphrase: does not decrypt the key")), "{problem}");
    let (status, info) = alice.json(Method::PUT, &format!("{base}/protected"), Some(&with(passphrase.value()))).await;
    assert_eq!(status, 201, "{info}");
    assert_eq!(info["checks"], json!([{ "repository": server.ssh_url(&fourth).trim_end_matches(".git"), "readable": true, "read_only": true }]), "{info}");
    let stored = app.state.secrets.get(&nova::secrets::SecretPath::team("team-a", "credentials/protected").unwrap()).await.unwrap();
    assert!(stored.data.get("secret").is_some_and(|k| !k.expose().contains("aes256") && k.expose().contains("BEGIN OPENSSH PRIVATE KEY")), "kept decrypted");
    assert_eq!(stored.data.fields().collect::<Vec<_>>(), ["metadata", "secret"], "the secret and its metadata, no passphrase");
    let mut unneeded = ssh_key(&[&server.ssh_url(&fourth)], &server.read_only_key);
    unneeded["passphrase"] = json!("x");
    let (status, problem) = alice.json(Method::PUT, &format!("{base}/protected"), Some(&unneeded)).await;
    assert_eq!((status, problem["detail"].as_str()), (400, Some("passphrase: is only for a passphrase-protected key, and this one has none")), "{problem}");

    // The host key is pinned: a server whose key changed, or is not in the file, is refused
    // (a rotation is checked like a registration), and the credential is kept as it was.
    let impostor = new_key("impostor-host", None);
    let impostor_pub = public_key_of(&impostor);
    let changed: String = pinned.lines().map(|l| format!("{} {impostor_pub}\n", l.split(' ').next().unwrap())).collect();
    for (case, text) in [("changed", changed.as_str()), ("unknown", "")] {
        std::fs::write(&known_hosts, text).unwrap();
        let (status, problem) = alice.json(Method::PUT, &format!("{base}/deploy"), Some(&ssh_key(&[&ssh_url], &server.read_only_key))).await;
        assert_eq!(status, 400, "{case}: {problem}");
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.starts_with("repositories[0]:") && detail.contains("Host key verification failed"), "{case}: {detail}");
    }
    let (_, kept) = alice.json(Method::GET, &format!("{base}/deploy"), None).await;
    assert_eq!(kept["repositories"].as_array().map(Vec::len), Some(2), "a refused rotation changes nothing: {kept}");
    std::fs::write(&known_hosts, &pinned).unwrap();
    let (status, info) = alice.json(Method::PUT, &format!("{base}/deploy"), Some(&ssh_key(&[&ssh_url], &server.read_only_key))).await;
    assert_eq!(status, 200, "the pinned key again: {info}");

    // ssh got the key as a 0600 file, with IdentitiesOnly and no ssh_config; the file is gone.
    let runs = ssh_runs(machine, &repo);
    assert!(runs.len() >= 4, "{runs:?}");
    for (mode, key, args) in &runs {
        assert_eq!(mode, "600", "{key}: {args}");
        assert!(args.contains("IdentitiesOnly=yes") && args.contains("-F /dev/null"), "{args}");
        assert!(!Path::new(key).exists(), "{key} is removed after use");
    }

    let bodies = alice.bodies.lock().unwrap().clone();
    let ssh_argv = std::fs::read_to_string(&machine.ssh_log).unwrap_or_default();
    let secrets = [key_canaries(&server.read_only_key), key_canaries(&server.read_write_key), key_canaries(&stranger), key_canaries(&protected), vec![passphrase]];
    for c in secrets.iter().flatten() {
        let mut check = c.check();
        check.logs(&logs).bodies(&bodies).argv(&argv).metrics(&app).await;
        check.database(&app.state.db).await.sqlite_files(&app.database_url());
        check.text("ssh's argv", &ssh_argv);
        check.assert_clean();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_build_clones_over_ssh_with_the_teams_key_only() {
    let logs = canary::capture_logs();
    let argv = nova::process::record_argv();
    let Some(server) = SshServer::require() else { return };
    let machine = machine();
    let buildah = std::process::Command::new("sh").args(["-c", "command -v buildah"]).output().ok().filter(|o| o.status.success()).map(|_| "buildah".to_string());
    if require("buildah", buildah, "apt-get install buildah").is_none() {
        return;
    }
    let Some(registry) = TestRegistry::start(Auth::Anonymous).await else { return };
    let repo = server.repository("build", &[("Dockerfile", "FROM scratch\nCOPY hello.txt /hello.txt\n"), ("hello.txt", "cloned over ssh\n")]);
    let head = git(&repo, &["rev-parse", "main"]);
    let ssh_url = server.ssh_url(&repo);
    let host = registry.url.trim_start_matches("http://").to_string();
    let app = nova(tempfile::tempdir().unwrap(), &ssh_url, &host, server.known_hosts.clone()).await;
    let alice = Client::new(&app, "alice").await;
    let bob = Client::new(&app, "bob").await;
    use reqwest::Method;

    let (status, text) = alice.send(Method::PUT, "/api/v1/teams/team-a/credentials/deploy", Some(&ssh_key(&[&ssh_url], &server.read_only_key))).await;
    assert_eq!(status, 201, "{text}");
    // The default tag names the commit main points at, asked over SSH with the team's key.
    let (status, build) = alice.json(Method::POST, "/api/v1/components/svc/builds", Some(&json!({ "gitRef": "main", "dockerfile": "Dockerfile" }))).await;
    assert_eq!(status, 201, "{build}");
    assert_eq!(build["gitCommit"], head.as_str(), "{build}");
    let (done, log) = alice.finished(build["id"].as_str().unwrap()).await;
    assert_eq!(done["state"], "succeeded", "{done}\n{log}");
    assert!(log.contains("[nova] using team team-a's git credential deploy"), "{log}");

    // Team B's component names the same repository; no credential of team B covers it, and
    // neither the agent nor any key of the machine stands in: its clone fails.
    let (status, theirs) = bob.json(Method::POST, "/api/v1/components/theirs/builds", Some(&json!({ "gitRef": "main", "dockerfile": "Dockerfile", "tag": "stolen" }))).await;
    assert_eq!(status, 201, "{theirs}");
    let (done, log) = bob.finished(theirs["id"].as_str().unwrap()).await;
    assert_eq!(done["state"], "failed", "{done}\n{log}");
    assert!(log.contains("no git credential of the owning team covers"), "{log}");

    // Every ssh run for this repository: team A's with the key in a 0600 file, removed since;
    // team B's with no key at all (and no agent: IdentitiesOnly).
    let runs = ssh_runs(machine, &repo);
    let (with_key, without): (Vec<_>, Vec<_>) = runs.iter().partition(|(_, key, _)| key != "-");
    assert!(with_key.len() >= 2, "the ls-remote of the default tag and the clone: {runs:?}");
    for (mode, key, args) in &with_key {
        assert_eq!(mode, "600", "{key}: {args}");
        assert!(args.contains("IdentitiesOnly=yes") && !Path::new(key).exists(), "{key}: {args}");
    }
    assert!(!without.is_empty(), "team B's clone ran ssh: {runs:?}");
    assert!(without.iter().all(|(_, _, args)| args.contains("IdentityFile=/dev/null") && args.contains("IdentitiesOnly=yes")), "{without:?}");

    let recorded = format!("{:?}", argv.recorded());
    assert!(recorded.contains("clone"), "{recorded}");
    let mut bodies = alice.bodies.lock().unwrap().clone();
    bodies.extend(bob.bodies.lock().unwrap().clone());
    let ssh_argv = std::fs::read_to_string(&machine.ssh_log).unwrap_or_default();
    for c in key_canaries(&server.read_only_key) {
        let mut check = c.check();
        check.logs(&logs).bodies(&bodies).argv(&argv).metrics(&app).await;
        check.database(&app.state.db).await.sqlite_files(&app.database_url());
        check.text("ssh's argv", &ssh_argv);
        check.assert_clean();
    }
}

/// The public key (`type base64`) of a private key.
fn public_key_of(private: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "id", private);
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let out = std::process::Command::new("ssh-keygen").arg("-y").arg("-f").arg(&file).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    text.split(' ').take(2).collect::<Vec<_>>().join(" ").trim().to_string()
}
