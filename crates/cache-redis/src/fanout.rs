//! Job changes across replicas over Redis pub/sub. A notice names the job and its
//! notebook and carries no state: the replica that receives it reads the job from
//! the store, so a late or repeated notice can never show anything older than the
//! store holds. Pub/sub delivers to whoever listens at that moment and keeps
//! nothing, which is what progress needs: a lost notice costs one socket update,
//! and sockets re-read their jobs now and then anyway.

use std::sync::Arc;
use std::time::Duration;

use aether_domain::id::{JobId, NotebookId};
use aether_domain::job::JobFanout;
use futures::StreamExt as _;
use redis::aio::ConnectionManager;
use tokio::sync::{mpsc, watch};

use crate::{RedisEphemeralStore, map_err};

/// Notices waiting to be published; beyond this, new ones are dropped (and counted)
/// rather than slowing the uploads and workers that raise them.
const QUEUE: usize = 4096;

/// How often the listener checks that its connection still answers: a vanished
/// network drops no TCP connection, and a silent subscription would miss every
/// notice without noticing.
const LISTENER_PING: Duration = Duration::from_secs(15);

/// The [`JobFanout`] on Redis: `announce` queues the notice; a background task
/// publishes it on the channel every replica listens to.
#[derive(Debug, Clone)]
pub struct RedisJobFanout {
    queue: mpsc::Sender<String>,
    origin: Arc<str>,
}

impl RedisEphemeralStore {
    /// The fan-out on this connection, with `origin` naming this process (its own
    /// notices come back to it and are ignored). Starts the publishing task, so it
    /// must be called inside the tokio runtime.
    pub fn job_fanout(&self, origin: &str) -> RedisJobFanout {
        let (queue, notices) = mpsc::channel(QUEUE);
        tokio::spawn(publish(self.redis.connection(), self.key("jobs"), notices));
        RedisJobFanout { queue, origin: origin.into() }
    }

    /// The channel job notices travel on.
    pub fn job_channel(&self) -> String {
        self.key("jobs")
    }
}

impl JobFanout for RedisJobFanout {
    fn announce(&self, job: JobId, notebook: NotebookId) {
        let notice = format!("{} {job} {notebook}", self.origin);
        if self.queue.try_send(notice).is_err() {
            metrics::counter!("aether_job_notices_dropped_total").increment(1);
        }
    }
}

async fn publish(mut connection: ConnectionManager, channel: String, mut notices: mpsc::Receiver<String>) {
    while let Some(notice) = notices.recv().await {
        let published: Result<u64, _> =
            redis::cmd("PUBLISH").arg(&channel).arg(&notice).query_async(&mut connection).await;
        if let Err(error) = published {
            metrics::counter!("aether_dependency_errors_total", "dependency" => "redis_fanout").increment(1);
            tracing::debug!(error = %map_err(error), "could not publish a job notice");
        }
    }
}

/// Listens to the job channel until `shutdown`, calling `deliver` with every notice
/// another process sent, and reconnects (with a growing pause) whenever Redis goes
/// away.
pub async fn listen_for_job_changes<F, Fut>(
    url: &str,
    channel: &str,
    origin: &str,
    deliver: F,
    mut shutdown: watch::Receiver<bool>,
) where
    F: Fn(JobId, NotebookId) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut pause = Duration::from_millis(250);
    loop {
        let stopping = *shutdown.borrow();
        if stopping {
            return;
        }
        match subscribe(url, channel).await {
            Ok((mut sink, mut stream)) => {
                tracing::debug!(%channel, "listening for job changes of other replicas");
                pause = Duration::from_millis(250);
                let mut ping = tokio::time::interval(LISTENER_PING);
                ping.tick().await;
                loop {
                    // The branches only pick what to do: awaiting inside one would keep
                    // the shutdown watch's guard alive across the await.
                    let message = tokio::select! {
                        message = stream.next() => match message {
                            Some(message) => Some(message),
                            None => break,
                        },
                        _ = ping.tick() => None,
                        _ = shutdown.wait_for(|stop| *stop) => return,
                    };
                    match message {
                        Some(message) => {
                            let Ok(text) = message.get_payload::<String>() else { continue };
                            if let Some((job, notebook)) = parse_notice(&text, origin) {
                                deliver(job, notebook).await;
                            }
                        }
                        None => {
                            let answered = tokio::time::timeout(Duration::from_secs(5), sink.ping::<String>()).await;
                            if !matches!(answered, Ok(Ok(_))) {
                                break;
                            }
                        }
                    }
                }
                tracing::warn!(%channel, "lost the job-change subscription; reconnecting");
            }
            Err(error) => {
                metrics::counter!("aether_dependency_errors_total", "dependency" => "redis_fanout").increment(1);
                tracing::warn!(%error, "cannot subscribe to job changes; will retry");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

async fn subscribe(
    url: &str,
    channel: &str,
) -> Result<(redis::aio::PubSubSink, redis::aio::PubSubStream), aether_domain::StoreError> {
    let client = redis::Client::open(url).map_err(map_err)?;
    let pubsub = tokio::time::timeout(Duration::from_secs(5), client.get_async_pubsub())
        .await
        .map_err(|_| aether_domain::StoreError::Unavailable("redis: connection timed out".into()))?
        .map_err(map_err)?;
    let (mut sink, stream) = pubsub.split();
    sink.subscribe(channel).await.map_err(map_err)?;
    Ok((sink, stream))
}

/// `<origin> <job id> <notebook id>`; notices of `own_origin` and malformed ones
/// are ignored.
fn parse_notice(text: &str, own_origin: &str) -> Option<(JobId, NotebookId)> {
    let mut parts = text.split(' ');
    let origin = parts.next()?;
    if origin == own_origin {
        return None;
    }
    let job = JobId::parse(parts.next()?).ok()?;
    let notebook = NotebookId::parse(parts.next()?).ok()?;
    Some((job, notebook))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_from_others_are_parsed_and_own_ones_ignored() {
        let job = JobId::new();
        let notebook = NotebookId::new();
        let text = format!("replica-a {job} {notebook}");
        assert_eq!(parse_notice(&text, "replica-b"), Some((job, notebook)));
        assert_eq!(parse_notice(&text, "replica-a"), None);
        assert_eq!(parse_notice("replica-a not-a-uuid", "replica-b"), None);
        assert_eq!(parse_notice("", "replica-b"), None);
    }
}
