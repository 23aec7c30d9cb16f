//! The record of searches (issue 15): `(:User)-[:SEARCHED]->(:SearchQuery)`, with
//! `(:SearchQuery)-[:RETURNED {rank}]->` the first documents or notebooks it
//! found. Each user reads and deletes their own history, suggestions complete a
//! user's own frequent queries, and administrators read analytics over everyone's.

use crate::id::{DocumentId, NotebookId, UserId};
use crate::time::Timestamp;
use crate::words::index_words;

/// How many results of a search are remembered (`RETURNED`).
pub const MAX_RETURNED: usize = 10;

/// What a search looked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchTarget {
    Documents,
    Notebooks,
    People,
    /// `GET /search`: every kind at once.
    Everything,
}

impl SearchTarget {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Documents => "documents",
            Self::Notebooks => "notebooks",
            Self::People => "people",
            Self::Everything => "everything",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Documents, Self::Notebooks, Self::People, Self::Everything].into_iter().find(|t| t.as_str() == text)
    }
}

/// A search to remember: the first page of each search a user makes.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSearchRecord {
    pub id: uuid::Uuid,
    pub user_id: UserId,
    /// As the user wrote it (at most 256 characters: `search::MAX_QUERY_CHARS`).
    pub query_text: String,
    /// `text`, `semantic` or `hybrid`.
    pub query_type: &'static str,
    pub target: SearchTarget,
    /// The filters, as JSON (notebook, tags, content type …).
    pub filters: serde_json::Value,
    pub results_count: u32,
    pub response_time_ms: u32,
    pub returned_documents: Vec<DocumentId>,
    pub returned_notebooks: Vec<NotebookId>,
    pub at: Timestamp,
}

impl NewSearchRecord {
    /// The text searches are grouped by: its words in lower case (see
    /// [`normalized_query`]).
    pub fn normalized(&self) -> String {
        normalized_query(&self.query_text)
    }
}

/// A query as analytics and suggestions group it: `Tax  Report!` and `tax report`
/// are one query.
pub fn normalized_query(text: &str) -> String {
    index_words(text)
}

/// A remembered search, as its user sees it in their history.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchRecord {
    pub id: uuid::Uuid,
    pub query_text: String,
    pub query_type: String,
    pub target: String,
    pub results_count: u32,
    pub response_time_ms: u32,
    pub created_at: Timestamp,
}

/// How often a (normalized) query was searched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryCount {
    pub query: String,
    pub searches: u64,
    /// How many different users searched it.
    pub users: u64,
}

/// Searches since a time, over every user.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SearchAnalytics {
    pub searches: u64,
    pub zero_result_searches: u64,
    /// Most searched first.
    pub top_queries: Vec<QueryCount>,
    /// The most searched of the queries that found nothing.
    pub zero_result_queries: Vec<QueryCount>,
    /// Response time percentiles, in milliseconds (0 without searches).
    pub p50_ms: u32,
    pub p95_ms: u32,
    pub max_ms: u32,
}

/// The index (from 0) of quantile `q` among `count` values in ascending order:
/// nearest rank. `None` without values.
pub fn quantile_rank(count: u64, q: f64) -> Option<u64> {
    if count == 0 {
        return None;
    }
    let rank = (q.clamp(0.0, 1.0) * count as f64).ceil() as u64;
    Some(rank.clamp(1, count) - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_group_by_their_words() {
        assert_eq!(normalized_query("  Tax  Report! "), "tax report");
        assert_eq!(normalized_query("\"tax report\""), normalized_query("tax report"));
    }

    #[test]
    fn quantiles_use_the_nearest_rank() {
        assert_eq!(quantile_rank(0, 0.5), None);
        assert_eq!(quantile_rank(1, 0.95), Some(0));
        assert_eq!(quantile_rank(100, 0.5), Some(49));
        assert_eq!(quantile_rank(100, 0.95), Some(94));
        assert_eq!(quantile_rank(100, 1.0), Some(99));
    }

    #[test]
    fn targets_round_trip() {
        for target in [SearchTarget::Documents, SearchTarget::Notebooks, SearchTarget::People, SearchTarget::Everything]
        {
            assert_eq!(SearchTarget::parse(target.as_str()), Some(target));
        }
    }
}
