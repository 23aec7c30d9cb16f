//! Short-lived key/value entries (sessions, pending logins, revocations) when no
//! Redis is configured: `(:Ephemeral)` nodes with an expiry, purged by the worker.

use std::time::Duration;

use aether_domain::StoreError;
use aether_domain::ephemeral::EphemeralStore;
use aether_domain::store::StoreResult;
use aether_domain::time::{self, Timestamp};
use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use neo4rs::{Row, Txn, query};
use serde::Deserialize;

use crate::Neo4jStore;
use crate::rows::{corrupt, storage};
use crate::txn::{in_txn, map_err, txn_rows};

#[derive(Deserialize)]
struct EphemeralRecord {
    // Both read as null when a concurrent take deleted the node while this one waited.
    value: Option<String>,
    live: Option<bool>,
}

fn ephemeral_value(row: Option<Row>) -> StoreResult<Option<Vec<u8>>> {
    let Some(row) = row else { return Ok(None) };
    let record: EphemeralRecord = row.to().map_err(|e| StoreError::Corrupt(e.to_string()))?;
    match (record.value, record.live) {
        (Some(value), Some(true)) => STANDARD.decode(value).map(Some).map_err(|_| corrupt("ephemeral value")),
        _ => Ok(None),
    }
}

#[async_trait]
impl EphemeralStore for Neo4jStore {
    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> StoreResult<()> {
        let q = query("MERGE (e:Ephemeral {key: $key}) SET e.value = $value, e.expires_at = datetime($expires)")
            .param("key", key)
            .param("value", STANDARD.encode(value))
            .param("expires", storage(&time::after(time::now(), ttl)));
        self.graph.run(q).await.map_err(map_err)
    }

    async fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        let q = query("MATCH (e:Ephemeral {key: $key}) RETURN e.value AS value, e.expires_at > datetime($now) AS live")
            .param("key", key)
            .param("now", storage(&time::now()));
        ephemeral_value(self.optional_row(q).await?)
    }

    async fn take(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        let key = key.to_owned();
        in_txn(&self.graph, async move |txn: &mut Txn| {
            // The SET takes the node's write lock before the value is read, so of two
            // concurrent takes the second waits and then finds the node gone.
            let q = query(
                "MATCH (e:Ephemeral {key: $key}) SET e._taken = true \
                 WITH e, e.value AS value, e.expires_at > datetime($now) AS live DELETE e RETURN value, live",
            )
            .param("key", key)
            .param("now", storage(&time::now()));
            match txn_rows(txn, q).await {
                Ok(rows) => ephemeral_value(rows.into_iter().next()),
                // The node was deleted by a concurrent take while we waited for its lock.
                Err(StoreError::Internal(message)) if message.contains("EntityNotFound") => Ok(None),
                Err(error) => Err(error),
            }
        })
        .await
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        let q = query("MATCH (e:Ephemeral {key: $key}) DELETE e").param("key", key);
        self.graph.run(q).await.map_err(map_err)
    }

    async fn purge_expired(&self, now: Timestamp) -> StoreResult<u64> {
        let q = query(
            "MATCH (e:Ephemeral) WHERE e.expires_at <= datetime($now) WITH e LIMIT 10000 DELETE e RETURN count(*) AS n",
        )
        .param("now", storage(&now));
        let row = self.optional_row(q).await?;
        let count: i64 =
            row.map(|row| row.get("n")).transpose().map_err(|e| StoreError::Corrupt(e.to_string()))?.unwrap_or(0);
        u64::try_from(count).map_err(|_| corrupt("count"))
    }
}
