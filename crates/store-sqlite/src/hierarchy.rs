//! The hierarchy (`parent_of`): depth of a live notebook, moves, soft deletion of a
//! notebook or subtree, and the copy of a subtree. Each runs inside the caller's
//! transaction, so that the bulk operation applies exactly these rules.

use aether_domain::StoreError;
use aether_domain::activity::{Change, ChangeRecord};
use aether_domain::id::{NotebookId, UserId};
use aether_domain::notebook::{self, Notebook, NotebookName};
use aether_domain::store::StoreResult;
use aether_domain::time;
use sqlx::SqliteConnection;

use crate::activity::record_change;
use crate::map_err;
use crate::notebooks::{Liveness, notebook_in, sync_tags};
use crate::rows::{SubtreeRow, corrupt, count, parse_notebook_ids};

/// The depth of a live notebook (a root is 1), or `None` when it is missing or deleted.
pub(crate) async fn live_depth(tx: &mut SqliteConnection, id: NotebookId) -> StoreResult<Option<u32>> {
    let status: Option<String> = sqlx::query_scalar("SELECT status FROM notebooks WHERE id = ?")
        .bind(id.to_string())
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
    if status.as_deref().is_none_or(|status| status == "deleted") {
        return Ok(None);
    }
    let depth: i64 = sqlx::query_scalar(
        "WITH RECURSIVE chain(id) AS (SELECT ?1 UNION ALL \
         SELECT p.parent_id FROM parent_of p JOIN chain c ON p.child_id = c.id) SELECT COUNT(*) FROM chain",
    )
    .bind(id.to_string())
    .fetch_one(&mut *tx)
    .await
    .map_err(map_err)?;
    u32::try_from(depth).map(Some).map_err(|_| corrupt("depth"))
}

fn height(levels: i64) -> StoreResult<u64> {
    u64::try_from(levels).map_err(|_| corrupt("height"))
}

/// Soft-deletes one live notebook (with `cascade`, its subtree).
pub(crate) async fn soft_delete_in(
    tx: &mut SqliteConnection,
    id: NotebookId,
    cascade: bool,
    change: &Change,
) -> StoreResult<()> {
    if live_depth(&mut *tx, id).await?.is_none() {
        return Err(StoreError::NotFound);
    }
    let live_children: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM parent_of p JOIN notebooks n ON n.id = p.child_id \
         WHERE p.parent_id = ? AND n.status != 'deleted'",
    )
    .bind(id.to_string())
    .fetch_one(&mut *tx)
    .await
    .map_err(map_err)?;
    notebook::check_delete(count(live_children)?, cascade)?;
    sqlx::query(
        "WITH RECURSIVE subtree(id) AS (SELECT ?1 UNION ALL \
         SELECT p.child_id FROM parent_of p JOIN subtree s ON p.parent_id = s.id) \
         UPDATE notebooks SET status = 'deleted', updated_at = ?2, version = version + 1 \
         WHERE id IN (SELECT id FROM subtree) AND status != 'deleted'",
    )
    .bind(id.to_string())
    .bind(time::to_storage(&change.at))
    .execute(&mut *tx)
    .await
    .map_err(map_err)?;
    record_change(&mut *tx, change, ChangeRecord::notebook_deleted(id, cascade)).await
}

/// Re-parents one live notebook.
pub(crate) async fn move_in(
    tx: &mut SqliteConnection,
    id: NotebookId,
    new_parent: Option<NotebookId>,
    expected_version: Option<u64>,
    max_depth: u32,
    change: &Change,
) -> StoreResult<Notebook> {
    let at = time::to_storage(&change.at);
    notebook_in(&mut *tx, id, Liveness::Live).await?.check_version(expected_version)?;
    let parent_depth = match new_parent {
        None => 0,
        Some(parent) => {
            let ancestors: Vec<String> = sqlx::query_scalar(
                "WITH RECURSIVE chain(id) AS (SELECT ?1 UNION ALL \
                 SELECT p.parent_id FROM parent_of p JOIN chain c ON p.child_id = c.id) SELECT id FROM chain",
            )
            .bind(parent.to_string())
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err)?;
            notebook::check_no_cycle(id, &parse_notebook_ids(&ancestors)?)?;
            live_depth(&mut *tx, parent).await?.ok_or(StoreError::NotFound)?
        }
    };
    let levels: i64 = sqlx::query_scalar(
        "WITH RECURSIVE subtree(id, level) AS (SELECT ?1, 1 UNION ALL \
         SELECT p.child_id, s.level + 1 FROM parent_of p JOIN subtree s ON p.parent_id = s.id \
         JOIN notebooks n ON n.id = p.child_id WHERE n.status != 'deleted') SELECT MAX(level) FROM subtree",
    )
    .bind(id.to_string())
    .fetch_one(&mut *tx)
    .await
    .map_err(map_err)?;
    notebook::check_depth(u64::from(parent_depth), height(levels)?, max_depth)?;
    sqlx::query("DELETE FROM parent_of WHERE child_id = ?")
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
    if let Some(parent) = new_parent {
        sqlx::query("INSERT INTO parent_of (child_id, parent_id, created_at) VALUES (?, ?, ?)")
            .bind(id.to_string())
            .bind(parent.to_string())
            .bind(&at)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
    }
    sqlx::query("UPDATE notebooks SET updated_at = ?, version = version + 1 WHERE id = ?")
        .bind(&at)
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
    let notebook = notebook_in(&mut *tx, id, Liveness::Any).await?;
    record_change(&mut *tx, change, ChangeRecord::notebook_moved(id, new_parent)).await?;
    Ok(notebook)
}

/// Copies the live subtree of `source` for `owner`, under `new_parent`, the root's
/// copy named `name`, as `notebook::plan_copies` lays it out.
pub(crate) async fn duplicate_in(
    tx: &mut SqliteConnection,
    source: NotebookId,
    owner: UserId,
    new_parent: Option<NotebookId>,
    name: NotebookName,
    max_depth: u32,
    change: &Change,
) -> StoreResult<Notebook> {
    if live_depth(&mut *tx, source).await?.is_none() {
        return Err(StoreError::NotFound);
    }
    let parent_depth = match new_parent {
        Some(parent) => live_depth(&mut *tx, parent).await?.ok_or(StoreError::NotFound)?,
        None => 0,
    };
    // The live subtree, parents before children.
    let rows: Vec<SubtreeRow> = sqlx::query_as(
        "WITH RECURSIVE subtree(id, parent, level) AS (SELECT ?1, NULL, 1 UNION ALL \
         SELECT p.child_id, p.parent_id, s.level + 1 FROM parent_of p JOIN subtree s ON p.parent_id = s.id \
         JOIN notebooks n ON n.id = p.child_id WHERE n.status != 'deleted') \
         SELECT id, parent, level FROM subtree ORDER BY level",
    )
    .bind(source.to_string())
    .fetch_all(&mut *tx)
    .await
    .map_err(map_err)?;
    let levels = rows.iter().map(|row| row.level).max().unwrap_or(1);
    notebook::check_depth(u64::from(parent_depth), height(levels)?, max_depth)?;
    let subtree = rows.iter().map(SubtreeRow::ids).collect::<StoreResult<Vec<_>>>()?;
    let copies = notebook::plan_copies(&subtree, new_parent);
    let at = time::to_storage(&change.at);
    for copy in &copies {
        let is_root = copy.source == source;
        sqlx::query(
            "INSERT INTO notebooks (id, name, description, visibility, status, compliance_settings, tags, \
             search_text, created_at, updated_at) SELECT ?1, CASE WHEN ?2 IS NULL THEN name ELSE ?2 END, \
             description, visibility, status, compliance_settings, tags, search_text, ?3, ?3 \
             FROM notebooks WHERE id = ?4",
        )
        .bind(copy.copy.to_string())
        .bind(is_root.then(|| name.as_str().to_owned()))
        .bind(&at)
        .bind(copy.source.to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        sqlx::query("INSERT INTO owns (user_id, notebook_id, created_at) VALUES (?, ?, ?)")
            .bind(owner.to_string())
            .bind(copy.copy.to_string())
            .bind(&at)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if let Some(parent) = copy.parent {
            sqlx::query("INSERT INTO parent_of (child_id, parent_id, created_at) VALUES (?, ?, ?)")
                .bind(copy.copy.to_string())
                .bind(parent.to_string())
                .bind(&at)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
    }
    let root = copies.iter().find(|copy| copy.source == source).map(|copy| copy.copy).ok_or(StoreError::NotFound)?;
    let mut copy = notebook_in(&mut *tx, root, Liveness::Any).await?;
    copy.name = name;
    sqlx::query("UPDATE notebooks SET search_text = ? WHERE id = ?")
        .bind(copy.search_text())
        .bind(root.to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
    for planned in &copies {
        sync_tags(&mut *tx, planned.copy, change).await?;
    }
    let record = ChangeRecord::notebook_duplicated(root, &copy.name, source, copies.len());
    record_change(&mut *tx, change, record).await?;
    Ok(copy)
}
