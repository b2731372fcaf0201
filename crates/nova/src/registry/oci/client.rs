//! The HTTP side of the Distribution API: authentication (anonymous, basic, and the bearer
//! token challenge flow with scopes), retries with backoff on 429 and 5xx, a cap on every
//! body read, and blob redirects followed without the registry's credentials. Requests may
//! carry a body ([`Client::send_body`]), which the write side ([`super::push`]) uses.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use nova_domain::Sensitive;
use reqwest::header::{self, HeaderMap};
use reqwest::{Method, StatusCode};
use tokio::sync::Semaphore;

use crate::registry::config::OciConfig;
use crate::secrets::SecretRef;
use crate::registry::provider::RegistryError;
use crate::registry::safe_net::{self, Follow};

/// Redirects followed for one blob.
const MAX_REDIRECTS: usize = 5;
/// Longest wait honoured from a `Retry-After` header.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);

/// How the registry wants to be authenticated: anonymous until it challenges Nova.
#[derive(Debug, Clone)]
enum AuthMode {
    Anonymous,
    Basic,
    Bearer { realm: url::Url, service: Option<String> },
}

/// A bearer token and when to stop using it.
struct Token {
    value: Sensitive<String>,
    until: Instant,
}

/// The password sent with the user name: a reference read when needed, or a value already
/// resolved (a release environment's push credential from the secret store).
enum Password {
    Ref(SecretRef),
    Value(Sensitive<String>),
}

/// A request body: its content type, bytes and, for an upload chunk, its `Content-Range`.
pub struct Payload<'a> {
    pub content_type: &'a str,
    pub bytes: bytes::Bytes,
    pub content_range: Option<String>,
}

impl<'a> Payload<'a> {
    /// A body without a range.
    pub fn new(content_type: &'a str, bytes: bytes::Bytes) -> Self {
        Self { content_type, bytes, content_range: None }
    }
}

/// A response body read within the size cap.
pub struct Body {
    pub bytes: bytes::Bytes,
    pub headers: HeaderMap,
}

/// One registry's HTTP client.
pub struct Client {
    base: url::Url,
    username: Option<String>,
    password: Option<Password>,
    http: reqwest::Client,
    /// For redirects away from the registry: no credentials, resolver refuses unsafe addresses.
    outside: reqwest::Client,
    follow: Follow,
    limit: Semaphore,
    max_attempts: u32,
    max_bytes: usize,
    mode: Mutex<AuthMode>,
    tokens: Mutex<HashMap<String, Arc<Token>>>,
}

impl Client {
    /// A client for `config`, with `timeout` per call and `max_bytes` per body, following
    /// redirects and token realms only where `outbound` allows.
    pub fn new(config: &OciConfig, timeout: Duration, max_bytes: usize, outbound: crate::outbound::Outbound) -> Result<Self, String> {
        let follow = Follow { outbound, allow_loopback: config.url.host_str().is_some_and(safe_net::is_local_host) };
        let user_agent = concat!("nova/", env!("CARGO_PKG_VERSION"));
        let build = |b: reqwest::ClientBuilder| {
            b.redirect(reqwest::redirect::Policy::none()).timeout(timeout).connect_timeout(timeout.min(Duration::from_secs(10))).user_agent(user_agent).build()
        };
        let http = build(reqwest::Client::builder()).map_err(|e| e.to_string())?;
        let outside = build(reqwest::Client::builder().dns_resolver(follow.resolver())).map_err(|e| e.to_string())?;
        let mut base = config.url.clone();
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        Ok(Self {
            base,
            username: config.username.clone(),
            password: config.password.clone().map(Password::Ref),
            http,
            outside,
            follow,
            limit: Semaphore::new(config.max_concurrency),
            max_attempts: config.max_attempts,
            max_bytes,
            mode: Mutex::new(AuthMode::Anonymous),
            tokens: Mutex::new(HashMap::new()),
        })
    }

    /// The same client authenticating as `username` with `password` instead of the
    /// configured credentials (a push credential).
    pub fn with_credentials(mut self, username: String, password: Sensitive<String>) -> Self {
        self.username = Some(username);
        self.password = Some(Password::Value(password));
        self
    }

    /// The URL of an API path (`v2/...`) with query pairs.
    pub fn url(&self, path: &str, query: &[(&str, &str)]) -> url::Url {
        let mut u = self.base.join(path).expect("API paths are relative");
        if !query.is_empty() {
            u.query_pairs_mut().extend_pairs(query);
        }
        u
    }

    /// Resolves a `Link` or `Location` value against the registry's base URL.
    pub fn resolve(&self, reference: &str) -> Result<url::Url, RegistryError> {
        self.base.join(reference).map_err(|e| RegistryError::BadResponse(format!("registry sent an unusable URL: {e}")))
    }

    /// Whether a URL is on the registry's own origin (credentials may go there).
    fn same_origin(&self, u: &url::Url) -> bool {
        u.scheme() == self.base.scheme() && u.host_str() == self.base.host_str() && u.port_or_known_default() == self.base.port_or_known_default()
    }

    /// Sends a request to the registry with authentication, retrying 429/5xx with backoff.
    /// `scope` is the token scope (`repository:NAME:pull`; several separated by spaces).
    /// Answers with the final response, whatever its status, except that 401 after
    /// authenticating becomes [`RegistryError::Denied`].
    pub async fn send(&self, method: Method, url: url::Url, accept: Option<&str>, scope: &str) -> Result<reqwest::Response, RegistryError> {
        self.send_body(method, url, accept, None, scope).await
    }

    /// [`Client::send`] with a body (sent again on a retry).
    pub async fn send_body(&self, method: Method, url: url::Url, accept: Option<&str>, body: Option<&Payload<'_>>, scope: &str) -> Result<reqwest::Response, RegistryError> {
        if !self.same_origin(&url) {
            return Err(RegistryError::Refused(format!("the registry pointed Nova at another origin ({}) for an API call", safe_net::url_for_message(&url))));
        }
        let _permit = self.limit.acquire().await.expect("semaphore is never closed");
        let mut attempt = 0;
        let mut reauthenticated = false;
        loop {
            attempt += 1;
            let auth = self.authorization(scope).await?;
            let mut req = self.http.request(method.clone(), url.clone());
            if let Some(a) = accept {
                req = req.header(header::ACCEPT, a);
            }
            if let Some(a) = &auth {
                req = req.header(header::AUTHORIZATION, a.expose().as_str());
            }
            if let Some(p) = body {
                req = req.header(header::CONTENT_TYPE, p.content_type).body(p.bytes.clone());
                if let Some(range) = &p.content_range {
                    req = req.header(header::CONTENT_RANGE, range.as_str());
                }
            }
            let response = match req.send().await {
                Ok(r) => r,
                Err(e) if attempt < self.max_attempts && (e.is_timeout() || e.is_connect()) => {
                    tokio::time::sleep(backoff(attempt)).await;
                    continue;
                }
                Err(e) => return Err(transport_error(e)),
            };
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED {
                if reauthenticated {
                    return Err(RegistryError::Denied(format!("the registry rejected Nova's credentials ({})", error_code(response).await)));
                }
                reauthenticated = true;
                self.learn_challenge(response.headers(), scope)?;
                attempt -= 1;
                continue;
            }
            if (status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()) && attempt < self.max_attempts {
                let wait = retry_after(response.headers()).unwrap_or_else(|| backoff(attempt));
                tokio::time::sleep(wait).await;
                continue;
            }
            if status == StatusCode::TOO_MANY_REQUESTS {
                return Err(RegistryError::RateLimited(format!("the registry kept answering 429 after {attempt} attempts")));
            }
            if status.is_server_error() {
                return Err(RegistryError::Unavailable(format!("the registry answered {status} after {attempt} attempts")));
            }
            if status == StatusCode::FORBIDDEN {
                return Err(RegistryError::Denied(format!("the registry denied access ({})", error_code(response).await)));
            }
            return Ok(response);
        }
    }

    /// Reads a body, refusing more than the cap.
    pub async fn read(&self, mut response: reqwest::Response) -> Result<Body, RegistryError> {
        if response.content_length().is_some_and(|n| n > self.max_bytes as u64) {
            return Err(self.too_large());
        }
        let headers = response.headers().clone();
        let mut out = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
            if out.len() + chunk.len() > self.max_bytes {
                return Err(self.too_large());
            }
            out.extend_from_slice(&chunk);
        }
        Ok(Body { bytes: out.into(), headers })
    }

    fn too_large(&self) -> RegistryError {
        RegistryError::BadResponse(format!("the registry sent a document larger than registry.max_manifest_bytes ({} bytes)", self.max_bytes))
    }

    /// Fetches a blob within the size cap (see [`Client::blob_response`]).
    pub async fn blob(&self, repository: &str, digest: &str) -> Result<Body, RegistryError> {
        let response = self.blob_response(repository, digest).await?;
        self.read(response).await
    }

    /// Starts fetching a blob, following redirects to other hosts (S3, CDNs) without
    /// credentials and only to safe addresses; answers the successful response, unread.
    pub async fn blob_response(&self, repository: &str, digest: &str) -> Result<reqwest::Response, RegistryError> {
        let url = self.url(&format!("v2/{repository}/blobs/{digest}"), &[]);
        let scope = format!("repository:{repository}:pull");
        let mut response = self.send(Method::GET, url, None, &scope).await?;
        for _ in 0..=MAX_REDIRECTS {
            if !response.status().is_redirection() {
                return match response.status() {
                    s if s.is_success() => Ok(response),
                    StatusCode::NOT_FOUND => Err(RegistryError::NotFound(format!("blob {digest} does not exist"))),
                    s => Err(RegistryError::BadResponse(format!("blob {digest}: the registry answered {s}"))),
                };
            }
            let location = response
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| RegistryError::BadResponse("a redirect without a Location header".into()))?;
            let next = response.url().join(location).map_err(|e| RegistryError::BadResponse(format!("an unusable redirect: {e}")))?;
            self.follow.check_url(&next)?;
            let _permit = self.limit.acquire().await.expect("semaphore is never closed");
            response = self.outside.get(next.clone()).send().await.map_err(|e| redirect_error(&next, e))?;
        }
        Err(RegistryError::BadResponse(format!("blob {digest}: more than {MAX_REDIRECTS} redirects")))
    }

    /// The `Authorization` value for `scope`, fetching a token when needed.
    async fn authorization(&self, scope: &str) -> Result<Option<Sensitive<String>>, RegistryError> {
        let mode = self.mode.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match mode {
            AuthMode::Anonymous => Ok(None),
            AuthMode::Basic => Ok(Some(self.basic()?.ok_or_else(|| RegistryError::Denied("the registry asks for credentials and none are configured".into()))?)),
            AuthMode::Bearer { realm, service } => {
                let cached = self.tokens.lock().unwrap_or_else(|e| e.into_inner()).get(scope).cloned();
                if let Some(t) = cached.filter(|t| t.until > Instant::now()) {
                    return Ok(Some(Sensitive::new(format!("Bearer {}", t.value.expose()))));
                }
                let token = self.fetch_token(&realm, service.as_deref(), scope).await?;
                let value = Sensitive::new(format!("Bearer {}", token.value.expose()));
                self.tokens.lock().unwrap_or_else(|e| e.into_inner()).insert(scope.to_string(), Arc::new(token));
                Ok(Some(value))
            }
        }
    }

    /// The basic-auth header value from the configured credentials, if any.
    fn basic(&self) -> Result<Option<Sensitive<String>>, RegistryError> {
        let (Some(user), Some(password)) = (&self.username, &self.password) else { return Ok(None) };
        let password = match password {
            Password::Ref(r) => r.resolve_local("the registry password").map_err(|e| RegistryError::Config(e.to_string()))?,
            Password::Value(v) => v.clone(),
        };
        let raw = format!("{user}:{}", password.expose());
        Ok(Some(Sensitive::new(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw)))))
    }

    /// Records what a 401's `WWW-Authenticate` asks for; drops cached tokens of the scope.
    fn learn_challenge(&self, headers: &HeaderMap, scope: &str) -> Result<(), RegistryError> {
        let challenge = headers
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| RegistryError::Denied("the registry answered 401 without a WWW-Authenticate challenge".into()))?;
        let (scheme, params) = parse_challenge(challenge);
        let mode = match scheme.to_ascii_lowercase().as_str() {
            "basic" => AuthMode::Basic,
            "bearer" => {
                let realm = params.get("realm").ok_or_else(|| RegistryError::BadResponse("bearer challenge without a realm".into()))?;
                let realm = url::Url::parse(realm).map_err(|e| RegistryError::BadResponse(format!("bearer realm is not a URL: {e}")))?;
                if realm.scheme() != "https" && self.base.scheme() == "https" {
                    return Err(RegistryError::Refused("the registry's token realm is not https; Nova will not send credentials there".into()));
                }
                self.follow.check_url(&realm)?;
                AuthMode::Bearer { realm, service: params.get("service").cloned() }
            }
            other => return Err(RegistryError::Denied(format!("the registry asks for unsupported authentication {other:?}"))),
        };
        self.tokens.lock().unwrap_or_else(|e| e.into_inner()).remove(scope);
        *self.mode.lock().unwrap_or_else(|e| e.into_inner()) = mode;
        Ok(())
    }

    /// Asks the token service for a token for `scope`, with basic credentials when configured
    /// (anonymous otherwise, as public registries allow).
    async fn fetch_token(&self, realm: &url::Url, service: Option<&str>, scope: &str) -> Result<Token, RegistryError> {
        let mut url = realm.clone();
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            for s in scope.split(' ').filter(|s| !s.is_empty()) {
                q.append_pair("scope", s);
            }
        }
        let client = if self.same_origin(&url) { &self.http } else { &self.outside };
        let mut req = client.get(url);
        if let Some(basic) = self.basic()? {
            req = req.header(header::AUTHORIZATION, basic.expose().as_str());
        }
        let response = req.send().await.map_err(|e| redirect_error(realm, e))?;
        match response.status() {
            s if s.is_success() => {}
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                return Err(RegistryError::Denied(format!("the token service refused Nova's credentials for {scope}")));
            }
            s if s.is_server_error() => return Err(RegistryError::Unavailable(format!("the token service answered {s}"))),
            s => return Err(RegistryError::BadResponse(format!("the token service answered {s}"))),
        }
        let body = self.read(response).await?;
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            token: Option<Sensitive<String>>,
            access_token: Option<Sensitive<String>>,
            expires_in: Option<u64>,
        }
        let t: TokenResponse = serde_json::from_slice(&body.bytes).map_err(|_| RegistryError::BadResponse("the token service did not answer JSON".into()))?;
        let value = t.token.or(t.access_token).ok_or_else(|| RegistryError::BadResponse("the token service answered without a token".into()))?;
        // Use a token for a little less than its life (60 s is the spec's default).
        let life = Duration::from_secs(t.expires_in.unwrap_or(60).max(10));
        Ok(Token { value, until: Instant::now() + life - Duration::from_secs(5) })
    }
}

/// Splits `Bearer realm="...",service="...",scope="..."` into the scheme and parameters.
pub fn parse_challenge(value: &str) -> (String, HashMap<String, String>) {
    let value = value.trim();
    let (scheme, rest) = value.split_once(char::is_whitespace).unwrap_or((value, ""));
    let mut params = HashMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect::<String>().trim().to_ascii_lowercase();
        if key.is_empty() {
            break;
        }
        let mut val = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => val.extend(chars.next()),
                    '"' => break,
                    c => val.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek().copied().filter(|c| *c != ',') {
                val.push(c);
                chars.next();
            }
        }
        params.insert(key, val.trim().to_string());
    }
    (scheme.to_string(), params)
}

/// The `next` URL of a `Link: <...>; rel="next"` header.
pub fn next_link(headers: &HeaderMap) -> Option<String> {
    headers.get_all(header::LINK).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params.split(';').any(|p| {
            let p = p.trim().to_ascii_lowercase();
            p == "rel=\"next\"" || p == "rel=next"
        });
        is_next.then(|| target.trim().trim_start_matches('<').trim_end_matches('>').to_string())
    })
}

/// Exponential backoff for the `attempt`-th failure: 200 ms, 400 ms, ... at most 5 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(200u64.saturating_mul(1 << attempt.saturating_sub(1).min(5))).min(Duration::from_secs(5))
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim().parse::<u64>().ok().map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER))
}

fn transport_error(e: reqwest::Error) -> RegistryError {
    if e.is_timeout() {
        RegistryError::Unavailable("the registry did not answer in time (registry.request_timeout)".into())
    } else if e.is_connect() {
        RegistryError::Unavailable("cannot connect to the registry".into())
    } else {
        RegistryError::Unavailable(format!("the connection to the registry failed: {}", e.without_url()))
    }
}

fn redirect_error(target: &url::Url, e: reqwest::Error) -> RegistryError {
    // Without the URL: pre-signed URLs carry credentials in their query.
    let message = format!("{:#}", anyhow::Error::new(e.without_url()));
    if message.contains("resolves to") || message.contains("metadata host") {
        RegistryError::Refused(format!("refused to follow the registry to {}: {message}", safe_net::url_for_message(target)))
    } else {
        RegistryError::Unavailable(format!("cannot fetch from {}: {message}", safe_net::url_for_message(target)))
    }
}

/// The registry's error code from an error body, for messages (`UNAUTHORIZED`, `DENIED`).
async fn error_code(response: reqwest::Response) -> String {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorItem>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorItem {
        code: String,
    }
    match serde_json::from_str::<Errors>(&text) {
        Ok(e) if !e.errors.is_empty() => e.errors.iter().map(|i| i.code.as_str()).collect::<Vec<_>>().join(", "),
        _ => status.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn header_value(s: &str) -> HeaderValue {
        HeaderValue::from_str(s).unwrap()
    }

    #[test]
    fn challenges_parse() {
        let (s, p) = parse_challenge(r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull""#);
        assert_eq!(s, "Bearer");
        assert_eq!(p["realm"], "https://auth.example.com/token");
        assert_eq!(p["service"], "registry.example.com");
        assert_eq!(p["scope"], "repository:a/b:pull");
        let (s, p) = parse_challenge(r#"Basic realm="Registry Realm""#);
        assert_eq!((s.as_str(), p["realm"].as_str()), ("Basic", "Registry Realm"));
    }

    #[test]
    fn link_headers() {
        let mut h = HeaderMap::new();
        h.insert(header::LINK, header_value(r#"</v2/a/tags/list?last=x&n=100>; rel="next""#));
        assert_eq!(next_link(&h).as_deref(), Some("/v2/a/tags/list?last=x&n=100"));
        h.insert(header::LINK, header_value(r#"<https://x/prev>; rel="prev""#));
        assert_eq!(next_link(&h), None);
    }

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff(1), Duration::from_millis(200));
        assert_eq!(backoff(3), Duration::from_millis(800));
        assert_eq!(backoff(30), Duration::from_secs(5));
    }
}
