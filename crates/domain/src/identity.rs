//! External identity providers (Keycloak): the users they know, their OpenID Connect
//! login, and the directory that holds their realm roles.

use std::fmt;

use async_trait::async_trait;

use crate::time::Timestamp;
use crate::user::{Email, Role, Username};

/// A user as an external identity provider knows them, to create or update Aether's
/// `User` from.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalUser {
    pub keycloak_id: String,
    pub username: Username,
    pub email: Option<Email>,
    pub full_name: Option<String>,
    pub roles: Vec<Role>,
    pub groups: Vec<String>,
    pub attributes: serde_json::Map<String, serde_json::Value>,
    /// Set when the synchronisation follows a login.
    pub logged_in_at: Option<Timestamp>,
}

/// Why a call to the identity provider failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityProviderError {
    /// The provider refused (an invalid code or refresh token, an unknown user).
    #[error("refused by the identity provider: {0}")]
    Refused(String),
    /// The provider could not be reached or answered unexpectedly.
    #[error("identity provider unavailable: {0}")]
    Unavailable(String),
}

/// Tokens the identity provider issued at the end of a browser login or a refresh.
#[derive(Clone, PartialEq, Eq)]
pub struct ProviderTokens {
    pub access_token: String,
    pub expires_in: u64,
    pub refresh_token: Option<String>,
    pub refresh_expires_in: Option<u64>,
    pub id_token: Option<String>,
}

impl fmt::Debug for ProviderTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderTokens").field("expires_in", &self.expires_in).finish_non_exhaustive()
    }
}

/// The browser side of an OpenID Connect provider: the authorization code flow with
/// PKCE, refresh, and logout.
#[async_trait]
pub trait OidcClient: Send + Sync + fmt::Debug {
    /// Where to send the browser: the authorization endpoint with `state`, the PKCE
    /// `code_challenge` (S256) and `nonce`.
    async fn authorization_url(
        &self,
        redirect_uri: &str,
        state: &str,
        code_challenge: &str,
        nonce: &str,
    ) -> Result<String, IdentityProviderError>;
    async fn exchange_code(
        &self,
        code: &str,
        code_verifier: &str,
        redirect_uri: &str,
    ) -> Result<ProviderTokens, IdentityProviderError>;
    async fn refresh(&self, refresh_token: &str) -> Result<ProviderTokens, IdentityProviderError>;
    /// Ends the provider's session that `refresh_token` belongs to (back-channel).
    async fn end_session(&self, refresh_token: &str) -> Result<(), IdentityProviderError>;
    /// The front-channel end-session URL, for a browser to visit after logout.
    async fn end_session_url(
        &self,
        id_token_hint: Option<&str>,
        post_logout_redirect_uri: Option<&str>,
    ) -> Result<Option<String>, IdentityProviderError>;
}

/// The administrative side of an external identity provider, used with the backend's
/// own service account.
#[async_trait]
pub trait IdentityDirectory: Send + Sync + fmt::Debug {
    /// Users matching `search` (username, e-mail, names), at most `max`.
    async fn search_users(&self, search: &str, max: u32) -> Result<Vec<ExternalUser>, IdentityProviderError>;
    /// A page of every user, in the provider's order.
    async fn list_users(&self, first: u32, max: u32) -> Result<Vec<ExternalUser>, IdentityProviderError>;
    async fn get_user(&self, keycloak_id: &str) -> Result<Option<ExternalUser>, IdentityProviderError>;
    /// Makes `roles` the user's Aether realm roles: adds the missing ones and removes
    /// the others (roles Aether does not know are left alone).
    async fn set_realm_roles(&self, keycloak_id: &str, roles: &[Role]) -> Result<(), IdentityProviderError>;
}
