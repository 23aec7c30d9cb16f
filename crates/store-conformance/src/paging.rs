//! Every listing is walked page by page (issue 14): five items two at a time come as
//! pages of 2, 2 and 1, in the listing's order, none twice and none missing, and the
//! last page has no cursor. Documents, versions and jobs are walked in `documents`.

use std::fmt::Debug;

use aether_domain::activity::NewAuditRecord;
use aether_domain::api_key::{ApiKeyName, ApiKeyScope, NewApiKey};
use aether_domain::id::ApiKeyId;
use aether_domain::page::Page;

use super::*;

/// Walks a listing two items at a time, from the first page to the one without a
/// cursor, checking that each page continues where the last one's cursor said.
/// Returns the pages.
pub(crate) async fn walk<T: Clone>(mut fetch: impl AsyncFnMut(PageRequest) -> Page<T>) -> Vec<Vec<T>> {
    let mut pages = Vec::new();
    let mut request = PageRequest { limit: limit(2), after: None };
    loop {
        let page = fetch(request).await;
        assert!(page.items.len() <= 2, "a page holds more than its limit");
        pages.push(page.items);
        match page.next_after {
            Some(after) => request.after = Some(after),
            None => return pages,
        }
        assert!(pages.len() <= 10, "the walk does not end");
    }
}

/// Checks a walk of five items: pages of 2, 2 and 1 that hold `expected`, in order.
pub(crate) fn assert_walked<T: Clone, K: PartialEq + Debug>(
    what: &str,
    pages: &[Vec<T>],
    key: impl Fn(&T) -> K,
    expected: &[K],
) {
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [2, 2, 1], "{what}: page sizes");
    let walked: Vec<K> = pages.iter().flatten().map(key).collect();
    assert_eq!(walked, expected, "{what}: the items, in order");
}

async fn notebooks(
    store: &dyn Store,
    owner: UserId,
    count: usize,
    shape: impl Fn(&mut NewNotebook),
) -> Vec<NotebookId> {
    let mut ids = Vec::new();
    for i in 0..count {
        let mut new = new_notebook(owner, &format!("Paged {i}"));
        shape(&mut new);
        ids.push(store.create_notebook(new, MAX_DEPTH, &Change::system(time::now())).await.unwrap().id);
    }
    ids
}

fn reversed<T: Clone>(items: &[T]) -> Vec<T> {
    items.iter().rev().cloned().collect()
}

/// Walks a notebook listing in both orders.
async fn walk_both_orders(store: &dyn Store, what: &str, query: NotebookQuery, oldest_first: &[NotebookId]) {
    for (order, expected) in
        [(SortOrder::NewestFirst, reversed(oldest_first)), (SortOrder::OldestFirst, oldest_first.to_vec())]
    {
        let query = NotebookQuery { order, ..query.clone() };
        let pages =
            walk(async |page| store.list_notebooks(NotebookQuery { page, ..query.clone() }).await.unwrap()).await;
        assert_walked(&format!("{what}, {order:?}"), &pages, |notebook| notebook.id, &expected);
    }
}

pub async fn notebook_listings_page_in_both_orders(store: &dyn Store) {
    let owner = store.create_user(new_user("walker")).await.unwrap();
    let guest = store.create_user(new_user("walker-guest")).await.unwrap();
    // Six owned notebooks, one deleted: five to walk.
    let mut owned = notebooks(store, owner.id, 6, |_| {}).await;
    let deleted = owned.remove(2);
    store.soft_delete_notebook(deleted, false, &Change::system(time::now())).await.unwrap();
    walk_both_orders(
        store,
        "owned notebooks",
        NotebookQuery::new(ListScope::Owned(owner.id), PageRequest::default()),
        &owned,
    )
    .await;

    // Public notebooks of every test are listed together; a tag of this run's own
    // keeps the walk to these five (and one private notebook with the tag is left out).
    let tag = Tag::parse(&unique("walk")).unwrap();
    let public = notebooks(store, owner.id, 5, |new| {
        new.visibility = Visibility::Public;
        new.tags = vec![tag.clone()];
    })
    .await;
    notebooks(store, owner.id, 1, |new| new.tags = vec![tag.clone()]).await;
    let query =
        NotebookQuery { tag: Some(tag.clone()), ..NotebookQuery::new(ListScope::Public, PageRequest::default()) };
    walk_both_orders(store, "public notebooks", query, &public).await;

    // Shared with the guest: a root and its two children, and two more roots.
    let root = owned[0];
    let mut shared = vec![root];
    for i in 0..2 {
        let child = child_of(owner.id, root, &format!("Shared child {i}"));
        shared.push(store.create_notebook(child, MAX_DEPTH, &Change::system(time::now())).await.unwrap().id);
    }
    shared.extend_from_slice(&public[..2]);
    for notebook in [root, public[0], public[1]] {
        let mut grant = collaboration(notebook, guest.id, owner.id, Permission::Read);
        grant.status = CollaborationStatus::Active;
        store.put_collaboration(grant, &Change::system(time::now())).await.unwrap();
    }
    shared.sort();
    let query = NotebookQuery::new(ListScope::SharedWith(guest.id), PageRequest::default());
    walk_both_orders(store, "notebooks shared with a user", query, &shared).await;

    // Children, newest first: five live ones under a parent, one deleted.
    let parent = owned[1];
    let mut children = Vec::new();
    for i in 0..6 {
        let child = child_of(owner.id, parent, &format!("Child {i}"));
        children.push(store.create_notebook(child, MAX_DEPTH, &Change::system(time::now())).await.unwrap().id);
    }
    let gone = children.remove(4);
    store.soft_delete_notebook(gone, false, &Change::system(time::now())).await.unwrap();
    let pages = walk(async |page| store.list_children(parent, false, page).await.unwrap()).await;
    assert_walked("children", &pages, |notebook| notebook.id, &reversed(&children));
}

pub async fn records_of_changes_page_newest_first(store: &dyn Store) {
    let owner = store.create_user(new_user("recorder")).await.unwrap();
    let notebook = notebooks(store, owner.id, 1, |_| {}).await[0];
    // Its creation and four updates: five events, five audit entries.
    for i in 0..4 {
        let patch =
            NotebookPatch { name: Some(NotebookName::parse(&format!("Renamed {i}")).unwrap()), ..Default::default() };
        store.update_notebook(notebook, patch, None, &Change::by(owner.id, time::now())).await.unwrap();
    }
    let everything = store.list_activity(notebook, PageRequest { limit: limit(100), after: None }).await.unwrap();
    let events: Vec<Uuid> = everything.items.iter().map(|event| event.id).collect();
    assert_eq!(events.len(), 5);
    assert!(events.is_sorted_by(|a, b| a > b), "activity is newest first");
    let pages = walk(async |page| store.list_activity(notebook, page).await.unwrap()).await;
    assert_walked("activity", &pages, |event| event.id, &events);

    let resource = Some(notebook.to_string());
    let entries = store.list_audit(resource.clone(), PageRequest { limit: limit(100), after: None }).await.unwrap();
    let entries: Vec<Uuid> = entries.items.iter().map(|entry| entry.id).collect();
    assert_eq!(entries.len(), 5);
    assert!(entries.is_sorted_by(|a, b| a > b), "the audit log is newest first");
    let pages = walk(async |page| store.list_audit(resource.clone(), page).await.unwrap()).await;
    assert_walked("audit entries about a notebook", &pages, |entry| entry.id, &entries);

    // The whole log is shared with every other test: its first pages continue one
    // another, newest first.
    let mut request = PageRequest { limit: limit(3), after: None };
    let mut seen: Vec<Uuid> = Vec::new();
    for _ in 0..3 {
        let page = store.list_audit(None, request).await.unwrap();
        assert_eq!(page.items.len(), 3);
        seen.extend(page.items.iter().map(|entry| entry.id));
        request.after = page.next_after;
    }
    assert!(seen.is_sorted_by(|a, b| a > b), "the audit log pages newest first, without repeats");
}

pub async fn api_keys_page_newest_first(store: &dyn Store) {
    let owner = store.create_user(new_user("key-holder")).await.unwrap();
    let mut keys = Vec::new();
    for i in 0..5 {
        let key = NewApiKey {
            id: ApiKeyId::new(),
            user_id: owner.id,
            name: ApiKeyName::parse(&format!("Key {i}")).unwrap(),
            prefix: "ak_test".into(),
            secret_hash: unique("hash"),
            scopes: vec![ApiKeyScope::Read],
            created_at: time::now(),
            expires_at: None,
        };
        let audit = NewAuditRecord {
            action: "api_key_created",
            resource_type: "api_key",
            resource_id: key.id.to_string(),
            performed_by: Some(owner.id),
            details: serde_json::Map::new(),
            ip_address: None,
            user_agent: None,
            at: time::now(),
        };
        keys.push(store.create_api_key(key, audit).await.unwrap().id);
    }
    let pages = walk(async |page| store.list_api_keys(owner.id, page).await.unwrap()).await;
    assert_walked("API keys", &pages, |key| key.id, &reversed(&keys));
}

pub async fn collaborations_page_by_id(store: &dyn Store) {
    let owner = store.create_user(new_user("host")).await.unwrap();
    let notebook = notebooks(store, owner.id, 1, |_| {}).await[0];
    // Five collaborators in every status but one: listed by user id.
    let mut guests = Vec::new();
    for i in 0..5 {
        let guest = store.create_user(new_user(&format!("visitor-{i}"))).await.unwrap();
        store
            .put_collaboration(
                collaboration(notebook, guest.id, owner.id, Permission::Read),
                &Change::system(time::now()),
            )
            .await
            .unwrap();
        guests.push(guest.id);
    }
    store
        .set_collaboration_status(notebook, guests[1], CollaborationStatus::Active, &Change::system(time::now()))
        .await
        .unwrap();
    store.revoke_collaboration(notebook, guests[1], &Change::system(time::now())).await.unwrap();
    let pages = walk(async |page| store.list_collaborations(notebook, page).await.unwrap()).await;
    assert_walked("collaborators", &pages, |c| c.user_id, &guests);

    // One guest invited to seven notebooks: five pending, one declined, one on a
    // deleted notebook. Pending invitations list newest notebook first.
    let guest = store.create_user(new_user("invitee")).await.unwrap();
    let invited = notebooks(store, owner.id, 7, |_| {}).await;
    for &notebook in &invited {
        store
            .put_collaboration(
                collaboration(notebook, guest.id, owner.id, Permission::Write),
                &Change::system(time::now()),
            )
            .await
            .unwrap();
    }
    store
        .set_collaboration_status(invited[3], guest.id, CollaborationStatus::Declined, &Change::system(time::now()))
        .await
        .unwrap();
    store.soft_delete_notebook(invited[5], false, &Change::system(time::now())).await.unwrap();
    let pending: Vec<NotebookId> =
        invited.iter().enumerate().filter(|(i, _)| ![3, 5].contains(i)).map(|(_, id)| *id).collect();
    let pages =
        walk(async |page| store.list_user_collaborations(guest.id, CollaborationStatus::Pending, page).await.unwrap())
            .await;
    assert_walked("invitations", &pages, |c| c.notebook_id, &reversed(&pending));
    let declined =
        store.list_user_collaborations(guest.id, CollaborationStatus::Declined, PageRequest::default()).await.unwrap();
    assert_eq!(declined.items.iter().map(|c| c.notebook_id).collect::<Vec<_>>(), [invited[3]]);
}
