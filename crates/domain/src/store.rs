//! Store ports. Each method is one use case and atomic inside its backend; there is
//! no way to send raw queries. Backends: `aether-store-sqlite`, `aether-store-neo4j`,
//! both held to the same behaviour by `aether-store-conformance`.

use async_trait::async_trait;

use crate::StoreError;
use crate::access::{ChainLink, Collaboration, CollaborationStatus};
use crate::activity::NewAuditRecord;
use crate::activity::{ActivityEvent, AuditEntry, Change};
use crate::api_key::{ApiKey, NewApiKey};
use crate::blob::BlobKey;
use crate::document::JobFailure;
use crate::document::{BlobDeletion, Document, DocumentPatch, DocumentVersion, ProcessingResult};
use crate::embedding::Embedding;
use crate::ephemeral::EphemeralStore;
use crate::events::OutboxEvent;
use crate::id::{ApiKeyId, DocumentId, JobId, NotebookId, TokenFamilyId, UserId};
use crate::identity::ExternalUser;
use crate::job::{JobStatus, NewUploadJob, ReceivedFile, UploadJob};
use crate::notebook::{BulkAction, ListScope, NewNotebook, Notebook, NotebookName, NotebookPatch, NotebookQuery, Tag};
use crate::page::{Page, PageRequest};
use crate::related::{RelatedCandidate, RelatedSubject};
use crate::search::Scored;
use crate::search::{
    DocumentFacets, DocumentHit, DocumentSearch, NotebookSearch, PeopleSearch, PersonHit, Ranked, ReadScope,
    ReindexStep,
};
use crate::search_log::{NewSearchRecord, QueryCount, SearchAnalytics, SearchRecord};
use crate::semantic::{ChunkEmbedding, PendingChunk};
use crate::session::{NewRefreshToken, RefreshOutcome};
use crate::time::Timestamp;
use crate::user::{LocalCredentials, NewUser, Role, User, UserPatch, Username};

pub type StoreResult<T> = Result<T, StoreError>;

#[async_trait]
pub trait UserStore: Send + Sync + std::fmt::Debug {
    /// Creates a user. `Conflict("username")` or `Conflict("email")` when taken.
    async fn create_user(&self, user: NewUser) -> StoreResult<User>;
    /// A user that is not soft-deleted.
    async fn get_user(&self, id: UserId) -> StoreResult<User>;
    async fn find_user_by_username(&self, username: &Username) -> StoreResult<Option<User>>;
    /// Credentials of a local, non-deleted account with a password.
    async fn find_local_credentials(&self, username: &Username) -> StoreResult<Option<LocalCredentials>>;
    async fn update_user(&self, id: UserId, patch: UserPatch, at: Timestamp) -> StoreResult<User>;
    async fn set_password_hash(&self, id: UserId, password_hash: String, at: Timestamp) -> StoreResult<()>;
    async fn record_login(&self, id: UserId, at: Timestamp) -> StoreResult<()>;
    /// Marks the user deleted; later reads answer `NotFound`.
    async fn soft_delete_user(&self, id: UserId, at: Timestamp) -> StoreResult<()>;
    /// Non-deleted users, newest first.
    async fn list_users(&self, page: PageRequest) -> StoreResult<Page<User>>;
    /// How many non-deleted users exist.
    async fn count_users(&self) -> StoreResult<u64>;
    /// Creates or updates the user with `user.keycloak_id`, in one atomic step:
    /// concurrent calls for a new user create exactly one. Sets `last_sync_at = at`,
    /// and `last_login_at` when the user logged in. `Conflict("username")` when the
    /// username belongs to another account.
    async fn sync_external_user(&self, user: ExternalUser, at: Timestamp) -> StoreResult<User>;
    async fn find_user_by_keycloak_id(&self, keycloak_id: &str) -> StoreResult<Option<User>>;
    /// Non-deleted users whose username, e-mail or full name contains `text`
    /// (case-insensitive), best matches (username prefix) first.
    async fn search_users(&self, text: &str, limit: u32) -> StoreResult<Vec<User>>;
    /// Replaces the user's realm roles and audits the change, atomically.
    async fn change_user_roles(&self, id: UserId, roles: Vec<Role>, audit: NewAuditRecord) -> StoreResult<User>;
}

/// Personal API keys, stored by the SHA-256 of the secret.
#[async_trait]
pub trait ApiKeyStore: Send + Sync + std::fmt::Debug {
    /// Creates the key and audits it, atomically. `Conflict("api_key")` on a digest clash.
    async fn create_api_key(&self, key: NewApiKey, audit: NewAuditRecord) -> StoreResult<ApiKey>;
    /// The user's keys, revoked ones included, newest first.
    async fn list_api_keys(&self, user: UserId, page: PageRequest) -> StoreResult<Page<ApiKey>>;
    /// Revokes the user's key and audits it. `NotFound` when the user has no such key;
    /// revoking a revoked key changes nothing and answers it as it is.
    async fn revoke_api_key(&self, user: UserId, id: ApiKeyId, audit: NewAuditRecord) -> StoreResult<ApiKey>;
    /// The key with this digest, active or not.
    async fn find_api_key(&self, secret_hash: &str) -> StoreResult<Option<ApiKey>>;
    async fn touch_api_key(&self, id: ApiKeyId, at: Timestamp) -> StoreResult<()>;
}

#[async_trait]
pub trait NotebookStore: Send + Sync + std::fmt::Debug {
    /// Creates the notebook, its owner's `OWNS` relationship and, with a parent, the
    /// parent's `PARENT_OF`, together. `NotFound` when the owner or the parent does not
    /// exist; `Conflict("depth")` when the notebook would sit deeper than `max_depth`.
    async fn create_notebook(&self, notebook: NewNotebook, max_depth: u32, change: &Change) -> StoreResult<Notebook>;
    /// A notebook that is not soft-deleted.
    async fn get_notebook(&self, id: NotebookId) -> StoreResult<Notebook>;
    /// Live notebooks in the query's scope that pass its filters, in its order.
    /// Cursors (`page.after`) continue in that order.
    async fn list_notebooks(&self, query: NotebookQuery) -> StoreResult<Page<Notebook>>;
    /// Live notebooks the user owns, newest first.
    async fn list_owned_notebooks(&self, owner: UserId, page: PageRequest) -> StoreResult<Page<Notebook>> {
        self.list_notebooks(NotebookQuery::new(ListScope::Owned(owner), page)).await
    }
    /// Applies the patch and increments the version. With `expected_version`, a
    /// notebook at another version is left alone: `Conflict("version")`.
    async fn update_notebook(
        &self,
        id: NotebookId,
        patch: NotebookPatch,
        expected_version: Option<u64>,
        change: &Change,
    ) -> StoreResult<Notebook>;
    /// Marks the notebook deleted; later reads answer `NotFound`. With `cascade`, its
    /// whole subtree goes too; without, a notebook with live children answers
    /// `Conflict("children")`.
    async fn soft_delete_notebook(&self, id: NotebookId, cascade: bool, change: &Change) -> StoreResult<()>;
    /// Deep-copies a live notebook and its live descendants, owned by `owner`, the
    /// copy of the root named `name` and placed under `new_parent` (or at the root).
    /// Collaborations and activity are not copied. `NotFound` when the source or
    /// the new parent is missing; `Conflict("depth")` when the copy would be too deep.
    async fn duplicate_notebook(
        &self,
        source: NotebookId,
        owner: UserId,
        new_parent: Option<NotebookId>,
        name: NotebookName,
        max_depth: u32,
        change: &Change,
    ) -> StoreResult<Notebook>;
    /// Applies `action` to every notebook in `ids` in one transaction: all succeed or
    /// none does (the first failure is returned). Returns the updated notebooks,
    /// none for `Delete`.
    async fn bulk_update(
        &self,
        ids: &[NotebookId],
        action: &BulkAction,
        max_depth: u32,
        change: &Change,
    ) -> StoreResult<Vec<Notebook>>;
    /// Tags with the number of live notebooks carrying them (through `TAGGED_WITH`):
    /// among `owner`'s notebooks, or among public ones when `owner` is `None`. Most
    /// used first.
    async fn tag_usage(&self, owner: Option<UserId>, limit: u32) -> StoreResult<Vec<(Tag, u64)>>;
    /// A soft-deleted notebook; `NotFound` when it is missing or not deleted.
    async fn get_deleted_notebook(&self, id: NotebookId) -> StoreResult<Notebook>;
    /// Brings a soft-deleted notebook back (not its deleted descendants), as a new
    /// version. `NotFound` when it is not deleted; `Conflict("parent")` when its
    /// parent is deleted too (restore or move that first).
    async fn restore_notebook(&self, id: NotebookId, change: &Change) -> StoreResult<Notebook>;
    /// The notebook (first) and its ancestors up to the root, each with the user's
    /// active collaboration. `NotFound` when the notebook is missing or deleted.
    async fn access_chain(&self, user: UserId, id: NotebookId) -> StoreResult<Vec<ChainLink>>;
    /// The live notebook and `user`'s chain to it (as [`Self::access_chain`]), read
    /// together: one round trip where the backend has round trips (Neo4j). The
    /// caller decides access from the chain before it shows anything of the notebook.
    async fn notebook_with_access_chain(
        &self,
        user: UserId,
        id: NotebookId,
    ) -> StoreResult<(Notebook, Vec<ChainLink>)> {
        let chain = self.access_chain(user, id).await?;
        Ok((self.get_notebook(id).await?, chain))
    }
    /// Live children of `parent`, newest first; only public ones when `only_public`.
    async fn list_children(
        &self,
        parent: NotebookId,
        only_public: bool,
        page: PageRequest,
    ) -> StoreResult<Page<Notebook>>;
    /// Moves a notebook under `new_parent` (or to the root). `Conflict("cycle")` when
    /// the new parent is the notebook or one of its descendants, `Conflict("depth")`
    /// when its subtree would reach deeper than `max_depth`.
    /// Increments the version; `expected_version` as for `update_notebook`.
    async fn move_notebook(
        &self,
        id: NotebookId,
        new_parent: Option<NotebookId>,
        expected_version: Option<u64>,
        max_depth: u32,
        change: &Change,
    ) -> StoreResult<Notebook>;
    /// Live notebooks the user reaches through an active collaboration on them or
    /// on an ancestor, excluding ones the user owns; newest first.
    async fn list_shared_with(&self, user: UserId, page: PageRequest) -> StoreResult<Page<Notebook>> {
        self.list_notebooks(NotebookQuery::new(ListScope::SharedWith(user), page)).await
    }
}

/// The record of changes. Mutating notebook methods write it themselves, in the
/// transaction of the change (see [`crate::activity`]).
#[async_trait]
pub trait ActivityStore: Send + Sync + std::fmt::Debug {
    /// Events about a notebook (live or deleted), newest first.
    async fn list_activity(&self, notebook: NotebookId, page: PageRequest) -> StoreResult<Page<ActivityEvent>>;
    /// Audit entries, newest first; only those about `resource_id` when given.
    async fn list_audit(&self, resource_id: Option<String>, page: PageRequest) -> StoreResult<Page<AuditEntry>>;
    /// Writes an audit entry that belongs to no other change (logins, failed authentication).
    async fn record_audit(&self, record: NewAuditRecord) -> StoreResult<()>;
}

/// The durable outbox of domain events (see [`crate::events`]).
#[async_trait]
pub trait OutboxStore: Send + Sync + std::fmt::Debug {
    /// Unpublished events, oldest first.
    async fn pending_events(&self, limit: u32) -> StoreResult<Vec<OutboxEvent>>;
    /// Marks events published; unknown or already published ids are ignored.
    async fn mark_published(&self, ids: &[uuid::Uuid], at: Timestamp) -> StoreResult<()>;
}

#[async_trait]
pub trait CollaborationStore: Send + Sync + std::fmt::Debug {
    /// Creates the relationship or replaces its permission, status and grantor
    /// (`granted_at` is kept from the first grant; `accepted_at` is set when the
    /// status becomes active).
    /// `NotFound` when the notebook or the user does not exist.
    async fn put_collaboration(&self, collaboration: Collaboration, change: &Change) -> StoreResult<Collaboration>;
    /// `NotFound` when there is no such relationship. Becoming active sets `accepted_at`.
    async fn set_collaboration_status(
        &self,
        notebook: NotebookId,
        user: UserId,
        status: CollaborationStatus,
        change: &Change,
    ) -> StoreResult<Collaboration>;
    /// Marks a pending or active relationship revoked. `NotFound` when there is none.
    async fn revoke_collaboration(&self, notebook: NotebookId, user: UserId, change: &Change) -> StoreResult<()>;
    /// Every collaboration on the notebook, in the order of the collaborators' ids
    /// (oldest account first); `page.after` is a collaborator's user id.
    async fn list_collaborations(&self, notebook: NotebookId, page: PageRequest) -> StoreResult<Page<Collaboration>>;
    /// The user's collaborations in `status` on live notebooks, in the order of the
    /// notebooks' ids (newest notebook first); `page.after` is a notebook id.
    async fn list_user_collaborations(
        &self,
        user: UserId,
        status: CollaborationStatus,
        page: PageRequest,
    ) -> StoreResult<Page<Collaboration>>;
    /// The user's collaboration on a live notebook, in any status.
    async fn find_collaboration(&self, notebook: NotebookId, user: UserId) -> StoreResult<Option<Collaboration>>;
}

#[async_trait]
pub trait SessionStore: Send + Sync + std::fmt::Debug {
    async fn insert_refresh_token(&self, token: NewRefreshToken) -> StoreResult<()>;
    /// Atomically spends `presented_hash` and stores `replacement_hash` in the same
    /// family, or detects reuse and revokes the family.
    async fn rotate_refresh_token(
        &self,
        presented_hash: &str,
        replacement_hash: &str,
        replacement_expires_at: Timestamp,
        now: Timestamp,
    ) -> StoreResult<RefreshOutcome>;
    /// Revokes every token of a family (logout).
    async fn revoke_token_family(&self, family_id: TokenFamilyId, at: Timestamp) -> StoreResult<()>;
    /// Deletes tokens that expired before `now`; returns how many.
    async fn purge_expired_refresh_tokens(&self, now: Timestamp) -> StoreResult<u64>;
}

/// Upload jobs, from the first byte to their document (see [`crate::document`]).
#[async_trait]
pub trait JobStore: Send + Sync + std::fmt::Debug {
    /// Records a job in `uploading`, before any byte is written. `NotFound` when the
    /// notebook is missing or deleted, or when `existing_document` is not a live
    /// document of that notebook.
    async fn create_upload_job(&self, job: NewUploadJob) -> StoreResult<UploadJob>;
    async fn get_job(&self, id: JobId) -> StoreResult<UploadJob>;
    /// The notebook's jobs, newest first; only unfinished ones when `active_only`.
    async fn list_notebook_jobs(
        &self,
        notebook: NotebookId,
        active_only: bool,
        page: PageRequest,
    ) -> StoreResult<Page<UploadJob>>;
    /// Records how many bytes have arrived and answers the job as it now is, so the
    /// uploader notices a cancellation.
    async fn record_upload_progress(&self, id: JobId, bytes_received: u64, at: Timestamp) -> StoreResult<UploadJob>;
    /// The bytes are stored: the job becomes `pending`, and `aether.documents.uploaded`
    /// is written to the outbox with it. `Conflict("job_status")` when the job is no
    /// longer uploading (cancelled meanwhile).
    async fn accept_upload(&self, id: JobId, file: ReceivedFile, at: Timestamp) -> StoreResult<UploadJob>;
    /// Takes the oldest job a worker may work on: `pending`, or `validating` /
    /// `processing` with an expired lease (its worker died). The job becomes
    /// `validating`, its attempts grow by one, and it is leased until `lease_until`.
    async fn claim_job(&self, now: Timestamp, lease_until: Timestamp) -> StoreResult<Option<UploadJob>>;
    /// Takes this job on the same terms as [`claim_job`](Self::claim_job); `None`
    /// when it is not claimable now (missing, uploading, leased, or finished).
    async fn claim_job_by_id(
        &self,
        id: JobId,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> StoreResult<Option<UploadJob>>;
    /// Extends the lease of a job being worked on to `lease_until` (never shortens
    /// it), so that a long extraction is not taken for a dead worker's.
    /// `Conflict("job_status")` once the job is no longer worked on.
    async fn renew_job_lease(&self, id: JobId, lease_until: Timestamp) -> StoreResult<()>;
    /// Moves a claimed job to `status` (`validating` or `processing`) with a stage
    /// text and a renewed lease. `Conflict("job_status")` when it was cancelled or
    /// finished meanwhile, which tells the worker to stop.
    async fn advance_job(
        &self,
        id: JobId,
        status: JobStatus,
        stage: &str,
        lease_until: Timestamp,
        at: Timestamp,
    ) -> StoreResult<UploadJob>;
    /// Records the id an external processor gave the job's file, with a lease that
    /// covers the external processing. `Conflict("job_status")` as for `advance_job`.
    async fn set_job_external_id(
        &self,
        id: JobId,
        external_id: &str,
        lease_until: Timestamp,
        at: Timestamp,
    ) -> StoreResult<UploadJob>;
    /// Ends a job by storing its document: a new `Document` in the notebook (with
    /// `CONTAINS`) or a new current version of the existing one, its
    /// `DocumentVersion` (with `VERSION_OF`), the notebook's counters, and the
    /// `aether.documents.processed` and `aether.compliance.scanned` events, together.
    /// The job becomes `completed`, or `failed` with the result's error (the document
    /// is stored either way). `Conflict("job_status")` when the job was cancelled.
    async fn finish_job(
        &self,
        id: JobId,
        result: ProcessingResult,
        at: Timestamp,
    ) -> StoreResult<(UploadJob, Document)>;
    /// Fails an unfinished job without a document and queues every blob it may have
    /// written for deletion. `Conflict("job_status")` when it already finished.
    async fn fail_job(&self, id: JobId, failure: JobFailure, at: Timestamp) -> StoreResult<UploadJob>;
    /// Cancels an unfinished job and queues its blobs for deletion.
    /// `Conflict("job_status")` when it already finished.
    async fn cancel_job(&self, id: JobId, at: Timestamp) -> StoreResult<UploadJob>;
    /// How many unfinished jobs are in each status (the queue's depth).
    async fn count_active_jobs(&self) -> StoreResult<Vec<(JobStatus, u64)>>;
    /// Jobs still `uploading` whose last progress is older than `stale_before`: their
    /// upload request died with its process.
    async fn stale_uploads(&self, stale_before: Timestamp, limit: u32) -> StoreResult<Vec<UploadJob>>;
}

/// Documents and their versions.
#[async_trait]
pub trait DocumentStore: Send + Sync + std::fmt::Debug {
    /// A live document.
    async fn get_document(&self, id: DocumentId) -> StoreResult<Document>;
    /// The notebook's live documents, newest first.
    async fn list_documents(&self, notebook: NotebookId, page: PageRequest) -> StoreResult<Page<Document>>;
    async fn update_document(&self, id: DocumentId, patch: DocumentPatch, change: &Change) -> StoreResult<Document>;
    /// Deletes the document and its versions, updates the notebook's counters, and
    /// queues every blob they reference for deletion, together.
    async fn delete_document(&self, id: DocumentId, change: &Change) -> StoreResult<()>;
    /// The document's versions, newest (highest number) first; `page.after` is a
    /// version id. `NotFound` on the first page of a document without versions
    /// (every stored document has one).
    async fn list_versions(&self, id: DocumentId, page: PageRequest) -> StoreResult<Page<DocumentVersion>>;
    /// The document's version `number`; `NotFound` when there is none.
    async fn get_version(&self, id: DocumentId, number: u32) -> StoreResult<DocumentVersion>;
}

/// Blobs queued for deletion: what failing, cancelling and deleting leave behind,
/// carried out by the maintenance loop.
#[async_trait]
pub trait BlobDeletionStore: Send + Sync + std::fmt::Debug {
    /// Queues blobs for deletion, for a worker that wrote blobs for a job that was
    /// cancelled meanwhile.
    async fn queue_blob_deletions(&self, keys: &[BlobKey], at: Timestamp) -> StoreResult<()>;
    /// Blobs waiting for deletion, oldest first.
    async fn pending_blob_deletions(&self, limit: u32) -> StoreResult<Vec<BlobDeletion>>;
    /// Forgets deletions that were carried out.
    async fn complete_blob_deletions(&self, ids: &[uuid::Uuid]) -> StoreResult<()>;
    /// Whether any job, document or version references `key` (orphan checks).
    async fn blob_is_referenced(&self, key: &BlobKey) -> StoreResult<bool>;
}

/// Search over what a caller may read (see [`crate::search`]). The read scope is part
/// of each store's query, never a filter over its results, so nothing unreadable is
/// ranked, counted or returned. The index is written by the changes themselves, in
/// their transactions: `finish_job` writes a document's chunks
/// ([`crate::chunk::document_chunks`] of its readers' text), `update_document` its
/// heading, `delete_document` removes them; notebooks are indexed as they are
/// written. Permissions are not indexed: they are read at query time, so a revoked
/// grant hides its results at once.
#[async_trait]
pub trait SearchStore: Send + Sync + std::fmt::Debug {
    /// Live documents of notebooks in `scope` with a chunk matching the query, each
    /// with its best chunk, best first (see [`crate::search::RankCursor`]).
    async fn search_documents(&self, scope: ReadScope, query: &DocumentSearch) -> StoreResult<Ranked<DocumentHit>>;
    /// How the documents [`Self::search_documents`] would find (every page of them)
    /// spread over content types, statuses and notebooks.
    async fn document_facets(&self, scope: ReadScope, query: &DocumentSearch) -> StoreResult<DocumentFacets>;
    /// Live notebooks in `scope` whose name, description or tags match, best first.
    async fn search_notebooks(&self, scope: ReadScope, query: &NotebookSearch) -> StoreResult<Ranked<Notebook>>;
    /// Active users matching the query, those who share a notebook with `caller`
    /// first, then by relevance; at most `query.limit`.
    async fn find_people(&self, caller: UserId, query: &PeopleSearch) -> StoreResult<Vec<PersonHit>>;
    /// Rewrites the chunks of up to `limit` documents following `after` in id order,
    /// from what the store holds: for documents stored before chunks existed, or
    /// after the chunking changed. Each document is rewritten atomically.
    async fn reindex_documents(&self, after: Option<DocumentId>, limit: u32) -> StoreResult<ReindexStep>;
    /// How many documents a reindex walks (for its progress).
    async fn count_documents(&self) -> StoreResult<u64>;
    /// Live documents of notebooks in `scope` passing the query's filters (its text
    /// and cursor are not used), each with its chunk most similar to `vector` among
    /// those embedded by `model`: the `k` most similar documents, best first, scored
    /// by cosine similarity.
    async fn similar_documents(
        &self,
        scope: ReadScope,
        model: &str,
        vector: &Embedding,
        query: &DocumentSearch,
        k: usize,
    ) -> StoreResult<Vec<Scored<DocumentHit>>>;
    /// Up to `limit` chunks waiting for a vector (new or changed since their last
    /// one), newest first: a fresh upload becomes searchable by meaning before a
    /// backlog (a model change, a reindex) is worked off.
    async fn chunks_to_embed(&self, limit: u32) -> StoreResult<Vec<PendingChunk>>;
    /// Stores the vectors `model` made for chunks, which stop waiting. A chunk that
    /// changed or went meanwhile is left alone (its new text waits for its own).
    async fn store_chunk_embeddings(&self, model: &str, embeddings: &[ChunkEmbedding]) -> StoreResult<()>;
    /// Makes every chunk without a vector of `model` wait for one (at start-up: a
    /// new model re-embeds everything in the background); returns how many.
    async fn queue_embeddings_for(&self, model: &str) -> StoreResult<u64>;
    /// Items in `scope` related to `subject` through the graph (see
    /// [`crate::related`]): for a document, other documents in its notebook, with a
    /// tag of its own, or in a notebook sharing people with its notebook; for a
    /// notebook, its parent, children and siblings, notebooks with a tag of its own
    /// or sharing people with it. At most `per_signal` of each (the most recently
    /// updated, the most tags or people shared first), each with every fact that
    /// relates it; `caller` is not counted among shared people. Empty when the
    /// subject does not exist.
    async fn related_candidates(
        &self,
        scope: ReadScope,
        subject: RelatedSubject,
        caller: UserId,
        per_signal: u32,
    ) -> StoreResult<Vec<RelatedCandidate>>;
    /// Up to `limit` vectors `model` made for a document's chunks, with each chunk's
    /// ordinal, the first chunks first: what the document is about, for similarity.
    async fn document_vectors(
        &self,
        document: DocumentId,
        model: &str,
        limit: u32,
    ) -> StoreResult<Vec<(u32, Embedding)>>;
}

/// The record of searches (see [`crate::search_log`]).
#[async_trait]
pub trait SearchLogStore: Send + Sync + std::fmt::Debug {
    /// Records a search with its `SEARCHED` relationship from its user and
    /// `RETURNED` ones to the results that still exist.
    async fn record_search(&self, record: NewSearchRecord) -> StoreResult<()>;
    /// The user's searches, newest first; `page.after` is a search's id.
    async fn search_history(&self, user: UserId, page: PageRequest) -> StoreResult<Page<SearchRecord>>;
    /// Forgets one of the user's searches (`NotFound` when the user has no such
    /// search), or all of them; how many.
    async fn delete_search_history(&self, user: UserId, id: Option<uuid::Uuid>) -> StoreResult<u64>;
    /// The user's own queries (normalized) that begin with `prefix`, most searched first.
    async fn frequent_searches(&self, user: UserId, prefix: &str, limit: u32) -> StoreResult<Vec<QueryCount>>;
    /// Searches made since `since` by everyone: counts, the `limit` most searched
    /// queries and zero-result queries, and response time percentiles.
    async fn search_analytics(&self, since: Timestamp, limit: u32) -> StoreResult<SearchAnalytics>;
    /// Forgets up to `limit` searches made before `before` (oldest first), with
    /// what they returned; how many.
    async fn forget_searches_before(&self, before: Timestamp, limit: u32) -> StoreResult<u64>;
}

/// The system of record: every port, plus what operations need.
#[async_trait]
pub trait Store:
    UserStore
    + NotebookStore
    + CollaborationStore
    + ActivityStore
    + OutboxStore
    + SessionStore
    + ApiKeyStore
    + JobStore
    + DocumentStore
    + BlobDeletionStore
    + SearchStore
    + SearchLogStore
    + EphemeralStore
    + Send
    + Sync
    + std::fmt::Debug
{
    /// A short name for logs and `/ready` (`sqlite`, `neo4j`).
    fn backend_name(&self) -> &'static str;
    /// Applies pending schema migrations; idempotent and safe to run concurrently.
    async fn migrate(&self) -> StoreResult<Vec<String>>;
    /// Answers when the backend can serve queries.
    async fn ping(&self) -> StoreResult<()>;
}
