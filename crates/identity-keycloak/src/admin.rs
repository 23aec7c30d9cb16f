//! Keycloak's Admin REST API, called with the backend's service account (the client
//! credentials grant of its confidential client). The service account needs the
//! `realm-management` roles `view-users`, `query-users`, `manage-users` and `view-realm`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aether_domain::identity::{ExternalUser, IdentityDirectory, IdentityProviderError};
use aether_domain::user::{Email, Role, Username};
use async_trait::async_trait;
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::{Discovery, unavailable};

#[derive(Debug)]
pub(crate) struct AdminApi {
    discovery: Arc<Discovery>,
    /// `https://host/admin/realms/<realm>`.
    base: String,
    token: Mutex<Option<(String, Instant)>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserRepresentation {
    id: String,
    username: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    last_name: Option<String>,
    #[serde(default)]
    attributes: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Deserialize, serde::Serialize, Clone)]
struct RoleRepresentation {
    id: String,
    name: String,
}

#[derive(Deserialize)]
struct GroupRepresentation {
    name: String,
}

impl AdminApi {
    pub(crate) fn new(discovery: Arc<Discovery>) -> Result<Self, IdentityProviderError> {
        let issuer = discovery.config.issuer_url.trim_end_matches('/');
        let (host, realm) = issuer
            .rsplit_once("/realms/")
            .ok_or_else(|| IdentityProviderError::Unavailable("issuer URL has no /realms/<realm>".into()))?;
        let base = format!("{host}/admin/realms/{realm}");
        Ok(Self { discovery, base, token: Mutex::new(None) })
    }

    /// The service account's access token, reused until shortly before it expires.
    async fn token(&self) -> Result<String, IdentityProviderError> {
        let mut cached = self.token.lock().await;
        if let Some((token, valid_until)) = cached.as_ref()
            && Instant::now() < *valid_until
        {
            return Ok(token.clone());
        }
        let tokens = self.discovery.token_request(&[("grant_type", "client_credentials")]).await?;
        let lifetime = Duration::from_secs(tokens.expires_in.saturating_sub(30).max(5));
        *cached = Some((tokens.access_token.clone(), Instant::now() + lifetime));
        Ok(tokens.access_token)
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, IdentityProviderError> {
        let token = self.token().await?;
        let response = request.bearer_auth(token).send().await.map_err(unavailable)?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(IdentityProviderError::Refused("not found".into()));
        }
        if status == reqwest::StatusCode::UNAUTHORIZED {
            // The cached token was revoked or the realm keys rotated: fetch a new one next time.
            *self.token.lock().await = None;
        }
        if !status.is_success() {
            return Err(IdentityProviderError::Unavailable(format!("admin API answered {status}")));
        }
        Ok(response)
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, IdentityProviderError> {
        let request = self.discovery.http.get(format!("{}{path}", self.base)).query(query);
        self.send(request).await?.json().await.map_err(unavailable)
    }

    /// A user with their effective realm roles and groups.
    async fn external(&self, user: UserRepresentation) -> Result<ExternalUser, IdentityProviderError> {
        let roles: Vec<RoleRepresentation> =
            self.get(&format!("/users/{}/role-mappings/realm/composite", user.id), &[]).await?;
        let groups: Vec<GroupRepresentation> = self.get(&format!("/users/{}/groups", user.id), &[]).await?;
        let full_name = [user.first_name.as_deref(), user.last_name.as_deref()]
            .into_iter()
            .flatten()
            .filter(|part| !part.trim().is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        Ok(ExternalUser {
            username: Username::parse(&user.username)
                .map_err(|_| IdentityProviderError::Refused(format!("username '{}' is not usable", user.username)))?,
            keycloak_id: user.id,
            email: user.email.as_deref().and_then(|email| Email::parse(email).ok()),
            full_name: (!full_name.is_empty()).then_some(full_name),
            roles: roles.iter().filter_map(|role| role.name.parse::<Role>().ok()).collect(),
            groups: groups.into_iter().map(|group| group.name).collect(),
            attributes: user.attributes.unwrap_or_default(),
            logged_in_at: None,
        })
    }

    async fn externals(&self, users: Vec<UserRepresentation>) -> Result<Vec<ExternalUser>, IdentityProviderError> {
        let mut result = Vec::with_capacity(users.len());
        for user in users {
            match self.external(user).await {
                Ok(user) => result.push(user),
                // One user Aether cannot represent does not hide the others.
                Err(IdentityProviderError::Refused(reason)) => tracing::warn!(%reason, "skipped a directory user"),
                Err(error) => return Err(error),
            }
        }
        Ok(result)
    }
}

#[async_trait]
impl IdentityDirectory for AdminApi {
    async fn search_users(&self, search: &str, max: u32) -> Result<Vec<ExternalUser>, IdentityProviderError> {
        let users: Vec<UserRepresentation> =
            self.get("/users", &[("search", search.to_owned()), ("max", max.to_string())]).await?;
        self.externals(users).await
    }

    async fn list_users(&self, first: u32, max: u32) -> Result<Vec<ExternalUser>, IdentityProviderError> {
        let users: Vec<UserRepresentation> =
            self.get("/users", &[("first", first.to_string()), ("max", max.to_string())]).await?;
        self.externals(users).await
    }

    async fn get_user(&self, keycloak_id: &str) -> Result<Option<ExternalUser>, IdentityProviderError> {
        match self.get::<UserRepresentation>(&format!("/users/{keycloak_id}"), &[]).await {
            Ok(user) => self.external(user).await.map(Some),
            Err(IdentityProviderError::Refused(_)) => Ok(None),
            Err(error) => Err(error),
        }
    }

    async fn set_realm_roles(&self, keycloak_id: &str, roles: &[Role]) -> Result<(), IdentityProviderError> {
        let path = format!("/users/{keycloak_id}/role-mappings/realm");
        let current: Vec<RoleRepresentation> = self.get(&path, &[]).await?;
        let current_aether: Vec<RoleRepresentation> =
            current.into_iter().filter(|role| role.name.parse::<Role>().is_ok()).collect();
        let to_remove: Vec<RoleRepresentation> = current_aether
            .iter()
            .filter(|role| !roles.iter().any(|wanted| wanted.as_str() == role.name))
            .cloned()
            .collect();
        let mut to_add = Vec::new();
        for wanted in roles {
            if !current_aether.iter().any(|role| role.name == wanted.as_str()) {
                let role: RoleRepresentation = self.get(&format!("/roles/{}", wanted.as_str()), &[]).await?;
                to_add.push(role);
            }
        }
        let url = format!("{}{path}", self.base);
        if !to_add.is_empty() {
            self.send(self.discovery.http.post(&url).json(&to_add)).await?;
        }
        if !to_remove.is_empty() {
            self.send(self.discovery.http.delete(&url).json(&to_remove)).await?;
        }
        tracing::info!(
            user = keycloak_id,
            added = to_add.len(),
            removed = to_remove.len(),
            "changed realm roles in Keycloak"
        );
        Ok(())
    }
}
