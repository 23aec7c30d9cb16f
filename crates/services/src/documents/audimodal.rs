//! The external processor (AudiModal): files handed over by signed URL, held under
//! a lease while AudiModal works, and finished from its signed webhooks (or from
//! its status, when a worker takes the job again).

use std::sync::Arc;
use std::time::Duration;

use aether_domain::auth::Principal;
use aether_domain::compliance::ComplianceSettings;
use aether_domain::document::JobFailure;
use aether_domain::document::{ProcessingResult, content_disposition};
use aether_domain::external::{ExternalProcessor, Submission};
use aether_domain::id::JobId;
use aether_domain::job::{JobStatus, UploadJob};
use aether_domain::time::{self, Timestamp};
use aether_domain::{StoreError, ValidationError};
use serde::Deserialize;

use super::pii::{redact_metadata, scan_text, scans_pii};
use super::signing::{MAX_URL_LIFETIME, UrlToken};
use super::worker::unprocessed;
use super::{DocumentService, job_finished};
use crate::avatars::blob_error;
use crate::error::{ServiceError, ServiceResult};

/// An external processor (AudiModal) and how to hand it files.
#[derive(Debug)]
pub(super) struct External {
    pub(super) processor: Arc<dyn ExternalProcessor>,
    /// This server's external base URL, for the signed URLs the processor downloads.
    public_url: String,
    /// How long a job may stay with the processor before it is asked again.
    timeout: Duration,
}

impl DocumentService {
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

    /// Hands the job to the external processor, or, for a job it already has (the
    /// worker died, or a webhook was lost), asks it how far it is.
    #[tracing::instrument(name = "job.process_externally", skip_all)]
    pub(super) async fn work_externally(
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
        match self.store.jobs.set_job_external_id(job.id, file_id, lease, time::now()).await {
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
        let job = self.store.jobs.get_job(job_id).await?;
        if job.external_id.as_deref() != Some(event.file_id.as_str()) {
            return Err(ServiceError::NotFound);
        }
        tracing::info!(job_id = %job.id, event = %event.event, event_id = ?event.event_id, "AudiModal webhook");
        if job.status.is_terminal() {
            return Ok(());
        }
        let settings = match self.store.notebooks.get_notebook(job.notebook_id).await {
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
                    .jobs
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
