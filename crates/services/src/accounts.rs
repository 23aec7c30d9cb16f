//! Accounts and sessions of the built-in identity provider: the first admin, user
//! creation, the OAuth 2.0 password and refresh-token grants (RFC 6749 §4.3, §6) with
//! rotating refresh tokens, and the current user.

use std::sync::{Arc, OnceLock};

use aether_domain::auth::{ClientInfo, PasswordHasher, Principal};
use aether_domain::id::{TokenFamilyId, UserId};
use aether_domain::session::{NewRefreshToken, RefreshOutcome};
use aether_domain::time::{self, Timestamp};
use aether_domain::token::{AccessTokenCodec, TokenError};
use aether_domain::user::{Email, NewUser, Password, Role, User, Username};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::TimeDelta;
use sha2::{Digest, Sha256};

use crate::error::{ServiceError, ServiceResult};
use crate::ports::AccountPorts;

#[derive(Debug, Clone)]
pub struct SessionSettings {
    pub refresh_token_ttl: TimeDelta,
}

/// What a successful grant returns (RFC 6749 §5.1).
#[derive(Debug, Clone)]
pub struct TokenPair {
    pub access_token: String,
    pub expires_in: u64,
    pub refresh_token: String,
    pub refresh_expires_in: u64,
}

/// A new account to create.
#[derive(Debug, Clone)]
pub struct AccountRequest {
    pub username: Username,
    pub password: Password,
    pub email: Option<Email>,
    pub full_name: Option<String>,
    pub roles: Vec<Role>,
}

/// The result of first-start bootstrapping.
#[derive(Debug, Clone, PartialEq)]
pub enum Bootstrap {
    /// An `admin` account already existed; nothing was done.
    AlreadyPresent,
    /// The account was created with the operator's password.
    Created,
    /// The account was created with this generated password, to be shown once.
    CreatedWithGeneratedPassword(String),
}

#[derive(Debug, Clone)]
pub struct AccountService {
    store: AccountPorts,
    hasher: Arc<dyn PasswordHasher>,
    tokens: Arc<dyn AccessTokenCodec>,
    settings: SessionSettings,
    dummy_hash: Arc<OnceLock<String>>,
}

/// The name of the account created on first start.
pub const ADMIN_USERNAME: &str = "admin";

impl AccountService {
    pub fn new(
        store: AccountPorts,
        hasher: Arc<dyn PasswordHasher>,
        tokens: Arc<dyn AccessTokenCodec>,
        settings: SessionSettings,
    ) -> Self {
        Self { store, hasher, tokens, settings, dummy_hash: Arc::default() }
    }

    /// Creates the `admin` account unless it exists, with `password` or a generated one.
    pub async fn bootstrap_admin(&self, password: Option<Password>) -> ServiceResult<Bootstrap> {
        let username = Username::parse(ADMIN_USERNAME)?;
        if self.store.users.find_user_by_username(&username).await?.is_some() {
            return Ok(Bootstrap::AlreadyPresent);
        }
        let (password, generated) = match password {
            Some(password) => (password, None),
            None => {
                let generated = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 18]>());
                (Password::parse(&generated)?, Some(generated))
            }
        };
        let request = AccountRequest {
            username,
            password,
            email: None,
            full_name: Some("Administrator".into()),
            roles: vec![Role::Admin, Role::User],
        };
        match self.create_account(request).await {
            Ok(_) => Ok(generated.map_or(Bootstrap::Created, Bootstrap::CreatedWithGeneratedPassword)),
            // Another replica created it between our check and our insert.
            Err(ServiceError::Conflict(_)) => Ok(Bootstrap::AlreadyPresent),
            Err(error) => Err(error),
        }
    }

    /// Creates a local account with a password.
    pub async fn create_account(&self, request: AccountRequest) -> ServiceResult<User> {
        let hash = self.hash_password(request.password).await?;
        let user = NewUser {
            id: UserId::new(),
            keycloak_id: None,
            username: request.username,
            email: request.email,
            full_name: request.full_name,
            roles: if request.roles.is_empty() { vec![Role::User] } else { request.roles },
            password_hash: Some(hash),
            created_at: time::now(),
        };
        let user = self.store.users.create_user(user).await?;
        tracing::info!(user_id = %user.id, username = %user.username, "created local account");
        Ok(user)
    }

    /// The OAuth 2.0 resource owner password grant. Successes and failures are audited.
    pub async fn password_grant(
        &self,
        username: &str,
        password: &str,
        client: &ClientInfo,
    ) -> ServiceResult<TokenPair> {
        let result = self.check_password(username, password).await;
        let (action, actor, resource) = match &result {
            Ok((user, _)) => ("login", Some(user.id), user.id.to_string()),
            Err(ServiceError::InvalidGrant) => ("authentication_failed", None, username.chars().take(64).collect()),
            Err(_) => return result.map(|(_, pair)| pair),
        };
        let mut details = serde_json::Map::new();
        details.insert("method".into(), "password".into());
        if actor.is_none() {
            details.insert("username".into(), resource.clone().into());
        }
        let record = audit_record(action, "user", resource, actor, details, client);
        if let Err(error) = self.store.activity.record_audit(record).await {
            tracing::warn!(%error, action, "could not audit a login");
        }
        result.map(|(_, pair)| pair)
    }

    async fn check_password(&self, username: &str, password: &str) -> ServiceResult<(User, TokenPair)> {
        // A malformed username cannot belong to any account; answer as for a wrong one.
        let Ok(username) = Username::parse(username) else { return Err(ServiceError::InvalidGrant) };
        let credentials = self.store.users.find_local_credentials(&username).await?;
        let hasher = Arc::clone(&self.hasher);
        let dummy_hash = Arc::clone(&self.dummy_hash);
        let password = password.to_owned();
        let stored = credentials.as_ref().map(|c| c.password_hash.clone());
        let valid = tokio::task::spawn_blocking(move || {
            // Verify even for unknown users, against a hash of a password nobody
            // knows, so that response time does not reveal which usernames exist.
            let stored = stored.unwrap_or_else(|| {
                dummy_hash.get_or_init(|| hasher.hash("aether-unknown-user").unwrap_or_default()).clone()
            });
            hasher.verify(&password, &stored)
        })
        .await
        .map_err(|error| ServiceError::Internal(error.to_string()))?;
        let Some(credentials) = credentials.filter(|_| valid) else {
            tracing::info!(username = %username, "password grant refused");
            return Err(ServiceError::InvalidGrant);
        };
        if credentials.user.status != aether_domain::user::UserStatus::Active {
            return Err(ServiceError::InvalidGrant);
        }
        let now = time::now();
        self.store.users.record_login(credentials.user.id, now).await?;
        let pair = self.issue_pair(&credentials.user, TokenFamilyId::new(), now).await?;
        Ok((credentials.user, pair))
    }

    /// The OAuth 2.0 refresh-token grant. The presented token is spent; presenting a
    /// spent token again revokes every token descended from the same login.
    pub async fn refresh_grant(&self, refresh_token: &str) -> ServiceResult<TokenPair> {
        let now = time::now();
        let replacement = new_refresh_token();
        let expires_at = now + self.settings.refresh_token_ttl;
        let outcome = self
            .store
            .sessions
            .rotate_refresh_token(&digest(refresh_token), &digest(&replacement), expires_at, now)
            .await?;
        match outcome {
            RefreshOutcome::Rotated { user_id, family_id } => {
                let user = self.store.users.get_user(user_id).await.map_err(|_| ServiceError::InvalidGrant)?;
                let (access_token, expires_in) =
                    self.tokens.issue(&user, &family_id.to_string(), now).map_err(internal)?;
                Ok(TokenPair {
                    access_token,
                    expires_in,
                    refresh_token: replacement,
                    refresh_expires_in: self.refresh_ttl_secs(),
                })
            }
            RefreshOutcome::Reused { user_id, family_id } => {
                tracing::warn!(%user_id, %family_id, "refresh token reused; revoked its family");
                Err(ServiceError::InvalidGrant)
            }
            RefreshOutcome::Invalid => Err(ServiceError::InvalidGrant),
        }
    }

    /// Ends a local login session: every refresh token of the family is revoked.
    pub async fn end_session(&self, family_id: TokenFamilyId) -> ServiceResult<()> {
        Ok(self.store.sessions.revoke_token_family(family_id, time::now()).await?)
    }

    /// The caller's own account.
    pub async fn current_user(&self, principal: &Principal) -> ServiceResult<User> {
        Ok(self.store.users.get_user(principal.user_id).await?)
    }

    async fn issue_pair(&self, user: &User, family_id: TokenFamilyId, now: Timestamp) -> ServiceResult<TokenPair> {
        let (access_token, expires_in) = self.tokens.issue(user, &family_id.to_string(), now).map_err(internal)?;
        let refresh_token = new_refresh_token();
        self.store
            .sessions
            .insert_refresh_token(NewRefreshToken {
                token_hash: digest(&refresh_token),
                user_id: user.id,
                family_id,
                issued_at: now,
                expires_at: now + self.settings.refresh_token_ttl,
            })
            .await?;
        Ok(TokenPair { access_token, expires_in, refresh_token, refresh_expires_in: self.refresh_ttl_secs() })
    }

    fn refresh_ttl_secs(&self) -> u64 {
        u64::try_from(self.settings.refresh_token_ttl.num_seconds()).unwrap_or(0)
    }

    async fn hash_password(&self, password: Password) -> ServiceResult<String> {
        let hasher = Arc::clone(&self.hasher);
        tokio::task::spawn_blocking(move || hasher.hash(password.expose()))
            .await
            .map_err(|error| ServiceError::Internal(error.to_string()))?
            .map_err(ServiceError::Internal)
    }

    /// Deletes refresh tokens past their expiry; run periodically by the worker.
    pub async fn purge_expired_sessions(&self) -> ServiceResult<u64> {
        Ok(self.store.sessions.purge_expired_refresh_tokens(time::now()).await?)
    }
}

fn internal(error: TokenError) -> ServiceError {
    ServiceError::Internal(error.to_string())
}

/// An audit record of an identity event by (or about) `actor`, from `client`.
pub(crate) fn audit_record(
    action: &'static str,
    resource_type: &'static str,
    resource_id: String,
    actor: Option<UserId>,
    details: serde_json::Map<String, serde_json::Value>,
    client: &ClientInfo,
) -> aether_domain::activity::NewAuditRecord {
    aether_domain::activity::NewAuditRecord {
        action,
        resource_type,
        resource_id,
        performed_by: actor,
        details,
        ip_address: client.ip_address.clone(),
        user_agent: client.user_agent.clone(),
        at: time::now(),
    }
}

/// 256 random bits, URL-safe: the refresh token handed to the client.
fn new_refresh_token() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// Refresh tokens are stored only as their SHA-256 digest: a leaked database does
/// not yield usable tokens, and the token's entropy makes a slow hash unnecessary.
pub(crate) fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}
