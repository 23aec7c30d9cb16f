//! The embedded shape's rate limiter: fixed windows counted in this process.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aether_domain::StoreError;
use aether_domain::limits::{RateDecision, RateLimiter};
use async_trait::async_trait;
use tokio::sync::Mutex;

/// Windows counted in memory. With one replica that is exact; several replicas
/// need the Redis limiter to share counts.
#[derive(Debug, Default)]
pub struct InProcessRateLimiter {
    windows: Mutex<HashMap<String, (Instant, u64)>>,
}

/// Past this many keys, expired windows are swept before a new one is added.
const SWEEP_AT: usize = 100_000;

#[async_trait]
impl RateLimiter for InProcessRateLimiter {
    async fn hit(&self, key: &str, limit: u32, window: Duration) -> Result<RateDecision, StoreError> {
        let now = Instant::now();
        let mut windows = self.windows.lock().await;
        if windows.len() >= SWEEP_AT && !windows.contains_key(key) {
            windows.retain(|_, (start, _)| now.duration_since(*start) < window);
        }
        let entry = windows.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= window {
            *entry = (now, 0);
        }
        entry.1 += 1;
        let reset_after = window.saturating_sub(now.duration_since(entry.0));
        Ok(RateDecision::of(entry.1, limit, reset_after))
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
