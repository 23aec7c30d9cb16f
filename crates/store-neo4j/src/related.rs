//! Related items on Neo4j (see `aether_domain::related`): candidates in the
//! caller's read scope, each graph signal bounded on its own (`CALL { … UNION … }`),
//! then every fact relating each candidate to the subject. The ranking is the domain's.

use aether_domain::embedding::Embedding;
use aether_domain::id::{DocumentId, NotebookId, UserId};
use aether_domain::notebook::Tag;
use aether_domain::related::{RelatedCandidate, RelatedKind, RelatedSubject};
use aether_domain::search::ReadScope;
use aether_domain::store::StoreResult;
use neo4rs::query;
use serde::Deserialize;

use crate::Neo4jStore;
use crate::rows::{column, corrupt, ts};
use crate::search::{IN_SCOPE, SCOPE};

/// A person `p` who is one of a notebook's people through `r`: its owner or an
/// active collaborator.
const MEMBER: &str = "(type(r) = 'OWNS' OR r.status = 'active')";

/// Binds `people`: the subject notebook `sn`'s people, the caller not counted.
fn subject_people() -> String {
    format!(
        "OPTIONAL MATCH (sp:User)-[r:OWNS|COLLABORATES_ON]->(sn) WHERE {MEMBER} \
         WITH readable, within_ids, s, sn, [p IN collect(DISTINCT sp.id) WHERE p <> $caller] AS people"
    )
}

fn related_documents() -> String {
    let people = subject_people();
    format!(
        "{SCOPE} MATCH (s:Document {{id: $subject}}) MATCH (sn:Notebook {{id: s.notebook_id}}) {people} \
         CALL {{ \
           WITH readable, within_ids, s, sn \
           MATCH (n:Notebook {{id: sn.id}})-[:CONTAINS]->(d:Document) WHERE d.id <> s.id AND {IN_SCOPE} \
           RETURN d ORDER BY d.updated_at DESC, d.id LIMIT $per_signal \
         UNION \
           WITH readable, within_ids, s \
           MATCH (d:Document) WHERE d.id <> s.id \
             AND any(tag IN coalesce(d.tags, []) WHERE tag IN coalesce(s.tags, [])) \
           MATCH (n:Notebook {{id: d.notebook_id}}) WHERE {IN_SCOPE} \
           RETURN d ORDER BY size([tag IN coalesce(d.tags, []) WHERE tag IN coalesce(s.tags, [])]) DESC, \
             d.updated_at DESC, d.id LIMIT $per_signal \
         UNION \
           WITH readable, within_ids, sn, people \
           MATCH (p:User)-[r:OWNS|COLLABORATES_ON]->(n:Notebook)-[:CONTAINS]->(d:Document) \
           WHERE p.id IN people AND {MEMBER} AND n.id <> sn.id AND {IN_SCOPE} \
           WITH d, count(DISTINCT p) AS shared ORDER BY shared DESC, d.updated_at DESC, d.id LIMIT $per_signal \
           RETURN d \
         }} \
         WITH DISTINCT s, sn, people, d \
         OPTIONAL MATCH (m:User)-[r:OWNS|COLLABORATES_ON]->(:Notebook {{id: d.notebook_id}}) \
           WHERE m.id IN people AND {MEMBER} AND d.notebook_id <> sn.id \
         WITH s, sn, d, count(DISTINCT m) AS shared_people \
         RETURN d.id AS id, d.notebook_id AS notebook_id, d.original_filename AS title, \
           toString(d.updated_at) AS updated_at, d.notebook_id = sn.id AS same_place, \
           [tag IN coalesce(d.tags, []) WHERE tag IN coalesce(s.tags, [])] AS shared_tags, shared_people"
    )
}

fn related_notebooks() -> String {
    let people = subject_people();
    format!(
        "{SCOPE} MATCH (sn:Notebook {{id: $subject}}) WITH readable, within_ids, sn AS s, sn {people} \
         CALL {{ \
           WITH readable, within_ids, sn \
           MATCH (sn)<-[:PARENT_OF]-(n:Notebook) WHERE {IN_SCOPE} RETURN n \
         UNION \
           WITH readable, within_ids, sn \
           MATCH (sn)-[:PARENT_OF]->(n:Notebook) WHERE {IN_SCOPE} \
           RETURN n ORDER BY n.updated_at DESC, n.id LIMIT $per_signal \
         UNION \
           WITH readable, within_ids, sn \
           MATCH (sn)<-[:PARENT_OF]-(:Notebook)-[:PARENT_OF]->(n:Notebook) WHERE n <> sn AND {IN_SCOPE} \
           RETURN n ORDER BY n.updated_at DESC, n.id LIMIT $per_signal \
         UNION \
           WITH readable, within_ids, sn \
           MATCH (n:Notebook) WHERE n <> sn AND any(tag IN coalesce(n.tags, []) WHERE tag IN coalesce(sn.tags, [])) \
             AND {IN_SCOPE} \
           RETURN n ORDER BY size([tag IN coalesce(n.tags, []) WHERE tag IN coalesce(sn.tags, [])]) DESC, \
             n.updated_at DESC, n.id LIMIT $per_signal \
         UNION \
           WITH readable, within_ids, sn, people \
           MATCH (p:User)-[r:OWNS|COLLABORATES_ON]->(n:Notebook) \
           WHERE p.id IN people AND {MEMBER} AND n <> sn AND {IN_SCOPE} \
           WITH n, count(DISTINCT p) AS shared ORDER BY shared DESC, n.updated_at DESC, n.id LIMIT $per_signal \
           RETURN n \
         }} \
         WITH DISTINCT sn, people, n \
         OPTIONAL MATCH (m:User)-[r:OWNS|COLLABORATES_ON]->(n) WHERE m.id IN people AND {MEMBER} \
         WITH sn, n, count(DISTINCT m) AS shared_people \
         RETURN n.id AS id, n.id AS notebook_id, n.name AS title, toString(n.updated_at) AS updated_at, \
           (EXISTS {{ (sn)<-[:PARENT_OF]-(n) }} OR EXISTS {{ (sn)-[:PARENT_OF]->(n) }} \
             OR EXISTS {{ (sn)<-[:PARENT_OF]-(:Notebook)-[:PARENT_OF]->(n) }}) AS same_place, \
           [tag IN coalesce(n.tags, []) WHERE tag IN coalesce(sn.tags, [])] AS shared_tags, shared_people"
    )
}

#[derive(Deserialize)]
struct CandidateRecord {
    id: String,
    notebook_id: String,
    title: String,
    updated_at: String,
    same_place: bool,
    shared_tags: Vec<String>,
    shared_people: i64,
}

impl Neo4jStore {
    pub(crate) async fn find_related(
        &self,
        scope: ReadScope,
        subject: RelatedSubject,
        caller: UserId,
        per_signal: u32,
    ) -> StoreResult<Vec<RelatedCandidate>> {
        let (statement, subject_id, kind) = match subject {
            RelatedSubject::Document(id) => (related_documents(), id.to_string(), RelatedKind::Document),
            RelatedSubject::Notebook(id) => (related_notebooks(), id.to_string(), RelatedKind::Notebook),
        };
        let q = query(&statement)
            .param("reader", scope.reader().map(|user| user.to_string()))
            .param("within", None::<String>)
            .param("subject", subject_id)
            .param("caller", caller.to_string())
            .param("per_signal", i64::from(per_signal));
        let mut candidates = Vec::new();
        for row in self.rows(q).await? {
            let record: CandidateRecord = row.to().map_err(|e| corrupt(&e.to_string()))?;
            candidates.push(RelatedCandidate {
                kind,
                id: uuid::Uuid::parse_str(&record.id).map_err(|_| corrupt("id"))?,
                title: record.title,
                notebook_id: NotebookId::parse(&record.notebook_id).map_err(|_| corrupt("notebook id"))?,
                updated_at: ts(&record.updated_at)?,
                shared_tags: Tag::parse_list(&record.shared_tags).map_err(|_| corrupt("tags"))?,
                same_place: record.same_place,
                shared_people: u32::try_from(record.shared_people).map_err(|_| corrupt("shared people"))?,
                similarity: None,
            });
        }
        Ok(candidates)
    }

    pub(crate) async fn vectors_of(
        &self,
        document: DocumentId,
        model: &str,
        limit: u32,
    ) -> StoreResult<Vec<(u32, Embedding)>> {
        let q = query(
            "MATCH (c:Chunk {document_id: $id}) WHERE c.embedding_model = $model AND c.embedding IS NOT NULL \
             RETURN c.ordinal AS ordinal, c.embedding AS vector ORDER BY c.ordinal LIMIT $limit",
        )
        .param("id", document.to_string())
        .param("model", model)
        .param("limit", i64::from(limit));
        let mut vectors = Vec::new();
        for row in self.rows(q).await? {
            let values: Vec<f64> = column(&row, "vector")?;
            let values = values.into_iter().map(|v| v as f32).collect();
            let ordinal: i64 = column(&row, "ordinal")?;
            let ordinal = u32::try_from(ordinal).map_err(|_| corrupt("chunk ordinal"))?;
            vectors.push((ordinal, Embedding::normalized(values).ok_or_else(|| corrupt("vector"))?));
        }
        Ok(vectors)
    }
}
