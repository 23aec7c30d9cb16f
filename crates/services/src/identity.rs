//! Who is calling, and the identity use cases around it: authentication of bearer
//! tokens, browser sessions and personal API keys; user synchronisation from an
//! external provider; the browser login (authorization code flow with PKCE), refresh
//! and logout; user search, profile and role administration.
//!
//! The provider is either the built-in one (accounts in the store, tokens signed by
//! `aether-auth-local`) or an OpenID Connect provider such as Keycloak. Both verify
//! tokens locally, through the same [`TokenVerifier`] port.

use std::sync::Arc;
use std::time::Duration;

use aether_domain::auth::{ClientInfo, Credential, Principal, TokenError};
use aether_domain::id::{ApiKeyId, TokenFamilyId, UserId};
use aether_domain::identity::{
    ApiKey, ApiKeyName, ApiKeyScope, Capability, EphemeralStore, ExternalUser, IdentityDirectory,
    IdentityProviderError, NewApiKey, OidcClient, TokenSubject, TokenVerifier, VerifiedToken, capabilities_of,
};
use aether_domain::store::Store;
use aether_domain::time::{self, Timestamp};
use aether_domain::user::{Role, User, UserPatch, UserStatus};
use aether_domain::{StoreError, ValidationError};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::accounts::{AccountService, audit_record, digest};
use crate::cache::CachedReads;
use crate::error::{ServiceError, ServiceResult};

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
}

impl Default for IdentitySettings {
    fn default() -> Self {
        Self {
            login_ttl: Duration::from_secs(600),
            session_ttl: Duration::from_secs(8 * 3600),
            revocation_ttl: Duration::from_secs(3600),
            sync_interval: Duration::from_secs(300),
            api_key_touch_interval: Duration::from_secs(60),
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
    store: Arc<dyn Store>,
    ephemeral: Arc<dyn EphemeralStore>,
    verifier: Arc<dyn TokenVerifier>,
    provider: IdentityProvider,
    accounts: Arc<AccountService>,
    settings: IdentitySettings,
    synced: moka::future::Cache<String, SyncedUser>,
    reads: CachedReads,
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
    pub fn new(
        store: Arc<dyn Store>,
        ephemeral: Arc<dyn EphemeralStore>,
        verifier: Arc<dyn TokenVerifier>,
        provider: IdentityProvider,
        accounts: Arc<AccountService>,
        settings: IdentitySettings,
    ) -> Self {
        let synced = moka::future::Cache::builder().max_capacity(100_000).time_to_live(settings.sync_interval).build();
        let reads = CachedReads::uncached(Arc::clone(&store));
        Self { store, ephemeral, verifier, provider, accounts, settings, synced, reads }
    }

    /// Reads the users behind sessions and API keys through `reads`, and invalidates
    /// it on every change of a user. Every service that changes users must share it.
    pub fn with_reads(mut self, reads: CachedReads) -> Self {
        self.reads = reads;
        self
    }

    pub fn is_external(&self) -> bool {
        matches!(self.provider, IdentityProvider::External { .. })
    }

    // -----------------------------------------------------------------------------------------
    // Authentication
    // -----------------------------------------------------------------------------------------

    /// The caller behind an `Authorization: Bearer` credential: a personal API key or
    /// an access token of the configured provider.
    pub async fn authenticate_bearer(&self, credential: &str, client: ClientInfo) -> ServiceResult<Principal> {
        let mut principal = if credential.starts_with(API_KEY_PREFIX) {
            self.authenticate_api_key(credential, &client).await?
        } else {
            let token = self.verify_token(credential).await?;
            let session_id = token.session_id.clone();
            let mut principal = self.principal_for_token(token).await?;
            principal.credential = Credential::AccessToken { session_id };
            principal
        };
        principal.client = client;
        Ok(principal)
    }

    /// The caller behind a browser session cookie.
    pub async fn authenticate_session(&self, session_id: &str, client: ClientInfo) -> ServiceResult<Principal> {
        let session = self.session(session_id).await?.ok_or_else(|| TokenError::Invalid("unknown session".into()))?;
        let user = self.reads.user(session.user_id).await.map_err(account_gone)?;
        if user.status != UserStatus::Active {
            return Err(TokenError::Invalid("account is not active".into()).into());
        }
        let mut principal = Principal::new(user.id, user.username, user.roles);
        principal.credential = Credential::Session { session_id: session_id.to_owned() };
        principal.client = client;
        Ok(principal)
    }

    async fn principal_for_token(&self, token: VerifiedToken) -> ServiceResult<Principal> {
        match &token.subject {
            TokenSubject::Local(user_id) => {
                // The stored account decides, not the token's copy of it: a role change
                // or deactivation takes effect on the next request (`change_roles` and
                // the other user changes invalidate the cached user).
                let user = self.reads.user(*user_id).await.map_err(account_gone)?;
                if user.status != UserStatus::Active {
                    return Err(TokenError::Invalid("account is not active".into()).into());
                }
                Ok(Principal::new(user.id, user.username, user.roles))
            }
            TokenSubject::External(keycloak_id) => {
                // Tokens the provider issued before an administrator changed the user's
                // roles here carry the old roles: refuse them (the client refreshes and
                // gets the new roles), and never let them write the old roles back.
                if let Some(changed) = self.roles_changed_at(keycloak_id).await?
                    && token.issued_at.timestamp() < changed
                {
                    return Err(
                        TokenError::Invalid("the user's roles changed after this token was issued".into()).into()
                    );
                }
                let user = self.sync_from_token(&token, None).await?;
                if user.status != UserStatus::Active {
                    return Err(TokenError::Invalid("account is not active".into()).into());
                }
                // The token's roles are current (Keycloak put them there at issue); the
                // store's copy may lag by up to the sync interval.
                Ok(Principal::new(user.id, token.username, token.roles))
            }
        }
    }

    /// When an administrator last changed this provider user's roles here (Unix seconds),
    /// remembered for as long as a token issued before it may live.
    async fn roles_changed_at(&self, keycloak_id: &str) -> Result<Option<i64>, TokenError> {
        let stored = self
            .ephemeral
            .get(&roles_changed_key(keycloak_id))
            .await
            .map_err(|error| TokenError::Unavailable(error.to_string()))?;
        Ok(stored.and_then(|bytes| String::from_utf8(bytes).ok()).and_then(|text| text.parse().ok()))
    }

    /// Creates or updates the store's user from an external token, at most once per
    /// sync interval while the claims stay the same. Concurrent first requests of a
    /// new user share one synchronisation.
    async fn sync_from_token(&self, token: &VerifiedToken, logged_in_at: Option<Timestamp>) -> ServiceResult<User> {
        let TokenSubject::External(keycloak_id) = &token.subject else {
            return Err(ServiceError::Internal("local tokens are not synchronised".into()));
        };
        let print = fingerprint(token);
        // Entries live for the sync interval (the cache's time to live). A login is
        // always written through, to record it; changed claims are written at once.
        match self.synced.get(keycloak_id).await {
            Some(entry) if logged_in_at.is_none() && entry.fingerprint == print => return Ok(entry.user),
            Some(_) => self.synced.invalidate(keycloak_id).await,
            None => {}
        }
        let external = ExternalUser {
            keycloak_id: keycloak_id.clone(),
            username: token.username.clone(),
            email: token.email.clone(),
            full_name: token.full_name.clone(),
            roles: token.roles.clone(),
            groups: token.groups.clone(),
            attributes: serde_json::Map::new(),
            logged_in_at,
        };
        let store = Arc::clone(&self.store);
        let reads = self.reads.clone();
        let entry = self
            .synced
            .try_get_with(keycloak_id.clone(), async move {
                let user = sync_with_retry(store.as_ref(), &reads, external).await?;
                Ok::<_, ServiceError>(SyncedUser { fingerprint: print, user })
            })
            .await
            .map_err(|error: Arc<ServiceError>| match error.as_ref() {
                ServiceError::Conflict(field) => ServiceError::Rejected {
                    code: "account_conflict",
                    detail: format!("Another Aether account already has this {field}."),
                },
                ServiceError::Unavailable(reason) => ServiceError::Unavailable(reason.clone()),
                other => ServiceError::Internal(other.to_string()),
            })?;
        Ok(entry.user)
    }

    async fn authenticate_api_key(&self, secret: &str, client: &ClientInfo) -> ServiceResult<Principal> {
        let now = time::now();
        let key = self.store.find_api_key(&digest(secret)).await?;
        let Some(key) = key.filter(|key| key.is_active(now)) else {
            let resource = secret.chars().take(API_KEY_PREFIX.len() + 8).collect::<String>();
            let mut details = serde_json::Map::new();
            details.insert("method".into(), "api_key".into());
            let record = audit_record("authentication_failed", "api_key", resource, None, details, client);
            if let Err(error) = self.store.record_audit(record).await {
                tracing::warn!(%error, "could not audit a failed API key");
            }
            return Err(TokenError::Invalid("unknown, revoked or expired API key".into()).into());
        };
        let user = self.reads.user(key.user_id).await.map_err(account_gone)?;
        if user.status != UserStatus::Active {
            return Err(TokenError::Invalid("account is not active".into()).into());
        }
        if key
            .last_used_at
            .is_none_or(|used| (now - used).to_std().unwrap_or_default() >= self.settings.api_key_touch_interval)
        {
            // Off the request's path: a slow write must not slow every API call.
            let store = Arc::clone(&self.store);
            tokio::spawn(async move {
                if let Err(error) = store.touch_api_key(key.id, now).await {
                    tracing::warn!(%error, "could not record API key use");
                }
            });
        }
        let allowed = key.capabilities();
        let mut principal = Principal::new(user.id, user.username, user.roles);
        principal.capabilities.retain(|capability| allowed.contains(capability));
        principal.credential = Credential::ApiKey { id: key.id };
        Ok(principal)
    }

    /// Verifies an access token and that its session has not been ended by a logout:
    /// the claims, or why not. `/auth/verify-token` answers with this too.
    pub async fn verify_token(&self, token: &str) -> Result<VerifiedToken, TokenError> {
        let verified = self.verifier.verify(token).await?;
        if let Some(session) = &verified.session_id
            && self
                .ephemeral
                .get(&revoked_key(session))
                .await
                .map_err(|e| TokenError::Unavailable(e.to_string()))?
                .is_some()
        {
            return Err(TokenError::Invalid("the session of this token has ended".into()));
        }
        Ok(verified)
    }

    // -----------------------------------------------------------------------------------------
    // Browser login, refresh, logout
    // -----------------------------------------------------------------------------------------

    fn oidc(&self) -> ServiceResult<&Arc<dyn OidcClient>> {
        match &self.provider {
            IdentityProvider::External { oidc, .. } => Ok(oidc),
            IdentityProvider::Local => Err(ServiceError::Rejected {
                code: "browser_login_unavailable",
                detail: "The built-in identity provider has no browser login; use POST /api/v1/auth/token.".into(),
            }),
        }
    }

    /// Starts a browser login: remembers a fresh `state` with its PKCE verifier and
    /// answers the provider's authorization URL.
    pub async fn begin_login(&self, redirect_uri: &str, return_to: Option<String>) -> ServiceResult<LoginRedirect> {
        let oidc = self.oidc()?;
        let state = random_token(24);
        let code_verifier = random_token(48);
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(code_verifier.as_bytes()));
        let nonce = random_token(16);
        let pending = PendingLogin { code_verifier, redirect_uri: redirect_uri.to_owned(), return_to };
        let value = serde_json::to_vec(&pending).map_err(|error| ServiceError::Internal(error.to_string()))?;
        self.ephemeral.put(&format!("login:{state}"), &value, self.settings.login_ttl).await?;
        let authorization_url =
            oidc.authorization_url(redirect_uri, &state, &challenge, &nonce).await.map_err(provider_error)?;
        Ok(LoginRedirect { authorization_url })
    }

    /// Completes a browser login: spends the `state`, exchanges the code, synchronises
    /// the user and opens a session.
    pub async fn complete_login(&self, code: &str, state: &str, client: &ClientInfo) -> ServiceResult<CompletedLogin> {
        let oidc = self.oidc()?;
        let pending = self.ephemeral.take(&format!("login:{state}")).await?;
        let Some(pending) = pending.and_then(|value| serde_json::from_slice::<PendingLogin>(&value).ok()) else {
            self.audit_failure("unknown or expired login state", client).await;
            return Err(ServiceError::Rejected {
                code: "invalid_login_state",
                detail: "This login is unknown or has expired; start again.".into(),
            });
        };
        let tokens = match oidc.exchange_code(code, &pending.code_verifier, &pending.redirect_uri).await {
            Ok(tokens) => tokens,
            Err(error) => {
                self.audit_failure("code exchange refused", client).await;
                return Err(provider_error(error));
            }
        };
        let verified = self.verifier.verify(&tokens.access_token).await?;
        let now = time::now();
        let user = match &verified.subject {
            TokenSubject::External(_) => self.sync_from_token(&verified, Some(now)).await?,
            TokenSubject::Local(id) => self.store.get_user(*id).await?,
        };
        let session_id = random_token(32);
        let session_ttl =
            tokens.refresh_expires_in.filter(|secs| *secs > 0).map_or(self.settings.session_ttl, Duration::from_secs);
        let session = BrowserSession {
            user_id: user.id,
            refresh_token: tokens.refresh_token.clone(),
            id_token: tokens.id_token.clone(),
            provider_session: verified.session_id.clone(),
        };
        let value = serde_json::to_vec(&session).map_err(|error| ServiceError::Internal(error.to_string()))?;
        self.ephemeral.put(&session_key(&session_id), &value, session_ttl).await?;
        let mut details = serde_json::Map::new();
        details.insert("method".into(), "browser".into());
        self.audit(audit_record("login", "user", user.id.to_string(), Some(user.id), details, client)).await;
        Ok(CompletedLogin {
            session_id,
            session_ttl,
            access_token: tokens.access_token,
            expires_in: tokens.expires_in,
            user,
            return_to: pending.return_to,
        })
    }

    async fn session(&self, session_id: &str) -> ServiceResult<Option<BrowserSession>> {
        let value = self.ephemeral.get(&session_key(session_id)).await?;
        Ok(value.and_then(|value| serde_json::from_slice(&value).ok()))
    }

    /// A new access token: for a browser session from the refresh token it keeps, or
    /// from the refresh token the client presents.
    pub async fn refresh(
        &self,
        session_id: Option<&str>,
        refresh_token: Option<&str>,
    ) -> ServiceResult<RefreshedTokens> {
        if let Some(session_id) = session_id {
            let mut session = self.session(session_id).await?.ok_or(ServiceError::InvalidGrant)?;
            let presented = session.refresh_token.clone().ok_or(ServiceError::InvalidGrant)?;
            let tokens = self.oidc()?.refresh(&presented).await.map_err(provider_error)?;
            session.refresh_token = tokens.refresh_token.clone().or(session.refresh_token);
            let value = serde_json::to_vec(&session).map_err(|error| ServiceError::Internal(error.to_string()))?;
            let ttl = tokens
                .refresh_expires_in
                .filter(|secs| *secs > 0)
                .map_or(self.settings.session_ttl, Duration::from_secs);
            self.ephemeral.put(&session_key(session_id), &value, ttl).await?;
            // The refresh token stays in the session; the browser only gets the access token.
            return Ok(RefreshedTokens {
                access_token: tokens.access_token,
                expires_in: tokens.expires_in,
                refresh_token: None,
                refresh_expires_in: None,
            });
        }
        let refresh_token = refresh_token.ok_or(ServiceError::InvalidGrant)?;
        match &self.provider {
            IdentityProvider::Local => {
                let pair = self.accounts.refresh_grant(refresh_token).await?;
                Ok(RefreshedTokens {
                    access_token: pair.access_token,
                    expires_in: pair.expires_in,
                    refresh_token: Some(pair.refresh_token),
                    refresh_expires_in: Some(pair.refresh_expires_in),
                })
            }
            IdentityProvider::External { oidc, .. } => {
                let tokens = oidc.refresh(refresh_token).await.map_err(provider_error)?;
                Ok(RefreshedTokens {
                    access_token: tokens.access_token,
                    expires_in: tokens.expires_in,
                    refresh_token: tokens.refresh_token,
                    refresh_expires_in: tokens.refresh_expires_in,
                })
            }
        }
    }

    /// Ends the caller's login: the browser session, the provider's session (so its
    /// refresh tokens stop working) and every access token of that session (remembered
    /// as revoked until the longest token lifetime has passed). Answers the provider's
    /// front-channel end-session URL when it has one.
    pub async fn logout(
        &self,
        caller: &Principal,
        session_cookie: Option<&str>,
        refresh_token: Option<&str>,
    ) -> ServiceResult<Option<String>> {
        let mut provider_sessions = Vec::new();
        let mut refresh_tokens: Vec<String> = refresh_token.map(str::to_owned).into_iter().collect();
        let mut id_token = None;
        if let Credential::AccessToken { session_id: Some(session) } = &caller.credential {
            provider_sessions.push(session.clone());
        }
        let cookie = match &caller.credential {
            Credential::Session { session_id } => Some(session_id.as_str()),
            _ => session_cookie,
        };
        if let Some(cookie) = cookie
            && let Some(value) = self.ephemeral.take(&session_key(cookie)).await?
            && let Ok(session) = serde_json::from_slice::<BrowserSession>(&value)
            && session.user_id == caller.user_id
        {
            provider_sessions.extend(session.provider_session);
            refresh_tokens.extend(session.refresh_token);
            id_token = session.id_token;
        }
        for session in &provider_sessions {
            self.ephemeral.put(&revoked_key(session), b"1", self.settings.revocation_ttl).await?;
        }
        let mut end_session_url = None;
        match &self.provider {
            IdentityProvider::Local => {
                for session in &provider_sessions {
                    if let Ok(family) = TokenFamilyId::parse(session) {
                        self.accounts.end_session(family).await?;
                    }
                }
            }
            IdentityProvider::External { oidc, .. } => {
                for token in &refresh_tokens {
                    match oidc.end_session(token).await {
                        Ok(()) | Err(IdentityProviderError::Refused(_)) => {}
                        Err(IdentityProviderError::Unavailable(reason)) => {
                            // The local session is gone and the tokens are revoked here;
                            // the provider's session ends at its own expiry.
                            tracing::warn!(%reason, "could not end the provider's session");
                        }
                    }
                }
                end_session_url = oidc.end_session_url(id_token.as_deref(), None).await.ok().flatten();
            }
        }
        let mut details = serde_json::Map::new();
        details.insert("sessions".into(), provider_sessions.len().into());
        self.audit(audit_record(
            "logout",
            "user",
            caller.user_id.to_string(),
            Some(caller.user_id),
            details,
            &caller.client,
        ))
        .await;
        Ok(end_session_url)
    }

    async fn audit_failure(&self, reason: &str, client: &ClientInfo) {
        let mut details = serde_json::Map::new();
        details.insert("method".into(), "browser".into());
        details.insert("reason".into(), reason.into());
        self.audit(audit_record("authentication_failed", "user", "browser-login".into(), None, details, client)).await;
    }

    async fn audit(&self, record: aether_domain::identity::NewAuditRecord) {
        let action = record.action;
        if let Err(error) = self.store.record_audit(record).await {
            tracing::warn!(%error, action, "could not write an audit record");
        }
    }

    // -----------------------------------------------------------------------------------------
    // Users
    // -----------------------------------------------------------------------------------------

    pub async fn me(&self, caller: &Principal) -> ServiceResult<User> {
        self.store.get_user(caller.user_id).await.map_err(account_gone)
    }

    /// Updates the caller's own settings. The full name is the provider's when the
    /// provider is external, so only local accounts may change it here.
    pub async fn update_me(
        &self,
        caller: &Principal,
        full_name: Option<Option<String>>,
        preferences: Option<serde_json::Map<String, serde_json::Value>>,
    ) -> ServiceResult<User> {
        if full_name.is_some() && self.is_external() {
            return Err(ServiceError::Rejected {
                code: "managed_by_identity_provider",
                detail: "The full name is managed by the identity provider.".into(),
            });
        }
        if let Some(preferences) = &preferences
            && serde_json::Value::Object(preferences.clone()).to_string().len() > 16 * 1024
        {
            return Err(ValidationError::new("preferences", "must be at most 16 KiB of JSON").into());
        }
        let patch = UserPatch { full_name, preferences, ..UserPatch::default() };
        Ok(self.store.update_user(caller.user_id, patch, time::now()).await?)
    }

    pub async fn get_user(&self, id: UserId) -> ServiceResult<User> {
        Ok(self.store.get_user(id).await?)
    }

    /// Users matching `text`: from the provider's directory (copied into the store, so
    /// that every result has an Aether id one can share with) and from the store.
    pub async fn search(&self, text: &str, limit: u32) -> ServiceResult<Vec<User>> {
        let text = text.trim();
        if text.is_empty() || text.chars().count() > 100 {
            return Err(ValidationError::new("q", "must be 1 to 100 characters").into());
        }
        if text.chars().any(char::is_control) {
            return Err(ValidationError::new("q", "must not contain control characters").into());
        }
        if let IdentityProvider::External { directory, .. } = &self.provider {
            match directory.search_users(text, limit).await {
                Ok(found) => {
                    for user in found {
                        if let Err(error) = sync_with_retry(self.store.as_ref(), &self.reads, user).await {
                            tracing::warn!(%error, "could not copy a directory user");
                        }
                    }
                }
                // The local copy still answers when the directory is down.
                Err(error) => tracing::warn!(%error, "directory search failed; answering from the store"),
            }
        }
        Ok(self.store.search_users(text, limit).await?)
    }

    /// Copies the caller's profile from the provider's directory now.
    pub async fn sync_me(&self, caller: &Principal) -> ServiceResult<User> {
        let user = self.me(caller).await?;
        let (IdentityProvider::External { directory, .. }, Some(keycloak_id)) = (&self.provider, &user.keycloak_id)
        else {
            return Ok(user);
        };
        let external = directory.get_user(keycloak_id).await.map_err(provider_error)?.ok_or(ServiceError::NotFound)?;
        self.synced.invalidate(keycloak_id).await;
        sync_with_retry(self.store.as_ref(), &self.reads, external).await
    }

    /// Copies every user of the directory into the store (administrators only).
    pub async fn sync_all(&self, caller: &Principal) -> ServiceResult<u64> {
        require(caller, Capability::AdministerUsers)?;
        let IdentityProvider::External { directory, .. } = &self.provider else { return Ok(0) };
        let mut first = 0;
        let mut count = 0;
        loop {
            let page = directory.list_users(first, 100).await.map_err(provider_error)?;
            let len = u32::try_from(page.len()).unwrap_or(u32::MAX);
            for user in page {
                sync_with_retry(self.store.as_ref(), &self.reads, user).await?;
                count += 1;
            }
            if len < 100 {
                return Ok(count);
            }
            first += len;
        }
    }

    /// Every user, with their roles (administrators only).
    pub async fn admin_list(
        &self,
        caller: &Principal,
        page: aether_domain::page::PageRequest,
    ) -> ServiceResult<aether_domain::page::Page<User>> {
        require(caller, Capability::AdministerUsers)?;
        if page.after.is_none()
            && let IdentityProvider::External { directory, .. } = &self.provider
        {
            // Users who never signed in to Aether are still listed: copy the directory first.
            match directory.list_users(0, 1000).await {
                Ok(users) => {
                    for user in users {
                        sync_with_retry(self.store.as_ref(), &self.reads, user).await?;
                    }
                }
                Err(error) => tracing::warn!(%error, "directory listing failed; answering from the store"),
            }
        }
        Ok(self.store.list_users(page).await?)
    }

    /// Makes `roles` the user's realm roles, in the provider first (its tokens carry
    /// them) and then in the store, audited.
    pub async fn change_roles(&self, caller: &Principal, id: UserId, roles: Vec<Role>) -> ServiceResult<User> {
        require(caller, Capability::AdministerUsers)?;
        let before = self.store.get_user(id).await?;
        let directory = match &self.provider {
            IdentityProvider::External { directory, .. } => {
                let keycloak_id = before.keycloak_id.clone().ok_or(ServiceError::Rejected {
                    code: "not_a_directory_user",
                    detail: "This account is not managed by the identity provider.".into(),
                })?;
                // First, so that no token issued before the change can write the old
                // roles back while the change is under way.
                let now = time::now().timestamp().to_string();
                self.ephemeral
                    .put(&roles_changed_key(&keycloak_id), now.as_bytes(), self.settings.revocation_ttl)
                    .await?;
                Some((directory, keycloak_id))
            }
            IdentityProvider::Local => None,
        };
        let role_names = |roles: &[Role]| roles.iter().map(|r| r.as_str()).collect::<Vec<_>>();
        let mut details = serde_json::Map::new();
        details.insert("before".into(), role_names(&before.roles).into());
        details.insert("after".into(), role_names(&roles).into());
        let record =
            audit_record("roles_changed", "user", id.to_string(), Some(caller.user_id), details, &caller.client);
        // The store first: it refuses to demote the last administrator, atomically.
        let user = self.store.change_user_roles(id, roles.clone(), record).await.map_err(|error| match error {
            StoreError::Conflict(rule) if rule == aether_domain::identity::LAST_ADMINISTRATOR => {
                ServiceError::Rejected {
                    code: aether_domain::identity::LAST_ADMINISTRATOR,
                    detail: "This is the last active administrator: make someone else an administrator first.".into(),
                }
            }
            other => other.into(),
        })?;
        self.reads.user_changed(id).await;
        if let Some((directory, keycloak_id)) = directory {
            if let Err(error) = directory.set_realm_roles(&keycloak_id, &roles).await {
                // The provider's tokens carry its roles: put the store back in step with it.
                let mut details = serde_json::Map::new();
                details.insert("after".into(), role_names(&before.roles).into());
                details.insert("reason".into(), "the identity provider refused the change".into());
                let undo = audit_record(
                    "roles_change_reverted",
                    "user",
                    id.to_string(),
                    Some(caller.user_id),
                    details,
                    &caller.client,
                );
                if let Err(undo_error) = self.store.change_user_roles(id, before.roles.clone(), undo).await {
                    tracing::error!(error = %undo_error, user_id = %id, "could not revert a role change");
                }
                self.reads.user_changed(id).await;
                return Err(provider_error(error));
            }
            self.synced.invalidate(&keycloak_id).await;
        }
        Ok(user)
    }

    // -----------------------------------------------------------------------------------------
    // API keys
    // -----------------------------------------------------------------------------------------

    /// Creates a key for the caller. A key never grants more than its creator has: an
    /// `admin` key needs an administrator, a `write` key a writer. Keys cannot create keys.
    pub async fn create_api_key(
        &self,
        caller: &Principal,
        name: ApiKeyName,
        scopes: Vec<ApiKeyScope>,
        expires_at: Option<Timestamp>,
    ) -> ServiceResult<CreatedApiKey> {
        if matches!(caller.credential, Credential::ApiKey { .. }) {
            return Err(ServiceError::Forbidden("API keys cannot create API keys"));
        }
        if scopes.is_empty() {
            return Err(ValidationError::new("scopes", "must name at least one of read, write, admin").into());
        }
        for scope in &scopes {
            let needed = match scope {
                ApiKeyScope::Read => Capability::Read,
                ApiKeyScope::Write => Capability::Write,
                ApiKeyScope::Admin => Capability::AdministerUsers,
            };
            if !caller.can(needed) {
                return Err(ServiceError::Forbidden("a key cannot have a scope its creator lacks"));
            }
        }
        let now = time::now();
        if expires_at.is_some_and(|at| at <= now) {
            return Err(ValidationError::new("expires_at", "must be in the future").into());
        }
        let mut scopes = scopes;
        scopes.sort();
        scopes.dedup();
        let id = ApiKeyId::new();
        let secret = format!("{API_KEY_PREFIX}{}", random_token(32));
        let prefix: String = secret.chars().take(API_KEY_PREFIX.len() + 8).collect();
        let key = NewApiKey {
            id,
            user_id: caller.user_id,
            name,
            prefix,
            secret_hash: digest(&secret),
            scopes: scopes.clone(),
            created_at: now,
            expires_at,
        };
        let mut details = serde_json::Map::new();
        details.insert("scopes".into(), scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().into());
        let record =
            audit_record("api_key_created", "api_key", id.to_string(), Some(caller.user_id), details, &caller.client);
        let key = self.store.create_api_key(key, record).await?;
        Ok(CreatedApiKey { key, secret })
    }

    pub async fn list_api_keys(&self, caller: &Principal) -> ServiceResult<Vec<ApiKey>> {
        Ok(self.store.list_api_keys(caller.user_id).await?)
    }

    pub async fn revoke_api_key(&self, caller: &Principal, id: ApiKeyId) -> ServiceResult<ApiKey> {
        let record = audit_record(
            "api_key_revoked",
            "api_key",
            id.to_string(),
            Some(caller.user_id),
            serde_json::Map::new(),
            &caller.client,
        );
        Ok(self.store.revoke_api_key(caller.user_id, id, record).await?)
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
async fn sync_with_retry(store: &dyn Store, reads: &CachedReads, user: ExternalUser) -> ServiceResult<User> {
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
