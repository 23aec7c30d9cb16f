//! Users: local accounts, users synchronised from Keycloak (one `MERGE` on the unique
//! `keycloak_id`, so concurrent first requests create one node), search and role
//! changes.

use aether_domain::StoreError;
use aether_domain::activity::NewAuditRecord;
use aether_domain::capability::check_administrators_remain;
use aether_domain::id::UserId;
use aether_domain::identity::ExternalUser;
use aether_domain::page::{Page, PageRequest, SortOrder};
use aether_domain::store::{StoreResult, UserStore};
use aether_domain::time::Timestamp;
use aether_domain::user::{self, LocalCredentials, NewUser, Role, User, UserPatch, Username};
use async_trait::async_trait;
use neo4rs::{Txn, query};

use crate::Neo4jStore;
use crate::activity::audit_query;
use crate::rows::{USER_RETURN, column, corrupt, role_names, storage, user_from_row};
use crate::txn::{in_txn, map_err, txn_row, txn_rows};

/// Live users: the first `$limit` below `$bound`, newest first along the id's unique
/// index; [`USER_RETURN`] follows.
pub(crate) const USERS: &str = "MATCH (u:User) USING INDEX u:User(id) WHERE u.id < $bound \
     AND u.status <> 'deleted' WITH u ORDER BY u.id DESC LIMIT $limit";

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
        Ok(Some(LocalCredentials { user: user_from_row(&row)?, password_hash: column(&row, "password_hash")? }))
    }

    async fn update_user(&self, id: UserId, patch: UserPatch, at: Timestamp) -> StoreResult<User> {
        in_txn(&self.graph, async move |txn: &mut Txn| {
            // Setting updated_at first takes the node's write lock for the rest of the transaction.
            let lock = query(&format!(
                "MATCH (u:User {{id: $id}}) WHERE u.status <> 'deleted' SET u.updated_at = datetime($at) {USER_RETURN}"
            ))
            .param("id", id.to_string())
            .param("at", storage(&at));
            let row = txn_row(txn, lock).await?.ok_or(StoreError::NotFound)?;
            let mut user = user_from_row(&row)?;
            user.apply_patch(patch, at);
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
        let q = query(&format!("{USERS} {USER_RETURN} ORDER BY id DESC"))
            .param("bound", page.bound(SortOrder::NewestFirst))
            .param("limit", page.fetch());
        let users = self.rows(q).await?.iter().map(user_from_row).collect::<StoreResult<Vec<_>>>()?;
        Ok(Page::from_overfetch(users, page.limit, |user| user.id.as_uuid()))
    }

    async fn count_users(&self) -> StoreResult<u64> {
        let row = self
            .optional_row(query("MATCH (u:User) WHERE u.status <> 'deleted' RETURN count(u) AS count"))
            .await?
            .ok_or_else(|| StoreError::Internal("count returned nothing".into()))?;
        let count: i64 = column(&row, "count")?;
        u64::try_from(count).map_err(|_| corrupt("count"))
    }

    async fn sync_external_user(&self, user: ExternalUser, at: Timestamp) -> StoreResult<User> {
        let q = query(&format!(
            "MERGE (u:User {{keycloak_id: $kid}}) \
             ON CREATE SET u.id = $new_id, u.status = 'active', u.created_at = datetime($at), u.preferences = '{{}}' \
             SET u.username = $username, u.email = $email, u.full_name = $full_name, u.keycloak_roles = $roles, \
               u.keycloak_groups = $groups, u.keycloak_attributes = $attributes, u.last_sync_at = datetime($at), \
               u.updated_at = datetime($at), u.last_login_at = coalesce(datetime($login), u.last_login_at) \
             {USER_RETURN}"
        ))
        .param("kid", user.keycloak_id.clone())
        .param("new_id", UserId::new().to_string())
        .param("username", user.username.as_str())
        .param("email", user.email.as_ref().map(|e| e.as_str().to_owned()))
        .param("full_name", user.full_name.clone())
        .param("roles", role_names(&user.roles))
        .param("groups", user.groups.clone())
        .param("attributes", serde_json::Value::Object(user.attributes.clone()).to_string())
        .param("login", user.logged_in_at.as_ref().map(storage))
        .param("at", storage(&at));
        let row = self.optional_row(q).await?.ok_or_else(|| StoreError::Internal("merge returned nothing".into()))?;
        user_from_row(&row)
    }

    async fn find_user_by_keycloak_id(&self, keycloak_id: &str) -> StoreResult<Option<User>> {
        let q = query(&format!("MATCH (u:User {{keycloak_id: $kid}}) WHERE u.status <> 'deleted' {USER_RETURN}"))
            .param("kid", keycloak_id);
        self.optional_row(q).await?.as_ref().map(user_from_row).transpose()
    }

    async fn search_users(&self, text: &str, limit: u32) -> StoreResult<Vec<User>> {
        let q = query(&format!(
            "MATCH (u:User) WHERE u.status <> 'deleted' AND (toLower(u.username) CONTAINS $needle \
               OR toLower(coalesce(u.email, '')) CONTAINS $needle OR toLower(coalesce(u.full_name, '')) CONTAINS $needle) \
             WITH u ORDER BY CASE WHEN toLower(u.username) STARTS WITH $needle THEN 0 ELSE 1 END, u.username \
             LIMIT $limit {USER_RETURN}"
        ))
        .param("needle", user::search_needle(text))
        .param("limit", i64::from(limit));
        self.rows(q).await?.iter().map(user_from_row).collect()
    }

    async fn change_user_roles(&self, id: UserId, roles: Vec<Role>, audit: NewAuditRecord) -> StoreResult<User> {
        in_txn(&self.graph, async move |txn: &mut Txn| {
            // Write-lock every administrator first, so that two concurrent demotions are
            // serialised and the count below sees the other one's outcome.
            let lock = query(
                "MATCH (a:User) WHERE $admin IN a.keycloak_roles \
                 SET a.roles_lock = true REMOVE a.roles_lock",
            )
            .param("admin", Role::Admin.as_str());
            txn.run(lock).await.map_err(map_err)?;
            let before = query(&format!("MATCH (u:User {{id: $id}}) WHERE u.status <> 'deleted' {USER_RETURN}"))
                .param("id", id.to_string());
            let before = txn_row(txn, before).await?.ok_or(StoreError::NotFound)?;
            let before = user_from_row(&before)?.roles;
            let q = query(&format!(
                "MATCH (u:User {{id: $id}}) WHERE u.status <> 'deleted' \
                 SET u.keycloak_roles = $roles, u.updated_at = datetime($at) {USER_RETURN}"
            ))
            .param("id", id.to_string())
            .param("roles", role_names(&roles))
            .param("at", storage(&audit.at));
            let row = txn_row(txn, q).await?.ok_or(StoreError::NotFound)?;
            let user = user_from_row(&row)?;
            let count =
                query("MATCH (a:User) WHERE a.status = 'active' AND $admin IN a.keycloak_roles RETURN count(a) AS n")
                    .param("admin", Role::Admin.as_str());
            let administrators: i64 =
                txn_rows(txn, count).await?.into_iter().next().and_then(|row| row.get::<i64>("n").ok()).unwrap_or(0);
            check_administrators_remain(&before, &roles, u64::try_from(administrators).unwrap_or(0))?;
            txn.run(audit_query(&audit)).await.map_err(map_err)?;
            Ok(user)
        })
        .await
    }
}
