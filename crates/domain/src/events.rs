//! Domain events leave through a durable outbox: a use case writes its event in the
//! transaction of the change, and a worker publishes it afterwards (to the
//! in-process bus in the embedded shape, to Kafka in production). An event is thus
//! published at least once, and never for a change that did not commit.

use serde::Serialize;
use uuid::Uuid;

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

/// What a change asks to publish; the store gives it an id and a time.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub topic: &'static str,
    pub key: String,
    pub payload: serde_json::Value,
}

/// Delivers published events. Implementations: the in-process bus, Kafka.
#[async_trait::async_trait]
pub trait EventPublisher: Send + Sync + std::fmt::Debug {
    /// Publishes one event; an error leaves it in the outbox for the next attempt.
    async fn publish(&self, event: &OutboxEvent) -> Result<(), String>;
}
