//! Build requests through the HTTP API, on SQLite and PostgreSQL: owners only, every bad field
//! refused with its name and rule, idempotency keys, history, cancel and the audit trail.

mod support;

use nova::audit::AuditQuery;
use nova_domain::EntityRef;
use serde_json::{Value, json};
use support::*;

const CATALOG: &str = "\
apiVersion: backstage.io/v1alpha1
kind: Group
metadata:
  name: team-a
spec:
  type: team
  children: []
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata:
  name: alice
spec:
  memberOf: [team-a]
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata:
  name: bob
spec:
  memberOf: []
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: svc
  annotations:
    nova.dev/git-repository: https://git.example.com/team-a/svc.git
    nova.dev/image-repository: registry.example.com/team-a/svc
    nova.dev/image-tag-prefix: svc-
spec:
  type: service
  lifecycle: production
  owner: team-a
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: bare
spec:
  type: service
  lifecycle: production
  owner: team-a
";

struct Setup {
    app: TestApp,
    alice: String,
    bob: String,
}

async fn setup(backend: Backend) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "catalog.yaml", CATALOG);
    let app = spawn_app_with(backend, Options { locations: vec![file.display().to_string()], dir: Some(dir), ..Default::default() }).await;
    let token = |name: &str| {
        let state = app.state.clone();
        let user = EntityRef::parse(&format!("user:default/{name}")).unwrap();
        async move { state.auth.tokens.create(&user, "test", None, true).await.unwrap().0.expose().clone() }
    };
    let (alice, bob) = (token("alice").await, token("bob").await);
    Setup { app, alice, bob }
}

async fn post(s: &Setup, token: &str, component: &str, body: &Value, key: Option<&str>) -> (u16, Value) {
    let mut req = s.app.client.post(s.app.url(&format!("/api/v1/components/{component}/builds"))).bearer_auth(token).json(body);
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn audit(s: &Setup, action: &str) -> Vec<nova::audit::StoredEvent> {
    s.app.state.audit.query(&AuditQuery { action: Some(action.into()), limit: 100, ..Default::default() }).await.unwrap().0
}

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

on_both_backends! {

async fn an_owner_requests_a_build_once_per_idempotency_key(backend: Backend) {
    let s = setup(backend).await;
    let body = json!({ "gitRef": "main", "dockerfile": "docker/app/Dockerfile", "tag": "v1", "buildArgs": [{ "name": "VERSION", "value": "1" }] });
    let (status, first) = post(&s, &s.alice, "svc", &body, Some("k-1")).await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["state"], "requested");
    assert_eq!(first["context"], "docker/app", "the context defaults to the Dockerfile's directory");
    assert_eq!(first["tag"], "svc-v1", "the component's tag prefix is applied");
    assert_eq!(first["image"], "registry.example.com/team-a/svc");
    assert_eq!(first["gitUrl"], "https://git.example.com/team-a/svc.git");
    assert_eq!(first["pipeline"], "local");

    let (status, again) = post(&s, &s.alice, "svc", &body, Some("k-1")).await;
    assert_eq!(status, 200);
    assert_eq!(again["id"], first["id"], "the same key gives the same build");

    let (status, default_tag) = post(&s, &s.alice, "component:default%2Fsvc", &json!({ "gitRef": SHA, "dockerfile": "Dockerfile" }), None).await;
    assert_eq!(status, 201, "{default_tag}");
    let tag = default_tag["tag"].as_str().unwrap();
    assert!(tag.starts_with("svc-") && tag.ends_with("Z-0123456"), "immutable default tag from the commit: {tag}");
    assert_eq!(default_tag["context"], ".");

    let list = s.app.get_json("/api/v1/components/svc/builds", 200).await;
    assert_eq!(list.as_array().unwrap().len(), 2, "two builds, not three: {list}");
    let id = first["id"].as_str().unwrap();
    assert_eq!(s.app.get_json(&format!("/api/v1/builds/{id}"), 200).await["dockerfile"], "docker/app/Dockerfile");

    let requested = audit(&s, "build.request").await;
    assert_eq!(requested.len(), 2);
    let details = &requested.iter().find(|e| e.details["build"] == first["id"]).unwrap().details;
    assert_eq!(details["dockerfile"], "docker/app/Dockerfile");
    assert_eq!(details["idempotencyKey"], "k-1");
    assert_eq!(details["buildArgs"][0]["name"], "VERSION");
}

async fn bad_input_is_refused_naming_the_field_and_audited(backend: Backend) {
    let s = setup(backend).await;
    let base = json!({ "gitRef": "main", "dockerfile": "Dockerfile", "tag": "v1" });
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    let cases = [
        (with("dockerfile", json!("../../etc/passwd")), "dockerfile"),
        (with("dockerfile", json!("/abs")), "dockerfile"),
        (with("dockerfile", json!("docker/../../x")), "dockerfile"),
        (with("dockerfile", json!("-f")), "dockerfile"),
        (with("dockerfile", json!("--output=/tmp/x")), "dockerfile"),
        (with("dockerfile", json!(".")), "dockerfile"),
        (with("context", json!("a\nb")), "context"),
        (with("context", json!("../up")), "context"),
        (with("gitRef", json!("--upload-pack=touch /tmp/x")), "gitRef"),
        (with("gitRef", json!("main;rm -rf /")), "gitRef"),
        (with("gitRef", json!("")), "gitRef"),
        (with("tag", json!("a:b")), "tag"),
        (with("tag", json!("a/b")), "tag"),
        (with("tag", json!(".x")), "tag"),
        (with("tag", json!("-x")), "tag"),
        (with("tag", json!("x".repeat(129))), "tag"),
        (with("tag", json!("x".repeat(128))), "tag"),
        (with("tag", Value::Null), "tag"),
        (with("buildArgs", json!([{ "name": "A B", "value": "1" }])), "buildArgs[0].name"),
        (with("buildArgs", json!([{ "name": "A", "value": "1\n2" }])), "buildArgs[0].value"),
        (with("buildArgs", json!([{ "name": "A", "value": "1" }, { "name": "A", "value": "2" }])), "buildArgs[1].name"),
        (with("extra", json!(1)), "body"),
    ];
    for (body, field) in &cases {
        let (status, problem) = post(&s, &s.alice, "svc", body, None).await;
        assert_eq!(status, 400, "{body} -> {problem}");
        assert!(problem["detail"].as_str().unwrap_or_default().starts_with(&format!("{field}:")) || problem.to_string().contains(field), "{body} should name {field}: {problem}");
    }
    let (status, problem) = post(&s, &s.alice, "bare", &base, None).await;
    assert_eq!(status, 400);
    assert!(problem.to_string().contains("gitRepository"), "{problem}");
    let (status, _) = post(&s, &s.alice, "svc", &base, Some("bad key")).await;
    assert_eq!(status, 400);
    let (status, _) = post(&s, &s.alice, "nope", &base, None).await;
    assert_eq!(status, 404);
    let (status, _) = post(&s, &s.alice, "group:team-a", &base, None).await;
    assert_eq!(status, 400);

    assert!(s.app.get_json("/api/v1/components/svc/builds", 200).await.as_array().unwrap().is_empty(), "nothing was recorded");
    let refused = audit(&s, "build.request").await;
    assert_eq!(refused.len(), cases.len() + 2, "every refusal of a known component is audited");
    assert!(refused.iter().all(|e| e.outcome == "failure"));
}

async fn only_owners_build_and_cancel(backend: Backend) {
    let s = setup(backend).await;
    let body = json!({ "gitRef": "main", "dockerfile": "Dockerfile", "tag": "v1" });
    let (status, problem) = post(&s, &s.bob, "svc", &body, None).await;
    assert_eq!(status, 403, "{problem}");
    let anonymous = s.app.client.post(s.app.url("/api/v1/components/svc/builds")).json(&body).send().await.unwrap();
    assert!(matches!(anonymous.status().as_u16(), 401 | 403));
    assert_eq!(audit(&s, "authz.deny.build").await.len(), 2);

    let (_, build) = post(&s, &s.alice, "svc", &body, None).await;
    let cancel = |token: String| {
        let url = s.app.url(&format!("/api/v1/builds/{}/cancel", build["id"].as_str().unwrap()));
        s.app.client.post(url).bearer_auth(token).send()
    };
    assert_eq!(cancel(s.bob.clone()).await.unwrap().status(), 403);
    let res = cancel(s.alice.clone()).await.unwrap();
    assert_eq!(res.status(), 200);
    let cancelled: Value = res.json().await.unwrap();
    assert_eq!(cancelled["state"], "cancelled");
    assert!(cancelled["finishedAt"].is_i64());
    assert_eq!(cancel(s.alice.clone()).await.unwrap().status(), 409, "a finished build cannot be cancelled again");
    assert_eq!(audit(&s, "build.cancel").await.len(), 1);
    assert_eq!(s.app.get("/api/v1/builds/no-such-build").await.status(), 404);
}

}
