//! The store conformance suite: one set of checks, run against every backend from
//! that backend's own tests. A behaviour exists only when every backend passes it.
//!
//! The checks never assume an empty database: they create uniquely named users and
//! only assert on what they created, so they can run against a shared Neo4j server
//! alongside other tests.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;

use aether_domain::StoreError;
use aether_domain::id::{NotebookId, TokenFamilyId, UserId};
use aether_domain::notebook::{Description, NewNotebook, NotebookName, NotebookPatch, NotebookStatus, Tag, Visibility};
use aether_domain::page::{Limit, PageRequest};
use aether_domain::store::{NewRefreshToken, RefreshOutcome, Store};
use aether_domain::time;
use aether_domain::user::{Email, NewUser, Role, UserPatch, UserStatus, Username};
use chrono::TimeDelta;
use uuid::Uuid;

/// Runs every check in turn, panicking with the check's name on the first failure.
pub async fn run_all(store: &dyn Store) {
    users_are_created_read_and_unique(store).await;
    users_are_updated_and_soft_deleted(store).await;
    users_page_newest_first(store).await;
    notebooks_round_trip_every_field(store).await;
    notebooks_need_an_existing_owner(store).await;
    owned_notebooks_page_with_cursors(store).await;
    notebooks_are_patched_and_soft_deleted(store).await;
    refresh_tokens_rotate_once_and_detect_reuse(store).await;
    concurrent_rotation_spends_a_token_once(store).await;
    expired_refresh_tokens_are_refused_and_purged(store).await;
    store.ping().await.expect("ping");
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", Uuid::now_v7().simple())
}

fn new_user(name: &str) -> NewUser {
    NewUser {
        id: UserId::new(),
        keycloak_id: None,
        username: Username::parse(&unique(name)).unwrap(),
        email: None,
        full_name: None,
        roles: vec![Role::User],
        password_hash: None,
        created_at: time::now(),
    }
}

fn new_notebook(owner: UserId, name: &str) -> NewNotebook {
    NewNotebook {
        id: NotebookId::new(),
        owner_id: owner,
        name: NotebookName::parse(name).unwrap(),
        description: None,
        visibility: Visibility::Private,
        tags: vec![],
        compliance_settings: serde_json::Map::new(),
        created_at: time::now(),
    }
}

fn limit(n: i64) -> Limit {
    Limit::parse(n).unwrap()
}

pub async fn users_are_created_read_and_unique(store: &dyn Store) {
    let before = store.count_users().await.unwrap();
    let mut alice = new_user("alice");
    alice.email = Some(Email::parse(&format!("{}@example.org", alice.username)).unwrap());
    alice.full_name = Some("Alice Example".into());
    alice.roles = vec![Role::User, Role::ComplianceOfficer];
    alice.password_hash = Some("$argon2id$fake".into());
    let created = store.create_user(alice.clone()).await.unwrap();
    assert_eq!(created.id, alice.id);
    assert_eq!(created.username, alice.username);
    assert_eq!(created.email, alice.email);
    assert_eq!(created.full_name.as_deref(), Some("Alice Example"));
    assert_eq!(created.roles, alice.roles);
    assert_eq!(created.status, UserStatus::Active);
    assert_eq!(created.created_at, alice.created_at);
    assert_eq!(created.last_login_at, None);
    assert_eq!(store.get_user(alice.id).await.unwrap(), created);
    assert_eq!(store.count_users().await.unwrap(), before + 1);

    let found = store.find_user_by_username(&alice.username).await.unwrap();
    assert_eq!(found.as_ref().map(|u| u.id), Some(alice.id));
    let credentials = store.find_local_credentials(&alice.username).await.unwrap().unwrap();
    assert_eq!(credentials.password_hash, "$argon2id$fake");
    assert_eq!(credentials.user.id, alice.id);

    let mut same_name = new_user("other");
    same_name.username = alice.username.clone();
    match store.create_user(same_name).await {
        Err(StoreError::Conflict(field)) => assert_eq!(field, "username"),
        other => panic!("duplicate username: expected Conflict, got {other:?}"),
    }
    let mut same_email = new_user("other");
    same_email.email = alice.email.clone();
    match store.create_user(same_email).await {
        Err(StoreError::Conflict(field)) => assert_eq!(field, "email"),
        other => panic!("duplicate email: expected Conflict, got {other:?}"),
    }

    let passwordless = store.create_user(new_user("sso")).await.unwrap();
    assert!(store.find_local_credentials(&passwordless.username).await.unwrap().is_none());
    let nobody = Username::parse(&unique("nobody")).unwrap();
    assert!(store.find_user_by_username(&nobody).await.unwrap().is_none());
    assert!(matches!(store.get_user(UserId::new()).await, Err(StoreError::NotFound)));
}

pub async fn users_are_updated_and_soft_deleted(store: &dyn Store) {
    let user = store.create_user(new_user("bob")).await.unwrap();
    let later = time::now() + TimeDelta::seconds(1);
    let email = Email::parse(&format!("{}@example.org", user.username)).unwrap();
    let patch = UserPatch {
        email: Some(Some(email.clone())),
        full_name: Some(Some("Bob".into())),
        roles: Some(vec![Role::Admin, Role::User]),
        ..UserPatch::default()
    };
    let updated = store.update_user(user.id, patch, later).await.unwrap();
    assert_eq!(updated.email, Some(email));
    assert_eq!(updated.full_name.as_deref(), Some("Bob"));
    assert_eq!(updated.roles, vec![Role::Admin, Role::User]);
    assert_eq!(updated.updated_at, later);
    assert_eq!(updated.created_at, user.created_at);
    assert_eq!(store.get_user(user.id).await.unwrap(), updated);

    let cleared = store
        .update_user(user.id, UserPatch { full_name: Some(None), ..UserPatch::default() }, later)
        .await
        .unwrap();
    assert_eq!(cleared.full_name, None);
    assert_eq!(cleared.roles, vec![Role::Admin, Role::User]);

    store.set_password_hash(user.id, "$argon2id$new".into(), later).await.unwrap();
    let credentials = store.find_local_credentials(&user.username).await.unwrap().unwrap();
    assert_eq!(credentials.password_hash, "$argon2id$new");

    store.record_login(user.id, later).await.unwrap();
    assert_eq!(store.get_user(user.id).await.unwrap().last_login_at, Some(later));

    let before = store.count_users().await.unwrap();
    store.soft_delete_user(user.id, later).await.unwrap();
    assert!(matches!(store.get_user(user.id).await, Err(StoreError::NotFound)));
    assert!(store.find_user_by_username(&user.username).await.unwrap().is_none());
    assert!(store.find_local_credentials(&user.username).await.unwrap().is_none());
    assert!(matches!(store.soft_delete_user(user.id, later).await, Err(StoreError::NotFound)));
    assert!(matches!(
        store.update_user(user.id, UserPatch::default(), later).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(store.record_login(user.id, later).await, Err(StoreError::NotFound)));
    assert_eq!(store.count_users().await.unwrap(), before - 1);
}

pub async fn users_page_newest_first(store: &dyn Store) {
    let mut created = Vec::new();
    for _ in 0..5 {
        created.push(store.create_user(new_user("pager")).await.unwrap().id);
    }
    let deleted = store.create_user(new_user("pager-deleted")).await.unwrap();
    store.soft_delete_user(deleted.id, time::now()).await.unwrap();

    let mut seen = Vec::new();
    let mut request = PageRequest { limit: limit(2), after: None };
    loop {
        let page = store.list_users(request).await.unwrap();
        assert!(page.items.len() <= 2);
        seen.extend(page.items.iter().map(|user| user.id));
        match page.next_after {
            Some(after) => request.after = Some(after),
            None => break,
        }
    }
    let unique_ids: HashSet<_> = seen.iter().collect();
    assert_eq!(unique_ids.len(), seen.len(), "pages overlap");
    assert!(seen.windows(2).all(|pair| pair[0] > pair[1]), "not newest first");
    assert!(!seen.contains(&deleted.id), "deleted user listed");
    let ours: Vec<_> = seen.iter().filter(|id| created.contains(id)).copied().collect();
    let mut expected = created.clone();
    expected.reverse();
    assert_eq!(ours, expected);
}

pub async fn notebooks_round_trip_every_field(store: &dyn Store) {
    let owner = store.create_user(new_user("owner")).await.unwrap();
    let mut new = new_notebook(owner.id, "Quarterly reports");
    new.description = Some(Description::parse("Board packs,\nline two").unwrap());
    new.visibility = Visibility::Shared;
    new.tags = Tag::parse_list(&["finance", "Q3"]).unwrap();
    new.compliance_settings =
        serde_json::json!({"pii_scan": true, "retention_days": 30, "rules": ["gdpr"]}).as_object().unwrap().clone();
    let created = store.create_notebook(new.clone()).await.unwrap();
    assert_eq!(created.id, new.id);
    assert_eq!(created.owner_id, owner.id);
    assert_eq!(created.status, NotebookStatus::Active);
    assert_eq!(created.document_count, 0);
    assert_eq!(created.total_size_bytes, 0);
    assert_eq!(created.created_at, new.created_at);
    assert_eq!(created.updated_at, new.created_at);
    let read = store.get_notebook(new.id).await.unwrap();
    assert_eq!(read, created);
    assert_eq!(read.tags.iter().map(Tag::as_str).collect::<Vec<_>>(), ["finance", "q3"]);
    assert_eq!(read.compliance_settings, new.compliance_settings);
    assert_eq!(read.description.as_ref().map(Description::as_str), Some("Board packs,\nline two"));
    assert!(matches!(store.get_notebook(NotebookId::new()).await, Err(StoreError::NotFound)));
}

pub async fn notebooks_need_an_existing_owner(store: &dyn Store) {
    let orphan = new_notebook(UserId::new(), "Orphan");
    assert!(matches!(store.create_notebook(orphan.clone()).await, Err(StoreError::NotFound)));
    assert!(matches!(store.get_notebook(orphan.id).await, Err(StoreError::NotFound)));

    let gone = store.create_user(new_user("gone")).await.unwrap();
    store.soft_delete_user(gone.id, time::now()).await.unwrap();
    assert!(matches!(store.create_notebook(new_notebook(gone.id, "Late")).await, Err(StoreError::NotFound)));
}

pub async fn owned_notebooks_page_with_cursors(store: &dyn Store) {
    let owner = store.create_user(new_user("paging-owner")).await.unwrap();
    let other = store.create_user(new_user("paging-other")).await.unwrap();
    let mut mine = Vec::new();
    for i in 0..45 {
        mine.push(store.create_notebook(new_notebook(owner.id, &format!("Notebook {i}"))).await.unwrap().id);
    }
    let theirs = store.create_notebook(new_notebook(other.id, "Not yours")).await.unwrap();
    let deleted = store.create_notebook(new_notebook(owner.id, "Deleted")).await.unwrap();
    store.soft_delete_notebook(deleted.id, time::now()).await.unwrap();

    let mut sizes = Vec::new();
    let mut seen = Vec::new();
    let mut request = PageRequest { limit: limit(20), after: None };
    loop {
        let page = store.list_owned_notebooks(owner.id, request).await.unwrap();
        sizes.push(page.items.len());
        assert!(page.items.iter().all(|notebook| notebook.owner_id == owner.id));
        seen.extend(page.items.iter().map(|notebook| notebook.id));
        match page.next_after {
            Some(after) => request.after = Some(after),
            None => break,
        }
    }
    assert_eq!(sizes, [20, 20, 5]);
    mine.reverse();
    assert_eq!(seen, mine, "owned notebooks, newest first, each once");
    assert!(!seen.contains(&theirs.id));
    assert!(!seen.contains(&deleted.id));

    let exact = store.list_owned_notebooks(other.id, PageRequest { limit: limit(1), after: None }).await.unwrap();
    assert_eq!(exact.items.len(), 1);
    assert_eq!(exact.next_after, None, "no cursor when the page is the last one");
    let nobody = store.list_owned_notebooks(UserId::new(), PageRequest::default()).await.unwrap();
    assert!(nobody.items.is_empty());
}

pub async fn notebooks_are_patched_and_soft_deleted(store: &dyn Store) {
    let owner = store.create_user(new_user("patcher")).await.unwrap();
    let mut new = new_notebook(owner.id, "Draft");
    new.description = Some(Description::parse("first").unwrap());
    new.tags = Tag::parse_list(&["a"]).unwrap();
    let created = store.create_notebook(new).await.unwrap();

    let later = time::now() + TimeDelta::seconds(2);
    let patch = NotebookPatch {
        name: Some(NotebookName::parse("Final").unwrap()),
        visibility: Some(Visibility::Public),
        ..NotebookPatch::default()
    };
    let updated = store.update_notebook(created.id, patch, later).await.unwrap();
    assert_eq!(updated.name.as_str(), "Final");
    assert_eq!(updated.visibility, Visibility::Public);
    assert_eq!(updated.description, created.description, "untouched field kept");
    assert_eq!(updated.tags, created.tags, "untouched field kept");
    assert_eq!(updated.created_at, created.created_at);
    assert_eq!(updated.updated_at, later);
    assert_eq!(store.get_notebook(created.id).await.unwrap(), updated);

    let patch = NotebookPatch {
        description: Some(None),
        tags: Some(vec![]),
        status: Some(NotebookStatus::Archived),
        ..NotebookPatch::default()
    };
    let cleared = store.update_notebook(created.id, patch, later).await.unwrap();
    assert_eq!(cleared.description, None);
    assert!(cleared.tags.is_empty());
    assert_eq!(cleared.status, NotebookStatus::Archived);
    assert_eq!(store.get_notebook(created.id).await.unwrap(), cleared);

    store.soft_delete_notebook(created.id, later).await.unwrap();
    assert!(matches!(store.get_notebook(created.id).await, Err(StoreError::NotFound)));
    assert!(matches!(
        store.update_notebook(created.id, NotebookPatch::default(), later).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(store.soft_delete_notebook(created.id, later).await, Err(StoreError::NotFound)));
    assert!(matches!(
        store.update_notebook(NotebookId::new(), NotebookPatch::default(), later).await,
        Err(StoreError::NotFound)
    ));
}

fn token(user_id: UserId, family_id: TokenFamilyId, lifetime: TimeDelta) -> NewRefreshToken {
    let now = time::now();
    NewRefreshToken {
        token_hash: unique("hash"),
        user_id,
        family_id,
        issued_at: now,
        expires_at: now + lifetime,
    }
}

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
