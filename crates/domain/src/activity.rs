//! The record of changes: every mutation of a notebook writes an `ActivityEvent`
//! (for feeds: what happened) and an `AuditLog` entry (for accountability: who,
//! from where), in the same transaction as the change itself.

use serde::Serialize;
use uuid::Uuid;

use crate::access::Collaboration;
use crate::access::CollaborationStatus;
use crate::events::{NewEvent, topics};
use crate::id::{NotebookId, UserId};
use crate::time::Timestamp;

/// Who makes a change, when, and from where. Every mutating store method takes one.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// `None` for changes the system makes by itself (workers, retention).
    pub actor: Option<UserId>,
    pub at: Timestamp,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
}

impl Change {
    pub fn by(actor: UserId, at: Timestamp) -> Self {
        Self { actor: Some(actor), at, ip_address: None, user_agent: None }
    }

    pub fn system(at: Timestamp) -> Self {
        Self { actor: None, at, ip_address: None, user_agent: None }
    }
}

/// An `(:ActivityEvent)` about a notebook.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActivityEvent {
    pub id: Uuid,
    /// `created`, `updated`, `moved`, `deleted`, `restored`, `invited`,
    /// `permission_granted`, `invitation_accepted`, `invitation_declined`,
    /// `permission_revoked`.
    pub event_type: String,
    pub actor_id: Option<UserId>,
    pub notebook_id: NotebookId,
    pub details: serde_json::Map<String, serde_json::Value>,
    pub created_at: Timestamp,
}

/// An `(:AuditLog)` entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    pub id: Uuid,
    /// `create`, `update`, `delete`, `restore`, `share`, `revoke`.
    pub action: String,
    pub resource_type: String,
    pub resource_id: String,
    pub performed_by: Option<UserId>,
    pub details: serde_json::Map<String, serde_json::Value>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: Timestamp,
}

/// What a store writes for one change to one notebook.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeRecord {
    pub notebook_id: NotebookId,
    pub event_type: &'static str,
    pub action: &'static str,
    pub details: serde_json::Map<String, serde_json::Value>,
    /// A domain event to publish through the outbox, written with the change.
    pub event: Option<NewEvent>,
}

impl ChangeRecord {
    pub fn new(notebook_id: NotebookId, event_type: &'static str, action: &'static str) -> Self {
        Self { notebook_id, event_type, action, details: serde_json::Map::new(), event: None }
    }

    /// The record of a change to a `COLLABORATES_ON` relationship, now in `c`'s
    /// state. `answered` tells an invitee's answer from a grantor's action.
    pub fn for_collaboration(c: &Collaboration, answered: bool) -> Self {
        let (event_type, action) = match (c.status, answered) {
            (CollaborationStatus::Pending, _) => ("invited", "share"),
            (CollaborationStatus::Active, false) => ("permission_granted", "share"),
            (CollaborationStatus::Active, true) => ("invitation_accepted", "update"),
            (CollaborationStatus::Declined, _) => ("invitation_declined", "update"),
            (CollaborationStatus::Revoked, _) => ("permission_revoked", "revoke"),
        };
        let mut record = Self::new(c.notebook_id, event_type, action)
            .with("user_id", c.user_id.to_string())
            .with("permission", c.permission.as_str())
            .with("status", c.status.as_str());
        // Inviting and granting share the notebook: the design's `aether.notebooks.shared`.
        if matches!(event_type, "invited" | "permission_granted") {
            record.event = Some(NewEvent {
                topic: topics::NOTEBOOKS_SHARED,
                key: c.notebook_id.to_string(),
                payload: serde_json::json!({
                    "notebook_id": c.notebook_id.to_string(),
                    "user_id": c.user_id.to_string(),
                    "permission": c.permission.as_str(),
                    "status": c.status.as_str(),
                    "granted_by": c.granted_by.to_string(),
                    "granted_at": crate::time::to_storage(&c.granted_at),
                }),
            });
        }
        record
    }

    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }
}

/// An `(:AuditLog)` entry about identity: logins, logouts, failed authentication, role
/// changes, API keys. `performed_by` is `None` when nobody could be identified (a failed
/// login with an unknown name).
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditRecord {
    /// `login`, `logout`, `authentication_failed`, `roles_changed`, `api_key_created`, `api_key_revoked`.
    pub action: &'static str,
    pub resource_type: &'static str,
    pub resource_id: String,
    pub performed_by: Option<UserId>,
    pub details: serde_json::Map<String, serde_json::Value>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub at: Timestamp,
}
