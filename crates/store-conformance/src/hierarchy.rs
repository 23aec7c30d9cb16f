//! Conformance checks for the notebook hierarchy: children, moves, cascading deletes.

use super::*;

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

/// `notebook_with_access_chain` answers exactly what `get_notebook` and
/// `access_chain` answer apart, grants included, and `NotFound` for a missing or
/// deleted notebook.
pub async fn a_notebook_is_read_with_its_chain(store: &dyn Store) {
    let owner = store.create_user(new_user("chained")).await.unwrap();
    let guest = store.create_user(new_user("chain-guest")).await.unwrap();
    let at = || Change::system(time::now());
    let root = store.create_notebook(new_notebook(owner.id, "Chain root"), MAX_DEPTH, &at()).await.unwrap();
    let child = store.create_notebook(child_of(owner.id, root.id, "Chain child"), MAX_DEPTH, &at()).await.unwrap();
    let leaf = store.create_notebook(child_of(owner.id, child.id, "Chain leaf"), MAX_DEPTH, &at()).await.unwrap();
    let mut grant = collaboration(child.id, guest.id, owner.id, Permission::Write);
    grant.status = CollaborationStatus::Active;
    store.put_collaboration(grant, &at()).await.unwrap();

    for (user, id) in [(guest.id, leaf.id), (owner.id, leaf.id), (guest.id, root.id), (guest.id, child.id)] {
        let (notebook, chain) = store.notebook_with_access_chain(user, id).await.unwrap();
        assert_eq!(notebook, store.get_notebook(id).await.unwrap());
        assert_eq!(chain, store.access_chain(user, id).await.unwrap());
    }
    let (_, chain) = store.notebook_with_access_chain(guest.id, leaf.id).await.unwrap();
    assert_eq!(chain.iter().map(|link| link.notebook_id).collect::<Vec<_>>(), [leaf.id, child.id, root.id]);
    assert_eq!(chain.iter().map(|link| link.grant).collect::<Vec<_>>(), [None, Some(Permission::Write), None]);

    assert!(matches!(store.notebook_with_access_chain(owner.id, NotebookId::new()).await, Err(StoreError::NotFound)));
    store.soft_delete_notebook(leaf.id, false, &at()).await.unwrap();
    assert!(matches!(store.notebook_with_access_chain(owner.id, leaf.id).await, Err(StoreError::NotFound)));
}
