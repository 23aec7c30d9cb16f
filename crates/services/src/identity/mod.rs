//! Who is calling, and the identity use cases around it: authentication of bearer
//! tokens, browser sessions and personal API keys; user synchronisation from an
//! external provider; the browser login (authorization code flow with PKCE), refresh
//! and logout; user search, profile and role administration.
//!
//! The provider is either the built-in one (accounts in the store, tokens signed by
//! `aether-auth-local`) or an OpenID Connect provider such as Keycloak. Both verify
//! tokens locally, through the same [`TokenVerifier`] port.

mod authenticate;
mod browser;
mod recent;
mod users;
mod watch;

pub use watch::{CredentialEnd, CredentialWatch};

use std::sync::Arc;
use std::time::Duration;

use aether_domain::api_key::{ApiKey, ApiKeyName, ApiKeyScope, NewApiKey};
use aether_domain::auth::{ClientInfo, Credential, Principal};
use aether_domain::capability::{Capability, capabilities_of};
use aether_domain::ephemeral::EphemeralStore;
use aether_domain::id::{ApiKeyId, TokenFamilyId, UserId};
use aether_domain::identity::{ExternalUser, IdentityDirectory, IdentityProviderError, OidcClient};
use aether_domain::page::{Page, PageRequest};
use aether_domain::time::{self, Timestamp};
use aether_domain::token::TokenError;
use aether_domain::token::{TokenSubject, TokenVerifier, VerifiedToken};
use aether_domain::user::{Role, User, UserPatch, UserStatus};
use aether_domain::{StoreError, ValidationError};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::accounts::{AccountService, audit_record, digest};
use crate::cache::CachedReads;
use crate::error::{ServiceError, ServiceResult};
use crate::ports::IdentityPorts;
use aether_domain::store::UserStore;

/// The prefix of every personal API key, so that keys are recognisable in logs and by
/// secret scanners, and are told from JWTs without parsing.
pub const API_KEY_PREFIX: &str = "aek_";

/// Where identities come from.
#[derive(Debug, Clone)]
pub enum IdentityProvider {
    /// Accounts in the store, passwords checked by [`AccountService`].
    Local,
    /// An OpenID Connect provider with an admin API (Keycloak).
    External { oidc: Arc<dyn OidcClient>, directory: Arc<dyn IdentityDirectory> },
}

#[derive(Debug, Clone)]
pub struct IdentitySettings {
    /// How long a pending browser login (state and PKCE verifier) waits for its callback.
    pub login_ttl: Duration,
    /// How long a browser session lives when the provider does not say.
    pub session_ttl: Duration,
    /// How long a revoked token session is remembered: the longest access token lifetime.
    pub revocation_ttl: Duration,
    /// How often an external user's profile is written to the store while their tokens
    /// keep carrying the same claims.
    pub sync_interval: Duration,
    /// How often `last_used_at` of an API key is written.
    pub api_key_touch_interval: Duration,
    /// How long an answer "this token session is not revoked" or "these roles have
    /// not changed" of the ephemeral store is reused: how late another replica may
    /// notice a logout or a role change (this process notices at once).
    pub recheck_interval: Duration,
}

impl Default for IdentitySettings {
    fn default() -> Self {
        Self {
            login_ttl: Duration::from_secs(600),
            session_ttl: Duration::from_secs(8 * 3600),
            revocation_ttl: Duration::from_secs(3600),
            sync_interval: Duration::from_secs(300),
            api_key_touch_interval: Duration::from_secs(60),
            recheck_interval: Duration::from_secs(1),
        }
    }
}

/// What the login endpoint hands the browser.
#[derive(Debug, Clone)]
pub struct LoginRedirect {
    pub authorization_url: String,
}

/// The outcome of a completed browser login.
#[derive(Debug, Clone)]
pub struct CompletedLogin {
    /// The opaque session id to set as a cookie.
    pub session_id: String,
    pub session_ttl: Duration,
    pub access_token: String,
    pub expires_in: u64,
    pub user: User,
    /// Where the browser asked to go after login, when it said.
    pub return_to: Option<String>,
}

/// A fresh access token.
#[derive(Debug, Clone)]
pub struct RefreshedTokens {
    pub access_token: String,
    pub expires_in: u64,
    pub refresh_token: Option<String>,
    pub refresh_expires_in: Option<u64>,
}

/// A key as created: the only time its secret exists outside the client.
#[derive(Debug, Clone)]
pub struct CreatedApiKey {
    pub key: ApiKey,
    pub secret: String,
}

/// The pending login, kept under its `state`.
#[derive(Serialize, Deserialize)]
struct PendingLogin {
    code_verifier: String,
    redirect_uri: String,
    return_to: Option<String>,
}

/// A browser session, kept under the digest of its cookie.
#[derive(Serialize, Deserialize)]
struct BrowserSession {
    user_id: UserId,
    /// The provider's refresh token (external provider) or the local one.
    refresh_token: Option<String>,
    id_token: Option<String>,
    /// The provider's session id (`sid`), revoked at logout.
    provider_session: Option<String>,
}

#[derive(Clone)]
struct SyncedUser {
    fingerprint: u64,
    user: User,
}

#[derive(Clone)]
#[allow(missing_debug_implementations)]
pub struct IdentityService {
    store: IdentityPorts,
    ephemeral: Arc<dyn EphemeralStore>,
    verifier: Arc<dyn TokenVerifier>,
    provider: IdentityProvider,
    accounts: Arc<AccountService>,
    settings: IdentitySettings,
    synced: moka::future::Cache<String, SyncedUser>,
    recent: recent::RecentChecks,
    reads: CachedReads,
    /// Tells this process's long-lived connections that a user's credential may have ended.
    credential_changes: Arc<crate::live::Topics<UserId, ()>>,
}

fn session_key(session_id: &str) -> String {
    format!("session:{}", digest(session_id))
}

fn roles_changed_key(keycloak_id: &str) -> String {
    format!("roles-changed:{keycloak_id}")
}

fn revoked_key(session: &str) -> String {
    format!("revoked-session:{session}")
}

fn random_token(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::fill(&mut buffer[..]);
    URL_SAFE_NO_PAD.encode(buffer)
}

fn provider_error(error: IdentityProviderError) -> ServiceError {
    match error {
        IdentityProviderError::Refused(_) => ServiceError::InvalidGrant,
        IdentityProviderError::Unavailable(reason) => ServiceError::Unavailable(reason),
    }
}

fn fingerprint(token: &VerifiedToken) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    token.username.as_str().hash(&mut hasher);
    token.email.as_ref().map(|email| email.as_str().to_owned()).hash(&mut hasher);
    token.full_name.hash(&mut hasher);
    token.roles.hash(&mut hasher);
    token.groups.hash(&mut hasher);
    hasher.finish()
}

impl IdentityService {
    /// `reads` reads the users behind sessions and API keys, and is invalidated on
    /// every change of a user: every service that changes users must share it.
    pub fn new(
        store: IdentityPorts,
        reads: CachedReads,
        ephemeral: Arc<dyn EphemeralStore>,
        verifier: Arc<dyn TokenVerifier>,
        provider: IdentityProvider,
        accounts: Arc<AccountService>,
        settings: IdentitySettings,
    ) -> Self {
        let synced = moka::future::Cache::builder().max_capacity(100_000).time_to_live(settings.sync_interval).build();
        let recent = recent::RecentChecks::new(settings.recheck_interval);
        let credential_changes = watch::credential_topics();
        Self { store, ephemeral, verifier, provider, accounts, settings, synced, recent, reads, credential_changes }
    }

    pub fn is_external(&self) -> bool {
        matches!(self.provider, IdentityProvider::External { .. })
    }

    async fn audit_failure(&self, reason: &str, client: &ClientInfo) {
        let mut details = serde_json::Map::new();
        details.insert("method".into(), "browser".into());
        details.insert("reason".into(), reason.into());
        self.audit(audit_record("authentication_failed", "user", "browser-login".into(), None, details, client)).await;
    }

    async fn audit(&self, record: aether_domain::activity::NewAuditRecord) {
        let action = record.action;
        if let Err(error) = self.store.activity.record_audit(record).await {
            tracing::warn!(%error, action, "could not write an audit record");
        }
    }
}

/// A valid credential of an account deleted since: it no longer identifies anyone.
fn account_gone(error: StoreError) -> ServiceError {
    match error {
        StoreError::NotFound => ServiceError::Unauthenticated(TokenError::Invalid("account gone".into())),
        other => other.into(),
    }
}

/// The capabilities a principal has, for `/auth/permissions`.
pub fn permissions_of(principal: &Principal) -> (Vec<Capability>, Vec<Capability>) {
    let from_roles = capabilities_of(&principal.roles);
    (from_roles, principal.capabilities.clone())
}

pub fn require(caller: &Principal, capability: Capability) -> ServiceResult<()> {
    if caller.can(capability) {
        Ok(())
    } else {
        Err(ServiceError::Forbidden(match capability {
            Capability::Write => "your role allows reading only",
            Capability::AdministerUsers => "this needs an administrator",
            _ => "your role does not allow this",
        }))
    }
}

/// A synchronisation retried on what concurrent first requests can meet: a lost race
/// on the unique `keycloak_id` or a transient deadlock. The synchronised user's
/// cached entry is invalidated, since its username, roles or status may have changed.
async fn sync_with_retry(store: &dyn UserStore, reads: &CachedReads, user: ExternalUser) -> ServiceResult<User> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match store.sync_external_user(user.clone(), time::now()).await {
            Ok(user) => {
                reads.user_changed(user.id).await;
                return Ok(user);
            }
            Err(StoreError::Conflict(field)) if field == "keycloak_id" && attempt < 5 => {}
            Err(StoreError::Unavailable(_)) if attempt < 5 => {
                tokio::time::sleep(Duration::from_millis(10 * attempt)).await;
            }
            Err(error) => return Err(error.into()),
        }
    }
}
