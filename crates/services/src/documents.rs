//! Documents: streamed uploads that become durable jobs, the workers that process
//! them, and reading documents back under the notebook's permissions.
//!
//! An upload request streams the body straight into object storage while hashing
//! and counting it; nothing holds the whole file. The job exists before the first
//! byte is written (see `aether_domain::document`), and `202 Accepted` is answered
//! only once the bytes are stored and the job is `pending`: an acknowledged upload
//! is never lost. Workers claim jobs under a lease, so a job whose worker died is
//! taken again when the lease runs out, and give up after `max_attempts`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::ops::Range;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aether_domain::access::Permission;
use aether_domain::activity::Change;
use aether_domain::auth::Principal;
use aether_domain::blob::{BlobKey, BlobRead, BlobStore};
use aether_domain::compliance::{ComplianceSettings, RedactionMode};
use aether_domain::document::{
    self, CallbackUrl, Document, DocumentPatch, DocumentVersion, Filename, JobFailure, JobFanout, JobOrigin, JobQueue,
    JobStatus, NewUploadJob, ProcessingResult, ReceivedFile, UploadJob,
};
use aether_domain::external::{ExternalProcessor, Submission};
use aether_domain::id::{DocumentId, JobId, NotebookId};
use aether_domain::outbound::OutboundPolicy;
use aether_domain::page::{Page, PageRequest};
use aether_domain::scan::{ScanError, ScanVerdict, VirusScanner};
use aether_domain::store::Store;
use aether_domain::time::{self, Timestamp};
use aether_domain::{StoreError, ValidationError};
use aether_extract::{Extraction, Limits, pii};
use async_trait::async_trait;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::sync::{Notify, broadcast, watch};
use tracing::Instrument as _;

use crate::avatars::blob_error;
use crate::error::{ServiceError, ServiceResult};
use crate::notebooks::NotebookService;

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

/// What a processor is asked to do with one file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessRequest {
    pub filename: String,
    pub scan_pii: bool,
    pub redaction: RedactionMode,
}

/// What a processor found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Processed {
    pub extraction: Extraction,
    /// Findings per kind (`email`, `credit_card`, …).
    pub pii: BTreeMap<String, usize>,
    pub redacted_text: Option<String>,
}

/// Extraction, PII scan and redaction of one file's bytes: pure, used by the
/// sandboxed `aether extract` process and by [`InProcessProcessor`].
pub fn process_bytes(bytes: &[u8], request: &ProcessRequest) -> Result<Processed, aether_extract::ExtractError> {
    let extraction = aether_extract::extract(bytes, &request.filename, &Limits::default())?;
    let (counts, redacted_text) = match &extraction.text {
        Some(text) if request.scan_pii => scan_text(text, request.redaction),
        _ => (BTreeMap::new(), None),
    };
    Ok(Processed { extraction, pii: counts, redacted_text })
}

/// Whether a notebook's documents are scanned for personal data: always when they are
/// redacted (redaction needs the findings), and when detection is on (the default).
fn scans_pii(settings: &ComplianceSettings) -> bool {
    settings.pii_detection || settings.redaction_mode != RedactionMode::None
}

/// Whether `permission` sees only the redacted side of `document`: read-only
/// collaborators of a document that has a redacted copy.
fn restricted_to_redacted(document: &Document, permission: Permission) -> bool {
    permission < Permission::Write && document.result.redacted_key.is_some()
}

/// Extracted metadata with personal data redacted from every string in it (e-mail
/// senders and recipients, authors …), when the notebook redacts.
pub fn redact_metadata(
    metadata: serde_json::Map<String, serde_json::Value>,
    redaction: RedactionMode,
) -> serde_json::Map<String, serde_json::Value> {
    fn redact(value: serde_json::Value, redaction: RedactionMode) -> serde_json::Value {
        match value {
            serde_json::Value::String(text) => match scan_text(&text, redaction).1 {
                Some(redacted) => serde_json::Value::String(redacted),
                None => serde_json::Value::String(text),
            },
            serde_json::Value::Array(items) => items.into_iter().map(|item| redact(item, redaction)).collect(),
            serde_json::Value::Object(map) => {
                serde_json::Value::Object(map.into_iter().map(|(k, v)| (k, redact(v, redaction))).collect())
            }
            other => other,
        }
    }
    if redaction == RedactionMode::None {
        return metadata;
    }
    metadata.into_iter().map(|(key, value)| (key, redact(value, redaction))).collect()
}

/// Personal data in `text`, counted per kind, and the redacted text when the mode
/// asks for one.
pub fn scan_text(text: &str, redaction: RedactionMode) -> (BTreeMap<String, usize>, Option<String>) {
    let findings = pii::scan(text);
    let mut counts = BTreeMap::new();
    for (kind, count) in pii::summarize(&findings) {
        let name = serde_json::to_value(kind).ok().and_then(|v| v.as_str().map(str::to_owned));
        counts.insert(name.unwrap_or_else(|| format!("{kind:?}")), count);
    }
    let style = match redaction {
        RedactionMode::None => None,
        RedactionMode::Mask => Some(pii::RedactionStyle::Mask),
        RedactionMode::Remove => Some(pii::RedactionStyle::Remove),
    };
    let redacted = style.map(|style| pii::redact(text, &findings, style));
    (counts, redacted)
}

/// Why processing a file failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProcessError {
    #[error("malformed file: {0}")]
    Malformed(String),
    #[error("limit exceeded: {0}")]
    LimitExceeded(String),
    #[error("processing took longer than allowed")]
    TimedOut,
    /// The extractor died (out of memory, a crash): a property of the file.
    #[error("the extractor stopped: {0}")]
    Crashed(String),
    /// The extractor could not be started: a property of this machine; retried.
    #[error("extractor unavailable: {0}")]
    Unavailable(String),
}

impl ProcessError {
    fn failure(&self) -> JobFailure {
        let code = match self {
            Self::Malformed(_) => "malformed_file",
            Self::LimitExceeded(_) => "processing_limit_exceeded",
            Self::TimedOut => "processing_timed_out",
            Self::Crashed(_) => "processing_crashed",
            Self::Unavailable(_) => "processing_unavailable",
        };
        JobFailure::new(code, self.to_string())
    }
}

/// Turns a stored file into text, metadata and findings. The production one runs
/// each file in a separate, resource-limited process.
#[async_trait]
pub trait DocumentProcessor: Send + Sync + fmt::Debug {
    async fn process(&self, input: &Path, request: &ProcessRequest) -> Result<Processed, ProcessError>;
}

/// Runs [`process_bytes`] on a blocking thread with a timeout. No memory limit and
/// no way to stop a runaway extraction: for tests and tools, not for serving.
#[derive(Debug, Clone)]
pub struct InProcessProcessor {
    pub timeout: Duration,
}

#[async_trait]
impl DocumentProcessor for InProcessProcessor {
    async fn process(&self, input: &Path, request: &ProcessRequest) -> Result<Processed, ProcessError> {
        let bytes = tokio::fs::read(input).await.map_err(|e| ProcessError::Unavailable(e.to_string()))?;
        let request = request.clone();
        let work = tokio::task::spawn_blocking(move || process_bytes(&bytes, &request));
        match tokio::time::timeout(self.timeout, work).await {
            Err(_) => Err(ProcessError::TimedOut),
            Ok(Err(join)) => Err(ProcessError::Crashed(join.to_string())),
            Ok(Ok(Err(aether_extract::ExtractError::Malformed(m)))) => Err(ProcessError::Malformed(m)),
            Ok(Ok(Err(aether_extract::ExtractError::LimitExceeded(m)))) => Err(ProcessError::LimitExceeded(m)),
            Ok(Ok(Ok(processed))) => Ok(processed),
        }
    }
}

/// Job changes, for WebSocket and callback subscribers. Missing an update is
/// harmless: subscribers also read the job from the store now and then.
///
/// Changes made here reach this process's subscribers at once and, through the
/// [`JobFanout`], the other replicas, which read the job from the store and pass it
/// to their own subscribers ([`DocumentService::job_changed_elsewhere`]).
#[derive(Debug, Default)]
pub struct JobHub {
    channels: Mutex<HashMap<JobId, broadcast::Sender<UploadJob>>>,
    /// Every job of a notebook, for the notebook's upload socket.
    notebooks: Mutex<HashMap<NotebookId, broadcast::Sender<UploadJob>>>,
    fanout: Option<Arc<dyn JobFanout>>,
}

impl JobHub {
    /// A hub that also tells other replicas about every change.
    pub fn with_fanout(fanout: Arc<dyn JobFanout>) -> Self {
        Self { fanout: Some(fanout), ..Self::default() }
    }

    /// A change made in this process.
    pub fn publish(&self, job: &UploadJob) {
        self.publish_here(job);
        if let Some(fanout) = &self.fanout {
            fanout.announce(job.id, job.notebook_id);
        }
    }

    /// Passes a job to this process's subscribers only.
    pub fn publish_here(&self, job: &UploadJob) {
        {
            let mut channels = self.channels.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Some(sender) = channels.get(&job.id) {
                let _ = sender.send(job.clone());
                if job.status.is_terminal() || sender.receiver_count() == 0 {
                    channels.remove(&job.id);
                }
            }
        }
        let mut notebooks = self.notebooks.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(sender) = notebooks.get(&job.notebook_id)
            && sender.send(job.clone()).is_err()
        {
            notebooks.remove(&job.notebook_id);
        }
    }

    /// Whether anyone here follows the job or its notebook.
    pub fn is_followed(&self, job: JobId, notebook: NotebookId) -> bool {
        let followed = |count: usize| count > 0;
        let channels = self.channels.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if channels.get(&job).is_some_and(|sender| followed(sender.receiver_count())) {
            return true;
        }
        drop(channels);
        let notebooks = self.notebooks.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        notebooks.get(&notebook).is_some_and(|sender| followed(sender.receiver_count()))
    }

    /// Every change of every job of the notebook.
    pub fn subscribe_notebook(&self, id: NotebookId) -> broadcast::Receiver<UploadJob> {
        let mut notebooks = self.notebooks.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        notebooks.entry(id).or_insert_with(|| broadcast::channel(256).0).subscribe()
    }

    pub fn subscribe(&self, id: JobId) -> broadcast::Receiver<UploadJob> {
        let mut channels = self.channels.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        channels.entry(id).or_insert_with(|| broadcast::channel(64).0).subscribe()
    }
}

/// Sends one HTTP POST; the adapter owns the HTTP client (timeouts, no redirects).
#[async_trait]
pub trait CallbackSender: Send + Sync + fmt::Debug {
    /// Answers the response status, or why there was none.
    async fn post(&self, url: &str, body: Vec<u8>, headers: Vec<(&'static str, String)>) -> Result<u16, String>;
}

/// Signed job callbacks: `X-Aether-Signature: t=<unix seconds>,v1=<hex>`, where the
/// hex is HMAC-SHA256 over `<t>.<body>` with the configured secret (the timestamp
/// lets receivers refuse replays). Retried after each delay until a 2xx answer.
#[derive(Debug)]
pub struct Callbacks {
    sender: Arc<dyn CallbackSender>,
    secret: Vec<u8>,
    retry_delays: Vec<Duration>,
}

impl Callbacks {
    pub fn new(sender: Arc<dyn CallbackSender>, secret: Vec<u8>, retry_delays: Vec<Duration>) -> Self {
        Self { sender, secret, retry_delays }
    }

    /// The signature header's value for `body` sent at `timestamp` (Unix seconds).
    pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
        use hmac::Mac as _;
        let mac = hmac_sha256(secret, &[timestamp.to_string().as_bytes(), b".", body]);
        format!("t={timestamp},v1={}", hex(&mac.finalize().into_bytes()))
    }

    /// Delivers the job's state in the background, retrying with backoff.
    fn deliver(self: &Arc<Self>, job: &UploadJob) {
        let Some(url) = job.callback_url.clone() else { return };
        let delivery = uuid::Uuid::now_v7();
        let event = format!("job.{}", job.status.as_str());
        let body = serde_json::json!({
            "event": event,
            "delivery_id": delivery.to_string(),
            "job": {
                "job_id": job.id.to_string(),
                "notebook_id": job.notebook_id.to_string(),
                "document_id": job.document_id.to_string(),
                "status": job.status.as_str(),
                "stage": job.stage,
                "original_filename": job.filename.as_str(),
                "file_size": job.file.as_ref().map(|f| f.size),
                "file_hash": job.file.as_ref().map(|f| f.sha256.clone()),
                "content_type": job.file.as_ref().map(|f| f.content_type.clone()),
                "error": job.failure.as_ref().map(|f| serde_json::json!({"code": f.code, "message": f.message})),
                "updated_at": time::to_storage(&job.updated_at),
            },
        })
        .to_string()
        .into_bytes();
        let callbacks = Arc::clone(self);
        let job_id = job.id;
        tokio::spawn(async move {
            let mut delays = callbacks.retry_delays.iter();
            loop {
                let timestamp = time::now().timestamp();
                let headers = vec![
                    ("content-type", "application/json".to_owned()),
                    ("x-aether-event", event.clone()),
                    ("x-aether-delivery", delivery.to_string()),
                    ("x-aether-signature", Self::signature(&callbacks.secret, timestamp, &body)),
                ];
                let outcome = callbacks.sender.post(url.as_str(), body.clone(), headers).await;
                match outcome {
                    Ok(status) if (200..300).contains(&status) => {
                        metrics::counter!("aether_callbacks_total", "outcome" => "delivered").increment(1);
                        return;
                    }
                    Ok(status) => tracing::info!(%job_id, status, "callback refused"),
                    Err(error) => tracing::info!(%job_id, %error, "callback failed"),
                }
                let Some(delay) = delays.next() else {
                    metrics::counter!("aether_callbacks_total", "outcome" => "abandoned").increment(1);
                    tracing::warn!(%job_id, "callback abandoned after retries");
                    return;
                };
                tokio::time::sleep(*delay).await;
            }
        });
    }
}

/// What a client asks to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Variant {
    /// The caller's default: the original for writers, the redacted copy for
    /// read-only collaborators when one exists.
    #[default]
    Default,
    Original,
    Redacted,
}

/// A download about to stream.
#[derive(Debug)]
pub struct Download {
    pub filename: Filename,
    pub content_type: String,
    pub etag: String,
    pub read: BlobRead,
}

/// A stored file a request resolved to.
#[derive(Debug)]
struct StoredFile {
    #[allow(dead_code)]
    document: Document,
    key: BlobKey,
    filename: Filename,
    content_type: String,
    redacted: bool,
}

/// A URL that downloads a file without credentials until `expires_at`.
#[derive(Debug, Clone, Serialize)]
pub struct SignedUrl {
    pub url: String,
    pub expires_at: Timestamp,
    /// `storage` (presigned by S3) or `server` (signed by this server).
    pub signed_by: &'static str,
}

/// Where and how a document is stored.
#[derive(Debug, Clone, Serialize)]
pub struct StorageMetadata {
    pub document_id: DocumentId,
    pub storage_provider: String,
    pub storage_path: String,
    pub file_size: u64,
    pub file_hash: String,
    pub content_type: String,
    pub versions: usize,
    /// Bytes of every version together.
    pub stored_bytes: u64,
    pub has_redacted_copy: bool,
    pub has_thumbnail: bool,
}

/// The longest a signed URL may live (S3's own limit for presigned URLs).
pub const MAX_URL_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// What a server-signed download URL carries.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct UrlToken {
    #[serde(rename = "k")]
    key: String,
    #[serde(rename = "e")]
    expires: i64,
    #[serde(rename = "f")]
    filename: String,
    #[serde(rename = "t")]
    content_type: String,
}

/// Signs download tokens: `base64url(json).base64url(HMAC-SHA256(json))`.
#[derive(Debug, Clone)]
pub struct UrlSigner {
    secret: Vec<u8>,
}

impl UrlSigner {
    pub fn new(secret: Vec<u8>) -> Self {
        Self { secret }
    }

    fn mac(&self, payload: &[u8]) -> Vec<u8> {
        use hmac::Mac as _;
        hmac_sha256(&self.secret, &[payload]).finalize().into_bytes().to_vec()
    }

    fn sign(&self, token: &UrlToken) -> String {
        use base64::Engine as _;
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let payload = serde_json::to_vec(token).unwrap_or_default();
        format!("{}.{}", engine.encode(&payload), engine.encode(self.mac(&payload)))
    }

    fn verify(&self, text: &str) -> Option<UrlToken> {
        use base64::Engine as _;
        use hmac::Mac as _;
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let (payload, signature) = text.split_once('.')?;
        let payload = engine.decode(payload).ok()?;
        let signature = engine.decode(signature).ok()?;
        // Constant-time comparison.
        hmac_sha256(&self.secret, &[&payload]).verify_slice(&signature).ok()?;
        let token: UrlToken = serde_json::from_slice(&payload).ok()?;
        (token.expires > time::now().timestamp()).then_some(token)
    }
}

/// `attachment` with an ASCII fallback and the exact name in RFC 5987 form.
pub fn content_disposition(filename: &str) -> String {
    let fallback: String = filename
        .chars()
        .map(|c| if (c.is_ascii_graphic() && c != '"' && c != '\\') || c == ' ' { c } else { '_' })
        .collect();
    let encoded: String = filename
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

/// A document's preview: a text excerpt and whether a thumbnail exists.
#[derive(Debug, Clone, Serialize)]
pub struct Preview {
    pub document_id: DocumentId,
    pub format: String,
    pub supported: bool,
    pub excerpt: Option<String>,
    pub excerpt_truncated: bool,
    pub redacted: bool,
    pub thumbnail_available: bool,
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

const PREVIEW_CHARS: usize = 2_000;

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

#[derive(Debug)]
pub struct DocumentService {
    store: Arc<dyn Store>,
    blobs: Arc<dyn BlobStore>,
    notebooks: NotebookService,
    processor: Arc<dyn DocumentProcessor>,
    hub: Arc<JobHub>,
    settings: DocumentSettings,
    /// Wakes idle workers when a job becomes pending in this process.
    work_ready: Notify,
    callbacks: Option<Arc<Callbacks>>,
    scanner: Option<Arc<dyn VirusScanner>>,
    url_signer: UrlSigner,
    external: Option<External>,
}

/// An external processor (AudiModal) and how to hand it files.
#[derive(Debug)]
struct External {
    processor: Arc<dyn ExternalProcessor>,
    /// This server's external base URL, for the signed URLs the processor downloads.
    public_url: String,
    /// How long a job may stay with the processor before it is asked again.
    timeout: Duration,
}

fn rejected(code: &'static str, detail: impl Into<String>) -> ServiceError {
    ServiceError::Rejected { code, detail: detail.into() }
}

fn job_finished(job: &UploadJob) -> ServiceError {
    rejected("job_finished", format!("The job is already {}.", job.status.as_str()))
}

impl DocumentService {
    pub fn new(
        store: Arc<dyn Store>,
        blobs: Arc<dyn BlobStore>,
        notebooks: NotebookService,
        processor: Arc<dyn DocumentProcessor>,
        hub: Arc<JobHub>,
        settings: DocumentSettings,
    ) -> Self {
        Self {
            store,
            blobs,
            notebooks,
            processor,
            hub,
            settings,
            work_ready: Notify::new(),
            callbacks: None,
            scanner: None,
            url_signer: UrlSigner::new(rand::random::<[u8; 32]>().to_vec()),
            external: None,
        }
    }

    /// Hands files to an external processor (AudiModal) instead of the built-in
    /// extractor; results arrive through [`DocumentService::external_webhook`].
    pub fn with_external_processor(
        mut self,
        processor: Arc<dyn ExternalProcessor>,
        public_url: String,
        timeout: Duration,
    ) -> Self {
        self.external = Some(External { processor, public_url, timeout });
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

    pub fn hub(&self) -> &Arc<JobHub> {
        &self.hub
    }

    /// Another replica changed a job: when someone here follows it, read it from
    /// the store (the notice carries no state, so it can never be staler than the
    /// store) and pass it on.
    pub async fn job_changed_elsewhere(&self, job: JobId, notebook: NotebookId) {
        if !self.hub.is_followed(job, notebook) {
            return;
        }
        match self.store.get_job(job).await {
            Ok(current) => self.hub.publish_here(&current),
            Err(error) => tracing::debug!(%error, job_id = %job, "could not read a job changed elsewhere"),
        }
    }

    async fn require(&self, caller: &Principal, notebook: NotebookId, needed: Permission) -> ServiceResult<Permission> {
        let access = self.notebooks.access(caller, notebook).await?;
        if !access.allows(needed) {
            return Err(ServiceError::Forbidden("this needs write permission on the notebook"));
        }
        Ok(access.permission)
    }

    // ----- uploads -----

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
                match self.store.record_upload_progress(job.id, received, time::now()).await {
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
        let file = ReceivedFile { size: received, sha256: hex(&hasher.finalize()), content_type: sniffed.content_type };
        match self.store.accept_upload(job.id, file, time::now()).await {
            Ok(accepted) => {
                tracing::info!(job_id = %job.id, bytes = received, "upload stored");
                self.changed(&accepted, Some(JobStatus::Uploading));
                self.work_ready.notify_one();
                Ok(accepted)
            }
            Err(StoreError::Conflict(_)) => {
                // Cancelled while the last bytes were written: the deletion queued
                // by the cancellation may have run before the blob existed.
                let _ = self.store.queue_blob_deletions(&job.written_keys(), time::now()).await;
                let current = self.store.get_job(job.id).await?;
                Err(job_finished(&current))
            }
            Err(error) => Err(error.into()),
        }
    }

    #[tracing::instrument(name = "job.fail", skip_all, fields(job_id = %job.id, code = %failure.code))]
    async fn fail(&self, job: &UploadJob, failure: JobFailure) {
        tracing::info!(job_id = %job.id, code = %failure.code, "job failed");
        match self.store.fail_job(job.id, failure, time::now()).await {
            Ok(failed) => self.changed(&failed, Some(job.status)),
            Err(error) => tracing::warn!(%error, job_id = %job.id, "could not record a job failure"),
        }
    }

    /// A job the caller may read (through its notebook).
    pub async fn job(&self, caller: &Principal, id: JobId) -> ServiceResult<UploadJob> {
        let job = self.store.get_job(id).await?;
        self.require(caller, job.notebook_id, Permission::Read).await?;
        Ok(job)
    }

    /// A job read without an access check, for a subscriber already authorized.
    pub async fn job_unchecked(&self, id: JobId) -> ServiceResult<UploadJob> {
        Ok(self.store.get_job(id).await?)
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
        let cancelled = match self.store.cancel_job(id, time::now()).await {
            Ok(cancelled) => cancelled,
            Err(StoreError::Conflict(_)) => return Err(job_finished(&self.store.get_job(id).await?)),
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
        Ok(self.store.list_notebook_jobs(notebook, active_only, page).await?)
    }

    // ----- documents -----

    /// A document and the caller's permission on it.
    pub async fn document(&self, caller: &Principal, id: DocumentId) -> ServiceResult<(Document, Permission)> {
        let document = self.store.get_document(id).await?;
        let permission = self.require(caller, document.notebook_id, Permission::Read).await?;
        Ok((document, permission))
    }

    pub async fn documents(
        &self,
        caller: &Principal,
        notebook: NotebookId,
        page: PageRequest,
    ) -> ServiceResult<Page<Document>> {
        self.require(caller, notebook, Permission::Read).await?;
        Ok(self.store.list_documents(notebook, page).await?)
    }

    pub async fn update(
        &self,
        caller: &Principal,
        id: DocumentId,
        patch: DocumentPatch,
        change: &Change,
    ) -> ServiceResult<Document> {
        let document = self.store.get_document(id).await?;
        self.require(caller, document.notebook_id, Permission::Write).await?;
        if patch.is_empty() {
            return Ok(document);
        }
        Ok(self.store.update_document(id, patch, change).await?)
    }

    /// Deletes the document; its blobs are queued and removed by the worker.
    pub async fn delete(&self, caller: &Principal, id: DocumentId, change: &Change) -> ServiceResult<()> {
        let document = self.store.get_document(id).await?;
        self.require(caller, document.notebook_id, Permission::Write).await?;
        self.store.delete_document(id, change).await?;
        tracing::info!(document_id = %id, "document deleted");
        self.work_ready.notify_one();
        Ok(())
    }

    pub async fn versions(&self, caller: &Principal, id: DocumentId) -> ServiceResult<Vec<DocumentVersion>> {
        self.document(caller, id).await?;
        Ok(self.store.list_versions(id).await?)
    }

    /// Opens a document (or one of its versions) for download. Read-only
    /// collaborators get the redacted copy of a redacted document and may not ask
    /// for the original.
    /// Which stored file a caller's request means: a version (or the current one),
    /// original or redacted. Read-only collaborators get the redacted copy of a
    /// redacted document and may not ask for the original.
    async fn resolve(
        &self,
        caller: &Principal,
        id: DocumentId,
        version: Option<u32>,
        variant: Variant,
    ) -> ServiceResult<StoredFile> {
        let (document, permission) = self.document(caller, id).await?;
        let chosen =
            match version {
                None => None,
                Some(number) => Some(
                    self.store.list_versions(id).await?.into_iter().find(|v| v.version_number == number).ok_or_else(
                        || rejected("version_not_found", format!("The document has no version {number}.")),
                    )?,
                ),
            };
        let (original, redacted, filename, content_type) = match &chosen {
            Some(v) => {
                (v.storage_path.clone(), v.redacted_path.clone(), v.original_filename.clone(), v.content_type.clone())
            }
            None => (
                document.storage_path.clone(),
                document.result.redacted_key.clone(),
                document.original_filename.clone(),
                document.content_type.clone(),
            ),
        };
        let restricted = permission < Permission::Write && redacted.is_some();
        let want_redacted = match variant {
            Variant::Default => restricted,
            Variant::Redacted => true,
            Variant::Original if restricted => {
                return Err(ServiceError::Forbidden("read-only collaborators may download only the redacted copy"));
            }
            Variant::Original => false,
        };
        let (key, filename, content_type) = if want_redacted {
            let key = redacted.ok_or_else(|| rejected("no_redacted_copy", "This document has no redacted copy."))?;
            let stem = filename.as_str().rsplit_once('.').map_or(filename.as_str(), |(stem, _)| stem);
            (key, Filename::sanitize(&format!("{stem}.redacted.txt")), "text/plain; charset=utf-8".to_owned())
        } else {
            (original, filename, content_type)
        };
        Ok(StoredFile { document, key, filename, content_type, redacted: want_redacted })
    }

    /// Opens a document (or one of its versions) for download.
    pub async fn download(
        &self,
        caller: &Principal,
        id: DocumentId,
        version: Option<u32>,
        variant: Variant,
        range: Option<Range<u64>>,
    ) -> ServiceResult<Download> {
        let file = self.resolve(caller, id, version, variant).await?;
        self.open(file.key, file.filename, file.content_type, range).await
    }

    async fn open(
        &self,
        key: BlobKey,
        filename: Filename,
        content_type: String,
        range: Option<Range<u64>>,
    ) -> ServiceResult<Download> {
        let read = self.blobs.read(&key, range).await.map_err(blob_error)?;
        let etag = format!("\"{}\"", digest_of(key.as_str()));
        Ok(Download { filename, content_type, etag, read })
    }

    /// A URL that downloads the file without credentials until it expires:
    /// presigned by S3 itself, or signed by this server (HMAC-SHA256) for the
    /// filesystem store and served at `/api/v1/storage/signed`.
    pub async fn signed_url(
        &self,
        caller: &Principal,
        id: DocumentId,
        version: Option<u32>,
        variant: Variant,
        expires_in: Duration,
    ) -> ServiceResult<SignedUrl> {
        if expires_in.is_zero() || expires_in > MAX_URL_LIFETIME {
            return Err(rejected("invalid_expiry", "expires_in must be between 1 second and 7 days."));
        }
        let file = self.resolve(caller, id, version, variant).await?;
        let expires_at = time::after(time::now(), expires_in);
        let disposition = content_disposition(file.filename.as_str());
        let presigned = self.blobs.presigned_get(&file.key, expires_in, &disposition).await.map_err(blob_error)?;
        let (url, signed_by) = match presigned {
            Some(url) => (url, "storage"),
            None => {
                let token = UrlToken {
                    key: file.key.as_str().to_owned(),
                    expires: expires_at.timestamp(),
                    filename: file.filename.as_str().to_owned(),
                    content_type: file.content_type.clone(),
                };
                (format!("/api/v1/storage/signed?token={}", self.url_signer.sign(&token)), "server")
            }
        };
        Ok(SignedUrl { url, expires_at, signed_by })
    }

    /// Opens the file a server-signed URL names, when its signature holds and it has
    /// not expired. No credentials: the token is the authorization.
    pub async fn open_signed(&self, token: &str, range: Option<Range<u64>>) -> ServiceResult<Download> {
        let token =
            self.url_signer.verify(token).ok_or(ServiceError::Forbidden("the link is invalid or has expired"))?;
        let key =
            BlobKey::parse(&token.key).map_err(|_| ServiceError::Forbidden("the link is invalid or has expired"))?;
        self.open(key, Filename::sanitize(&token.filename), token.content_type, range).await
    }

    /// Where and how a document's current file is stored.
    pub async fn storage_metadata(&self, caller: &Principal, id: DocumentId) -> ServiceResult<StorageMetadata> {
        let (document, _) = self.document(caller, id).await?;
        let versions = self.store.list_versions(id).await?;
        Ok(StorageMetadata {
            document_id: id,
            storage_provider: document.storage_provider.clone(),
            storage_path: document.storage_path.as_str().to_owned(),
            file_size: document.file_size,
            file_hash: document.file_hash.clone(),
            content_type: document.content_type.clone(),
            versions: versions.len(),
            stored_bytes: versions.iter().map(|v| v.file_size).sum(),
            has_redacted_copy: document.result.redacted_key.is_some(),
            has_thumbnail: document.result.thumbnail_key.is_some(),
        })
    }

    /// Copies a document's current file into a notebook as a new upload: the
    /// copy goes through the same job (scan, processing) as any upload. Needs read
    /// access to the source (the redacted copy for read-only collaborators of a
    /// redacted document) and write access to the target.
    pub async fn copy(
        &self,
        caller: &Principal,
        id: DocumentId,
        target: NotebookId,
        origin: JobOrigin,
    ) -> ServiceResult<UploadJob> {
        let file = self.resolve(caller, id, None, Variant::Default).await?;
        let read = self.blobs.read(&file.key, None).await.map_err(blob_error)?;
        let job = self
            .start_upload(
                caller,
                UploadRequest {
                    notebook_id: target,
                    existing_document: None,
                    filename: file.filename,
                    change_summary: None,
                    callback_url: None,
                    expected_bytes: Some(read.size),
                    origin,
                },
            )
            .await?;
        tracing::info!(document_id = %id, job_id = %job.id, redacted = file.redacted, "copying a document");
        self.receive_upload(job, read.stream.map(|chunk| chunk.map_err(|error| BodyError::Broken(error.to_string()))))
            .await
    }

    pub async fn preview(&self, caller: &Principal, id: DocumentId) -> ServiceResult<Preview> {
        let (document, permission) = self.document(caller, id).await?;
        let redacted = restricted_to_redacted(&document, permission);
        let text = if redacted {
            match &document.result.redacted_key {
                Some(key) => {
                    Some(String::from_utf8_lossy(&self.blobs.get(key).await.map_err(blob_error)?).into_owned())
                }
                None => None,
            }
        } else {
            document.result.extracted_text.clone()
        };
        let (excerpt, excerpt_truncated) = match text {
            Some(text) => {
                let truncated = text.chars().count() > PREVIEW_CHARS;
                (Some(text.chars().take(PREVIEW_CHARS).collect()), truncated)
            }
            None => (None, false),
        };
        Ok(Preview {
            document_id: id,
            format: document.result.format.clone(),
            supported: document.result.supported,
            excerpt,
            excerpt_truncated,
            redacted,
            thumbnail_available: !redacted && document.result.thumbnail_key.is_some(),
            metadata: document.result.extracted_metadata.clone(),
        })
    }

    pub async fn thumbnail(&self, caller: &Principal, id: DocumentId) -> ServiceResult<Vec<u8>> {
        let (document, permission) = self.document(caller, id).await?;
        if restricted_to_redacted(&document, permission) {
            // A picture of the original may show what the redaction removed.
            return Err(ServiceError::Forbidden("read-only collaborators of a redacted document get no thumbnail"));
        }
        let key = document.result.thumbnail_key.ok_or(ServiceError::NotFound)?;
        self.blobs.get(&key).await.map_err(blob_error)
    }

    // ----- workers -----

    /// Runs the job loops and the maintenance loop until `shutdown`. Without
    /// `queues`, `settings.workers` loops poll the store; with them (Kafka), one loop
    /// takes the jobs of each queue, and the store is still swept now and then for
    /// jobs whose entry was lost or whose attempt failed. A job in hand is finished
    /// before its loop stops.
    pub async fn run_workers(self: Arc<Self>, queues: Vec<Arc<dyn JobQueue>>, shutdown: watch::Receiver<bool>) {
        let mut loops = Vec::new();
        if queues.is_empty() {
            for _ in 0..self.settings.workers {
                let service = Arc::clone(&self);
                let stop = shutdown.clone();
                loops.push(tokio::spawn(async move { service.job_loop(stop).await }));
            }
        } else {
            for queue in &queues {
                let (service, queue, stop) = (Arc::clone(&self), Arc::clone(queue), shutdown.clone());
                loops.push(tokio::spawn(async move { service.queue_loop(queue, stop).await }));
            }
            let (service, stop) = (Arc::clone(&self), shutdown.clone());
            loops.push(tokio::spawn(async move { service.sweep_loop(stop).await }));
        }
        let service = Arc::clone(&self);
        loops.push(tokio::spawn(async move { service.maintenance_loop(shutdown).await }));
        for handle in loops {
            let _ = handle.await;
        }
    }

    async fn job_loop(&self, mut shutdown: watch::Receiver<bool>) {
        loop {
            if *shutdown.borrow() {
                break;
            }
            let now = time::now();
            match self.store.claim_job(now, time::after(now, self.settings.job_lease)).await {
                Ok(Some(job)) => {
                    self.hub.publish(&job);
                    self.work(job).await;
                    continue;
                }
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, "could not claim a job"),
            }
            tokio::select! {
                _ = self.work_ready.notified() => {}
                _ = tokio::time::sleep(IDLE_POLL) => {}
                _ = shutdown.wait_for(|stop| *stop) => break,
            }
        }
    }

    /// Takes the jobs a queue hands this loop. An entry is marked done once its job
    /// has ended (here or elsewhere); a loop stopped before that leaves the entry
    /// to be handed out again.
    async fn queue_loop(&self, queue: Arc<dyn JobQueue>, mut shutdown: watch::Receiver<bool>) {
        loop {
            let entry = tokio::select! {
                entry = queue.next() => entry,
                _ = shutdown.wait_for(|stop| *stop) => break,
            };
            let entry = match entry {
                Ok(entry) => entry,
                Err(error) => {
                    metrics::counter!("aether_dependency_errors_total", "dependency" => "job_queue").increment(1);
                    tracing::warn!(%error, "could not read the job queue; will retry");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        _ = shutdown.wait_for(|stop| *stop) => break,
                    }
                }
            };
            tracing::info!(job_id = %entry.job, "a queue entry brought a job");
            if !self.see_through(entry.job, &mut shutdown).await {
                break;
            }
            if let Err(error) = queue.done(&entry).await {
                tracing::warn!(%error, job_id = %entry.job, "could not mark a queue entry done; it may come again");
            }
        }
    }

    /// Works the job until it has ended, waiting while another worker holds it
    /// (that worker may have died: its lease then runs out and the job is taken
    /// here). False when `shutdown` came first.
    async fn see_through(&self, id: JobId, shutdown: &mut watch::Receiver<bool>) -> bool {
        loop {
            let now = time::now();
            match self.store.claim_job_by_id(id, now, time::after(now, self.settings.job_lease)).await {
                Ok(Some(job)) => {
                    self.hub.publish(&job);
                    self.work(job).await;
                    continue;
                }
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, job_id = %id, "could not claim a queued job"),
            }
            let wait = match self.store.get_job(id).await {
                Err(StoreError::NotFound) => return true,
                Ok(job) if job.status.is_terminal() || job.status == JobStatus::Uploading => return true,
                Ok(job) => job
                    .lease_until
                    .map_or(Duration::from_secs(1), time_until)
                    .clamp(Duration::from_millis(100), Duration::from_secs(5)),
                Err(_) => Duration::from_secs(1),
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.wait_for(|stop| *stop) => return false,
            }
        }
    }

    /// With queues, the store is still swept for claimable jobs (a failed attempt
    /// waiting to retry, an entry lost with its queue), once per lease.
    async fn sweep_loop(&self, mut shutdown: watch::Receiver<bool>) {
        let interval = self.settings.job_lease.max(Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.wait_for(|stop| *stop) => break,
            }
            loop {
                let now = time::now();
                match self.store.claim_job(now, time::after(now, self.settings.job_lease)).await {
                    Ok(Some(job)) => {
                        tracing::info!(job_id = %job.id, "the sweep took a job no queue entry brought");
                        self.hub.publish(&job);
                        self.work(job).await;
                    }
                    Ok(None) => break,
                    Err(error) => {
                        tracing::warn!(%error, "could not sweep for jobs");
                        break;
                    }
                }
                if *shutdown.borrow() {
                    return;
                }
            }
        }
    }

    /// Fails uploads that died with their process and deletes queued blobs.
    async fn maintenance_loop(&self, mut shutdown: watch::Receiver<bool>) {
        loop {
            if let Err(error) = self.maintain().await {
                tracing::warn!(%error, "document maintenance failed");
            }
            tokio::select! {
                _ = self.work_ready.notified() => {}
                _ = tokio::time::sleep(MAINTENANCE_INTERVAL) => {}
                _ = shutdown.wait_for(|stop| *stop) => break,
            }
        }
    }

    /// One maintenance pass; public so that tests and `aether` commands can run it.
    pub async fn maintain(&self) -> ServiceResult<()> {
        let counts = self.store.count_active_jobs().await?;
        for status in [JobStatus::Uploading, JobStatus::Pending, JobStatus::Validating, JobStatus::Processing] {
            let n = counts.iter().find(|(s, _)| *s == status).map_or(0, |(_, n)| *n);
            metrics::gauge!("aether_document_jobs", "status" => status.as_str()).set(n as f64);
        }
        let stale_before =
            time::now() - chrono::TimeDelta::from_std(self.settings.stale_upload_after).unwrap_or_default();
        for job in self.store.stale_uploads(stale_before, 100).await? {
            self.fail(
                &job,
                JobFailure::new(
                    "upload_interrupted",
                    "The upload stopped before it finished (the server restarted or the client went away).",
                ),
            )
            .await;
        }
        loop {
            let batch = self.store.pending_blob_deletions(100).await?;
            if batch.is_empty() {
                return Ok(());
            }
            let mut done = Vec::with_capacity(batch.len());
            for deletion in &batch {
                match self.blobs.delete(&deletion.key).await {
                    Ok(()) => done.push(deletion.id),
                    Err(error) => {
                        tracing::warn!(%error, key = %deletion.key, "could not delete a blob; will retry");
                    }
                }
            }
            self.store.complete_blob_deletions(&done).await?;
            if done.len() < batch.len() {
                return Ok(());
            }
        }
    }

    /// Works one claimed job to its end, in the job's span: each attempt is a trace
    /// of its own, with a child span per stage and the store calls under them. The
    /// span names the request that started the job and links to its span.
    #[tracing::instrument(
        name = "job",
        skip_all,
        fields(
            otel.name = "document job",
            job_id = %job.id,
            notebook_id = %job.notebook_id,
            attempt = job.attempts,
            request_id = job.origin.request_id.as_deref(),
        )
    )]
    async fn work(&self, job: UploadJob) {
        link_to_origin(&tracing::Span::current(), &job.origin);
        let id = job.id;
        let outcome = tokio::select! {
            outcome = self.work_inner(job) => outcome,
            never = self.keep_leased(id) => match never {},
        };
        match outcome {
            // Every ending (finish, fail) has told subscribers already.
            Ok(_) => {}
            Err(ServiceError::Rejected { code: "job_finished", .. }) => {
                tracing::info!(job_id = %id, "job was cancelled while being processed");
            }
            Err(error) => {
                // Shorten the lease so that another attempt follows soon, not only
                // when the whole lease has run out (a dependency hiccup, a deadlock).
                tracing::warn!(%error, job_id = %id, "job attempt failed; it will be retried");
                let now = time::now();
                let retry_at = time::after(now, RETRY_DELAY);
                if let Err(error) =
                    self.store.advance_job(id, JobStatus::Validating, "waiting to retry", retry_at, now).await
                {
                    tracing::warn!(%error, job_id = %id, "could not shorten the lease of a failed attempt");
                }
            }
        }
    }

    /// Renews the lease of a job in hand every third of a lease, for as long as it
    /// is worked on: a job outlasting one lease is not taken for a dead worker's.
    async fn keep_leased(&self, id: JobId) -> std::convert::Infallible {
        let every = self.settings.job_lease / 3;
        loop {
            tokio::time::sleep(every).await;
            match self.store.renew_job_lease(id, time::after(time::now(), self.settings.job_lease)).await {
                Ok(()) => {}
                // Finished or cancelled: the job's own path notices.
                Err(StoreError::Conflict(_)) => std::future::pending::<()>().await,
                Err(error) => tracing::warn!(%error, job_id = %id, "could not renew a job's lease"),
            }
        }
    }

    async fn work_inner(&self, job: UploadJob) -> ServiceResult<UploadJob> {
        tracing::info!(job_id = %job.id, attempt = job.attempts, "processing job");
        if job.attempts > self.settings.max_attempts {
            if self.scanner.is_some() {
                // Never store a file that could not be scanned; keep it for an
                // administrator instead of losing it.
                let failure = JobFailure::new(
                    "not_scanned",
                    format!(
                        "The file could not be scanned for viruses in {} attempts; it is quarantined.",
                        job.attempts - 1
                    ),
                );
                return self.quarantine(&job, failure).await;
            }
            let mut result = unprocessed(&job);
            result.error = Some(JobFailure::new(
                "processing_interrupted",
                format!("Processing was interrupted {} times; the file is stored unprocessed.", job.attempts - 1),
            ));
            return self.finish(&job, result).await;
        }
        let notebook = match self.store.get_notebook(job.notebook_id).await {
            Ok(notebook) => notebook,
            Err(StoreError::NotFound) => {
                self.fail(&job, JobFailure::new("notebook_deleted", "The notebook was deleted.")).await;
                return self.store.get_job(job.id).await.map_err(Into::into);
            }
            Err(error) => return Err(error.into()),
        };
        let settings = notebook.compliance_settings;
        let content_type = job.file.as_ref().map(|f| f.content_type.clone()).unwrap_or_default();
        if !content_type_allowed(&settings, &content_type) {
            let failure = JobFailure::new(
                "content_type_not_allowed",
                format!("The notebook does not accept {content_type} files."),
            );
            self.fail(&job, failure).await;
            return self.store.get_job(job.id).await.map_err(Into::into);
        }

        let scratch = self.fetch(&job).await?;
        let mut scanned = None;
        if let Some(scanner) = &self.scanner {
            let job = self.advance(&job, JobStatus::Validating, "scanning for viruses").await?;
            match scanner.scan(scratch.path()).instrument(tracing::info_span!("job.scan")).await {
                Ok(ScanVerdict::Clean) => scanned = Some(serde_json::json!({"result": "clean", "scanner": "clamav"})),
                Ok(ScanVerdict::Infected(signature)) => {
                    tracing::warn!(job_id = %job.id, %signature, "infected upload quarantined");
                    metrics::counter!("aether_uploads_infected_total").increment(1);
                    let failure = JobFailure::new(
                        "virus_detected",
                        format!("The file contains {signature}; it is quarantined and was not stored."),
                    );
                    return self.quarantine(&job, failure).await;
                }
                Err(ScanError::Refused(reason)) => {
                    let failure = JobFailure::new(
                        "scan_refused",
                        format!("The virus scanner refused the file ({reason}); it is quarantined."),
                    );
                    return self.quarantine(&job, failure).await;
                }
                Err(ScanError::Unavailable(reason)) => return Err(ServiceError::Unavailable(reason)),
            }
        }

        if let Some(external) = &self.external {
            return self.work_externally(job, &settings, external).await;
        }
        let job = self.advance(&job, JobStatus::Processing, "extracting text and metadata").await?;
        let size = job.file.as_ref().map_or(0, |f| f.size);
        let mut result = if size > self.settings.max_processing_bytes {
            let mut result = unprocessed(&job);
            result.processing_metadata.insert("skipped".into(), "file larger than the processing limit".into());
            result
        } else {
            self.extract(&job, &settings, scratch.path()).await?
        };
        if let Some(scan) = scanned {
            result.processing_metadata.insert("virus_scan".into(), scan);
        }
        // Renew the lease before writing derived blobs, so that a cancellation is
        // noticed first.
        let job = self.advance(&job, JobStatus::Processing, "storing results").await?;
        self.finish(&job, result).await
    }

    async fn advance(&self, job: &UploadJob, status: JobStatus, stage: &str) -> ServiceResult<UploadJob> {
        let now = time::now();
        match self.store.advance_job(job.id, status, stage, time::after(now, self.settings.job_lease), now).await {
            Ok(advanced) => {
                self.changed(&advanced, Some(job.status));
                Ok(advanced)
            }
            Err(StoreError::Conflict(_)) => Err(job_finished(job)),
            Err(error) => Err(error.into()),
        }
    }

    /// Copies the job's bytes into a scratch file for the scanner and the extractor.
    #[tracing::instrument(name = "job.fetch", skip_all)]
    async fn fetch(&self, job: &UploadJob) -> ServiceResult<tempfile::NamedTempFile> {
        let scratch = tempfile::NamedTempFile::new().map_err(|e| ServiceError::Internal(e.to_string()))?;
        let read = match self.blobs.read(&job.blob_key, None).await {
            Ok(read) => read,
            // The job's bytes are gone (or were stored elsewhere): retrying cannot help.
            Err(aether_domain::blob::BlobError::NotFound) => {
                self.fail(job, JobFailure::new("file_missing", "The uploaded file is no longer in storage.")).await;
                return Err(job_finished(job));
            }
            Err(error) => return Err(blob_error(error)),
        };
        let mut file = tokio::fs::File::from_std(scratch.reopen().map_err(|e| ServiceError::Internal(e.to_string()))?);
        let mut stream = read.stream;
        while let Some(chunk) = stream.next().await {
            file.write_all(&chunk.map_err(blob_error)?).await.map_err(|e| ServiceError::Internal(e.to_string()))?;
        }
        file.flush().await.map_err(|e| ServiceError::Internal(e.to_string()))?;
        Ok(scratch)
    }

    /// Moves the job's bytes to `quarantine/{job}/original`, out of every user's
    /// reach, and fails the job (which queues the original for deletion).
    #[tracing::instrument(name = "job.quarantine", skip_all, fields(code = %failure.code))]
    async fn quarantine(&self, job: &UploadJob, failure: JobFailure) -> ServiceResult<UploadJob> {
        let target = quarantine_key(job);
        match self.blobs.read(&job.blob_key, None).await {
            Ok(read) => {
                let mut writer = self.blobs.writer(&target).await.map_err(blob_error)?;
                let mut stream = read.stream;
                while let Some(chunk) = stream.next().await {
                    writer.write(chunk.map_err(blob_error)?).await.map_err(blob_error)?;
                }
                writer.finish().await.map_err(blob_error)?;
            }
            Err(aether_domain::blob::BlobError::NotFound) => {}
            Err(error) => return Err(blob_error(error)),
        }
        tracing::warn!(job_id = %job.id, key = %target, code = %failure.code, "file quarantined");
        self.fail(job, failure).await;
        Ok(self.store.get_job(job.id).await?)
    }

    #[tracing::instrument(name = "job.extract", skip_all)]
    async fn extract(
        &self,
        job: &UploadJob,
        settings: &ComplianceSettings,
        input: &Path,
    ) -> ServiceResult<ProcessingResult> {
        let request = ProcessRequest {
            filename: job.filename.as_str().to_owned(),
            scan_pii: scans_pii(settings),
            redaction: settings.redaction_mode,
        };
        let started = Instant::now();
        let outcome = self.processor.process(input, &request).await;
        let elapsed = started.elapsed();
        let mut result = unprocessed(job);
        result.processing_metadata.insert("duration_ms".into(), (elapsed.as_millis() as u64).into());
        result.processing_metadata.insert("attempts".into(), job.attempts.into());
        let processed = match outcome {
            Ok(processed) => processed,
            Err(ProcessError::Unavailable(reason)) => return Err(ServiceError::Unavailable(reason)),
            Err(error) => {
                metrics::counter!("aether_documents_processed_total", "format" => "unknown", "outcome" => "failed")
                    .increment(1);
                result.error = Some(error.failure());
                return Ok(result);
            }
        };
        let extraction = processed.extraction;
        let format = extraction.format.as_str().to_owned();
        metrics::histogram!("aether_document_processing_seconds", "format" => format.clone())
            .record(elapsed.as_secs_f64());
        metrics::counter!("aether_documents_processed_total", "format" => format.clone(), "outcome" => "completed")
            .increment(1);
        result.content_type = extraction.content_type.clone();
        result.format = format;
        result.supported = extraction.supported;
        result.extracted_metadata = extraction.metadata.clone();
        if extraction.text_truncated {
            result.processing_metadata.insert("text_truncated".into(), true.into());
        }
        if !extraction.warnings.is_empty() {
            result.processing_metadata.insert("warnings".into(), extraction.warnings.clone().into());
        }
        result.extracted_text = extraction.text;
        self.record_findings(job, settings, &mut result, &processed.pii, processed.redacted_text).await?;
        result.extracted_metadata = redact_metadata(result.extracted_metadata, settings.redaction_mode);
        if let Some(thumbnail) = extraction.thumbnail_png {
            let key = job.derived_key(document::THUMBNAIL_NAME);
            let store = tracing::info_span!("job.store_derived", blob = document::THUMBNAIL_NAME);
            self.blobs.put(&key, thumbnail).instrument(store).await.map_err(blob_error)?;
            result.thumbnail_key = Some(key);
        }
        Ok(result)
    }

    /// Hands the job to the external processor, or, for a job it already has (the
    /// worker died, or a webhook was lost), asks it how far it is.
    #[tracing::instrument(name = "job.process_externally", skip_all)]
    async fn work_externally(
        &self,
        job: UploadJob,
        settings: &ComplianceSettings,
        external: &External,
    ) -> ServiceResult<UploadJob> {
        let processor = &external.processor;
        let lease = || time::after(time::now(), external.timeout);
        if let Some(file_id) = job.external_id.clone() {
            match processor.status(&file_id).await {
                Ok(status) if status.is_done() => {
                    let text = processor.extracted_text(&file_id).await.map_err(external_error)?;
                    let result = self.external_result(&job, settings, Some(text), serde_json::Map::new()).await?;
                    return self.finish(&job, result).await;
                }
                Ok(status) if status.is_failed() => {
                    let mut result = unprocessed(&job);
                    result.error = Some(JobFailure::new(
                        "external_processing_failed",
                        status.error.unwrap_or_else(|| "AudiModal could not process the file.".to_owned()),
                    ));
                    return self.finish(&job, result).await;
                }
                Ok(_) => {
                    let job = self.advance(&job, JobStatus::Processing, "processing at AudiModal").await?;
                    return self.hold_externally(&job, &file_id, lease()).await;
                }
                // AudiModal lost it: submit again.
                Err(aether_domain::external::ExternalError::NotFound) => {}
                Err(error) => return Err(external_error(error)),
            }
        }
        let job = self.advance(&job, JobStatus::Processing, "submitting to AudiModal").await?;
        let file = job.file.clone().ok_or_else(|| ServiceError::Internal("an accepted job without a file".into()))?;
        let expires_in = external.timeout.min(MAX_URL_LIFETIME);
        let disposition = content_disposition(job.filename.as_str());
        let url = match self.blobs.presigned_get(&job.blob_key, expires_in, &disposition).await.map_err(blob_error)? {
            Some(url) => url,
            None => {
                let token = UrlToken {
                    key: job.blob_key.as_str().to_owned(),
                    expires: time::after(time::now(), expires_in).timestamp(),
                    filename: job.filename.as_str().to_owned(),
                    content_type: file.content_type.clone(),
                };
                let base = external.public_url.trim_end_matches('/');
                format!("{base}/api/v1/storage/signed?token={}", self.url_signer.sign(&token))
            }
        };
        let submission = Submission {
            url,
            filename: job.filename.as_str().to_owned(),
            content_type: file.content_type.clone(),
            size: file.size,
            job_id: job.id.to_string(),
            scan_pii: scans_pii(settings),
            redaction_mode: serde_json::to_value(settings.redaction_mode)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| "none".to_owned()),
        };
        // The id is recorded before processing starts, so that no webhook about the
        // file can arrive before the job knows it.
        let file_id = processor.register(&submission).await.map_err(external_error)?;
        let job = self.hold_externally(&job, &file_id, lease()).await?;
        processor.process(&file_id, &submission).await.map_err(external_error)?;
        // The lease now covers AudiModal's work; its webhooks report the stages.
        Ok(job)
    }

    async fn hold_externally(&self, job: &UploadJob, file_id: &str, lease: Timestamp) -> ServiceResult<UploadJob> {
        match self.store.set_job_external_id(job.id, file_id, lease, time::now()).await {
            Ok(held) => Ok(held),
            Err(StoreError::Conflict(_)) => Err(job_finished(job)),
            Err(error) => Err(error.into()),
        }
    }

    /// The result of a file the external processor extracted: its text and metadata,
    /// with this notebook's PII scan and redaction applied to the text.
    async fn external_result(
        &self,
        job: &UploadJob,
        settings: &ComplianceSettings,
        text: Option<String>,
        metadata: serde_json::Map<String, serde_json::Value>,
    ) -> ServiceResult<ProcessingResult> {
        let mut result = unprocessed(job);
        result.format = "external".to_owned();
        result.supported = true;
        result.extracted_metadata = metadata;
        result.processing_metadata.insert("processor".into(), "audimodal".into());
        if let Some(file_id) = &job.external_id {
            result.processing_metadata.insert("audimodal_file_id".into(), file_id.clone().into());
        }
        if let Some(text) = &text
            && scans_pii(settings)
        {
            let (counts, redacted) = scan_text(text, settings.redaction_mode);
            self.record_findings(job, settings, &mut result, &counts, redacted).await?;
        }
        result.extracted_metadata = redact_metadata(result.extracted_metadata, settings.redaction_mode);
        result.extracted_text = text;
        Ok(result)
    }

    /// Handles a signed webhook from the external processor. Redeliveries and
    /// events for finished jobs change nothing, so AudiModal may retry freely.
    pub async fn external_webhook(&self, timestamp: &str, signature: &str, body: &[u8]) -> ServiceResult<()> {
        let external = self.external.as_ref().ok_or(ServiceError::NotFound)?;
        if !external.processor.verify_webhook(timestamp, signature, body, time::now().timestamp()) {
            return Err(ServiceError::Unauthenticated(aether_domain::token::TokenError::Invalid(
                "webhook signature".into(),
            )));
        }
        let event: WebhookEvent = serde_json::from_slice(body)
            .map_err(|e| ValidationError::new("body", format!("not a webhook event: {e}")))?;
        let job_id = JobId::parse(&event.document_id)?;
        let job = self.store.get_job(job_id).await?;
        if job.external_id.as_deref() != Some(event.file_id.as_str()) {
            return Err(ServiceError::NotFound);
        }
        tracing::info!(job_id = %job.id, event = %event.event, event_id = ?event.event_id, "AudiModal webhook");
        if job.status.is_terminal() {
            return Ok(());
        }
        let settings = match self.store.get_notebook(job.notebook_id).await {
            Ok(notebook) => notebook.compliance_settings,
            Err(StoreError::NotFound) => ComplianceSettings::default(),
            Err(error) => return Err(error.into()),
        };
        let outcome = match event.event.as_str() {
            "processing.started" | "processing.progress" => {
                let stage = match (event.stage.as_deref(), event.progress) {
                    (Some(stage), Some(progress)) => format!("AudiModal: {stage} ({progress:.0}%)"),
                    (Some(stage), None) => format!("AudiModal: {stage}"),
                    (None, Some(progress)) => format!("processing at AudiModal ({progress:.0}%)"),
                    (None, None) => "processing at AudiModal".to_owned(),
                };
                let now = time::now();
                match self
                    .store
                    .advance_job(job.id, JobStatus::Processing, &stage, time::after(now, external.timeout), now)
                    .await
                {
                    Ok(advanced) => {
                        self.changed(&advanced, Some(job.status));
                        Ok(())
                    }
                    Err(StoreError::Conflict(_)) => Ok(()),
                    Err(error) => Err(error.into()),
                }
            }
            "processing.completed" => {
                let data = event.data.unwrap_or_default();
                let result = self.external_result(&job, &settings, data.extracted_text, data.metadata).await?;
                self.finish(&job, result).await.map(|_| ())
            }
            "processing.failed" => {
                let mut result = unprocessed(&job);
                result.processing_metadata.insert("processor".into(), "audimodal".into());
                result.error = Some(JobFailure::new(
                    "external_processing_failed",
                    event.error.unwrap_or_else(|| "AudiModal could not process the file.".to_owned()),
                ));
                self.finish(&job, result).await.map(|_| ())
            }
            other => {
                tracing::info!(event = other, "ignored an AudiModal event");
                Ok(())
            }
        };
        match outcome {
            Err(ServiceError::Rejected { code: "job_finished", .. }) => Ok(()),
            other => other,
        }
    }

    /// The external processor's view of a job the caller may read.
    pub async fn external_status(&self, caller: &Principal, id: JobId) -> ServiceResult<serde_json::Value> {
        let job = self.job(caller, id).await?;
        let external = self.external.as_ref().ok_or(ServiceError::NotFound)?;
        let file_id = job.external_id.clone().ok_or(ServiceError::NotFound)?;
        let status = external.processor.status(&file_id).await.map_err(external_error)?;
        Ok(serde_json::json!({
            "job_id": job.id.to_string(),
            "audimodal_file_id": file_id,
            "status": status.status,
            "error": status.error,
            "details": status.raw,
        }))
    }

    /// Puts the PII findings in the result and stores the redacted copy.
    async fn record_findings(
        &self,
        job: &UploadJob,
        settings: &ComplianceSettings,
        result: &mut ProcessingResult,
        counts: &BTreeMap<String, usize>,
        redacted_text: Option<String>,
    ) -> ServiceResult<()> {
        let found: usize = counts.values().sum();
        result.pii_detected = found > 0;
        let mut scan = serde_json::Map::new();
        scan.insert("pii_detection".into(), settings.pii_detection.into());
        scan.insert("redaction_mode".into(), serde_json::to_value(settings.redaction_mode).unwrap_or_default());
        scan.insert("findings".into(), serde_json::to_value(counts).unwrap_or_default());
        scan.insert("total_findings".into(), found.into());
        scan.insert("scanned_at".into(), time::to_storage(&time::now()).into());
        result.compliance_scan_results = scan;
        if let Some(redacted) = redacted_text {
            let key = job.derived_key(document::REDACTED_NAME);
            let store = tracing::info_span!("job.store_derived", blob = document::REDACTED_NAME);
            self.blobs.put(&key, redacted.clone().into_bytes()).instrument(store).await.map_err(blob_error)?;
            result.redacted_key = Some(key);
            result.redacted_text = Some(redacted);
            result.redaction_applied = found > 0;
        }
        Ok(())
    }

    #[tracing::instrument(name = "job.finish", skip_all, fields(job_id = %job.id))]
    async fn finish(&self, job: &UploadJob, result: ProcessingResult) -> ServiceResult<UploadJob> {
        match self.store.finish_job(job.id, result, time::now()).await {
            Ok((finished, document)) => {
                tracing::info!(job_id = %job.id, document_id = %document.id, status = finished.status.as_str(), "job finished");
                self.changed(&finished, Some(job.status));
                Ok(finished)
            }
            Err(StoreError::Conflict(_)) => {
                // Cancelled meanwhile: what this attempt wrote must go too. (Finished
                // by someone else, e.g. a redelivered webhook: its blobs are the
                // document's now, and stay.)
                let current = self.store.get_job(job.id).await?;
                if current.status == JobStatus::Cancelled {
                    self.store.queue_blob_deletions(&job.written_keys(), time::now()).await?;
                    self.work_ready.notify_one();
                }
                Err(job_finished(&current))
            }
            Err(StoreError::NotFound) => {
                // The document this version belonged to was deleted meanwhile.
                self.fail(job, JobFailure::new("document_deleted", "The document was deleted during processing."))
                    .await;
                Ok(self.store.get_job(job.id).await?)
            }
            Err(error) => Err(error.into()),
        }
    }
}

/// An AudiModal webhook, as Aether defines it (AudiModal's public code defines
/// none): the design's event names and fields, plus AudiModal's file id and the
/// `document_id` Aether sent with the file (the job id).
#[derive(Debug, Deserialize)]
struct WebhookEvent {
    event_id: Option<String>,
    event: String,
    file_id: String,
    document_id: String,
    stage: Option<String>,
    progress: Option<f64>,
    data: Option<WebhookData>,
    error: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct WebhookData {
    extracted_text: Option<String>,
    #[serde(default)]
    metadata: serde_json::Map<String, serde_json::Value>,
}

fn external_error(error: aether_domain::external::ExternalError) -> ServiceError {
    use aether_domain::external::ExternalError;
    match error {
        ExternalError::Unavailable(reason) => ServiceError::Unavailable(reason),
        ExternalError::NotFound => ServiceError::NotFound,
        ExternalError::Refused(reason) => ServiceError::Internal(format!("AudiModal refused: {reason}")),
    }
}

/// Where a refused file is kept for administrators.
pub fn quarantine_key(job: &UploadJob) -> BlobKey {
    BlobKey::parse(&format!("quarantine/{}/original", job.id)).expect("hyphenated UUIDs are valid key segments")
}

/// The result of a file stored without (successful) extraction.
fn unprocessed(job: &UploadJob) -> ProcessingResult {
    ProcessingResult {
        content_type: job.file.as_ref().map(|f| f.content_type.clone()).unwrap_or_default(),
        format: "unsupported".to_owned(),
        ..ProcessingResult::default()
    }
}

fn content_type_allowed(settings: &ComplianceSettings, content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    settings.allowed_content_types.is_empty()
        || settings.allowed_content_types.iter().any(|allowed| match allowed.strip_suffix("/*") {
            Some(kind) => essence.split('/').next() == Some(kind),
            None => allowed == essence,
        })
}

/// Bytes kept from the start of an upload to sniff its type.
const SNIFF_BYTES: usize = 64 * 1024;
/// How often upload progress is written to the store.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(500);
/// How long an idle worker waits before looking for jobs again (other processes'
/// jobs and expired leases do not wake it).
const IDLE_POLL: Duration = Duration::from_secs(1);
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(10);
/// How long a job waits after a failed attempt before another worker may take it.
const RETRY_DELAY: Duration = Duration::from_secs(5);

/// HMAC-SHA256 over the concatenated `parts`, ready to finalize or verify.
fn hmac_sha256(secret: &[u8], parts: &[&[u8]]) -> hmac::Hmac<Sha256> {
    use hmac::Mac as _;
    let mut mac = <hmac::Hmac<Sha256> as hmac::Mac>::new_from_slice(secret).expect("HMAC takes keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn digest_of(text: &str) -> String {
    crate::accounts::digest(text)[..32].to_owned()
}

/// The time a job has been running, for ETAs.
/// How long until `at` (zero once it has passed).
fn time_until(at: Timestamp) -> Duration {
    (at - time::now()).to_std().unwrap_or_default()
}

pub fn elapsed_since(at: Timestamp) -> Duration {
    (time::now() - at).to_std().unwrap_or_default()
}

/// Links a job's span to the span of the request that started it, when that
/// request was traced: the job is its own trace (it may run much later, and more
/// than once), and the link lets a trace viewer go from one to the other.
fn link_to_origin(span: &tracing::Span, origin: &JobOrigin) {
    use opentelemetry::trace::TraceContextExt as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let Some(traceparent) = &origin.traceparent else { return };
    let carrier = HashMap::from([("traceparent".to_owned(), traceparent.clone())]);
    let context = opentelemetry::global::get_text_map_propagator(|propagator| propagator.extract(&carrier));
    // A traceparent that does not parse gives an invalid context, which `add_link` ignores.
    span.add_link(context.span().span_context().clone());
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn content_types_match_media_ranges() {
        let settings = ComplianceSettings {
            allowed_content_types: vec!["application/pdf".into(), "image/*".into()],
            ..ComplianceSettings::default()
        };
        assert!(content_type_allowed(&settings, "application/pdf"));
        assert!(content_type_allowed(&settings, "image/png"));
        assert!(!content_type_allowed(&settings, "text/plain; charset=utf-8"));
        assert!(content_type_allowed(&ComplianceSettings::default(), "anything/else"));
    }

    #[test]
    fn pii_is_counted_and_redacted() {
        let request = ProcessRequest { filename: "a.txt".into(), scan_pii: true, redaction: RedactionMode::Mask };
        let processed = process_bytes(b"Mail jane@example.com or call +1 415-555-0100.", &request).unwrap();
        assert_eq!(processed.pii.get("email"), Some(&1));
        let redacted = processed.redacted_text.unwrap();
        assert!(!redacted.contains("jane@example.com"), "{redacted}");
        assert!(redacted.contains("[REDACTED:EMAIL]"), "{redacted}");
    }
}
