//! Users: local accounts, users synchronised from Keycloak, search and role changes.

use aether_domain::StoreError;
use aether_domain::activity::NewAuditRecord;
use aether_domain::capability::check_administrators_remain;
use aether_domain::id::UserId;
use aether_domain::identity::ExternalUser;
use aether_domain::page::{Page, PageRequest, SortOrder};
use aether_domain::store::{StoreResult, UserStore};
use aether_domain::time::{self, Timestamp};
use aether_domain::user::{self, Email, LocalCredentials, NewUser, Role, User, UserPatch, Username};
use async_trait::async_trait;

use crate::activity::insert_audit;
use crate::rows::{CredentialsRow, UserRow, convert, count, roles_json};
use crate::{SqliteStore, map_err};

async fn user_in(tx: &mut sqlx::SqliteConnection, id: &str) -> StoreResult<Option<User>> {
    let row: Option<UserRow> = sqlx::query_as(concat!("SELECT ", user_columns!(), " FROM users WHERE id = ?"))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
    row.map(User::try_from).transpose()
}

/// Live users, newest first from the bound ?1, ?2 rows, along the primary key.
pub(crate) const USERS: &str =
    concat!("SELECT ", user_columns!(), " FROM users WHERE status != 'deleted' AND id < ?1 ORDER BY id DESC LIMIT ?2");

#[async_trait]
impl UserStore for SqliteStore {
    async fn create_user(&self, user: NewUser) -> StoreResult<User> {
        let _writer = self.writer.lock().await;
        let created_at = time::to_storage(&user.created_at);
        sqlx::query(
            "INSERT INTO users (id, keycloak_id, username, email, full_name, keycloak_roles, status, \
             password_hash, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'active', ?, ?, ?)",
        )
        .bind(user.id.to_string())
        .bind(&user.keycloak_id)
        .bind(user.username.as_str())
        .bind(user.email.as_ref().map(Email::as_str))
        .bind(&user.full_name)
        .bind(roles_json(&user.roles))
        .bind(&user.password_hash)
        .bind(&created_at)
        .bind(&created_at)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        self.get_user(user.id).await
    }

    async fn get_user(&self, id: UserId) -> StoreResult<User> {
        let row: UserRow =
            sqlx::query_as(concat!("SELECT ", user_columns!(), " FROM users WHERE id = ? AND status != 'deleted'"))
                .bind(id.to_string())
                .fetch_one(&self.pool)
                .await
                .map_err(map_err)?;
        row.try_into()
    }

    async fn find_user_by_username(&self, username: &Username) -> StoreResult<Option<User>> {
        let row: Option<UserRow> = sqlx::query_as(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE username = ? AND status != 'deleted'"
        ))
        .bind(username.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        row.map(User::try_from).transpose()
    }

    async fn find_local_credentials(&self, username: &Username) -> StoreResult<Option<LocalCredentials>> {
        let row: Option<CredentialsRow> = sqlx::query_as(concat!(
            "SELECT ",
            user_columns!(),
            ", password_hash FROM users \
             WHERE username = ? AND status != 'deleted' AND password_hash IS NOT NULL"
        ))
        .bind(username.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        row.map(LocalCredentials::try_from).transpose()
    }

    async fn update_user(&self, id: UserId, patch: UserPatch, at: Timestamp) -> StoreResult<User> {
        let (_writer, mut tx) = self.begin_write().await?;
        let row: UserRow =
            sqlx::query_as(concat!("SELECT ", user_columns!(), " FROM users WHERE id = ? AND status != 'deleted'"))
                .bind(id.to_string())
                .fetch_one(&mut *tx)
                .await
                .map_err(map_err)?;
        let mut user = User::try_from(row)?;
        user.apply_patch(patch, at);
        sqlx::query(
            "UPDATE users SET email = ?, full_name = ?, avatar_url = ?, keycloak_roles = ?, preferences = ?, \
             status = ?, updated_at = ? WHERE id = ?",
        )
        .bind(user.email.as_ref().map(Email::as_str))
        .bind(&user.full_name)
        .bind(&user.avatar_url)
        .bind(roles_json(&user.roles))
        .bind(serde_json::Value::Object(user.preferences.clone()).to_string())
        .bind(user.status.as_str())
        .bind(time::to_storage(&at))
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(user)
    }

    async fn set_password_hash(&self, id: UserId, password_hash: String, at: Timestamp) -> StoreResult<()> {
        let _writer = self.writer.lock().await;
        let done =
            sqlx::query("UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ? AND status != 'deleted'")
                .bind(password_hash)
                .bind(time::to_storage(&at))
                .bind(id.to_string())
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
        if done.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(()) }
    }

    async fn record_login(&self, id: UserId, at: Timestamp) -> StoreResult<()> {
        let _writer = self.writer.lock().await;
        let done = sqlx::query("UPDATE users SET last_login_at = ? WHERE id = ? AND status != 'deleted'")
            .bind(time::to_storage(&at))
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        if done.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(()) }
    }

    async fn soft_delete_user(&self, id: UserId, at: Timestamp) -> StoreResult<()> {
        let _writer = self.writer.lock().await;
        let done =
            sqlx::query("UPDATE users SET status = 'deleted', updated_at = ? WHERE id = ? AND status != 'deleted'")
                .bind(time::to_storage(&at))
                .bind(id.to_string())
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
        if done.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(()) }
    }

    async fn list_users(&self, page: PageRequest) -> StoreResult<Page<User>> {
        let rows: Vec<UserRow> = sqlx::query_as(USERS)
            .bind(page.bound(SortOrder::NewestFirst))
            .bind(page.fetch())
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(Page::from_overfetch(convert(rows)?, page.limit, |user: &User| user.id.as_uuid()))
    }

    async fn count_users(&self) -> StoreResult<u64> {
        let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE status != 'deleted'")
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        count(users)
    }

    async fn sync_external_user(&self, user: ExternalUser, at: Timestamp) -> StoreResult<User> {
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
        let user = user_in(&mut tx, &id).await?.ok_or(StoreError::NotFound)?;
        tx.commit().await.map_err(map_err)?;
        Ok(user)
    }

    async fn find_user_by_keycloak_id(&self, keycloak_id: &str) -> StoreResult<Option<User>> {
        let row: Option<UserRow> = sqlx::query_as(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE keycloak_id = ? AND status != 'deleted'"
        ))
        .bind(keycloak_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        row.map(User::try_from).transpose()
    }

    async fn search_users(&self, text: &str, limit: u32) -> StoreResult<Vec<User>> {
        // LIKE's wildcards in the needle are matched literally.
        let needle: String = user::search_needle(text)
            .chars()
            .flat_map(|c| if matches!(c, '%' | '_' | '\\') { vec!['\\', c] } else { vec![c] })
            .collect();
        let rows: Vec<UserRow> = sqlx::query_as(concat!(
            "SELECT ",
            user_columns!(),
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
        convert(rows)
    }

    async fn change_user_roles(&self, id: UserId, roles: Vec<Role>, audit: NewAuditRecord) -> StoreResult<User> {
        let (_writer, mut tx) = self.begin_write().await?;
        let before = user_in(&mut tx, &id.to_string()).await?.map(|user| user.roles).unwrap_or_default();
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
        let administrators: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM users, json_each(users.keycloak_roles) AS role \
             WHERE users.status = 'active' AND role.value = ?",
        )
        .bind(Role::Admin.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(map_err)?;
        check_administrators_remain(&before, &roles, u64::try_from(administrators).unwrap_or(0))?;
        insert_audit(&mut tx, &audit).await?;
        let user = user_in(&mut tx, &id.to_string()).await?.ok_or(StoreError::NotFound)?;
        tx.commit().await.map_err(map_err)?;
        Ok(user)
    }
}
