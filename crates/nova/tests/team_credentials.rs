//! Team credentials through the API and the console: only the team's members (and its
//! sub-teams' members) see and change them, every change is audited, the build lane finds the
//! owning team's credential, and the value appears in no response, log line, audit record or
//! database row.

mod support;

use nova::secrets::credentials;
use nova_domain::EntityRef;
use serde_json::json;
use support::canary::{self, Canary};
use support::*;

/// A request as `user` (an API token).
struct As {
    token: String,
}

async fn as_user(app: &TestApp, user: &str) -> As {
    let user = EntityRef::new("user", "default", user);
    let (token, _) = app.state.auth.tokens.create(&user, "test", None, true).await.unwrap();
    As { token: token.expose().clone() }
}

impl As {
    async fn send(&self, app: &TestApp, method: reqwest::Method, path: &str, body: Option<serde_json::Value>, bodies: &mut Vec<String>) -> (u16, String) {
        let mut req = app.client.request(method, app.url(path)).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        bodies.push(text.clone());
        (status, text)
    }
}

fn token_credential(repos: &[&str], secret: &str) -> serde_json::Value {
    json!({ "kind": "https-token", "username": "ci-bot", "repositories": repos, "description": "read-only deploy token", "secret": secret })
}

const REPO: &str = "https://git.example.com/payments/payment-service.git";

/// Nova on the example catalog without the registration check: its repositories
/// (git.example.com) cannot be reached from the tests; build_credentials.rs tests the check.
async fn spawn_unchecked(backend: Backend) -> TestApp {
    let configure = |c: &mut nova::config::Config| c.builds.check_credentials = false;
    spawn_app_with(backend, Options { locations: vec![example_catalog().display().to_string()], configure: Some(Box::new(configure)), ..Default::default() }).await
}

on_both_backends! {
    async fn only_the_team_manages_its_credentials_and_the_value_leaks_nowhere(backend: Backend) {
        use reqwest::Method;
        let logs = canary::capture_logs();
        let app = spawn_unchecked(backend).await;
        let (first, second) = (Canary::new(), Canary::new());
        let maria = as_user(&app, "maria.garcia").await; // payments
        let alex = as_user(&app, "alex.kim").await; // payments-core, a sub-team of payments
        let pat = as_user(&app, "ravi.singh").await; // data-platform: another team
        let mut bodies = Vec::new();
        let base = "/api/v1/teams/payments/credentials";

        // Registration by a member: 201 with metadata only.
        let (status, text) = maria.send(&app, Method::PUT, &format!("{base}/git"), Some(token_credential(&[REPO], first.value())), &mut bodies).await;
        assert_eq!(status, 201, "{text}");
        let info: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(info["repositories"], json!(["https://git.example.com/payments/payment-service"]));
        assert_eq!(info["created_by"], "user:default/maria.garcia");

        // A sub-team member sees it; another team's member can neither see, rotate nor revoke it.
        let (status, text) = alex.send(&app, Method::GET, base, None, &mut bodies).await;
        assert_eq!(status, 200, "{text}");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&text).unwrap().as_array().unwrap().len(), 1);
        for (method, body) in [(Method::GET, None), (Method::PUT, Some(token_credential(&[REPO], second.value()))), (Method::DELETE, None)] {
            let (status, text) = pat.send(&app, method.clone(), &format!("{base}/git"), body, &mut bodies).await;
            assert_eq!(status, 403, "{method} {text}");
            assert!(text.contains("payments"), "{text}");
        }
        let (status, _) = pat.send(&app, Method::GET, base, None, &mut bodies).await;
        assert_eq!(status, 403);

        // Refusals name the field and the rule.
        let (status, text) = maria.send(&app, Method::PUT, &format!("{base}/other"), Some(token_credential(&["file:///srv/repo"], first.value())), &mut bodies).await;
        assert_eq!(status, 400);
        assert!(text.contains("repositories[0]") && text.contains("file"), "{text}");
        let (status, text) = maria.send(&app, Method::PUT, &format!("{base}/other"), Some(token_credential(&[REPO], first.value())), &mut bodies).await;
        assert_eq!(status, 409, "{text}");
        assert!(text.contains("already covered"), "{text}");
        let (status, text) = maria.send(&app, Method::PUT, &format!("{base}/other"), Some(json!({ "kind": "https-token", "repositories": [REPO], "secret": 12345, "extra": first.value() })), &mut bodies).await;
        assert_eq!(status, 400, "{text}");

        // Rotation keeps the creator and records who rotated.
        let (status, text) = alex.send(&app, Method::PUT, &format!("{base}/git"), Some(token_credential(&[REPO], second.value())), &mut bodies).await;
        assert_eq!(status, 200, "{text}");
        let info: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!((info["created_by"].as_str(), info["rotated_by"].as_str()), (Some("user:default/maria.garcia"), Some("user:default/alex.kim")));

        // The build lane: a payments-core component gets the payments credential (nearest
        // ancestor with one); a platform component gets none, whatever repository it asks for.
        let snap = app.state.catalog.snapshot();
        let found = credentials::for_component(app.state.secrets.as_ref(), &snap, &EntityRef::new("component", "default", "payment-service"), REPO).await.unwrap().expect("found through the parent team");
        assert_eq!((found.info.team.as_str(), found.info.name.as_str()), ("payments", "git"));
        assert_eq!(found.secret.expose(), second.value());
        let platform = EntityRef::new("component", "default", "nova"); // owned by group:platform
        assert!(credentials::for_component(app.state.secrets.as_ref(), &snap, &platform, REPO).await.unwrap().is_none());

        // Revocation.
        let (status, _) = maria.send(&app, Method::DELETE, &format!("{base}/git"), None, &mut bodies).await;
        assert_eq!(status, 204);
        let (status, _) = maria.send(&app, Method::GET, &format!("{base}/git"), None, &mut bodies).await;
        assert_eq!(status, 404);

        // Audited: registration, rotation, revocation and each denial, without the value.
        let audit: Vec<String> = canary::dump_database(&app.state.db).await.into_iter().filter(|(t, _)| t.contains("audit")).flat_map(|(_, rows)| rows).collect();
        let all = audit.join("\n");
        for action in ["credentials.register", "credentials.rotate", "credentials.revoke", "authz.deny.manage-credentials", "authz.deny.read-sensitive"] {
            assert!(all.contains(action), "no {action} in the audit log");
        }

        for c in [&first, &second] {
            let mut check = c.check();
            check.logs(&logs).bodies(&bodies).metrics(&app).await;
            check.database(&app.state.db).await.sqlite_files(&app.database_url());
            check.assert_clean();
        }
    }
}

impl As {
    /// A console form post, from Nova's own origin.
    async fn form(&self, app: &TestApp, path: &str, fields: &[(&str, &str)], bodies: &mut Vec<String>) -> (u16, String, Option<String>) {
        let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
        let resp = app.client.post(app.url(path)).bearer_auth(&self.token).header("origin", &app.base).header("content-type", "application/x-www-form-urlencoded").body(body).send().await.unwrap();
        let status = resp.status().as_u16();
        let location = resp.headers().get("location").map(|v| v.to_str().unwrap().to_string());
        let text = resp.text().await.unwrap();
        bodies.push(text.clone());
        (status, text, location)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_registers_rotates_and_revokes_without_showing_the_value() {
    use reqwest::Method;
    let logs = canary::capture_logs();
    let app = spawn_unchecked(Backend::Sqlite).await;
    let canary = Canary::new();
    let maria = as_user(&app, "maria.garcia").await;
    let pat = as_user(&app, "ravi.singh").await;
    let mut bodies = Vec::new();
    let page = "/teams/payments/credentials";

    let (status, html) = maria.send(&app, Method::GET, page, None, &mut bodies).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("This team has no credentials") && html.contains("name=\"secret\""), "{html}");
    let (status, _) = pat.send(&app, Method::GET, page, None, &mut bodies).await;
    assert_eq!(status, 403);

    let fields = [("name", "git"), ("kind", "https-token"), ("username", "ci-bot"), ("repositories", REPO), ("description", "deploy token"), ("secret", canary.value())];
    let (status, _, location) = maria.form(&app, page, &fields, &mut bodies).await;
    assert_eq!((status, location.as_deref()), (303, Some("/teams/payments/credentials?done=registered")));
    let (_, html) = maria.send(&app, Method::GET, "/teams/payments/credentials?done=registered", None, &mut bodies).await;
    assert!(html.contains("Credential registered") && html.contains("https://git.example.com/payments/payment-service"), "{html}");

    // A refusal shows the rule and keeps the fields, but not the secret.
    let bad = [("name", "other"), ("kind", "https-token"), ("username", "ci-bot"), ("repositories", "ext::sh -c id"), ("secret", canary.value())];
    let (status, html, _) = maria.form(&app, page, &bad, &mut bodies).await;
    assert_eq!(status, 400, "{html}");
    assert!(html.contains("repositories[0]") && html.contains("ext::sh -c id"), "{html}");

    let (status, _, _) = pat.form(&app, page, &fields, &mut bodies).await;
    assert_eq!(status, 403);
    let (status, _, _) = pat.form(&app, &format!("{page}/git/revoke"), &[], &mut bodies).await;
    assert_eq!(status, 403);

    let (status, _, location) = maria.form(&app, page, &fields, &mut bodies).await;
    assert_eq!((status, location.as_deref()), (303, Some("/teams/payments/credentials?done=rotated")));
    let (status, _, location) = maria.form(&app, &format!("{page}/git/revoke"), &[], &mut bodies).await;
    assert_eq!((status, location.as_deref()), (303, Some("/teams/payments/credentials?done=revoked")));

    // The group page links to it.
    let (_, html) = maria.send(&app, Method::GET, "/catalog/default/group/payments", None, &mut bodies).await;
    assert!(html.contains("href=\"/teams/payments/credentials\""), "{html}");

    let mut check = canary.check();
    check.logs(&logs).bodies(&bodies).metrics(&app).await;
    check.database(&app.state.db).await.sqlite_files(&app.database_url());
    check.assert_clean();
}

/// A real clone over smart HTTP with basic auth: the token reaches git through GIT_ASKPASS and
/// the child's environment only; without it, or towards a bad host, the clone fails; in no
/// case is the token in a child's argv or a log line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_reaches_one_git_clone_and_no_argv() {
    use nova::secrets::credentials::{CredentialInfo, CredentialKind, TeamCredential};
    let logs = canary::capture_logs();
    let argv = nova::process::record_argv();
    let Some(url) = require("git HTTP server", std::env::var("NOVA_TEST_GIT_HTTP_URL").ok(), "scripts/test starts it with start_git_http") else { return };
    let root = std::path::PathBuf::from(std::env::var("NOVA_TEST_GIT_HTTP_ROOT").expect("set with the URL"));
    let password = std::env::var("NOVA_TEST_GIT_HTTP_PASSWORD").expect("set with the URL");

    // A private repository with one commit.
    let name = format!("private/cred-{}", uuid::Uuid::new_v4().simple());
    let work = tempfile::tempdir().unwrap();
    let git = |dir: &std::path::Path, args: &[&str]| {
        let out = std::process::Command::new("git").args(["-c", "user.name=T", "-c", "user.email=t@example.com", "-c", "init.defaultBranch=main"]).args(args).current_dir(dir).output().unwrap();
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    git(work.path(), &["init", "--quiet"]);
    std::fs::write(work.path().join("README"), "hello").unwrap();
    git(work.path(), &["add", "-A"]);
    git(work.path(), &["commit", "--quiet", "-m", "x"]);
    let bare = root.join(format!("{name}.git"));
    std::fs::create_dir_all(bare.parent().unwrap()).unwrap();
    git(work.path(), &["clone", "--quiet", "--bare", ".", bare.to_str().unwrap()]);

    let info = CredentialInfo {
        team: "payments".into(),
        name: "git".into(),
        kind: CredentialKind::HttpsToken,
        repositories: vec![format!("{url}/{name}")],
        username: Some("nova-test".into()),
        description: String::new(),
        created_by: "user:default/maria.garcia".into(),
        created_at_ms: 0,
        rotated_by: None,
        rotated_at_ms: None,
        checks: Vec::new(),
        last_use: None,
    };
    let credential = TeamCredential { info, secret: nova_domain::Sensitive::new(password.clone()) };
    let dest = tempfile::tempdir().unwrap();
    let out = clone_with(&dest.path().join("without"), format!("{url}/{name}.git"), None).await;
    assert!(!out.status.success(), "a private repository needs the credential");
    let out = clone_with(&dest.path().join("with"), format!("{url}/{name}.git"), Some(&credential)).await;
    assert!(out.status.success(), "clone with the team credential: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_to_string(dest.path().join("with/README")).unwrap(), "hello");
    let out = clone_with(&dest.path().join("bad-host"), "http://127.0.0.1:9/nowhere.git".into(), Some(&credential)).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();

    let recorded = format!("{:?}", argv.recorded());
    assert!(recorded.contains("clone"), "{recorded}");
    for (place, text) in [("argv", recorded), ("logs", logs.text()), ("git's stderr", stderr)] {
        assert!(!text.contains(&password), "the token is in {place}");
    }
}

/// `git clone -- FROM TARGET`, with the credential materialised for this child only.
async fn clone_with(target: &std::path::Path, from: String, with: Option<&nova::secrets::credentials::TeamCredential>) -> std::process::Output {
    let mut cmd = nova::process::command("git");
    cmd.args(["clone", "--quiet", "--", &from]).arg(target).env("GIT_CONFIG_NOSYSTEM", "1").env("HOME", target.parent().unwrap());
    let kept = with.map(|c| c.materialise(&mut cmd, None).unwrap());
    let out = cmd.output().await.unwrap();
    drop(kept);
    out
}
