//! Upload jobs, documents and versions on SQLite (see `aether_domain::document`):
//! each use case reads what it needs, asks the domain what the change is (job
//! transitions, what finishing stores, where an upload goes) and writes it.

use aether_domain::StoreError;
use aether_domain::activity::{Change, ChangeRecord};
use aether_domain::blob::BlobKey;
use aether_domain::chunk;
use aether_domain::document::JobFailure;
use aether_domain::document::{self, BlobDeletion, Document, DocumentPatch, DocumentVersion, ProcessingResult};
use aether_domain::id::{DocumentId, JobId, NotebookId};
use aether_domain::job;
use aether_domain::job::{CallbackUrl, JobEnd, JobStatus, NewUploadJob, ReceivedFile, UploadJob, job_status_conflict};
use aether_domain::notebook::Description;
use aether_domain::page::{Page, PageRequest, SortOrder};
use aether_domain::store::{BlobDeletionStore, DocumentStore, JobStore, StoreResult};
use aether_domain::time::{self, Timestamp};
use async_trait::async_trait;
use sqlx::SqliteConnection;

use crate::activity::record_change;
use crate::outbox::insert_event;
use crate::rows::{
    BlobDeletionRow, DocumentRow, JobRow, StatusCountRow, VersionRow, convert, corrupt, map_json, size, tags_json,
};
use crate::search::{write_chunks, write_heading};
use crate::{SqliteStore, map_err};

async fn queue_deletions(tx: &mut SqliteConnection, keys: &[BlobKey], at: &Timestamp) -> StoreResult<()> {
    for key in keys {
        sqlx::query("INSERT INTO blob_deletions (id, blob_key, queued_at) VALUES (?, ?, ?)")
            .bind(uuid::Uuid::now_v7().to_string())
            .bind(key.as_str())
            .bind(time::to_storage(at))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
    }
    Ok(())
}

async fn job_in(tx: impl sqlx::SqliteExecutor<'_>, id: JobId) -> StoreResult<UploadJob> {
    let row: JobRow = sqlx::query_as("SELECT * FROM upload_jobs WHERE id = ?")
        .bind(id.to_string())
        .fetch_one(tx)
        .await
        .map_err(map_err)?;
    row.try_into()
}

pub(crate) async fn document_in(tx: impl sqlx::SqliteExecutor<'_>, id: DocumentId) -> StoreResult<Document> {
    let row: DocumentRow = sqlx::query_as("SELECT * FROM documents WHERE id = ?")
        .bind(id.to_string())
        .fetch_one(tx)
        .await
        .map_err(map_err)?;
    row.try_into()
}

/// Writes how a job ended: its status, stage and failure, no lease, finished at `at`.
async fn end_job(tx: &mut SqliteConnection, id: JobId, end: &JobEnd, at: &Timestamp) -> StoreResult<()> {
    let at = time::to_storage(at);
    sqlx::query(
        "UPDATE upload_jobs SET status = ?, stage = ?, failure_code = ?, failure_message = ?, lease_until = NULL, \
         updated_at = ?, finished_at = ? WHERE id = ?",
    )
    .bind(end.status.as_str())
    .bind(end.stage)
    .bind(end.failure.as_ref().map(|f| f.code.clone()))
    .bind(end.failure.as_ref().map(|f| f.message.clone()))
    .bind(&at)
    .bind(&at)
    .bind(id.to_string())
    .execute(&mut *tx)
    .await
    .map_err(map_err)?;
    Ok(())
}

/// Ends an unfinished job as `status` and queues its blobs for deletion.
async fn abandon_job(
    store: &SqliteStore,
    id: JobId,
    status: JobStatus,
    failure: Option<JobFailure>,
    at: Timestamp,
) -> StoreResult<UploadJob> {
    let (_writer, mut tx) = store.begin_write().await?;
    let job = job_in(&mut *tx, id).await?;
    let end = job.abandon(status, failure)?;
    end_job(&mut tx, id, &end, &at).await?;
    queue_deletions(&mut tx, &job.written_keys(), &at).await?;
    let job = job_in(&mut *tx, id).await?;
    tx.commit().await.map_err(map_err)?;
    Ok(job)
}

/// A notebook's (?1) jobs (only unfinished ones when ?2), newest first from the
/// bound ?3, ?4 rows, along `upload_jobs_notebook` (notebook, id).
pub(crate) const NOTEBOOK_JOBS: &str = "SELECT * FROM upload_jobs WHERE notebook_id = ?1 \
     AND (NOT ?2 OR status NOT IN ('completed', 'failed', 'cancelled')) AND id < ?3 ORDER BY id DESC LIMIT ?4";

/// A notebook's (?1) documents, newest first from the bound ?2, ?3 rows, along
/// `document_notebook` (notebook, id). Listings never load the extracted text (up
/// to 2 M characters a document).
pub(crate) const DOCUMENTS: &str = "SELECT id, notebook_id, added_at, original_filename, description, tags, \
     content_type, file_size, file_hash, storage_provider, storage_path, processing_status, format, supported, \
     NULL AS extracted_text, extracted_metadata, processing_metadata, compliance_scan_results, \
     pii_detected, redaction_applied, redacted_path, thumbnail_path, processing_error_code, \
     processing_error, current_version, uploaded_by, uploaded_at, processed_at, updated_at \
     FROM documents WHERE notebook_id = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3";

/// A document's (?1) versions, highest number first, below the number of the
/// version ?2 (the cursor; none on the first page), ?3 rows, along the unique
/// (document, number) index. A cursor naming no version of the document ends the walk.
pub(crate) const VERSIONS: &str = "SELECT * FROM document_versions WHERE document_id = ?1 \
     AND version_number < CASE WHEN ?2 IS NULL THEN 4294967296 \
     ELSE (SELECT version_number FROM document_versions WHERE id = ?2 AND document_id = ?1) END \
     ORDER BY version_number DESC LIMIT ?3";

impl SqliteStore {
    /// Claims the oldest claimable job, or `only` that one.
    async fn claim(
        &self,
        only: Option<JobId>,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> StoreResult<Option<UploadJob>> {
        let (_writer, mut tx) = self.begin_write().await?;
        let now_text = time::to_storage(&now);
        let id: Option<String> = sqlx::query_scalar(
            "SELECT id FROM upload_jobs WHERE (?1 IS NULL OR id = ?1) AND (status = 'pending' \
             OR (status IN ('validating', 'processing') AND lease_until < ?2)) ORDER BY id LIMIT 1",
        )
        .bind(only.map(|id| id.to_string()))
        .bind(&now_text)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        let Some(id) = id else { return Ok(None) };
        sqlx::query(
            "UPDATE upload_jobs SET status = ?2, stage = ?2, attempts = attempts + 1, \
             lease_until = ?3, updated_at = ?4 WHERE id = ?1",
        )
        .bind(&id)
        .bind(JobStatus::Validating.as_str())
        .bind(time::to_storage(&lease_until))
        .bind(&now_text)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        let job = job_in(&mut *tx, JobId::parse(&id).map_err(|_| corrupt("job id"))?).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(Some(job))
    }
}

#[async_trait]
impl JobStore for SqliteStore {
    async fn create_upload_job(&self, new: NewUploadJob) -> StoreResult<UploadJob> {
        let (_writer, mut tx) = self.begin_write().await?;
        let live: Option<String> = sqlx::query_scalar("SELECT id FROM notebooks WHERE id = ? AND status != 'deleted'")
            .bind(new.notebook_id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
        if live.is_none() {
            return Err(StoreError::NotFound);
        }
        let existing = match new.existing_document {
            Some(existing) => Some(document_in(&mut *tx, existing).await?),
            None => None,
        };
        let target = new.target(existing.as_ref())?;
        let at = time::to_storage(&new.at);
        sqlx::query(
            "INSERT INTO upload_jobs (id, notebook_id, uploaded_by, document_id, version_id, new_version, filename, \
             change_summary, callback_url, status, stage, expected_bytes, blob_key, storage_provider, \
             origin_request_id, origin_traceparent, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(new.id.to_string())
        .bind(new.notebook_id.to_string())
        .bind(new.uploaded_by.to_string())
        .bind(target.document_id.to_string())
        .bind(target.version_id.to_string())
        .bind(target.new_version)
        .bind(new.filename.as_str())
        .bind(&new.change_summary)
        .bind(new.callback_url.as_ref().map(CallbackUrl::as_str))
        .bind(JobStatus::Uploading.as_str())
        .bind(job::STAGE_RECEIVING)
        .bind(new.expected_bytes.map(size))
        .bind(target.blob_key.as_str())
        .bind(&new.storage_provider)
        .bind(&new.origin.request_id)
        .bind(&new.origin.traceparent)
        .bind(&at)
        .bind(&at)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        let job = job_in(&mut *tx, new.id).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(job)
    }

    async fn get_job(&self, id: JobId) -> StoreResult<UploadJob> {
        job_in(&self.pool, id).await
    }

    async fn list_notebook_jobs(
        &self,
        notebook: NotebookId,
        active_only: bool,
        page: PageRequest,
    ) -> StoreResult<Page<UploadJob>> {
        let rows: Vec<JobRow> = sqlx::query_as(NOTEBOOK_JOBS)
            .bind(notebook.to_string())
            .bind(active_only)
            .bind(page.bound(SortOrder::NewestFirst))
            .bind(page.fetch())
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(Page::from_overfetch(convert(rows)?, page.limit, |job: &UploadJob| job.id.as_uuid()))
    }

    async fn record_upload_progress(&self, id: JobId, bytes_received: u64, at: Timestamp) -> StoreResult<UploadJob> {
        let (_writer, mut tx) = self.begin_write().await?;
        sqlx::query("UPDATE upload_jobs SET bytes_received = ?, updated_at = ? WHERE id = ? AND status = 'uploading'")
            .bind(size(bytes_received))
            .bind(time::to_storage(&at))
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        let job = job_in(&mut *tx, id).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(job)
    }

    async fn accept_upload(&self, id: JobId, file: ReceivedFile, at: Timestamp) -> StoreResult<UploadJob> {
        let (_writer, mut tx) = self.begin_write().await?;
        job_in(&mut *tx, id).await?.check_accept()?;
        sqlx::query(
            "UPDATE upload_jobs SET status = ?1, stage = ?2, bytes_received = ?3, file_size = ?3, file_hash = ?4, \
             content_type = ?5, updated_at = ?6 WHERE id = ?7",
        )
        .bind(JobStatus::Pending.as_str())
        .bind(job::STAGE_QUEUED)
        .bind(size(file.size))
        .bind(&file.sha256)
        .bind(&file.content_type)
        .bind(time::to_storage(&at))
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        let job = job_in(&mut *tx, id).await?;
        for event in job::accepted_events(&job) {
            insert_event(&mut tx, &event, &at).await?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(job)
    }

    async fn claim_job(&self, now: Timestamp, lease_until: Timestamp) -> StoreResult<Option<UploadJob>> {
        self.claim(None, now, lease_until).await
    }

    async fn claim_job_by_id(
        &self,
        id: JobId,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> StoreResult<Option<UploadJob>> {
        self.claim(Some(id), now, lease_until).await
    }

    async fn renew_job_lease(&self, id: JobId, lease_until: Timestamp) -> StoreResult<()> {
        let (_writer, mut tx) = self.begin_write().await?;
        // One statement: the lease is never shortened, and only a job a worker holds
        // (validating or processing) has one. Timestamps are stored as fixed-width
        // RFC 3339 UTC text, so they compare as text.
        let updated = sqlx::query(
            "UPDATE upload_jobs SET lease_until = CASE WHEN lease_until IS NULL OR lease_until < ?1 THEN ?1 \
             ELSE lease_until END WHERE id = ?2 AND status IN ('validating', 'processing')",
        )
        .bind(time::to_storage(&lease_until))
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        if updated.rows_affected() == 0 {
            return Err(job_status_conflict());
        }
        tx.commit().await.map_err(map_err)
    }

    async fn advance_job(
        &self,
        id: JobId,
        status: JobStatus,
        stage: &str,
        lease_until: Timestamp,
        at: Timestamp,
    ) -> StoreResult<UploadJob> {
        let (_writer, mut tx) = self.begin_write().await?;
        job_in(&mut *tx, id).await?.check_worked_on()?;
        sqlx::query("UPDATE upload_jobs SET status = ?, stage = ?, lease_until = ?, updated_at = ? WHERE id = ?")
            .bind(status.as_str())
            .bind(stage)
            .bind(time::to_storage(&lease_until))
            .bind(time::to_storage(&at))
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        let job = job_in(&mut *tx, id).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(job)
    }

    async fn set_job_external_id(
        &self,
        id: JobId,
        external_id: &str,
        lease_until: Timestamp,
        at: Timestamp,
    ) -> StoreResult<UploadJob> {
        let (_writer, mut tx) = self.begin_write().await?;
        job_in(&mut *tx, id).await?.check_worked_on()?;
        sqlx::query("UPDATE upload_jobs SET external_id = ?, lease_until = ?, updated_at = ? WHERE id = ?")
            .bind(external_id)
            .bind(time::to_storage(&lease_until))
            .bind(time::to_storage(&at))
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        let job = job_in(&mut *tx, id).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(job)
    }

    async fn finish_job(
        &self,
        id: JobId,
        result: ProcessingResult,
        at: Timestamp,
    ) -> StoreResult<(UploadJob, Document)> {
        let (_writer, mut tx) = self.begin_write().await?;
        let job = job_in(&mut *tx, id).await?;
        let finished = job.finish(&result)?;
        let at_text = time::to_storage(&at);
        let current_version = if job.new_version {
            Some(document_in(&mut *tx, job.document_id).await?.current_version)
        } else {
            sqlx::query(
                "INSERT INTO documents (id, notebook_id, added_at, original_filename, content_type, file_size, \
                 file_hash, storage_provider, storage_path, processing_status, format, supported, current_version, \
                 uploaded_by, uploaded_at, updated_at) VALUES (?, ?, ?, ?, '', 0, '', ?, ?, 'pending', '', 0, 0, ?, ?, ?)",
            )
            .bind(job.document_id.to_string())
            .bind(job.notebook_id.to_string())
            .bind(&at_text)
            .bind(job.filename.as_str())
            .bind(&job.storage_provider)
            .bind(job.blob_key.as_str())
            .bind(job.uploaded_by.to_string())
            .bind(time::to_storage(&job.created_at))
            .bind(&at_text)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
            None
        };
        let version_number = job.version_number(current_version);
        let file = &finished.file;
        sqlx::query(
            "UPDATE documents SET original_filename = ?, content_type = ?, file_size = ?, file_hash = ?, \
             storage_provider = ?, storage_path = ?, processing_status = ?, format = ?, supported = ?, \
             extracted_text = ?, extracted_metadata = ?, processing_metadata = ?, compliance_scan_results = ?, \
             pii_detected = ?, redaction_applied = ?, redacted_path = ?, thumbnail_path = ?, \
             processing_error_code = ?, processing_error = ?, search_text = ?, current_version = ?, \
             processed_at = ?, updated_at = ? WHERE id = ?",
        )
        .bind(job.filename.as_str())
        .bind(&finished.content_type)
        .bind(size(file.size))
        .bind(&file.sha256)
        .bind(&job.storage_provider)
        .bind(job.blob_key.as_str())
        .bind(finished.processing_status.as_str())
        .bind(&result.format)
        .bind(result.supported)
        .bind(&result.extracted_text)
        .bind(map_json(&result.extracted_metadata))
        .bind(map_json(&result.processing_metadata))
        .bind(map_json(&result.compliance_scan_results))
        .bind(result.pii_detected)
        .bind(result.redaction_applied)
        .bind(result.redacted_key.as_ref().map(BlobKey::as_str))
        .bind(result.thumbnail_key.as_ref().map(BlobKey::as_str))
        .bind(result.error.as_ref().map(|e| e.code.clone()))
        .bind(result.error.as_ref().map(|e| e.message.clone()))
        .bind(result.search_text(&job.filename))
        .bind(i64::from(version_number))
        .bind(&at_text)
        .bind(&at_text)
        .bind(job.document_id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        sqlx::query(
            "INSERT INTO document_versions (id, document_id, version_number, original_filename, content_type, \
             storage_path, redacted_path, thumbnail_path, file_size, file_hash, change_summary, created_by, \
             created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(job.version_id.to_string())
        .bind(job.document_id.to_string())
        .bind(i64::from(version_number))
        .bind(job.filename.as_str())
        .bind(&finished.content_type)
        .bind(job.blob_key.as_str())
        .bind(result.redacted_key.as_ref().map(BlobKey::as_str))
        .bind(result.thumbnail_key.as_ref().map(BlobKey::as_str))
        .bind(size(file.size))
        .bind(&file.sha256)
        .bind(&job.change_summary)
        .bind(job.uploaded_by.to_string())
        .bind(&at_text)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        sqlx::query(
            "UPDATE notebooks SET document_count = document_count + ?, total_size_bytes = total_size_bytes + ? \
             WHERE id = ?",
        )
        .bind(size(finished.documents_added))
        .bind(size(finished.bytes_added))
        .bind(job.notebook_id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        end_job(&mut tx, id, &finished.end, &at).await?;
        let job = job_in(&mut *tx, id).await?;
        let document = document_in(&mut *tx, job.document_id).await?;
        let chunks = chunk::document_chunks(
            &document.original_filename,
            document.description.as_ref(),
            &document.tags,
            result.readers_text(),
        );
        write_chunks(&mut tx, document.id, document.notebook_id, &chunks).await?;
        record_change(&mut tx, &Change::by(job.uploaded_by, at), ChangeRecord::document_added(&job, &document)).await?;
        insert_event(&mut tx, &document::compliance_event(&document), &at).await?;
        tx.commit().await.map_err(map_err)?;
        Ok((job, document))
    }

    async fn fail_job(&self, id: JobId, failure: JobFailure, at: Timestamp) -> StoreResult<UploadJob> {
        abandon_job(self, id, JobStatus::Failed, Some(failure), at).await
    }

    async fn cancel_job(&self, id: JobId, at: Timestamp) -> StoreResult<UploadJob> {
        abandon_job(self, id, JobStatus::Cancelled, None, at).await
    }

    async fn count_active_jobs(&self) -> StoreResult<Vec<(JobStatus, u64)>> {
        let rows: Vec<StatusCountRow> = sqlx::query_as(
            "SELECT status, COUNT(*) AS n FROM upload_jobs \
             WHERE status NOT IN ('completed', 'failed', 'cancelled') GROUP BY status",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        convert(rows)
    }

    async fn stale_uploads(&self, stale_before: Timestamp, limit: u32) -> StoreResult<Vec<UploadJob>> {
        let rows: Vec<JobRow> = sqlx::query_as(
            "SELECT * FROM upload_jobs WHERE status = 'uploading' AND updated_at < ? ORDER BY id LIMIT ?",
        )
        .bind(time::to_storage(&stale_before))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        convert(rows)
    }
}

#[async_trait]
impl DocumentStore for SqliteStore {
    async fn get_document(&self, id: DocumentId) -> StoreResult<Document> {
        document_in(&self.pool, id).await
    }

    async fn list_documents(&self, notebook: NotebookId, page: PageRequest) -> StoreResult<Page<Document>> {
        let rows: Vec<DocumentRow> = sqlx::query_as(DOCUMENTS)
            .bind(notebook.to_string())
            .bind(page.bound(SortOrder::NewestFirst))
            .bind(page.fetch())
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(Page::from_overfetch(convert(rows)?, page.limit, |document: &Document| document.id.as_uuid()))
    }

    async fn update_document(&self, id: DocumentId, patch: DocumentPatch, change: &Change) -> StoreResult<Document> {
        let (_writer, mut tx) = self.begin_write().await?;
        let mut document = document_in(&mut *tx, id).await?;
        let record = ChangeRecord::document_updated(&document, &patch);
        document.apply_patch(patch);
        sqlx::query(
            "UPDATE documents SET original_filename = ?, description = ?, tags = ?, updated_at = ? WHERE id = ?",
        )
        .bind(document.original_filename.as_str())
        .bind(document.description.as_ref().map(Description::as_str))
        .bind(tags_json(&document.tags))
        .bind(time::to_storage(&change.at))
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        record_change(&mut tx, change, record).await?;
        let document = document_in(&mut *tx, id).await?;
        write_heading(&mut tx, &document).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(document)
    }

    async fn delete_document(&self, id: DocumentId, change: &Change) -> StoreResult<()> {
        let (_writer, mut tx) = self.begin_write().await?;
        let document = document_in(&mut *tx, id).await?;
        let rows: Vec<VersionRow> = sqlx::query_as("SELECT * FROM document_versions WHERE document_id = ?")
            .bind(id.to_string())
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err)?;
        let versions: Vec<DocumentVersion> = convert(rows)?;
        let (keys, stored) = document::freed_by_deletion(&versions);
        queue_deletions(&mut tx, &keys, &change.at).await?;
        write_chunks(&mut tx, id, document.notebook_id, &[]).await?;
        sqlx::query("DELETE FROM documents WHERE id = ?")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        sqlx::query(
            "UPDATE notebooks SET document_count = MAX(document_count - 1, 0), \
             total_size_bytes = MAX(total_size_bytes - ?, 0) WHERE id = ?",
        )
        .bind(size(stored))
        .bind(document.notebook_id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        record_change(&mut tx, change, ChangeRecord::document_deleted(&document)).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(())
    }

    async fn list_versions(&self, id: DocumentId, page: PageRequest) -> StoreResult<Page<DocumentVersion>> {
        let rows: Vec<VersionRow> = sqlx::query_as(VERSIONS)
            .bind(id.to_string())
            .bind(page.after.map(|after| after.hyphenated().to_string()))
            .bind(page.fetch())
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        if rows.is_empty() && page.after.is_none() {
            // Every stored document has a version, so none means no document.
            return Err(StoreError::NotFound);
        }
        Ok(Page::from_overfetch(convert(rows)?, page.limit, |version: &DocumentVersion| version.id.as_uuid()))
    }

    async fn get_version(&self, id: DocumentId, number: u32) -> StoreResult<DocumentVersion> {
        let row: VersionRow =
            sqlx::query_as("SELECT * FROM document_versions WHERE document_id = ? AND version_number = ?")
                .bind(id.to_string())
                .bind(i64::from(number))
                .fetch_one(&self.pool)
                .await
                .map_err(map_err)?;
        row.try_into()
    }
}

#[async_trait]
impl BlobDeletionStore for SqliteStore {
    async fn queue_blob_deletions(&self, keys: &[BlobKey], at: Timestamp) -> StoreResult<()> {
        let (_writer, mut tx) = self.begin_write().await?;
        queue_deletions(&mut tx, keys, &at).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn pending_blob_deletions(&self, limit: u32) -> StoreResult<Vec<BlobDeletion>> {
        let rows: Vec<BlobDeletionRow> = sqlx::query_as("SELECT * FROM blob_deletions ORDER BY id LIMIT ?")
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        convert(rows)
    }

    async fn complete_blob_deletions(&self, ids: &[uuid::Uuid]) -> StoreResult<()> {
        let (_writer, mut tx) = self.begin_write().await?;
        for id in ids {
            sqlx::query("DELETE FROM blob_deletions WHERE id = ?")
                .bind(id.hyphenated().to_string())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)
    }

    async fn blob_is_referenced(&self, key: &BlobKey) -> StoreResult<bool> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT 1 WHERE EXISTS (SELECT 1 FROM document_versions WHERE storage_path = ?1 OR redacted_path = ?1 \
             OR thumbnail_path = ?1) OR EXISTS (SELECT 1 FROM upload_jobs WHERE blob_key = ?1 \
             AND status NOT IN ('completed', 'failed', 'cancelled'))",
        )
        .bind(key.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(found.is_some())
    }
}
