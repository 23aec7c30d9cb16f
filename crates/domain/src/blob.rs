//! Object storage: blobs (avatars today, documents next) under validated keys, on
//! the local filesystem in the embedded shape and on S3-compatible storage in
//! production. The graph stores keys, never bytes.

use std::fmt;
use std::ops::Range;

use async_trait::async_trait;
use bytes::Bytes;
use futures_core::stream::BoxStream;

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

/// A blob being written chunk by chunk, for bodies too large to hold in memory.
/// Nothing is visible under the key until `finish` succeeds.
#[async_trait]
pub trait BlobWriter: Send {
    async fn write(&mut self, chunk: Bytes) -> Result<(), BlobError>;
    async fn finish(self: Box<Self>) -> Result<(), BlobError>;
    /// Discards what was written; the key keeps its previous blob, if any.
    async fn abort(self: Box<Self>) -> Result<(), BlobError>;
}

/// Part (or all) of a stored blob, as a stream of chunks.
pub struct BlobRead {
    /// The whole blob's size.
    pub size: u64,
    /// The byte range the stream carries (`start..end`, end exclusive).
    pub range: Range<u64>,
    pub stream: BoxStream<'static, Result<Bytes, BlobError>>,
}

impl fmt::Debug for BlobRead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobRead").field("size", &self.size).field("range", &self.range).finish_non_exhaustive()
    }
}

/// Stores and reads blobs. Writes are atomic: a reader sees the old or the new
/// bytes, never a mix, and a crash mid-write leaves the old blob.
#[async_trait]
pub trait BlobStore: Send + Sync + fmt::Debug {
    async fn put(&self, key: &BlobKey, bytes: Vec<u8>) -> Result<(), BlobError>;
    async fn get(&self, key: &BlobKey) -> Result<Vec<u8>, BlobError>;
    /// Starts a streamed write to `key`.
    async fn writer(&self, key: &BlobKey) -> Result<Box<dyn BlobWriter>, BlobError>;
    /// Streams the blob, or the `range` of it (end exclusive, clamped to the size).
    async fn read(&self, key: &BlobKey, range: Option<Range<u64>>) -> Result<BlobRead, BlobError>;
    /// A URL that lets anyone holding it GET the blob directly from the backend until
    /// `expires_in` passes, answered with `content_disposition`; `None` when the
    /// backend cannot presign (the filesystem), so the server signs its own URL.
    async fn presigned_get(
        &self,
        key: &BlobKey,
        expires_in: std::time::Duration,
        content_disposition: &str,
    ) -> Result<Option<String>, BlobError>;
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
