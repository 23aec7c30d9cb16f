//! Upload jobs, documents and versions on Neo4j: `(:UploadJob)`,
//! `(:Notebook)-[:CONTAINS {added_at}]->(:Document)`,
//! `(:Document)-[:VERSION_OF {version_number, created_at}]->(:DocumentVersion)` and
//! `(:BlobDeletion)`. Maps are JSON strings, as elsewhere. Every use case that
//! reads a job or document and then writes it takes the node's write lock first,
//! then asks the domain what the change is (job transitions, what finishing stores,
//! where an upload goes) and writes it.

use aether_domain::StoreError;
use aether_domain::activity::{Change, ChangeRecord};
use aether_domain::blob::BlobKey;
use aether_domain::chunk;
use aether_domain::document::JobFailure;
use aether_domain::document::{self, BlobDeletion, Document, DocumentPatch, DocumentVersion, ProcessingResult};
use aether_domain::id::{DocumentId, JobId, NotebookId};
use aether_domain::job;
use aether_domain::job::{JobEnd, JobStatus, NewUploadJob, ReceivedFile, UploadJob, job_status_conflict};
use aether_domain::page::{Page, PageRequest, SortOrder};
use aether_domain::store::{BlobDeletionStore, DocumentStore, JobStore, StoreResult};
use aether_domain::time::Timestamp;
use async_trait::async_trait;
use neo4rs::{Txn, query};

use crate::Neo4jStore;
use crate::activity::record_change;
use crate::outbox::insert_event;
use crate::rows::{
    DOCUMENT_RETURN, JOB_RETURN, VERSION_RETURN, VersionRecord, column, corrupt, document_from_row, from_row,
    from_rows, job_from_row, key, listed, map_json, signed, storage, tag_names, ts, unsigned,
};
use crate::search::{write_chunks, write_heading};
use crate::txn::{in_txn_retrying, map_err, txn_row, txn_rows};

/// A notebook's jobs (only unfinished ones when `$active`): the first `$limit` below
/// `$bound`, newest first along `upload_job_notebook_keyset`; [`JOB_RETURN`] follows.
pub(crate) const NOTEBOOK_JOBS: &str = "MATCH (j:UploadJob) USING INDEX j:UploadJob(notebook_id, id) \
     WHERE j.notebook_id = $notebook AND j.id < $bound \
     AND (NOT $active OR NOT j.status IN ['completed', 'failed', 'cancelled']) \
     WITH j ORDER BY j.notebook_id DESC, j.id DESC LIMIT $limit";

/// A notebook's documents: the first `$limit` below `$bound`, newest first along
/// `document_notebook_keyset`, with their notebook; [`DOCUMENT_RETURN`] follows.
pub(crate) const DOCUMENTS: &str = "MATCH (d:Document) USING INDEX d:Document(notebook_id, id) \
     WHERE d.notebook_id = $notebook AND d.id < $bound \
     WITH d ORDER BY d.notebook_id DESC, d.id DESC LIMIT $limit MATCH (n:Notebook)-[:CONTAINS]->(d)";

/// A document's versions: the first `$limit` numbered below `$below`, highest first
/// along `document_version_keyset`; [`VERSION_RETURN`] follows. The bound is a
/// parameter: read from a previous row, it would hide the index's order from the
/// planner, which then sorts every version.
pub(crate) const VERSIONS: &str = "MATCH (v:DocumentVersion) USING INDEX v:DocumentVersion(document_id, version_number) \
     WHERE v.document_id = $id AND v.version_number < $below \
     WITH v ORDER BY v.document_id DESC, v.version_number DESC LIMIT $limit \
     MATCH (d:Document)-[:VERSION_OF]->(v)";

/// Takes the job's write lock and reads it as committed.
async fn lock_job(txn: &mut Txn, id: JobId) -> StoreResult<UploadJob> {
    let q = query(&format!("MATCH (j:UploadJob {{id: $id}}) SET j.updated_at = j.updated_at WITH j {JOB_RETURN}"))
        .param("id", id.to_string());
    let row = txn_row(txn, q).await?.ok_or(StoreError::NotFound)?;
    job_from_row(&row)
}

/// Takes the document's write lock and reads it as committed.
/// [`lock_document`], or `None` when the document is gone.
pub(crate) async fn lock_document_if_live(txn: &mut Txn, id: DocumentId) -> StoreResult<Option<Document>> {
    match lock_document(txn, id).await {
        Ok(document) => Ok(Some(document)),
        Err(StoreError::NotFound) => Ok(None),
        Err(error) => Err(error),
    }
}

async fn lock_document(txn: &mut Txn, id: DocumentId) -> StoreResult<Document> {
    let q = query(&format!(
        "MATCH (n:Notebook)-[:CONTAINS]->(d:Document {{id: $id}}) SET d.updated_at = d.updated_at \
         WITH n, d {DOCUMENT_RETURN}"
    ))
    .param("id", id.to_string());
    let row = txn_row(txn, q).await?.ok_or(StoreError::NotFound)?;
    document_from_row(&row)
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

async fn reread_job(txn: &mut Txn, id: JobId) -> StoreResult<UploadJob> {
    let q = query(&format!("MATCH (j:UploadJob {{id: $id}}) {JOB_RETURN}")).param("id", id.to_string());
    let row = txn_row(txn, q).await?.ok_or(StoreError::NotFound)?;
    job_from_row(&row)
}

/// Writes how a job ended: its status, stage and failure, no lease, finished at `at`.
async fn end_job(txn: &mut Txn, id: JobId, end: &JobEnd, at: &Timestamp) -> StoreResult<()> {
    let q = query(
        "MATCH (j:UploadJob {id: $id}) SET j.status = $status, j.stage = $stage, j.failure_code = $code, \
         j.failure_message = $message, j.lease_until = null, j.updated_at = datetime($at), \
         j.finished_at = datetime($at)",
    )
    .param("id", id.to_string())
    .param("status", end.status.as_str())
    .param("stage", end.stage)
    .param("code", end.failure.as_ref().map(|f| f.code.clone()))
    .param("message", end.failure.as_ref().map(|f| f.message.clone()))
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
            let end = job.abandon(status, failure.clone())?;
            end_job(txn, id, &end, &at).await?;
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
                 SET j.status = $validating, j.stage = $validating, j.attempts = j.attempts + 1, \
                   j.lease_until = datetime($lease), j.updated_at = datetime($now) \
                 WITH j {JOB_RETURN}"
            ))
            .param("only", only.clone())
            .param("validating", JobStatus::Validating.as_str())
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
impl JobStore for Neo4jStore {
    async fn create_upload_job(&self, new: NewUploadJob) -> StoreResult<UploadJob> {
        in_txn_retrying(&self.graph, async move |txn: &mut Txn| {
            let live = query("MATCH (n:Notebook {id: $id}) WHERE n.status <> 'deleted' RETURN n.id AS id")
                .param("id", new.notebook_id.to_string());
            if txn_rows(txn, live).await?.is_empty() {
                return Err(StoreError::NotFound);
            }
            let existing = match new.existing_document {
                Some(existing) => Some(lock_document(txn, existing).await?),
                None => None,
            };
            let target = new.target(existing.as_ref())?;
            let q = query(&format!(
                "CREATE (j:UploadJob {{id: $id, notebook_id: $notebook, uploaded_by: $user, document_id: $document, \
                 version_id: $version, new_version: $new_version, filename: $filename, change_summary: $summary, \
                 callback_url: $callback, status: $status, stage: $stage, bytes_received: 0, \
                 expected_bytes: $expected, blob_key: $key, storage_provider: $provider, attempts: 0, \
                 origin_request_id: $request_id, origin_traceparent: $traceparent, \
                 created_at: datetime($at), updated_at: datetime($at)}}) {JOB_RETURN}"
            ))
            .param("id", new.id.to_string())
            .param("notebook", new.notebook_id.to_string())
            .param("user", new.uploaded_by.to_string())
            .param("document", target.document_id.to_string())
            .param("version", target.version_id.to_string())
            .param("new_version", target.new_version)
            .param("status", JobStatus::Uploading.as_str())
            .param("stage", job::STAGE_RECEIVING)
            .param("filename", new.filename.as_str())
            .param("summary", new.change_summary.clone())
            .param("callback", new.callback_url.as_ref().map(|c| c.as_str().to_owned()))
            .param("expected", new.expected_bytes.map(signed))
            .param("key", target.blob_key.as_str())
            .param("provider", new.storage_provider.clone())
            .param("request_id", new.origin.request_id.clone())
            .param("traceparent", new.origin.traceparent.clone())
            .param("at", storage(&new.at));
            let row = txn_row(txn, q).await?.ok_or(StoreError::NotFound)?;
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
        let q = query(&format!("{NOTEBOOK_JOBS} {JOB_RETURN} ORDER BY id DESC"))
            .param("notebook", notebook.to_string())
            .param("active", active_only)
            .param("bound", page.bound(SortOrder::NewestFirst))
            .param("limit", page.fetch());
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
            lock_job(txn, id).await?.check_accept()?;
            let q = query(
                "MATCH (j:UploadJob {id: $id}) SET j.status = $status, j.stage = $stage, \
                 j.bytes_received = $size, j.file_size = $size, j.file_hash = $hash, j.content_type = $type, \
                 j.updated_at = datetime($at)",
            )
            .param("id", id.to_string())
            .param("status", JobStatus::Pending.as_str())
            .param("stage", job::STAGE_QUEUED)
            .param("size", signed(file.size))
            .param("hash", file.sha256.clone())
            .param("type", file.content_type.clone())
            .param("at", storage(&at));
            txn.run(q).await.map_err(map_err)?;
            let job = reread_job(txn, id).await?;
            for event in job::accepted_events(&job) {
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
            lock_job(txn, id).await?.check_worked_on()?;
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
            lock_job(txn, id).await?.check_worked_on()?;
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
            let finished = job.finish(&result)?;
            let current_version = if job.new_version {
                Some(lock_document(txn, job.document_id).await?.current_version)
            } else {
                let q = query(
                    "MATCH (n:Notebook {id: $notebook}) \
                     CREATE (n)-[:CONTAINS {added_at: datetime($at)}]->(:Document {id: $id, notebook_id: n.id, \
                       uploaded_by: $user, uploaded_at: datetime($uploaded), tags: []})",
                )
                .param("notebook", job.notebook_id.to_string())
                .param("id", job.document_id.to_string())
                .param("user", job.uploaded_by.to_string())
                .param("uploaded", storage(&job.created_at))
                .param("at", storage(&at));
                txn.run(q).await.map_err(map_err)?;
                None
            };
            let version_number = job.version_number(current_version);
            let file = &finished.file;
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
                   id: $version_id, document_id: d.id, version_number: $version, original_filename: $filename, \
                   content_type: $type, storage_path: $key, redacted_path: $redacted_path, \
                   thumbnail_path: $thumbnail_path, \
                   file_size: $size, file_hash: $hash, change_summary: $summary, created_by: $user, \
                   created_at: datetime($at)}) \
                 WITH d MATCH (n:Notebook)-[:CONTAINS]->(d) \
                 SET n.document_count = coalesce(n.document_count, 0) + $documents_added, \
                   n.total_size_bytes = coalesce(n.total_size_bytes, 0) + $bytes_added",
            )
            .param("id", job.document_id.to_string())
            .param("filename", job.filename.as_str())
            .param("type", finished.content_type.clone())
            .param("size", signed(file.size))
            .param("hash", file.sha256.clone())
            .param("provider", job.storage_provider.clone())
            .param("key", job.blob_key.as_str())
            .param("status", finished.processing_status.as_str())
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
            .param("search", result.search_text(&job.filename))
            .param("version", i64::from(version_number))
            .param("version_id", job.version_id.to_string())
            .param("summary", job.change_summary.clone())
            .param("user", job.uploaded_by.to_string())
            .param("documents_added", signed(finished.documents_added))
            .param("bytes_added", signed(finished.bytes_added))
            .param("at", storage(&at));
            txn.run(q).await.map_err(map_err)?;
            end_job(txn, id, &finished.end, &at).await?;
            let job = reread_job(txn, id).await?;
            let document = lock_document(txn, job.document_id).await?;
            let chunks = chunk::document_chunks(
                &document.original_filename,
                document.description.as_ref(),
                &document.tags,
                result.readers_text(),
            );
            write_chunks(txn, document.id, document.notebook_id, &chunks).await?;
            let record = ChangeRecord::document_added(&job, &document);
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
                let status: String = column(row, "status")?;
                Ok((
                    JobStatus::parse(&status).map_err(|_| corrupt("job status"))?,
                    unsigned(column(row, "n")?, "count")?,
                ))
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
}

#[async_trait]
impl DocumentStore for Neo4jStore {
    async fn get_document(&self, id: DocumentId) -> StoreResult<Document> {
        let q = query(&format!("MATCH (n:Notebook)-[:CONTAINS]->(d:Document {{id: $id}}) {DOCUMENT_RETURN}"))
            .param("id", id.to_string());
        let row = self.optional_row(q).await?.ok_or(StoreError::NotFound)?;
        document_from_row(&row)
    }

    async fn list_documents(&self, notebook: NotebookId, page: PageRequest) -> StoreResult<Page<Document>> {
        let q = query(&format!("{DOCUMENTS} {} ORDER BY id DESC", listed(DOCUMENT_RETURN)))
            .param("notebook", notebook.to_string())
            .param("bound", page.bound(SortOrder::NewestFirst))
            .param("limit", page.fetch());
        let documents = self.rows(q).await?.iter().map(document_from_row).collect::<StoreResult<Vec<_>>>()?;
        Ok(Page::from_overfetch(documents, page.limit, |document| document.id.as_uuid()))
    }

    async fn update_document(&self, id: DocumentId, patch: DocumentPatch, change: &Change) -> StoreResult<Document> {
        let change = change.clone();
        in_txn_retrying(&self.graph, async move |txn: &mut Txn| {
            let patch = patch.clone();
            let mut document = lock_document(txn, id).await?;
            let record = ChangeRecord::document_updated(&document, &patch);
            document.apply_patch(patch);
            let q = query(&format!(
                "MATCH (n:Notebook)-[:CONTAINS]->(d:Document {{id: $id}}) SET d.original_filename = $filename, \
                 d.description = $description, d.tags = $tags, d.updated_at = datetime($at) WITH n, d {DOCUMENT_RETURN}"
            ))
            .param("id", id.to_string())
            .param("filename", document.original_filename.as_str())
            .param("description", document.description.as_ref().map(|d| d.as_str().to_owned()))
            .param("tags", tag_names(&document.tags))
            .param("at", storage(&change.at));
            let row = txn_row(txn, q).await?.ok_or(StoreError::NotFound)?;
            record_change(txn, &change, record).await?;
            let document = document_from_row(&row)?;
            write_heading(txn, &document).await?;
            Ok(document)
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
            let versions = from_rows::<VersionRecord, DocumentVersion>(&txn_rows(txn, q).await?)?;
            let (keys, stored) = document::freed_by_deletion(&versions);
            queue_deletions(txn, &keys, &change.at).await?;
            write_chunks(txn, id, document.notebook_id, &[]).await?;
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
            record_change(txn, &change, ChangeRecord::document_deleted(&document)).await
        })
        .await
    }

    async fn list_versions(&self, id: DocumentId, page: PageRequest) -> StoreResult<Page<DocumentVersion>> {
        // Versions are walked by number; the cursor is a version's id, whose number
        // bounds the next page. A cursor naming no version of the document ends the walk.
        let below = match page.after {
            None => i64::from(u32::MAX) + 1,
            Some(after) => {
                let q =
                    query("MATCH (v:DocumentVersion {id: $after, document_id: $id}) RETURN v.version_number AS number")
                        .param("after", after.hyphenated().to_string())
                        .param("id", id.to_string());
                match self.optional_row(q).await? {
                    Some(row) => column(&row, "number")?,
                    None => return Ok(Page { items: Vec::new(), next_after: None }),
                }
            }
        };
        let q = query(&format!("{VERSIONS} {VERSION_RETURN} ORDER BY version_number DESC"))
            .param("id", id.to_string())
            .param("below", below)
            .param("limit", page.fetch());
        let versions = from_rows::<VersionRecord, DocumentVersion>(&self.rows(q).await?)?;
        if versions.is_empty() && page.after.is_none() {
            // Every stored document has a version, so none means no document.
            return Err(StoreError::NotFound);
        }
        Ok(Page::from_overfetch(versions, page.limit, |version| version.id.as_uuid()))
    }

    async fn get_version(&self, id: DocumentId, number: u32) -> StoreResult<DocumentVersion> {
        let q = query(&format!(
            "MATCH (v:DocumentVersion {{document_id: $id, version_number: $number}}) \
             MATCH (d:Document)-[:VERSION_OF]->(v) {VERSION_RETURN}"
        ))
        .param("id", id.to_string())
        .param("number", i64::from(number));
        let row = self.optional_row(q).await?.ok_or(StoreError::NotFound)?;
        from_row::<VersionRecord, DocumentVersion>(&row)
    }
}

#[async_trait]
impl BlobDeletionStore for Neo4jStore {
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
                let text = |name: &str| column::<String>(row, name);
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
        let found: i64 = column(&row, "found")?;
        Ok(found > 0)
    }
}
