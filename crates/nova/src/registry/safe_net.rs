//! Where Nova may follow a registry: blob redirects and token realms point at other hosts
//! (S3, CDNs, auth services), which is normal, but never at cloud metadata services,
//! link-local addresses, or — unless the registry itself is on this machine — loopback.
//!
//! Host names are checked when they are resolved ([`SafeResolver`], installed on the client
//! that follows redirects), so a name that resolves to a forbidden address at connect time is
//! refused too; IP literals are checked before the request ([`check_url`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::provider::RegistryError;

/// Host names of metadata services that are refused whatever they resolve to.
const METADATA_NAMES: [&str; 3] = ["metadata.google.internal", "metadata", "metadata.azure.internal"];

/// Why an address may not be contacted, or `None` when it may.
pub fn forbidden_ip(ip: IpAddr, allow_loopback: bool) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4, allow_loopback),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden_v4(v4, allow_loopback);
            }
            if v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
                Some("a cloud metadata address")
            } else if v6.is_loopback() {
                (!allow_loopback).then_some("a loopback address")
            } else if v6.is_unspecified() || v6.is_multicast() {
                Some("not a unicast address")
            } else if (v6.segments()[0] & 0xffc0) == 0xfe80 {
                Some("a link-local address")
            } else {
                None
            }
        }
    }
}

fn forbidden_v4(v4: Ipv4Addr, allow_loopback: bool) -> Option<&'static str> {
    if v4 == Ipv4Addr::new(169, 254, 169, 254) || v4 == Ipv4Addr::new(100, 100, 100, 200) || v4 == Ipv4Addr::new(169, 254, 170, 2) {
        Some("a cloud metadata address")
    } else if v4.is_link_local() {
        Some("a link-local address")
    } else if v4.is_loopback() {
        (!allow_loopback).then_some("a loopback address")
    } else if v4.is_unspecified() || v4.is_broadcast() || v4.is_multicast() || v4.octets()[0] == 0 {
        Some("not a unicast address")
    } else {
        None
    }
}

/// Whether `host` is on this machine (a loopback literal or `localhost`).
pub fn is_local_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost") || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Checks a URL Nova is about to follow: http(s), not a metadata host name, and not a
/// forbidden IP literal. Names are checked again when resolved ([`SafeResolver`]).
pub fn check_url(url: &url::Url, allow_loopback: bool) -> Result<(), RegistryError> {
    let refuse = |why: &str| Err(RegistryError::Refused(format!("refused to follow the registry to {}: {why}", url_for_message(url))));
    if !matches!(url.scheme(), "http" | "https") {
        return refuse("only http and https are followed");
    }
    match url.host() {
        None => refuse("no host"),
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            if METADATA_NAMES.contains(&d.as_str()) {
                return refuse("a cloud metadata host");
            }
            if !allow_loopback && d == "localhost" {
                return refuse("a loopback address");
            }
            Ok(())
        }
        Some(url::Host::Ipv4(ip)) => forbidden_ip(IpAddr::V4(ip), allow_loopback).map_or(Ok(()), refuse),
        Some(url::Host::Ipv6(ip)) => forbidden_ip(IpAddr::V6(ip), allow_loopback).map_or(Ok(()), refuse),
    }
}

/// A URL without its query (pre-signed S3 URLs carry credentials there), for messages.
pub fn url_for_message(url: &url::Url) -> String {
    format!("{}://{}{}", url.scheme(), url.host_str().unwrap_or(""), url.port().map(|p| format!(":{p}")).unwrap_or_default())
}

/// A DNS resolver that drops forbidden addresses, failing when none is left.
#[derive(Debug, Clone)]
pub struct SafeResolver {
    pub allow_loopback: bool,
}

impl SafeResolver {
    /// As an `Arc`, for `reqwest::ClientBuilder::dns_resolver`.
    pub fn shared(allow_loopback: bool) -> Arc<Self> {
        Arc::new(Self { allow_loopback })
    }
}

impl Resolve for SafeResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_loopback = self.allow_loopback;
        Box::pin(async move {
            let host = name.as_str().to_string();
            if METADATA_NAMES.contains(&host.trim_end_matches('.').to_ascii_lowercase().as_str()) {
                return Err(format!("{host} is a cloud metadata host").into());
            }
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = addrs.iter().copied().filter(|a| forbidden_ip(a.ip(), allow_loopback).is_none()).collect();
            if allowed.is_empty() {
                let why = addrs.first().and_then(|a| forbidden_ip(a.ip(), allow_loopback)).unwrap_or("no address");
                return Err(format!("{host} resolves to {why}").into());
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> url::Url {
        url::Url::parse(s).unwrap()
    }

    #[test]
    fn metadata_link_local_and_loopback_are_refused() {
        for (u, allow) in [
            ("http://169.254.169.254/latest/meta-data/", true),
            ("http://169.254.170.2/v2/credentials", true),
            ("http://[fd00:ec2::254]/", true),
            ("http://169.254.1.1/", true),
            ("http://[fe80::1]/", true),
            ("http://metadata.google.internal/computeMetadata/v1/", true),
            ("http://127.0.0.1:5000/", false),
            ("http://localhost/", false),
            ("http://[::1]/", false),
            ("http://[::ffff:169.254.169.254]/", true),
            ("file:///etc/passwd", true),
            ("http://0.0.0.0/", true),
        ] {
            assert!(matches!(check_url(&url(u), allow), Err(RegistryError::Refused(_))), "{u}");
        }
        for (u, allow) in [("https://prod-eu-west-1-starport-layer-bucket.s3.eu-west-1.amazonaws.com/x?X-Amz-Signature=s", false), ("http://127.0.0.1:5000/", true), ("http://10.1.2.3/", false)] {
            assert!(check_url(&url(u), allow).is_ok(), "{u}");
        }
    }

    #[test]
    fn messages_drop_the_query() {
        let m = url_for_message(&url("https://bucket.s3.amazonaws.com/path?X-Amz-Credential=AKIA&X-Amz-Signature=secret"));
        assert_eq!(m, "https://bucket.s3.amazonaws.com");
    }

    #[tokio::test]
    async fn resolver_drops_forbidden_addresses() {
        let strict = SafeResolver { allow_loopback: false };
        assert!(strict.resolve("localhost".parse().unwrap()).await.is_err());
        let local = SafeResolver { allow_loopback: true };
        assert!(local.resolve("localhost".parse().unwrap()).await.is_ok());
    }
}
