//! Search over everything a caller may read (issue 15). The caller's read scope is
//! decided here from roles ([`ReadScope::of`]) and handed to the store, whose query
//! applies it: nothing unreadable is ranked, counted or returned. Snippets are made
//! here from the matched chunk, the text every reader of the document may see.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aether_domain::ValidationError;
use aether_domain::auth::Principal;
use aether_domain::capability::Capability;
use aether_domain::embedding::{EmbedBatch, EmbedError, Embedder};
use aether_domain::notebook::Notebook;
use aether_domain::page::Limit;
use aether_domain::search::Scored;
use aether_domain::search::{
    DocumentFacets, DocumentHit, DocumentSearch, NotebookSearch, PeopleSearch, PersonHit, RankCursor, ReadScope,
    SearchText,
};
use aether_domain::semantic::{ChunkEmbedding, MAX_RANKED_DEPTH, OffsetCursor, SearchMode, reciprocal_rank_fusion};
use aether_domain::snippet::{self, Snippet};

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
    async fn check_within(
        &self,
        caller: &Principal,
        within: Option<aether_domain::id::NotebookId>,
    ) -> ServiceResult<()> {
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
        // A cursor continues the ranking that handed it out.
        if (mode == SearchMode::Text && offset.is_some()) || (mode != SearchMode::Text && query.after.is_some()) {
            return Err(ValidationError::new("cursor", "belongs to a search ranked another way").into());
        }
        let (items, next) = match mode {
            SearchMode::Text => {
                let found = self.ports.search.search_documents(scope, &query).await?;
                (found.items, found.next.map(PageCursor::Rank))
            }
            SearchMode::Semantic | SearchMode::Hybrid => self.rank_by_meaning(scope, &query, mode, offset).await?,
        };
        let facets = match (query.after, offset) {
            (None, None) if facets => Some(self.ports.search.document_facets(scope, &query).await?),
            _ => None,
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
        Ok(DocumentResults { items, next, facets, mode })
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

    #[tracing::instrument(skip_all, fields(user = %caller.user_id))]
    pub async fn notebooks(&self, caller: &Principal, query: NotebookSearch) -> ServiceResult<NotebookResults> {
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
        Ok(NotebookResults { items, next: found.next })
    }

    /// People by username and full name (and e-mail, for callers who administer
    /// users), those who share a notebook with the caller first.
    #[tracing::instrument(skip_all, fields(user = %caller.user_id))]
    pub async fn people(&self, caller: &Principal, text: SearchText, limit: Limit) -> ServiceResult<Vec<PersonHit>> {
        let started = Instant::now();
        let query = PeopleSearch { text, include_email: caller.can(Capability::AdministerUsers), limit };
        let found = self.ports.search.find_people(caller.user_id, &query).await?;
        observe("people", SearchMode::Text, started, found.len());
        Ok(found)
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
