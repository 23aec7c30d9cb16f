//! The cryptography of the built-in identity provider.
//!
//! * [`Argon2Hasher`] hashes passwords with argon2id (PHC strings).
//! * [`LocalTokenCodec`] signs access tokens with an Ed25519 key (`EdDSA` JWTs) whose
//!   claims have Keycloak's shape, so clients and the API treat them like Keycloak's.
//!   The key is generated on first start and kept as a PKCS#8 PEM file in the data
//!   directory, so tokens stay valid across restarts.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use aether_domain::auth::PasswordHasher;
use aether_domain::id::UserId;
use aether_domain::time::Timestamp;
use aether_domain::token::{AccessClaims, AccessTokenCodec, RealmAccess, TokenError};
use aether_domain::token::{TokenSubject, TokenVerifier, VerifiedToken};
use aether_domain::user::{Role, User, Username};
use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, spki::der::pem::LineEnding};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};

/// argon2id with the crate's defaults (OWASP's recommended 19 MiB, 2 passes).
#[derive(Debug, Default, Clone)]
pub struct Argon2Hasher;

impl PasswordHasher for Argon2Hasher {
    fn hash(&self, password: &str) -> Result<String, String> {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|hash| hash.to_string())
            .map_err(|error| error.to_string())
    }

    fn verify(&self, password: &str, stored_hash: &str) -> bool {
        match PasswordHash::new(stored_hash) {
            Ok(parsed) => Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(),
            Err(_) => false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read or write the signing key at {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("the signing key at {path} is not an Ed25519 PKCS#8 PEM key")]
    Malformed { path: PathBuf },
}

/// Settings of the local token issuer.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// `iss`: the public base URL of this server's realm, e.g. `http://127.0.0.1:8080/realms/aether`.
    pub issuer: String,
    /// `aud` and `azp`: the client the tokens are for.
    pub audience: String,
    /// Access token lifetime in seconds.
    pub access_token_ttl_secs: u64,
}

/// Signs and verifies local access tokens.
pub struct LocalTokenCodec {
    settings: TokenSettings,
    encoding: EncodingKey,
    decoding: DecodingKey,
    key_id: String,
    public_key_x: String,
}

impl std::fmt::Debug for LocalTokenCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalTokenCodec")
            .field("settings", &self.settings)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl LocalTokenCodec {
    /// Loads the key at `path`, generating it (mode 0600) when the file does not exist.
    pub fn load_or_generate(path: &Path, settings: TokenSettings) -> Result<Self, KeyError> {
        let io = |source| KeyError::Io { path: path.to_owned(), source };
        let signing_key = match fs::read_to_string(path) {
            Ok(pem) => SigningKey::from_pkcs8_pem(&pem).map_err(|_| KeyError::Malformed { path: path.to_owned() })?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let key = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
                let pem =
                    key.to_pkcs8_pem(LineEnding::LF).map_err(|_| KeyError::Malformed { path: path.to_owned() })?;
                if let Some(parent) = path.parent() {
                    fs::create_dir_all(parent).map_err(io)?;
                }
                write_private_file(path, pem.as_bytes()).map_err(io)?;
                tracing::info!(path = %path.display(), "generated a new token signing key");
                key
            }
            Err(error) => return Err(io(error)),
        };
        Ok(Self::from_signing_key(&signing_key, settings))
    }

    fn from_signing_key(signing_key: &SigningKey, settings: TokenSettings) -> Self {
        let der = signing_key.to_pkcs8_der().map(|doc| doc.as_bytes().to_vec()).unwrap_or_default();
        let public_key_x = URL_SAFE_NO_PAD.encode(signing_key.verifying_key().as_bytes());
        // The key id is a short digest of the public key, as a JWKS consumer expects.
        let key_id = public_key_x.chars().take(16).collect();
        Self {
            encoding: EncodingKey::from_ed_der(&der),
            decoding: DecodingKey::from_ed_der(signing_key.verifying_key().as_bytes()),
            settings,
            key_id,
            public_key_x,
        }
    }

    /// The public key as a JWK (`OKP`, `Ed25519`), for a JWKS endpoint.
    pub fn public_jwk(&self) -> serde_json::Value {
        serde_json::json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "alg": "EdDSA",
            "use": "sig",
            "kid": self.key_id,
            "x": self.public_key_x,
        })
    }

    pub fn settings(&self) -> &TokenSettings {
        &self.settings
    }

    /// Signs arbitrary claims with this key; used to issue tokens and, in tests, to
    /// build tokens with chosen expiry.
    pub fn sign(&self, claims: &AccessClaims) -> Result<String, TokenError> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.key_id.clone());
        header.typ = Some("JWT".into());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(|error| TokenError::Invalid(error.to_string()))
    }

    /// The claims this issuer puts in an access token for `user` at `now`.
    pub fn claims_for(&self, user: &User, session_id: &str, now: Timestamp) -> AccessClaims {
        let iat = now.timestamp();
        AccessClaims {
            iss: self.settings.issuer.clone(),
            sub: user.id.to_string(),
            aud: self.settings.audience.clone(),
            azp: self.settings.audience.clone(),
            exp: iat + i64::try_from(self.settings.access_token_ttl_secs).unwrap_or(i64::MAX / 2),
            iat,
            nbf: Some(iat),
            jti: uuid::Uuid::now_v7().to_string(),
            typ: "Bearer".into(),
            preferred_username: user.username.as_str().to_owned(),
            email: user.email.as_ref().map(|email| email.as_str().to_owned()),
            name: user.full_name.clone(),
            realm_access: RealmAccess { roles: user.roles.iter().map(|role| role.as_str().to_owned()).collect() },
            sid: Some(session_id.to_owned()),
        }
    }
}

fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// How far the clocks of replicas may disagree when checking `nbf` and `iat`.
const CLOCK_SKEW_SECS: i64 = 30;

impl AccessTokenCodec for LocalTokenCodec {
    fn issue(&self, user: &User, session_id: &str, now: Timestamp) -> Result<(String, u64), TokenError> {
        let token = self.sign(&self.claims_for(user, session_id, now))?;
        Ok((token, self.settings.access_token_ttl_secs))
    }

    fn verify(&self, token: &str, now: Timestamp) -> Result<VerifiedToken, TokenError> {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[self.settings.issuer.as_str()]);
        validation.set_audience(&[self.settings.audience.as_str()]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        // Expiry, nbf and iat are checked below against the caller's clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        let data = jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &validation)
            .map_err(|error| TokenError::Invalid(error.to_string()))?;
        let claims = data.claims;
        if claims.exp <= now.timestamp() {
            return Err(TokenError::Expired);
        }
        // A token that is not valid yet, or claims to be issued in the future, was not
        // issued by this server's clock (replicas may disagree by `CLOCK_SKEW_SECS`).
        let latest = now.timestamp() + CLOCK_SKEW_SECS;
        if claims.nbf.is_some_and(|nbf| nbf > latest) {
            return Err(TokenError::Invalid("the token is not valid yet (nbf)".into()));
        }
        if claims.iat > latest {
            return Err(TokenError::Invalid("the token was issued in the future (iat)".into()));
        }
        let user_id = UserId::parse(&claims.sub).map_err(|_| TokenError::Invalid("sub is not a user id".into()))?;
        let username = Username::parse(&claims.preferred_username)
            .map_err(|_| TokenError::Invalid("preferred_username is malformed".into()))?;
        // Roles this server does not know are ignored rather than rejected, as Keycloak
        // realms commonly carry extra roles (offline_access, uma_authorization …).
        let roles = claims.realm_access.roles.iter().filter_map(|name| name.parse::<Role>().ok()).collect();
        let at = |seconds: i64| chrono::DateTime::from_timestamp(seconds, 0).unwrap_or(now);
        Ok(VerifiedToken {
            subject: TokenSubject::Local(user_id),
            username,
            email: claims.email.as_deref().and_then(|email| aether_domain::user::Email::parse(email).ok()),
            full_name: claims.name,
            roles,
            groups: Vec::new(),
            session_id: claims.sid,
            client_id: claims.azp,
            issued_at: at(claims.iat),
            expires_at: at(claims.exp),
            auth_time: None,
        })
    }
}

#[async_trait::async_trait]
impl TokenVerifier for LocalTokenCodec {
    async fn verify(&self, token: &str) -> Result<VerifiedToken, TokenError> {
        AccessTokenCodec::verify(self, token, aether_domain::time::now())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use aether_domain::time;
    use aether_domain::user::UserStatus;
    use chrono::TimeDelta;

    fn settings() -> TokenSettings {
        TokenSettings {
            issuer: "http://localhost/realms/aether".into(),
            audience: "aether-api".into(),
            access_token_ttl_secs: 300,
        }
    }

    fn user() -> User {
        User {
            id: UserId::new(),
            keycloak_id: None,
            username: Username::parse("alice").unwrap(),
            email: None,
            full_name: Some("Alice".into()),
            avatar_url: None,
            roles: vec![Role::User],
            groups: Vec::new(),
            attributes: serde_json::Map::new(),
            preferences: serde_json::Map::new(),
            status: UserStatus::Active,
            created_at: time::now(),
            updated_at: time::now(),
            last_login_at: None,
            last_sync_at: None,
        }
    }

    #[test]
    fn hashes_verify_only_their_password() {
        let hasher = Argon2Hasher;
        let hash = hasher.hash("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(hasher.verify("correct horse", &hash));
        assert!(!hasher.verify("wrong horse", &hash));
        assert!(!hasher.verify("correct horse", "not a hash"));
    }

    #[test]
    fn key_persists_and_tokens_survive_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/token-signing.pem");
        let codec = LocalTokenCodec::load_or_generate(&path, settings()).unwrap();
        let alice = user();
        let (token, ttl) = codec.issue(&alice, "s1", time::now()).unwrap();
        assert_eq!(ttl, 300);
        let reloaded = LocalTokenCodec::load_or_generate(&path, settings()).unwrap();
        let principal = AccessTokenCodec::verify(&reloaded, &token, time::now()).unwrap();
        assert_eq!(principal.subject, TokenSubject::Local(alice.id));
        assert_eq!(principal.session_id.as_deref(), Some("s1"));
        assert_eq!(principal.roles, vec![Role::User]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }

    #[test]
    fn expired_foreign_and_garbage_tokens_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let codec = LocalTokenCodec::load_or_generate(&dir.path().join("k.pem"), settings()).unwrap();
        let (token, _) = codec.issue(&user(), "s1", time::now()).unwrap();
        assert_eq!(
            AccessTokenCodec::verify(&codec, &token, time::now() + TimeDelta::seconds(301)),
            Err(TokenError::Expired)
        );
        assert!(matches!(AccessTokenCodec::verify(&codec, "garbage", time::now()), Err(TokenError::Invalid(_))));
        let other = LocalTokenCodec::load_or_generate(&dir.path().join("other.pem"), settings()).unwrap();
        assert!(matches!(AccessTokenCodec::verify(&other, &token, time::now()), Err(TokenError::Invalid(_))));
        let mut wrong_issuer = settings();
        wrong_issuer.issuer = "http://elsewhere".into();
        let elsewhere = LocalTokenCodec::load_or_generate(&dir.path().join("k.pem"), wrong_issuer).unwrap();
        assert!(matches!(AccessTokenCodec::verify(&elsewhere, &token, time::now()), Err(TokenError::Invalid(_))));
    }

    #[test]
    fn tokens_from_the_future_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let codec = LocalTokenCodec::load_or_generate(&dir.path().join("k.pem"), settings()).unwrap();
        let now = time::now();
        let in_an_hour = now.timestamp() + 3600;
        let mut not_yet = codec.claims_for(&user(), "s1", now);
        not_yet.nbf = Some(in_an_hour);
        let token = codec.sign(&not_yet).unwrap();
        assert!(matches!(AccessTokenCodec::verify(&codec, &token, now), Err(TokenError::Invalid(_))));
        let mut future = codec.claims_for(&user(), "s1", now);
        future.iat = in_an_hour;
        future.exp = in_an_hour + 300;
        let token = codec.sign(&future).unwrap();
        assert!(matches!(AccessTokenCodec::verify(&codec, &token, now), Err(TokenError::Invalid(_))));
        // Within the tolerated skew, and without nbf (older tokens), a token is accepted.
        let mut skewed = codec.claims_for(&user(), "s1", now);
        skewed.iat = now.timestamp() + 10;
        skewed.nbf = None;
        let token = codec.sign(&skewed).unwrap();
        assert!(AccessTokenCodec::verify(&codec, &token, now).is_ok());
    }

    #[test]
    fn claims_have_keycloak_shape() {
        let dir = tempfile::tempdir().unwrap();
        let codec = LocalTokenCodec::load_or_generate(&dir.path().join("k.pem"), settings()).unwrap();
        let (token, _) = codec.issue(&user(), "s1", time::now()).unwrap();
        let payload = token.split('.').nth(1).unwrap();
        let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        for key in ["sub", "preferred_username", "name", "iss", "aud", "exp", "iat"] {
            assert!(claims.get(key).is_some(), "missing {key}");
        }
        assert_eq!(claims["realm_access"]["roles"], serde_json::json!(["aether-user"]));
    }
}
