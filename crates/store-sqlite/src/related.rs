//! Related items on SQLite (see `aether_domain::related`): candidates in the
//! caller's read scope with the facts that relate them to the subject, each signal
//! bounded on its own. The ranking is the domain's.

use aether_domain::StoreError;
use aether_domain::embedding::Embedding;
use aether_domain::id::{DocumentId, NotebookId, UserId};
use aether_domain::notebook::Tag;
use aether_domain::related::{RelatedCandidate, RelatedKind, RelatedSubject};
use aether_domain::search::ReadScope;
use aether_domain::store::StoreResult;
use sqlx::SqlitePool;

use crate::map_err;
use crate::rows::{corrupt, ts};
use crate::search::{in_scope, scope_ctes};

/// The people of a notebook: its owner and its active collaborators.
macro_rules! members {
    () => {
        "members(notebook_id, user_id) AS (SELECT notebook_id, user_id FROM owns \
           UNION SELECT notebook_id, user_id FROM collaborates_on WHERE status = 'active')"
    };
}

/// The best ?5 `candidates` of each signal: the most recent in the same place, those
/// sharing the most tags, those sharing the most people.
macro_rules! bounded_signals {
    () => {
        "SELECT * FROM (SELECT * FROM candidates WHERE same_place ORDER BY updated_at DESC, id LIMIT ?5) \
         UNION SELECT * FROM (SELECT * FROM candidates WHERE json_array_length(shared_tags) > 0 \
           ORDER BY json_array_length(shared_tags) DESC, updated_at DESC, id LIMIT ?5) \
         UNION SELECT * FROM (SELECT * FROM candidates WHERE shared_people > 0 \
           ORDER BY shared_people DESC, updated_at DESC, id LIMIT ?5)"
    };
}

/// Documents related to the document ?3 (of notebook `s.notebook_id`), in scope
/// (?1 reader, ?2 NULL), ?4 the caller (not counted among shared people), ?5 the
/// bound of each signal.
const RELATED_DOCUMENTS: &str = concat!(
    scope_ctes!(),
    ", subject AS (SELECT id, notebook_id, tags FROM documents WHERE id = ?3), ",
    members!(),
    ", sharing(notebook_id, n) AS (SELECT m.notebook_id, COUNT(*) FROM members m \
       WHERE m.user_id != ?4 AND m.user_id IN (SELECT user_id FROM members WHERE notebook_id = \
         (SELECT notebook_id FROM subject)) \
       AND m.notebook_id != (SELECT notebook_id FROM subject) GROUP BY m.notebook_id), \
     candidates AS (SELECT d.id, d.notebook_id, d.original_filename AS title, d.updated_at, \
         d.notebook_id = s.notebook_id AS same_place, \
         (SELECT json_group_array(t.value) FROM json_each(d.tags) t \
           WHERE t.value IN (SELECT value FROM json_each(s.tags))) AS shared_tags, \
         coalesce((SELECT g.n FROM sharing g WHERE g.notebook_id = d.notebook_id), 0) AS shared_people \
       FROM documents d JOIN notebooks n ON n.id = d.notebook_id, subject s \
       WHERE d.id != s.id AND ",
    in_scope!(),
    ") ",
    bounded_signals!()
);

/// Notebooks related to the notebook ?3, with the parameters of [`RELATED_DOCUMENTS`].
const RELATED_NOTEBOOKS: &str = concat!(
    scope_ctes!(),
    ", subject AS (SELECT id, tags FROM notebooks WHERE id = ?3), \
     parents(id) AS (SELECT parent_id FROM parent_of WHERE child_id = ?3), \
     nearby(id) AS (SELECT id FROM parents \
       UNION SELECT child_id FROM parent_of WHERE parent_id = ?3 \
       UNION SELECT child_id FROM parent_of WHERE parent_id IN (SELECT id FROM parents)), ",
    members!(),
    ", sharing(notebook_id, n) AS (SELECT m.notebook_id, COUNT(*) FROM members m \
       WHERE m.user_id != ?4 AND m.user_id IN (SELECT user_id FROM members WHERE notebook_id = ?3) \
       GROUP BY m.notebook_id), \
     candidates AS (SELECT n.id, n.id AS notebook_id, n.name AS title, n.updated_at, \
         n.id IN (SELECT id FROM nearby) AS same_place, \
         (SELECT json_group_array(t.value) FROM json_each(n.tags) t \
           WHERE t.value IN (SELECT value FROM json_each(s.tags))) AS shared_tags, \
         coalesce((SELECT g.n FROM sharing g WHERE g.notebook_id = n.id), 0) AS shared_people \
       FROM notebooks n, subject s WHERE n.id != s.id AND ",
    in_scope!(),
    ") ",
    bounded_signals!()
);

#[derive(sqlx::FromRow)]
struct CandidateRow {
    id: String,
    notebook_id: String,
    title: String,
    updated_at: String,
    same_place: bool,
    shared_tags: String,
    shared_people: i64,
}

pub(crate) async fn candidates(
    pool: &SqlitePool,
    scope: ReadScope,
    subject: RelatedSubject,
    caller: UserId,
    per_signal: u32,
) -> StoreResult<Vec<RelatedCandidate>> {
    let (statement, subject_id, kind) = match subject {
        RelatedSubject::Document(id) => (RELATED_DOCUMENTS, id.to_string(), RelatedKind::Document),
        RelatedSubject::Notebook(id) => (RELATED_NOTEBOOKS, id.to_string(), RelatedKind::Notebook),
    };
    let rows: Vec<CandidateRow> = sqlx::query_as(statement)
        .bind(scope.reader().map(|user| user.to_string()))
        .bind(None::<String>)
        .bind(subject_id)
        .bind(caller.to_string())
        .bind(i64::from(per_signal))
        .fetch_all(pool)
        .await
        .map_err(map_err)?;
    rows.into_iter().map(|row| candidate(kind, row)).collect()
}

fn candidate(kind: RelatedKind, row: CandidateRow) -> StoreResult<RelatedCandidate> {
    let tags: Vec<String> = serde_json::from_str(&row.shared_tags).map_err(|_| corrupt("tags"))?;
    Ok(RelatedCandidate {
        kind,
        id: uuid::Uuid::parse_str(&row.id).map_err(|_| corrupt("id"))?,
        title: row.title,
        notebook_id: NotebookId::parse(&row.notebook_id).map_err(|_| corrupt("notebook id"))?,
        updated_at: ts(&row.updated_at)?,
        shared_tags: Tag::parse_list(&tags).map_err(|_| corrupt("tags"))?,
        same_place: row.same_place,
        shared_people: u32::try_from(row.shared_people).map_err(|_| corrupt("shared people"))?,
        similarity: None,
    })
}

pub(crate) async fn document_vectors(
    pool: &SqlitePool,
    document: DocumentId,
    model: &str,
    limit: u32,
) -> StoreResult<Vec<(u32, Embedding)>> {
    let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
        "SELECT c.ordinal, e.vector FROM document_chunks c JOIN chunk_embeddings e ON e.chunk_id = c.id \
         WHERE c.document_id = ? AND e.model = ? ORDER BY c.ordinal LIMIT ?",
    )
    .bind(document.to_string())
    .bind(model)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(map_err)?;
    rows.into_iter()
        .map(|(ordinal, bytes)| {
            if !bytes.len().is_multiple_of(4) {
                return Err(StoreError::Corrupt("vector".into()));
            }
            let values = bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
            let ordinal = u32::try_from(ordinal).map_err(|_| corrupt("chunk ordinal"))?;
            Ok((ordinal, Embedding::normalized(values).ok_or_else(|| corrupt("vector"))?))
        })
        .collect()
}
