//! Who is making a request: sign-in methods, sessions and the [`Actor`] handlers receive.
//!
//! Every handler that needs to know the caller takes an [`Actor`] (an axum extractor), built by
//! [`actor_of`]: [`Auth`] identifies the caller from an API token (`Authorization: Bearer`,
//! [`tokens`]), trusted reverse-proxy headers ([`proxy`]) or the signed session cookie
//! ([`session`], started by OIDC sign-in ([`oidc`]) or development sign-in), then the catalog
//! supplies their display name and ownership claims ([`crate::catalog::Snapshot::claims`]).
//! What an actor may do is decided by [`crate::authz`], never here.
//!
//! Development sign-in (pick any catalog User, no password) exists only in demo mode or with
//! `auth.dev_sign_in`, and only on a loopback listen address unless
//! `auth.dev_sign_in_allow_remote`. State-changing console forms are protected against
//! cross-site requests by [`check_same_origin`].

pub mod oidc;
pub mod proxy;
pub mod session;
pub mod tokens;

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::RwLock;
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use nova_domain::EntityRef;
use sqlx::Row;

pub use oidc::Oidc;
pub use proxy::ProxyAuth;
pub use session::{Session, SessionKey, SignInMethod};
pub use tokens::TokenStore;

use crate::audit::{AuditEvent, Outcome};
use crate::catalog::Snapshot;
use crate::catalog::query::{Filter, QuerySpec};
use crate::config::{Config, OwnershipMode};
use crate::http::{AppError, AppState};
use crate::storage::{Db, StorageError, now_ms};

/// Sign-in and session settings, resolved once at start.
pub struct Auth {
    key: Option<SessionKey>,
    ttl: Duration,
    secure_cookie: bool,
    ownership: OwnershipMode,
    dev_sign_in: Result<(), String>,
    /// Whether people who are not signed in may read.
    pub anonymous_read: bool,
    /// Members of this group (and its sub-teams) are platform admins.
    pub admin_group: Option<EntityRef>,
    /// OpenID Connect sign-in, when configured.
    pub oidc: Option<Oidc>,
    proxy: Option<ProxyAuth>,
    /// Personal API tokens.
    pub tokens: TokenStore,
    db: Db,
    /// Session ids signed out before they expired, synced from the database.
    revoked: RwLock<HashSet<String>>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth").field("oidc", &self.oidc.is_some()).field("proxy", &self.proxy.is_some()).finish_non_exhaustive()
    }
}

/// Who a request's credentials name, before the catalog is consulted.
struct Identified {
    user: EntityRef,
    method: SignInMethod,
}

/// Why presented credentials were refused (the request is then answered 401 and audited).
#[derive(Debug)]
pub struct AuthRefusal {
    /// `token`, `proxy`.
    pub method: &'static str,
    pub reason: String,
}

/// Why a request could not be given an identity.
enum IdentifyError {
    /// The credentials presented are refused: 401, audited.
    Refused(AuthRefusal),
    /// They could not be checked (the database is down): 503, nothing audited.
    Unavailable(crate::storage::StorageError),
}

impl From<AuthRefusal> for IdentifyError {
    fn from(r: AuthRefusal) -> Self {
        Self::Refused(r)
    }
}

impl Auth {
    /// Resolves `[auth]`: reads the session key (or, in demo mode without one, creates one under
    /// `server.data_dir`), the OIDC client secret and the proxy settings, and decides whether
    /// development sign-in is allowed.
    pub fn from_config(config: &Config, db: Db) -> anyhow::Result<Self> {
        let a = &config.auth;
        let key = match &a.session_key {
            Some(r) => Some(
                SessionKey::from_secret(&r.resolve_local("auth.session_key")?).map_err(|e| anyhow::anyhow!("config: auth.session_key ({r}): {e}"))?,
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
        let oidc = match &a.oidc {
            None => None,
            Some(o) => {
                if key.is_none() {
                    anyhow::bail!("config: auth.oidc needs auth.session_key (a reference such as {{ env = \"NOVA_SESSION_KEY\" }}) to sign sessions");
                }
                if !o.redirect_url.ends_with("/auth/oidc/callback") {
                    anyhow::bail!("config: auth.oidc.redirect_url must end with /auth/oidc/callback");
                }
                let secret = o
                    .client_secret
                    .as_ref()
                    .map(|r| r.resolve_local("auth.oidc.client_secret"))
                    .transpose()?;
                Some(Oidc::new(o.clone(), secret))
            }
        };
        let proxy = a.proxy.as_ref().map(ProxyAuth::from_config).transpose().map_err(|e| anyhow::anyhow!("config: auth.proxy: {e}"))?;
        let admin_group = a
            .admin_group
            .as_deref()
            .map(|g| EntityRef::parse_with(g, Some("Group"), "default"))
            .transpose()
            .map_err(|e| anyhow::anyhow!("config: auth.admin_group: {e}"))?;
        let anonymous_read = a.anonymous_read.unwrap_or(oidc.is_none() && proxy.is_none());
        Ok(Self {
            key,
            ttl: a.session_ttl,
            secure_cookie: a.secure_cookie,
            ownership: config.catalog.ownership,
            dev_sign_in,
            anonymous_read,
            admin_group,
            oidc,
            proxy,
            tokens: TokenStore::new(db.clone()),
            db,
            revoked: RwLock::new(HashSet::new()),
        })
    }

    /// Whether development sign-in may be used; the error explains why not.
    pub fn dev_sign_in(&self) -> Result<(), AppError> {
        self.dev_sign_in.clone().map_err(AppError::Forbidden)
    }

    /// The session key, when sessions are on.
    pub fn session_key(&self) -> Result<&SessionKey, AppError> {
        self.key.as_ref().ok_or_else(|| AppError::Forbidden("sessions are off: no auth.session_key is configured".into()))
    }

    /// Whether cookies are marked `Secure`.
    pub fn secure_cookie(&self) -> bool {
        self.secure_cookie
    }

    /// Starts a session: the `Set-Cookie` value for `user`.
    pub fn start_session(&self, user: EntityRef, method: SignInMethod) -> Result<String, AppError> {
        let key = self.session_key()?;
        let now = now_ms();
        let mut sid = [0u8; 16];
        getrandom::fill(&mut sid).map_err(|e| AppError::Internal(anyhow::anyhow!("no randomness for a session id: {e}")))?;
        let session = Session { sid: hex::encode(sid), user, method, issued_at: now, expires_at: now + self.ttl.as_millis() as i64 };
        Ok(session::set_cookie(&key.seal(&session), self.ttl, self.secure_cookie))
    }

    /// Ends the session carried by `headers` (so a copy of its cookie stops working on every
    /// replica) and returns the `Set-Cookie` value that clears it.
    pub async fn end_session(&self, headers: &HeaderMap) -> Result<String, StorageError> {
        if let Some(s) = self.session(headers) {
            sqlx::query(self.db.sql("INSERT INTO revoked_sessions (sid, expires_at) VALUES ($1, $2) ON CONFLICT (sid) DO NOTHING"))
                .bind(&s.sid)
                .bind(s.expires_at)
                .execute(self.db.pool())
                .await?;
            self.revoked.write().unwrap_or_else(|e| e.into_inner()).insert(s.sid);
        }
        Ok(session::clear_cookie(self.secure_cookie))
    }

    /// Reloads signed-out session ids written by other replicas, and forgets expired ones.
    pub async fn sync(&self) -> Result<(), StorageError> {
        let now = now_ms();
        sqlx::query(self.db.sql("DELETE FROM revoked_sessions WHERE expires_at < $1")).bind(now).execute(self.db.pool()).await?;
        let rows = sqlx::query("SELECT sid FROM revoked_sessions").fetch_all(self.db.pool()).await?;
        let ids: HashSet<String> = rows.iter().map(|r| r.get(0)).collect();
        *self.revoked.write().unwrap_or_else(|e| e.into_inner()) = ids;
        Ok(())
    }

    /// The valid, not signed-out session in the request's cookie.
    fn session(&self, headers: &HeaderMap) -> Option<Session> {
        let key = self.key.as_ref()?;
        let s = key.open(session::cookie_value(headers, session::COOKIE)?, now_ms())?;
        (!self.revoked.read().unwrap_or_else(|e| e.into_inner()).contains(&s.sid)).then_some(s)
    }

    /// Who the request comes from: an API token (`Authorization: Bearer`), then trusted proxy
    /// headers, then the session cookie. Presented-but-invalid tokens and identity headers
    /// from an untrusted address are refusals; a stale or forged cookie is just anonymous.
    async fn identify(&self, headers: &HeaderMap, remote: Option<IpAddr>, snap: &Snapshot) -> Result<Option<Identified>, IdentifyError> {
        if let Some(value) = headers.get(header::AUTHORIZATION) {
            let token = value
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
                .ok_or(AuthRefusal { method: "token", reason: "the Authorization header must be `Bearer nova_...`".into() })?;
            return match self.tokens.authenticate(token.trim(), |u| snap.get(u).is_some()).await {
                Ok(Ok(user)) => Ok(Some(Identified { user, method: SignInMethod::Token })),
                Ok(Err(refusal)) => Err(AuthRefusal { method: "token", reason: refusal.to_string() }.into()),
                // The token store cannot be read (the database is down): not the caller's fault.
                Err(e) => Err(IdentifyError::Unavailable(e)),
            };
        }
        if let Some(proxy) = &self.proxy {
            if let Some(identity) = proxy.identity(headers, remote)? {
                let user = resolve_user(snap, identity.user.as_deref(), identity.email.as_deref(), &proxy.user_namespace)
                    .map_err(|reason| AuthRefusal { method: "proxy", reason })?;
                return Ok(Some(Identified { user, method: SignInMethod::Proxy }));
            }
        }
        Ok(self.session(headers).map(|s| Identified { user: s.user, method: s.method }))
    }
}

/// Maps an identity provider's user to a catalog User: by e-mail (`spec.profile.email`) when
/// one matches, else by name in `namespace`. A user the catalog does not know may still sign
/// in; they own nothing.
pub fn resolve_user(snap: &Snapshot, username: Option<&str>, email: Option<&str>, namespace: &str) -> Result<EntityRef, String> {
    if let Some(email) = email.filter(|e| !e.is_empty() && !e.contains(',')) {
        let spec = QuerySpec { filter: Filter::parse([format!("kind=user,spec.profile.email={email}").as_str()]).map_err(|e| e.to_string())?, ..Default::default() };
        if let Some(u) = spec.page(snap, 0, 1).items.first() {
            return Ok(u.entity_ref.clone());
        }
    }
    let name = username.or_else(|| email.and_then(|e| e.split('@').next())).filter(|n| !n.is_empty()).ok_or("no user name was provided")?;
    EntityRef::parse_with(name, Some("User"), namespace).map_err(|e| format!("the user name cannot name a catalog User: {e}"))
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
    /// Whether the user is a platform admin (a member of `auth.admin_group`).
    pub admin: bool,
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

    /// The actor as feature flags see it.
    pub fn flag_subject(&self) -> crate::flags::Subject<'_> {
        crate::flags::Subject { user: self.user().map(|u| &u.entity_ref), claims: self.user().map_or(&[], |u| &u.claims) }
    }

    /// The actor as the audit log names them.
    pub fn audit_name(&self) -> String {
        self.user().map_or_else(|| "anonymous".to_string(), |u| u.entity_ref.to_string())
    }

    /// The actor's claims as strings, for audit records.
    pub fn audit_teams(&self) -> Vec<String> {
        self.user().map(|u| u.claims.iter().skip(1).map(ToString::to_string).collect()).unwrap_or_default()
    }
}

/// Computes the actor for a request: its credentials (see [`Auth::identify`]) and the catalog's
/// view of the user. Refused credentials are audited and answered 401.
pub async fn actor_of(state: &AppState, headers: &HeaderMap, remote: Option<IpAddr>) -> Result<Actor, AppError> {
    let snap = state.catalog.snapshot();
    match state.auth.identify(headers, remote, &snap).await {
        Ok(None) => Ok(Actor::Anonymous),
        Ok(Some(Identified { user, method })) => {
            let display_name = snap.get(&user).map(|r| r.display_name().to_string()).unwrap_or_else(|| user.name().to_string());
            let claims = snap.claims(&user, state.auth.ownership);
            let admin = state.auth.admin_group.as_ref().is_some_and(|g| claims.contains(g));
            Ok(Actor::User(User { entity_ref: user, display_name, claims, method, admin }))
        }
        Err(IdentifyError::Unavailable(e)) => Err(e.into()),
        Err(IdentifyError::Refused(refusal)) => {
            let record = AuditEvent {
                actor: "anonymous".into(),
                teams: vec![],
                action: "auth.refused".into(),
                target: format!("auth:{}", refusal.method),
                outcome: Outcome::Denied,
                request_id: crate::http::error::request_id(),
                details: serde_json::json!({ "reason": refusal.reason, "remote": remote.map(|r| r.to_string()) }),
            };
            if let Err(e) = state.audit.record(record).await {
                tracing::error!(error = %e, "could not audit a refused sign-in");
            }
            Err(AppError::Unauthorized(refusal.reason))
        }
    }
}

impl FromRequestParts<AppState> for Actor {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        if let Some(actor) = parts.extensions.get::<Actor>() {
            return Ok(actor.clone());
        }
        let remote = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        let actor = actor_of(state, &parts.headers, remote).await?;
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
