//! Adapters for OpenAI-compatible HTTP APIs: Ollama, vLLM, Hugging Face TEI, the
//! llama.cpp server and OpenAI itself all answer the same requests.
//!
//! [`OpenAiEmbedder`] is the [`Embedder`] over `POST {base}/embeddings`, as OpenAI's
//! API reference defines it: a JSON body `{"model", "input": [texts],
//! "encoding_format": "float"}` (and `"dimensions"` when configured, for models that
//! can shorten their vectors), an optional `Authorization: Bearer` key, and the
//! answer `{"data": [{"index", "embedding": [floats]}], …}`, one item per input,
//! matched to its text by `index` (not by position). Every vector is checked for the
//! configured length and made unit length; a service that answers otherwise fails
//! the batch instead of storing vectors search cannot compare.
//!
//! [`OpenAiTranscriber`] (in `transcription`) is the [`Transcriber`](aether_domain::transcription::Transcriber)
//! over `POST {base}/audio/transcriptions`.
#![forbid(unsafe_code)]

mod transcription;

pub use transcription::{OpenAiTranscriber, OpenAiTranscriptionConfig};

use std::time::{Duration, Instant};

use aether_domain::embedding::{EmbedBatch, EmbedError, Embedder, Embedding, EmbeddingModel};
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::json;

/// How to reach an OpenAI-compatible embeddings endpoint.
#[derive(Clone)]
pub struct OpenAiEmbeddingConfig {
    /// The API's base URL, up to and including its version: `https://api.openai.com/v1`,
    /// `http://ollama:11434/v1`.
    pub base_url: String,
    /// The model the service is asked for, e.g. `text-embedding-3-small`, `nomic-embed-text`.
    pub model: String,
    /// Sent as a bearer token when not empty.
    pub api_key: String,
    /// The length of the model's vectors; also sent as `dimensions` when `send_dimensions`.
    pub dimensions: usize,
    /// Whether to ask for `dimensions` (OpenAI's text-embedding-3 models shorten
    /// their vectors; other services may refuse the field).
    pub send_dimensions: bool,
    /// How many tokens of a text the model reads (recorded, not enforced: the
    /// service truncates or refuses).
    pub max_tokens: usize,
}

impl std::fmt::Debug for OpenAiEmbeddingConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiEmbeddingConfig")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("dimensions", &self.dimensions)
            .finish_non_exhaustive()
    }
}

/// The longest answer read from the service: 64 texts × 3,072 floats as JSON text
/// is about 4 MiB; anything far beyond is not an answer to this request.
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct OpenAiEmbedder {
    config: OpenAiEmbeddingConfig,
    model: EmbeddingModel,
    url: String,
    http: reqwest::Client,
}

impl OpenAiEmbedder {
    /// `http` is the builder of the outbound client (the server passes one bound to
    /// its outbound policy). The model's name, recorded with every stored vector, is
    /// `openai:<model>:<dimensions>`: changing either re-embeds in the background.
    pub fn new(config: OpenAiEmbeddingConfig, http: reqwest::ClientBuilder) -> Result<Self, String> {
        if config.dimensions == 0 {
            return Err("the model's dimensions must be given".into());
        }
        if config.model.trim().is_empty() {
            return Err("the model must be named".into());
        }
        let http = http
            .timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| error.to_string())?;
        let url = format!("{}/embeddings", config.base_url.trim_end_matches('/'));
        let model = EmbeddingModel {
            name: format!("openai:{}:{}", config.model, config.dimensions),
            dimensions: config.dimensions,
            max_tokens: config.max_tokens,
        };
        Ok(Self { config, model, url, http })
    }

    async fn call(&self, batch: &EmbedBatch) -> Result<Vec<Embedding>, EmbedError> {
        let mut body = json!({"model": self.config.model, "input": batch.texts(), "encoding_format": "float"});
        if self.config.send_dimensions {
            body["dimensions"] = json!(self.config.dimensions);
        }
        let mut request = self.http.post(&self.url).json(&body);
        if !self.config.api_key.is_empty() {
            request = request.bearer_auth(&self.config.api_key);
        }
        // The error names the failure (a refused address, a timeout), never the text.
        let mut response =
            request.send().await.map_err(|error| EmbedError::Unavailable(error.without_url().to_string()))?;
        let status = response.status();
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|error| EmbedError::Unavailable(error.to_string()))? {
            if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(EmbedError::Failed(format!("the answer is longer than {MAX_RESPONSE_BYTES} bytes")));
            }
            bytes.extend_from_slice(&chunk);
        }
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Err(EmbedError::Unavailable(format!("the embeddings service answered {status}")));
        }
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(EmbedError::Unavailable(format!("the embeddings service refused the key ({status})")));
        }
        if !status.is_success() {
            let message = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|body| body["error"]["message"].as_str().map(|m| m.chars().take(200).collect::<String>()))
                .unwrap_or_default();
            return Err(EmbedError::Failed(format!("the embeddings service answered {status}: {message}")));
        }
        let answer: EmbeddingsAnswer = serde_json::from_slice(&bytes)
            .map_err(|error| EmbedError::Failed(format!("not an embeddings answer: {error}")))?;
        self.vectors(batch.len(), answer)
    }

    /// One unit vector per text, in the texts' order.
    fn vectors(&self, texts: usize, answer: EmbeddingsAnswer) -> Result<Vec<Embedding>, EmbedError> {
        if answer.data.len() != texts {
            return Err(EmbedError::Failed(format!("{} vectors for {texts} texts", answer.data.len())));
        }
        let mut vectors: Vec<Option<Embedding>> = vec![None; texts];
        for item in answer.data {
            if item.embedding.len() != self.config.dimensions {
                return Err(EmbedError::Failed(format!(
                    "a vector of {} dimensions, not {}",
                    item.embedding.len(),
                    self.config.dimensions
                )));
            }
            let slot = vectors
                .get_mut(item.index)
                .ok_or_else(|| EmbedError::Failed(format!("a vector for text {} of {texts}", item.index)))?;
            if slot.is_some() {
                return Err(EmbedError::Failed(format!("two vectors for text {}", item.index)));
            }
            let vector = Embedding::normalized(item.embedding)
                .ok_or_else(|| EmbedError::Failed("a zero or non-finite vector".into()))?;
            *slot = Some(vector);
        }
        // Every slot is filled: as many distinct indexes below `texts` as texts.
        vectors
            .into_iter()
            .map(|vector| vector.ok_or_else(|| EmbedError::Failed("a text without a vector".into())))
            .collect()
    }
}

#[derive(Debug, Deserialize)]
struct EmbeddingsAnswer {
    data: Vec<EmbeddingItem>,
}

#[derive(Debug, Deserialize)]
struct EmbeddingItem {
    index: usize,
    embedding: Vec<f32>,
}

#[async_trait]
impl Embedder for OpenAiEmbedder {
    fn model(&self) -> &EmbeddingModel {
        &self.model
    }

    async fn embed(&self, batch: &EmbedBatch) -> Result<Vec<Embedding>, EmbedError> {
        let started = Instant::now();
        let embedded = self.call(batch).await;
        let model = self.model.name.clone();
        metrics::histogram!("aether_embedding_seconds", "model" => model.clone())
            .record(started.elapsed().as_secs_f64());
        match &embedded {
            Ok(_) => metrics::counter!("aether_embedded_texts_total", "model" => model).increment(batch.len() as u64),
            Err(error) => tracing::warn!(%error, texts = batch.len(), model = %self.model.name, "embedding failed"),
        }
        embedded
    }
}
