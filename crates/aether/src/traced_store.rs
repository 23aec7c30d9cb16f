//! A span for every store call. `TracedStore` wraps the configured backend and
//! forwards each method inside a `store` span carrying `db.system` (the backend)
//! and `db.operation.name` (the method, which is one use case). One decorator
//! covers both backends and every method: a method added to a store trait does not
//! compile here until it is forwarded, so none goes untraced.
//!
//! Calls made outside any span (the polling loops of the outbox relay, the job
//! claim, maintenance and purges) get no span of their own: they would send the
//! collector a one-span trace several times a second and say nothing. Arguments
//! are never recorded, so no password hash, token digest or document text can
//! reach a span.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aether_domain::StoreError;
use aether_domain::access::Collaboration;
use aether_domain::access::{ChainLink, CollaborationStatus};
use aether_domain::activity::NewAuditRecord;
use aether_domain::activity::{ActivityEvent, AuditEntry, Change};
use aether_domain::api_key::{ApiKey, NewApiKey};
use aether_domain::blob::BlobKey;
use aether_domain::document::{
    BlobDeletion, Document, DocumentPatch, DocumentVersion, JobFailure, JobStatus, NewUploadJob, ProcessingResult,
    ReceivedFile, UploadJob,
};
use aether_domain::ephemeral::EphemeralStore;
use aether_domain::events::OutboxEvent;
use aether_domain::id::{ApiKeyId, DocumentId, JobId, NotebookId, TokenFamilyId, UserId};
use aether_domain::identity::ExternalUser;
use aether_domain::notebook::{BulkAction, NewNotebook, Notebook, NotebookName, NotebookPatch, NotebookQuery, Tag};
use aether_domain::page::{Page, PageRequest};
use aether_domain::store::{
    ActivityStore, ApiKeyStore, CollaborationStore, DocumentStore, NewRefreshToken, NotebookStore, OutboxStore,
    RefreshOutcome, SessionStore, Store, StoreResult, UserStore,
};
use aether_domain::time::Timestamp;
use aether_domain::user::{LocalCredentials, NewUser, Role, User, UserPatch, Username};
use async_trait::async_trait;
use tracing::Instrument as _;

/// The configured store, each call in a span.
#[derive(Debug)]
pub(crate) struct TracedStore {
    inner: Arc<dyn Store>,
}

impl TracedStore {
    pub(crate) fn new(inner: Arc<dyn Store>) -> Self {
        Self { inner }
    }

    /// Runs one store call in a `store` span, when there is a request or job span
    /// for it to belong to. Expected outcomes (not found, conflict) are noted as
    /// `error.type`; only a failing backend marks the span as an error, and is
    /// counted whether or not there is a span.
    async fn traced<T>(&self, operation: &'static str, call: impl Future<Output = StoreResult<T>>) -> StoreResult<T> {
        if tracing::Span::current().is_none() {
            let result = call.await;
            if let Err(error) = &result {
                count_failure(error);
            }
            return result;
        }
        let span = tracing::info_span!(
            "store",
            otel.name = operation,
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            db.system = self.inner.backend_name(),
            db.operation.name = operation,
            "error.type" = tracing::field::Empty,
        );
        let result = call.instrument(span.clone()).await;
        if let Err(error) = &result {
            let (kind, failed) = count_failure(error);
            span.record("error.type", kind);
            if failed {
                span.record("otel.status_code", "error");
            }
        }
        result
    }
}

/// Names a store error for `error.type`, and says whether the backend failed (as
/// opposed to answering "not found" or "conflict"). A failure is counted in
/// `aether_dependency_errors_total{dependency="store"}`.
fn count_failure(error: &StoreError) -> (&'static str, bool) {
    let (kind, failed) = match error {
        StoreError::NotFound => ("not_found", false),
        StoreError::Conflict(_) => ("conflict", false),
        StoreError::Unavailable(_) => ("unavailable", true),
        StoreError::Corrupt(_) => ("corrupt", true),
        StoreError::Internal(_) => ("internal", true),
    };
    if failed {
        metrics::counter!("aether_dependency_errors_total", "dependency" => "store").increment(1);
    }
    (kind, failed)
}

#[async_trait]
impl UserStore for TracedStore {
    async fn create_user(&self, user: NewUser) -> StoreResult<User> {
        self.traced("create_user", self.inner.create_user(user)).await
    }

    async fn get_user(&self, id: UserId) -> StoreResult<User> {
        self.traced("get_user", self.inner.get_user(id)).await
    }

    async fn find_user_by_username(&self, username: &Username) -> StoreResult<Option<User>> {
        self.traced("find_user_by_username", self.inner.find_user_by_username(username)).await
    }

    async fn find_local_credentials(&self, username: &Username) -> StoreResult<Option<LocalCredentials>> {
        self.traced("find_local_credentials", self.inner.find_local_credentials(username)).await
    }

    async fn update_user(&self, id: UserId, patch: UserPatch, at: Timestamp) -> StoreResult<User> {
        self.traced("update_user", self.inner.update_user(id, patch, at)).await
    }

    async fn set_password_hash(&self, id: UserId, password_hash: String, at: Timestamp) -> StoreResult<()> {
        self.traced("set_password_hash", self.inner.set_password_hash(id, password_hash, at)).await
    }

    async fn record_login(&self, id: UserId, at: Timestamp) -> StoreResult<()> {
        self.traced("record_login", self.inner.record_login(id, at)).await
    }

    async fn soft_delete_user(&self, id: UserId, at: Timestamp) -> StoreResult<()> {
        self.traced("soft_delete_user", self.inner.soft_delete_user(id, at)).await
    }

    async fn list_users(&self, page: PageRequest) -> StoreResult<Page<User>> {
        self.traced("list_users", self.inner.list_users(page)).await
    }

    async fn count_users(&self) -> StoreResult<u64> {
        self.traced("count_users", self.inner.count_users()).await
    }

    async fn sync_external_user(&self, user: ExternalUser, at: Timestamp) -> StoreResult<User> {
        self.traced("sync_external_user", self.inner.sync_external_user(user, at)).await
    }

    async fn find_user_by_keycloak_id(&self, keycloak_id: &str) -> StoreResult<Option<User>> {
        self.traced("find_user_by_keycloak_id", self.inner.find_user_by_keycloak_id(keycloak_id)).await
    }

    async fn search_users(&self, text: &str, limit: u32) -> StoreResult<Vec<User>> {
        self.traced("search_users", self.inner.search_users(text, limit)).await
    }

    async fn change_user_roles(&self, id: UserId, roles: Vec<Role>, audit: NewAuditRecord) -> StoreResult<User> {
        self.traced("change_user_roles", self.inner.change_user_roles(id, roles, audit)).await
    }
}

#[async_trait]
impl ApiKeyStore for TracedStore {
    async fn create_api_key(&self, key: NewApiKey, audit: NewAuditRecord) -> StoreResult<ApiKey> {
        self.traced("create_api_key", self.inner.create_api_key(key, audit)).await
    }

    async fn list_api_keys(&self, user: UserId) -> StoreResult<Vec<ApiKey>> {
        self.traced("list_api_keys", self.inner.list_api_keys(user)).await
    }

    async fn revoke_api_key(&self, user: UserId, id: ApiKeyId, audit: NewAuditRecord) -> StoreResult<ApiKey> {
        self.traced("revoke_api_key", self.inner.revoke_api_key(user, id, audit)).await
    }

    async fn find_api_key(&self, secret_hash: &str) -> StoreResult<Option<ApiKey>> {
        self.traced("find_api_key", self.inner.find_api_key(secret_hash)).await
    }

    async fn touch_api_key(&self, id: ApiKeyId, at: Timestamp) -> StoreResult<()> {
        self.traced("touch_api_key", self.inner.touch_api_key(id, at)).await
    }
}

#[async_trait]
impl NotebookStore for TracedStore {
    async fn create_notebook(&self, notebook: NewNotebook, max_depth: u32, change: &Change) -> StoreResult<Notebook> {
        self.traced("create_notebook", self.inner.create_notebook(notebook, max_depth, change)).await
    }

    async fn get_notebook(&self, id: NotebookId) -> StoreResult<Notebook> {
        self.traced("get_notebook", self.inner.get_notebook(id)).await
    }

    async fn list_notebooks(&self, query: NotebookQuery) -> StoreResult<Page<Notebook>> {
        self.traced("list_notebooks", self.inner.list_notebooks(query)).await
    }

    async fn list_owned_notebooks(&self, owner: UserId, page: PageRequest) -> StoreResult<Page<Notebook>> {
        self.traced("list_owned_notebooks", self.inner.list_owned_notebooks(owner, page)).await
    }

    async fn update_notebook(
        &self,
        id: NotebookId,
        patch: NotebookPatch,
        expected_version: Option<u64>,
        change: &Change,
    ) -> StoreResult<Notebook> {
        self.traced("update_notebook", self.inner.update_notebook(id, patch, expected_version, change)).await
    }

    async fn soft_delete_notebook(&self, id: NotebookId, cascade: bool, change: &Change) -> StoreResult<()> {
        self.traced("soft_delete_notebook", self.inner.soft_delete_notebook(id, cascade, change)).await
    }

    async fn duplicate_notebook(
        &self,
        source: NotebookId,
        owner: UserId,
        new_parent: Option<NotebookId>,
        name: NotebookName,
        max_depth: u32,
        change: &Change,
    ) -> StoreResult<Notebook> {
        let call = self.inner.duplicate_notebook(source, owner, new_parent, name, max_depth, change);
        self.traced("duplicate_notebook", call).await
    }

    async fn bulk_update(
        &self,
        ids: &[NotebookId],
        action: &BulkAction,
        max_depth: u32,
        change: &Change,
    ) -> StoreResult<Vec<Notebook>> {
        self.traced("bulk_update", self.inner.bulk_update(ids, action, max_depth, change)).await
    }

    async fn tag_usage(&self, owner: Option<UserId>, limit: u32) -> StoreResult<Vec<(Tag, u64)>> {
        self.traced("tag_usage", self.inner.tag_usage(owner, limit)).await
    }

    async fn get_deleted_notebook(&self, id: NotebookId) -> StoreResult<Notebook> {
        self.traced("get_deleted_notebook", self.inner.get_deleted_notebook(id)).await
    }

    async fn restore_notebook(&self, id: NotebookId, change: &Change) -> StoreResult<Notebook> {
        self.traced("restore_notebook", self.inner.restore_notebook(id, change)).await
    }

    async fn access_chain(&self, user: UserId, id: NotebookId) -> StoreResult<Vec<ChainLink>> {
        self.traced("access_chain", self.inner.access_chain(user, id)).await
    }

    async fn list_children(
        &self,
        parent: NotebookId,
        only_public: bool,
        page: PageRequest,
    ) -> StoreResult<Page<Notebook>> {
        self.traced("list_children", self.inner.list_children(parent, only_public, page)).await
    }

    async fn move_notebook(
        &self,
        id: NotebookId,
        new_parent: Option<NotebookId>,
        expected_version: Option<u64>,
        max_depth: u32,
        change: &Change,
    ) -> StoreResult<Notebook> {
        let call = self.inner.move_notebook(id, new_parent, expected_version, max_depth, change);
        self.traced("move_notebook", call).await
    }

    async fn list_shared_with(&self, user: UserId, page: PageRequest) -> StoreResult<Page<Notebook>> {
        self.traced("list_shared_with", self.inner.list_shared_with(user, page)).await
    }
}

#[async_trait]
impl ActivityStore for TracedStore {
    async fn list_activity(&self, notebook: NotebookId, page: PageRequest) -> StoreResult<Page<ActivityEvent>> {
        self.traced("list_activity", self.inner.list_activity(notebook, page)).await
    }

    async fn list_audit(&self, resource_id: Option<String>, page: PageRequest) -> StoreResult<Page<AuditEntry>> {
        self.traced("list_audit", self.inner.list_audit(resource_id, page)).await
    }

    async fn record_audit(&self, record: NewAuditRecord) -> StoreResult<()> {
        self.traced("record_audit", self.inner.record_audit(record)).await
    }
}

#[async_trait]
impl OutboxStore for TracedStore {
    async fn pending_events(&self, limit: u32) -> StoreResult<Vec<OutboxEvent>> {
        self.traced("pending_events", self.inner.pending_events(limit)).await
    }

    async fn mark_published(&self, ids: &[uuid::Uuid], at: Timestamp) -> StoreResult<()> {
        self.traced("mark_published", self.inner.mark_published(ids, at)).await
    }
}

#[async_trait]
impl CollaborationStore for TracedStore {
    async fn put_collaboration(&self, collaboration: Collaboration, change: &Change) -> StoreResult<Collaboration> {
        self.traced("put_collaboration", self.inner.put_collaboration(collaboration, change)).await
    }

    async fn set_collaboration_status(
        &self,
        notebook: NotebookId,
        user: UserId,
        status: CollaborationStatus,
        change: &Change,
    ) -> StoreResult<Collaboration> {
        self.traced("set_collaboration_status", self.inner.set_collaboration_status(notebook, user, status, change))
            .await
    }

    async fn revoke_collaboration(&self, notebook: NotebookId, user: UserId, change: &Change) -> StoreResult<()> {
        self.traced("revoke_collaboration", self.inner.revoke_collaboration(notebook, user, change)).await
    }

    async fn list_collaborations(&self, notebook: NotebookId) -> StoreResult<Vec<Collaboration>> {
        self.traced("list_collaborations", self.inner.list_collaborations(notebook)).await
    }

    async fn list_user_collaborations(
        &self,
        user: UserId,
        status: CollaborationStatus,
    ) -> StoreResult<Vec<Collaboration>> {
        self.traced("list_user_collaborations", self.inner.list_user_collaborations(user, status)).await
    }
}

#[async_trait]
impl SessionStore for TracedStore {
    async fn insert_refresh_token(&self, token: NewRefreshToken) -> StoreResult<()> {
        self.traced("insert_refresh_token", self.inner.insert_refresh_token(token)).await
    }

    async fn rotate_refresh_token(
        &self,
        presented_hash: &str,
        replacement_hash: &str,
        replacement_expires_at: Timestamp,
        now: Timestamp,
    ) -> StoreResult<RefreshOutcome> {
        let call = self.inner.rotate_refresh_token(presented_hash, replacement_hash, replacement_expires_at, now);
        self.traced("rotate_refresh_token", call).await
    }

    async fn revoke_token_family(&self, family_id: TokenFamilyId, at: Timestamp) -> StoreResult<()> {
        self.traced("revoke_token_family", self.inner.revoke_token_family(family_id, at)).await
    }

    async fn purge_expired_refresh_tokens(&self, now: Timestamp) -> StoreResult<u64> {
        self.traced("purge_expired_refresh_tokens", self.inner.purge_expired_refresh_tokens(now)).await
    }
}

#[async_trait]
impl DocumentStore for TracedStore {
    async fn create_upload_job(&self, job: NewUploadJob) -> StoreResult<UploadJob> {
        self.traced("create_upload_job", self.inner.create_upload_job(job)).await
    }

    async fn get_job(&self, id: JobId) -> StoreResult<UploadJob> {
        self.traced("get_job", self.inner.get_job(id)).await
    }

    async fn list_notebook_jobs(
        &self,
        notebook: NotebookId,
        active_only: bool,
        page: PageRequest,
    ) -> StoreResult<Page<UploadJob>> {
        self.traced("list_notebook_jobs", self.inner.list_notebook_jobs(notebook, active_only, page)).await
    }

    async fn record_upload_progress(&self, id: JobId, bytes_received: u64, at: Timestamp) -> StoreResult<UploadJob> {
        self.traced("record_upload_progress", self.inner.record_upload_progress(id, bytes_received, at)).await
    }

    async fn accept_upload(&self, id: JobId, file: ReceivedFile, at: Timestamp) -> StoreResult<UploadJob> {
        self.traced("accept_upload", self.inner.accept_upload(id, file, at)).await
    }

    async fn claim_job(&self, now: Timestamp, lease_until: Timestamp) -> StoreResult<Option<UploadJob>> {
        self.traced("claim_job", self.inner.claim_job(now, lease_until)).await
    }

    async fn claim_job_by_id(
        &self,
        id: JobId,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> StoreResult<Option<UploadJob>> {
        self.traced("claim_job_by_id", self.inner.claim_job_by_id(id, now, lease_until)).await
    }

    async fn renew_job_lease(&self, id: JobId, lease_until: Timestamp) -> StoreResult<()> {
        self.traced("renew_job_lease", self.inner.renew_job_lease(id, lease_until)).await
    }

    async fn advance_job(
        &self,
        id: JobId,
        status: JobStatus,
        stage: &str,
        lease_until: Timestamp,
        at: Timestamp,
    ) -> StoreResult<UploadJob> {
        self.traced("advance_job", self.inner.advance_job(id, status, stage, lease_until, at)).await
    }

    async fn set_job_external_id(
        &self,
        id: JobId,
        external_id: &str,
        lease_until: Timestamp,
        at: Timestamp,
    ) -> StoreResult<UploadJob> {
        self.traced("set_job_external_id", self.inner.set_job_external_id(id, external_id, lease_until, at)).await
    }

    async fn finish_job(
        &self,
        id: JobId,
        result: ProcessingResult,
        at: Timestamp,
    ) -> StoreResult<(UploadJob, Document)> {
        self.traced("finish_job", self.inner.finish_job(id, result, at)).await
    }

    async fn fail_job(&self, id: JobId, failure: JobFailure, at: Timestamp) -> StoreResult<UploadJob> {
        self.traced("fail_job", self.inner.fail_job(id, failure, at)).await
    }

    async fn cancel_job(&self, id: JobId, at: Timestamp) -> StoreResult<UploadJob> {
        self.traced("cancel_job", self.inner.cancel_job(id, at)).await
    }

    async fn count_active_jobs(&self) -> StoreResult<Vec<(JobStatus, u64)>> {
        self.traced("count_active_jobs", self.inner.count_active_jobs()).await
    }

    async fn stale_uploads(&self, stale_before: Timestamp, limit: u32) -> StoreResult<Vec<UploadJob>> {
        self.traced("stale_uploads", self.inner.stale_uploads(stale_before, limit)).await
    }

    async fn get_document(&self, id: DocumentId) -> StoreResult<Document> {
        self.traced("get_document", self.inner.get_document(id)).await
    }

    async fn list_documents(&self, notebook: NotebookId, page: PageRequest) -> StoreResult<Page<Document>> {
        self.traced("list_documents", self.inner.list_documents(notebook, page)).await
    }

    async fn update_document(&self, id: DocumentId, patch: DocumentPatch, change: &Change) -> StoreResult<Document> {
        self.traced("update_document", self.inner.update_document(id, patch, change)).await
    }

    async fn delete_document(&self, id: DocumentId, change: &Change) -> StoreResult<()> {
        self.traced("delete_document", self.inner.delete_document(id, change)).await
    }

    async fn list_versions(&self, id: DocumentId) -> StoreResult<Vec<DocumentVersion>> {
        self.traced("list_versions", self.inner.list_versions(id)).await
    }

    async fn queue_blob_deletions(&self, keys: &[BlobKey], at: Timestamp) -> StoreResult<()> {
        self.traced("queue_blob_deletions", self.inner.queue_blob_deletions(keys, at)).await
    }

    async fn pending_blob_deletions(&self, limit: u32) -> StoreResult<Vec<BlobDeletion>> {
        self.traced("pending_blob_deletions", self.inner.pending_blob_deletions(limit)).await
    }

    async fn complete_blob_deletions(&self, ids: &[uuid::Uuid]) -> StoreResult<()> {
        self.traced("complete_blob_deletions", self.inner.complete_blob_deletions(ids)).await
    }

    async fn blob_is_referenced(&self, key: &BlobKey) -> StoreResult<bool> {
        self.traced("blob_is_referenced", self.inner.blob_is_referenced(key)).await
    }
}

#[async_trait]
impl EphemeralStore for TracedStore {
    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
        self.traced("ephemeral_put", self.inner.put(key, value, ttl)).await
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.traced("ephemeral_get", self.inner.get(key)).await
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.traced("ephemeral_take", self.inner.take(key)).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.traced("ephemeral_delete", self.inner.delete(key)).await
    }

    async fn purge_expired(&self, now: Timestamp) -> Result<u64, StoreError> {
        self.traced("ephemeral_purge_expired", self.inner.purge_expired(now)).await
    }
}

#[async_trait]
impl Store for TracedStore {
    fn backend_name(&self) -> &'static str {
        self.inner.backend_name()
    }

    async fn migrate(&self) -> StoreResult<Vec<String>> {
        self.traced("migrate", self.inner.migrate()).await
    }

    async fn ping(&self) -> StoreResult<()> {
        self.traced("ping", self.inner.ping()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_failures_are_counted_and_expected_answers_are_not() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            assert_eq!(count_failure(&StoreError::NotFound), ("not_found", false));
            assert_eq!(count_failure(&StoreError::Conflict("taken".into())), ("conflict", false));
            assert_eq!(
                count_failure(&StoreError::Unavailable("neo4j: connection refused".into())),
                ("unavailable", true)
            );
            assert_eq!(count_failure(&StoreError::Internal("bug".into())), ("internal", true));
        });
        let rendered = handle.render();
        assert!(rendered.contains("aether_dependency_errors_total{dependency=\"store\"} 2"), "{rendered}");
    }
}
