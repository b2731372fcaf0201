//! OpenID Connect sign-in: the authorization code flow with PKCE against any standard
//! provider. Discovery and the provider's keys (JWKS) are fetched on first use and cached; keys
//! are fetched again when a token names one Nova has not seen (key rotation).
//!
//! The state, nonce and PKCE verifier of a sign-in in progress travel in a short-lived cookie
//! sealed with the session key, so nothing is stored server-side and any replica can finish
//! the flow. The ID token is checked for signature, `iss`, `aud`, `exp` and `nonce`.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use nova_domain::Sensitive;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::RwLock;

use super::SessionKey;
use crate::config::OidcConfig;
use crate::storage::now_ms;

/// The cookie holding a sign-in in progress.
pub const LOGIN_COOKIE: &str = "nova_oidc";
/// How long a sign-in may take at the provider.
const LOGIN_TTL: Duration = Duration::from_secs(600);
/// How long discovery and keys are cached.
const CACHE_TTL: Duration = Duration::from_secs(3600);
/// Signature algorithms accepted on ID tokens (never `none` or a symmetric one).
const ALGORITHMS: [Algorithm; 7] =
    [Algorithm::RS256, Algorithm::RS384, Algorithm::RS512, Algorithm::PS256, Algorithm::PS384, Algorithm::PS512, Algorithm::ES256];

/// Why an OIDC step failed. Messages are safe to show: they never include tokens or codes.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("the identity provider could not be reached or answered unexpectedly: {0}")]
    Provider(String),
    #[error("the sign-in has expired or was started in another browser; please sign in again")]
    StaleLogin,
    #[error("the identity provider's answer was refused: {0}")]
    Rejected(String),
}

#[derive(Debug, Clone, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
}

/// A sign-in in progress, sealed into [`LOGIN_COOKIE`].
#[derive(Serialize, Deserialize)]
struct Pending {
    state: String,
    nonce: String,
    verifier: String,
    next: String,
}

/// Who the provider says signed in.
#[derive(Debug, Clone)]
pub struct OidcIdentity {
    pub subject: String,
    /// The configured username claim, if present.
    pub username: Option<String>,
    pub email: Option<String>,
    /// Where to go after signing in (a local path).
    pub next: String,
}

/// The OIDC client.
pub struct Oidc {
    config: OidcConfig,
    secret: Option<Sensitive<String>>,
    http: reqwest::Client,
    discovery: RwLock<Option<(Discovery, Instant)>>,
    keys: RwLock<Option<(JwkSet, Instant)>>,
}

fn random(bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    getrandom::fill(&mut raw).expect("the operating system provides randomness");
    URL_SAFE_NO_PAD.encode(raw)
}

impl Oidc {
    /// A client for `config`; the secret was resolved from its reference.
    pub fn new(config: OidcConfig, secret: Option<Sensitive<String>>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("the HTTP client builds");
        Self { config, secret, http, discovery: RwLock::new(None), keys: RwLock::new(None) }
    }

    /// The issuer, for health checks and messages.
    pub fn issuer(&self) -> &str {
        &self.config.issuer
    }

    /// The configuration in use.
    pub fn config(&self) -> &OidcConfig {
        &self.config
    }

    async fn discovery(&self) -> Result<Discovery, OidcError> {
        if let Some((d, at)) = self.discovery.read().await.as_ref() {
            if at.elapsed() < CACHE_TTL {
                return Ok(d.clone());
            }
        }
        let url = format!("{}/.well-known/openid-configuration", self.config.issuer.trim_end_matches('/'));
        let d: Discovery = self.get_json(&url).await?;
        if d.issuer.trim_end_matches('/') != self.config.issuer.trim_end_matches('/') {
            return Err(OidcError::Provider(format!("discovery names issuer {:?}, not the configured {:?}", d.issuer, self.config.issuer)));
        }
        *self.discovery.write().await = Some((d.clone(), Instant::now()));
        Ok(d)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, OidcError> {
        let r = self.http.get(url).send().await.map_err(|e| OidcError::Provider(format!("{url}: {}", e.without_url())))?;
        if !r.status().is_success() {
            return Err(OidcError::Provider(format!("{url} answered {}", r.status())));
        }
        r.json().await.map_err(|e| OidcError::Provider(format!("{url}: not the expected JSON: {}", e.without_url())))
    }

    async fn keys(&self, refresh: bool) -> Result<JwkSet, OidcError> {
        if !refresh {
            if let Some((k, at)) = self.keys.read().await.as_ref() {
                if at.elapsed() < CACHE_TTL {
                    return Ok(k.clone());
                }
            }
        }
        let d = self.discovery().await?;
        let keys: JwkSet = self.get_json(&d.jwks_uri).await?;
        *self.keys.write().await = Some((keys.clone(), Instant::now()));
        Ok(keys)
    }

    /// Checks that discovery and the keys can be read (for `nova doctor` and readiness).
    pub async fn check(&self) -> Result<usize, OidcError> {
        Ok(self.keys(true).await?.keys.len())
    }

    /// Starts a sign-in: the provider URL to send the browser to, and the sealed cookie value
    /// that must come back with the answer.
    pub async fn start(&self, next: &str, key: &SessionKey) -> Result<(String, String), OidcError> {
        let d = self.discovery().await?;
        let pending = Pending { state: random(24), nonce: random(24), verifier: random(48), next: next.to_string() };
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(pending.verifier.as_bytes()));
        let mut url = url::Url::parse(&d.authorization_endpoint).map_err(|e| OidcError::Provider(format!("authorization_endpoint: {e}")))?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.config.client_id)
            .append_pair("redirect_uri", &self.config.redirect_url)
            .append_pair("scope", &self.config.scopes.join(" "))
            .append_pair("state", &pending.state)
            .append_pair("nonce", &pending.nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        let sealed = key.seal_value("oidc-login", now_ms() + LOGIN_TTL.as_millis() as i64, &pending);
        Ok((url.to_string(), sealed))
    }

    /// Finishes a sign-in: checks `state` against the sealed cookie, exchanges the code, and
    /// validates the ID token.
    pub async fn finish(&self, code: &str, state: &str, sealed: Option<&str>, key: &SessionKey) -> Result<OidcIdentity, OidcError> {
        let pending: Pending = sealed.and_then(|s| key.open_value("oidc-login", s, now_ms())).ok_or(OidcError::StaleLogin)?;
        if !constant_time_eq(pending.state.as_bytes(), state.as_bytes()) {
            return Err(OidcError::StaleLogin);
        }
        let d = self.discovery().await?;
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &self.config.redirect_url),
            ("code_verifier", &pending.verifier),
            ("client_id", &self.config.client_id),
        ];
        let mut request = self.http.post(&d.token_endpoint).form(&form);
        if let Some(secret) = &self.secret {
            request = request.basic_auth(&self.config.client_id, Some(secret.expose()));
        }
        let response = request.send().await.map_err(|e| OidcError::Provider(format!("token endpoint: {}", e.without_url())))?;
        let status = response.status();
        if !status.is_success() {
            // The body may name the error (`invalid_grant`); it never holds a token on failure.
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            let what = body["error"].as_str().unwrap_or("no error code");
            return Err(OidcError::Rejected(format!("the token endpoint answered {status} ({what})")));
        }
        #[derive(Deserialize)]
        struct Tokens {
            id_token: Sensitive<String>,
        }
        let tokens: Tokens = response.json().await.map_err(|_| OidcError::Rejected("the token endpoint's answer has no id_token".into()))?;
        let claims = self.validate(tokens.id_token.expose(), &d.issuer).await?;
        if claims.get("nonce").and_then(|n| n.as_str()) != Some(pending.nonce.as_str()) {
            return Err(OidcError::Rejected("the ID token's nonce does not match this sign-in".into()));
        }
        let text = |name: &str| claims.get(name).and_then(|v| v.as_str()).map(str::to_string);
        Ok(OidcIdentity {
            subject: text("sub").ok_or_else(|| OidcError::Rejected("the ID token has no subject".into()))?,
            username: text(&self.config.username_claim),
            email: self.config.email_claim.as_deref().and_then(text),
            next: pending.next,
        })
    }

    async fn validate(&self, token: &str, issuer: &str) -> Result<serde_json::Map<String, serde_json::Value>, OidcError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| OidcError::Rejected(format!("unreadable ID token: {e}")))?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(OidcError::Rejected(format!("ID tokens signed with {:?} are not accepted", header.alg)));
        }
        let mut keys = self.keys(false).await?;
        let find = |keys: &JwkSet| match &header.kid {
            Some(kid) => keys.find(kid).cloned(),
            None if keys.keys.len() == 1 => keys.keys.first().cloned(),
            None => None,
        };
        let jwk = match find(&keys) {
            Some(k) => k,
            None => {
                keys = self.keys(true).await?;
                find(&keys).ok_or_else(|| OidcError::Rejected("the ID token is signed with a key the provider does not publish".into()))?
            }
        };
        let key = DecodingKey::from_jwk(&jwk).map_err(|e| OidcError::Rejected(format!("unusable provider key: {e}")))?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[&self.config.client_id]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 60;
        let data = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(token.as_bytes(), &key, &validation)
            .map_err(|e| OidcError::Rejected(format!("the ID token is not valid: {e}")))?;
        Ok(data.claims)
    }
}

/// Whether `a` and `b` are equal, in a time that depends on their length only: for comparing a
/// secret with what a client sent.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `Set-Cookie` for a sign-in in progress.
pub fn login_cookie(value: &str, secure: bool) -> String {
    format!("{LOGIN_COOKIE}={value}; Path=/auth/oidc; HttpOnly; SameSite=Lax; Max-Age={}{}", LOGIN_TTL.as_secs(), if secure { "; Secure" } else { "" })
}

/// `Set-Cookie` that removes the sign-in cookie.
pub fn clear_login_cookie(secure: bool) -> String {
    format!("{LOGIN_COOKIE}=; Path=/auth/oidc; HttpOnly; SameSite=Lax; Max-Age=0{}", if secure { "; Secure" } else { "" })
}
