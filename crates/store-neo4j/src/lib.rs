//! The production graph store: Aether's model in Neo4j 5, over Bolt.
//!
//! Labels, relationship types and property names follow the design's schema:
//! `(:User)-[:OWNS]->(:Notebook)`, `(:RefreshToken)-[:ISSUED_TO]->(:User)`. Neo4j
//! properties cannot hold maps, so map-valued properties (`compliance_settings`) are
//! stored as JSON strings. Timestamps are Neo4j `datetime` values, read back through
//! `toString`. Use cases that read and then write take the node's write lock first
//! (by setting a property), so concurrent requests serialise on the node.

mod documents;
mod identity;
mod migrations;

use std::str::FromStr;
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
use neo4rs::{ConfigBuilder, Graph, Query, Row, Txn, query};
use serde::Deserialize;

/// How to reach Neo4j.
#[derive(Debug, Clone)]
pub struct Neo4jConfig {
    pub uri: String,
    pub user: String,
    pub password: String,
    pub database: String,
    pub max_connections: usize,
}

#[derive(Clone)]
pub struct Neo4jStore {
    graph: Graph,
    uri: String,
}

impl std::fmt::Debug for Neo4jStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Neo4jStore").field("uri", &self.uri).finish_non_exhaustive()
    }
}

impl Neo4jStore {
    /// Builds the connection pool and checks that the server answers.
    pub async fn connect(config: &Neo4jConfig) -> StoreResult<Self> {
        let neo4j_config = ConfigBuilder::default()
            .uri(config.uri.as_str())
            .user(config.user.as_str())
            .password(config.password.as_str())
            .db(config.database.as_str())
            .max_connections(config.max_connections)
            .connection_timeout(Duration::from_secs(10))
            .build()
            .map_err(map_err)?;
        let graph = Graph::connect(neo4j_config).map_err(map_err)?;
        let store = Self { graph, uri: config.uri.clone() };
        store.ping().await?;
        Ok(store)
    }

    async fn rows(&self, q: Query) -> StoreResult<Vec<Row>> {
        let mut stream = self.graph.execute(q).await.map_err(map_err)?;
        let mut rows = Vec::new();
        while let Some(row) = stream.next().await.map_err(map_err)? {
            rows.push(row);
        }
        Ok(rows)
    }

    async fn optional_row(&self, q: Query) -> StoreResult<Option<Row>> {
        Ok(self.rows(q).await?.into_iter().next())
    }
}

/// Runs `body` in one transaction: committed when it returns `Ok`, rolled back when
/// it returns `Err`. An explicit rollback matters: a dropped transaction would keep
/// its locks until its pooled connection happens to be reused.
async fn in_txn<T>(graph: &Graph, body: impl AsyncFnOnce(&mut Txn) -> StoreResult<T>) -> StoreResult<T> {
    let mut txn = graph.start_txn().await.map_err(map_err)?;
    match body(&mut txn).await {
        Ok(value) => {
            txn.commit().await.map_err(map_err)?;
            Ok(value)
        }
        Err(error) => {
            if let Err(rollback) = txn.rollback().await {
                tracing::warn!(error = %rollback, "neo4j rollback failed");
            }
            Err(error)
        }
    }
}

/// [`in_txn`] for use cases that run concurrently on the same nodes (the document
/// workers): Neo4j ends one of two transactions that wait for each other's locks
/// with a transient error (`DeadlockDetected`), and, as its manual advises, such a
/// transaction is run again, a few times, after a short random pause.
async fn in_txn_retrying<T>(graph: &Graph, body: impl AsyncFn(&mut Txn) -> StoreResult<T>) -> StoreResult<T> {
    const ATTEMPTS: u32 = 5;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let error = match in_txn(graph, async |txn: &mut Txn| body(txn).await).await {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        if attempt >= ATTEMPTS || !is_transient(&error) {
            return Err(error);
        }
        tracing::debug!(%error, attempt, "retrying a transaction after a transient error");
        let pause = 10 * u64::from(attempt) + u64::from(rand_jitter());
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}

fn is_transient(error: &StoreError) -> bool {
    matches!(error, StoreError::Unavailable(code) if code.starts_with("Neo.TransientError"))
}

/// 0–31 ms, from the clock: enough to keep two retrying transactions apart.
fn rand_jitter() -> u8 {
    (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos()) % 32) as u8
}

async fn txn_rows(txn: &mut Txn, q: Query) -> StoreResult<Vec<Row>> {
    let mut stream = txn.execute(q).await.map_err(map_err)?;
    let mut rows = Vec::new();
    while let Some(row) = stream.next(txn.handle()).await.map_err(map_err)? {
        rows.push(row);
    }
    Ok(rows)
}

fn map_err(error: neo4rs::Error) -> StoreError {
    use neo4rs::{Error, Neo4jErrorKind};
    match &error {
        Error::Neo4j(neo) if neo.code() == "Neo.ClientError.Schema.ConstraintValidationFailed" => {
            // "Node(12) already exists with label `User` and property `username` = 'alice'"
            let field = neo
                .message()
                .split("property `")
                .nth(1)
                .and_then(|rest| rest.split('`').next())
                .unwrap_or("unique")
                .to_owned();
            StoreError::Conflict(field)
        }
        Error::Neo4j(neo) if matches!(neo.kind(), Neo4jErrorKind::Transient) => {
            StoreError::Unavailable(neo.code().to_owned())
        }
        Error::IOError { .. }
        | Error::ConnectionError
        | Error::ConnectionTimedOut
        | Error::ServerUnavailableError(_)
        | Error::AuthenticationError(_) => StoreError::Unavailable(error.to_string()),
        _ => StoreError::Internal(error.to_string()),
    }
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("unreadable {what}"))
}

fn ts(text: &str) -> StoreResult<Timestamp> {
    time::parse(text).ok_or_else(|| corrupt("timestamp"))
}

fn storage(at: &Timestamp) -> String {
    time::to_storage(at)
}

const USER_RETURN: &str = "RETURN u.id AS id, u.keycloak_id AS keycloak_id, u.username AS username, \
     u.email AS email, u.full_name AS full_name, u.avatar_url AS avatar_url, \
     coalesce(u.keycloak_roles, []) AS roles, coalesce(u.keycloak_groups, []) AS groups, \
     coalesce(u.keycloak_attributes, '{}') AS attributes, coalesce(u.preferences, '{}') AS preferences, \
     u.status AS status, toString(u.created_at) AS created_at, \
     toString(u.updated_at) AS updated_at, toString(u.last_login_at) AS last_login_at, \
     toString(u.last_sync_at) AS last_sync_at";

#[derive(Deserialize)]
struct UserRecord {
    id: String,
    keycloak_id: Option<String>,
    username: String,
    email: Option<String>,
    full_name: Option<String>,
    avatar_url: Option<String>,
    roles: Vec<String>,
    groups: Vec<String>,
    attributes: String,
    preferences: String,
    status: String,
    created_at: String,
    updated_at: String,
    last_login_at: Option<String>,
    last_sync_at: Option<String>,
}

fn user_from_row(row: &Row) -> StoreResult<User> {
    let record: UserRecord = row.to().map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(User {
        id: UserId::parse(&record.id).map_err(|_| corrupt("user id"))?,
        keycloak_id: record.keycloak_id,
        username: Username::parse(&record.username).map_err(|_| corrupt("username"))?,
        email: record.email.as_deref().map(Email::parse).transpose().map_err(|_| corrupt("email"))?,
        full_name: record.full_name,
        avatar_url: record.avatar_url,
        roles: record
            .roles
            .iter()
            .map(|name| Role::from_str(name))
            .collect::<Result<_, _>>()
            .map_err(|_| corrupt("role"))?,
        groups: record.groups,
        attributes: serde_json::from_str(&record.attributes).map_err(|_| corrupt("attributes"))?,
        preferences: serde_json::from_str(&record.preferences).map_err(|_| corrupt("preferences"))?,
        status: UserStatus::parse(&record.status).map_err(|_| corrupt("user status"))?,
        created_at: ts(&record.created_at)?,
        updated_at: ts(&record.updated_at)?,
        last_login_at: record.last_login_at.as_deref().map(ts).transpose()?,
        last_sync_at: record.last_sync_at.as_deref().map(ts).transpose()?,
    })
}

// `WITH` first: the projection may follow an update clause, which Cypher requires
// to be separated from the OPTIONAL MATCH.
const NOTEBOOK_RETURN: &str = "WITH n, owner OPTIONAL MATCH (parent:Notebook)-[:PARENT_OF]->(n) \
     RETURN n.id AS id, owner.id AS owner_id, parent.id AS parent_id, n.name AS name, \
     n.description AS description, n.visibility AS visibility, n.status AS status, \
     coalesce(n.tags, []) AS tags, n.compliance_settings AS compliance_settings, \
     n.document_count AS document_count, n.total_size_bytes AS total_size_bytes, \
     toString(n.created_at) AS created_at, toString(n.updated_at) AS updated_at, \
     coalesce(n.version, 1) AS version, coalesce(n.is_template, false) AS is_template";

#[derive(Deserialize)]
struct NotebookRecord {
    id: String,
    owner_id: String,
    parent_id: Option<String>,
    name: String,
    description: Option<String>,
    visibility: String,
    status: String,
    tags: Vec<String>,
    compliance_settings: Option<String>,
    document_count: i64,
    total_size_bytes: i64,
    created_at: String,
    updated_at: String,
    version: i64,
    is_template: bool,
}

fn notebook_from_row(row: &Row) -> StoreResult<Notebook> {
    let record: NotebookRecord = row.to().map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(Notebook {
        id: NotebookId::parse(&record.id).map_err(|_| corrupt("notebook id"))?,
        owner_id: UserId::parse(&record.owner_id).map_err(|_| corrupt("owner id"))?,
        parent_id: record.parent_id.as_deref().map(NotebookId::parse).transpose().map_err(|_| corrupt("parent id"))?,
        name: NotebookName::parse(&record.name).map_err(|_| corrupt("notebook name"))?,
        description: record
            .description
            .as_deref()
            .map(Description::parse)
            .transpose()
            .map_err(|_| corrupt("description"))?,
        visibility: Visibility::parse(&record.visibility).map_err(|_| corrupt("visibility"))?,
        status: NotebookStatus::parse(&record.status).map_err(|_| corrupt("notebook status"))?,
        tags: Tag::parse_list(&record.tags).map_err(|_| corrupt("tags"))?,
        compliance_settings: match record.compliance_settings {
            Some(json) => serde_json::from_str(&json).map_err(|_| corrupt("compliance settings"))?,
            None => ComplianceSettings::default(),
        },
        document_count: u64::try_from(record.document_count).map_err(|_| corrupt("document count"))?,
        total_size_bytes: u64::try_from(record.total_size_bytes).map_err(|_| corrupt("total size"))?,
        created_at: ts(&record.created_at)?,
        updated_at: ts(&record.updated_at)?,
        version: u64::try_from(record.version).map_err(|_| corrupt("version"))?,
        is_template: record.is_template,
    })
}

fn role_names(roles: &[Role]) -> Vec<String> {
    roles.iter().map(|role| role.as_str().to_owned()).collect()
}

fn tag_names(tags: &[Tag]) -> Vec<String> {
    tags.iter().map(|tag| tag.as_str().to_owned()).collect()
}

fn settings_json(settings: &ComplianceSettings) -> String {
    serde_json::to_string(settings).unwrap_or_else(|_| "{}".to_owned())
}

fn after_param(page: &PageRequest) -> Option<String> {
    page.after.map(|id| id.hyphenated().to_string())
}

fn limit_param(page: &PageRequest) -> i64 {
    i64::from(page.limit.get()) + 1
}

#[async_trait]
impl UserStore for Neo4jStore {
    async fn create_user(&self, user: NewUser) -> StoreResult<User> {
        let q = query(&format!(
            "CREATE (u:User {{id: $id, keycloak_id: $keycloak_id, username: $username, email: $email, \
             full_name: $full_name, keycloak_roles: $roles, keycloak_groups: [], status: 'active', \
             password_hash: $password_hash, created_at: datetime($at), updated_at: datetime($at)}}) {USER_RETURN}"
        ))
        .param("id", user.id.to_string())
        .param("keycloak_id", user.keycloak_id.clone())
        .param("username", user.username.as_str())
        .param("email", user.email.as_ref().map(|e| e.as_str().to_owned()))
        .param("full_name", user.full_name.clone())
        .param("roles", role_names(&user.roles))
        .param("password_hash", user.password_hash.clone())
        .param("at", storage(&user.created_at));
        let row = self.optional_row(q).await?.ok_or_else(|| StoreError::Internal("create returned nothing".into()))?;
        user_from_row(&row)
    }

    async fn get_user(&self, id: UserId) -> StoreResult<User> {
        let q = query(&format!("MATCH (u:User {{id: $id}}) WHERE u.status <> 'deleted' {USER_RETURN}"))
            .param("id", id.to_string());
        let row = self.optional_row(q).await?.ok_or(StoreError::NotFound)?;
        user_from_row(&row)
    }

    async fn find_user_by_username(&self, username: &Username) -> StoreResult<Option<User>> {
        let q = query(&format!("MATCH (u:User {{username: $username}}) WHERE u.status <> 'deleted' {USER_RETURN}"))
            .param("username", username.as_str());
        self.optional_row(q).await?.as_ref().map(user_from_row).transpose()
    }

    async fn find_local_credentials(&self, username: &Username) -> StoreResult<Option<LocalCredentials>> {
        let q = query(&format!(
            "MATCH (u:User {{username: $username}}) \
             WHERE u.status <> 'deleted' AND u.password_hash IS NOT NULL \
             {USER_RETURN}, u.password_hash AS password_hash"
        ))
        .param("username", username.as_str());
        let Some(row) = self.optional_row(q).await? else { return Ok(None) };
        let password_hash: String = row.get("password_hash").map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(Some(LocalCredentials { user: user_from_row(&row)?, password_hash }))
    }

    async fn update_user(&self, id: UserId, patch: UserPatch, at: Timestamp) -> StoreResult<User> {
        in_txn(&self.graph, async move |txn: &mut Txn| {
            // Setting updated_at first takes the node's write lock for the rest of the transaction.
            let lock = query(&format!(
                "MATCH (u:User {{id: $id}}) WHERE u.status <> 'deleted' SET u.updated_at = datetime($at) {USER_RETURN}"
            ))
            .param("id", id.to_string())
            .param("at", storage(&at));
            let row = txn_rows(txn, lock).await?.into_iter().next().ok_or(StoreError::NotFound)?;
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
            let write = query(
                "MATCH (u:User {id: $id}) SET u.email = $email, u.full_name = $full_name, \
             u.avatar_url = $avatar_url, u.keycloak_roles = $roles, u.status = $status, u.preferences = $preferences",
            )
            .param("preferences", serde_json::Value::Object(user.preferences.clone()).to_string())
            .param("id", id.to_string())
            .param("email", user.email.as_ref().map(|e| e.as_str().to_owned()))
            .param("full_name", user.full_name.clone())
            .param("avatar_url", user.avatar_url.clone())
            .param("roles", role_names(&user.roles))
            .param("status", user.status.as_str());
            txn.run(write).await.map_err(map_err)?;
            Ok(user)
        })
        .await
    }

    async fn set_password_hash(&self, id: UserId, password_hash: String, at: Timestamp) -> StoreResult<()> {
        let q = query(
            "MATCH (u:User {id: $id}) WHERE u.status <> 'deleted' \
             SET u.password_hash = $hash, u.updated_at = datetime($at) RETURN u.id AS id",
        )
        .param("id", id.to_string())
        .param("hash", password_hash)
        .param("at", storage(&at));
        self.optional_row(q).await?.map(|_| ()).ok_or(StoreError::NotFound)
    }

    async fn record_login(&self, id: UserId, at: Timestamp) -> StoreResult<()> {
        let q = query(
            "MATCH (u:User {id: $id}) WHERE u.status <> 'deleted' \
             SET u.last_login_at = datetime($at) RETURN u.id AS id",
        )
        .param("id", id.to_string())
        .param("at", storage(&at));
        self.optional_row(q).await?.map(|_| ()).ok_or(StoreError::NotFound)
    }

    async fn soft_delete_user(&self, id: UserId, at: Timestamp) -> StoreResult<()> {
        let q = query(
            "MATCH (u:User {id: $id}) WHERE u.status <> 'deleted' \
             SET u.status = 'deleted', u.updated_at = datetime($at) RETURN u.id AS id",
        )
        .param("id", id.to_string())
        .param("at", storage(&at));
        self.optional_row(q).await?.map(|_| ()).ok_or(StoreError::NotFound)
    }

    async fn list_users(&self, page: PageRequest) -> StoreResult<Page<User>> {
        let q = query(&format!(
            "MATCH (u:User) WHERE u.status <> 'deleted' AND ($after IS NULL OR u.id < $after) \
             {USER_RETURN} ORDER BY u.id DESC LIMIT $limit"
        ))
        .param("after", after_param(&page))
        .param("limit", limit_param(&page));
        let users = self.rows(q).await?.iter().map(user_from_row).collect::<StoreResult<Vec<_>>>()?;
        Ok(Page::from_overfetch(users, page.limit, |user| user.id.as_uuid()))
    }

    async fn count_users(&self) -> StoreResult<u64> {
        let row = self
            .optional_row(query("MATCH (u:User) WHERE u.status <> 'deleted' RETURN count(u) AS count"))
            .await?
            .ok_or_else(|| StoreError::Internal("count returned nothing".into()))?;
        let count: i64 = row.get("count").map_err(|e| StoreError::Corrupt(e.to_string()))?;
        u64::try_from(count).map_err(|_| corrupt("count"))
    }

    async fn sync_external_user(&self, user: ExternalUser, at: Timestamp) -> StoreResult<User> {
        self.sync_external_user_impl(user, at).await
    }

    async fn find_user_by_keycloak_id(&self, keycloak_id: &str) -> StoreResult<Option<User>> {
        let q = query(&format!("MATCH (u:User {{keycloak_id: $kid}}) WHERE u.status <> 'deleted' {USER_RETURN}"))
            .param("kid", keycloak_id);
        self.optional_row(q).await?.as_ref().map(user_from_row).transpose()
    }

    async fn search_users(&self, text: &str, limit: u32) -> StoreResult<Vec<User>> {
        self.search_users_impl(text, limit).await
    }

    async fn change_user_roles(&self, id: UserId, roles: Vec<Role>, audit: NewAuditRecord) -> StoreResult<User> {
        self.change_user_roles_impl(id, roles, audit).await
    }
}

#[async_trait]
impl NotebookStore for Neo4jStore {
    async fn create_notebook(&self, new: NewNotebook, max_depth: u32, change: &Change) -> StoreResult<Notebook> {
        in_txn(&self.graph, async move |txn: &mut Txn| {
            if let Some(parent) = new.parent_id {
                let depth = lock_chain(txn, parent).await?.len();
                if depth == 0 {
                    return Err(StoreError::NotFound);
                }
                if depth as u64 + 1 > u64::from(max_depth) {
                    return Err(StoreError::Conflict("depth".into()));
                }
            }
            // The node, its OWNS and its PARENT_OF commit together.
            let q = query(&format!(
                "MATCH (owner:User {{id: $owner_id}}) WHERE owner.status <> 'deleted' \
             OPTIONAL MATCH (parent:Notebook {{id: $parent_id}}) \
             CREATE (n:Notebook {{id: $id, name: $name, description: $description, visibility: $visibility, \
             status: 'active', compliance_settings: $settings, document_count: 0, total_size_bytes: 0, \
             tags: $tags, search_text: $search_text, created_at: datetime($at), updated_at: datetime($at), \
             version: 1, is_template: $is_template}}) \
             CREATE (owner)-[:OWNS {{created_at: datetime($at)}}]->(n) \
             FOREACH (p IN CASE WHEN parent IS NULL THEN [] ELSE [parent] END | \
               CREATE (p)-[:PARENT_OF {{created_at: datetime($at)}}]->(n)) {NOTEBOOK_RETURN}"
            ))
            .param("owner_id", new.owner_id.to_string())
            .param("parent_id", new.parent_id.map(|id| id.to_string()))
            .param("id", new.id.to_string())
            .param("name", new.name.as_str())
            .param("description", new.description.as_ref().map(|d| d.as_str().to_owned()))
            .param("visibility", new.visibility.as_str())
            .param("settings", settings_json(&new.compliance_settings))
            .param("tags", tag_names(&new.tags))
            .param("search_text", notebook::search_text(&new.name, new.description.as_ref(), &new.tags))
            .param("is_template", new.is_template)
            .param("at", storage(&new.created_at));
            let row = txn_rows(txn, q).await?.into_iter().next().ok_or(StoreError::NotFound)?;
            let notebook = notebook_from_row(&row)?;
            let mut record = ChangeRecord::new(notebook.id, "created", "create").with("name", notebook.name.as_str());
            if let Some(parent) = notebook.parent_id {
                record = record.with("parent_id", parent.to_string());
            }
            sync_tags(txn, vec![notebook.id.to_string()], change).await?;
            record_change(txn, change, record).await?;
            Ok(notebook)
        })
        .await
    }

    async fn get_notebook(&self, id: NotebookId) -> StoreResult<Notebook> {
        let q = query(&format!(
            "MATCH (owner:User)-[:OWNS]->(n:Notebook {{id: $id}}) WHERE n.status <> 'deleted' {NOTEBOOK_RETURN}"
        ))
        .param("id", id.to_string());
        let row = self.optional_row(q).await?.ok_or(StoreError::NotFound)?;
        notebook_from_row(&row)
    }

    async fn list_notebooks(&self, request: NotebookQuery) -> StoreResult<Page<Notebook>> {
        let (user, scope) = match request.scope {
            ListScope::Owned(user) => (Some(user), "MATCH (owner:User {id: $user})-[:OWNS]->(n:Notebook)"),
            ListScope::SharedWith(user) => (
                Some(user),
                "MATCH (:User {id: $user})-[:COLLABORATES_ON {status: 'active'}]->(:Notebook)-[:PARENT_OF*0..]->(n:Notebook) \
                 WITH DISTINCT n MATCH (owner:User)-[:OWNS]->(n) WHERE owner.id <> $user",
            ),
            ListScope::Public => (None, "MATCH (owner:User)-[:OWNS]->(n:Notebook {visibility: 'public'})"),
        };
        // The direction is chosen here, never from client text, so formatting it in is safe.
        let (compare, direction) = match request.order {
            SortOrder::NewestFirst => ("<", "DESC"),
            SortOrder::OldestFirst => (">", "ASC"),
        };
        let q = query(&format!(
            "{scope} WITH n, owner WHERE n.status <> 'deleted' AND ($status IS NULL OR n.status = $status) \
             AND ($visibility IS NULL OR n.visibility = $visibility) AND ($tag IS NULL OR $tag IN n.tags) \
             AND ($template IS NULL OR coalesce(n.is_template, false) = $template) \
             AND ($after IS NULL OR n.id {compare} $after) {NOTEBOOK_RETURN} ORDER BY n.id {direction} LIMIT $limit"
        ))
        .param("user", user.map(|user| user.to_string()))
        .param("status", request.status.map(|status| status.as_str()))
        .param("visibility", request.visibility.map(|visibility| visibility.as_str()))
        .param("tag", request.tag.as_ref().map(|tag| tag.as_str().to_owned()))
        .param("template", request.template)
        .param("after", after_param(&request.page))
        .param("limit", limit_param(&request.page));
        let notebooks = self.rows(q).await?.iter().map(notebook_from_row).collect::<StoreResult<Vec<_>>>()?;
        Ok(Page::from_overfetch(notebooks, request.page.limit, |notebook| notebook.id.as_uuid()))
    }

    async fn update_notebook(
        &self,
        id: NotebookId,
        patch: NotebookPatch,
        expected_version: Option<u64>,
        change: &Change,
    ) -> StoreResult<Notebook> {
        in_txn(&self.graph, async move |txn: &mut Txn| {
            update_in(txn, id, |_| Ok(patch), expected_version, change).await
        })
        .await
    }

    async fn bulk_update(
        &self,
        ids: &[NotebookId],
        action: &BulkAction,
        max_depth: u32,
        change: &Change,
    ) -> StoreResult<Vec<Notebook>> {
        // One transaction for the whole batch: the first failure rolls back all.
        in_txn(&self.graph, async move |txn: &mut Txn| {
            let mut updated = Vec::with_capacity(ids.len());
            for &id in ids {
                match action {
                    BulkAction::Move { parent } => {
                        updated.push(move_in(txn, id, *parent, None, max_depth, change).await?);
                    }
                    BulkAction::Delete { cascade } => soft_delete_in(txn, id, *cascade, change).await?,
                    other => updated.push(update_in(txn, id, |current| other.patch_for(current), None, change).await?),
                }
            }
            Ok(updated)
        })
        .await
    }

    async fn soft_delete_notebook(&self, id: NotebookId, cascade: bool, change: &Change) -> StoreResult<()> {
        in_txn(&self.graph, async move |txn: &mut Txn| soft_delete_in(txn, id, cascade, change).await).await
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
        in_txn(&self.graph, async move |txn: &mut Txn| {
            let parent_depth = match new_parent {
                Some(parent) => {
                    let chain = lock_chain(txn, parent).await?;
                    if chain.is_empty() {
                        return Err(StoreError::NotFound);
                    }
                    chain.len() as u64
                }
                None => 0,
            };
            // The live subtree with each node's parent, parents before children.
            let subtree = query(
                "MATCH (s:Notebook {id: $id}) WHERE s.status <> 'deleted' \
                 MATCH path = (s)-[:PARENT_OF*0..]->(d:Notebook) \
                 WHERE all(x IN nodes(path) WHERE x.status <> 'deleted') \
                 OPTIONAL MATCH (p:Notebook)-[:PARENT_OF]->(d) \
                 RETURN d.id AS id, CASE WHEN d = s THEN null ELSE p.id END AS parent, length(path) AS level \
                 ORDER BY level",
            )
            .param("id", source.to_string());
            let rows = txn_rows(txn, subtree).await?;
            if rows.is_empty() {
                return Err(StoreError::NotFound);
            }
            let height = rows.iter().filter_map(|row| row.get::<i64>("level").ok()).max().unwrap_or(0) + 1;
            if parent_depth + u64::try_from(height).unwrap_or(u64::MAX) > u64::from(max_depth) {
                return Err(StoreError::Conflict("depth".into()));
            }
            let mut copies: std::collections::HashMap<String, String> = std::collections::HashMap::new();
            let mut nodes = Vec::with_capacity(rows.len());
            let mut edges = Vec::new();
            for row in &rows {
                let old: String = row.get("id").map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let old_parent: Option<String> = row.get("parent").map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let copy = NotebookId::new().to_string();
                let parent = match old_parent {
                    None => new_parent.map(|parent| parent.to_string()),
                    Some(old_parent) => copies.get(&old_parent).cloned(),
                };
                if let Some(parent) = parent {
                    edges.push(std::collections::HashMap::from([
                        ("parent".to_owned(), parent),
                        ("child".to_owned(), copy.clone()),
                    ]));
                }
                nodes.push(std::collections::HashMap::from([
                    ("old".to_owned(), old.clone()),
                    ("new".to_owned(), copy.clone()),
                ]));
                copies.insert(old, copy);
            }
            let create = query(
                "MATCH (owner:User {id: $owner}) UNWIND $nodes AS item MATCH (src:Notebook {id: item.old}) \
                 CREATE (c:Notebook) SET c = src {.*, id: item.new, created_at: datetime($at), \
                 updated_at: datetime($at), version: 1, document_count: 0, total_size_bytes: 0, is_template: false} \
                 CREATE (owner)-[:OWNS {created_at: datetime($at)}]->(c)",
            )
            .param("owner", owner.to_string())
            .param("nodes", nodes)
            .param("at", storage(&change.at));
            txn.run(create).await.map_err(map_err)?;
            let link = query(
                "UNWIND $edges AS edge MATCH (p:Notebook {id: edge.parent}), (c:Notebook {id: edge.child}) \
                 CREATE (p)-[:PARENT_OF {created_at: datetime($at)}]->(c)",
            )
            .param("edges", edges)
            .param("at", storage(&change.at));
            txn.run(link).await.map_err(map_err)?;
            let root = copies.get(&source.to_string()).cloned().ok_or(StoreError::NotFound)?;
            let read = query(&format!("MATCH (owner:User)-[:OWNS]->(n:Notebook {{id: $id}}) {NOTEBOOK_RETURN}"))
                .param("id", root.as_str());
            let row = txn_rows(txn, read).await?.into_iter().next().ok_or(StoreError::NotFound)?;
            let mut copy = notebook_from_row(&row)?;
            copy.name = name;
            let rename = query("MATCH (n:Notebook {id: $id}) SET n.name = $name, n.search_text = $search")
                .param("id", root.as_str())
                .param("name", copy.name.as_str())
                .param("search", notebook::search_text(&copy.name, copy.description.as_ref(), &copy.tags));
            txn.run(rename).await.map_err(map_err)?;
            let record = ChangeRecord::new(copy.id, "created", "create")
                .with("name", copy.name.as_str())
                .with("duplicated_from", source.to_string())
                .with("notebooks_copied", rows.len());
            sync_tags(txn, copies.values().cloned().collect(), change).await?;
            record_change(txn, change, record).await?;
            Ok(copy)
        })
        .await
    }

    async fn tag_usage(&self, owner: Option<UserId>, limit: u32) -> StoreResult<Vec<(Tag, u64)>> {
        let q = query(
            "MATCH (o:User)-[:OWNS]->(n:Notebook)-[:TAGGED_WITH]->(t:Tag) WHERE n.status <> 'deleted' \
             AND (($owner IS NOT NULL AND o.id = $owner) OR ($owner IS NULL AND n.visibility = 'public')) \
             RETURN t.name AS name, count(n) AS usage ORDER BY usage DESC, name LIMIT $limit",
        )
        .param("owner", owner.map(|owner| owner.to_string()))
        .param("limit", i64::from(limit));
        self.rows(q)
            .await?
            .iter()
            .map(|row| {
                let name: String = row.get("name").map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let usage: i64 = row.get("usage").map_err(|e| StoreError::Corrupt(e.to_string()))?;
                Ok((
                    Tag::parse(&name).map_err(|_| corrupt("tag"))?,
                    u64::try_from(usage).map_err(|_| corrupt("usage"))?,
                ))
            })
            .collect()
    }

    async fn get_deleted_notebook(&self, id: NotebookId) -> StoreResult<Notebook> {
        let q = query(&format!(
            "MATCH (owner:User)-[:OWNS]->(n:Notebook {{id: $id}}) WHERE n.status = 'deleted' {NOTEBOOK_RETURN}"
        ))
        .param("id", id.to_string());
        let row = self.optional_row(q).await?.ok_or(StoreError::NotFound)?;
        notebook_from_row(&row)
    }

    async fn restore_notebook(&self, id: NotebookId, change: &Change) -> StoreResult<Notebook> {
        let at = change.at;
        in_txn(&self.graph, async move |txn: &mut Txn| {
            // Lock the notebook, then read its state and its parent's after the lock.
            let lock = query(
                "MATCH (n:Notebook {id: $id}) SET n.updated_at = n.updated_at WITH n WHERE n.status = 'deleted' \
                 OPTIONAL MATCH (p:Notebook)-[:PARENT_OF]->(n) \
                 RETURN p IS NOT NULL AND p.status = 'deleted' AS parent_deleted",
            )
            .param("id", id.to_string());
            let row = txn_rows(txn, lock).await?.into_iter().next().ok_or(StoreError::NotFound)?;
            let parent_deleted: bool = row.get("parent_deleted").map_err(|e| StoreError::Corrupt(e.to_string()))?;
            if parent_deleted {
                return Err(StoreError::Conflict("parent".into()));
            }
            let restore = query(&format!(
                "MATCH (owner:User)-[:OWNS]->(n:Notebook {{id: $id}}) SET n.status = 'active', \
                 n.updated_at = datetime($at), n.version = coalesce(n.version, 1) + 1 {NOTEBOOK_RETURN}"
            ))
            .param("id", id.to_string())
            .param("at", storage(&at));
            let row = txn_rows(txn, restore).await?.into_iter().next().ok_or(StoreError::NotFound)?;
            record_change(txn, change, ChangeRecord::new(id, "restored", "restore")).await?;
            notebook_from_row(&row)
        })
        .await
    }

    async fn access_chain(&self, user: UserId, id: NotebookId) -> StoreResult<Vec<ChainLink>> {
        let q = query(
            "MATCH (n:Notebook {id: $id}) WHERE n.status <> 'deleted' \
             MATCH path = (a:Notebook)-[:PARENT_OF*0..]->(n) \
             MATCH (owner:User)-[:OWNS]->(a) \
             OPTIONAL MATCH (:User {id: $user})-[c:COLLABORATES_ON {status: 'active'}]->(a) \
             RETURN a.id AS notebook_id, owner.id AS owner_id, a.visibility AS visibility, \
             c.permission AS permission, length(path) AS depth ORDER BY depth",
        )
        .param("id", id.to_string())
        .param("user", user.to_string());
        let rows = self.rows(q).await?;
        if rows.is_empty() {
            return Err(StoreError::NotFound);
        }
        rows.iter().map(chain_link_from_row).collect()
    }

    async fn list_children(
        &self,
        parent: NotebookId,
        only_public: bool,
        page: PageRequest,
    ) -> StoreResult<Page<Notebook>> {
        let q = query(&format!(
            "MATCH (:Notebook {{id: $parent}})-[:PARENT_OF]->(n:Notebook)<-[:OWNS]-(owner:User) \
             WHERE n.status <> 'deleted' AND (NOT $only_public OR n.visibility = 'public') \
             AND ($after IS NULL OR n.id < $after) {NOTEBOOK_RETURN} ORDER BY n.id DESC LIMIT $limit"
        ))
        .param("parent", parent.to_string())
        .param("only_public", only_public)
        .param("after", after_param(&page))
        .param("limit", limit_param(&page));
        let notebooks = self.rows(q).await?.iter().map(notebook_from_row).collect::<StoreResult<Vec<_>>>()?;
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
        in_txn(&self.graph, async move |txn: &mut Txn| {
            move_in(txn, id, new_parent, expected_version, max_depth, change).await
        })
        .await
    }
}

/// Brings the notebooks' `TAGGED_WITH` relationships in step with their `tags`
/// lists, creating `(:Tag)` nodes as needed.
async fn sync_tags(txn: &mut Txn, ids: Vec<String>, change: &Change) -> StoreResult<()> {
    let detach = query(
        "UNWIND $ids AS id MATCH (n:Notebook {id: id})-[r:TAGGED_WITH]->(t:Tag) \
         WHERE NOT t.name IN coalesce(n.tags, []) DELETE r",
    )
    .param("ids", ids.clone());
    txn.run(detach).await.map_err(map_err)?;
    let attach = query(
        "UNWIND $ids AS id MATCH (n:Notebook {id: id}) UNWIND coalesce(n.tags, []) AS name \
         MERGE (t:Tag {name: name}) ON CREATE SET t.created_at = datetime($at) \
         MERGE (n)-[r:TAGGED_WITH]->(t) ON CREATE SET r.tagged_at = datetime($at), r.tagged_by = $actor",
    )
    .param("ids", ids)
    .param("at", storage(&change.at))
    .param("actor", change.actor.map(|actor| actor.to_string()));
    txn.run(attach).await.map_err(map_err)?;
    Ok(())
}

/// Writes the activity event and the audit entry of a change, in its transaction:
/// `(actor)-[:TRIGGERED]->(:ActivityEvent)-[:ABOUT]->(notebook)` and
/// `(:AuditLog)-[:PERFORMED_BY]->(actor)`, `(:AuditLog)-[:ON_RESOURCE]->(notebook)`.
async fn record_change(txn: &mut Txn, change: &Change, record: ChangeRecord) -> StoreResult<()> {
    let details = serde_json::Value::Object(record.details).to_string();
    let q = query(
        "MATCH (n:Notebook {id: $notebook}) \
         CREATE (ae:ActivityEvent {id: $event_id, event_type: $event_type, details: $details, \
           visibility: 'private', created_at: datetime($at)})-[:ABOUT]->(n) \
         CREATE (al:AuditLog {id: $audit_id, action: $action, resource_type: 'notebook', resource_id: $notebook, \
           details: $details, ip_address: $ip, user_agent: $agent, created_at: datetime($at)})-[:ON_RESOURCE]->(n) \
         WITH ae, al OPTIONAL MATCH (u:User {id: $actor}) \
         FOREACH (x IN CASE WHEN u IS NULL THEN [] ELSE [u] END | \
           CREATE (x)-[:TRIGGERED {triggered_at: datetime($at)}]->(ae) CREATE (al)-[:PERFORMED_BY]->(x))",
    )
    .param("notebook", record.notebook_id.to_string())
    .param("event_id", uuid::Uuid::now_v7().to_string())
    .param("audit_id", uuid::Uuid::now_v7().to_string())
    .param("event_type", record.event_type)
    .param("action", record.action)
    .param("details", details)
    .param("ip", change.ip_address.clone())
    .param("agent", change.user_agent.clone())
    .param("actor", change.actor.map(|actor| actor.to_string()))
    .param("at", storage(&change.at));
    txn.run(q).await.map_err(map_err)?;
    let activity = change
        .actor
        .map(|actor| user_activity_event(actor, record.event_type, "notebook", &record.notebook_id.to_string()));
    for event in record.event.into_iter().chain(activity) {
        let outbox = query(
            "CREATE (:OutboxEvent {id: $id, topic: $topic, key: $key, payload: $payload, created_at: datetime($at)})",
        )
        .param("id", uuid::Uuid::now_v7().to_string())
        .param("topic", event.topic)
        .param("key", event.key)
        .param("payload", event.payload.to_string())
        .param("at", storage(&change.at));
        txn.run(outbox).await.map_err(map_err)?;
    }
    Ok(())
}

#[derive(Deserialize)]
struct ActivityRecord {
    id: String,
    event_type: String,
    actor_id: Option<String>,
    notebook_id: String,
    details: String,
    created_at: String,
}

#[derive(Deserialize)]
struct AuditRecord {
    id: String,
    action: String,
    resource_type: String,
    resource_id: String,
    performed_by: Option<String>,
    details: String,
    ip_address: Option<String>,
    user_agent: Option<String>,
    created_at: String,
}

fn parse_uuid(text: &str) -> StoreResult<uuid::Uuid> {
    uuid::Uuid::try_parse(text).map_err(|_| corrupt("id"))
}

fn parse_details(text: &str) -> StoreResult<serde_json::Map<String, serde_json::Value>> {
    serde_json::from_str(text).map_err(|_| corrupt("details"))
}

fn parse_user(text: Option<&str>) -> StoreResult<Option<UserId>> {
    text.map(UserId::parse).transpose().map_err(|_| corrupt("user id"))
}

#[derive(Deserialize)]
struct OutboxRecord {
    id: String,
    topic: String,
    key: String,
    payload: String,
    created_at: String,
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
        self.rows(q)
            .await?
            .iter()
            .map(|row| {
                let record: OutboxRecord = row.to().map_err(|e| StoreError::Corrupt(e.to_string()))?;
                Ok(OutboxEvent {
                    id: parse_uuid(&record.id)?,
                    topic: record.topic,
                    key: record.key,
                    payload: serde_json::from_str(&record.payload).map_err(|_| corrupt("payload"))?,
                    created_at: ts(&record.created_at)?,
                })
            })
            .collect()
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

#[async_trait]
impl ActivityStore for Neo4jStore {
    async fn record_audit(&self, record: NewAuditRecord) -> StoreResult<()> {
        self.graph.run(identity::audit_query(&record)).await.map_err(map_err)
    }

    async fn list_activity(&self, notebook: NotebookId, page: PageRequest) -> StoreResult<Page<ActivityEvent>> {
        let q = query(
            "MATCH (ae:ActivityEvent)-[:ABOUT]->(n:Notebook {id: $notebook}) \
             WHERE $after IS NULL OR ae.id < $after \
             OPTIONAL MATCH (u:User)-[:TRIGGERED]->(ae) \
             RETURN ae.id AS id, ae.event_type AS event_type, u.id AS actor_id, n.id AS notebook_id, \
             ae.details AS details, toString(ae.created_at) AS created_at ORDER BY ae.id DESC LIMIT $limit",
        )
        .param("notebook", notebook.to_string())
        .param("after", after_param(&page))
        .param("limit", limit_param(&page));
        let events = self
            .rows(q)
            .await?
            .iter()
            .map(|row| {
                let record: ActivityRecord = row.to().map_err(|e| StoreError::Corrupt(e.to_string()))?;
                Ok(ActivityEvent {
                    id: parse_uuid(&record.id)?,
                    event_type: record.event_type,
                    actor_id: parse_user(record.actor_id.as_deref())?,
                    notebook_id: NotebookId::parse(&record.notebook_id).map_err(|_| corrupt("notebook id"))?,
                    details: parse_details(&record.details)?,
                    created_at: ts(&record.created_at)?,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(Page::from_overfetch(events, page.limit, |event| event.id))
    }

    async fn list_audit(&self, resource_id: Option<String>, page: PageRequest) -> StoreResult<Page<AuditEntry>> {
        let q = query(
            "MATCH (al:AuditLog) WHERE ($resource IS NULL OR al.resource_id = $resource) \
             AND ($after IS NULL OR al.id < $after) \
             OPTIONAL MATCH (al)-[:PERFORMED_BY]->(u:User) \
             RETURN al.id AS id, al.action AS action, al.resource_type AS resource_type, \
             al.resource_id AS resource_id, u.id AS performed_by, al.details AS details, \
             al.ip_address AS ip_address, al.user_agent AS user_agent, toString(al.created_at) AS created_at \
             ORDER BY al.id DESC LIMIT $limit",
        )
        .param("resource", resource_id)
        .param("after", after_param(&page))
        .param("limit", limit_param(&page));
        let entries = self
            .rows(q)
            .await?
            .iter()
            .map(|row| {
                let record: AuditRecord = row.to().map_err(|e| StoreError::Corrupt(e.to_string()))?;
                Ok(AuditEntry {
                    id: parse_uuid(&record.id)?,
                    action: record.action,
                    resource_type: record.resource_type,
                    resource_id: record.resource_id,
                    performed_by: parse_user(record.performed_by.as_deref())?,
                    details: parse_details(&record.details)?,
                    ip_address: record.ip_address,
                    user_agent: record.user_agent,
                    created_at: ts(&record.created_at)?,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(Page::from_overfetch(entries, page.limit, |entry| entry.id))
    }
}

/// Reads (under the node's lock), checks and patches one live notebook inside the
/// caller's transaction. `patch_of` sees the current state, so relative changes
/// (adding tags) apply to what is stored, not to what a client last read.
async fn update_in(
    txn: &mut Txn,
    id: NotebookId,
    patch_of: impl FnOnce(&Notebook) -> StoreResult<NotebookPatch>,
    expected_version: Option<u64>,
    change: &Change,
) -> StoreResult<Notebook> {
    let at = change.at;

    let lock = query(&format!(
        "MATCH (owner:User)-[:OWNS]->(n:Notebook {{id: $id}}) WHERE n.status <> 'deleted' \
             SET n.updated_at = datetime($at) {NOTEBOOK_RETURN}"
    ))
    .param("id", id.to_string())
    .param("at", storage(&at));
    let row = txn_rows(txn, lock).await?.into_iter().next().ok_or(StoreError::NotFound)?;
    let mut notebook = notebook_from_row(&row)?;
    notebook.check_version(expected_version)?;
    let patch = patch_of(&notebook)?;
    let record = ChangeRecord::new(id, "updated", "update").with("fields", notebook::changed_fields(&patch));
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
    let write = query(
        "MATCH (n:Notebook {id: $id}) SET n.name = $name, n.description = $description, \
             n.visibility = $visibility, n.status = $status, n.tags = $tags, \
             n.compliance_settings = $settings, n.search_text = $search_text, n.is_template = $is_template, \
             n.version = coalesce(n.version, 1) + 1",
    )
    .param("id", id.to_string())
    .param("name", notebook.name.as_str())
    .param("description", notebook.description.as_ref().map(|d| d.as_str().to_owned()))
    .param("visibility", notebook.visibility.as_str())
    .param("status", notebook.status.as_str())
    .param("tags", tag_names(&notebook.tags))
    .param("settings", settings_json(&notebook.compliance_settings))
    .param("is_template", notebook.is_template)
    .param("search_text", notebook::search_text(&notebook.name, notebook.description.as_ref(), &notebook.tags));
    txn.run(write).await.map_err(map_err)?;
    sync_tags(txn, vec![id.to_string()], change).await?;
    record_change(txn, change, record).await?;
    Ok(notebook)
}

/// Soft-deletes one live notebook (with `cascade`, its subtree) inside the
/// caller's transaction.
async fn soft_delete_in(txn: &mut Txn, id: NotebookId, cascade: bool, change: &Change) -> StoreResult<()> {
    let at = change.at;

    if lock_live(txn, id, &at).await?.is_none() {
        return Err(StoreError::NotFound);
    }
    let count = query(
        "MATCH (:Notebook {id: $id})-[:PARENT_OF]->(c:Notebook) WHERE c.status <> 'deleted' RETURN count(c) AS count",
    )
    .param("id", id.to_string());
    let live_children: i64 = single_value(txn, count, "count").await?;
    if live_children > 0 && !cascade {
        return Err(StoreError::Conflict("children".into()));
    }
    let delete = query(
        "MATCH (:Notebook {id: $id})-[:PARENT_OF*0..]->(d:Notebook) WHERE d.status <> 'deleted' \
             SET d.status = 'deleted', d.updated_at = datetime($at), d.version = coalesce(d.version, 1) + 1",
    )
    .param("id", id.to_string())
    .param("at", storage(&at));
    txn.run(delete).await.map_err(map_err)?;
    record_change(txn, change, ChangeRecord::new(id, "deleted", "delete").with("cascade", cascade)).await?;
    Ok(())
}

/// Re-parents one live notebook inside the caller's transaction.
async fn move_in(
    txn: &mut Txn,
    id: NotebookId,
    new_parent: Option<NotebookId>,
    expected_version: Option<u64>,
    max_depth: u32,
    change: &Change,
) -> StoreResult<Notebook> {
    let at = change.at;

    let version = lock_live(txn, id, &at).await?.ok_or(StoreError::NotFound)?;
    if expected_version.is_some_and(|expected| expected != version) {
        return Err(StoreError::Conflict("version".into()));
    }
    // Locking the new parent's whole ancestor chain serialises concurrent moves
    // that could otherwise close a cycle between them.
    let parent_depth = match new_parent {
        None => 0,
        Some(parent) => {
            let chain = lock_chain(txn, parent).await?;
            if chain.is_empty() {
                return Err(StoreError::NotFound);
            }
            if chain.contains(&id.to_string()) {
                return Err(StoreError::Conflict("cycle".into()));
            }
            chain.len() as u64
        }
    };
    let height = query(
        "MATCH path = (:Notebook {id: $id})-[:PARENT_OF*0..]->(d:Notebook) WHERE d.status <> 'deleted' \
             RETURN max(length(path)) + 1 AS height",
    )
    .param("id", id.to_string());
    let height: i64 = single_value(txn, height, "height").await?;
    if parent_depth + u64::try_from(height).unwrap_or(u64::MAX) > u64::from(max_depth) {
        return Err(StoreError::Conflict("depth".into()));
    }
    let detach = query(
        "MATCH (n:Notebook {id: $id}) SET n.version = coalesce(n.version, 1) + 1 \
             WITH n OPTIONAL MATCH (:Notebook)-[r:PARENT_OF]->(n) DELETE r",
    )
    .param("id", id.to_string());
    txn.run(detach).await.map_err(map_err)?;
    if let Some(parent) = new_parent {
        let attach = query(
            "MATCH (p:Notebook {id: $parent}), (n:Notebook {id: $id}) \
                 CREATE (p)-[:PARENT_OF {created_at: datetime($at)}]->(n)",
        )
        .param("parent", parent.to_string())
        .param("id", id.to_string())
        .param("at", storage(&at));
        txn.run(attach).await.map_err(map_err)?;
    }
    let read = query(&format!("MATCH (owner:User)-[:OWNS]->(n:Notebook {{id: $id}}) {NOTEBOOK_RETURN}"))
        .param("id", id.to_string());
    let row = txn_rows(txn, read).await?.into_iter().next().ok_or(StoreError::NotFound)?;
    let notebook = notebook_from_row(&row)?;
    let record =
        ChangeRecord::new(id, "moved", "update").with("parent_id", new_parent.map(|parent| parent.to_string()));
    record_change(txn, change, record).await?;
    Ok(notebook)
}

/// Takes the write lock of a notebook and reports whether it is live. The status is
/// read after the lock, so it is the committed value, not a stale one.
async fn lock_live(txn: &mut Txn, id: NotebookId, at: &Timestamp) -> StoreResult<Option<u64>> {
    let q = query(
        "MATCH (n:Notebook {id: $id}) SET n.updated_at = datetime($at) \
         WITH n WHERE n.status <> 'deleted' RETURN coalesce(n.version, 1) AS version",
    )
    .param("id", id.to_string())
    .param("at", storage(at));
    match txn_rows(txn, q).await?.into_iter().next() {
        Some(row) => {
            let version: i64 = row.get("version").map_err(|e| StoreError::Corrupt(e.to_string()))?;
            Ok(Some(u64::try_from(version).map_err(|_| corrupt("version"))?))
        }
        None => Ok(None),
    }
}

/// Locks a live notebook and all its ancestors; returns their ids, or nothing when
/// the notebook is missing or deleted.
async fn lock_chain(txn: &mut Txn, id: NotebookId) -> StoreResult<Vec<String>> {
    let q = query(
        "MATCH (n:Notebook {id: $id}) SET n.updated_at = n.updated_at WITH n WHERE n.status <> 'deleted' \
         MATCH (a:Notebook)-[:PARENT_OF*0..]->(n) SET a.updated_at = a.updated_at RETURN a.id AS id",
    )
    .param("id", id.to_string());
    txn_rows(txn, q)
        .await?
        .iter()
        .map(|row| row.get::<String>("id").map_err(|e| StoreError::Corrupt(e.to_string())))
        .collect()
}

async fn single_value(txn: &mut Txn, q: Query, column: &str) -> StoreResult<i64> {
    let row = txn_rows(txn, q).await?.into_iter().next().ok_or_else(|| StoreError::Internal("no row".into()))?;
    row.get::<i64>(column).map_err(|e| StoreError::Corrupt(e.to_string()))
}

#[derive(Deserialize)]
struct ChainRecord {
    notebook_id: String,
    owner_id: String,
    visibility: String,
    permission: Option<String>,
}

fn chain_link_from_row(row: &Row) -> StoreResult<ChainLink> {
    let record: ChainRecord = row.to().map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(ChainLink {
        notebook_id: NotebookId::parse(&record.notebook_id).map_err(|_| corrupt("notebook id"))?,
        owner_id: UserId::parse(&record.owner_id).map_err(|_| corrupt("owner id"))?,
        visibility: Visibility::parse(&record.visibility).map_err(|_| corrupt("visibility"))?,
        grant: record.permission.as_deref().map(Permission::parse).transpose().map_err(|_| corrupt("permission"))?,
    })
}

const COLLABORATION_RETURN: &str = "RETURN n.id AS notebook_id, u.id AS user_id, c.permission AS permission, \
     c.status AS status, c.granted_by AS granted_by, toString(c.granted_at) AS granted_at, \
     toString(c.accepted_at) AS accepted_at, toString(c.updated_at) AS updated_at";

#[derive(Deserialize)]
struct CollaborationRecord {
    notebook_id: String,
    user_id: String,
    permission: String,
    status: String,
    granted_by: String,
    granted_at: String,
    accepted_at: Option<String>,
    updated_at: String,
}

fn collaboration_from_row(row: &Row) -> StoreResult<Collaboration> {
    let record: CollaborationRecord = row.to().map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(Collaboration {
        notebook_id: NotebookId::parse(&record.notebook_id).map_err(|_| corrupt("notebook id"))?,
        user_id: UserId::parse(&record.user_id).map_err(|_| corrupt("user id"))?,
        permission: Permission::parse(&record.permission).map_err(|_| corrupt("permission"))?,
        status: CollaborationStatus::parse(&record.status).map_err(|_| corrupt("collaboration status"))?,
        granted_by: UserId::parse(&record.granted_by).map_err(|_| corrupt("grantor id"))?,
        granted_at: ts(&record.granted_at)?,
        accepted_at: record.accepted_at.as_deref().map(ts).transpose()?,
        updated_at: ts(&record.updated_at)?,
    })
}

#[async_trait]
impl CollaborationStore for Neo4jStore {
    async fn put_collaboration(&self, c: Collaboration, change: &Change) -> StoreResult<Collaboration> {
        let q = query(&format!(
            "MATCH (n:Notebook {{id: $notebook}}) WHERE n.status <> 'deleted' \
             MATCH (u:User {{id: $user}}) WHERE u.status <> 'deleted' \
             MERGE (u)-[c:COLLABORATES_ON]->(n) ON CREATE SET c.granted_at = datetime($at) \
             SET c.accepted_at = CASE WHEN $status = 'active' AND coalesce(c.status, '') <> 'active' \
               THEN datetime($at) ELSE c.accepted_at END, \
             c.permission = $permission, c.status = $status, c.granted_by = $granted_by, \
             c.updated_at = datetime($at) {COLLABORATION_RETURN}"
        ))
        .param("notebook", c.notebook_id.to_string())
        .param("user", c.user_id.to_string())
        .param("permission", c.permission.as_str())
        .param("status", c.status.as_str())
        .param("granted_by", c.granted_by.to_string())
        .param("at", storage(&c.updated_at));
        in_txn(&self.graph, async move |txn: &mut Txn| {
            let row = txn_rows(txn, q).await?.into_iter().next().ok_or(StoreError::NotFound)?;
            let stored = collaboration_from_row(&row)?;
            record_change(txn, change, ChangeRecord::for_collaboration(&stored, false)).await?;
            Ok(stored)
        })
        .await
    }

    async fn set_collaboration_status(
        &self,
        notebook: NotebookId,
        user: UserId,
        status: CollaborationStatus,
        change: &Change,
    ) -> StoreResult<Collaboration> {
        let q = query(&format!(
            "MATCH (u:User {{id: $user}})-[c:COLLABORATES_ON]->(n:Notebook {{id: $notebook}}) \
             SET c.accepted_at = CASE WHEN $status = 'active' THEN datetime($at) ELSE c.accepted_at END, \
             c.status = $status, c.updated_at = datetime($at) {COLLABORATION_RETURN}"
        ))
        .param("notebook", notebook.to_string())
        .param("user", user.to_string())
        .param("status", status.as_str())
        .param("at", storage(&change.at));
        in_txn(&self.graph, async move |txn: &mut Txn| {
            let row = txn_rows(txn, q).await?.into_iter().next().ok_or(StoreError::NotFound)?;
            let stored = collaboration_from_row(&row)?;
            record_change(txn, change, ChangeRecord::for_collaboration(&stored, true)).await?;
            Ok(stored)
        })
        .await
    }

    async fn revoke_collaboration(&self, notebook: NotebookId, user: UserId, change: &Change) -> StoreResult<()> {
        let q = query(&format!(
            "MATCH (u:User {{id: $user}})-[c:COLLABORATES_ON]->(n:Notebook {{id: $notebook}}) \
             WHERE c.status IN ['pending', 'active'] \
             SET c.status = 'revoked', c.updated_at = datetime($at) {COLLABORATION_RETURN}"
        ))
        .param("notebook", notebook.to_string())
        .param("user", user.to_string())
        .param("at", storage(&change.at));
        in_txn(&self.graph, async move |txn: &mut Txn| {
            let row = txn_rows(txn, q).await?.into_iter().next().ok_or(StoreError::NotFound)?;
            let revoked = collaboration_from_row(&row)?;
            record_change(txn, change, ChangeRecord::for_collaboration(&revoked, false)).await?;
            Ok(())
        })
        .await
    }

    async fn list_collaborations(&self, notebook: NotebookId) -> StoreResult<Vec<Collaboration>> {
        let q = query(&format!(
            "MATCH (u:User)-[c:COLLABORATES_ON]->(n:Notebook {{id: $notebook}}) \
             {COLLABORATION_RETURN} ORDER BY c.granted_at, u.id"
        ))
        .param("notebook", notebook.to_string());
        self.rows(q).await?.iter().map(collaboration_from_row).collect()
    }

    async fn list_user_collaborations(
        &self,
        user: UserId,
        status: CollaborationStatus,
    ) -> StoreResult<Vec<Collaboration>> {
        let q = query(&format!(
            "MATCH (u:User {{id: $user}})-[c:COLLABORATES_ON {{status: $status}}]->(n:Notebook) \
             WHERE n.status <> 'deleted' {COLLABORATION_RETURN} ORDER BY c.granted_at DESC"
        ))
        .param("user", user.to_string())
        .param("status", status.as_str());
        self.rows(q).await?.iter().map(collaboration_from_row).collect()
    }
}

#[derive(Deserialize)]
struct TokenRecord {
    user_id: String,
    user_status: String,
    family_id: String,
    expires_at: String,
    spent: bool,
    revoked: bool,
}

#[async_trait]
impl SessionStore for Neo4jStore {
    async fn insert_refresh_token(&self, token: NewRefreshToken) -> StoreResult<()> {
        let q = query(
            "MATCH (u:User {id: $user_id}) \
             CREATE (t:RefreshToken {token_hash: $hash, family_id: $family_id, \
             issued_at: datetime($issued_at), expires_at: datetime($expires_at)})-[:ISSUED_TO]->(u) \
             RETURN t.token_hash AS token_hash",
        )
        .param("user_id", token.user_id.to_string())
        .param("hash", token.token_hash.as_str())
        .param("family_id", token.family_id.to_string())
        .param("issued_at", storage(&token.issued_at))
        .param("expires_at", storage(&token.expires_at));
        self.optional_row(q).await?.map(|_| ()).ok_or(StoreError::NotFound)
    }

    async fn rotate_refresh_token(
        &self,
        presented_hash: &str,
        replacement_hash: &str,
        replacement_expires_at: Timestamp,
        now: Timestamp,
    ) -> StoreResult<RefreshOutcome> {
        in_txn(&self.graph, async move |txn: &mut Txn| {
            // Writing last_presented_at takes the token's write lock, so a concurrent
            // rotation of the same token waits here and then sees it spent.
            let lock = query(
                "MATCH (t:RefreshToken {token_hash: $hash})-[:ISSUED_TO]->(u:User) \
             SET t.last_presented_at = datetime($now) \
             RETURN u.id AS user_id, u.status AS user_status, t.family_id AS family_id, \
             toString(t.expires_at) AS expires_at, t.spent_at IS NOT NULL AS spent, \
             t.revoked_at IS NOT NULL AS revoked",
            )
            .param("hash", presented_hash)
            .param("now", storage(&now));
            let Some(row) = txn_rows(txn, lock).await?.into_iter().next() else {
                return Ok(RefreshOutcome::Invalid);
            };
            let record: TokenRecord = row.to().map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let user_id = UserId::parse(&record.user_id).map_err(|_| corrupt("user id"))?;
            let family_id = TokenFamilyId::parse(&record.family_id).map_err(|_| corrupt("family id"))?;
            let expires_at = ts(&record.expires_at)?;
            if record.revoked || expires_at <= now || record.user_status != UserStatus::Active.as_str() {
                return Ok(RefreshOutcome::Invalid);
            }
            if record.spent {
                let revoke = query(
                    "MATCH (t:RefreshToken {family_id: $family_id}) WHERE t.revoked_at IS NULL \
                 SET t.revoked_at = datetime($now)",
                )
                .param("family_id", family_id.to_string())
                .param("now", storage(&now));
                txn.run(revoke).await.map_err(map_err)?;
                return Ok(RefreshOutcome::Reused { user_id, family_id });
            }
            let rotate = query(
                "MATCH (t:RefreshToken {token_hash: $hash})-[:ISSUED_TO]->(u:User) \
             SET t.spent_at = datetime($now) \
             CREATE (r:RefreshToken {token_hash: $replacement, family_id: t.family_id, \
             issued_at: datetime($now), expires_at: datetime($expires_at)})-[:ISSUED_TO]->(u)",
            )
            .param("hash", presented_hash)
            .param("replacement", replacement_hash)
            .param("now", storage(&now))
            .param("expires_at", storage(&replacement_expires_at));
            txn.run(rotate).await.map_err(map_err)?;
            Ok(RefreshOutcome::Rotated { user_id, family_id })
        })
        .await
    }

    async fn revoke_token_family(&self, family_id: TokenFamilyId, at: Timestamp) -> StoreResult<()> {
        let q = query(
            "MATCH (t:RefreshToken {family_id: $family_id}) WHERE t.revoked_at IS NULL \
             SET t.revoked_at = datetime($at)",
        )
        .param("family_id", family_id.to_string())
        .param("at", storage(&at));
        self.graph.run(q).await.map_err(map_err)?;
        Ok(())
    }

    async fn purge_expired_refresh_tokens(&self, now: Timestamp) -> StoreResult<u64> {
        let q = query(
            "MATCH (t:RefreshToken) WHERE t.expires_at < datetime($now) \
             DETACH DELETE t RETURN count(*) AS purged",
        )
        .param("now", storage(&now));
        let row = self.optional_row(q).await?;
        let purged: i64 = match row {
            Some(row) => row.get("purged").map_err(|e| StoreError::Corrupt(e.to_string()))?,
            None => 0,
        };
        u64::try_from(purged).map_err(|_| corrupt("count"))
    }
}

#[async_trait]
impl Store for Neo4jStore {
    fn backend_name(&self) -> &'static str {
        "neo4j"
    }

    async fn migrate(&self) -> StoreResult<Vec<String>> {
        let applied_rows = self.rows(query("MATCH (m:SchemaMigration) RETURN m.version AS version")).await?;
        let applied: Vec<i64> = applied_rows.iter().filter_map(|row| row.get::<i64>("version").ok()).collect();
        let mut newly_applied = Vec::new();
        for migration in migrations::MIGRATIONS {
            if applied.contains(&migration.version) {
                continue;
            }
            // Schema statements cannot share a transaction with data writes, so each runs
            // on its own; all are idempotent, which makes a crashed or concurrent run safe.
            for statement in migration.statements {
                match self.graph.run(query(statement)).await {
                    Ok(()) => {}
                    // `IF NOT EXISTS` is checked before the schema lock is taken: two
                    // replicas migrating at once can both pass the check, and the loser is
                    // told the rule already exists, which is the state it wanted.
                    Err(neo4rs::Error::Neo4j(error))
                        if error.code().starts_with("Neo.ClientError.Schema.")
                            && error.code().ends_with("AlreadyExists") => {}
                    Err(error) => return Err(map_err(error)),
                }
            }
            let record = query(
                "MERGE (m:SchemaMigration {version: $version}) \
                 ON CREATE SET m.name = $name, m.applied_at = datetime()",
            )
            .param("version", migration.version)
            .param("name", migration.name);
            self.graph.run(record).await.map_err(map_err)?;
            let name = format!("{:04}_{}", migration.version, migration.name);
            tracing::info!(migration = %name, "applied neo4j migration");
            newly_applied.push(name);
        }
        Ok(newly_applied)
    }

    async fn ping(&self) -> StoreResult<()> {
        self.rows(query("RETURN 1 AS ok")).await.map(|_| ())
    }
}
