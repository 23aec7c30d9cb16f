//! The record of changes: every mutation of a notebook writes an `ActivityEvent`
//! (for feeds: what happened) and an `AuditLog` entry (for accountability: who,
//! from where), in the same transaction as the change itself.

use serde::Serialize;
use uuid::Uuid;

use crate::events::{NewEvent, user_activity_event};
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

    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }

    /// The events the change writes to the outbox: the record's own domain event, if
    /// any, then the actor's `aether.users.activity` (none for system changes).
    pub fn outbox_events(&self, change: &Change) -> Vec<NewEvent> {
        let activity = change
            .actor
            .map(|actor| user_activity_event(actor, self.event_type, "notebook", &self.notebook_id.to_string()));
        self.event.iter().cloned().chain(activity).collect()
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

impl NewAuditRecord {
    /// The `aether.users.activity` event written with the record, when someone was
    /// identified.
    pub fn activity_event(&self) -> Option<NewEvent> {
        self.performed_by.map(|user| user_activity_event(user, self.action, self.resource_type, &self.resource_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::topics;

    #[test]
    fn a_change_by_someone_is_also_their_activity() {
        let id = NotebookId::new();
        let actor = UserId::new();
        let mut record = ChangeRecord::notebook_restored(id);
        let at = crate::time::now();
        assert!(record.outbox_events(&Change::system(at)).is_empty());
        record.event =
            Some(NewEvent { topic: topics::NOTEBOOKS_SHARED, key: id.to_string(), payload: serde_json::json!({}) });
        let events = record.outbox_events(&Change::by(actor, at));
        assert_eq!(
            events.iter().map(|event| event.topic).collect::<Vec<_>>(),
            [topics::NOTEBOOKS_SHARED, topics::USERS_ACTIVITY]
        );
        assert_eq!(events[1].key, actor.to_string());
        assert_eq!(events[1].payload["activity"], "restored");
    }

    #[test]
    fn audit_records_of_someone_are_their_activity() {
        let user = UserId::new();
        let mut record = NewAuditRecord {
            action: "login",
            resource_type: "user",
            resource_id: user.to_string(),
            performed_by: Some(user),
            details: serde_json::Map::new(),
            ip_address: None,
            user_agent: None,
            at: crate::time::now(),
        };
        let event = record.activity_event().expect("an actor");
        assert_eq!((event.topic, event.key), (topics::USERS_ACTIVITY, user.to_string()));
        assert_eq!(event.payload["activity"], "login");
        record.performed_by = None;
        assert_eq!(record.activity_event(), None);
    }
}
