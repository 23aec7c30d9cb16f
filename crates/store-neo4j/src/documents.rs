//! Upload jobs, documents and versions on Neo4j: `(:UploadJob)`,
//! `(:Notebook)-[:CONTAINS {added_at}]->(:Document)`,
//! `(:Document)-[:VERSION_OF {version_number, created_at}]->(:DocumentVersion)` and
//! `(:BlobDeletion)`. Maps are JSON strings, as elsewhere. Every use case that
//! reads a job or document and then writes it takes the node's write lock first.

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
use aether_domain::time::Timestamp;
use async_trait::async_trait;
use neo4rs::{Row, Txn, query};
use serde::Deserialize;

use crate::{
    Neo4jStore, after_param, corrupt, in_txn_retrying, limit_param, map_err, record_change, storage, ts, txn_rows,
};

const JOB_RETURN: &str = "RETURN j.id AS id, j.notebook_id AS notebook_id, j.uploaded_by AS uploaded_by, \
     j.document_id AS document_id, j.version_id AS version_id, j.new_version AS new_version, j.filename AS filename, \
     j.change_summary AS change_summary, j.callback_url AS callback_url, j.status AS status, j.stage AS stage, \
     j.bytes_received AS bytes_received, j.expected_bytes AS expected_bytes, j.file_size AS file_size, \
     j.file_hash AS file_hash, j.content_type AS content_type, j.blob_key AS blob_key, \
     j.storage_provider AS storage_provider, j.failure_code AS failure_code, j.failure_message AS failure_message, \
     j.attempts AS attempts, toString(j.lease_until) AS lease_until, j.external_id AS external_id, \
     j.origin_request_id AS origin_request_id, j.origin_traceparent AS origin_traceparent, toString(j.created_at) AS created_at, \
     toString(j.updated_at) AS updated_at, toString(j.finished_at) AS finished_at";

#[derive(Deserialize)]
struct JobRecord {
    id: String,
    notebook_id: String,
    uploaded_by: String,
    document_id: String,
    version_id: String,
    new_version: bool,
    filename: String,
    change_summary: Option<String>,
    callback_url: Option<String>,
    status: String,
    stage: String,
    bytes_received: i64,
    expected_bytes: Option<i64>,
    file_size: Option<i64>,
    file_hash: Option<String>,
    content_type: Option<String>,
    blob_key: String,
    storage_provider: String,
    failure_code: Option<String>,
    failure_message: Option<String>,
    attempts: i64,
    lease_until: Option<String>,
    external_id: Option<String>,
    origin_request_id: Option<String>,
    origin_traceparent: Option<String>,
    created_at: String,
    updated_at: String,
    finished_at: Option<String>,
}

fn unsigned(value: i64, what: &str) -> StoreResult<u64> {
    u64::try_from(value).map_err(|_| corrupt(what))
}

fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn key(text: &str) -> StoreResult<BlobKey> {
    BlobKey::parse(text).map_err(|_| corrupt("blob key"))
}

fn opt_key(text: Option<String>) -> StoreResult<Option<BlobKey>> {
    text.as_deref().map(key).transpose()
}

fn opt_ts(text: Option<String>) -> StoreResult<Option<Timestamp>> {
    text.as_deref().map(ts).transpose()
}

fn json_map(text: Option<String>, what: &str) -> StoreResult<serde_json::Map<String, serde_json::Value>> {
    match text {
        Some(text) => serde_json::from_str(&text).map_err(|_| corrupt(what)),
        None => Ok(serde_json::Map::new()),
    }
}

fn map_json(map: &serde_json::Map<String, serde_json::Value>) -> String {
    serde_json::Value::Object(map.clone()).to_string()
}

fn job_from_row(row: &Row) -> StoreResult<UploadJob> {
    let r: JobRecord = row.to().map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let file = match (r.file_size, r.file_hash, r.content_type) {
        (Some(size), Some(sha256), Some(content_type)) => {
            Some(ReceivedFile { size: unsigned(size, "file size")?, sha256, content_type })
        }
        _ => None,
    };
    Ok(UploadJob {
        id: JobId::parse(&r.id).map_err(|_| corrupt("job id"))?,
        notebook_id: NotebookId::parse(&r.notebook_id).map_err(|_| corrupt("notebook id"))?,
        uploaded_by: UserId::parse(&r.uploaded_by).map_err(|_| corrupt("user id"))?,
        document_id: DocumentId::parse(&r.document_id).map_err(|_| corrupt("document id"))?,
        version_id: VersionId::parse(&r.version_id).map_err(|_| corrupt("version id"))?,
        new_version: r.new_version,
        filename: Filename::sanitize(&r.filename),
        change_summary: r.change_summary,
        callback_url: r.callback_url.as_deref().map(CallbackUrl::parse).transpose().map_err(|_| corrupt("callback"))?,
        status: JobStatus::parse(&r.status).map_err(|_| corrupt("job status"))?,
        stage: r.stage,
        bytes_received: unsigned(r.bytes_received, "bytes received")?,
        expected_bytes: r.expected_bytes.map(|v| unsigned(v, "expected bytes")).transpose()?,
        file,
        blob_key: key(&r.blob_key)?,
        storage_provider: r.storage_provider,
        failure: r.failure_code.map(|code| JobFailure { code, message: r.failure_message.unwrap_or_default() }),
        attempts: u32::try_from(r.attempts).map_err(|_| corrupt("attempts"))?,
        lease_until: opt_ts(r.lease_until)?,
        external_id: r.external_id,
        origin: JobOrigin { request_id: r.origin_request_id, traceparent: r.origin_traceparent },
        created_at: ts(&r.created_at)?,
        updated_at: ts(&r.updated_at)?,
        finished_at: opt_ts(r.finished_at)?,
    })
}

/// Listings never load the extracted text (up to 2 M characters a document).
fn listed(document_return: &str) -> String {
    document_return.replacen("RETURN d.extracted_text AS extracted_text,", "RETURN null AS extracted_text,", 1)
}

const DOCUMENT_RETURN: &str = "RETURN d.extracted_text AS extracted_text, \
     d.id AS id, n.id AS notebook_id, d.original_filename AS original_filename, \
     d.description AS description, coalesce(d.tags, []) AS tags, d.content_type AS content_type, \
     d.file_size AS file_size, d.file_hash AS file_hash, d.storage_provider AS storage_provider, \
     d.storage_path AS storage_path, d.processing_status AS processing_status, d.format AS format, \
     d.supported AS supported, d.extracted_metadata AS extracted_metadata, \
     d.processing_metadata AS processing_metadata, d.compliance_scan_results AS compliance_scan_results, \
     d.pii_detected AS pii_detected, d.redaction_applied AS redaction_applied, d.redacted_path AS redacted_path, \
     d.thumbnail_path AS thumbnail_path, d.processing_error_code AS processing_error_code, \
     d.processing_error AS processing_error, d.current_version AS current_version, d.uploaded_by AS uploaded_by, \
     toString(d.uploaded_at) AS uploaded_at, toString(d.processed_at) AS processed_at, \
     toString(d.updated_at) AS updated_at";

#[derive(Deserialize)]
struct DocumentRecord {
    id: String,
    notebook_id: String,
    original_filename: String,
    description: Option<String>,
    tags: Vec<String>,
    content_type: String,
    file_size: i64,
    file_hash: String,
    storage_provider: String,
    storage_path: String,
    processing_status: String,
    format: String,
    supported: bool,
    extracted_text: Option<String>,
    extracted_metadata: Option<String>,
    processing_metadata: Option<String>,
    compliance_scan_results: Option<String>,
    pii_detected: bool,
    redaction_applied: bool,
    redacted_path: Option<String>,
    thumbnail_path: Option<String>,
    processing_error_code: Option<String>,
    processing_error: Option<String>,
    current_version: i64,
    uploaded_by: String,
    uploaded_at: String,
    processed_at: Option<String>,
    updated_at: String,
}

fn document_from_row(row: &Row) -> StoreResult<Document> {
    let r: DocumentRecord = row.to().map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(Document {
        id: DocumentId::parse(&r.id).map_err(|_| corrupt("document id"))?,
        notebook_id: NotebookId::parse(&r.notebook_id).map_err(|_| corrupt("notebook id"))?,
        original_filename: Filename::sanitize(&r.original_filename),
        description: r
            .description
            .as_deref()
            .map(Description::parse)
            .transpose()
            .map_err(|_| corrupt("description"))?,
        tags: Tag::parse_list(&r.tags).map_err(|_| corrupt("tags"))?,
        content_type: r.content_type.clone(),
        file_size: unsigned(r.file_size, "file size")?,
        file_hash: r.file_hash,
        storage_provider: r.storage_provider,
        storage_path: key(&r.storage_path)?,
        processing_status: ProcessingStatus::parse(&r.processing_status).map_err(|_| corrupt("processing status"))?,
        result: ProcessingResult {
            content_type: r.content_type.clone(),
            format: r.format,
            supported: r.supported,
            extracted_text: r.extracted_text,
            extracted_metadata: json_map(r.extracted_metadata, "extracted metadata")?,
            compliance_scan_results: json_map(r.compliance_scan_results, "compliance scan results")?,
            pii_detected: r.pii_detected,
            redaction_applied: r.redaction_applied,
            redacted_key: opt_key(r.redacted_path)?,
            redacted_text: None,
            thumbnail_key: opt_key(r.thumbnail_path)?,
            error: r
                .processing_error_code
                .map(|code| JobFailure { code, message: r.processing_error.unwrap_or_default() }),
            processing_metadata: json_map(r.processing_metadata, "processing metadata")?,
        },
        current_version: u32::try_from(r.current_version).map_err(|_| corrupt("version"))?,
        uploaded_by: UserId::parse(&r.uploaded_by).map_err(|_| corrupt("user id"))?,
        uploaded_at: ts(&r.uploaded_at)?,
        processed_at: opt_ts(r.processed_at)?,
        updated_at: ts(&r.updated_at)?,
    })
}

const VERSION_RETURN: &str = "RETURN v.id AS id, d.id AS document_id, v.version_number AS version_number, \
     v.original_filename AS original_filename, v.content_type AS content_type, v.storage_path AS storage_path, \
     v.redacted_path AS redacted_path, v.thumbnail_path AS thumbnail_path, v.file_size AS file_size, \
     v.file_hash AS file_hash, v.change_summary AS change_summary, v.created_by AS created_by, \
     toString(v.created_at) AS created_at";

#[derive(Deserialize)]
struct VersionRecord {
    id: String,
    document_id: String,
    version_number: i64,
    original_filename: String,
    content_type: String,
    storage_path: String,
    redacted_path: Option<String>,
    thumbnail_path: Option<String>,
    file_size: i64,
    file_hash: String,
    change_summary: Option<String>,
    created_by: String,
    created_at: String,
}

fn version_from_row(row: &Row) -> StoreResult<DocumentVersion> {
    let r: VersionRecord = row.to().map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(DocumentVersion {
        id: VersionId::parse(&r.id).map_err(|_| corrupt("version id"))?,
        document_id: DocumentId::parse(&r.document_id).map_err(|_| corrupt("document id"))?,
        version_number: u32::try_from(r.version_number).map_err(|_| corrupt("version number"))?,
        original_filename: Filename::sanitize(&r.original_filename),
        content_type: r.content_type,
        storage_path: key(&r.storage_path)?,
        redacted_path: opt_key(r.redacted_path)?,
        thumbnail_path: opt_key(r.thumbnail_path)?,
        file_size: unsigned(r.file_size, "file size")?,
        file_hash: r.file_hash,
        change_summary: r.change_summary,
        created_by: UserId::parse(&r.created_by).map_err(|_| corrupt("user id"))?,
        created_at: ts(&r.created_at)?,
    })
}

/// Takes the job's write lock and reads it as committed.
async fn lock_job(txn: &mut Txn, id: JobId) -> StoreResult<UploadJob> {
    let q = query(&format!("MATCH (j:UploadJob {{id: $id}}) SET j.updated_at = j.updated_at WITH j {JOB_RETURN}"))
        .param("id", id.to_string());
    let row = txn_rows(txn, q).await?.into_iter().next().ok_or(StoreError::NotFound)?;
    job_from_row(&row)
}

/// Takes the document's write lock and reads it as committed.
async fn lock_document(txn: &mut Txn, id: DocumentId) -> StoreResult<Document> {
    let q = query(&format!(
        "MATCH (n:Notebook)-[:CONTAINS]->(d:Document {{id: $id}}) SET d.updated_at = d.updated_at \
         WITH n, d {DOCUMENT_RETURN}"
    ))
    .param("id", id.to_string());
    let row = txn_rows(txn, q).await?.into_iter().next().ok_or(StoreError::NotFound)?;
    document_from_row(&row)
}

async fn insert_event(txn: &mut Txn, event: &NewEvent, at: &Timestamp) -> StoreResult<()> {
    let q = query(
        "CREATE (:OutboxEvent {id: $id, topic: $topic, key: $key, payload: $payload, created_at: datetime($at)})",
    )
    .param("id", uuid::Uuid::now_v7().to_string())
    .param("topic", event.topic)
    .param("key", event.key.clone())
    .param("payload", event.payload.to_string())
    .param("at", storage(at));
    txn.run(q).await.map_err(map_err)
}

async fn queue_deletions(txn: &mut Txn, keys: &[BlobKey], at: &Timestamp) -> StoreResult<()> {
    if keys.is_empty() {
        return Ok(());
    }
    // Ids are generated here so that they stay time-ordered within the batch.
    let ids: Vec<String> = keys.iter().map(|_| uuid::Uuid::now_v7().to_string()).collect();
    let q = query(
        "UNWIND range(0, size($keys) - 1) AS i \
         CREATE (:BlobDeletion {id: $ids[i], blob_key: $keys[i], queued_at: datetime($at)})",
    )
    .param("ids", ids)
    .param("keys", keys.iter().map(|k| k.as_str().to_owned()).collect::<Vec<_>>())
    .param("at", storage(at));
    txn.run(q).await.map_err(map_err)
}

/// The type sniffed from the whole file, or else the one sniffed from its start.
fn content_type(result: &ProcessingResult, file: &ReceivedFile) -> String {
    if result.content_type.is_empty() { file.content_type.clone() } else { result.content_type.clone() }
}

fn job_status_conflict() -> StoreError {
    StoreError::Conflict("job_status".to_owned())
}

async fn reread_job(txn: &mut Txn, id: JobId) -> StoreResult<UploadJob> {
    let q = query(&format!("MATCH (j:UploadJob {{id: $id}}) {JOB_RETURN}")).param("id", id.to_string());
    let row = txn_rows(txn, q).await?.into_iter().next().ok_or(StoreError::NotFound)?;
    job_from_row(&row)
}

async fn end_job(
    txn: &mut Txn,
    id: JobId,
    status: JobStatus,
    stage: &str,
    failure: Option<&JobFailure>,
    at: &Timestamp,
) -> StoreResult<()> {
    let q = query(
        "MATCH (j:UploadJob {id: $id}) SET j.status = $status, j.stage = $stage, j.failure_code = $code, \
         j.failure_message = $message, j.lease_until = null, j.updated_at = datetime($at), \
         j.finished_at = datetime($at)",
    )
    .param("id", id.to_string())
    .param("status", status.as_str())
    .param("stage", stage)
    .param("code", failure.map(|f| f.code.clone()))
    .param("message", failure.map(|f| f.message.clone()))
    .param("at", storage(at));
    txn.run(q).await.map_err(map_err)
}

impl Neo4jStore {
    async fn abandon_job(
        &self,
        id: JobId,
        status: JobStatus,
        failure: Option<JobFailure>,
        at: Timestamp,
    ) -> StoreResult<UploadJob> {
        in_txn_retrying(&self.graph, async move |txn: &mut Txn| {
            let job = lock_job(txn, id).await?;
            if job.status.is_terminal() {
                return Err(job_status_conflict());
            }
            end_job(txn, id, status, status.as_str(), failure.as_ref(), &at).await?;
            queue_deletions(txn, &job.written_keys(), &at).await?;
            reread_job(txn, id).await
        })
        .await
    }
}

impl Neo4jStore {
    /// Claims the oldest claimable job, or `only` that one.
    async fn claim(
        &self,
        only: Option<JobId>,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> StoreResult<Option<UploadJob>> {
        let only = only.map(|id| id.to_string());
        in_txn_retrying(&self.graph, async move |txn: &mut Txn| {
            // Lock the candidate, then test it again: another worker may have taken
            // it between the match and the lock.
            let q = query(&format!(
                "MATCH (j:UploadJob) WHERE ($only IS NULL OR j.id = $only) AND (j.status = 'pending' \
                   OR (j.status IN ['validating', 'processing'] AND j.lease_until < datetime($now))) \
                 WITH j ORDER BY j.id LIMIT 1 SET j.updated_at = j.updated_at \
                 WITH j WHERE j.status = 'pending' \
                   OR (j.status IN ['validating', 'processing'] AND j.lease_until < datetime($now)) \
                 SET j.status = 'validating', j.stage = 'validating', j.attempts = j.attempts + 1, \
                   j.lease_until = datetime($lease), j.updated_at = datetime($now) \
                 WITH j {JOB_RETURN}"
            ))
            .param("only", only.clone())
            .param("now", storage(&now))
            .param("lease", storage(&lease_until));
            match txn_rows(txn, q).await?.into_iter().next() {
                Some(row) => job_from_row(&row).map(Some),
                None => Ok(None),
            }
        })
        .await
    }
}

#[async_trait]
impl DocumentStore for Neo4jStore {
    async fn create_upload_job(&self, new: NewUploadJob) -> StoreResult<UploadJob> {
        in_txn_retrying(&self.graph, async move |txn: &mut Txn| {
            let live = query("MATCH (n:Notebook {id: $id}) WHERE n.status <> 'deleted' RETURN n.id AS id")
                .param("id", new.notebook_id.to_string());
            if txn_rows(txn, live).await?.is_empty() {
                return Err(StoreError::NotFound);
            }
            let document_id = match new.existing_document {
                Some(existing) => {
                    let document = lock_document(txn, existing).await?;
                    if document.notebook_id != new.notebook_id {
                        return Err(StoreError::NotFound);
                    }
                    existing
                }
                None => DocumentId::new(),
            };
            let version_id = VersionId::new();
            let blob_key = document::original_key(document_id, version_id);
            let q = query(&format!(
                "CREATE (j:UploadJob {{id: $id, notebook_id: $notebook, uploaded_by: $user, document_id: $document, \
                 version_id: $version, new_version: $new_version, filename: $filename, change_summary: $summary, \
                 callback_url: $callback, status: 'uploading', stage: 'receiving the file', bytes_received: 0, \
                 expected_bytes: $expected, blob_key: $key, storage_provider: $provider, attempts: 0, \
                 origin_request_id: $request_id, origin_traceparent: $traceparent, \
                 created_at: datetime($at), updated_at: datetime($at)}}) {JOB_RETURN}"
            ))
            .param("id", new.id.to_string())
            .param("notebook", new.notebook_id.to_string())
            .param("user", new.uploaded_by.to_string())
            .param("document", document_id.to_string())
            .param("version", version_id.to_string())
            .param("new_version", new.existing_document.is_some())
            .param("filename", new.filename.as_str())
            .param("summary", new.change_summary.clone())
            .param("callback", new.callback_url.as_ref().map(|c| c.as_str().to_owned()))
            .param("expected", new.expected_bytes.map(signed))
            .param("key", blob_key.as_str())
            .param("provider", new.storage_provider.clone())
            .param("request_id", new.origin.request_id.clone())
            .param("traceparent", new.origin.traceparent.clone())
            .param("at", storage(&new.at));
            let row = txn_rows(txn, q).await?.into_iter().next().ok_or(StoreError::NotFound)?;
            job_from_row(&row)
        })
        .await
    }

    async fn get_job(&self, id: JobId) -> StoreResult<UploadJob> {
        let q = query(&format!("MATCH (j:UploadJob {{id: $id}}) {JOB_RETURN}")).param("id", id.to_string());
        let row = self.optional_row(q).await?.ok_or(StoreError::NotFound)?;
        job_from_row(&row)
    }

    async fn list_notebook_jobs(
        &self,
        notebook: NotebookId,
        active_only: bool,
        page: PageRequest,
    ) -> StoreResult<Page<UploadJob>> {
        let q = query(&format!(
            "MATCH (j:UploadJob {{notebook_id: $notebook}}) \
             WHERE (NOT $active OR NOT j.status IN ['completed', 'failed', 'cancelled']) \
               AND ($after IS NULL OR j.id < $after) \
             WITH j ORDER BY j.id DESC LIMIT $limit {JOB_RETURN}"
        ))
        .param("notebook", notebook.to_string())
        .param("active", active_only)
        .param("after", after_param(&page))
        .param("limit", limit_param(&page));
        let jobs = self.rows(q).await?.iter().map(job_from_row).collect::<StoreResult<Vec<_>>>()?;
        Ok(Page::from_overfetch(jobs, page.limit, |job| job.id.as_uuid()))
    }

    async fn record_upload_progress(&self, id: JobId, bytes_received: u64, at: Timestamp) -> StoreResult<UploadJob> {
        let q = query(&format!(
            "MATCH (j:UploadJob {{id: $id}}) \
             FOREACH (x IN CASE WHEN j.status = 'uploading' THEN [j] ELSE [] END | \
               SET x.bytes_received = $bytes, x.updated_at = datetime($at)) \
             WITH j {JOB_RETURN}"
        ))
        .param("id", id.to_string())
        .param("bytes", signed(bytes_received))
        .param("at", storage(&at));
        let row = self.optional_row(q).await?.ok_or(StoreError::NotFound)?;
        job_from_row(&row)
    }

    async fn accept_upload(&self, id: JobId, file: ReceivedFile, at: Timestamp) -> StoreResult<UploadJob> {
        in_txn_retrying(&self.graph, async move |txn: &mut Txn| {
            let job = lock_job(txn, id).await?;
            if job.status != JobStatus::Uploading {
                return Err(job_status_conflict());
            }
            let q = query(
                "MATCH (j:UploadJob {id: $id}) SET j.status = 'pending', j.stage = 'queued for processing', \
                 j.bytes_received = $size, j.file_size = $size, j.file_hash = $hash, j.content_type = $type, \
                 j.updated_at = datetime($at)",
            )
            .param("id", id.to_string())
            .param("size", signed(file.size))
            .param("hash", file.sha256.clone())
            .param("type", file.content_type.clone())
            .param("at", storage(&at));
            txn.run(q).await.map_err(map_err)?;
            let job = reread_job(txn, id).await?;
            for event in document::accepted_events(&job) {
                insert_event(txn, &event, &at).await?;
            }
            Ok(job)
        })
        .await
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
        let q = query(
            "MATCH (j:UploadJob {id: $id}) WHERE j.status IN ['validating', 'processing'] \
             SET j.lease_until = CASE WHEN j.lease_until IS NULL OR j.lease_until < datetime($lease) \
               THEN datetime($lease) ELSE j.lease_until END \
             RETURN j.id AS id",
        )
        .param("id", id.to_string())
        .param("lease", storage(&lease_until));
        let rows = self.rows(q).await?;
        if rows.is_empty() {
            return Err(job_status_conflict());
        }
        Ok(())
    }

    async fn advance_job(
        &self,
        id: JobId,
        status: JobStatus,
        stage: &str,
        lease_until: Timestamp,
        at: Timestamp,
    ) -> StoreResult<UploadJob> {
        // Owned, so the retried body captures no borrowed data.
        let stage = stage.to_owned();
        in_txn_retrying(&self.graph, async move |txn: &mut Txn| {
            let job = lock_job(txn, id).await?;
            if !job.status.is_worked_on() {
                return Err(job_status_conflict());
            }
            let q = query(
                "MATCH (j:UploadJob {id: $id}) SET j.status = $status, j.stage = $stage, \
                 j.lease_until = datetime($lease), j.updated_at = datetime($at)",
            )
            .param("id", id.to_string())
            .param("status", status.as_str())
            .param("stage", stage.clone())
            .param("lease", storage(&lease_until))
            .param("at", storage(&at));
            txn.run(q).await.map_err(map_err)?;
            reread_job(txn, id).await
        })
        .await
    }

    async fn set_job_external_id(
        &self,
        id: JobId,
        external_id: &str,
        lease_until: Timestamp,
        at: Timestamp,
    ) -> StoreResult<UploadJob> {
        let external_id = external_id.to_owned();
        in_txn_retrying(&self.graph, async move |txn: &mut Txn| {
            let job = lock_job(txn, id).await?;
            if !job.status.is_worked_on() {
                return Err(job_status_conflict());
            }
            let q = query(
                "MATCH (j:UploadJob {id: $id}) SET j.external_id = $external, j.lease_until = datetime($lease), \
                 j.updated_at = datetime($at)",
            )
            .param("id", id.to_string())
            .param("external", external_id.clone())
            .param("lease", storage(&lease_until))
            .param("at", storage(&at));
            txn.run(q).await.map_err(map_err)?;
            reread_job(txn, id).await
        })
        .await
    }

    async fn finish_job(
        &self,
        id: JobId,
        result: ProcessingResult,
        at: Timestamp,
    ) -> StoreResult<(UploadJob, Document)> {
        in_txn_retrying(&self.graph, async move |txn: &mut Txn| {
            let job = lock_job(txn, id).await?;
            if job.status.is_terminal() {
                return Err(job_status_conflict());
            }
            let file = job.file.clone().ok_or_else(job_status_conflict)?;
            let version_number = if job.new_version {
                lock_document(txn, job.document_id).await?.current_version + 1
            } else {
                let q = query(
                    "MATCH (n:Notebook {id: $notebook}) \
                     CREATE (n)-[:CONTAINS {added_at: datetime($at)}]->(:Document {id: $id, uploaded_by: $user, \
                       uploaded_at: datetime($uploaded), tags: []})",
                )
                .param("notebook", job.notebook_id.to_string())
                .param("id", job.document_id.to_string())
                .param("user", job.uploaded_by.to_string())
                .param("uploaded", storage(&job.created_at))
                .param("at", storage(&at));
                txn.run(q).await.map_err(map_err)?;
                1
            };
            let status = if result.error.is_some() { ProcessingStatus::Failed } else { ProcessingStatus::Completed };
            let search_text = result.search_text(&job.filename);
            let q = query(
                "MATCH (d:Document {id: $id}) SET d.original_filename = $filename, d.content_type = $type, \
                 d.file_size = $size, d.file_hash = $hash, d.storage_provider = $provider, d.storage_path = $key, \
                 d.processing_status = $status, d.format = $format, d.supported = $supported, \
                 d.extracted_text = $text, d.extracted_metadata = $metadata, d.processing_metadata = $processing, \
                 d.compliance_scan_results = $compliance, d.pii_detected = $pii, d.redaction_applied = $redacted, \
                 d.redacted_path = $redacted_path, d.thumbnail_path = $thumbnail_path, \
                 d.processing_error_code = $error_code, d.processing_error = $error, d.search_text = $search, \
                 d.current_version = $version, d.processed_at = datetime($at), d.updated_at = datetime($at) \
                 CREATE (d)-[:VERSION_OF {version_number: $version, created_at: datetime($at)}]->(:DocumentVersion { \
                   id: $version_id, version_number: $version, original_filename: $filename, content_type: $type, \
                   storage_path: $key, redacted_path: $redacted_path, thumbnail_path: $thumbnail_path, \
                   file_size: $size, file_hash: $hash, change_summary: $summary, created_by: $user, \
                   created_at: datetime($at)}) \
                 WITH d MATCH (n:Notebook)-[:CONTAINS]->(d) \
                 SET n.document_count = coalesce(n.document_count, 0) + $new_document, \
                   n.total_size_bytes = coalesce(n.total_size_bytes, 0) + $size",
            )
            .param("id", job.document_id.to_string())
            .param("filename", job.filename.as_str())
            .param("type", content_type(&result, &file))
            .param("size", signed(file.size))
            .param("hash", file.sha256.clone())
            .param("provider", job.storage_provider.clone())
            .param("key", job.blob_key.as_str())
            .param("status", status.as_str())
            .param("format", result.format.clone())
            .param("supported", result.supported)
            .param("text", result.extracted_text.clone())
            .param("metadata", map_json(&result.extracted_metadata))
            .param("processing", map_json(&result.processing_metadata))
            .param("compliance", map_json(&result.compliance_scan_results))
            .param("pii", result.pii_detected)
            .param("redacted", result.redaction_applied)
            .param("redacted_path", result.redacted_key.as_ref().map(|k| k.as_str().to_owned()))
            .param("thumbnail_path", result.thumbnail_key.as_ref().map(|k| k.as_str().to_owned()))
            .param("error_code", result.error.as_ref().map(|e| e.code.clone()))
            .param("error", result.error.as_ref().map(|e| e.message.clone()))
            .param("search", search_text)
            .param("version", i64::from(version_number))
            .param("version_id", job.version_id.to_string())
            .param("summary", job.change_summary.clone())
            .param("user", job.uploaded_by.to_string())
            .param("new_document", if job.new_version { 0_i64 } else { 1 })
            .param("at", storage(&at));
            txn.run(q).await.map_err(map_err)?;
            let (job_status, stage) = match &result.error {
                Some(_) => (JobStatus::Failed, "processing failed; the document is stored"),
                None => (JobStatus::Completed, "completed"),
            };
            end_job(txn, id, job_status, stage, result.error.as_ref(), &at).await?;
            let job = reread_job(txn, id).await?;
            let document = lock_document(txn, job.document_id).await?;
            let mut record = ChangeRecord::new(
                job.notebook_id,
                if job.new_version { "document_version_added" } else { "document_added" },
                "create",
            )
            .with("document_id", document.id.to_string())
            .with("version", document.current_version)
            .with("original_filename", document.original_filename.as_str());
            record.event = Some(document::processed_event(&job, &document));
            record_change(txn, &Change::by(job.uploaded_by, at), record).await?;
            insert_event(txn, &document::compliance_event(&document), &at).await?;
            Ok((job, document))
        })
        .await
    }

    async fn fail_job(&self, id: JobId, failure: JobFailure, at: Timestamp) -> StoreResult<UploadJob> {
        self.abandon_job(id, JobStatus::Failed, Some(failure), at).await
    }

    async fn cancel_job(&self, id: JobId, at: Timestamp) -> StoreResult<UploadJob> {
        self.abandon_job(id, JobStatus::Cancelled, None, at).await
    }

    async fn count_active_jobs(&self) -> StoreResult<Vec<(JobStatus, u64)>> {
        let q = query(
            "MATCH (j:UploadJob) WHERE NOT j.status IN ['completed', 'failed', 'cancelled'] \
             RETURN j.status AS status, count(*) AS n",
        );
        self.rows(q)
            .await?
            .iter()
            .map(|row| {
                let status: String = row.get("status").map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let n: i64 = row.get("n").map_err(|e| StoreError::Corrupt(e.to_string()))?;
                Ok((JobStatus::parse(&status).map_err(|_| corrupt("job status"))?, unsigned(n, "count")?))
            })
            .collect()
    }

    async fn stale_uploads(&self, stale_before: Timestamp, limit: u32) -> StoreResult<Vec<UploadJob>> {
        let q = query(&format!(
            "MATCH (j:UploadJob {{status: 'uploading'}}) WHERE j.updated_at < datetime($before) \
             WITH j ORDER BY j.id LIMIT $limit {JOB_RETURN}"
        ))
        .param("before", storage(&stale_before))
        .param("limit", i64::from(limit));
        self.rows(q).await?.iter().map(job_from_row).collect()
    }

    async fn get_document(&self, id: DocumentId) -> StoreResult<Document> {
        let q = query(&format!("MATCH (n:Notebook)-[:CONTAINS]->(d:Document {{id: $id}}) {DOCUMENT_RETURN}"))
            .param("id", id.to_string());
        let row = self.optional_row(q).await?.ok_or(StoreError::NotFound)?;
        document_from_row(&row)
    }

    async fn list_documents(&self, notebook: NotebookId, page: PageRequest) -> StoreResult<Page<Document>> {
        let q = query(&format!(
            "MATCH (n:Notebook {{id: $notebook}})-[:CONTAINS]->(d:Document) WHERE $after IS NULL OR d.id < $after \
             WITH n, d ORDER BY d.id DESC LIMIT $limit {}",
            listed(DOCUMENT_RETURN)
        ))
        .param("notebook", notebook.to_string())
        .param("after", after_param(&page))
        .param("limit", limit_param(&page));
        let documents = self.rows(q).await?.iter().map(document_from_row).collect::<StoreResult<Vec<_>>>()?;
        Ok(Page::from_overfetch(documents, page.limit, |document| document.id.as_uuid()))
    }

    async fn update_document(&self, id: DocumentId, patch: DocumentPatch, change: &Change) -> StoreResult<Document> {
        let change = change.clone();
        in_txn_retrying(&self.graph, async move |txn: &mut Txn| {
            let patch = patch.clone();
            let mut document = lock_document(txn, id).await?;
            let mut record = ChangeRecord::new(document.notebook_id, "document_updated", "update")
                .with("document_id", id.to_string());
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
            let q = query(&format!(
                "MATCH (n:Notebook)-[:CONTAINS]->(d:Document {{id: $id}}) SET d.original_filename = $filename, \
                 d.description = $description, d.tags = $tags, d.updated_at = datetime($at) WITH n, d {DOCUMENT_RETURN}"
            ))
            .param("id", id.to_string())
            .param("filename", document.original_filename.as_str())
            .param("description", document.description.as_ref().map(|d| d.as_str().to_owned()))
            .param("tags", document.tags.iter().map(|t| t.as_str().to_owned()).collect::<Vec<_>>())
            .param("at", storage(&change.at));
            let row = txn_rows(txn, q).await?.into_iter().next().ok_or(StoreError::NotFound)?;
            record_change(txn, &change, record).await?;
            document_from_row(&row)
        })
        .await
    }

    async fn delete_document(&self, id: DocumentId, change: &Change) -> StoreResult<()> {
        let change = change.clone();
        in_txn_retrying(&self.graph, async move |txn: &mut Txn| {
            let document = lock_document(txn, id).await?;
            let q =
                query(&format!("MATCH (d:Document {{id: $id}})-[:VERSION_OF]->(v:DocumentVersion) {VERSION_RETURN}"))
                    .param("id", id.to_string());
            let versions = txn_rows(txn, q).await?.iter().map(version_from_row).collect::<StoreResult<Vec<_>>>()?;
            let keys: Vec<BlobKey> = versions
                .iter()
                .flat_map(|v| [Some(v.storage_path.clone()), v.redacted_path.clone(), v.thumbnail_path.clone()])
                .flatten()
                .collect();
            let stored: u64 = versions.iter().map(|v| v.file_size).sum();
            queue_deletions(txn, &keys, &change.at).await?;
            let q = query(
                "MATCH (n:Notebook)-[:CONTAINS]->(d:Document {id: $id}) \
                 SET n.document_count = CASE WHEN n.document_count > 0 THEN n.document_count - 1 ELSE 0 END, \
                   n.total_size_bytes = CASE WHEN n.total_size_bytes > $stored THEN n.total_size_bytes - $stored \
                     ELSE 0 END \
                 WITH d OPTIONAL MATCH (d)-[:VERSION_OF]->(v:DocumentVersion) DETACH DELETE v, d",
            )
            .param("id", id.to_string())
            .param("stored", signed(stored));
            txn.run(q).await.map_err(map_err)?;
            let record = ChangeRecord::new(document.notebook_id, "document_deleted", "delete")
                .with("document_id", id.to_string())
                .with("original_filename", document.original_filename.as_str());
            record_change(txn, &change, record).await
        })
        .await
    }

    async fn list_versions(&self, id: DocumentId) -> StoreResult<Vec<DocumentVersion>> {
        let q = query(&format!(
            "MATCH (d:Document {{id: $id}})-[:VERSION_OF]->(v:DocumentVersion) \
             WITH d, v ORDER BY v.version_number DESC {VERSION_RETURN}"
        ))
        .param("id", id.to_string());
        let versions = self.rows(q).await?.iter().map(version_from_row).collect::<StoreResult<Vec<_>>>()?;
        if versions.is_empty() {
            return Err(StoreError::NotFound);
        }
        Ok(versions)
    }

    async fn queue_blob_deletions(&self, keys: &[BlobKey], at: Timestamp) -> StoreResult<()> {
        let keys = keys.to_vec();
        in_txn_retrying(&self.graph, async move |txn: &mut Txn| queue_deletions(txn, &keys, &at).await).await
    }

    async fn pending_blob_deletions(&self, limit: u32) -> StoreResult<Vec<BlobDeletion>> {
        let q = query(
            "MATCH (b:BlobDeletion) WITH b ORDER BY b.id LIMIT $limit \
             RETURN b.id AS id, b.blob_key AS blob_key, toString(b.queued_at) AS queued_at",
        )
        .param("limit", i64::from(limit));
        self.rows(q)
            .await?
            .iter()
            .map(|row| {
                let text = |column: &str| row.get::<String>(column).map_err(|e| StoreError::Corrupt(e.to_string()));
                Ok(BlobDeletion {
                    id: uuid::Uuid::try_parse(&text("id")?).map_err(|_| corrupt("id"))?,
                    key: key(&text("blob_key")?)?,
                    queued_at: ts(&text("queued_at")?)?,
                })
            })
            .collect()
    }

    async fn complete_blob_deletions(&self, ids: &[uuid::Uuid]) -> StoreResult<()> {
        let q = query("UNWIND $ids AS id MATCH (b:BlobDeletion {id: id}) DELETE b")
            .param("ids", ids.iter().map(|id| id.to_string()).collect::<Vec<_>>());
        self.graph.run(q).await.map_err(map_err)
    }

    async fn blob_is_referenced(&self, key: &BlobKey) -> StoreResult<bool> {
        let q = query(
            "OPTIONAL MATCH (v:DocumentVersion) WHERE v.storage_path = $key OR v.redacted_path = $key \
               OR v.thumbnail_path = $key \
             WITH count(v) AS versions \
             OPTIONAL MATCH (j:UploadJob {blob_key: $key}) WHERE NOT j.status IN ['completed', 'failed', 'cancelled'] \
             WITH versions, count(j) AS jobs RETURN versions + jobs AS found",
        )
        .param("key", key.as_str());
        let row = self.optional_row(q).await?.ok_or_else(|| StoreError::Internal("no row".into()))?;
        let found: i64 = row.get("found").map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(found > 0)
    }
}
