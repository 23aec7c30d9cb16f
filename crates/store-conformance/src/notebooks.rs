//! Conformance checks for notebooks: fields, paging, patches and versions, listings,
//! restore, the record of changes, duplication, bulk updates and tags.

use super::*;

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
