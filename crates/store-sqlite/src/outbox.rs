//! The outbox: domain events written in the transaction of their change, read and
//! marked published by the relay.

use aether_domain::events::{NewEvent, OutboxEvent};
use aether_domain::store::{OutboxStore, StoreResult};
use aether_domain::time::{self, Timestamp};
use async_trait::async_trait;
use sqlx::SqliteConnection;

use crate::rows::{OutboxRow, convert};
use crate::{SqliteStore, map_err};

/// Writes one event to the outbox, in the caller's transaction.
pub(crate) async fn insert_event(tx: &mut SqliteConnection, event: &NewEvent, at: &Timestamp) -> StoreResult<()> {
    sqlx::query("INSERT INTO outbox (id, topic, key, payload, created_at) VALUES (?, ?, ?, ?, ?)")
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(event.topic)
        .bind(&event.key)
        .bind(event.payload.to_string())
        .bind(time::to_storage(at))
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
    Ok(())
}

#[async_trait]
impl OutboxStore for SqliteStore {
    async fn pending_events(&self, limit: u32) -> StoreResult<Vec<OutboxEvent>> {
        let rows: Vec<OutboxRow> =
            sqlx::query_as("SELECT * FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT ?")
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
        convert(rows)
    }

    async fn mark_published(&self, ids: &[uuid::Uuid], at: Timestamp) -> StoreResult<()> {
        let (_writer, mut tx) = self.begin_write().await?;
        for id in ids {
            sqlx::query("UPDATE outbox SET published_at = ? WHERE id = ? AND published_at IS NULL")
                .bind(time::to_storage(&at))
                .bind(id.to_string())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)
    }
}
