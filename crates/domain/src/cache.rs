//! The read cache port: hot reads (who a user is, the ancestor chain behind a
//! permission) kept for a short time, shared by every replica in production (Redis)
//! and in-process in the embedded shape.
//!
//! Invalidation works by **generations**. Every entry belongs to a [`CacheScope`],
//! and every scope has a generation counter. A reader asks for an entry and gets the
//! scope's current generation with it, in one step; on a miss it reads the store and
//! puts the value back *under the generation it saw before that read*. A writer
//! bumps the scope's generation *after* its change has committed. The put is
//! refused (or lands under a generation nobody reads any more) when a bump came in
//! between, so a value read before a commit is never served after that commit's
//! bump: a cached read is at most as stale as the writer's own bump is late.
//!
//! Entries expire after the cache's time to live, which also bounds how long a
//! failed bump (the cache was unreachable during the write) can leave a stale entry.

use std::fmt;

use async_trait::async_trait;

use crate::StoreError;
use crate::id::UserId;

/// A family of entries invalidated together, with one generation counter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheScope {
    namespace: &'static str,
    name: String,
}

impl CacheScope {
    /// One user's record. User changes only ever concern that user, so each user has
    /// a generation of its own: a profile synchronised from the identity provider
    /// does not flush everyone else's entries.
    pub fn user(id: UserId) -> Self {
        Self { namespace: "users", name: format!("users:{id}") }
    }

    /// Every cached ancestor chain. A move, a deletion or a change of visibility
    /// alters the chains of every user below the notebook, so one generation covers
    /// them all; permission changes are rare next to permission checks.
    pub fn access() -> Self {
        Self { namespace: "access", name: "access".to_owned() }
    }

    /// Every cached notebook. A notebook changes with its fields, its place in the
    /// tree, its status and its documents (counts and sizes), on paths spread over
    /// the notebook and document services and the job workers; one generation
    /// bumped by each of them keeps the rule simple, and a reader misses once per
    /// notebook after any change.
    pub fn notebooks() -> Self {
        Self { namespace: "notebooks", name: "notebooks".to_owned() }
    }

    /// Every cached search result (`CachedSearchStore`). A search sees notebooks,
    /// documents, their chunks and vectors, and permissions: every change to any of
    /// them bumps this one generation (through the `access` and `notebooks` bumps,
    /// and its own for document metadata, new notebooks and vectors).
    pub fn search() -> Self {
        Self { namespace: "search", name: "search".to_owned() }
    }

    /// The kind of entry (`users`, `access`, `notebooks`, `search`), for metrics.
    pub fn namespace(&self) -> &'static str {
        self.namespace
    }

    /// The scope's unique name, part of every key stored under it.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// What a lookup found: the scope's current generation, and the entry stored under
/// it, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheLookup {
    pub generation: u64,
    pub value: Option<Vec<u8>>,
}

#[async_trait]
pub trait ReadCache: Send + Sync + fmt::Debug {
    /// The entry `key` of `scope` under the scope's current generation, and that
    /// generation, read atomically together.
    async fn get(&self, scope: &CacheScope, key: &str) -> Result<CacheLookup, StoreError>;
    /// Stores `value` under `generation` (the one [`ReadCache::get`] answered before
    /// the store was read), for the cache's time to live. Does nothing when the scope
    /// has moved on to a newer generation meanwhile.
    async fn put(&self, scope: &CacheScope, generation: u64, key: &str, value: &[u8]) -> Result<(), StoreError>;
    /// Starts a new generation of `scope`: no entry stored before is read again.
    /// Call it after the change that outdates the entries has committed.
    async fn invalidate(&self, scope: &CacheScope) -> Result<(), StoreError>;
}
