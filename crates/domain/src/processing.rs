//! Processing a stored file: the [`DocumentProcessor`] port that turns a file into
//! text, metadata and personal-data findings, what it is asked and what it answers,
//! and the [`ScratchSpace`] port that gives tools which read files (the sandboxed
//! extractor, ClamAV) a local copy of a stored file. The services never touch the
//! local filesystem themselves: the adapters behind these ports do.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use async_trait::async_trait;
use bytes::Bytes;
use futures_core::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::blob::BlobError;
use crate::compliance::RedactionMode;
use crate::document::JobFailure;

/// What a processor is asked to do with one file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessRequest {
    pub filename: String,
    pub scan_pii: bool,
    pub redaction: RedactionMode,
}

/// What extraction read from a file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extracted {
    /// The content type decided from the bytes.
    pub content_type: String,
    /// `pdf`, `docx`, … or `unsupported`.
    pub format: String,
    /// False for unknown binaries: they are accepted, just not read.
    pub supported: bool,
    /// `None` for formats without text (images, unsupported binaries).
    pub text: Option<String>,
    /// True when the text was cut at the extractor's limit.
    pub text_truncated: bool,
    /// Format-specific facts (page count, title, author …).
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// A PNG thumbnail, for images.
    pub thumbnail_png: Option<Vec<u8>>,
    /// Non-fatal problems: skipped pages, recovered damage, unreadable parts.
    pub warnings: Vec<String>,
}

/// What a processor found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Processed {
    pub extraction: Extracted,
    /// Findings per kind (`email`, `credit_card`, …).
    pub pii: BTreeMap<String, usize>,
    pub redacted_text: Option<String>,
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
    /// The job failure this error is reported as.
    pub fn failure(&self) -> JobFailure {
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

/// Turns a file (a [`ScratchFile`]'s copy) into text, metadata and findings. The
/// production one runs each file in a separate, resource-limited process.
#[async_trait]
pub trait DocumentProcessor: Send + Sync + fmt::Debug {
    async fn process(&self, input: &Path, request: &ProcessRequest) -> Result<Processed, ProcessError>;
}

/// A local copy of a stored file, removed when dropped.
pub trait ScratchFile: Send + Sync + fmt::Debug {
    /// Where the copy is, for tools that read files by name.
    fn path(&self) -> &Path;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScratchError {
    /// The stored file could not be read.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// The local copy could not be written.
    #[error("scratch space: {0}")]
    Local(String),
}

/// Where local copies of stored files are made (a temporary directory).
#[async_trait]
pub trait ScratchSpace: Send + Sync + fmt::Debug {
    /// Writes the stream to a new local file.
    async fn copy(
        &self,
        stream: BoxStream<'static, Result<Bytes, BlobError>>,
    ) -> Result<Box<dyn ScratchFile>, ScratchError>;
}
