//! The outbox: `(:OutboxEvent)` nodes written in the transaction of their change,
//! read and marked published by the relay.

use aether_domain::events::{NewEvent, OutboxEvent};
use aether_domain::store::{OutboxStore, StoreResult};
use aether_domain::time::Timestamp;
use async_trait::async_trait;
use neo4rs::{Txn, query};

use crate::Neo4jStore;
use crate::rows::{OutboxRecord, from_rows, storage};
use crate::txn::map_err;

/// Writes one event to the outbox, in the caller's transaction.
pub(crate) async fn insert_event(txn: &mut Txn, event: &NewEvent, at: &Timestamp) -> StoreResult<()> {
    let q = query(
        "CREATE (:OutboxEvent {id: $id, topic: $topic, key: $key, payload: $payload, created_at: datetime($at)})",
    )
    .param("id", uuid::Uuid::now_v7().to_string())
    .param("topic", event.topic)
    .param("key", event.key.clone())
    .param("payload", event.payload.to_string())
    .param("at", storage(at));
    txn.run(q).await.map_err(map_err)
}

#[async_trait]
impl OutboxStore for Neo4jStore {
    async fn pending_events(&self, limit: u32) -> StoreResult<Vec<OutboxEvent>> {
        let q = query(
            "MATCH (e:OutboxEvent) WHERE e.published_at IS NULL \
             RETURN e.id AS id, e.topic AS topic, e.key AS key, e.payload AS payload, \
             toString(e.created_at) AS created_at ORDER BY e.id LIMIT $limit",
        )
        .param("limit", i64::from(limit));
        from_rows::<OutboxRecord, OutboxEvent>(&self.rows(q).await?)
    }

    async fn mark_published(&self, ids: &[uuid::Uuid], at: Timestamp) -> StoreResult<()> {
        let q = query(
            "UNWIND $ids AS id MATCH (e:OutboxEvent {id: id}) WHERE e.published_at IS NULL \
             SET e.published_at = datetime($at)",
        )
        .param("ids", ids.iter().map(|id| id.to_string()).collect::<Vec<_>>())
        .param("at", storage(&at));
        self.graph.run(q).await.map_err(map_err)?;
        Ok(())
    }
}
