//! Notebooks: creation, reads and listings, updates (alone or in bulk), deletion and
//! restoration, tags (`TAGGED_WITH`) and the ancestor chain behind a permission.
//! Moves, deletions and copies of subtrees are in `hierarchy`.

use aether_domain::StoreError;
use aether_domain::access::ChainLink;
use aether_domain::activity::{Change, ChangeRecord};
use aether_domain::id::{NotebookId, UserId};
use aether_domain::notebook::{
    self, BulkAction, Description, ListScope, NewNotebook, Notebook, NotebookName, NotebookPatch, NotebookQuery,
    NotebookStatus, SortOrder, Tag, Visibility,
};
use aether_domain::page::{Page, PageRequest};
use aether_domain::store::{NotebookStore, StoreResult};
use aether_domain::time;
use async_trait::async_trait;
use sqlx::SqliteConnection;

use crate::activity::record_change;
use crate::hierarchy::{duplicate_in, live_depth, move_in, soft_delete_in};
use crate::rows::{ChainRow, NotebookRow, Ordered, TagUsageRow, convert, settings_json, tags_json};
use crate::{SqliteStore, map_err};

// The filters every listing applies. Parameters: ?2 status, ?3 visibility, ?4 tag,
// ?5 template; the scope's statement adds ?1 and its walk (`both_orders!`).
macro_rules! notebook_filters {
    () => {
        "n.status != 'deleted' AND (?2 IS NULL OR n.status = ?2) AND (?3 IS NULL OR n.visibility = ?3) \
         AND (?4 IS NULL OR EXISTS (SELECT 1 FROM json_each(n.tags) WHERE json_each.value = ?4)) \
         AND (?5 IS NULL OR n.is_template = ?5)"
    };
}

/// The user's notebooks (?1), walked along `owns`' primary key (user, notebook).
pub(crate) const OWNED: Ordered =
    both_orders!("o.notebook_id"; notebook_select!(), " WHERE o.user_id = ?1 AND ", notebook_filters!());

/// Notebooks shared with the user (?1): every notebook under an active grant, then
/// ordered. The reach is collected whole, so its cost grows with the notebooks
/// shared with the user (not with the number of notebooks stored).
pub(crate) const SHARED_WITH: Ordered = both_orders!(
    "n.id";
    "WITH RECURSIVE reach(id) AS (\
     SELECT co.notebook_id FROM collaborates_on co WHERE co.user_id = ?1 AND co.status = 'active' \
     UNION SELECT p.child_id FROM parent_of p JOIN reach r ON p.parent_id = r.id) ",
    notebook_select!(),
    " WHERE n.id IN (SELECT id FROM reach) AND o.user_id != ?1 AND ",
    notebook_filters!()
);

/// Public notebooks (?1 is unused, always null), walked along `notebook_public`.
pub(crate) const PUBLIC: Ordered = both_orders!(
    "n.id";
    notebook_select!(),
    " WHERE (?1 IS NULL) AND n.visibility = 'public' AND ",
    notebook_filters!()
);

/// Live children of ?1 (only public ones when ?2), newest first from the bound ?3,
/// ?4 rows, walked along `parent_of_parent` (parent, child).
pub(crate) const CHILDREN: &str = concat!(
    notebook_select!(),
    " WHERE po.parent_id = ?1 AND n.status != 'deleted' AND (?2 = 0 OR n.visibility = 'public') \
     AND po.child_id < ?3 ORDER BY po.child_id DESC LIMIT ?4"
);

/// Reads a notebook with its owner and parent: a live one, or a soft-deleted one.
async fn read_notebook(
    tx: impl sqlx::SqliteExecutor<'_>,
    id: NotebookId,
    status: Liveness,
) -> StoreResult<Option<Notebook>> {
    let sql = match status {
        Liveness::Live => concat!(notebook_select!(), " WHERE n.id = ? AND n.status != 'deleted'"),
        Liveness::Deleted => concat!(notebook_select!(), " WHERE n.id = ? AND n.status = 'deleted'"),
        Liveness::Any => concat!(notebook_select!(), " WHERE n.id = ?"),
    };
    let row: Option<NotebookRow> =
        sqlx::query_as(sql).bind(id.to_string()).fetch_optional(tx).await.map_err(map_err)?;
    row.map(Notebook::try_from).transpose()
}

#[derive(Clone, Copy)]
pub(crate) enum Liveness {
    Live,
    Deleted,
    Any,
}

/// [`read_notebook`] in the caller's transaction; `NotFound` when there is none.
pub(crate) async fn notebook_in(tx: &mut SqliteConnection, id: NotebookId, status: Liveness) -> StoreResult<Notebook> {
    read_notebook(&mut *tx, id, status).await?.ok_or(StoreError::NotFound)
}

#[async_trait]
impl NotebookStore for SqliteStore {
    async fn create_notebook(&self, new: NewNotebook, max_depth: u32, change: &Change) -> StoreResult<Notebook> {
        let (_writer, mut tx) = self.begin_write().await?;
        if let Some(parent) = new.parent_id {
            let depth = live_depth(&mut tx, parent).await?.ok_or(StoreError::NotFound)?;
            notebook::check_depth(u64::from(depth), 1, max_depth)?;
        }
        let owner_exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM users WHERE id = ? AND status != 'deleted'")
            .bind(new.owner_id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
        if owner_exists.is_none() {
            return Err(StoreError::NotFound);
        }
        let created_at = time::to_storage(&new.created_at);
        sqlx::query(
            "INSERT INTO notebooks (id, name, description, visibility, status, compliance_settings, tags, \
             search_text, created_at, updated_at, is_template) VALUES (?, ?, ?, ?, 'active', ?, ?, ?, ?, ?, ?)",
        )
        .bind(new.id.to_string())
        .bind(new.name.as_str())
        .bind(new.description.as_ref().map(Description::as_str))
        .bind(new.visibility.as_str())
        .bind(settings_json(&new.compliance_settings))
        .bind(tags_json(&new.tags))
        .bind(new.search_text())
        .bind(&created_at)
        .bind(&created_at)
        .bind(new.is_template)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        sqlx::query("INSERT INTO owns (user_id, notebook_id, created_at) VALUES (?, ?, ?)")
            .bind(new.owner_id.to_string())
            .bind(new.id.to_string())
            .bind(&created_at)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if let Some(parent) = new.parent_id {
            sqlx::query("INSERT INTO parent_of (child_id, parent_id, created_at) VALUES (?, ?, ?)")
                .bind(new.id.to_string())
                .bind(parent.to_string())
                .bind(&created_at)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        sync_tags(&mut tx, new.id, change).await?;
        record_change(&mut tx, change, new.record()).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(new.into_notebook())
    }

    async fn get_notebook(&self, id: NotebookId) -> StoreResult<Notebook> {
        read_notebook(&self.pool, id, Liveness::Live).await?.ok_or(StoreError::NotFound)
    }

    async fn list_notebooks(&self, query: NotebookQuery) -> StoreResult<Page<Notebook>> {
        let (user, sql) = match query.scope {
            ListScope::Owned(user) => (Some(user), OWNED),
            ListScope::SharedWith(user) => (Some(user), SHARED_WITH),
            ListScope::Public => (None, PUBLIC),
        };
        let rows: Vec<NotebookRow> = sqlx::query_as(sql.get(query.order))
            .bind(user.map(|user| user.to_string()))
            .bind(query.status.map(NotebookStatus::as_str))
            .bind(query.visibility.map(Visibility::as_str))
            .bind(query.tag.as_ref().map(Tag::as_str))
            .bind(query.template)
            .bind(query.page.bound(query.order))
            .bind(query.page.fetch())
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(Page::from_overfetch(convert(rows)?, query.page.limit, |notebook: &Notebook| notebook.id.as_uuid()))
    }

    async fn update_notebook(
        &self,
        id: NotebookId,
        patch: NotebookPatch,
        expected_version: Option<u64>,
        change: &Change,
    ) -> StoreResult<Notebook> {
        let (_writer, mut tx) = self.begin_write().await?;
        let notebook = update_in(&mut tx, id, |_| Ok(patch), expected_version, change).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(notebook)
    }

    async fn soft_delete_notebook(&self, id: NotebookId, cascade: bool, change: &Change) -> StoreResult<()> {
        let (_writer, mut tx) = self.begin_write().await?;
        soft_delete_in(&mut tx, id, cascade, change).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn bulk_update(
        &self,
        ids: &[NotebookId],
        action: &BulkAction,
        max_depth: u32,
        change: &Change,
    ) -> StoreResult<Vec<Notebook>> {
        // One transaction for the whole batch: the first failure rolls back all.
        let (_writer, mut tx) = self.begin_write().await?;
        let mut updated = Vec::with_capacity(ids.len());
        for &id in ids {
            match action {
                BulkAction::Move { parent } => {
                    updated.push(move_in(&mut tx, id, *parent, None, max_depth, change).await?);
                }
                BulkAction::Delete { cascade } => soft_delete_in(&mut tx, id, *cascade, change).await?,
                other => {
                    let notebook = update_in(&mut tx, id, |current| other.patch_for(current), None, change).await?;
                    updated.push(notebook);
                }
            }
        }
        tx.commit().await.map_err(map_err)?;
        Ok(updated)
    }

    async fn duplicate_notebook(
        &self,
        source: NotebookId,
        owner: UserId,
        new_parent: Option<NotebookId>,
        name: NotebookName,
        max_depth: u32,
        change: &Change,
    ) -> StoreResult<Notebook> {
        let (_writer, mut tx) = self.begin_write().await?;
        let copy = duplicate_in(&mut tx, source, owner, new_parent, name, max_depth, change).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(copy)
    }

    async fn tag_usage(&self, owner: Option<UserId>, limit: u32) -> StoreResult<Vec<(Tag, u64)>> {
        let rows: Vec<TagUsageRow> = sqlx::query_as(
            "SELECT tw.tag_name AS name, COUNT(*) AS usage FROM tagged_with tw \
             JOIN notebooks n ON n.id = tw.notebook_id JOIN owns o ON o.notebook_id = n.id \
             WHERE n.status != 'deleted' AND ((?1 IS NOT NULL AND o.user_id = ?1) \
             OR (?1 IS NULL AND n.visibility = 'public')) \
             GROUP BY tw.tag_name ORDER BY usage DESC, name LIMIT ?2",
        )
        .bind(owner.map(|owner| owner.to_string()))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        convert(rows)
    }

    async fn get_deleted_notebook(&self, id: NotebookId) -> StoreResult<Notebook> {
        read_notebook(&self.pool, id, Liveness::Deleted).await?.ok_or(StoreError::NotFound)
    }

    async fn restore_notebook(&self, id: NotebookId, change: &Change) -> StoreResult<Notebook> {
        let (_writer, mut tx) = self.begin_write().await?;
        let mut notebook = notebook_in(&mut tx, id, Liveness::Deleted).await?;
        let parent_deleted = match notebook.parent_id {
            Some(parent) => live_depth(&mut tx, parent).await?.is_none(),
            None => false,
        };
        notebook::check_restore(parent_deleted)?;
        sqlx::query("UPDATE notebooks SET status = 'active', updated_at = ?, version = version + 1 WHERE id = ?")
            .bind(time::to_storage(&change.at))
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        record_change(&mut tx, change, ChangeRecord::notebook_restored(id)).await?;
        tx.commit().await.map_err(map_err)?;
        notebook.restore(change.at);
        Ok(notebook)
    }

    async fn access_chain(&self, user: UserId, id: NotebookId) -> StoreResult<Vec<ChainLink>> {
        let rows: Vec<ChainRow> = sqlx::query_as(
            "WITH RECURSIVE chain(id, depth) AS (SELECT ?1, 0 UNION ALL \
             SELECT p.parent_id, c.depth + 1 FROM parent_of p JOIN chain c ON p.child_id = c.id) \
             SELECT n.id, o.user_id AS owner_id, n.visibility, n.status, co.permission \
             FROM chain c JOIN notebooks n ON n.id = c.id JOIN owns o ON o.notebook_id = n.id \
             LEFT JOIN collaborates_on co ON co.notebook_id = n.id AND co.user_id = ?2 AND co.status = 'active' \
             ORDER BY c.depth",
        )
        .bind(id.to_string())
        .bind(user.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        // The chain starts at the notebook asked for, which must be live.
        if rows.first().is_none_or(|row| row.status == NotebookStatus::Deleted.as_str()) {
            return Err(StoreError::NotFound);
        }
        convert(rows)
    }

    async fn list_children(
        &self,
        parent: NotebookId,
        only_public: bool,
        page: PageRequest,
    ) -> StoreResult<Page<Notebook>> {
        let rows: Vec<NotebookRow> = sqlx::query_as(CHILDREN)
            .bind(parent.to_string())
            .bind(only_public)
            .bind(page.bound(SortOrder::NewestFirst))
            .bind(page.fetch())
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(Page::from_overfetch(convert(rows)?, page.limit, |notebook: &Notebook| notebook.id.as_uuid()))
    }

    async fn move_notebook(
        &self,
        id: NotebookId,
        new_parent: Option<NotebookId>,
        expected_version: Option<u64>,
        max_depth: u32,
        change: &Change,
    ) -> StoreResult<Notebook> {
        let (_writer, mut tx) = self.begin_write().await?;
        let notebook = move_in(&mut tx, id, new_parent, expected_version, max_depth, change).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(notebook)
    }
}

/// Reads, checks and patches one live notebook inside the caller's transaction, by
/// `Notebook::update`'s rule.
async fn update_in(
    tx: &mut SqliteConnection,
    id: NotebookId,
    patch_of: impl FnOnce(&Notebook) -> StoreResult<NotebookPatch>,
    expected_version: Option<u64>,
    change: &Change,
) -> StoreResult<Notebook> {
    let mut notebook = notebook_in(tx, id, Liveness::Live).await?;
    let record = notebook.update(expected_version, patch_of, change.at)?;
    sqlx::query(
        "UPDATE notebooks SET name = ?, description = ?, visibility = ?, status = ?, tags = ?, \
         compliance_settings = ?, search_text = ?, is_template = ?, updated_at = ?, version = version + 1 \
         WHERE id = ?",
    )
    .bind(notebook.name.as_str())
    .bind(notebook.description.as_ref().map(Description::as_str))
    .bind(notebook.visibility.as_str())
    .bind(notebook.status.as_str())
    .bind(tags_json(&notebook.tags))
    .bind(settings_json(&notebook.compliance_settings))
    .bind(notebook.search_text())
    .bind(notebook.is_template)
    .bind(time::to_storage(&change.at))
    .bind(id.to_string())
    .execute(&mut *tx)
    .await
    .map_err(map_err)?;
    sync_tags(&mut *tx, id, change).await?;
    record_change(&mut *tx, change, record).await?;
    Ok(notebook)
}

/// Brings a notebook's `TAGGED_WITH` rows in step with its `tags` list.
pub(crate) async fn sync_tags(tx: &mut SqliteConnection, id: NotebookId, change: &Change) -> StoreResult<()> {
    let at = time::to_storage(&change.at);
    sqlx::query(
        "DELETE FROM tagged_with WHERE notebook_id = ?1 AND tag_name NOT IN \
         (SELECT value FROM json_each((SELECT tags FROM notebooks WHERE id = ?1)))",
    )
    .bind(id.to_string())
    .execute(&mut *tx)
    .await
    .map_err(map_err)?;
    sqlx::query(
        "INSERT OR IGNORE INTO tags (name, created_at) \
         SELECT value, ?2 FROM json_each((SELECT tags FROM notebooks WHERE id = ?1))",
    )
    .bind(id.to_string())
    .bind(&at)
    .execute(&mut *tx)
    .await
    .map_err(map_err)?;
    sqlx::query(
        "INSERT OR IGNORE INTO tagged_with (notebook_id, tag_name, tagged_at, tagged_by) \
         SELECT ?1, value, ?2, ?3 FROM json_each((SELECT tags FROM notebooks WHERE id = ?1))",
    )
    .bind(id.to_string())
    .bind(&at)
    .bind(change.actor.map(|actor| actor.to_string()))
    .execute(&mut *tx)
    .await
    .map_err(map_err)?;
    Ok(())
}
