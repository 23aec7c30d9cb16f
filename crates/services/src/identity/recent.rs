//! What authentication remembers between requests, so that a request with a
//! credential seen a moment ago costs no signature check and no store read:
//!
//! - tokens whose signature and claims verified, until they expire (an Ed25519 or
//!   RS256 verification was the largest CPU cost of a cached read);
//! - "this token session is not revoked" and "this user's roles were last changed
//!   at …" answers of the ephemeral store, for [`IdentitySettings::recheck_interval`]
//!   (one second by default). On SQLite and on Neo4j without Redis each was a store
//!   query on every request.
//!
//! A logout or a role change made by this process forgets the entry at once, so on a
//! single server it takes effect on the next request. Another replica notices within
//! the recheck interval. Refusals are never remembered: a revoked or invalid
//! credential is checked in full every time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aether_domain::time;
use aether_domain::token::VerifiedToken;
use moka::Expiry;
use moka::future::Cache;

/// At most this many bytes of verified tokens are kept (about 16,000 typical tokens).
const VERIFIED_TOKEN_BYTES: u64 = 16 * 1024 * 1024;
/// At most this many session and role answers are kept.
const ANSWERS: u64 = 100_000;

#[derive(Clone)]
pub(super) struct RecentChecks {
    verified: Cache<Arc<str>, Arc<VerifiedToken>>,
    live_sessions: Cache<String, ()>,
    roles_changed: Cache<String, Option<i64>>,
}

impl std::fmt::Debug for RecentChecks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecentChecks").field("verified", &self.verified.entry_count()).finish_non_exhaustive()
    }
}

/// A verified token is forgotten when it expires.
struct UntilExpiry;

impl Expiry<Arc<str>, Arc<VerifiedToken>> for UntilExpiry {
    fn expire_after_create(&self, _token: &Arc<str>, verified: &Arc<VerifiedToken>, _at: Instant) -> Option<Duration> {
        Some(remaining(verified))
    }
}

fn remaining(verified: &VerifiedToken) -> Duration {
    (verified.expires_at - time::now()).to_std().unwrap_or(Duration::ZERO)
}

impl RecentChecks {
    pub(super) fn new(recheck_interval: Duration) -> Self {
        Self {
            verified: Cache::builder()
                .max_capacity(VERIFIED_TOKEN_BYTES)
                .weigher(|token: &Arc<str>, _: &Arc<VerifiedToken>| {
                    u32::try_from(token.len() + 512).unwrap_or(u32::MAX)
                })
                .expire_after(UntilExpiry)
                .build(),
            live_sessions: Cache::builder().max_capacity(ANSWERS).time_to_live(recheck_interval).build(),
            roles_changed: Cache::builder().max_capacity(ANSWERS).time_to_live(recheck_interval).build(),
        }
    }

    /// The token's claims if it verified before and has not expired since.
    pub(super) async fn verified(&self, token: &str) -> Option<VerifiedToken> {
        let verified = self.verified.get(token).await?;
        // The cache's expiry runs on its own clock; the token's own deadline decides.
        (remaining(&verified) > Duration::ZERO).then(|| verified.as_ref().clone())
    }

    pub(super) async fn remember_verified(&self, token: &str, verified: &VerifiedToken) {
        if remaining(verified) > Duration::ZERO {
            self.verified.insert(Arc::from(token), Arc::new(verified.clone())).await;
        }
    }

    pub(super) async fn session_live(&self, session: &str) -> bool {
        self.live_sessions.contains_key(session)
    }

    pub(super) async fn remember_session_live(&self, session: &str) {
        self.live_sessions.insert(session.to_owned(), ()).await;
    }

    /// Call after the session's revocation was stored.
    pub(super) async fn session_revoked(&self, session: &str) {
        self.live_sessions.invalidate(session).await;
    }

    pub(super) async fn roles_changed_at(&self, keycloak_id: &str) -> Option<Option<i64>> {
        self.roles_changed.get(keycloak_id).await
    }

    pub(super) async fn remember_roles_changed_at(&self, keycloak_id: &str, changed: Option<i64>) {
        self.roles_changed.insert(keycloak_id.to_owned(), changed).await;
    }

    /// Call after a role change was stored.
    pub(super) async fn roles_changed(&self, keycloak_id: &str) {
        self.roles_changed.invalidate(keycloak_id).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use aether_domain::id::UserId;
    use aether_domain::token::TokenSubject;
    use aether_domain::user::Username;

    use super::*;

    fn token_expiring_in(seconds: i64) -> VerifiedToken {
        let now = time::now();
        VerifiedToken {
            subject: TokenSubject::Local(UserId::new()),
            username: Username::parse("recent").unwrap(),
            email: None,
            full_name: None,
            roles: Vec::new(),
            groups: Vec::new(),
            session_id: Some("s".into()),
            client_id: "aether".into(),
            issued_at: now,
            expires_at: now + chrono::Duration::seconds(seconds),
            auth_time: None,
        }
    }

    #[tokio::test]
    async fn a_verified_token_is_remembered_until_it_expires() {
        let recent = RecentChecks::new(Duration::from_secs(1));
        recent.remember_verified("live", &token_expiring_in(60)).await;
        assert!(recent.verified("live").await.is_some());
        assert!(recent.verified("other").await.is_none(), "only the exact token");
        recent.remember_verified("expired", &token_expiring_in(-1)).await;
        assert!(recent.verified("expired").await.is_none(), "an expired token is never remembered");
        recent.remember_verified("soon", &token_expiring_in(1)).await;
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        assert!(recent.verified("soon").await.is_none(), "forgotten once expired");
    }

    #[tokio::test]
    async fn session_answers_last_the_recheck_interval_or_until_a_revocation() {
        let recent = RecentChecks::new(Duration::from_millis(200));
        recent.remember_session_live("s").await;
        assert!(recent.session_live("s").await);
        recent.session_revoked("s").await;
        assert!(!recent.session_live("s").await, "a local revocation is seen at once");
        recent.remember_session_live("s").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!recent.session_live("s").await, "rechecked after the interval");
    }
}
