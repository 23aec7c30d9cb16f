//! Conformance checks for local users: creation, uniqueness, updates, paging.

use super::*;

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

    let cleared =
        store.update_user(user.id, UserPatch { full_name: Some(None), ..UserPatch::default() }, later).await.unwrap();
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
    assert!(matches!(store.update_user(user.id, UserPatch::default(), later).await, Err(StoreError::NotFound)));
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
