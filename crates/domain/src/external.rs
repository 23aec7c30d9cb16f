//! An external document processor (AudiModal): files are submitted by URL, and
//! results come back in signed webhooks.

use std::fmt;

use async_trait::async_trait;

/// A file handed to the external processor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submission {
    /// Where the processor downloads the file (a signed, expiring URL).
    pub url: String,
    pub filename: String,
    pub content_type: String,
    pub size: u64,
    /// Our job id, sent as the processor's `document_id` and echoed in webhooks.
    pub job_id: String,
    pub scan_pii: bool,
    /// `none`, `mask` or `remove`.
    pub redaction_mode: String,
}

/// The processor's view of a file.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalStatus {
    /// `discovered`, `processing`, `processed`, `completed`, `error`, `failed`.
    pub status: String,
    pub error: Option<String>,
    /// The processor's whole answer, for clients that want details.
    pub raw: serde_json::Value,
}

impl ExternalStatus {
    pub fn is_done(&self) -> bool {
        matches!(self.status.as_str(), "processed" | "completed")
    }

    pub fn is_failed(&self) -> bool {
        matches!(self.status.as_str(), "error" | "failed")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExternalError {
    #[error("external processor unavailable: {0}")]
    Unavailable(String),
    #[error("external processor refused the request: {0}")]
    Refused(String),
    #[error("not found at the external processor")]
    NotFound,
}

#[async_trait]
pub trait ExternalProcessor: Send + Sync + fmt::Debug {
    /// Registers the file; answers the processor's file id. Nothing runs yet, so
    /// the caller can record the id before any webhook about it can arrive.
    async fn register(&self, submission: &Submission) -> Result<String, ExternalError>;
    /// Starts processing a registered file.
    async fn process(&self, file_id: &str, submission: &Submission) -> Result<(), ExternalError>;
    async fn status(&self, file_id: &str) -> Result<ExternalStatus, ExternalError>;
    /// The text the processor extracted from a processed file.
    async fn extracted_text(&self, file_id: &str) -> Result<String, ExternalError>;
    /// Stops processing and removes the file; a file already gone is not an error.
    async fn cancel(&self, file_id: &str) -> Result<(), ExternalError>;
    /// Checks a webhook's signature headers against its raw body.
    fn verify_webhook(&self, timestamp: &str, signature: &str, body: &[u8], now_unix: i64) -> bool;
}
