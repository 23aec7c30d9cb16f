//! Text embeddings: the port through which search (semantic and hybrid) and agents
//! turn text into vectors, and the rules every embedder follows. The built-in
//! embedder runs all-MiniLM-L6-v2 in-process (`crates/embed`); an OpenAI-compatible
//! `/v1/embeddings` service is the other kind this port is written for.
//!
//! Work is bounded before it starts: a call takes at most [`MAX_TEXTS_PER_CALL`]
//! texts of at most [`MAX_TEXT_CHARS`] characters each ([`EmbedBatch::new`]).

use async_trait::async_trait;

use crate::ValidationError;

/// The most texts one call embeds: a caller with more splits them, so that no
/// single call holds the model (and a core) for long.
pub const MAX_TEXTS_PER_CALL: usize = 64;

/// The longest text accepted, in characters. Models read a bounded number of
/// tokens anyway (MiniLM: 256); text beyond that is ignored, so longer input is
/// refused rather than tokenised for nothing. Chunkers cut well below this.
pub const MAX_TEXT_CHARS: usize = 16 * 1024;

/// What an embedder is: the model's name (recorded with every stored vector, so a
/// model change is detectable), the length of its vectors, and how many tokens of a
/// text it reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddingModel {
    pub name: String,
    pub dimensions: usize,
    pub max_tokens: usize,
}

/// A vector of unit length: the dot product of two is their cosine similarity.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding(Vec<f32>);

impl Embedding {
    /// Scales `values` to unit length; `None` for an empty, zero or non-finite
    /// vector, which no similarity can be computed with.
    pub fn normalized(mut values: Vec<f32>) -> Option<Self> {
        let norm = values.iter().map(|v| f64::from(*v) * f64::from(*v)).sum::<f64>().sqrt();
        if values.is_empty() || !norm.is_finite() || norm == 0.0 {
            return None;
        }
        for value in &mut values {
            *value = (f64::from(*value) / norm) as f32;
        }
        Some(Self(values))
    }

    pub fn as_slice(&self) -> &[f32] {
        &self.0
    }

    pub fn dimensions(&self) -> usize {
        self.0.len()
    }

    /// The cosine similarity, in [-1, 1]; 0 for vectors of different lengths
    /// (different models: not comparable).
    pub fn cosine(&self, other: &Embedding) -> f32 {
        if self.0.len() != other.0.len() {
            return 0.0;
        }
        let dot: f64 = self.0.iter().zip(&other.0).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum();
        dot.clamp(-1.0, 1.0) as f32
    }
}

/// Texts to embed, checked against the bounds above.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbedBatch(Vec<String>);

impl EmbedBatch {
    pub fn new(texts: Vec<String>) -> Result<Self, ValidationError> {
        if texts.is_empty() {
            return Err(ValidationError::new("texts", "at least one text is required"));
        }
        if texts.len() > MAX_TEXTS_PER_CALL {
            return Err(ValidationError::new("texts", format!("at most {MAX_TEXTS_PER_CALL} texts per call")));
        }
        if texts.iter().any(|text| text.chars().count() > MAX_TEXT_CHARS) {
            return Err(ValidationError::new("texts", format!("a text is longer than {MAX_TEXT_CHARS} characters")));
        }
        Ok(Self(texts))
    }

    pub fn texts(&self) -> &[String] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Why an embedding failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmbedError {
    /// The model is not there or not usable (its files missing, a remote service
    /// down); callers fall back (search answers by text only) and retry later.
    #[error("embedder unavailable: {0}")]
    Unavailable(String),
    /// The model ran and failed on this input.
    #[error("embedding failed: {0}")]
    Failed(String),
}

/// Turns text into vectors. One vector per text, in order, each of
/// [`EmbeddingModel::dimensions`] and unit length.
#[async_trait]
pub trait Embedder: Send + Sync + std::fmt::Debug {
    fn model(&self) -> &EmbeddingModel;

    async fn embed(&self, batch: &EmbedBatch) -> Result<Vec<Embedding>, EmbedError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_are_scaled_to_unit_length() {
        let embedding = Embedding::normalized(vec![3.0, 4.0]).unwrap_or_else(|| panic!("a valid vector"));
        assert_eq!(embedding.as_slice(), &[0.6, 0.8]);
        assert!((embedding.cosine(&embedding) - 1.0).abs() < 1e-6);
        let opposite = Embedding::normalized(vec![-3.0, -4.0]).unwrap_or_else(|| panic!("a valid vector"));
        assert!((embedding.cosine(&opposite) + 1.0).abs() < 1e-6);
        let other_model = Embedding::normalized(vec![1.0, 0.0, 0.0]).unwrap_or_else(|| panic!("a valid vector"));
        assert_eq!(embedding.cosine(&other_model), 0.0);
    }

    #[test]
    fn degenerate_vectors_are_refused() {
        assert_eq!(Embedding::normalized(vec![]), None);
        assert_eq!(Embedding::normalized(vec![0.0, 0.0]), None);
        assert_eq!(Embedding::normalized(vec![f32::NAN, 1.0]), None);
        assert_eq!(Embedding::normalized(vec![f32::INFINITY, 1.0]), None);
    }

    #[test]
    fn batches_are_bounded_before_any_work() {
        assert!(EmbedBatch::new(vec![]).is_err());
        assert!(EmbedBatch::new(vec!["a".to_owned(); MAX_TEXTS_PER_CALL]).is_ok());
        assert!(EmbedBatch::new(vec!["a".to_owned(); MAX_TEXTS_PER_CALL + 1]).is_err());
        assert!(EmbedBatch::new(vec!["é".repeat(MAX_TEXT_CHARS)]).is_ok());
        assert!(EmbedBatch::new(vec!["é".repeat(MAX_TEXT_CHARS + 1)]).is_err());
    }
}
