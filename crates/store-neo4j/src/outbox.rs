//! The outbox: `(:OutboxEvent)` nodes written in the transaction of their change,
//! read and marked published by the relay. An event not yet published also carries
//! the label `OutboxPending`, which publishing removes: the relay's poll reads that
//! label's few nodes, where `published_at IS NULL` (which no range index answers:
//! they leave nulls out) scanned every event ever written, on every poll (issue 14:
//! 0.5 s of Neo4j CPU per poll at 25,000 events, the relay polling all the time).

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
        "CREATE (:OutboxEvent:OutboxPending {id: $id, topic: $topic, key: $key, payload: $payload, created_at: datetime($at)})",
    )
    .param("id", uuid::Uuid::now_v7().to_string())
    .param("topic", event.topic)
    .param("key", event.key.clone())
    .param("payload", event.payload.to_string())
    .param("at", storage(at));
    txn.run(q).await.map_err(map_err)
}

/// The relay's poll: the pending events, oldest first.
pub(crate) const PENDING: &str = "MATCH (e:OutboxPending) \
     RETURN e.id AS id, e.topic AS topic, e.key AS key, e.payload AS payload, \
     toString(e.created_at) AS created_at ORDER BY e.id LIMIT $limit";

#[async_trait]
impl OutboxStore for Neo4jStore {
    async fn pending_events(&self, limit: u32) -> StoreResult<Vec<OutboxEvent>> {
        let q = query(PENDING).param("limit", i64::from(limit));
        from_rows::<OutboxRecord, OutboxEvent>(&self.rows(q).await?)
    }

    async fn mark_published(&self, ids: &[uuid::Uuid], at: Timestamp) -> StoreResult<()> {
        let q = query(
            "UNWIND $ids AS id MATCH (e:OutboxEvent {id: id}) WHERE e:OutboxPending \
             SET e.published_at = datetime($at) REMOVE e:OutboxPending",
        )
        .param("ids", ids.iter().map(|id| id.to_string()).collect::<Vec<_>>())
        .param("at", storage(&at));
        self.graph.run(q).await.map_err(map_err)?;
        Ok(())
    }
}
