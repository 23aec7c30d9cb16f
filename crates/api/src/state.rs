use std::sync::Arc;

use aether_domain::limits::RateLimiter;
use aether_services::{
    AccountService, AvatarService, DocumentService, IdentityService, NotebookService, SearchService,
};
use async_trait::async_trait;
use metrics_exporter_prometheus::PrometheusHandle;

/// A dependency `/ready` reports on.
#[async_trait]
pub trait ReadinessCheck: Send + Sync {
    fn name(&self) -> &str;
    /// `Err` carries a short, non-secret reason.
    async fn check(&self) -> Result<(), String>;
}

/// HTTP-level settings.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Origins allowed by CORS; empty means no cross-origin access, `*` means any.
    pub cors_allowed_origins: Vec<String>,
    /// How long one request may take before it is answered with 503.
    pub request_timeout: std::time::Duration,
    /// The server's external base URL (`https://api.example.com`), for the OIDC
    /// redirect URI; when unset, it is taken from the request's `Host`.
    pub public_url: Option<String>,
    /// Hosts (without port) whose `Host` header URLs may be built from when `public_url`
    /// is unset; any other host is answered 400 `untrusted_host` where a URL is built.
    pub allowed_hosts: Vec<String>,
    /// Proxies whose `Forwarded`/`X-Forwarded-For` headers name the client (for rate
    /// limits and the audit log); the TCP peer otherwise.
    pub trusted_proxies: Vec<aether_domain::net::IpNetwork>,
    /// Whether the session cookie is marked `Secure` (HTTPS only).
    pub secure_cookies: bool,
    pub rate_limit: RateLimitSettings,
    /// How often a notebook feed re-checks its reader's permission on its own, for
    /// changes no notice brought.
    pub socket_access_recheck: std::time::Duration,
    /// How often a socket is pinged; a peer that has answered nothing for two
    /// intervals is taken for dead and its socket closed.
    pub socket_ping: std::time::Duration,
}

/// Requests allowed per window, per authenticated user and per client IP address.
#[derive(Debug, Clone)]
pub struct RateLimitSettings {
    /// 0 turns the per-user limit off.
    pub per_user: u32,
    /// 0 turns the per-IP limit off.
    pub per_ip: u32,
    pub window: std::time::Duration,
    /// When the limiter itself fails (Redis down): let requests through (true) or answer 503.
    pub fail_open: bool,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self { per_user: 600, per_ip: 1200, window: std::time::Duration::from_secs(60), fail_open: true }
    }
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            cors_allowed_origins: Vec::new(),
            request_timeout: std::time::Duration::from_secs(30),
            public_url: None,
            allowed_hosts: vec!["localhost".into(), "127.0.0.1".into(), "[::1]".into()],
            trusted_proxies: Vec::new(),
            secure_cookies: false,
            rate_limit: RateLimitSettings::default(),
            socket_access_recheck: std::time::Duration::from_millis(500),
            socket_ping: std::time::Duration::from_secs(30),
        }
    }
}

/// What every handler can reach.
#[derive(Clone)]
#[allow(missing_debug_implementations)]
pub struct AppState {
    pub accounts: Arc<AccountService>,
    pub identity: Arc<IdentityService>,
    pub avatars: Arc<AvatarService>,
    pub limiter: Arc<dyn RateLimiter>,
    pub notebooks: Arc<NotebookService>,
    pub documents: Arc<DocumentService>,
    pub search: Arc<SearchService>,
    pub readiness: Arc<Vec<Arc<dyn ReadinessCheck>>>,
    /// The JSON Web Key Set of the local token issuer.
    pub jwks: Arc<serde_json::Value>,
    pub metrics: PrometheusHandle,
    /// Shared, not copied: the state is cloned for every request (each extractor
    /// takes its own), and the settings hold lists of strings.
    pub settings: Arc<ApiSettings>,
    /// The open WebSockets, counted against the per-user and per-server limits.
    pub sockets: Arc<crate::sockets::SocketRegistry>,
}
