//! The outbox relay when the bus refuses one event: the events of that key wait, in
//! order, while every other key's events are published; the next pass publishes
//! the waiting ones in their order. The outbox is the real SQLite store; the bus is
//! a publisher that refuses the events it is told to (the Kafka outage test covers
//! the real Kafka).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use aether_domain::access::CollaborationStatus;
use aether_domain::events::{EventPublisher, OutboxEvent};
use aether_domain::id::NotebookId;
use aether_domain::store::Store;
use aether_services::events::EventDispatcher;
use aether_store_sqlite::SqliteStore;
use async_trait::async_trait;
use common::store::{new_notebook, new_user, set_access};

/// A bus that records what it accepts and refuses the events in `refused`.
#[derive(Debug, Default)]
struct Bus {
    refused: Mutex<HashSet<uuid::Uuid>>,
    accepted: Mutex<Vec<OutboxEvent>>,
}

#[async_trait]
impl EventPublisher for Bus {
    async fn publish(&self, event: &OutboxEvent) -> Result<(), String> {
        if self.refused.lock().unwrap().contains(&event.id) {
            return Err("refused".to_owned());
        }
        self.accepted.lock().unwrap().push(event.clone());
        Ok(())
    }
}

impl Bus {
    fn accepted_ids(&self) -> Vec<uuid::Uuid> {
        self.accepted.lock().unwrap().iter().map(|event| event.id).collect()
    }
}

#[tokio::test]
async fn a_refused_event_holds_back_its_key_only() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_and_migrate(&dir.path().join("aether.db")).await.unwrap());
    let owner = new_user(&store, "relay-owner").await;
    let (one, two) = (new_user(&store, "relay-one").await, new_user(&store, "relay-two").await);
    let (first, second) = (new_notebook(&store, owner, "First").await, new_notebook(&store, owner, "Second").await);
    // Each share writes an `aether.notebooks.shared` event keyed by the notebook
    // (and the owner's activity event, keyed by the owner).
    for (notebook, user) in [(first, one), (second, one), (first, two), (second, two)] {
        set_access(&store, owner, notebook, user, CollaborationStatus::Active).await;
    }
    let bus = Arc::new(Bus::default());
    let relay = EventDispatcher::new(store.clone(), Arc::clone(&bus) as Arc<dyn EventPublisher>);

    let pending = store.pending_events(100).await.unwrap();
    let of = |key: NotebookId| {
        pending
            .iter()
            .filter(|event| event.key == key.to_string() && event.topic == "aether.notebooks.shared")
            .map(|event| event.id)
            .collect::<Vec<_>>()
    };
    let (first_events, second_events) = (of(first), of(second));
    assert_eq!((first_events.len(), second_events.len()), (2, 2), "{pending:?}");
    bus.refused.lock().unwrap().insert(first_events[0]);

    let pass = relay.dispatch(100).await.unwrap();
    assert!(pass.failed);
    assert_eq!((pass.fetched, pass.published), (pending.len(), pending.len() - 2));
    let accepted = bus.accepted_ids();
    assert!(!accepted.contains(&first_events[1]), "the event after the refused one waits for it");
    assert_eq!(
        accepted.iter().filter(|id| second_events.contains(id)).copied().collect::<Vec<_>>(),
        second_events,
        "the other notebook's events go on, in order"
    );
    let waiting: Vec<_> = store.pending_events(100).await.unwrap().iter().map(|event| event.id).collect();
    assert_eq!(waiting, first_events, "the refused key's events stay in the outbox, in order");

    bus.refused.lock().unwrap().clear();
    let pass = relay.dispatch(100).await.unwrap();
    assert_eq!((pass.fetched, pass.published, pass.failed), (2, 2, false));
    assert_eq!(bus.accepted_ids()[accepted.len()..], first_events[..], "published in their order once accepted");
    assert!(store.pending_events(100).await.unwrap().is_empty());
    let published = bus.accepted_ids();
    assert_eq!(published.iter().collect::<HashSet<_>>().len(), published.len(), "nothing published twice");
}
