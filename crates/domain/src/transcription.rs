//! Speech to text: the port of the transcription services that turn audio and video
//! into a document's text.

use std::path::Path;

use async_trait::async_trait;

/// What a file said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transcript {
    pub text: String,
    /// The spoken language, when the service names it (`en`, `english`).
    pub language: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranscribeError {
    /// The service could not be reached or is failing; another time may work.
    #[error("transcription service unavailable: {0}")]
    Unavailable(String),
    /// The service refused this file or answered something else than a transcript.
    #[error("transcription failed: {0}")]
    Failed(String),
}

/// Turns the speech in an audio or video file into text.
#[async_trait]
pub trait Transcriber: Send + Sync + std::fmt::Debug {
    /// The model asked for, recorded with each transcript.
    fn model(&self) -> &str;

    /// Files larger than this are not sent.
    fn max_bytes(&self) -> u64;

    /// Transcribes the file at `file` (named `filename`, of `content_type`).
    async fn transcribe(&self, file: &Path, filename: &str, content_type: &str) -> Result<Transcript, TranscribeError>;
}
