//! Uploads: the job recorded before the bytes arrive, the body streamed into
//! object storage (hashed, counted and sniffed on the way), and the jobs' own reads
//! and cancellation.

use std::time::{Duration, Instant};

use aether_domain::access::Permission;
use aether_domain::auth::Principal;
use aether_domain::document::Filename;
use aether_domain::document::JobFailure;
use aether_domain::id::{DocumentId, JobId, NotebookId};
use aether_domain::job::{CallbackUrl, JobOrigin, JobStatus, NewUploadJob, ReceivedFile, UploadJob};
use aether_domain::page::{Page, PageRequest};
use aether_domain::time;
use aether_domain::{StoreError, ValidationError};
use bytes::Bytes;
use futures::{Stream, StreamExt as _};
use sha2::{Digest as _, Sha256};

use super::{DocumentService, job_finished, rejected};
use crate::avatars::blob_error;
use crate::error::{ServiceError, ServiceResult};

/// Why an upload's body ended before its last byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// The request went past the bound on a whole upload request (`limit` bytes).
    TooLarge { limit: u64 },
    /// The connection broke off or the body was malformed.
    Broken(String),
}

/// Where an upload goes and what the client said about it.
#[derive(Debug, Clone)]
pub struct UploadRequest {
    pub notebook_id: NotebookId,
    pub existing_document: Option<DocumentId>,
    pub filename: Filename,
    pub change_summary: Option<String>,
    pub callback_url: Option<CallbackUrl>,
    pub expected_bytes: Option<u64>,
    /// The request that starts the upload.
    pub origin: JobOrigin,
}

impl DocumentService {
    /// Records the job of an upload the caller may make, before its bytes arrive.
    pub async fn start_upload(&self, caller: &Principal, request: UploadRequest) -> ServiceResult<UploadJob> {
        self.require(caller, request.notebook_id, Permission::Write).await?;
        if request.expected_bytes.is_some_and(|size| size > self.settings.max_upload_bytes) {
            return Err(self.too_large());
        }
        if let Some(url) = &request.callback_url {
            self.settings
                .outbound
                .check_url(url.scheme(), url.host().as_deref())
                .map_err(|refusal| ValidationError::new("callback_url", format!("cannot be called: {refusal}")))?;
        }
        let job = self
            .store
            .jobs
            .create_upload_job(NewUploadJob {
                id: JobId::new(),
                notebook_id: request.notebook_id,
                uploaded_by: caller.user_id,
                existing_document: request.existing_document,
                filename: request.filename,
                change_summary: request.change_summary,
                callback_url: request.callback_url,
                expected_bytes: request.expected_bytes,
                storage_provider: self.blobs.backend_name().to_owned(),
                origin: request.origin,
                at: time::now(),
            })
            .await
            .map_err(|error| match (error, request.existing_document) {
                (StoreError::NotFound, Some(_)) => rejected("document_not_found", "No such document in this notebook."),
                (error, _) => error.into(),
            })?;
        tracing::info!(job_id = %job.id, notebook_id = %job.notebook_id, "upload started");
        Ok(job)
    }

    /// The largest file an upload may carry.
    pub fn max_upload_bytes(&self) -> u64 {
        self.settings.max_upload_bytes
    }

    fn too_large(&self) -> ServiceError {
        rejected("file_too_large", format!("Files may be at most {} bytes.", self.settings.max_upload_bytes))
    }

    /// Streams the upload's bytes into storage, hashing and counting them, and
    /// accepts the job. On any failure the job fails with a reason and its blob is
    /// queued for deletion.
    pub async fn receive_upload<S>(&self, job: UploadJob, mut body: S) -> ServiceResult<UploadJob>
    where
        S: Stream<Item = Result<Bytes, BodyError>> + Unpin + Send,
    {
        let mut writer = match self.blobs.writer(&job.blob_key).await {
            Ok(writer) => writer,
            Err(error) => {
                self.fail(&job, JobFailure::new("storage_unavailable", error.to_string())).await;
                return Err(blob_error(error));
            }
        };
        let mut hasher = Sha256::new();
        let mut received: u64 = 0;
        let mut head: Vec<u8> = Vec::new();
        let mut reported: u64 = 0;
        let mut last_report = Instant::now();
        let outcome: Result<(), (JobFailure, ServiceError)> = async {
            loop {
                // Progress is written at most every PROGRESS_INTERVAL, and also when
                // the body pauses, so a stalled upload shows what has arrived.
                let next = tokio::time::timeout(PROGRESS_INTERVAL, body.next()).await;
                let chunk = match next {
                    Ok(None) => break,
                    Ok(Some(chunk)) => Some(chunk.map_err(|error| match error {
                        BodyError::TooLarge { limit } => {
                            let failure = JobFailure::new("payload_too_large", "The request was larger than allowed.");
                            let detail = format!("An upload request may carry at most {limit} bytes.");
                            (failure, rejected("payload_too_large", detail))
                        }
                        BodyError::Broken(error) => {
                            let failure =
                                JobFailure::new("upload_interrupted", format!("The upload broke off: {error}"));
                            (failure, rejected("upload_interrupted", "The request body could not be read."))
                        }
                    })?),
                    Err(_) => None,
                };
                if let Some(chunk) = chunk {
                    received += chunk.len() as u64;
                    if received > self.settings.max_upload_bytes {
                        let failure = JobFailure::new("file_too_large", "The file is larger than allowed.");
                        return Err((failure, self.too_large()));
                    }
                    hasher.update(&chunk);
                    if head.len() < SNIFF_BYTES {
                        head.extend_from_slice(&chunk[..chunk.len().min(SNIFF_BYTES - head.len())]);
                    }
                    writer.write(chunk).await.map_err(|error| {
                        (JobFailure::new("storage_unavailable", error.to_string()), blob_error(error))
                    })?;
                    if last_report.elapsed() < PROGRESS_INTERVAL {
                        continue;
                    }
                } else if received == reported {
                    continue;
                }
                last_report = Instant::now();
                reported = received;
                match self.store.jobs.record_upload_progress(job.id, received, time::now()).await {
                    // Cancelled by a user, or failed by the stale-upload sweep.
                    Ok(current) if current.status.is_terminal() => {
                        return Err((JobFailure::new("cancelled", "cancelled"), job_finished(&current)));
                    }
                    Ok(current) => self.hub.publish(&current),
                    Err(error) => tracing::warn!(%error, job_id = %job.id, "could not record upload progress"),
                }
            }
            Ok(())
        }
        .await;
        if let Err((failure, error)) = outcome {
            if let Err(abort) = writer.abort().await {
                tracing::warn!(error = %abort, job_id = %job.id, "could not abort a streamed write");
            }
            if failure.code != "cancelled" {
                self.fail(&job, failure).await;
            }
            return Err(error);
        }
        if let Err(error) = writer.finish().await {
            self.fail(&job, JobFailure::new("storage_unavailable", error.to_string())).await;
            return Err(blob_error(error));
        }
        let sniffed = aether_extract::sniff(&head, job.filename.as_str());
        let file =
            ReceivedFile { size: received, sha256: hex::encode(hasher.finalize()), content_type: sniffed.content_type };
        match self.store.jobs.accept_upload(job.id, file, time::now()).await {
            Ok(accepted) => {
                tracing::info!(job_id = %job.id, bytes = received, "upload stored");
                self.changed(&accepted, Some(JobStatus::Uploading));
                self.work_ready.notify_one();
                Ok(accepted)
            }
            Err(StoreError::Conflict(_)) => {
                // Cancelled while the last bytes were written: the deletion queued
                // by the cancellation may have run before the blob existed.
                let _ = self.store.blob_deletions.queue_blob_deletions(&job.written_keys(), time::now()).await;
                let current = self.store.jobs.get_job(job.id).await?;
                Err(job_finished(&current))
            }
            Err(error) => Err(error.into()),
        }
    }

    #[tracing::instrument(name = "job.fail", skip_all, fields(job_id = %job.id, code = %failure.code))]
    pub(super) async fn fail(&self, job: &UploadJob, failure: JobFailure) {
        tracing::info!(job_id = %job.id, code = %failure.code, "job failed");
        match self.store.jobs.fail_job(job.id, failure, time::now()).await {
            Ok(failed) => self.changed(&failed, Some(job.status)),
            Err(error) => tracing::warn!(%error, job_id = %job.id, "could not record a job failure"),
        }
    }

    /// A job the caller may read (through its notebook).
    pub async fn job(&self, caller: &Principal, id: JobId) -> ServiceResult<UploadJob> {
        let job = self.store.jobs.get_job(id).await?;
        self.require(caller, job.notebook_id, Permission::Read).await?;
        Ok(job)
    }

    /// Cancels an unfinished job: its uploader or a writer of the notebook may.
    pub async fn cancel(&self, caller: &Principal, id: JobId) -> ServiceResult<UploadJob> {
        let job = self.job(caller, id).await?;
        if job.uploaded_by != caller.user_id {
            self.require(caller, job.notebook_id, Permission::Write).await?;
        }
        if job.status.is_terminal() {
            return Err(job_finished(&job));
        }
        let cancelled = match self.store.jobs.cancel_job(id, time::now()).await {
            Ok(cancelled) => cancelled,
            Err(StoreError::Conflict(_)) => return Err(job_finished(&self.store.jobs.get_job(id).await?)),
            Err(error) => return Err(error.into()),
        };
        tracing::info!(job_id = %id, "job cancelled");
        if let (Some(external), Some(file_id)) = (&self.external, &cancelled.external_id)
            && let Err(error) = external.processor.cancel(file_id).await
        {
            tracing::warn!(%error, job_id = %id, "could not cancel the job at AudiModal");
        }
        self.changed(&cancelled, Some(job.status));
        Ok(cancelled)
    }

    pub async fn notebook_jobs(
        &self,
        caller: &Principal,
        notebook: NotebookId,
        active_only: bool,
        page: PageRequest,
    ) -> ServiceResult<Page<UploadJob>> {
        self.require(caller, notebook, Permission::Read).await?;
        Ok(self.store.jobs.list_notebook_jobs(notebook, active_only, page).await?)
    }
}

/// Bytes kept from the start of an upload to sniff its type.
const SNIFF_BYTES: usize = 64 * 1024;
/// How often upload progress is written to the store.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(500);
