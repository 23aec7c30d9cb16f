//! Semantic and hybrid search (issue 15): how a search is answered (by words, by
//! meaning, or both fused), the fusion rule, and the chunks waiting for their
//! vectors. Vectors come from the `Embedder` port; chunks are embedded in the
//! background, so full-text search never waits for them.

use crate::ValidationError;
use crate::embedding::Embedding;
use crate::search::Scored;

/// How a document search ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SearchMode {
    /// BM25 over the words.
    Text,
    /// Cosine similarity of the query's embedding with the chunks'.
    Semantic,
    /// Both rankings fused ([`reciprocal_rank_fusion`]): the default for documents.
    #[default]
    Hybrid,
}

impl SearchMode {
    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        match text {
            "text" => Ok(Self::Text),
            "semantic" => Ok(Self::Semantic),
            "hybrid" => Ok(Self::Hybrid),
            _ => Err(ValidationError::new("mode", "must be text, semantic or hybrid")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Semantic => "semantic",
            Self::Hybrid => "hybrid",
        }
    }
}

/// The constant of reciprocal rank fusion: an item at rank r (from 1) of a list
/// scores 1 / (RRF_K + r). 60 is the value of the method's paper, and makes the
/// top of each list count without one list's long tail drowning the other.
pub const RRF_K: f64 = 60.0;

/// How deep semantic and hybrid results page: ranks beyond are not reached (each
/// page ranks everything before it again).
pub const MAX_RANKED_DEPTH: u32 = 500;

/// Fuses ranked lists (each best first) into one: an item's score is the sum of
/// 1 / ([`RRF_K`] + its rank) over the lists holding it, and the item kept is the
/// one of the first list holding it. Best first; ties by id.
pub fn reciprocal_rank_fusion<T>(lists: Vec<Vec<Scored<T>>>, id_of: impl Fn(&T) -> uuid::Uuid) -> Vec<Scored<T>> {
    let mut fused: Vec<Scored<T>> = Vec::new();
    let mut position: std::collections::HashMap<uuid::Uuid, usize> = std::collections::HashMap::new();
    for list in lists {
        for (index, scored) in list.into_iter().enumerate() {
            let contribution = 1.0 / (RRF_K + index as f64 + 1.0);
            let id = id_of(&scored.item);
            match position.get(&id) {
                Some(at) => fused[*at].score += contribution,
                None => {
                    position.insert(id, fused.len());
                    fused.push(Scored { item: scored.item, score: contribution });
                }
            }
        }
    }
    fused.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| id_of(&a.item).cmp(&id_of(&b.item))));
    fused
}

/// Where a semantic or hybrid page starts: its offset in the ranking, handed out
/// as `o<offset>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetCursor(pub u32);

impl OffsetCursor {
    pub fn encode(self) -> String {
        format!("o{}", self.0)
    }

    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        let invalid = || ValidationError::new("cursor", "is not a cursor this search handed out");
        let offset: u32 = text.strip_prefix('o').ok_or_else(invalid)?.parse().map_err(|_| invalid())?;
        if offset == 0 || offset >= MAX_RANKED_DEPTH || text.starts_with("o0") {
            return Err(invalid());
        }
        Ok(Self(offset))
    }
}

/// A chunk without a vector of the current model, as the embedding worker takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingChunk {
    /// The store's id of the chunk: opaque to the rest of the system.
    pub id: String,
    pub text: String,
}

/// A chunk's vector, to be stored under the model that made it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkEmbedding {
    pub id: String,
    pub vector: Embedding,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fusion_rewards_agreement_between_rankings() {
        let ids: Vec<uuid::Uuid> = (0..4).map(|_| uuid::Uuid::now_v7()).collect();
        let list = |order: &[usize]| order.iter().map(|i| Scored { item: ids[*i], score: 0.0 }).collect::<Vec<_>>();
        // 0 leads the text ranking, 1 the semantic one; 2 is second in both.
        let fused = reciprocal_rank_fusion(vec![list(&[0, 2, 3]), list(&[1, 2])], |id| *id);
        let order: Vec<uuid::Uuid> = fused.iter().map(|s| s.item).collect();
        assert_eq!(order, vec![ids[2], ids[0], ids[1], ids[3]]);
        assert!((fused[0].score - (2.0 / 62.0)).abs() < 1e-12);
    }

    #[test]
    fn offset_cursors_are_bounded() {
        assert_eq!(OffsetCursor::parse(&OffsetCursor(40).encode()), Ok(OffsetCursor(40)));
        for text in ["", "o", "o0", "o00", "o-1", "40", "o500", "o01"] {
            assert!(OffsetCursor::parse(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn modes_parse() {
        assert_eq!(SearchMode::parse("hybrid"), Ok(SearchMode::Hybrid));
        assert!(SearchMode::parse("vector").is_err());
        assert_eq!(SearchMode::default(), SearchMode::Hybrid);
    }
}
