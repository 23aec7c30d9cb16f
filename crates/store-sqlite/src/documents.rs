//! Upload jobs, documents and versions on SQLite (see `aether_domain::document`).

use aether_domain::StoreError;
use aether_domain::activity::{Change, ChangeRecord};
use aether_domain::blob::BlobKey;
use aether_domain::document::{
    self, BlobDeletion, CallbackUrl, Document, DocumentPatch, DocumentVersion, Filename, JobFailure, JobOrigin,
    JobStatus, NewUploadJob, ProcessingResult, ProcessingStatus, ReceivedFile, UploadJob,
};
use aether_domain::events::NewEvent;
use aether_domain::id::{DocumentId, JobId, NotebookId, UserId, VersionId};
use aether_domain::notebook::{Description, Tag};
use aether_domain::page::{Page, PageRequest};
use aether_domain::store::{DocumentStore, StoreResult};
use aether_domain::time::{self, Timestamp};
use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};

use crate::{SqliteStore, corrupt, json_column, map_err, opt_ts, record_change, tags_json, ts};

fn key(text: &str) -> StoreResult<BlobKey> {
    BlobKey::parse(text).map_err(|_| corrupt("blob key"))
}

fn opt_key(text: Option<String>) -> StoreResult<Option<BlobKey>> {
    text.as_deref().map(key).transpose()
}

fn count(row: &SqliteRow, column: &str) -> StoreResult<u64> {
    let value: i64 = row.try_get(column).map_err(map_err)?;
    u64::try_from(value).map_err(|_| corrupt(column))
}

fn job_from_row(row: &SqliteRow) -> StoreResult<UploadJob> {
    let text = |column: &str| row.try_get::<String, _>(column).map_err(map_err);
    let opt_text = |column: &str| row.try_get::<Option<String>, _>(column).map_err(map_err);
    let file_size: Option<i64> = row.try_get("file_size").map_err(map_err)?;
    let file = match (file_size, opt_text("file_hash")?, opt_text("content_type")?) {
        (Some(size), Some(sha256), Some(content_type)) => {
            Some(ReceivedFile { size: u64::try_from(size).map_err(|_| corrupt("file size"))?, sha256, content_type })
        }
        _ => None,
    };
    let failure = match (opt_text("failure_code")?, opt_text("failure_message")?) {
        (Some(code), message) => Some(JobFailure { code, message: message.unwrap_or_default() }),
        _ => None,
    };
    let expected: Option<i64> = row.try_get("expected_bytes").map_err(map_err)?;
    let attempts: i64 = row.try_get("attempts").map_err(map_err)?;
    Ok(UploadJob {
        id: JobId::parse(&text("id")?).map_err(|_| corrupt("job id"))?,
        notebook_id: NotebookId::parse(&text("notebook_id")?).map_err(|_| corrupt("notebook id"))?,
        uploaded_by: UserId::parse(&text("uploaded_by")?).map_err(|_| corrupt("user id"))?,
        document_id: DocumentId::parse(&text("document_id")?).map_err(|_| corrupt("document id"))?,
        version_id: VersionId::parse(&text("version_id")?).map_err(|_| corrupt("version id"))?,
        new_version: row.try_get("new_version").map_err(map_err)?,
        filename: Filename::sanitize(&text("filename")?),
        change_summary: opt_text("change_summary")?,
        callback_url: opt_text("callback_url")?
            .as_deref()
            .map(CallbackUrl::parse)
            .transpose()
            .map_err(|_| corrupt("callback url"))?,
        status: JobStatus::parse(&text("status")?).map_err(|_| corrupt("job status"))?,
        stage: text("stage")?,
        bytes_received: count(row, "bytes_received")?,
        expected_bytes: expected.map(u64::try_from).transpose().map_err(|_| corrupt("expected bytes"))?,
        file,
        blob_key: key(&text("blob_key")?)?,
        storage_provider: text("storage_provider")?,
        failure,
        attempts: u32::try_from(attempts).map_err(|_| corrupt("attempts"))?,
        lease_until: opt_ts(opt_text("lease_until")?)?,
        external_id: opt_text("external_id")?,
        origin: JobOrigin { request_id: opt_text("origin_request_id")?, traceparent: opt_text("origin_traceparent")? },
        created_at: ts(&text("created_at")?)?,
        updated_at: ts(&text("updated_at")?)?,
        finished_at: opt_ts(opt_text("finished_at")?)?,
    })
}

fn document_from_row(row: &SqliteRow) -> StoreResult<Document> {
    let text = |column: &str| row.try_get::<String, _>(column).map_err(map_err);
    let opt_text = |column: &str| row.try_get::<Option<String>, _>(column).map_err(map_err);
    let tags: Vec<String> = json_column(row, "tags")?;
    let error = match (opt_text("processing_error_code")?, opt_text("processing_error")?) {
        (Some(code), message) => Some(JobFailure { code, message: message.unwrap_or_default() }),
        _ => None,
    };
    let version: i64 = row.try_get("current_version").map_err(map_err)?;
    Ok(Document {
        id: DocumentId::parse(&text("id")?).map_err(|_| corrupt("document id"))?,
        notebook_id: NotebookId::parse(&text("notebook_id")?).map_err(|_| corrupt("notebook id"))?,
        original_filename: Filename::sanitize(&text("original_filename")?),
        description: opt_text("description")?
            .as_deref()
            .map(Description::parse)
            .transpose()
            .map_err(|_| corrupt("description"))?,
        tags: Tag::parse_list(&tags).map_err(|_| corrupt("tags"))?,
        content_type: text("content_type")?,
        file_size: count(row, "file_size")?,
        file_hash: text("file_hash")?,
        storage_provider: text("storage_provider")?,
        storage_path: key(&text("storage_path")?)?,
        processing_status: ProcessingStatus::parse(&text("processing_status")?)
            .map_err(|_| corrupt("processing status"))?,
        result: ProcessingResult {
            content_type: text("content_type")?,
            format: text("format")?,
            supported: row.try_get("supported").map_err(map_err)?,
            extracted_text: opt_text("extracted_text")?,
            extracted_metadata: json_column(row, "extracted_metadata")?,
            compliance_scan_results: json_column(row, "compliance_scan_results")?,
            pii_detected: row.try_get("pii_detected").map_err(map_err)?,
            redaction_applied: row.try_get("redaction_applied").map_err(map_err)?,
            redacted_key: opt_key(opt_text("redacted_path")?)?,
            redacted_text: None,
            thumbnail_key: opt_key(opt_text("thumbnail_path")?)?,
            error,
            processing_metadata: json_column(row, "processing_metadata")?,
        },
        current_version: u32::try_from(version).map_err(|_| corrupt("version"))?,
        uploaded_by: UserId::parse(&text("uploaded_by")?).map_err(|_| corrupt("user id"))?,
        uploaded_at: ts(&text("uploaded_at")?)?,
        processed_at: opt_ts(opt_text("processed_at")?)?,
        updated_at: ts(&text("updated_at")?)?,
    })
}

fn version_from_row(row: &SqliteRow) -> StoreResult<DocumentVersion> {
    let text = |column: &str| row.try_get::<String, _>(column).map_err(map_err);
    let opt_text = |column: &str| row.try_get::<Option<String>, _>(column).map_err(map_err);
    let number: i64 = row.try_get("version_number").map_err(map_err)?;
    Ok(DocumentVersion {
        id: VersionId::parse(&text("id")?).map_err(|_| corrupt("version id"))?,
        document_id: DocumentId::parse(&text("document_id")?).map_err(|_| corrupt("document id"))?,
        version_number: u32::try_from(number).map_err(|_| corrupt("version number"))?,
        original_filename: Filename::sanitize(&text("original_filename")?),
        content_type: text("content_type")?,
        storage_path: key(&text("storage_path")?)?,
        redacted_path: opt_key(opt_text("redacted_path")?)?,
        thumbnail_path: opt_key(opt_text("thumbnail_path")?)?,
        file_size: count(row, "file_size")?,
        file_hash: text("file_hash")?,
        change_summary: opt_text("change_summary")?,
        created_by: UserId::parse(&text("created_by")?).map_err(|_| corrupt("user id"))?,
        created_at: ts(&text("created_at")?)?,
    })
}

fn size(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn map_json(map: &serde_json::Map<String, serde_json::Value>) -> String {
    serde_json::Value::Object(map.clone()).to_string()
}

async fn insert_event(tx: &mut SqliteConnection, event: &NewEvent, at: &Timestamp) -> StoreResult<()> {
    sqlx::query("INSERT INTO outbox (id, topic, key, payload, created_at) VALUES (?, ?, ?, ?, ?)")
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(event.topic)
        .bind(&event.key)
        .bind(event.payload.to_string())
        .bind(time::to_storage(at))
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
    Ok(())
}

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

async fn job_in(tx: &mut SqliteConnection, id: JobId) -> StoreResult<UploadJob> {
    let row = sqlx::query("SELECT * FROM upload_jobs WHERE id = ?")
        .bind(id.to_string())
        .fetch_one(&mut *tx)
        .await
        .map_err(map_err)?;
    job_from_row(&row)
}

async fn live_document_in(tx: &mut SqliteConnection, id: DocumentId) -> StoreResult<Document> {
    let row = sqlx::query("SELECT * FROM documents WHERE id = ?")
        .bind(id.to_string())
        .fetch_one(&mut *tx)
        .await
        .map_err(map_err)?;
    document_from_row(&row)
}

/// The type sniffed from the whole file, or else the one sniffed from its start.
fn content_type(result: &ProcessingResult, file: &ReceivedFile) -> String {
    if result.content_type.is_empty() { file.content_type.clone() } else { result.content_type.clone() }
}

fn job_status_conflict() -> StoreError {
    StoreError::Conflict("job_status".to_owned())
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
    let job = job_in(&mut tx, id).await?;
    if job.status.is_terminal() {
        return Err(job_status_conflict());
    }
    let at_text = time::to_storage(&at);
    sqlx::query(
        "UPDATE upload_jobs SET status = ?, stage = ?, failure_code = ?, failure_message = ?, lease_until = NULL, \
         updated_at = ?, finished_at = ? WHERE id = ?",
    )
    .bind(status.as_str())
    .bind(status.as_str())
    .bind(failure.as_ref().map(|f| f.code.clone()))
    .bind(failure.as_ref().map(|f| f.message.clone()))
    .bind(&at_text)
    .bind(&at_text)
    .bind(id.to_string())
    .execute(&mut *tx)
    .await
    .map_err(map_err)?;
    queue_deletions(&mut tx, &job.written_keys(), &at).await?;
    let job = job_in(&mut tx, id).await?;
    tx.commit().await.map_err(map_err)?;
    Ok(job)
}

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
            "UPDATE upload_jobs SET status = 'validating', stage = 'validating', attempts = attempts + 1, \
             lease_until = ?, updated_at = ? WHERE id = ?",
        )
        .bind(time::to_storage(&lease_until))
        .bind(&now_text)
        .bind(&id)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        let job = job_in(&mut tx, JobId::parse(&id).map_err(|_| corrupt("job id"))?).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(Some(job))
    }
}

#[async_trait]
impl DocumentStore for SqliteStore {
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
        let document_id = match new.existing_document {
            Some(existing) => {
                let document = live_document_in(&mut tx, existing).await?;
                if document.notebook_id != new.notebook_id {
                    return Err(StoreError::NotFound);
                }
                existing
            }
            None => DocumentId::new(),
        };
        let version_id = VersionId::new();
        let blob_key = document::original_key(document_id, version_id);
        let at = time::to_storage(&new.at);
        sqlx::query(
            "INSERT INTO upload_jobs (id, notebook_id, uploaded_by, document_id, version_id, new_version, filename, \
             change_summary, callback_url, status, stage, expected_bytes, blob_key, storage_provider, \
             origin_request_id, origin_traceparent, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'uploading', 'receiving the file', ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(new.id.to_string())
        .bind(new.notebook_id.to_string())
        .bind(new.uploaded_by.to_string())
        .bind(document_id.to_string())
        .bind(version_id.to_string())
        .bind(new.existing_document.is_some())
        .bind(new.filename.as_str())
        .bind(&new.change_summary)
        .bind(new.callback_url.as_ref().map(CallbackUrl::as_str))
        .bind(new.expected_bytes.map(size))
        .bind(blob_key.as_str())
        .bind(&new.storage_provider)
        .bind(&new.origin.request_id)
        .bind(&new.origin.traceparent)
        .bind(&at)
        .bind(&at)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        let job = job_in(&mut tx, new.id).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(job)
    }

    async fn get_job(&self, id: JobId) -> StoreResult<UploadJob> {
        let row = sqlx::query("SELECT * FROM upload_jobs WHERE id = ?")
            .bind(id.to_string())
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        job_from_row(&row)
    }

    async fn list_notebook_jobs(
        &self,
        notebook: NotebookId,
        active_only: bool,
        page: PageRequest,
    ) -> StoreResult<Page<UploadJob>> {
        let rows = sqlx::query(
            "SELECT * FROM upload_jobs WHERE notebook_id = ?1 \
             AND (NOT ?2 OR status NOT IN ('completed', 'failed', 'cancelled')) \
             AND (?3 IS NULL OR id < ?3) ORDER BY id DESC LIMIT ?4",
        )
        .bind(notebook.to_string())
        .bind(active_only)
        .bind(page.after.map(|id| id.hyphenated().to_string()))
        .bind(i64::from(page.limit.get()) + 1)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        let jobs = rows.iter().map(job_from_row).collect::<StoreResult<Vec<_>>>()?;
        Ok(Page::from_overfetch(jobs, page.limit, |job| job.id.as_uuid()))
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
        let job = job_in(&mut tx, id).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(job)
    }

    async fn accept_upload(&self, id: JobId, file: ReceivedFile, at: Timestamp) -> StoreResult<UploadJob> {
        let (_writer, mut tx) = self.begin_write().await?;
        let updated = sqlx::query(
            "UPDATE upload_jobs SET status = 'pending', stage = 'queued for processing', bytes_received = ?1, \
             file_size = ?1, file_hash = ?2, content_type = ?3, updated_at = ?4 WHERE id = ?5 AND status = 'uploading'",
        )
        .bind(size(file.size))
        .bind(&file.sha256)
        .bind(&file.content_type)
        .bind(time::to_storage(&at))
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        let job = job_in(&mut tx, id).await?;
        if updated.rows_affected() == 0 {
            return Err(job_status_conflict());
        }
        for event in document::accepted_events(&job) {
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
        // Timestamps are stored as fixed-width RFC 3339 UTC text, so they compare as text.
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
        let updated = sqlx::query(
            "UPDATE upload_jobs SET status = ?, stage = ?, lease_until = ?, updated_at = ? \
             WHERE id = ? AND status IN ('validating', 'processing')",
        )
        .bind(status.as_str())
        .bind(stage)
        .bind(time::to_storage(&lease_until))
        .bind(time::to_storage(&at))
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        let job = job_in(&mut tx, id).await?;
        if updated.rows_affected() == 0 {
            return Err(job_status_conflict());
        }
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
        let updated = sqlx::query(
            "UPDATE upload_jobs SET external_id = ?, lease_until = ?, updated_at = ? \
             WHERE id = ? AND status IN ('validating', 'processing')",
        )
        .bind(external_id)
        .bind(time::to_storage(&lease_until))
        .bind(time::to_storage(&at))
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        let job = job_in(&mut tx, id).await?;
        if updated.rows_affected() == 0 {
            return Err(job_status_conflict());
        }
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
        let job = job_in(&mut tx, id).await?;
        if job.status.is_terminal() {
            return Err(job_status_conflict());
        }
        let file = job.file.clone().ok_or_else(job_status_conflict)?;
        let at_text = time::to_storage(&at);
        let processing_status =
            if result.error.is_some() { ProcessingStatus::Failed } else { ProcessingStatus::Completed };
        let version_number = if job.new_version {
            let document = live_document_in(&mut tx, job.document_id).await?;
            document.current_version + 1
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
            1
        };
        let search_text = result.search_text(&job.filename);
        sqlx::query(
            "UPDATE documents SET original_filename = ?, content_type = ?, file_size = ?, file_hash = ?, \
             storage_provider = ?, storage_path = ?, processing_status = ?, format = ?, supported = ?, \
             extracted_text = ?, extracted_metadata = ?, processing_metadata = ?, compliance_scan_results = ?, \
             pii_detected = ?, redaction_applied = ?, redacted_path = ?, thumbnail_path = ?, \
             processing_error_code = ?, processing_error = ?, search_text = ?, current_version = ?, \
             processed_at = ?, updated_at = ? WHERE id = ?",
        )
        .bind(job.filename.as_str())
        .bind(content_type(&result, &file))
        .bind(size(file.size))
        .bind(&file.sha256)
        .bind(&job.storage_provider)
        .bind(job.blob_key.as_str())
        .bind(processing_status.as_str())
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
        .bind(&search_text)
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
        .bind(content_type(&result, &file))
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
        .bind(if job.new_version { 0 } else { 1 })
        .bind(size(file.size))
        .bind(job.notebook_id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        let (status, stage) = match &result.error {
            Some(_) => (JobStatus::Failed, "processing failed; the document is stored"),
            None => (JobStatus::Completed, "completed"),
        };
        sqlx::query(
            "UPDATE upload_jobs SET status = ?, stage = ?, failure_code = ?, failure_message = ?, lease_until = NULL, \
             updated_at = ?, finished_at = ? WHERE id = ?",
        )
        .bind(status.as_str())
        .bind(stage)
        .bind(result.error.as_ref().map(|e| e.code.clone()))
        .bind(result.error.as_ref().map(|e| e.message.clone()))
        .bind(&at_text)
        .bind(&at_text)
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        let job = job_in(&mut tx, id).await?;
        let document = live_document_in(&mut tx, job.document_id).await?;
        let mut record = ChangeRecord::new(
            job.notebook_id,
            if job.new_version { "document_version_added" } else { "document_added" },
            "create",
        )
        .with("document_id", document.id.to_string())
        .with("version", document.current_version)
        .with("original_filename", document.original_filename.as_str());
        record.event = Some(document::processed_event(&job, &document));
        record_change(&mut tx, &Change::by(job.uploaded_by, at), record).await?;
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
        let rows = sqlx::query(
            "SELECT status, COUNT(*) AS n FROM upload_jobs \
             WHERE status NOT IN ('completed', 'failed', 'cancelled') GROUP BY status",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(|row| {
                let status: String = row.try_get("status").map_err(map_err)?;
                Ok((JobStatus::parse(&status).map_err(|_| corrupt("job status"))?, count(row, "n")?))
            })
            .collect()
    }

    async fn stale_uploads(&self, stale_before: Timestamp, limit: u32) -> StoreResult<Vec<UploadJob>> {
        let rows =
            sqlx::query("SELECT * FROM upload_jobs WHERE status = 'uploading' AND updated_at < ? ORDER BY id LIMIT ?")
                .bind(time::to_storage(&stale_before))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
        rows.iter().map(job_from_row).collect()
    }

    async fn get_document(&self, id: DocumentId) -> StoreResult<Document> {
        let row = sqlx::query("SELECT * FROM documents WHERE id = ?")
            .bind(id.to_string())
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        document_from_row(&row)
    }

    async fn list_documents(&self, notebook: NotebookId, page: PageRequest) -> StoreResult<Page<Document>> {
        let rows = sqlx::query(
            // Listings never load the extracted text (up to 2 M characters a document).
            "SELECT id, notebook_id, added_at, original_filename, description, tags, content_type, file_size, \
             file_hash, storage_provider, storage_path, processing_status, format, supported, \
             NULL AS extracted_text, extracted_metadata, processing_metadata, compliance_scan_results, \
             pii_detected, redaction_applied, redacted_path, thumbnail_path, processing_error_code, \
             processing_error, current_version, uploaded_by, uploaded_at, processed_at, updated_at \
             FROM documents WHERE notebook_id = ?1 AND (?2 IS NULL OR id < ?2) ORDER BY id DESC LIMIT ?3",
        )
        .bind(notebook.to_string())
        .bind(page.after.map(|id| id.hyphenated().to_string()))
        .bind(i64::from(page.limit.get()) + 1)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        let documents = rows.iter().map(document_from_row).collect::<StoreResult<Vec<_>>>()?;
        Ok(Page::from_overfetch(documents, page.limit, |document| document.id.as_uuid()))
    }

    async fn update_document(&self, id: DocumentId, patch: DocumentPatch, change: &Change) -> StoreResult<Document> {
        let (_writer, mut tx) = self.begin_write().await?;
        let mut document = live_document_in(&mut tx, id).await?;
        let mut record =
            ChangeRecord::new(document.notebook_id, "document_updated", "update").with("document_id", id.to_string());
        if let Some(name) = patch.original_filename {
            record = record.with("original_filename", name.as_str());
            document.original_filename = name;
        }
        if let Some(description) = patch.description {
            document.description = description;
        }
        if let Some(tags) = patch.tags {
            document.tags = tags;
        }
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
        let document = live_document_in(&mut tx, id).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(document)
    }

    async fn delete_document(&self, id: DocumentId, change: &Change) -> StoreResult<()> {
        let (_writer, mut tx) = self.begin_write().await?;
        let document = live_document_in(&mut tx, id).await?;
        let rows = sqlx::query("SELECT * FROM document_versions WHERE document_id = ?")
            .bind(id.to_string())
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err)?;
        let versions = rows.iter().map(version_from_row).collect::<StoreResult<Vec<_>>>()?;
        let keys: Vec<BlobKey> = versions
            .iter()
            .flat_map(|v| [Some(v.storage_path.clone()), v.redacted_path.clone(), v.thumbnail_path.clone()])
            .flatten()
            .collect();
        let stored: u64 = versions.iter().map(|v| v.file_size).sum();
        queue_deletions(&mut tx, &keys, &change.at).await?;
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
        let record = ChangeRecord::new(document.notebook_id, "document_deleted", "delete")
            .with("document_id", id.to_string())
            .with("original_filename", document.original_filename.as_str());
        record_change(&mut tx, change, record).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(())
    }

    async fn list_versions(&self, id: DocumentId) -> StoreResult<Vec<DocumentVersion>> {
        let rows = sqlx::query("SELECT * FROM document_versions WHERE document_id = ? ORDER BY version_number DESC")
            .bind(id.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        if rows.is_empty() {
            // Every stored document has a version, so none means no document.
            return Err(StoreError::NotFound);
        }
        rows.iter().map(version_from_row).collect()
    }

    async fn queue_blob_deletions(&self, keys: &[BlobKey], at: Timestamp) -> StoreResult<()> {
        let (_writer, mut tx) = self.begin_write().await?;
        queue_deletions(&mut tx, keys, &at).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn pending_blob_deletions(&self, limit: u32) -> StoreResult<Vec<BlobDeletion>> {
        let rows = sqlx::query("SELECT * FROM blob_deletions ORDER BY id LIMIT ?")
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter()
            .map(|row| {
                let id: String = row.try_get("id").map_err(map_err)?;
                Ok(BlobDeletion {
                    id: uuid::Uuid::try_parse(&id).map_err(|_| corrupt("id"))?,
                    key: key(&row.try_get::<String, _>("blob_key").map_err(map_err)?)?,
                    queued_at: ts(&row.try_get::<String, _>("queued_at").map_err(map_err)?)?,
                })
            })
            .collect()
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
