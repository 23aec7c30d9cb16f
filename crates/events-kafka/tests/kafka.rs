//! Publishes to a live Kafka broker and reads the record back. The broker is named
//! by `AETHER_TEST_KAFKA_BROKERS`; `scripts/test` starts one and makes it required.

use std::time::Duration;

use aether_domain::events::{EventPublisher, OutboxEvent};
use aether_events_kafka::KafkaPublisher;
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Headers;

fn brokers() -> Option<String> {
    let required = std::env::var("AETHER_TEST_REQUIRE_SERVICES").is_ok_and(|v| v == "1");
    match std::env::var("AETHER_TEST_KAFKA_BROKERS") {
        Ok(brokers) => Some(brokers),
        Err(_) if required => panic!("AETHER_TEST_REQUIRE_SERVICES=1 but AETHER_TEST_KAFKA_BROKERS is not set"),
        Err(_) => {
            eprintln!("NOT RUN: set AETHER_TEST_KAFKA_BROKERS (scripts/test does) to check the Kafka publisher");
            None
        }
    }
}

#[tokio::test]
async fn published_events_arrive_with_key_and_headers() {
    let Some(brokers) = brokers() else { return };
    let publisher = KafkaPublisher::new(&brokers).expect("producer");
    publisher.ping().expect("kafka answers");
    let topic = format!("aether.test.{}", uuid::Uuid::now_v7().simple());
    let event = OutboxEvent {
        id: uuid::Uuid::now_v7(),
        topic: topic.clone(),
        key: "notebook-1".into(),
        payload: serde_json::json!({"notebook_id": "notebook-1", "permission": "read"}),
        created_at: aether_domain::time::now(),
    };
    publisher.publish(&event).await.expect("delivered");

    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", format!("aether-test-{}", uuid::Uuid::now_v7().simple()))
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic.as_str()]).expect("subscribe");
    let message = tokio::time::timeout(Duration::from_secs(30), consumer.recv()).await.expect("a record").expect("ok");
    assert_eq!(message.key(), Some(&b"notebook-1"[..]));
    let payload: serde_json::Value = serde_json::from_slice(message.payload().expect("payload")).expect("json");
    assert_eq!(payload, event.cloud_event(), "the value is the event as CloudEvents 1.0 JSON");
    assert_eq!(payload["data"], event.payload);
    let headers = message.headers().expect("headers");
    let content_type = headers.iter().find(|header| header.key == "content-type").and_then(|header| header.value);
    assert_eq!(content_type, Some(&b"application/cloudevents+json"[..]));
    let event_id = headers.iter().find(|header| header.key == "event_id").and_then(|header| header.value);
    assert_eq!(event_id, Some(event.id.to_string().as_bytes()));
}

#[tokio::test]
async fn an_unreachable_broker_fails_delivery() {
    if brokers().is_none() {
        return;
    }
    let publisher = KafkaPublisher::new("127.0.0.1:9").expect("producer");
    assert!(publisher.ping().is_err());
}
