//! Live views: the one mechanism every view that changes under a client's eyes is
//! built on (upload progress today; notifications, feeds, agent output and
//! workflow progress reuse it).
//!
//! - [`Topics`]: keyed in-process channels. A service publishes a change under a
//!   key right after the change commits, and every subscriber of that key in this
//!   process has it at once. A key's channel exists only while someone subscribes
//!   to it: the last [`Subscription`] to go removes it.
//! - [`Update`]: a change as its subscribers receive it, allocated once per change
//!   (not once per subscriber) and rendered for the wire at most once.
//! - [`Received::Missed`]: a subscriber that fell behind its channel's capacity is
//!   told so instead of being buffered for without bound; the view then reads its
//!   state again from the store (a resync).
//!
//! Changes made by another replica arrive through that service's fan-out as notices
//! without state; the service reads the state from the store and publishes it here
//! ([`crate::documents::DocumentService::job_changed_elsewhere`]), so a late notice
//! never shows anything older than the store.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::broadcast;

/// A change, shared by every subscriber that receives it.
#[derive(Debug)]
pub struct Update<V> {
    value: V,
    rendered: OnceLock<Bytes>,
    /// When the change was published here: a socket reports the time from here to
    /// its write as the delivery latency. `None` for state read from the store.
    published_at: Option<Instant>,
}

impl<V> Update<V> {
    /// A change about to be published.
    pub fn new(value: V) -> Arc<Self> {
        Arc::new(Self { value, rendered: OnceLock::new(), published_at: Some(Instant::now()) })
    }

    /// State read from the store (a view's start, or a resync): not a change anyone
    /// published, so it has no delivery latency.
    pub fn read(value: V) -> Arc<Self> {
        Arc::new(Self { value, rendered: OnceLock::new(), published_at: None })
    }

    pub fn value(&self) -> &V {
        &self.value
    }

    pub fn published_at(&self) -> Option<Instant> {
        self.published_at
    }

    /// The change as sent to clients. Every subscriber in this process shows a change
    /// the same way, so the first to send it renders it and the others reuse the
    /// bytes: one serialisation per change, not one per socket.
    pub fn rendered(&self, render: impl FnOnce(&V) -> Bytes) -> Bytes {
        self.rendered.get_or_init(|| render(&self.value)).clone()
    }
}

/// What a subscription receives next.
#[derive(Debug)]
pub enum Received<V> {
    Update(Arc<Update<V>>),
    /// Changes were dropped because the subscriber fell behind: read the state again.
    Missed,
}

type Sender<V> = broadcast::Sender<Arc<Update<V>>>;

/// The channels of one kind of live view, by key (a job, a notebook, a user …).
pub struct Topics<K, V> {
    /// For metrics: which view these are.
    view: &'static str,
    /// Changes a subscriber may be behind before it is told it missed some.
    capacity: usize,
    channels: Mutex<HashMap<K, Sender<V>>>,
}

impl<K, V> fmt::Debug for Topics<K, V> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_struct("Topics").field("view", &self.view).field("capacity", &self.capacity).finish()
    }
}

impl<K, V> Topics<K, V>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    pub fn new(view: &'static str, capacity: usize) -> Arc<Self> {
        Arc::new(Self { view, capacity: capacity.max(1), channels: Mutex::new(HashMap::new()) })
    }

    fn channels(&self) -> std::sync::MutexGuard<'_, HashMap<K, Sender<V>>> {
        self.channels.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Passes a change to the key's subscribers in this process; whether there were any.
    pub fn publish(&self, key: &K, update: &Arc<Update<V>>) -> bool {
        let channels = self.channels();
        let Some(sender) = channels.get(key) else { return false };
        let delivered = sender.send(Arc::clone(update)).is_ok();
        if delivered {
            metrics::counter!("aether_live_updates_total", "view" => self.view).increment(1);
        }
        delivered
    }

    /// Whether anyone in this process follows the key.
    pub fn is_followed(&self, key: &K) -> bool {
        self.channels().get(key).is_some_and(|sender| sender.receiver_count() > 0)
    }

    /// How many keys are followed in this process now.
    pub fn followed(&self) -> usize {
        self.channels().len()
    }

    /// The keys followed in this process now.
    pub fn keys(&self) -> Vec<K> {
        self.channels().keys().cloned().collect()
    }

    /// Every change published under `key` from now on, until the subscription is dropped.
    pub fn subscribe(self: &Arc<Self>, key: K) -> Subscription<K, V> {
        let mut channels = self.channels();
        let receiver = channels.entry(key.clone()).or_insert_with(|| broadcast::channel(self.capacity).0).subscribe();
        metrics::gauge!("aether_live_channels", "view" => self.view).set(channels.len() as f64);
        Subscription { topics: Arc::clone(self), key, receiver: Some(receiver) }
    }
}

/// One subscriber's place on a key's channel.
pub struct Subscription<K, V>
where
    K: Eq + Hash,
{
    topics: Arc<Topics<K, V>>,
    key: K,
    /// Always `Some` until dropped; taken in `drop` to count the receivers left.
    receiver: Option<broadcast::Receiver<Arc<Update<V>>>>,
}

impl<K: Eq + Hash, V> fmt::Debug for Subscription<K, V> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_struct("Subscription").field("view", &self.topics.view).finish_non_exhaustive()
    }
}

impl<K, V> Subscription<K, V>
where
    K: Eq + Hash,
    V: Send + Sync + 'static,
{
    /// The next change; waits for one. Never ends: the channel lives as long as this
    /// subscription.
    pub async fn next(&mut self) -> Received<V> {
        let Some(receiver) = self.receiver.as_mut() else { return std::future::pending().await };
        match receiver.recv().await {
            Ok(update) => Received::Update(update),
            Err(broadcast::error::RecvError::Lagged(_)) => self.missed(),
            // Cannot happen while this subscription holds its key's channel open.
            Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
        }
    }

    /// A change that has already arrived, without waiting: lets a view that was busy
    /// send only the latest state of what changed meanwhile.
    pub fn ready(&mut self) -> Option<Received<V>> {
        match self.receiver.as_mut()?.try_recv() {
            Ok(update) => Some(Received::Update(update)),
            Err(broadcast::error::TryRecvError::Lagged(_)) => Some(self.missed()),
            Err(_) => None,
        }
    }

    fn missed(&self) -> Received<V> {
        metrics::counter!("aether_live_resyncs_total", "view" => self.topics.view).increment(1);
        Received::Missed
    }
}

impl<K, V> Drop for Subscription<K, V>
where
    K: Eq + Hash,
{
    fn drop(&mut self) {
        drop(self.receiver.take());
        let mut channels = self.topics.channels.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if channels.get(&self.key).is_some_and(|sender| sender.receiver_count() == 0) {
            channels.remove(&self.key);
        }
        metrics::gauge!("aether_live_channels", "view" => self.topics.view).set(channels.len() as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(received: Received<u32>) -> Option<u32> {
        match received {
            Received::Update(update) => Some(*update.value()),
            Received::Missed => None,
        }
    }

    #[tokio::test]
    async fn subscribers_of_a_key_get_its_changes_and_nothing_else() {
        let topics = Topics::<&str, u32>::new("test", 8);
        let mut first = topics.subscribe("a");
        let mut second = topics.subscribe("a");
        let mut other = topics.subscribe("b");
        assert!(topics.publish(&"a", &Update::new(1)));
        assert!(!topics.publish(&"c", &Update::new(2)), "nobody follows c");
        assert_eq!(value(first.next().await), Some(1));
        assert_eq!(value(second.next().await), Some(1));
        assert!(other.ready().is_none(), "b saw a change of a");
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_is_told_it_missed_changes() {
        let topics = Topics::<u8, u32>::new("test", 2);
        let mut slow = topics.subscribe(1);
        for change in 0..5 {
            topics.publish(&1, &Update::new(change));
        }
        assert!(matches!(slow.next().await, Received::Missed));
        // Then the changes still held, newest last.
        assert_eq!(value(slow.next().await), Some(3));
        assert_eq!(value(slow.ready().expect("a change waiting")), Some(4));
        assert!(slow.ready().is_none());
    }

    #[test]
    fn a_key_s_channel_lives_as_long_as_its_subscribers() {
        let topics = Topics::<u8, u32>::new("test", 4);
        let first = topics.subscribe(1);
        let second = topics.subscribe(1);
        assert!(topics.is_followed(&1));
        drop(first);
        assert!(topics.is_followed(&1));
        assert_eq!(topics.followed(), 1);
        drop(second);
        assert!(!topics.is_followed(&1));
        assert_eq!(topics.followed(), 0, "the channel, and the changes it held, went with its last subscriber");
    }

    #[test]
    fn an_update_is_rendered_once_for_every_subscriber() {
        let update = Update::new(7_u32);
        let renders = std::sync::atomic::AtomicUsize::new(0);
        let render = |value: &u32| {
            renders.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Bytes::from(value.to_string())
        };
        assert_eq!(update.rendered(render), "7");
        assert_eq!(update.rendered(render), "7");
        assert_eq!(renders.load(std::sync::atomic::Ordering::Relaxed), 1);
    }
}
