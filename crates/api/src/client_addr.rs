//! Who is on the other end: the client's address, and the host URLs are built for.
//!
//! Behind a load balancer every request comes from the balancer's address, so the per-IP
//! rate limit and the audit log would see one client. The balancer names the client in
//! `Forwarded` (RFC 7239) or `X-Forwarded-For`; those headers are believed only when the
//! request comes from a `trusted_proxies` network, and only as far as the chain of
//! trusted hops goes (a client can write anything at the left end of the list).

use std::net::{IpAddr, SocketAddr};

use aether_domain::net::IpNetwork;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::error::ApiError;

/// The client's address, as far as the trusted proxies vouch for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// Puts the [`ClientAddr`] of the request in its extensions.
pub async fn client_address(
    axum::extract::State(trusted): axum::extract::State<std::sync::Arc<Vec<IpNetwork>>>,
    mut request: Request,
    next: Next,
) -> Response {
    if let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>().copied() {
        let client = resolve(peer.ip(), request.headers(), &trusted);
        request.extensions_mut().insert(ClientAddr(client));
    }
    next.run(request).await
}

/// The client behind `peer`: the right-most address of the forwarding chain that is not
/// a trusted proxy, when `peer` is one.
pub fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNetwork]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|network| network.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let chain = forwarded_for(headers);
    let mut client = peer;
    for hop in chain.iter().rev() {
        match hop {
            Some(ip) => {
                client = *ip;
                if !is_trusted(*ip) {
                    return client;
                }
            }
            // An unknown or obfuscated hop: the chain can be followed no further.
            None => return client,
        }
    }
    client
}

/// The addresses a request was forwarded for, left (the original client) to right (the
/// last proxy): from `Forwarded` when present, else `X-Forwarded-For`. At most 32 hops
/// are read; `None` stands for a hop that is not an address (`unknown`, `_hidden`).
fn forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    const MAX_HOPS: usize = 32;
    let values = |name| headers.get_all(name).iter().filter_map(|value| value.to_str().ok()).collect::<Vec<_>>();
    let forwarded = values(header::FORWARDED);
    let hops: Vec<Option<IpAddr>> = if forwarded.is_empty() {
        values(HeaderName::from_static("x-forwarded-for"))
            .iter()
            .flat_map(|value| value.split(','))
            .map(|hop| parse_node(hop.trim()))
            .collect()
    } else {
        forwarded
            .iter()
            .flat_map(|value| value.split(','))
            .filter_map(|element| {
                element.split(';').find_map(|pair| {
                    let (name, value) = pair.trim().split_once('=')?;
                    name.eq_ignore_ascii_case("for").then(|| parse_node(value.trim().trim_matches('"')))
                })
            })
            .collect()
    };
    let skip = hops.len().saturating_sub(MAX_HOPS);
    hops.into_iter().skip(skip).collect()
}

/// `192.0.2.1`, `192.0.2.1:4711`, `[2001:db8::1]`, `[2001:db8::1]:4711`, `2001:db8::1`.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(socket) = node.parse::<SocketAddr>() {
        return Some(socket.ip());
    }
    node.strip_prefix('[').and_then(|rest| rest.split_once(']')).and_then(|(ip, _)| ip.parse().ok())
}

/// The host part of a `Host` header (`localhost:8080` → `localhost`, `[::1]:80` → `[::1]`).
pub fn host_name(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_once(']').map_or(host, |(name, _)| &host[..=name.len()]);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// `http://` and the request's `Host`, when that host is one of `allowed` (the request
/// chose it, so an unchecked one would let anyone make the server sign links to
/// `evil.example`).
pub fn base_url_from_host(headers: &HeaderMap, allowed: &[String]) -> Result<String, ApiError> {
    let host = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "missing_host", "The request has no Host header."))?;
    let name = host_name(host);
    let well_formed = !host.is_empty() && host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b));
    if !well_formed || !allowed.iter().any(|allowed| allowed.eq_ignore_ascii_case(name)) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "untrusted_host",
            "The Host header names a host this server does not answer for (see public_url and allowed_hosts).",
        ));
    }
    Ok(format!("http://{host}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn forwarding_headers_count_only_from_trusted_proxies() {
        let trusted = [IpNetwork::parse("10.0.0.0/8").unwrap()];
        let spoofed = headers(&[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(resolve(ip("203.0.113.9"), &spoofed, &trusted), ip("203.0.113.9"), "not from a proxy");
        assert_eq!(resolve(ip("10.0.0.2"), &spoofed, &trusted), ip("1.2.3.4"));
        // The client prepended a fake hop; the proxy appended the real client.
        let chain = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.0.0.3")]);
        assert_eq!(resolve(ip("10.0.0.2"), &chain, &trusted), ip("198.51.100.7"));
        let forwarded = headers(&[("forwarded", r#"for=192.0.2.60;proto=http, for="[2001:db8::17]:4711""#)]);
        assert_eq!(resolve(ip("10.0.0.2"), &forwarded, &trusted), ip("2001:db8::17"));
        let hidden = headers(&[("forwarded", "for=192.0.2.60, for=_hidden")]);
        assert_eq!(resolve(ip("10.0.0.2"), &hidden, &trusted), ip("10.0.0.2"));
        assert_eq!(resolve(ip("10.0.0.2"), &HeaderMap::new(), &trusted), ip("10.0.0.2"));
        assert_eq!(resolve(ip("10.0.0.2"), &spoofed, &[]), ip("10.0.0.2"), "no trusted proxies configured");
    }

    #[test]
    fn urls_are_built_only_for_allowed_hosts() {
        let allowed = ["localhost".to_owned(), "[::1]".to_owned(), "api.example.com".to_owned()];
        let base = |host: &str| base_url_from_host(&headers(&[("host", host)]), &allowed);
        assert_eq!(base("localhost:8080").unwrap(), "http://localhost:8080");
        assert_eq!(base("[::1]:8080").unwrap(), "http://[::1]:8080");
        assert_eq!(base("API.example.com").unwrap(), "http://API.example.com");
        for refused in ["evil.example", "evil.example:8080", "localhost.evil.example", "localhost@evil", ""] {
            assert!(base(refused).is_err(), "{refused}");
        }
    }
}
