//! Refresh tokens: stored as digests, single-use, grouped in families per login.

use aether_domain::id::TokenFamilyId;
use aether_domain::session::PresentedRefreshToken;
use aether_domain::session::{NewRefreshToken, RefreshOutcome};
use aether_domain::store::{SessionStore, StoreResult};
use aether_domain::time::{self, Timestamp};
use async_trait::async_trait;

use crate::rows::RefreshTokenRow;
use crate::{SqliteStore, map_err};

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
        let row: Option<RefreshTokenRow> = sqlx::query_as(
            "SELECT t.user_id, t.family_id, t.expires_at, t.spent_at, t.revoked_at, u.status \
             FROM refresh_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = ?",
        )
        .bind(presented_hash)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        let Some(row) = row else { return Ok(RefreshOutcome::Invalid) };
        let outcome = PresentedRefreshToken::try_from(row)?.outcome(now);
        let now_text = time::to_storage(&now);
        match &outcome {
            RefreshOutcome::Invalid => return Ok(outcome),
            RefreshOutcome::Reused { family_id, .. } => {
                sqlx::query("UPDATE refresh_tokens SET revoked_at = ? WHERE family_id = ? AND revoked_at IS NULL")
                    .bind(&now_text)
                    .bind(family_id.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
            }
            RefreshOutcome::Rotated { user_id, family_id } => {
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
            }
        }
        tx.commit().await.map_err(map_err)?;
        Ok(outcome)
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
