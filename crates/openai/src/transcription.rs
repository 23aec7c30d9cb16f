//! [`OpenAiTranscriber`]: the [`Transcriber`] over `POST {base}/audio/transcriptions`,
//! as OpenAI's API reference defines it and whisper.cpp's server, faster-whisper
//! servers, vLLM and LocalAI answer it: a multipart form with the `file` and the
//! `model` (and `response_format=json`), an optional `Authorization: Bearer` key, and
//! the answer `{"text": "…"}` (`language` too, from services that detect it).

use std::path::Path;
use std::time::{Duration, Instant};

use aether_domain::transcription::{TranscribeError, Transcriber, Transcript};
use async_trait::async_trait;
use serde::Deserialize;

/// How to reach an OpenAI-compatible transcription endpoint.
#[derive(Clone)]
pub struct OpenAiTranscriptionConfig {
    /// The API's base URL, up to and including its version: `https://api.openai.com/v1`.
    pub base_url: String,
    /// `whisper-1`, `gpt-4o-transcribe`, or what the local server serves.
    pub model: String,
    /// Sent as a bearer token when not empty.
    pub api_key: String,
    /// Larger files are not sent.
    pub max_bytes: u64,
}

impl std::fmt::Debug for OpenAiTranscriptionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiTranscriptionConfig")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

/// A transcript is text: an hour of speech is some 60 KB; anything far beyond is not
/// an answer to this request.
const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct OpenAiTranscriber {
    config: OpenAiTranscriptionConfig,
    url: String,
    http: reqwest::Client,
}

impl OpenAiTranscriber {
    /// `http` is the builder of the outbound client (the server passes one bound to its
    /// outbound policy).
    pub fn new(config: OpenAiTranscriptionConfig, http: reqwest::ClientBuilder) -> Result<Self, String> {
        if config.model.trim().is_empty() {
            return Err("the transcription model must be named".into());
        }
        // Transcribing an hour of audio takes minutes on a CPU server.
        let http = http
            .timeout(Duration::from_secs(600))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| error.to_string())?;
        let url = format!("{}/audio/transcriptions", config.base_url.trim_end_matches('/'));
        Ok(Self { config, url, http })
    }

    async fn call(&self, file: &Path, filename: &str, content_type: &str) -> Result<Transcript, TranscribeError> {
        let size = tokio::fs::metadata(file).await.map_err(|e| TranscribeError::Unavailable(e.to_string()))?.len();
        if size > self.config.max_bytes {
            return Err(TranscribeError::Failed(format!(
                "the file is larger than the transcription service takes ({} bytes)",
                self.config.max_bytes
            )));
        }
        let bytes = tokio::fs::read(file).await.map_err(|e| TranscribeError::Unavailable(e.to_string()))?;
        let part = reqwest::multipart::Part::bytes(bytes)
            .file_name(filename.to_owned())
            .mime_str(content_type)
            .map_err(|e| TranscribeError::Failed(e.to_string()))?;
        let form = reqwest::multipart::Form::new()
            .part("file", part)
            .text("model", self.config.model.clone())
            .text("response_format", "json");
        let mut request = self.http.post(&self.url).multipart(form);
        if !self.config.api_key.is_empty() {
            request = request.bearer_auth(&self.config.api_key);
        }
        let mut response =
            request.send().await.map_err(|error| TranscribeError::Unavailable(error.without_url().to_string()))?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| TranscribeError::Unavailable(e.to_string()))? {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(TranscribeError::Failed(format!("the answer is longer than {MAX_RESPONSE_BYTES} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Err(TranscribeError::Unavailable(format!("the transcription service answered {status}")));
        }
        if !status.is_success() {
            let message = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|body| body["error"]["message"].as_str().map(|m| m.chars().take(200).collect::<String>()))
                .unwrap_or_default();
            return Err(TranscribeError::Failed(format!("the transcription service answered {status}: {message}")));
        }
        let answer: TranscriptionAnswer = serde_json::from_slice(&body)
            .map_err(|error| TranscribeError::Failed(format!("not a transcription answer: {error}")))?;
        Ok(Transcript { text: answer.text.trim().to_owned(), language: answer.language.filter(|l| !l.is_empty()) })
    }
}

#[derive(Debug, Deserialize)]
struct TranscriptionAnswer {
    text: String,
    #[serde(default)]
    language: Option<String>,
}

#[async_trait]
impl Transcriber for OpenAiTranscriber {
    fn model(&self) -> &str {
        &self.config.model
    }

    fn max_bytes(&self) -> u64 {
        self.config.max_bytes
    }

    async fn transcribe(&self, file: &Path, filename: &str, content_type: &str) -> Result<Transcript, TranscribeError> {
        let started = Instant::now();
        let transcribed = self.call(file, filename, content_type).await;
        metrics::histogram!("aether_transcription_seconds", "model" => self.config.model.clone())
            .record(started.elapsed().as_secs_f64());
        let outcome = if transcribed.is_ok() { "completed" } else { "failed" };
        metrics::counter!("aether_transcriptions_total", "outcome" => outcome).increment(1);
        if let Err(error) = &transcribed {
            tracing::warn!(%error, model = %self.config.model, "transcription failed");
        }
        transcribed
    }
}
