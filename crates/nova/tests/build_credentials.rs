//! The local runner with the owning team's credentials, end to end through the HTTP API: a
//! private repository on a real git server (smart HTTP, password auth) and a registry that
//! needs a password, both reached with team A's credentials; team B's component naming the
//! same repository gets none; default tags name the commit a branch or tag points at; and the
//! secrets appear in no log line, response, database row, `/metrics` or child argv.

mod support;

use std::path::Path;

use serde_json::{Value, json};
use support::canary::{self, Canary};
use support::client::Client;
use support::registry::{Auth, PUSHER, TestRegistry};
use support::*;


fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git").arg("-C").arg(dir).args(["-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "init.defaultBranch=main"]).args(args).output().unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_owning_teams_credentials_clone_and_push_and_leak_nowhere() {
    let logs = canary::capture_logs();
    let argv = nova::process::record_argv();
    let Some(url) = require("git HTTP server", std::env::var("NOVA_TEST_GIT_HTTP_URL").ok(), "scripts/test starts it with start_git_http") else { return };
    if require("buildah", on_path("buildah"), "apt-get install buildah").is_none() {
        return;
    }
    let Some(registry) = TestRegistry::start(Auth::Basic).await else { return };
    let root = std::path::PathBuf::from(std::env::var("NOVA_TEST_GIT_HTTP_ROOT").expect("set with the URL"));
    let git_password = Canary::of(&std::env::var("NOVA_TEST_GIT_HTTP_PASSWORD").expect("set with the URL"));
    let registry_password = Canary::of(PUSHER.1);
    // A credential helper on the machine that would answer for any repository with the right
    // password: Nova must not let git ask it (team B's build must still fail to clone). This
    // binary has one test, so changing its environment affects nothing else.
    let home = tempfile::tempdir().unwrap();
    let helper = write_file(home.path(), "gitconfig", &format!("[credential]\n\thelper = \"!f() {{ echo username=nova-test; echo password={}; }}; f\"\n", git_password.value()));
    unsafe { std::env::set_var("GIT_CONFIG_GLOBAL", &helper) };

    // A private repository: a Dockerfile on main, an annotated tag, and a later commit on main.
    let work = tempfile::tempdir().unwrap();
    write_file(work.path(), "images/app/Dockerfile", "FROM scratch\nCOPY hello.txt /hello.txt\n");
    write_file(work.path(), "images/app/hello.txt", "hello from a private repository\n");
    git(work.path(), &["init", "--quiet"]);
    git(work.path(), &["add", "-A"]);
    git(work.path(), &["commit", "--quiet", "-m", "app"]);
    git(work.path(), &["tag", "-a", "v1.0", "-m", "release"]);
    let tagged = git(work.path(), &["rev-parse", "HEAD"]);
    write_file(work.path(), "images/app/hello.txt", "hello again\n");
    git(work.path(), &["commit", "--quiet", "-am", "again"]);
    let head = git(work.path(), &["rev-parse", "HEAD"]);
    let name = format!("private/build-{}", uuid::Uuid::new_v4().simple());
    let bare = root.join(format!("{name}.git"));
    std::fs::create_dir_all(bare.parent().unwrap()).unwrap();
    git(work.path(), &["clone", "--quiet", "--bare", ".", bare.to_str().unwrap()]);
    let git_url = format!("{url}/{name}.git");

    let host = registry.url.trim_start_matches("http://").to_string();
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "catalog.yaml", &two_teams_catalog(&git_url, &host));
    let insecure = host.clone();
    let configure = move |c: &mut nova::config::Config| c.builds.insecure_registries = vec![insecure];
    let app = spawn_app_with(Backend::Sqlite, Options { locations: vec![file.display().to_string()], dir: Some(dir), configure: Some(Box::new(configure)), ..Default::default() }).await;
    let alice = Client::new(&app, "alice").await;
    let bob = Client::new(&app, "bob").await;
    use reqwest::Method;

    // Team A registers its read-only git token and its registry push credential.
    let git_credential = json!({ "kind": "https-token", "username": "nova-test", "repositories": [git_url], "secret": git_password.value() });
    let wrong = json!({ "kind": "https-token", "username": "nova-test", "repositories": [git_url], "secret": "not-the-password" });
    let (status, problem) = alice.json(Method::PUT, "/api/v1/teams/team-a/credentials/git", Some(&wrong)).await;
    assert_eq!(status, 400, "registration checks the credential with git ls-remote: {problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.starts_with("repositories[0]: git ls-remote with this credential must succeed") && !detail.contains("not-the-password"), "{detail}");
    let (status, text) = alice.send(Method::PUT, "/api/v1/teams/team-a/credentials/git", Some(&git_credential)).await;
    assert_eq!(status, 201, "{text}");
    let registered: Value = serde_json::from_str(&text).unwrap();
    // The test server lets an authenticated user push, so the check says so.
    assert_eq!(registered["checks"], json!([{ "repository": git_url.trim_end_matches(".git"), "readable": true, "read_only": false }]), "{registered}");
    // Outside private/, the test server refuses every push: the check proves read-only there.
    let public = root.join(format!("public-{}.git", uuid::Uuid::new_v4().simple()));
    git(work.path(), &["clone", "--quiet", "--bare", ".", public.to_str().unwrap()]);
    let public_url = format!("{url}/{}", public.file_name().unwrap().to_str().unwrap());
    let read_only = json!({ "kind": "https-token", "username": "nova-test", "repositories": [public_url], "secret": git_password.value() });
    let (status, text) = alice.send(Method::PUT, "/api/v1/teams/team-a/credentials/public", Some(&read_only)).await;
    assert_eq!(status, 201, "{text}");
    assert!(text.contains("\"read_only\":true"), "{text}");
    let page = alice.send(Method::GET, "/teams/team-a/credentials", None).await.1;
    assert!(page.contains("readable, but the server accepts pushes with it"), "{page}");
    let push_credential = json!({ "kind": "registry", "username": host, "repositories": ["team-a/svc"], "secret": format!("{}:{}", PUSHER.0, PUSHER.1) });
    let (status, text) = alice.send(Method::PUT, "/api/v1/teams/team-a/credentials/push", Some(&push_credential)).await;
    assert_eq!(status, 201, "{text}");

    // Default tags: the commit the branch or tag names when the build is asked for.
    let (status, by_tag) = alice.json(Method::POST, "/api/v1/components/svc/builds", Some(&json!({ "gitRef": "v1.0", "dockerfile": "images/app/Dockerfile" }))).await;
    assert_eq!(status, 201, "{by_tag}");
    assert_eq!(by_tag["gitCommit"], tagged.as_str(), "an annotated tag is peeled to its commit");
    let (status, by_branch) = alice.json(Method::POST, "/api/v1/components/svc/builds", Some(&json!({ "gitRef": "main", "dockerfile": "images/app/Dockerfile" }))).await;
    assert_eq!(status, 201, "{by_branch}");
    assert_eq!(by_branch["gitCommit"], head.as_str());
    let tag = by_branch["tag"].as_str().unwrap();
    let (stamp, sha7) = tag.split_once('-').unwrap();
    assert!(stamp.len() == 16 && stamp.as_bytes()[8] == b'T' && stamp.ends_with('Z') && sha7 == &head[..7], "{tag}");
    let (status, problem) = alice.json(Method::POST, "/api/v1/components/svc/builds", Some(&json!({ "gitRef": "no-such-branch", "dockerfile": "images/app/Dockerfile" }))).await;
    assert_eq!(status, 400);
    assert!(problem["detail"].as_str().unwrap().starts_with("gitRef: names no branch or tag"), "{problem}");
    // Team B's component names the same repository, but no credential of team B covers it:
    // its default tag cannot be resolved, and its build cannot clone.
    let (status, problem) = bob.json(Method::POST, "/api/v1/components/theirs/builds", Some(&json!({ "gitRef": "main", "dockerfile": "images/app/Dockerfile" }))).await;
    assert_eq!(status, 400, "{problem}");
    assert!(problem["detail"].as_str().unwrap().starts_with("gitRef: cannot be resolved"), "{problem}");
    let (status, theirs) = bob.json(Method::POST, "/api/v1/components/theirs/builds", Some(&json!({ "gitRef": "main", "dockerfile": "images/app/Dockerfile", "tag": "stolen" }))).await;
    assert_eq!(status, 201, "{theirs}");

    // Both of team A's builds clone the private repository and push with the team's credential.
    for build in [&by_tag, &by_branch] {
        let (done, log) = alice.finished(build["id"].as_str().unwrap()).await;
        assert_eq!(done["state"], "succeeded", "{done}\n{log}");
        assert!(log.contains("[nova] using team team-a's git credential git") && log.contains("[nova] using team team-a's registry credential push"), "{log}");
        let manifest = reqwest::Client::new()
            .get(format!("{}/v2/team-a/svc/manifests/{}", registry.url, done["tag"].as_str().unwrap()))
            .basic_auth(PUSHER.0, Some(PUSHER.1))
            .header("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json")
            .send()
            .await
            .unwrap();
        assert_eq!(manifest.status(), 200);
        assert_eq!(manifest.headers()["docker-content-digest"].to_str().unwrap(), done["digest"].as_str().unwrap());
    }
    let (done, log) = bob.finished(theirs["id"].as_str().unwrap()).await;
    assert_eq!(done["state"], "failed", "{done}\n{log}");
    assert!(done["reason"].as_str().unwrap().contains("git clone failed"), "{done}");
    assert!(log.contains("no git credential of the owning team covers"), "{log}");
    assert!(!log.contains("using team"), "team B's build used no credential: {log}");

    // Every use is audited with the credential and the build, and the last use is listed.
    let uses = app.state.audit.query(&nova::audit::AuditQuery { action: Some("credentials.use".into()), limit: 100, ..Default::default() }).await.unwrap().0;
    assert_eq!(uses.len(), 4, "two builds, a clone and a push each");
    assert!(uses.iter().all(|e| e.target.starts_with("credential:team-a/") && e.details["build"].is_string()), "{uses:?}");
    let (_, listed) = alice.json(Method::GET, "/api/v1/teams/team-a/credentials", None).await;
    let used: Vec<&str> = listed.as_array().unwrap().iter().filter(|c| c["last_use"]["at_ms"].is_i64()).map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(used, ["git", "push"], "{listed}");

    // Nowhere: logs, responses (build logs and events included), database, metrics, argv.
    let (_, events) = alice.send(Method::GET, &format!("/api/v1/builds/{}/events", by_branch["id"].as_str().unwrap()), None).await;
    assert!(events.contains("\"state\":\"succeeded\""), "{events}");
    let mut bodies = alice.bodies.lock().unwrap().clone();
    bodies.extend(bob.bodies.lock().unwrap().clone());
    let recorded = format!("{:?}", argv.recorded());
    assert!(recorded.contains("--authfile") && recorded.contains("clone"), "{recorded}");
    for secret in [&git_password, &registry_password] {
        let mut check = secret.check();
        check.logs(&logs).bodies(&bodies).argv(&argv).metrics(&app).await;
        check.database(&app.state.db).await.sqlite_files(&app.database_url());
        check.assert_clean();
    }
    let leftovers: Vec<_> = std::fs::read_dir(app.dir.path().join("data/builds/work")).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    assert!(leftovers.is_empty(), "working directories are removed: {leftovers:?}");
}
