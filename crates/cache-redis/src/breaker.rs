//! Stops waiting on a Redis that does not answer.
//!
//! A Redis that refuses connections fails fast, but one that hangs (a stopped
//! process, a network partition that drops packets) costs every call the whole
//! response timeout. Every authenticated request asks Redis something (a session, a
//! revocation, a rate-limit count, a cached read), so without this each request
//! would wait that long, several times, and requests would pile up. After a call
//! finds Redis unreachable, calls fail at once for [`COOL_OFF`]; then one call goes
//! through as a probe (the others still fail at once while it runs) and its outcome
//! closes the breaker or opens it again. Callers treat the fast failure as any other
//! Redis failure: the cache is bypassed, rate limiting fails open or closed as
//! configured, sessions answer 503.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use aether_domain::StoreError;
use redis::RedisError;
use redis::aio::ConnectionManager;

use crate::map_err;

/// How long calls fail at once after Redis was found unreachable.
pub(crate) const COOL_OFF: Duration = Duration::from_secs(1);

/// The state shared by every use of one Redis connection.
#[derive(Debug)]
pub(crate) struct Breaker {
    /// `Some` while calls are held back: until then, nothing but a probe goes through.
    open_until: Mutex<Option<Instant>>,
    /// The longest a call can take: how long a probe holds the others back.
    response_timeout: Duration,
}

impl Breaker {
    pub(crate) fn new(response_timeout: Duration) -> Self {
        metrics::gauge!("aether_redis_breaker_open").set(0.0);
        Self { open_until: Mutex::new(None), response_timeout }
    }

    /// Whether a call may go to Redis now.
    fn admit(&self, now: Instant) -> bool {
        let mut open_until = self.open_until.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match *open_until {
            None => true,
            Some(until) if now < until => false,
            Some(_) => {
                // This call is the probe; the others wait for its outcome.
                *open_until = Some(now + self.response_timeout);
                true
            }
        }
    }

    /// Notes a call's outcome: only an unreachable Redis opens the breaker; any
    /// answer, even an error reply, closes it.
    fn record(&self, error: Option<&RedisError>, now: Instant) {
        let unreachable = error.is_some_and(|error| {
            error.is_timeout() || error.is_io_error() || error.is_connection_dropped() || error.is_connection_refusal()
        });
        let mut open_until = self.open_until.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let was_open = open_until.is_some();
        *open_until = unreachable.then(|| now + COOL_OFF);
        if unreachable != was_open {
            metrics::gauge!("aether_redis_breaker_open").set(if unreachable { 1.0 } else { 0.0 });
            if unreachable {
                tracing::warn!(
                    cool_off_ms = COOL_OFF.as_millis() as u64,
                    "redis is unreachable; calls fail at once until it answers"
                );
            } else {
                tracing::info!("redis answers again");
            }
        }
    }
}

/// One Redis connection, guarded by its breaker. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Guarded {
    connection: ConnectionManager,
    breaker: std::sync::Arc<Breaker>,
}

impl Guarded {
    pub(crate) fn new(connection: ConnectionManager, response_timeout: Duration) -> Self {
        Self { connection, breaker: std::sync::Arc::new(Breaker::new(response_timeout)) }
    }

    /// The connection without the breaker, for the job fan-out's own loops, which
    /// wait on Redis in the background and never hold up a request.
    pub(crate) fn connection(&self) -> ConnectionManager {
        self.connection.clone()
    }

    /// Runs one call on the connection, unless the breaker holds calls back.
    pub(crate) async fn call<T>(
        &self,
        call: impl AsyncFnOnce(&mut ConnectionManager) -> Result<T, RedisError>,
    ) -> Result<T, StoreError> {
        if !self.breaker.admit(Instant::now()) {
            metrics::counter!("aether_redis_calls_short_circuited_total").increment(1);
            return Err(StoreError::Unavailable("redis: not answering; calls are paused".into()));
        }
        let mut connection = self.connection.clone();
        let result = call(&mut connection).await;
        self.breaker.record(result.as_ref().err(), Instant::now());
        result.map_err(map_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeout() -> RedisError {
        RedisError::from(std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out"))
    }

    #[test]
    fn an_unreachable_redis_is_left_alone_until_a_probe_finds_it_back() {
        let breaker = Breaker::new(Duration::from_secs(5));
        let start = Instant::now();
        assert!(breaker.admit(start), "closed: calls go through");
        breaker.record(Some(&timeout()), start);
        assert!(!breaker.admit(start + Duration::from_millis(10)), "open: calls fail at once");
        assert!(!breaker.admit(start + COOL_OFF - Duration::from_millis(1)));
        let later = start + COOL_OFF;
        assert!(breaker.admit(later), "after the cool-off, one probe");
        assert!(!breaker.admit(later + Duration::from_secs(1)), "the others wait for the probe");
        breaker.record(Some(&timeout()), later + Duration::from_secs(5));
        assert!(!breaker.admit(later + Duration::from_secs(5)), "a failed probe opens it again");
        let again = later + Duration::from_secs(5) + COOL_OFF;
        assert!(breaker.admit(again));
        breaker.record(None, again);
        assert!(breaker.admit(again) && breaker.admit(again), "an answer closes it");
    }

    #[test]
    fn an_error_reply_is_an_answer() {
        let breaker = Breaker::new(Duration::from_secs(5));
        let now = Instant::now();
        let reply = RedisError::from((redis::ErrorKind::UnexpectedReturnType, "not a number"));
        breaker.record(Some(&reply), now);
        assert!(breaker.admit(now), "Redis answered: nothing to hold back");
    }
}
