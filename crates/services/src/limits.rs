//! The embedded shape's rate limiter: fixed windows counted in this process.
//!
//! Fixed windows, like the Redis limiter (`INCR` + `PEXPIRE`), so that both shapes
//! count alike and `reset_after` is the end of the window the RateLimit headers
//! announce. A GCRA limiter (`governor`) was not taken: it smooths instead of
//! resetting, takes one quota per limiter rather than the limit and window of each
//! call, and does not count refused requests, so its answers would differ from
//! production's. The windows live in `moka`, each expiring when it ends.

use std::time::{Duration, Instant};

use aether_domain::StoreError;
use aether_domain::limits::{RateDecision, RateLimiter};
use async_trait::async_trait;
use moka::Expiry;
use moka::future::Cache;

/// Windows counted in memory. With one replica that is exact; several replicas
/// need the Redis limiter to share counts. There is no capacity bound: evicting a
/// live window would forgive its count; every window goes when it ends.
#[derive(Debug)]
pub struct InProcessRateLimiter {
    windows: Cache<String, Window>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    length: Duration,
    count: u64,
}

/// A window is forgotten once it has ended.
struct WindowEnds;

impl Expiry<String, Window> for WindowEnds {
    fn expire_after_create(&self, _key: &String, window: &Window, _created_at: Instant) -> Option<Duration> {
        Some(window.length)
    }

    fn expire_after_update(
        &self,
        _key: &String,
        window: &Window,
        updated_at: Instant,
        _until_now: Option<Duration>,
    ) -> Option<Duration> {
        Some(window.length.saturating_sub(updated_at.saturating_duration_since(window.started)))
    }
}

impl Default for InProcessRateLimiter {
    fn default() -> Self {
        Self { windows: Cache::builder().expire_after(WindowEnds).build() }
    }
}

#[async_trait]
impl RateLimiter for InProcessRateLimiter {
    async fn hit(&self, key: &str, limit: u32, window: Duration) -> Result<RateDecision, StoreError> {
        let now = Instant::now();
        // Serialised per key: concurrent hits never lose a count.
        let current = self
            .windows
            .entry_by_ref(key)
            .and_upsert_with(|existing| {
                let next = match existing.map(|entry| entry.into_value()) {
                    Some(open) if now.saturating_duration_since(open.started) < window => {
                        Window { count: open.count + 1, ..open }
                    }
                    _ => Window { started: now, length: window, count: 1 },
                };
                std::future::ready(next)
            })
            .await
            .into_value();
        let reset_after = window.saturating_sub(now.saturating_duration_since(current.started));
        Ok(RateDecision::of(current.count, limit, reset_after))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn windows_fill_and_reset() {
        let limiter = InProcessRateLimiter::default();
        let window = Duration::from_millis(200);
        for expected in [2, 1, 0] {
            let decision = limiter.hit("k", 3, window).await.unwrap();
            assert!(decision.allowed);
            assert_eq!(decision.remaining, expected);
        }
        assert!(!limiter.hit("k", 3, window).await.unwrap().allowed);
        assert!(limiter.hit("other", 3, window).await.unwrap().allowed, "keys are independent");
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(limiter.hit("k", 3, window).await.unwrap().remaining, 2, "a new window");
    }
}
