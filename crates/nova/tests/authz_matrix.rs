//! The authorization matrix. First the policy itself: every [`Action`] for every kind of
//! caller (a direct member of the owning team, a member of one of its sub-teams, a member of
//! its parent team only, another team, a platform admin, anonymous), with claims computed by
//! the catalog from the example organization, against the table in docs/IDENTITY.md.
//! Then the router: every mutating route, found by reading the router's source, refuses
//! anonymous callers, and refuses signed-in callers who neither own the target nor are admins
//! where the route needs that. A new mutating route fails this test until it is listed here.

mod support;

use std::collections::BTreeSet;

use nova::auth::{Actor, SignInMethod, User};
use nova::authz::{Action, Decision, Target, decide};
use nova_domain::EntityRef;
use support::*;

/// What the policy table says an action needs.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Needs {
    /// Everyone signed in; anonymous callers too when anonymous reads are on.
    Reading,
    /// Everyone signed in.
    SignedIn,
    /// Owners of the target (their claims include its owner) and admins.
    Owner,
    /// Platform admins.
    Admin,
}

/// The documented table (docs/IDENTITY.md, "Authorization"). The match has no wildcard, so a
/// new action does not compile until it has a row.
fn needs(action: Action) -> Needs {
    match action {
        Action::Read => Needs::Reading,
        Action::Refresh => Needs::SignedIn,
        Action::ReadSensitive | Action::Build | Action::CancelBuild | Action::ManageCredentials | Action::Promote | Action::Approve => Needs::Owner,
        Action::ManageFlags | Action::ReadAudit | Action::ManageLocations | Action::Admin => Needs::Admin,
    }
}

fn r(s: &str) -> EntityRef {
    EntityRef::parse(s).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_action_for_every_kind_of_caller() {
    let app = spawn_app(Backend::Sqlite).await;
    let snap = app.state.catalog.snapshot();
    let admin_group = app.state.auth.admin_group.clone().expect("the tests' admin group");
    let actor = |name: &str| {
        let user = r(&format!("user:default/{name}"));
        assert!(snap.get(&user).is_some(), "{user} is in the example catalog");
        let claims = snap.claims(&user, app.state.config.catalog.ownership);
        let admin = claims.contains(&admin_group);
        Actor::User(User { entity_ref: user, display_name: name.into(), claims, method: SignInMethod::Token, admin })
    };
    // The target is owned by `payments` (children: payments-core, payments-risk; parent: engineering).
    let owner = r("group:default/payments");
    let targets = [
        Target::Entity { entity: r("component:default/payments-ledger"), owner: Some(owner.clone()) },
        Target::Team(owner.clone()),
    ];
    let callers: [(&str, Actor, bool); 6] = [
        ("direct member", actor("maria.garcia"), true),
        ("sub-team member", actor("lee.wong"), true),
        ("parent-team member only", actor("ana.lima"), false),
        ("other team", actor("nina.patel"), false),
        ("platform admin", actor("pat.chen"), true),
        ("anonymous", Actor::Anonymous, false),
    ];
    let mut checked = 0;
    for action in Action::ALL {
        for target in targets.iter().chain([&Target::Platform]) {
            for anonymous_read in [true, false] {
                for (who, caller, owns) in &callers {
                    let admin = caller.user().is_some_and(|u| u.admin);
                    let got = decide(caller, action, target, anonymous_read);
                    let expected_allow = match (caller, needs(action)) {
                        (Actor::Anonymous, Needs::Reading) => anonymous_read,
                        (Actor::Anonymous, _) => false,
                        (_, Needs::Reading | Needs::SignedIn) => true,
                        (_, Needs::Owner) => admin || (*owns && !matches!(target, Target::Platform)),
                        (_, Needs::Admin) => admin,
                    };
                    let ctx = format!("{who} / {action:?} / {} / anonymous_read={anonymous_read}: {got:?}", target.audit_name());
                    match (&got, expected_allow, caller) {
                        (Decision::Allow, true, _) => {}
                        (Decision::SignInRequired(_), false, Actor::Anonymous) => {}
                        (Decision::Deny(why), false, Actor::User(_)) => {
                            if needs(action) == Needs::Owner && !matches!(target, Target::Platform) {
                                assert!(why.contains("payments"), "a refusal names the owner: {ctx}");
                            }
                        }
                        _ => panic!("unexpected decision: {ctx}"),
                    }
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, Action::ALL.len() * 3 * 2 * 6);
}

/// One route of the router, as written in its source.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Route {
    method: String,
    path: String,
}

fn source(rel: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(rel)).unwrap_or_else(|e| panic!("src/{rel}: {e}"))
}

/// The text from `open` (an opening parenthesis) to its matching closing one.
fn balanced(text: &str, open: usize) -> &str {
    let mut depth = 0;
    for (i, c) in text[open..].char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return &text[open..open + i + 1];
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced parentheses")
}

/// Every `.route("path", get(..).post(..))` in a module, with its methods.
fn module_routes(rel: &str, prefix: &str) -> Vec<Route> {
    let text = source(rel);
    let mut out = Vec::new();
    for (at, _) in text.match_indices(".route(") {
        let call = balanced(&text, at + ".route".len());
        let path = call.split('"').nth(1).expect("a route path literal");
        let handlers = &call[call.find(',').unwrap()..];
        for method in ["get", "post", "put", "patch", "delete"] {
            let needle = format!("{method}(");
            if handlers.match_indices(&needle).any(|(i, _)| i == 0 || !handlers[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_')) {
                out.push(Route { method: method.to_uppercase(), path: format!("{prefix}{path}") });
            }
        }
    }
    out
}

/// Every route of the router: `http::router` nests or merges each module's `routes()`.
fn all_routes() -> Vec<Route> {
    let router = source("http/mod.rs");
    let body = &router[router.find("pub fn router").unwrap()..];
    let body = &body[..body.find("\n}\n").unwrap()];
    let mut routes = Vec::new();
    let mut modules = 0;
    for line in body.lines() {
        let line = line.trim();
        let prefix = if line.starts_with(".nest(") { line.split('"').nth(1).unwrap().to_string() } else if line.starts_with(".merge(") { String::new() } else { continue };
        for (at, _) in line.match_indices("::routes()") {
            let start = line[..at].rfind(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).map_or(0, |i| i + 1);
            let module = &line[start..at];
            let rel = match module {
                "crate::web" => "web/mod.rs".to_string(),
                m => format!("http/{m}.rs"),
            };
            routes.extend(module_routes(&rel, &prefix));
            modules += 1;
        }
    }
    assert!(modules >= 10, "read {modules} route modules from http::router");
    routes.sort();
    routes.dedup();
    routes
}

/// Who may call a mutating route.
#[derive(Debug, Clone, Copy, PartialEq)]
enum RouteNeeds {
    /// A way in or out (sign-in, sign-out), or a read sent as POST: open to anonymous callers.
    Open(&'static str),
    /// Anyone signed in (their own tokens, asking for fresh data).
    SignedIn,
    /// Owners of the target (the samples below target what payments-core owns) and admins.
    Owner,
    /// Platform admins.
    Admin,
    /// Callers who sign the request with a team's intake secret (external CI); a session or
    /// token does not help, so everyone else is refused with 401.
    Signed,
    /// Members of the environment's approver groups (or the component's owners); the sample
    /// promotion does not exist, so a signed-in caller learns only that (404).
    Approver,
}

/// Every mutating route and who may call it. Sample path parameters target what payments-core
/// owns; the signed-in outsider below is in storefront and not an admin.
const MUTATING: &[(&str, &str, RouteNeeds, &str)] = &[
    ("POST", "/sign-in", RouteNeeds::Open("development sign-in is the way in"), "user=user:default/alex.kim"),
    ("POST", "/sign-out", RouteNeeds::Open("signing out without a session does nothing"), ""),
    ("POST", "/api/catalog/entities/by-refs", RouteNeeds::Open("a batch read (Backstage's API); gated like every read"), "{\"entityRefs\": []}"),
    ("POST", "/ofrep/v1/evaluate/flags", RouteNeeds::SignedIn, "{}"),
    ("POST", "/ofrep/v1/evaluate/flags/{key}", RouteNeeds::SignedIn, "{}"),
    ("POST", "/api/v1/tokens", RouteNeeds::SignedIn, "{\"name\": \"matrix\"}"),
    ("DELETE", "/api/v1/tokens/{id}", RouteNeeds::SignedIn, ""),
    ("POST", "/tokens", RouteNeeds::SignedIn, "name=matrix"),
    ("POST", "/tokens/{id}/revoke", RouteNeeds::SignedIn, ""),
    ("POST", "/api/v1/catalog/locations/{id}/refresh", RouteNeeds::SignedIn, ""),
    ("POST", "/api/v1/components/{kind}/{namespace}/{name}/images/refresh", RouteNeeds::SignedIn, ""),
    ("POST", "/catalog/{namespace}/component/{name}/images/refresh", RouteNeeds::SignedIn, ""),
    ("POST", "/api/catalog/locations", RouteNeeds::Admin, "{\"type\": \"file\", \"target\": \"matrix.yaml\"}"),
    ("DELETE", "/api/catalog/locations/{id}", RouteNeeds::Admin, ""),
    ("POST", "/api/v1/flags", RouteNeeds::Admin, "{\"key\": \"matrix.flag\"}"),
    ("PUT", "/api/v1/flags/{key}", RouteNeeds::Admin, "{\"enabled\": false}"),
    ("POST", "/flags/{key}", RouteNeeds::Admin, "stage=off"),
    ("POST", "/flags/{key}/switch-off", RouteNeeds::Admin, ""),
    ("POST", "/api/v1/components/{component}/builds", RouteNeeds::Owner, "{\"gitRef\": \"main\", \"dockerfile\": \"Dockerfile\"}"),
    ("POST", "/api/v1/builds/{id}/cancel", RouteNeeds::Owner, ""),
    ("POST", "/builds", RouteNeeds::Owner, "component=component:default/payment-service&gitRef=main&dockerfile=Dockerfile&idempotencyKey=matrix"),
    ("PUT", "/api/v1/teams/{team}/credentials/{name}", RouteNeeds::Owner, "{\"kind\": \"https-token\", \"username\": \"git\", \"repositories\": [\"https://git.example.com/a.git\"], \"secret\": \"x\"}"),
    ("DELETE", "/api/v1/teams/{team}/credentials/{name}", RouteNeeds::Owner, ""),
    ("POST", "/teams/{team}/credentials", RouteNeeds::Owner, "name=matrix&kind=https-token&username=git&repositories=https%3A%2F%2Fgit.example.com%2Fa.git&secret=x"),
    ("POST", "/teams/{team}/credentials/{name}/revoke", RouteNeeds::Owner, ""),
    ("POST", "/api/v1/components/{component}/promotions", RouteNeeds::Owner, "{\"digest\": \"sha256:0000000000000000000000000000000000000000000000000000000000000000\", \"environment\": \"dev\"}"),
    ("DELETE", "/api/v1/components/{component}/environments/{environment}/pin", RouteNeeds::Owner, ""),
    ("POST", "/api/v1/components/{component}/environments/{environment}/rollback", RouteNeeds::Owner, "{}"),
    ("POST", "/promotions", RouteNeeds::Owner, "component=component:default/payment-service&digest=sha256:0000000000000000000000000000000000000000000000000000000000000000&environment=dev"),
    ("POST", "/rollbacks", RouteNeeds::Owner, "component=component:default/payment-service&environment=dev"),
    ("POST", "/pins/release", RouteNeeds::Owner, "component=component:default/payment-service&environment=dev"),
    ("POST", "/api/v1/teams/{team}/intake-secret", RouteNeeds::Owner, ""),
    ("POST", "/api/v1/promotions/{id}/approvals", RouteNeeds::Approver, ""),
    ("POST", "/api/v1/promotions/{id}/reject", RouteNeeds::Approver, ""),
    ("POST", "/promotions/{id}/approve", RouteNeeds::Approver, ""),
    ("POST", "/promotions/{id}/reject", RouteNeeds::Approver, ""),
    ("POST", "/api/v1/artifacts", RouteNeeds::Signed, "{\"component\": \"payment-service\", \"repository\": \"registry.example.com/payments/payment-service\", \"digest\": \"sha256:0000000000000000000000000000000000000000000000000000000000000000\"}"),
];

fn sample_path(path: &str) -> String {
    let samples = [
        ("{namespace}", "default"),
        ("{kind}", "component"),
        ("{name}", "payment-service"),
        ("{component}", "payment-service"),
        ("{team}", "payments-core"),
        ("{key}", "registry.image-view"),
        ("{id}", "does-not-exist"),
        ("{environment}", "dev"),
    ];
    let mut out = path.to_string();
    for (k, v) in samples {
        out = out.replace(k, v);
    }
    assert!(!out.contains('{'), "add a sample value for a parameter of {path}");
    out
}

#[test]
fn every_mutating_route_is_in_the_matrix() {
    let found: BTreeSet<(String, String)> =
        all_routes().into_iter().filter(|r| r.method != "GET").map(|r| (r.method, r.path)).collect();
    let listed: BTreeSet<(String, String)> = MUTATING.iter().map(|(m, p, _, _)| (m.to_string(), p.to_string())).collect();
    let missing: Vec<_> = found.difference(&listed).collect();
    assert!(missing.is_empty(), "mutating routes without an authorization row in tests/authz_matrix.rs: {missing:?}");
    let stale: Vec<_> = listed.difference(&found).collect();
    assert!(stale.is_empty(), "rows for routes the router no longer has: {stale:?}");
}

on_both_backends! {
    async fn mutating_routes_refuse_anonymous_callers_and_outsiders(backend: Backend) {
        // Demo mode, so that development sign-in (the one open way in) is on.
        let app = spawn_app_with(backend, Options {
            locations: vec![example_catalog().display().to_string()],
            configure: Some(Box::new(|c| c.server.demo = true)),
            ..Default::default()
        }).await;
        let outsider = app.token_for("user:default/nina.patel").await;
        let send = |method: &str, path: &str, body: &str, token: Option<&str>| {
            let app = &app;
            let (method, path, body, token) = (method.parse::<reqwest::Method>().unwrap(), sample_path(path), body.to_string(), token.map(str::to_string));
            async move {
                let api = path.starts_with("/api/") || path.starts_with("/ofrep/");
                let content_type = if api { "application/json" } else { "application/x-www-form-urlencoded" };
                let mut r = app.client.request(method, app.url(&path)).header("origin", &app.base).header("content-type", content_type).body(body);
                if let Some(t) = token {
                    r = r.bearer_auth(t);
                }
                let r = r.send().await.unwrap();
                (r.status().as_u16(), r.text().await.unwrap())
            }
        };
        let mut refused_outsider = 0;
        for (method, path, needs, body) in MUTATING {
            let (status, text) = send(method, path, body, None).await;
            match needs {
                RouteNeeds::Open(why) => assert!(status != 401 && status != 403, "{method} {path} is open ({why}): {status} {text}"),
                _ => assert_eq!(status, 401, "{method} {path} refuses anonymous callers: {text}"),
            }
            if *needs == RouteNeeds::Signed {
                let (status, text) = send(method, path, body, Some(&outsider)).await;
                assert_eq!(status, 401, "{method} {path} needs a signature; a token is not one: {text}");
            }
            if *needs == RouteNeeds::Approver {
                let (status, text) = send(method, path, body, Some(&outsider)).await;
                assert_eq!(status, 404, "{method} {path} for a promotion that does not exist: {text}");
            }
            if matches!(needs, RouteNeeds::Owner | RouteNeeds::Admin) {
                let (status, text) = send(method, path, body, Some(&outsider)).await;
                // Builds that do not exist cannot say who owns them: 404 before any ownership check.
                let expected: &[u16] = if path.contains("/builds/{id}") { &[403, 404] } else { &[403] };
                assert!(expected.contains(&status), "{method} {path} refuses a non-owner who is not an admin: {status} {text}");
                refused_outsider += usize::from(status == 403);
                if status == 403 && *needs == RouteNeeds::Owner {
                    assert!(text.contains("payments-core"), "the refusal names the owning team: {text}");
                }
            }
        }
        // The catalog, flags and locations are as they were.
        assert!(app.state.flags.get("matrix.flag").is_none());
        assert!(app.state.catalog.locations().await.unwrap().iter().all(|l| !l.spec.target.contains("matrix")));
        // Every refusal of the outsider is in the audit log.
        let q = nova::audit::AuditQuery { actor: Some("user:default/nina.patel".into()), action: Some("authz.deny.".into()), limit: 1000, ..Default::default() };
        let denials = app.state.audit.query(&q).await.unwrap().0;
        assert_eq!(denials.len(), refused_outsider, "{denials:?}");
    }
}
