//! Download URLs that need no credentials: presigned by object storage where it can,
//! otherwise signed by this server (HMAC-SHA256) and served at
//! `/api/v1/storage/signed`.

use std::ops::Range;
use std::time::Duration;

use aether_domain::auth::Principal;
use aether_domain::blob::BlobKey;
use aether_domain::document::{Filename, content_disposition};
use aether_domain::id::DocumentId;
use aether_domain::time::{self, Timestamp};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::reads::{Download, Variant};
use super::{DocumentService, rejected};
use crate::avatars::blob_error;
use crate::error::{ServiceError, ServiceResult};

/// A URL that downloads a file without credentials until `expires_at`.
#[derive(Debug, Clone, Serialize)]
pub struct SignedUrl {
    pub url: String,
    pub expires_at: Timestamp,
    /// `storage` (presigned by S3) or `server` (signed by this server).
    pub signed_by: &'static str,
}

/// The longest a signed URL may live (S3's own limit for presigned URLs).
pub const MAX_URL_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// What a server-signed download URL carries.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct UrlToken {
    #[serde(rename = "k")]
    pub(super) key: String,
    #[serde(rename = "e")]
    pub(super) expires: i64,
    #[serde(rename = "f")]
    pub(super) filename: String,
    #[serde(rename = "t")]
    pub(super) content_type: String,
}

/// Signs download tokens: `base64url(json).base64url(HMAC-SHA256(json))`.
#[derive(Debug, Clone)]
pub struct UrlSigner {
    secret: Vec<u8>,
}

impl UrlSigner {
    pub fn new(secret: Vec<u8>) -> Self {
        Self { secret }
    }

    fn mac(&self, payload: &[u8]) -> Vec<u8> {
        use hmac::Mac as _;
        hmac_sha256(&self.secret, &[payload]).finalize().into_bytes().to_vec()
    }

    pub(super) fn sign(&self, token: &UrlToken) -> String {
        use base64::Engine as _;
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let payload = serde_json::to_vec(token).unwrap_or_default();
        format!("{}.{}", engine.encode(&payload), engine.encode(self.mac(&payload)))
    }

    fn verify(&self, text: &str) -> Option<UrlToken> {
        use base64::Engine as _;
        use hmac::Mac as _;
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let (payload, signature) = text.split_once('.')?;
        let payload = engine.decode(payload).ok()?;
        let signature = engine.decode(signature).ok()?;
        // Constant-time comparison.
        hmac_sha256(&self.secret, &[&payload]).verify_slice(&signature).ok()?;
        let token: UrlToken = serde_json::from_slice(&payload).ok()?;
        (token.expires > time::now().timestamp()).then_some(token)
    }
}

impl DocumentService {
    /// A URL that downloads the file without credentials until it expires:
    /// presigned by S3 itself, or signed by this server (HMAC-SHA256) for the
    /// filesystem store and served at `/api/v1/storage/signed`.
    pub async fn signed_url(
        &self,
        caller: &Principal,
        id: DocumentId,
        version: Option<u32>,
        variant: Variant,
        expires_in: Duration,
    ) -> ServiceResult<SignedUrl> {
        if expires_in.is_zero() || expires_in > MAX_URL_LIFETIME {
            return Err(rejected("invalid_expiry", "expires_in must be between 1 second and 7 days."));
        }
        let file = self.resolve(caller, id, version, variant).await?;
        let expires_at = time::after(time::now(), expires_in);
        let disposition = content_disposition(file.filename.as_str());
        let presigned = self.blobs.presigned_get(&file.key, expires_in, &disposition).await.map_err(blob_error)?;
        let (url, signed_by) = match presigned {
            Some(url) => (url, "storage"),
            None => {
                let token = UrlToken {
                    key: file.key.as_str().to_owned(),
                    expires: expires_at.timestamp(),
                    filename: file.filename.as_str().to_owned(),
                    content_type: file.content_type.clone(),
                };
                (format!("/api/v1/storage/signed?token={}", self.url_signer.sign(&token)), "server")
            }
        };
        Ok(SignedUrl { url, expires_at, signed_by })
    }

    /// Opens the file a server-signed URL names, when its signature holds and it has
    /// not expired. No credentials: the token is the authorization.
    pub async fn open_signed(&self, token: &str, range: Option<Range<u64>>) -> ServiceResult<Download> {
        let token =
            self.url_signer.verify(token).ok_or(ServiceError::Forbidden("the link is invalid or has expired"))?;
        let key =
            BlobKey::parse(&token.key).map_err(|_| ServiceError::Forbidden("the link is invalid or has expired"))?;
        self.open(key, Filename::sanitize(&token.filename), token.content_type, range).await
    }
}

/// HMAC-SHA256 over the concatenated `parts`, ready to finalize or verify.
pub(super) fn hmac_sha256(secret: &[u8], parts: &[&[u8]]) -> hmac::Hmac<Sha256> {
    use hmac::Mac as _;
    let mut mac = <hmac::Hmac<Sha256> as hmac::Mac>::new_from_slice(secret).expect("HMAC takes keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac
}
