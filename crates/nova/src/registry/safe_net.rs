//! Where Nova may follow a registry: blob redirects and token realms point at other hosts
//! (S3, CDNs, auth services), which is normal, but never where [`crate::outbound`] refuses
//! (cloud metadata services, link-local addresses, `[outbound] deny`), nor — unless the
//! registry itself is on this machine — loopback.
//!
//! Host names are checked when they are resolved ([`SafeResolver`], installed on the client
//! that follows redirects), so a name that resolves to a refused address at connect time is
//! refused too; IP literals are checked before the request ([`Follow::check_url`]).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::provider::RegistryError;
use crate::outbound::Outbound;

/// Where one registry's client may be sent: `[outbound]`'s policy, and whether loopback is
/// fine (only when the registry itself is on this machine).
#[derive(Debug, Clone)]
pub struct Follow {
    pub outbound: Outbound,
    pub allow_loopback: bool,
}

impl Follow {
    /// Why an address may not be contacted, or `None` when it may.
    pub fn refusal(&self, ip: IpAddr) -> Option<&'static str> {
        self.outbound.refusal(ip, self.allow_loopback)
    }

    /// Checks a URL Nova is about to follow: http(s), not a metadata host name, and not a
    /// refused IP literal. Names are checked again when resolved ([`SafeResolver`]).
    pub fn check_url(&self, url: &url::Url) -> Result<(), RegistryError> {
        let refuse = |why: &str| Err(RegistryError::Refused(format!("refused to follow the registry to {}: {why}", url_for_message(url))));
        if !matches!(url.scheme(), "http" | "https") {
            return refuse("only http and https are followed");
        }
        match url.host() {
            None => refuse("no host"),
            Some(url::Host::Domain(d)) => {
                if Outbound::is_metadata_name(d) {
                    return refuse("a cloud metadata host");
                }
                if !self.allow_loopback && d.trim_end_matches('.').eq_ignore_ascii_case("localhost") {
                    return refuse("a loopback address");
                }
                Ok(())
            }
            Some(url::Host::Ipv4(ip)) => self.refusal(IpAddr::V4(ip)).map_or(Ok(()), refuse),
            Some(url::Host::Ipv6(ip)) => self.refusal(IpAddr::V6(ip)).map_or(Ok(()), refuse),
        }
    }

    /// A resolver applying this policy, for `reqwest::ClientBuilder::dns_resolver`.
    pub fn resolver(&self) -> Arc<SafeResolver> {
        Arc::new(SafeResolver(self.clone()))
    }
}

/// Whether `host` is on this machine (a loopback literal or `localhost`).
pub fn is_local_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost") || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A URL without its query (pre-signed S3 URLs carry credentials there), for messages.
pub fn url_for_message(url: &url::Url) -> String {
    format!("{}://{}{}", url.scheme(), url.host_str().unwrap_or(""), url.port().map(|p| format!(":{p}")).unwrap_or_default())
}

/// A DNS resolver that drops refused addresses, failing when none is left.
#[derive(Debug, Clone)]
pub struct SafeResolver(Follow);

impl Resolve for SafeResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let follow = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            if Outbound::is_metadata_name(&host) {
                return Err(format!("{host} is a cloud metadata host").into());
            }
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = addrs.iter().copied().filter(|a| follow.refusal(a.ip()).is_none()).collect();
            if allowed.is_empty() {
                let why = addrs.first().and_then(|a| follow.refusal(a.ip())).unwrap_or("no address");
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

    fn follow(allow_loopback: bool) -> Follow {
        Follow { outbound: Outbound::default(), allow_loopback }
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
            assert!(matches!(follow(allow).check_url(&url(u)), Err(RegistryError::Refused(_))), "{u}");
        }
        for (u, allow) in [("https://prod-eu-west-1-starport-layer-bucket.s3.eu-west-1.amazonaws.com/x?X-Amz-Signature=s", false), ("http://127.0.0.1:5000/", true), ("http://10.1.2.3/", false)] {
            assert!(follow(allow).check_url(&url(u)).is_ok(), "{u}");
        }
    }

    #[test]
    fn messages_drop_the_query() {
        let m = url_for_message(&url("https://bucket.s3.amazonaws.com/path?X-Amz-Credential=AKIA&X-Amz-Signature=secret"));
        assert_eq!(m, "https://bucket.s3.amazonaws.com");
    }

    #[tokio::test]
    async fn resolver_drops_forbidden_addresses() {
        assert!(follow(false).resolver().resolve("localhost".parse().unwrap()).await.is_err());
        assert!(follow(true).resolver().resolve("localhost".parse().unwrap()).await.is_ok());
        let denied = Follow { outbound: Outbound::from_config(&crate::outbound::OutboundConfig { deny: vec!["127.0.0.0/8".into(), "::1".into()], ..Default::default() }).unwrap(), allow_loopback: true };
        let e = denied.resolver().resolve("localhost".parse().unwrap()).await.err().unwrap();
        assert!(e.to_string().contains("outbound.deny"), "{e}");
    }
}
