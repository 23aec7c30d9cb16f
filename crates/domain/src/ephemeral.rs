//! The port for short-lived shared state.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

use crate::StoreError;
use crate::time::Timestamp;

/// Short-lived state that must be shared by every replica and survive a restart but
/// not forever: browser sessions, pending logins (OIDC `state` and PKCE verifier),
/// revoked token sessions. Redis in production, the store in the embedded default.
/// Every entry has a time to live; an expired entry reads as absent.
#[async_trait]
pub trait EphemeralStore: Send + Sync + fmt::Debug {
    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError>;
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Reads and deletes atomically: of concurrent callers, at most one gets the value.
    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// Deletes expired entries; a no-op where the backend expires them itself.
    async fn purge_expired(&self, now: Timestamp) -> Result<u64, StoreError>;
}
