//! The record of changes: `(:ActivityEvent)` and `(:AuditLog)` nodes, written in the
//! transaction of the change they record, with their outbox events.

use aether_domain::activity::NewAuditRecord;
use aether_domain::activity::{ActivityEvent, AuditEntry, Change, ChangeRecord};
use aether_domain::events::topics;
use aether_domain::id::NotebookId;
use aether_domain::page::{Page, PageRequest};
use aether_domain::store::{ActivityStore, StoreResult};
use async_trait::async_trait;
use neo4rs::{Query, Txn, query};

use crate::Neo4jStore;
use crate::outbox::insert_event;
use crate::rows::{ActivityRecord, AuditRecord, after_param, from_rows, limit_param, storage};
use crate::txn::map_err;

/// Writes the activity event and the audit entry of a change, in its transaction:
/// `(actor)-[:TRIGGERED]->(:ActivityEvent)-[:ABOUT]->(notebook)` and
/// `(:AuditLog)-[:PERFORMED_BY]->(actor)`, `(:AuditLog)-[:ON_RESOURCE]->(notebook)`.
pub(crate) async fn record_change(txn: &mut Txn, change: &Change, record: ChangeRecord) -> StoreResult<()> {
    let events = record.outbox_events(change);
    let details = serde_json::Value::Object(record.details).to_string();
    let q = query(
        "MATCH (n:Notebook {id: $notebook}) \
         CREATE (ae:ActivityEvent {id: $event_id, event_type: $event_type, details: $details, \
           visibility: 'private', created_at: datetime($at)})-[:ABOUT]->(n) \
         CREATE (al:AuditLog {id: $audit_id, action: $action, resource_type: 'notebook', resource_id: $notebook, \
           details: $details, ip_address: $ip, user_agent: $agent, created_at: datetime($at)})-[:ON_RESOURCE]->(n) \
         WITH ae, al OPTIONAL MATCH (u:User {id: $actor}) \
         FOREACH (x IN CASE WHEN u IS NULL THEN [] ELSE [u] END | \
           CREATE (x)-[:TRIGGERED {triggered_at: datetime($at)}]->(ae) CREATE (al)-[:PERFORMED_BY]->(x))",
    )
    .param("notebook", record.notebook_id.to_string())
    .param("event_id", uuid::Uuid::now_v7().to_string())
    .param("audit_id", uuid::Uuid::now_v7().to_string())
    .param("event_type", record.event_type)
    .param("action", record.action)
    .param("details", details)
    .param("ip", change.ip_address.clone())
    .param("agent", change.user_agent.clone())
    .param("actor", change.actor.map(|actor| actor.to_string()))
    .param("at", storage(&change.at));
    txn.run(q).await.map_err(map_err)?;
    for event in &events {
        insert_event(txn, event, &change.at).await?;
    }
    Ok(())
}

/// An identity audit record: `(:AuditLog)-[:PERFORMED_BY]->(:User)` and
/// `-[:ON_RESOURCE]->` the user or key it is about, with the performer's activity
/// event when someone was identified.
pub(crate) fn audit_query(record: &NewAuditRecord) -> Query {
    query(
        "CREATE (al:AuditLog {id: $id, action: $action, resource_type: $resource_type, resource_id: $resource, \
           details: $details, ip_address: $ip, user_agent: $agent, performed_by: $actor, created_at: datetime($at)}) \
         WITH al OPTIONAL MATCH (u:User {id: $actor}) \
         FOREACH (x IN CASE WHEN u IS NULL THEN [] ELSE [u] END | CREATE (al)-[:PERFORMED_BY]->(x)) \
         WITH al OPTIONAL MATCH (ru:User {id: $resource}) \
         FOREACH (x IN CASE WHEN ru IS NULL THEN [] ELSE [ru] END | CREATE (al)-[:ON_RESOURCE]->(x)) \
         WITH al OPTIONAL MATCH (rk:ApiKey {id: $resource}) \
         FOREACH (x IN CASE WHEN rk IS NULL THEN [] ELSE [rk] END | CREATE (al)-[:ON_RESOURCE]->(x)) \
         WITH al FOREACH (x IN CASE WHEN $actor IS NULL THEN [] ELSE [1] END | \
           CREATE (:OutboxEvent {id: $event_id, topic: $event_topic, key: $actor, payload: $event_payload, \
             created_at: datetime($at)}))",
    )
    .param("event_id", uuid::Uuid::now_v7().to_string())
    .param("event_topic", topics::USERS_ACTIVITY)
    .param("event_payload", record.activity_event().map(|event| event.payload.to_string()))
    .param("id", uuid::Uuid::now_v7().to_string())
    .param("action", record.action)
    .param("resource_type", record.resource_type)
    .param("resource", record.resource_id.clone())
    .param("details", serde_json::Value::Object(record.details.clone()).to_string())
    .param("ip", record.ip_address.clone())
    .param("agent", record.user_agent.clone())
    .param("actor", record.performed_by.map(|id| id.to_string()))
    .param("at", storage(&record.at))
}

#[async_trait]
impl ActivityStore for Neo4jStore {
    async fn record_audit(&self, record: NewAuditRecord) -> StoreResult<()> {
        self.graph.run(audit_query(&record)).await.map_err(map_err)
    }

    async fn list_activity(&self, notebook: NotebookId, page: PageRequest) -> StoreResult<Page<ActivityEvent>> {
        let q = query(
            "MATCH (ae:ActivityEvent)-[:ABOUT]->(n:Notebook {id: $notebook}) \
             WHERE $after IS NULL OR ae.id < $after \
             OPTIONAL MATCH (u:User)-[:TRIGGERED]->(ae) \
             RETURN ae.id AS id, ae.event_type AS event_type, u.id AS actor_id, n.id AS notebook_id, \
             ae.details AS details, toString(ae.created_at) AS created_at ORDER BY ae.id DESC LIMIT $limit",
        )
        .param("notebook", notebook.to_string())
        .param("after", after_param(&page))
        .param("limit", limit_param(&page));
        let events = from_rows::<ActivityRecord, ActivityEvent>(&self.rows(q).await?)?;
        Ok(Page::from_overfetch(events, page.limit, |event| event.id))
    }

    async fn list_audit(&self, resource_id: Option<String>, page: PageRequest) -> StoreResult<Page<AuditEntry>> {
        let q = query(
            "MATCH (al:AuditLog) WHERE ($resource IS NULL OR al.resource_id = $resource) \
             AND ($after IS NULL OR al.id < $after) \
             OPTIONAL MATCH (al)-[:PERFORMED_BY]->(u:User) \
             RETURN al.id AS id, al.action AS action, al.resource_type AS resource_type, \
             al.resource_id AS resource_id, u.id AS performed_by, al.details AS details, \
             al.ip_address AS ip_address, al.user_agent AS user_agent, toString(al.created_at) AS created_at \
             ORDER BY al.id DESC LIMIT $limit",
        )
        .param("resource", resource_id)
        .param("after", after_param(&page))
        .param("limit", limit_param(&page));
        let entries = from_rows::<AuditRecord, AuditEntry>(&self.rows(q).await?)?;
        Ok(Page::from_overfetch(entries, page.limit, |entry| entry.id))
    }
}
