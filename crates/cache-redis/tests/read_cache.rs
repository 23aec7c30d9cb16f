//! The Redis read cache against the Redis that `scripts/test` starts
//! (AETHER_TEST_REDIS_URL); prints NOT RUN without one unless
//! AETHER_TEST_REQUIRE_SERVICES=1. Each test uses a key prefix of its own.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use aether_cache_redis::RedisEphemeralStore;
use aether_cache_redis::cache::RedisReadCache;
use aether_domain::cache::{CacheLookup, CacheScope, ReadCache};
use aether_domain::id::UserId;

/// Two connections with one prefix: two replicas sharing the cache.
async fn replicas(ttl: Duration) -> Option<(RedisReadCache, RedisReadCache, RedisEphemeralStore)> {
    let url = common::redis_url()?;
    let prefix = common::unique_prefix();
    let one = RedisEphemeralStore::connect(&url, &prefix, Duration::from_secs(5)).await.unwrap();
    let other = RedisEphemeralStore::connect(&url, &prefix, Duration::from_secs(5)).await.unwrap();
    Some((one.read_cache(ttl), other.read_cache(ttl), one))
}

#[tokio::test]
async fn an_invalidation_on_one_replica_hides_entries_from_every_replica() {
    let Some((a, b, _)) = replicas(Duration::from_secs(60)).await else { return };
    let access = CacheScope::access();
    let miss = b.get(&access, "u:n").await.unwrap();
    assert_eq!(miss, CacheLookup { generation: 0, value: None });
    b.put(&access, miss.generation, "u:n", b"chain").await.unwrap();
    assert_eq!(a.get(&access, "u:n").await.unwrap().value.as_deref(), Some(&b"chain"[..]), "shared");

    a.invalidate(&access).await.unwrap();
    assert_eq!(b.get(&access, "u:n").await.unwrap(), CacheLookup { generation: 1, value: None });

    // One user's change leaves the other users' entries alone.
    let (alice, bob) = (CacheScope::user(UserId::new()), CacheScope::user(UserId::new()));
    a.put(&alice, 0, "user", b"alice").await.unwrap();
    a.put(&bob, 0, "user", b"bob").await.unwrap();
    b.invalidate(&alice).await.unwrap();
    assert_eq!(a.get(&alice, "user").await.unwrap(), CacheLookup { generation: 1, value: None });
    assert_eq!(a.get(&bob, "user").await.unwrap().value.as_deref(), Some(&b"bob"[..]));
}

#[tokio::test]
async fn a_late_write_of_a_value_read_before_an_invalidation_is_never_served() {
    let Some((reader, writer, _)) = replicas(Duration::from_secs(60)).await else { return };
    let access = CacheScope::access();
    // The reader misses and goes to the store; the writer commits and invalidates;
    // then the reader puts what it read before the commit.
    let seen = reader.get(&access, "k").await.unwrap();
    writer.invalidate(&access).await.unwrap();
    reader.put(&access, seen.generation, "k", b"stale").await.unwrap();
    let now = writer.get(&access, "k").await.unwrap();
    assert_eq!(now, CacheLookup { generation: seen.generation + 1, value: None }, "the stale put was dropped");
    // Concurrent readers of the new generation put the fresh value; it is served.
    let (x, y) = tokio::join!(
        reader.put(&access, now.generation, "k", b"fresh"),
        writer.put(&access, now.generation, "k", b"fresh")
    );
    x.unwrap();
    y.unwrap();
    assert_eq!(reader.get(&access, "k").await.unwrap().value.as_deref(), Some(&b"fresh"[..]));
}

#[tokio::test]
async fn entries_expire_and_generations_outlive_them() {
    let Some((cache, _, store)) = replicas(Duration::from_millis(200)).await else { return };
    let scope = CacheScope::user(UserId::new());
    cache.invalidate(&scope).await.unwrap();
    cache.put(&scope, 1, "user", b"x").await.unwrap();
    assert_eq!(cache.get(&scope, "user").await.unwrap().value.as_deref(), Some(&b"x"[..]));
    tokio::time::sleep(Duration::from_millis(350)).await;
    let expired = cache.get(&scope, "user").await.unwrap();
    assert_eq!(expired, CacheLookup { generation: 1, value: None }, "the entry expired, its generation did not");

    // The generation is kept where the module documentation says, with its value.
    use aether_domain::ephemeral::EphemeralStore as _;
    let generation_key = format!("cache:{{{}}}:generation", scope.name());
    assert_eq!(store.get(&generation_key).await.unwrap().as_deref(), Some(&b"1"[..]), "{generation_key}");
}
