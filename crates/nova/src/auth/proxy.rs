//! Identity from an authenticating reverse proxy (oauth2-proxy and the like): the proxy signs
//! people in and passes who they are in request headers. The headers are believed only from
//! the configured proxy addresses; from anywhere else a request carrying them is refused
//! (a client must not be able to claim to be anyone by sending a header).

use std::net::IpAddr;

use axum::http::HeaderMap;

use super::AuthRefusal;
use crate::config::ProxyConfig;

/// An address range such as `10.0.0.0/24` (or one address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    fn parse(s: &str) -> Result<Self, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let network: IpAddr = addr.trim().parse().map_err(|_| format!("trusted_proxies: {s:?} is not an address or CIDR range"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.trim().parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(|| format!("trusted_proxies: {s:?} has an invalid prefix length"))?,
            None => max,
        };
        Ok(Self { network, prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        let ip = match (self.network, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            _ => ip,
        };
        match (self.network, ip) {
            (IpAddr::V4(n), IpAddr::V4(i)) => {
                let mask = if self.prefix == 0 { 0 } else { u32::MAX << (32 - self.prefix) };
                u32::from(n) & mask == u32::from(i) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(i)) => {
                let mask = if self.prefix == 0 { 0 } else { u128::MAX << (128 - self.prefix) };
                u128::from(n) & mask == u128::from(i) & mask
            }
            _ => false,
        }
    }
}

/// Who the proxy says the caller is.
pub struct ProxyIdentity {
    pub user: Option<String>,
    pub email: Option<String>,
}

/// The trusted-proxy settings.
#[derive(Debug)]
pub struct ProxyAuth {
    trusted: Vec<Cidr>,
    user_header: String,
    email_header: Option<String>,
    /// The catalog namespace users are looked up in.
    pub user_namespace: String,
}

impl ProxyAuth {
    /// Parses `[auth.proxy]`.
    pub fn from_config(c: &ProxyConfig) -> Result<Self, String> {
        if c.trusted_proxies.is_empty() {
            return Err("trusted_proxies must name at least one address".into());
        }
        Ok(Self {
            trusted: c.trusted_proxies.iter().map(|s| Cidr::parse(s)).collect::<Result<_, _>>()?,
            user_header: c.user_header.to_ascii_lowercase(),
            email_header: c.email_header.as_ref().map(|h| h.to_ascii_lowercase()),
            user_namespace: c.user_namespace.clone(),
        })
    }

    /// The identity in the headers: `None` when the request carries none; a refusal when it
    /// carries them from an address that is not a trusted proxy.
    pub fn identity(&self, headers: &HeaderMap, remote: Option<IpAddr>) -> Result<Option<ProxyIdentity>, AuthRefusal> {
        let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty()).map(str::to_string);
        let user = get(&self.user_header);
        let email = self.email_header.as_deref().and_then(get);
        if user.is_none() && email.is_none() {
            return Ok(None);
        }
        match remote {
            Some(ip) if self.trusted.iter().any(|c| c.contains(ip)) => Ok(Some(ProxyIdentity { user, email })),
            _ => Err(AuthRefusal {
                method: "proxy",
                reason: format!(
                    "identity headers are accepted only from the configured proxy (auth.proxy.trusted_proxies); this request came from {}",
                    remote.map_or("an unknown address".to_string(), |r| r.to_string())
                ),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_ranges() {
        let net = Cidr::parse("10.0.0.0/24").unwrap();
        assert!(net.contains("10.0.0.7".parse().unwrap()));
        assert!(!net.contains("10.0.1.7".parse().unwrap()));
        assert!(net.contains("::ffff:10.0.0.9".parse().unwrap()), "IPv4-mapped IPv6 addresses match");
        assert!(Cidr::parse("127.0.0.1").unwrap().contains("127.0.0.1".parse().unwrap()));
        assert!(Cidr::parse("fd00::/8").unwrap().contains("fd12::1".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("example.com").is_err());
    }

    #[test]
    fn headers_are_refused_from_untrusted_addresses() {
        let p = ProxyAuth::from_config(&ProxyConfig {
            trusted_proxies: vec!["127.0.0.1".into()],
            user_header: "X-Forwarded-User".into(),
            email_header: Some("X-Forwarded-Email".into()),
            user_namespace: "default".into(),
        })
        .unwrap();
        let mut h = HeaderMap::new();
        assert!(p.identity(&h, Some("10.1.1.1".parse().unwrap())).unwrap().is_none(), "no headers, nothing to refuse");
        h.insert("x-forwarded-user", "alex.kim".parse().unwrap());
        assert_eq!(p.identity(&h, Some("127.0.0.1".parse().unwrap())).unwrap().unwrap().user.as_deref(), Some("alex.kim"));
        assert!(p.identity(&h, Some("10.1.1.1".parse().unwrap())).is_err());
        assert!(p.identity(&h, None).is_err());
    }
}
