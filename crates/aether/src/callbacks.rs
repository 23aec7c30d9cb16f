//! Job callbacks over HTTP, and the secrets callbacks and download URLs are signed with.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use aether_domain::job::CallbackSender;
use aether_domain::outbound::OutboundPolicy;
use anyhow::Context as _;
use async_trait::async_trait;

/// POSTs callbacks under the outbound policy: with a short timeout, without following
/// redirects, and only to addresses the policy allows (a callback URL is the caller's
/// choice, so it must not reach this machine, its network or a cloud metadata service).
#[derive(Debug, Clone)]
pub struct HttpCallbackSender {
    client: reqwest::Client,
    policy: Arc<OutboundPolicy>,
}

impl HttpCallbackSender {
    pub fn new(policy: Arc<OutboundPolicy>) -> anyhow::Result<Self> {
        let client = aether_outbound::client_builder(Arc::clone(&policy))
            .timeout(Duration::from_secs(10))
            .user_agent(concat!("aether-callbacks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { client, policy })
    }
}

#[async_trait]
impl CallbackSender for HttpCallbackSender {
    async fn post(&self, url: &str, body: Vec<u8>, headers: Vec<(&'static str, String)>) -> Result<u16, String> {
        aether_outbound::check_url(&self.policy, url).map_err(|refusal| refusal.to_string())?;
        let mut request = self.client.post(url).body(body);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request.send().await.map(|response| response.status().as_u16()).map_err(|error| error.to_string())
    }
}

/// The configured secret, or one generated on first start and kept in `path`
/// (mode 0600), so signatures stay verifiable across restarts.
pub fn signing_secret(configured: &str, path: &Path) -> anyhow::Result<Vec<u8>> {
    if !configured.is_empty() {
        return Ok(configured.as_bytes().to_vec());
    }
    if let Ok(existing) = std::fs::read_to_string(path) {
        let existing = existing.trim();
        if !existing.is_empty() {
            return Ok(existing.as_bytes().to_vec());
        }
    }
    let secret = hex::encode(rand::random::<[u8; 32]>());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(path, &secret).with_context(|| format!("cannot write {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    tracing::info!(path = %path.display(), "generated a signing secret");
    Ok(secret.into_bytes())
}
