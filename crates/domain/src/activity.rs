//! The record of changes: every mutation of a notebook writes an `ActivityEvent`
//! (for feeds: what happened) and an `AuditLog` entry (for accountability: who,
//! from where), in the same transaction as the change itself.

use serde::Serialize;
use uuid::Uuid;

use crate::access::CollaborationStatus;
use crate::document::{self, Document, DocumentPatch, UploadJob};
use crate::events::{NewEvent, topics, user_activity_event};
use crate::id::{NotebookId, UserId};
use crate::notebook::{self, NotebookName, NotebookPatch};
use crate::store::Collaboration;
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

    /// A notebook was created, at the root or under `parent`.
    pub fn notebook_created(id: NotebookId, name: &NotebookName, parent: Option<NotebookId>) -> Self {
        let record = Self::new(id, "created", "create").with("name", name.as_str());
        match parent {
            Some(parent) => record.with("parent_id", parent.to_string()),
            None => record,
        }
    }

    /// A subtree was duplicated: `root` is the copy of `source`, named `name`, and
    /// `copied` notebooks were copied in all.
    pub fn notebook_duplicated(root: NotebookId, name: &NotebookName, source: NotebookId, copied: usize) -> Self {
        Self::new(root, "created", "create")
            .with("name", name.as_str())
            .with("duplicated_from", source.to_string())
            .with("notebooks_copied", copied)
    }

    /// A notebook's fields changed, as `patch` says.
    pub fn notebook_updated(id: NotebookId, patch: &NotebookPatch) -> Self {
        Self::new(id, "updated", "update").with("fields", notebook::changed_fields(patch))
    }

    /// A notebook moved under `new_parent` (or to the root).
    pub fn notebook_moved(id: NotebookId, new_parent: Option<NotebookId>) -> Self {
        Self::new(id, "moved", "update").with("parent_id", new_parent.map(|parent| parent.to_string()))
    }

    /// A notebook (with `cascade`, its subtree) was soft-deleted.
    pub fn notebook_deleted(id: NotebookId, cascade: bool) -> Self {
        Self::new(id, "deleted", "delete").with("cascade", cascade)
    }

    pub fn notebook_restored(id: NotebookId) -> Self {
        Self::new(id, "restored", "restore")
    }

    /// A job's processing stored `document` (or its new version): the record, with
    /// the `aether.documents.processed` event. The job's uploader is the actor.
    pub fn document_added(job: &UploadJob, document: &Document) -> Self {
        let event_type = if job.new_version { "document_version_added" } else { "document_added" };
        let mut record = Self::new(job.notebook_id, event_type, "create")
            .with("document_id", document.id.to_string())
            .with("version", document.current_version)
            .with("original_filename", document.original_filename.as_str());
        record.event = Some(document::processed_event(job, document));
        record
    }

    /// `document`'s metadata is changed by `patch` (a rename names the new name).
    pub fn document_updated(document: &Document, patch: &DocumentPatch) -> Self {
        let record =
            Self::new(document.notebook_id, "document_updated", "update").with("document_id", document.id.to_string());
        match &patch.original_filename {
            Some(name) => record.with("original_filename", name.as_str()),
            None => record,
        }
    }

    pub fn document_deleted(document: &Document) -> Self {
        Self::new(document.notebook_id, "document_deleted", "delete")
            .with("document_id", document.id.to_string())
            .with("original_filename", document.original_filename.as_str())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notebook::NotebookStatus;

    #[test]
    fn notebook_records_name_what_changed() {
        let (id, parent) = (NotebookId::new(), NotebookId::new());
        let name = NotebookName::parse("Research").expect("valid");
        let created = ChangeRecord::notebook_created(id, &name, Some(parent));
        assert_eq!((created.event_type, created.action), ("created", "create"));
        assert_eq!(created.details["parent_id"], parent.to_string());
        assert!(!ChangeRecord::notebook_created(id, &name, None).details.contains_key("parent_id"));
        let patch = NotebookPatch { status: Some(NotebookStatus::Archived), ..NotebookPatch::default() };
        assert_eq!(ChangeRecord::notebook_updated(id, &patch).details["fields"], serde_json::json!(["status"]));
        let moved = ChangeRecord::notebook_moved(id, None);
        assert_eq!(
            (moved.event_type, moved.action, &moved.details["parent_id"]),
            ("moved", "update", &serde_json::Value::Null)
        );
        assert_eq!(ChangeRecord::notebook_deleted(id, true).details["cascade"], true);
        assert_eq!(ChangeRecord::notebook_restored(id).action, "restore");
        let copy = ChangeRecord::notebook_duplicated(id, &name, parent, 3);
        assert_eq!(
            (copy.details["duplicated_from"].as_str(), &copy.details["notebooks_copied"]),
            (Some(parent.to_string().as_str()), &serde_json::json!(3))
        );
    }

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
}
