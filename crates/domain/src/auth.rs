//! Identity ports: who is calling, and the traits that hash passwords and sign
//! and verify access tokens. Implementations live in adapter crates.

use serde::{Deserialize, Serialize};

use crate::id::{ApiKeyId, UserId};
use crate::identity::{Capability, capabilities_of};
use crate::time::Timestamp;
use crate::user::{Role, User, Username};

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
    /// Where the request came from, for the audit log.
    pub client: ClientInfo,
}

/// How the caller proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A bearer access token, with the identity provider's session it belongs to.
    AccessToken {
        session_id: Option<String>,
    },
    /// A browser session cookie.
    Session {
        session_id: String,
    },
    ApiKey {
        id: ApiKeyId,
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

/// The claims of an access token, in Keycloak's shape so that clients and other
/// services treat local and Keycloak tokens alike.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    /// Not before; absent in tokens issued before it was added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub jti: String,
    pub typ: String,
    pub azp: String,
    pub preferred_username: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub realm_access: RealmAccess,
    /// The login session the token descends from (the refresh token family); logout revokes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RealmAccess {
    pub roles: Vec<String>,
}

/// Why a presented access token was refused. The API answers 401 for all of them;
/// the distinction is for logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token expired")]
    Expired,
    #[error("token invalid: {0}")]
    Invalid(String),
    /// The token could not be checked now (the identity provider's keys are unreachable).
    #[error("token verification unavailable: {0}")]
    Unavailable(String),
}

/// Signs and verifies access tokens.
pub trait AccessTokenCodec: Send + Sync + std::fmt::Debug {
    /// Builds and signs an access token for `user` in login session `session_id`,
    /// valid from `now` for the configured lifetime. Returns the token and its
    /// lifetime in seconds.
    fn issue(&self, user: &User, session_id: &str, now: Timestamp) -> Result<(String, u64), TokenError>;

    /// Verifies signature, issuer, audience and expiry at `now`.
    fn verify(&self, token: &str, now: Timestamp) -> Result<crate::identity::VerifiedToken, TokenError>;
}

/// Hashes and checks passwords. Slow by design: call it off the async runtime.
pub trait PasswordHasher: Send + Sync + std::fmt::Debug {
    fn hash(&self, password: &str) -> Result<String, String>;
    /// `false` for a wrong password and for a malformed stored hash alike.
    fn verify(&self, password: &str, stored_hash: &str) -> bool;
}
