//! Chunk vectors in memory, for semantic search on SQLite. The vectors live in
//! `chunk_embeddings` (little-endian f32 blobs); reading and decoding every blob in
//! scope made each semantic query cost about half a second at 200,000 chunks. The
//! query now asks SQLite only which chunks are in scope (an index-only walk) and
//! compares their vectors here, quantised to one signed byte per dimension (a
//! scale per vector): 4× less memory than f32, and the ranking keeps its recall
//! (the benchmark measures it against the exact f32 similarity).
//!
//! Filled as vectors are stored, and from the store on a miss (after a restart the
//! first queries load what they need). Bounded (`MAX_BYTES`): past it, everything is
//! dropped and read again as needed — simpler and faster to look up than an LRU,
//! and the bound is far above an embedded deployment's vectors. A chunk's vector never changes, but SQLite may give
//! a deleted chunk's id to a new one, and another process (a worker, a reindex) may
//! store its vector: so every stored vector has a random `stamp` (migration 0016),
//! the query reads each candidate's stamp with its id (from an index), and an entry
//! is used only when both agree.

use std::sync::Arc;

use aether_domain::store::StoreResult;
use sqlx::SqliteConnection;
use std::collections::HashMap;
use std::sync::RwLock;

use crate::map_err;

/// At most this many bytes of vectors are kept (about 1.3 million 384-dimension chunks).
const MAX_BYTES: u64 = 512 * 1024 * 1024;

/// How many missing vectors are read from the store in one statement.
const LOAD_BATCH: usize = 500;

/// One chunk's vector of one model, quantised.
#[derive(Debug)]
pub(crate) struct Quantised {
    model: Arc<str>,
    stamp: i64,
    /// `values[i] * scale` approximates the unit vector's dimension `i`.
    values: Box<[i8]>,
    scale: f32,
}

impl Quantised {
    /// From a stored blob (little-endian f32s); `None` when it is not one.
    fn from_blob(model: Arc<str>, stamp: i64, bytes: &[u8]) -> Option<Self> {
        if bytes.is_empty() || !bytes.len().is_multiple_of(4) {
            return None;
        }
        let floats: Vec<f32> = bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        Some(Self::from_floats(model, stamp, &floats))
    }

    fn from_floats(model: Arc<str>, stamp: i64, floats: &[f32]) -> Self {
        let largest = floats.iter().fold(0.0_f32, |largest, value| largest.max(value.abs()));
        let scale = if largest > 0.0 && largest.is_finite() { largest / 127.0 } else { 1.0 };
        let values = floats
            .iter()
            .map(|value| {
                let quantised = (value / scale).round().clamp(-127.0, 127.0);
                // In range after the clamp.
                quantised as i8
            })
            .collect();
        Self { model, stamp, values, scale }
    }

    /// The dot product with a unit query vector: the cosine similarity, to the
    /// quantisation's precision. `None` for a vector of another length.
    pub(crate) fn similarity(&self, query: &[f32]) -> Option<f64> {
        if self.values.len() != query.len() {
            return None;
        }
        let dot: f32 = self.values.iter().zip(query).map(|(value, q)| f32::from(*value) * q).sum();
        Some(f64::from(dot * self.scale))
    }

    fn weight(&self) -> u32 {
        u32::try_from(self.values.len() + 64).unwrap_or(u32::MAX)
    }
}

/// The vectors of chunks, by chunk id.
#[derive(Clone, Default)]
pub(crate) struct VectorCache {
    vectors: Arc<RwLock<Vectors>>,
}

#[derive(Default)]
struct Vectors {
    by_chunk: HashMap<i64, Arc<Quantised>>,
    bytes: u64,
}

impl Vectors {
    fn insert(&mut self, chunk: i64, vector: Arc<Quantised>) {
        let weight = u64::from(vector.weight());
        if self.bytes + weight > MAX_BYTES {
            self.by_chunk.clear();
            self.bytes = 0;
        }
        if let Some(old) = self.by_chunk.insert(chunk, vector) {
            self.bytes -= u64::from(old.weight());
        }
        self.bytes += weight;
    }
}

impl std::fmt::Debug for VectorCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let entries = self.vectors.read().map(|vectors| vectors.by_chunk.len()).unwrap_or_default();
        f.debug_struct("VectorCache").field("entries", &entries).finish()
    }
}

impl VectorCache {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vectors> {
        self.vectors.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Keeps vectors just stored (chunk, stamp, little-endian f32 blob), after their commit.
    pub(crate) fn remember(&self, model: &str, stored: &[(i64, i64, Vec<u8>)]) {
        let model: Arc<str> = Arc::from(model);
        let mut vectors = self.write();
        for (chunk, stamp, bytes) in stored {
            if let Some(vector) = Quantised::from_blob(Arc::clone(&model), *stamp, bytes) {
                vectors.insert(*chunk, Arc::new(vector));
            }
        }
    }

    /// The vectors of `model` of `chunks` (id and stamp), read from the store
    /// for those not in memory; a chunk without one (deleted meanwhile) is left out.
    pub(crate) async fn vectors_of(
        &self,
        conn: &mut SqliteConnection,
        model: &str,
        chunks: &[(i64, i64)],
    ) -> StoreResult<Vec<(i64, Arc<Quantised>)>> {
        let mut found = Vec::with_capacity(chunks.len());
        let mut missing = Vec::new();
        {
            let vectors = self.vectors.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            for (chunk, stamp) in chunks {
                match vectors.by_chunk.get(chunk) {
                    Some(vector) if &*vector.model == model && vector.stamp == *stamp => {
                        found.push((*chunk, Arc::clone(vector)));
                    }
                    _ => missing.push(*chunk),
                }
            }
        }
        let model_name: Arc<str> = Arc::from(model);
        for batch in missing.chunks(LOAD_BATCH) {
            let ids = serde_json::Value::from(batch.to_vec()).to_string();
            let rows: Vec<(i64, i64, Vec<u8>)> = sqlx::query_as(
                "SELECT chunk_id, stamp, vector FROM chunk_embeddings \
                 WHERE chunk_id IN (SELECT value FROM json_each(?1)) AND model = ?2",
            )
            .bind(ids)
            .bind(model)
            .fetch_all(&mut *conn)
            .await
            .map_err(map_err)?;
            let mut vectors = self.write();
            for (chunk, stamp, bytes) in rows {
                if let Some(vector) = Quantised::from_blob(Arc::clone(&model_name), stamp, &bytes) {
                    let vector = Arc::new(vector);
                    vectors.insert(chunk, Arc::clone(&vector));
                    found.push((chunk, vector));
                }
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(values: &[f32]) -> Vec<f32> {
        let norm = values.iter().map(|v| v * v).sum::<f32>().sqrt();
        values.iter().map(|v| v / norm).collect()
    }

    #[test]
    fn quantised_similarity_is_the_cosine_to_within_a_percent() {
        let a = unit(&[0.3, -0.2, 0.9, 0.1, -0.5, 0.05, 0.0, 0.7]);
        let b = unit(&[0.1, 0.4, 0.8, -0.3, -0.2, 0.6, 0.1, 0.2]);
        let exact: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        let quantised = Quantised::from_floats(Arc::from("m"), 0, &a);
        let approximate = quantised.similarity(&b).expect("same length");
        assert!((approximate - f64::from(exact)).abs() < 0.01, "{approximate} vs {exact}");
        assert!((quantised.similarity(&a).expect("same") - 1.0).abs() < 0.01);
        assert_eq!(quantised.similarity(&b[..4]), None);
    }

    #[test]
    fn blobs_that_are_not_vectors_are_refused_and_zero_is_harmless() {
        assert!(Quantised::from_blob(Arc::from("m"), 0, &[1, 2, 3]).is_none());
        assert!(Quantised::from_blob(Arc::from("m"), 0, &[]).is_none());
        let zero = Quantised::from_floats(Arc::from("m"), 0, &[0.0; 4]);
        assert_eq!(zero.similarity(&[1.0, 0.0, 0.0, 0.0]), Some(0.0));
    }
}
