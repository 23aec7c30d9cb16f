//! Refresh tokens: `(:RefreshToken)-[:ISSUED_TO]->(:User)`, stored as digests,
//! single-use, grouped in families per login.

use aether_domain::StoreError;
use aether_domain::id::TokenFamilyId;
use aether_domain::session::PresentedRefreshToken;
use aether_domain::session::{NewRefreshToken, RefreshOutcome};
use aether_domain::store::{SessionStore, StoreResult};
use aether_domain::time::Timestamp;
use async_trait::async_trait;
use neo4rs::{Txn, query};

use crate::Neo4jStore;
use crate::rows::{TokenRecord, column, corrupt, from_row, storage};
use crate::txn::{in_txn, map_err, txn_row};

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
            let Some(row) = txn_row(txn, lock).await? else {
                return Ok(RefreshOutcome::Invalid);
            };
            let outcome = from_row::<TokenRecord, PresentedRefreshToken>(&row)?.outcome(now);
            match &outcome {
                RefreshOutcome::Invalid => {}
                RefreshOutcome::Reused { family_id, .. } => {
                    let revoke = query(
                        "MATCH (t:RefreshToken {family_id: $family_id}) WHERE t.revoked_at IS NULL \
                         SET t.revoked_at = datetime($now)",
                    )
                    .param("family_id", family_id.to_string())
                    .param("now", storage(&now));
                    txn.run(revoke).await.map_err(map_err)?;
                }
                RefreshOutcome::Rotated { .. } => {
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
                }
            }
            Ok(outcome)
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
        let purged: i64 = match self.optional_row(q).await? {
            Some(row) => column(&row, "purged")?,
            None => 0,
        };
        u64::try_from(purged).map_err(|_| corrupt("count"))
    }
}
