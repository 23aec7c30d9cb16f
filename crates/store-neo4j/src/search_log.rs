//! The record of searches on Neo4j: `(:User)-[:SEARCHED]->(:SearchQuery)` and
//! `(:SearchQuery)-[:RETURNED {rank}]->(:Document|:Notebook)`, as the design draws
//! them (see `aether_domain::search_log`). Each query carries a copy of its user's
//! id (`user_id`) for the history's keyset walk (migration 12).

use aether_domain::StoreError;
use aether_domain::id::UserId;
use aether_domain::page::{Page, PageRequest, SortOrder};
use aether_domain::search_log::{NewSearchRecord, QueryCount, SearchAnalytics, SearchRecord, quantile_rank};
use aether_domain::store::{SearchLogStore, StoreResult};
use aether_domain::time::Timestamp;
use async_trait::async_trait;
use neo4rs::{Row, Txn, query};

use crate::Neo4jStore;
use crate::rows::{column, corrupt, storage, ts, unsigned};
use crate::txn::{in_txn, map_err};

fn record_from_row(row: &Row) -> StoreResult<SearchRecord> {
    let number = |value: i64, what: &str| u32::try_from(value).map_err(|_| corrupt(what));
    let id: String = column(row, "id")?;
    let created_at: String = column(row, "created_at")?;
    Ok(SearchRecord {
        id: uuid::Uuid::try_parse(&id).map_err(|_| corrupt("search id"))?,
        query_text: column(row, "query_text")?,
        query_type: column(row, "query_type")?,
        target: column(row, "target")?,
        results_count: number(column(row, "results_count")?, "results count")?,
        response_time_ms: number(column(row, "response_time_ms")?, "response time")?,
        created_at: ts(&created_at)?,
    })
}

fn counts(rows: &[Row]) -> StoreResult<Vec<QueryCount>> {
    rows.iter()
        .map(|row| {
            Ok(QueryCount {
                query: column(row, "query")?,
                searches: unsigned(column(row, "searches")?, "count")?,
                users: unsigned(column(row, "users")?, "count")?,
            })
        })
        .collect()
}

#[async_trait]
impl SearchLogStore for Neo4jStore {
    async fn record_search(&self, record: NewSearchRecord) -> StoreResult<()> {
        in_txn(&self.graph, async move |txn: &mut Txn| {
            let q = query(
                "MATCH (u:User {id: $user}) \
                 CREATE (u)-[:SEARCHED {searched_at: datetime($at)}]->(q:SearchQuery {id: $id, user_id: $user, \
                   query_text: $text, normalized: $normalized, query_type: $type, target: $target, filters: $filters, \
                   results_count: $count, response_time_ms: $ms, created_at: datetime($at)}) \
                 WITH q CALL { WITH q UNWIND range(0, size($documents) - 1) AS i \
                   MATCH (d:Document {id: $documents[i]}) CREATE (q)-[:RETURNED {rank: i}]->(d) } \
                 CALL { WITH q UNWIND range(0, size($notebooks) - 1) AS i \
                   MATCH (n:Notebook {id: $notebooks[i]}) CREATE (q)-[:RETURNED {rank: i}]->(n) }",
            )
            .param("user", record.user_id.to_string())
            .param("at", storage(&record.at))
            .param("id", record.id.hyphenated().to_string())
            .param("text", record.query_text.clone())
            .param("normalized", record.normalized())
            .param("type", record.query_type)
            .param("target", record.target.as_str())
            .param("filters", record.filters.to_string())
            .param("count", i64::from(record.results_count))
            .param("ms", i64::from(record.response_time_ms))
            .param("documents", record.returned_documents.iter().map(ToString::to_string).collect::<Vec<_>>())
            .param("notebooks", record.returned_notebooks.iter().map(ToString::to_string).collect::<Vec<_>>());
            txn.run(q).await.map_err(map_err)
        })
        .await
    }

    async fn search_history(&self, user: UserId, page: PageRequest) -> StoreResult<Page<SearchRecord>> {
        let q = query(
            "MATCH (q:SearchQuery) USING INDEX q:SearchQuery(user_id, id) WHERE q.user_id = $user AND q.id < $bound \
             WITH q ORDER BY q.user_id DESC, q.id DESC LIMIT $limit \
             RETURN q.id AS id, q.query_text AS query_text, q.query_type AS query_type, q.target AS target, \
               q.results_count AS results_count, q.response_time_ms AS response_time_ms, \
               toString(q.created_at) AS created_at ORDER BY id DESC",
        )
        .param("user", user.to_string())
        .param("bound", page.bound(SortOrder::NewestFirst))
        .param("limit", page.fetch());
        let records = self.rows(q).await?.iter().map(record_from_row).collect::<StoreResult<Vec<_>>>()?;
        Ok(Page::from_overfetch(records, page.limit, |record: &SearchRecord| record.id))
    }

    async fn delete_search_history(&self, user: UserId, id: Option<uuid::Uuid>) -> StoreResult<u64> {
        let q = query(
            "MATCH (q:SearchQuery) WHERE q.user_id = $user AND ($id IS NULL OR q.id = $id) \
             DETACH DELETE q RETURN count(*) AS n",
        )
        .param("user", user.to_string())
        .param("id", id.map(|id| id.hyphenated().to_string()));
        let rows = self.rows(q).await?;
        let deleted = match rows.first() {
            Some(row) => unsigned(column(row, "n")?, "count")?,
            None => 0,
        };
        if id.is_some() && deleted == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(deleted)
    }

    async fn frequent_searches(&self, user: UserId, prefix: &str, limit: u32) -> StoreResult<Vec<QueryCount>> {
        let q = query(
            "MATCH (q:SearchQuery) WHERE q.user_id = $user AND q.normalized STARTS WITH $prefix \
               AND q.normalized <> '' \
             RETURN q.normalized AS query, count(*) AS searches, 1 AS users \
             ORDER BY searches DESC, query LIMIT $limit",
        )
        .param("user", user.to_string())
        .param("prefix", prefix)
        .param("limit", i64::from(limit));
        counts(&self.rows(q).await?)
    }

    async fn search_analytics(&self, since: Timestamp, limit: u32) -> StoreResult<SearchAnalytics> {
        let since = storage(&since);
        let q = query(
            "MATCH (q:SearchQuery) WHERE q.created_at >= datetime($since) \
             RETURN count(q) AS searches, sum(CASE WHEN q.results_count = 0 THEN 1 ELSE 0 END) AS zero",
        )
        .param("since", since.clone());
        let rows = self.rows(q).await?;
        let row = rows.first().ok_or_else(|| corrupt("search count"))?;
        let searches = unsigned(column(row, "searches")?, "count")?;
        let zero = unsigned(column(row, "zero")?, "count")?;
        let grouped = |zero_only: bool| {
            let since = since.clone();
            async move {
                let q = query(
                    "MATCH (q:SearchQuery) WHERE q.created_at >= datetime($since) \
                       AND (NOT $zero OR q.results_count = 0) AND q.normalized <> '' \
                     RETURN q.normalized AS query, count(*) AS searches, count(DISTINCT q.user_id) AS users \
                     ORDER BY searches DESC, query LIMIT $limit",
                )
                .param("since", since)
                .param("zero", zero_only)
                .param("limit", i64::from(limit));
                counts(&self.rows(q).await?)
            }
        };
        let at_rank = |q: f64| {
            let since = since.clone();
            async move {
                let Some(rank) = quantile_rank(searches, q) else { return Ok(0) };
                let q = query(
                    "MATCH (q:SearchQuery) WHERE q.created_at >= datetime($since) \
                     RETURN q.response_time_ms AS ms ORDER BY ms SKIP $rank LIMIT 1",
                )
                .param("since", since)
                .param("rank", i64::try_from(rank).unwrap_or(i64::MAX));
                match self.rows(q).await?.first() {
                    Some(row) => u32::try_from(column::<i64>(row, "ms")?).map_err(|_| corrupt("response time")),
                    None => Ok(0),
                }
            }
        };
        Ok(SearchAnalytics {
            searches,
            zero_result_searches: zero,
            top_queries: grouped(false).await?,
            zero_result_queries: grouped(true).await?,
            p50_ms: at_rank(0.5).await?,
            p95_ms: at_rank(0.95).await?,
            max_ms: at_rank(1.0).await?,
        })
    }

    async fn forget_searches_before(&self, before: Timestamp, limit: u32) -> StoreResult<u64> {
        let q = query(
            "MATCH (q:SearchQuery) WHERE q.created_at < datetime($before) \
             WITH q ORDER BY q.created_at LIMIT $limit DETACH DELETE q RETURN count(*) AS n",
        )
        .param("before", storage(&before))
        .param("limit", i64::from(limit));
        let rows = self.rows(q).await?;
        match rows.first() {
            Some(row) => unsigned(column(row, "n")?, "count"),
            None => Ok(0),
        }
    }
}
