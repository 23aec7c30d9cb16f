//! The jobs that bring documents in.
//!
//! An upload is a job first. The job is recorded before any byte is written, with
//! the blob key its bytes will have, so that a crash at any point leaves a record
//! that names every blob it may have written: recovery either finishes the job or
//! fails it and queues those blobs for deletion. The `Document` (or, for a
//! re-upload, its new `DocumentVersion`) is created when processing ends, in the
//! transaction that completes the job.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::activity::ChangeRecord;
use crate::blob::BlobKey;
use crate::document::{
    Document, Filename, JobFailure, ProcessingResult, ProcessingStatus, REDACTED_NAME, THUMBNAIL_NAME, derived_key,
    original_key,
};
use crate::events::{NewEvent, topics};
use crate::id::{DocumentId, JobId, NotebookId, UserId, VersionId};
use crate::time::Timestamp;
use crate::{StoreError, ValidationError};

/// An `http(s)` URL the job's owner wants status changes POSTed to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CallbackUrl(String);

impl CallbackUrl {
    pub const MAX_LEN: usize = 2048;

    /// An `http`/`https` URL of at most 2,048 bytes, written as
    /// `scheme://host[:port][/path]`: the scheme in lower case, the host a DNS name of
    /// letter-digit-hyphen labels whose last label starts with a letter, a dotted IPv4
    /// address or a bracketed IPv6 address, a port from 1 to 65535 without leading zeros,
    /// and a path of visible ASCII. No user information, no internationalized (`xn--`)
    /// names. The OpenAPI document's `CallbackUrl` pattern states the same grammar for
    /// names, so what it offers is exactly what this accepts. Whether the server may call
    /// the host is the outbound policy's question (`crate::outbound`): addresses and
    /// single-label names parse here and are refused there unless allow-listed.
    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        let invalid = |why: &str| ValidationError::new("callback_url", why);
        if text.len() > Self::MAX_LEN {
            return Err(invalid("must be at most 2048 bytes"));
        }
        let rest = text
            .strip_prefix("https://")
            .or_else(|| text.strip_prefix("http://"))
            .ok_or_else(|| invalid("must start with http:// or https://"))?;
        let (authority, path) = rest.find('/').map_or((rest, ""), |at| rest.split_at(at));
        if !path.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid("must have a path of visible ASCII characters"));
        }
        let host = match authority.rsplit_once(':') {
            // A bracketed IPv6 address without a port, or an unbracketed one (refused below).
            Some((host, _)) if !host.ends_with(']') && host.contains(':') => authority,
            Some((host, port)) => {
                let valid = !port.starts_with('0')
                    && port.bytes().all(|b| b.is_ascii_digit())
                    && port.parse::<u16>().is_ok_and(|port| port > 0);
                if !valid {
                    return Err(invalid("must have a port from 1 to 65535"));
                }
                host
            }
            None => authority,
        };
        if !is_callback_host(host) {
            return Err(invalid("must name a DNS host, an IPv4 address or a bracketed IPv6 address"));
        }
        let url = url::Url::parse(text).map_err(|_| invalid("must be an http or https URL"))?;
        Ok(Self(url.into()))
    }
    pub fn scheme(&self) -> &str {
        self.0.split_once("://").map_or("", |(scheme, _)| scheme)
    }

    /// The host, as the URL names it (an IPv6 address in brackets).
    pub fn host(&self) -> Option<String> {
        url::Url::parse(&self.0).ok().and_then(|url| url.host_str().map(str::to_owned))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether `host` is what `CallbackUrl::parse` accepts as a host.
fn is_callback_host(host: &str) -> bool {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse::<std::net::Ipv6Addr>().is_ok();
    }
    if host.parse::<std::net::Ipv4Addr>().is_ok() {
        return true;
    }
    let label_is_ldh = |label: &str| {
        label.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    let last_starts_with_letter =
        host.rsplit('.').next().and_then(|last| last.bytes().next()).is_some_and(|b| b.is_ascii_alphabetic());
    host.split('.').all(label_is_ldh) && last_starts_with_letter && !host.to_ascii_lowercase().contains("xn--")
}

/// The design's job statuses, in the order a job normally passes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Bytes are stored; waiting for a worker.
    Pending,
    /// The client is still sending the file.
    Uploading,
    /// A worker checks the file (type, policy, viruses).
    Validating,
    /// A worker extracts text and metadata and scans for personal data.
    Processing,
    Completed,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub const ALL: [JobStatus; 7] = [
        Self::Pending,
        Self::Uploading,
        Self::Validating,
        Self::Processing,
        Self::Completed,
        Self::Failed,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Uploading => "uploading",
            Self::Validating => "validating",
            Self::Processing => "processing",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
            .ok_or_else(|| ValidationError::new("status", "unknown job status"))
    }

    /// Completed, failed and cancelled jobs never change again.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }

    /// A worker holds the job under a lease.
    pub fn is_worked_on(self) -> bool {
        matches!(self, Self::Validating | Self::Processing)
    }
}

/// The stage a job shows while its bytes arrive.
pub const STAGE_RECEIVING: &str = "receiving the file";

/// The stage a job shows once its bytes are stored, waiting for a worker.
pub const STAGE_QUEUED: &str = "queued for processing";

/// The stage of a job whose processing failed but whose document is stored.
pub const STAGE_STORED_DESPITE_FAILURE: &str = "processing failed; the document is stored";

/// The answer to a job change its status does not allow.
pub fn job_status_conflict() -> StoreError {
    StoreError::Conflict("job_status".to_owned())
}

/// How a job ends: what a store writes, with the lease cleared and `finished_at` set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobEnd {
    pub status: JobStatus,
    pub stage: &'static str,
    pub failure: Option<JobFailure>,
}

/// What finishing a job stores, as `UploadJob::finish` decides it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedUpload {
    /// The bytes the job accepted: the new version's file.
    pub file: ReceivedFile,
    /// The type sniffed from the whole file, or else the one sniffed from its start.
    pub content_type: String,
    pub processing_status: ProcessingStatus,
    /// What the notebook's `document_count` grows by: 1 for a new document, 0 for a
    /// new version of one.
    pub documents_added: u64,
    /// What the notebook's `total_size_bytes` grows by.
    pub bytes_added: u64,
    pub end: JobEnd,
}

/// The first version of a document.
pub const FIRST_VERSION: u32 = 1;

/// The bytes of an upload, as received: counted and hashed while they streamed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedFile {
    pub size: u64,
    /// Lower-case hex SHA-256.
    pub sha256: String,
    /// Sniffed from the bytes, never taken from the client.
    pub content_type: String,
}

/// A `(:UploadJob)`.
#[derive(Debug, Clone, PartialEq)]
pub struct UploadJob {
    pub id: JobId,
    pub notebook_id: NotebookId,
    pub uploaded_by: UserId,
    /// The document the job creates, or adds a version to.
    pub document_id: DocumentId,
    /// The version the job creates.
    pub version_id: VersionId,
    /// Whether `document_id` existed before (a re-upload).
    pub new_version: bool,
    pub filename: Filename,
    pub change_summary: Option<String>,
    pub callback_url: Option<CallbackUrl>,
    pub status: JobStatus,
    /// What is happening now, for people ("extracting text").
    pub stage: String,
    pub bytes_received: u64,
    /// The declared size, when the client sent one.
    pub expected_bytes: Option<u64>,
    /// Set once the bytes are stored.
    pub file: Option<ReceivedFile>,
    /// Where the bytes are (or will be) stored.
    pub blob_key: BlobKey,
    pub storage_provider: String,
    pub failure: Option<JobFailure>,
    /// How many times a worker took the job.
    pub attempts: u32,
    /// A worker holds the job until then; afterwards another may take it.
    pub lease_until: Option<Timestamp>,
    /// The id an external processor (AudiModal) gave the job's file.
    pub external_id: Option<String>,
    /// The request that started the job.
    pub origin: JobOrigin,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub finished_at: Option<Timestamp>,
}

impl UploadJob {
    /// Blobs derived from the upload (redacted text, thumbnail) live beside it.
    pub fn derived_key(&self, name: &str) -> BlobKey {
        derived_key(&self.blob_key, name)
    }

    /// Every blob the job may have written, for clean-up when it fails.
    pub fn written_keys(&self) -> Vec<BlobKey> {
        vec![self.blob_key.clone(), self.derived_key(REDACTED_NAME), self.derived_key(THUMBNAIL_NAME)]
    }

    /// Accepting the bytes (`uploading` → `pending`) needs a job still uploading.
    pub fn check_accept(&self) -> Result<(), StoreError> {
        if self.status == JobStatus::Uploading { Ok(()) } else { Err(job_status_conflict()) }
    }

    /// Workers advance, renew or annotate only a job under a worker's lease
    /// (`validating` or `processing`).
    pub fn check_worked_on(&self) -> Result<(), StoreError> {
        if self.status.is_worked_on() { Ok(()) } else { Err(job_status_conflict()) }
    }

    /// Failing or cancelling an unfinished job: it ends as `status` (its stage says
    /// so too), and every blob it may have written is to be deleted.
    pub fn abandon(&self, status: JobStatus, failure: Option<JobFailure>) -> Result<JobEnd, StoreError> {
        if self.status.is_terminal() {
            return Err(job_status_conflict());
        }
        Ok(JobEnd { status, stage: status.as_str(), failure })
    }

    /// Finishing an unfinished job whose bytes were accepted, with what processing
    /// found: the document (or version) is stored either way; the job completes, or
    /// fails with the processing error while the document stays.
    pub fn finish(&self, result: &ProcessingResult) -> Result<FinishedUpload, StoreError> {
        if self.status.is_terminal() {
            return Err(job_status_conflict());
        }
        let file = self.file.clone().ok_or_else(job_status_conflict)?;
        let content_type =
            if result.content_type.is_empty() { file.content_type.clone() } else { result.content_type.clone() };
        let (processing_status, end) = match &result.error {
            Some(error) => (
                ProcessingStatus::Failed,
                JobEnd { status: JobStatus::Failed, stage: STAGE_STORED_DESPITE_FAILURE, failure: Some(error.clone()) },
            ),
            None => (
                ProcessingStatus::Completed,
                JobEnd { status: JobStatus::Completed, stage: JobStatus::Completed.as_str(), failure: None },
            ),
        };
        Ok(FinishedUpload {
            bytes_added: file.size,
            file,
            content_type,
            processing_status,
            documents_added: if self.new_version { 0 } else { 1 },
            end,
        })
    }

    /// The number of the version the job creates, given the document's current one
    /// (`None` when the job creates the document).
    pub fn version_number(&self, current: Option<u32>) -> u32 {
        current.map_or(FIRST_VERSION, |current| current + 1)
    }

    /// Overall completion, 0–100: the upload is the first half, processing the rest.
    pub fn percentage(&self) -> u8 {
        match self.status {
            JobStatus::Uploading => match self.expected_bytes {
                Some(total) if total > 0 => ((self.bytes_received.min(total) * 50) / total) as u8,
                _ => 0,
            },
            JobStatus::Pending => 50,
            JobStatus::Validating => 60,
            JobStatus::Processing => 75,
            JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled => 100,
        }
    }
}

/// What a user asks when an upload starts.
#[derive(Debug, Clone, PartialEq)]
pub struct NewUploadJob {
    pub id: JobId,
    pub notebook_id: NotebookId,
    pub uploaded_by: UserId,
    /// `Some` for a re-upload of an existing document in the notebook.
    pub existing_document: Option<DocumentId>,
    pub filename: Filename,
    pub change_summary: Option<String>,
    pub callback_url: Option<CallbackUrl>,
    pub expected_bytes: Option<u64>,
    /// The blob backend the bytes go to (`fs`, `s3`).
    pub storage_provider: String,
    pub origin: JobOrigin,
    pub at: Timestamp,
}

/// Where an upload's bytes go, decided when its job is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadTarget {
    pub document_id: DocumentId,
    /// A fresh version.
    pub version_id: VersionId,
    /// The key the version's original bytes will have.
    pub blob_key: BlobKey,
    /// A new version of an existing document.
    pub new_version: bool,
}

impl NewUploadJob {
    /// Where the upload goes: a new version of the existing document the job names
    /// (`existing`, as read from the store: `NotFound` when it is missing or belongs
    /// to another notebook), or a new document.
    pub fn target(&self, existing: Option<&Document>) -> Result<UploadTarget, StoreError> {
        let document_id = match self.existing_document {
            Some(id) => match existing {
                Some(document) if document.id == id && document.notebook_id == self.notebook_id => id,
                _ => return Err(StoreError::NotFound),
            },
            None => DocumentId::new(),
        };
        let version_id = VersionId::new();
        Ok(UploadTarget {
            document_id,
            version_id,
            blob_key: original_key(document_id, version_id),
            new_version: self.existing_document.is_some(),
        })
    }
}

/// The request that started a job, kept with it so that the job's processing can be
/// found from that request: its spans carry the request id and link to its trace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobOrigin {
    /// The request's `X-Request-ID` (1–128 visible ASCII characters).
    pub request_id: Option<String>,
    /// The W3C `traceparent` of the request's span, when traces are exported.
    pub traceparent: Option<String>,
}

/// `aether.documents.uploaded`: the bytes of a job are stored. Keyed by notebook.
pub fn uploaded_event(job: &UploadJob) -> NewEvent {
    let file = job.file.as_ref();
    NewEvent {
        topic: topics::DOCUMENTS_UPLOADED,
        key: job.notebook_id.to_string(),
        payload: serde_json::json!({
            "job_id": job.id.to_string(),
            "document_id": job.document_id.to_string(),
            "version_id": job.version_id.to_string(),
            "notebook_id": job.notebook_id.to_string(),
            "uploaded_by": job.uploaded_by.to_string(),
            "original_filename": job.filename.as_str(),
            "content_type": file.map(|f| f.content_type.clone()),
            "file_size": file.map(|f| f.size),
            "file_hash": file.map(|f| f.sha256.clone()),
            "new_version": job.new_version,
        }),
    }
}

/// What accepting an upload publishes: `aether.documents.uploaded` for consumers,
/// and the job's entry in the workers' queue.
pub fn accepted_events(job: &UploadJob) -> [NewEvent; 2] {
    [uploaded_event(job), job_ready_event(job)]
}

/// `aether.documents.jobs`: the job waits for a worker. Keyed by job id.
pub fn job_ready_event(job: &UploadJob) -> NewEvent {
    NewEvent {
        topic: topics::DOCUMENTS_JOBS,
        key: job.id.to_string(),
        payload: serde_json::json!({
            "job_id": job.id.to_string(),
            "notebook_id": job.notebook_id.to_string(),
        }),
    }
}

/// `aether.documents.processed`: a version's processing ended (well or not).
pub fn processed_event(job: &UploadJob, document: &Document) -> NewEvent {
    NewEvent {
        topic: topics::DOCUMENTS_PROCESSED,
        key: document.notebook_id.to_string(),
        payload: serde_json::json!({
            "job_id": job.id.to_string(),
            "document_id": document.id.to_string(),
            "notebook_id": document.notebook_id.to_string(),
            "version": document.current_version,
            "processing_status": document.processing_status.as_str(),
            "format": document.result.format,
            "supported": document.result.supported,
            "content_type": document.content_type,
            "error": document.result.error.as_ref().map(|e| e.code.clone()),
        }),
    }
}

/// Tells the other replicas that a job changed, so that sockets connected to them
/// follow it as closely as sockets connected here. Implementations: Redis pub/sub.
pub trait JobFanout: Send + Sync + fmt::Debug {
    /// Never blocks: the notice leaves in the background and may be lost when the
    /// broker is down, so sockets still re-read their jobs now and then.
    fn announce(&self, job: JobId, notebook: NotebookId);
}

/// Sends one HTTP POST for a job callback; the adapter owns the HTTP client
/// (timeouts, no redirects, the outbound policy).
#[async_trait::async_trait]
pub trait CallbackSender: Send + Sync + fmt::Debug {
    /// Answers the response status, or why there was none.
    async fn post(&self, url: &str, body: Vec<u8>, headers: Vec<(&'static str, String)>) -> Result<u16, String>;
}

/// A job a queue handed to this worker, with where it came from so that the queue
/// can mark it done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedJob {
    pub job: JobId,
    /// The queue's own position of the entry (a Kafka partition and offset).
    pub position: (i32, i64),
}

/// The workers' queue (Kafka, as a consumer group): each entry goes to one worker
/// of the group; an entry not marked done is given again, to this or another
/// worker, when its worker stops or dies.
#[async_trait::async_trait]
pub trait JobQueue: Send + Sync + fmt::Debug {
    /// Waits for the next job. Entries that are not job ids are skipped (and
    /// marked done) by the implementation.
    async fn next(&self) -> Result<QueuedJob, String>;
    /// The job is handled (finished, failed, or no longer this queue's concern).
    async fn done(&self, entry: &QueuedJob) -> Result<(), String>;
}

/// The record of a job that stored its document (see `crate::activity`).
impl ChangeRecord {
    /// A job's processing stored `document` (or its new version): the record, with
    /// the `aether.documents.processed` event. The job's uploader is the actor.
    pub fn document_added(job: &UploadJob, document: &Document) -> Self {
        let event_type = if job.new_version { "document_version_added" } else { "document_added" };
        let mut record = Self::new(job.notebook_id, event_type, "create")
            .with("document_id", document.id.to_string())
            .with("version", document.current_version)
            .with("original_filename", document.original_filename.as_str());
        record.event = Some(processed_event(job, document));
        record
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::document::tests::document;

    #[test]
    fn callback_urls_are_absolute_http_urls_in_normal_form() {
        assert_eq!(
            CallbackUrl::parse("http://Hooks.Example.com:8443/a?b#c").map(|u| u.as_str().to_owned()),
            Ok("http://hooks.example.com:8443/a?b#c".into())
        );
        for address in ["http://127.0.0.1/hook", "http://[::ffff:127.0.0.1]/", "http://localhost:6379/"] {
            assert!(CallbackUrl::parse(address).is_ok(), "{address}: the outbound policy decides");
        }
        assert_eq!(
            CallbackUrl::parse("https://hooks.example.com/a").map(|u| u.host()),
            Ok(Some("hooks.example.com".into()))
        );
        for bad in [
            "ftp://x",
            "http://",
            "/relative",
            "javascript:alert(1)",
            "http://0x7f.1/hook",
            "http://0.A*",
            "http://a.1b/",
            "HTTP://example.com/",
            " http://example.com/",
            "http://user@example.com/",
            "http://example.com?x",
            "http://example.com:0/",
            "http://example.com:080/",
            "http://example.com:65536/",
            "http://example..com/",
            "http://example.com./",
            "http://-a.example.com/",
            "http://xn--bcher-kva.example/",
            "http://b\u{fc}cher.example/",
            "http://example.com/a b",
            "http://example.com/\u{e9}",
            "http://::1/",
        ] {
            assert!(CallbackUrl::parse(bad).is_err(), "{bad}");
        }
        assert!(CallbackUrl::parse(&format!("https://example.com/{}", "a".repeat(2048))).is_err());
    }

    #[test]
    fn callback_urls_are_http() {
        assert!(CallbackUrl::parse("https://hooks.example.com/aether").is_ok());
        for bad in ["ftp://x", "https://", "https:///x", "javascript:alert(1)", "http://a b"] {
            assert!(CallbackUrl::parse(bad).is_err(), "{bad}");
        }
    }

    fn new_job(existing_document: Option<DocumentId>) -> NewUploadJob {
        NewUploadJob {
            id: JobId::new(),
            notebook_id: NotebookId::new(),
            uploaded_by: UserId::new(),
            existing_document,
            filename: Filename::sanitize("notes.txt"),
            change_summary: None,
            callback_url: None,
            expected_bytes: None,
            storage_provider: "fs".into(),
            origin: JobOrigin::default(),
            at: crate::time::now(),
        }
    }

    pub(crate) fn job(status: JobStatus, new_version: bool) -> UploadJob {
        let new = new_job(None);
        let target = new.target(None).expect("a new document");
        UploadJob {
            id: new.id,
            notebook_id: new.notebook_id,
            uploaded_by: new.uploaded_by,
            document_id: target.document_id,
            version_id: target.version_id,
            new_version,
            filename: new.filename,
            change_summary: None,
            callback_url: None,
            status,
            stage: status.as_str().into(),
            bytes_received: 5,
            expected_bytes: None,
            file: Some(ReceivedFile { size: 5, sha256: "ab".into(), content_type: "text/plain".into() }),
            blob_key: target.blob_key,
            storage_provider: "fs".into(),
            failure: None,
            attempts: 1,
            lease_until: None,
            external_id: None,
            origin: JobOrigin::default(),
            created_at: new.at,
            updated_at: new.at,
            finished_at: None,
        }
    }

    fn is_job_status_conflict<T>(result: Result<T, StoreError>) -> bool {
        matches!(result, Err(StoreError::Conflict(rule)) if rule == "job_status")
    }

    #[test]
    fn an_upload_targets_a_new_document_or_a_version_of_one_in_its_notebook() {
        let fresh = new_job(None).target(None).expect("a new document");
        assert!(!fresh.new_version);
        assert_eq!(fresh.blob_key, original_key(fresh.document_id, fresh.version_id));
        let mut reupload = new_job(None);
        let existing = document(reupload.notebook_id);
        reupload.existing_document = Some(existing.id);
        let target = reupload.target(Some(&existing)).expect("same notebook");
        assert!(target.new_version && target.document_id == existing.id);
        let elsewhere = document(NotebookId::new());
        reupload.existing_document = Some(elsewhere.id);
        assert!(matches!(reupload.target(Some(&elsewhere)), Err(StoreError::NotFound)));
        assert!(matches!(reupload.target(None), Err(StoreError::NotFound)));
    }

    #[test]
    fn only_an_uploading_job_is_accepted_and_only_a_held_one_worked_on() {
        assert!(job(JobStatus::Uploading, false).check_accept().is_ok());
        assert!(is_job_status_conflict(job(JobStatus::Pending, false).check_accept()));
        assert!(job(JobStatus::Processing, false).check_worked_on().is_ok());
        for status in [JobStatus::Pending, JobStatus::Uploading, JobStatus::Completed] {
            assert!(is_job_status_conflict(job(status, false).check_worked_on()), "{status:?}");
        }
    }

    #[test]
    fn abandoning_ends_unfinished_jobs_only() {
        let failure = JobFailure::new("malformed", "bad bytes");
        let end = job(JobStatus::Validating, false).abandon(JobStatus::Failed, Some(failure.clone())).expect("open");
        assert_eq!(end, JobEnd { status: JobStatus::Failed, stage: "failed", failure: Some(failure) });
        assert!(is_job_status_conflict(job(JobStatus::Cancelled, false).abandon(JobStatus::Failed, None)));
    }

    #[test]
    fn finishing_stores_the_document_and_counts_it_once() {
        let mut result = ProcessingResult { content_type: "application/pdf".into(), ..Default::default() };
        let done = job(JobStatus::Processing, false).finish(&result).expect("open");
        assert_eq!(
            (done.content_type.as_str(), done.processing_status),
            ("application/pdf", ProcessingStatus::Completed)
        );
        assert_eq!((done.documents_added, done.bytes_added), (1, 5));
        assert_eq!(done.end, JobEnd { status: JobStatus::Completed, stage: "completed", failure: None });
        result.content_type.clear();
        result.error = Some(JobFailure::new("malformed", "bad"));
        let failed = job(JobStatus::Processing, true).finish(&result).expect("open");
        assert_eq!(
            (failed.content_type.as_str(), failed.documents_added),
            ("text/plain", 0),
            "a version is no new document"
        );
        assert_eq!((failed.processing_status, failed.end.status), (ProcessingStatus::Failed, JobStatus::Failed));
        assert_eq!((failed.end.stage, failed.end.failure), (STAGE_STORED_DESPITE_FAILURE, result.error.clone()));
        assert!(is_job_status_conflict(job(JobStatus::Completed, false).finish(&result)));
        let mut unaccepted = job(JobStatus::Processing, false);
        unaccepted.file = None;
        assert!(is_job_status_conflict(unaccepted.finish(&result)));
        assert_eq!((unaccepted.version_number(None), unaccepted.version_number(Some(2))), (1, 3));
    }

    #[test]
    fn statuses_round_trip() {
        for status in JobStatus::ALL {
            assert_eq!(JobStatus::parse(status.as_str()), Ok(status));
        }
        assert!(JobStatus::Cancelled.is_terminal() && !JobStatus::Pending.is_terminal());
    }
}
