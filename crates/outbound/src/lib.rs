#![forbid(unsafe_code)]
//! Outbound HTTP under the outbound policy (`aether_domain::outbound`).
//!
//! [`client_builder`] gives the `reqwest` builder every adapter that calls out starts
//! from (job callbacks, AudiModal, Keycloak). Its clients:
//! - resolve every host name through [`PolicyResolver`], which drops each resolved address
//!   the policy refuses and fails when none is left; the connection then goes to those
//!   addresses only, so the address checked is the address used (a second lookup cannot
//!   rebind the name to 127.0.0.1);
//! - ignore `HTTP_PROXY` and friends (a proxy would make the checked address the proxy's);
//! - never follow redirects (a redirect could name any address).
//!
//! An address written in a URL is never resolved, so callers check URLs they did not
//! configure themselves with [`check_url`] before sending (the callback sender does).

use std::net::SocketAddr;
use std::sync::Arc;

use aether_domain::outbound::{OutboundPolicy, OutboundRefusal};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// The builder of every outbound client: policy-checked resolution, no proxy, no redirects.
pub fn client_builder(policy: Arc<OutboundPolicy>) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(PolicyResolver { policy }))
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
}

/// Checks the parts of `url` that need no lookup: the scheme, an address written in it,
/// and names that always mean a local machine. Counts and logs a refusal.
pub fn check_url(policy: &OutboundPolicy, url: &str) -> Result<(), OutboundRefusal> {
    let parsed = url::Url::parse(url).map_err(|_| OutboundRefusal::NoHost)?;
    let host = parsed.host_str();
    policy.check_url(parsed.scheme(), host).inspect_err(refused)
}

fn refused(refusal: &OutboundRefusal) {
    let reason = match refusal {
        OutboundRefusal::Scheme => "scheme",
        OutboundRefusal::NoHost => "no_host",
        OutboundRefusal::Address(_) => "address",
        OutboundRefusal::LocalName(_) => "local_name",
    };
    metrics::counter!("aether_outbound_refused_total", "reason" => reason).increment(1);
    tracing::warn!(%refusal, "an outbound call was refused by the outbound policy");
}

/// Registers the refusal counter at zero, so that the first refusal shows in `rate()`.
pub fn describe_metrics() {
    for reason in ["scheme", "no_host", "address", "local_name"] {
        metrics::counter!("aether_outbound_refused_total", "reason" => reason).increment(0);
    }
}

/// Resolves host names with the system resolver and keeps only the addresses the
/// policy allows (all of them when the name itself is allow-listed).
#[derive(Debug)]
pub struct PolicyResolver {
    policy: Arc<OutboundPolicy>,
}

impl PolicyResolver {
    pub fn new(policy: Arc<OutboundPolicy>) -> Self {
        Self { policy }
    }

    /// The addresses of `host` that may be called.
    pub async fn resolve_host(&self, host: &str) -> Result<Vec<SocketAddr>, Box<dyn std::error::Error + Send + Sync>> {
        let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host, 0)).await?.collect();
        if self.policy.allows_host(host) {
            return Ok(resolved);
        }
        let allowed: Vec<SocketAddr> =
            resolved.iter().copied().filter(|address| self.policy.allows_ip(address.ip())).collect();
        match (allowed.is_empty(), resolved.first()) {
            (false, _) => Ok(allowed),
            (true, Some(first)) => {
                let refusal = OutboundRefusal::Address(first.ip());
                refused(&refusal);
                Err(Box::new(refusal))
            }
            (true, None) => Err(format!("`{host}` has no address").into()),
        }
    }
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let resolver = Self { policy: Arc::clone(&self.policy) };
        Box::pin(async move {
            let addresses = resolver.resolve_host(name.as_str()).await?;
            Ok(Box::new(addresses.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aether_domain::outbound::AllowedTarget;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// A one-shot HTTP server on loopback that counts the requests it got.
    async fn server() -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = Arc::clone(&hits);
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut buffer = [0u8; 1024];
                let _ = socket.read(&mut buffer).await;
                let _ = socket.write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n").await;
            }
        });
        (port, hits)
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused_before_connecting() {
        let (port, hits) = server().await;
        let client = client_builder(Arc::new(OutboundPolicy::default())).build().expect("client");
        // `localhost` resolves to 127.0.0.1 (and ::1): the resolver must refuse both.
        let error = client.get(format!("http://localhost:{port}/")).send().await.expect_err("refused");
        // The resolver's refusal (`OutboundRefusal::Address`) is the cause.
        assert!(format!("{error:?}").contains("DnsError { inner: Address("), "{error:?}");
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0, "nothing reached the server");

        let allowed = OutboundPolicy::new(vec![AllowedTarget::parse("127.0.0.0/8").expect("net")]);
        let client = client_builder(Arc::new(allowed)).build().expect("client");
        let response = client.get(format!("http://localhost:{port}/")).send().await.expect("allowed");
        assert_eq!(response.status(), 204);
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_allow_listed_name_may_resolve_anywhere() {
        let (port, _) = server().await;
        let policy = OutboundPolicy::default().also_allowing_host("localhost");
        let client = client_builder(Arc::new(policy)).build().expect("client");
        let response = client.get(format!("http://localhost:{port}/")).send().await.expect("allowed");
        assert_eq!(response.status(), 204);
    }

    #[test]
    fn addresses_in_urls_are_checked_without_lookup() {
        let policy = OutboundPolicy::default();
        assert!(check_url(&policy, "http://127.0.0.1:6379/").is_err());
        assert!(check_url(&policy, "http://[::ffff:169.254.169.254]/latest/meta-data").is_err());
        assert!(check_url(&policy, "http://0x7f.1/").is_err(), "the url crate normalises 0x7f.1 to 127.0.0.1");
        assert!(check_url(&policy, "https://hooks.example.com/aether").is_ok());
    }
}
