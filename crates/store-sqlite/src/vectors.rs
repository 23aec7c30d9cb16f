//! Chunk vectors in memory, by notebook, for semantic search on SQLite.
//!
//! The vectors live in `chunk_embeddings` (little-endian f32 blobs). Reading and
//! decoding every blob in scope cost about half a second per query at 200,000
//! chunks; asking SQLite for every chunk id in scope, even through covering
//! indexes, still cost ~50 ms at 23,000 readable chunks and grows with them. So the
//! vectors are kept here as one *shelf* per notebook: its chunks' vectors side by
//! side, quantised to one signed byte per dimension (a scale per vector: 4× less
//! memory than f32, and recall@10 0.99 against exact f32 on the benchmark), in
//! document order. A query asks SQLite only for the notebooks in scope and each
//! one's vector stamp, then scans the shelves.
//!
//! Architecture Invariant: a shelf is used only under the stamp SQLite holds for its
//! notebook now. The stamp (`notebook_vector_stamps`, migration 0017) is set to a
//! new random value by triggers whenever a vector of one of the notebook's chunks
//! is stored or replaced, or one of its chunks is deleted — in the writer's
//! transaction, whichever process writes (a worker, a reindex). A shelf is loaded
//! after its stamp was read, so it is never older than the stamp it is kept under.
//!
//! Exact over what the caller reads (to the quantisation), not a graph index:
//! the cost grows with the readable chunks (~1 ms per 10,000 on one core of this
//! machine); a caller reading everything scans everything. Nothing is persisted:
//! after a restart the first query in a notebook loads its shelf. Bounded
//! (`MAX_BYTES`): past it every shelf is dropped and loaded again as needed.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use aether_domain::store::StoreResult;
use sqlx::SqliteConnection;

use crate::map_err;

/// At most this many bytes of vectors are kept (about 2.6 million 384-dimension chunks).
const MAX_BYTES: usize = 1024 * 1024 * 1024;

/// How many notebooks' shelves are read from the store in one statement.
const LOAD_BATCH: usize = 50;

/// The query vector is quantised to this range: products with the shelves' bytes
/// stay exact integers, and a sum over 1,024 dimensions fits an `i32`.
const QUERY_RANGE: f32 = 8191.0;

/// The vectors of `model` (?2) of the chunks of the notebooks listed in ?1 (a
/// JSON array): by notebook through the covering `document_chunks_scope` index,
/// then each vector by its chunk id.
pub(crate) const SHELF_VECTORS: &str = "SELECT c.notebook_id, c.id, c.document_id, e.vector FROM json_each(?1) wanted \
     CROSS JOIN document_chunks c ON c.notebook_id = wanted.value \
     CROSS JOIN chunk_embeddings e ON e.chunk_id = c.id AND e.model = ?2";

/// The vectors of one notebook's chunks of one model, under the notebook's stamp.
#[derive(Debug, Default)]
pub(crate) struct Shelf {
    model: Arc<str>,
    stamp: i64,
    dimensions: usize,
    /// The documents of the shelf; `chunks[i].1` indexes it.
    documents: Vec<String>,
    /// Each chunk: its id, its document, its vector's scale; ordered by document.
    chunks: Vec<(i64, u32, f32)>,
    /// `values[i * dimensions..][..dimensions] * scale` approximates chunk `i`'s unit vector.
    values: Vec<i8>,
}

impl Shelf {
    fn bytes(&self) -> usize {
        self.values.len() + self.chunks.len() * 16 + self.documents.iter().map(|d| d.len() + 24).sum::<usize>() + 96
    }

    /// Adds one chunk's vector (a little-endian f32 blob); a blob of another length
    /// than the shelf's first one, or that is no vector, is skipped.
    fn push(&mut self, chunk: i64, document: String, blob: &[u8]) {
        if blob.is_empty() || !blob.len().is_multiple_of(4) {
            return;
        }
        let floats: Vec<f32> = blob.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        if self.dimensions == 0 {
            self.dimensions = floats.len();
        } else if floats.len() != self.dimensions {
            return;
        }
        let (scale, values) = quantise(&floats, 127.0);
        if self.documents.last() != Some(&document) {
            self.documents.push(document);
        }
        let index = u32::try_from(self.documents.len() - 1).unwrap_or(u32::MAX);
        self.chunks.push((chunk, index, scale));
        self.values.extend(values.into_iter().map(|value| i8::try_from(value).unwrap_or(0)));
    }

    /// Each document's best chunk against `query` (cosine, chunk), for the
    /// documents `wanted` lets through.
    fn best_by_document<'a>(
        &'a self,
        query: &QuantisedQuery,
        wanted: &dyn Fn(&str) -> bool,
        found: &mut Vec<(f64, &'a str, i64)>,
    ) {
        if self.dimensions != query.values.len() {
            return;
        }
        let mut current: Option<(u32, bool)> = None;
        let mut best = (f64::NEG_INFINITY, 0_i64);
        for (position, &(chunk, document, scale)) in self.chunks.iter().enumerate() {
            let admitted = match current {
                Some((now, admitted)) if now == document => admitted,
                _ => {
                    if let Some((previous, true)) = current {
                        found.push((best.0, &self.documents[previous as usize], best.1));
                    }
                    best = (f64::NEG_INFINITY, 0);
                    let admitted = wanted(&self.documents[document as usize]);
                    current = Some((document, admitted));
                    admitted
                }
            };
            if !admitted {
                continue;
            }
            let values = &self.values[position * self.dimensions..][..self.dimensions];
            let score = dot(values, &query.values) as f64 * f64::from(scale) * query.scale;
            if score > best.0 {
                best = (score, chunk);
            }
        }
        if let Some((previous, true)) = current {
            found.push((best.0, &self.documents[previous as usize], best.1));
        }
    }
}

/// A unit query vector in the integer range of [`QUERY_RANGE`].
pub(crate) struct QuantisedQuery {
    values: Vec<i16>,
    scale: f64,
}

impl QuantisedQuery {
    pub(crate) fn new(vector: &[f32]) -> Self {
        let (scale, values) = quantise(vector, QUERY_RANGE);
        Self {
            values: values.into_iter().map(|value| i16::try_from(value).unwrap_or(0)).collect(),
            scale: f64::from(scale),
        }
    }
}

/// `values * scale` approximates `floats`, the largest magnitude mapped to `range`.
fn quantise(floats: &[f32], range: f32) -> (f32, Vec<i32>) {
    let largest = floats.iter().fold(0.0_f32, |largest, value| largest.max(value.abs()));
    let scale = if largest > 0.0 && largest.is_finite() { largest / range } else { 1.0 };
    let values = floats
        .iter()
        .map(|value| {
            let quantised = (value / scale).round();
            if quantised.is_finite() {
                // Within ±range after the clamp.
                quantised.clamp(-range, range) as i32
            } else {
                0
            }
        })
        .collect();
    (scale, values)
}

/// The integer dot product, summed in blocks that cannot overflow an `i32`
/// (the compiler turns the inner loop into multiply-add vector instructions).
fn dot(values: &[i8], query: &[i16]) -> i64 {
    values
        .chunks(1024)
        .zip(query.chunks(1024))
        .map(|(values, query)| {
            let block: i32 = values.iter().zip(query).map(|(&v, &q)| i32::from(v) * i32::from(q)).sum();
            i64::from(block)
        })
        .sum()
}

/// The shelves, by notebook id.
#[derive(Clone, Default)]
pub(crate) struct VectorShelves {
    shelves: Arc<RwLock<Shelves>>,
}

#[derive(Default)]
struct Shelves {
    by_notebook: HashMap<String, Arc<Shelf>>,
    bytes: usize,
}

impl std::fmt::Debug for VectorShelves {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shelves = self.shelves.read().map(|shelves| shelves.by_notebook.len()).unwrap_or_default();
        f.debug_struct("VectorShelves").field("shelves", &shelves).finish()
    }
}

/// One notebook in scope and its vector stamp now.
pub(crate) struct Stamped {
    pub(crate) notebook: String,
    pub(crate) stamp: i64,
}

impl VectorShelves {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The shelves of `notebooks` for `model`, from memory when their stamps agree,
    /// otherwise read from the store (and kept, within the bound).
    pub(crate) async fn shelves_of(
        &self,
        conn: &mut SqliteConnection,
        model: &str,
        notebooks: &[Stamped],
    ) -> StoreResult<Vec<Arc<Shelf>>> {
        let mut found = Vec::with_capacity(notebooks.len());
        let mut missing: Vec<&Stamped> = Vec::new();
        {
            let shelves = self.shelves.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            for stamped in notebooks {
                match shelves.by_notebook.get(&stamped.notebook) {
                    Some(shelf) if &*shelf.model == model && shelf.stamp == stamped.stamp => {
                        found.push(Arc::clone(shelf));
                    }
                    _ => missing.push(stamped),
                }
            }
        }
        let model_name: Arc<str> = Arc::from(model);
        for batch in missing.chunks(LOAD_BATCH) {
            let ids = serde_json::Value::from(batch.iter().map(|s| s.notebook.clone()).collect::<Vec<_>>()).to_string();
            let mut rows: Vec<(String, i64, String, Vec<u8>)> =
                sqlx::query_as(SHELF_VECTORS).bind(ids).bind(model).fetch_all(&mut *conn).await.map_err(map_err)?;
            // In shelf order here rather than by SQLite (a temporary B-tree of blobs).
            rows.sort_unstable_by(|a, b| (&a.0, &a.2, a.1).cmp(&(&b.0, &b.2, b.1)));
            let mut loaded: HashMap<&str, Shelf> = batch
                .iter()
                .map(|stamped| {
                    let shelf = Shelf { model: Arc::clone(&model_name), stamp: stamped.stamp, ..Shelf::default() };
                    (stamped.notebook.as_str(), shelf)
                })
                .collect();
            for (notebook, chunk, document, blob) in rows {
                if let Some(shelf) = loaded.get_mut(notebook.as_str()) {
                    shelf.push(chunk, document, &blob);
                }
            }
            let mut shelves = self.shelves.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            for (notebook, shelf) in loaded {
                let shelf = Arc::new(shelf);
                shelves.keep(notebook.to_owned(), Arc::clone(&shelf));
                found.push(shelf);
            }
        }
        Ok(found)
    }
}

impl Shelves {
    fn keep(&mut self, notebook: String, shelf: Arc<Shelf>) {
        let bytes = shelf.bytes();
        if bytes > MAX_BYTES {
            return;
        }
        if self.bytes + bytes > MAX_BYTES {
            self.by_notebook.clear();
            self.bytes = 0;
        }
        if let Some(old) = self.by_notebook.insert(notebook, shelf) {
            self.bytes -= old.bytes();
        }
        self.bytes += bytes;
    }
}

/// The `k` documents (by their best chunk) most similar to `query` across
/// `shelves`, among those `wanted` lets through: (cosine, document, chunk), best
/// first, ties by document id.
pub(crate) fn most_similar<'a>(
    shelves: &'a [Arc<Shelf>],
    query: &QuantisedQuery,
    wanted: &dyn Fn(&str) -> bool,
    k: usize,
) -> Vec<(f64, &'a str, i64)> {
    let mut found = Vec::new();
    for shelf in shelves {
        shelf.best_by_document(query, wanted, &mut found);
    }
    let order = |a: &(f64, &str, i64), b: &(f64, &str, i64)| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1));
    if found.len() > k && k > 0 {
        found.select_nth_unstable_by(k - 1, order);
    }
    found.truncate(k);
    found.sort_by(order);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(values: &[f32]) -> Vec<f32> {
        let norm = values.iter().map(|v| v * v).sum::<f32>().sqrt();
        values.iter().map(|v| v / norm).collect()
    }

    fn blob(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    fn shelf(vectors: &[(i64, &str, Vec<f32>)]) -> Shelf {
        let mut shelf = Shelf::default();
        for (chunk, document, vector) in vectors {
            shelf.push(*chunk, (*document).to_owned(), &blob(vector));
        }
        shelf
    }

    #[test]
    fn quantised_similarity_is_the_cosine_to_within_a_percent() {
        let a = unit(&[0.3, -0.2, 0.9, 0.1, -0.5, 0.05, 0.0, 0.7]);
        let b = unit(&[0.1, 0.4, 0.8, -0.3, -0.2, 0.6, 0.1, 0.2]);
        let exact: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        let shelves = [Arc::new(shelf(&[(1, "d", a.clone())]))];
        let found = most_similar(&shelves, &QuantisedQuery::new(&b), &|_| true, 10);
        assert_eq!(found.len(), 1);
        assert!((found[0].0 - f64::from(exact)).abs() < 0.01, "{} vs {exact}", found[0].0);
        let itself = most_similar(&shelves, &QuantisedQuery::new(&a), &|_| true, 10);
        assert!((itself[0].0 - 1.0).abs() < 0.01);
    }

    #[test]
    fn each_document_by_its_best_chunk_best_first_and_filtered() {
        let x = unit(&[1.0, 0.0, 0.0, 0.0]);
        let y = unit(&[0.0, 1.0, 0.0, 0.0]);
        let xy = unit(&[1.0, 1.0, 0.0, 0.0]);
        let first = Arc::new(shelf(&[(1, "a", y.clone()), (2, "a", x.clone()), (3, "b", xy.clone())]));
        let second = Arc::new(shelf(&[(4, "c", y.clone()), (5, "d", x.clone())]));
        let shelves = [first, second];
        let query = QuantisedQuery::new(&x);
        let found = most_similar(&shelves, &query, &|_| true, 3);
        let found: Vec<(&str, i64)> = found.iter().map(|(_, document, chunk)| (*document, *chunk)).collect();
        assert_eq!(found, [("a", 2), ("d", 5), ("b", 3)]);
        let filtered = most_similar(&shelves, &query, &|document| document != "a", 10);
        let filtered: Vec<&str> = filtered.iter().map(|(_, document, _)| *document).collect();
        assert_eq!(filtered, ["d", "b", "c"]);
    }

    #[test]
    fn blobs_that_are_not_vectors_or_of_another_length_are_skipped_and_zero_is_harmless() {
        let mut shelf = shelf(&[(1, "a", vec![0.0; 4])]);
        shelf.push(2, "b".into(), &[1, 2, 3]);
        shelf.push(3, "c".into(), &blob(&[1.0, 0.0]));
        assert_eq!(shelf.chunks.len(), 1);
        let shelves = [Arc::new(shelf)];
        let found = most_similar(&shelves, &QuantisedQuery::new(&[1.0, 0.0, 0.0, 0.0]), &|_| true, 10);
        assert_eq!(found.len(), 1);
        assert!(found[0].0.abs() < 1e-9);
        assert!(most_similar(&shelves, &QuantisedQuery::new(&[1.0, 0.0]), &|_| true, 10).is_empty());
    }

    #[test]
    fn the_integer_dot_product_does_not_overflow() {
        let values = vec![127_i8; 4096];
        let query = vec![8191_i16; 4096];
        assert_eq!(dot(&values, &query), 127 * 8191 * 4096);
    }
}
