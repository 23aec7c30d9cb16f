//! Search over everything a caller may read (issue 15). The caller's read scope is
//! decided here from roles ([`ReadScope::of`]) and handed to the store, whose query
//! applies it: nothing unreadable is ranked, counted or returned. Snippets are made
//! here from the matched chunk, the text every reader of the document may see.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aether_domain::auth::Principal;
use aether_domain::capability::Capability;
use aether_domain::embedding::{EmbedBatch, EmbedError, Embedder};
use aether_domain::id::{DocumentId, NotebookId};
use aether_domain::notebook::Notebook;
use aether_domain::page::Limit;
use aether_domain::page::{Page, PageRequest};
use aether_domain::related::{
    CANDIDATES_PER_SIGNAL, RelatedCandidate, RelatedItem, RelatedKind, RelatedSubject, SIMILAR_CANDIDATES,
    mean_direction, rank_related,
};
use aether_domain::search::Scored;
use aether_domain::search::{
    DocumentFacets, DocumentHit, DocumentSearch, NotebookSearch, PeopleSearch, PersonHit, RankCursor, ReadScope,
    SearchText,
};
use aether_domain::search_log::{
    MAX_RETURNED, NewSearchRecord, SearchAnalytics, SearchRecord, SearchTarget, normalized_query,
};
use aether_domain::semantic::{ChunkEmbedding, MAX_RANKED_DEPTH, OffsetCursor, SearchMode, reciprocal_rank_fusion};
use aether_domain::snippet::{self, Snippet};
use aether_domain::time::{self, Timestamp};

use crate::access::Authorizer;
use crate::error::{ServiceError, ServiceResult};
use crate::ports::SearchPorts;

/// A document found, with the snippet of its best chunk.
#[derive(Debug, Clone, PartialEq)]
pub struct FoundDocument {
    pub hit: DocumentHit,
    pub score: f64,
    pub snippet: Snippet,
}

/// The results of a search worth remembering with it.
struct Returned {
    documents: Vec<DocumentId>,
    notebooks: Vec<NotebookId>,
}

/// What a suggestion completes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuggestionKind {
    /// One of the caller's own frequent queries.
    Query,
    Notebook,
    Document,
    Tag,
}

impl SuggestionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Query => "query",
            Self::Notebook => "notebook",
            Self::Document => "document",
            Self::Tag => "tag",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suggestion {
    pub text: String,
    pub kind: SuggestionKind,
    /// The notebook or document, for those kinds.
    pub id: Option<uuid::Uuid>,
}

/// Where the next page of a document search starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PageCursor {
    /// Text pages: after this score and id.
    Rank(RankCursor),
    /// Semantic and hybrid pages: at this offset of the ranking.
    Offset(OffsetCursor),
}

impl PageCursor {
    pub fn encode(self) -> String {
        match self {
            Self::Rank(cursor) => cursor.encode(),
            Self::Offset(cursor) => cursor.encode(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DocumentResults {
    pub items: Vec<FoundDocument>,
    pub next: Option<PageCursor>,
    /// How the results were ranked: hybrid falls back to text without an embedder.
    pub mode: SearchMode,
    /// On the first page only: how every match spreads (later pages have the same).
    pub facets: Option<DocumentFacets>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FoundNotebook {
    pub notebook: Notebook,
    pub score: f64,
    pub snippet: Snippet,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NotebookResults {
    pub items: Vec<FoundNotebook>,
    pub next: Option<RankCursor>,
}

#[derive(Debug, Clone)]
pub struct SearchService {
    ports: SearchPorts,
    authorizer: Authorizer,
    /// The model of semantic and hybrid search; without one, documents are searched
    /// by their words only.
    embedder: Option<Arc<dyn Embedder>>,
}

/// How many of a document's chunk vectors (its first) say what it is about.
const MEAN_OF_CHUNKS: u32 = 32;

/// How many waiting chunks the embedding worker takes at once: one batch of the model.
const EMBED_BATCH: u32 = 16;

fn embed_error(error: EmbedError) -> ServiceError {
    match error {
        EmbedError::Unavailable(reason) => ServiceError::Unavailable(reason),
        EmbedError::Failed(reason) => ServiceError::Internal(reason),
    }
}

/// Records a search: what was searched (`documents`, `notebooks`, `people`) and how
/// it was ranked (`text`, `semantic`, `hybrid`).
fn observe(kind: &'static str, mode: SearchMode, started: Instant, found: usize) {
    let mode = mode.as_str();
    metrics::histogram!("aether_search_seconds", "kind" => kind, "mode" => mode)
        .record(started.elapsed().as_secs_f64());
    metrics::counter!("aether_search_queries_total", "kind" => kind, "mode" => mode).increment(1);
    if found == 0 {
        metrics::counter!("aether_search_empty_results_total", "kind" => kind, "mode" => mode).increment(1);
    }
}

impl SearchService {
    pub fn new(ports: SearchPorts, authorizer: Authorizer) -> Self {
        Self { ports, authorizer, embedder: None }
    }

    /// Semantic and hybrid search with this model, whose vectors the embedding
    /// worker computes ([`Self::run_embedding`]).
    #[must_use]
    pub fn with_embedder(mut self, embedder: Option<Arc<dyn Embedder>>) -> Self {
        self.embedder = embedder;
        self
    }

    /// The model's name, when there is one.
    pub fn embedding_model(&self) -> Option<&str> {
        self.embedder.as_ref().map(|embedder| embedder.model().name.as_str())
    }

    /// A `within` notebook the caller cannot read is `NotFound`, like every other
    /// path naming it.
    async fn check_within(&self, caller: &Principal, within: Option<NotebookId>) -> ServiceResult<()> {
        if let Some(notebook) = within {
            self.authorizer.access(caller, notebook).await?;
        }
        Ok(())
    }

    /// Documents the caller may read, ranked as `mode` says, with facets on the
    /// first page. Semantic and hybrid pages continue from `offset` (text pages from
    /// `query.after`). Without an embedder, hybrid ranks by words and semantic is
    /// `semantic_unavailable`.
    #[tracing::instrument(skip_all, fields(user = %caller.user_id, mode = mode.as_str()))]
    pub async fn documents(
        &self,
        caller: &Principal,
        query: DocumentSearch,
        mode: SearchMode,
        offset: Option<OffsetCursor>,
    ) -> ServiceResult<DocumentResults> {
        self.find_documents(caller, query, mode, offset, true).await
    }

    /// [`Self::documents`], first page, without facets (the search across every kind).
    #[tracing::instrument(skip_all, fields(user = %caller.user_id))]
    pub async fn documents_without_facets(
        &self,
        caller: &Principal,
        query: DocumentSearch,
    ) -> ServiceResult<DocumentResults> {
        self.find_documents(caller, query, SearchMode::Hybrid, None, false).await
    }

    async fn find_documents(
        &self,
        caller: &Principal,
        query: DocumentSearch,
        mode: SearchMode,
        offset: Option<OffsetCursor>,
        facets: bool,
    ) -> ServiceResult<DocumentResults> {
        let started = Instant::now();
        self.check_within(caller, query.filters.within).await?;
        let scope = ReadScope::of(caller.user_id, &caller.roles);
        let mode = match (mode, &self.embedder) {
            (SearchMode::Semantic, None) => {
                return Err(ServiceError::Rejected {
                    code: "semantic_unavailable",
                    detail: "Semantic search needs an embedding model, and this server has none.".into(),
                });
            }
            (SearchMode::Hybrid, None) => SearchMode::Text,
            (mode, _) => mode,
        };
        // A cursor continues the ranking that handed it out: in another ranking it
        // points past the end (an empty page). A query without a word finds nothing.
        let other_ranking =
            (mode == SearchMode::Text && offset.is_some()) || (mode != SearchMode::Text && query.after.is_some());
        let (items, next) = match mode {
            _ if other_ranking || query.filters.finds_nothing(&query.text) => (Vec::new(), None),
            SearchMode::Text => {
                let found = self.ports.search.search_documents(scope, &query).await?;
                (found.items, found.next.map(PageCursor::Rank))
            }
            SearchMode::Semantic | SearchMode::Hybrid => self.rank_by_meaning(scope, &query, mode, offset).await?,
        };
        let first_page = query.after.is_none() && offset.is_none();
        let counted = match first_page && facets {
            true => Some(self.ports.search.document_facets(scope, &query).await?),
            false => None,
        };
        let clauses = query.text.clauses();
        let items: Vec<FoundDocument> = items
            .into_iter()
            .map(|scored| FoundDocument {
                snippet: snippet::snippet(&scored.item.chunk.text, clauses),
                score: scored.score,
                hit: scored.item,
            })
            .collect();
        observe("documents", mode, started, items.len());
        // The search across every kind (`facets` off) is recorded once, by its caller.
        if facets && first_page {
            let filters = serde_json::json!({
                "notebook_id": query.filters.within.map(|id| id.to_string()),
                "tags": query.filters.tags.iter().map(|tag| tag.as_str()).collect::<Vec<_>>(),
                "content_type": query.content_type.as_ref().map(|c| c.as_str()),
                "status": query.status.map(|s| s.as_str()),
            });
            let returned = Returned { documents: items.iter().map(|found| found.hit.id).collect(), notebooks: vec![] };
            self.remember(caller, &query.text, mode, SearchTarget::Documents, filters, items.len(), started, returned);
        }
        Ok(DocumentResults { items, next, facets: counted, mode })
    }

    /// A semantic or hybrid page: the ranking down to the page's end, recomputed,
    /// from `offset`.
    async fn rank_by_meaning(
        &self,
        scope: ReadScope,
        query: &DocumentSearch,
        mode: SearchMode,
        offset: Option<OffsetCursor>,
    ) -> ServiceResult<(Vec<Scored<DocumentHit>>, Option<PageCursor>)> {
        let Some(embedder) = &self.embedder else { return Err(ServiceError::Internal("no embedder".into())) };
        let start = offset.map_or(0, |offset| offset.0 as usize);
        let depth = (start + query.limit.get() as usize + 1).min(MAX_RANKED_DEPTH as usize);
        let batch = EmbedBatch::new(vec![query.text.as_str().to_owned()])?;
        let vector = embedder.embed(&batch).await.map_err(embed_error)?.into_iter().next();
        let Some(vector) = vector else { return Err(ServiceError::Internal("the embedder answered nothing".into())) };
        let model = embedder.model().name.clone();
        let similar = self.ports.search.similar_documents(scope, &model, &vector, query, depth).await?;
        let ranked = if mode == SearchMode::Hybrid {
            let mut deep = query.clone();
            deep.after = None;
            deep.limit = Limit::parse(i64::try_from(depth.min(Limit::MAX as usize)).unwrap_or(100)).unwrap_or_default();
            let by_words = self.ports.search.search_documents(scope, &deep).await?.items;
            reciprocal_rank_fusion(vec![by_words, similar], |hit: &DocumentHit| hit.id.as_uuid())
        } else {
            similar
        };
        let end = start + query.limit.get() as usize;
        let more = ranked.len() > end && end < MAX_RANKED_DEPTH as usize;
        let page: Vec<Scored<DocumentHit>> = ranked.into_iter().skip(start).take(query.limit.get() as usize).collect();
        let next = more.then(|| PageCursor::Offset(OffsetCursor(u32::try_from(end).unwrap_or(u32::MAX))));
        Ok((page, next))
    }

    /// Embeds up to one batch of waiting chunks and stores their vectors; how many.
    pub async fn embed_waiting_chunks(&self) -> ServiceResult<usize> {
        let Some(embedder) = &self.embedder else { return Ok(0) };
        let pending = self.ports.search.chunks_to_embed(EMBED_BATCH).await?;
        if pending.is_empty() {
            return Ok(0);
        }
        let batch = EmbedBatch::new(pending.iter().map(|chunk| chunk.text.clone()).collect())?;
        let vectors = embedder.embed(&batch).await.map_err(embed_error)?;
        let embeddings: Vec<ChunkEmbedding> =
            pending.into_iter().zip(vectors).map(|(chunk, vector)| ChunkEmbedding { id: chunk.id, vector }).collect();
        self.ports.search.store_chunk_embeddings(&embedder.model().name, &embeddings).await?;
        metrics::counter!("aether_chunks_embedded_total").increment(embeddings.len() as u64);
        Ok(embeddings.len())
    }

    /// The embedding worker: first makes every chunk without a vector of the
    /// current model wait for one (a new model re-embeds in the background, search
    /// by words going on meanwhile), then embeds waiting chunks until `shutdown`.
    pub async fn run_embedding(&self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let Some(model) = self.embedding_model().map(str::to_owned) else { return };
        match self.ports.search.queue_embeddings_for(&model).await {
            Ok(0) => {}
            Ok(queued) => tracing::info!(queued, model, "chunks queued for embedding"),
            Err(error) => tracing::warn!(%error, "could not queue chunks for embedding"),
        }
        loop {
            let pause = match self.embed_waiting_chunks().await {
                Ok(0) => Duration::from_secs(1),
                Ok(_) => Duration::ZERO,
                Err(error) => {
                    tracing::warn!(%error, "embedding chunks failed; retrying");
                    Duration::from_secs(5)
                }
            };
            if *shutdown.borrow() {
                return;
            }
            if !pause.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = shutdown.changed() => return,
                }
            }
        }
    }

    /// Notebooks the caller may read whose name, description or tags match.
    #[tracing::instrument(skip_all, fields(user = %caller.user_id))]
    pub async fn notebooks(&self, caller: &Principal, query: NotebookSearch) -> ServiceResult<NotebookResults> {
        self.find_notebooks(caller, query, true).await
    }

    /// [`Self::notebooks`] as part of the search across every kind (not recorded alone).
    pub async fn notebooks_for_overview(
        &self,
        caller: &Principal,
        query: NotebookSearch,
    ) -> ServiceResult<NotebookResults> {
        self.find_notebooks(caller, query, false).await
    }

    async fn find_notebooks(
        &self,
        caller: &Principal,
        query: NotebookSearch,
        record: bool,
    ) -> ServiceResult<NotebookResults> {
        let started = Instant::now();
        self.check_within(caller, query.filters.within).await?;
        let scope = ReadScope::of(caller.user_id, &caller.roles);
        let found = self.ports.search.search_notebooks(scope, &query).await?;
        let clauses = query.text.clauses();
        let items: Vec<FoundNotebook> = found
            .items
            .into_iter()
            .map(|scored| {
                let notebook = scored.item;
                let heading =
                    aether_domain::notebook::heading(&notebook.name, notebook.description.as_ref(), &notebook.tags);
                FoundNotebook { snippet: snippet::snippet(&heading, clauses), score: scored.score, notebook }
            })
            .collect();
        observe("notebooks", SearchMode::Text, started, items.len());
        if record && query.after.is_none() {
            let filters = serde_json::json!({
                "notebook_id": query.filters.within.map(|id| id.to_string()),
                "tags": query.filters.tags.iter().map(|tag| tag.as_str()).collect::<Vec<_>>(),
            });
            let returned =
                Returned { documents: vec![], notebooks: items.iter().map(|found| found.notebook.id).collect() };
            let target = SearchTarget::Notebooks;
            self.remember(caller, &query.text, SearchMode::Text, target, filters, items.len(), started, returned);
        }
        Ok(NotebookResults { items, next: found.next })
    }

    /// People by username and full name (and e-mail, for callers who administer
    /// users), those who share a notebook with the caller first.
    #[tracing::instrument(skip_all, fields(user = %caller.user_id))]
    pub async fn people(&self, caller: &Principal, text: SearchText, limit: Limit) -> ServiceResult<Vec<PersonHit>> {
        self.find_people(caller, text, limit, true).await
    }

    /// [`Self::people`] as part of the search across every kind (not recorded alone).
    pub async fn people_for_overview(
        &self,
        caller: &Principal,
        text: SearchText,
        limit: Limit,
    ) -> ServiceResult<Vec<PersonHit>> {
        self.find_people(caller, text, limit, false).await
    }

    /// Records a search across every kind, once, with what it found of each.
    pub fn remember_overview(
        &self,
        caller: &Principal,
        text: &SearchText,
        results: usize,
        started: Instant,
        documents: Vec<DocumentId>,
        notebooks: Vec<NotebookId>,
    ) {
        let returned = Returned { documents, notebooks };
        self.remember(
            caller,
            text,
            SearchMode::Hybrid,
            SearchTarget::Everything,
            serde_json::json!({}),
            results,
            started,
            returned,
        );
    }

    async fn find_people(
        &self,
        caller: &Principal,
        text: SearchText,
        limit: Limit,
        record: bool,
    ) -> ServiceResult<Vec<PersonHit>> {
        let started = Instant::now();
        let query = PeopleSearch { text, include_email: caller.can(Capability::AdministerUsers), limit };
        let found = self.ports.search.find_people(caller.user_id, &query).await?;
        observe("people", SearchMode::Text, started, found.len());
        if record {
            let returned = Returned { documents: vec![], notebooks: vec![] };
            let filters = serde_json::json!({});
            self.remember(
                caller,
                &query.text,
                SearchMode::Text,
                SearchTarget::People,
                filters,
                found.len(),
                started,
                returned,
            );
        }
        Ok(found)
    }

    /// Records a search (its first page) for the caller's history and analytics, in
    /// the background: a failure to record costs the search nothing.
    #[allow(clippy::too_many_arguments)]
    fn remember(
        &self,
        caller: &Principal,
        text: &SearchText,
        mode: SearchMode,
        target: SearchTarget,
        filters: serde_json::Value,
        results: usize,
        started: Instant,
        returned: Returned,
    ) {
        let record = NewSearchRecord {
            id: uuid::Uuid::now_v7(),
            user_id: caller.user_id,
            query_text: text.as_str().to_owned(),
            query_type: mode.as_str(),
            target,
            filters,
            results_count: u32::try_from(results).unwrap_or(u32::MAX),
            response_time_ms: u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX),
            returned_documents: returned.documents.into_iter().take(MAX_RETURNED).collect(),
            returned_notebooks: returned.notebooks.into_iter().take(MAX_RETURNED).collect(),
            at: time::now(),
        };
        let log = Arc::clone(&self.ports.log);
        tokio::spawn(async move {
            if let Err(error) = log.record_search(record).await {
                tracing::warn!(%error, "a search could not be recorded");
            }
        });
    }

    /// The caller's own searches, newest first.
    pub async fn history(&self, caller: &Principal, page: PageRequest) -> ServiceResult<Page<SearchRecord>> {
        Ok(self.ports.log.search_history(caller.user_id, page).await?)
    }

    /// Forgets one of the caller's searches (`NotFound` when it has no such search),
    /// or all of them.
    pub async fn forget(&self, caller: &Principal, id: Option<uuid::Uuid>) -> ServiceResult<u64> {
        Ok(self.ports.log.delete_search_history(caller.user_id, id).await?)
    }

    /// Forgets every search older than `days` days (history, suggestions and
    /// analytics alike), a batch at a time; how many.
    pub async fn forget_searches_older_than(&self, days: u32) -> ServiceResult<u64> {
        const BATCH: u32 = 1_000;
        let cutoff = time::now() - chrono::TimeDelta::days(i64::from(days));
        let mut forgotten = 0;
        loop {
            let batch = self.ports.log.forget_searches_before(cutoff, BATCH).await?;
            forgotten += batch;
            if batch < u64::from(BATCH) {
                return Ok(forgotten);
            }
        }
    }

    /// Completions of what the caller is typing: their own frequent queries, then
    /// names of notebooks and documents they may read, then their tags; each text once.
    #[tracing::instrument(skip_all, fields(user = %caller.user_id))]
    pub async fn suggestions(
        &self,
        caller: &Principal,
        prefix: SearchText,
        limit: Limit,
    ) -> ServiceResult<Vec<Suggestion>> {
        let wanted = limit.get() as usize;
        let normalized = normalized_query(prefix.as_str());
        if normalized.is_empty() {
            return Ok(Vec::new());
        }
        let mut suggestions: Vec<Suggestion> = Vec::new();
        let push = |suggestions: &mut Vec<Suggestion>, suggestion: Suggestion| {
            let known = suggestions.iter().any(|s| s.text.to_lowercase() == suggestion.text.to_lowercase());
            if !known && suggestions.len() < wanted {
                suggestions.push(suggestion);
            }
        };
        for query in self.ports.log.frequent_searches(caller.user_id, &normalized, limit.get()).await? {
            push(&mut suggestions, Suggestion { text: query.query, kind: SuggestionKind::Query, id: None });
        }
        // The last word completes: `tax rep` finds `tax report`. (The words of at
        // most 256 characters, and a star, can exceed 256: then the prefix alone.)
        let completing = SearchText::parse(&format!("{normalized}*")).or_else(|_| SearchText::parse(&normalized))?;
        let scope = ReadScope::of(caller.user_id, &caller.roles);
        if suggestions.len() < wanted {
            let search = NotebookSearch {
                text: completing.clone(),
                filters: Default::default(),
                status: None,
                limit,
                after: None,
            };
            for found in self.ports.search.search_notebooks(scope, &search).await?.items {
                let notebook = found.item;
                let suggestion = Suggestion {
                    text: notebook.name.as_str().to_owned(),
                    kind: SuggestionKind::Notebook,
                    id: Some(notebook.id.as_uuid()),
                };
                push(&mut suggestions, suggestion);
            }
        }
        if suggestions.len() < wanted {
            let search = DocumentSearch {
                text: completing,
                filters: Default::default(),
                content_type: None,
                status: None,
                limit,
                after: None,
            };
            for found in self.ports.search.search_documents(scope, &search).await?.items {
                let hit = found.item;
                push(
                    &mut suggestions,
                    Suggestion { text: hit.filename, kind: SuggestionKind::Document, id: Some(hit.id.as_uuid()) },
                );
            }
        }
        if suggestions.len() < wanted {
            let last = normalized.rsplit(' ').next().unwrap_or_default().to_owned();
            for (tag, _) in self.ports.notebooks.tag_usage(Some(caller.user_id), Limit::MAX).await? {
                if tag.as_str().starts_with(&last) {
                    push(
                        &mut suggestions,
                        Suggestion { text: tag.as_str().to_owned(), kind: SuggestionKind::Tag, id: None },
                    );
                }
            }
        }
        Ok(suggestions)
    }

    /// Documents or notebooks related to `subject`, which the caller must be able
    /// to read (`NotFound` otherwise), each with why: the graph's facts (same
    /// notebook or nearby notebooks, shared tags, shared people) and, with an
    /// embedding model, documents alike in meaning. Only what the caller may read.
    #[tracing::instrument(skip_all, fields(user = %caller.user_id))]
    pub async fn related(
        &self,
        caller: &Principal,
        subject: RelatedSubject,
        limit: Limit,
    ) -> ServiceResult<Vec<RelatedItem>> {
        let started = Instant::now();
        // The subject is read first: one the caller cannot read is not found, as on
        // every path naming it, and nothing related to it is computed.
        let (home, subject_tags, heading) = match subject {
            RelatedSubject::Document(id) => {
                let document = self.ports.documents.get_document(id).await?;
                (document.notebook_id, document.tags, None)
            }
            RelatedSubject::Notebook(id) => {
                let notebook = self.ports.notebooks.get_notebook(id).await?;
                let heading =
                    aether_domain::notebook::heading(&notebook.name, notebook.description.as_ref(), &notebook.tags);
                (id, notebook.tags, Some(heading))
            }
        };
        self.authorizer.access(caller, home).await?;
        let scope = ReadScope::of(caller.user_id, &caller.roles);
        let mut candidates =
            self.ports.search.related_candidates(scope, subject, caller.user_id, CANDIDATES_PER_SIGNAL).await?;
        let mut mode = SearchMode::Text;
        if let Some(embedder) = &self.embedder {
            let model = embedder.model().name.clone();
            let direction = match (subject, heading) {
                (RelatedSubject::Document(id), _) => {
                    mean_direction(&self.ports.search.document_vectors(id, &model, MEAN_OF_CHUNKS).await?)
                }
                (RelatedSubject::Notebook(_), Some(heading)) => {
                    let batch = EmbedBatch::new(vec![heading])?;
                    embedder.embed(&batch).await.map_err(embed_error)?.into_iter().next()
                }
                (RelatedSubject::Notebook(_), None) => None,
            };
            if let Some(direction) = direction {
                mode = SearchMode::Hybrid;
                let every_document = DocumentSearch {
                    text: SearchText::parse("")?,
                    filters: Default::default(),
                    content_type: None,
                    status: None,
                    limit: Limit::default(),
                    after: None,
                };
                let similar = self
                    .ports
                    .search
                    .similar_documents(scope, &model, &direction, &every_document, SIMILAR_CANDIDATES + 1)
                    .await?;
                for found in similar {
                    let hit = found.item;
                    // A notebook's own documents are its content, not related to it.
                    if matches!(subject, RelatedSubject::Notebook(_)) && hit.notebook_id == home {
                        continue;
                    }
                    candidates.push(RelatedCandidate {
                        kind: RelatedKind::Document,
                        id: hit.id.as_uuid(),
                        title: hit.filename,
                        notebook_id: hit.notebook_id,
                        updated_at: hit.updated_at,
                        shared_tags: match subject {
                            RelatedSubject::Document(_) => {
                                hit.tags.into_iter().filter(|tag| subject_tags.contains(tag)).collect()
                            }
                            RelatedSubject::Notebook(_) => Vec::new(),
                        },
                        same_place: matches!(subject, RelatedSubject::Document(_)) && hit.notebook_id == home,
                        shared_people: 0,
                        similarity: Some(found.score),
                    });
                }
            }
        }
        let related = rank_related(subject, candidates, limit.get() as usize);
        observe("related", mode, started, related.len());
        Ok(related)
    }

    /// Searches by everyone since `since`: for callers who administer users or read
    /// the audit log.
    pub async fn analytics(
        &self,
        caller: &Principal,
        since: Timestamp,
        limit: Limit,
    ) -> ServiceResult<SearchAnalytics> {
        if !caller.can(Capability::AdministerUsers) && !caller.can(Capability::ReadAudit) {
            return Err(ServiceError::Forbidden("search analytics are for administrators"));
        }
        Ok(self.ports.log.search_analytics(since, limit.get()).await?)
    }

    /// Rebuilds every document's chunks from the store, a batch at a time, telling
    /// `progress` (documents done, documents in all, chunks written) after each.
    pub async fn reindex(&self, mut progress: impl FnMut(u64, u64, u64)) -> ServiceResult<(u64, u64)> {
        const BATCH: u32 = 100;
        let total = self.ports.search.count_documents().await?;
        let (mut documents, mut chunks, mut after) = (0, 0, None);
        progress(0, total, 0);
        loop {
            let step = self.ports.search.reindex_documents(after, BATCH).await?;
            documents += step.documents;
            chunks += step.chunks;
            progress(documents, total.max(documents), chunks);
            match step.next {
                Some(next) => after = Some(next),
                None => return Ok((documents, chunks)),
            }
        }
    }
}
