//! The record of searches on SQLite (migration 0015; see `aether_domain::search_log`).

use aether_domain::StoreError;
use aether_domain::id::UserId;
use aether_domain::page::{Page, PageRequest, SortOrder};
use aether_domain::search_log::{NewSearchRecord, QueryCount, SearchAnalytics, SearchRecord, quantile_rank};
use aether_domain::store::{SearchLogStore, StoreResult};
use aether_domain::time::{self, Timestamp};
use async_trait::async_trait;

use crate::rows::{corrupt, ts, unsigned};
use crate::{SqliteStore, map_err};

#[derive(sqlx::FromRow)]
struct SearchRecordRow {
    id: String,
    query_text: String,
    query_type: String,
    target: String,
    results_count: i64,
    response_time_ms: i64,
    created_at: String,
}

impl TryFrom<SearchRecordRow> for SearchRecord {
    type Error = StoreError;

    fn try_from(row: SearchRecordRow) -> StoreResult<Self> {
        let number = |value: i64, what: &str| u32::try_from(value).map_err(|_| corrupt(what));
        Ok(SearchRecord {
            id: uuid::Uuid::try_parse(&row.id).map_err(|_| corrupt("search id"))?,
            query_text: row.query_text,
            query_type: row.query_type,
            target: row.target,
            results_count: number(row.results_count, "results count")?,
            response_time_ms: number(row.response_time_ms, "response time")?,
            created_at: ts(&row.created_at)?,
        })
    }
}

fn counts(rows: Vec<(String, i64, i64)>) -> StoreResult<Vec<QueryCount>> {
    rows.into_iter()
        .map(|(query, searches, users)| {
            Ok(QueryCount { query, searches: unsigned(searches, "count")?, users: unsigned(users, "count")? })
        })
        .collect()
}

#[async_trait]
impl SearchLogStore for SqliteStore {
    async fn record_search(&self, record: NewSearchRecord) -> StoreResult<()> {
        let (_writer, mut tx) = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO search_queries (id, user_id, query_text, normalized, query_type, target, filters, \
             results_count, response_time_ms, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(record.id.hyphenated().to_string())
        .bind(record.user_id.to_string())
        .bind(&record.query_text)
        .bind(record.normalized())
        .bind(record.query_type)
        .bind(record.target.as_str())
        .bind(record.filters.to_string())
        .bind(i64::from(record.results_count))
        .bind(i64::from(record.response_time_ms))
        .bind(time::to_storage(&record.at))
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        let returned = record
            .returned_documents
            .iter()
            .map(|id| ("document", id.to_string()))
            .enumerate()
            .chain(record.returned_notebooks.iter().map(|id| ("notebook", id.to_string())).enumerate());
        for (rank, (kind, item)) in returned {
            sqlx::query("INSERT INTO search_returned (query_id, rank, kind, item_id) VALUES (?, ?, ?, ?)")
                .bind(record.id.hyphenated().to_string())
                .bind(i64::try_from(rank).unwrap_or(i64::MAX))
                .bind(kind)
                .bind(item)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)
    }

    async fn search_history(&self, user: UserId, page: PageRequest) -> StoreResult<Page<SearchRecord>> {
        let rows: Vec<SearchRecordRow> = sqlx::query_as(
            "SELECT id, query_text, query_type, target, results_count, response_time_ms, created_at \
             FROM search_queries WHERE user_id = ? AND id < ? ORDER BY user_id DESC, id DESC LIMIT ?",
        )
        .bind(user.to_string())
        .bind(page.bound(SortOrder::NewestFirst))
        .bind(page.fetch())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        let records = rows.into_iter().map(SearchRecord::try_from).collect::<StoreResult<Vec<_>>>()?;
        Ok(Page::from_overfetch(records, page.limit, |record: &SearchRecord| record.id))
    }

    async fn delete_search_history(&self, user: UserId, id: Option<uuid::Uuid>) -> StoreResult<u64> {
        let (_writer, mut tx) = self.begin_write().await?;
        let deleted = sqlx::query("DELETE FROM search_queries WHERE user_id = ?1 AND (?2 IS NULL OR id = ?2)")
            .bind(user.to_string())
            .bind(id.map(|id| id.hyphenated().to_string()))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?
            .rows_affected();
        tx.commit().await.map_err(map_err)?;
        if id.is_some() && deleted == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(deleted)
    }

    async fn frequent_searches(&self, user: UserId, prefix: &str, limit: u32) -> StoreResult<Vec<QueryCount>> {
        // `normalized >= prefix AND normalized < prefix || U+10FFFF`: a range of the
        // (user_id, normalized) index, which LIKE could not use with a bound parameter.
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT normalized, COUNT(*) AS searches, 1 AS users FROM search_queries \
             WHERE user_id = ?1 AND normalized >= ?2 AND normalized < ?2 || char(1114111) AND normalized != '' \
             GROUP BY normalized ORDER BY searches DESC, normalized LIMIT ?3",
        )
        .bind(user.to_string())
        .bind(prefix)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        counts(rows)
    }

    async fn search_analytics(&self, since: Timestamp, limit: u32) -> StoreResult<SearchAnalytics> {
        let since = time::to_storage(&since);
        let (searches, zero): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), COALESCE(SUM(results_count = 0), 0) FROM search_queries WHERE created_at >= ?",
        )
        .bind(&since)
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        let grouped = |zero_only: bool| {
            let since = since.clone();
            async move {
                let rows: Vec<(String, i64, i64)> = sqlx::query_as(
                    "SELECT normalized, COUNT(*) AS searches, COUNT(DISTINCT user_id) AS users FROM search_queries \
                     WHERE created_at >= ?1 AND (?2 = 0 OR results_count = 0) AND normalized != '' \
                     GROUP BY normalized ORDER BY searches DESC, normalized LIMIT ?3",
                )
                .bind(&since)
                .bind(zero_only)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
                counts(rows)
            }
        };
        let searches = unsigned(searches, "count")?;
        let at_rank = |q: f64| {
            let since = since.clone();
            async move {
                let Some(rank) = quantile_rank(searches, q) else { return Ok(0) };
                let value: i64 = sqlx::query_scalar(
                    "SELECT response_time_ms FROM search_queries WHERE created_at >= ? \
                     ORDER BY response_time_ms LIMIT 1 OFFSET ?",
                )
                .bind(&since)
                .bind(i64::try_from(rank).unwrap_or(i64::MAX))
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?
                .unwrap_or(0);
                u32::try_from(value).map_err(|_| corrupt("response time"))
            }
        };
        Ok(SearchAnalytics {
            searches,
            zero_result_searches: unsigned(zero, "count")?,
            top_queries: grouped(false).await?,
            zero_result_queries: grouped(true).await?,
            p50_ms: at_rank(0.5).await?,
            p95_ms: at_rank(0.95).await?,
            max_ms: at_rank(1.0).await?,
        })
    }

    async fn forget_searches_before(&self, before: Timestamp, limit: u32) -> StoreResult<u64> {
        let (_writer, mut tx) = self.begin_write().await?;
        // What they returned goes with them (ON DELETE CASCADE).
        let forgotten = sqlx::query(
            "DELETE FROM search_queries WHERE id IN \
             (SELECT id FROM search_queries WHERE created_at < ?1 ORDER BY created_at LIMIT ?2)",
        )
        .bind(time::to_storage(&before))
        .bind(i64::from(limit))
        .execute(&mut *tx)
        .await
        .map_err(map_err)?
        .rows_affected();
        tx.commit().await.map_err(map_err)?;
        Ok(forgotten)
    }
}
