//! Git and URL catalog locations against real servers on this machine: git's own smart-HTTP
//! server (`git http-backend`, started by scripts/lib/services.sh `start_git_http`) and a small
//! HTTP server started here. Bad input — unreachable hosts, wrong refs, missing paths, HTML,
//! oversized files, redirect loops, slow servers, metadata addresses — becomes a location error,
//! and a location that fails keeps its entities until a read succeeds.

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::Value;
use support::*;

/// The git server scripts/test started: base URL, repository root, password of `private/`.
fn git_server() -> Option<(String, std::path::PathBuf, String)> {
    let url = require("git HTTP server", std::env::var("NOVA_TEST_GIT_HTTP_URL").ok(), "scripts/test starts it with start_git_http")?;
    let root = std::env::var("NOVA_TEST_GIT_HTTP_ROOT").expect("set with the URL");
    Some((url, root.into(), std::env::var("NOVA_TEST_GIT_HTTP_PASSWORD").expect("set with the URL")))
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git").args(["-c", "user.name=Nova Test", "-c", "user.email=test@example.com", "-c", "init.defaultBranch=main"]).args(args).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A work tree with `files` committed on `main`, published as the bare repository
/// `root/name.git`; answers the work tree, for later commits.
fn publish(root: &Path, name: &str, files: &[(&str, &str)]) -> tempfile::TempDir {
    let work = tempfile::tempdir().unwrap();
    git(work.path(), &["init", "--quiet"]);
    commit(work.path(), files);
    let bare = root.join(format!("{name}.git"));
    let _ = std::fs::remove_dir_all(&bare);
    std::fs::create_dir_all(bare.parent().unwrap()).unwrap();
    git(work.path(), &["clone", "--quiet", "--bare", ".", bare.to_str().unwrap()]);
    work
}

fn commit(work: &Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        write_file(work, path, text);
    }
    git(work, &["add", "-A"]);
    git(work, &["commit", "--quiet", "-m", "catalog"]);
}

fn push(work: &Path, root: &Path, name: &str) {
    git(work, &["push", "--quiet", "--force", root.join(format!("{name}.git")).to_str().unwrap(), "main"]);
}

fn location(name: &str, target: &str) -> String {
    format!("apiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata:\n  name: {name}\nspec:\n  targets: [{target}]\n")
}

async fn refresh_all(app: &TestApp) {
    for l in app.get_json("/api/v1/catalog/locations", 200).await.as_array().unwrap() {
        let id = l["id"].as_str().unwrap();
        let r = app.post_json(&format!("/api/v1/catalog/locations/{id}/refresh"), &serde_json::json!({})).await;
        assert_eq!(r.status(), 204);
    }
}

async fn names(app: &TestApp) -> Vec<String> {
    // Users and groups are left out: `with_admin` adds the admin's.
    let v = app.get_json("/api/catalog/entities/by-query?fields=kind,metadata.name", 200).await;
    let items = v["items"].as_array().unwrap().iter().filter(|e| !matches!(e["kind"].as_str(), Some("User" | "Group")));
    let mut n: Vec<String> = items.map(|e| e["metadata"]["name"].as_str().unwrap().to_string()).collect();
    n.sort();
    n
}

/// Catalog errors whose location starts with `prefix`: (rule, message).
async fn errors_for(app: &TestApp, prefix: &str) -> Vec<(String, String)> {
    let v = app.get_json("/api/v1/catalog/errors", 200).await;
    v["errors"].as_array().unwrap().iter().filter(|e| e["location"].as_str().unwrap().starts_with(prefix)).map(|e| (e["rule"].as_str().unwrap().to_string(), e["message"].as_str().unwrap().to_string())).collect()
}

async fn location_status(app: &TestApp, target_part: &str) -> Value {
    let all = app.get_json("/api/v1/catalog/locations", 200).await;
    all.as_array().unwrap().iter().find(|l| l["target"].as_str().unwrap().contains(target_part)).cloned().expect("location listed")
}

fn quick(locations: Vec<String>) -> Options {
    Options { locations, configure: Some(Box::new(|c| c.catalog.remote_timeout = Duration::from_secs(2))), ..Default::default() }
}

on_both_backends! {
    async fn remote_locations_register_only_under_allowed_prefixes(backend: Backend) {
        let (base, _) = http_server().await;
        let allowed = format!("{base}/more/");
        let app = spawn_app_with(backend, with_admin(Options {
            configure: Some(Box::new(move |c| c.catalog.registration_url_prefixes = vec![allowed])),
            ..Default::default()
        })).await;
        let r = app.post_json("/api/catalog/locations", &serde_json::json!({"type": "url", "target": format!("{base}/more/b.yaml")})).await;
        assert_eq!(r.status(), 201, "under the prefix");
        assert_eq!(names(&app).await, vec!["web-nested"], "write-through");
        let r = app.post_json("/api/catalog/locations", &serde_json::json!({"type": "url", "target": format!("{base}/catalog.yaml")})).await;
        assert_eq!(r.status(), 400);
        let r = app.post_json("/api/catalog/locations", &serde_json::json!({"type": "git", "target": "https://elsewhere.example/r.git"})).await;
        assert_eq!(r.status(), 400);
    }
}

on_both_backends! {
    async fn git_locations_follow_targets_inside_the_repository(backend: Backend) {
        let Some((url, root, _)) = git_server() else { return };
        let name = format!("catalog-{}", uuid::Uuid::new_v4().simple());
        let work = publish(&root, &name, &[
            ("catalog-info.yaml", &location("root", "./teams/a.yaml, ./teams, ../../etc/passwd, https://elsewhere.example/x.yaml")),
            ("teams/a.yaml", &component_yaml("alpha", "team-a")),
            ("teams/b.yaml", &component_yaml("beta", "team-b")),
            ("teams/.hidden/c.yaml", &component_yaml("hidden", "team-c")),
        ]);
        let target = format!("git:{url}/{name}.git#main:catalog-info.yaml");
        let app = spawn_app_with(backend, quick(vec![target])).await;
        assert_eq!(names(&app).await, vec!["alpha", "beta", "root"]);
        let alpha = app.get_json("/api/catalog/entities/by-name/component/default/alpha", 200).await;
        assert_eq!(alpha["metadata"]["annotations"]["backstage.io/managed-by-location"], format!("git:{url}/{name}.git#main:teams/a.yaml"));
        let errors = errors_for(&app, "git:").await;
        assert!(errors.iter().any(|(r, m)| r == "valid-target" && m.contains("outside the repository")), "{errors:?}");
        assert!(errors.iter().any(|(r, m)| r == "valid-target" && m.contains("inside the same repository")), "{errors:?}");
        // A new commit on the branch is read at the next refresh; removed entities go.
        std::fs::remove_file(work.path().join("teams/b.yaml")).unwrap();
        commit(work.path(), &[("teams/a.yaml", &component_yaml("alpha2", "team-a"))]);
        push(work.path(), &root, &name);
        refresh_all(&app).await;
        assert_eq!(names(&app).await, vec!["alpha2", "root"]);
        assert!(location_status(&app, &name).await["lastError"].is_null());
    }

    async fn git_failures_are_location_errors_that_keep_entities(backend: Backend) {
        let Some((url, root, _)) = git_server() else { return };
        let name = format!("keep-{}", uuid::Uuid::new_v4().simple());
        let _work = publish(&root, &name, &[("catalog/a.yaml", &component_yaml("kept", "team-a"))]);
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let locations = vec![
            format!("git:{url}/{name}.git#main:catalog"),
            format!("git:{url}/{name}.git#no-such-branch:catalog"),
            format!("git:{url}/{name}.git#main:not/here.yaml"),
            format!("git:http://{closed}/repo.git"),
            format!("git:{url}/does-not-exist.git"),
        ];
        let app = spawn_app_with(backend, quick(locations)).await;
        assert_eq!(names(&app).await, vec!["kept"]);
        let rules = |errors: Vec<(String, String)>| errors.into_iter().map(|(r, m)| format!("{r}: {m}")).collect::<Vec<_>>().join("\n");
        let wrong_ref = rules(errors_for(&app, &format!("git:{url}/{name}.git#no-such-branch")).await);
        assert!(wrong_ref.contains("fetch: git fetch failed") && wrong_ref.contains("no-such-branch"), "{wrong_ref}");
        let missing = rules(errors_for(&app, &format!("git:{url}/{name}.git#main:not")).await);
        assert!(missing.contains("exists: not/here.yaml does not exist in the repository at main"), "{missing}");
        assert!(rules(errors_for(&app, &format!("git:http://{closed}")).await).contains("fetch:"));
        assert!(rules(errors_for(&app, &format!("git:{url}/does-not-exist")).await).contains("fetch:"));
        let status = location_status(&app, "no-such-branch").await;
        assert!(status["lastError"].as_str().unwrap().contains("no-such-branch") && status["lastSuccessAt"].is_null());

        // The repository disappears: its entities stay, with an error, until it is back.
        std::fs::remove_dir_all(root.join(format!("{name}.git"))).unwrap();
        refresh_all(&app).await;
        assert_eq!(names(&app).await, vec!["kept"]);
        assert!(!errors_for(&app, &format!("git:{url}/{name}.git#main:catalog")).await.is_empty());
        let _work = publish(&root, &name, &[("catalog/a.yaml", &component_yaml("back", "team-a"))]);
        refresh_all(&app).await;
        assert_eq!(names(&app).await, vec!["back"]);
        assert!(errors_for(&app, &format!("git:{url}/{name}.git#main:catalog")).await.is_empty());
    }

    async fn private_repositories_use_configured_credentials(backend: Backend) {
        let Some((url, root, password)) = git_server() else { return };
        let name = format!("private/team-{}", uuid::Uuid::new_v4().simple());
        let _work = publish(&root, &name, &[("catalog-info.yaml", &component_yaml("secretive", "team-a"))]);
        let target = format!("git:{url}/{name}.git");
        // Without a credential the fetch fails (git is never allowed to prompt).
        let app = spawn_app_with(backend, quick(vec![target.clone()])).await;
        assert!(names(&app).await.is_empty());
        assert!(!errors_for(&app, "git:").await.is_empty());
        drop(app);
        let prefix = format!("{url}/private/");
        let app = spawn_app_with(backend, Options {
            locations: vec![target],
            configure: Some(Box::new(move |c| {
                c.catalog.credentials = vec![nova::config::RemoteCredential {
                    url_prefix: prefix,
                    username: Some("nova-test".into()),
                    secret: nova::secrets::SecretRef::Env("NOVA_TEST_GIT_HTTP_PASSWORD".into()),
                }];
            })),
            ..Default::default()
        }).await;
        assert_eq!(names(&app).await, vec!["secretive"]);
        let everything = format!("{}{}", app.get_json("/api/v1/catalog/locations", 200).await, app.get_json("/api/v1/catalog/errors", 200).await);
        assert!(!everything.contains(&password), "the password never appears");
    }
}

/// What the test HTTP server counts.
#[derive(Default)]
struct Hits {
    conditional: AtomicUsize,
    version: AtomicUsize,
    flaky_down: std::sync::atomic::AtomicBool,
}

/// A small HTTP server with one route per kind of answer a URL location can get.
async fn http_server() -> (String, Arc<Hits>) {
    use axum::Router;
    use axum::extract::State;
    use axum::routing::get;
    let hits = Arc::new(Hits::default());
    let yaml = |text: String, etag: &str| ([(header::CONTENT_TYPE, "application/yaml".to_string()), (header::ETAG, etag.to_string())], text).into_response();
    let app = Router::new()
        .route("/catalog.yaml", get(move |State(h): State<Arc<Hits>>, headers: HeaderMap| async move {
            let version = h.version.load(Ordering::SeqCst);
            let etag = format!("\"v{version}\"");
            if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
                h.conditional.fetch_add(1, Ordering::SeqCst);
                return StatusCode::NOT_MODIFIED.into_response();
            }
            yaml(format!("{}---\n{}", location("web", "./more/b.yaml"), component_yaml(&format!("web-{version}"), "team-a")), &etag)
        }))
        .route("/more/b.yaml", get(move || async move { yaml(component_yaml("web-nested", "team-a"), "\"b\"") }))
        .route("/flaky.yaml", get(move |State(h): State<Arc<Hits>>| async move {
            if h.flaky_down.load(Ordering::SeqCst) { StatusCode::BAD_GATEWAY.into_response() } else { yaml(component_yaml("flaky", "team-a"), "\"f\"") }
        }))
        .route("/page.html", get(|| async { ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], "<html><body>Sign in to continue</body></html>").into_response() }))
        .route("/huge.yaml", get(|| async {
            // 20 MB with no Content-Length: the limit is enforced while reading.
            use tokio::io::AsyncReadExt;
            Response::new(axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(tokio::io::repeat(b'#').take(20 << 20))))
        }))
        .route("/loop-a", get(|| async { Redirect::temporary("/loop-b") }))
        .route("/loop-b", get(|| async { Redirect::temporary("/loop-a") }))
        .route("/metadata", get(|| async { Redirect::temporary("http://169.254.169.254/latest/meta-data/") }))
        .route("/slow.yaml", get(|| async { tokio::time::sleep(Duration::from_secs(20)).await; "too late" }))
        .with_state(hits.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, hits)
}

on_both_backends! {
    async fn url_locations_revalidate_and_refuse_bad_answers(backend: Backend) {
        let (base, hits) = http_server().await;
        let locations = ["catalog.yaml", "flaky.yaml", "page.html", "huge.yaml", "loop-a", "metadata", "slow.yaml", "missing.yaml"]
            .iter()
            .map(|p| format!("{base}/{p}"))
            .chain(["url:http://169.254.169.254/latest/meta-data/catalog.yaml".to_string()])
            .collect();
        let app = spawn_app_with(backend, with_admin(quick(locations))).await;
        assert_eq!(names(&app).await, vec!["flaky", "web", "web-0", "web-nested"]);
        let nested = app.get_json("/api/catalog/entities/by-name/component/default/web-nested", 200).await;
        assert_eq!(nested["metadata"]["annotations"]["backstage.io/managed-by-location"], format!("url:{base}/more/b.yaml"));
        let rule_of = |errors: Vec<(String, String)>| errors.first().map(|(r, m)| format!("{r}: {m}")).unwrap_or_default();
        for (path, rule, words) in [
            ("page.html", "content-type", "HTML page"),
            ("huge.yaml", "max-file-bytes", "limit"),
            ("loop-a", "redirects", "redirect"),
            ("metadata", "redirects", "link-local or metadata"),
            ("slow.yaml", "timeout", "2s"),
            ("missing.yaml", "http-status", "404"),
        ] {
            let e = rule_of(errors_for(&app, &format!("url:{base}/{path}")).await);
            assert!(e.starts_with(rule) && e.contains(words), "{path}: {e}");
            assert!(!location_status(&app, path).await["lastError"].is_null(), "{path} is shown as failing");
        }
        let metadata = rule_of(errors_for(&app, "url:http://169.254.169.254").await);
        // Registering remote locations through the API needs an allowed URL prefix.
        let r = app.post_json("/api/catalog/locations", &serde_json::json!({"type": "url", "target": format!("{base}/more/b.yaml")})).await;
        assert_eq!(r.status(), 400);
        assert!(r.text().await.unwrap().contains("registration_url_prefixes"));
        assert!(metadata.starts_with("allowed-address"), "{metadata}");

        // Unchanged files are revalidated with If-None-Match and keep their entities.
        refresh_all(&app).await;
        assert!(hits.conditional.load(Ordering::SeqCst) >= 1, "a 304 was served");
        assert_eq!(names(&app).await, vec!["flaky", "web", "web-0", "web-nested"]);
        // A changed file is read again.
        hits.version.store(1, Ordering::SeqCst);
        // A failing URL keeps what it had until it answers again.
        hits.flaky_down.store(true, Ordering::SeqCst);
        refresh_all(&app).await;
        assert_eq!(names(&app).await, vec!["flaky", "web", "web-1", "web-nested"]);
        let flaky = location_status(&app, "flaky.yaml").await;
        assert!(flaky["lastError"].as_str().unwrap().contains("502") && !flaky["lastSuccessAt"].is_null());
        hits.flaky_down.store(false, Ordering::SeqCst);
        refresh_all(&app).await;
        assert!(location_status(&app, "flaky.yaml").await["lastError"].is_null());
    }
}
