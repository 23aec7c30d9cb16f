//! Refresh tokens: as issued, as presented, and what presenting one leads to (rotation,
//! with reuse detection per RFC 6819 §5.2.2.3).

use crate::id::{TokenFamilyId, UserId};
use crate::time::Timestamp;
use crate::user::UserStatus;

/// A refresh token as stored: only its SHA-256 digest, never the token itself.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRefreshToken {
    pub token_hash: String,
    pub user_id: UserId,
    pub family_id: TokenFamilyId,
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
}

/// What presenting a refresh token led to.
#[derive(Debug, Clone, PartialEq)]
pub enum RefreshOutcome {
    /// The token was current: it is now spent and `replacement` is current.
    Rotated { user_id: UserId, family_id: TokenFamilyId },
    /// The token had already been spent: someone replayed it, so the whole family
    /// was revoked (RFC 6819 §5.2.2.3 refresh token rotation).
    Reused { user_id: UserId, family_id: TokenFamilyId },
    /// Unknown, expired or revoked.
    Invalid,
}

/// A stored refresh token as a store finds it when it is presented (under its lock),
/// with the status of the user it was issued to.
#[derive(Debug, Clone, PartialEq)]
pub struct PresentedRefreshToken {
    pub user_id: UserId,
    pub family_id: TokenFamilyId,
    pub expires_at: Timestamp,
    /// Already exchanged for a successor.
    pub spent: bool,
    pub revoked: bool,
    pub user_status: UserStatus,
}

impl PresentedRefreshToken {
    /// What presenting the token at `now` leads to: `Invalid` when it is revoked or
    /// expired or its user is not active; `Reused` when it was spent already (the store
    /// then revokes the family); else `Rotated` (the store spends it and stores the
    /// replacement in the same family).
    pub fn outcome(&self, now: Timestamp) -> RefreshOutcome {
        let (user_id, family_id) = (self.user_id, self.family_id);
        if self.revoked || self.expires_at <= now || self.user_status != UserStatus::Active {
            RefreshOutcome::Invalid
        } else if self.spent {
            RefreshOutcome::Reused { user_id, family_id }
        } else {
            RefreshOutcome::Rotated { user_id, family_id }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_presented_refresh_token_rotates_once_and_its_replay_is_reuse() {
        let now = crate::time::now();
        let token = PresentedRefreshToken {
            user_id: UserId::new(),
            family_id: TokenFamilyId::new(),
            expires_at: crate::time::after(now, Duration::from_secs(60)),
            spent: false,
            revoked: false,
            user_status: UserStatus::Active,
        };
        let (user_id, family_id) = (token.user_id, token.family_id);
        assert_eq!(token.outcome(now), RefreshOutcome::Rotated { user_id, family_id });
        let spent = PresentedRefreshToken { spent: true, ..token.clone() };
        assert_eq!(spent.outcome(now), RefreshOutcome::Reused { user_id, family_id });
        let revoked = PresentedRefreshToken { revoked: true, ..spent.clone() };
        assert_eq!(revoked.outcome(now), RefreshOutcome::Invalid, "revocation wins over reuse");
        assert_eq!(token.outcome(token.expires_at), RefreshOutcome::Invalid, "expired at its expiry");
        let suspended = PresentedRefreshToken { user_status: UserStatus::Suspended, ..token };
        assert_eq!(suspended.outcome(now), RefreshOutcome::Invalid);
    }
}
