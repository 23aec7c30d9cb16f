//! Who is calling: the authenticated principal, the credential it used and where it
//! came from, and the port that hashes passwords (implemented in `aether-auth-local`).

use crate::capability::{Capability, capabilities_of};
use crate::id::{ApiKeyId, UserId};
use crate::user::{Role, Username};

/// The authenticated caller of a request, taken from a verified access token, a
/// browser session or a personal API key.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    pub user_id: UserId,
    pub username: Username,
    pub roles: Vec<Role>,
    /// What the caller may do: their roles' capabilities, narrowed by an API key's scopes.
    pub capabilities: Vec<Capability>,
    pub credential: Credential,
    /// When the credential stops being valid (an access token's `exp`, an API key's
    /// expiry); `None` when it has no fixed end. A request is checked when it
    /// arrives; a long-lived connection (a WebSocket) ends here.
    pub expires_at: Option<crate::time::Timestamp>,
    /// Where the request came from, for the audit log.
    pub client: ClientInfo,
}

/// How the caller proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A bearer access token, with the identity provider's session it belongs to.
    AccessToken { session_id: Option<String> },
    /// A browser session cookie.
    Session { session_id: String },
    ApiKey {
        id: ApiKeyId,
        /// The digest the key is stored by, to look it up again (a long-lived
        /// connection re-checks that its key was not revoked).
        secret_hash: String,
    },
}

/// The network origin of a request, as the server saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
}

impl Principal {
    /// A caller with `roles`' capabilities, authenticated by an access token.
    pub fn new(user_id: UserId, username: Username, roles: Vec<Role>) -> Self {
        let capabilities = capabilities_of(&roles);
        Self {
            user_id,
            username,
            roles,
            capabilities,
            credential: Credential::AccessToken { session_id: None },
            expires_at: None,
            client: ClientInfo::default(),
        }
    }

    pub fn can(&self, capability: Capability) -> bool {
        self.capabilities.contains(&capability)
    }

    /// The [`Change`] this caller makes now, for stores to record.
    pub fn change(&self) -> crate::activity::Change {
        crate::activity::Change {
            actor: Some(self.user_id),
            at: crate::time::now(),
            ip_address: self.client.ip_address.clone(),
            user_agent: self.client.user_agent.clone(),
        }
    }

    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// Hashes and checks passwords. Slow by design: call it off the async runtime.
pub trait PasswordHasher: Send + Sync + std::fmt::Debug {
    fn hash(&self, password: &str) -> Result<String, String>;
    /// `false` for a wrong password and for a malformed stored hash alike.
    fn verify(&self, password: &str, stored_hash: &str) -> bool;
}
