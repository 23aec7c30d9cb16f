//! Documents: streamed uploads that become durable jobs, the workers that process
//! them, and reading documents back under the notebook's permissions.
//!
//! An upload request streams the body straight into object storage while hashing
//! and counting it; nothing holds the whole file. The job exists before the first
//! byte is written (see `aether_domain::document`), and `202 Accepted` is answered
//! only once the bytes are stored and the job is `pending`: an acknowledged upload
//! is never lost. Workers claim jobs under a lease, so a job whose worker died is
//! taken again when the lease runs out, and give up after `max_attempts`.
//!
//! By idea: [`upload`] (uploads and their jobs), [`worker`] (claiming, leasing and
//! processing jobs), [`maintenance`] (stale uploads, queued blob deletions),
//! [`reads`] (documents, downloads, previews), [`signing`] (download URLs without
//! credentials), [`callbacks`] (signed job callbacks), [`hub`] (job changes for
//! sockets, here and on other replicas), [`audimodal`] (the external processor and
//! its webhook), [`pii`] (personal data in text), [`transcribe`] (speech in audio and
//! video to text).

mod audimodal;
mod callbacks;
mod hub;
mod maintenance;
mod pii;
mod reads;
mod signing;
mod transcribe;
mod upload;
mod worker;

use std::sync::Arc;
use std::time::Duration;

use aether_domain::access::Permission;
use aether_domain::auth::Principal;
use aether_domain::blob::BlobStore;
use aether_domain::id::NotebookId;
use aether_domain::job::{JobStatus, UploadJob};
use aether_domain::outbound::OutboundPolicy;
use aether_domain::processing::{DocumentProcessor, ScratchSpace};
use aether_domain::scan::VirusScanner;
use aether_domain::transcription::Transcriber;

use aether_domain::time::{self, Timestamp};
use tokio::sync::Notify;

/// The formats whose text extraction reads, with what it reads from each.
pub use aether_extract::FORMATS as SUPPORTED_FORMATS;
pub use callbacks::Callbacks;
pub use hub::{JobHub, JobUpdate};
pub use pii::{redact_metadata, scan_text};
pub use reads::{Download, Preview, StorageMetadata, Variant};
pub use signing::{MAX_URL_LIFETIME, SignedUrl, UrlSigner};
pub use upload::{BodyError, UploadRequest};
pub use worker::quarantine_key;

use crate::access::Authorizer;
use crate::error::{ServiceError, ServiceResult};
use crate::ports::DocumentPorts;

/// How uploads and processing are bounded.
#[derive(Debug, Clone)]
pub struct DocumentSettings {
    /// The largest file accepted, in bytes.
    pub max_upload_bytes: u64,
    /// How many jobs this process works on at once; 0 leaves processing to other
    /// processes (`aether worker`).
    pub workers: usize,
    /// How long a worker holds a job between renewals; a crashed worker's job is
    /// taken again after this.
    pub job_lease: Duration,
    /// Claims of one job before it is given up (the document is kept, unprocessed).
    pub max_attempts: u32,
    /// The wall-clock limit of one extraction.
    pub processing_timeout: Duration,
    /// Files larger than this are stored without extraction.
    pub max_processing_bytes: u64,
    /// An upload whose progress has not moved for this long died with its process.
    pub stale_upload_after: Duration,
    /// Which callback URLs may be called (checked when the upload names one, and again
    /// by the sender when it resolves the name).
    pub outbound: OutboundPolicy,
}

impl Default for DocumentSettings {
    fn default() -> Self {
        Self {
            max_upload_bytes: 500 * 1024 * 1024,
            workers: 2,
            job_lease: Duration::from_secs(60),
            max_attempts: 3,
            processing_timeout: Duration::from_secs(60),
            max_processing_bytes: 200 * 1024 * 1024,
            stale_upload_after: Duration::from_secs(120),
            outbound: OutboundPolicy::default(),
        }
    }
}

#[derive(Debug)]
pub struct DocumentService {
    store: DocumentPorts,
    blobs: Arc<dyn BlobStore>,
    /// The one permission check, shared with the notebooks.
    access: Authorizer,
    processor: Arc<dyn DocumentProcessor>,
    /// Local copies of stored files, for the scanner and the processor.
    scratch: Arc<dyn ScratchSpace>,
    hub: Arc<JobHub>,
    settings: DocumentSettings,
    /// Wakes idle workers when a job becomes pending in this process.
    work_ready: Notify,
    callbacks: Option<Arc<Callbacks>>,
    scanner: Option<Arc<dyn VirusScanner>>,
    url_signer: UrlSigner,
    external: Option<audimodal::External>,
    /// Speech in audio and video becomes text; None: `transcription: unavailable`.
    transcriber: Option<Arc<dyn Transcriber>>,
}

fn rejected(code: &'static str, detail: impl Into<String>) -> ServiceError {
    ServiceError::Rejected { code, detail: detail.into() }
}

fn job_finished(job: &UploadJob) -> ServiceError {
    rejected("job_finished", format!("The job is already {}.", job.status.as_str()))
}

impl DocumentService {
    pub fn new(
        store: DocumentPorts,
        blobs: Arc<dyn BlobStore>,
        access: Authorizer,
        processor: Arc<dyn DocumentProcessor>,
        scratch: Arc<dyn ScratchSpace>,
        hub: Arc<JobHub>,
        settings: DocumentSettings,
    ) -> Self {
        Self {
            store,
            blobs,
            access,
            processor,
            scratch,
            hub,
            settings,
            work_ready: Notify::new(),
            callbacks: None,
            scanner: None,
            url_signer: UrlSigner::new(rand::random::<[u8; 32]>().to_vec()),
            external: None,
            transcriber: None,
        }
    }

    /// Transcribes the speech of audio and video uploads into their text.
    pub fn with_transcriber(mut self, transcriber: Arc<dyn Transcriber>) -> Self {
        self.transcriber = Some(transcriber);
        self
    }

    /// Signs download URLs with `secret` (otherwise with a key of this process only).
    pub fn with_url_signing_secret(mut self, secret: Vec<u8>) -> Self {
        self.url_signer = UrlSigner::new(secret);
        self
    }

    /// Scans every upload before processing; infected files are quarantined.
    pub fn with_scanner(mut self, scanner: Arc<dyn VirusScanner>) -> Self {
        self.scanner = Some(scanner);
        self
    }

    /// Sends signed callbacks to jobs' `callback_url`s.
    pub fn with_callbacks(mut self, callbacks: Callbacks) -> Self {
        self.callbacks = Some(Arc::new(callbacks));
        self
    }

    /// Tells subscribers about a job's new state, and its callback URL when the
    /// status moved to one clients act on.
    fn changed(&self, job: &UploadJob, previous: Option<JobStatus>) {
        self.hub.publish(job);
        if job.status.is_terminal() && previous != Some(job.status) {
            metrics::histogram!("aether_document_job_duration_seconds", "status" => job.status.as_str())
                .record(elapsed_since(job.created_at).as_secs_f64());
        }
        let notable = matches!(job.status, JobStatus::Pending | JobStatus::Processing) || job.status.is_terminal();
        if notable
            && previous != Some(job.status)
            && let Some(callbacks) = &self.callbacks
        {
            callbacks.deliver(job);
        }
    }

    pub fn settings(&self) -> &DocumentSettings {
        &self.settings
    }

    /// Requires `needed` on the notebook (see [`Authorizer::require`]) and answers
    /// the caller's permission.
    async fn require(&self, caller: &Principal, notebook: NotebookId, needed: Permission) -> ServiceResult<Permission> {
        Ok(self.access.require(caller, notebook, needed).await?.permission)
    }
}

/// How long since `at` (zero when it is in the future): a job's age, for ETAs.
pub fn elapsed_since(at: Timestamp) -> Duration {
    (time::now() - at).to_std().unwrap_or_default()
}
