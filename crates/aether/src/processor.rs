//! Document processing in a separate, resource-limited process.
//!
//! Parsers of hostile formats are the riskiest code in the server: a zip bomb, a
//! pathological PDF or a parser bug must not take the server down or hold a worker
//! forever. Each file is therefore processed by `aether extract`, a child process
//! that limits its own address space and CPU time before reading the file, and that
//! the worker kills when the wall-clock timeout passes. Whatever happens inside it,
//! the worker gets a result or a reason.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use aether_services::documents::{DocumentProcessor, ProcessError, ProcessRequest, Processed, process_bytes};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// What `aether extract` prints on its standard output.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExtractOutcome {
    Processed(Box<Processed>),
    Malformed(String),
    LimitExceeded(String),
}

#[derive(Debug, Clone)]
pub struct SandboxedProcessor {
    /// The `aether` binary to run as `aether extract`.
    pub program: PathBuf,
    pub timeout: Duration,
    pub memory_bytes: u64,
}

#[async_trait]
impl DocumentProcessor for SandboxedProcessor {
    async fn process(&self, input: &Path, request: &ProcessRequest) -> Result<Processed, ProcessError> {
        let request_json = serde_json::to_string(request).map_err(|e| ProcessError::Unavailable(e.to_string()))?;
        let child = tokio::process::Command::new(&self.program)
            .arg("extract")
            .arg("--input")
            .arg(input)
            .arg("--request")
            .arg(request_json)
            .arg("--memory-bytes")
            .arg(self.memory_bytes.to_string())
            .arg("--cpu-seconds")
            .arg((self.timeout.as_secs() + 1).to_string())
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| ProcessError::Unavailable(format!("cannot start {}: {e}", self.program.display())))?;
        // Dropping the future on timeout drops the child, which kills it.
        let output = match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            Err(_) => return Err(ProcessError::TimedOut),
            Ok(Err(error)) => return Err(ProcessError::Unavailable(error.to_string())),
            Ok(Ok(output)) => output,
        };
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let last_line = stderr.lines().last().unwrap_or_default().chars().take(300).collect::<String>();
            return Err(ProcessError::Crashed(format!("{} ({last_line})", output.status)));
        }
        match serde_json::from_slice::<ExtractOutcome>(&output.stdout) {
            Ok(ExtractOutcome::Processed(processed)) => Ok(*processed),
            Ok(ExtractOutcome::Malformed(message)) => Err(ProcessError::Malformed(message)),
            Ok(ExtractOutcome::LimitExceeded(message)) => Err(ProcessError::LimitExceeded(message)),
            Err(error) => Err(ProcessError::Crashed(format!("unreadable extractor output: {error}"))),
        }
    }
}

/// The body of `aether extract`: limits this process, processes the file and
/// prints the outcome as JSON.
pub fn run_extract(input: &Path, request: &str, memory_bytes: u64, cpu_seconds: u64) -> anyhow::Result<()> {
    use rlimit::Resource;
    Resource::AS.set(memory_bytes, memory_bytes)?;
    Resource::CPU.set(cpu_seconds, cpu_seconds)?;
    let request: ProcessRequest = serde_json::from_str(request)?;
    let bytes = std::fs::read(input)?;
    let outcome = match process_bytes(&bytes, &request) {
        Ok(processed) => ExtractOutcome::Processed(Box::new(processed)),
        Err(aether_extract::ExtractError::Malformed(message)) => ExtractOutcome::Malformed(message),
        Err(aether_extract::ExtractError::LimitExceeded(message)) => ExtractOutcome::LimitExceeded(message),
    };
    serde_json::to_writer(std::io::stdout().lock(), &outcome)?;
    Ok(())
}
