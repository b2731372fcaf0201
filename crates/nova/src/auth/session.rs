//! Signed session cookies: `nova_session=v1.<payload>.<mac>`, where the payload is base64url
//! JSON (who, how they signed in, when it expires) and the MAC is HMAC-SHA256 over `v1.<payload>`
//! with the session key. Nothing is stored server-side; a cookie is valid until it expires.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use nova_domain::{EntityRef, Sensitive};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The cookie's name.
pub const COOKIE: &str = "nova_session";
/// Shortest session key accepted, in bytes.
pub const MIN_KEY_BYTES: usize = 32;
const VERSION: &str = "v1";

/// How the caller proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SignInMethod {
    /// Development sign-in: picked from the catalog's users, no password (demo only).
    Dev,
    /// OpenID Connect sign-in.
    Oidc,
    /// Headers from a trusted authenticating proxy (per request; no session).
    Proxy,
    /// A personal API token (per request; no session).
    Token,
}

impl SignInMethod {
    /// How people call it.
    pub fn label(self) -> &'static str {
        match self {
            SignInMethod::Dev => "development sign-in",
            SignInMethod::Oidc => "single sign-on",
            SignInMethod::Proxy => "proxy",
            SignInMethod::Token => "API token",
        }
    }
}

/// A signed-in session: the user's catalog reference and its validity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// A random id, so that signing out can revoke this session before it expires.
    pub sid: String,
    pub user: EntityRef,
    pub method: SignInMethod,
    /// Unix milliseconds.
    pub issued_at: i64,
    /// Unix milliseconds.
    pub expires_at: i64,
}

#[derive(Serialize, Deserialize)]
struct Payload {
    sid: String,
    sub: String,
    via: SignInMethod,
    iat: i64,
    exp: i64,
}

/// A value sealed into a cookie: what it is for (so a value sealed for one purpose is never
/// accepted for another) and when it expires.
#[derive(Serialize, Deserialize)]
struct Sealed<T> {
    #[serde(rename = "for")]
    purpose: String,
    exp: i64,
    value: T,
}

/// The key that signs session cookies.
#[derive(Clone)]
pub struct SessionKey(Sensitive<Vec<u8>>);

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(**REDACTED**)")
    }
}

impl SessionKey {
    /// A key from configured secret text (at least [`MIN_KEY_BYTES`] bytes).
    pub fn from_secret(secret: &Sensitive<String>) -> Result<Self, String> {
        let bytes = secret.expose().as_bytes().to_vec();
        if bytes.len() < MIN_KEY_BYTES {
            return Err(format!("the session key must be at least {MIN_KEY_BYTES} bytes (e.g. `openssl rand -hex 32`)"));
        }
        Ok(Self(Sensitive::new(bytes)))
    }

    /// Reads the key stored at `path`, or creates a random one there readable only by its owner
    /// (mode 0600). For demo mode, which needs sessions without any configuration.
    pub fn load_or_create(path: &Path) -> Result<Self, String> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        match std::fs::read_to_string(path) {
            Ok(text) => return Self::from_secret(&Sensitive::new(text.trim().to_string())).map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(format!("cannot read {}: {e}", path.display())),
            Err(_) => {}
        }
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw).map_err(|e| format!("no randomness for a session key: {e}"))?;
        let text = hex::encode(raw);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        f.write_all(text.as_bytes()).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(Self(Sensitive::new(text.into_bytes())))
    }

    fn mac(&self, data: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.0.expose()).expect("HMAC takes keys of any length");
        mac.update(data.as_bytes());
        mac
    }

    /// Signs `value` for `purpose`, valid until `expires_at` (Unix ms): `v1.<payload>.<mac>`.
    pub fn seal_value<T: Serialize>(&self, purpose: &str, expires_at: i64, value: &T) -> String {
        let sealed = Sealed { purpose: purpose.to_string(), exp: expires_at, value };
        let body = format!("{VERSION}.{}", URL_SAFE_NO_PAD.encode(serde_json::to_vec(&sealed).expect("sealed values serialize")));
        let tag = URL_SAFE_NO_PAD.encode(self.mac(&body).finalize().into_bytes());
        format!("{body}.{tag}")
    }

    /// The value sealed for `purpose`, if the signature is valid and it has not expired at `now`.
    pub fn open_value<T: DeserializeOwned>(&self, purpose: &str, sealed: &str, now: i64) -> Option<T> {
        let (body, tag) = sealed.rsplit_once('.')?;
        let (version, payload) = body.split_once('.')?;
        if version != VERSION {
            return None;
        }
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        self.mac(body).verify_slice(&tag).ok()?;
        let sealed: Sealed<T> = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        (sealed.purpose == purpose && sealed.exp > now).then_some(sealed.value)
    }

    /// The cookie value for `session`.
    pub fn seal(&self, session: &Session) -> String {
        let payload = Payload { sid: session.sid.clone(), sub: session.user.to_string(), via: session.method, iat: session.issued_at, exp: session.expires_at };
        self.seal_value("session", session.expires_at, &payload)
    }

    /// The session in a cookie value, if its signature is valid and it has not expired at `now`.
    pub fn open(&self, value: &str, now: i64) -> Option<Session> {
        let payload: Payload = self.open_value("session", value, now)?;
        let user = EntityRef::parse(&payload.sub).ok()?;
        Some(Session { sid: payload.sid, user, method: payload.via, issued_at: payload.iat, expires_at: payload.exp })
    }
}

/// `Set-Cookie` for a new session lasting `ttl`.
pub fn set_cookie(value: &str, ttl: Duration, secure: bool) -> String {
    format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{}", ttl.as_secs(), if secure { "; Secure" } else { "" })
}

/// `Set-Cookie` that removes the session cookie.
pub fn clear_cookie(secure: bool) -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{}", if secure { "; Secure" } else { "" })
}

/// The value of cookie `name` in `Cookie` headers.
pub fn cookie_value<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> SessionKey {
        SessionKey::from_secret(&Sensitive::new(text.to_string())).unwrap()
    }

    #[test]
    fn sealed_sessions_open_only_with_the_key_and_before_expiry() {
        let k = key("0123456789abcdef0123456789abcdef");
        let s = Session { sid: "s1".into(), user: EntityRef::parse("user:default/ana.lima").unwrap(), method: SignInMethod::Dev, issued_at: 1000, expires_at: 5000 };
        let v = k.seal(&s);
        assert_eq!(k.open(&v, 2000), Some(s.clone()));
        assert_eq!(k.open(&v, 5000), None, "expired");
        assert_eq!(key("another key that is long enough!!").open(&v, 2000), None, "other key");
        // Changing the payload (another user, a later expiry) breaks the signature.
        let (_, rest) = v.split_once('.').unwrap();
        let (_, tag) = rest.rsplit_once('.').unwrap();
        let forged = serde_json::json!({"for": "session", "exp": 9_999_999, "value": {"sid": "s1", "sub": "user:default/admin", "via": "dev", "iat": 1000, "exp": 9_999_999}});
        let forged = format!("v1.{}.{tag}", URL_SAFE_NO_PAD.encode(forged.to_string()));
        assert_eq!(k.open(&forged, 2000), None);
        assert_eq!(k.open("garbage", 2000), None);
        assert!(SessionKey::from_secret(&Sensitive::new("short".into())).is_err());
        // A value sealed for another purpose is not a session.
        let other = k.seal_value("oidc-login", 5000, &serde_json::json!({"sid": "s1", "sub": "user:default/ana.lima", "via": "dev", "iat": 1, "exp": 5000}));
        assert_eq!(k.open(&other, 2000), None);
    }

    #[test]
    fn generated_keys_are_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/session.key");
        let a = SessionKey::load_or_create(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let b = SessionKey::load_or_create(&path).unwrap();
        let s = Session { sid: "s2".into(), user: EntityRef::parse("user:default/x").unwrap(), method: SignInMethod::Dev, issued_at: 0, expires_at: 10 };
        assert!(b.open(&a.seal(&s), 1).is_some());
        assert!(!format!("{a:?}").contains(&std::fs::read_to_string(&path).unwrap()));
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = axum::http::HeaderMap::new();
        h.append("cookie", "a=1; nova_session=abc.def".parse().unwrap());
        assert_eq!(cookie_value(&h, COOKIE), Some("abc.def"));
        assert!(set_cookie("x", Duration::from_secs(60), true).contains("HttpOnly; SameSite=Lax; Max-Age=60; Secure"));
    }
}
