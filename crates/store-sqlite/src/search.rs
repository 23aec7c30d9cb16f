//! Search on SQLite: FTS5 over document chunks and notebooks (migration 0013), BM25
//! ranked, with the caller's read scope as a recursive walk in the same statement.
//! Chunks are written here, in the transaction of the document change they follow.

use aether_domain::StoreError;
use aether_domain::chunk::{self, Chunk};
use aether_domain::document::{Document, ProcessingStatus};
use aether_domain::embedding::Embedding;
use aether_domain::id::{DocumentId, NotebookId, UserId};
use aether_domain::notebook::{Notebook, NotebookStatus, Tag};
use aether_domain::related::{RelatedCandidate, RelatedSubject};
use aether_domain::search::{
    Clause, DocumentFacets, DocumentHit, DocumentSearch, FacetCount, NotebookSearch, PeopleSearch, PersonHit, Ranked,
    ReadScope, ReindexStep, Scored, typo_budget, within_edits,
};
use aether_domain::semantic::{ChunkEmbedding, PendingChunk};
use aether_domain::store::{SearchStore, StoreResult};
use aether_domain::time;
use async_trait::async_trait;
use sqlx::SqliteConnection;

use crate::notebooks::{Liveness, notebook_in};
use crate::rows::{corrupt, json, ts, unsigned, user_id};
use crate::{SqliteStore, map_err};

/// The most typo candidates one query word expands to.
const TYPO_CANDIDATES: usize = 16;

/// Replaces every chunk of a document.
pub(crate) async fn write_chunks(
    tx: &mut SqliteConnection,
    document: DocumentId,
    notebook: NotebookId,
    chunks: &[Chunk],
) -> StoreResult<()> {
    sqlx::query("DELETE FROM document_chunks WHERE document_id = ?")
        .bind(document.to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
    for chunk in chunks {
        sqlx::query(
            "INSERT INTO document_chunks (document_id, notebook_id, ordinal, page, char_offset, text) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(document.to_string())
        .bind(notebook.to_string())
        .bind(i64::from(chunk.ordinal))
        .bind(i64::from(chunk.page))
        .bind(i64::from(chunk.offset))
        .bind(&chunk.text)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
    }
    Ok(())
}

/// Rewrites a document's heading chunk (its name, description or tags changed): a
/// new row, so that the vector of the old text goes with it.
pub(crate) async fn write_heading(tx: &mut SqliteConnection, document: &Document) -> StoreResult<()> {
    let heading = chunk::heading(&document.original_filename, document.description.as_ref(), &document.tags);
    sqlx::query("DELETE FROM document_chunks WHERE document_id = ? AND ordinal = 0")
        .bind(document.id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
    sqlx::query(
        "INSERT INTO document_chunks (document_id, notebook_id, ordinal, page, char_offset, text) \
         VALUES (?, ?, 0, 0, 0, ?)",
    )
    .bind(document.id.to_string())
    .bind(document.notebook_id.to_string())
    .bind(&heading.text)
    .execute(&mut *tx)
    .await
    .map_err(map_err)?;
    Ok(())
}

/// The FTS5 expression of a query: every clause must match. A word that is not in
/// the index (a typo) also matches the indexed words within its typo budget that
/// share its first letter.
async fn match_expression(
    conn: &mut SqliteConnection,
    vocabulary: Vocabulary,
    clauses: &[Clause],
) -> StoreResult<String> {
    let mut parts = Vec::with_capacity(clauses.len());
    for clause in clauses {
        let part = match clause {
            Clause::Word { word, prefix: true } => format!("\"{word}\"*"),
            Clause::Phrase(words) => format!("\"{}\"", words.join(" ")),
            Clause::Word { word, prefix: false } => {
                let mut alternatives = vec![format!("\"{word}\"")];
                for candidate in typo_candidates(conn, vocabulary, word).await? {
                    alternatives.push(format!("\"{candidate}\""));
                }
                if alternatives.len() == 1 {
                    alternatives.remove(0)
                } else {
                    format!("({})", alternatives.join(" OR "))
                }
            }
        };
        parts.push(part);
    }
    Ok(parts.join(" AND "))
}

#[derive(Debug, Clone, Copy)]
enum Vocabulary {
    Notebooks,
    Users,
}

/// The two statements over one `fts5vocab` table: whether a word is indexed, and
/// the indexed words in a first-letter range and a length range, most frequent first.
macro_rules! vocabulary_statements {
    ($table:literal) => {
        (
            concat!("SELECT 1 FROM ", $table, " WHERE term = ?"),
            concat!(
                "SELECT term FROM ",
                $table,
                " WHERE term >= ? AND term < ? AND length(term) BETWEEN ? AND ? ORDER BY doc DESC LIMIT 2000"
            ),
        )
    };
}

impl Vocabulary {
    fn statements(self) -> (&'static str, &'static str) {
        match self {
            Vocabulary::Notebooks => vocabulary_statements!("notebook_vocabulary"),
            Vocabulary::Users => vocabulary_statements!("user_vocabulary"),
        }
    }
}

/// Indexed words near `word`, most frequent first, when `word` itself is not indexed.
async fn typo_candidates(conn: &mut SqliteConnection, vocabulary: Vocabulary, word: &str) -> StoreResult<Vec<String>> {
    let budget = typo_budget(word);
    let Some(first) = word.chars().next() else { return Ok(Vec::new()) };
    if budget == 0 {
        return Ok(Vec::new());
    }
    let (known_statement, candidates_statement) = vocabulary.statements();
    let known: Option<i64> =
        sqlx::query_scalar(known_statement).bind(word).fetch_optional(&mut *conn).await.map_err(map_err)?;
    if known.is_some() {
        return Ok(Vec::new());
    }
    let after_first = char::from_u32(u32::from(first) + 1).map(String::from).unwrap_or_else(|| "\u{10ffff}".into());
    let length = word.chars().count();
    let rows: Vec<(String,)> = sqlx::query_as(candidates_statement)
        .bind(first.to_string())
        .bind(after_first)
        .bind(i64::try_from(length.saturating_sub(budget)).unwrap_or(0))
        .bind(i64::try_from(length + budget).unwrap_or(i64::MAX))
        .fetch_all(&mut *conn)
        .await
        .map_err(map_err)?;
    Ok(rows
        .into_iter()
        .map(|(term,)| term)
        .filter(|term| term.chars().all(char::is_alphanumeric) && within_edits(word, term, budget))
        .take(TYPO_CANDIDATES)
        .collect())
}

/// The notebooks a scope reads (`readable`, empty for `Everything`) and those under
/// the `within` filter (`within`), as CTEs over ?1 (reader or NULL) and ?2 (within or NULL).
macro_rules! scope_ctes {
    () => {
        "WITH RECURSIVE readable(id) AS (\
       SELECT notebook_id FROM owns WHERE user_id = ?1 \
       UNION SELECT notebook_id FROM collaborates_on WHERE user_id = ?1 AND status = 'active' \
       UNION SELECT p.child_id FROM parent_of p JOIN readable r ON p.parent_id = r.id), \
     within(id) AS (SELECT ?2 WHERE ?2 IS NOT NULL \
       UNION SELECT p.child_id FROM parent_of p JOIN within w ON p.parent_id = w.id)"
    };
}

/// A notebook `n` in scope: live, readable (everything when ?1 is NULL; public
/// notebooks are readable by their own visibility only) and within ?2.
macro_rules! in_scope {
    () => {
        "n.status != 'deleted' \
     AND (?1 IS NULL OR n.visibility = 'public' OR n.id IN (SELECT id FROM readable)) \
     AND (?2 IS NULL OR n.id IN (SELECT id FROM within))"
    };
}

pub(crate) use {in_scope, scope_ctes};

/// A document `d` passing the filters: ?4 content type, ?5 status, ?6 uploader,
/// ?7/?8 uploaded range, ?9/?10 updated range, ?11 tags (a JSON list, all required).
macro_rules! document_filters {
    () => {
        "(?4 IS NULL OR d.content_type = ?4) AND (?5 IS NULL OR d.processing_status = ?5) \
         AND (?6 IS NULL OR d.uploaded_by = ?6) \
         AND (?7 IS NULL OR d.uploaded_at >= ?7) AND (?8 IS NULL OR d.uploaded_at < ?8) \
         AND (?9 IS NULL OR d.updated_at >= ?9) AND (?10 IS NULL OR d.updated_at < ?10) \
         AND NOT EXISTS (SELECT 1 FROM json_each(?11) wanted \
           WHERE wanted.value NOT IN (SELECT value FROM json_each(d.tags)))"
    };
}

/// The notebooks in scope (?1 reader, ?2 within): what chunk search is confined to.
const SCOPED_NOTEBOOKS: &str = concat!(scope_ctes!(), " SELECT n.id FROM notebooks n WHERE ", in_scope!());

/// Of the documents listed in ?1 (a JSON array of ids), those passing the document
/// filters (?4–?11); ?2 and ?3 are unused (NULL), for the filters' numbering.
const FILTERED_AMONG: &str = concat!(
    "SELECT d.id FROM json_each(?1) listed JOIN documents d ON d.id = listed.value \
     WHERE coalesce(?2, ?3) IS NULL AND ",
    document_filters!()
);

/// How the documents listed in ?1 spread over content types, statuses and notebooks.
const FACETS_AMONG: &str = "SELECT d.content_type, d.processing_status, d.notebook_id \
     FROM json_each(?1) listed JOIN documents d ON d.id = listed.value";

/// Every notebook in scope (?1, ?2) with its vector stamp (`vectors`): the shelves
/// semantic search scans. ?3 is the model (unused here; bound for the filters' numbering).
pub(crate) const STAMPED_NOTEBOOKS: &str = concat!(
    scope_ctes!(),
    " SELECT n.id, coalesce(s.stamp, 0) AS stamp FROM notebooks n \
     LEFT JOIN notebook_vector_stamps s ON s.notebook_id = n.id WHERE ?3 IS NOT NULL AND ",
    in_scope!()
);

/// The documents in scope (?1, ?2) passing the document filters (?4–?11), when a
/// semantic search has some. ?3 is the model, as in [`STAMPED_NOTEBOOKS`].
pub(crate) const FILTERED_DOCUMENTS: &str = concat!(
    scope_ctes!(),
    " SELECT d.id FROM notebooks n CROSS JOIN documents d ON d.notebook_id = n.id WHERE ?3 IS NOT NULL AND ",
    in_scope!(),
    " AND ",
    document_filters!()
);

/// One chunk as a hit: its document's summary and the chunk.
const CHUNK_HIT: &str = "SELECT d.id, d.notebook_id, d.original_filename, d.content_type, d.tags, d.file_size, \
     d.processing_status, d.uploaded_by, d.uploaded_at, d.updated_at, c.ordinal, c.page, c.char_offset, c.text, \
     ?2 AS score FROM document_chunks c JOIN documents d ON d.id = c.document_id WHERE c.id = ?1";

/// A page of notebooks in scope whose name, description or tags match ?3 (the name
/// counts most, then tags, then the description), filtered by ?4 status, ?5 owner,
/// ?6/?7 created and ?8/?9 updated ranges, ?10 tags, after the cursor (?11, ?12), ?13 rows.
const SEARCH_NOTEBOOKS: &str = concat!(
    scope_ctes!(),
    ", found AS (SELECT n.id, -bm25(notebook_fts, 4.0, 1.0, 2.0) AS score \
       FROM notebook_fts JOIN notebook_search_rows s ON s.id = notebook_fts.rowid \
       JOIN notebooks n ON n.id = s.notebook_id JOIN owns o ON o.notebook_id = n.id \
       WHERE notebook_fts MATCH ?3 AND ",
    in_scope!(),
    " AND (?4 IS NULL OR n.status = ?4) AND (?5 IS NULL OR o.user_id = ?5) \
       AND (?6 IS NULL OR n.created_at >= ?6) AND (?7 IS NULL OR n.created_at < ?7) \
       AND (?8 IS NULL OR n.updated_at >= ?8) AND (?9 IS NULL OR n.updated_at < ?9) \
       AND NOT EXISTS (SELECT 1 FROM json_each(?10) wanted \
         WHERE wanted.value NOT IN (SELECT value FROM json_each(n.tags)))) \
     SELECT id, score FROM found WHERE (?11 IS NULL OR score < ?11 OR (score = ?11 AND id > ?12)) \
     ORDER BY score DESC, id ASC LIMIT ?13"
);

#[derive(sqlx::FromRow)]
struct DocumentHitRow {
    id: String,
    notebook_id: String,
    original_filename: String,
    content_type: String,
    tags: String,
    file_size: i64,
    processing_status: String,
    uploaded_by: String,
    uploaded_at: String,
    updated_at: String,
    ordinal: i64,
    page: i64,
    char_offset: i64,
    text: String,
    score: f64,
}

impl TryFrom<DocumentHitRow> for Scored<DocumentHit> {
    type Error = StoreError;

    fn try_from(row: DocumentHitRow) -> StoreResult<Self> {
        let tags: Vec<String> = json(&row.tags, "tags")?;
        let number = |value: i64, what: &str| u32::try_from(value).map_err(|_| corrupt(what));
        Ok(Scored {
            score: row.score,
            item: DocumentHit {
                id: DocumentId::parse(&row.id).map_err(|_| corrupt("document id"))?,
                notebook_id: NotebookId::parse(&row.notebook_id).map_err(|_| corrupt("notebook id"))?,
                filename: row.original_filename,
                content_type: row.content_type,
                tags: Tag::parse_list(&tags).map_err(|_| corrupt("tags"))?,
                file_size: unsigned(row.file_size, "file_size")?,
                processing_status: ProcessingStatus::parse(&row.processing_status)
                    .map_err(|_| corrupt("processing status"))?,
                uploaded_by: user_id(&row.uploaded_by, "user id")?,
                uploaded_at: ts(&row.uploaded_at)?,
                updated_at: ts(&row.updated_at)?,
                chunk: Chunk {
                    ordinal: number(row.ordinal, "chunk ordinal")?,
                    page: number(row.page, "chunk page")?,
                    offset: number(row.char_offset, "chunk offset")?,
                    text: row.text,
                },
            },
        })
    }
}

/// Binds the document filters, ?4–?11 of [`document_filters!`].
fn bind_document_filters<'q, O>(
    statement: sqlx::query::QueryAs<'q, sqlx::Sqlite, O, sqlx::sqlite::SqliteArguments>,
    query: &DocumentSearch,
) -> sqlx::query::QueryAs<'q, sqlx::Sqlite, O, sqlx::sqlite::SqliteArguments> {
    let filters = &query.filters;
    statement
        .bind(query.content_type.as_ref().map(|c| c.as_str().to_owned()))
        .bind(query.status.map(ProcessingStatus::as_str))
        .bind(filters.owner.map(|user| user.to_string()))
        .bind(range_bound(filters.created.from))
        .bind(range_bound(filters.created.to))
        .bind(range_bound(filters.updated.from))
        .bind(range_bound(filters.updated.to))
        .bind(tags_filter(&filters.tags))
}

fn tags_filter(tags: &[Tag]) -> String {
    serde_json::Value::from(tags.iter().map(|tag| tag.as_str().to_owned()).collect::<Vec<_>>()).to_string()
}

fn range_bound(at: Option<time::Timestamp>) -> Option<String> {
    at.as_ref().map(time::to_storage)
}

#[derive(sqlx::FromRow)]
struct NotebookScoreRow {
    id: String,
    score: f64,
}

impl SqliteStore {
    /// The documents whose chunks match `query` in the caller's scope, each by its
    /// best chunk (score, document, chunk), passing the document filters, in rank
    /// order (score, then id). Searched in the chunk index, caught up first.
    async fn found_documents(
        &self,
        conn: &mut SqliteConnection,
        scope: ReadScope,
        query: &DocumentSearch,
    ) -> StoreResult<Vec<(f64, uuid::Uuid, i64)>> {
        self.chunks.catch_up(&self.pool).await?;
        let notebooks: Vec<(String,)> = sqlx::query_as(SCOPED_NOTEBOOKS)
            .bind(scope.reader().map(|user| user.to_string()))
            .bind(query.filters.within.map(|id| id.to_string()))
            .fetch_all(&mut *conn)
            .await
            .map_err(map_err)?;
        let notebooks: Vec<String> = notebooks.into_iter().map(|(id,)| id).collect();
        let matches = self.chunks.matches(query.text.clauses(), &notebooks)?;
        let mut best: std::collections::HashMap<u128, (f64, u64)> = std::collections::HashMap::new();
        for found in matches {
            let entry = best.entry(found.document).or_insert((f64::NEG_INFINITY, 0));
            if found.score > entry.0 || (found.score == entry.0 && found.chunk < entry.1) {
                *entry = (found.score, found.chunk);
            }
        }
        let mut found: Vec<(f64, uuid::Uuid, i64)> = best
            .into_iter()
            .map(|(document, (score, chunk))| {
                (score, uuid::Uuid::from_u128(document), i64::try_from(chunk).unwrap_or(0))
            })
            .collect();
        if query.filters_documents() {
            let ids =
                serde_json::Value::from(found.iter().map(|(_, id, _)| id.hyphenated().to_string()).collect::<Vec<_>>())
                    .to_string();
            let statement = sqlx::query_as(FILTERED_AMONG).bind(ids).bind(None::<String>).bind(None::<String>);
            let kept: Vec<(String,)> =
                bind_document_filters(statement, query).fetch_all(&mut *conn).await.map_err(map_err)?;
            let kept: std::collections::HashSet<uuid::Uuid> =
                kept.iter().filter_map(|(id,)| uuid::Uuid::parse_str(id).ok()).collect();
            found.retain(|(_, id, _)| kept.contains(id));
        }
        found.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        Ok(found)
    }
}

#[async_trait]
impl SearchStore for SqliteStore {
    async fn search_documents(&self, scope: ReadScope, query: &DocumentSearch) -> StoreResult<Ranked<DocumentHit>> {
        if query.filters.finds_nothing(&query.text) {
            return Ok(Ranked { items: Vec::new(), next: None });
        }
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        let mut found = self.found_documents(&mut conn, scope, query).await?;
        if let Some(after) = query.after {
            found.retain(|(score, id, _)| after.precedes(*score, *id));
        }
        found.truncate(query.limit.get() as usize + 1);
        let mut rows = Vec::with_capacity(found.len());
        for (score, _, chunk) in found {
            let row: Option<DocumentHitRow> =
                sqlx::query_as(CHUNK_HIT).bind(chunk).bind(score).fetch_optional(&mut *conn).await.map_err(map_err)?;
            // A chunk deleted since the index was read is simply gone.
            if let Some(row) = row {
                rows.push(Scored::try_from(row)?);
            }
        }
        Ok(Ranked::from_rows(rows, query.after, query.limit, |hit: &DocumentHit| hit.id.as_uuid()))
    }

    async fn document_facets(&self, scope: ReadScope, query: &DocumentSearch) -> StoreResult<DocumentFacets> {
        if query.filters.finds_nothing(&query.text) {
            return Ok(DocumentFacets::default());
        }
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        let found = self.found_documents(&mut conn, scope, query).await?;
        let ids =
            serde_json::Value::from(found.iter().map(|(_, id, _)| id.hyphenated().to_string()).collect::<Vec<_>>())
                .to_string();
        let rows: Vec<(String, String, String)> =
            sqlx::query_as(FACETS_AMONG).bind(ids).fetch_all(&mut *conn).await.map_err(map_err)?;
        let mut counts: [std::collections::HashMap<String, u64>; 3] = Default::default();
        for (content_type, status, notebook) in rows {
            for (facet, value) in counts.iter_mut().zip([content_type, status, notebook]) {
                *facet.entry(value).or_default() += 1;
            }
        }
        let [content_type, status, notebook] =
            counts.map(|facet| facet.into_iter().map(|(value, count)| FacetCount { value, count }).collect::<Vec<_>>());
        Ok(DocumentFacets {
            content_type: aether_domain::search::top_facets(content_type),
            status: aether_domain::search::top_facets(status),
            notebook: aether_domain::search::top_facets(notebook),
        })
    }

    async fn search_notebooks(&self, scope: ReadScope, query: &NotebookSearch) -> StoreResult<Ranked<Notebook>> {
        if query.filters.finds_nothing(&query.text) {
            return Ok(Ranked { items: Vec::new(), next: None });
        }
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        let expression = match_expression(&mut conn, Vocabulary::Notebooks, query.text.clauses()).await?;
        let filters = &query.filters;
        let rows: Vec<NotebookScoreRow> = sqlx::query_as(SEARCH_NOTEBOOKS)
            .bind(scope.reader().map(|user| user.to_string()))
            .bind(filters.within.map(|id| id.to_string()))
            .bind(expression)
            .bind(query.status.map(NotebookStatus::as_str))
            .bind(filters.owner.map(|user| user.to_string()))
            .bind(range_bound(filters.created.from))
            .bind(range_bound(filters.created.to))
            .bind(range_bound(filters.updated.from))
            .bind(range_bound(filters.updated.to))
            .bind(tags_filter(&filters.tags))
            .bind(query.after.map(|after| after.score))
            .bind(query.after.map(|after| after.id.hyphenated().to_string()))
            .bind(i64::from(query.limit.get()) + 1)
            .fetch_all(&mut *conn)
            .await
            .map_err(map_err)?;
        let mut found = Vec::with_capacity(rows.len());
        for row in rows {
            let id = NotebookId::parse(&row.id).map_err(|_| corrupt("notebook id"))?;
            // Read in the same connection; a notebook deleted since is simply gone.
            match notebook_in(&mut conn, id, Liveness::Live).await {
                Ok(notebook) => found.push(Scored { item: notebook, score: row.score }),
                Err(StoreError::NotFound) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(Ranked::from_rows(found, query.after, query.limit, |notebook: &Notebook| notebook.id.as_uuid()))
    }

    async fn find_people(&self, caller: UserId, query: &PeopleSearch) -> StoreResult<Vec<PersonHit>> {
        if query.text.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        let expression = match_expression(&mut conn, Vocabulary::Users, query.text.clauses()).await?;
        // Without e-mail, the expression is confined to the other two columns.
        let expression =
            if query.include_email { expression } else { format!("{{username full_name}} : ({expression})") };
        let rows: Vec<(String, f64, bool)> = sqlx::query_as(
            "SELECT u.id, -bm25(user_fts, 2.0, 1.0, 1.0) AS score, EXISTS (SELECT 1 FROM collaborates_on c \
               JOIN owns o ON o.notebook_id = c.notebook_id WHERE c.status = 'active' \
               AND ((c.user_id = u.id AND o.user_id = ?2) OR (c.user_id = ?2 AND o.user_id = u.id))) AS collaborates \
             FROM user_fts JOIN user_search_rows s ON s.id = user_fts.rowid JOIN users u ON u.id = s.user_id \
             WHERE user_fts MATCH ?1 AND u.status = 'active' \
             ORDER BY collaborates DESC, score DESC, u.id LIMIT ?3",
        )
        .bind(expression)
        .bind(caller.to_string())
        .bind(i64::from(query.limit.get()))
        .fetch_all(&mut *conn)
        .await
        .map_err(map_err)?;
        drop(conn);
        let mut people = Vec::with_capacity(rows.len());
        for (id, score, collaborates) in rows {
            let id = UserId::parse(&id).map_err(|_| corrupt("user id"))?;
            match aether_domain::store::UserStore::get_user(self, id).await {
                Ok(user) => people.push(PersonHit { user, collaborates, score }),
                Err(StoreError::NotFound) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(people)
    }

    async fn reindex_documents(&self, after: Option<DocumentId>, limit: u32) -> StoreResult<ReindexStep> {
        // The readers' text is what `search_text` holds after the file name the
        // current version was stored under (`ProcessingResult::search_text`).
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT d.id, v.original_filename, d.search_text FROM documents d \
             JOIN document_versions v ON v.document_id = d.id AND v.version_number = d.current_version \
             WHERE d.id > ? ORDER BY d.id LIMIT ?",
        )
        .bind(after.map_or_else(String::new, |id| id.to_string()))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        let full_batch = rows.len() == limit as usize;
        let mut step = ReindexStep { documents: 0, chunks: 0, next: None };
        let mut last = None;
        for (id, stored_filename, search_text) in rows {
            let id = DocumentId::parse(&id).map_err(|_| corrupt("document id"))?;
            last = Some(id);
            let (_writer, mut tx) = self.begin_write().await?;
            let document = match crate::documents::document_in(&mut *tx, id).await {
                Ok(document) => document,
                Err(StoreError::NotFound) => continue,
                Err(error) => return Err(error),
            };
            let readers_text = aether_domain::document::readers_text_of(&search_text, &stored_filename);
            let chunks = chunk::document_chunks(
                &document.original_filename,
                document.description.as_ref(),
                &document.tags,
                readers_text,
            );
            write_chunks(&mut tx, document.id, document.notebook_id, &chunks).await?;
            tx.commit().await.map_err(map_err)?;
            step.documents += 1;
            step.chunks += chunks.len() as u64;
        }
        step.next = if full_batch { last } else { None };
        Ok(step)
    }

    async fn count_documents(&self) -> StoreResult<u64> {
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM documents").fetch_one(&self.pool).await.map_err(map_err)?;
        unsigned(count, "document count")
    }

    async fn similar_documents(
        &self,
        scope: ReadScope,
        model: &str,
        vector: &Embedding,
        query: &DocumentSearch,
        k: usize,
    ) -> StoreResult<Vec<Scored<DocumentHit>>> {
        if query.filters.matches_nothing {
            return Ok(Vec::new());
        }
        let filters = &query.filters;
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        let stamped: Vec<(String, i64)> = sqlx::query_as(STAMPED_NOTEBOOKS)
            .bind(scope.reader().map(|user| user.to_string()))
            .bind(filters.within.map(|id| id.to_string()))
            .bind(model)
            .fetch_all(&mut *conn)
            .await
            .map_err(map_err)?;
        let wanted: Option<std::collections::HashSet<String>> = if query.filters_documents() {
            let statement = sqlx::query_as(FILTERED_DOCUMENTS)
                .bind(scope.reader().map(|user| user.to_string()))
                .bind(filters.within.map(|id| id.to_string()))
                .bind(model);
            let rows: Vec<(String,)> =
                bind_document_filters(statement, query).fetch_all(&mut *conn).await.map_err(map_err)?;
            Some(rows.into_iter().map(|(id,)| id).collect())
        } else {
            None
        };
        let stamped: Vec<crate::vectors::Stamped> =
            stamped.into_iter().map(|(notebook, stamp)| crate::vectors::Stamped { notebook, stamp }).collect();
        let shelves = self.vectors.shelves_of(&mut conn, model, &stamped).await?;
        let query_vector = crate::vectors::QuantisedQuery::new(vector.as_slice());
        let admit = |document: &str| wanted.as_ref().is_none_or(|wanted| wanted.contains(document));
        let ranked: Vec<(f64, i64)> = crate::vectors::most_similar(&shelves, &query_vector, &admit, k)
            .into_iter()
            .map(|(score, _, chunk)| (score, chunk))
            .collect();
        let mut hits = Vec::with_capacity(ranked.len());
        for (score, chunk) in ranked {
            let row: Option<DocumentHitRow> =
                sqlx::query_as(CHUNK_HIT).bind(chunk).bind(score).fetch_optional(&mut *conn).await.map_err(map_err)?;
            if let Some(row) = row {
                hits.push(Scored::try_from(row)?);
            }
        }
        Ok(hits)
    }

    async fn chunks_to_embed(&self, limit: u32) -> StoreResult<Vec<PendingChunk>> {
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT c.id, c.text FROM chunk_embedding_queue q JOIN document_chunks c ON c.id = q.chunk_id \
             ORDER BY q.chunk_id DESC LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(rows.into_iter().map(|(id, text)| PendingChunk { id: id.to_string(), text }).collect())
    }

    async fn store_chunk_embeddings(&self, model: &str, embeddings: &[ChunkEmbedding]) -> StoreResult<()> {
        let (_writer, mut tx) = self.begin_write().await?;
        for embedding in embeddings {
            let Ok(chunk) = embedding.id.parse::<i64>() else { continue };
            let bytes: Vec<u8> = embedding.vector.as_slice().iter().flat_map(|value| value.to_le_bytes()).collect();
            // Only a chunk still waiting: one deleted meanwhile took its queue entry
            // with it. The notebook's vector stamp changes by trigger (migration 0017).
            sqlx::query(
                "INSERT INTO chunk_embeddings (chunk_id, model, vector) \
                 SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM chunk_embedding_queue WHERE chunk_id = ?1) \
                 ON CONFLICT (chunk_id) DO UPDATE SET model = excluded.model, vector = excluded.vector",
            )
            .bind(chunk)
            .bind(model)
            .bind(&bytes)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
            sqlx::query("DELETE FROM chunk_embedding_queue WHERE chunk_id = ?")
                .bind(chunk)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(())
    }

    async fn queue_embeddings_for(&self, model: &str) -> StoreResult<u64> {
        let (_writer, mut tx) = self.begin_write().await?;
        let queued = sqlx::query(
            "INSERT OR IGNORE INTO chunk_embedding_queue (chunk_id) SELECT c.id FROM document_chunks c \
             LEFT JOIN chunk_embeddings e ON e.chunk_id = c.id AND e.model = ? WHERE e.chunk_id IS NULL",
        )
        .bind(model)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?
        .rows_affected();
        tx.commit().await.map_err(map_err)?;
        Ok(queued)
    }

    async fn related_candidates(
        &self,
        scope: ReadScope,
        subject: RelatedSubject,
        caller: UserId,
        per_signal: u32,
    ) -> StoreResult<Vec<RelatedCandidate>> {
        crate::related::candidates(&self.pool, scope, subject, caller, per_signal).await
    }

    async fn document_vectors(
        &self,
        document: DocumentId,
        model: &str,
        limit: u32,
    ) -> StoreResult<Vec<(u32, Embedding)>> {
        crate::related::document_vectors(&self.pool, document, model, limit).await
    }
}
