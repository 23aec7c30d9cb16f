//! Conformance checks for identity: synchronised users, search, role changes, API
//! keys, identity audit records and ephemeral entries.

use std::time::Duration;

use aether_domain::StoreError;
use aether_domain::activity::NewAuditRecord;
use aether_domain::api_key::{ApiKeyName, ApiKeyScope, NewApiKey};
use aether_domain::id::ApiKeyId;
use aether_domain::identity::ExternalUser;
use aether_domain::page::PageRequest;
use aether_domain::store::Store;
use aether_domain::time;
use aether_domain::user::{Email, Role, UserPatch, Username};
use chrono::TimeDelta;

use crate::{new_user, unique};

fn external(keycloak_id: &str, username: &str) -> ExternalUser {
    ExternalUser {
        keycloak_id: keycloak_id.to_owned(),
        username: Username::parse(username).unwrap(),
        email: Some(Email::parse(&format!("{username}@example.test")).unwrap()),
        full_name: Some("Kay Cloak".into()),
        roles: vec![Role::User, Role::ComplianceOfficer],
        groups: vec!["users".into(), "compliance".into()],
        attributes: serde_json::json!({"department": ["legal"]}).as_object().unwrap().clone(),
        logged_in_at: None,
    }
}

fn audit(action: &'static str, actor: Option<aether_domain::id::UserId>, resource: String) -> NewAuditRecord {
    NewAuditRecord {
        action,
        resource_type: "user",
        resource_id: resource,
        performed_by: actor,
        details: serde_json::Map::new(),
        ip_address: Some("192.0.2.7".into()),
        user_agent: Some("conformance".into()),
        at: time::now(),
    }
}

pub async fn external_users_are_created_once_and_updated(store: &dyn Store) {
    let kid = unique("kc");
    let name = unique("kay");
    let at = time::now();
    let created = store.sync_external_user(external(&kid, &name), at).await.unwrap();
    assert_eq!(created.keycloak_id.as_deref(), Some(kid.as_str()));
    assert_eq!(created.roles, vec![Role::User, Role::ComplianceOfficer]);
    assert_eq!(created.groups, vec!["users".to_owned(), "compliance".to_owned()]);
    assert_eq!(created.attributes["department"], serde_json::json!(["legal"]));
    assert_eq!(created.last_sync_at, Some(at));
    assert_eq!(created.last_login_at, None);

    let mut changed = external(&kid, &name);
    changed.full_name = Some("Kay C. Loak".into());
    changed.roles = vec![Role::Viewer];
    changed.groups = vec![];
    let login = time::now();
    changed.logged_in_at = Some(login);
    let updated = store.sync_external_user(changed, time::now()).await.unwrap();
    assert_eq!(updated.id, created.id, "the same keycloak id is the same user");
    assert_eq!(updated.full_name.as_deref(), Some("Kay C. Loak"));
    assert_eq!(updated.roles, vec![Role::Viewer]);
    assert!(updated.groups.is_empty());
    assert_eq!(updated.last_login_at, Some(login));
    assert_eq!(updated.created_at, created.created_at);
    // A sync without a login keeps the last login.
    let again = store.sync_external_user(external(&kid, &name), time::now()).await.unwrap();
    assert_eq!(again.last_login_at, Some(login));

    let found = store.find_user_by_keycloak_id(&kid).await.unwrap().unwrap();
    assert_eq!(found.id, created.id);
    assert!(store.find_user_by_keycloak_id(&unique("nobody")).await.unwrap().is_none());

    // Preferences are Aether's own and survive synchronisation.
    let prefs = serde_json::json!({"theme": "dark"}).as_object().unwrap().clone();
    let patch = UserPatch { preferences: Some(prefs.clone()), ..UserPatch::default() };
    store.update_user(created.id, patch, time::now()).await.unwrap();
    let synced = store.sync_external_user(external(&kid, &name), time::now()).await.unwrap();
    assert_eq!(synced.preferences, prefs);
}

pub async fn concurrent_first_syncs_create_one_user(store: &dyn Store) {
    let kid = unique("kc");
    let name = unique("rush");
    let attempts = (0..100).map(|_| {
        let user = external(&kid, &name);
        async move { store.sync_external_user(user, time::now()).await }
    });
    let outcomes = futures::future::join_all(attempts).await;
    let ids: std::collections::HashSet<_> = outcomes.iter().filter_map(|o| o.as_ref().ok()).map(|u| u.id).collect();
    assert_eq!(
        ids.len(),
        1,
        "one user for one keycloak id: {:?}",
        outcomes.iter().filter(|o| o.is_err()).collect::<Vec<_>>()
    );
    let failures: Vec<_> = outcomes.iter().filter(|o| o.is_err()).collect();
    assert!(
        failures.iter().all(|o| matches!(o, Err(StoreError::Unavailable(_) | StoreError::Conflict(_)))),
        "only retryable failures: {failures:?}"
    );
    let found = store.search_users(&name, 10).await.unwrap();
    assert_eq!(found.len(), 1);
}

pub async fn a_taken_username_is_a_conflict(store: &dyn Store) {
    let local = store.create_user(new_user("clash")).await.unwrap();
    let error = store.sync_external_user(external(&unique("kc"), local.username.as_str()), time::now()).await;
    assert!(matches!(error, Err(StoreError::Conflict(ref field)) if field == "username"), "{error:?}");
}

pub async fn users_are_searched_by_name_email_and_full_name(store: &dyn Store) {
    let marker = unique("srch").to_lowercase();
    let mut first = new_user("x");
    first.username = Username::parse(&format!("{marker}-zed")).unwrap();
    let mut second = new_user("x");
    second.full_name = Some(format!("Someone {marker}"));
    let mut third = new_user("x");
    third.email = Some(Email::parse(&format!("{marker}@example.test")).unwrap());
    for user in [first.clone(), second.clone(), third.clone()] {
        store.create_user(user).await.unwrap();
    }
    let found = store.search_users(&marker.to_uppercase(), 10).await.unwrap();
    assert_eq!(found.len(), 3, "{found:?}");
    assert_eq!(found[0].id, first.id, "a username prefix ranks first");
    assert_eq!(store.search_users(&marker, 2).await.unwrap().len(), 2, "limit applies");
    assert!(store.search_users("%", 10).await.unwrap().iter().all(|u| u.username.as_str().contains('%')));
    store.soft_delete_user(first.id, time::now()).await.unwrap();
    assert_eq!(store.search_users(&marker, 10).await.unwrap().len(), 2, "deleted users are not found");
}

pub async fn role_changes_are_audited(store: &dyn Store) {
    let admin = store.create_user(new_user("admin")).await.unwrap();
    let user = store.create_user(new_user("promoted")).await.unwrap();
    let mut record = audit("roles_changed", Some(admin.id), user.id.to_string());
    record.details.insert("roles".into(), serde_json::json!(["aether-viewer"]));
    let changed = store.change_user_roles(user.id, vec![Role::Viewer], record).await.unwrap();
    assert_eq!(changed.roles, vec![Role::Viewer]);
    assert_eq!(store.get_user(user.id).await.unwrap().roles, vec![Role::Viewer]);
    let entries = store
        .list_audit(Some(user.id.to_string()), PageRequest { limit: crate::limit(10), after: None })
        .await
        .unwrap();
    assert_eq!(entries.items.len(), 1);
    assert_eq!(entries.items[0].action, "roles_changed");
    assert_eq!(entries.items[0].performed_by, Some(admin.id));
    assert_eq!(entries.items[0].ip_address.as_deref(), Some("192.0.2.7"));
    let activity: Vec<_> = store
        .pending_events(100_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|event| {
            event.topic == aether_domain::events::topics::USERS_ACTIVITY && event.key == admin.id.to_string()
        })
        .collect();
    assert_eq!(activity.len(), 1, "the audited action is the admin's activity: {activity:?}");
    assert_eq!(activity[0].payload["activity"], "roles_changed");
    assert_eq!(activity[0].payload["resource_id"], user.id.to_string());
    let missing = store
        .change_user_roles(aether_domain::id::UserId::new(), vec![], audit("roles_changed", None, "x".into()))
        .await;
    assert!(matches!(missing, Err(StoreError::NotFound)));

    // Failed logins by nobody known are audited too.
    let resource = unique("ghost");
    store.record_audit(audit("authentication_failed", None, resource.clone())).await.unwrap();
    let entries = store.list_audit(Some(resource), PageRequest { limit: crate::limit(10), after: None }).await.unwrap();
    assert_eq!(entries.items.len(), 1);
    assert_eq!(entries.items[0].performed_by, None);
}

/// Every active administrator of the store, with their roles.
async fn active_administrators(store: &dyn Store) -> Vec<(aether_domain::id::UserId, Vec<Role>)> {
    let mut found = Vec::new();
    let mut after = None;
    loop {
        let page = store.list_users(PageRequest { limit: crate::limit(100), after }).await.unwrap();
        found.extend(
            page.items
                .iter()
                .filter(|user| {
                    user.status == aether_domain::user::UserStatus::Active && user.roles.contains(&Role::Admin)
                })
                .map(|user| (user.id, user.roles.clone())),
        );
        match page.next_after {
            Some(next) => after = Some(next),
            None => return found,
        }
    }
}

/// The last active administrator cannot lose the role. On a shared store (Neo4j in the
/// test run) the store's other administrators are demoted for the check and restored
/// before anything is asserted.
pub async fn the_last_administrator_keeps_the_role(store: &dyn Store) {
    let mut first = new_user("first-admin");
    first.roles = vec![Role::Admin, Role::User];
    let first = store.create_user(first).await.unwrap();
    let second = store.create_user(new_user("second-admin")).await.unwrap();
    let others: Vec<_> = active_administrators(store).await.into_iter().filter(|(id, _)| *id != first.id).collect();
    for (id, roles) in &others {
        let without: Vec<Role> = roles.iter().copied().filter(|role| *role != Role::Admin).collect();
        store.change_user_roles(*id, without, audit("roles_changed", None, id.to_string())).await.unwrap();
    }
    let alone = store.change_user_roles(first.id, vec![Role::User], audit("roles_changed", None, "x".into())).await;
    let still_admin = store.get_user(first.id).await.unwrap().roles;
    let promoted = store
        .change_user_roles(second.id, vec![Role::Admin], audit("roles_changed", None, "x".into()))
        .await
        .map(|user| user.roles);
    let handed_over = store
        .change_user_roles(first.id, vec![Role::User], audit("roles_changed", None, "x".into()))
        .await
        .map(|user| user.roles);
    for (id, roles) in &others {
        store.change_user_roles(*id, roles.clone(), audit("roles_changed", None, id.to_string())).await.unwrap();
    }
    assert!(
        matches!(&alone, Err(StoreError::Conflict(rule)) if rule == aether_domain::capability::LAST_ADMINISTRATOR),
        "{alone:?}"
    );
    assert!(still_admin.contains(&Role::Admin), "the refused change left nothing behind: {still_admin:?}");
    assert_eq!(promoted.unwrap(), vec![Role::Admin]);
    assert_eq!(handed_over.unwrap(), vec![Role::User], "with another administrator, the role can go");
    // Changes that take no administrator role away are never refused.
    let third = store.create_user(new_user("plain")).await.unwrap();
    store.change_user_roles(third.id, vec![Role::Viewer], audit("roles_changed", None, "x".into())).await.unwrap();
}

pub async fn api_keys_are_created_listed_used_and_revoked(store: &dyn Store) {
    let owner = store.create_user(new_user("keyholder")).await.unwrap();
    let other = store.create_user(new_user("other")).await.unwrap();
    let hash = unique("digest");
    let key = NewApiKey {
        id: ApiKeyId::new(),
        user_id: owner.id,
        name: ApiKeyName::parse("ci").unwrap(),
        prefix: "aek_abcd".into(),
        secret_hash: hash.clone(),
        scopes: vec![ApiKeyScope::Read, ApiKeyScope::Write],
        created_at: time::now(),
        expires_at: Some(time::now() + TimeDelta::days(30)),
    };
    let created =
        store.create_api_key(key.clone(), audit("api_key_created", Some(owner.id), key.id.to_string())).await.unwrap();
    assert_eq!(created.id, key.id);
    assert_eq!(created.scopes, vec![ApiKeyScope::Read, ApiKeyScope::Write]);
    assert_eq!(created.expires_at, key.expires_at);
    assert!(created.is_active(time::now()));

    let duplicate = NewApiKey { id: ApiKeyId::new(), ..key.clone() };
    let clash = store.create_api_key(duplicate, audit("api_key_created", Some(owner.id), "x".into())).await;
    assert!(matches!(clash, Err(StoreError::Conflict(ref f)) if f == "api_key"), "{clash:?}");
    let orphan = NewApiKey {
        id: ApiKeyId::new(),
        user_id: aether_domain::id::UserId::new(),
        secret_hash: unique("h"),
        ..key.clone()
    };
    assert!(matches!(
        store.create_api_key(orphan, audit("api_key_created", None, "x".into())).await,
        Err(StoreError::NotFound)
    ));

    let found = store.find_api_key(&hash).await.unwrap().unwrap();
    assert_eq!(found, created);
    assert!(store.find_api_key(&unique("nope")).await.unwrap().is_none());
    let used = time::now();
    store.touch_api_key(key.id, used).await.unwrap();
    assert_eq!(store.find_api_key(&hash).await.unwrap().unwrap().last_used_at, Some(used));

    let listed = store.list_api_keys(owner.id, PageRequest::default()).await.unwrap();
    assert_eq!(listed.items.iter().map(|k| k.id).collect::<Vec<_>>(), vec![key.id]);
    assert_eq!(listed.next_after, None);
    assert!(store.list_api_keys(other.id, PageRequest::default()).await.unwrap().items.is_empty());

    // Only the owner can revoke, and revoking twice changes nothing.
    let stranger =
        store.revoke_api_key(other.id, key.id, audit("api_key_revoked", Some(other.id), key.id.to_string())).await;
    assert!(matches!(stranger, Err(StoreError::NotFound)));
    let revoked = store
        .revoke_api_key(owner.id, key.id, audit("api_key_revoked", Some(owner.id), key.id.to_string()))
        .await
        .unwrap();
    assert!(revoked.revoked_at.is_some());
    assert!(!revoked.is_active(time::now()));
    let again = store
        .revoke_api_key(owner.id, key.id, audit("api_key_revoked", Some(owner.id), key.id.to_string()))
        .await
        .unwrap();
    assert_eq!(again.revoked_at, revoked.revoked_at);
    let entries =
        store.list_audit(Some(key.id.to_string()), PageRequest { limit: crate::limit(10), after: None }).await.unwrap();
    let actions: Vec<_> = entries.items.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, vec!["api_key_revoked", "api_key_created"]);
}

pub async fn ephemeral_entries_expire_and_are_taken_once(store: &dyn Store) {
    let key = unique("eph");
    assert_eq!(store.get(&key).await.unwrap(), None);
    store.put(&key, b"one", Duration::from_secs(60)).await.unwrap();
    assert_eq!(store.get(&key).await.unwrap().as_deref(), Some(&b"one"[..]));
    store.put(&key, b"two", Duration::from_secs(60)).await.unwrap();
    assert_eq!(store.get(&key).await.unwrap().as_deref(), Some(&b"two"[..]));

    let takes = (0..5).map(|_| store.take(&key));
    let taken: Vec<_> = futures::future::join_all(takes).await.into_iter().map(Result::unwrap).collect();
    assert_eq!(taken.iter().filter(|t| t.is_some()).count(), 1, "taken once: {taken:?}");
    assert_eq!(store.get(&key).await.unwrap(), None);

    let short = unique("eph");
    store.put(&short, &[0, 255, 7], Duration::from_millis(200)).await.unwrap();
    assert_eq!(store.get(&short).await.unwrap().as_deref(), Some(&[0u8, 255, 7][..]));
    tokio_free_sleep(Duration::from_millis(400));
    assert_eq!(store.get(&short).await.unwrap(), None, "expired entries read as absent");
    assert_eq!(store.take(&short).await.unwrap(), None);

    let purged = unique("eph");
    store.put(&purged, b"x", Duration::from_millis(100)).await.unwrap();
    tokio_free_sleep(Duration::from_millis(200));
    assert!(store.purge_expired(time::now()).await.unwrap() >= 1);

    let deleted = unique("eph");
    store.put(&deleted, b"x", Duration::from_secs(60)).await.unwrap();
    store.delete(&deleted).await.unwrap();
    assert_eq!(store.get(&deleted).await.unwrap(), None);
}

/// The suite is runtime-agnostic; a short blocking sleep is enough to let a TTL pass.
fn tokio_free_sleep(duration: Duration) {
    std::thread::sleep(duration);
}
