//! Identity use cases on SQLite: users synchronised from Keycloak, user search, role
//! changes, personal API keys, audit records and ephemeral key/value entries.

use std::time::Duration;

use aether_domain::StoreError;
use aether_domain::activity::NewAuditRecord;
use aether_domain::api_key::{ApiKey, ApiKeyName, ApiKeyScope, NewApiKey};
use aether_domain::capability::check_administrators_remain;
use aether_domain::ephemeral::EphemeralStore;
use aether_domain::events::user_activity_event;
use aether_domain::id::{ApiKeyId, UserId};
use aether_domain::identity::ExternalUser;
use aether_domain::store::{ApiKeyStore, StoreResult};
use aether_domain::time::{self, Timestamp};
use aether_domain::user::{Email, Role, User};
use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::{SqliteStore, corrupt, map_err, opt_ts, roles_json, ts, user_from_row};

pub(crate) async fn insert_audit(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    record: &NewAuditRecord,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO audit_log (id, action, resource_type, resource_id, details, ip_address, user_agent, \
         created_at, performed_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(record.action)
    .bind(record.resource_type)
    .bind(&record.resource_id)
    .bind(serde_json::Value::Object(record.details.clone()).to_string())
    .bind(&record.ip_address)
    .bind(&record.user_agent)
    .bind(time::to_storage(&record.at))
    .bind(record.performed_by.map(|id| id.to_string()))
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    if let Some(user) = record.performed_by {
        let event = user_activity_event(user, record.action, record.resource_type, &record.resource_id);
        sqlx::query("INSERT INTO outbox (id, topic, key, payload, created_at) VALUES (?, ?, ?, ?, ?)")
            .bind(uuid::Uuid::now_v7().to_string())
            .bind(event.topic)
            .bind(&event.key)
            .bind(event.payload.to_string())
            .bind(time::to_storage(&record.at))
            .execute(&mut **tx)
            .await
            .map_err(map_err)?;
    }
    Ok(())
}

impl SqliteStore {
    pub(crate) async fn sync_external_user_impl(&self, user: ExternalUser, at: Timestamp) -> StoreResult<User> {
        let (_writer, mut tx) = self.begin_write().await?;
        let at_text = time::to_storage(&at);
        // One upsert on the unique keycloak_id: the user is created once, then updated;
        // a username or e-mail of another account still fails as a Conflict.
        let id: String = sqlx::query_scalar(
            "INSERT INTO users (id, keycloak_id, username, email, full_name, keycloak_roles, keycloak_groups, \
             keycloak_attributes, status, created_at, updated_at, last_login_at, last_sync_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'active', ?9, ?9, ?10, ?9) \
             ON CONFLICT (keycloak_id) DO UPDATE SET username = excluded.username, email = excluded.email, \
             full_name = excluded.full_name, keycloak_roles = excluded.keycloak_roles, \
             keycloak_groups = excluded.keycloak_groups, keycloak_attributes = excluded.keycloak_attributes, \
             last_sync_at = excluded.last_sync_at, updated_at = excluded.updated_at, \
             last_login_at = COALESCE(excluded.last_login_at, users.last_login_at) \
             RETURNING id",
        )
        .bind(UserId::new().to_string())
        .bind(&user.keycloak_id)
        .bind(user.username.as_str())
        .bind(user.email.as_ref().map(Email::as_str))
        .bind(&user.full_name)
        .bind(roles_json(&user.roles))
        .bind(serde_json::Value::from(user.groups.clone()).to_string())
        .bind(serde_json::Value::Object(user.attributes.clone()).to_string())
        .bind(&at_text)
        .bind(user.logged_in_at.as_ref().map(time::to_storage))
        .fetch_one(&mut *tx)
        .await
        .map_err(map_err)?;
        let row = sqlx::query(concat!("SELECT ", crate::user_columns!(), " FROM users WHERE id = ?"))
            .bind(&id)
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
        let user = user_from_row(&row)?;
        tx.commit().await.map_err(map_err)?;
        Ok(user)
    }

    pub(crate) async fn search_users_impl(&self, text: &str, limit: u32) -> StoreResult<Vec<User>> {
        let needle: String = text
            .trim()
            .to_lowercase()
            .chars()
            .flat_map(|c| if matches!(c, '%' | '_' | '\\') { vec!['\\', c] } else { vec![c] })
            .collect();
        let rows = sqlx::query(concat!(
            "SELECT ",
            crate::user_columns!(),
            " FROM users WHERE status != 'deleted' AND (username LIKE ?1 ESCAPE '\\' \
             OR lower(coalesce(email, '')) LIKE ?1 ESCAPE '\\' OR lower(coalesce(full_name, '')) LIKE ?1 ESCAPE '\\') \
             ORDER BY (username LIKE ?2 ESCAPE '\\') DESC, username LIMIT ?3"
        ))
        .bind(format!("%{needle}%"))
        .bind(format!("{needle}%"))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(user_from_row).collect()
    }

    pub(crate) async fn change_user_roles_impl(
        &self,
        id: UserId,
        roles: Vec<Role>,
        audit: NewAuditRecord,
    ) -> StoreResult<User> {
        let (_writer, mut tx) = self.begin_write().await?;
        let before = sqlx::query(concat!("SELECT ", crate::user_columns!(), " FROM users WHERE id = ?"))
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?
            .map(|row| user_from_row(&row))
            .transpose()?
            .map(|user| user.roles)
            .unwrap_or_default();
        let done =
            sqlx::query("UPDATE users SET keycloak_roles = ?, updated_at = ? WHERE id = ? AND status != 'deleted'")
                .bind(roles_json(&roles))
                .bind(time::to_storage(&audit.at))
                .bind(id.to_string())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        // Writers are serialised (BEGIN IMMEDIATE), so this count sees every other change.
        let (administrators,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM users, json_each(users.keycloak_roles) AS role \
             WHERE users.status = 'active' AND role.value = ?",
        )
        .bind(Role::Admin.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(map_err)?;
        check_administrators_remain(&before, &roles, u64::try_from(administrators).unwrap_or(0))?;
        insert_audit(&mut tx, &audit).await?;
        let row = sqlx::query(concat!("SELECT ", crate::user_columns!(), " FROM users WHERE id = ?"))
            .bind(id.to_string())
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
        let user = user_from_row(&row)?;
        tx.commit().await.map_err(map_err)?;
        Ok(user)
    }

    pub(crate) async fn record_audit_impl(&self, record: NewAuditRecord) -> StoreResult<()> {
        let (_writer, mut tx) = self.begin_write().await?;
        insert_audit(&mut tx, &record).await?;
        tx.commit().await.map_err(map_err)
    }
}

macro_rules! api_key_columns {
    () => {
        "id, user_id, name, prefix, scopes, created_at, expires_at, last_used_at, revoked_at"
    };
}

fn api_key_from_row(row: &SqliteRow) -> StoreResult<ApiKey> {
    let id: String = row.try_get("id").map_err(map_err)?;
    let user_id: String = row.try_get("user_id").map_err(map_err)?;
    let name: String = row.try_get("name").map_err(map_err)?;
    let scopes: String = row.try_get("scopes").map_err(map_err)?;
    let scopes: Vec<String> = serde_json::from_str(&scopes).map_err(|_| corrupt("api key scopes"))?;
    Ok(ApiKey {
        id: ApiKeyId::parse(&id).map_err(|_| corrupt("api key id"))?,
        user_id: UserId::parse(&user_id).map_err(|_| corrupt("user id"))?,
        name: ApiKeyName::parse(&name).map_err(|_| corrupt("api key name"))?,
        prefix: row.try_get("prefix").map_err(map_err)?,
        scopes: scopes
            .iter()
            .map(|scope| ApiKeyScope::parse(scope))
            .collect::<Result<_, _>>()
            .map_err(|_| corrupt("api key scope"))?,
        created_at: ts(&row.try_get::<String, _>("created_at").map_err(map_err)?)?,
        expires_at: opt_ts(row.try_get("expires_at").map_err(map_err)?)?,
        last_used_at: opt_ts(row.try_get("last_used_at").map_err(map_err)?)?,
        revoked_at: opt_ts(row.try_get("revoked_at").map_err(map_err)?)?,
    })
}

async fn api_key_in(tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>, id: &str) -> StoreResult<ApiKey> {
    let row = sqlx::query(concat!("SELECT ", api_key_columns!(), " FROM api_keys WHERE id = ?"))
        .bind(id)
        .fetch_one(&mut **tx)
        .await
        .map_err(map_err)?;
    api_key_from_row(&row)
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

    async fn list_api_keys(&self, user: UserId) -> StoreResult<Vec<ApiKey>> {
        let rows =
            sqlx::query(concat!("SELECT ", api_key_columns!(), " FROM api_keys WHERE user_id = ? ORDER BY id DESC"))
                .bind(user.to_string())
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
        rows.iter().map(api_key_from_row).collect()
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
        let row = sqlx::query(concat!("SELECT ", api_key_columns!(), " FROM api_keys WHERE secret_hash = ?"))
            .bind(secret_hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(api_key_from_row).transpose()
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
        let row = sqlx::query("DELETE FROM ephemeral WHERE key = ? RETURNING value, expires_at")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        let Some(row) = row else { return Ok(None) };
        let expires_at = ts(&row.try_get::<String, _>("expires_at").map_err(map_err)?)?;
        if expires_at <= time::now() {
            return Ok(None);
        }
        Ok(Some(row.try_get("value").map_err(map_err)?))
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
