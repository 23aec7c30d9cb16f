//! The browser login (authorization code flow with PKCE), refresh and logout.

use super::*;

impl IdentityService {
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
            TokenSubject::Local(id) => self.store.users.get_user(*id).await?,
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

    pub(super) async fn session(&self, session_id: &str) -> ServiceResult<Option<BrowserSession>> {
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
            self.recent.session_revoked(session).await;
        }
        // Sockets opened with this login close now, not at their next re-check.
        self.credentials_changed(caller.user_id);
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
}
