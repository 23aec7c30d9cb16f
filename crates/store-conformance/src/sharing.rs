//! Conformance checks for sharing: collaborations along the hierarchy and their
//! events in the outbox.

use super::*;

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
    let pending =
        store.list_user_collaborations(guest.id, CollaborationStatus::Pending, PageRequest::default()).await.unwrap();
    assert_eq!(pending.items.iter().map(|c| c.notebook_id).collect::<Vec<_>>(), [root.id]);
    assert_eq!(store.find_collaboration(root.id, guest.id).await.unwrap(), Some(invited.clone()));
    assert_eq!(store.find_collaboration(child.id, guest.id).await.unwrap(), None, "grants are not inherited");
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
    let listed = store.list_collaborations(root.id, PageRequest::default()).await.unwrap().items;
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
    let kept = store.list_collaborations(root.id, PageRequest::default()).await.unwrap().items;
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
    let declined =
        store.list_user_collaborations(guest.id, CollaborationStatus::Declined, PageRequest::default()).await.unwrap();
    assert_eq!(declined.items.len(), 1);
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
