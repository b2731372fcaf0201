//! HashiCorp Vault / OpenBao, KV secrets engine version 2, over its HTTP API.
//!
//! A secret at `PATH` is `<mount>/data/<prefix>/PATH`; its fields are the KV data map and its
//! version is KV v2's version number. Writes with a precondition use KV v2's check-and-set
//! (`cas`), which Vault applies atomically. Deleting removes the metadata, i.e. every version.
//!
//! Sign-in is a token or AppRole. A token is looked up (`lookup-self`) for its TTL; any token
//! is renewed (`renew-self`) once two thirds of its lease have passed, and when renewal fails
//! or the lease can no longer be extended Nova signs in again: AppRole logs in anew, a token is
//! read again from its reference. A request answered 403 is retried once after a fresh
//! sign-in, in case the token was revoked.
//!
//! With `team_auth`, a path under `teams/<team>/` uses that team's own sign-in, so Vault's
//! ACL policies — not only Nova — keep one team's credentials from another (docs/CREDENTIALS.md
//! has the policy).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nova_domain::Sensitive;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::{HealthReport, Precondition, SecretData, SecretError, SecretPath, SecretStore, VaultAuthConfig, VaultConfig, Version, Versioned};

const KIND: &str = "vault";
/// A renewed lease shorter than this is not worth keeping: sign in again instead.
const MIN_USEFUL_LEASE: Duration = Duration::from_secs(2);

/// The Vault/OpenBao store.
pub struct VaultStore {
    http: reqwest::Client,
    /// `https://vault:8200/v1/`, always ending in `/`.
    api: url::Url,
    address: String,
    mount: String,
    prefix: String,
    namespace: Option<String>,
    main: Session,
    teams: BTreeMap<String, Session>,
}

/// One sign-in (Nova's own, or a team's) and its current token.
struct Session {
    auth: VaultAuthConfig,
    /// The setting it comes from, for messages: `secrets.auth`, `secrets.team_auth.payments`.
    key: String,
    token: tokio::sync::Mutex<Option<Token>>,
    logins: AtomicU64,
    renewals: AtomicU64,
}

struct Token {
    value: Sensitive<String>,
    obtained: Instant,
    /// `None`: the token does not expire.
    lease: Option<Duration>,
    renewable: bool,
}

impl Token {
    fn due_for_refresh(&self) -> bool {
        self.lease.is_some_and(|lease| self.obtained.elapsed() >= lease * 2 / 3)
    }
    fn expired(&self) -> bool {
        self.lease.is_some_and(|lease| self.obtained.elapsed() >= lease)
    }
}

/// How often a session has signed in and renewed its token, for tests and diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AuthStats {
    pub logins: u64,
    pub renewals: u64,
}

#[derive(Deserialize)]
struct AuthBody {
    auth: AuthInfo,
}
#[derive(Deserialize)]
struct AuthInfo {
    client_token: Option<String>,
    lease_duration: u64,
    renewable: bool,
}
#[derive(Deserialize)]
struct LookupBody {
    data: LookupInfo,
}
#[derive(Deserialize)]
struct LookupInfo {
    ttl: u64,
    renewable: Option<bool>,
}
#[derive(Deserialize)]
struct ReadBody {
    data: ReadData,
}
#[derive(Deserialize)]
struct ReadData {
    data: Option<serde_json::Value>,
    metadata: ReadMetadata,
}
#[derive(Deserialize)]
struct ReadMetadata {
    version: u64,
}
#[derive(Deserialize)]
struct WriteBody {
    data: ReadMetadata,
}
#[derive(Deserialize)]
struct ListBody {
    data: ListData,
}
#[derive(Deserialize)]
struct ListData {
    keys: Vec<String>,
}

/// A JSON answer from Vault that does not have the expected shape. The body is not quoted.
fn unexpected(what: &str) -> SecretError {
    SecretError::Unavailable(format!("unexpected answer from Vault to {what}"))
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T, SecretError> {
    serde_json::from_slice(body).map_err(|_| unexpected(what))
}

/// A transport failure, described by reqwest's error chain (which holds no body).
fn transport(address: &str, e: reqwest::Error) -> SecretError {
    let timeout = e.is_timeout();
    let e = e.without_url();
    let mut detail = if timeout { "timed out".to_owned() } else { e.to_string() };
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        source = s.source();
    }
    SecretError::Unavailable(format!("cannot reach Vault at {address}: {detail}"))
}

impl VaultStore {
    /// A store for `config`; nothing is contacted until the first call.
    pub fn new(config: &VaultConfig) -> Result<Self, SecretError> {
        let mut api = url::Url::parse(&config.address).map_err(|_| SecretError::Invalid("secrets.address must be a URL".into()))?;
        if !api.path().ends_with('/') {
            api.set_path(&format!("{}/", api.path()));
        }
        let api = api.join("v1/").map_err(|_| SecretError::Invalid("secrets.address must be a URL".into()))?;
        let http = reqwest::Client::builder().timeout(config.timeout).build().map_err(|e| SecretError::Invalid(format!("cannot set up the HTTP client: {e}")))?;
        let session = |auth: &VaultAuthConfig, key: String| Session { auth: auth.clone(), key, token: tokio::sync::Mutex::new(None), logins: AtomicU64::new(0), renewals: AtomicU64::new(0) };
        Ok(Self {
            http,
            api,
            address: config.address.trim_end_matches('/').to_owned(),
            mount: config.mount.trim_matches('/').to_owned(),
            prefix: config.prefix.trim_matches('/').to_owned(),
            namespace: config.namespace.clone(),
            main: session(&config.auth, "secrets.auth".into()),
            teams: config.team_auth.iter().map(|(t, a)| (t.clone(), session(a, format!("secrets.team_auth.{t}")))).collect(),
        })
    }

    /// Sign-ins and renewals so far: Nova's own session, or a team's.
    pub fn auth_stats(&self, team: Option<&str>) -> AuthStats {
        let s = team.and_then(|t| self.teams.get(t)).unwrap_or(&self.main);
        AuthStats { logins: s.logins.load(Ordering::Relaxed), renewals: s.renewals.load(Ordering::Relaxed) }
    }

    /// The session a path is read and written with: its team's, if configured.
    fn session_for(&self, path: Option<&SecretPath>) -> &Session {
        path.and_then(SecretPath::team_name).and_then(|t| self.teams.get(t)).unwrap_or(&self.main)
    }

    fn data_path(&self, path: &SecretPath) -> String {
        format!("{}/data/{}/{}", self.mount, self.prefix, path)
    }

    fn metadata_path(&self, path: Option<&SecretPath>) -> String {
        match path {
            Some(p) => format!("{}/metadata/{}/{}", self.mount, self.prefix, p),
            None => format!("{}/metadata/{}", self.mount, self.prefix),
        }
    }

    /// Sends one request with `token` (if any); returns the status and body.
    async fn send(&self, method: Method, api_path: &str, token: Option<&Sensitive<String>>, body: Option<&serde_json::Value>) -> Result<(StatusCode, bytes::Bytes), SecretError> {
        let url = self.api.join(api_path).map_err(|_| SecretError::Invalid("cannot form the Vault URL".into()))?;
        let mut request = self.http.request(method, url);
        if let Some(t) = token {
            request = request.header("X-Vault-Token", t.expose());
        }
        if let Some(ns) = &self.namespace {
            request = request.header("X-Vault-Namespace", ns);
        }
        if let Some(b) = body {
            request = request.json(b);
        }
        let response = request.send().await.map_err(|e| transport(&self.address, e))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| transport(&self.address, e))?;
        Ok((status, body))
    }

    /// Signs `session` in: AppRole login, or the token looked up for its lease.
    async fn login(&self, session: &Session) -> Result<Token, SecretError> {
        let denied = |what: String| SecretError::Denied(format!("{}: {what}", session.key));
        let token = match &session.auth {
            VaultAuthConfig::Approle { role_id, secret_id, mount } => {
                let secret_id = secret_id.resolve_local(&format!("{}.secret_id", session.key)).map_err(|e| SecretError::Invalid(e.to_string()))?;
                let body = json!({"role_id": role_id, "secret_id": secret_id.expose()});
                let (status, bytes) = self.send(Method::POST, &format!("auth/{mount}/login"), None, Some(&body)).await?;
                match status.as_u16() {
                    200 => {}
                    400 | 403 => return Err(denied(format!("AppRole login refused (HTTP {}); check role_id and secret_id, and that the secret id has not expired", status.as_u16()))),
                    _ => return Err(self.status_error(status, &bytes, "AppRole login", None)),
                }
                let auth = parse::<AuthBody>(&bytes, "AppRole login")?.auth;
                let value = auth.client_token.ok_or_else(|| unexpected("AppRole login"))?;
                Token { value: Sensitive::new(value), obtained: Instant::now(), lease: lease(auth.lease_duration), renewable: auth.renewable }
            }
            VaultAuthConfig::Token { token } => {
                let value = token.resolve_local(&format!("{}.token", session.key)).map_err(|e| SecretError::Invalid(e.to_string()))?;
                let obtained = Instant::now();
                let (status, bytes) = self.send(Method::GET, "auth/token/lookup-self", Some(&value), None).await?;
                match status.as_u16() {
                    200 => {}
                    403 => return Err(denied("the token is not valid (HTTP 403): expired, revoked or mistyped".into())),
                    _ => return Err(self.status_error(status, &bytes, "token lookup", None)),
                }
                let info = parse::<LookupBody>(&bytes, "token lookup")?.data;
                Token { value, obtained, lease: lease(info.ttl), renewable: info.renewable.unwrap_or(false) }
            }
        };
        session.logins.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(session = %session.key, lease_s = token.lease.map(|l| l.as_secs()), renewable = token.renewable, "signed in to Vault");
        Ok(token)
    }

    /// Renews a token; `None` when it cannot be usefully renewed.
    async fn renew(&self, session: &Session, token: &Token) -> Option<Token> {
        if !token.renewable || token.expired() {
            return None;
        }
        let obtained = Instant::now();
        let (status, bytes) = self.send(Method::POST, "auth/token/renew-self", Some(&token.value), Some(&json!({}))).await.ok()?;
        if status != StatusCode::OK {
            tracing::info!(session = %session.key, status = status.as_u16(), "Vault token renewal refused; signing in again");
            return None;
        }
        let auth = parse::<AuthBody>(&bytes, "token renewal").ok()?.auth;
        let lease = lease(auth.lease_duration);
        if lease.is_some_and(|l| l < MIN_USEFUL_LEASE) {
            return None; // at its maximum TTL
        }
        session.renewals.fetch_add(1, Ordering::Relaxed);
        Some(Token { value: token.value.clone(), obtained, lease, renewable: auth.renewable })
    }

    /// A valid token for `session`: the current one, renewed, or a new sign-in. With
    /// `fresh`, always signs in again (after a 403).
    async fn token(&self, session: &Session, fresh: bool) -> Result<Sensitive<String>, SecretError> {
        let mut current = session.token.lock().await;
        if let Some(t) = current.as_ref().filter(|_| !fresh) {
            if !t.due_for_refresh() {
                return Ok(t.value.clone());
            }
            if let Some(renewed) = self.renew(session, t).await {
                let value = renewed.value.clone();
                *current = Some(renewed);
                return Ok(value);
            }
        }
        *current = None;
        let token = self.login(session).await?;
        let value = token.value.clone();
        *current = Some(token);
        Ok(value)
    }

    /// An authenticated request with `session`; a 403 is retried once after signing in again.
    async fn call(&self, session: &Session, method: Method, api_path: &str, body: Option<&serde_json::Value>) -> Result<(StatusCode, bytes::Bytes), SecretError> {
        let token = self.token(session, false).await?;
        let (status, bytes) = self.send(method.clone(), api_path, Some(&token), body).await?;
        if status != StatusCode::FORBIDDEN {
            return Ok((status, bytes));
        }
        let token = self.token(session, true).await?;
        self.send(method, api_path, Some(&token), body).await
    }

    /// The error for a status other than the expected ones.
    fn status_error(&self, status: StatusCode, body: &[u8], what: &str, path: Option<&SecretPath>) -> SecretError {
        let code = status.as_u16();
        let subject = path.map_or_else(|| what.to_owned(), |p| format!("{what} {p}"));
        match code {
            403 => SecretError::Denied(format!("{subject}: permission denied (HTTP 403); the Vault policy of this sign-in must allow it")),
            404 => SecretError::NotFound(path.map_or_else(|| what.to_owned(), ToString::to_string)),
            400 if vault_errors(body).iter().any(|e| e.contains("check-and-set")) => SecretError::Conflict(path.map_or_else(|| what.to_owned(), ToString::to_string)),
            400 | 405 | 413 | 422 => SecretError::Invalid(format!("{subject}: Vault refused the request (HTTP {code})")),
            503 => SecretError::Unavailable(format!("{subject}: Vault is sealed or in maintenance (HTTP 503)")),
            429 => SecretError::Unavailable(format!("{subject}: Vault is rate limiting or on standby (HTTP 429)")),
            _ => SecretError::Unavailable(format!("{subject}: Vault answered HTTP {code}")),
        }
    }

    async fn read_version(&self, path: &SecretPath, version: Option<&Version>) -> Result<Versioned, SecretError> {
        let mut api_path = self.data_path(path);
        if let Some(v) = version {
            let n: u64 = v.as_str().parse().map_err(|_| SecretError::NotFound(format!("{path} version {v}")))?;
            api_path.push_str(&format!("?version={n}"));
        }
        let (status, bytes) = self.call(self.session_for(Some(path)), Method::GET, &api_path, None).await?;
        if status != StatusCode::OK {
            // A deleted or destroyed version is a 404 too.
            return Err(self.status_error(status, &bytes, "read", Some(path)));
        }
        let body = parse::<ReadBody>(&bytes, "a read")?.data;
        let data = body.data.ok_or_else(|| SecretError::NotFound(path.to_string()))?;
        Ok(Versioned { data: SecretData::from_json(data)?, version: Version::new(body.metadata.version.to_string()) })
    }

    async fn probe(&self) -> Result<(), String> {
        let (status, _) = self.send(Method::GET, "sys/health?standbyok=true&perfstandbyok=true", None, None).await.map_err(|e| e.to_string())?;
        match status.as_u16() {
            200 | 429 | 473 => Ok(()),
            501 => Err("Vault is not initialized (HTTP 501)".into()),
            503 => Err("Vault is sealed (HTTP 503)".into()),
            code => Err(format!("Vault's health endpoint answered HTTP {code}")),
        }
    }
}

fn lease(seconds: u64) -> Option<Duration> {
    (seconds > 0).then(|| Duration::from_secs(seconds))
}

/// Vault's `errors` list, for telling error kinds apart; never shown.
fn vault_errors(body: &[u8]) -> Vec<String> {
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<String>,
    }
    serde_json::from_slice::<Errors>(body).map(|e| e.errors).unwrap_or_default()
}

#[async_trait::async_trait]
impl SecretStore for VaultStore {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn describe(&self) -> String {
        format!("{} mount {} prefix {}", self.address, self.mount, self.prefix)
    }

    async fn read(&self, path: &SecretPath, version: Option<&Version>) -> Result<Versioned, SecretError> {
        self.read_version(path, version).await
    }

    async fn put(&self, path: &SecretPath, data: &SecretData, precondition: Precondition) -> Result<Version, SecretError> {
        data.validate()?;
        let mut body = json!({"data": data.to_json()});
        match &precondition {
            Precondition::None => {}
            Precondition::Absent => body["options"] = json!({"cas": 0}),
            Precondition::Current(v) => {
                let n: u64 = v.as_str().parse().map_err(|_| SecretError::Conflict(path.to_string()))?;
                body["options"] = json!({"cas": n});
            }
        }
        let (status, bytes) = self.call(self.session_for(Some(path)), Method::POST, &self.data_path(path), Some(&body)).await?;
        if status != StatusCode::OK {
            return Err(self.status_error(status, &bytes, "write", Some(path)));
        }
        Ok(Version::new(parse::<WriteBody>(&bytes, "a write")?.data.version.to_string()))
    }

    async fn delete(&self, path: &SecretPath) -> Result<(), SecretError> {
        let (status, bytes) = self.call(self.session_for(Some(path)), Method::DELETE, &self.metadata_path(Some(path)), None).await?;
        match status.as_u16() {
            200 | 204 | 404 => Ok(()),
            _ => Err(self.status_error(status, &bytes, "delete", Some(path))),
        }
    }

    async fn list(&self, prefix: Option<&SecretPath>) -> Result<Vec<SecretPath>, SecretError> {
        let mut found = Vec::new();
        let mut folders = vec![prefix.map(|p| format!("{p}/")).unwrap_or_default()];
        while let Some(folder) = folders.pop() {
            if folder == "teams/" && !self.teams.is_empty() {
                // With per-team sign-ins Nova's own token may not list the teams' folders: list
                // each configured team's folder with its own sign-in instead.
                folders.extend(self.teams.keys().map(|t| format!("teams/{t}/")));
                continue;
            }
            let session = self.session_for(SecretPath::parse(folder.trim_end_matches('/')).ok().as_ref());
            let api_path = format!("{}/{folder}?list=true", self.metadata_path(None));
            let (status, bytes) = self.call(session, Method::GET, &api_path, None).await?;
            match status.as_u16() {
                200 => {}
                404 => continue, // an empty folder
                _ => return Err(self.status_error(status, &bytes, "list", prefix)),
            }
            for key in parse::<ListBody>(&bytes, "a list")?.data.keys {
                match key.strip_suffix('/') {
                    Some(sub) => folders.push(format!("{folder}{sub}/")),
                    None => found.extend(SecretPath::parse(&format!("{folder}{key}")).ok()),
                }
            }
        }
        found.sort();
        Ok(found)
    }

    async fn health_check(&self) -> HealthReport {
        let target = self.describe();
        if let Err(reason) = self.probe().await {
            return HealthReport::fail(KIND, target, reason, "check secrets.address, that Vault runs and is unsealed, and that Nova's host can reach it");
        }
        if let Err(e) = self.token(&self.main, false).await {
            return HealthReport::fail(KIND, target, format!("cannot sign in: {e}"), "check secrets.auth: the token or AppRole credentials and where their references point");
        }
        if let Err((step, e)) = super::probe_round_trip(self).await {
            let fix = format!(
                "grant Nova's policy create, read, update and delete on {mount}/data/{prefix}/_nova/health/* and delete on {mount}/metadata/{prefix}/_nova/health/* (docs/CREDENTIALS.md)",
                mount = self.mount,
                prefix = self.prefix
            );
            return HealthReport::fail(KIND, target, format!("probe {step} failed: {e}"), fix);
        }
        let mut failed_teams = Vec::new();
        for (team, session) in &self.teams {
            if let Err(e) = self.token(session, false).await {
                failed_teams.push(format!("{team} ({})", e.kind()));
            }
        }
        if !failed_teams.is_empty() {
            return HealthReport::fail(KIND, target, format!("team sign-in failed for {}", failed_teams.join(", ")), "check secrets.team_auth for those teams");
        }
        let teams = if self.teams.is_empty() { String::new() } else { format!("; {} team sign-ins work", self.teams.len()) };
        HealthReport::pass(KIND, target, format!("signed in, wrote, read back and deleted a probe secret{teams}"))
    }
}
