//! Personal API keys, stored as digests, created and revoked with their audit records.

use aether_domain::StoreError;
use aether_domain::activity::NewAuditRecord;
use aether_domain::api_key::{ApiKey, NewApiKey};
use aether_domain::id::{ApiKeyId, UserId};
use aether_domain::page::{Page, PageRequest, SortOrder};
use aether_domain::store::{ApiKeyStore, StoreResult};
use aether_domain::time::{self, Timestamp};
use async_trait::async_trait;

use crate::activity::insert_audit;
use crate::rows::{ApiKeyRow, convert};
use crate::{SqliteStore, map_err};

/// The user's (?1) keys, newest first from the bound ?2, ?3 rows, along
/// `api_keys_user` (user, id).
pub(crate) const API_KEYS: &str =
    concat!("SELECT ", api_key_columns!(), " FROM api_keys WHERE user_id = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3");

async fn api_key_in(tx: &mut sqlx::SqliteConnection, id: &str) -> StoreResult<ApiKey> {
    let row: ApiKeyRow = sqlx::query_as(concat!("SELECT ", api_key_columns!(), " FROM api_keys WHERE id = ?"))
        .bind(id)
        .fetch_one(&mut *tx)
        .await
        .map_err(map_err)?;
    row.try_into()
}

#[async_trait]
impl ApiKeyStore for SqliteStore {
    async fn create_api_key(&self, key: NewApiKey, audit: NewAuditRecord) -> StoreResult<ApiKey> {
        let (_writer, mut tx) = self.begin_write().await?;
        let scopes = serde_json::Value::from(key.scopes.iter().map(|scope| scope.as_str()).collect::<Vec<_>>());
        sqlx::query(
            "INSERT INTO api_keys (id, user_id, name, prefix, secret_hash, scopes, created_at, expires_at) \
             SELECT ?, id, ?, ?, ?, ?, ?, ? FROM users WHERE id = ? AND status != 'deleted'",
        )
        .bind(key.id.to_string())
        .bind(key.name.as_str())
        .bind(&key.prefix)
        .bind(&key.secret_hash)
        .bind(scopes.to_string())
        .bind(time::to_storage(&key.created_at))
        .bind(key.expires_at.as_ref().map(time::to_storage))
        .bind(key.user_id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(|error| match map_err(error) {
            StoreError::Conflict(_) => StoreError::Conflict("api_key".into()),
            other => other,
        })
        .and_then(|done| if done.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(done) })?;
        insert_audit(&mut tx, &audit).await?;
        let created = api_key_in(&mut tx, &key.id.to_string()).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(created)
    }

    async fn list_api_keys(&self, user: UserId, page: PageRequest) -> StoreResult<Page<ApiKey>> {
        let rows: Vec<ApiKeyRow> = sqlx::query_as(API_KEYS)
            .bind(user.to_string())
            .bind(page.bound(SortOrder::NewestFirst))
            .bind(page.fetch())
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(Page::from_overfetch(convert(rows)?, page.limit, |key: &ApiKey| key.id.as_uuid()))
    }

    async fn revoke_api_key(&self, user: UserId, id: ApiKeyId, audit: NewAuditRecord) -> StoreResult<ApiKey> {
        let (_writer, mut tx) = self.begin_write().await?;
        let owner: Option<String> = sqlx::query_scalar("SELECT user_id FROM api_keys WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
        if owner.as_deref() != Some(user.to_string().as_str()) {
            return Err(StoreError::NotFound);
        }
        let done = sqlx::query("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
            .bind(time::to_storage(&audit.at))
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if done.rows_affected() > 0 {
            insert_audit(&mut tx, &audit).await?;
        }
        let key = api_key_in(&mut tx, &id.to_string()).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(key)
    }

    async fn find_api_key(&self, secret_hash: &str) -> StoreResult<Option<ApiKey>> {
        let row: Option<ApiKeyRow> =
            sqlx::query_as(concat!("SELECT ", api_key_columns!(), " FROM api_keys WHERE secret_hash = ?"))
                .bind(secret_hash)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
        row.map(ApiKey::try_from).transpose()
    }

    async fn touch_api_key(&self, id: ApiKeyId, at: Timestamp) -> StoreResult<()> {
        let _writer = self.writer.lock().await;
        sqlx::query("UPDATE api_keys SET last_used_at = ? WHERE id = ?")
            .bind(time::to_storage(&at))
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }
}
