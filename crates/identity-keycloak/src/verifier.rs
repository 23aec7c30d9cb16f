//! Access token verification against the realm's cached JSON Web Key Set.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use aether_domain::token::TokenError;
use aether_domain::token::{TokenSubject, TokenVerifier, VerifiedToken};
use aether_domain::user::{Email, Role, Username};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use jsonwebtoken::jwk::{JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::RwLock;

use crate::Discovery;

/// Signature algorithms accepted from the provider. Never `none` (jsonwebtoken cannot
/// even express it) and never the HMAC family, which would let anyone holding the
/// public key sign tokens.
const ALLOWED: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

struct CachedKey {
    key: DecodingKey,
    /// The algorithm the key set declares for the key, when it declares one.
    algorithm: Option<Algorithm>,
}

#[derive(Default)]
struct KeyCache {
    keys: HashMap<String, Arc<CachedKey>>,
    fetched_at: Option<Instant>,
}

/// Verifies the realm's access tokens without calling Keycloak per request.
#[derive(Clone)]
pub struct OidcVerifier {
    discovery: Arc<Discovery>,
    cache: Arc<RwLock<KeyCache>>,
}

impl std::fmt::Debug for OidcVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcVerifier").field("issuer", &self.discovery.config.issuer_url).finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct RealmAccess {
    #[serde(default)]
    roles: Vec<String>,
}

/// The claims Aether reads from a Keycloak access token.
#[derive(Deserialize)]
struct Claims {
    sub: String,
    exp: i64,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default)]
    auth_time: Option<i64>,
    #[serde(default)]
    aud: Option<Audience>,
    #[serde(default)]
    azp: Option<String>,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    sid: Option<String>,
    #[serde(default)]
    preferred_username: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    realm_access: Option<RealmAccess>,
    #[serde(default)]
    groups: Vec<String>,
}

fn invalid(reason: impl Into<String>) -> TokenError {
    TokenError::Invalid(reason.into())
}

fn timestamp(seconds: i64) -> Result<DateTime<Utc>, TokenError> {
    DateTime::from_timestamp(seconds, 0).ok_or_else(|| invalid("timestamp out of range"))
}

fn algorithm_of(jwk_algorithm: KeyAlgorithm) -> Option<Algorithm> {
    match jwk_algorithm {
        KeyAlgorithm::RS256 => Some(Algorithm::RS256),
        KeyAlgorithm::RS384 => Some(Algorithm::RS384),
        KeyAlgorithm::RS512 => Some(Algorithm::RS512),
        KeyAlgorithm::PS256 => Some(Algorithm::PS256),
        KeyAlgorithm::PS384 => Some(Algorithm::PS384),
        KeyAlgorithm::PS512 => Some(Algorithm::PS512),
        KeyAlgorithm::ES256 => Some(Algorithm::ES256),
        KeyAlgorithm::ES384 => Some(Algorithm::ES384),
        KeyAlgorithm::EdDSA => Some(Algorithm::EdDSA),
        _ => None,
    }
}

impl OidcVerifier {
    pub(crate) fn new(discovery: Arc<Discovery>) -> Self {
        Self { discovery, cache: Arc::default() }
    }

    /// The key named `kid`, fetching the key set again when it is unknown and the
    /// last fetch is older than the minimum interval (so a flood of tokens with made-up
    /// key ids cannot turn into a flood of requests to Keycloak).
    async fn key(&self, kid: &str) -> Result<Arc<CachedKey>, TokenError> {
        {
            let cache = self.cache.read().await;
            if let Some(key) = cache.keys.get(kid) {
                return Ok(Arc::clone(key));
            }
            if cache.fetched_at.is_some_and(|at| at.elapsed() < self.discovery.config.jwks_min_refresh) {
                return Err(invalid("unknown signing key"));
            }
        }
        let mut cache = self.cache.write().await;
        // Another request may have refreshed while this one waited for the lock.
        if let Some(key) = cache.keys.get(kid) {
            return Ok(Arc::clone(key));
        }
        if cache.fetched_at.is_some_and(|at| at.elapsed() < self.discovery.config.jwks_min_refresh) {
            return Err(invalid("unknown signing key"));
        }
        let metadata = self.discovery.metadata().await.map_err(|error| TokenError::Unavailable(error.to_string()))?;
        let set: JwkSet = self
            .discovery
            .get_json(&metadata.jwks_uri)
            .await
            .map_err(|error| TokenError::Unavailable(error.to_string()))?;
        cache.fetched_at = Some(Instant::now());
        cache.keys = set
            .keys
            .iter()
            .filter(|jwk| !matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)))
            .filter_map(|jwk| {
                let kid = jwk.common.key_id.clone()?;
                let key = DecodingKey::from_jwk(jwk).ok()?;
                let algorithm = jwk.common.key_algorithm.and_then(algorithm_of);
                Some((kid, Arc::new(CachedKey { key, algorithm })))
            })
            .collect();
        tracing::info!(keys = cache.keys.len(), "fetched the identity provider's signing keys");
        cache.keys.get(kid).cloned().ok_or_else(|| invalid("unknown signing key"))
    }
}

#[async_trait]
impl TokenVerifier for OidcVerifier {
    async fn verify(&self, token: &str) -> Result<VerifiedToken, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid("malformed token"))?;
        if !ALLOWED.contains(&header.alg) {
            return Err(invalid(format!("algorithm {:?} is not accepted", header.alg)));
        }
        let kid = header.kid.ok_or_else(|| invalid("token names no key"))?;
        let key = self.key(&kid).await?;
        if key.algorithm.is_some_and(|algorithm| algorithm != header.alg) {
            return Err(invalid("token algorithm does not match its key"));
        }
        let metadata = self.discovery.metadata().await.map_err(|error| TokenError::Unavailable(error.to_string()))?;
        let config = &self.discovery.config;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[metadata.issuer.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.leeway = config.leeway.as_secs();
        validation.validate_nbf = true;
        // The audience rule is Keycloak's: `aud` contains us, or we are the authorised party.
        validation.validate_aud = false;
        let data =
            jsonwebtoken::decode::<Claims>(token, &key.key, &validation).map_err(|error| match error.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => invalid(error.to_string()),
            })?;
        let claims = data.claims;
        let audience_ok = match &claims.aud {
            Some(Audience::One(aud)) => aud == &config.audience,
            Some(Audience::Many(auds)) => auds.iter().any(|aud| aud == &config.audience),
            None => false,
        } || claims.azp.as_deref() == Some(config.audience.as_str());
        if !audience_ok {
            return Err(invalid("token is not meant for this service"));
        }
        // ID and refresh tokens are signed by the same key; only access tokens are accepted.
        if claims.typ.as_deref().is_some_and(|typ| !typ.eq_ignore_ascii_case("bearer")) {
            return Err(invalid("not an access token"));
        }
        let username = claims.preferred_username.as_deref().unwrap_or(&claims.sub);
        let username = Username::parse(username).map_err(|_| invalid("preferred_username is malformed"))?;
        let roles: Vec<Role> = claims
            .realm_access
            .map(|access| access.roles.iter().filter_map(|name| name.parse().ok()).collect())
            .unwrap_or_default();
        Ok(VerifiedToken {
            subject: TokenSubject::External(claims.sub),
            username,
            // A malformed e-mail is dropped rather than failing the whole request.
            email: claims.email.as_deref().and_then(|email| Email::parse(email).ok()),
            full_name: claims.name.filter(|name| !name.trim().is_empty()),
            roles,
            groups: claims.groups.into_iter().map(|group| group.trim_start_matches('/').to_owned()).collect(),
            session_id: claims.sid,
            client_id: claims.azp.unwrap_or_default(),
            issued_at: timestamp(claims.iat.unwrap_or(claims.exp))?,
            expires_at: timestamp(claims.exp)?,
            auth_time: claims.auth_time.map(timestamp).transpose()?,
        })
    }
}
