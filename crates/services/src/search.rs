//! Search over everything a caller may read (issue 15). The caller's read scope is
//! decided here from roles ([`ReadScope::of`]) and handed to the store, whose query
//! applies it: nothing unreadable is ranked, counted or returned. Snippets are made
//! here from the matched chunk, the text every reader of the document may see.

use std::time::Instant;

use aether_domain::auth::Principal;
use aether_domain::capability::Capability;
use aether_domain::notebook::Notebook;
use aether_domain::page::Limit;
use aether_domain::search::{
    DocumentFacets, DocumentHit, DocumentSearch, NotebookSearch, PeopleSearch, PersonHit, RankCursor, ReadScope,
    SearchText,
};
use aether_domain::snippet::{self, Snippet};

use crate::access::Authorizer;
use crate::error::ServiceResult;
use crate::ports::SearchPorts;

/// A document found, with the snippet of its best chunk.
#[derive(Debug, Clone, PartialEq)]
pub struct FoundDocument {
    pub hit: DocumentHit,
    pub score: f64,
    pub snippet: Snippet,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DocumentResults {
    pub items: Vec<FoundDocument>,
    pub next: Option<RankCursor>,
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
}

fn observe(kind: &'static str, started: Instant, found: usize) {
    metrics::histogram!("aether_search_seconds", "kind" => kind).record(started.elapsed().as_secs_f64());
    metrics::counter!("aether_search_queries_total", "kind" => kind).increment(1);
    if found == 0 {
        metrics::counter!("aether_search_empty_results_total", "kind" => kind).increment(1);
    }
}

impl SearchService {
    pub fn new(ports: SearchPorts, authorizer: Authorizer) -> Self {
        Self { ports, authorizer }
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

    /// Documents the caller may read, with facets on the first page.
    #[tracing::instrument(skip_all, fields(user = %caller.user_id))]
    pub async fn documents(&self, caller: &Principal, query: DocumentSearch) -> ServiceResult<DocumentResults> {
        self.find_documents(caller, query, true).await
    }

    /// [`Self::documents`] without facets (the search across every kind).
    #[tracing::instrument(skip_all, fields(user = %caller.user_id))]
    pub async fn documents_without_facets(
        &self,
        caller: &Principal,
        query: DocumentSearch,
    ) -> ServiceResult<DocumentResults> {
        self.find_documents(caller, query, false).await
    }

    async fn find_documents(
        &self,
        caller: &Principal,
        query: DocumentSearch,
        facets: bool,
    ) -> ServiceResult<DocumentResults> {
        let started = Instant::now();
        self.check_within(caller, query.filters.within).await?;
        let scope = ReadScope::of(caller.user_id, &caller.roles);
        let found = self.ports.search.search_documents(scope, &query).await?;
        let facets = match query.after {
            None if facets => Some(self.ports.search.document_facets(scope, &query).await?),
            _ => None,
        };
        let clauses = query.text.clauses();
        let items: Vec<FoundDocument> = found
            .items
            .into_iter()
            .map(|scored| FoundDocument {
                snippet: snippet::snippet(&scored.item.chunk.text, clauses),
                score: scored.score,
                hit: scored.item,
            })
            .collect();
        observe("documents", started, items.len());
        Ok(DocumentResults { items, next: found.next, facets })
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
        observe("notebooks", started, items.len());
        Ok(NotebookResults { items, next: found.next })
    }

    /// People by username and full name (and e-mail, for callers who administer
    /// users), those who share a notebook with the caller first.
    #[tracing::instrument(skip_all, fields(user = %caller.user_id))]
    pub async fn people(&self, caller: &Principal, text: SearchText, limit: Limit) -> ServiceResult<Vec<PersonHit>> {
        let started = Instant::now();
        let query = PeopleSearch { text, include_email: caller.can(Capability::AdministerUsers), limit };
        let found = self.ports.search.find_people(caller.user_id, &query).await?;
        observe("people", started, found.len());
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
