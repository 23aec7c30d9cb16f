//! How long a connection's credential holds: a WebSocket is authenticated once, at
//! its handshake, and then lives for hours. [`IdentityService::watch_credential`]
//! ends when the caller's credential expires, or when it no longer holds — the
//! session was logged out, the API key revoked, the account deactivated or removed.
//!
//! Changes made in this process arrive at once through the `credential` live view
//! (keyed by user); changes made by another replica are found by re-checking every
//! `recheck` interval, against the same shared stores a request is checked against.

use tokio::time::Instant;

use super::*;
use crate::live::{Subscription, Topics};

/// Why a watched credential ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialEnd {
    /// Its expiry (an access token's `exp`, an API key's expiry) passed.
    Expired,
    /// It was revoked: logout, a revoked API key, a deactivated or removed account.
    Revoked,
}

/// Changes that may end credentials, by user, in this process.
pub(super) fn credential_topics() -> Arc<Topics<UserId, ()>> {
    Topics::new("credential", 4)
}

/// One connection's watch over its caller's credential.
pub struct CredentialWatch {
    identity: Arc<IdentityService>,
    caller: Principal,
    changes: Subscription<UserId, ()>,
    recheck: Duration,
}

impl std::fmt::Debug for CredentialWatch {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("CredentialWatch").field("user", &self.caller.user_id).finish_non_exhaustive()
    }
}

impl IdentityService {
    /// A watch that ends when `caller`'s credential does (see the module's comment).
    pub fn watch_credential(self: &Arc<Self>, caller: &Principal, recheck: Duration) -> CredentialWatch {
        CredentialWatch {
            identity: Arc::clone(self),
            caller: caller.clone(),
            changes: self.credential_changes.subscribe(caller.user_id),
            recheck: recheck.max(Duration::from_secs(1)),
        }
    }

    /// Tells this process's connections of `user` that a credential of theirs may have
    /// ended. Call after the change is stored.
    pub(super) fn credentials_changed(&self, user: UserId) {
        self.credential_changes.publish(&user, &crate::live::Update::new(()));
    }

    /// Whether the credential behind `caller` still holds, as a new request with it
    /// would find. A store or cache that cannot answer does not end connections: an
    /// outage of Redis must not close every socket.
    pub async fn credential_holds(&self, caller: &Principal) -> bool {
        match self.reads.user(caller.user_id).await {
            Ok(user) if user.status != UserStatus::Active => return false,
            Err(StoreError::NotFound) => return false,
            Ok(_) | Err(_) => {}
        }
        match &caller.credential {
            Credential::AccessToken { session_id: None } => true,
            Credential::AccessToken { session_id: Some(session) } => {
                if self.recent.session_live(session).await {
                    return true;
                }
                !matches!(self.ephemeral.get(&revoked_key(session)).await, Ok(Some(_)))
            }
            Credential::Session { session_id } => !matches!(self.session(session_id).await, Ok(None)),
            Credential::ApiKey { secret_hash, .. } => match self.store.api_keys.find_api_key(secret_hash).await {
                Ok(Some(key)) => key.is_active(time::now()),
                Ok(None) => false,
                Err(_) => true,
            },
        }
    }
}

impl CredentialWatch {
    /// Waits until the credential ends, and says why.
    pub async fn ended(mut self) -> CredentialEnd {
        let expires = self.caller.expires_at.map(|at| {
            let left = (at - time::now()).to_std().unwrap_or_default();
            Instant::now() + left
        });
        let mut next_check = Instant::now() + self.recheck;
        loop {
            let expiry = async {
                match expires {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = expiry => return CredentialEnd::Expired,
                _ = self.changes.next() => {}
                () = tokio::time::sleep_until(next_check) => next_check = Instant::now() + self.recheck,
            }
            if !self.identity.credential_holds(&self.caller).await {
                return CredentialEnd::Revoked;
            }
        }
    }
}
