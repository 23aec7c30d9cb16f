//! The production [`ReadCache`]: hot reads shared by every replica, invalidated by
//! generations (see [`aether_domain::cache`]).
//!
//! Keys, under the store's prefix, with the scope as a hash tag so that a scope's
//! keys share a Redis Cluster slot:
//! - `cache:{<scope>}:generation` — the scope's generation (absent means 0);
//! - `cache:{<scope>}:<generation>:<key>` — an entry, expiring after the TTL.
//!
//! Each operation is one Lua script, so one round trip and atomic: a lookup reads
//! the generation and the entry under it together; a put writes only when the
//! generation is still the one the reader saw before reading the store; an
//! invalidation increments the generation. A generation key lives at least as long
//! as every entry stored under it (each put and each increment extends it past the
//! entry TTL), so it can never expire and start again from 0 while an entry of an
//! old generation could still be read.

use std::time::Duration;

use crate::RedisEphemeralStore;
use crate::breaker::Guarded;
use aether_domain::StoreError;
use aether_domain::cache::{CacheLookup, CacheScope, ReadCache};
use async_trait::async_trait;

/// A [`ReadCache`] on Redis. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct RedisReadCache {
    redis: Guarded,
    prefix: String,
    ttl: Duration,
    lookup: redis::Script,
    store: redis::Script,
    bump: redis::Script,
}

impl std::fmt::Debug for RedisReadCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisReadCache").field("prefix", &self.prefix).field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

impl RedisEphemeralStore {
    /// A read cache on the same connection and key prefix, whose entries live for `ttl`.
    pub fn read_cache(&self, ttl: Duration) -> RedisReadCache {
        RedisReadCache {
            redis: self.redis.clone(),
            prefix: format!("{}cache:", self.prefix),
            ttl,
            // KEYS[1] generation; ARGV[1] the entry keys' stem, ARGV[2] the key. The
            // entry's key depends on the generation just read, so it cannot be
            // declared in KEYS; it shares the generation's hash slot.
            lookup: redis::Script::new(
                "local generation = redis.call('GET', KEYS[1]) or '0' \
                 local value = redis.call('GET', ARGV[1] .. generation .. ':' .. ARGV[2]) \
                 return {generation, value}",
            ),
            // KEYS[1] generation, KEYS[2] the entry under the expected generation;
            // ARGV[1] expected generation, ARGV[2] value, ARGV[3] entry TTL (ms),
            // ARGV[4] how long the generation is kept (ms). SET without a TTL change
            // would keep an older, shorter one, so the generation is written again.
            store: redis::Script::new(
                "local generation = redis.call('GET', KEYS[1]) or '0' \
                 if generation ~= ARGV[1] then return 0 end \
                 redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3]) \
                 redis.call('SET', KEYS[1], generation, 'PX', ARGV[4]) \
                 return 1",
            ),
            // KEYS[1] generation; ARGV[1] how long it is kept (ms).
            bump: redis::Script::new(
                "local generation = redis.call('INCR', KEYS[1]) \
                 redis.call('PEXPIRE', KEYS[1], ARGV[1]) \
                 return generation",
            ),
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl RedisReadCache {
    /// The stem of every key of `scope`.
    fn stem(&self, scope: &CacheScope) -> String {
        format!("{}{{{}}}:", self.prefix, scope.name())
    }

    fn generation_key(&self, scope: &CacheScope) -> String {
        format!("{}generation", self.stem(scope))
    }

    /// How long a generation is kept after its last use: longer than any entry
    /// stored under it can live.
    fn generation_keep(&self) -> u64 {
        millis(self.ttl).saturating_mul(2).saturating_add(60_000)
    }
}

#[async_trait]
impl ReadCache for RedisReadCache {
    async fn get(&self, scope: &CacheScope, key: &str) -> Result<CacheLookup, StoreError> {
        let (generation, value): (String, Option<Vec<u8>>) = self
            .redis
            .call(async |connection| {
                self.lookup
                    .key(self.generation_key(scope))
                    .arg(self.stem(scope))
                    .arg(key)
                    .invoke_async(connection)
                    .await
            })
            .await?;
        let generation = generation
            .parse()
            .map_err(|_| StoreError::Unavailable("redis: a cache generation is not a number".into()))?;
        Ok(CacheLookup { generation, value })
    }

    async fn put(&self, scope: &CacheScope, generation: u64, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let _: u8 = self
            .redis
            .call(async |connection| {
                self.store
                    .key(self.generation_key(scope))
                    .key(format!("{}{generation}:{key}", self.stem(scope)))
                    .arg(generation.to_string())
                    .arg(value)
                    .arg(millis(self.ttl))
                    .arg(self.generation_keep())
                    .invoke_async(connection)
                    .await
            })
            .await?;
        Ok(())
    }

    async fn invalidate(&self, scope: &CacheScope) -> Result<(), StoreError> {
        let _: u64 = self
            .redis
            .call(async |connection| {
                self.bump.key(self.generation_key(scope)).arg(self.generation_keep()).invoke_async(connection).await
            })
            .await?;
        Ok(())
    }
}
