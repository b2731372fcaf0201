//! Where Nova may connect when a user or a remote server chose the address: catalog URL and git
//! locations (`catalog/remote`), and registry blob redirects and token realms
//! (`registry/safe_net.rs`). One policy for both (docs/RELIABILITY.md, "Outbound addresses"):
//!
//! - always refused: cloud metadata addresses (169.254.169.254, 169.254.170.2, 100.100.100.200,
//!   fd00:ec2::254) and names (`metadata.google.internal`, ...), whatever the lists say;
//! - refused unless `[outbound] allow` names them: link-local (169.254.0.0/16, fe80::/10),
//!   unspecified, "this network" (0.0.0.0/8), broadcast and multicast addresses, the ranges in
//!   `[outbound] deny`, and loopback where the caller says so (a redirect from a registry that
//!   is not itself on this machine).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use serde::Deserialize;

/// `[outbound]`: ranges to refuse besides the built-in ones, and ranges to allow despite them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundConfig {
    /// CIDR ranges (or single addresses) allowed even though a built-in rule or `deny` refuses
    /// them; never the metadata addresses.
    pub allow: Vec<String>,
    /// CIDR ranges (or single addresses) refused, e.g. `10.0.0.0/8` to keep catalog URLs off
    /// the internal network.
    pub deny: Vec<String>,
}

/// The parsed policy.
#[derive(Debug, Clone, Default)]
pub struct Outbound {
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
}

/// Host names of metadata services, refused whatever they resolve to.
const METADATA_NAMES: [&str; 3] = ["metadata.google.internal", "metadata", "metadata.azure.internal"];

fn parse_nets(list: &[String], key: &str) -> Result<Vec<IpNet>, (String, String)> {
    list.iter()
        .map(|s| {
            let s = s.trim();
            s.parse::<IpNet>().or_else(|_| s.parse::<IpAddr>().map(IpNet::from)).map_err(|_| (format!("outbound.{key}"), format!("{s:?} is not an address or CIDR range such as 10.0.0.0/8")))
        })
        .collect()
}

impl Outbound {
    /// The policy of `[outbound]`; an entry that is not an address or range is an error: the
    /// key and the rule.
    pub fn from_config(config: &OutboundConfig) -> Result<Self, (String, String)> {
        Ok(Self { allow: parse_nets(&config.allow, "allow")?, deny: parse_nets(&config.deny, "deny")? })
    }

    /// Why Nova may not connect to `ip`, or `None` when it may. `allow_loopback`: whether
    /// loopback addresses are fine here.
    pub fn refusal(&self, ip: IpAddr, allow_loopback: bool) -> Option<&'static str> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        if is_metadata(ip) {
            return Some("a cloud metadata address");
        }
        let why = if self.deny.iter().any(|n| n.contains(&ip)) { Some("an address in outbound.deny") } else { built_in(ip, allow_loopback) };
        why.filter(|_| !self.allow.iter().any(|n| n.contains(&ip)))
    }

    /// Whether `host` (a name) is a metadata service's.
    pub fn is_metadata_name(host: &str) -> bool {
        METADATA_NAMES.contains(&host.trim_end_matches('.').to_ascii_lowercase().as_str())
    }
}

fn is_metadata(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => [Ipv4Addr::new(169, 254, 169, 254), Ipv4Addr::new(169, 254, 170, 2), Ipv4Addr::new(100, 100, 100, 200)].contains(&v4),
        IpAddr::V6(v6) => v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254),
    }
}

fn built_in(ip: IpAddr, allow_loopback: bool) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) if v4.is_link_local() => Some("a link-local address"),
        IpAddr::V4(v4) if v4.is_loopback() => (!allow_loopback).then_some("a loopback address"),
        IpAddr::V4(v4) if v4.is_unspecified() || v4.is_broadcast() || v4.is_multicast() || v4.octets()[0] == 0 => Some("not a unicast address"),
        IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80 => Some("a link-local address"),
        IpAddr::V6(v6) if v6.is_loopback() => (!allow_loopback).then_some("a loopback address"),
        IpAddr::V6(v6) if v6.is_unspecified() || v6.is_multicast() => Some("not a unicast address"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn metadata_link_local_and_odd_addresses_are_refused_by_default() {
        let p = Outbound::default();
        for a in ["169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254", "::ffff:169.254.169.254", "169.254.0.1", "fe80::1", "0.0.0.0", "0.1.2.3", "255.255.255.255", "224.0.0.1", "::", "ff02::1"] {
            assert!(p.refusal(ip(a), true).is_some(), "{a}");
        }
        for a in ["127.0.0.1", "::1", "10.1.2.3", "192.168.1.1", "2001:db8::1", "52.94.1.1"] {
            assert_eq!(p.refusal(ip(a), true), None, "{a}");
        }
        assert_eq!(p.refusal(ip("127.0.0.1"), false), Some("a loopback address"));
        assert_eq!(p.refusal(ip("::1"), false), Some("a loopback address"));
        assert!(Outbound::is_metadata_name("Metadata.Google.Internal."));
    }

    #[test]
    fn the_lists_deny_more_and_allow_exceptions_but_never_metadata() {
        let config = OutboundConfig { allow: vec!["169.254.10.0/24".into(), "10.9.9.9".into(), "169.254.169.254".into()], deny: vec!["10.0.0.0/8".into(), "fd00::/8".into()] };
        let p = Outbound::from_config(&config).unwrap();
        assert_eq!(p.refusal(ip("10.1.2.3"), true), Some("an address in outbound.deny"));
        assert_eq!(p.refusal(ip("::ffff:10.1.2.3"), true), Some("an address in outbound.deny"));
        assert_eq!(p.refusal(ip("fd12::1"), true), Some("an address in outbound.deny"));
        assert_eq!(p.refusal(ip("10.9.9.9"), true), None, "allowed inside a denied range");
        assert_eq!(p.refusal(ip("169.254.10.7"), true), None, "an allowed link-local service");
        assert_eq!(p.refusal(ip("169.254.169.254"), true), Some("a cloud metadata address"), "metadata cannot be allowed");
        assert_eq!(p.refusal(ip("192.168.1.1"), true), None);
    }

    #[test]
    fn a_bad_entry_names_the_key_and_the_rule() {
        let (key, message) = Outbound::from_config(&OutboundConfig { deny: vec!["10.0.0.0/33".into()], ..Default::default() }).unwrap_err();
        assert_eq!(key, "outbound.deny");
        assert!(message.starts_with("\"10.0.0.0/33\"") && message.contains("CIDR"), "{message}");
    }
}
