//! Access tokens: their claims (in Keycloak's shape), what a verifier establishes about
//! a valid one, why one is refused, and the ports that sign and verify them.

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::id::UserId;
use crate::time::Timestamp;
use crate::user::{Email, Role, User, Username};

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
pub trait AccessTokenCodec: Send + Sync + fmt::Debug {
    /// Builds and signs an access token for `user` in login session `session_id`,
    /// valid from `now` for the configured lifetime. Returns the token and its
    /// lifetime in seconds.
    fn issue(&self, user: &User, session_id: &str, now: Timestamp) -> Result<(String, u64), TokenError>;

    /// Verifies signature, issuer, audience and expiry at `now`.
    fn verify(&self, token: &str, now: Timestamp) -> Result<VerifiedToken, TokenError>;
}

/// Whom a token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSubject {
    /// An account of the built-in provider: the subject is the Aether user id.
    Local(UserId),
    /// An account of an external provider (Keycloak's user id); Aether's user is found,
    /// or created, by synchronisation.
    External(String),
}

/// What a verifier established about the bearer of a valid access token.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedToken {
    pub subject: TokenSubject,
    pub username: Username,
    pub email: Option<Email>,
    pub full_name: Option<String>,
    /// Realm roles Aether knows; other roles in the token are ignored.
    pub roles: Vec<Role>,
    pub groups: Vec<String>,
    /// The identity provider's session (`sid`), which logout revokes.
    pub session_id: Option<String>,
    /// The client the token was issued to (`azp`).
    pub client_id: String,
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
    /// When the user last authenticated (`auth_time`), when the provider says.
    pub auth_time: Option<Timestamp>,
}

/// Verifies access tokens of one identity provider, locally: no call to the provider
/// per request (keys are fetched once and cached).
#[async_trait]
pub trait TokenVerifier: Send + Sync + fmt::Debug {
    async fn verify(&self, token: &str) -> Result<VerifiedToken, TokenError>;
}
