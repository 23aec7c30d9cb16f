//! Short-lived key/value entries (sessions, pending logins, revocations) when no
//! Redis is configured: rows with an expiry, purged by the worker.

use std::time::Duration;

use aether_domain::ephemeral::EphemeralStore;
use aether_domain::store::StoreResult;
use aether_domain::time::{self, Timestamp};
use async_trait::async_trait;

use crate::rows::ts;
use crate::{SqliteStore, map_err};

fn expiry(ttl: Duration) -> String {
    time::to_storage(&time::after(time::now(), ttl))
}

#[async_trait]
impl EphemeralStore for SqliteStore {
    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> StoreResult<()> {
        let _writer = self.writer.lock().await;
        sqlx::query(
            "INSERT INTO ephemeral (key, value, expires_at) VALUES (?, ?, ?) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
        )
        .bind(key)
        .bind(value)
        .bind(expiry(ttl))
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        sqlx::query_scalar("SELECT value FROM ephemeral WHERE key = ? AND expires_at > ?")
            .bind(key)
            .bind(time::to_storage(&time::now()))
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn take(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        let _writer = self.writer.lock().await;
        let row: Option<(Vec<u8>, String)> =
            sqlx::query_as("DELETE FROM ephemeral WHERE key = ? RETURNING value, expires_at")
                .bind(key)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
        let Some((value, expires_at)) = row else { return Ok(None) };
        if ts(&expires_at)? <= time::now() {
            return Ok(None);
        }
        Ok(Some(value))
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        let _writer = self.writer.lock().await;
        sqlx::query("DELETE FROM ephemeral WHERE key = ?").bind(key).execute(&self.pool).await.map_err(map_err)?;
        Ok(())
    }

    async fn purge_expired(&self, now: Timestamp) -> StoreResult<u64> {
        let _writer = self.writer.lock().await;
        let done = sqlx::query("DELETE FROM ephemeral WHERE expires_at <= ?")
            .bind(time::to_storage(&now))
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected())
    }
}
