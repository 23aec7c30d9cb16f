//! Publishing the outbox, and the embedded shape's event bus.

use std::sync::Arc;

use aether_domain::events::{EventPublisher, OutboxEvent};
use aether_domain::store::Store;
use aether_domain::time;
use async_trait::async_trait;
use tokio::sync::broadcast;

use crate::error::ServiceResult;

/// The embedded default's event bus: published events fan out to in-process
/// subscribers (notifications, WebSocket feeds). Subscribers that fall behind
/// lose the oldest events, which stay recorded in the outbox.
#[derive(Debug, Clone)]
pub struct InProcessBus {
    sender: broadcast::Sender<OutboxEvent>,
}

impl InProcessBus {
    pub fn new(capacity: usize) -> Self {
        Self { sender: broadcast::channel(capacity).0 }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<OutboxEvent> {
        self.sender.subscribe()
    }
}

#[async_trait]
impl EventPublisher for InProcessBus {
    async fn publish(&self, event: &OutboxEvent) -> Result<(), String> {
        // No subscriber is not an error: the event is still recorded as published.
        let _ = self.sender.send(event.clone());
        Ok(())
    }
}

/// Moves events from the outbox to the publisher, oldest first, at least once.
#[derive(Debug, Clone)]
pub struct EventDispatcher {
    store: Arc<dyn Store>,
    publisher: Arc<dyn EventPublisher>,
}

impl EventDispatcher {
    pub fn new(store: Arc<dyn Store>, publisher: Arc<dyn EventPublisher>) -> Self {
        Self { store, publisher }
    }

    /// Publishes up to `limit` pending events; returns how many were published. Stops
    /// at the first failure so that events keep their order; the rest wait.
    pub async fn dispatch(&self, limit: u32) -> ServiceResult<usize> {
        let pending = self.store.pending_events(limit).await?;
        let mut published = Vec::with_capacity(pending.len());
        for event in &pending {
            if let Err(error) = self.publisher.publish(event).await {
                metrics::counter!("aether_outbox_publish_failures_total").increment(1);
                tracing::warn!(event_id = %event.id, topic = %event.topic, %error, "publishing failed; will retry");
                break;
            }
            published.push(event.id);
        }
        if !published.is_empty() {
            let now = time::now();
            self.store.mark_published(&published, now).await?;
            // How long each event waited between its change and its publication.
            for event in pending.iter().take(published.len()) {
                let lag = (now - event.created_at).to_std().unwrap_or_default();
                metrics::histogram!("aether_outbox_relay_lag_seconds").record(lag.as_secs_f64());
            }
            metrics::counter!("aether_outbox_events_published_total").increment(published.len() as u64);
        }
        Ok(published.len())
    }
}
