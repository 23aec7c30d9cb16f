//! The document workers' queue on Kafka. The outbox publishes one record per job
//! ready to be processed on `aether.documents.jobs`, keyed by job id; every worker
//! loop of every `aether worker` process is a member of one consumer group, so each
//! record goes to one of them. A record's offset is stored only once its job is
//! handled: when a worker dies, the group gives its partitions to the survivors,
//! which receive the unhandled record again and take the job over.

use std::time::Duration;

use aether_domain::events::topics;
use aether_domain::id::JobId;
use aether_domain::job::{JobQueue, QueuedJob};
use async_trait::async_trait;
use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

/// A consumer-group member reading the jobs topic.
pub struct KafkaJobQueue {
    consumer: StreamConsumer,
    group: String,
}

impl std::fmt::Debug for KafkaJobQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaJobQueue").field("group", &self.group).finish_non_exhaustive()
    }
}

impl KafkaJobQueue {
    /// Joins `group` on the jobs topic. `longest_job` bounds how long a job may keep
    /// its worker from asking for the next one before the group presumes it dead.
    pub fn join(brokers: &str, group: &str, longest_job: Duration) -> Result<Self, String> {
        let max_poll = longest_job.as_millis().clamp(60_000, 24 * 3_600_000).to_string();
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", group)
            // Offsets are stored by `done` only, and committed in the background.
            .set("enable.auto.commit", "true")
            .set("enable.auto.offset.store", "false")
            // A new group starts with the jobs already waiting.
            .set("auto.offset.reset", "earliest")
            // A dead worker's partitions move to the others after 10 s.
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "2000")
            .set("max.poll.interval.ms", &max_poll)
            .set("partition.assignment.strategy", "roundrobin")
            .create()
            .map_err(|error| format!("cannot create the Kafka consumer: {error}"))?;
        consumer
            .subscribe(&[topics::DOCUMENTS_JOBS])
            .map_err(|error| format!("cannot subscribe to {}: {error}", topics::DOCUMENTS_JOBS))?;
        Ok(Self { consumer, group: group.to_owned() })
    }

    fn store_offset(&self, partition: i32, offset: i64) -> Result<(), String> {
        let mut list = TopicPartitionList::new();
        list.add_partition_offset(topics::DOCUMENTS_JOBS, partition, Offset::Offset(offset + 1))
            .map_err(|error| error.to_string())?;
        self.consumer.store_offsets(&list).map_err(|error| format!("cannot store the offset: {error}"))
    }
}

#[async_trait]
impl JobQueue for KafkaJobQueue {
    async fn next(&self) -> Result<QueuedJob, String> {
        loop {
            let message = self.consumer.recv().await.map_err(|error| format!("kafka: {error}"))?;
            let (partition, offset) = (message.partition(), message.offset());
            match message.payload().and_then(job_of) {
                Some(job) => return Ok(QueuedJob { job, position: (partition, offset) }),
                None => {
                    tracing::warn!(partition, offset, "skipping a record of the jobs topic that names no job");
                    self.store_offset(partition, offset)?;
                }
            }
        }
    }

    async fn done(&self, entry: &QueuedJob) -> Result<(), String> {
        self.store_offset(entry.position.0, entry.position.1)
    }
}

/// The job id of a record: a CloudEvent whose `data` names it, or the bare payload.
fn job_of(payload: &[u8]) -> Option<JobId> {
    let value: serde_json::Value = serde_json::from_slice(payload).ok()?;
    let id = value.get("data").and_then(|data| data.get("job_id")).or_else(|| value.get("job_id"))?;
    JobId::parse(id.as_str()?).ok()
}

/// Creates the jobs topic with `partitions` partitions, or grows it to that many:
/// a group shares a topic's load over at most as many workers as it has partitions.
///
/// `replication` is the topic's replication factor; 0 leaves it to the broker's
/// `default.replication.factor` (production clusters set 3 there, a test broker 1).
pub async fn ensure_jobs_topic(brokers: &str, partitions: i32, replication: u16) -> Result<(), String> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .map_err(|error| format!("cannot create the Kafka admin client: {error}"))?;
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let replication = if replication == 0 { -1 } else { i32::from(replication) };
    let topic = NewTopic::new(topics::DOCUMENTS_JOBS, partitions, TopicReplication::Fixed(replication));
    let created = admin.create_topics([&topic], &options).await.map_err(|error| format!("kafka: {error}"))?;
    for result in created {
        match result {
            Ok(_) => tracing::info!(topic = topics::DOCUMENTS_JOBS, partitions, "created the jobs topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {
                let current = partition_count(&admin)?;
                if current < partitions {
                    let grow = NewPartitions::new(topics::DOCUMENTS_JOBS, usize::try_from(partitions).unwrap_or(1));
                    admin.create_partitions([&grow], &options).await.map_err(|error| format!("kafka: {error}"))?;
                    tracing::info!(from = current, to = partitions, "grew the jobs topic");
                }
            }
            Err((topic, code)) => return Err(format!("cannot create {topic}: {code}")),
        }
    }
    Ok(())
}

fn partition_count(admin: &AdminClient<DefaultClientContext>) -> Result<i32, String> {
    let metadata = admin
        .inner()
        .fetch_metadata(Some(topics::DOCUMENTS_JOBS), Duration::from_secs(10))
        .map_err(|error| format!("kafka: {error}"))?;
    Ok(metadata.topics().first().map_or(0, |topic| i32::try_from(topic.partitions().len()).unwrap_or(i32::MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_name_their_job_as_cloud_events_or_bare_payloads() {
        let job = JobId::new();
        let cloud_event = serde_json::json!({"specversion": "1.0", "data": {"job_id": job.to_string()}});
        assert_eq!(job_of(cloud_event.to_string().as_bytes()), Some(job));
        let bare = serde_json::json!({"job_id": job.to_string()});
        assert_eq!(job_of(bare.to_string().as_bytes()), Some(job));
        assert_eq!(job_of(b"not json"), None);
        assert_eq!(job_of(br#"{"job_id": "nope"}"#), None);
    }
}
