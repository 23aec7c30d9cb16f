//! Authentication: bearer tokens, API keys and browser sessions, and the user
//! synchronisation from the provider that a token's first use brings.

use super::*;

impl IdentityService {
    /// The caller behind an `Authorization: Bearer` credential: a personal API key or
    /// an access token of the configured provider.
    pub async fn authenticate_bearer(&self, credential: &str, client: ClientInfo) -> ServiceResult<Principal> {
        let mut principal = if credential.starts_with(API_KEY_PREFIX) {
            self.authenticate_api_key(credential, &client).await?
        } else {
            let token = self.verify_token(credential).await?;
            let (session_id, expires_at) = (token.session_id.clone(), token.expires_at);
            let mut principal = self.principal_for_token(token).await?;
            principal.credential = Credential::AccessToken { session_id };
            principal.expires_at = Some(expires_at);
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
        if let Some(changed) = self.recent.roles_changed_at(keycloak_id).await {
            return Ok(changed);
        }
        let stored = self
            .ephemeral
            .get(&roles_changed_key(keycloak_id))
            .await
            .map_err(|error| TokenError::Unavailable(error.to_string()))?;
        let changed = stored.and_then(|bytes| String::from_utf8(bytes).ok()).and_then(|text| text.parse().ok());
        self.recent.remember_roles_changed_at(keycloak_id, changed).await;
        Ok(changed)
    }

    /// Creates or updates the store's user from an external token, at most once per
    /// sync interval while the claims stay the same. Concurrent first requests of a
    /// new user share one synchronisation.
    pub(super) async fn sync_from_token(
        &self,
        token: &VerifiedToken,
        logged_in_at: Option<Timestamp>,
    ) -> ServiceResult<User> {
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
        let store = Arc::clone(&self.store.users);
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
        let secret_hash = digest(secret);
        let key = self.store.api_keys.find_api_key(&secret_hash).await?;
        let Some(key) = key.filter(|key| key.is_active(now)) else {
            let resource = secret.chars().take(API_KEY_PREFIX.len() + 8).collect::<String>();
            let mut details = serde_json::Map::new();
            details.insert("method".into(), "api_key".into());
            let record = audit_record("authentication_failed", "api_key", resource, None, details, client);
            if let Err(error) = self.store.activity.record_audit(record).await {
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
            let store = Arc::clone(&self.store.api_keys);
            tokio::spawn(async move {
                if let Err(error) = store.touch_api_key(key.id, now).await {
                    tracing::warn!(%error, "could not record API key use");
                }
            });
        }
        let allowed = key.capabilities();
        let mut principal = Principal::new(user.id, user.username, user.roles);
        principal.capabilities.retain(|capability| allowed.contains(capability));
        principal.credential = Credential::ApiKey { id: key.id, secret_hash };
        principal.expires_at = key.expires_at;
        Ok(principal)
    }

    /// Verifies an access token and that its session has not been ended by a logout:
    /// the claims, or why not. `/auth/verify-token` answers with this too.
    pub async fn verify_token(&self, token: &str) -> Result<VerifiedToken, TokenError> {
        let verified = match self.recent.verified(token).await {
            Some(verified) => verified,
            None => {
                let verified = self.verifier.verify(token).await?;
                self.recent.remember_verified(token, &verified).await;
                verified
            }
        };
        if let Some(session) = &verified.session_id
            && !self.recent.session_live(session).await
        {
            let revoked = self
                .ephemeral
                .get(&revoked_key(session))
                .await
                .map_err(|e| TokenError::Unavailable(e.to_string()))?
                .is_some();
            if revoked {
                return Err(TokenError::Invalid("the session of this token has ended".into()));
            }
            self.recent.remember_session_live(session).await;
        }
        Ok(verified)
    }

    // -----------------------------------------------------------------------------------------
    // Browser login, refresh, logout
    // -----------------------------------------------------------------------------------------
}
