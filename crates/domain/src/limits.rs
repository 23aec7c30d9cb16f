//! Request rate limits: a fixed-window counter per key (a user, an IP address),
//! shared by every replica in production (Redis) and in-process in the embedded shape.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

use crate::StoreError;

/// The state of one key's window after a request was counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Until the window resets.
    pub reset_after: Duration,
}

impl RateDecision {
    /// Counts `count` requests against `limit` in a window ending after `reset_after`.
    pub fn of(count: u64, limit: u32, reset_after: Duration) -> Self {
        let remaining = u64::from(limit).saturating_sub(count);
        Self {
            allowed: count <= u64::from(limit),
            limit,
            remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
            reset_after,
        }
    }
}

#[async_trait]
pub trait RateLimiter: Send + Sync + fmt::Debug {
    /// Counts one request for `key` in the current window of length `window`.
    async fn hit(&self, key: &str, limit: u32, window: Duration) -> Result<RateDecision, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_count_down_to_refusal() {
        let window = Duration::from_secs(60);
        assert_eq!(RateDecision::of(1, 3, window).remaining, 2);
        assert!(RateDecision::of(3, 3, window).allowed);
        let refused = RateDecision::of(4, 3, window);
        assert!(!refused.allowed);
        assert_eq!(refused.remaining, 0);
    }
}
