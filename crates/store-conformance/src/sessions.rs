//! Conformance checks for refresh tokens: rotation, reuse detection, expiry.

use super::*;

pub async fn refresh_tokens_rotate_once_and_detect_reuse(store: &dyn Store) {
    let user = store.create_user(new_user("session")).await.unwrap();
    let family = TokenFamilyId::new();
    let first = token(user.id, family, TimeDelta::days(1));
    store.insert_refresh_token(first.clone()).await.unwrap();

    let second = unique("hash");
    let expires = time::now() + TimeDelta::days(1);
    let outcome = store.rotate_refresh_token(&first.token_hash, &second, expires, time::now()).await.unwrap();
    assert_eq!(outcome, RefreshOutcome::Rotated { user_id: user.id, family_id: family });

    let third = unique("hash");
    let outcome = store.rotate_refresh_token(&second, &third, expires, time::now()).await.unwrap();
    assert_eq!(outcome, RefreshOutcome::Rotated { user_id: user.id, family_id: family });

    // Replaying a spent token revokes the family, including the current token.
    let outcome = store.rotate_refresh_token(&first.token_hash, &unique("hash"), expires, time::now()).await.unwrap();
    assert_eq!(outcome, RefreshOutcome::Reused { user_id: user.id, family_id: family });
    let outcome = store.rotate_refresh_token(&third, &unique("hash"), expires, time::now()).await.unwrap();
    assert_eq!(outcome, RefreshOutcome::Invalid, "family revoked after reuse");

    let outcome = store.rotate_refresh_token(&unique("unknown"), &unique("hash"), expires, time::now()).await.unwrap();
    assert_eq!(outcome, RefreshOutcome::Invalid);

    // Logout revokes a family explicitly.
    let other_family = TokenFamilyId::new();
    let fresh = token(user.id, other_family, TimeDelta::days(1));
    store.insert_refresh_token(fresh.clone()).await.unwrap();
    store.revoke_token_family(other_family, time::now()).await.unwrap();
    let outcome = store.rotate_refresh_token(&fresh.token_hash, &unique("hash"), expires, time::now()).await.unwrap();
    assert_eq!(outcome, RefreshOutcome::Invalid);

    // A deleted user's tokens stop working.
    let leaver = store.create_user(new_user("leaver")).await.unwrap();
    let leaver_token = token(leaver.id, TokenFamilyId::new(), TimeDelta::days(1));
    store.insert_refresh_token(leaver_token.clone()).await.unwrap();
    store.soft_delete_user(leaver.id, time::now()).await.unwrap();
    let outcome =
        store.rotate_refresh_token(&leaver_token.token_hash, &unique("hash"), expires, time::now()).await.unwrap();
    assert_eq!(outcome, RefreshOutcome::Invalid);
}

pub async fn concurrent_rotation_spends_a_token_once(store: &dyn Store) {
    let user = store.create_user(new_user("racer")).await.unwrap();
    let first = token(user.id, TokenFamilyId::new(), TimeDelta::days(1));
    store.insert_refresh_token(first.clone()).await.unwrap();
    let expires = time::now() + TimeDelta::days(1);
    let attempts = (0..4).map(|_| {
        let replacement = unique("hash");
        let presented = first.token_hash.clone();
        async move { store.rotate_refresh_token(&presented, &replacement, expires, time::now()).await }
    });
    let outcomes = futures::future::join_all(attempts).await;
    let rotated = outcomes.iter().filter(|o| matches!(o, Ok(RefreshOutcome::Rotated { .. }))).count();
    assert_eq!(rotated, 1, "exactly one concurrent rotation wins: {outcomes:?}");
    assert!(
        outcomes.iter().all(|o| matches!(
            o,
            Ok(RefreshOutcome::Rotated { .. } | RefreshOutcome::Reused { .. } | RefreshOutcome::Invalid)
                | Err(StoreError::Unavailable(_))
        )),
        "{outcomes:?}"
    );
}

pub async fn expired_refresh_tokens_are_refused_and_purged(store: &dyn Store) {
    let user = store.create_user(new_user("expiry")).await.unwrap();
    let mut old = token(user.id, TokenFamilyId::new(), TimeDelta::days(1));
    old.issued_at = time::now() - TimeDelta::days(3);
    old.expires_at = time::now() - TimeDelta::days(2);
    store.insert_refresh_token(old.clone()).await.unwrap();
    let expires = time::now() + TimeDelta::days(1);
    let outcome = store.rotate_refresh_token(&old.token_hash, &unique("hash"), expires, time::now()).await.unwrap();
    assert_eq!(outcome, RefreshOutcome::Invalid);

    let live = token(user.id, TokenFamilyId::new(), TimeDelta::days(1));
    store.insert_refresh_token(live.clone()).await.unwrap();
    let purged = store.purge_expired_refresh_tokens(time::now() - TimeDelta::days(1)).await.unwrap();
    assert!(purged >= 1, "the expired token is purged");
    let outcome = store.rotate_refresh_token(&live.token_hash, &unique("hash"), expires, time::now()).await.unwrap();
    assert!(matches!(outcome, RefreshOutcome::Rotated { .. }), "a live token survives the purge");
}
