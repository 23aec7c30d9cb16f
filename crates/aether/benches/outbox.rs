//! Outbox figures: how many events per second the relay (`EventDispatcher::dispatch`,
//! 100 events a pass, as the server's relay loop does) drains from the outbox to the
//! in-process bus and to Kafka, and how much latency writing the outbox row adds to
//! a write. Prints figures; asserts nothing about them.
//!
//! The outbox is filled through a real write use case, `put_collaboration` granting
//! access (which writes the collaboration, its activity and audit entries and the
//! `aether.notebooks.shared` event in one transaction). The write latency compares
//! that grant with the revocation of the same collaboration, the same transaction
//! without the outbox row (the store writes no event for a revocation), alternating
//! on the same pairs; once with the relay idle and once with a relay draining the
//! outbox alongside, since its `mark_published` takes the same write lock.
//!
//! `cargo bench -p aether --bench outbox` (SQLite; `AETHER_TEST_STORE=neo4j` for
//! Neo4j). With `AETHER_TEST_KAFKA_BROKERS` set, the drain to Kafka is measured too,
//! on a topic of its own (`aether.bench.<uuid>`) so that no test consumer reads the
//! records. `AETHER_BENCH_OUTBOX_EVENTS` (default 20000) and
//! `AETHER_BENCH_KAFKA_EVENTS` (default 5000) set the sizes.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use aether_domain::access::CollaborationStatus;
use aether_domain::events::{EventPublisher, OutboxEvent};
use aether_domain::id::{NotebookId, UserId};
use aether_domain::store::Store;
use aether_services::events::{EventDispatcher, InProcessBus};
use common::store::{new_notebook, new_user, set_access};

const USERS: usize = 200;
const LATENCY_SAMPLES: usize = 2_000;

fn size_from_env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|text| text.parse().ok()).unwrap_or(default)
}

fn percentiles(name: &str, samples: &mut [Duration]) -> (f64, f64) {
    samples.sort();
    let pick = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1000.0;
    println!(
        "{name:<58} {:>6} samples  p50 {:>7.3} ms  p95 {:>7.3} ms  p99 {:>7.3} ms  max {:>7.3} ms",
        samples.len(),
        pick(0.50),
        pick(0.95),
        pick(0.99),
        pick(1.0)
    );
    (pick(0.50), pick(0.99))
}

/// Writes `count` outbox events by granting `users` access to fresh notebooks.
async fn fill(store: &Arc<dyn Store>, owner: UserId, users: &[UserId], count: usize) {
    let started = Instant::now();
    let mut written = 0;
    let mut round = 0;
    while written < count {
        let notebook = new_notebook(store, owner, &format!("Outbox bench {round}")).await;
        for user in users.iter().take(count - written) {
            set_access(store, owner, notebook, *user, CollaborationStatus::Active).await;
            written += 1;
        }
        round += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!("filled the outbox with {count} events in {elapsed:.1} s ({:.0} grants/s)", count as f64 / elapsed);
}

/// Writes `count` outbox events spread over many keys: each of `owners` (with a
/// notebook of their own) grants in turn, so that a relay batch holds events of
/// many notebooks and many actors, as a busy deployment's outbox does.
async fn fill_spread(store: &Arc<dyn Store>, owners: &[(UserId, NotebookId)], users: &[UserId], count: usize) {
    assert!(count <= owners.len() * users.len(), "each grant needs a pair of its own");
    for i in 0..count {
        let (owner, notebook) = owners[i % owners.len()];
        set_access(store, owner, notebook, users[(i / owners.len()) % users.len()], CollaborationStatus::Active).await;
    }
}

/// Drains the outbox the way the relay loop does and prints events per second.
async fn drain(name: &str, dispatcher: &EventDispatcher, expected: usize) {
    let started = Instant::now();
    let mut published = 0;
    loop {
        let pass = dispatcher.dispatch(100).await.unwrap();
        assert!(!pass.failed, "{name}: publishing failed");
        published += pass.published;
        if pass.fetched == 0 {
            break;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    assert!(published >= expected, "{name}: {published} published, {expected} expected");
    println!(
        "relay drain to {name:<40} {published:>6} events in {elapsed:>6.2} s  {:>8.0} events/s",
        published as f64 / elapsed
    );
}

/// The Kafka publisher, with every event sent to one benchmark topic instead of
/// its own, so that the shared broker's real topics do not fill with bench records.
#[derive(Debug)]
struct BenchTopic {
    kafka: aether_events_kafka::KafkaPublisher,
    topic: String,
}

#[async_trait::async_trait]
impl EventPublisher for BenchTopic {
    async fn publish(&self, event: &OutboxEvent) -> Result<(), String> {
        let renamed = OutboxEvent { topic: self.topic.clone(), ..event.clone() };
        self.kafka.publish(&renamed).await
    }
}

/// Alternates a grant (with its outbox row) and a revocation (without) on the same
/// pairs, and prints both distributions and their difference.
async fn write_latency(
    name: &str,
    store: &Arc<dyn Store>,
    owner: UserId,
    notebook: NotebookId,
    users: &[UserId],
) -> ((f64, f64), (f64, f64)) {
    let mut with_outbox = Vec::with_capacity(LATENCY_SAMPLES);
    let mut without_outbox = Vec::with_capacity(LATENCY_SAMPLES);
    for i in 0..LATENCY_SAMPLES {
        let user = users[i % users.len()];
        let sent = Instant::now();
        set_access(store, owner, notebook, user, CollaborationStatus::Active).await;
        with_outbox.push(sent.elapsed());
        let sent = Instant::now();
        set_access(store, owner, notebook, user, CollaborationStatus::Revoked).await;
        without_outbox.push(sent.elapsed());
    }
    let with = percentiles(&format!("grant, with its outbox row ({name})"), &mut with_outbox);
    let without = percentiles(&format!("revoke, same transaction without one ({name})"), &mut without_outbox);
    println!(
        "{:<58} p50 {:>+7.3} ms  p99 {:>+7.3} ms",
        format!("outbox row adds ({name})"),
        with.0 - without.0,
        with.1 - without.1
    );
    (with, without)
}

#[tokio::main]
async fn main() {
    let events = size_from_env("AETHER_BENCH_OUTBOX_EVENTS", 20_000);
    let kafka_events = size_from_env("AETHER_BENCH_KAFKA_EVENTS", 5_000);
    let app = common::TestApp::spawn_with(|config| config.run_workers = false).await;
    let store = Arc::clone(&app.server.runtime.store);
    println!("outbox bench: store {:?}", app.server.runtime.config.store);
    let owner = new_user(&store, "outbox-owner").await;
    let mut users = Vec::with_capacity(USERS);
    for i in 0..USERS {
        users.push(new_user(&store, &format!("outbox-guest-{i}")).await);
    }

    // Relay throughput to the in-process bus, with one subscriber keeping up, as the
    // embedded shape runs it.
    fill(&store, owner, &users, events).await;
    let bus = Arc::new(InProcessBus::new(1024));
    let mut subscriber = bus.subscribe();
    let listener = tokio::spawn(async move {
        let mut received = 0_usize;
        loop {
            match subscriber.recv().await {
                Ok(_) => received += 1,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => received += missed as usize,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return received,
            }
        }
    });
    let in_process = EventDispatcher::new(store.clone(), Arc::clone(&bus) as Arc<dyn EventPublisher>);
    drain("the in-process bus", &in_process, events).await;
    drop(in_process);
    drop(bus);
    println!("the bus subscriber received {} events", listener.await.unwrap());

    // Relay throughput to Kafka (acks=all, idempotent producer): the events of one
    // key are sent one after another, each acknowledged before the next; different
    // keys at the same time. First one owner granting on few notebooks (two keys
    // make up most of each batch), then 50 owners on notebooks of their own.
    match std::env::var("AETHER_TEST_KAFKA_BROKERS") {
        Ok(brokers) => {
            let kafka = aether_events_kafka::KafkaPublisher::new(&brokers).unwrap();
            let topic = format!("aether.bench.{}", uuid::Uuid::now_v7().simple());
            let publisher = Arc::new(BenchTopic { kafka, topic: topic.clone() });
            let to_kafka = EventDispatcher::new(store.clone(), publisher as Arc<dyn EventPublisher>);
            fill(&store, owner, &users, kafka_events).await;
            drain(&format!("Kafka, one owner ({brokers})"), &to_kafka, kafka_events).await;
            let mut owners = Vec::with_capacity(50);
            for i in 0..50 {
                let spread_owner = new_user(&store, &format!("outbox-owner-{i}")).await;
                owners.push((spread_owner, new_notebook(&store, spread_owner, &format!("Spread {i}")).await));
            }
            while !store.pending_events(100).await.unwrap().is_empty() {
                to_kafka.dispatch(100).await.unwrap();
            }
            fill_spread(&store, &owners, &users, kafka_events).await;
            drain(&format!("Kafka, 50 owners ({brokers})"), &to_kafka, kafka_events).await;
        }
        Err(_) => println!("relay drain to Kafka: not measured (set AETHER_TEST_KAFKA_BROKERS)"),
    }

    // The latency the outbox adds to a write, with nothing draining the outbox ...
    let notebook = new_notebook(&store, owner, "Outbox latency").await;
    write_latency("relay idle", &store, owner, notebook, &users).await;
    // ... and with a relay draining it alongside (to the in-process bus, every 250 ms
    // or at once after a full batch, like the server's relay loop).
    let relay = EventDispatcher::new(store.clone(), Arc::new(InProcessBus::new(1024)) as Arc<dyn EventPublisher>);
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let relay_task = tokio::spawn(async move {
        while !*stopped.borrow() {
            let pass = relay.dispatch(100).await.unwrap();
            if pass.fetched < 100 {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                    _ = stopped.changed() => {}
                }
            }
        }
    });
    write_latency("relay running", &store, owner, notebook, &users).await;
    let _ = stop.send(true);
    relay_task.await.unwrap();
    app.shutdown().await;
}
