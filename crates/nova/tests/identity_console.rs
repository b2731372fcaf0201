//! The console's identity pages over real HTTP: API tokens (made and shown once, listed with
//! last use, revoked), feature flags (admins change stages and switch off; others read) and the
//! audit log (scoped view, filters, chain verification for admins). Plain forms, no JavaScript.

mod support;

use support::*;

fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish()
}

async fn demo_app() -> TestApp {
    spawn_app_with(Backend::Sqlite, Options {
        locations: vec![example_catalog().display().to_string()],
        configure: Some(Box::new(|c| {
            c.server.demo = true;
            c.auth.admin_group = Some(ADMIN_GROUP.into());
        })),
        ..Default::default()
    })
    .await
}

/// Development sign-in as `user`: the session cookie (`name=value`).
async fn sign_in(app: &TestApp, user: &str) -> String {
    let r = app.client.post(app.url("/sign-in")).header("origin", &app.base).header("content-type", "application/x-www-form-urlencoded").body(form(&[("user", user)])).send().await.unwrap();
    assert_eq!(r.status(), 303);
    r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string()
}

async fn get(app: &TestApp, path: &str, cookie: &str) -> (u16, String) {
    let r = app.client.get(app.url(path)).header("cookie", cookie).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn post(app: &TestApp, path: &str, cookie: &str, body: &[(&str, &str)]) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .header("cookie", cookie)
        .header("origin", &app.base)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(body))
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tokens_page_shows_a_new_token_once_and_revokes() {
    let app = demo_app().await;
    assert_eq!(app.get("/tokens").await.status(), 401, "tokens are personal");
    let alex = sign_in(&app, "user:default/alex.kim").await;
    let (status, page) = get(&app, "/tokens", &alex).await;
    assert_eq!(status, 200);
    assert!(page.contains("href=\"/tokens\" aria-current=\"page\">API tokens</a>"), "linked from the header");
    assert!(page.contains("You have no tokens."));

    let r = post(&app, "/tokens", &alex, &[("name", "laptop"), ("expires_in_days", "7")]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let page = r.text().await.unwrap();
    let at = page.find("value=\"nova_").expect("the new token is shown") + "value=\"".len();
    let token = page[at..at + 48].to_string();
    assert!(page.contains("shown only this once"));
    let r = app.client.get(app.url("/api/v1/me")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 200, "the shown token works");

    let (_, list) = get(&app, "/tokens", &alex).await;
    assert!(!list.contains(&token), "never shown again");
    assert!(list.contains(&format!("<code>{}…</code>", &token[..12])), "listed by prefix");
    assert!(list.contains("<td>active</td>"));
    assert!(!list.contains("<td>never</td><td><form"), "its last use is shown (it was just used)");

    // Bad input keeps the form and names the rule; a cross-site form is refused.
    let r = post(&app, "/tokens", &alex, &[("name", "x"), ("expires_in_days", "forever")]).await;
    assert_eq!(r.status(), 400);
    let page = r.text().await.unwrap();
    assert!(page.contains("expiresInDays: must be a whole number") && page.contains("value=\"forever\""), "{page}");
    let r = app.client.post(app.url("/tokens")).header("cookie", &alex).header("origin", "http://evil.example").body("name=evil").send().await.unwrap();
    assert_eq!(r.status(), 403);

    let id = app.state.auth.tokens.list(&nova_domain::EntityRef::parse("user:default/alex.kim").unwrap()).await.unwrap()[0].id.clone();
    let other = sign_in(&app, "user:default/ana.lima").await;
    assert_eq!(post(&app, &format!("/tokens/{id}/revoke"), &other, &[]).await.status(), 404, "only its owner revokes it");
    let r = post(&app, &format!("/tokens/{id}/revoke"), &alex, &[]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/tokens?done=revoked");
    let (_, list) = get(&app, "/tokens?done=revoked", &alex).await;
    assert!(list.contains("Token revoked") && list.contains("<td>revoked</td>"));
    let r = app.client.get(app.url("/api/v1/me")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_change_flags_on_the_flags_page_and_others_read() {
    let app = demo_app().await;
    let alex = sign_in(&app, "user:default/alex.kim").await;
    let (status, page) = get(&app, "/flags", &alex).await;
    assert_eq!(status, 200);
    assert!(page.contains("registry.image-view") && page.contains("Platform admins change them."));
    assert!(!page.contains("action=\"/flags/registry.image-view\""), "no forms for non-admins");
    assert_eq!(post(&app, "/flags/registry.image-view/switch-off", &alex, &[]).await.status(), 403);
    assert!(app.state.flags.get("registry.image-view").unwrap().rollout.enabled, "unchanged");

    let admin = sign_in(&app, ADMIN_USER).await;
    let (_, page) = get(&app, "/flags", &admin).await;
    assert!(page.contains("action=\"/flags/registry.image-view\"") && page.contains("Switch off registry.image-view"));
    // The rollout plan: admins first, then 25%, then everyone; switching off keeps the targeting.
    let r = post(&app, "/flags/registry.image-view", &admin, &[("stage", "targeted"), ("groups", "platform"), ("users", ""), ("percentage", "0")]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/flags?changed=registry.image-view");
    assert_eq!(app.state.flags.get("registry.image-view").unwrap().stage, "targeted");
    post(&app, "/flags/registry.image-view", &admin, &[("stage", "percentage"), ("groups", "platform"), ("percentage", "25")]).await;
    let f = app.state.flags.get("registry.image-view").unwrap();
    assert_eq!((f.stage, f.rollout.percentage), ("percentage", 25.0));
    let r = post(&app, "/flags/registry.image-view", &admin, &[("stage", "percentage"), ("percentage", "150")]).await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("percentage: must be between 0 and 100"));
    assert_eq!(post(&app, "/flags/registry.image-view/switch-off", &admin, &[]).await.status(), 303);
    let f = app.state.flags.get("registry.image-view").unwrap();
    assert_eq!((f.stage, f.rollout.percentage, f.rollout.groups.len()), ("off", 25.0, 1));
    let (_, page) = get(&app, "/flags?changed=registry.image-view", &admin).await;
    assert!(page.contains("Flag registry.image-view changed"));
    let q = nova::audit::AuditQuery { action: Some("flags.set".into()), limit: 10, ..Default::default() };
    assert_eq!(app.state.audit.query(&q).await.unwrap().0.len(), 3, "every change is audited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_page_is_scoped_filtered_and_verified_for_admins() {
    let app = demo_app().await;
    assert_eq!(app.get("/audit").await.status(), 401);
    let alex = sign_in(&app, "user:default/alex.kim").await;
    let admin = sign_in(&app, ADMIN_USER).await;
    let (status, page) = get(&app, "/audit", &alex).await;
    assert_eq!(status, 200);
    assert!(page.contains("Events on what you and your teams own"));
    assert!(page.contains("auth.sign_in") && page.contains("<td>user:default/alex.kim</td>"));
    assert!(!page.contains(&format!("<td>{ADMIN_USER}</td>")), "another team's user's events are not shown");
    assert!(!page.contains("Hash chain"), "verification is for admins");

    let (_, page) = get(&app, "/audit?action=auth.&actor=user%3Adefault%2Fpat.chen", &admin).await;
    assert!(page.contains("Hash chain verified: ") && page.contains(" events intact."), "{page}");
    assert!(page.contains(&format!("<td>{ADMIN_USER}</td>")) && !page.contains("<td>user:default/alex.kim</td>"), "filtered by actor");
    assert!(page.contains("value=\"auth.\""), "the filters stay in the form");
    let (status, page) = get(&app, "/audit?since=yesterday", &admin).await;
    assert_eq!(status, 400);
    assert!(page.contains("since: must be Unix milliseconds or an RFC 3339 time"));
}
