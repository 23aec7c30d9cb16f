//! Every listing is a keyset walk over an index (issue 14): SQLite's plan for each
//! listing statement seeks an index to the cursor, with the listing's equality
//! columns before the walked key, and reads rows in the index's order, so it never
//! scans a table nor sorts the matching rows (`USE TEMP B-TREE FOR ORDER BY`).

use crate::SqliteStore;
use crate::rows::Ordered;

/// The plan's lines, one per step, as `EXPLAIN QUERY PLAN` words them.
async fn plan(store: &SqliteStore, sql: &str) -> Vec<String> {
    let parameters = sql
        .match_indices('?')
        .filter_map(|(at, _)| {
            let digits: String = sql[at + 1..].chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<usize>().ok()
        })
        .max()
        .unwrap_or(0);
    let explain = format!("EXPLAIN QUERY PLAN {sql}");
    let mut query = sqlx::query_as::<_, (i64, i64, i64, String)>(sqlx::AssertSqlSafe(explain));
    for _ in 0..parameters {
        query = query.bind(None::<String>);
    }
    let rows = query.fetch_all(&store.pool).await.expect("explain");
    rows.into_iter().map(|(_, _, _, detail)| detail).collect()
}

/// Checks that `sql` walks an index, seeking it with `seek` (the `(column=? AND
/// key<?)` text of the plan's first step), and neither scans a table nor sorts.
/// `also_scanned` names what the statement may scan besides: a tag filter's
/// `json_each`, a recursive CTE.
async fn assert_keyset(store: &SqliteStore, name: &str, sql: &str, seek: &str, also_scanned: &[&str]) {
    let plan = plan(store, sql).await;
    let shown = plan.join("\n  ");
    assert!(!plan.iter().any(|step| step.contains("TEMP B-TREE")), "{name} sorts its rows:\n  {shown}");
    for step in &plan {
        if let Some(scanned) = step.strip_prefix("SCAN ") {
            let what = scanned.split_whitespace().next().unwrap_or_default();
            assert!(also_scanned.contains(&what), "{name} scans {what}:\n  {shown}");
        }
    }
    let first = plan.iter().find(|step| step.starts_with("SEARCH ")).map(String::as_str).unwrap_or_default();
    assert!(first.ends_with(seek), "{name} does not seek {seek} first:\n  {shown}");
}

async fn assert_both_orders(store: &SqliteStore, name: &str, sql: Ordered, seek: &str, also_scanned: &[&str]) {
    let newest = seek.replace('~', "<");
    let oldest = seek.replace('~', ">");
    assert_keyset(store, &format!("{name}, newest first"), sql.newest_first, &newest, also_scanned).await;
    assert_keyset(store, &format!("{name}, oldest first"), sql.oldest_first, &oldest, also_scanned).await;
}

#[tokio::test]
async fn every_listing_walks_an_index_from_its_cursor() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open_and_migrate(&dir.path().join("aether.db")).await.expect("open store");
    let tag_filter = &["json_each"];
    assert_both_orders(&store, "owned notebooks", crate::notebooks::OWNED, "(user_id=? AND notebook_id~?)", tag_filter)
        .await;
    assert_both_orders(&store, "public notebooks", crate::notebooks::PUBLIC, "(visibility=? AND id~?)", tag_filter)
        .await;
    // The notebooks shared with a user are those under their grants, gathered by a
    // recursive walk down `parent_of` and then read by id in order (the IN list is
    // kept sorted): the cost follows what is shared with the user, not the table.
    for (order, sql) in
        [("newest", crate::notebooks::SHARED_WITH.newest_first), ("oldest", crate::notebooks::SHARED_WITH.oldest_first)]
    {
        let name = format!("notebooks shared with a user, {order} first");
        let plan = plan(&store, sql).await;
        let shown = plan.join("\n  ");
        assert!(!plan.iter().any(|step| step.contains("TEMP B-TREE FOR ORDER BY")), "{name} sorts:\n  {shown}");
        for step in &plan {
            if let Some(scanned) = step.strip_prefix("SCAN ") {
                let what = scanned.split_whitespace().next().unwrap_or_default();
                assert!(["json_each", "r", "reach"].contains(&what), "{name} scans {what}:\n  {shown}");
            }
        }
    }
    let cases: [(&str, &str, &str); 10] = [
        ("children", crate::notebooks::CHILDREN, "(parent_id=? AND child_id<?)"),
        ("activity", crate::activity::ACTIVITY, "(notebook_id=? AND id<?)"),
        ("audit log", crate::activity::AUDIT, "(id<?)"),
        ("audit of a resource", crate::activity::AUDIT_OF_RESOURCE, "(resource_id=? AND id<?)"),
        ("users", crate::users::USERS, "(id<?)"),
        ("API keys", crate::api_keys::API_KEYS, "(user_id=? AND id<?)"),
        ("jobs", crate::documents::NOTEBOOK_JOBS, "(notebook_id=? AND id<?)"),
        ("documents", crate::documents::DOCUMENTS, "(notebook_id=? AND id<?)"),
        ("collaborators", crate::collaborations::COLLABORATORS, "(notebook_id=? AND user_id>?)"),
        ("invitations", crate::collaborations::USER_COLLABORATIONS, "(user_id=? AND status=? AND notebook_id<?)"),
    ];
    for (name, sql, seek) in cases {
        assert_keyset(&store, name, sql, seek, &[]).await;
    }
    // The cursor's number is read by the version's id, a second seek.
    assert_keyset(&store, "versions", crate::documents::VERSIONS, "(document_id=? AND version_number<?)", &[]).await;
    store.close().await;
}

/// Semantic search reads the vectors of a notebook's chunks through a covering
/// index by notebook, then each vector by its chunk id: never every vector of the
/// model (which cost ~0.4 s at 210,000 chunks for a reader of 11% of them), and
/// without sorting blobs.
#[tokio::test]
async fn shelves_are_read_by_notebook_through_a_covering_index() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open_and_migrate(&dir.path().join("aether.db")).await.expect("open store");
    let plan = plan(&store, crate::vectors::SHELF_VECTORS).await;
    let shown = plan.join("\n  ");
    assert!(
        plan.iter().any(|step| step == "SEARCH c USING COVERING INDEX document_chunks_scope (notebook_id=?)"),
        "{shown}"
    );
    assert!(plan.iter().any(|step| step == "SEARCH e USING INTEGER PRIMARY KEY (rowid=?)"), "{shown}");
    assert!(!plan.iter().any(|step| step.contains("TEMP B-TREE") || step.contains("SCAN e")), "{shown}");
    store.close().await;
}
