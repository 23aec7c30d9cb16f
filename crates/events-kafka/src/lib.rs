//! The production [`EventPublisher`]: each outbox event becomes one Kafka record on
//! its topic, keyed by the event's key (so a notebook's events stay in order on one
//! partition). The record's value is the event as CloudEvents 1.0 JSON (structured
//! mode, `content-type: application/cloudevents+json` as the Kafka protocol binding
//! says), and the event id and creation time are also headers, for consumers that
//! deduplicate without parsing the value. Delivery is awaited: an event is marked published only once Kafka
//! has acknowledged it (`acks=all`, idempotent producer).

mod jobs;

use std::time::Duration;

use aether_domain::events::{CLOUD_EVENTS_CONTENT_TYPE, EventPublisher, OutboxEvent};
use aether_domain::time;
use async_trait::async_trait;
use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

pub use jobs::{KafkaJobQueue, ensure_jobs_topic};

pub struct KafkaPublisher {
    producer: FutureProducer,
    brokers: String,
}

impl std::fmt::Debug for KafkaPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaPublisher").field("brokers", &self.brokers).finish_non_exhaustive()
    }
}

impl KafkaPublisher {
    /// Creates the producer; `brokers` is Kafka's `bootstrap.servers` list.
    pub fn new(brokers: &str) -> Result<Self, String> {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", "10000")
            // The relay awaits each event's acknowledgement before sending the next (to
            // keep order across failures), so there is never a second record to batch
            // with: waiting the default 5 ms for one would only cap the relay at about
            // 170 events per second.
            .set("linger.ms", "0")
            .create()
            .map_err(|error| format!("cannot create the Kafka producer: {error}"))?;
        Ok(Self { producer, brokers: brokers.to_owned() })
    }

    /// Whether the brokers answer, for `/ready`.
    pub fn ping(&self) -> Result<(), String> {
        self.producer
            .client()
            .fetch_metadata(None, Duration::from_secs(3))
            .map(|_| ())
            .map_err(|error| format!("kafka unreachable: {error}"))
    }
}

#[async_trait]
impl EventPublisher for KafkaPublisher {
    async fn publish(&self, event: &OutboxEvent) -> Result<(), String> {
        let id = event.id.to_string();
        let created_at = time::to_storage(&event.created_at);
        let payload = event.cloud_event().to_string();
        let headers = OwnedHeaders::new()
            .insert(Header { key: "content-type", value: Some(CLOUD_EVENTS_CONTENT_TYPE) })
            .insert(Header { key: "event_id", value: Some(id.as_str()) })
            .insert(Header { key: "created_at", value: Some(created_at.as_str()) });
        let record = FutureRecord::to(&event.topic).key(&event.key).payload(&payload).headers(headers);
        self.producer
            .send(record, Duration::from_secs(10))
            .await
            .map(|_| ())
            .map_err(|(error, _)| format!("kafka delivery failed: {error}"))
    }
}
