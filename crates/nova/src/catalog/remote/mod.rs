//! Remote catalog locations: git repositories and HTTP(S) URLs.
//!
//! Both run on the blocking thread that reads a location ([`super::location::read_location`]),
//! bounded by `catalog.remote_timeout`. Credentials come from `catalog.credentials` by reference
//! and reach git through its environment (an askpass helper reads them there), never its argv,
//! a URL or a log line. Addresses that lead to cloud metadata services or other link-local hosts
//! are refused before any connection is made.
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

/// What remote sources share: where git caches live, limits and credentials.
#[derive(Debug, Clone)]
pub struct RemoteContext {
    /// Shallow git repositories, one per location, under the data directory.
    pub cache_dir: PathBuf,
    pub timeout: Duration,
    pub max_redirects: usize,
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
    pub fn new(cache_dir: PathBuf, config: &CatalogConfig) -> Self {
        let cache_dir = if cache_dir.is_absolute() { cache_dir } else { std::env::current_dir().unwrap_or_default().join(cache_dir) };
        Self { cache_dir, timeout: config.remote_timeout, max_redirects: config.max_redirects, credentials: config.credentials.clone() }
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

/// Whether Nova refuses to connect to an address: link-local ranges (where cloud metadata
/// services such as 169.254.169.254 live), other known metadata addresses, and "this host".
pub fn is_blocked(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local() || v4.is_unspecified() || v4.octets() == [100, 100, 100, 200] || v4.octets()[0] == 0,
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_blocked(IpAddr::V4(v4));
            }
            let seg = v6.segments();
            (seg[0] & 0xffc0) == 0xfe80 || v6.is_unspecified() || seg == [0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254]
        }
    }
}

/// The error for a refused address.
fn blocked_error(host: &str) -> CatalogError {
    CatalogError::location(
        "",
        ErrorKind::Location,
        "allowed-address",
        format!("{host} resolves to a link-local or metadata address; Nova does not read catalog files from there"),
    )
}

/// Resolves `host` and refuses it when any of its addresses is blocked. Used before git
/// connects (git resolves again itself; an attacker who controls DNS could still race this, which
/// docs/CATALOG.md states).
fn check_host(host: &str, port: u16) -> Result<(), CatalogError> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<IpAddr>() {
        return if is_blocked(ip) { Err(blocked_error(host)) } else { Ok(()) };
    }
    use std::net::ToSocketAddrs;
    let addrs = (host, port).to_socket_addrs().map_err(|e| {
        CatalogError::location("", ErrorKind::Location, "reachable", format!("cannot resolve {host}: {e}"))
    })?;
    for a in addrs {
        if is_blocked(a.ip()) {
            return Err(blocked_error(host));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_and_link_local_addresses_are_blocked() {
        for ip in ["169.254.169.254", "169.254.0.1", "100.100.100.200", "0.0.0.0", "fe80::1", "fd00:ec2::254", "::ffff:169.254.169.254", "::"] {
            assert!(is_blocked(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["127.0.0.1", "10.1.2.3", "192.168.1.1", "::1", "2001:db8::1"] {
            assert!(!is_blocked(ip.parse().unwrap()), "{ip}");
        }
        assert!(check_host("169.254.169.254", 80).is_err());
        assert!(check_host("[fe80::1]", 80).is_err());
        assert!(check_host("127.0.0.1", 80).is_ok());
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
        let ctx = RemoteContext::new(PathBuf::from("/nonexistent"), &config);
        assert_eq!(ctx.credential_for("https://h/team/r.git").unwrap().unwrap().username.as_deref(), Some("https://h/team/"));
        assert_eq!(ctx.credential_for("https://h/x").unwrap().unwrap().username.as_deref(), Some("https://h/"));
        assert!(ctx.credential_for("https://nowhere/x").unwrap().is_none());
        let e = ctx.credential_for("https://other/x").err().unwrap();
        assert!(e.message.contains("NOVA_TEST_UNSET_VAR"), "{}", e.message);
    }
}
