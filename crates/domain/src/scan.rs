//! Virus scanning of uploaded files: ClamAV's `clamd` in production, off in the
//! embedded shape.

use std::fmt;
use std::path::Path;

use async_trait::async_trait;

/// What a scanner found in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanVerdict {
    Clean,
    /// The name of the signature that matched.
    Infected(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    /// The scanner cannot be reached; scanning may be retried.
    #[error("virus scanner unavailable: {0}")]
    Unavailable(String),
    /// The scanner refused the file (too large for it, an internal error).
    #[error("virus scanner refused the file: {0}")]
    Refused(String),
}

#[async_trait]
pub trait VirusScanner: Send + Sync + fmt::Debug {
    /// Scans the file at `path`, streaming it to the scanner.
    async fn scan(&self, path: &Path) -> Result<ScanVerdict, ScanError>;
    /// Answers when the scanner is ready.
    async fn ping(&self) -> Result<(), ScanError>;
}
