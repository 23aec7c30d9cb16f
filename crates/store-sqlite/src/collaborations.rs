//! Collaborations (`COLLABORATES_ON`): grants, invitations and their answers.

use aether_domain::StoreError;
use aether_domain::access::Collaboration;
use aether_domain::access::CollaborationStatus;
use aether_domain::activity::{Change, ChangeRecord};
use aether_domain::id::{NotebookId, UserId};
use aether_domain::page::{Page, PageRequest, SortOrder};
use aether_domain::store::{CollaborationStore, StoreResult};
use aether_domain::time;
use async_trait::async_trait;

use crate::activity::record_change;
use crate::hierarchy::live_depth;
use crate::rows::{CollaborationRow, convert};
use crate::{SqliteStore, map_err};

/// The collaborations on a notebook (?1), by collaborator id from the bound ?2, ?3
/// rows, along `collaborates_on_notebook` (notebook, and the primary key's user).
pub(crate) const COLLABORATORS: &str =
    "SELECT * FROM collaborates_on WHERE notebook_id = ?1 AND user_id > ?2 ORDER BY user_id LIMIT ?3";

/// A user's (?1) collaborations in a status (?2) on live notebooks, newest notebook
/// first from the bound ?3, ?4 rows, along `collaborates_on_user_status`. Named, as
/// without statistics SQLite prefers the primary key (user, notebook), which would
/// walk past the user's collaborations in every other status.
pub(crate) const USER_COLLABORATIONS: &str = "SELECT co.* FROM collaborates_on co \
     INDEXED BY collaborates_on_user_status JOIN notebooks n ON n.id = co.notebook_id WHERE co.user_id = ?1 AND co.status = ?2 \
     AND n.status != 'deleted' AND co.notebook_id < ?3 ORDER BY co.notebook_id DESC LIMIT ?4";

#[async_trait]
impl CollaborationStore for SqliteStore {
    async fn put_collaboration(&self, c: Collaboration, change: &Change) -> StoreResult<Collaboration> {
        let (_writer, mut tx) = self.begin_write().await?;
        if live_depth(&mut tx, c.notebook_id).await?.is_none() {
            return Err(StoreError::NotFound);
        }
        let user_exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM users WHERE id = ? AND status != 'deleted'")
            .bind(c.user_id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
        if user_exists.is_none() {
            return Err(StoreError::NotFound);
        }
        let row: CollaborationRow = sqlx::query_as(
            "INSERT INTO collaborates_on (user_id, notebook_id, permission, status, granted_by, granted_at, \
             accepted_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, CASE WHEN ?4 = 'active' THEN ?6 END, ?6) \
             ON CONFLICT (user_id, notebook_id) DO UPDATE SET permission = excluded.permission, \
             status = excluded.status, granted_by = excluded.granted_by, updated_at = excluded.updated_at, \
             accepted_at = CASE WHEN excluded.status = 'active' AND collaborates_on.status != 'active' \
             THEN excluded.updated_at ELSE collaborates_on.accepted_at END RETURNING *",
        )
        .bind(c.user_id.to_string())
        .bind(c.notebook_id.to_string())
        .bind(c.permission.as_str())
        .bind(c.status.as_str())
        .bind(c.granted_by.to_string())
        .bind(time::to_storage(&c.updated_at))
        .fetch_one(&mut *tx)
        .await
        .map_err(map_err)?;
        let stored = Collaboration::try_from(row)?;
        record_change(&mut tx, change, ChangeRecord::for_collaboration(&stored, false)).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(stored)
    }

    async fn set_collaboration_status(
        &self,
        notebook: NotebookId,
        user: UserId,
        status: CollaborationStatus,
        change: &Change,
    ) -> StoreResult<Collaboration> {
        let (_writer, mut tx) = self.begin_write().await?;
        let row: Option<CollaborationRow> = sqlx::query_as(
            "UPDATE collaborates_on SET status = ?1, updated_at = ?2, \
             accepted_at = CASE WHEN ?1 = 'active' THEN ?2 ELSE accepted_at END \
             WHERE notebook_id = ?3 AND user_id = ?4 RETURNING *",
        )
        .bind(status.as_str())
        .bind(time::to_storage(&change.at))
        .bind(notebook.to_string())
        .bind(user.to_string())
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        let stored = Collaboration::try_from(row.ok_or(StoreError::NotFound)?)?;
        record_change(&mut tx, change, ChangeRecord::for_collaboration(&stored, true)).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(stored)
    }

    async fn revoke_collaboration(&self, notebook: NotebookId, user: UserId, change: &Change) -> StoreResult<()> {
        let (_writer, mut tx) = self.begin_write().await?;
        let row: Option<CollaborationRow> = sqlx::query_as(
            "UPDATE collaborates_on SET status = 'revoked', updated_at = ? \
             WHERE notebook_id = ? AND user_id = ? AND status IN ('pending', 'active') RETURNING *",
        )
        .bind(time::to_storage(&change.at))
        .bind(notebook.to_string())
        .bind(user.to_string())
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        let revoked = Collaboration::try_from(row.ok_or(StoreError::NotFound)?)?;
        record_change(&mut tx, change, ChangeRecord::for_collaboration(&revoked, false)).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(())
    }

    async fn list_collaborations(&self, notebook: NotebookId, page: PageRequest) -> StoreResult<Page<Collaboration>> {
        let rows: Vec<CollaborationRow> = sqlx::query_as(COLLABORATORS)
            .bind(notebook.to_string())
            .bind(page.bound(SortOrder::OldestFirst))
            .bind(page.fetch())
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(Page::from_overfetch(convert(rows)?, page.limit, |c: &Collaboration| c.user_id.as_uuid()))
    }

    async fn list_user_collaborations(
        &self,
        user: UserId,
        status: CollaborationStatus,
        page: PageRequest,
    ) -> StoreResult<Page<Collaboration>> {
        let rows: Vec<CollaborationRow> = sqlx::query_as(USER_COLLABORATIONS)
            .bind(user.to_string())
            .bind(status.as_str())
            .bind(page.bound(SortOrder::NewestFirst))
            .bind(page.fetch())
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(Page::from_overfetch(convert(rows)?, page.limit, |c: &Collaboration| c.notebook_id.as_uuid()))
    }

    async fn find_collaboration(&self, notebook: NotebookId, user: UserId) -> StoreResult<Option<Collaboration>> {
        let row: Option<CollaborationRow> = sqlx::query_as(
            "SELECT co.* FROM collaborates_on co JOIN notebooks n ON n.id = co.notebook_id \
             WHERE co.user_id = ? AND co.notebook_id = ? AND n.status != 'deleted'",
        )
        .bind(user.to_string())
        .bind(notebook.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        row.map(Collaboration::try_from).transpose()
    }
}
