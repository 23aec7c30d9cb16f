//! The embedded graph store: Aether's model on one SQLite file.
//!
//! Nodes are tables, relationships are join tables (see `migrations/`). The file runs
//! in WAL mode with `synchronous = FULL`, so a write acknowledged to a client survives
//! a crash of the process or the machine. Write use cases run in `BEGIN IMMEDIATE`
//! transactions, which take the write lock up front instead of failing on upgrade.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use aether_domain::StoreError;
use aether_domain::access::Collaboration;
use aether_domain::access::{ChainLink, CollaborationStatus, Permission};
use aether_domain::activity::NewAuditRecord;
use aether_domain::activity::{ActivityEvent, AuditEntry, Change, ChangeRecord};
use aether_domain::compliance::ComplianceSettings;
use aether_domain::events::{OutboxEvent, user_activity_event};
use aether_domain::id::{NotebookId, TokenFamilyId, UserId};
use aether_domain::identity::ExternalUser;
use aether_domain::notebook::{
    self, BulkAction, Description, ListScope, NewNotebook, Notebook, NotebookName, NotebookPatch, NotebookQuery,
    NotebookStatus, SortOrder, Tag, Visibility,
};
use aether_domain::page::{Page, PageRequest};
use aether_domain::store::{
    ActivityStore, CollaborationStore, NewRefreshToken, NotebookStore, OutboxStore, RefreshOutcome, SessionStore,
    Store, StoreResult, UserStore,
};
use aether_domain::time::{self, Timestamp};
use aether_domain::user::{Email, LocalCredentials, NewUser, Role, User, UserPatch, UserStatus, Username};
use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use tokio::sync::{Mutex, MutexGuard};

mod documents;
mod identity;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// SQLite has one writer at a time. Queuing writers here, rather than letting
    /// them spin in SQLite's busy handler (which sleeps in growing steps), keeps
    /// write latency flat under concurrency.
    writer: Arc<Mutex<()>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path`. Does not migrate.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new().max_connections(8).connect_with(options).await.map_err(map_err)?;
        Ok(Self { pool, writer: Arc::new(Mutex::new(())) })
    }

    /// Opens and migrates, the usual way to start.
    pub async fn open_and_migrate(path: &Path) -> StoreResult<Self> {
        let store = Self::open(path).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Starts a write transaction, holding this process's writer slot until dropped.
    async fn begin_write(&self) -> StoreResult<(MutexGuard<'_, ()>, sqlx::Transaction<'static, sqlx::Sqlite>)> {
        let writer = self.writer.lock().await;
        let tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
        Ok((writer, tx))
    }

    /// Waits for in-flight queries and checkpoints the WAL.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn map_err(error: sqlx::Error) -> StoreError {
    match error {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            // SQLite names the column: "UNIQUE constraint failed: users.username".
            let message = db.message();
            let field = message.rsplit('.').next().unwrap_or("unique").trim().to_owned();
            StoreError::Conflict(field)
        }
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::NotFound,
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            StoreError::Unavailable(error.to_string())
        }
        sqlx::Error::Database(db) if db.message().contains("database is locked") => {
            StoreError::Unavailable(db.message().to_owned())
        }
        other => StoreError::Internal(other.to_string()),
    }
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("unreadable {what}"))
}

fn ts(text: &str) -> StoreResult<Timestamp> {
    time::parse(text).ok_or_else(|| corrupt("timestamp"))
}

fn opt_ts(text: Option<String>) -> StoreResult<Option<Timestamp>> {
    text.as_deref().map(ts).transpose()
}

fn user_from_row(row: &SqliteRow) -> StoreResult<User> {
    let id: String = row.try_get("id").map_err(map_err)?;
    let roles_json: String = row.try_get("keycloak_roles").map_err(map_err)?;
    let role_names: Vec<String> = serde_json::from_str(&roles_json).map_err(|_| corrupt("roles"))?;
    let roles = role_names
        .iter()
        .map(|name| Role::from_str(name))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| corrupt("role"))?;
    let username: String = row.try_get("username").map_err(map_err)?;
    let email: Option<String> = row.try_get("email").map_err(map_err)?;
    let status: String = row.try_get("status").map_err(map_err)?;
    Ok(User {
        id: UserId::parse(&id).map_err(|_| corrupt("user id"))?,
        keycloak_id: row.try_get("keycloak_id").map_err(map_err)?,
        username: Username::parse(&username).map_err(|_| corrupt("username"))?,
        email: email.as_deref().map(Email::parse).transpose().map_err(|_| corrupt("email"))?,
        full_name: row.try_get("full_name").map_err(map_err)?,
        avatar_url: row.try_get("avatar_url").map_err(map_err)?,
        roles,
        groups: json_column(row, "keycloak_groups")?,
        attributes: json_column(row, "keycloak_attributes")?,
        preferences: json_column(row, "preferences")?,
        status: UserStatus::parse(&status).map_err(|_| corrupt("user status"))?,
        created_at: ts(&row.try_get::<String, _>("created_at").map_err(map_err)?)?,
        updated_at: ts(&row.try_get::<String, _>("updated_at").map_err(map_err)?)?,
        last_login_at: opt_ts(row.try_get("last_login_at").map_err(map_err)?)?,
        last_sync_at: opt_ts(row.try_get("last_sync_at").map_err(map_err)?)?,
    })
}

fn json_column<T: serde::de::DeserializeOwned>(row: &SqliteRow, column: &str) -> StoreResult<T> {
    let text: String = row.try_get(column).map_err(map_err)?;
    serde_json::from_str(&text).map_err(|_| corrupt(column))
}

fn notebook_from_row(row: &SqliteRow) -> StoreResult<Notebook> {
    let id: String = row.try_get("id").map_err(map_err)?;
    let owner_id: String = row.try_get("owner_id").map_err(map_err)?;
    let parent_id: Option<String> = row.try_get("parent_id").map_err(map_err)?;
    let name: String = row.try_get("name").map_err(map_err)?;
    let description: Option<String> = row.try_get("description").map_err(map_err)?;
    let visibility: String = row.try_get("visibility").map_err(map_err)?;
    let status: String = row.try_get("status").map_err(map_err)?;
    let tags: String = row.try_get("tags").map_err(map_err)?;
    let tags: Vec<String> = serde_json::from_str(&tags).map_err(|_| corrupt("tags"))?;
    let settings: String = row.try_get("compliance_settings").map_err(map_err)?;
    let document_count: i64 = row.try_get("document_count").map_err(map_err)?;
    let total_size_bytes: i64 = row.try_get("total_size_bytes").map_err(map_err)?;
    let version: i64 = row.try_get("version").map_err(map_err)?;
    Ok(Notebook {
        is_template: row.try_get("is_template").map_err(map_err)?,
        version: u64::try_from(version).map_err(|_| corrupt("version"))?,
        id: NotebookId::parse(&id).map_err(|_| corrupt("notebook id"))?,
        owner_id: UserId::parse(&owner_id).map_err(|_| corrupt("owner id"))?,
        parent_id: parent_id.as_deref().map(NotebookId::parse).transpose().map_err(|_| corrupt("parent id"))?,
        name: NotebookName::parse(&name).map_err(|_| corrupt("notebook name"))?,
        description: description.as_deref().map(Description::parse).transpose().map_err(|_| corrupt("description"))?,
        visibility: Visibility::parse(&visibility).map_err(|_| corrupt("visibility"))?,
        status: NotebookStatus::parse(&status).map_err(|_| corrupt("notebook status"))?,
        tags: Tag::parse_list(&tags).map_err(|_| corrupt("tags"))?,
        compliance_settings: serde_json::from_str(&settings).map_err(|_| corrupt("compliance settings"))?,
        document_count: u64::try_from(document_count).map_err(|_| corrupt("document count"))?,
        total_size_bytes: u64::try_from(total_size_bytes).map_err(|_| corrupt("total size"))?,
        created_at: ts(&row.try_get::<String, _>("created_at").map_err(map_err)?)?,
        updated_at: ts(&row.try_get::<String, _>("updated_at").map_err(map_err)?)?,
    })
}

fn roles_json(roles: &[Role]) -> String {
    serde_json::Value::from(roles.iter().map(|role| role.as_str()).collect::<Vec<_>>()).to_string()
}

fn tags_json(tags: &[Tag]) -> String {
    serde_json::Value::from(tags.iter().map(Tag::as_str).collect::<Vec<_>>()).to_string()
}

fn settings_json(settings: &ComplianceSettings) -> String {
    serde_json::to_string(settings).unwrap_or_else(|_| "{}".to_owned())
}

// Macros rather than consts, so that `concat!` can build static query strings
// (sqlx refuses strings built at run time, to keep injection out).
#[macro_export]
#[doc(hidden)]
macro_rules! user_columns {
    () => {
        "id, keycloak_id, username, email, full_name, avatar_url, keycloak_roles, keycloak_groups, \
         keycloak_attributes, preferences, status, created_at, updated_at, last_login_at, last_sync_at"
    };
}

// The filters and order shared by every listing. Parameters: ?2 status, ?3
// visibility, ?4 tag, ?5 oldest first, ?6 cursor, ?7 limit.
macro_rules! notebook_filters {
    () => {
        "n.status != 'deleted' AND (?2 IS NULL OR n.status = ?2) AND (?3 IS NULL OR n.visibility = ?3) \
         AND (?4 IS NULL OR EXISTS (SELECT 1 FROM json_each(n.tags) WHERE json_each.value = ?4)) \
         AND (?6 IS NULL OR (?5 AND n.id > ?6) OR (NOT ?5 AND n.id < ?6)) AND (?8 IS NULL OR n.is_template = ?8) \
         ORDER BY CASE WHEN ?5 THEN n.id END ASC, CASE WHEN NOT ?5 THEN n.id END DESC LIMIT ?7"
    };
}

macro_rules! notebook_select {
    () => {
        "SELECT n.id, o.user_id AS owner_id, po.parent_id, n.name, n.description, n.visibility, \
         n.status, n.tags, n.compliance_settings, n.document_count, n.total_size_bytes, n.created_at, \
         n.updated_at, n.version, n.is_template FROM notebooks n JOIN owns o ON o.notebook_id = n.id \
         LEFT JOIN parent_of po ON po.child_id = n.id"
    };
}

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
        let row = sqlx::query(concat!("SELECT ", user_columns!(), " FROM users WHERE id = ? AND status != 'deleted'"))
            .bind(id.to_string())
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        user_from_row(&row)
    }

    async fn find_user_by_username(&self, username: &Username) -> StoreResult<Option<User>> {
        let row =
            sqlx::query(concat!("SELECT ", user_columns!(), " FROM users WHERE username = ? AND status != 'deleted'"))
                .bind(username.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn find_local_credentials(&self, username: &Username) -> StoreResult<Option<LocalCredentials>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            ", password_hash FROM users \
             WHERE username = ? AND status != 'deleted' AND password_hash IS NOT NULL"
        ))
        .bind(username.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(LocalCredentials {
            user: user_from_row(&row)?,
            password_hash: row.try_get("password_hash").map_err(map_err)?,
        }))
    }

    async fn update_user(&self, id: UserId, patch: UserPatch, at: Timestamp) -> StoreResult<User> {
        let (_writer, mut tx) = self.begin_write().await?;
        let row = sqlx::query(concat!("SELECT ", user_columns!(), " FROM users WHERE id = ? AND status != 'deleted'"))
            .bind(id.to_string())
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
        let mut user = user_from_row(&row)?;
        if let Some(email) = patch.email {
            user.email = email;
        }
        if let Some(full_name) = patch.full_name {
            user.full_name = full_name;
        }
        if let Some(avatar_url) = patch.avatar_url {
            user.avatar_url = avatar_url;
        }
        if let Some(roles) = patch.roles {
            user.roles = roles;
        }
        if let Some(preferences) = patch.preferences {
            user.preferences = preferences;
        }
        if let Some(status) = patch.status {
            user.status = status;
        }
        user.updated_at = at;
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
        let rows = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE status != 'deleted' AND (?1 IS NULL OR id < ?1) \
             ORDER BY id DESC LIMIT ?2"
        ))
        .bind(page.after.map(|id| id.hyphenated().to_string()))
        .bind(i64::from(page.limit.get()) + 1)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        let users = rows.iter().map(user_from_row).collect::<StoreResult<Vec<_>>>()?;
        Ok(Page::from_overfetch(users, page.limit, |user| user.id.as_uuid()))
    }

    async fn count_users(&self) -> StoreResult<u64> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE status != 'deleted'")
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        u64::try_from(count).map_err(|_| corrupt("count"))
    }

    async fn sync_external_user(&self, user: ExternalUser, at: Timestamp) -> StoreResult<User> {
        self.sync_external_user_impl(user, at).await
    }

    async fn find_user_by_keycloak_id(&self, keycloak_id: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE keycloak_id = ? AND status != 'deleted'"
        ))
        .bind(keycloak_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn search_users(&self, text: &str, limit: u32) -> StoreResult<Vec<User>> {
        self.search_users_impl(text, limit).await
    }

    async fn change_user_roles(&self, id: UserId, roles: Vec<Role>, audit: NewAuditRecord) -> StoreResult<User> {
        self.change_user_roles_impl(id, roles, audit).await
    }
}

#[async_trait]
impl NotebookStore for SqliteStore {
    async fn create_notebook(&self, new: NewNotebook, max_depth: u32, change: &Change) -> StoreResult<Notebook> {
        let (_writer, mut tx) = self.begin_write().await?;
        if let Some(parent) = new.parent_id {
            let depth = live_depth(&mut tx, parent).await?.ok_or(StoreError::NotFound)?;
            if depth + 1 > max_depth {
                return Err(StoreError::Conflict("depth".into()));
            }
        }
        let owner_exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM users WHERE id = ? AND status != 'deleted'")
            .bind(new.owner_id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
        if owner_exists.is_none() {
            return Err(StoreError::NotFound);
        }
        let created_at = time::to_storage(&new.created_at);
        sqlx::query(
            "INSERT INTO notebooks (id, name, description, visibility, status, compliance_settings, tags, \
             search_text, created_at, updated_at, is_template) VALUES (?, ?, ?, ?, 'active', ?, ?, ?, ?, ?, ?)",
        )
        .bind(new.id.to_string())
        .bind(new.name.as_str())
        .bind(new.description.as_ref().map(Description::as_str))
        .bind(new.visibility.as_str())
        .bind(settings_json(&new.compliance_settings))
        .bind(tags_json(&new.tags))
        .bind(notebook::search_text(&new.name, new.description.as_ref(), &new.tags))
        .bind(&created_at)
        .bind(&created_at)
        .bind(new.is_template)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        sqlx::query("INSERT INTO owns (user_id, notebook_id, created_at) VALUES (?, ?, ?)")
            .bind(new.owner_id.to_string())
            .bind(new.id.to_string())
            .bind(&created_at)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if let Some(parent) = new.parent_id {
            sqlx::query("INSERT INTO parent_of (child_id, parent_id, created_at) VALUES (?, ?, ?)")
                .bind(new.id.to_string())
                .bind(parent.to_string())
                .bind(&created_at)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        let mut record = ChangeRecord::new(new.id, "created", "create").with("name", new.name.as_str());
        if let Some(parent) = new.parent_id {
            record = record.with("parent_id", parent.to_string());
        }
        sync_tags(&mut tx, new.id, change).await?;
        record_change(&mut tx, change, record).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(Notebook {
            id: new.id,
            owner_id: new.owner_id,
            parent_id: new.parent_id,
            name: new.name,
            description: new.description,
            visibility: new.visibility,
            status: NotebookStatus::Active,
            tags: new.tags,
            compliance_settings: new.compliance_settings,
            document_count: 0,
            total_size_bytes: 0,
            created_at: new.created_at,
            updated_at: new.created_at,
            version: 1,
            is_template: new.is_template,
        })
    }

    async fn get_notebook(&self, id: NotebookId) -> StoreResult<Notebook> {
        let row = sqlx::query(concat!(notebook_select!(), " WHERE n.id = ? AND n.status != 'deleted'"))
            .bind(id.to_string())
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        notebook_from_row(&row)
    }

    async fn list_notebooks(&self, query: NotebookQuery) -> StoreResult<Page<Notebook>> {
        let (user, sql) = match query.scope {
            ListScope::Owned(user) => {
                (Some(user), concat!(notebook_select!(), " WHERE o.user_id = ?1 AND ", notebook_filters!()))
            }
            ListScope::SharedWith(user) => (
                Some(user),
                concat!(
                    "WITH RECURSIVE reach(id) AS (\
                     SELECT co.notebook_id FROM collaborates_on co WHERE co.user_id = ?1 AND co.status = 'active' \
                     UNION SELECT p.child_id FROM parent_of p JOIN reach r ON p.parent_id = r.id) ",
                    notebook_select!(),
                    " WHERE n.id IN (SELECT id FROM reach) AND o.user_id != ?1 AND ",
                    notebook_filters!()
                ),
            ),
            ListScope::Public => (
                None,
                concat!(
                    notebook_select!(),
                    " WHERE (?1 IS NULL) AND n.visibility = 'public' AND ",
                    notebook_filters!()
                ),
            ),
        };
        let rows = sqlx::query(sql)
            .bind(user.map(|user| user.to_string()))
            .bind(query.status.map(NotebookStatus::as_str))
            .bind(query.visibility.map(Visibility::as_str))
            .bind(query.tag.as_ref().map(Tag::as_str))
            .bind(query.order == SortOrder::OldestFirst)
            .bind(query.page.after.map(|id| id.hyphenated().to_string()))
            .bind(i64::from(query.page.limit.get()) + 1)
            .bind(query.template)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        let notebooks = rows.iter().map(notebook_from_row).collect::<StoreResult<Vec<_>>>()?;
        Ok(Page::from_overfetch(notebooks, query.page.limit, |notebook| notebook.id.as_uuid()))
    }

    async fn update_notebook(
        &self,
        id: NotebookId,
        patch: NotebookPatch,
        expected_version: Option<u64>,
        change: &Change,
    ) -> StoreResult<Notebook> {
        let (_writer, mut tx) = self.begin_write().await?;
        let notebook = update_in(&mut tx, id, |_| Ok(patch), expected_version, change).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(notebook)
    }

    async fn soft_delete_notebook(&self, id: NotebookId, cascade: bool, change: &Change) -> StoreResult<()> {
        let (_writer, mut tx) = self.begin_write().await?;
        soft_delete_in(&mut tx, id, cascade, change).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn bulk_update(
        &self,
        ids: &[NotebookId],
        action: &BulkAction,
        max_depth: u32,
        change: &Change,
    ) -> StoreResult<Vec<Notebook>> {
        // One transaction for the whole batch: the first failure rolls back all.
        let (_writer, mut tx) = self.begin_write().await?;
        let mut updated = Vec::with_capacity(ids.len());
        for &id in ids {
            match action {
                BulkAction::Move { parent } => {
                    updated.push(move_in(&mut tx, id, *parent, None, max_depth, change).await?);
                }
                BulkAction::Delete { cascade } => soft_delete_in(&mut tx, id, *cascade, change).await?,
                other => {
                    let notebook = update_in(&mut tx, id, |current| other.patch_for(current), None, change).await?;
                    updated.push(notebook);
                }
            }
        }
        tx.commit().await.map_err(map_err)?;
        Ok(updated)
    }

    async fn duplicate_notebook(
        &self,
        source: NotebookId,
        owner: UserId,
        new_parent: Option<NotebookId>,
        name: NotebookName,
        max_depth: u32,
        change: &Change,
    ) -> StoreResult<Notebook> {
        let (_writer, mut tx) = self.begin_write().await?;
        if live_depth(&mut tx, source).await?.is_none() {
            return Err(StoreError::NotFound);
        }
        let parent_depth = match new_parent {
            Some(parent) => live_depth(&mut tx, parent).await?.ok_or(StoreError::NotFound)?,
            None => 0,
        };
        // The live subtree, parents before children.
        let rows = sqlx::query(
            "WITH RECURSIVE subtree(id, parent, level) AS (SELECT ?1, NULL, 1 UNION ALL \
             SELECT p.child_id, p.parent_id, s.level + 1 FROM parent_of p JOIN subtree s ON p.parent_id = s.id \
             JOIN notebooks n ON n.id = p.child_id WHERE n.status != 'deleted') \
             SELECT id, parent, level FROM subtree ORDER BY level",
        )
        .bind(source.to_string())
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
        let levels = rows.iter().map(|row| row.try_get::<i64, _>("level")).collect::<Result<Vec<_>, _>>();
        let height = levels.map_err(map_err)?.into_iter().max().unwrap_or(1);
        if i64::from(parent_depth) + height > i64::from(max_depth) {
            return Err(StoreError::Conflict("depth".into()));
        }
        let at = time::to_storage(&change.at);
        let mut copies: std::collections::HashMap<String, NotebookId> = std::collections::HashMap::new();
        for row in &rows {
            let old: String = row.try_get("id").map_err(map_err)?;
            let old_parent: Option<String> = row.try_get("parent").map_err(map_err)?;
            let copy = NotebookId::new();
            let is_root = old_parent.is_none();
            sqlx::query(
                "INSERT INTO notebooks (id, name, description, visibility, status, compliance_settings, tags, \
                 search_text, created_at, updated_at) SELECT ?1, CASE WHEN ?2 IS NULL THEN name ELSE ?2 END, \
                 description, visibility, status, compliance_settings, tags, search_text, ?3, ?3 \
                 FROM notebooks WHERE id = ?4",
            )
            .bind(copy.to_string())
            .bind(is_root.then(|| name.as_str().to_owned()))
            .bind(&at)
            .bind(&old)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
            sqlx::query("INSERT INTO owns (user_id, notebook_id, created_at) VALUES (?, ?, ?)")
                .bind(owner.to_string())
                .bind(copy.to_string())
                .bind(&at)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            let parent = match &old_parent {
                None => new_parent,
                Some(old_parent) => copies.get(old_parent).copied(),
            };
            if let Some(parent) = parent {
                sqlx::query("INSERT INTO parent_of (child_id, parent_id, created_at) VALUES (?, ?, ?)")
                    .bind(copy.to_string())
                    .bind(parent.to_string())
                    .bind(&at)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
            }
            copies.insert(old, copy);
        }
        let root = copies.get(&source.to_string()).copied().ok_or(StoreError::NotFound)?;
        let row = sqlx::query(concat!(notebook_select!(), " WHERE n.id = ?"))
            .bind(root.to_string())
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
        let mut copy = notebook_from_row(&row)?;
        copy.name = name;
        let search = notebook::search_text(&copy.name, copy.description.as_ref(), &copy.tags);
        sqlx::query("UPDATE notebooks SET search_text = ? WHERE id = ?")
            .bind(search)
            .bind(root.to_string())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        let record = ChangeRecord::new(root, "created", "create")
            .with("name", copy.name.as_str())
            .with("duplicated_from", source.to_string())
            .with("notebooks_copied", rows.len());
        for copy in copies.values() {
            sync_tags(&mut tx, *copy, change).await?;
        }
        record_change(&mut tx, change, record).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(copy)
    }

    async fn tag_usage(&self, owner: Option<UserId>, limit: u32) -> StoreResult<Vec<(Tag, u64)>> {
        let rows = sqlx::query(
            "SELECT tw.tag_name AS name, COUNT(*) AS usage FROM tagged_with tw \
             JOIN notebooks n ON n.id = tw.notebook_id JOIN owns o ON o.notebook_id = n.id \
             WHERE n.status != 'deleted' AND ((?1 IS NOT NULL AND o.user_id = ?1) \
             OR (?1 IS NULL AND n.visibility = 'public')) \
             GROUP BY tw.tag_name ORDER BY usage DESC, name LIMIT ?2",
        )
        .bind(owner.map(|owner| owner.to_string()))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(|row| {
                let name: String = row.try_get("name").map_err(map_err)?;
                let usage: i64 = row.try_get("usage").map_err(map_err)?;
                Ok((
                    Tag::parse(&name).map_err(|_| corrupt("tag"))?,
                    u64::try_from(usage).map_err(|_| corrupt("usage"))?,
                ))
            })
            .collect()
    }

    async fn get_deleted_notebook(&self, id: NotebookId) -> StoreResult<Notebook> {
        let row = sqlx::query(concat!(notebook_select!(), " WHERE n.id = ? AND n.status = 'deleted'"))
            .bind(id.to_string())
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        notebook_from_row(&row)
    }

    async fn restore_notebook(&self, id: NotebookId, change: &Change) -> StoreResult<Notebook> {
        let at = change.at;
        let (_writer, mut tx) = self.begin_write().await?;
        let row = sqlx::query(concat!(notebook_select!(), " WHERE n.id = ? AND n.status = 'deleted'"))
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?
            .ok_or(StoreError::NotFound)?;
        let mut notebook = notebook_from_row(&row)?;
        if let Some(parent) = notebook.parent_id
            && live_depth(&mut tx, parent).await?.is_none()
        {
            return Err(StoreError::Conflict("parent".into()));
        }
        sqlx::query("UPDATE notebooks SET status = 'active', updated_at = ?, version = version + 1 WHERE id = ?")
            .bind(time::to_storage(&at))
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        record_change(&mut tx, change, ChangeRecord::new(id, "restored", "restore")).await?;
        tx.commit().await.map_err(map_err)?;
        notebook.status = NotebookStatus::Active;
        notebook.updated_at = at;
        notebook.version += 1;
        Ok(notebook)
    }

    async fn access_chain(&self, user: UserId, id: NotebookId) -> StoreResult<Vec<ChainLink>> {
        let rows = sqlx::query(
            "WITH RECURSIVE chain(id, depth) AS (SELECT ?1, 0 UNION ALL \
             SELECT p.parent_id, c.depth + 1 FROM parent_of p JOIN chain c ON p.child_id = c.id) \
             SELECT n.id, o.user_id AS owner_id, n.visibility, n.status, co.permission \
             FROM chain c JOIN notebooks n ON n.id = c.id JOIN owns o ON o.notebook_id = n.id \
             LEFT JOIN collaborates_on co ON co.notebook_id = n.id AND co.user_id = ?2 AND co.status = 'active' \
             ORDER BY c.depth",
        )
        .bind(id.to_string())
        .bind(user.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        let first_status: Option<String> =
            rows.first().map(|row| row.try_get("status")).transpose().map_err(map_err)?;
        if first_status.as_deref().is_none_or(|status| status == "deleted") {
            return Err(StoreError::NotFound);
        }
        rows.iter()
            .map(|row| {
                let id: String = row.try_get("id").map_err(map_err)?;
                let owner: String = row.try_get("owner_id").map_err(map_err)?;
                let visibility: String = row.try_get("visibility").map_err(map_err)?;
                let permission: Option<String> = row.try_get("permission").map_err(map_err)?;
                Ok(ChainLink {
                    notebook_id: NotebookId::parse(&id).map_err(|_| corrupt("notebook id"))?,
                    owner_id: UserId::parse(&owner).map_err(|_| corrupt("owner id"))?,
                    visibility: Visibility::parse(&visibility).map_err(|_| corrupt("visibility"))?,
                    grant: permission
                        .as_deref()
                        .map(Permission::parse)
                        .transpose()
                        .map_err(|_| corrupt("permission"))?,
                })
            })
            .collect()
    }

    async fn list_children(
        &self,
        parent: NotebookId,
        only_public: bool,
        page: PageRequest,
    ) -> StoreResult<Page<Notebook>> {
        let rows = sqlx::query(concat!(
            notebook_select!(),
            " WHERE po.parent_id = ?1 AND n.status != 'deleted' AND (?2 = 0 OR n.visibility = 'public') \
             AND (?3 IS NULL OR n.id < ?3) ORDER BY n.id DESC LIMIT ?4"
        ))
        .bind(parent.to_string())
        .bind(only_public)
        .bind(page.after.map(|id| id.hyphenated().to_string()))
        .bind(i64::from(page.limit.get()) + 1)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        let notebooks = rows.iter().map(notebook_from_row).collect::<StoreResult<Vec<_>>>()?;
        Ok(Page::from_overfetch(notebooks, page.limit, |notebook| notebook.id.as_uuid()))
    }

    async fn move_notebook(
        &self,
        id: NotebookId,
        new_parent: Option<NotebookId>,
        expected_version: Option<u64>,
        max_depth: u32,
        change: &Change,
    ) -> StoreResult<Notebook> {
        let (_writer, mut tx) = self.begin_write().await?;
        let notebook = move_in(&mut tx, id, new_parent, expected_version, max_depth, change).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(notebook)
    }
}

/// Reads, checks and patches one live notebook inside the caller's transaction.
/// `patch_of` sees the current state, so that relative changes (adding tags) apply
/// to what is stored, not to what a client last read.
async fn update_in(
    tx: &mut sqlx::SqliteConnection,
    id: NotebookId,
    patch_of: impl FnOnce(&Notebook) -> StoreResult<NotebookPatch>,
    expected_version: Option<u64>,
    change: &Change,
) -> StoreResult<Notebook> {
    let at = change.at;
    let row = sqlx::query(concat!(notebook_select!(), " WHERE n.id = ? AND n.status != 'deleted'"))
        .bind(id.to_string())
        .fetch_one(&mut *tx)
        .await
        .map_err(map_err)?;
    let mut notebook = notebook_from_row(&row)?;
    notebook.check_version(expected_version)?;
    let patch = patch_of(&notebook)?;
    let record = ChangeRecord::new(id, "updated", "update").with("fields", notebook::changed_fields(&patch));
    apply_patch(&mut notebook, patch, at);
    sqlx::query(
        "UPDATE notebooks SET name = ?, description = ?, visibility = ?, status = ?, tags = ?, \
             compliance_settings = ?, search_text = ?, is_template = ?, updated_at = ?, version = version + 1 \
             WHERE id = ?",
    )
    .bind(notebook.name.as_str())
    .bind(notebook.description.as_ref().map(Description::as_str))
    .bind(notebook.visibility.as_str())
    .bind(notebook.status.as_str())
    .bind(tags_json(&notebook.tags))
    .bind(settings_json(&notebook.compliance_settings))
    .bind(notebook::search_text(&notebook.name, notebook.description.as_ref(), &notebook.tags))
    .bind(notebook.is_template)
    .bind(time::to_storage(&at))
    .bind(id.to_string())
    .execute(&mut *tx)
    .await
    .map_err(map_err)?;
    sync_tags(&mut *tx, id, change).await?;
    record_change(&mut *tx, change, record).await?;
    Ok(notebook)
}

/// Soft-deletes one live notebook (with `cascade`, its subtree) inside the
/// caller's transaction.
async fn soft_delete_in(
    tx: &mut sqlx::SqliteConnection,
    id: NotebookId,
    cascade: bool,
    change: &Change,
) -> StoreResult<()> {
    let at = change.at;
    if live_depth(&mut *tx, id).await?.is_none() {
        return Err(StoreError::NotFound);
    }
    let live_children: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM parent_of p JOIN notebooks n ON n.id = p.child_id \
             WHERE p.parent_id = ? AND n.status != 'deleted'",
    )
    .bind(id.to_string())
    .fetch_one(&mut *tx)
    .await
    .map_err(map_err)?;
    if live_children > 0 && !cascade {
        return Err(StoreError::Conflict("children".into()));
    }
    sqlx::query(
        "WITH RECURSIVE subtree(id) AS (SELECT ?1 UNION ALL \
             SELECT p.child_id FROM parent_of p JOIN subtree s ON p.parent_id = s.id) \
             UPDATE notebooks SET status = 'deleted', updated_at = ?2, version = version + 1 \
             WHERE id IN (SELECT id FROM subtree) AND status != 'deleted'",
    )
    .bind(id.to_string())
    .bind(time::to_storage(&at))
    .execute(&mut *tx)
    .await
    .map_err(map_err)?;
    record_change(&mut *tx, change, ChangeRecord::new(id, "deleted", "delete").with("cascade", cascade)).await?;
    Ok(())
}

/// Re-parents one live notebook inside the caller's transaction.
async fn move_in(
    tx: &mut sqlx::SqliteConnection,
    id: NotebookId,
    new_parent: Option<NotebookId>,
    expected_version: Option<u64>,
    max_depth: u32,
    change: &Change,
) -> StoreResult<Notebook> {
    let at = change.at;
    let current = sqlx::query(concat!(notebook_select!(), " WHERE n.id = ? AND n.status != 'deleted'"))
        .bind(id.to_string())
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?
        .ok_or(StoreError::NotFound)?;
    notebook_from_row(&current)?.check_version(expected_version)?;
    let parent_depth = match new_parent {
        None => 0,
        Some(parent) => {
            let ancestors: Vec<String> = sqlx::query_scalar(
                "WITH RECURSIVE chain(id) AS (SELECT ?1 UNION ALL \
                     SELECT p.parent_id FROM parent_of p JOIN chain c ON p.child_id = c.id) SELECT id FROM chain",
            )
            .bind(parent.to_string())
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err)?;
            if ancestors.contains(&id.to_string()) {
                return Err(StoreError::Conflict("cycle".into()));
            }
            live_depth(&mut *tx, parent).await?.ok_or(StoreError::NotFound)?
        }
    };
    let height: i64 = sqlx::query_scalar(
        "WITH RECURSIVE subtree(id, level) AS (SELECT ?1, 1 UNION ALL \
             SELECT p.child_id, s.level + 1 FROM parent_of p JOIN subtree s ON p.parent_id = s.id \
             JOIN notebooks n ON n.id = p.child_id WHERE n.status != 'deleted') SELECT MAX(level) FROM subtree",
    )
    .bind(id.to_string())
    .fetch_one(&mut *tx)
    .await
    .map_err(map_err)?;
    if i64::from(parent_depth) + height > i64::from(max_depth) {
        return Err(StoreError::Conflict("depth".into()));
    }
    sqlx::query("DELETE FROM parent_of WHERE child_id = ?")
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
    if let Some(parent) = new_parent {
        sqlx::query("INSERT INTO parent_of (child_id, parent_id, created_at) VALUES (?, ?, ?)")
            .bind(id.to_string())
            .bind(parent.to_string())
            .bind(time::to_storage(&at))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
    }
    sqlx::query("UPDATE notebooks SET updated_at = ?, version = version + 1 WHERE id = ?")
        .bind(time::to_storage(&at))
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
    let row = sqlx::query(concat!(notebook_select!(), " WHERE n.id = ?"))
        .bind(id.to_string())
        .fetch_one(&mut *tx)
        .await
        .map_err(map_err)?;
    let notebook = notebook_from_row(&row)?;
    let record =
        ChangeRecord::new(id, "moved", "update").with("parent_id", new_parent.map(|parent| parent.to_string()));
    record_change(&mut *tx, change, record).await?;
    Ok(notebook)
}

/// The depth of a live notebook (a root is 1), or `None` when it is missing or deleted.
async fn live_depth(tx: &mut sqlx::SqliteConnection, id: NotebookId) -> StoreResult<Option<u32>> {
    let status: Option<String> = sqlx::query_scalar("SELECT status FROM notebooks WHERE id = ?")
        .bind(id.to_string())
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
    if status.as_deref().is_none_or(|status| status == "deleted") {
        return Ok(None);
    }
    let depth: i64 = sqlx::query_scalar(
        "WITH RECURSIVE chain(id) AS (SELECT ?1 UNION ALL \
         SELECT p.parent_id FROM parent_of p JOIN chain c ON p.child_id = c.id) SELECT COUNT(*) FROM chain",
    )
    .bind(id.to_string())
    .fetch_one(&mut *tx)
    .await
    .map_err(map_err)?;
    u32::try_from(depth).map(Some).map_err(|_| corrupt("depth"))
}

fn collaboration_from_row(row: &SqliteRow) -> StoreResult<Collaboration> {
    let text = |name: &str| row.try_get::<String, _>(name).map_err(map_err);
    Ok(Collaboration {
        notebook_id: NotebookId::parse(&text("notebook_id")?).map_err(|_| corrupt("notebook id"))?,
        user_id: UserId::parse(&text("user_id")?).map_err(|_| corrupt("user id"))?,
        permission: Permission::parse(&text("permission")?).map_err(|_| corrupt("permission"))?,
        status: CollaborationStatus::parse(&text("status")?).map_err(|_| corrupt("collaboration status"))?,
        granted_by: UserId::parse(&text("granted_by")?).map_err(|_| corrupt("grantor id"))?,
        granted_at: ts(&text("granted_at")?)?,
        accepted_at: opt_ts(row.try_get("accepted_at").map_err(map_err)?)?,
        updated_at: ts(&text("updated_at")?)?,
    })
}

#[async_trait]
impl CollaborationStore for SqliteStore {
    async fn put_collaboration(&self, c: Collaboration, change: &Change) -> StoreResult<Collaboration> {
        let (_writer, mut tx) = self.begin_write().await?;
        if live_depth(&mut tx, c.notebook_id).await?.is_none() {
            return Err(StoreError::NotFound);
        }
        let user_exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM users WHERE id = ? AND status != 'deleted'")
            .bind(c.user_id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
        if user_exists.is_none() {
            return Err(StoreError::NotFound);
        }
        let row = sqlx::query(
            "INSERT INTO collaborates_on (user_id, notebook_id, permission, status, granted_by, granted_at, \
             accepted_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, CASE WHEN ?4 = 'active' THEN ?6 END, ?6) \
             ON CONFLICT (user_id, notebook_id) DO UPDATE SET permission = excluded.permission, \
             status = excluded.status, granted_by = excluded.granted_by, updated_at = excluded.updated_at, \
             accepted_at = CASE WHEN excluded.status = 'active' AND collaborates_on.status != 'active' \
             THEN excluded.updated_at ELSE collaborates_on.accepted_at END RETURNING *",
        )
        .bind(c.user_id.to_string())
        .bind(c.notebook_id.to_string())
        .bind(c.permission.as_str())
        .bind(c.status.as_str())
        .bind(c.granted_by.to_string())
        .bind(time::to_storage(&c.updated_at))
        .fetch_one(&mut *tx)
        .await
        .map_err(map_err)?;
        let stored = collaboration_from_row(&row)?;
        record_change(&mut tx, change, ChangeRecord::for_collaboration(&stored, false)).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(stored)
    }

    async fn set_collaboration_status(
        &self,
        notebook: NotebookId,
        user: UserId,
        status: CollaborationStatus,
        change: &Change,
    ) -> StoreResult<Collaboration> {
        let (_writer, mut tx) = self.begin_write().await?;
        let row = sqlx::query(
            "UPDATE collaborates_on SET status = ?1, updated_at = ?2, \
             accepted_at = CASE WHEN ?1 = 'active' THEN ?2 ELSE accepted_at END \
             WHERE notebook_id = ?3 AND user_id = ?4 RETURNING *",
        )
        .bind(status.as_str())
        .bind(time::to_storage(&change.at))
        .bind(notebook.to_string())
        .bind(user.to_string())
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        let stored = row.as_ref().map(collaboration_from_row).transpose()?.ok_or(StoreError::NotFound)?;
        record_change(&mut tx, change, ChangeRecord::for_collaboration(&stored, true)).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(stored)
    }

    async fn revoke_collaboration(&self, notebook: NotebookId, user: UserId, change: &Change) -> StoreResult<()> {
        let (_writer, mut tx) = self.begin_write().await?;
        let row = sqlx::query(
            "UPDATE collaborates_on SET status = 'revoked', updated_at = ? \
             WHERE notebook_id = ? AND user_id = ? AND status IN ('pending', 'active') RETURNING *",
        )
        .bind(time::to_storage(&change.at))
        .bind(notebook.to_string())
        .bind(user.to_string())
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        let revoked = row.as_ref().map(collaboration_from_row).transpose()?.ok_or(StoreError::NotFound)?;
        record_change(&mut tx, change, ChangeRecord::for_collaboration(&revoked, false)).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(())
    }

    async fn list_collaborations(&self, notebook: NotebookId) -> StoreResult<Vec<Collaboration>> {
        let rows = sqlx::query("SELECT * FROM collaborates_on WHERE notebook_id = ? ORDER BY granted_at, user_id")
            .bind(notebook.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter().map(collaboration_from_row).collect()
    }

    async fn list_user_collaborations(
        &self,
        user: UserId,
        status: CollaborationStatus,
    ) -> StoreResult<Vec<Collaboration>> {
        let rows = sqlx::query(
            "SELECT co.* FROM collaborates_on co JOIN notebooks n ON n.id = co.notebook_id \
             WHERE co.user_id = ? AND co.status = ? AND n.status != 'deleted' ORDER BY co.granted_at DESC",
        )
        .bind(user.to_string())
        .bind(status.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(collaboration_from_row).collect()
    }
}

/// Brings a notebook's `TAGGED_WITH` rows in step with its `tags` list.
async fn sync_tags(tx: &mut sqlx::SqliteConnection, id: NotebookId, change: &Change) -> StoreResult<()> {
    let at = time::to_storage(&change.at);
    sqlx::query(
        "DELETE FROM tagged_with WHERE notebook_id = ?1 AND tag_name NOT IN \
         (SELECT value FROM json_each((SELECT tags FROM notebooks WHERE id = ?1)))",
    )
    .bind(id.to_string())
    .execute(&mut *tx)
    .await
    .map_err(map_err)?;
    sqlx::query(
        "INSERT OR IGNORE INTO tags (name, created_at) \
         SELECT value, ?2 FROM json_each((SELECT tags FROM notebooks WHERE id = ?1))",
    )
    .bind(id.to_string())
    .bind(&at)
    .execute(&mut *tx)
    .await
    .map_err(map_err)?;
    sqlx::query(
        "INSERT OR IGNORE INTO tagged_with (notebook_id, tag_name, tagged_at, tagged_by) \
         SELECT ?1, value, ?2, ?3 FROM json_each((SELECT tags FROM notebooks WHERE id = ?1))",
    )
    .bind(id.to_string())
    .bind(&at)
    .bind(change.actor.map(|actor| actor.to_string()))
    .execute(&mut *tx)
    .await
    .map_err(map_err)?;
    Ok(())
}

/// Writes the activity event and the audit entry of a change, in its transaction.
async fn record_change(tx: &mut sqlx::SqliteConnection, change: &Change, record: ChangeRecord) -> StoreResult<()> {
    let at = time::to_storage(&change.at);
    let actor = change.actor.map(|actor| actor.to_string());
    let details = serde_json::Value::Object(record.details).to_string();
    sqlx::query(
        "INSERT INTO activity_events (id, event_type, details, created_at, actor_id, notebook_id) \
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(record.event_type)
    .bind(&details)
    .bind(&at)
    .bind(&actor)
    .bind(record.notebook_id.to_string())
    .execute(&mut *tx)
    .await
    .map_err(map_err)?;
    sqlx::query(
        "INSERT INTO audit_log (id, action, resource_type, resource_id, details, ip_address, user_agent, \
         created_at, performed_by) VALUES (?, ?, 'notebook', ?, ?, ?, ?, ?, ?)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(record.action)
    .bind(record.notebook_id.to_string())
    .bind(&details)
    .bind(&change.ip_address)
    .bind(&change.user_agent)
    .bind(&at)
    .bind(&actor)
    .execute(&mut *tx)
    .await
    .map_err(map_err)?;
    let activity = change
        .actor
        .map(|actor| user_activity_event(actor, record.event_type, "notebook", &record.notebook_id.to_string()));
    for event in record.event.into_iter().chain(activity) {
        sqlx::query("INSERT INTO outbox (id, topic, key, payload, created_at) VALUES (?, ?, ?, ?, ?)")
            .bind(uuid::Uuid::now_v7().to_string())
            .bind(event.topic)
            .bind(event.key)
            .bind(event.payload.to_string())
            .bind(&at)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
    }
    Ok(())
}

fn details_from(text: &str) -> StoreResult<serde_json::Map<String, serde_json::Value>> {
    serde_json::from_str(text).map_err(|_| corrupt("details"))
}

fn opt_user(text: Option<String>) -> StoreResult<Option<UserId>> {
    text.as_deref().map(UserId::parse).transpose().map_err(|_| corrupt("user id"))
}

fn row_uuid(row: &SqliteRow) -> StoreResult<uuid::Uuid> {
    let id: String = row.try_get("id").map_err(map_err)?;
    uuid::Uuid::try_parse(&id).map_err(|_| corrupt("id"))
}

#[async_trait]
impl OutboxStore for SqliteStore {
    async fn pending_events(&self, limit: u32) -> StoreResult<Vec<OutboxEvent>> {
        let rows = sqlx::query("SELECT * FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT ?")
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter()
            .map(|row| {
                let text = |name: &str| row.try_get::<String, _>(name).map_err(map_err);
                Ok(OutboxEvent {
                    id: row_uuid(row)?,
                    topic: text("topic")?,
                    key: text("key")?,
                    payload: serde_json::from_str(&text("payload")?).map_err(|_| corrupt("payload"))?,
                    created_at: ts(&text("created_at")?)?,
                })
            })
            .collect()
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

#[async_trait]
impl ActivityStore for SqliteStore {
    async fn record_audit(&self, record: NewAuditRecord) -> StoreResult<()> {
        self.record_audit_impl(record).await
    }

    async fn list_activity(&self, notebook: NotebookId, page: PageRequest) -> StoreResult<Page<ActivityEvent>> {
        let rows = sqlx::query(
            "SELECT * FROM activity_events WHERE notebook_id = ?1 AND (?2 IS NULL OR id < ?2) ORDER BY id DESC LIMIT ?3",
        )
        .bind(notebook.to_string())
        .bind(page.after.map(|id| id.hyphenated().to_string()))
        .bind(i64::from(page.limit.get()) + 1)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        let events = rows
            .iter()
            .map(|row| {
                let text = |name: &str| row.try_get::<String, _>(name).map_err(map_err);
                Ok(ActivityEvent {
                    id: row_uuid(row)?,
                    event_type: text("event_type")?,
                    actor_id: opt_user(row.try_get("actor_id").map_err(map_err)?)?,
                    notebook_id: NotebookId::parse(&text("notebook_id")?).map_err(|_| corrupt("notebook id"))?,
                    details: details_from(&text("details")?)?,
                    created_at: ts(&text("created_at")?)?,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(Page::from_overfetch(events, page.limit, |event| event.id))
    }

    async fn list_audit(&self, resource_id: Option<String>, page: PageRequest) -> StoreResult<Page<AuditEntry>> {
        let rows = sqlx::query(
            "SELECT * FROM audit_log WHERE (?1 IS NULL OR resource_id = ?1) AND (?2 IS NULL OR id < ?2) \
             ORDER BY id DESC LIMIT ?3",
        )
        .bind(resource_id)
        .bind(page.after.map(|id| id.hyphenated().to_string()))
        .bind(i64::from(page.limit.get()) + 1)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        let entries = rows
            .iter()
            .map(|row| {
                let text = |name: &str| row.try_get::<String, _>(name).map_err(map_err);
                Ok(AuditEntry {
                    id: row_uuid(row)?,
                    action: text("action")?,
                    resource_type: text("resource_type")?,
                    resource_id: text("resource_id")?,
                    performed_by: opt_user(row.try_get("performed_by").map_err(map_err)?)?,
                    details: details_from(&text("details")?)?,
                    ip_address: row.try_get("ip_address").map_err(map_err)?,
                    user_agent: row.try_get("user_agent").map_err(map_err)?,
                    created_at: ts(&text("created_at")?)?,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(Page::from_overfetch(entries, page.limit, |entry| entry.id))
    }
}

/// Applies a patch in memory; shared by the read-modify-write of `update_notebook`.
fn apply_patch(notebook: &mut Notebook, patch: NotebookPatch, at: Timestamp) {
    if let Some(name) = patch.name {
        notebook.name = name;
    }
    if let Some(description) = patch.description {
        notebook.description = description;
    }
    if let Some(visibility) = patch.visibility {
        notebook.visibility = visibility;
    }
    if let Some(status) = patch.status {
        notebook.status = status;
    }
    if let Some(tags) = patch.tags {
        notebook.tags = tags;
    }
    if let Some(settings) = patch.compliance_settings {
        notebook.compliance_settings = settings;
    }
    if let Some(is_template) = patch.is_template {
        notebook.is_template = is_template;
    }
    notebook.updated_at = at;
    notebook.version += 1;
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn insert_refresh_token(&self, token: NewRefreshToken) -> StoreResult<()> {
        let _writer = self.writer.lock().await;
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, user_id, family_id, issued_at, expires_at) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&token.token_hash)
        .bind(token.user_id.to_string())
        .bind(token.family_id.to_string())
        .bind(time::to_storage(&token.issued_at))
        .bind(time::to_storage(&token.expires_at))
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn rotate_refresh_token(
        &self,
        presented_hash: &str,
        replacement_hash: &str,
        replacement_expires_at: Timestamp,
        now: Timestamp,
    ) -> StoreResult<RefreshOutcome> {
        let (_writer, mut tx) = self.begin_write().await?;
        let row = sqlx::query(
            "SELECT t.user_id, t.family_id, t.expires_at, t.spent_at, t.revoked_at, u.status \
             FROM refresh_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = ?",
        )
        .bind(presented_hash)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        let Some(row) = row else { return Ok(RefreshOutcome::Invalid) };
        let user_id: String = row.try_get("user_id").map_err(map_err)?;
        let family_id: String = row.try_get("family_id").map_err(map_err)?;
        let user_id = UserId::parse(&user_id).map_err(|_| corrupt("user id"))?;
        let family_id = TokenFamilyId::parse(&family_id).map_err(|_| corrupt("family id"))?;
        let expires_at = ts(&row.try_get::<String, _>("expires_at").map_err(map_err)?)?;
        let spent_at: Option<String> = row.try_get("spent_at").map_err(map_err)?;
        let revoked_at: Option<String> = row.try_get("revoked_at").map_err(map_err)?;
        let user_status: String = row.try_get("status").map_err(map_err)?;
        let now_text = time::to_storage(&now);

        if revoked_at.is_some() || expires_at <= now || user_status != UserStatus::Active.as_str() {
            return Ok(RefreshOutcome::Invalid);
        }
        if spent_at.is_some() {
            sqlx::query("UPDATE refresh_tokens SET revoked_at = ? WHERE family_id = ? AND revoked_at IS NULL")
                .bind(&now_text)
                .bind(family_id.to_string())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            tx.commit().await.map_err(map_err)?;
            return Ok(RefreshOutcome::Reused { user_id, family_id });
        }
        sqlx::query("UPDATE refresh_tokens SET spent_at = ? WHERE token_hash = ?")
            .bind(&now_text)
            .bind(presented_hash)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, user_id, family_id, issued_at, expires_at) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(replacement_hash)
        .bind(user_id.to_string())
        .bind(family_id.to_string())
        .bind(&now_text)
        .bind(time::to_storage(&replacement_expires_at))
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(RefreshOutcome::Rotated { user_id, family_id })
    }

    async fn revoke_token_family(&self, family_id: TokenFamilyId, at: Timestamp) -> StoreResult<()> {
        let _writer = self.writer.lock().await;
        sqlx::query("UPDATE refresh_tokens SET revoked_at = ? WHERE family_id = ? AND revoked_at IS NULL")
            .bind(time::to_storage(&at))
            .bind(family_id.to_string())
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn purge_expired_refresh_tokens(&self, now: Timestamp) -> StoreResult<u64> {
        let _writer = self.writer.lock().await;
        let done = sqlx::query("DELETE FROM refresh_tokens WHERE expires_at < ?")
            .bind(time::to_storage(&now))
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected())
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend_name(&self) -> &'static str {
        "sqlite"
    }

    async fn migrate(&self) -> StoreResult<Vec<String>> {
        let before: Vec<i64> = applied_versions(&self.pool).await;
        MIGRATOR.run(&self.pool).await.map_err(|error| StoreError::Internal(error.to_string()))?;
        let applied = MIGRATOR
            .iter()
            .filter(|migration| !before.contains(&migration.version))
            .map(|migration| format!("{:04}_{}", migration.version, migration.description))
            .collect::<Vec<_>>();
        for name in &applied {
            tracing::info!(migration = %name, "applied sqlite migration");
        }
        Ok(applied)
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(map_err)?;
        Ok(())
    }
}

async fn applied_versions(pool: &SqlitePool) -> Vec<i64> {
    // The table does not exist before the first migration; that simply means none.
    sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success = 1")
        .fetch_all(pool)
        .await
        .unwrap_or_default()
}
