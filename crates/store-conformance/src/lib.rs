//! The store conformance suite: one set of checks, run against every backend from
//! that backend's own tests. A behaviour exists only when every backend passes it.
//!
//! The checks never assume an empty database: they create uniquely named users and
//! only assert on what they created, so they can run against a shared Neo4j server
//! alongside other tests.
#![allow(clippy::unwrap_used)]

mod documents;
mod identity;

use std::collections::HashSet;

use aether_domain::StoreError;
use aether_domain::access::Collaboration;
use aether_domain::access::{CollaborationStatus, Permission};
use aether_domain::activity::Change;
use aether_domain::compliance::{ComplianceSettings, RedactionMode};
use aether_domain::id::{NotebookId, TokenFamilyId, UserId};
use aether_domain::notebook::{
    BulkAction, Description, ListScope, NewNotebook, NotebookName, NotebookPatch, NotebookQuery, NotebookStatus,
    SortOrder, Tag, Visibility,
};
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
    versions_guard_against_lost_updates(store).await;
    listings_filter_and_sort(store).await;
    deleted_notebooks_can_be_restored(store).await;
    every_change_is_recorded(store).await;
    notebooks_are_duplicated_deeply(store).await;
    bulk_updates_are_all_or_nothing(store).await;
    tags_are_counted_through_tagged_with(store).await;
    sharing_writes_an_event_to_the_outbox(store).await;
    refresh_tokens_rotate_once_and_detect_reuse(store).await;
    concurrent_rotation_spends_a_token_once(store).await;
    expired_refresh_tokens_are_refused_and_purged(store).await;
    notebooks_form_a_hierarchy(store).await;
    moves_reject_cycles_and_excess_depth(store).await;
    deleting_a_parent_needs_cascade(store).await;
    collaborations_grant_along_the_hierarchy(store).await;
    identity::external_users_are_created_once_and_updated(store).await;
    identity::concurrent_first_syncs_create_one_user(store).await;
    identity::a_taken_username_is_a_conflict(store).await;
    identity::users_are_searched_by_name_email_and_full_name(store).await;
    identity::role_changes_are_audited(store).await;
    identity::the_last_administrator_keeps_the_role(store).await;
    identity::api_keys_are_created_listed_used_and_revoked(store).await;
    identity::ephemeral_entries_expire_and_are_taken_once(store).await;
    documents::upload_jobs_run_their_course(store).await;
    documents::reuploads_add_versions(store).await;
    documents::abandoned_jobs_queue_their_blobs(store).await;
    documents::leases_expire_and_uploads_go_stale(store).await;
    documents::deleting_a_document_queues_every_blob(store).await;
    store.ping().await.expect("ping");
}

const MAX_DEPTH: u32 = 32;

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
        parent_id: None,
        name: NotebookName::parse(name).unwrap(),
        description: None,
        visibility: Visibility::Private,
        tags: vec![],
        compliance_settings: ComplianceSettings::default(),
        is_template: false,
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

pub async fn notebooks_round_trip_every_field(store: &dyn Store) {
    let owner = store.create_user(new_user("owner")).await.unwrap();
    let mut new = new_notebook(owner.id, "Quarterly reports");
    new.description = Some(Description::parse("Board packs,\nline two").unwrap());
    new.visibility = Visibility::Shared;
    new.tags = Tag::parse_list(&["finance", "Q3"]).unwrap();
    new.compliance_settings = ComplianceSettings {
        pii_detection: true,
        redaction_mode: RedactionMode::Mask,
        retention_days: Some(30),
        allowed_content_types: vec!["application/pdf".into()],
        hipaa_mode: true,
    };
    let created = store.create_notebook(new.clone(), MAX_DEPTH, &Change::system(time::now())).await.unwrap();
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
    assert!(matches!(
        store.create_notebook(orphan.clone(), MAX_DEPTH, &Change::system(time::now())).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(store.get_notebook(orphan.id).await, Err(StoreError::NotFound)));

    let gone = store.create_user(new_user("gone")).await.unwrap();
    store.soft_delete_user(gone.id, time::now()).await.unwrap();
    assert!(matches!(
        store.create_notebook(new_notebook(gone.id, "Late"), MAX_DEPTH, &Change::system(time::now())).await,
        Err(StoreError::NotFound)
    ));
}

pub async fn owned_notebooks_page_with_cursors(store: &dyn Store) {
    let owner = store.create_user(new_user("paging-owner")).await.unwrap();
    let other = store.create_user(new_user("paging-other")).await.unwrap();
    let mut mine = Vec::new();
    for i in 0..45 {
        mine.push(
            store
                .create_notebook(
                    new_notebook(owner.id, &format!("Notebook {i}")),
                    MAX_DEPTH,
                    &Change::system(time::now()),
                )
                .await
                .unwrap()
                .id,
        );
    }
    let theirs = store
        .create_notebook(new_notebook(other.id, "Not yours"), MAX_DEPTH, &Change::system(time::now()))
        .await
        .unwrap();
    let deleted = store
        .create_notebook(new_notebook(owner.id, "Deleted"), MAX_DEPTH, &Change::system(time::now()))
        .await
        .unwrap();
    store.soft_delete_notebook(deleted.id, false, &Change::system(time::now())).await.unwrap();

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
    let created = store.create_notebook(new, MAX_DEPTH, &Change::system(time::now())).await.unwrap();

    let later = time::now() + TimeDelta::seconds(2);
    let patch = NotebookPatch {
        name: Some(NotebookName::parse("Final").unwrap()),
        visibility: Some(Visibility::Public),
        ..NotebookPatch::default()
    };
    let updated = store.update_notebook(created.id, patch, None, &Change::system(later)).await.unwrap();
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
    let cleared = store.update_notebook(created.id, patch, None, &Change::system(later)).await.unwrap();
    assert_eq!(cleared.description, None);
    assert!(cleared.tags.is_empty());
    assert_eq!(cleared.status, NotebookStatus::Archived);
    assert_eq!(store.get_notebook(created.id).await.unwrap(), cleared);

    store.soft_delete_notebook(created.id, false, &Change::system(later)).await.unwrap();
    assert!(matches!(store.get_notebook(created.id).await, Err(StoreError::NotFound)));
    assert!(matches!(
        store.update_notebook(created.id, NotebookPatch::default(), None, &Change::system(later)).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.soft_delete_notebook(created.id, false, &Change::system(later)).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.update_notebook(NotebookId::new(), NotebookPatch::default(), None, &Change::system(later)).await,
        Err(StoreError::NotFound)
    ));
}

fn token(user_id: UserId, family_id: TokenFamilyId, lifetime: TimeDelta) -> NewRefreshToken {
    let now = time::now();
    NewRefreshToken { token_hash: unique("hash"), user_id, family_id, issued_at: now, expires_at: now + lifetime }
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

fn child_of(owner: UserId, parent: NotebookId, name: &str) -> NewNotebook {
    NewNotebook { parent_id: Some(parent), ..new_notebook(owner, name) }
}

pub async fn notebooks_form_a_hierarchy(store: &dyn Store) {
    let owner = store.create_user(new_user("tree")).await.unwrap();
    let stranger = store.create_user(new_user("stranger")).await.unwrap();
    let root =
        store.create_notebook(new_notebook(owner.id, "Root"), MAX_DEPTH, &Change::system(time::now())).await.unwrap();
    assert_eq!(root.parent_id, None);
    let child = store
        .create_notebook(child_of(owner.id, root.id, "Child"), MAX_DEPTH, &Change::system(time::now()))
        .await
        .unwrap();
    assert_eq!(child.parent_id, Some(root.id));
    let mut public = child_of(owner.id, root.id, "Public child");
    public.visibility = Visibility::Public;
    let public = store.create_notebook(public, MAX_DEPTH, &Change::system(time::now())).await.unwrap();
    let grandchild = store
        .create_notebook(child_of(owner.id, child.id, "Grandchild"), MAX_DEPTH, &Change::system(time::now()))
        .await
        .unwrap();
    assert_eq!(store.get_notebook(grandchild.id).await.unwrap().parent_id, Some(child.id));

    let chain = store.access_chain(stranger.id, grandchild.id).await.unwrap();
    assert_eq!(chain.iter().map(|link| link.notebook_id).collect::<Vec<_>>(), [grandchild.id, child.id, root.id]);
    assert!(chain.iter().all(|link| link.owner_id == owner.id && link.grant.is_none()));
    assert!(matches!(store.access_chain(owner.id, NotebookId::new()).await, Err(StoreError::NotFound)));

    let children = store.list_children(root.id, false, PageRequest::default()).await.unwrap();
    assert_eq!(children.items.iter().map(|n| n.id).collect::<Vec<_>>(), [public.id, child.id]);
    let public_only = store.list_children(root.id, true, PageRequest::default()).await.unwrap();
    assert_eq!(public_only.items.iter().map(|n| n.id).collect::<Vec<_>>(), [public.id]);
    let paged = store.list_children(root.id, false, PageRequest { limit: limit(1), after: None }).await.unwrap();
    assert_eq!(paged.items.len(), 1);
    assert!(paged.next_after.is_some());

    // Depth: root is 1, so with a limit of 3 the grandchild (depth 3) may have no child.
    match store.create_notebook(child_of(owner.id, grandchild.id, "Too deep"), 3, &Change::system(time::now())).await {
        Err(StoreError::Conflict(rule)) => assert_eq!(rule, "depth"),
        other => panic!("expected Conflict(depth), got {other:?}"),
    }
    assert!(
        store
            .create_notebook(child_of(owner.id, grandchild.id, "Deep enough"), 4, &Change::system(time::now()))
            .await
            .is_ok()
    );
    let missing_parent = child_of(owner.id, NotebookId::new(), "Lost");
    assert!(matches!(
        store.create_notebook(missing_parent, MAX_DEPTH, &Change::system(time::now())).await,
        Err(StoreError::NotFound)
    ));
}

pub async fn moves_reject_cycles_and_excess_depth(store: &dyn Store) {
    let owner = store.create_user(new_user("mover")).await.unwrap();
    let a = store.create_notebook(new_notebook(owner.id, "A"), MAX_DEPTH, &Change::system(time::now())).await.unwrap();
    let b =
        store.create_notebook(child_of(owner.id, a.id, "B"), MAX_DEPTH, &Change::system(time::now())).await.unwrap();
    let c =
        store.create_notebook(child_of(owner.id, b.id, "C"), MAX_DEPTH, &Change::system(time::now())).await.unwrap();
    let d = store.create_notebook(new_notebook(owner.id, "D"), MAX_DEPTH, &Change::system(time::now())).await.unwrap();
    let later = time::now() + TimeDelta::seconds(1);

    for (moved, under) in [(a.id, c.id), (a.id, a.id), (b.id, c.id)] {
        match store.move_notebook(moved, Some(under), None, MAX_DEPTH, &Change::system(later)).await {
            Err(StoreError::Conflict(rule)) => assert_eq!(rule, "cycle"),
            other => panic!("expected Conflict(cycle), got {other:?}"),
        }
    }
    // Moving B (height 2: B, C) under D (depth 1) needs a limit of 3.
    match store.move_notebook(b.id, Some(d.id), None, 2, &Change::system(later)).await {
        Err(StoreError::Conflict(rule)) => assert_eq!(rule, "depth"),
        other => panic!("expected Conflict(depth), got {other:?}"),
    }
    let moved = store.move_notebook(b.id, Some(d.id), None, 3, &Change::system(later)).await.unwrap();
    assert_eq!(moved.parent_id, Some(d.id));
    assert_eq!(moved.updated_at, later);
    let chain = store.access_chain(owner.id, c.id).await.unwrap();
    assert_eq!(chain.iter().map(|link| link.notebook_id).collect::<Vec<_>>(), [c.id, b.id, d.id]);
    assert!(store.list_children(a.id, false, PageRequest::default()).await.unwrap().items.is_empty());

    let to_root = store.move_notebook(c.id, None, None, MAX_DEPTH, &Change::system(later)).await.unwrap();
    assert_eq!(to_root.parent_id, None);
    assert_eq!(store.access_chain(owner.id, c.id).await.unwrap().len(), 1);
    assert!(matches!(
        store.move_notebook(NotebookId::new(), None, None, MAX_DEPTH, &Change::system(later)).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.move_notebook(c.id, Some(NotebookId::new()), None, MAX_DEPTH, &Change::system(later)).await,
        Err(StoreError::NotFound)
    ));
}

pub async fn deleting_a_parent_needs_cascade(store: &dyn Store) {
    let owner = store.create_user(new_user("deleter")).await.unwrap();
    let root =
        store.create_notebook(new_notebook(owner.id, "Root"), MAX_DEPTH, &Change::system(time::now())).await.unwrap();
    let child = store
        .create_notebook(child_of(owner.id, root.id, "Child"), MAX_DEPTH, &Change::system(time::now()))
        .await
        .unwrap();
    let grandchild = store
        .create_notebook(child_of(owner.id, child.id, "Grandchild"), MAX_DEPTH, &Change::system(time::now()))
        .await
        .unwrap();
    match store.soft_delete_notebook(root.id, false, &Change::system(time::now())).await {
        Err(StoreError::Conflict(rule)) => assert_eq!(rule, "children"),
        other => panic!("expected Conflict(children), got {other:?}"),
    }
    assert!(store.get_notebook(root.id).await.is_ok(), "a refused delete changes nothing");
    store.soft_delete_notebook(root.id, true, &Change::system(time::now())).await.unwrap();
    for id in [root.id, child.id, grandchild.id] {
        assert!(matches!(store.get_notebook(id).await, Err(StoreError::NotFound)), "cascade reaches {id}");
    }
    // A leaf needs no cascade.
    let leaf =
        store.create_notebook(new_notebook(owner.id, "Leaf"), MAX_DEPTH, &Change::system(time::now())).await.unwrap();
    store.soft_delete_notebook(leaf.id, false, &Change::system(time::now())).await.unwrap();
}

fn collaboration(notebook: NotebookId, user: UserId, inviter: UserId, permission: Permission) -> Collaboration {
    let now = time::now();
    Collaboration {
        notebook_id: notebook,
        user_id: user,
        permission,
        status: CollaborationStatus::Pending,
        granted_by: inviter,
        granted_at: now,
        accepted_at: None,
        updated_at: now,
    }
}

pub async fn collaborations_grant_along_the_hierarchy(store: &dyn Store) {
    let owner = store.create_user(new_user("sharer")).await.unwrap();
    let guest = store.create_user(new_user("guest")).await.unwrap();
    let root = store
        .create_notebook(new_notebook(owner.id, "Shared root"), MAX_DEPTH, &Change::system(time::now()))
        .await
        .unwrap();
    let child = store
        .create_notebook(child_of(owner.id, root.id, "Shared child"), MAX_DEPTH, &Change::system(time::now()))
        .await
        .unwrap();
    let unrelated = store
        .create_notebook(new_notebook(owner.id, "Unshared"), MAX_DEPTH, &Change::system(time::now()))
        .await
        .unwrap();
    let guests_own = store
        .create_notebook(new_notebook(guest.id, "Guest's own"), MAX_DEPTH, &Change::system(time::now()))
        .await
        .unwrap();

    let invited = store
        .put_collaboration(collaboration(root.id, guest.id, owner.id, Permission::Write), &Change::system(time::now()))
        .await
        .unwrap();
    assert_eq!(invited.status, CollaborationStatus::Pending);
    assert_eq!(invited.permission, Permission::Write);
    assert_eq!(invited.granted_by, owner.id);
    assert_eq!(invited.accepted_at, None);
    let pending = store.list_user_collaborations(guest.id, CollaborationStatus::Pending).await.unwrap();
    assert_eq!(pending.iter().map(|c| c.notebook_id).collect::<Vec<_>>(), [root.id]);
    let chain = store.access_chain(guest.id, child.id).await.unwrap();
    assert!(chain.iter().all(|link| link.grant.is_none()), "a pending invitation grants nothing");
    assert!(store.list_shared_with(guest.id, PageRequest::default()).await.unwrap().items.is_empty());

    let accepted = store
        .set_collaboration_status(root.id, guest.id, CollaborationStatus::Active, &Change::system(time::now()))
        .await
        .unwrap();
    assert_eq!(accepted.status, CollaborationStatus::Active);
    assert_eq!(accepted.granted_at, invited.granted_at);
    assert!(accepted.accepted_at.is_some());
    let chain = store.access_chain(guest.id, child.id).await.unwrap();
    assert_eq!(chain[0].grant, None);
    assert_eq!(chain[1].grant, Some(Permission::Write), "the grant sits on the parent link");
    let shared = store.list_shared_with(guest.id, PageRequest::default()).await.unwrap();
    assert_eq!(shared.items.iter().map(|n| n.id).collect::<Vec<_>>(), [child.id, root.id]);
    assert!(!shared.items.iter().any(|n| n.id == unrelated.id || n.id == guests_own.id));
    assert!(store.access_chain(owner.id, child.id).await.unwrap().iter().all(|link| link.grant.is_none()));

    // Re-sharing replaces the permission.
    let mut downgrade = collaboration(root.id, guest.id, owner.id, Permission::Read);
    downgrade.status = CollaborationStatus::Active;
    store.put_collaboration(downgrade, &Change::system(time::now())).await.unwrap();
    let listed = store.list_collaborations(root.id).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].permission, Permission::Read);
    assert_eq!(store.access_chain(guest.id, child.id).await.unwrap()[1].grant, Some(Permission::Read));

    assert_eq!(listed[0].accepted_at, accepted.accepted_at, "re-granting an active grant keeps accepted_at");
    store.revoke_collaboration(root.id, guest.id, &Change::system(time::now())).await.unwrap();
    assert!(matches!(
        store.revoke_collaboration(root.id, guest.id, &Change::system(time::now())).await,
        Err(StoreError::NotFound)
    ));
    assert!(store.list_shared_with(guest.id, PageRequest::default()).await.unwrap().items.is_empty());
    assert!(store.access_chain(guest.id, child.id).await.unwrap().iter().all(|link| link.grant.is_none()));
    let kept = store.list_collaborations(root.id).await.unwrap();
    assert_eq!(kept[0].status, CollaborationStatus::Revoked, "a revoked grant stays on record");
    assert!(matches!(
        store
            .set_collaboration_status(
                NotebookId::new(),
                guest.id,
                CollaborationStatus::Active,
                &Change::system(time::now())
            )
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store
            .put_collaboration(
                collaboration(root.id, UserId::new(), owner.id, Permission::Read),
                &Change::system(time::now())
            )
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store
            .put_collaboration(
                collaboration(NotebookId::new(), guest.id, owner.id, Permission::Read),
                &Change::system(time::now())
            )
            .await,
        Err(StoreError::NotFound)
    ));

    // Declined invitations are kept as declined and grant nothing.
    store
        .put_collaboration(
            collaboration(unrelated.id, guest.id, owner.id, Permission::Admin),
            &Change::system(time::now()),
        )
        .await
        .unwrap();
    store
        .set_collaboration_status(unrelated.id, guest.id, CollaborationStatus::Declined, &Change::system(time::now()))
        .await
        .unwrap();
    assert!(store.access_chain(guest.id, unrelated.id).await.unwrap()[0].grant.is_none());
    assert_eq!(store.list_user_collaborations(guest.id, CollaborationStatus::Declined).await.unwrap().len(), 1);
}

pub async fn versions_guard_against_lost_updates(store: &dyn Store) {
    let owner = store.create_user(new_user("versioner")).await.unwrap();
    let created = store
        .create_notebook(new_notebook(owner.id, "Versioned"), MAX_DEPTH, &Change::system(time::now()))
        .await
        .unwrap();
    assert_eq!(created.version, 1);
    assert_eq!(store.get_notebook(created.id).await.unwrap().version, 1);
    let rename =
        |name: &str| NotebookPatch { name: Some(NotebookName::parse(name).unwrap()), ..NotebookPatch::default() };
    let second =
        store.update_notebook(created.id, rename("Second"), Some(1), &Change::system(time::now())).await.unwrap();
    assert_eq!(second.version, 2);
    assert_eq!(store.get_notebook(created.id).await.unwrap().version, 2);
    match store.update_notebook(created.id, rename("Stale"), Some(1), &Change::system(time::now())).await {
        Err(StoreError::Conflict(rule)) => assert_eq!(rule, "version"),
        other => panic!("expected Conflict(version), got {other:?}"),
    }
    assert_eq!(
        store.get_notebook(created.id).await.unwrap().name.as_str(),
        "Second",
        "the stale update changed nothing"
    );
    let unconditional =
        store.update_notebook(created.id, rename("Third"), None, &Change::system(time::now())).await.unwrap();
    assert_eq!(unconditional.version, 3);

    // Two writers holding the same version: exactly one wins.
    let change = Change::system(time::now());
    let attempts = ["Left", "Right"].map(|name| store.update_notebook(created.id, rename(name), Some(3), &change));
    let outcomes = futures::future::join_all(attempts).await;
    assert_eq!(outcomes.iter().filter(|outcome| outcome.is_ok()).count(), 1, "{outcomes:?}");
    assert!(outcomes.iter().any(|outcome| matches!(outcome, Err(StoreError::Conflict(rule)) if rule == "version")));
    assert_eq!(store.get_notebook(created.id).await.unwrap().version, 4);

    let moved = store.move_notebook(created.id, None, Some(4), MAX_DEPTH, &Change::system(time::now())).await.unwrap();
    assert_eq!(moved.version, 5, "a move is a change too");
    assert!(matches!(
        store.move_notebook(created.id, None, Some(4), MAX_DEPTH, &Change::system(time::now())).await,
        Err(StoreError::Conflict(_))
    ));
}

pub async fn listings_filter_and_sort(store: &dyn Store) {
    let owner = store.create_user(new_user("lister")).await.unwrap();
    let mut first = new_notebook(owner.id, "First");
    first.tags = Tag::parse_list(&["alpha"]).unwrap();
    let first = store.create_notebook(first, MAX_DEPTH, &Change::system(time::now())).await.unwrap();
    let mut second = new_notebook(owner.id, "Second");
    second.tags = Tag::parse_list(&["beta"]).unwrap();
    second.visibility = Visibility::Public;
    let second = store.create_notebook(second, MAX_DEPTH, &Change::system(time::now())).await.unwrap();
    let mut third = new_notebook(owner.id, "Third");
    third.tags = Tag::parse_list(&["alpha", "gamma"]).unwrap();
    third.visibility = Visibility::Shared;
    let third = store.create_notebook(third, MAX_DEPTH, &Change::system(time::now())).await.unwrap();
    let archive = NotebookPatch { status: Some(NotebookStatus::Archived), ..NotebookPatch::default() };
    store.update_notebook(third.id, archive, None, &Change::system(time::now())).await.unwrap();

    let ids = |page: aether_domain::page::Page<aether_domain::notebook::Notebook>| {
        page.items.iter().map(|notebook| notebook.id).collect::<Vec<_>>()
    };
    let owned = NotebookQuery::new(ListScope::Owned(owner.id), PageRequest::default());
    assert_eq!(ids(store.list_notebooks(owned.clone()).await.unwrap()), [third.id, second.id, first.id]);
    let oldest = NotebookQuery { order: SortOrder::OldestFirst, ..owned.clone() };
    assert_eq!(ids(store.list_notebooks(oldest.clone()).await.unwrap()), [first.id, second.id, third.id]);
    let page_one = store
        .list_notebooks(NotebookQuery { page: PageRequest { limit: limit(2), after: None }, ..oldest.clone() })
        .await
        .unwrap();
    assert_eq!(page_one.items.len(), 2);
    let page_two = store
        .list_notebooks(NotebookQuery { page: PageRequest { limit: limit(2), after: page_one.next_after }, ..oldest })
        .await
        .unwrap();
    assert_eq!(ids(page_two), [third.id], "cursors continue in the chosen order");

    let archived = NotebookQuery { status: Some(NotebookStatus::Archived), ..owned.clone() };
    assert_eq!(ids(store.list_notebooks(archived).await.unwrap()), [third.id]);
    let public = NotebookQuery { visibility: Some(Visibility::Public), ..owned.clone() };
    assert_eq!(ids(store.list_notebooks(public).await.unwrap()), [second.id]);
    let alpha = NotebookQuery { tag: Some(Tag::parse("alpha").unwrap()), ..owned.clone() };
    assert_eq!(ids(store.list_notebooks(alpha.clone()).await.unwrap()), [third.id, first.id]);
    let active_alpha = NotebookQuery { status: Some(NotebookStatus::Active), ..alpha };
    assert_eq!(ids(store.list_notebooks(active_alpha).await.unwrap()), [first.id]);
    let make_template = NotebookPatch { is_template: Some(true), ..NotebookPatch::default() };
    let template = store.update_notebook(second.id, make_template, None, &Change::system(time::now())).await.unwrap();
    assert!(template.is_template);
    let templates = NotebookQuery { template: Some(true), ..owned.clone() };
    assert_eq!(ids(store.list_notebooks(templates).await.unwrap()), [second.id]);
    let plain = NotebookQuery { template: Some(false), ..owned.clone() };
    assert_eq!(ids(store.list_notebooks(plain).await.unwrap()), [third.id, first.id]);

    let everyone = store.list_notebooks(NotebookQuery::new(ListScope::Public, PageRequest::default())).await.unwrap();
    assert!(everyone.items.iter().all(|notebook| notebook.visibility == Visibility::Public));
    assert!(everyone.items.iter().any(|notebook| notebook.id == second.id));
    assert!(!everyone.items.iter().any(|notebook| notebook.id == first.id));
}

pub async fn deleted_notebooks_can_be_restored(store: &dyn Store) {
    let owner = store.create_user(new_user("restorer")).await.unwrap();
    let root =
        store.create_notebook(new_notebook(owner.id, "Root"), MAX_DEPTH, &Change::system(time::now())).await.unwrap();
    let child = store
        .create_notebook(child_of(owner.id, root.id, "Child"), MAX_DEPTH, &Change::system(time::now()))
        .await
        .unwrap();
    assert!(
        matches!(store.restore_notebook(root.id, &Change::system(time::now())).await, Err(StoreError::NotFound)),
        "not deleted"
    );
    assert!(matches!(store.get_deleted_notebook(root.id).await, Err(StoreError::NotFound)));
    store.soft_delete_notebook(root.id, true, &Change::system(time::now())).await.unwrap();
    assert_eq!(store.get_deleted_notebook(child.id).await.unwrap().owner_id, owner.id);
    match store.restore_notebook(child.id, &Change::system(time::now())).await {
        Err(StoreError::Conflict(rule)) => assert_eq!(rule, "parent"),
        other => panic!("expected Conflict(parent), got {other:?}"),
    }
    let restored = store.restore_notebook(root.id, &Change::system(time::now())).await.unwrap();
    assert_eq!(restored.status, NotebookStatus::Active);
    assert_eq!(store.get_notebook(root.id).await.unwrap(), restored);
    assert!(matches!(store.get_notebook(child.id).await, Err(StoreError::NotFound)), "descendants stay deleted");
    let child = store.restore_notebook(child.id, &Change::system(time::now())).await.unwrap();
    assert_eq!(child.parent_id, Some(root.id));
    assert!(matches!(
        store.restore_notebook(NotebookId::new(), &Change::system(time::now())).await,
        Err(StoreError::NotFound)
    ));
}

pub async fn every_change_is_recorded(store: &dyn Store) {
    let owner = store.create_user(new_user("recorded")).await.unwrap();
    let guest = store.create_user(new_user("recorded-guest")).await.unwrap();
    let mut by_owner = Change::by(owner.id, time::now());
    by_owner.ip_address = Some("192.0.2.7".into());
    by_owner.user_agent = Some("conformance/1".into());
    let notebook = store.create_notebook(new_notebook(owner.id, "Recorded"), MAX_DEPTH, &by_owner).await.unwrap();
    let rename = NotebookPatch { name: Some(NotebookName::parse("Renamed").unwrap()), ..NotebookPatch::default() };
    store.update_notebook(notebook.id, rename, None, &by_owner).await.unwrap();
    store.put_collaboration(collaboration(notebook.id, guest.id, owner.id, Permission::Read), &by_owner).await.unwrap();
    let by_guest = Change::by(guest.id, time::now());
    store.set_collaboration_status(notebook.id, guest.id, CollaborationStatus::Active, &by_guest).await.unwrap();
    store.revoke_collaboration(notebook.id, guest.id, &by_owner).await.unwrap();
    store.move_notebook(notebook.id, None, None, MAX_DEPTH, &by_owner).await.unwrap();
    store.soft_delete_notebook(notebook.id, false, &by_owner).await.unwrap();
    store.restore_notebook(notebook.id, &Change::system(time::now())).await.unwrap();
    // A refused change leaves no record.
    let stale = NotebookPatch { name: Some(NotebookName::parse("Stale").unwrap()), ..NotebookPatch::default() };
    assert!(store.update_notebook(notebook.id, stale, Some(1), &by_owner).await.is_err());

    let activity = store.list_activity(notebook.id, PageRequest::default()).await.unwrap();
    let types: Vec<&str> = activity.items.iter().map(|event| event.event_type.as_str()).collect();
    assert_eq!(
        types,
        ["restored", "deleted", "moved", "permission_revoked", "invitation_accepted", "invited", "updated", "created"]
    );
    let actors: Vec<Option<UserId>> = activity.items.iter().map(|event| event.actor_id).collect();
    assert_eq!(actors[0], None, "system change");
    assert_eq!(actors[4], Some(guest.id), "the invitee accepted");
    assert_eq!(actors[7], Some(owner.id));
    assert_eq!(activity.items[6].details["fields"], serde_json::json!(["name"]));
    assert_eq!(activity.items[5].details["permission"], "read");
    assert!(activity.items.iter().all(|event| event.notebook_id == notebook.id));
    let paged = store.list_activity(notebook.id, PageRequest { limit: limit(3), after: None }).await.unwrap();
    let rest =
        store.list_activity(notebook.id, PageRequest { limit: limit(10), after: paged.next_after }).await.unwrap();
    assert_eq!(paged.items.len() + rest.items.len(), 8);

    let audit = store.list_audit(Some(notebook.id.to_string()), PageRequest::default()).await.unwrap();
    let actions: Vec<&str> = audit.items.iter().map(|entry| entry.action.as_str()).collect();
    assert_eq!(actions, ["restore", "delete", "update", "revoke", "update", "share", "update", "create"]);
    let created = &audit.items[7];
    assert_eq!(created.performed_by, Some(owner.id));
    assert_eq!(created.resource_type, "notebook");
    assert_eq!(created.ip_address.as_deref(), Some("192.0.2.7"));
    assert_eq!(created.user_agent.as_deref(), Some("conformance/1"));
    let everything = store.list_audit(None, PageRequest { limit: limit(100), after: None }).await.unwrap();
    assert!(everything.items.iter().any(|entry| entry.resource_id == notebook.id.to_string()));
}

pub async fn notebooks_are_duplicated_deeply(store: &dyn Store) {
    let owner = store.create_user(new_user("original")).await.unwrap();
    let copier = store.create_user(new_user("copier")).await.unwrap();
    let now = || Change::system(time::now());
    let mut root = new_notebook(owner.id, "Original");
    root.is_template = true;
    root.description = Some(Description::parse("with a description").unwrap());
    root.tags = Tag::parse_list(&["kept"]).unwrap();
    let root = store.create_notebook(root, MAX_DEPTH, &now()).await.unwrap();
    let child = store.create_notebook(child_of(owner.id, root.id, "Child"), MAX_DEPTH, &now()).await.unwrap();
    store.create_notebook(child_of(owner.id, child.id, "Grandchild"), MAX_DEPTH, &now()).await.unwrap();
    let gone = store.create_notebook(child_of(owner.id, root.id, "Gone"), MAX_DEPTH, &now()).await.unwrap();
    store.soft_delete_notebook(gone.id, false, &now()).await.unwrap();

    let name = NotebookName::parse("Copy").unwrap();
    let copy = store
        .duplicate_notebook(root.id, copier.id, None, name.clone(), MAX_DEPTH, &Change::by(copier.id, time::now()))
        .await
        .unwrap();
    assert_ne!(copy.id, root.id);
    assert_eq!(copy.owner_id, copier.id);
    assert_eq!(copy.name.as_str(), "Copy");
    assert_eq!(copy.parent_id, None);
    assert_eq!(copy.description, root.description);
    assert_eq!(copy.tags, root.tags);
    assert_eq!(copy.version, 1);
    assert!(!copy.is_template, "a copy of a template is a plain notebook");
    assert_eq!(store.get_notebook(copy.id).await.unwrap(), copy);
    let children = store.list_children(copy.id, false, PageRequest::default()).await.unwrap();
    assert_eq!(
        children.items.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(),
        ["Child"],
        "deleted children stay behind"
    );
    let copied_child = &children.items[0];
    assert_eq!(copied_child.owner_id, copier.id);
    let grandchildren = store.list_children(copied_child.id, false, PageRequest::default()).await.unwrap();
    assert_eq!(grandchildren.items.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(), ["Grandchild"]);
    assert_eq!(
        store.list_children(root.id, false, PageRequest::default()).await.unwrap().items.len(),
        1,
        "the original is untouched"
    );
    let activity = store.list_activity(copy.id, PageRequest::default()).await.unwrap();
    assert_eq!(activity.items[0].details["duplicated_from"], root.id.to_string());

    let home = store.create_notebook(new_notebook(copier.id, "Home"), MAX_DEPTH, &now()).await.unwrap();
    let placed =
        store.duplicate_notebook(child.id, copier.id, Some(home.id), name.clone(), MAX_DEPTH, &now()).await.unwrap();
    assert_eq!(placed.parent_id, Some(home.id));
    match store.duplicate_notebook(root.id, copier.id, Some(home.id), name.clone(), 3, &now()).await {
        Err(StoreError::Conflict(rule)) => assert_eq!(rule, "depth"),
        other => panic!("expected Conflict(depth), got {other:?}"),
    }
    assert!(matches!(
        store.duplicate_notebook(NotebookId::new(), copier.id, None, name.clone(), MAX_DEPTH, &now()).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.duplicate_notebook(root.id, copier.id, Some(NotebookId::new()), name, MAX_DEPTH, &now()).await,
        Err(StoreError::NotFound)
    ));
}

pub async fn bulk_updates_are_all_or_nothing(store: &dyn Store) {
    let owner = store.create_user(new_user("bulk")).await.unwrap();
    let now = || Change::by(owner.id, time::now());
    let mut a = new_notebook(owner.id, "A");
    a.tags = Tag::parse_list(&["old"]).unwrap();
    let a = store.create_notebook(a, MAX_DEPTH, &now()).await.unwrap();
    let b = store.create_notebook(new_notebook(owner.id, "B"), MAX_DEPTH, &now()).await.unwrap();
    let c = store.create_notebook(new_notebook(owner.id, "C"), MAX_DEPTH, &now()).await.unwrap();
    let home = store.create_notebook(new_notebook(owner.id, "Home"), MAX_DEPTH, &now()).await.unwrap();
    let tags = |names: &[&str]| Tag::parse_list(names).unwrap();

    let tagged = store.bulk_update(&[a.id, b.id], &BulkAction::Tag(tags(&["new"])), MAX_DEPTH, &now()).await.unwrap();
    assert_eq!(tagged.iter().map(|n| n.tags.clone()).collect::<Vec<_>>(), [tags(&["old", "new"]), tags(&["new"])]);
    store.bulk_update(&[a.id], &BulkAction::Untag(tags(&["old"])), MAX_DEPTH, &now()).await.unwrap();
    assert_eq!(store.get_notebook(a.id).await.unwrap().tags, tags(&["new"]));
    let archived = store.bulk_update(&[a.id, b.id], &BulkAction::Archive, MAX_DEPTH, &now()).await.unwrap();
    assert!(archived.iter().all(|n| n.status == NotebookStatus::Archived));
    store.bulk_update(&[a.id, b.id], &BulkAction::Unarchive, MAX_DEPTH, &now()).await.unwrap();
    assert_eq!(store.get_notebook(b.id).await.unwrap().status, NotebookStatus::Active);
    let moved =
        store.bulk_update(&[a.id, b.id], &BulkAction::Move { parent: Some(home.id) }, MAX_DEPTH, &now()).await.unwrap();
    assert!(moved.iter().all(|n| n.parent_id == Some(home.id)));

    // C would move, Home would close a cycle under A: neither moves.
    match store.bulk_update(&[c.id, home.id], &BulkAction::Move { parent: Some(a.id) }, MAX_DEPTH, &now()).await {
        Err(StoreError::Conflict(rule)) => assert_eq!(rule, "cycle"),
        other => panic!("expected Conflict(cycle), got {other:?}"),
    }
    assert_eq!(store.get_notebook(c.id).await.unwrap().parent_id, None, "the batch rolled back");
    // C would be deleted, Home has children: neither is.
    match store.bulk_update(&[c.id, home.id], &BulkAction::Delete { cascade: false }, MAX_DEPTH, &now()).await {
        Err(StoreError::Conflict(rule)) => assert_eq!(rule, "children"),
        other => panic!("expected Conflict(children), got {other:?}"),
    }
    assert!(store.get_notebook(c.id).await.is_ok(), "the batch rolled back");
    let activity_before = store.list_activity(c.id, PageRequest::default()).await.unwrap().items.len();
    assert_eq!(activity_before, 1, "a rolled-back batch leaves no record");
    assert!(matches!(
        store.bulk_update(&[c.id, NotebookId::new()], &BulkAction::Archive, MAX_DEPTH, &now()).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.get_notebook(c.id).await.unwrap().status, NotebookStatus::Active);
    let deleted =
        store.bulk_update(&[c.id, home.id], &BulkAction::Delete { cascade: true }, MAX_DEPTH, &now()).await.unwrap();
    assert!(deleted.is_empty());
    for id in [a.id, b.id, c.id, home.id] {
        assert!(matches!(store.get_notebook(id).await, Err(StoreError::NotFound)));
    }
}

pub async fn tags_are_counted_through_tagged_with(store: &dyn Store) {
    let owner = store.create_user(new_user("tagger")).await.unwrap();
    let now = || Change::by(owner.id, time::now());
    let tags = |names: &[&str]| Tag::parse_list(names).unwrap();
    let mut first = new_notebook(owner.id, "First");
    first.tags = tags(&["alpha", "beta"]);
    let first = store.create_notebook(first, MAX_DEPTH, &now()).await.unwrap();
    let mut second = new_notebook(owner.id, "Second");
    second.tags = tags(&["alpha"]);
    let second = store.create_notebook(second, MAX_DEPTH, &now()).await.unwrap();
    let usage =
        |pairs: Vec<(Tag, u64)>| pairs.into_iter().map(|(tag, n)| (tag.as_str().to_owned(), n)).collect::<Vec<_>>();
    assert_eq!(
        usage(store.tag_usage(Some(owner.id), 10).await.unwrap()),
        [("alpha".to_owned(), 2), ("beta".to_owned(), 1)]
    );
    let retag = NotebookPatch { tags: Some(tags(&["gamma"])), ..NotebookPatch::default() };
    store.update_notebook(first.id, retag, None, &now()).await.unwrap();
    assert_eq!(
        usage(store.tag_usage(Some(owner.id), 10).await.unwrap()),
        [("alpha".to_owned(), 1), ("gamma".to_owned(), 1)],
        "TAGGED_WITH follows the tags list"
    );
    store.soft_delete_notebook(second.id, false, &now()).await.unwrap();
    assert_eq!(
        usage(store.tag_usage(Some(owner.id), 10).await.unwrap()),
        [("gamma".to_owned(), 1)],
        "deleted notebooks do not count"
    );
    assert_eq!(store.tag_usage(Some(owner.id), 1).await.unwrap().len(), 1);
    let publics = store.tag_usage(None, 100).await.unwrap();
    assert!(!publics.iter().any(|(tag, _)| tag.as_str() == "gamma"), "private notebooks' tags are not public");
}

pub async fn sharing_writes_an_event_to_the_outbox(store: &dyn Store) {
    use aether_domain::events::topics;
    let owner = store.create_user(new_user("announcer")).await.unwrap();
    let guest = store.create_user(new_user("announced")).await.unwrap();
    let notebook = store
        .create_notebook(new_notebook(owner.id, "Announced"), MAX_DEPTH, &Change::by(owner.id, time::now()))
        .await
        .unwrap();
    let ours = |events: Vec<aether_domain::events::OutboxEvent>| {
        events.into_iter().filter(|event| event.key == notebook.id.to_string()).collect::<Vec<_>>()
    };
    assert!(ours(store.pending_events(1000).await.unwrap()).is_empty(), "creating publishes nothing yet");
    store
        .put_collaboration(
            collaboration(notebook.id, guest.id, owner.id, Permission::Write),
            &Change::by(owner.id, time::now()),
        )
        .await
        .unwrap();
    let pending = ours(store.pending_events(1000).await.unwrap());
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].topic, topics::NOTEBOOKS_SHARED);
    assert_eq!(pending[0].payload["user_id"], guest.id.to_string());
    assert_eq!(pending[0].payload["permission"], "write");
    assert_eq!(pending[0].payload["status"], "pending");
    // The owner's activity, keyed by the owner: creating and sharing the notebook.
    let activity: Vec<_> = store
        .pending_events(100_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|event| event.topic == topics::USERS_ACTIVITY && event.key == owner.id.to_string())
        .collect();
    assert_eq!(activity.len(), 2, "{activity:?}");
    assert!(activity.iter().all(|event| event.payload["resource_id"] == notebook.id.to_string()));
    assert_eq!(activity[0].payload["activity"], "created");
    assert_eq!(activity[1].payload["user_id"], owner.id.to_string());
    // Answering the invitation is not another share.
    store
        .set_collaboration_status(
            notebook.id,
            guest.id,
            CollaborationStatus::Declined,
            &Change::by(guest.id, time::now()),
        )
        .await
        .unwrap();
    assert_eq!(ours(store.pending_events(1000).await.unwrap()).len(), 1);
    store.mark_published(&[pending[0].id], time::now()).await.unwrap();
    assert!(ours(store.pending_events(1000).await.unwrap()).is_empty());
    store.mark_published(&[pending[0].id], time::now()).await.unwrap();
    // A refused share leaves no event.
    let missing = collaboration(notebook.id, UserId::new(), owner.id, Permission::Read);
    assert!(store.put_collaboration(missing, &Change::by(owner.id, time::now())).await.is_err());
    assert!(ours(store.pending_events(1000).await.unwrap()).is_empty());
}
