//! Domain events leave through a durable outbox: a use case writes its event in the
//! transaction of the change, and a worker publishes it afterwards (to the
//! in-process bus in the embedded shape, to Kafka in production). An event is thus
//! published at least once, and never for a change that did not commit.

use serde::Serialize;
use uuid::Uuid;

use crate::id::UserId;
use crate::time::Timestamp;

/// The topics of the design.
pub mod topics {
    pub const DOCUMENTS_UPLOADED: &str = "aether.documents.uploaded";
    pub const DOCUMENTS_PROCESSED: &str = "aether.documents.processed";
    pub const NOTEBOOKS_SHARED: &str = "aether.notebooks.shared";
    pub const USERS_ACTIVITY: &str = "aether.users.activity";
    pub const COMPLIANCE_SCANNED: &str = "aether.compliance.scanned";
    /// The work queue of document workers: one record per job ready to be
    /// processed, keyed by job id so that jobs spread over every partition.
    pub const DOCUMENTS_JOBS: &str = "aether.documents.jobs";
}

/// An event waiting in (or published from) the outbox.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutboxEvent {
    /// Also the event's idempotency key for consumers.
    pub id: Uuid,
    pub topic: String,
    /// The partitioning key (the notebook id for notebook events).
    pub key: String,
    pub payload: serde_json::Value,
    pub created_at: Timestamp,
}

/// The CloudEvents `source` of every event Aether publishes.
pub const CLOUD_EVENTS_SOURCE: &str = "urn:aether";

/// The media type of a CloudEvents 1.0 event in structured mode, JSON format.
pub const CLOUD_EVENTS_CONTENT_TYPE: &str = "application/cloudevents+json";

impl OutboxEvent {
    /// The event as a CloudEvents 1.0 JSON object (structured mode): the topic is its
    /// `type`, the partitioning key its `subject` and the payload its `data`, so a
    /// consumer can deduplicate by `id` and order by `time` without knowing Aether.
    pub fn cloud_event(&self) -> serde_json::Value {
        serde_json::json!({
            "specversion": "1.0",
            "id": self.id.to_string(),
            "source": CLOUD_EVENTS_SOURCE,
            "type": self.topic,
            "subject": self.key,
            "time": crate::time::to_storage(&self.created_at),
            "datacontenttype": "application/json",
            "data": self.payload,
        })
    }
}

/// What a change asks to publish; the store gives it an id and a time.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub topic: &'static str,
    pub key: String,
    pub payload: serde_json::Value,
}

/// `aether.users.activity`: something a user did — a notebook change, a sign-in, an
/// API key created, a role changed — keyed by the user, so that one user's activity
/// stays in order. Written with the activity or audit record it mirrors.
pub fn user_activity_event(user: UserId, activity: &str, resource_type: &str, resource_id: &str) -> NewEvent {
    NewEvent {
        topic: topics::USERS_ACTIVITY,
        key: user.to_string(),
        payload: serde_json::json!({
            "user_id": user.to_string(),
            "activity": activity,
            "resource_type": resource_type,
            "resource_id": resource_id,
        }),
    }
}

/// Delivers published events. Implementations: the in-process bus, Kafka.
#[async_trait::async_trait]
pub trait EventPublisher: Send + Sync + std::fmt::Debug {
    /// Publishes one event; an error leaves it in the outbox for the next attempt.
    async fn publish(&self, event: &OutboxEvent) -> Result<(), String>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloud_events_carry_the_required_attributes() {
        let event = OutboxEvent {
            id: Uuid::now_v7(),
            topic: topics::NOTEBOOKS_SHARED.to_owned(),
            key: "notebook-1".to_owned(),
            payload: serde_json::json!({"user_id": "u"}),
            created_at: crate::time::now(),
        };
        let cloud = event.cloud_event();
        assert_eq!(cloud["specversion"], "1.0");
        assert_eq!(cloud["id"], event.id.to_string());
        assert_eq!(cloud["source"], CLOUD_EVENTS_SOURCE);
        assert_eq!(cloud["type"], topics::NOTEBOOKS_SHARED);
        assert_eq!(cloud["subject"], "notebook-1");
        assert_eq!(crate::time::parse(cloud["time"].as_str().unwrap_or_default()), Some(event.created_at));
        assert_eq!(cloud["data"]["user_id"], "u");
    }
}
