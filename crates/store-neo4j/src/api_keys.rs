//! Personal API keys: `(:User)-[:HAS_API_KEY]->(:ApiKey)`, stored as digests,
//! created and revoked with their audit records.

use aether_domain::StoreError;
use aether_domain::activity::NewAuditRecord;
use aether_domain::api_key::{ApiKey, NewApiKey};
use aether_domain::id::{ApiKeyId, UserId};
use aether_domain::page::{Page, PageRequest, SortOrder};
use aether_domain::store::{ApiKeyStore, StoreResult};
use aether_domain::time::Timestamp;
use async_trait::async_trait;
use neo4rs::{Txn, query};

use crate::Neo4jStore;
use crate::activity::audit_query;
use crate::rows::{API_KEY_RETURN, ApiKeyRecord, column, from_row, from_rows, storage};
use crate::txn::{in_txn, map_err, txn_rows};

/// The user's keys: the first `$limit` below `$bound`, newest first along
/// `api_key_user_keyset`; [`API_KEY_RETURN`] follows.
pub(crate) const API_KEYS: &str = "MATCH (k:ApiKey) USING INDEX k:ApiKey(user_id, id) \
     WHERE k.user_id = $user AND k.id < $bound WITH k ORDER BY k.user_id DESC, k.id DESC LIMIT $limit \
     MATCH (u:User)-[:HAS_API_KEY]->(k)";

#[async_trait]
impl ApiKeyStore for Neo4jStore {
    async fn create_api_key(&self, key: NewApiKey, audit: NewAuditRecord) -> StoreResult<ApiKey> {
        in_txn(&self.graph, async move |txn: &mut Txn| {
            let q = query(&format!(
                "MATCH (u:User {{id: $user}}) WHERE u.status <> 'deleted' \
                 CREATE (u)-[:HAS_API_KEY]->(k:ApiKey {{id: $id, user_id: u.id, name: $name, prefix: $prefix, secret_hash: $hash, \
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
            let created = from_row::<ApiKeyRecord, ApiKey>(rows.first().ok_or(StoreError::NotFound)?)?;
            txn.run(audit_query(&audit)).await.map_err(map_err)?;
            Ok(created)
        })
        .await
    }

    async fn list_api_keys(&self, user: UserId, page: PageRequest) -> StoreResult<Page<ApiKey>> {
        let q = query(&format!("{API_KEYS} {API_KEY_RETURN} ORDER BY id DESC"))
            .param("user", user.to_string())
            .param("bound", page.bound(SortOrder::NewestFirst))
            .param("limit", page.fetch());
        let keys = from_rows::<ApiKeyRecord, ApiKey>(&self.rows(q).await?)?;
        Ok(Page::from_overfetch(keys, page.limit, |key| key.id.as_uuid()))
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
            let active: bool = column(&row, "active")?;
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
            from_row::<ApiKeyRecord, ApiKey>(&row)
        })
        .await
    }

    async fn find_api_key(&self, secret_hash: &str) -> StoreResult<Option<ApiKey>> {
        let q = query(&format!("MATCH (u:User)-[:HAS_API_KEY]->(k:ApiKey {{secret_hash: $hash}}) {API_KEY_RETURN}"))
            .param("hash", secret_hash);
        self.optional_row(q).await?.as_ref().map(from_row::<ApiKeyRecord, ApiKey>).transpose()
    }

    async fn touch_api_key(&self, id: ApiKeyId, at: Timestamp) -> StoreResult<()> {
        let q = query("MATCH (k:ApiKey {id: $id}) SET k.last_used_at = datetime($at)")
            .param("id", id.to_string())
            .param("at", storage(&at));
        self.graph.run(q).await.map_err(map_err)
    }
}
