//! The record of changes: activity events and audit entries, written in the
//! transaction of the change they record, with their outbox events.

use aether_domain::activity::NewAuditRecord;
use aether_domain::activity::{ActivityEvent, AuditEntry, Change, ChangeRecord};
use aether_domain::id::NotebookId;
use aether_domain::page::{Page, PageRequest, SortOrder};
use aether_domain::store::{ActivityStore, StoreResult};
use aether_domain::time;
use async_trait::async_trait;
use sqlx::SqliteConnection;

use crate::outbox::insert_event;
use crate::rows::{ActivityRow, AuditRow, convert};
use crate::{SqliteStore, map_err};

/// A notebook's (?1) events, newest first from the bound ?2, ?3 rows, along
/// `activity_notebook` (notebook, id).
pub(crate) const ACTIVITY: &str =
    "SELECT * FROM activity_events WHERE notebook_id = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3";
/// Every audit entry, newest first from the bound ?1, ?2 rows, along the primary key.
pub(crate) const AUDIT: &str = "SELECT * FROM audit_log WHERE id < ?1 ORDER BY id DESC LIMIT ?2";
/// The audit entries about a resource (?1), newest first from the bound ?2, ?3 rows,
/// along `audit_resource` (resource, id).
pub(crate) const AUDIT_OF_RESOURCE: &str =
    "SELECT * FROM audit_log WHERE resource_id = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3";

/// Writes the activity event and the audit entry of a change, in its transaction.
pub(crate) async fn record_change(tx: &mut SqliteConnection, change: &Change, record: ChangeRecord) -> StoreResult<()> {
    let at = time::to_storage(&change.at);
    let actor = change.actor.map(|actor| actor.to_string());
    let events = record.outbox_events(change);
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
    for event in &events {
        insert_event(&mut *tx, event, &change.at).await?;
    }
    Ok(())
}

/// Writes an identity audit record and, when someone was identified, their activity.
pub(crate) async fn insert_audit(tx: &mut SqliteConnection, record: &NewAuditRecord) -> StoreResult<()> {
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
    .execute(&mut *tx)
    .await
    .map_err(map_err)?;
    if let Some(event) = record.activity_event() {
        insert_event(&mut *tx, &event, &record.at).await?;
    }
    Ok(())
}

#[async_trait]
impl ActivityStore for SqliteStore {
    async fn record_audit(&self, record: NewAuditRecord) -> StoreResult<()> {
        let (_writer, mut tx) = self.begin_write().await?;
        insert_audit(&mut tx, &record).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn list_activity(&self, notebook: NotebookId, page: PageRequest) -> StoreResult<Page<ActivityEvent>> {
        let rows: Vec<ActivityRow> = sqlx::query_as(ACTIVITY)
            .bind(notebook.to_string())
            .bind(page.bound(SortOrder::NewestFirst))
            .bind(page.fetch())
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(Page::from_overfetch(convert(rows)?, page.limit, |event: &ActivityEvent| event.id))
    }

    async fn list_audit(&self, resource_id: Option<String>, page: PageRequest) -> StoreResult<Page<AuditEntry>> {
        let bound = page.bound(SortOrder::NewestFirst);
        let rows: Vec<AuditRow> = match resource_id {
            Some(resource) => sqlx::query_as(AUDIT_OF_RESOURCE).bind(resource).bind(bound),
            None => sqlx::query_as(AUDIT).bind(bound),
        }
        .bind(page.fetch())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(Page::from_overfetch(convert(rows)?, page.limit, |entry: &AuditEntry| entry.id))
    }
}
