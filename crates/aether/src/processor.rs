//! Document processing in a separate, resource-limited process.
//!
//! Parsers of hostile formats are the riskiest code in the server: a zip bomb, a
//! pathological PDF or a parser bug must not take the server down or hold a worker
//! forever. Each file is therefore processed by `aether extract`, a child process
//! that limits its own address space and CPU time before reading the file, and that
//! the worker kills when the wall-clock timeout passes. Whatever happens inside it,
//! the worker gets a result or a reason.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use aether_domain::processing::{DocumentProcessor, Extracted, ProcessError, ProcessRequest, Processed};
use aether_extract::ocr::{OcrNeed, ocr_need};
use aether_extract::{Extraction, Limits};
use aether_ocr::{MediaTools, OcrEngine};
use aether_services::documents::scan_text;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// What the processing of one file found, as it crosses the process boundary (the
/// extraction in `aether_extract`'s own form, the thumbnail in base64).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Found {
    pub extraction: Extraction,
    /// Findings per kind (`email`, `credit_card`, …).
    pub pii: BTreeMap<String, usize>,
    pub redacted_text: Option<String>,
}

impl From<Found> for Processed {
    fn from(found: Found) -> Self {
        let extraction = found.extraction;
        Processed {
            extraction: Extracted {
                content_type: extraction.content_type,
                format: extraction.format.as_str().to_owned(),
                supported: extraction.supported,
                text: extraction.text,
                text_truncated: extraction.text_truncated,
                metadata: extraction.metadata,
                thumbnail_png: extraction.thumbnail_png,
                warnings: extraction.warnings,
            },
            pii: found.pii,
            redacted_text: found.redacted_text,
        }
    }
}

/// The programs processing runs beside the pure extraction, as found at start-up:
/// Tesseract for OCR, ffprobe and ffmpeg for audio and video. They cross into the
/// sandbox as JSON (`aether extract --tools`); `None`: not here, or turned off.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Tools {
    pub ocr: Option<OcrEngine>,
    pub media: Option<MediaTools>,
}

/// Extraction, OCR, audio and video description (with `tools`, before
/// `tools_deadline`), PII scan and redaction of one file's bytes, run by the sandboxed
/// `aether extract` process and by [`InProcessProcessor`]. `input` is the file the
/// bytes were read from, for the programs that read files themselves (ffprobe).
/// Recognised text is scanned and redacted like any other.
pub fn process_bytes(
    bytes: &[u8],
    input: Option<&Path>,
    request: &ProcessRequest,
    tools: &Tools,
    tools_deadline: Instant,
) -> Result<Found, aether_extract::ExtractError> {
    let limits = Limits::default();
    let mut extraction = aether_extract::extract(bytes, &request.filename, &limits)?;
    match &tools.ocr {
        Some(engine) => engine.recognise(&mut extraction, bytes, &limits, tools_deadline),
        None => {
            if ocr_need(&extraction, &limits, 1) != OcrNeed::Nothing {
                extraction.warnings.push("OCR is not available on this server: no text was recognised".into());
            }
        }
    }
    if aether_extract::media::is_media(extraction.format) {
        match (&tools.media, input) {
            (Some(media), Some(input)) => media.describe(&mut extraction, input, &limits, tools_deadline),
            _ => extraction
                .warnings
                .push("audio and video are not described on this server (ffprobe is not installed)".into()),
        }
    }
    let (counts, redacted_text) = match &extraction.text {
        Some(text) if request.scan_pii => scan_text(text, request.redaction),
        _ => (BTreeMap::new(), None),
    };
    Ok(Found { extraction, pii: counts, redacted_text })
}

/// What `aether extract` prints on its standard output.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExtractOutcome {
    Processed(Box<Found>),
    Malformed(String),
    LimitExceeded(String),
}

/// Runs [`process_bytes`] on a blocking thread with a timeout. No memory limit and
/// no way to stop a runaway extraction: for tests and tools, not for serving.
#[derive(Debug, Clone)]
pub struct InProcessProcessor {
    pub timeout: Duration,
    pub tools: Tools,
}

/// The time OCR and the media tools may use of a file's processing `timeout`: three
/// quarters; the rest is for extraction, the PII scan and the answer.
fn tools_budget(timeout: Duration) -> Duration {
    timeout.mul_f64(0.75)
}

#[async_trait]
impl DocumentProcessor for InProcessProcessor {
    async fn process(&self, input: &Path, request: &ProcessRequest) -> Result<Processed, ProcessError> {
        let bytes = tokio::fs::read(input).await.map_err(|e| ProcessError::Unavailable(e.to_string()))?;
        let request = request.clone();
        let tools = self.tools.clone();
        let input = input.to_path_buf();
        let deadline = Instant::now() + tools_budget(self.timeout);
        let work = tokio::task::spawn_blocking(move || process_bytes(&bytes, Some(&input), &request, &tools, deadline));
        match tokio::time::timeout(self.timeout, work).await {
            Err(_) => Err(ProcessError::TimedOut),
            Ok(Err(join)) => Err(ProcessError::Crashed(join.to_string())),
            Ok(Ok(Err(aether_extract::ExtractError::Malformed(m)))) => Err(ProcessError::Malformed(m)),
            Ok(Ok(Err(aether_extract::ExtractError::LimitExceeded(m)))) => Err(ProcessError::LimitExceeded(m)),
            Ok(Ok(Ok(found))) => Ok(found.into()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SandboxedProcessor {
    /// The `aether` binary to run as `aether extract`.
    pub program: PathBuf,
    pub timeout: Duration,
    pub memory_bytes: u64,
    /// The programs found at start-up, handed to the child.
    pub tools: Tools,
}

#[async_trait]
impl DocumentProcessor for SandboxedProcessor {
    async fn process(&self, input: &Path, request: &ProcessRequest) -> Result<Processed, ProcessError> {
        let request_json = serde_json::to_string(request).map_err(|e| ProcessError::Unavailable(e.to_string()))?;
        let mut command = tokio::process::Command::new(&self.program);
        command
            .arg("extract")
            .arg("--input")
            .arg(input)
            .arg("--request")
            .arg(request_json)
            .arg("--memory-bytes")
            .arg(self.memory_bytes.to_string())
            .arg("--cpu-seconds")
            .arg((self.timeout.as_secs() + 1).to_string())
            .arg("--tools-millis")
            .arg(tools_budget(self.timeout).as_millis().to_string());
        let tools = serde_json::to_string(&self.tools).map_err(|e| ProcessError::Unavailable(e.to_string()))?;
        command.arg("--tools").arg(tools);
        // A process group of its own, so that the programs it starts die with it.
        let child = command
            .env_clear()
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| ProcessError::Unavailable(format!("cannot start {}: {e}", self.program.display())))?;
        let group = child.id().and_then(|id| rustix::process::Pid::from_raw(id.cast_signed()));
        // Dropping the future on timeout drops the child, which kills it; its group
        // (Tesseract, pdftoppm, ffprobe, ffmpeg) is killed here.
        let output = match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            Err(_) => {
                if let Some(group) = group {
                    let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
                }
                return Err(ProcessError::TimedOut);
            }
            Ok(Err(error)) => return Err(ProcessError::Unavailable(error.to_string())),
            Ok(Ok(output)) => output,
        };
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let last_line = stderr.lines().last().unwrap_or_default().chars().take(300).collect::<String>();
            return Err(ProcessError::Crashed(format!("{} ({last_line})", output.status)));
        }
        match serde_json::from_slice::<ExtractOutcome>(&output.stdout) {
            Ok(ExtractOutcome::Processed(found)) => Ok((*found).into()),
            Ok(ExtractOutcome::Malformed(message)) => Err(ProcessError::Malformed(message)),
            Ok(ExtractOutcome::LimitExceeded(message)) => Err(ProcessError::LimitExceeded(message)),
            Err(error) => Err(ProcessError::Crashed(format!("unreadable extractor output: {error}"))),
        }
    }
}

/// The body of `aether extract`: limits this process, processes the file and
/// prints the outcome as JSON.
pub fn run_extract(
    input: &Path,
    request: &str,
    memory_bytes: u64,
    cpu_seconds: u64,
    tools: Option<&str>,
    tools_millis: u64,
) -> anyhow::Result<()> {
    use rlimit::Resource;
    let deadline = Instant::now() + Duration::from_millis(tools_millis);
    Resource::AS.set(memory_bytes, memory_bytes)?;
    Resource::CPU.set(cpu_seconds, cpu_seconds)?;
    let request: ProcessRequest = serde_json::from_str(request)?;
    let tools: Tools = tools.map(serde_json::from_str).transpose()?.unwrap_or_default();
    let bytes = std::fs::read(input)?;
    let outcome = match process_bytes(&bytes, Some(input), &request, &tools, deadline) {
        Ok(processed) => ExtractOutcome::Processed(Box::new(processed)),
        Err(aether_extract::ExtractError::Malformed(message)) => ExtractOutcome::Malformed(message),
        Err(aether_extract::ExtractError::LimitExceeded(message)) => ExtractOutcome::LimitExceeded(message),
    };
    serde_json::to_writer(std::io::stdout().lock(), &outcome)?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use aether_domain::compliance::RedactionMode;

    #[test]
    fn pii_is_counted_and_redacted() {
        let request = ProcessRequest { filename: "a.txt".into(), scan_pii: true, redaction: RedactionMode::Mask };
        let processed = process_bytes(
            b"Mail jane@example.com or call +1 415-555-0100.",
            None,
            &request,
            &Tools::default(),
            Instant::now(),
        )
        .unwrap();
        assert_eq!(processed.pii.get("email"), Some(&1));
        let redacted = processed.redacted_text.unwrap();
        assert!(!redacted.contains("jane@example.com"), "{redacted}");
        assert!(redacted.contains("[REDACTED:EMAIL]"), "{redacted}");
    }
}
