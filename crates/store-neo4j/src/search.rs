//! Search on Neo4j: the design's Lucene full-text indexes, queried through
//! `db.index.fulltext.queryNodes`, with the caller's read scope computed from the
//! graph in the same statement. A document's chunks are `(:Chunk)` nodes
//! (`(:Document)-[:HAS_CHUNK]->(:Chunk)`), written in the transaction of the document
//! change they follow; the `chunk_search` index takes them up within moments
//! (eventually consistent, see migration 7).

use aether_domain::StoreError;
use aether_domain::chunk::{self, Chunk};
use aether_domain::document::{Document, ProcessingStatus};
use aether_domain::embedding::Embedding;
use aether_domain::id::{DocumentId, NotebookId, UserId};
use aether_domain::notebook::{Notebook, NotebookStatus, Tag};
use aether_domain::related::{RelatedCandidate, RelatedSubject};
use aether_domain::search::{
    Clause, DocumentFacets, DocumentHit, DocumentSearch, FacetCount, NotebookSearch, PeopleSearch, PersonHit, Ranked,
    ReadScope, ReindexStep, Scored, SearchFilters, top_facets, typo_budget,
};
use aether_domain::semantic::{ChunkEmbedding, PendingChunk};
use aether_domain::store::{SearchStore, StoreResult};
use aether_domain::words::index_words;
use async_trait::async_trait;
use neo4rs::{Query, Row, Txn, query};
use serde::Deserialize;

use crate::Neo4jStore;
use crate::rows::{NOTEBOOK_RETURN, column, corrupt, notebook_from_row, storage, tag_names, ts, unsigned};
use crate::txn::{in_txn_retrying, map_err};

/// Replaces every chunk of a document. Each chunk is a new node with a new `id`,
/// waiting for its vector (`EmbeddingPending`): a chunk's text never changes.
pub(crate) async fn write_chunks(
    txn: &mut Txn,
    document: DocumentId,
    notebook: NotebookId,
    chunks: &[Chunk],
) -> StoreResult<()> {
    txn.run(query("MATCH (c:Chunk {document_id: $id}) DETACH DELETE c").param("id", document.to_string()))
        .await
        .map_err(map_err)?;
    create_chunks(txn, document, notebook, chunks).await
}

async fn create_chunks(txn: &mut Txn, document: DocumentId, notebook: NotebookId, chunks: &[Chunk]) -> StoreResult<()> {
    if chunks.is_empty() {
        return Ok(());
    }
    let q = query(
        "MATCH (d:Document {id: $id}) UNWIND range(0, size($texts) - 1) AS i \
         CREATE (d)-[:HAS_CHUNK]->(:Chunk:EmbeddingPending {id: $ids[i], document_id: $id, notebook_id: $notebook, \
           scope: $scope, ordinal: $ordinals[i], page: $pages[i], char_offset: $offsets[i], text: $texts[i], \
           words: $words[i]})",
    )
    .param("id", document.to_string())
    .param("notebook", notebook.to_string())
    .param("scope", notebook.as_uuid().simple().to_string())
    .param("ids", chunks.iter().map(|_| uuid::Uuid::now_v7().to_string()).collect::<Vec<_>>())
    .param("ordinals", chunks.iter().map(|c| i64::from(c.ordinal)).collect::<Vec<_>>())
    .param("pages", chunks.iter().map(|c| i64::from(c.page)).collect::<Vec<_>>())
    .param("offsets", chunks.iter().map(|c| i64::from(c.offset)).collect::<Vec<_>>())
    .param("texts", chunks.iter().map(|c| c.text.clone()).collect::<Vec<_>>())
    .param("words", chunks.iter().map(|c| index_words(&c.text)).collect::<Vec<_>>());
    txn.run(q).await.map_err(map_err)
}

/// Rewrites a document's heading chunk (its name, description or tags changed): a
/// new node, so that the vector of the old text goes with it.
pub(crate) async fn write_heading(txn: &mut Txn, document: &Document) -> StoreResult<()> {
    let heading = chunk::heading(&document.original_filename, document.description.as_ref(), &document.tags);
    txn.run(
        query("MATCH (c:Chunk {document_id: $id}) WHERE c.ordinal = 0 DETACH DELETE c")
            .param("id", document.id.to_string()),
    )
    .await
    .map_err(map_err)?;
    create_chunks(txn, document.id, document.notebook_id, &[heading]).await
}

/// The Lucene expression of a query: every clause required. A plain word also
/// matches words within its typo budget (Lucene's fuzzy query scores them below the
/// word itself). Words are letters and digits only, so nothing needs escaping.
fn lucene_expression(clauses: &[Clause]) -> String {
    clauses
        .iter()
        .map(|clause| match clause {
            Clause::Word { word, prefix: true } => format!("{word}*"),
            Clause::Phrase(words) => format!("\"{}\"", words.join(" ")),
            Clause::Word { word, prefix: false } => match typo_budget(word) {
                0 => word.clone(),
                budget => format!("({word} OR {word}~{budget})"),
            },
        })
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// Binds `$readable` (ids the reader reaches through the graph) and `$within` (the
/// filter notebook and its descendants) for the statements below: computed first,
/// as lists, so the index query can be filtered row by row.
pub(crate) const SCOPE: &str = "CALL { OPTIONAL MATCH (:User {id: $reader})-[:OWNS]->(:Notebook)-[:PARENT_OF*0..]->(o:Notebook) \
       RETURN collect(DISTINCT o.id) AS owned } \
     CALL { OPTIONAL MATCH (:User {id: $reader})-[:COLLABORATES_ON {status: 'active'}]->(:Notebook)\
       -[:PARENT_OF*0..]->(g:Notebook) RETURN collect(DISTINCT g.id) AS granted } \
     CALL { OPTIONAL MATCH (:Notebook {id: $within})-[:PARENT_OF*0..]->(w:Notebook) \
       RETURN collect(w.id) AS within_ids } \
     WITH owned + granted AS readable, within_ids";

/// A notebook `n` in scope: live, readable (every notebook without a reader; public
/// ones by their own visibility only) and within the filter.
pub(crate) const IN_SCOPE: &str = "n.status <> 'deleted' \
     AND ($reader IS NULL OR n.visibility = 'public' OR n.id IN readable) \
     AND ($within IS NULL OR n.id IN within_ids)";

/// A document `d` passing every document filter.
const DOCUMENT_FILTERS: &str = "($content_type IS NULL OR d.content_type = $content_type) \
     AND ($status IS NULL OR d.processing_status = $status) \
     AND ($owner IS NULL OR d.uploaded_by = $owner) \
     AND ($created_from IS NULL OR d.uploaded_at >= datetime($created_from)) \
     AND ($created_to IS NULL OR d.uploaded_at < datetime($created_to)) \
     AND ($updated_from IS NULL OR d.updated_at >= datetime($updated_from)) \
     AND ($updated_to IS NULL OR d.updated_at < datetime($updated_to)) \
     AND all(tag IN $tags WHERE tag IN coalesce(d.tags, []))";

/// What a hit returns of `d`, `best` and `score`.
const HIT_RETURN: &str = "RETURN d.id AS id, d.notebook_id AS notebook_id, d.original_filename AS original_filename, \
     d.content_type AS content_type, coalesce(d.tags, []) AS tags, d.file_size AS file_size, \
     d.processing_status AS processing_status, d.uploaded_by AS uploaded_by, \
     toString(d.uploaded_at) AS uploaded_at, toString(d.updated_at) AS updated_at, \
     best.ordinal AS ordinal, best.page AS page, best.char_offset AS char_offset, best.text AS text, score";

/// How many nearest chunks the vector index is asked for, per result wanted, for a
/// caller who reads everything: the index knows nothing of permissions, so chunks
/// the caller may not read are dropped after it answers, and it must be asked for
/// more than are shown. A caller who reads a share of the notebooks asks for this
/// many divided by that share (so that about as many readable candidates come
/// back), up to [`MOST_VECTOR_CANDIDATES`]. At a fixed 50, a reader of 11% had
/// recall@10 0.977 at 3,000 documents but 0.64 at 65,740
/// (`notes/issue-15/README.md`).
const VECTOR_CANDIDATES_PER_RESULT: usize = 50;

/// The most candidates one vector query asks the index for.
const MOST_VECTOR_CANDIDATES: usize = 10_000;

/// The length of the built-in model's vectors, indexed by migration 11's
/// `chunk_embedding` on `embedding`.
const BUILT_IN_DIMENSIONS: usize = 384;

/// The longest vector Neo4j 5's vector index takes.
const MAX_INDEXED_DIMENSIONS: usize = 4096;

/// The vector index and indexed property of vectors of `dimensions`. A Neo4j vector
/// index has one length: the built-in model's is migration 11's; any other model (an
/// OpenAI-compatible one) gets an index of its own on its own copy of the vector,
/// `embedding_d<length>` (`embedding` always holds the current vector, which the
/// built-in index skips when it is not of its length).
fn vector_index(dimensions: usize) -> (String, String) {
    if dimensions == BUILT_IN_DIMENSIONS {
        ("chunk_embedding".to_owned(), "embedding".to_owned())
    } else {
        (format!("chunk_embedding_d{dimensions}"), format!("embedding_d{dimensions}"))
    }
}

impl Neo4jStore {
    /// Makes sure the index of vectors of `dimensions` exists (once per process).
    async fn ensure_vector_index(&self, dimensions: usize) -> StoreResult<(String, String)> {
        if dimensions == 0 || dimensions > MAX_INDEXED_DIMENSIONS {
            return Err(StoreError::Internal(format!(
                "vectors of {dimensions} dimensions (Neo4j indexes 1 to {MAX_INDEXED_DIMENSIONS})"
            )));
        }
        let (index, property) = vector_index(dimensions);
        let known = self.vector_indexes.lock().map(|known| known.contains(&dimensions)).unwrap_or(false);
        if dimensions != BUILT_IN_DIMENSIONS && !known {
            // Names and length are formatted from a number: nothing of a caller's in them.
            let create = format!(
                "CREATE VECTOR INDEX {index} IF NOT EXISTS FOR (c:Chunk) ON c.{property} \
                 OPTIONS {{indexConfig: {{`vector.dimensions`: {dimensions}, `vector.similarity_function`: 'cosine'}}}}"
            );
            self.graph.run(query(&create)).await.map_err(map_err)?;
            self.graph.run(query(&format!("CALL db.awaitIndex('{index}', 300)"))).await.map_err(map_err)?;
            if let Ok(mut known) = self.vector_indexes.lock() {
                known.insert(dimensions);
            }
        }
        Ok((index, property))
    }
}

/// At most this many notebooks are named in the chunk query's `scope:` clause. Lucene
/// refuses queries of more than 1,024 clauses, and a query's typo-tolerant words
/// expand to up to 50 terms each (12 words at most): 256 notebooks leave room. A
/// reader of more notebooks than this is filtered after the index, as before.
const MAX_SCOPE_TERMS: i64 = 256;

/// After [`SCOPE`]: `expression`, the query's Lucene expression narrowed to chunks of
/// the notebooks in scope (each chunk's `scope` is its notebook's id without hyphens,
/// one token), so the index returns only what the caller may read instead of every
/// match for the scope to be checked afterwards. Without a reader (everything is
/// readable) or past [`MAX_SCOPE_TERMS`] notebooks, the expression as it is. The
/// clause is boosted to 0: it filters and does not score (a small notebook's rarer
/// token would otherwise lift its chunks).
const SCOPED_EXPRESSION: &str = "CALL { OPTIONAL MATCH (p:Notebook {visibility: 'public'}) WHERE $reader IS NOT NULL \
       RETURN collect(p.id) AS public_ids } \
     WITH readable, within_ids, CASE \
       WHEN $within IS NOT NULL THEN [i IN within_ids WHERE $reader IS NULL OR i IN readable OR i IN public_ids] \
       WHEN $reader IS NULL THEN null \
       ELSE readable + public_ids END AS scope_ids \
     WITH readable, within_ids, CASE \
       WHEN scope_ids IS NULL OR size(scope_ids) > $max_scope_terms THEN $expression \
       WHEN size(scope_ids) = 0 THEN '(' + $expression + ') AND scope:none' \
       ELSE '(' + $expression + ') AND scope:(' + reduce(s = '', i IN scope_ids | s + ' ' + replace(i, '-', '')) + ')^0' \
       END AS expression";

/// The documents a search finds, each with its best chunk, as rows of `d`, `best`
/// and `score`, filtered by every document filter. The index is asked for chunks in
/// scope ([`SCOPED_EXPRESSION`]); the scope is still checked on each notebook, which
/// also leaves out deleted ones.
fn found_documents() -> String {
    format!(
        "{SCOPE} {SCOPED_EXPRESSION} CALL db.index.fulltext.queryNodes('chunk_search', expression) YIELD node AS c, score \
         MATCH (n:Notebook {{id: c.notebook_id}}) WHERE {IN_SCOPE} \
         WITH c, score ORDER BY score DESC \
         WITH c.document_id AS document_id, collect(c)[0] AS best, max(score) AS score \
         MATCH (d:Document {{id: document_id}}) WHERE {DOCUMENT_FILTERS}"
    )
}

fn with_filters(q: Query, scope: ReadScope, expression: String, filters: &SearchFilters) -> Query {
    let at = |value: Option<aether_domain::time::Timestamp>| value.as_ref().map(storage);
    q.param("reader", scope.reader().map(|user| user.to_string()))
        .param("within", filters.within.map(|id| id.to_string()))
        .param("expression", expression)
        .param("max_scope_terms", MAX_SCOPE_TERMS)
        .param("owner", filters.owner.map(|user| user.to_string()))
        .param("created_from", at(filters.created.from))
        .param("created_to", at(filters.created.to))
        .param("updated_from", at(filters.updated.from))
        .param("updated_to", at(filters.updated.to))
        .param("tags", tag_names(&filters.tags))
}

fn document_query(sql: &str, scope: ReadScope, search: &DocumentSearch) -> Query {
    with_filters(query(sql), scope, lucene_expression(search.text.clauses()), &search.filters)
        .param("content_type", search.content_type.as_ref().map(|c| c.as_str().to_owned()))
        .param("status", search.status.map(ProcessingStatus::as_str))
}

#[derive(Deserialize)]
struct DocumentHitRecord {
    id: String,
    notebook_id: String,
    original_filename: String,
    content_type: String,
    tags: Vec<String>,
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

impl TryFrom<DocumentHitRecord> for Scored<DocumentHit> {
    type Error = StoreError;

    fn try_from(r: DocumentHitRecord) -> StoreResult<Self> {
        let number = |value: i64, what: &str| u32::try_from(value).map_err(|_| corrupt(what));
        Ok(Scored {
            score: r.score,
            item: DocumentHit {
                id: DocumentId::parse(&r.id).map_err(|_| corrupt("document id"))?,
                notebook_id: NotebookId::parse(&r.notebook_id).map_err(|_| corrupt("notebook id"))?,
                filename: r.original_filename,
                content_type: r.content_type,
                tags: Tag::parse_list(&r.tags).map_err(|_| corrupt("tags"))?,
                file_size: unsigned(r.file_size, "file size")?,
                processing_status: ProcessingStatus::parse(&r.processing_status)
                    .map_err(|_| corrupt("processing status"))?,
                uploaded_by: UserId::parse(&r.uploaded_by).map_err(|_| corrupt("user id"))?,
                uploaded_at: ts(&r.uploaded_at)?,
                updated_at: ts(&r.updated_at)?,
                chunk: Chunk {
                    ordinal: number(r.ordinal, "chunk ordinal")?,
                    page: number(r.page, "chunk page")?,
                    offset: number(r.char_offset, "chunk offset")?,
                    text: r.text,
                },
            },
        })
    }
}

fn hit_from_row(row: &Row) -> StoreResult<Scored<DocumentHit>> {
    let record: DocumentHitRecord = row.to().map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Scored::try_from(record)
}

#[async_trait]
impl SearchStore for Neo4jStore {
    async fn search_documents(&self, scope: ReadScope, search: &DocumentSearch) -> StoreResult<Ranked<DocumentHit>> {
        if search.filters.finds_nothing(&search.text) {
            return Ok(Ranked { items: Vec::new(), next: None });
        }
        let sql = format!(
            "{} AND ($after_score IS NULL OR score < $after_score OR (score = $after_score AND d.id > $after_id)) \
             {HIT_RETURN} ORDER BY score DESC, id ASC LIMIT $limit",
            found_documents()
        );
        let q = document_query(&sql, scope, search)
            .param("after_score", search.after.map(|after| after.score))
            .param("after_id", search.after.map(|after| after.id.hyphenated().to_string()))
            .param("limit", i64::from(search.limit.get()) + 1);
        let rows = self.rows(q).await?.iter().map(hit_from_row).collect::<StoreResult<Vec<_>>>()?;
        Ok(Ranked::from_rows(rows, search.after, search.limit, |hit: &DocumentHit| hit.id.as_uuid()))
    }

    async fn document_facets(&self, scope: ReadScope, search: &DocumentSearch) -> StoreResult<DocumentFacets> {
        if search.filters.finds_nothing(&search.text) {
            return Ok(DocumentFacets::default());
        }
        let sql = format!(
            "{} WITH collect(d) AS found \
             CALL {{ WITH found UNWIND found AS d RETURN d.content_type AS value, count(*) AS n \
               ORDER BY n DESC, value LIMIT 10 }} \
             WITH found, collect({{value: value, n: n}}) AS content_type \
             CALL {{ WITH found UNWIND found AS d RETURN d.processing_status AS value, count(*) AS n \
               ORDER BY n DESC, value LIMIT 10 }} \
             WITH found, content_type, collect({{value: value, n: n}}) AS status \
             CALL {{ WITH found UNWIND found AS d RETURN d.notebook_id AS value, count(*) AS n \
               ORDER BY n DESC, value LIMIT 10 }} \
             RETURN content_type, status, collect({{value: value, n: n}}) AS notebook",
            found_documents()
        );
        let q = document_query(&sql, scope, search);
        let Some(row) = self.rows(q).await?.into_iter().next() else { return Ok(DocumentFacets::default()) };
        #[derive(Deserialize)]
        struct Count {
            value: Option<String>,
            n: i64,
        }
        let facet = |name: &str| -> StoreResult<Vec<FacetCount>> {
            let counts: Vec<Count> = column(&row, name)?;
            let counts = counts
                .into_iter()
                .filter_map(|count| count.value.map(|value| (value, count.n)))
                .map(|(value, n)| Ok(FacetCount { value, count: unsigned(n, "facet count")? }))
                .collect::<StoreResult<Vec<_>>>()?;
            Ok(top_facets(counts))
        };
        Ok(DocumentFacets {
            content_type: facet("content_type")?,
            status: facet("status")?,
            notebook: facet("notebook")?,
        })
    }

    async fn search_notebooks(&self, scope: ReadScope, search: &NotebookSearch) -> StoreResult<Ranked<Notebook>> {
        if search.filters.finds_nothing(&search.text) {
            return Ok(Ranked { items: Vec::new(), next: None });
        }
        let sql = format!(
            "{SCOPE} CALL db.index.fulltext.queryNodes('notebook_search', $expression) YIELD node AS n, score \
             WHERE {IN_SCOPE} AND ($status IS NULL OR n.status = $status) \
               AND ($owner IS NULL OR n.owner_id = $owner) \
               AND ($created_from IS NULL OR n.created_at >= datetime($created_from)) \
               AND ($created_to IS NULL OR n.created_at < datetime($created_to)) \
               AND ($updated_from IS NULL OR n.updated_at >= datetime($updated_from)) \
               AND ($updated_to IS NULL OR n.updated_at < datetime($updated_to)) \
               AND all(tag IN $tags WHERE tag IN coalesce(n.tags, [])) \
               AND ($after_score IS NULL OR score < $after_score OR (score = $after_score AND n.id > $after_id)) \
             RETURN n.id AS id, score ORDER BY score DESC, id ASC LIMIT $limit"
        );
        let q = with_filters(query(&sql), scope, lucene_expression(search.text.clauses()), &search.filters)
            .param("status", search.status.map(NotebookStatus::as_str))
            .param("after_score", search.after.map(|after| after.score))
            .param("after_id", search.after.map(|after| after.id.hyphenated().to_string()))
            .param("limit", i64::from(search.limit.get()) + 1);
        let mut scores = Vec::new();
        for row in self.rows(q).await? {
            let id: String = column(&row, "id")?;
            let score: f64 = column(&row, "score")?;
            scores.push((id, score));
        }
        if scores.is_empty() {
            return Ok(Ranked { items: Vec::new(), next: None });
        }
        let q = query(&format!(
            "MATCH (n:Notebook) WHERE n.id IN $ids AND n.status <> 'deleted' MATCH (owner:User)-[:OWNS]->(n) \
             {NOTEBOOK_RETURN}"
        ))
        .param("ids", scores.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>());
        let mut found = Vec::with_capacity(scores.len());
        for row in self.rows(q).await? {
            let notebook = notebook_from_row(&row)?;
            let id = notebook.id.to_string();
            if let Some((_, score)) = scores.iter().find(|(candidate, _)| *candidate == id) {
                found.push(Scored { item: notebook, score: *score });
            }
        }
        Ok(Ranked::from_rows(found, search.after, search.limit, |notebook: &Notebook| notebook.id.as_uuid()))
    }

    async fn find_people(&self, caller: UserId, search: &PeopleSearch) -> StoreResult<Vec<PersonHit>> {
        if search.text.is_empty() {
            return Ok(Vec::new());
        }
        // `user_search` covers e-mail too; `user_public_search` only the names.
        let index = if search.include_email { "user_search" } else { "user_public_search" };
        let q = query(
            "CALL db.index.fulltext.queryNodes($index, $expression) YIELD node AS u, score \
             WHERE u.status = 'active' \
             WITH u, score, (EXISTS { MATCH (u)-[:COLLABORATES_ON {status: 'active'}]->(:Notebook)<-[:OWNS]-(:User {id: $caller}) } \
               OR EXISTS { MATCH (:User {id: $caller})-[:COLLABORATES_ON {status: 'active'}]->(:Notebook)<-[:OWNS]-(u) }) \
               AS collaborates \
             RETURN u.id AS id, score, collaborates ORDER BY collaborates DESC, score DESC, id LIMIT $limit",
        )
        .param("index", index)
        .param("expression", lucene_expression(search.text.clauses()))
        .param("caller", caller.to_string())
        .param("limit", i64::from(search.limit.get()));
        let mut people = Vec::new();
        for row in self.rows(q).await? {
            let id: String = column(&row, "id")?;
            let id = UserId::parse(&id).map_err(|_| corrupt("user id"))?;
            match aether_domain::store::UserStore::get_user(self, id).await {
                Ok(user) => people.push(PersonHit {
                    user,
                    collaborates: column(&row, "collaborates")?,
                    score: column(&row, "score")?,
                }),
                Err(StoreError::NotFound) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(people)
    }

    async fn reindex_documents(&self, after: Option<DocumentId>, limit: u32) -> StoreResult<ReindexStep> {
        let q = query(
            "MATCH (d:Document) WHERE d.id > $after WITH d ORDER BY d.id LIMIT $limit \
             OPTIONAL MATCH (d)-[:VERSION_OF]->(v:DocumentVersion {version_number: d.current_version}) \
             RETURN d.id AS id, coalesce(v.original_filename, d.original_filename) AS filename, \
               coalesce(d.search_text, '') AS search_text ORDER BY id",
        )
        .param("after", after.map_or_else(String::new, |id| id.to_string()))
        .param("limit", i64::from(limit));
        let rows = self.rows(q).await?;
        let full_batch = rows.len() == limit as usize;
        let mut step = ReindexStep { documents: 0, chunks: 0, next: None };
        let mut last = None;
        for row in rows {
            let id: String = column(&row, "id")?;
            let id = DocumentId::parse(&id).map_err(|_| corrupt("document id"))?;
            last = Some(id);
            let filename: String = column(&row, "filename")?;
            let search_text: String = column(&row, "search_text")?;
            let written = in_txn_retrying(&self.graph, async move |txn: &mut Txn| {
                let Some(document) = crate::documents::lock_document_if_live(txn, id).await? else { return Ok(0) };
                let readers_text = aether_domain::document::readers_text_of(&search_text, &filename);
                let chunks = chunk::document_chunks(
                    &document.original_filename,
                    document.description.as_ref(),
                    &document.tags,
                    readers_text,
                );
                write_chunks(txn, document.id, document.notebook_id, &chunks).await?;
                Ok(chunks.len() as u64)
            })
            .await?;
            if written > 0 {
                step.documents += 1;
                step.chunks += written;
            }
        }
        step.next = if full_batch { last } else { None };
        Ok(step)
    }

    async fn count_documents(&self) -> StoreResult<u64> {
        let rows = self.rows(query("MATCH (d:Document) RETURN count(d) AS n")).await?;
        let row = rows.first().ok_or_else(|| corrupt("document count"))?;
        unsigned(column(row, "n")?, "document count")
    }

    async fn similar_documents(
        &self,
        scope: ReadScope,
        model: &str,
        vector: &Embedding,
        search: &DocumentSearch,
        k: usize,
    ) -> StoreResult<Vec<Scored<DocumentHit>>> {
        if search.filters.matches_nothing {
            return Ok(Vec::new());
        }
        let candidates = (k * VECTOR_CANDIDATES_PER_RESULT).clamp(100, 5_000);
        let (index, _) = self.ensure_vector_index(vector.dimensions()).await?;
        // The notebooks in scope, against all of them, tell the share of chunks the
        // caller may read, and so how many candidates to ask for (both counts come
        // from Neo4j's count store and an index).
        // The index finds the candidates, but its scores are approximate: Neo4j 5.23+
        // quantises indexed vectors, and a recipe's heading orthogonal to the query
        // once scored 0.2 among many other vectors. So the candidates are ranked by
        // the exact similarity of their stored vector, which Neo4j, like the index,
        // reports as (1 + cos) / 2; the port's score is the cosine itself.
        let sql = format!(
            "{SCOPE} CALL {{ MATCH (every:Notebook) RETURN count(every) AS notebooks }} \
             CALL {{ MATCH (p:Notebook {{visibility: 'public'}}) RETURN count(p) AS public_notebooks }} \
             WITH readable, within_ids, notebooks, CASE \
               WHEN $within IS NOT NULL THEN size(within_ids) \
               WHEN $reader IS NOT NULL THEN size(readable) + public_notebooks \
               ELSE notebooks END AS in_scope \
             WITH readable, within_ids, \
               toInteger($candidates * toFloat(notebooks) / CASE WHEN in_scope < 1 THEN 1 ELSE in_scope END) AS wanted \
             CALL db.index.vector.queryNodes('{index}', \
               CASE WHEN wanted > $most THEN $most WHEN wanted < $candidates THEN $candidates ELSE wanted END, \
               $vector) YIELD node AS c \
             WHERE c.embedding_model = $model \
             MATCH (n:Notebook {{id: c.notebook_id}}) WHERE {IN_SCOPE} \
             WITH c, vector.similarity.cosine(c.embedding, $vector) AS score ORDER BY score DESC \
             WITH c.document_id AS document_id, collect(c)[0] AS best, 2.0 * max(score) - 1.0 AS score \
             MATCH (d:Document {{id: document_id}}) WHERE {DOCUMENT_FILTERS} \
             {HIT_RETURN} ORDER BY score DESC, id ASC LIMIT $k"
        );
        let q = document_query(&sql, scope, search)
            .param("candidates", i64::try_from(candidates).unwrap_or(5_000))
            .param("most", i64::try_from(MOST_VECTOR_CANDIDATES).unwrap_or(10_000))
            .param("vector", vector.as_slice().iter().map(|v| f64::from(*v)).collect::<Vec<_>>())
            .param("model", model)
            .param("k", i64::try_from(k).unwrap_or(i64::MAX));
        self.rows(q).await?.iter().map(hit_from_row).collect()
    }

    async fn chunks_to_embed(&self, limit: u32) -> StoreResult<Vec<PendingChunk>> {
        let q =
            query("MATCH (c:Chunk:EmbeddingPending) RETURN c.id AS id, c.text AS text ORDER BY c.id DESC LIMIT $limit")
                .param("limit", i64::from(limit));
        let mut pending = Vec::new();
        for row in self.rows(q).await? {
            pending.push(PendingChunk { id: column(&row, "id")?, text: column(&row, "text")? });
        }
        Ok(pending)
    }

    async fn store_chunk_embeddings(&self, model: &str, embeddings: &[ChunkEmbedding]) -> StoreResult<()> {
        if embeddings.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = embeddings.iter().map(|e| e.id.clone()).collect();
        let vectors: Vec<Vec<f64>> =
            embeddings.iter().map(|e| e.vector.as_slice().iter().map(|v| f64::from(*v)).collect()).collect();
        let model = model.to_owned();
        let dimensions = embeddings[0].vector.dimensions();
        if embeddings.iter().any(|e| e.vector.dimensions() != dimensions) {
            return Err(StoreError::Internal("vectors of different lengths in one batch".into()));
        }
        let (_, property) = self.ensure_vector_index(dimensions).await?;
        // `setNodeVectorProperty` stores a float array: half the bytes of the list of
        // doubles a plain SET writes, for a million vectors 1.5 GB less store and page cache.
        let indexed_copy = if property == "embedding" {
            String::new()
        } else {
            format!("CALL db.create.setNodeVectorProperty(c, '{property}', $vectors[i]) ")
        };
        let statement = format!(
            "UNWIND range(0, size($ids) - 1) AS i MATCH (c:Chunk {{id: $ids[i]}}) \
             CALL db.create.setNodeVectorProperty(c, 'embedding', $vectors[i]) {indexed_copy}\
             SET c.embedding_model = $model REMOVE c:EmbeddingPending"
        );
        in_txn_retrying(&self.graph, async move |txn: &mut Txn| {
            // A chunk deleted meanwhile is simply not matched.
            let q = query(&statement)
                .param("ids", ids.clone())
                .param("vectors", vectors.clone())
                .param("model", model.clone());
            txn.run(q).await.map_err(map_err)
        })
        .await
    }

    async fn queue_embeddings_for(&self, model: &str) -> StoreResult<u64> {
        let q = query(
            "MATCH (c:Chunk) WHERE coalesce(c.embedding_model, '') <> $model AND NOT c:EmbeddingPending \
             SET c:EmbeddingPending RETURN count(c) AS n",
        )
        .param("model", model);
        let rows = self.rows(q).await?;
        let row = rows.first().ok_or_else(|| corrupt("queued count"))?;
        unsigned(column(row, "n")?, "queued count")
    }

    async fn related_candidates(
        &self,
        scope: ReadScope,
        subject: RelatedSubject,
        caller: UserId,
        per_signal: u32,
    ) -> StoreResult<Vec<RelatedCandidate>> {
        self.find_related(scope, subject, caller, per_signal).await
    }

    async fn document_vectors(
        &self,
        document: DocumentId,
        model: &str,
        limit: u32,
    ) -> StoreResult<Vec<(u32, Embedding)>> {
        self.vectors_of(document, model, limit).await
    }
}
