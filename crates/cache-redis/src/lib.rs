//! Redis as the production home of short-lived shared state. Every replica sees the
//! same sessions, pending logins, revocations and rate limits, and hears about each
//! other's job changes; Redis expires entries itself.
#![forbid(unsafe_code)]

mod breaker;
pub mod cache;
mod fanout;

use std::time::Duration;

use aether_domain::StoreError;
use aether_domain::ephemeral::EphemeralStore;
use aether_domain::limits::{RateDecision, RateLimiter};
use aether_domain::time::Timestamp;
use async_trait::async_trait;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::breaker::Guarded;

pub use fanout::{RedisJobFanout, listen_for_job_changes};

/// An [`EphemeralStore`] on Redis, with keys under a prefix so that one Redis can
/// serve several deployments.
#[derive(Clone)]
pub struct RedisEphemeralStore {
    redis: Guarded,
    prefix: String,
}

impl std::fmt::Debug for RedisEphemeralStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisEphemeralStore").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

fn map_err(error: redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("redis: {}", error.kind_str_or_category()))
}

/// Counts a failed session-store call: sessions, pending logins and revocations
/// all stop working while Redis is unreachable.
fn count_session_error(_: &StoreError) {
    metrics::counter!("aether_dependency_errors_total", "dependency" => "sessions").increment(1);
}

trait KindText {
    fn kind_str_or_category(&self) -> String;
}

impl KindText for redis::RedisError {
    fn kind_str_or_category(&self) -> String {
        // The error's text may echo a URL with credentials; its category never does.
        self.category().to_owned()
    }
}

impl RedisEphemeralStore {
    /// Connects (with automatic reconnection) to `url` (`redis://host:port/db`).
    pub async fn connect(url: &str, prefix: &str, timeout: Duration) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(map_err)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(2);
        let connection = ConnectionManager::new_with_config(client, config).await.map_err(map_err)?;
        Ok(Self { redis: Guarded::new(connection, timeout), prefix: prefix.to_owned() })
    }

    /// The prefix of every key this store writes.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Answers when Redis answers PING.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let _: String = self.redis.call(async |connection| redis::cmd("PING").query_async(connection).await).await?;
        Ok(())
    }
}

#[async_trait]
impl EphemeralStore for RedisEphemeralStore {
    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let key = self.key(key);
        self.redis
            .call(async |connection| {
                redis::cmd("SET").arg(&key).arg(value).arg("PX").arg(millis).query_async::<()>(connection).await
            })
            .await
            .inspect_err(count_session_error)
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = self.key(key);
        self.redis.call(async |connection| connection.get(&key).await).await.inspect_err(count_session_error)
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = self.key(key);
        // GETDEL (Redis 6.2+) is atomic: of concurrent takers one gets the value.
        self.redis
            .call(async |connection| redis::cmd("GETDEL").arg(&key).query_async(connection).await)
            .await
            .inspect_err(count_session_error)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let key = self.key(key);
        let _: u64 =
            self.redis.call(async |connection| connection.del(&key).await).await.inspect_err(count_session_error)?;
        Ok(())
    }

    async fn purge_expired(&self, _now: Timestamp) -> Result<u64, StoreError> {
        // Redis expires keys itself.
        Ok(0)
    }
}

/// A [`RateLimiter`] on Redis: one counter per key and window, incremented and
/// given its expiry in one atomic script, so every replica shares the count.
#[derive(Clone)]
pub struct RedisRateLimiter {
    redis: Guarded,
    prefix: String,
    script: redis::Script,
}

impl std::fmt::Debug for RedisRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRateLimiter").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

impl RedisEphemeralStore {
    /// A rate limiter on the same connection and key prefix.
    pub fn rate_limiter(&self) -> RedisRateLimiter {
        RedisRateLimiter {
            redis: self.redis.clone(),
            prefix: format!("{}rate:", self.prefix),
            script: redis::Script::new(
                "local count = redis.call('INCR', KEYS[1]) \
                 if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end \
                 local ttl = redis.call('PTTL', KEYS[1]) \
                 if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) ttl = tonumber(ARGV[1]) end \
                 return {count, ttl}",
            ),
        }
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn hit(&self, key: &str, limit: u32, window: Duration) -> Result<RateDecision, StoreError> {
        let millis = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
        let key = format!("{}{key}", self.prefix);
        let (count, ttl): (u64, i64) = self
            .redis
            .call(async |connection| self.script.key(&key).arg(millis).invoke_async(connection).await)
            .await?;
        let reset_after = Duration::from_millis(u64::try_from(ttl.max(0)).unwrap_or(0));
        Ok(RateDecision::of(count, limit, reset_after))
    }
}
