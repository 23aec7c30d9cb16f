//! Writing straight to a store, for tests and benches that exercise what lies behind
//! the API (the outbox relay) without going through HTTP.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;

use aether_domain::access::Collaboration;
use aether_domain::access::{CollaborationStatus, Permission};
use aether_domain::activity::Change;
use aether_domain::id::{NotebookId, UserId};
use aether_domain::notebook::{NewNotebook, NotebookName, Visibility};
use aether_domain::store::Store;
use aether_domain::time;
use aether_domain::user::{NewUser, Role, Username};

/// A new user whose name starts with `name` (made unique).
pub async fn new_user(store: &Arc<dyn Store>, name: &str) -> UserId {
    let user = store
        .create_user(NewUser {
            id: UserId::new(),
            keycloak_id: None,
            username: Username::parse(&format!("{name}-{}", uuid::Uuid::now_v7().simple())).unwrap(),
            email: None,
            full_name: None,
            roles: vec![Role::User],
            password_hash: None,
            created_at: time::now(),
        })
        .await
        .unwrap();
    user.id
}

/// A new private root notebook of `owner`.
pub async fn new_notebook(store: &Arc<dyn Store>, owner: UserId, name: &str) -> NotebookId {
    let now = time::now();
    let notebook = store
        .create_notebook(
            NewNotebook {
                id: NotebookId::new(),
                owner_id: owner,
                parent_id: None,
                name: NotebookName::parse(name).unwrap(),
                description: None,
                visibility: Visibility::Private,
                tags: vec![],
                compliance_settings: Default::default(),
                is_template: false,
                created_at: now,
            },
            64,
            &Change::by(owner, now),
        )
        .await
        .unwrap();
    notebook.id
}

/// Grants (`Active`, which writes an outbox event) or revokes (`Revoked`, which
/// does not) `user`'s access to `notebook`, as the sharing use case does.
pub async fn set_access(
    store: &Arc<dyn Store>,
    owner: UserId,
    notebook: NotebookId,
    user: UserId,
    status: CollaborationStatus,
) {
    let now = time::now();
    store
        .put_collaboration(
            Collaboration {
                notebook_id: notebook,
                user_id: user,
                permission: Permission::Read,
                status,
                granted_by: owner,
                granted_at: now,
                accepted_at: None,
                updated_at: now,
            },
            &Change::by(owner, now),
        )
        .await
        .unwrap();
}
