//! Collaborations (`(:User)-[:COLLABORATES_ON]->(:Notebook)`): grants, invitations
//! and their answers.

use aether_domain::StoreError;
use aether_domain::access::Collaboration;
use aether_domain::access::CollaborationStatus;
use aether_domain::activity::{Change, ChangeRecord};
use aether_domain::id::{NotebookId, UserId};
use aether_domain::page::{Page, PageRequest, SortOrder};
use aether_domain::store::{CollaborationStore, StoreResult};
use async_trait::async_trait;
use neo4rs::{Txn, query};

use crate::Neo4jStore;
use crate::activity::record_change;
use crate::rows::{COLLABORATION_RETURN, CollaborationRecord, from_row, from_rows, storage};
use crate::txn::{in_txn, txn_row};

/// The collaborations on `$notebook`: the first `$limit` above `$bound`, by user id
/// along `collaborates_on_notebook_keyset`; [`COLLABORATION_RETURN`] follows.
pub(crate) const COLLABORATORS: &str = "MATCH (u:User)-[c:COLLABORATES_ON]->(n:Notebook) \
     USING INDEX c:COLLABORATES_ON(notebook_id, user_id) \
     WHERE c.notebook_id = $notebook AND c.user_id > $bound \
     WITH u, c, n ORDER BY c.notebook_id, c.user_id LIMIT $limit";

/// `$user`'s collaborations in `$status` on live notebooks: the first `$limit` below
/// `$bound`, newest notebook first along `collaborates_on_user_keyset`;
/// [`COLLABORATION_RETURN`] follows.
pub(crate) const USER_COLLABORATIONS: &str = "MATCH (u:User)-[c:COLLABORATES_ON]->(n:Notebook) \
     USING INDEX c:COLLABORATES_ON(user_id, status, notebook_id) \
     WHERE c.user_id = $user AND c.status = $status AND c.notebook_id < $bound AND n.status <> 'deleted' \
     WITH u, c, n ORDER BY c.user_id DESC, c.status DESC, c.notebook_id DESC LIMIT $limit";

#[async_trait]
impl CollaborationStore for Neo4jStore {
    async fn put_collaboration(&self, c: Collaboration, change: &Change) -> StoreResult<Collaboration> {
        let q = query(&format!(
            "MATCH (n:Notebook {{id: $notebook}}) WHERE n.status <> 'deleted' \
             MATCH (u:User {{id: $user}}) WHERE u.status <> 'deleted' \
             MERGE (u)-[c:COLLABORATES_ON]->(n) ON CREATE SET c.granted_at = datetime($at), \
               c.user_id = u.id, c.notebook_id = n.id \
             SET c.accepted_at = CASE WHEN $status = 'active' AND coalesce(c.status, '') <> 'active' \
               THEN datetime($at) ELSE c.accepted_at END, \
             c.permission = $permission, c.status = $status, c.granted_by = $granted_by, \
             c.updated_at = datetime($at) {COLLABORATION_RETURN}"
        ))
        .param("notebook", c.notebook_id.to_string())
        .param("user", c.user_id.to_string())
        .param("permission", c.permission.as_str())
        .param("status", c.status.as_str())
        .param("granted_by", c.granted_by.to_string())
        .param("at", storage(&c.updated_at));
        in_txn(&self.graph, async move |txn: &mut Txn| {
            let row = txn_row(txn, q).await?.ok_or(StoreError::NotFound)?;
            let stored = from_row::<CollaborationRecord, Collaboration>(&row)?;
            record_change(txn, change, ChangeRecord::for_collaboration(&stored, false)).await?;
            Ok(stored)
        })
        .await
    }

    async fn set_collaboration_status(
        &self,
        notebook: NotebookId,
        user: UserId,
        status: CollaborationStatus,
        change: &Change,
    ) -> StoreResult<Collaboration> {
        let q = query(&format!(
            "MATCH (u:User {{id: $user}})-[c:COLLABORATES_ON]->(n:Notebook {{id: $notebook}}) \
             SET c.accepted_at = CASE WHEN $status = 'active' THEN datetime($at) ELSE c.accepted_at END, \
             c.status = $status, c.updated_at = datetime($at) {COLLABORATION_RETURN}"
        ))
        .param("notebook", notebook.to_string())
        .param("user", user.to_string())
        .param("status", status.as_str())
        .param("at", storage(&change.at));
        in_txn(&self.graph, async move |txn: &mut Txn| {
            let row = txn_row(txn, q).await?.ok_or(StoreError::NotFound)?;
            let stored = from_row::<CollaborationRecord, Collaboration>(&row)?;
            record_change(txn, change, ChangeRecord::for_collaboration(&stored, true)).await?;
            Ok(stored)
        })
        .await
    }

    async fn revoke_collaboration(&self, notebook: NotebookId, user: UserId, change: &Change) -> StoreResult<()> {
        let q = query(&format!(
            "MATCH (u:User {{id: $user}})-[c:COLLABORATES_ON]->(n:Notebook {{id: $notebook}}) \
             WHERE c.status IN ['pending', 'active'] \
             SET c.status = 'revoked', c.updated_at = datetime($at) {COLLABORATION_RETURN}"
        ))
        .param("notebook", notebook.to_string())
        .param("user", user.to_string())
        .param("at", storage(&change.at));
        in_txn(&self.graph, async move |txn: &mut Txn| {
            let row = txn_row(txn, q).await?.ok_or(StoreError::NotFound)?;
            let revoked = from_row::<CollaborationRecord, Collaboration>(&row)?;
            record_change(txn, change, ChangeRecord::for_collaboration(&revoked, false)).await?;
            Ok(())
        })
        .await
    }

    async fn list_collaborations(&self, notebook: NotebookId, page: PageRequest) -> StoreResult<Page<Collaboration>> {
        let q = query(&format!("{COLLABORATORS} {COLLABORATION_RETURN} ORDER BY user_id"))
            .param("notebook", notebook.to_string())
            .param("bound", page.bound(SortOrder::OldestFirst))
            .param("limit", page.fetch());
        let collaborations = from_rows::<CollaborationRecord, Collaboration>(&self.rows(q).await?)?;
        Ok(Page::from_overfetch(collaborations, page.limit, |c| c.user_id.as_uuid()))
    }

    async fn list_user_collaborations(
        &self,
        user: UserId,
        status: CollaborationStatus,
        page: PageRequest,
    ) -> StoreResult<Page<Collaboration>> {
        let q = query(&format!("{USER_COLLABORATIONS} {COLLABORATION_RETURN} ORDER BY notebook_id DESC"))
            .param("user", user.to_string())
            .param("status", status.as_str())
            .param("bound", page.bound(SortOrder::NewestFirst))
            .param("limit", page.fetch());
        let collaborations = from_rows::<CollaborationRecord, Collaboration>(&self.rows(q).await?)?;
        Ok(Page::from_overfetch(collaborations, page.limit, |c| c.notebook_id.as_uuid()))
    }

    async fn find_collaboration(&self, notebook: NotebookId, user: UserId) -> StoreResult<Option<Collaboration>> {
        let q = query(&format!(
            "MATCH (u:User {{id: $user}})-[c:COLLABORATES_ON]->(n:Notebook {{id: $notebook}}) \
             WHERE n.status <> 'deleted' {COLLABORATION_RETURN}"
        ))
        .param("user", user.to_string())
        .param("notebook", notebook.to_string());
        self.optional_row(q).await?.as_ref().map(from_row::<CollaborationRecord, Collaboration>).transpose()
    }
}
