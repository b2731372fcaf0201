//! OpenID Connect sign-in against a real provider (npm `oidc-provider`, see support/oidc.rs):
//! the authorization code flow with PKCE end to end, the mapping from the ID token's claims to
//! a catalog User and their groups, sign-out, and the refusals: a tampered state or nonce, a
//! missing or expired sign-in cookie, a replayed callback, a PKCE challenge that does not match.

mod support;

use nova::audit::AuditQuery;
use nova::auth::SessionKey;
use nova::config::OidcConfig;
use nova::secrets::SecretRef;
use nova_domain::Sensitive;
use serde_json::{Value, json};
use support::oidc::{Browser, CLIENT_ID, CLIENT_SECRET, Provider};
use support::*;

const SESSION_KEY: &str = "a-session-key-of-at-least-32-bytes-for-the-oidc-tests";

/// Nova with OIDC sign-in against a fresh provider that knows these accounts:
/// - `alex`: preferred_username `alex.kim` (a catalog User in payments-core);
/// - `mg`: a username the catalog does not know, but Maria Garcia's e-mail;
/// - `newbie`: neither name nor e-mail in the catalog.
async fn setup() -> Option<(TestApp, Provider)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let callback = format!("{base}/auth/oidc/callback");
    let accounts = json!({
        "alex": { "preferred_username": "alex.kim", "email": "alex.kim@example.com", "name": "Alex" },
        "mg": { "preferred_username": "mgarcia-sso", "email": "maria.garcia@example.com" },
        "newbie": { "preferred_username": "new.person", "email": "new.person@example.org" },
    });
    let provider = Provider::start(&callback, accounts).await?;
    let dir = tempfile::tempdir().unwrap();
    let key_file = write_file(dir.path(), "secrets/session.key", SESSION_KEY);
    let secret_file = write_file(dir.path(), "secrets/oidc-client-secret", CLIENT_SECRET);
    let issuer = provider.issuer.clone();
    let app = spawn_app_with(
        Backend::Sqlite,
        Options {
            locations: vec![example_catalog().display().to_string()],
            dir: Some(dir),
            listener: Some(listener),
            configure: Some(Box::new(move |c| {
                c.auth.session_key = Some(SecretRef::File(key_file));
                c.auth.oidc = Some(OidcConfig {
                    issuer,
                    client_id: CLIENT_ID.into(),
                    client_secret: Some(SecretRef::File(secret_file)),
                    redirect_url: callback,
                    scopes: vec!["openid".into(), "profile".into(), "email".into()],
                    username_claim: "preferred_username".into(),
                    email_claim: Some("email".into()),
                    user_namespace: "default".into(),
                });
            })),
            ..Default::default()
        },
    )
    .await;
    Some((app, provider))
}

/// Starts a sign-in at Nova: the provider URL Nova sends the browser to.
async fn start(app: &TestApp, browser: &Browser, next: &str) -> String {
    let r = browser.client.get(app.url(&format!("/auth/oidc/start?next={}", urlencode(next)))).send().await.unwrap();
    assert_eq!(r.status(), 303, "start redirects to the provider");
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    for attribute in ["nova_oidc=", "Path=/auth/oidc", "HttpOnly", "SameSite=Lax", "Max-Age=600"] {
        assert!(cookie.contains(attribute), "{attribute} missing in {cookie}");
    }
    r.headers()["location"].to_str().unwrap().to_string()
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Replaces query parameter `name` of `url`.
fn with_param(url: &str, name: &str, value: &str) -> String {
    let mut u = url::Url::parse(url).unwrap();
    let pairs: Vec<(String, String)> = u.query_pairs().map(|(k, v)| { let v = if k == name { value.to_string() } else { v.into_owned() }; (k.into_owned(), v) }).collect();
    u.query_pairs_mut().clear().extend_pairs(pairs);
    u.to_string()
}

fn param(url: &str, name: &str) -> String {
    url::Url::parse(url).unwrap().query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned()).unwrap_or_else(|| panic!("{name} in {url}"))
}

/// A whole sign-in as `login`; returns the callback's response.
async fn sign_in(app: &TestApp, browser: &Browser, login: &str, next: &str) -> reqwest::Response {
    let authorize = start(app, browser, next).await;
    let callback = browser.provider_sign_in(&authorize, login, &app.url("/auth/oidc/callback")).await;
    browser.client.get(callback).send().await.unwrap()
}

async fn me(app: &TestApp, browser: &Browser) -> (u16, Value) {
    let r = browser.client.get(app.url("/api/v1/me")).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// The newest `auth.sign_in` audit events.
async fn sign_in_events(app: &TestApp) -> Vec<nova::audit::StoredEvent> {
    app.state.audit.query(&AuditQuery { action: Some("auth.sign_in".into()), limit: 20, ..Default::default() }).await.unwrap().0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_maps_the_id_token_to_the_catalog_user_and_their_groups() {
    let Some((app, _provider)) = setup().await else { return };
    let browser = Browser::new();
    // With an identity provider configured, reads need sign-in.
    assert_eq!(me(&app, &browser).await.0, 401);
    let r = browser.client.get(app.url("/catalog?q=pay")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/sign-in?next=%2Fcatalog%3Fq%3Dpay");
    let page = browser.client.get(app.url("/sign-in")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("/auth/oidc/start"), "the sign-in page offers single sign-on");

    let authorize = start(&app, &browser, "/catalog?q=pay").await;
    assert!(authorize.starts_with(&_provider.issuer), "{authorize}");
    assert_eq!(param(&authorize, "code_challenge_method"), "S256");
    assert_eq!(param(&authorize, "client_id"), CLIENT_ID);
    let callback = browser.provider_sign_in(&authorize, "alex", &app.url("/auth/oidc/callback")).await;
    let r = browser.client.get(callback.clone()).send().await.unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    assert_eq!(r.headers()["location"], "/catalog?q=pay", "back where the sign-in started");
    let cookies: Vec<String> = r.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string()).collect();
    let session = cookies.iter().find(|c| c.starts_with("nova_session=")).expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=43200"] {
        assert!(session.contains(attribute), "{attribute} missing in {session}");
    }
    assert!(cookies.iter().any(|c| c.starts_with("nova_oidc=;") && c.contains("Max-Age=0")), "the sign-in cookie is cleared: {cookies:?}");

    let (status, v) = me(&app, &browser).await;
    assert_eq!(status, 200);
    assert_eq!(v["user"], "user:default/alex.kim");
    assert_eq!(v["displayName"], "Alex Kim", "the catalog's name, not the token's");
    assert_eq!(v["method"], "oidc");
    assert_eq!((v["known"].as_bool(), v["admin"].as_bool()), (Some(true), Some(false)));
    assert_eq!(
        v["claims"],
        json!(["user:default/alex.kim", "group:default/engineering", "group:default/payments", "group:default/payments-core"]),
        "their catalog groups and those groups' ancestors"
    );
    let home = browser.client.get(app.url("/")).send().await.unwrap().text().await.unwrap();
    assert!(home.contains("Signed in as <a href=\"/catalog/default/user/alex.kim\">Alex Kim</a>"), "{home}");
    let events = sign_in_events(&app).await;
    assert_eq!((events[0].actor.as_str(), events[0].outcome.as_str()), ("user:default/alex.kim", "success"));
    assert_eq!(events[0].details["method"], "oidc");

    // The callback cannot be replayed: its sign-in cookie is gone (and the code is spent).
    let replay = browser.client.get(callback).send().await.unwrap();
    assert_eq!(replay.status(), 401);

    // Signing out ends the session on the server: a copy of the cookie stops working.
    let cookie = format!("nova_session={}", browser.cookie(&app.base, "nova_session").unwrap());
    let r = browser.client.post(app.url("/sign-out")).header("origin", &app.base).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let r = app.client.get(app.url("/api/v1/me")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(r.status(), 401, "the signed-out session is revoked");
    let out = app.state.audit.query(&AuditQuery { action: Some("auth.sign_out".into()), limit: 5, ..Default::default() }).await.unwrap().0;
    assert_eq!(out[0].actor, "user:default/alex.kim");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_found_by_email_and_unknown_users_own_nothing() {
    let Some((app, _provider)) = setup().await else { return };
    let browser = Browser::new();
    assert_eq!(sign_in(&app, &browser, "mg", "/").await.status(), 303);
    let (_, v) = me(&app, &browser).await;
    assert_eq!(v["user"], "user:default/maria.garcia", "matched by spec.profile.email, not by the unknown username");
    assert!(v["claims"].as_array().unwrap().contains(&json!("group:default/payments")));

    let browser = Browser::new();
    assert_eq!(sign_in(&app, &browser, "newbie", "/").await.status(), 303);
    let (status, v) = me(&app, &browser).await;
    assert_eq!(status, 200, "people the catalog does not know may sign in");
    assert_eq!(v["user"], "user:default/new.person");
    assert_eq!((v["known"].as_bool(), v["claims"].clone()), (Some(false), json!(["user:default/new.person"])), "and own nothing");
    // ...so they may read but not act.
    let r = browser.client.post(app.url("/api/v1/catalog/locations/any/refresh")).send().await.unwrap();
    assert_eq!(r.status(), 404, "signed in: refreshing is allowed, the location does not exist");
    let r = browser.client.put(app.url("/api/v1/flags/some-flag")).json(&json!({"enabled": true, "everyone": true})).send().await.unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_or_stale_answers_are_refused_and_audited() {
    let Some((app, _provider)) = setup().await else { return };
    let callback_url = app.url("/auth/oidc/callback");
    let refused = |r: reqwest::Response| async move {
        let status = r.status().as_u16();
        let body = r.text().await.unwrap();
        assert_eq!(status, 401, "{body}");
        body
    };

    // A state that is not the one Nova sent.
    let browser = Browser::new();
    let authorize = start(&app, &browser, "/").await;
    let tampered = with_param(&authorize, "state", "forged-state");
    let callback = browser.provider_sign_in(&tampered, "alex", &callback_url).await;
    assert_eq!(param(callback.as_str(), "state"), "forged-state");
    let body = refused(browser.client.get(callback).send().await.unwrap()).await;
    assert!(body.contains("expired or was started in another browser"), "{body}");
    assert_eq!(me(&app, &browser).await.0, 401, "no session");

    // A nonce that is not the one Nova sent: the state matches, the ID token does not.
    let browser = Browser::new();
    let authorize = start(&app, &browser, "/").await;
    let callback = browser.provider_sign_in(&with_param(&authorize, "nonce", "forged-nonce"), "alex", &callback_url).await;
    let body = refused(browser.client.get(callback).send().await.unwrap()).await;
    assert!(body.contains("nonce does not match"), "{body}");

    // A PKCE challenge that is not Nova's: the provider refuses to exchange the code.
    let browser = Browser::new();
    let authorize = start(&app, &browser, "/").await;
    let other = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let callback = browser.provider_sign_in(&with_param(&authorize, "code_challenge", other), "alex", &callback_url).await;
    let body = refused(browser.client.get(callback).send().await.unwrap()).await;
    assert!(body.contains("invalid_grant"), "{body}");

    // The answer arriving in another browser (no sign-in cookie).
    let browser = Browser::new();
    let authorize = start(&app, &browser, "/").await;
    let callback = browser.provider_sign_in(&authorize, "alex", &callback_url).await;
    let body = refused(app.client.get(callback.clone()).send().await.unwrap()).await;
    assert!(body.contains("expired"), "{body}");

    // An expired sign-in cookie: the same cookie, re-sealed with an expiry in the past, is
    // refused; the original (still valid) then finishes the sign-in, so expiry alone decided.
    let original = browser.cookie(&callback_url, "nova_oidc").expect("the sign-in cookie");
    let key = SessionKey::from_secret(&Sensitive::new(SESSION_KEY.to_string())).unwrap();
    let now = nova::storage::now_ms();
    let pending: Value = key.open_value("oidc-login", &original, now).expect("Nova's sealed sign-in");
    let expired = key.seal_value("oidc-login", now - 1000, &pending);
    let r = app.client.get(callback.clone()).header("cookie", format!("nova_oidc={expired}")).send().await.unwrap();
    assert!(refused(r).await.contains("expired"));
    let r = app.client.get(callback).header("cookie", format!("nova_oidc={original}")).send().await.unwrap();
    assert_eq!(r.status(), 303, "the unexpired cookie works");

    // An error from the provider (the person cancelled).
    let r = app.client.get(app.url("/auth/oidc/callback?error=access_denied&error_description=End-User+aborted")).send().await.unwrap();
    assert!(refused(r).await.contains("access_denied"));

    // Every refusal is audited as a failed sign-in, without the code or any token.
    let failures: Vec<_> = sign_in_events(&app).await.into_iter().filter(|e| e.outcome == "failure").collect();
    assert_eq!(failures.len(), 6, "{failures:?}");
    for e in &failures {
        assert_eq!((e.actor.as_str(), e.target.as_str()), ("anonymous", "auth:oidc"));
        let text = e.details.to_string();
        assert!(!text.contains("code=") && !text.contains("eyJ"), "{text}");
    }
}
