//! Users as the caller sees them: their own profile, search, synchronisation on
//! demand, role administration and personal API keys.

use super::*;

impl IdentityService {
    pub async fn me(&self, caller: &Principal) -> ServiceResult<User> {
        self.store.users.get_user(caller.user_id).await.map_err(account_gone)
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
        Ok(self.store.users.update_user(caller.user_id, patch, time::now()).await?)
    }

    pub async fn get_user(&self, id: UserId) -> ServiceResult<User> {
        Ok(self.store.users.get_user(id).await?)
    }

    /// Users matching `text`: from the provider's directory (copied into the store, so
    /// that every result has an Aether id one can share with) and from the store.
    pub async fn search(&self, text: &str, limit: u32) -> ServiceResult<Vec<User>> {
        // Control characters are refused anywhere, surrounding white space included
        // (the OpenAPI pattern says so: a leading newline is not trimmed away).
        if text.chars().any(char::is_control) {
            return Err(ValidationError::new("q", "must not contain control characters").into());
        }
        let text = text.trim();
        if text.is_empty() || text.chars().count() > 100 {
            return Err(ValidationError::new("q", "must be 1 to 100 characters").into());
        }
        if let IdentityProvider::External { directory, .. } = &self.provider {
            match directory.search_users(text, limit).await {
                Ok(found) => {
                    for user in found {
                        if let Err(error) = sync_with_retry(self.store.users.as_ref(), &self.reads, user).await {
                            tracing::warn!(%error, "could not copy a directory user");
                        }
                    }
                }
                // The local copy still answers when the directory is down.
                Err(error) => tracing::warn!(%error, "directory search failed; answering from the store"),
            }
        }
        Ok(self.store.users.search_users(text, limit).await?)
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
        sync_with_retry(self.store.users.as_ref(), &self.reads, external).await
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
                sync_with_retry(self.store.users.as_ref(), &self.reads, user).await?;
                count += 1;
            }
            if len < 100 {
                return Ok(count);
            }
            first += len;
        }
    }

    /// Every user, with their roles (administrators only).
    pub async fn admin_list(&self, caller: &Principal, page: PageRequest) -> ServiceResult<Page<User>> {
        require(caller, Capability::AdministerUsers)?;
        if page.after.is_none()
            && let IdentityProvider::External { directory, .. } = &self.provider
        {
            // Users who never signed in to Aether are still listed: copy the directory first.
            match directory.list_users(0, 1000).await {
                Ok(users) => {
                    for user in users {
                        sync_with_retry(self.store.users.as_ref(), &self.reads, user).await?;
                    }
                }
                Err(error) => tracing::warn!(%error, "directory listing failed; answering from the store"),
            }
        }
        Ok(self.store.users.list_users(page).await?)
    }

    /// Makes `roles` the user's realm roles, in the provider first (its tokens carry
    /// them) and then in the store, audited.
    pub async fn change_roles(&self, caller: &Principal, id: UserId, roles: Vec<Role>) -> ServiceResult<User> {
        require(caller, Capability::AdministerUsers)?;
        let before = self.store.users.get_user(id).await?;
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
                self.recent.roles_changed(&keycloak_id).await;
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
        let user =
            self.store.users.change_user_roles(id, roles.clone(), record).await.map_err(|error| match error {
                StoreError::Conflict(rule) if rule == aether_domain::capability::LAST_ADMINISTRATOR => {
                    ServiceError::Rejected {
                        code: aether_domain::capability::LAST_ADMINISTRATOR,
                        detail: "This is the last active administrator: make someone else an administrator first."
                            .into(),
                    }
                }
                other => other.into(),
            })?;
        self.reads.user_changed(id).await;
        self.credentials_changed(id);
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
                if let Err(undo_error) = self.store.users.change_user_roles(id, before.roles.clone(), undo).await {
                    tracing::error!(error = %undo_error, user_id = %id, "could not revert a role change");
                }
                self.reads.user_changed(id).await;
                self.credentials_changed(id);
                self.credentials_changed(id);
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
        let key = self.store.api_keys.create_api_key(key, record).await?;
        Ok(CreatedApiKey { key, secret })
    }

    /// The caller's keys, revoked ones included, newest first.
    pub async fn list_api_keys(&self, caller: &Principal, page: PageRequest) -> ServiceResult<Page<ApiKey>> {
        Ok(self.store.api_keys.list_api_keys(caller.user_id, page).await?)
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
        let key = self.store.api_keys.revoke_api_key(caller.user_id, id, record).await?;
        self.credentials_changed(caller.user_id);
        Ok(key)
    }
}
