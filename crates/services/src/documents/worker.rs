//! The workers: loops that claim jobs (polling the store, or from a queue) under a
//! lease they keep renewing, and the processing of one job: compliance checks, the
//! virus scan, extraction through the [`DocumentProcessor`] port (or the external
//! processor), PII findings and redaction, derived blobs, and the job's end.
//!
//! [`DocumentProcessor`]: aether_domain::processing::DocumentProcessor

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aether_domain::StoreError;
use aether_domain::blob::{BlobError, BlobKey};
use aether_domain::compliance::ComplianceSettings;
use aether_domain::document::JobFailure;
use aether_domain::document::{self, ProcessingResult};
use aether_domain::id::JobId;
use aether_domain::job::{JobOrigin, JobQueue, JobStatus, UploadJob};
use aether_domain::processing::{ProcessError, ProcessRequest, ScratchError, ScratchFile};
use aether_domain::scan::{ScanError, ScanVerdict};
use aether_domain::time::{self, Timestamp};
use futures::StreamExt as _;
use tokio::sync::watch;
use tracing::Instrument as _;

use super::pii::{redact_metadata, scan_text, scans_pii};
use super::{DocumentService, job_finished};
use crate::avatars::blob_error;
use crate::error::{ServiceError, ServiceResult};

impl DocumentService {
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
            match self.store.jobs.claim_job(now, time::after(now, self.settings.job_lease)).await {
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
            match self.store.jobs.claim_job_by_id(id, now, time::after(now, self.settings.job_lease)).await {
                Ok(Some(job)) => {
                    self.hub.publish(&job);
                    self.work(job).await;
                    continue;
                }
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, job_id = %id, "could not claim a queued job"),
            }
            let wait = match self.store.jobs.get_job(id).await {
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
                match self.store.jobs.claim_job(now, time::after(now, self.settings.job_lease)).await {
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
                    self.store.jobs.advance_job(id, JobStatus::Validating, "waiting to retry", retry_at, now).await
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
            match self.store.jobs.renew_job_lease(id, time::after(time::now(), self.settings.job_lease)).await {
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
        let notebook = match self.store.notebooks.get_notebook(job.notebook_id).await {
            Ok(notebook) => notebook,
            Err(StoreError::NotFound) => {
                self.fail(&job, JobFailure::new("notebook_deleted", "The notebook was deleted.")).await;
                return self.store.jobs.get_job(job.id).await.map_err(Into::into);
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
            return self.store.jobs.get_job(job.id).await.map_err(Into::into);
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

    pub(super) async fn advance(&self, job: &UploadJob, status: JobStatus, stage: &str) -> ServiceResult<UploadJob> {
        let now = time::now();
        match self.store.jobs.advance_job(job.id, status, stage, time::after(now, self.settings.job_lease), now).await {
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
    async fn fetch(&self, job: &UploadJob) -> ServiceResult<Box<dyn ScratchFile>> {
        let read = match self.blobs.read(&job.blob_key, None).await {
            Ok(read) => read,
            // The job's bytes are gone (or were stored elsewhere): retrying cannot help.
            Err(BlobError::NotFound) => {
                self.fail(job, JobFailure::new("file_missing", "The uploaded file is no longer in storage.")).await;
                return Err(job_finished(job));
            }
            Err(error) => return Err(blob_error(error)),
        };
        self.scratch.copy(read.stream).await.map_err(|error| match error {
            ScratchError::Blob(error) => blob_error(error),
            ScratchError::Local(message) => ServiceError::Internal(message),
        })
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
            Err(BlobError::NotFound) => {}
            Err(error) => return Err(blob_error(error)),
        }
        tracing::warn!(job_id = %job.id, key = %target, code = %failure.code, "file quarantined");
        self.fail(job, failure).await;
        Ok(self.store.jobs.get_job(job.id).await?)
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
        let mut extraction = processed.extraction;
        let (pii, redacted_text) = if self.transcribe(job, input, &mut extraction).await {
            // The transcript is new text, scanned here like the sandbox scans its own.
            match &extraction.text {
                Some(text) if request.scan_pii => scan_text(text, request.redaction),
                _ => (BTreeMap::new(), None),
            }
        } else {
            (processed.pii, processed.redacted_text)
        };
        let format = extraction.format.as_str().to_owned();
        metrics::histogram!("aether_document_processing_seconds", "format" => format.clone())
            .record(elapsed.as_secs_f64());
        metrics::counter!("aether_documents_processed_total", "format" => format.clone(), "outcome" => "completed")
            .increment(1);
        if let Some(pages) = extraction.metadata.get("ocr_pages").and_then(serde_json::Value::as_u64) {
            metrics::counter!("aether_ocr_pages_total", "format" => format.clone()).increment(pages);
        }
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
        self.record_findings(job, settings, &mut result, &pii, redacted_text).await?;
        result.extracted_metadata = redact_metadata(result.extracted_metadata, settings.redaction_mode);
        if let Some(thumbnail) = extraction.thumbnail_png {
            let key = job.derived_key(document::THUMBNAIL_NAME);
            let store = tracing::info_span!("job.store_derived", blob = document::THUMBNAIL_NAME);
            self.blobs.put(&key, thumbnail).instrument(store).await.map_err(blob_error)?;
            result.thumbnail_key = Some(key);
        }
        Ok(result)
    }

    /// Puts the PII findings in the result and stores the redacted copy.
    pub(super) async fn record_findings(
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
    pub(super) async fn finish(&self, job: &UploadJob, result: ProcessingResult) -> ServiceResult<UploadJob> {
        match self.store.jobs.finish_job(job.id, result, time::now()).await {
            Ok((finished, document)) => {
                // The notebook's document count and size changed with the new document
                // or version.
                self.access.reads().notebooks_changed().await;
                tracing::info!(job_id = %job.id, document_id = %document.id, status = finished.status.as_str(), "job finished");
                self.changed(&finished, Some(job.status));
                Ok(finished)
            }
            Err(StoreError::Conflict(_)) => {
                // Cancelled meanwhile: what this attempt wrote must go too. (Finished
                // by someone else, e.g. a redelivered webhook: its blobs are the
                // document's now, and stay.)
                let current = self.store.jobs.get_job(job.id).await?;
                if current.status == JobStatus::Cancelled {
                    self.store.blob_deletions.queue_blob_deletions(&job.written_keys(), time::now()).await?;
                    self.work_ready.notify_one();
                }
                Err(job_finished(&current))
            }
            Err(StoreError::NotFound) => {
                // The document this version belonged to was deleted meanwhile.
                self.fail(job, JobFailure::new("document_deleted", "The document was deleted during processing."))
                    .await;
                Ok(self.store.jobs.get_job(job.id).await?)
            }
            Err(error) => Err(error.into()),
        }
    }
}

/// Where a refused file is kept for administrators.
pub fn quarantine_key(job: &UploadJob) -> BlobKey {
    BlobKey::parse(&format!("quarantine/{}/original", job.id)).expect("hyphenated UUIDs are valid key segments")
}

/// The result of a file stored without (successful) extraction.
pub(super) fn unprocessed(job: &UploadJob) -> ProcessingResult {
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

/// How long an idle worker waits before looking for jobs again (other processes'
/// jobs and expired leases do not wake it).
const IDLE_POLL: Duration = Duration::from_secs(1);
/// How long a job waits after a failed attempt before another worker may take it.
const RETRY_DELAY: Duration = Duration::from_secs(5);

/// How long until `at` (zero once it has passed).
fn time_until(at: Timestamp) -> Duration {
    (at - time::now()).to_std().unwrap_or_default()
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
}
