//! Notebooks: creation, reads and listings, updates (alone or in bulk), deletion and
//! restoration, tags (`TAGGED_WITH`) and the ancestor chain behind a permission.
//! Moves, deletions and copies of subtrees are in `hierarchy`.

use aether_domain::StoreError;
use aether_domain::access::ChainLink;
use aether_domain::activity::{Change, ChangeRecord};
use aether_domain::id::{NotebookId, UserId};
use aether_domain::notebook::{
    self, BulkAction, ListScope, NewNotebook, Notebook, NotebookName, NotebookPatch, NotebookQuery, SortOrder, Tag,
};
use aether_domain::page::{Page, PageRequest};
use aether_domain::store::{NotebookStore, StoreResult};
use async_trait::async_trait;
use neo4rs::{Txn, query};

use crate::Neo4jStore;
use crate::activity::{RECORD_CHANGE, change_params, record_change};
use crate::hierarchy::{duplicate_in, lock_chain, move_in, soft_delete_in};
use crate::rows::{
    ChainRecord, NOTEBOOK_RETURN, TagUsageRecord, column, from_rows, notebook_from_row, settings_json, storage,
    tag_names,
};
use crate::txn::{in_txn, in_txn_retrying, map_err, txn_row};

#[async_trait]
impl NotebookStore for Neo4jStore {
    async fn create_notebook(&self, new: NewNotebook, max_depth: u32, change: &Change) -> StoreResult<Notebook> {
        // The node, its OWNS, PARENT_OF and TAGGED_WITH, its activity event, audit entry
        // and outbox events are written by one statement (issue 14: five statements and
        // nine round trips before).
        let q = change_params(
            query(&format!(
                "MATCH (owner:User {{id: $owner_id}}) WHERE owner.status <> 'deleted' \
                 OPTIONAL MATCH (parent:Notebook {{id: $parent_id}}) \
                 CREATE (n:Notebook {{id: $id, owner_id: owner.id, parent_id: parent.id, name: $name, \
                 description: $description, visibility: $visibility, status: 'active', \
                 compliance_settings: $settings, document_count: 0, total_size_bytes: 0, tags: $tags, \
                 search_text: $search_text, created_at: datetime($at), updated_at: datetime($at), \
                 version: 1, is_template: $is_template}}) \
                 CREATE (owner)-[:OWNS {{created_at: datetime($at)}}]->(n) \
                 FOREACH (p IN CASE WHEN parent IS NULL THEN [] ELSE [parent] END | \
                   CREATE (p)-[:PARENT_OF {{created_at: datetime($at)}}]->(n)) \
                 WITH n, owner {ATTACH_TAGS} {RECORD_CHANGE} {NOTEBOOK_RETURN}"
            )),
            change,
            new.record(),
        )
        .param("owner_id", new.owner_id.to_string())
        .param("parent_id", new.parent_id.map(|id| id.to_string()))
        .param("id", new.id.to_string())
        .param("name", new.name.as_str())
        .param("description", new.description.as_ref().map(|d| d.as_str().to_owned()))
        .param("visibility", new.visibility.as_str())
        .param("settings", settings_json(&new.compliance_settings))
        .param("tags", tag_names(&new.tags))
        .param("search_text", new.search_text())
        .param("is_template", new.is_template)
        .param("at", storage(&new.created_at));
        let Some(parent) = new.parent_id else {
            // One statement is one transaction: auto-committed, RUN and PULL in one
            // round trip, no BEGIN and COMMIT.
            let row = self.optional_row(q).await?.ok_or(StoreError::NotFound)?;
            return notebook_from_row(&row);
        };
        in_txn(&self.graph, async move |txn: &mut Txn| {
            // The parent's chain is read under its locks, checked here, then written.
            let depth = lock_chain(txn, parent).await?.len();
            if depth == 0 {
                return Err(StoreError::NotFound);
            }
            notebook::check_depth(depth as u64, 1, max_depth)?;
            let row = txn_row(txn, q).await?.ok_or(StoreError::NotFound)?;
            notebook_from_row(&row)
        })
        .await
    }

    async fn get_notebook(&self, id: NotebookId) -> StoreResult<Notebook> {
        let q = query(&format!(
            "MATCH (owner:User)-[:OWNS]->(n:Notebook {{id: $id}}) WHERE n.status <> 'deleted' {NOTEBOOK_RETURN}"
        ))
        .param("id", id.to_string());
        let row = self.optional_row(q).await?.ok_or(StoreError::NotFound)?;
        notebook_from_row(&row)
    }

    async fn list_notebooks(&self, request: NotebookQuery) -> StoreResult<Page<Notebook>> {
        let (user, scope) = match request.scope {
            ListScope::Owned(user) => (Some(user), Scope::Owned),
            ListScope::SharedWith(user) => (Some(user), Scope::SharedWith),
            ListScope::Public => (None, Scope::Public),
        };
        let q = query(&list_notebooks_query(scope, request.order))
            .param("user", user.map(|user| user.to_string()))
            .param("status", request.status.map(|status| status.as_str()))
            .param("visibility", request.visibility.map(|visibility| visibility.as_str()))
            .param("tag", request.tag.as_ref().map(|tag| tag.as_str().to_owned()))
            .param("template", request.template)
            .param("bound", request.page.bound(request.order))
            .param("limit", request.page.fetch());
        let notebooks = self.rows(q).await?.iter().map(notebook_from_row).collect::<StoreResult<Vec<_>>>()?;
        Ok(Page::from_overfetch(notebooks, request.page.limit, |notebook| notebook.id.as_uuid()))
    }

    async fn update_notebook(
        &self,
        id: NotebookId,
        patch: NotebookPatch,
        expected_version: Option<u64>,
        change: &Change,
    ) -> StoreResult<Notebook> {
        // Retried after a deadlock: a document worker finishing a job in this notebook
        // locks it too, and the client should not see a 503 for that.
        let change = change.clone();
        in_txn_retrying(&self.graph, async move |txn: &mut Txn| {
            update_in(txn, id, |_| Ok(patch.clone()), expected_version, &change).await
        })
        .await
    }

    async fn bulk_update(
        &self,
        ids: &[NotebookId],
        action: &BulkAction,
        max_depth: u32,
        change: &Change,
    ) -> StoreResult<Vec<Notebook>> {
        // One transaction for the whole batch: the first failure rolls back all.
        in_txn(&self.graph, async move |txn: &mut Txn| {
            let mut updated = Vec::with_capacity(ids.len());
            for &id in ids {
                match action {
                    BulkAction::Move { parent } => {
                        updated.push(move_in(txn, id, *parent, None, max_depth, change).await?);
                    }
                    BulkAction::Delete { cascade } => soft_delete_in(txn, id, *cascade, change).await?,
                    other => updated.push(update_in(txn, id, |current| other.patch_for(current), None, change).await?),
                }
            }
            Ok(updated)
        })
        .await
    }

    async fn soft_delete_notebook(&self, id: NotebookId, cascade: bool, change: &Change) -> StoreResult<()> {
        let change = change.clone();
        in_txn_retrying(&self.graph, async move |txn: &mut Txn| soft_delete_in(txn, id, cascade, &change).await).await
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
        in_txn(&self.graph, async move |txn: &mut Txn| {
            duplicate_in(txn, source, owner, new_parent, name, max_depth, change).await
        })
        .await
    }

    async fn tag_usage(&self, owner: Option<UserId>, limit: u32) -> StoreResult<Vec<(Tag, u64)>> {
        let q = query(
            "MATCH (o:User)-[:OWNS]->(n:Notebook)-[:TAGGED_WITH]->(t:Tag) WHERE n.status <> 'deleted' \
             AND (($owner IS NOT NULL AND o.id = $owner) OR ($owner IS NULL AND n.visibility = 'public')) \
             RETURN t.name AS name, count(n) AS usage ORDER BY usage DESC, name LIMIT $limit",
        )
        .param("owner", owner.map(|owner| owner.to_string()))
        .param("limit", i64::from(limit));
        from_rows::<TagUsageRecord, (Tag, u64)>(&self.rows(q).await?)
    }

    async fn get_deleted_notebook(&self, id: NotebookId) -> StoreResult<Notebook> {
        let q = query(&format!(
            "MATCH (owner:User)-[:OWNS]->(n:Notebook {{id: $id}}) WHERE n.status = 'deleted' {NOTEBOOK_RETURN}"
        ))
        .param("id", id.to_string());
        let row = self.optional_row(q).await?.ok_or(StoreError::NotFound)?;
        notebook_from_row(&row)
    }

    async fn restore_notebook(&self, id: NotebookId, change: &Change) -> StoreResult<Notebook> {
        let at = change.at;
        in_txn(&self.graph, async move |txn: &mut Txn| {
            // Lock the notebook, then read its state and its parent's after the lock.
            let lock = query(
                "MATCH (n:Notebook {id: $id}) SET n.updated_at = n.updated_at WITH n WHERE n.status = 'deleted' \
                 OPTIONAL MATCH (p:Notebook)-[:PARENT_OF]->(n) \
                 RETURN p IS NOT NULL AND p.status = 'deleted' AS parent_deleted",
            )
            .param("id", id.to_string());
            let row = txn_row(txn, lock).await?.ok_or(StoreError::NotFound)?;
            notebook::check_restore(column(&row, "parent_deleted")?)?;
            let restore = query(&format!(
                "MATCH (owner:User)-[:OWNS]->(n:Notebook {{id: $id}}) SET n.status = 'active', \
                 n.updated_at = datetime($at), n.version = coalesce(n.version, 1) + 1 {NOTEBOOK_RETURN}"
            ))
            .param("id", id.to_string())
            .param("at", storage(&at));
            let row = txn_row(txn, restore).await?.ok_or(StoreError::NotFound)?;
            record_change(txn, change, ChangeRecord::notebook_restored(id)).await?;
            notebook_from_row(&row)
        })
        .await
    }

    async fn access_chain(&self, user: UserId, id: NotebookId) -> StoreResult<Vec<ChainLink>> {
        let q = query(
            "MATCH (n:Notebook {id: $id}) WHERE n.status <> 'deleted' \
             MATCH path = (a:Notebook)-[:PARENT_OF*0..]->(n) \
             MATCH (owner:User)-[:OWNS]->(a) \
             OPTIONAL MATCH (:User {id: $user})-[c:COLLABORATES_ON {status: 'active'}]->(a) \
             RETURN a.id AS notebook_id, owner.id AS owner_id, a.visibility AS visibility, \
             c.permission AS permission, length(path) AS depth ORDER BY depth",
        )
        .param("id", id.to_string())
        .param("user", user.to_string());
        let rows = self.rows(q).await?;
        if rows.is_empty() {
            return Err(StoreError::NotFound);
        }
        from_rows::<ChainRecord, ChainLink>(&rows)
    }

    async fn notebook_with_access_chain(
        &self,
        user: UserId,
        id: NotebookId,
    ) -> StoreResult<(Notebook, Vec<ChainLink>)> {
        // The chain of `access_chain`, collected in depth order, beside the notebook.
        let q = query(&format!(
            "MATCH (owner:User)-[:OWNS]->(n:Notebook {{id: $id}}) WHERE n.status <> 'deleted' \
             CALL {{ WITH n MATCH path = (a:Notebook)-[:PARENT_OF*0..]->(n) MATCH (a_owner:User)-[:OWNS]->(a) \
             OPTIONAL MATCH (:User {{id: $user}})-[c:COLLABORATES_ON {{status: 'active'}}]->(a) \
             WITH a, a_owner, c, length(path) AS depth ORDER BY depth \
             RETURN collect({{notebook_id: a.id, owner_id: a_owner.id, visibility: a.visibility, \
             permission: c.permission}}) AS chain }} {}, chain AS chain",
            NOTEBOOK_RETURN.replacen("WITH n, owner ", "WITH n, owner, chain ", 1)
        ))
        .param("id", id.to_string())
        .param("user", user.to_string());
        let row = self.optional_row(q).await?.ok_or(StoreError::NotFound)?;
        let chain: Vec<ChainRecord> = column(&row, "chain")?;
        let chain = chain.into_iter().map(ChainLink::try_from).collect::<StoreResult<Vec<_>>>()?;
        Ok((notebook_from_row(&row)?, chain))
    }

    async fn list_children(
        &self,
        parent: NotebookId,
        only_public: bool,
        page: PageRequest,
    ) -> StoreResult<Page<Notebook>> {
        let q = query(&format!("{CHILDREN} {NOTEBOOK_RETURN} ORDER BY id DESC"))
            .param("parent", parent.to_string())
            .param("only_public", only_public)
            .param("bound", page.bound(SortOrder::NewestFirst))
            .param("limit", page.fetch());
        let notebooks = self.rows(q).await?.iter().map(notebook_from_row).collect::<StoreResult<Vec<_>>>()?;
        Ok(Page::from_overfetch(notebooks, page.limit, |notebook| notebook.id.as_uuid()))
    }

    async fn move_notebook(
        &self,
        id: NotebookId,
        new_parent: Option<NotebookId>,
        expected_version: Option<u64>,
        max_depth: u32,
        change: &Change,
    ) -> StoreResult<Notebook> {
        let change = change.clone();
        in_txn_retrying(&self.graph, async move |txn: &mut Txn| {
            move_in(txn, id, new_parent, expected_version, max_depth, &change).await
        })
        .await
    }
}

/// Which notebooks a listing walks: the scopes of `ListScope`, without their user.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scope {
    Owned,
    SharedWith,
    Public,
}

/// The statement of a notebook listing. Its rows (`limit + 1` of them) are chosen
/// first, walking the scope's index from the cursor (`$bound`) in order, and only
/// they are projected. The direction is chosen here, never from client text, so
/// formatting it in is safe.
pub(crate) fn list_notebooks_query(scope: Scope, order: SortOrder) -> String {
    let (compare, direction) = match order {
        SortOrder::NewestFirst => ("<", "DESC"),
        SortOrder::OldestFirst => (">", "ASC"),
    };
    let (walk, order_by) = match scope {
        // `notebook_owner_keyset` (owner_id, id): ordering by both columns is what
        // lets the index give the order.
        Scope::Owned => (
            "MATCH (n:Notebook) USING INDEX n:Notebook(owner_id, id) WHERE n.owner_id = $user AND",
            format!("n.owner_id {direction}, n.id {direction}"),
        ),
        // Every notebook under the user's active grants is gathered, then ordered:
        // the cost follows what is shared with the user, not how many notebooks exist.
        Scope::SharedWith => (
            "MATCH (:User {id: $user})-[:COLLABORATES_ON {status: 'active'}]->(:Notebook)\
             -[:PARENT_OF*0..]->(n:Notebook) WITH DISTINCT n WHERE n.owner_id <> $user AND",
            format!("n.id {direction}"),
        ),
        Scope::Public => (
            "MATCH (n:Notebook) USING INDEX n:Notebook(visibility, id) WHERE n.visibility = 'public' AND",
            format!("n.visibility {direction}, n.id {direction}"),
        ),
    };
    format!(
        "{walk} n.id {compare} $bound AND n.status <> 'deleted' AND ($status IS NULL OR n.status = $status) \
         AND ($visibility IS NULL OR n.visibility = $visibility) AND ($tag IS NULL OR $tag IN n.tags) \
         AND ($template IS NULL OR coalesce(n.is_template, false) = $template) \
         WITH n ORDER BY {order_by} LIMIT $limit \
         MATCH (owner:User)-[:OWNS]->(n) {NOTEBOOK_RETURN} ORDER BY id {direction}"
    )
}

/// The first `$limit` live children of `$parent` below `$bound` (only public ones
/// when `$only_public`), newest first along `notebook_parent_keyset`, with their owner;
/// [`NOTEBOOK_RETURN`] follows.
pub(crate) const CHILDREN: &str = "MATCH (n:Notebook) USING INDEX n:Notebook(parent_id, id) \
     WHERE n.parent_id = $parent AND n.id < $bound AND n.status <> 'deleted' \
     AND (NOT $only_public OR n.visibility = 'public') \
     WITH n ORDER BY n.parent_id DESC, n.id DESC LIMIT $limit MATCH (owner:User)-[:OWNS]->(n)";

/// Links a notebook `n` to a `(:Tag)` for each name in its `tags` list, creating the
/// tags as needed: a unit subquery, with [`RECORD_CHANGE`]'s `$rc_at` and `$rc_actor`.
const ATTACH_TAGS: &str = "CALL { WITH n UNWIND coalesce(n.tags, []) AS name \
     MERGE (t:Tag {name: name}) ON CREATE SET t.created_at = datetime($rc_at) \
     MERGE (n)-[r:TAGGED_WITH]->(t) ON CREATE SET r.tagged_at = datetime($rc_at), r.tagged_by = $rc_actor }";

/// Unlinks a notebook `n` from the tags no longer in its `tags` list: a unit subquery.
const DETACH_TAGS: &str =
    "CALL { WITH n MATCH (n)-[r:TAGGED_WITH]->(t:Tag) WHERE NOT t.name IN coalesce(n.tags, []) DELETE r }";

/// Brings the notebooks' `TAGGED_WITH` relationships in step with their `tags`
/// lists, creating `(:Tag)` nodes as needed, in one statement.
pub(crate) async fn sync_tags(txn: &mut Txn, ids: Vec<String>, change: &Change) -> StoreResult<()> {
    let q = query(&format!(
        "UNWIND $ids AS id MATCH (n:Notebook {{id: id}}) \
         {DETACH_TAGS} {ATTACH_TAGS}"
    ))
    .param("ids", ids)
    .param("rc_at", storage(&change.at))
    .param("rc_actor", change.actor.map(|actor| actor.to_string()));
    txn.run(q).await.map_err(map_err)?;
    Ok(())
}

/// Reads (under the node's lock), checks and patches one live notebook inside the
/// caller's transaction, by `Notebook::update`'s rule.
async fn update_in(
    txn: &mut Txn,
    id: NotebookId,
    patch_of: impl FnOnce(&Notebook) -> StoreResult<NotebookPatch>,
    expected_version: Option<u64>,
    change: &Change,
) -> StoreResult<Notebook> {
    let at = change.at;

    let lock = query(&format!(
        "MATCH (owner:User)-[:OWNS]->(n:Notebook {{id: $id}}) WHERE n.status <> 'deleted' \
             SET n.updated_at = datetime($at) {NOTEBOOK_RETURN}"
    ))
    .param("id", id.to_string())
    .param("at", storage(&at));
    let row = txn_row(txn, lock).await?.ok_or(StoreError::NotFound)?;
    let mut notebook = notebook_from_row(&row)?;
    let record = notebook.update(expected_version, patch_of, at)?;
    // The patch, the tags' relationships and the change's record: one statement.
    let write = change_params(
        query(&format!(
            "MATCH (n:Notebook {{id: $id}}) SET n.name = $name, n.description = $description, \
             n.visibility = $visibility, n.status = $status, n.tags = $tags, \
             n.compliance_settings = $settings, n.search_text = $search_text, n.is_template = $is_template, \
             n.version = coalesce(n.version, 1) + 1 WITH n {DETACH_TAGS} {ATTACH_TAGS} {RECORD_CHANGE}"
        )),
        change,
        record,
    )
    .param("id", id.to_string())
    .param("name", notebook.name.as_str())
    .param("description", notebook.description.as_ref().map(|d| d.as_str().to_owned()))
    .param("visibility", notebook.visibility.as_str())
    .param("status", notebook.status.as_str())
    .param("tags", tag_names(&notebook.tags))
    .param("settings", settings_json(&notebook.compliance_settings))
    .param("is_template", notebook.is_template)
    .param("search_text", notebook.search_text());
    txn.run(write).await.map_err(map_err)?;
    Ok(notebook)
}
