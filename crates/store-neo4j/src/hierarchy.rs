//! The hierarchy (`PARENT_OF`): locks on a notebook and its ancestors, moves, soft
//! deletion of a notebook or subtree, and the copy of a subtree. Each runs inside the
//! caller's transaction, so that the bulk operation applies exactly these rules.

use std::collections::HashMap;

use aether_domain::StoreError;
use aether_domain::activity::{Change, ChangeRecord};
use aether_domain::id::{NotebookId, UserId};
use aether_domain::notebook::{self, Notebook, NotebookName};
use aether_domain::store::StoreResult;
use aether_domain::time::Timestamp;
use neo4rs::{Txn, query};

use crate::activity::record_change;
use crate::notebooks::sync_tags;
use crate::rows::{NOTEBOOK_RETURN, SubtreeRecord, column, notebook_from_row, parse_notebook_ids, storage, unsigned};
use crate::txn::{map_err, single_value, txn_row, txn_rows};

/// Soft-deletes one live notebook (with `cascade`, its subtree) inside the
/// caller's transaction.
pub(crate) async fn soft_delete_in(txn: &mut Txn, id: NotebookId, cascade: bool, change: &Change) -> StoreResult<()> {
    let at = change.at;

    if lock_live(txn, id, &at).await?.is_none() {
        return Err(StoreError::NotFound);
    }
    let count = query(
        "MATCH (:Notebook {id: $id})-[:PARENT_OF]->(c:Notebook) WHERE c.status <> 'deleted' RETURN count(c) AS count",
    )
    .param("id", id.to_string());
    let live_children: i64 = single_value(txn, count, "count").await?;
    notebook::check_delete(unsigned(live_children, "count")?, cascade)?;
    let delete = query(
        "MATCH (:Notebook {id: $id})-[:PARENT_OF*0..]->(d:Notebook) WHERE d.status <> 'deleted' \
             SET d.status = 'deleted', d.updated_at = datetime($at), d.version = coalesce(d.version, 1) + 1",
    )
    .param("id", id.to_string())
    .param("at", storage(&at));
    txn.run(delete).await.map_err(map_err)?;
    record_change(txn, change, ChangeRecord::notebook_deleted(id, cascade)).await
}

/// Re-parents one live notebook inside the caller's transaction.
pub(crate) async fn move_in(
    txn: &mut Txn,
    id: NotebookId,
    new_parent: Option<NotebookId>,
    expected_version: Option<u64>,
    max_depth: u32,
    change: &Change,
) -> StoreResult<Notebook> {
    let at = change.at;

    let version = lock_live(txn, id, &at).await?.ok_or(StoreError::NotFound)?;
    notebook::check_version(version, expected_version)?;
    // Locking the new parent's whole ancestor chain serialises concurrent moves
    // that could otherwise close a cycle between them.
    let parent_depth = match new_parent {
        None => 0,
        Some(parent) => {
            let chain = lock_chain(txn, parent).await?;
            if chain.is_empty() {
                return Err(StoreError::NotFound);
            }
            notebook::check_no_cycle(id, &parse_notebook_ids(&chain)?)?;
            chain.len() as u64
        }
    };
    let height = query(
        "MATCH path = (:Notebook {id: $id})-[:PARENT_OF*0..]->(d:Notebook) WHERE d.status <> 'deleted' \
             RETURN max(length(path)) + 1 AS height",
    )
    .param("id", id.to_string());
    let height: i64 = single_value(txn, height, "height").await?;
    notebook::check_depth(parent_depth, u64::try_from(height).unwrap_or(u64::MAX), max_depth)?;
    let detach = query(
        "MATCH (n:Notebook {id: $id}) SET n.version = coalesce(n.version, 1) + 1 REMOVE n.parent_id \
             WITH n OPTIONAL MATCH (:Notebook)-[r:PARENT_OF]->(n) DELETE r",
    )
    .param("id", id.to_string());
    txn.run(detach).await.map_err(map_err)?;
    if let Some(parent) = new_parent {
        let attach = query(
            "MATCH (p:Notebook {id: $parent}), (n:Notebook {id: $id}) \
                 CREATE (p)-[:PARENT_OF {created_at: datetime($at)}]->(n) SET n.parent_id = p.id",
        )
        .param("parent", parent.to_string())
        .param("id", id.to_string())
        .param("at", storage(&at));
        txn.run(attach).await.map_err(map_err)?;
    }
    let read = query(&format!("MATCH (owner:User)-[:OWNS]->(n:Notebook {{id: $id}}) {NOTEBOOK_RETURN}"))
        .param("id", id.to_string());
    let row = txn_row(txn, read).await?.ok_or(StoreError::NotFound)?;
    let notebook = notebook_from_row(&row)?;
    record_change(txn, change, ChangeRecord::notebook_moved(id, new_parent)).await?;
    Ok(notebook)
}

/// Takes the write lock of a notebook and reports whether it is live. The status is
/// read after the lock, so it is the committed value, not a stale one.
async fn lock_live(txn: &mut Txn, id: NotebookId, at: &Timestamp) -> StoreResult<Option<u64>> {
    let q = query(
        "MATCH (n:Notebook {id: $id}) SET n.updated_at = datetime($at) \
         WITH n WHERE n.status <> 'deleted' RETURN coalesce(n.version, 1) AS version",
    )
    .param("id", id.to_string())
    .param("at", storage(at));
    match txn_rows(txn, q).await?.into_iter().next() {
        Some(row) => Ok(Some(unsigned(column(&row, "version")?, "version")?)),
        None => Ok(None),
    }
}

/// Locks a live notebook and all its ancestors; returns their ids, or nothing when
/// the notebook is missing or deleted.
pub(crate) async fn lock_chain(txn: &mut Txn, id: NotebookId) -> StoreResult<Vec<String>> {
    let q = query(
        "MATCH (n:Notebook {id: $id}) SET n.updated_at = n.updated_at WITH n WHERE n.status <> 'deleted' \
         MATCH (a:Notebook)-[:PARENT_OF*0..]->(n) SET a.updated_at = a.updated_at RETURN a.id AS id",
    )
    .param("id", id.to_string());
    txn_rows(txn, q).await?.iter().map(|row| column(row, "id")).collect()
}

/// Copies the live subtree of `source` for `owner`, under `new_parent`, the root's
/// copy named `name`, as `notebook::plan_copies` lays it out.
pub(crate) async fn duplicate_in(
    txn: &mut Txn,
    source: NotebookId,
    owner: UserId,
    new_parent: Option<NotebookId>,
    name: NotebookName,
    max_depth: u32,
    change: &Change,
) -> StoreResult<Notebook> {
    let parent_depth = match new_parent {
        Some(parent) => {
            let chain = lock_chain(txn, parent).await?;
            if chain.is_empty() {
                return Err(StoreError::NotFound);
            }
            chain.len() as u64
        }
        None => 0,
    };
    // The live subtree with each node's parent, parents before children.
    let subtree = query(
        "MATCH (s:Notebook {id: $id}) WHERE s.status <> 'deleted' \
             MATCH path = (s)-[:PARENT_OF*0..]->(d:Notebook) \
             WHERE all(x IN nodes(path) WHERE x.status <> 'deleted') \
             OPTIONAL MATCH (p:Notebook)-[:PARENT_OF]->(d) \
             RETURN d.id AS id, CASE WHEN d = s THEN null ELSE p.id END AS parent, length(path) AS level \
             ORDER BY level",
    )
    .param("id", source.to_string());
    let rows = txn_rows(txn, subtree).await?;
    if rows.is_empty() {
        return Err(StoreError::NotFound);
    }
    let records = rows.iter().map(|row| row.to::<SubtreeRecord>()).collect::<Result<Vec<_>, _>>();
    let records = records.map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let height = records.iter().map(|record| record.level).max().unwrap_or(0) + 1;
    notebook::check_depth(parent_depth, u64::try_from(height).unwrap_or(u64::MAX), max_depth)?;
    let subtree = records.iter().map(SubtreeRecord::ids).collect::<StoreResult<Vec<_>>>()?;
    let copies = notebook::plan_copies(&subtree, new_parent);
    let pair = |a: &str, x: NotebookId, b: &str, y: NotebookId| {
        HashMap::from([(a.to_owned(), x.to_string()), (b.to_owned(), y.to_string())])
    };
    let nodes: Vec<_> = copies.iter().map(|copy| pair("old", copy.source, "new", copy.copy)).collect();
    let edges: Vec<_> =
        copies.iter().filter_map(|copy| copy.parent.map(|parent| pair("parent", parent, "child", copy.copy))).collect();
    let create = query(
        "MATCH (owner:User {id: $owner}) UNWIND $nodes AS item MATCH (src:Notebook {id: item.old}) \
             CREATE (c:Notebook) SET c = src {.*, id: item.new, owner_id: owner.id, parent_id: null, \
             created_at: datetime($at), updated_at: datetime($at), version: 1, document_count: 0, \
             total_size_bytes: 0, is_template: false} \
             CREATE (owner)-[:OWNS {created_at: datetime($at)}]->(c)",
    )
    .param("owner", owner.to_string())
    .param("nodes", nodes)
    .param("at", storage(&change.at));
    txn.run(create).await.map_err(map_err)?;
    let link = query(
        "UNWIND $edges AS edge MATCH (p:Notebook {id: edge.parent}), (c:Notebook {id: edge.child}) \
             CREATE (p)-[:PARENT_OF {created_at: datetime($at)}]->(c) SET c.parent_id = p.id",
    )
    .param("edges", edges)
    .param("at", storage(&change.at));
    txn.run(link).await.map_err(map_err)?;
    let root = copies.iter().find(|copy| copy.source == source).map(|copy| copy.copy.to_string());
    let root = root.ok_or(StoreError::NotFound)?;
    let read = query(&format!("MATCH (owner:User)-[:OWNS]->(n:Notebook {{id: $id}}) {NOTEBOOK_RETURN}"))
        .param("id", root.as_str());
    let row = txn_row(txn, read).await?.ok_or(StoreError::NotFound)?;
    let mut copy = notebook_from_row(&row)?;
    copy.name = name;
    let rename = query("MATCH (n:Notebook {id: $id}) SET n.name = $name, n.search_text = $search")
        .param("id", root.as_str())
        .param("name", copy.name.as_str())
        .param("search", copy.search_text());
    txn.run(rename).await.map_err(map_err)?;
    sync_tags(txn, copies.iter().map(|copy| copy.copy.to_string()).collect(), change).await?;
    let record = ChangeRecord::notebook_duplicated(copy.id, &copy.name, source, copies.len());
    record_change(txn, change, record).await?;
    Ok(copy)
}
