//! Which addresses the server may call: the one outbound policy that every URL the server
//! requests goes through (job callbacks, AudiModal, the identity provider, and what comes
//! later: workflows, notifications).
//!
//! By default only public addresses are allowed: no loopback, private, link-local
//! (cloud metadata at 169.254.169.254 among them), carrier-grade NAT, multicast,
//! documentation or reserved ranges, in IPv4 or IPv6, however they are written (an
//! IPv4-mapped or NAT64 IPv6 address is judged by the IPv4 address inside it). An
//! administrator allow-lists exceptions by host name or by network.
//!
//! This module decides; it does no IO. The HTTP client that resolves a name checks every
//! address it resolved here and connects only to those it was allowed (so the address
//! checked is the address used: no second lookup can rebind it).

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::ValidationError;
pub use crate::net::{IpNetwork, is_public};

/// An allow-list entry: a host name (`audimodal.internal`, matched exactly, case-insensitive)
/// or a network in CIDR form (`10.0.0.0/8`, `127.0.0.1/32`, `fd00::/8`; a bare address is a
/// network of one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum AllowedTarget {
    Host(String),
    Network(IpNetwork),
}

impl AllowedTarget {
    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        let text = text.trim();
        let invalid = || ValidationError::new("outbound_allow", format!("`{text}` is not a host name or a network"));
        if text.contains('/') || text.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().is_ok() {
            return IpNetwork::parse(text).map(Self::Network).map_err(|_| invalid());
        }
        let valid_name = !text.is_empty()
            && text.len() <= 253
            && text.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        if !valid_name {
            return Err(invalid());
        }
        Ok(Self::Host(text.to_ascii_lowercase()))
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match self {
            Self::Network(network) => network.contains(ip),
            Self::Host(_) => false,
        }
    }
}

impl TryFrom<String> for AllowedTarget {
    type Error = ValidationError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<AllowedTarget> for String {
    fn from(target: AllowedTarget) -> Self {
        target.to_string()
    }
}

impl fmt::Display for AllowedTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Host(host) => f.write_str(host),
            Self::Network(network) => network.fmt(f),
        }
    }
}

/// Why a call was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundRefusal {
    #[error("only http and https URLs may be called")]
    Scheme,
    #[error("the URL names no host")]
    NoHost,
    /// An address written in a URL (or one a name resolved to) that is not allowed.
    #[error("{0} is not an allow-listed address: name a public DNS host")]
    Address(IpAddr),
    #[error("`{0}` names this machine or a local network and is not allow-listed")]
    LocalName(String),
}

/// The outbound policy: public addresses, plus the allow-listed hosts and networks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundPolicy {
    allowed: Vec<AllowedTarget>,
}

impl OutboundPolicy {
    pub fn new(allowed: Vec<AllowedTarget>) -> Self {
        Self { allowed }
    }

    /// A policy that also allows `host` (the host of a URL an administrator configured,
    /// such as AudiModal's or the identity provider's).
    pub fn also_allowing_host(mut self, host: &str) -> Self {
        if let Ok(target) = AllowedTarget::parse(host)
            && !self.allowed.contains(&target)
        {
            self.allowed.push(target);
        }
        self
    }

    pub fn allowed(&self) -> &[AllowedTarget] {
        &self.allowed
    }

    /// Whether every address of `host` may be called, because the name itself is
    /// allow-listed.
    pub fn allows_host(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.allowed.iter().any(|target| matches!(target, AllowedTarget::Host(name) if *name == host))
    }

    /// Whether `ip` may be called: it is public, or in an allow-listed network.
    pub fn allows_ip(&self, ip: IpAddr) -> bool {
        is_public(ip) || self.allowed.iter().any(|target| target.contains(ip))
    }

    /// Checks what can be checked of a URL without resolving it: the scheme, an address
    /// written in it, and names that always mean this machine (`localhost`, `*.localhost`,
    /// `*.local`, `*.internal`), unless allow-listed. A name that resolves to a refused
    /// address is refused by the client when it resolves it.
    ///
    /// An address written in a URL must lie in an allow-listed network, even a public
    /// one: URLs from users name DNS hosts (as the OpenAPI document says), and a URL an
    /// administrator configures has its host allow-listed with it.
    pub fn check_url(&self, scheme: &str, host: Option<&str>) -> Result<(), OutboundRefusal> {
        if !matches!(scheme, "http" | "https") {
            return Err(OutboundRefusal::Scheme);
        }
        let host = host.filter(|host| !host.is_empty()).ok_or(OutboundRefusal::NoHost)?;
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            let allowed = self.allowed.iter().any(|target| target.contains(ip));
            return if allowed { Ok(()) } else { Err(OutboundRefusal::Address(ip)) };
        }
        if self.allows_host(host) {
            return Ok(());
        }
        let name = host.trim_end_matches('.').to_ascii_lowercase();
        let local = ["localhost", "local", "internal", "localdomain", "home.arpa"]
            .iter()
            .any(|suffix| name == *suffix || name.ends_with(&format!(".{suffix}")));
        if local || !name.contains('.') {
            // A single-label name is resolved through the machine's search domains: local.
            return Err(OutboundRefusal::LocalName(name));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("address")
    }

    #[test]
    fn only_public_addresses_are_public() {
        for refused in [
            "127.0.0.1",
            "127.1.2.3",
            "0.0.0.0",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "198.18.0.1",
            "::",
            "::1",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "2001:db8::1",
            "::127.0.0.1",
        ] {
            assert!(!is_public(ip(refused)), "{refused} must not be public");
        }
        for public in ["1.1.1.1", "8.8.8.8", "172.32.0.1", "100.128.0.1", "2606:4700::1111", "::ffff:8.8.8.8"] {
            assert!(is_public(ip(public)), "{public} must be public");
        }
    }

    #[test]
    fn the_allow_list_opens_hosts_and_networks() {
        let policy = OutboundPolicy::new(vec![
            AllowedTarget::parse("127.0.0.0/8").expect("network"),
            AllowedTarget::parse("AudiModal.Internal").expect("host"),
            AllowedTarget::parse("fd00::1").expect("address"),
        ]);
        assert!(policy.allows_ip(ip("127.0.0.1")));
        assert!(policy.allows_ip(ip("fd00::1")));
        assert!(!policy.allows_ip(ip("fd00::2")));
        assert!(!policy.allows_ip(ip("10.0.0.1")));
        assert!(policy.check_url("http", Some("audimodal.internal")).is_ok());
        assert!(policy.check_url("http", Some("127.0.0.1")).is_ok());
        assert_eq!(
            OutboundPolicy::default().check_url("http", Some("169.254.169.254")),
            Err(OutboundRefusal::Address(ip("169.254.169.254")))
        );
        assert_eq!(
            OutboundPolicy::default().check_url("http", Some("[::1]")),
            Err(OutboundRefusal::Address(ip("::1")))
        );
        assert_eq!(
            OutboundPolicy::default().check_url("http", Some("8.8.8.8")),
            Err(OutboundRefusal::Address(ip("8.8.8.8"))),
            "a URL names a host; an address must be allow-listed even when public"
        );
        for local in ["localhost", "LOCALHOST.", "redis", "metadata.google.internal", "printer.local"] {
            assert!(OutboundPolicy::default().check_url("http", Some(local)).is_err(), "{local}");
        }
        assert!(OutboundPolicy::default().check_url("https", Some("hooks.example.com")).is_ok());
        assert_eq!(OutboundPolicy::default().check_url("gopher", Some("example.com")), Err(OutboundRefusal::Scheme));
        assert!(AllowedTarget::parse("10.0.0.0/33").is_err());
        assert!(AllowedTarget::parse("bad host").is_err());
        assert_eq!(AllowedTarget::parse("0.0.0.0/0").map(|t| t.contains(ip("8.8.8.8"))), Ok(true));
    }
}
