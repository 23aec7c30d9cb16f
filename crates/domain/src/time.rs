//! Timestamps. Every timestamp is UTC and truncated to microseconds, the precision
//! both backends keep, so a value read back equals the value written.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

pub type Timestamp = DateTime<Utc>;

/// The current time at storage precision.
pub fn now() -> Timestamp {
    truncate(Utc::now())
}

/// Truncates to microseconds.
pub fn truncate(at: Timestamp) -> Timestamp {
    at.duration_trunc(TimeDelta::microseconds(1)).unwrap_or(at)
}

/// The fixed RFC 3339 form used in stores (`2026-11-25T22:39:04.123456Z`). Fixed width
/// keeps textual order equal to time order.
pub fn to_storage(at: &Timestamp) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Parses any RFC 3339 timestamp and normalises it to UTC microseconds.
pub fn parse(text: &str) -> Option<Timestamp> {
    DateTime::parse_from_rfc3339(text).ok().map(|at| truncate(at.with_timezone(&Utc)))
}

/// `now` plus `ttl`, saturating at the largest representable time.
pub fn after(now: Timestamp, ttl: std::time::Duration) -> Timestamp {
    TimeDelta::from_std(ttl).ok().and_then(|ttl| now.checked_add_signed(ttl)).unwrap_or(DateTime::<Utc>::MAX_UTC)
}
