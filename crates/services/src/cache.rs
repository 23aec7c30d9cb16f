//! Cached hot reads: the user behind a credential and the ancestor chain behind a
//! permission check, read on every authenticated request and every notebook
//! request, and the notebook itself, read by every `GET /notebooks/{id}`. [`CachedReads`] reads through a [`ReadCache`] (Redis shared by the
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
use std::time::Duration;

use aether_domain::StoreError;
use aether_domain::access::ChainLink;
use aether_domain::cache::{CacheLookup, CacheScope, ReadCache};
use aether_domain::id::{NotebookId, UserId};
use aether_domain::notebook::Notebook;
use aether_domain::user::{Role, User, UserStatus, Username};
use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::ports::ReadPorts;

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
    store: ReadPorts,
    cache: Option<Arc<dyn ReadCache>>,
    /// Counts this process's permission changes, for live views (sockets) that must
    /// re-check their caller's access when one happens.
    access_changes: Arc<tokio::sync::watch::Sender<u64>>,
    /// The `search` generation this process saw last, and when it first saw it:
    /// results are stored only once a generation has settled ([`Self::search_result`]).
    search_generation: Arc<std::sync::Mutex<Option<(u64, std::time::Instant)>>>,
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
    pub fn new(store: ReadPorts, cache: Option<Arc<dyn ReadCache>>) -> Self {
        Self {
            store,
            cache,
            access_changes: Arc::new(tokio::sync::watch::channel(0).0),
            search_generation: Arc::new(std::sync::Mutex::new(None)),
        }
    }

    /// Reads through no cache at all.
    pub fn uncached(store: ReadPorts) -> Self {
        Self::new(store, None)
    }

    /// Changes whenever a permission changed in this process (see
    /// [`Self::access_changed`]); other replicas' changes are not announced.
    pub fn watch_access(&self) -> tokio::sync::watch::Receiver<u64> {
        self.access_changes.subscribe()
    }

    /// The user with `id`, as authentication needs it. `NotFound` when it is deleted.
    pub async fn user(&self, id: UserId) -> Result<UserSummary, StoreError> {
        let store = Arc::clone(&self.store.users);
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
        let store = Arc::clone(&self.store.notebooks);
        let key = format!("{user}:{notebook}");
        self.read_through(&CacheScope::access(), &key, async move { store.access_chain(user, notebook).await }).await
    }

    /// The chain as [`Self::access_chain`]; on a miss `read` fetches it together with
    /// something else in the same round trip, answered as `Some` (on a hit: `None`,
    /// fetch that separately).
    pub async fn access_chain_with<T, F>(
        &self,
        user: UserId,
        notebook: NotebookId,
        read: F,
    ) -> Result<(Vec<ChainLink>, Option<T>), StoreError>
    where
        F: Future<Output = Result<(Vec<ChainLink>, T), StoreError>>,
    {
        let key = format!("{user}:{notebook}");
        self.read_through_with(&CacheScope::access(), &key, read).await
    }

    /// The live notebook `id` (deleted ones are `NotFound`, and not cached). Callers
    /// check the caller's access first: the entry is the same for every reader.
    pub async fn notebook(&self, id: NotebookId) -> Result<Notebook, StoreError> {
        let store = Arc::clone(&self.store.notebooks);
        self.read_through(&CacheScope::notebooks(), &id.to_string(), async move { store.get_notebook(id).await }).await
    }

    /// Call after any change to a notebook has committed: its fields, tags, parent,
    /// status (and its descendants' when cascading), or its documents' counts and
    /// sizes. Creating one needs none (a missing notebook is never cached).
    pub async fn notebooks_changed(&self) {
        self.invalidate(&CacheScope::notebooks()).await;
        self.invalidate(&CacheScope::search()).await;
    }

    /// Call after a change that search sees and no other bump covers has committed:
    /// a notebook created, a document's name, description or tags changed, chunks
    /// rewritten or given vectors.
    pub async fn search_content_changed(&self) {
        self.invalidate(&CacheScope::search()).await;
    }

    /// A search result through the cache, under the `search` generation. On a miss,
    /// `read` answers and its result is stored only when this process has seen the
    /// current generation for at least `settle`: a store whose index takes a commit
    /// up moments later (Neo4j's Lucene indexes) would otherwise have a result read
    /// before the index caught up kept for the cache's whole time to live. `key`
    /// must name everything the result depends on, the caller's read scope included.
    pub async fn search_result<T, F>(&self, key: &str, settle: Duration, read: F) -> Result<T, StoreError>
    where
        T: Serialize + DeserializeOwned,
        F: Future<Output = Result<T, StoreError>>,
    {
        let read = async move { Ok((read.await?, ())) };
        let settled = |generation: u64| {
            let mut seen = self.search_generation.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match *seen {
                Some((known, since)) if known == generation => since.elapsed() >= settle,
                _ => {
                    *seen = Some((generation, std::time::Instant::now()));
                    settle.is_zero()
                }
            }
        };
        Ok(self.read_through_when(&CacheScope::search(), key, read, settled).await?.0)
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
        self.invalidate(&CacheScope::search()).await;
        self.access_changes.send_modify(|changes| *changes = changes.wrapping_add(1));
    }

    /// Passes permission changes made by other replicas to this process's watchers
    /// ([`Self::watch_access`]): every `interval` it reads the `access` generation of
    /// the shared cache and wakes them when it moved. One cache read per process and
    /// interval, instead of every socket re-checking its permission on a timer. Only
    /// meaningful with a cache shared by the replicas (Redis). Runs until `shutdown`.
    pub async fn follow_access_changes_elsewhere(
        &self,
        interval: Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let Some(cache) = &self.cache else { return };
        let scope = CacheScope::access();
        let mut last_seen = None;
        let mut first = true;
        loop {
            // The first look at once, so that a change right after start is not taken
            // for the starting point.
            if !std::mem::take(&mut first) {
                tokio::select! {
                    () = tokio::time::sleep(interval) => {}
                    _ = shutdown.wait_for(|stop| *stop) => return,
                }
            }
            // The key names no entry: only the generation answered with it counts.
            match cache.get(&scope, "generation-watch").await {
                Ok(lookup) => {
                    if last_seen.is_some_and(|seen| seen != lookup.generation) {
                        self.access_changes.send_modify(|changes| *changes = changes.wrapping_add(1));
                    }
                    last_seen = Some(lookup.generation);
                }
                // Counted; not logged every interval while Redis is away.
                Err(error) => {
                    metrics::counter!("aether_dependency_errors_total", "dependency" => "cache").increment(1);
                    tracing::debug!(%error, "cannot watch the shared access generation");
                }
            }
        }
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
        let read = async move { Ok((read.await?, ())) };
        Ok(self.read_through_with(scope, key, read).await?.0)
    }

    /// Reads `T` through the cache; on a miss `read` also returns an `X` read with it,
    /// which is not cached and is answered only then.
    async fn read_through_with<T, X, F>(
        &self,
        scope: &CacheScope,
        key: &str,
        read: F,
    ) -> Result<(T, Option<X>), StoreError>
    where
        T: Serialize + DeserializeOwned,
        F: Future<Output = Result<(T, X), StoreError>>,
    {
        self.read_through_when(scope, key, read, |_| true).await
    }

    /// [`Self::read_through_with`], storing what was read only when `may_store`
    /// agrees with the generation it would be stored under.
    async fn read_through_when<T, X, F>(
        &self,
        scope: &CacheScope,
        key: &str,
        read: F,
        may_store: impl FnOnce(u64) -> bool,
    ) -> Result<(T, Option<X>), StoreError>
    where
        T: Serialize + DeserializeOwned,
        F: Future<Output = Result<(T, X), StoreError>>,
    {
        let Some(cache) = &self.cache else {
            let (value, extra) = read.await?;
            return Ok((value, Some(extra)));
        };
        let namespace = scope.namespace();
        let generation = match cache.get(scope, key).await {
            Ok(CacheLookup { generation, value: Some(bytes) }) => match serde_json::from_slice(&bytes) {
                Ok(value) => {
                    metrics::counter!("aether_cache_requests_total", "namespace" => namespace, "outcome" => "hit")
                        .increment(1);
                    return Ok((value, None));
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
        let (value, extra) = read.await?;
        if let Some(generation) = generation {
            metrics::counter!("aether_cache_requests_total", "namespace" => namespace, "outcome" => "miss")
                .increment(1);
            if may_store(generation) {
                match serde_json::to_vec(&value) {
                    Ok(bytes) => {
                        if let Err(error) = cache.put(scope, generation, key, &bytes).await {
                            cache_failed(scope, "put", &error);
                        }
                    }
                    Err(error) => tracing::warn!(%error, namespace, "could not encode a cache entry"),
                }
            }
        }
        Ok((value, Some(extra)))
    }
}

/// The embedded shape's read cache: entries and generations in this process's
/// memory. Correct for one process serving requests (the embedded SQLite shape);
/// replicas need the shared Redis cache, or none.
///
/// Entries live in `moka`, which expires them after the time to live and keeps at
/// most `max_entries`: a new entry displaces an older one only if it is read more
/// often (TinyLFU), otherwise it goes uncached. Generations are never evicted, so a
/// scope's generation never restarts under an entry of it.
#[derive(Debug)]
pub struct InProcessReadCache {
    generations: std::sync::Mutex<HashMap<String, u64>>,
    entries: moka::future::Cache<(String, String), InProcessEntry>,
}

#[derive(Debug, Clone)]
struct InProcessEntry {
    generation: u64,
    value: Arc<[u8]>,
}

impl InProcessReadCache {
    /// Entries live for `ttl`; at most `max_entries` are kept.
    pub fn new(ttl: Duration, max_entries: usize) -> Self {
        let entries = moka::future::Cache::builder()
            .time_to_live(ttl)
            .max_capacity(u64::try_from(max_entries).unwrap_or(u64::MAX))
            .build();
        Self { generations: std::sync::Mutex::new(HashMap::new()), entries }
    }

    fn generation(&self, scope: &CacheScope) -> u64 {
        // A panic while the lock was held leaves nothing half-written that matters:
        // every operation is one map update.
        let generations = self.generations.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        generations.get(scope.name()).copied().unwrap_or(0)
    }
}

#[async_trait]
impl ReadCache for InProcessReadCache {
    async fn get(&self, scope: &CacheScope, key: &str) -> Result<CacheLookup, StoreError> {
        let generation = self.generation(scope);
        let value = self
            .entries
            .get(&(scope.name().to_owned(), key.to_owned()))
            .await
            .filter(|entry| entry.generation == generation)
            .map(|entry| entry.value.to_vec());
        Ok(CacheLookup { generation, value })
    }

    async fn put(&self, scope: &CacheScope, generation: u64, key: &str, value: &[u8]) -> Result<(), StoreError> {
        if self.generation(scope) != generation {
            // The scope was invalidated after this value was read: it may be stale.
            // (An invalidation between this check and the insert is harmless: the
            // entry carries its generation, and `get` serves only the current one.)
            return Ok(());
        }
        // Expired entries go first, so that they make room; the insert is then
        // admitted or refused before this returns, so the bound holds at all times.
        self.entries.run_pending_tasks().await;
        let entry = InProcessEntry { generation, value: Arc::from(value) };
        self.entries.insert((scope.name().to_owned(), key.to_owned()), entry).await;
        self.entries.run_pending_tasks().await;
        Ok(())
    }

    async fn invalidate(&self, scope: &CacheScope) -> Result<(), StoreError> {
        let mut generations = self.generations.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *generations.entry(scope.name().to_owned()).or_insert(0) += 1;
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
        cache.entries.run_pending_tasks().await;
        assert!(cache.entries.entry_count() <= 2);
    }
}
