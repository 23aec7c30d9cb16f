//! Keycloak as Aether's identity provider, through standard OpenID Connect and
//! Keycloak's Admin REST API.
//!
//! - [`OidcVerifier`] checks access tokens locally: the provider's metadata is
//!   discovered once, its JSON Web Key Set is cached and fetched again only when a
//!   token names an unknown key (at most once per `jwks_min_refresh`), so no request
//!   costs a call to Keycloak.
//! - [`KeycloakClient`] runs the authorization code flow with PKCE for browsers, the
//!   refresh and logout calls, and the admin calls (users, realm roles) with the
//!   backend's own service account (client credentials).
#![forbid(unsafe_code)]

mod admin;
mod verifier;

use std::sync::Arc;
use std::time::Duration;

use aether_domain::identity::{IdentityProviderError, OidcClient, ProviderTokens};
use async_trait::async_trait;
use serde::Deserialize;
use tokio::sync::OnceCell;

pub use verifier::OidcVerifier;

/// How to reach a Keycloak realm.
#[derive(Clone)]
pub struct KeycloakConfig {
    /// The realm's issuer URL, e.g. `https://sso.example.com/realms/aether`.
    pub issuer_url: String,
    /// The backend's confidential client.
    pub client_id: String,
    pub client_secret: String,
    /// The audience access tokens must be meant for (`aud` or `azp`); usually `client_id`.
    pub audience: String,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway: Duration,
    /// The shortest interval between two fetches of the key set.
    pub jwks_min_refresh: Duration,
    pub http_timeout: Duration,
}

impl std::fmt::Debug for KeycloakConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeycloakConfig")
            .field("issuer_url", &self.issuer_url)
            .field("client_id", &self.client_id)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

/// The parts of the provider's discovery document Aether uses.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ProviderMetadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    #[serde(default)]
    pub end_session_endpoint: Option<String>,
}

/// Discovery, shared by the verifier and the client: fetched on first use, kept for
/// the life of the process.
#[derive(Debug)]
pub(crate) struct Discovery {
    config: KeycloakConfig,
    http: reqwest::Client,
    metadata: OnceCell<ProviderMetadata>,
}

impl Discovery {
    pub(crate) fn new(config: KeycloakConfig, http: reqwest::ClientBuilder) -> Result<Self, IdentityProviderError> {
        let http = http
            .timeout(config.http_timeout)
            .connect_timeout(config.http_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| IdentityProviderError::Unavailable(error.to_string()))?;
        Ok(Self { config, http, metadata: OnceCell::new() })
    }

    pub(crate) async fn metadata(&self) -> Result<&ProviderMetadata, IdentityProviderError> {
        self.metadata
            .get_or_try_init(|| async {
                let issuer = self.config.issuer_url.trim_end_matches('/');
                let url = format!("{issuer}/.well-known/openid-configuration");
                let metadata: ProviderMetadata = self.get_json(&url).await?;
                // OpenID Connect Discovery §4.3: the issuer must be exactly the one asked for.
                if metadata.issuer.trim_end_matches('/') != issuer {
                    return Err(IdentityProviderError::Unavailable(format!(
                        "discovery names issuer {} instead of {issuer}",
                        metadata.issuer
                    )));
                }
                tracing::info!(issuer, "discovered the identity provider");
                Ok(metadata)
            })
            .await
    }

    pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, IdentityProviderError> {
        let response = self.http.get(url).send().await.map_err(unavailable)?;
        if !response.status().is_success() {
            return Err(IdentityProviderError::Unavailable(format!("{url} answered {}", response.status())));
        }
        response.json().await.map_err(unavailable)
    }

    /// POSTs a form to the token endpoint (or another endpoint) with the client's credentials.
    async fn post_client_form(
        &self,
        url: &str,
        form: &[(&str, &str)],
    ) -> Result<reqwest::Response, IdentityProviderError> {
        let mut fields: Vec<(&str, &str)> =
            vec![("client_id", self.config.client_id.as_str()), ("client_secret", self.config.client_secret.as_str())];
        fields.extend_from_slice(form);
        self.http.post(url).form(&fields).send().await.map_err(unavailable)
    }

    async fn token_request(&self, form: &[(&str, &str)]) -> Result<ProviderTokens, IdentityProviderError> {
        let endpoint = self.metadata().await?.token_endpoint.clone();
        let response = self.post_client_form(&endpoint, form).await?;
        let status = response.status();
        if status.is_client_error() {
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            let error = body.get("error").and_then(|v| v.as_str()).unwrap_or("invalid_request");
            return Err(IdentityProviderError::Refused(error.to_owned()));
        }
        if !status.is_success() {
            return Err(IdentityProviderError::Unavailable(format!("token endpoint answered {status}")));
        }
        let body: TokenResponse = response.json().await.map_err(unavailable)?;
        Ok(ProviderTokens {
            access_token: body.access_token,
            expires_in: body.expires_in,
            refresh_token: body.refresh_token,
            refresh_expires_in: body.refresh_expires_in,
            id_token: body.id_token,
        })
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: u64,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    refresh_expires_in: Option<u64>,
    #[serde(default)]
    id_token: Option<String>,
}

pub(crate) fn unavailable(error: impl std::fmt::Display) -> IdentityProviderError {
    IdentityProviderError::Unavailable(error.to_string())
}

/// The browser flow and the admin API of one Keycloak realm.
#[derive(Debug, Clone)]
pub struct KeycloakClient {
    discovery: Arc<Discovery>,
    admin: Arc<admin::AdminApi>,
}

/// Builds the verifier and the client of one realm, sharing discovery.
pub fn connect(
    config: KeycloakConfig,
    http: reqwest::ClientBuilder,
) -> Result<(OidcVerifier, KeycloakClient), IdentityProviderError> {
    let discovery = Arc::new(Discovery::new(config, http)?);
    let verifier = OidcVerifier::new(Arc::clone(&discovery));
    let admin = Arc::new(admin::AdminApi::new(Arc::clone(&discovery))?);
    Ok((verifier, KeycloakClient { discovery, admin }))
}

impl KeycloakClient {
    /// Fetches the discovery document now, so that a misconfiguration shows at start.
    pub async fn discover(&self) -> Result<(), IdentityProviderError> {
        self.discovery.metadata().await.map(|_| ())
    }

    /// Answers when the realm's discovery document can be fetched.
    pub async fn ping(&self) -> Result<(), IdentityProviderError> {
        let issuer = self.discovery.config.issuer_url.trim_end_matches('/');
        self.discovery
            .get_json::<serde_json::Value>(&format!("{issuer}/.well-known/openid-configuration"))
            .await
            .map(|_| ())
    }

    pub fn directory(&self) -> Arc<dyn aether_domain::identity::IdentityDirectory> {
        Arc::clone(&self.admin) as Arc<dyn aether_domain::identity::IdentityDirectory>
    }
}

#[async_trait]
impl OidcClient for KeycloakClient {
    async fn authorization_url(
        &self,
        redirect_uri: &str,
        state: &str,
        code_challenge: &str,
        nonce: &str,
    ) -> Result<String, IdentityProviderError> {
        let endpoint = &self.discovery.metadata().await?.authorization_endpoint;
        let mut url = url::Url::parse(endpoint).map_err(unavailable)?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.discovery.config.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", "openid profile email")
            .append_pair("state", state)
            .append_pair("nonce", nonce)
            .append_pair("code_challenge", code_challenge)
            .append_pair("code_challenge_method", "S256");
        Ok(url.into())
    }

    async fn exchange_code(
        &self,
        code: &str,
        code_verifier: &str,
        redirect_uri: &str,
    ) -> Result<ProviderTokens, IdentityProviderError> {
        self.discovery
            .token_request(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("code_verifier", code_verifier),
                ("redirect_uri", redirect_uri),
            ])
            .await
    }

    async fn refresh(&self, refresh_token: &str) -> Result<ProviderTokens, IdentityProviderError> {
        self.discovery.token_request(&[("grant_type", "refresh_token"), ("refresh_token", refresh_token)]).await
    }

    async fn end_session(&self, refresh_token: &str) -> Result<(), IdentityProviderError> {
        let Some(endpoint) = self.discovery.metadata().await?.end_session_endpoint.clone() else {
            return Ok(());
        };
        let response = self.discovery.post_client_form(&endpoint, &[("refresh_token", refresh_token)]).await?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else if status.is_client_error() {
            // An expired or already ended session: there is nothing left to end.
            Err(IdentityProviderError::Refused(format!("end-session answered {status}")))
        } else {
            Err(IdentityProviderError::Unavailable(format!("end-session answered {status}")))
        }
    }

    async fn end_session_url(
        &self,
        id_token_hint: Option<&str>,
        post_logout_redirect_uri: Option<&str>,
    ) -> Result<Option<String>, IdentityProviderError> {
        let Some(endpoint) = self.discovery.metadata().await?.end_session_endpoint.clone() else {
            return Ok(None);
        };
        let mut url = url::Url::parse(&endpoint).map_err(unavailable)?;
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("client_id", &self.discovery.config.client_id);
            if let Some(hint) = id_token_hint {
                query.append_pair("id_token_hint", hint);
            }
            if let Some(redirect) = post_logout_redirect_uri {
                query.append_pair("post_logout_redirect_uri", redirect);
            }
        }
        Ok(Some(url.into()))
    }
}
