//! Search (issue 15): what a caller may ask, whose notebooks a query may see, and what
//! a store answers. Stores render a query's [`Clause`]s into their engine's syntax
//! (SQLite FTS5, Lucene through Neo4j); the rules — how text becomes words, how
//! many typos a word forgives, the order of results and their cursor — live here.
//!
//! A query is a conjunction: every clause must match. A clause is a word, a word
//! ending in `*` (any word it begins), or a `"quoted phrase"`. Words are runs of
//! letters and digits, compared in lower case, as both engines' tokenizers cut them.

use serde::{Deserialize, Serialize};

use crate::ValidationError;
use crate::access::role_permission;
use crate::chunk::Chunk;
use crate::document::ProcessingStatus;
use crate::id::{DocumentId, NotebookId, UserId};
use crate::notebook::{NotebookStatus, Tag};
use crate::page::Limit;
use crate::time::Timestamp;
use crate::user::Role;
use crate::words::words;

/// The longest query text, in characters; refused beyond, before any work.
pub const MAX_QUERY_CHARS: usize = 256;
/// The most clauses a query may hold.
pub const MAX_CLAUSES: usize = 12;
/// The most words in one phrase.
pub const MAX_PHRASE_WORDS: usize = 12;
/// A prefix shorter than this would match most of the vocabulary.
pub const MIN_PREFIX_CHARS: usize = 2;
/// The most filter tags: more than a notebook may carry, so that asking for more
/// finds nothing.
pub const MAX_FILTER_TAGS: usize = 50;

/// One part of a query. Every clause of a query must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Clause {
    /// A word; with `prefix`, any word that begins with it. A word without `prefix`
    /// also matches words within its [`typo_budget`].
    Word { word: String, prefix: bool },
    /// Words adjacent and in this order.
    Phrase(Vec<String>),
}

/// A validated query text: at most 256 characters, compared as at most 12 clauses
/// (none when it holds no word, which finds nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchText {
    raw: String,
    clauses: Vec<Clause>,
}

impl SearchText {
    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        let invalid = |message: &str| ValidationError::new("q", message);
        if text.chars().count() > MAX_QUERY_CHARS {
            return Err(invalid(&format!("must be at most {MAX_QUERY_CHARS} characters")));
        }
        let mut clauses = Vec::new();
        // Outside quotes words are clauses; inside, the words form one phrase. An
        // unclosed quote closes at the end.
        for (index, part) in text.split('"').enumerate() {
            let quoted = index % 2 == 1;
            if quoted {
                // Words beyond a phrase's twelfth are not compared.
                let phrase: Vec<String> = words(part).take(MAX_PHRASE_WORDS).collect();
                match phrase.len() {
                    0 => {}
                    1 => clauses
                        .push(Clause::Word { word: phrase.into_iter().next().unwrap_or_default(), prefix: false }),
                    _ => clauses.push(Clause::Phrase(phrase)),
                }
                continue;
            }
            for piece in part.split_whitespace() {
                let prefix = piece.ends_with('*');
                let mut piece_words: Vec<String> = words(piece).collect();
                let last = piece_words.pop();
                for word in piece_words {
                    clauses.push(Clause::Word { word, prefix: false });
                }
                if let Some(word) = last {
                    let prefix = prefix && word.chars().count() >= MIN_PREFIX_CHARS;
                    clauses.push(Clause::Word { word, prefix });
                }
            }
        }
        // A query without a word (`!!`) matches nothing; clauses beyond the twelfth
        // are not compared. Neither is an error: both are valid text, and refusing
        // them would refuse what the API's schema allows.
        clauses.dedup();
        clauses.truncate(MAX_CLAUSES);
        Ok(Self { raw: text.trim().to_owned(), clauses })
    }

    /// Whether the text holds no word: such a query finds nothing.
    pub fn is_empty(&self) -> bool {
        self.clauses.is_empty()
    }

    pub fn clauses(&self) -> &[Clause] {
        &self.clauses
    }

    /// The text as the caller wrote it, trimmed (kept in search history).
    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

/// How many edits (insertions, deletions, substitutions, transpositions) a query
/// word forgives: none below four characters (too many neighbours), one up to
/// seven, two from eight.
pub fn typo_budget(word: &str) -> usize {
    match word.chars().count() {
        0..=3 => 0,
        4..=7 => 1,
        _ => 2,
    }
}

/// Whether `candidate` is within `budget` edits of `word` (optimal string alignment
/// distance, the one Lucene's fuzzy queries use). Bails out early: the cost is
/// bounded by the words' lengths times the budget.
pub fn within_edits(word: &str, candidate: &str, budget: usize) -> bool {
    let a: Vec<char> = word.chars().collect();
    let b: Vec<char> = candidate.chars().collect();
    if a.len().abs_diff(b.len()) > budget {
        return false;
    }
    // Three rows of the dynamic programme: two back (for transpositions), one back, now.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current: Vec<usize> = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        current[0] = i;
        let mut row_min = current[0];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut value = (previous[j] + 1).min(current[j - 1] + 1).min(previous[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                value = value.min(before[j - 2] + 1);
            }
            current[j] = value;
            row_min = row_min.min(value);
        }
        if row_min > budget {
            return false;
        }
        std::mem::swap(&mut before, &mut previous);
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()] <= budget
}

/// Whose notebooks a search may see: the one place search decides, from roles, that
/// the graph need not be consulted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadScope {
    /// A role that reads every notebook (`aether-admin`, `notebook-admin`,
    /// `compliance-officer`): every live notebook.
    Everything,
    /// Live notebooks the user reads through the graph. Stores express exactly what
    /// [`crate::access::effective_access`] grants without roles: the user owns the
    /// notebook or an ancestor, holds an active grant on it or an ancestor, or the
    /// notebook itself is public. The conformance suite compares the two.
    Reader(UserId),
}

impl ReadScope {
    pub fn of(user: UserId, roles: &[Role]) -> Self {
        if roles.iter().any(|role| role_permission(*role).is_some()) {
            ReadScope::Everything
        } else {
            ReadScope::Reader(user)
        }
    }

    /// The user whose graph decides, or `None` for every notebook.
    pub fn reader(self) -> Option<UserId> {
        match self {
            ReadScope::Everything => None,
            ReadScope::Reader(user) => Some(user),
        }
    }
}

/// A time range: `from` included, `to` excluded; either end open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeRange {
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
}

impl TimeRange {
    /// A range whose start is not before its end holds nothing: it is valid, and
    /// finds nothing.
    pub fn new(from: Option<Timestamp>, to: Option<Timestamp>) -> Self {
        Self { from, to }
    }
}

/// A content type to filter on (`application/pdf`): `type/subtype`, lower case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentTypeFilter(String);

impl ContentTypeFilter {
    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        let text = text.trim().to_ascii_lowercase();
        let valid_part =
            |part: &str| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || "!#$&-^_.+".contains(c));
        match text.split_once('/') {
            Some((kind, subtype)) if text.len() <= 127 && valid_part(kind) && valid_part(subtype) => Ok(Self(text)),
            _ => Err(ValidationError::new("content_type", "must be a media type such as application/pdf")),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The filters every search takes. `within` keeps a notebook and its descendants;
/// `tags` must all be carried; `owner` is a notebook's owner or a document's uploader.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchFilters {
    pub within: Option<NotebookId>,
    pub tags: Vec<Tag>,
    pub owner: Option<UserId>,
    pub created: TimeRange,
    pub updated: TimeRange,
    /// Set when a filter can match nothing (a tag no notebook or document can
    /// carry): the search finds nothing, without asking the store.
    pub matches_nothing: bool,
}

impl SearchFilters {
    /// Whether a search with these filters and `text` certainly finds nothing.
    pub fn finds_nothing(&self, text: &SearchText) -> bool {
        self.matches_nothing || text.is_empty()
    }
}

/// A search over documents: their text (in chunks) and their file name,
/// description and tags.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentSearch {
    pub text: SearchText,
    pub filters: SearchFilters,
    pub content_type: Option<ContentTypeFilter>,
    pub status: Option<ProcessingStatus>,
    pub limit: Limit,
    pub after: Option<RankCursor>,
}

impl DocumentSearch {
    /// Whether anything but the read scope and `within` narrows the documents:
    /// content type, status, owner, time ranges or tags.
    pub fn filters_documents(&self) -> bool {
        let f = &self.filters;
        self.content_type.is_some()
            || self.status.is_some()
            || f.owner.is_some()
            || f.created != TimeRange::default()
            || f.updated != TimeRange::default()
            || !f.tags.is_empty()
    }
}

/// A search over notebooks: name, description and tags.
#[derive(Debug, Clone, PartialEq)]
pub struct NotebookSearch {
    pub text: SearchText,
    pub filters: SearchFilters,
    pub status: Option<NotebookStatus>,
    pub limit: Limit,
    pub after: Option<RankCursor>,
}

/// A search for people by username and full name; by e-mail too only for callers
/// who administer users (e-mail addresses are not shown to, or matched for, others).
/// The top `limit` only: people who share a notebook with the caller first.
#[derive(Debug, Clone, PartialEq)]
pub struct PeopleSearch {
    pub text: SearchText,
    pub include_email: bool,
    pub limit: Limit,
}

/// A person found. `collaborates`: the caller and this user share a notebook (one
/// holds an active grant on a notebook the other owns).
#[derive(Debug, Clone, PartialEq)]
pub struct PersonHit {
    pub user: crate::user::User,
    pub collaborates: bool,
    pub score: f64,
}

/// Where a ranked listing continues: after the item with this score and id. Results
/// come by score (higher first), then id (ascending), so ties are cut the same way on
/// every page and in both stores.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RankCursor {
    pub score: f64,
    pub id: uuid::Uuid,
}

impl RankCursor {
    /// The cursor as the API hands it out: exact (the score's bits), opaque.
    pub fn encode(&self) -> String {
        format!("{:016x}{}", self.score.to_bits(), self.id.simple())
    }

    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        let invalid = || ValidationError::new("cursor", "is not a cursor this search handed out");
        if text.len() != 48 || !text.is_ascii() {
            return Err(invalid());
        }
        let bits = u64::from_str_radix(&text[..16], 16).map_err(|_| invalid())?;
        // Not a number comes after everything: its page is empty.
        let score = f64::from_bits(bits);
        let score = if score.is_nan() { f64::NEG_INFINITY } else { score };
        let id = uuid::Uuid::try_parse(&text[16..]).map_err(|_| invalid())?;
        Ok(Self { score, id })
    }

    /// Whether an item with `score` and `id` comes after the cursor.
    pub fn precedes(&self, score: f64, id: uuid::Uuid) -> bool {
        score < self.score || (score == self.score && id > self.id)
    }
}

/// One result and its relevance (higher is better; comparable only within one query).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scored<T> {
    pub item: T,
    pub score: f64,
}

/// A page of ranked results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ranked<T> {
    pub items: Vec<Scored<T>>,
    pub next: Option<RankCursor>,
}

impl<T> Ranked<T> {
    /// Orders `rows` (score, then id), drops those not after `after`, and keeps the
    /// first `limit`; `next` is set when more remained.
    pub fn from_rows(
        mut rows: Vec<Scored<T>>,
        after: Option<RankCursor>,
        limit: Limit,
        id_of: impl Fn(&T) -> uuid::Uuid,
    ) -> Self {
        if let Some(after) = after {
            rows.retain(|row| after.precedes(row.score, id_of(&row.item)));
        }
        rows.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| id_of(&a.item).cmp(&id_of(&b.item))));
        let limit = limit.get() as usize;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next =
            if more { rows.last().map(|row| RankCursor { score: row.score, id: id_of(&row.item) }) } else { None };
        Ranked { items: rows, next }
    }

    pub fn map<U>(self, mut f: impl FnMut(T) -> U) -> Ranked<U> {
        Ranked {
            items: self.items.into_iter().map(|row| Scored { item: f(row.item), score: row.score }).collect(),
            next: self.next,
        }
    }
}

/// A document a search found, with the chunk that matched best. Only what a
/// reader may see: the chunk's text is the readers' text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentHit {
    pub id: DocumentId,
    pub notebook_id: NotebookId,
    pub filename: String,
    pub content_type: String,
    pub tags: Vec<Tag>,
    pub file_size: u64,
    pub processing_status: ProcessingStatus,
    pub uploaded_by: UserId,
    pub uploaded_at: Timestamp,
    pub updated_at: Timestamp,
    pub chunk: Chunk,
}

/// What one step of a reindex did: how many documents it rewrote, and where the
/// next step starts (`None` once every document was seen).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReindexStep {
    pub documents: u64,
    pub chunks: u64,
    pub next: Option<DocumentId>,
}

/// How many results share a value, among everything a query matched that the
/// caller may read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FacetCount {
    pub value: String,
    pub count: u64,
}

/// The facets of a document search.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentFacets {
    pub content_type: Vec<FacetCount>,
    pub status: Vec<FacetCount>,
    pub notebook: Vec<FacetCount>,
}

/// How many facet values each facet reports, most frequent first.
pub const FACET_VALUES: usize = 10;

/// Orders facet counts (most first, then by value) and keeps the first [`FACET_VALUES`].
pub fn top_facets(mut counts: Vec<FacetCount>) -> Vec<FacetCount> {
    counts.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
    counts.truncate(FACET_VALUES);
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clauses(text: &str) -> Vec<Clause> {
        SearchText::parse(text).expect("valid").clauses().to_vec()
    }

    fn word(text: &str) -> Clause {
        Clause::Word { word: text.into(), prefix: false }
    }

    #[test]
    fn words_phrases_and_prefixes() {
        assert_eq!(clauses("Quarterly REPORT"), vec![word("quarterly"), word("report")]);
        assert_eq!(
            clauses("\"net revenue\" grow*"),
            vec![
                Clause::Phrase(vec!["net".into(), "revenue".into()]),
                Clause::Word { word: "grow".into(), prefix: true }
            ]
        );
        // One-letter prefixes are plain words; a quoted single word is a word.
        assert_eq!(clauses("a* \"tax\""), vec![word("a"), word("tax")]);
        // Punctuation separates words, as the engines' tokenizers do.
        assert_eq!(clauses("e-mail's"), vec![word("e"), word("mail"), word("s")]);
        // An unclosed quote closes at the end.
        assert_eq!(clauses("\"machine learning"), vec![Clause::Phrase(vec!["machine".into(), "learning".into()])]);
    }

    #[test]
    fn long_queries_are_refused_and_wide_ones_cut() {
        for text in ["", "  ", "***", "\"\"", "!?", "\u{13}"] {
            assert!(SearchText::parse(text).expect("valid").is_empty(), "{text:?}");
        }
        assert!(SearchText::parse(&"a".repeat(MAX_QUERY_CHARS + 1)).is_err());
        let wide = (0..=MAX_CLAUSES).map(|i| format!("w{i}")).collect::<Vec<_>>().join(" ");
        assert_eq!(SearchText::parse(&wide).expect("valid").clauses().len(), MAX_CLAUSES);
        let long_phrase = format!("\"{}\"", (0..20).map(|i| format!("p{i}")).collect::<Vec<_>>().join(" "));
        assert_eq!(clauses(&long_phrase), vec![Clause::Phrase((0..12).map(|i| format!("p{i}")).collect())]);
    }

    #[test]
    fn typo_budget_grows_with_length() {
        assert_eq!(typo_budget("tax"), 0);
        assert_eq!(typo_budget("taxes"), 1);
        assert_eq!(typo_budget("semantic"), 2);
    }

    #[test]
    fn edit_distance_counts_transpositions_once() {
        assert!(within_edits("semantic", "sematnic", 1));
        assert!(within_edits("revenue", "revenu", 1));
        assert!(within_edits("revenue", "rvenue", 1));
        assert!(within_edits("invoice", "invoize", 1));
        assert!(within_edits("invoice", "invoices", 1));
        assert!(!within_edits("invoice", "invoked", 2), "three substitutions");
        assert!(within_edits("invoice", "invoked", 3));
        assert!(!within_edits("report", "repository", 2));
        assert!(within_edits("café", "cafe", 1));
    }

    #[test]
    fn cursors_round_trip_exactly_and_refuse_anything_else() {
        let cursor = RankCursor { score: -0.123_456_789_012_345_6, id: uuid::Uuid::now_v7() };
        assert_eq!(RankCursor::parse(&cursor.encode()), Ok(cursor));
        for text in ["", "x", &"g".repeat(48), &"0".repeat(47)] {
            assert!(RankCursor::parse(text).is_err(), "{text:?}");
        }
        // Any 48 hex digits are a cursor (the API's pattern says so); not a number
        // comes after every score.
        assert_eq!(RankCursor::parse(&"0".repeat(48)).map(|c| c.score), Ok(0.0));
        let nan = format!("7ff8000000000000{}", uuid::Uuid::nil().simple());
        assert_eq!(RankCursor::parse(&nan).map(|c| c.score), Ok(f64::NEG_INFINITY));
    }

    #[test]
    fn ranked_pages_continue_after_their_cursor() {
        let ids: Vec<uuid::Uuid> = (0..5).map(|_| uuid::Uuid::now_v7()).collect();
        let rows = |_: ()| -> Vec<Scored<uuid::Uuid>> {
            // Two ties at 2.0, cut by id.
            vec![
                Scored { item: ids[3], score: 1.0 },
                Scored { item: ids[1], score: 2.0 },
                Scored { item: ids[0], score: 2.0 },
                Scored { item: ids[4], score: 0.5 },
                Scored { item: ids[2], score: 3.0 },
            ]
        };
        let limit = Limit::parse(2).expect("valid");
        let first = Ranked::from_rows(rows(()), None, limit, |id| *id);
        assert_eq!(first.items.iter().map(|row| row.item).collect::<Vec<_>>(), vec![ids[2], ids[0]]);
        let second = Ranked::from_rows(rows(()), first.next, limit, |id| *id);
        assert_eq!(second.items.iter().map(|row| row.item).collect::<Vec<_>>(), vec![ids[1], ids[3]]);
        let third = Ranked::from_rows(rows(()), second.next, limit, |id| *id);
        assert_eq!(third.items.iter().map(|row| row.item).collect::<Vec<_>>(), vec![ids[4]]);
        assert_eq!(third.next, None);
    }

    #[test]
    fn roles_that_read_everything_skip_the_graph() {
        let user = UserId::new();
        assert_eq!(ReadScope::of(user, &[Role::User]), ReadScope::Reader(user));
        assert_eq!(ReadScope::of(user, &[Role::User, Role::ComplianceOfficer]), ReadScope::Everything);
        assert_eq!(ReadScope::of(user, &[Role::Viewer]), ReadScope::Reader(user));
    }

    #[test]
    fn content_types_and_ranges_are_checked() {
        assert_eq!(
            ContentTypeFilter::parse("Application/PDF").map(|c| c.as_str().to_owned()),
            Ok("application/pdf".into())
        );
        assert!(ContentTypeFilter::parse("pdf").is_err());
        assert!(ContentTypeFilter::parse("a/b c").is_err());
    }
}
