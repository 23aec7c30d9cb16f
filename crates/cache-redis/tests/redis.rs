//! Runs against the Redis that `scripts/test` starts (AETHER_TEST_REDIS_URL); prints
//! NOT RUN without one unless AETHER_TEST_REQUIRE_SERVICES=1.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use aether_cache_redis::RedisEphemeralStore;
use aether_domain::ephemeral::EphemeralStore;

async fn store() -> Option<RedisEphemeralStore> {
    let url = common::redis_url()?;
    let prefix = common::unique_prefix();
    Some(RedisEphemeralStore::connect(&url, &prefix, Duration::from_secs(5)).await.unwrap())
}

#[tokio::test]
async fn entries_expire_and_are_taken_once() {
    let Some(store) = store().await else { return };
    store.ping().await.unwrap();
    assert_eq!(store.get("k").await.unwrap(), None);
    store.put("k", b"one", Duration::from_secs(60)).await.unwrap();
    store.put("k", b"two", Duration::from_secs(60)).await.unwrap();
    assert_eq!(store.get("k").await.unwrap().as_deref(), Some(&b"two"[..]));
    let takes = futures_take(&store, "k").await;
    assert_eq!(takes.iter().filter(|t| t.is_some()).count(), 1, "{takes:?}");
    assert_eq!(store.get("k").await.unwrap(), None);

    store.put("short", &[0, 255], Duration::from_millis(150)).await.unwrap();
    assert_eq!(store.get("short").await.unwrap().as_deref(), Some(&[0u8, 255][..]));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(store.get("short").await.unwrap(), None);

    store.put("gone", b"x", Duration::from_secs(60)).await.unwrap();
    store.delete("gone").await.unwrap();
    assert_eq!(store.take("gone").await.unwrap(), None);
}

async fn futures_take(store: &RedisEphemeralStore, key: &str) -> Vec<Option<Vec<u8>>> {
    let (a, b, c) = tokio::join!(store.take(key), store.take(key), store.take(key));
    vec![a.unwrap(), b.unwrap(), c.unwrap()]
}

#[tokio::test]
async fn an_unreachable_redis_is_unavailable_not_a_panic() {
    // Port 1 on loopback refuses connections.
    let result = RedisEphemeralStore::connect("redis://127.0.0.1:1/", "x:", Duration::from_millis(300)).await;
    assert!(matches!(result, Err(aether_domain::StoreError::Unavailable(_))), "{result:?}");
}

#[tokio::test]
async fn rate_limits_are_shared_by_every_replica() {
    use aether_domain::limits::RateLimiter;
    let Some(first) = store().await else { return };
    let url = std::env::var("AETHER_TEST_REDIS_URL").unwrap();
    // A second connection with the same prefix stands for another replica.
    let one = first.rate_limiter();
    let window = Duration::from_millis(400);
    let shared = format!("user:{}", uuid::Uuid::now_v7());
    assert_eq!(one.hit(&shared, 3, window).await.unwrap().remaining, 2);
    let other =
        RedisEphemeralStore::connect(&url, first.prefix(), Duration::from_secs(5)).await.unwrap().rate_limiter();
    assert_eq!(other.hit(&shared, 3, window).await.unwrap().remaining, 1, "the count is shared");
    assert!(one.hit(&shared, 3, window).await.unwrap().allowed);
    let refused = other.hit(&shared, 3, window).await.unwrap();
    assert!(!refused.allowed);
    assert!(refused.reset_after <= window && refused.reset_after > Duration::ZERO, "{refused:?}");
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(one.hit(&shared, 3, window).await.unwrap().remaining, 2, "a new window");
}
