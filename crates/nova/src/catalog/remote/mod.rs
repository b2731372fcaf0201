//! Remote catalog locations: git repositories and HTTP(S) URLs.
//!
//! Both run on the blocking thread that reads a location ([`super::location::read_location`]),
//! bounded by `catalog.remote_timeout`. Credentials come from `catalog.credentials` by reference
//! and reach git through its environment (an askpass helper reads them there), never its argv,
//! a URL or a log line. Addresses that [`crate::outbound`] refuses (cloud metadata services,
//! link-local hosts, `[outbound] deny`) are refused before any connection is made.
// Sources return the `CatalogError` that is recorded for the file (see `location.rs`).
#![allow(clippy::result_large_err)]

mod git;
mod url;

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use nova_domain::Sensitive;

pub use git::GitSource;
pub use url::UrlSource;

use super::error::{CatalogError, ErrorKind};
use crate::config::{CatalogConfig, RemoteCredential};
use crate::outbound::Outbound;

/// What remote sources share: where git caches live, limits and credentials.
#[derive(Debug, Clone)]
pub struct RemoteContext {
    /// Shallow git repositories, one per location, under the data directory.
    pub cache_dir: PathBuf,
    pub timeout: Duration,
    pub max_redirects: usize,
    /// Which addresses may be read from (`[outbound]`).
    pub outbound: Outbound,
    credentials: Vec<RemoteCredential>,
}

/// A credential resolved for one URL.
pub struct Credential {
    pub username: Option<String>,
    pub secret: Sensitive<String>,
}

impl RemoteContext {
    /// Settings from `[catalog]`; git caches go under `cache_dir` (made absolute: git runs in
    /// the cache repository and must still find the askpass helper).
    pub fn new(cache_dir: PathBuf, config: &CatalogConfig, outbound: Outbound) -> Self {
        let cache_dir = if cache_dir.is_absolute() { cache_dir } else { std::env::current_dir().unwrap_or_default().join(cache_dir) };
        Self { cache_dir, timeout: config.remote_timeout, max_redirects: config.max_redirects, outbound, credentials: config.credentials.clone() }
    }

    /// The credential with the longest `url_prefix` that `url` starts with. A configured but
    /// unreadable secret is an error naming the reference, never a silent anonymous request.
    pub fn credential_for(&self, url: &str) -> Result<Option<Credential>, CatalogError> {
        let Some(c) = self.credentials.iter().filter(|c| url.starts_with(&c.url_prefix)).max_by_key(|c| c.url_prefix.len()) else {
            return Ok(None);
        };
        let secret = c.secret.resolve_local("catalog.credentials.secret").map_err(|e| {
            CatalogError::location("", ErrorKind::Location, "credential", format!("the credential for {} cannot be read: {e}", c.url_prefix))
        })?;
        Ok(Some(Credential { username: c.username.clone(), secret }))
    }
}

/// Parses a URL location's target: `http` or `https`, no credentials in it.
pub fn check_http_url(target: &str) -> Result<::url::Url, String> {
    let u = ::url::Url::parse(target).map_err(|e| format!("{target:?} is not a valid URL: {e}"))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(format!("URL scheme {:?} is not allowed; use http or https", u.scheme()));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err("credentials must not be written in the URL; configure them in catalog.credentials".into());
    }
    if u.host().is_none() {
        return Err(format!("{target:?} has no host"));
    }
    Ok(u)
}

/// The error for a refused address.
fn blocked_error(host: &str, why: &str) -> CatalogError {
    CatalogError::location("", ErrorKind::Location, "allowed-address", format!("{host} resolves to {why}; Nova does not read catalog files from there ([outbound])"))
}

/// Why `ip` may not be read from (loopback is fine: a catalog server on this machine).
fn refusal(outbound: &Outbound, ip: IpAddr) -> Option<&'static str> {
    outbound.refusal(ip, true)
}

/// Resolves `host` and refuses it when any of its addresses is blocked. Used before git
/// connects (git resolves again itself; an attacker who controls DNS could still race this, which
/// docs/CATALOG.md states).
fn check_host(outbound: &Outbound, host: &str, port: u16) -> Result<(), CatalogError> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if Outbound::is_metadata_name(host) {
        return Err(blocked_error(host, "a cloud metadata host"));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return refusal(outbound, ip).map_or(Ok(()), |why| Err(blocked_error(host, why)));
    }
    use std::net::ToSocketAddrs;
    let addrs = (host, port).to_socket_addrs().map_err(|e| {
        CatalogError::location("", ErrorKind::Location, "reachable", format!("cannot resolve {host}: {e}"))
    })?;
    for a in addrs {
        if let Some(why) = refusal(outbound, a.ip()) {
            return Err(blocked_error(host, why));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_link_local_and_denied_hosts_are_refused() {
        let default = Outbound::default();
        assert!(check_host(&default, "169.254.169.254", 80).is_err());
        assert!(check_host(&default, "[fe80::1]", 80).is_err());
        assert!(check_host(&default, "metadata.google.internal", 80).is_err());
        assert!(check_host(&default, "127.0.0.1", 80).is_ok(), "a catalog server on this machine is fine");
        assert!(check_host(&default, "10.1.2.3", 80).is_ok());
        let denied = Outbound::from_config(&crate::outbound::OutboundConfig { deny: vec!["10.0.0.0/8".into()], ..Default::default() }).unwrap();
        let e = check_host(&denied, "10.1.2.3", 80).unwrap_err();
        assert!(e.message.contains("outbound.deny"), "{}", e.message);
    }

    #[test]
    fn credentials_pick_the_longest_prefix() {
        let mut config = CatalogConfig::default();
        let cred = |prefix: &str, var: &str| RemoteCredential {
            url_prefix: prefix.into(),
            username: Some(prefix.into()),
            secret: crate::secrets::SecretRef::Env(var.into()),
        };
        config.credentials = vec![cred("https://h/", "PATH"), cred("https://h/team/", "HOME"), cred("https://other/", "NOVA_TEST_UNSET_VAR")];
        let ctx = RemoteContext::new(PathBuf::from("/nonexistent"), &config, Outbound::default());
        assert_eq!(ctx.credential_for("https://h/team/r.git").unwrap().unwrap().username.as_deref(), Some("https://h/team/"));
        assert_eq!(ctx.credential_for("https://h/x").unwrap().unwrap().username.as_deref(), Some("https://h/"));
        assert!(ctx.credential_for("https://nowhere/x").unwrap().is_none());
        let e = ctx.credential_for("https://other/x").err().unwrap();
        assert!(e.message.contains("NOVA_TEST_UNSET_VAR"), "{}", e.message);
    }
}
