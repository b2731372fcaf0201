//! A real OpenID Connect provider for sign-in tests: npm `oidc-provider` (pinned in
//! tests/oidc/package-lock.json, installed by `.ci/run`) run by `node tests/oidc/provider.mjs`
//! on 127.0.0.1, with one static client and its development interactions (a login form taking
//! any password, then a consent form). [`Browser`] drives a sign-in over plain HTTP the way a
//! browser without JavaScript would: it follows redirects and submits those forms.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;

use reqwest::cookie::{CookieStore, Jar};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The client Nova signs in as.
pub const CLIENT_ID: &str = "nova-test";
/// Its secret (a test value; the canary tests cover real secrets).
pub const CLIENT_SECRET: &str = "oidc-client-secret-for-tests-only";

/// A running provider; stopped when dropped.
pub struct Provider {
    pub issuer: String,
    _child: Child,
}

fn package_dir() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/oidc")
}

/// Whether `node` and the installed package are available; fails under CI, skips loudly elsewhere.
pub fn require_provider() -> Option<()> {
    let node = std::process::Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    let installed = package_dir().join("node_modules/oidc-provider/package.json").exists();
    let value = (node && installed).then(String::new);
    super::require("npm oidc-provider", value, "install node and run `npm ci` in tests/oidc").map(|_| ())
}

impl Provider {
    /// Starts the provider with a client whose one redirect URI is `redirect_uri`, and
    /// `accounts` (JSON: login → claims). `None` when it is not available (see
    /// [`require_provider`]).
    pub async fn start(redirect_uri: &str, accounts: serde_json::Value) -> Option<Self> {
        require_provider()?;
        let mut child = Command::new("node")
            .arg("provider.mjs")
            .current_dir(package_dir())
            .env("OIDC_CLIENT_ID", CLIENT_ID)
            .env("OIDC_CLIENT_SECRET", CLIENT_SECRET)
            .env("OIDC_REDIRECT_URI", redirect_uri)
            .env("OIDC_ACCOUNTS", accounts.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("node starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(std::time::Duration::from_secs(20), lines.next_line())
            .await
            .expect("the provider starts within 20 s")
            .expect("provider output")
            .expect("the provider prints its issuer");
        let issuer = line.strip_prefix("issuer ").expect("`issuer <url>`").trim().to_string();
        // Keep reading, so the provider never writes into a closed pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Some(Self { issuer, _child: child })
    }
}

/// A cookie-keeping HTTP client that signs in like a browser without JavaScript.
pub struct Browser {
    pub client: reqwest::Client,
    pub jar: Arc<Jar>,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

/// Where a sign-in ended: the last response that was not a redirect, or the request to Nova's
/// callback, whichever came first.
pub struct Stop {
    pub url: reqwest::Url,
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
}

impl Browser {
    pub fn new() -> Self {
        let jar = Arc::new(Jar::default());
        let client = reqwest::Client::builder().cookie_provider(jar.clone()).redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Self { client, jar }
    }

    /// The value of cookie `name` the jar would send to `url`.
    pub fn cookie(&self, url: &str, name: &str) -> Option<String> {
        let header = self.jar.cookies(&url.parse().unwrap())?;
        header.to_str().ok()?.split("; ").filter_map(|p| p.split_once('=')).find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    /// GET `url`, following redirects (at most 20) until an answer that is not one.
    pub async fn follow(&self, url: &str) -> Stop {
        let mut url: reqwest::Url = url.parse().unwrap();
        for _ in 0..20 {
            let r = self.client.get(url.clone()).send().await.expect("request");
            let status = r.status().as_u16();
            let location = r.headers().get("location").map(|v| v.to_str().unwrap().to_string());
            match (status, location) {
                (301..=308, Some(l)) => url = url.join(&l).unwrap(),
                (_, location) => return Stop { url, status, location, body: r.text().await.unwrap() },
            }
        }
        panic!("too many redirects from {url}");
    }

    /// Signs in at the provider as `login`: follows `authorize_url`, submits the login form, then
    /// the consent form, and stops at the first request to a URL starting with `stop_at` (Nova's
    /// callback), which it returns unsent.
    pub async fn provider_sign_in(&self, authorize_url: &str, login: &str, stop_at: &str) -> reqwest::Url {
        let mut url: reqwest::Url = authorize_url.parse().unwrap();
        let mut form: Option<Vec<(String, String)>> = None;
        for _ in 0..30 {
            if url.as_str().starts_with(stop_at) {
                return url;
            }
            let request = match form.take() {
                Some(fields) => self.client.post(url.clone()).form(&fields),
                None => self.client.get(url.clone()),
            };
            let r = request.send().await.expect("request to the provider");
            let status = r.status().as_u16();
            if let Some(l) = r.headers().get("location") {
                url = url.join(l.to_str().unwrap()).unwrap();
                continue;
            }
            let body = r.text().await.unwrap();
            assert_eq!(status, 200, "the provider answered {status} at {url}: {body}");
            let action = attribute(&body, "<form", "action").unwrap_or_else(|| panic!("no form at {url}: {body}"));
            let prompt = attribute(&body, "name=\"prompt\"", "value").unwrap_or_default();
            let fields = match prompt.as_str() {
                "login" => vec![("prompt".into(), "login".into()), ("login".into(), login.into()), ("password".into(), "any".into())],
                "consent" => vec![("prompt".into(), "consent".into())],
                other => panic!("unexpected provider form {other:?} at {url}: {body}"),
            };
            url = url.join(&action.replace("&amp;", "&")).unwrap();
            form = Some(fields);
        }
        panic!("the provider did not send the browser back");
    }
}

/// The value of `attr` in the first tag that contains `marker`.
fn attribute(html: &str, marker: &str, attr: &str) -> Option<String> {
    let at = html.find(marker)?;
    let start = html[..at].rfind('<')?;
    let end = at + html[at..].find('>')?;
    let tag = &html[start..end];
    let key = format!("{attr}=\"");
    let from = tag.find(&key)? + key.len();
    Some(tag[from..from + tag[from..].find('"')?].to_string())
}
