//! Cached hot reads: the user behind a credential and the ancestor chain behind a
//! permission check, read on every authenticated request and every notebook
//! request. [`CachedReads`] reads through a [`ReadCache`] (Redis shared by the
//! replicas, or [`InProcessReadCache`] in the embedded shape) and invalidates it
//! after every change that can outdate an entry, by the generation scheme described
//! in [`aether_domain::cache`].
//!
//! The cache is never needed: when it fails (Redis down), reads go to the store,
//! and the failure is counted as `aether_dependency_errors_total{dependency="cache"}`.
//! A bump that fails during a write leaves older entries in place for at most the
//! cache's time to live, which is why that time is short.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aether_domain::StoreError;
use aether_domain::access::ChainLink;
use aether_domain::cache::{CacheLookup, CacheScope, ReadCache};
use aether_domain::id::{NotebookId, UserId};
use aether_domain::store::Store;
use aether_domain::user::{Role, User, UserStatus, Username};
use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// What authentication needs of a user: who it is, what its roles are, and whether
/// it may act at all. Only this is cached, not the whole profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserSummary {
    pub id: UserId,
    pub username: Username,
    pub roles: Vec<Role>,
    pub status: UserStatus,
}

impl From<User> for UserSummary {
    fn from(user: User) -> Self {
        Self { id: user.id, username: user.username, roles: user.roles, status: user.status }
    }
}

/// The store's hot reads through a cache, and the invalidations that keep it true.
/// Without a cache every read goes to the store and invalidations do nothing.
#[derive(Clone)]
pub struct CachedReads {
    store: Arc<dyn Store>,
    cache: Option<Arc<dyn ReadCache>>,
}

impl std::fmt::Debug for CachedReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedReads").field("cache", &self.cache).finish_non_exhaustive()
    }
}

/// Counts one cache failure: the read or write it belonged to goes on without the cache.
fn cache_failed(scope: &CacheScope, what: &'static str, error: &StoreError) {
    metrics::counter!("aether_dependency_errors_total", "dependency" => "cache").increment(1);
    tracing::warn!(%error, namespace = scope.namespace(), what, "read cache unavailable; bypassing it");
}

impl CachedReads {
    pub fn new(store: Arc<dyn Store>, cache: Option<Arc<dyn ReadCache>>) -> Self {
        Self { store, cache }
    }

    /// Reads through no cache at all.
    pub fn uncached(store: Arc<dyn Store>) -> Self {
        Self { store, cache: None }
    }

    /// The user with `id`, as authentication needs it. `NotFound` when it is deleted.
    pub async fn user(&self, id: UserId) -> Result<UserSummary, StoreError> {
        let store = Arc::clone(&self.store);
        self.read_through(
            &CacheScope::user(id),
            "user",
            async move { Ok(UserSummary::from(store.get_user(id).await?)) },
        )
        .await
    }

    /// The notebook's ancestor chain with `user`'s grants, as
    /// [`aether_domain::store::NotebookStore::access_chain`] reports it.
    pub async fn access_chain(&self, user: UserId, notebook: NotebookId) -> Result<Vec<ChainLink>, StoreError> {
        let store = Arc::clone(&self.store);
        let key = format!("{user}:{notebook}");
        self.read_through(&CacheScope::access(), &key, async move { store.access_chain(user, notebook).await }).await
    }

    /// Call after a change to the user's record has committed.
    pub async fn user_changed(&self, id: UserId) {
        self.invalidate(&CacheScope::user(id)).await;
    }

    /// Call after any change that can alter a cached chain has committed: a notebook
    /// moved, deleted or restored, its visibility changed, a collaboration granted,
    /// changed, revoked, replaced by an invitation or answered. Creating a notebook
    /// needs none: no chain of a notebook that did not exist can have been cached
    /// (failed reads are not cached). Role changes need none either: chains hold no
    /// roles, and the user's own entry is invalidated.
    pub async fn access_changed(&self) {
        self.invalidate(&CacheScope::access()).await;
    }

    async fn invalidate(&self, scope: &CacheScope) {
        let Some(cache) = &self.cache else { return };
        let (cache, scope) = (Arc::clone(cache), scope.clone());
        // A task of its own, so that a request cancelled now (its client went away,
        // its timeout struck) still completes the invalidation of what it committed.
        let task = tokio::spawn(async move {
            if let Err(error) = cache.invalidate(&scope).await {
                // The change itself has committed and stands. Entries of older
                // generations stay readable until they expire (the cache's TTL).
                cache_failed(&scope, "invalidate", &error);
            }
        });
        if let Err(error) = task.await {
            tracing::warn!(%error, "read cache invalidation task failed");
        }
    }

    async fn read_through<T, F>(&self, scope: &CacheScope, key: &str, read: F) -> Result<T, StoreError>
    where
        T: Serialize + DeserializeOwned,
        F: Future<Output = Result<T, StoreError>>,
    {
        let Some(cache) = &self.cache else { return read.await };
        let namespace = scope.namespace();
        let generation = match cache.get(scope, key).await {
            Ok(CacheLookup { generation, value: Some(bytes) }) => match serde_json::from_slice(&bytes) {
                Ok(value) => {
                    metrics::counter!("aether_cache_requests_total", "namespace" => namespace, "outcome" => "hit")
                        .increment(1);
                    return Ok(value);
                }
                Err(error) => {
                    // An entry of another release's shape: read the store and replace it.
                    tracing::debug!(%error, namespace, "unreadable cache entry");
                    Some(generation)
                }
            },
            Ok(CacheLookup { generation, value: None }) => Some(generation),
            Err(error) => {
                metrics::counter!("aether_cache_requests_total", "namespace" => namespace, "outcome" => "error")
                    .increment(1);
                cache_failed(scope, "get", &error);
                None
            }
        };
        let value = read.await?;
        if let Some(generation) = generation {
            metrics::counter!("aether_cache_requests_total", "namespace" => namespace, "outcome" => "miss")
                .increment(1);
            match serde_json::to_vec(&value) {
                Ok(bytes) => {
                    if let Err(error) = cache.put(scope, generation, key, &bytes).await {
                        cache_failed(scope, "put", &error);
                    }
                }
                Err(error) => tracing::warn!(%error, namespace, "could not encode a cache entry"),
            }
        }
        Ok(value)
    }
}

/// The embedded shape's read cache: entries and generations in this process's
/// memory. Correct for one process serving requests (the embedded SQLite shape);
/// replicas need the shared Redis cache, or none.
#[derive(Debug)]
pub struct InProcessReadCache {
    ttl: Duration,
    max_entries: usize,
    state: std::sync::Mutex<InProcessState>,
}

#[derive(Debug, Default)]
struct InProcessState {
    generations: HashMap<String, u64>,
    entries: HashMap<(String, String), InProcessEntry>,
}

#[derive(Debug)]
struct InProcessEntry {
    generation: u64,
    value: Vec<u8>,
    expires_at: Instant,
}

impl InProcessReadCache {
    /// Entries live for `ttl`; at most `max_entries` are kept.
    pub fn new(ttl: Duration, max_entries: usize) -> Self {
        Self { ttl, max_entries, state: std::sync::Mutex::new(InProcessState::default()) }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, InProcessState> {
        // A panic while the lock was held leaves nothing half-written that matters:
        // every operation is one map update.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl ReadCache for InProcessReadCache {
    async fn get(&self, scope: &CacheScope, key: &str) -> Result<CacheLookup, StoreError> {
        let state = self.state();
        let generation = state.generations.get(scope.name()).copied().unwrap_or(0);
        let value = state
            .entries
            .get(&(scope.name().to_owned(), key.to_owned()))
            .filter(|entry| entry.generation == generation && entry.expires_at > Instant::now())
            .map(|entry| entry.value.clone());
        Ok(CacheLookup { generation, value })
    }

    async fn put(&self, scope: &CacheScope, generation: u64, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let mut state = self.state();
        if state.generations.get(scope.name()).copied().unwrap_or(0) != generation {
            // The scope was invalidated after this value was read: it may be stale.
            return Ok(());
        }
        let now = Instant::now();
        let slot = (scope.name().to_owned(), key.to_owned());
        if state.entries.len() >= self.max_entries && !state.entries.contains_key(&slot) {
            let InProcessState { generations, entries } = &mut *state;
            entries.retain(|(scope, _), entry| {
                entry.expires_at > now && generations.get(scope).copied().unwrap_or(0) == entry.generation
            });
            if entries.len() >= self.max_entries {
                // Full of live entries: this read simply goes uncached.
                return Ok(());
            }
        }
        state.entries.insert(slot, InProcessEntry { generation, value: value.to_vec(), expires_at: now + self.ttl });
        Ok(())
    }

    async fn invalidate(&self, scope: &CacheScope) -> Result<(), StoreError> {
        let mut state = self.state();
        *state.generations.entry(scope.name().to_owned()).or_insert(0) += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn entries_are_read_back_until_their_scope_is_invalidated() {
        let cache = InProcessReadCache::new(Duration::from_secs(60), 100);
        let scope = CacheScope::access();
        let miss = cache.get(&scope, "k").await.unwrap();
        assert_eq!(miss, CacheLookup { generation: 0, value: None });
        cache.put(&scope, miss.generation, "k", b"one").await.unwrap();
        assert_eq!(cache.get(&scope, "k").await.unwrap().value.as_deref(), Some(&b"one"[..]));

        cache.invalidate(&scope).await.unwrap();
        let after = cache.get(&scope, "k").await.unwrap();
        assert_eq!(after, CacheLookup { generation: 1, value: None }, "a new generation hides older entries");

        // Scopes are independent: one user's change leaves another's entry alone.
        let (alice, bob) = (CacheScope::user(UserId::new()), CacheScope::user(UserId::new()));
        cache.put(&alice, 0, "user", b"alice").await.unwrap();
        cache.put(&bob, 0, "user", b"bob").await.unwrap();
        cache.invalidate(&alice).await.unwrap();
        assert_eq!(cache.get(&alice, "user").await.unwrap().value, None);
        assert_eq!(cache.get(&bob, "user").await.unwrap().value.as_deref(), Some(&b"bob"[..]));
    }

    #[tokio::test]
    async fn a_value_read_before_an_invalidation_is_never_served_after_it() {
        let cache = InProcessReadCache::new(Duration::from_secs(60), 100);
        let scope = CacheScope::access();
        // A reader misses and goes to the store…
        let seen = cache.get(&scope, "k").await.unwrap();
        // …a writer commits and invalidates meanwhile…
        cache.invalidate(&scope).await.unwrap();
        // …and the reader's late put of what it read before the commit is dropped.
        cache.put(&scope, seen.generation, "k", b"stale").await.unwrap();
        let now = cache.get(&scope, "k").await.unwrap();
        assert_eq!(now, CacheLookup { generation: 1, value: None });
        cache.put(&scope, now.generation, "k", b"fresh").await.unwrap();
        assert_eq!(cache.get(&scope, "k").await.unwrap().value.as_deref(), Some(&b"fresh"[..]));
    }

    #[tokio::test]
    async fn entries_expire_and_memory_stays_bounded() {
        let cache = InProcessReadCache::new(Duration::from_millis(100), 2);
        let scope = CacheScope::access();
        cache.put(&scope, 0, "a", b"a").await.unwrap();
        cache.put(&scope, 0, "b", b"b").await.unwrap();
        cache.put(&scope, 0, "c", b"c").await.unwrap();
        assert_eq!(cache.get(&scope, "c").await.unwrap().value, None, "full of live entries: not kept");
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(cache.get(&scope, "a").await.unwrap().value, None, "expired");
        cache.put(&scope, 0, "c", b"c").await.unwrap();
        assert_eq!(cache.get(&scope, "c").await.unwrap().value.as_deref(), Some(&b"c"[..]), "expired ones swept");
        assert!(cache.state().entries.len() <= 2);
    }
}
