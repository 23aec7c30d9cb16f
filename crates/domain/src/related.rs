//! Related items (`GET /search/related`): what else a reader of a document or a
//! notebook may want, and why. Stores find candidates in the caller's read scope,
//! with the facts that relate each to the subject ([`RelatedCandidate`]); embedding
//! similarity is added by the service; the ranking and the reasons are decided
//! here, once, for every store.

use std::collections::HashMap;

use crate::embedding::Embedding;
use crate::id::{DocumentId, NotebookId};
use crate::notebook::Tag;
use crate::time::Timestamp;

/// What related items are asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelatedSubject {
    Document(DocumentId),
    Notebook(NotebookId),
}

/// What a related item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RelatedKind {
    Document,
    Notebook,
}

impl RelatedKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Document => "document",
            Self::Notebook => "notebook",
        }
    }
}

/// How many candidates a store returns for each graph signal (same place, shared
/// tags, shared people): the ranking needs the best of each, not all of them.
pub const CANDIDATES_PER_SIGNAL: u32 = 50;

/// How many documents similar by meaning are considered.
pub const SIMILAR_CANDIDATES: usize = 50;

/// Below this cosine similarity two texts are not said to be alike: MiniLM puts
/// unrelated English text around 0.0–0.25.
pub const MIN_SIMILARITY: f64 = 0.35;

/// One item a store found related to the subject, readable by the caller, with the
/// facts that relate them.
#[derive(Debug, Clone, PartialEq)]
pub struct RelatedCandidate {
    pub kind: RelatedKind,
    pub id: uuid::Uuid,
    /// The document's file name or the notebook's name.
    pub title: String,
    /// The document's notebook, or the notebook itself.
    pub notebook_id: NotebookId,
    pub updated_at: Timestamp,
    /// Tags both carry (a document's own tags; a notebook's own tags).
    pub shared_tags: Vec<Tag>,
    /// A document in the same notebook as the subject document; a notebook that is
    /// the subject notebook's parent, child or sibling.
    pub same_place: bool,
    /// How many people (owners and active collaborators of the notebook itself,
    /// the caller not counted) the two notebooks have in common. A document in the
    /// subject's own notebook counts none: its place already says so.
    pub shared_people: u32,
    /// Cosine similarity of meaning, when an embedding model compared them.
    pub similarity: Option<f64>,
}

/// Why an item is related.
#[derive(Debug, Clone, PartialEq)]
pub enum RelatedReason {
    SameNotebook,
    /// Parent, child or sibling of the subject notebook.
    NearbyNotebook,
    SharedTags(Vec<Tag>),
    SharedCollaborators(u32),
    SimilarContent(f64),
}

/// A related item with its score and every reason, strongest first.
#[derive(Debug, Clone, PartialEq)]
pub struct RelatedItem {
    pub candidate: RelatedCandidate,
    pub score: f64,
    pub reasons: Vec<RelatedReason>,
}

/// The weight of each kind of relation: a few shared tags or a close meaning say
/// more than a shared place, which says more than shared people.
const TAG_WEIGHT: f64 = 1.0;
const MAX_COUNTED_TAGS: usize = 3;
const PLACE_WEIGHT: f64 = 1.5;
const PERSON_WEIGHT: f64 = 0.5;
const MAX_COUNTED_PEOPLE: u32 = 4;
const SIMILARITY_WEIGHT: f64 = 4.0;

/// Merges candidates found more than once (by the graph and by meaning), scores
/// them, drops those with no reason, and returns the best `limit`, best first
/// (then most recently updated, then by id).
pub fn rank_related(subject: RelatedSubject, candidates: Vec<RelatedCandidate>, limit: usize) -> Vec<RelatedItem> {
    let mut merged: HashMap<(RelatedKind, uuid::Uuid), RelatedCandidate> = HashMap::new();
    for candidate in candidates {
        let is_subject = match subject {
            RelatedSubject::Document(id) => candidate.kind == RelatedKind::Document && candidate.id == id.as_uuid(),
            RelatedSubject::Notebook(id) => candidate.kind == RelatedKind::Notebook && candidate.id == id.as_uuid(),
        };
        if is_subject {
            continue;
        }
        match merged.entry((candidate.kind, candidate.id)) {
            std::collections::hash_map::Entry::Vacant(entry) => {
                entry.insert(candidate);
            }
            std::collections::hash_map::Entry::Occupied(mut entry) => {
                let known = entry.get_mut();
                known.same_place |= candidate.same_place;
                known.shared_people = known.shared_people.max(candidate.shared_people);
                for tag in candidate.shared_tags {
                    if !known.shared_tags.contains(&tag) {
                        known.shared_tags.push(tag);
                    }
                }
                known.similarity = match (known.similarity, candidate.similarity) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
            }
        }
    }
    let mut items: Vec<RelatedItem> = merged.into_values().filter_map(|candidate| scored(subject, candidate)).collect();
    items.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| b.candidate.updated_at.cmp(&a.candidate.updated_at))
            .then_with(|| a.candidate.id.cmp(&b.candidate.id))
    });
    items.truncate(limit);
    items
}

fn scored(subject: RelatedSubject, mut candidate: RelatedCandidate) -> Option<RelatedItem> {
    let mut weighted: Vec<(f64, RelatedReason)> = Vec::new();
    if let Some(similarity) = candidate.similarity.filter(|s| s.is_finite() && *s >= MIN_SIMILARITY) {
        weighted.push((SIMILARITY_WEIGHT * similarity, RelatedReason::SimilarContent(similarity)));
    }
    if !candidate.shared_tags.is_empty() {
        candidate.shared_tags.sort();
        let counted = candidate.shared_tags.len().min(MAX_COUNTED_TAGS) as f64;
        weighted.push((TAG_WEIGHT * counted, RelatedReason::SharedTags(candidate.shared_tags.clone())));
    }
    if candidate.same_place {
        let reason = match (subject, candidate.kind) {
            (RelatedSubject::Notebook(_), RelatedKind::Notebook) => RelatedReason::NearbyNotebook,
            _ => RelatedReason::SameNotebook,
        };
        weighted.push((PLACE_WEIGHT, reason));
    }
    if candidate.shared_people > 0 {
        let counted = f64::from(candidate.shared_people.min(MAX_COUNTED_PEOPLE));
        weighted.push((PERSON_WEIGHT * counted, RelatedReason::SharedCollaborators(candidate.shared_people)));
    }
    if weighted.is_empty() {
        return None;
    }
    weighted.sort_by(|a, b| b.0.total_cmp(&a.0));
    let score = weighted.iter().map(|(weight, _)| weight).sum();
    Some(RelatedItem { candidate, score, reasons: weighted.into_iter().map(|(_, reason)| reason).collect() })
}

/// What a document is about, as one vector: the mean direction of its body
/// chunks' vectors (`(ordinal, vector)`), or of its heading (chunk 0) when it has no
/// body. The heading alone is mostly a file name, which would make every `.txt`
/// alike. `None` without vectors or when they disagree in size.
pub fn mean_direction(chunks: &[(u32, Embedding)]) -> Option<Embedding> {
    let has_body = chunks.iter().any(|(ordinal, _)| *ordinal != crate::chunk::HEADING);
    let mut vectors = chunks
        .iter()
        .filter(|(ordinal, _)| !has_body || *ordinal != crate::chunk::HEADING)
        .map(|(_, vector)| vector)
        .peekable();
    let mut sum = vec![0.0_f32; vectors.peek()?.dimensions()];
    for vector in vectors {
        if vector.dimensions() != sum.len() {
            return None;
        }
        for (total, value) in sum.iter_mut().zip(vector.as_slice()) {
            *total += value;
        }
    }
    Embedding::normalized(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(id: u128, kind: RelatedKind) -> RelatedCandidate {
        RelatedCandidate {
            kind,
            id: uuid::Uuid::from_u128(id),
            title: format!("item {id}"),
            notebook_id: NotebookId::from_uuid(uuid::Uuid::from_u128(1000)),
            updated_at: crate::time::parse("2026-01-01T00:00:00Z").expect("time"),
            shared_tags: Vec::new(),
            same_place: false,
            shared_people: 0,
            similarity: None,
        }
    }

    fn tag(name: &str) -> Tag {
        Tag::parse(name).expect("tag")
    }

    #[test]
    fn candidates_without_a_reason_are_dropped_and_the_subject_is_never_its_own_relative() {
        let subject = RelatedSubject::Document(DocumentId::from_uuid(uuid::Uuid::from_u128(1)));
        let mut itself = candidate(1, RelatedKind::Document);
        itself.same_place = true;
        let unrelated = candidate(2, RelatedKind::Document);
        let mut faint = candidate(3, RelatedKind::Document);
        faint.similarity = Some(MIN_SIMILARITY - 0.01);
        assert!(rank_related(subject, vec![itself, unrelated, faint], 10).is_empty());
    }

    #[test]
    fn the_same_item_found_twice_is_merged_and_scored_by_every_reason() {
        let subject = RelatedSubject::Document(DocumentId::from_uuid(uuid::Uuid::from_u128(1)));
        let mut by_graph = candidate(2, RelatedKind::Document);
        by_graph.shared_tags = vec![tag("tax")];
        by_graph.same_place = true;
        let mut by_meaning = candidate(2, RelatedKind::Document);
        by_meaning.similarity = Some(0.8);
        let mut other = candidate(3, RelatedKind::Document);
        other.shared_people = 2;
        let ranked = rank_related(subject, vec![other, by_graph, by_meaning], 10);
        assert_eq!(ranked.len(), 2);
        assert_eq!(ranked[0].candidate.id, uuid::Uuid::from_u128(2));
        assert_eq!(
            ranked[0].reasons,
            vec![
                RelatedReason::SimilarContent(0.8),
                RelatedReason::SameNotebook,
                RelatedReason::SharedTags(vec![tag("tax")]),
            ]
        );
        assert!((ranked[0].score - (4.0 * 0.8 + 1.5 + 1.0)).abs() < 1e-9);
        assert_eq!(ranked[1].reasons, vec![RelatedReason::SharedCollaborators(2)]);
        assert!((ranked[1].score - 1.0).abs() < 1e-9);
    }

    #[test]
    fn a_nearby_notebook_is_named_as_such_and_the_limit_holds() {
        let subject = RelatedSubject::Notebook(NotebookId::from_uuid(uuid::Uuid::from_u128(9)));
        let mut sibling = candidate(2, RelatedKind::Notebook);
        sibling.same_place = true;
        let mut tagged = candidate(3, RelatedKind::Notebook);
        tagged.shared_tags = vec![tag("b"), tag("a"), tag("c"), tag("d")];
        let ranked = rank_related(subject, vec![sibling, tagged], 1);
        assert_eq!(ranked.len(), 1);
        // Four shared tags count as three.
        assert!((ranked[0].score - 3.0).abs() < 1e-9);
        assert_eq!(ranked[0].reasons, vec![RelatedReason::SharedTags(vec![tag("a"), tag("b"), tag("c"), tag("d")])]);
        let ranked = rank_related(subject, vec![candidate(2, RelatedKind::Notebook)], 5);
        assert!(ranked.is_empty());
        let mut sibling = candidate(2, RelatedKind::Notebook);
        sibling.same_place = true;
        assert_eq!(rank_related(subject, vec![sibling], 5)[0].reasons, vec![RelatedReason::NearbyNotebook]);
    }

    #[test]
    fn the_mean_direction_is_the_bodys_and_refuses_mixed_sizes() {
        let a = Embedding::normalized(vec![1.0, 0.0]).expect("a");
        let b = Embedding::normalized(vec![0.0, 1.0]).expect("b");
        let heading = Embedding::normalized(vec![-1.0, 0.0]).expect("heading");
        let mean = mean_direction(&[(0, heading.clone()), (1, a.clone()), (2, b)]).expect("mean");
        let half = std::f32::consts::FRAC_1_SQRT_2;
        assert!((mean.as_slice()[0] - half).abs() < 1e-6 && (mean.as_slice()[1] - half).abs() < 1e-6);
        assert_eq!(mean_direction(&[(0, heading.clone())]), Some(heading), "the heading, without a body");
        let c = Embedding::normalized(vec![1.0, 0.0, 0.0]).expect("c");
        assert_eq!(mean_direction(&[(1, a), (2, c)]), None);
        assert_eq!(mean_direction(&[]), None);
    }
}
