//! Publishing the outbox, and the embedded shape's event bus.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use aether_domain::events::{EventPublisher, OutboxEvent};
use aether_domain::store::OutboxStore;
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

/// What one pass of the relay did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dispatched {
    /// Pending events read from the outbox (at most the pass's limit).
    pub fetched: usize,
    /// Events the publisher accepted, now marked published.
    pub published: usize,
    /// Whether the publisher refused an event; that event and every later one of
    /// its key stay in the outbox for the next pass, in order.
    pub failed: bool,
}

/// The longest the relay waits between attempts while publishing fails. A Kafka
/// outage already costs each attempt the producer's delivery timeout (10 s), so
/// this bounds how late delivery resumes once the bus is back.
pub const RELAY_MAX_BACKOFF: std::time::Duration = std::time::Duration::from_secs(10);

/// How long the relay waits after `consecutive_failures` failed passes: the poll
/// interval, doubled with each failure, up to [`RELAY_MAX_BACKOFF`]. A refusal that
/// comes back at once (an unknown topic, an oversized event, a store error) would
/// otherwise be retried, and logged, at every poll.
pub fn relay_backoff(poll_interval: std::time::Duration, consecutive_failures: u32) -> std::time::Duration {
    let doublings = consecutive_failures.saturating_sub(1).min(16);
    poll_interval.saturating_mul(1 << doublings).min(RELAY_MAX_BACKOFF.max(poll_interval))
}

/// Moves events from the outbox to the publisher, oldest first, at least once.
#[derive(Debug, Clone)]
pub struct EventDispatcher {
    store: Arc<dyn OutboxStore>,
    publisher: Arc<dyn EventPublisher>,
}

impl EventDispatcher {
    pub fn new(store: Arc<dyn OutboxStore>, publisher: Arc<dyn EventPublisher>) -> Self {
        Self { store, publisher }
    }

    /// Publishes up to `limit` pending events, oldest first. The events of one key
    /// go one after another, each acknowledged before the next, so that they keep
    /// their order; different keys go at the same time. A refused event stops its
    /// key only: it and the later events of that key wait, in order, for the next
    /// pass, while the other keys' events are published.
    pub async fn dispatch(&self, limit: u32) -> ServiceResult<Dispatched> {
        let pending = self.store.pending_events(limit).await?;
        // How far behind the relay is: while the bus is down nothing is published, so
        // the lag histogram below records nothing; this gauge keeps rising instead.
        let oldest_age = pending.first().map(|event| age(event, time::now())).unwrap_or_default();
        metrics::gauge!("aether_outbox_oldest_pending_age_seconds").set(oldest_age.as_secs_f64());
        let chains = chains_by_key(&pending);
        let outcomes = futures::future::join_all(chains.iter().map(|chain| self.publish_in_order(chain))).await;
        let refusals: Vec<&(&OutboxEvent, String)> =
            outcomes.iter().filter_map(|(_, refused)| refused.as_ref()).collect();
        let failed = !refusals.is_empty();
        if let Some((event, error)) = refusals.first() {
            // One failed attempt and one warning per pass, not per key: during an
            // outage every key of the batch fails at once.
            metrics::counter!("aether_outbox_publish_failures_total").increment(1);
            tracing::warn!(
                event_id = %event.id,
                topic = %event.topic,
                %error,
                keys_held_back = refusals.len(),
                "publishing failed; will retry"
            );
        }
        let published: HashSet<uuid::Uuid> = outcomes.into_iter().flat_map(|(ids, _)| ids).collect();
        if !published.is_empty() {
            let now = time::now();
            let done: Vec<&OutboxEvent> = pending.iter().filter(|event| published.contains(&event.id)).collect();
            let ids: Vec<uuid::Uuid> = done.iter().map(|event| event.id).collect();
            self.store.mark_published(&ids, now).await?;
            // How long each event waited between its change and its publication.
            for event in done {
                metrics::histogram!("aether_outbox_relay_lag_seconds").record(age(event, now).as_secs_f64());
            }
            metrics::counter!("aether_outbox_events_published_total").increment(published.len() as u64);
        }
        Ok(Dispatched { fetched: pending.len(), published: published.len(), failed })
    }

    /// Publishes one key's events in order, stopping at the first refusal: the ids
    /// of those published, and the refused event with the publisher's error.
    async fn publish_in_order<'a>(
        &self,
        chain: &[&'a OutboxEvent],
    ) -> (Vec<uuid::Uuid>, Option<(&'a OutboxEvent, String)>) {
        let mut published = Vec::with_capacity(chain.len());
        for event in chain {
            if let Err(error) = self.publisher.publish(event).await {
                return (published, Some((*event, error)));
            }
            published.push(event.id);
        }
        (published, None)
    }
}

/// The events grouped by key, each group in outbox order, the groups in the order
/// of their oldest event.
fn chains_by_key(events: &[OutboxEvent]) -> Vec<Vec<&OutboxEvent>> {
    let mut chains: Vec<Vec<&OutboxEvent>> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for event in events {
        let at = *index.entry(event.key.as_str()).or_insert_with(|| {
            chains.push(Vec::new());
            chains.len() - 1
        });
        chains[at].push(event);
    }
    chains
}

/// How long `event` has waited since its change, at `now`.
fn age(event: &OutboxEvent, now: time::Timestamp) -> std::time::Duration {
    (now - event.created_at).to_std().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn event(key: &str) -> OutboxEvent {
        OutboxEvent {
            id: uuid::Uuid::now_v7(),
            topic: "aether.test".to_owned(),
            key: key.to_owned(),
            payload: serde_json::json!({}),
            created_at: time::now(),
        }
    }

    #[test]
    fn events_are_chained_by_key_in_outbox_order() {
        let events = vec![event("a"), event("b"), event("a"), event("c"), event("b"), event("a")];
        let chains = chains_by_key(&events);
        let ids = |chain: &Vec<&OutboxEvent>| chain.iter().map(|event| event.id).collect::<Vec<_>>();
        assert_eq!(chains.len(), 3);
        assert_eq!(ids(&chains[0]), vec![events[0].id, events[2].id, events[5].id]);
        assert_eq!(ids(&chains[1]), vec![events[1].id, events[4].id]);
        assert_eq!(ids(&chains[2]), vec![events[3].id]);
    }

    #[test]
    fn the_relay_backs_off_exponentially_up_to_a_bound() {
        let poll = Duration::from_millis(250);
        assert_eq!(relay_backoff(poll, 1), poll);
        assert_eq!(relay_backoff(poll, 2), Duration::from_millis(500));
        assert_eq!(relay_backoff(poll, 4), Duration::from_secs(2));
        assert_eq!(relay_backoff(poll, 7), RELAY_MAX_BACKOFF);
        assert_eq!(relay_backoff(poll, u32::MAX), RELAY_MAX_BACKOFF);
        // A poll interval above the bound is never shortened by a failure.
        assert_eq!(relay_backoff(Duration::from_secs(30), 3), Duration::from_secs(30));
    }
}
