//! Identity over real HTTP on SQLite and PostgreSQL: personal API tokens (shown once, listed
//! without the secret, last use, expiry, revocation, users who leave the catalog), trusted
//! proxy headers, server-side sign-out, the anonymous-read gate, admin-only flag changes and
//! the OFREP endpoint.

mod support;

use serde_json::{Value, json};
use support::*;

const ALEX: &str = "user:default/alex.kim";
const ANA: &str = "user:default/ana.lima";

async fn send(app: &TestApp, method: reqwest::Method, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let mut r = app.client.request(method, app.url(path));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

async fn audit(app: &TestApp, action: &str) -> Vec<nova::audit::StoredEvent> {
    let q = nova::audit::AuditQuery { action: Some(action.into()), limit: 50, ..Default::default() };
    app.state.audit.query(&q).await.unwrap().0
}

on_both_backends! {
    async fn api_tokens_are_shown_once_used_and_revoked(backend: Backend) {
        use reqwest::Method;
        let app = spawn_app(backend).await;
        let bootstrap = app.token_for(ALEX).await;
        let (status, v) = send(&app, Method::POST, "/api/v1/tokens", None, Some(json!({"name": "ci"}))).await;
        assert_eq!(status, 401, "anonymous callers have no tokens: {v}");

        let (status, made) = send(&app, Method::POST, "/api/v1/tokens", Some(&bootstrap), Some(json!({"name": " ci-pipeline ", "expiresInDays": 30}))).await;
        assert_eq!(status, 201, "{made}");
        let token = made["token"].as_str().unwrap().to_string();
        assert!(token.starts_with("nova_") && token.len() == 48, "{token}");
        let info = &made["info"];
        assert_eq!(info["name"], "ci-pipeline");
        assert_eq!(info["prefix"], &token[..12]);
        let expires = info["expiresAt"].as_i64().unwrap() - info["createdAt"].as_i64().unwrap();
        assert_eq!(expires, 30 * 86_400_000);
        let id = info["id"].as_str().unwrap().to_string();

        // Listed without the secret, and never shown again.
        let r = app.client.get(app.url("/api/v1/tokens")).bearer_auth(&bootstrap).send().await.unwrap();
        let text = r.text().await.unwrap();
        assert!(!text.contains(&token) && !text.contains(&token[12..]), "the list never holds the token");
        let list: Value = serde_json::from_str(&text).unwrap();
        let listed = list.as_array().unwrap().iter().find(|t| t["id"] == id.as_str()).unwrap().clone();
        assert_eq!(listed["lastUsedAt"], Value::Null, "not used yet");
        let stored: Vec<String> = sqlx::query_scalar("SELECT token_hash FROM api_tokens").fetch_all(app.state.db.pool()).await.unwrap();
        assert!(stored.iter().all(|h| h.len() == 64 && !h.contains(&token[5..])), "stored hashed");

        // The token works, says who it is, and records its use.
        let (status, me) = send(&app, Method::GET, "/api/v1/me", Some(&token), None).await;
        assert_eq!(status, 200, "{me}");
        assert_eq!((me["user"].as_str(), me["method"].as_str()), (Some(ALEX), Some("token")));
        let (_, list) = send(&app, Method::GET, "/api/v1/tokens", Some(&token), None).await;
        let listed = list.as_array().unwrap().iter().find(|t| t["id"] == id.as_str()).unwrap().clone();
        assert!(listed["lastUsedAt"].as_i64().unwrap() >= info["createdAt"].as_i64().unwrap(), "last use recorded: {listed}");

        // Only its owner can revoke it; then it is refused, and the refusal audited.
        let ana = app.token_for(ANA).await;
        let (status, _) = send(&app, Method::DELETE, &format!("/api/v1/tokens/{id}"), Some(&ana), None).await;
        assert_eq!(status, 404, "another user cannot revoke it");
        let (status, _) = send(&app, Method::DELETE, &format!("/api/v1/tokens/{id}"), Some(&bootstrap), None).await;
        assert_eq!(status, 204);
        let (status, v) = send(&app, Method::GET, "/api/v1/me", Some(&token), None).await;
        assert_eq!(status, 401);
        assert!(v["detail"].as_str().unwrap().contains("revoked"), "{v}");
        let (status, _) = send(&app, Method::GET, "/api/catalog/entities?limit=1", Some(&token), None).await;
        assert_eq!(status, 401, "refused even where anonymous callers may read");
        let (status, _) = send(&app, Method::DELETE, &format!("/api/v1/tokens/{id}"), Some(&bootstrap), None).await;
        assert_eq!(status, 404, "already revoked");
        let (_, list) = send(&app, Method::GET, "/api/v1/tokens", Some(&bootstrap), None).await;
        assert!(list.as_array().unwrap().iter().any(|t| t["id"] == id.as_str() && t["revokedAt"].is_i64()));
        let created = audit(&app, "auth.token.create").await;
        assert_eq!((created[0].actor.as_str(), created[0].details["prefix"].as_str()), (ALEX, Some(&token[..12])));
        assert!(!created[0].details.to_string().contains(&token), "the audit record never holds the token");
        assert_eq!(audit(&app, "auth.token.revoke").await[0].target, format!("token:{id}"));
        let refused = audit(&app, "auth.refused").await;
        assert!(refused.iter().any(|e| e.target == "auth:token" && e.details["reason"].as_str().unwrap().contains("revoked")));

        // Expired, malformed and unknown tokens are refused.
        let user = nova_domain::EntityRef::parse(ALEX).unwrap();
        let (expired, _) = app.state.auth.tokens.create(&user, "old", Some(nova::storage::now_ms() - 1), true).await.unwrap();
        let (status, v) = send(&app, Method::GET, "/api/v1/me", Some(expired.expose()), None).await;
        assert_eq!(status, 401);
        assert!(v["detail"].as_str().unwrap().contains("expired"), "{v}");
        for bad in ["nova_short", "ghp_0123456789012345678901234567890123456789012", &format!("nova_{}", "A".repeat(43))] {
            let (status, _) = send(&app, Method::GET, "/api/v1/me", Some(bad), None).await;
            assert_eq!(status, 401, "{bad}");
        }
        let r = app.client.get(app.url("/api/v1/me")).header("authorization", "Basic eDp5").send().await.unwrap();
        assert_eq!(r.status(), 401, "only Bearer tokens");

        // Bad input names the field and the rule, and makes nothing.
        let before = send(&app, Method::GET, "/api/v1/tokens", Some(&bootstrap), None).await.1.as_array().unwrap().len();
        for (body, field) in [(json!({"name": ""}), "name"), (json!({"name": "x", "expiresInDays": 0}), "expiresInDays"), (json!({"name": "x", "scope": "all"}), "body")] {
            let (status, v) = send(&app, Method::POST, "/api/v1/tokens", Some(&bootstrap), Some(body.clone())).await;
            assert_eq!(status, 400, "{body}");
            assert!(v.to_string().contains(field), "{field} in {v}");
        }
        assert_eq!(send(&app, Method::GET, "/api/v1/tokens", Some(&bootstrap), None).await.1.as_array().unwrap().len(), before);
    }

    async fn tokens_die_with_their_user_in_the_catalog(backend: Backend) {
        let dir = tempfile::tempdir().unwrap();
        let org = "apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata: {name: team-a}\nspec: {type: team, children: []}\n---\n\
                   apiVersion: backstage.io/v1alpha1\nkind: User\nmetadata: {name: leaver}\nspec: {memberOf: [team-a]}\n";
        write_file(dir.path(), "org.yaml", org);
        let app = spawn_app_with(backend, Options { locations: vec!["org.yaml".into()], dir: Some(dir), ..Default::default() }).await;
        let token = app.token_for("user:default/leaver").await;
        let (status, me) = send(&app, reqwest::Method::GET, "/api/v1/me", Some(&token), None).await;
        assert_eq!(status, 200);
        assert_eq!(me["claims"], json!(["user:default/leaver", "group:default/team-a"]));
        app.write("org.yaml", &org[..org.find("---").unwrap()]);
        for l in app.state.catalog.locations().await.unwrap() {
            app.state.catalog.refresh(&l.id).await.unwrap();
        }
        let (status, v) = send(&app, reqwest::Method::GET, "/api/v1/me", Some(&token), None).await;
        assert_eq!(status, 401, "the off-boarded user's token stops working");
        assert!(v["detail"].as_str().unwrap().contains("no longer in the catalog"), "{v}");
    }

    async fn sign_out_revokes_the_session_on_the_server(backend: Backend) {
        let app = spawn_app_with(backend, Options {
            locations: vec![example_catalog().display().to_string()],
            configure: Some(Box::new(|c| c.server.demo = true)),
            ..Default::default()
        }).await;
        let form = url::form_urlencoded::Serializer::new(String::new()).extend_pairs([("user", ALEX), ("next", "/")]).finish();
        let r = app.client.post(app.url("/sign-in")).header("origin", &app.base).header("content-type", "application/x-www-form-urlencoded").body(form).send().await.unwrap();
        assert_eq!(r.status(), 303);
        let cookie = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
        let me = |cookie: String| { let app = &app; async move { app.client.get(app.url("/api/v1/me")).header("cookie", cookie).send().await.unwrap().status().as_u16() } };
        assert_eq!(me(cookie.clone()).await, 200);
        // Sign-out from another site is refused and changes nothing.
        let r = app.client.post(app.url("/sign-out")).header("cookie", &cookie).header("origin", "http://evil.example").send().await.unwrap();
        assert_eq!(r.status(), 403);
        assert_eq!(me(cookie.clone()).await, 200);
        let r = app.client.post(app.url("/sign-out")).header("cookie", &cookie).header("origin", &app.base).send().await.unwrap();
        assert_eq!(r.status(), 303);
        assert!(r.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
        assert_eq!(me(cookie.clone()).await, 401, "a kept copy of the cookie no longer works");
        // A restarted (or another) replica reads the revocation from the database.
        app.state.auth.sync().await.unwrap();
        assert_eq!(me(cookie).await, 401);
        assert_eq!(audit(&app, "auth.sign_out").await[0].actor, ALEX);
    }

    async fn flags_are_changed_by_admins_only_and_read_through_ofrep(backend: Backend) {
        use reqwest::Method;
        let app = spawn_app(backend).await;
        let admin = app.token_for(ADMIN_USER).await;
        let alex = app.token_for(ALEX).await;
        let rollout = json!({"enabled": true, "groups": ["group:default/payments"]});
        let (status, v) = send(&app, Method::POST, "/api/v1/flags", None, Some(json!({"key": "checkout.new-ui", "rollout": rollout}))).await;
        assert_eq!(status, 401, "{v}");
        let (status, v) = send(&app, Method::POST, "/api/v1/flags", Some(&alex), Some(json!({"key": "checkout.new-ui", "rollout": rollout}))).await;
        assert_eq!(status, 403, "{v}");
        assert!(v["detail"].as_str().unwrap().contains("Only platform admins"), "{v}");
        let (status, v) = send(&app, Method::POST, "/api/v1/flags", Some(&admin), Some(json!({"key": "checkout.new-ui", "description": "New checkout", "rollout": rollout}))).await;
        assert_eq!(status, 201, "{v}");
        assert_eq!(v["stage"], "targeted");
        let (status, _) = send(&app, Method::PUT, "/api/v1/flags/checkout.new-ui", Some(&alex), Some(json!({"enabled": false}))).await;
        assert_eq!(status, 403);
        let (status, v) = send(&app, Method::PUT, "/api/v1/flags/checkout.new-ui", Some(&admin), Some(json!({"enabled": true, "percentage": 150}))).await;
        assert_eq!(status, 400);
        assert!(v.to_string().contains("percentage"), "{v}");
        let (status, _) = send(&app, Method::PUT, "/api/v1/flags/no.such-flag", Some(&admin), Some(json!({"enabled": false}))).await;
        assert_eq!(status, 404);
        // Everyone signed in may read the flags.
        let (status, v) = send(&app, Method::GET, "/api/v1/flags", Some(&alex), None).await;
        assert_eq!(status, 200);
        assert!(v.as_array().unwrap().iter().any(|f| f["key"] == "checkout.new-ui"));
        let denied = audit(&app, "authz.deny.manage-flags").await;
        assert_eq!(denied.iter().filter(|e| e.actor == ALEX && e.outcome == "denied").count(), 2, "{denied:?}");
        assert_eq!(denied.iter().filter(|e| e.actor == "anonymous").count(), 1, "{denied:?}");

        // OFREP: one flag, for a targeting key; groups come from the catalog.
        let ofrep = |path: String, token: Option<String>, body: Value, etag: Option<String>| {
            let app = &app;
            async move {
                let mut r = app.client.post(app.url(&path)).json(&body);
                if let Some(t) = token { r = r.bearer_auth(t); }
                if let Some(e) = etag { r = r.header("if-none-match", e); }
                let r = r.send().await.unwrap();
                let status = r.status().as_u16();
                let etag = r.headers().get("etag").map(|v| v.to_str().unwrap().to_string());
                (status, etag, r.json::<Value>().await.unwrap_or(Value::Null))
            }
        };
        let single = "/ofrep/v1/evaluate/flags/checkout.new-ui".to_string();
        let (status, _, v) = ofrep(single.clone(), Some(alex.clone()), json!({"context": {"targetingKey": "alex.kim"}}), None).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!((v["value"].as_bool(), v["reason"].as_str(), v["variant"].as_str()), (Some(true), Some("TARGETING_MATCH"), Some("on")));
        let (_, _, v) = ofrep(single.clone(), Some(alex.clone()), json!({"context": {"targetingKey": "user:default/ana.lima"}}), None).await;
        assert_eq!((v["value"].as_bool(), v["reason"].as_str()), (Some(false), Some("DEFAULT")));
        let (status, _, v) = ofrep(single.clone(), None, json!({}), None).await;
        assert_eq!(status, 401, "an API token is required: {v}");
        let (status, _, v) = ofrep("/ofrep/v1/evaluate/flags/no.such-flag".into(), Some(alex.clone()), json!({}), None).await;
        assert_eq!((status, v["errorCode"].as_str(), v["key"].as_str()), (404, Some("FLAG_NOT_FOUND"), Some("no.such-flag")));
        let (status, _, v) = ofrep(single.clone(), Some(alex.clone()), json!({"context": {"targetingKey": 42}}), None).await;
        assert_eq!((status, v["errorCode"].as_str()), (400, Some("INVALID_CONTEXT")));

        // Bulk: an ETag, 304 while nothing changed, a new answer after a change.
        let bulk = "/ofrep/v1/evaluate/flags".to_string();
        let ctx = json!({"context": {"targetingKey": "alex.kim"}});
        let (status, etag, v) = ofrep(bulk.clone(), Some(alex.clone()), ctx.clone(), None).await;
        assert_eq!(status, 200);
        let etag = etag.expect("an ETag");
        assert!(v["flags"].as_array().unwrap().iter().any(|f| f["key"] == "checkout.new-ui" && f["value"] == true));
        let (status, _, _) = ofrep(bulk.clone(), Some(alex.clone()), ctx.clone(), Some(etag.clone())).await;
        assert_eq!(status, 304);
        let (status, _, _) = ofrep(bulk.clone(), Some(alex.clone()), json!({"context": {"targetingKey": "ana.lima"}}), Some(etag.clone())).await;
        assert_eq!(status, 200, "another context, another answer");
        let (status, v) = send(&app, Method::PUT, "/api/v1/flags/checkout.new-ui", Some(&admin), Some(json!({"enabled": false, "groups": ["group:default/payments"]}))).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["stage"], "off", "switched off");
        let (status, new_etag, v) = ofrep(bulk.clone(), Some(alex.clone()), ctx.clone(), Some(etag.clone())).await;
        assert_eq!(status, 200, "the change is seen at once");
        assert_ne!(new_etag.unwrap(), etag);
        assert!(v["flags"].as_array().unwrap().iter().any(|f| f["key"] == "checkout.new-ui" && f["value"] == false && f["reason"] == "DISABLED"));
        let set = audit(&app, "flags.set").await;
        assert_eq!((set[0].actor.as_str(), set[0].details["before"]["enabled"].as_bool(), set[0].details["after"]["enabled"].as_bool()), (ADMIN_USER, Some(true), Some(false)));
    }
}

/// Nova behind an authenticating proxy that connects from `trusted`.
async fn behind_proxy(trusted: &str) -> TestApp {
    let trusted = trusted.to_string();
    spawn_app_with(Backend::Sqlite, Options {
        locations: vec![example_catalog().display().to_string()],
        configure: Some(Box::new(move |c| {
            c.auth.proxy = Some(nova::config::ProxyConfig {
                trusted_proxies: vec![trusted],
                user_header: "X-Forwarded-User".into(),
                email_header: Some("X-Forwarded-Email".into()),
                user_namespace: "default".into(),
            });
        })),
        ..Default::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_headers_are_believed_only_from_the_configured_proxy() {
    let app = behind_proxy("127.0.0.0/8").await;
    let me = |headers: Vec<(&'static str, &'static str)>| {
        let app = &app;
        async move {
            let mut r = app.client.get(app.url("/api/v1/me"));
            for (k, v) in headers {
                r = r.header(k, v);
            }
            let r = r.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (status, v) = me(vec![("x-forwarded-user", "alex.kim")]).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!((v["user"].as_str(), v["method"].as_str()), (Some(ALEX), Some("proxy")));
    assert!(v["claims"].as_array().unwrap().contains(&json!("group:default/payments-core")));
    let (_, v) = me(vec![("x-forwarded-email", "maria.garcia@example.com"), ("x-forwarded-user", "mg-sso")]).await;
    assert_eq!(v["user"], "user:default/maria.garcia", "the e-mail is matched first");
    let (status, _) = me(vec![]).await;
    assert_eq!(status, 401, "with a proxy configured, reads need an identity");
    let r = app.client.get(app.url("/catalog")).send().await.unwrap();
    assert_eq!(r.status(), 303, "pages send the browser to sign in");

    // The same headers from an address that is not the proxy are refused and audited.
    let app = behind_proxy("10.9.9.9").await;
    let r = app.client.get(app.url("/api/v1/me")).header("x-forwarded-user", "pat.chen").send().await.unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert!(v["detail"].as_str().unwrap().contains("trusted_proxies"), "{v}");
    let r = app.client.get(app.url("/api/v1/catalog/errors")).header("x-forwarded-user", "pat.chen").send().await.unwrap();
    assert_eq!(r.status(), 401, "on every route");
    let refused = audit(&app, "auth.refused").await;
    assert!(refused.len() >= 2);
    assert!(refused.iter().all(|e| e.target == "auth:proxy" && e.outcome == "denied" && e.details["remote"] == "127.0.0.1"), "{refused:?}");
    // A token still works from anywhere.
    let token = app.token_for(ALEX).await;
    let r = app.client.get(app.url("/api/v1/me")).bearer_auth(token).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_reads_follow_the_setting() {
    // No identity provider: reads are open, writes need a user.
    let open = spawn_app(Backend::Sqlite).await;
    assert_eq!(open.get("/api/catalog/entities?limit=1").await.status(), 200);
    assert_eq!(open.get("/catalog").await.status(), 200);
    assert_eq!(open.get("/api/v1/me").await.status(), 401);

    let closed = spawn_app_with(Backend::Sqlite, Options {
        locations: vec![example_catalog().display().to_string()],
        configure: Some(Box::new(|c| c.auth.anonymous_read = Some(false))),
        ..Default::default()
    })
    .await;
    for path in ["/api/catalog/entities?limit=1", "/api/v1/catalog/errors", "/api/v1/flags", "/api/v1/components/component/default/payment-service/images"] {
        let r = closed.get(path).await;
        assert_eq!(r.status(), 401, "{path}");
        assert_eq!(r.headers()["content-type"], "application/problem+json", "{path}");
    }
    for path in ["/catalog", "/catalog/default/component/payment-service", "/locations"] {
        let r = closed.get(path).await;
        assert_eq!(r.status(), 303, "{path}");
        assert!(r.headers()["location"].to_str().unwrap().starts_with("/sign-in?next=%2F"), "{path}");
    }
    for path in ["/health", "/ready", "/metrics", "/static/nova.css", "/api/v1/openapi.json"] {
        assert_eq!(closed.get(path).await.status(), 200, "{path} stays open");
    }
    let token = closed.token_for(ANA).await;
    let r = closed.client.get(closed.url("/api/catalog/entities?limit=1")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 200, "signed in, reads work");
}
