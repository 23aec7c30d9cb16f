//! Search results through the read cache (Redis when configured, in-process
//! otherwise): a [`SearchStore`] in front of the store's, caching what a ranked or
//! counted search answers under the `search` generation, which every change a
//! search sees bumps (see `CacheScope::search`). A result is keyed by the caller's
//! read scope and the whole query, so a result is only ever served for the scope it
//! was computed for, and a revoked grant (an `access` bump, which bumps `search`)
//! is never served stale.

use std::sync::Arc;
use std::time::Duration;

use aether_domain::embedding::Embedding;
use aether_domain::id::{DocumentId, UserId};
use aether_domain::notebook::Notebook;
use aether_domain::related::{RelatedCandidate, RelatedSubject};
use aether_domain::search::{
    DocumentFacets, DocumentHit, DocumentSearch, NotebookSearch, PeopleSearch, PersonHit, Ranked, ReadScope,
    ReindexStep, Scored,
};
use aether_domain::semantic::{ChunkEmbedding, PendingChunk};
use aether_domain::store::{SearchStore, StoreResult};
use async_trait::async_trait;
use sha2::{Digest, Sha256};

use crate::cache::CachedReads;

/// The store's search through the cache.
#[derive(Debug, Clone)]
pub struct CachedSearchStore {
    store: Arc<dyn SearchStore>,
    reads: CachedReads,
    /// How long a new generation must have been seen before results are stored
    /// under it: the time the store's index may take to take up a commit.
    settle: Duration,
}

impl CachedSearchStore {
    pub fn new(store: Arc<dyn SearchStore>, reads: CachedReads, settle: Duration) -> Self {
        Self { store, reads, settle }
    }
}

/// The key of a result: what was asked (`kind`), whose scope (in clear, so that
/// even a hash collision could only mix one reader's own results), and a digest of
/// everything else the result depends on.
fn key(kind: &str, scope: ReadScope, query: &impl std::fmt::Debug) -> String {
    let reader = scope.reader().map_or_else(|| "everything".to_owned(), |user| user.to_string());
    let digest = Sha256::digest(format!("{query:?}").as_bytes());
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("{kind}:{reader}:{hex}")
}

#[async_trait]
impl SearchStore for CachedSearchStore {
    async fn search_documents(&self, scope: ReadScope, query: &DocumentSearch) -> StoreResult<Ranked<DocumentHit>> {
        let read = self.store.search_documents(scope, query);
        self.reads.search_result(&key("documents", scope, query), self.settle, read).await
    }

    async fn document_facets(&self, scope: ReadScope, query: &DocumentSearch) -> StoreResult<DocumentFacets> {
        // Facets do not depend on the page.
        let mut first_page = query.clone();
        first_page.after = None;
        first_page.limit = Default::default();
        let read = self.store.document_facets(scope, query);
        self.reads.search_result(&key("facets", scope, &first_page), self.settle, read).await
    }

    async fn search_notebooks(&self, scope: ReadScope, query: &NotebookSearch) -> StoreResult<Ranked<Notebook>> {
        let read = self.store.search_notebooks(scope, query);
        self.reads.search_result(&key("notebooks", scope, query), self.settle, read).await
    }

    async fn find_people(&self, caller: UserId, query: &PeopleSearch) -> StoreResult<Vec<PersonHit>> {
        // People change with accounts, which bump no search generation: not cached.
        self.store.find_people(caller, query).await
    }

    async fn reindex_documents(&self, after: Option<DocumentId>, limit: u32) -> StoreResult<ReindexStep> {
        let step = self.store.reindex_documents(after, limit).await?;
        self.reads.search_content_changed().await;
        Ok(step)
    }

    async fn count_documents(&self) -> StoreResult<u64> {
        self.store.count_documents().await
    }

    async fn similar_documents(
        &self,
        scope: ReadScope,
        model: &str,
        vector: &Embedding,
        query: &DocumentSearch,
        k: usize,
    ) -> StoreResult<Vec<Scored<DocumentHit>>> {
        let read = self.store.similar_documents(scope, model, vector, query, k);
        let asked = (model, vector.as_slice(), &query.filters, &query.content_type, query.status, k);
        self.reads.search_result(&key("similar", scope, &asked), self.settle, read).await
    }

    async fn chunks_to_embed(&self, limit: u32) -> StoreResult<Vec<PendingChunk>> {
        self.store.chunks_to_embed(limit).await
    }

    async fn store_chunk_embeddings(&self, model: &str, embeddings: &[ChunkEmbedding]) -> StoreResult<()> {
        self.store.store_chunk_embeddings(model, embeddings).await?;
        self.reads.search_content_changed().await;
        Ok(())
    }

    async fn queue_embeddings_for(&self, model: &str) -> StoreResult<u64> {
        self.store.queue_embeddings_for(model).await
    }

    async fn related_candidates(
        &self,
        scope: ReadScope,
        subject: RelatedSubject,
        caller: UserId,
        per_signal: u32,
    ) -> StoreResult<Vec<RelatedCandidate>> {
        self.store.related_candidates(scope, subject, caller, per_signal).await
    }

    async fn document_vectors(
        &self,
        document: DocumentId,
        model: &str,
        limit: u32,
    ) -> StoreResult<Vec<(u32, Embedding)>> {
        self.store.document_vectors(document, model, limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_the_scope_and_differ_with_the_query() {
        let user = UserId::new();
        let a = key("documents", ReadScope::Reader(user), &("tax", 1));
        let b = key("documents", ReadScope::Reader(user), &("tax", 2));
        let everything = key("documents", ReadScope::Everything, &("tax", 1));
        assert!(a.starts_with(&format!("documents:{user}:")));
        assert_ne!(a, b);
        assert!(everything.starts_with("documents:everything:"));
        assert_eq!(a, key("documents", ReadScope::Reader(user), &("tax", 1)));
    }
}
