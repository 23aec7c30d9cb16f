//! Identity use cases on Neo4j: users synchronised from Keycloak (one `MERGE` on the
//! unique `keycloak_id`, so concurrent first requests create one node), user search,
//! role changes, `(:User)-[:HAS_API_KEY]->(:ApiKey)`, `(:AuditLog)` records, and
//! `(:Ephemeral)` key/value entries.

use std::time::Duration;

use aether_domain::StoreError;
use aether_domain::activity::NewAuditRecord;
use aether_domain::api_key::{ApiKey, ApiKeyName, ApiKeyScope, NewApiKey};
use aether_domain::capability::check_administrators_remain;
use aether_domain::ephemeral::EphemeralStore;
use aether_domain::events::{topics, user_activity_event};
use aether_domain::id::{ApiKeyId, UserId};
use aether_domain::identity::ExternalUser;
use aether_domain::store::{ApiKeyStore, StoreResult};
use aether_domain::time::{self, Timestamp};
use aether_domain::user::{Role, User};
use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use neo4rs::{Query, Row, Txn, query};
use serde::Deserialize;

use crate::{Neo4jStore, USER_RETURN, corrupt, in_txn, map_err, role_names, storage, ts, txn_rows, user_from_row};

/// `(:AuditLog)-[:PERFORMED_BY]->(:User)` and `-[:ON_RESOURCE]->` the user or key it is about.
pub(crate) fn audit_query(record: &NewAuditRecord) -> Query {
    query(
        "CREATE (al:AuditLog {id: $id, action: $action, resource_type: $resource_type, resource_id: $resource, \
           details: $details, ip_address: $ip, user_agent: $agent, performed_by: $actor, created_at: datetime($at)}) \
         WITH al OPTIONAL MATCH (u:User {id: $actor}) \
         FOREACH (x IN CASE WHEN u IS NULL THEN [] ELSE [u] END | CREATE (al)-[:PERFORMED_BY]->(x)) \
         WITH al OPTIONAL MATCH (ru:User {id: $resource}) \
         FOREACH (x IN CASE WHEN ru IS NULL THEN [] ELSE [ru] END | CREATE (al)-[:ON_RESOURCE]->(x)) \
         WITH al OPTIONAL MATCH (rk:ApiKey {id: $resource}) \
         FOREACH (x IN CASE WHEN rk IS NULL THEN [] ELSE [rk] END | CREATE (al)-[:ON_RESOURCE]->(x)) \
         WITH al FOREACH (x IN CASE WHEN $actor IS NULL THEN [] ELSE [1] END | \
           CREATE (:OutboxEvent {id: $event_id, topic: $event_topic, key: $actor, payload: $event_payload, \
             created_at: datetime($at)}))",
    )
    .param("event_id", uuid::Uuid::now_v7().to_string())
    .param("event_topic", topics::USERS_ACTIVITY)
    .param(
        "event_payload",
        record.performed_by.map(|user| {
            user_activity_event(user, record.action, record.resource_type, &record.resource_id).payload.to_string()
        }),
    )
    .param("id", uuid::Uuid::now_v7().to_string())
    .param("action", record.action)
    .param("resource_type", record.resource_type)
    .param("resource", record.resource_id.clone())
    .param("details", serde_json::Value::Object(record.details.clone()).to_string())
    .param("ip", record.ip_address.clone())
    .param("agent", record.user_agent.clone())
    .param("actor", record.performed_by.map(|id| id.to_string()))
    .param("at", storage(&record.at))
}

impl Neo4jStore {
    pub(crate) async fn sync_external_user_impl(&self, user: ExternalUser, at: Timestamp) -> StoreResult<User> {
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

    pub(crate) async fn search_users_impl(&self, text: &str, limit: u32) -> StoreResult<Vec<User>> {
        let q = query(&format!(
            "MATCH (u:User) WHERE u.status <> 'deleted' AND (toLower(u.username) CONTAINS $needle \
               OR toLower(coalesce(u.email, '')) CONTAINS $needle OR toLower(coalesce(u.full_name, '')) CONTAINS $needle) \
             WITH u ORDER BY CASE WHEN toLower(u.username) STARTS WITH $needle THEN 0 ELSE 1 END, u.username \
             LIMIT $limit {USER_RETURN}"
        ))
        .param("needle", text.trim().to_lowercase())
        .param("limit", i64::from(limit));
        self.rows(q).await?.iter().map(user_from_row).collect()
    }

    pub(crate) async fn change_user_roles_impl(
        &self,
        id: UserId,
        roles: Vec<Role>,
        audit: NewAuditRecord,
    ) -> StoreResult<User> {
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
            let before = txn_rows(txn, before).await?.into_iter().next().ok_or(StoreError::NotFound)?;
            let before = user_from_row(&before)?.roles;
            let q = query(&format!(
                "MATCH (u:User {{id: $id}}) WHERE u.status <> 'deleted' \
                 SET u.keycloak_roles = $roles, u.updated_at = datetime($at) {USER_RETURN}"
            ))
            .param("id", id.to_string())
            .param("roles", role_names(&roles))
            .param("at", storage(&audit.at));
            let row = txn_rows(txn, q).await?.into_iter().next().ok_or(StoreError::NotFound)?;
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

const API_KEY_RETURN: &str = "RETURN k.id AS id, u.id AS user_id, k.name AS name, k.prefix AS prefix, \
     k.scopes AS scopes, toString(k.created_at) AS created_at, toString(k.expires_at) AS expires_at, \
     toString(k.last_used_at) AS last_used_at, toString(k.revoked_at) AS revoked_at";

#[derive(Deserialize)]
struct ApiKeyRecord {
    id: String,
    user_id: String,
    name: String,
    prefix: String,
    scopes: Vec<String>,
    created_at: String,
    expires_at: Option<String>,
    last_used_at: Option<String>,
    revoked_at: Option<String>,
}

fn api_key_from_row(row: &Row) -> StoreResult<ApiKey> {
    let record: ApiKeyRecord = row.to().map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(ApiKey {
        id: ApiKeyId::parse(&record.id).map_err(|_| corrupt("api key id"))?,
        user_id: UserId::parse(&record.user_id).map_err(|_| corrupt("user id"))?,
        name: ApiKeyName::parse(&record.name).map_err(|_| corrupt("api key name"))?,
        prefix: record.prefix,
        scopes: record
            .scopes
            .iter()
            .map(|scope| ApiKeyScope::parse(scope))
            .collect::<Result<_, _>>()
            .map_err(|_| corrupt("api key scope"))?,
        created_at: ts(&record.created_at)?,
        expires_at: record.expires_at.as_deref().map(ts).transpose()?,
        last_used_at: record.last_used_at.as_deref().map(ts).transpose()?,
        revoked_at: record.revoked_at.as_deref().map(ts).transpose()?,
    })
}

#[async_trait]
impl ApiKeyStore for Neo4jStore {
    async fn create_api_key(&self, key: NewApiKey, audit: NewAuditRecord) -> StoreResult<ApiKey> {
        in_txn(&self.graph, async move |txn: &mut Txn| {
            let q = query(&format!(
                "MATCH (u:User {{id: $user}}) WHERE u.status <> 'deleted' \
                 CREATE (u)-[:HAS_API_KEY]->(k:ApiKey {{id: $id, name: $name, prefix: $prefix, secret_hash: $hash, \
                   scopes: $scopes, created_at: datetime($at), expires_at: datetime($expires)}}) {API_KEY_RETURN}"
            ))
            .param("user", key.user_id.to_string())
            .param("id", key.id.to_string())
            .param("name", key.name.as_str())
            .param("prefix", key.prefix.clone())
            .param("hash", key.secret_hash.clone())
            .param("scopes", key.scopes.iter().map(|scope| scope.as_str().to_owned()).collect::<Vec<_>>())
            .param("at", storage(&key.created_at))
            .param("expires", key.expires_at.as_ref().map(storage));
            let rows = txn_rows(txn, q).await.map_err(|error| match error {
                StoreError::Conflict(_) => StoreError::Conflict("api_key".into()),
                other => other,
            })?;
            let created = api_key_from_row(rows.first().ok_or(StoreError::NotFound)?)?;
            txn.run(audit_query(&audit)).await.map_err(map_err)?;
            Ok(created)
        })
        .await
    }

    async fn list_api_keys(&self, user: UserId) -> StoreResult<Vec<ApiKey>> {
        let q = query(&format!(
            "MATCH (u:User {{id: $user}})-[:HAS_API_KEY]->(k:ApiKey) WITH u, k ORDER BY k.id DESC {API_KEY_RETURN}"
        ))
        .param("user", user.to_string());
        self.rows(q).await?.iter().map(api_key_from_row).collect()
    }

    async fn revoke_api_key(&self, user: UserId, id: ApiKeyId, audit: NewAuditRecord) -> StoreResult<ApiKey> {
        in_txn(&self.graph, async move |txn: &mut Txn| {
            // Taking the key's lock first (SET) serialises concurrent revocations.
            let q = query(
                "MATCH (u:User {id: $user})-[:HAS_API_KEY]->(k:ApiKey {id: $id}) SET k._lock = true REMOVE k._lock \
                 RETURN k.revoked_at IS NULL AS active",
            )
            .param("user", user.to_string())
            .param("id", id.to_string());
            let row = txn_rows(txn, q).await?.into_iter().next().ok_or(StoreError::NotFound)?;
            let active: bool = row.get("active").map_err(|e| StoreError::Corrupt(e.to_string()))?;
            if active {
                let revoke = query("MATCH (k:ApiKey {id: $id}) SET k.revoked_at = datetime($at)")
                    .param("id", id.to_string())
                    .param("at", storage(&audit.at));
                txn.run(revoke).await.map_err(map_err)?;
                txn.run(audit_query(&audit)).await.map_err(map_err)?;
            }
            let q = query(&format!("MATCH (u:User)-[:HAS_API_KEY]->(k:ApiKey {{id: $id}}) {API_KEY_RETURN}"))
                .param("id", id.to_string());
            let row = txn_rows(txn, q).await?.into_iter().next().ok_or(StoreError::NotFound)?;
            api_key_from_row(&row)
        })
        .await
    }

    async fn find_api_key(&self, secret_hash: &str) -> StoreResult<Option<ApiKey>> {
        let q = query(&format!("MATCH (u:User)-[:HAS_API_KEY]->(k:ApiKey {{secret_hash: $hash}}) {API_KEY_RETURN}"))
            .param("hash", secret_hash);
        self.optional_row(q).await?.as_ref().map(api_key_from_row).transpose()
    }

    async fn touch_api_key(&self, id: ApiKeyId, at: Timestamp) -> StoreResult<()> {
        let q = query("MATCH (k:ApiKey {id: $id}) SET k.last_used_at = datetime($at)")
            .param("id", id.to_string())
            .param("at", storage(&at));
        self.graph.run(q).await.map_err(map_err)
    }
}

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
