//! Identity beyond passwords: what a verified token says, how realm roles map to
//! capabilities, personal API keys, users synchronised from an external identity
//! provider (Keycloak), and the short-lived state of browser sessions.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::StoreError;
use crate::ValidationError;
use crate::auth::TokenError;
use crate::events::{NewEvent, user_activity_event};
use crate::id::{ApiKeyId, TokenFamilyId, UserId};
use crate::store::RefreshOutcome;
use crate::time::Timestamp;
use crate::user::{Email, Role, UserStatus, Username};

// ---------------------------------------------------------------------------------------------
// Capabilities
// ---------------------------------------------------------------------------------------------

/// A global capability. Realm roles grant capabilities; resource access (who may read
/// or change *this* notebook) still comes from graph relationships, and a capability
/// only caps it: a caller without [`Capability::Write`] writes nothing, whatever the
/// notebook says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    /// Read what the graph lets the caller read.
    Read,
    /// Create and change content: notebooks, sharing, documents, API keys with write scope.
    Write,
    /// Administer users: list them, change their roles, read the audit log.
    AdministerUsers,
    /// Read the audit log.
    ReadAudit,
    /// Administer every notebook regardless of ownership.
    AdministerNotebooks,
    /// Manage compliance settings and read compliance findings.
    ManageCompliance,
}

impl Capability {
    pub const ALL: [Capability; 6] = [
        Capability::Read,
        Capability::Write,
        Capability::AdministerUsers,
        Capability::ReadAudit,
        Capability::AdministerNotebooks,
        Capability::ManageCompliance,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Read => "read",
            Capability::Write => "write",
            Capability::AdministerUsers => "administer_users",
            Capability::ReadAudit => "read_audit",
            Capability::AdministerNotebooks => "administer_notebooks",
            Capability::ManageCompliance => "manage_compliance",
        }
    }
}

impl Role {
    /// The one place where realm roles become capabilities:
    ///
    /// | role                 | capabilities                                          |
    /// |----------------------|-------------------------------------------------------|
    /// | `aether-admin`       | all                                                   |
    /// | `aether-user`        | read, write                                           |
    /// | `aether-viewer`      | read                                                  |
    /// | `notebook-admin`     | read, write, administer notebooks                     |
    /// | `compliance-officer` | read, read audit, manage compliance                   |
    pub fn capabilities(self) -> &'static [Capability] {
        use Capability::*;
        match self {
            Role::Admin => &Capability::ALL,
            Role::User => &[Read, Write],
            Role::Viewer => &[Read],
            Role::NotebookAdmin => &[Read, Write, AdministerNotebooks],
            Role::ComplianceOfficer => &[Read, ReadAudit, ManageCompliance],
        }
    }
}

/// The conflict a role change answers when it would leave no active administrator.
pub const LAST_ADMINISTRATOR: &str = "last_administrator";

/// A role change must not take `aether-admin` from the last active administrator: without
/// one, nobody could grant the role again (short of the command line). Stores call this
/// inside the role change's transaction with the user's roles before and after it and the
/// number of active administrators after it, and roll back on `Err`.
pub fn check_administrators_remain(before: &[Role], after: &[Role], remaining: u64) -> Result<(), StoreError> {
    let demoted = before.contains(&Role::Admin) && !after.contains(&Role::Admin);
    if demoted && remaining == 0 { Err(StoreError::Conflict(LAST_ADMINISTRATOR.into())) } else { Ok(()) }
}

/// The capabilities of a set of roles, sorted and without repeats.
pub fn capabilities_of(roles: &[Role]) -> Vec<Capability> {
    let mut capabilities: Vec<Capability> = roles.iter().flat_map(|role| role.capabilities()).copied().collect();
    capabilities.sort();
    capabilities.dedup();
    capabilities
}

// ---------------------------------------------------------------------------------------------
// Verified tokens
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// API keys
// ---------------------------------------------------------------------------------------------

/// What a personal API key may do, on top of (never beyond) its owner's roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiKeyScope {
    Read,
    Write,
    Admin,
}

impl ApiKeyScope {
    pub fn as_str(self) -> &'static str {
        match self {
            ApiKeyScope::Read => "read",
            ApiKeyScope::Write => "write",
            ApiKeyScope::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        match text {
            "read" => Ok(ApiKeyScope::Read),
            "write" => Ok(ApiKeyScope::Write),
            "admin" => Ok(ApiKeyScope::Admin),
            other => {
                Err(ValidationError::new("scopes", format!("unknown scope '{other}'; expected read, write or admin")))
            }
        }
    }

    /// The capabilities a key with this scope may exercise (still capped by its owner's roles).
    pub fn capabilities(self) -> &'static [Capability] {
        match self {
            ApiKeyScope::Read => &[Capability::Read],
            ApiKeyScope::Write => &[Capability::Read, Capability::Write],
            ApiKeyScope::Admin => &Capability::ALL,
        }
    }
}

/// A key's human-readable label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyName(String);

impl ApiKeyName {
    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        let text = text.trim();
        if text.is_empty() || text.chars().count() > 100 || text.chars().any(char::is_control) {
            return Err(ValidationError::new("name", "must be 1–100 characters, without control characters"));
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A personal API key as stored: never the secret, only its digest (kept by the store
/// and not part of this type) and a prefix to recognise it by.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub user_id: UserId,
    pub name: ApiKeyName,
    /// The first characters of the key, shown in lists so users can tell keys apart.
    pub prefix: String,
    pub scopes: Vec<ApiKeyScope>,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

impl ApiKey {
    /// Usable at `now`: not revoked and not expired.
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|expires| expires > now)
    }

    pub fn capabilities(&self) -> Vec<Capability> {
        let mut capabilities: Vec<Capability> =
            self.scopes.iter().flat_map(|scope| scope.capabilities()).copied().collect();
        capabilities.sort();
        capabilities.dedup();
        capabilities
    }
}

/// A key to create.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub id: ApiKeyId,
    pub user_id: UserId,
    pub name: ApiKeyName,
    pub prefix: String,
    /// SHA-256 of the whole key, hex.
    pub secret_hash: String,
    pub scopes: Vec<ApiKeyScope>,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
}

// ---------------------------------------------------------------------------------------------
// Audit of identity events
// ---------------------------------------------------------------------------------------------

/// An `(:AuditLog)` entry about identity: logins, logouts, failed authentication, role
/// changes, API keys. `performed_by` is `None` when nobody could be identified (a failed
/// login with an unknown name).
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditRecord {
    /// `login`, `logout`, `authentication_failed`, `roles_changed`, `api_key_created`, `api_key_revoked`.
    pub action: &'static str,
    pub resource_type: &'static str,
    pub resource_id: String,
    pub performed_by: Option<UserId>,
    pub details: serde_json::Map<String, serde_json::Value>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub at: Timestamp,
}

impl NewAuditRecord {
    /// The `aether.users.activity` event written with the record, when someone was
    /// identified.
    pub fn activity_event(&self) -> Option<NewEvent> {
        self.performed_by.map(|user| user_activity_event(user, self.action, self.resource_type, &self.resource_id))
    }
}

// ---------------------------------------------------------------------------------------------
// Refresh tokens
// ---------------------------------------------------------------------------------------------

/// A stored refresh token as a store finds it when it is presented (under its lock),
/// with the status of the user it was issued to.
#[derive(Debug, Clone, PartialEq)]
pub struct PresentedRefreshToken {
    pub user_id: UserId,
    pub family_id: TokenFamilyId,
    pub expires_at: Timestamp,
    /// Already exchanged for a successor.
    pub spent: bool,
    pub revoked: bool,
    pub user_status: UserStatus,
}

impl PresentedRefreshToken {
    /// What presenting the token at `now` leads to: `Invalid` when it is revoked or
    /// expired or its user is not active; `Reused` when it was spent already (the store
    /// then revokes the family); else `Rotated` (the store spends it and stores the
    /// replacement in the same family).
    pub fn outcome(&self, now: Timestamp) -> RefreshOutcome {
        let (user_id, family_id) = (self.user_id, self.family_id);
        if self.revoked || self.expires_at <= now || self.user_status != UserStatus::Active {
            RefreshOutcome::Invalid
        } else if self.spent {
            RefreshOutcome::Reused { user_id, family_id }
        } else {
            RefreshOutcome::Rotated { user_id, family_id }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Ephemeral state
// ---------------------------------------------------------------------------------------------

/// Short-lived state that must be shared by every replica and survive a restart but
/// not forever: browser sessions, pending logins (OIDC `state` and PKCE verifier),
/// revoked token sessions. Redis in production, the store in the embedded default.
/// Every entry has a time to live; an expired entry reads as absent.
#[async_trait]
pub trait EphemeralStore: Send + Sync + fmt::Debug {
    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError>;
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Reads and deletes atomically: of concurrent callers, at most one gets the value.
    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// Deletes expired entries; a no-op where the backend expires them itself.
    async fn purge_expired(&self, now: Timestamp) -> Result<u64, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viewers_cannot_write_and_admins_can_do_everything() {
        assert_eq!(capabilities_of(&[Role::Viewer]), vec![Capability::Read]);
        assert!(!capabilities_of(&[Role::Viewer, Role::ComplianceOfficer]).contains(&Capability::Write));
        assert_eq!(capabilities_of(&[Role::Admin]), Capability::ALL.to_vec());
        assert_eq!(capabilities_of(&[Role::User, Role::Viewer]), vec![Capability::Read, Capability::Write]);
    }

    #[test]
    fn only_taking_the_role_from_the_last_administrator_is_refused() {
        use Role::{Admin, User, Viewer};
        assert!(check_administrators_remain(&[Admin, User], &[User], 0).is_err());
        assert!(check_administrators_remain(&[Admin, User], &[User], 1).is_ok());
        assert!(check_administrators_remain(&[Admin], &[Admin, Viewer], 0).is_ok(), "still an administrator");
        assert!(check_administrators_remain(&[User], &[Viewer], 0).is_ok(), "no administrator to lose");
    }

    #[test]
    fn audit_records_of_someone_are_their_activity() {
        let user = UserId::new();
        let mut record = NewAuditRecord {
            action: "login",
            resource_type: "user",
            resource_id: user.to_string(),
            performed_by: Some(user),
            details: serde_json::Map::new(),
            ip_address: None,
            user_agent: None,
            at: crate::time::now(),
        };
        let event = record.activity_event().expect("an actor");
        assert_eq!((event.topic, event.key), (crate::events::topics::USERS_ACTIVITY, user.to_string()));
        assert_eq!(event.payload["activity"], "login");
        record.performed_by = None;
        assert_eq!(record.activity_event(), None);
    }

    #[test]
    fn a_presented_refresh_token_rotates_once_and_its_replay_is_reuse() {
        let now = crate::time::now();
        let token = PresentedRefreshToken {
            user_id: UserId::new(),
            family_id: TokenFamilyId::new(),
            expires_at: crate::time::after(now, Duration::from_secs(60)),
            spent: false,
            revoked: false,
            user_status: UserStatus::Active,
        };
        let (user_id, family_id) = (token.user_id, token.family_id);
        assert_eq!(token.outcome(now), RefreshOutcome::Rotated { user_id, family_id });
        let spent = PresentedRefreshToken { spent: true, ..token.clone() };
        assert_eq!(spent.outcome(now), RefreshOutcome::Reused { user_id, family_id });
        let revoked = PresentedRefreshToken { revoked: true, ..spent.clone() };
        assert_eq!(revoked.outcome(now), RefreshOutcome::Invalid, "revocation wins over reuse");
        assert_eq!(token.outcome(token.expires_at), RefreshOutcome::Invalid, "expired at its expiry");
        let suspended = PresentedRefreshToken { user_status: UserStatus::Suspended, ..token };
        assert_eq!(suspended.outcome(now), RefreshOutcome::Invalid);
    }

    #[test]
    fn key_scopes_parse_and_map() {
        assert_eq!(ApiKeyScope::parse("write"), Ok(ApiKeyScope::Write));
        assert!(ApiKeyScope::parse("root").is_err());
        assert!(!ApiKeyScope::Read.capabilities().contains(&Capability::Write));
    }

    #[test]
    fn key_names_are_checked() {
        assert!(ApiKeyName::parse("  ci  ").is_ok_and(|name| name.as_str() == "ci"));
        assert!(ApiKeyName::parse("").is_err());
        assert!(ApiKeyName::parse("a\nb").is_err());
    }
}
