//! The record of changes: `(:ActivityEvent)` and `(:AuditLog)` nodes, written in the
//! transaction of the change they record, with their outbox events.

use aether_domain::activity::NewAuditRecord;
use aether_domain::activity::{ActivityEvent, AuditEntry, Change, ChangeRecord};
use aether_domain::events::topics;
use aether_domain::id::NotebookId;
use aether_domain::page::{Page, PageRequest, SortOrder};
use aether_domain::store::{ActivityStore, StoreResult};
use std::collections::HashMap;

use async_trait::async_trait;
use neo4rs::{Query, Txn, query};

use crate::Neo4jStore;
use crate::rows::{ActivityRecord, AuditRecord, from_rows, storage};
use crate::txn::map_err;

/// The clauses that write a change's record, for a query in which `n` is the notebook
/// it is about: `(actor)-[:TRIGGERED]->(:ActivityEvent)-[:ABOUT]->(n)`,
/// `(:AuditLog)-[:PERFORMED_BY]->(actor)`, `(:AuditLog)-[:ON_RESOURCE]->(n)` and the
/// outbox events, in their order. A unit subquery, so the row of `n` passes through
/// unchanged; its parameters are set by [`change_params`].
pub(crate) const RECORD_CHANGE: &str = "CALL { WITH n \
     CREATE (ae:ActivityEvent {id: $rc_event_id, notebook_id: n.id, event_type: $rc_event_type, \
       details: $rc_details, visibility: 'private', created_at: datetime($rc_at)})-[:ABOUT]->(n) \
     CREATE (al:AuditLog {id: $rc_audit_id, action: $rc_action, resource_type: 'notebook', resource_id: n.id, \
       details: $rc_details, ip_address: $rc_ip, user_agent: $rc_agent, created_at: datetime($rc_at)})-[:ON_RESOURCE]->(n) \
     FOREACH (e IN $rc_events | CREATE (:OutboxEvent:OutboxPending {id: e.id, topic: e.topic, key: e.key, payload: e.payload, \
       created_at: datetime($rc_at)})) \
     WITH ae, al OPTIONAL MATCH (u:User {id: $rc_actor}) \
     FOREACH (x IN CASE WHEN u IS NULL THEN [] ELSE [u] END | \
       CREATE (x)-[:TRIGGERED {triggered_at: datetime($rc_at)}]->(ae) CREATE (al)-[:PERFORMED_BY]->(x)) }";

/// A notebook's events: the first `$limit` below `$bound`, newest first along
/// `activity_notebook_keyset`, with their actor.
pub(crate) const ACTIVITY: &str = "MATCH (ae:ActivityEvent) USING INDEX ae:ActivityEvent(notebook_id, id) \
     WHERE ae.notebook_id = $notebook AND ae.id < $bound \
     WITH ae ORDER BY ae.notebook_id DESC, ae.id DESC LIMIT $limit \
     OPTIONAL MATCH (u:User)-[:TRIGGERED]->(ae) \
     RETURN ae.id AS id, ae.event_type AS event_type, u.id AS actor_id, ae.notebook_id AS notebook_id, \
     ae.details AS details, toString(ae.created_at) AS created_at ORDER BY id DESC";

/// The audit log: the first `$limit` entries below `$bound`, newest first along the
/// id's unique index; [`AUDIT_RETURN`] follows.
pub(crate) const AUDIT: &str = "MATCH (al:AuditLog) USING INDEX al:AuditLog(id) WHERE al.id < $bound \
     WITH al ORDER BY al.id DESC LIMIT $limit";

/// The audit entries about `$resource`, as [`AUDIT`], along `audit_resource_keyset`.
pub(crate) const AUDIT_OF_RESOURCE: &str = "MATCH (al:AuditLog) USING INDEX al:AuditLog(resource_id, id) \
     WHERE al.resource_id = $resource AND al.id < $bound \
     WITH al ORDER BY al.resource_id DESC, al.id DESC LIMIT $limit";

/// The entries chosen by [`AUDIT`] or [`AUDIT_OF_RESOURCE`], with their performer.
const AUDIT_RETURN: &str = "OPTIONAL MATCH (al)-[:PERFORMED_BY]->(u:User) \
     RETURN al.id AS id, al.action AS action, al.resource_type AS resource_type, \
     al.resource_id AS resource_id, u.id AS performed_by, al.details AS details, \
     al.ip_address AS ip_address, al.user_agent AS user_agent, toString(al.created_at) AS created_at \
     ORDER BY id DESC";

/// The parameters of [`RECORD_CHANGE`].
pub(crate) fn change_params(q: Query, change: &Change, record: ChangeRecord) -> Query {
    let events: Vec<HashMap<String, String>> = record
        .outbox_events(change)
        .into_iter()
        .map(|event| {
            HashMap::from([
                ("id".to_owned(), uuid::Uuid::now_v7().to_string()),
                ("topic".to_owned(), event.topic.to_owned()),
                ("key".to_owned(), event.key),
                ("payload".to_owned(), event.payload.to_string()),
            ])
        })
        .collect();
    let details = serde_json::Value::Object(record.details).to_string();
    q.param("rc_event_id", uuid::Uuid::now_v7().to_string())
        .param("rc_audit_id", uuid::Uuid::now_v7().to_string())
        .param("rc_event_type", record.event_type)
        .param("rc_action", record.action)
        .param("rc_details", details)
        .param("rc_ip", change.ip_address.clone())
        .param("rc_agent", change.user_agent.clone())
        .param("rc_actor", change.actor.map(|actor| actor.to_string()))
        .param("rc_events", events)
        .param("rc_at", storage(&change.at))
}

/// Writes the record of a change about a notebook, in its transaction, in one
/// statement (see [`RECORD_CHANGE`]).
pub(crate) async fn record_change(txn: &mut Txn, change: &Change, record: ChangeRecord) -> StoreResult<()> {
    let notebook = record.notebook_id.to_string();
    let q = change_params(query(&format!("MATCH (n:Notebook {{id: $notebook}}) {RECORD_CHANGE}")), change, record)
        .param("notebook", notebook);
    txn.run(q).await.map_err(map_err)?;
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
           CREATE (:OutboxEvent:OutboxPending {id: $event_id, topic: $event_topic, key: $actor, payload: $event_payload, \
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
        let q = query(ACTIVITY)
            .param("notebook", notebook.to_string())
            .param("bound", page.bound(SortOrder::NewestFirst))
            .param("limit", page.fetch());
        let events = from_rows::<ActivityRecord, ActivityEvent>(&self.rows(q).await?)?;
        Ok(Page::from_overfetch(events, page.limit, |event| event.id))
    }

    async fn list_audit(&self, resource_id: Option<String>, page: PageRequest) -> StoreResult<Page<AuditEntry>> {
        let walk = if resource_id.is_some() { AUDIT_OF_RESOURCE } else { AUDIT };
        let q = query(&format!("{walk} {AUDIT_RETURN}"))
            .param("resource", resource_id)
            .param("bound", page.bound(SortOrder::NewestFirst))
            .param("limit", page.fetch());
        let entries = from_rows::<AuditRecord, AuditEntry>(&self.rows(q).await?)?;
        Ok(Page::from_overfetch(entries, page.limit, |entry| entry.id))
    }
}
