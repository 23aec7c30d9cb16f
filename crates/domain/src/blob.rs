//! Object storage: blobs (avatars today, documents next) under validated keys, on
//! the local filesystem in the embedded shape and on S3-compatible storage in
//! production. The graph stores keys, never bytes.

use std::fmt;

use async_trait::async_trait;

use crate::ValidationError;

/// Where a blob lives: `/`-separated segments of letters, digits, `.`, `_` and `-`,
/// none of them `.` or `..`, so a key can never leave its store's root.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BlobKey(String);

impl BlobKey {
    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        let valid_segment = |segment: &str| {
            !segment.is_empty()
                && segment != "."
                && segment != ".."
                && segment.len() <= 200
                && segment.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        };
        if text.len() > 1024 || !text.split('/').all(valid_segment) {
            return Err(ValidationError::new(
                "key",
                "must be '/'-separated segments of letters, digits, '.', '_', '-'",
            ));
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BlobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlobError {
    #[error("no such blob")]
    NotFound,
    #[error("blob store unavailable: {0}")]
    Unavailable(String),
    #[error("blob store failure: {0}")]
    Internal(String),
}

/// Stores and reads whole blobs. Writes are atomic: a reader sees the old or the new
/// bytes, never a mix, and a crash mid-write leaves the old blob.
#[async_trait]
pub trait BlobStore: Send + Sync + fmt::Debug {
    async fn put(&self, key: &BlobKey, bytes: Vec<u8>) -> Result<(), BlobError>;
    async fn get(&self, key: &BlobKey) -> Result<Vec<u8>, BlobError>;
    /// Deleting a missing blob succeeds.
    async fn delete(&self, key: &BlobKey) -> Result<(), BlobError>;
    /// `fs` or `s3`, for logs and `/ready`.
    fn backend_name(&self) -> &'static str;
    /// Answers when the store can serve requests.
    async fn ping(&self) -> Result<(), BlobError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cannot_escape() {
        assert!(BlobKey::parse("avatars/0192-abc.png").is_ok());
        for bad in ["", "/abs", "a//b", "../x", "a/../b", "a/./b", "a b", "a\\b", "trailing/"] {
            assert!(BlobKey::parse(bad).is_err(), "{bad}");
        }
    }
}
