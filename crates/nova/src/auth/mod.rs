//! Who is making a request: sessions, sign-in methods and the [`Actor`] handlers receive.
//!
//! Every handler that needs to know the caller takes an [`Actor`] (an axum extractor). It is
//! built by [`Auth::authenticate`], which asks each way of proving identity in turn — today the
//! signed session cookie ([`session`]); the OIDC, trusted-proxy-header and API-token issue adds
//! its own steps there — and then computes the user's ownership claims from the catalog
//! ([`crate::catalog::Snapshot::claims`]). Authorization decisions belong to the policy module
//! that issue adds; nothing here decides what an actor may do.
//!
//! Development sign-in (pick any catalog User, no password) exists only in demo mode or with
//! `auth.dev_sign_in`, and only on a loopback listen address unless
//! `auth.dev_sign_in_allow_remote`. State-changing console forms are protected against
//! cross-site requests by [`check_same_origin`].

pub mod session;

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use nova_domain::EntityRef;

pub use session::{Session, SessionKey, SignInMethod};

use crate::config::{Config, OwnershipMode};
use crate::http::{AppError, AppState};
use crate::storage::now_ms;

/// Sign-in and session settings, resolved once at start.
#[derive(Debug)]
pub struct Auth {
    key: Option<SessionKey>,
    ttl: Duration,
    secure_cookie: bool,
    ownership: OwnershipMode,
    dev_sign_in: Result<(), String>,
}

impl Auth {
    /// Resolves `[auth]`: reads the session key (or, in demo mode without one, creates one under
    /// `server.data_dir`), and decides whether development sign-in is allowed.
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let a = &config.auth;
        let key = match &a.session_key {
            Some(r) => Some(
                r.load()
                    .and_then(|secret| SessionKey::from_secret(&secret))
                    .map_err(|e| anyhow::anyhow!("config: auth.session_key ({}): {e}", r.describe()))?,
            ),
            None if config.server.demo => Some(
                SessionKey::load_or_create(&config.server.data_dir.join("session.key")).map_err(|e| anyhow::anyhow!("demo session key: {e}"))?,
            ),
            None => None,
        };
        let listen = config.server.listen;
        let dev_sign_in = if !(config.server.demo || a.dev_sign_in) {
            Err("Development sign-in is off. It is available only in demo mode (nova serve --demo) or with `[auth] dev_sign_in = true`.".to_string())
        } else if !listen.ip().is_loopback() && !a.dev_sign_in_allow_remote {
            Err(format!(
                "Development sign-in is refused because Nova listens on {listen}, which is not a loopback address: anyone who can reach it could act as any user. Set `[auth] dev_sign_in_allow_remote = true` to allow it anyway."
            ))
        } else if key.is_none() {
            anyhow::bail!("config: auth.dev_sign_in needs auth.session_key outside demo mode (a reference such as {{ env = \"NOVA_SESSION_KEY\" }})");
        } else {
            Ok(())
        };
        Ok(Self { key, ttl: a.session_ttl, secure_cookie: a.secure_cookie, ownership: config.catalog.ownership, dev_sign_in })
    }

    /// Whether development sign-in may be used; the error explains why not.
    pub fn dev_sign_in(&self) -> Result<(), AppError> {
        self.dev_sign_in.clone().map_err(AppError::Forbidden)
    }

    /// Starts a session: the `Set-Cookie` value for `user`.
    pub fn start_session(&self, user: EntityRef, method: SignInMethod) -> Result<String, AppError> {
        let key = self.key.as_ref().ok_or_else(|| AppError::Forbidden("sessions are off: no auth.session_key is configured".into()))?;
        let now = now_ms();
        let session = Session { user, method, issued_at: now, expires_at: now + self.ttl.as_millis() as i64 };
        Ok(session::set_cookie(&key.seal(&session), self.ttl, self.secure_cookie))
    }

    /// The `Set-Cookie` value that ends the session.
    pub fn end_session(&self) -> String {
        session::clear_cookie(self.secure_cookie)
    }

    /// Who the request comes from, according to each sign-in method in turn.
    pub fn authenticate(&self, headers: &HeaderMap) -> Option<Session> {
        // Later: trusted proxy headers and API tokens are checked here, before the cookie.
        let key = self.key.as_ref()?;
        key.open(session::cookie_value(headers, session::COOKIE)?, now_ms())
    }
}

/// A signed-in user as handlers see them.
#[derive(Debug, Clone)]
pub struct User {
    pub entity_ref: EntityRef,
    /// The User entity's display name (or its name when the catalog does not know it).
    pub display_name: String,
    /// The user, their groups and (in transitive mode) those groups' ancestors.
    pub claims: Vec<EntityRef>,
    pub method: SignInMethod,
}

/// The caller of a request.
#[derive(Debug, Clone)]
pub enum Actor {
    Anonymous,
    User(User),
}

impl Actor {
    /// The signed-in user, if any.
    pub fn user(&self) -> Option<&User> {
        match self {
            Actor::User(u) => Some(u),
            Actor::Anonymous => None,
        }
    }

    /// Whether one of the actor's claims is `owner`.
    pub fn holds_claim(&self, owner: &EntityRef) -> bool {
        self.user().is_some_and(|u| u.claims.contains(owner))
    }
}

impl FromRequestParts<AppState> for Actor {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        if let Some(actor) = parts.extensions.get::<Actor>() {
            return Ok(actor.clone());
        }
        let actor = match state.auth.authenticate(&parts.headers) {
            None => Actor::Anonymous,
            Some(session) => {
                let snap = state.catalog.snapshot();
                let display_name = snap.get(&session.user).map(|r| r.display_name().to_string()).unwrap_or_else(|| session.user.name().to_string());
                let claims = snap.claims(&session.user, state.auth.ownership);
                Actor::User(User { entity_ref: session.user, display_name, claims, method: session.method })
            }
        };
        parts.extensions.insert(actor.clone());
        Ok(actor)
    }
}

/// Refuses a state-changing browser request that does not come from Nova's own pages: the
/// `Origin` header (or, when a browser sends none, the `Referer`) must name the host the request
/// was sent to, and `Sec-Fetch-Site` must not say `cross-site`. Behind a reverse proxy, the proxy
/// must pass the original `Host` header.
pub fn check_same_origin(headers: &HeaderMap) -> Result<(), AppError> {
    let refuse = |why: &str| Err(AppError::Forbidden(format!("This form must be sent from Nova's own pages ({why}). Reload the page and try again.")));
    if headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) == Some("cross-site") {
        return refuse("the browser reports a cross-site request");
    }
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else { return refuse("no Host header") };
    let source = headers.get(header::ORIGIN).or_else(|| headers.get(header::REFERER)).and_then(|v| v.to_str().ok());
    let Some(source) = source.filter(|s| *s != "null") else { return refuse("no Origin or Referer header") };
    let Ok(url) = url::Url::parse(source) else { return refuse("unreadable Origin") };
    let authority = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        (None, _) => return refuse("unreadable Origin"),
    };
    if authority.eq_ignore_ascii_case(host) { Ok(()) } else { refuse("it comes from another site") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn same_origin_requires_a_matching_origin_or_referer() {
        assert!(check_same_origin(&headers(&[("host", "127.0.0.1:7700"), ("origin", "http://127.0.0.1:7700")])).is_ok());
        assert!(check_same_origin(&headers(&[("host", "nova.example.com"), ("referer", "https://nova.example.com/sign-in?x=1")])).is_ok());
        assert!(check_same_origin(&headers(&[("host", "127.0.0.1:7700"), ("origin", "http://evil.example")])).is_err());
        assert!(check_same_origin(&headers(&[("host", "127.0.0.1:7700"), ("origin", "http://127.0.0.1:7701")])).is_err());
        assert!(check_same_origin(&headers(&[("host", "127.0.0.1:7700")])).is_err());
        assert!(check_same_origin(&headers(&[("host", "127.0.0.1:7700"), ("origin", "null")])).is_err());
        let cross = headers(&[("host", "h"), ("origin", "http://h"), ("sec-fetch-site", "cross-site")]);
        assert!(check_same_origin(&cross).is_err());
    }
}
