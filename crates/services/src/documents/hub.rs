//! Job changes as subscribers see them: the [`JobHub`] that passes each change to
//! this process's subscribers and announces it to other replicas, and the streams
//! a WebSocket forwards (`DocumentService::follow_job`, `follow_notebook`), which
//! read what they show from the store and send only what changed.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aether_domain::access::Permission;
use aether_domain::auth::Principal;
use aether_domain::id::{JobId, NotebookId};
use aether_domain::job::{JobFanout, JobStatus, UploadJob};
use aether_domain::page::{Limit, PageRequest};
use aether_domain::store::JobStore;
use aether_domain::time::Timestamp;
use futures::stream::{self, BoxStream, StreamExt as _};
use tokio::sync::broadcast;

use super::DocumentService;
use crate::access::Authorizer;
use crate::error::ServiceResult;

/// Job changes, for WebSocket and callback subscribers. Missing an update is
/// harmless: subscribers also read the job from the store now and then.
///
/// Changes made here reach this process's subscribers at once and, through the
/// [`JobFanout`], the other replicas, which read the job from the store and pass it
/// to their own subscribers ([`DocumentService::job_changed_elsewhere`]).
#[derive(Debug, Default)]
pub struct JobHub {
    channels: Mutex<HashMap<JobId, broadcast::Sender<UploadJob>>>,
    /// Every job of a notebook, for the notebook's upload socket.
    notebooks: Mutex<HashMap<NotebookId, broadcast::Sender<UploadJob>>>,
    fanout: Option<Arc<dyn JobFanout>>,
}

impl JobHub {
    /// A hub that also tells other replicas about every change.
    pub fn with_fanout(fanout: Arc<dyn JobFanout>) -> Self {
        Self { fanout: Some(fanout), ..Self::default() }
    }

    /// A change made in this process.
    pub fn publish(&self, job: &UploadJob) {
        self.publish_here(job);
        if let Some(fanout) = &self.fanout {
            fanout.announce(job.id, job.notebook_id);
        }
    }

    /// Passes a job to this process's subscribers only.
    pub fn publish_here(&self, job: &UploadJob) {
        {
            let mut channels = self.channels.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Some(sender) = channels.get(&job.id) {
                let _ = sender.send(job.clone());
                if job.status.is_terminal() || sender.receiver_count() == 0 {
                    channels.remove(&job.id);
                }
            }
        }
        let mut notebooks = self.notebooks.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(sender) = notebooks.get(&job.notebook_id)
            && sender.send(job.clone()).is_err()
        {
            notebooks.remove(&job.notebook_id);
        }
    }

    /// Whether anyone here follows the job or its notebook.
    pub fn is_followed(&self, job: JobId, notebook: NotebookId) -> bool {
        let followed = |count: usize| count > 0;
        let channels = self.channels.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if channels.get(&job).is_some_and(|sender| followed(sender.receiver_count())) {
            return true;
        }
        drop(channels);
        let notebooks = self.notebooks.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        notebooks.get(&notebook).is_some_and(|sender| followed(sender.receiver_count()))
    }

    /// Every change of every job of the notebook.
    pub fn subscribe_notebook(&self, id: NotebookId) -> broadcast::Receiver<UploadJob> {
        let mut notebooks = self.notebooks.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        notebooks.entry(id).or_insert_with(|| broadcast::channel(256).0).subscribe()
    }

    pub fn subscribe(&self, id: JobId) -> broadcast::Receiver<UploadJob> {
        let mut channels = self.channels.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        channels.entry(id).or_insert_with(|| broadcast::channel(64).0).subscribe()
    }
}

impl DocumentService {
    /// Another replica changed a job: when someone here follows it, read it from
    /// the store (the notice carries no state, so it can never be staler than the
    /// store) and pass it on.
    pub async fn job_changed_elsewhere(&self, job: JobId, notebook: NotebookId) {
        if !self.hub.is_followed(job, notebook) {
            return;
        }
        match self.store.jobs.get_job(job).await {
            Ok(current) => self.hub.publish_here(&current),
            Err(error) => tracing::debug!(%error, job_id = %job, "could not read a job changed elsewhere"),
        }
    }

    /// A job as the caller may follow it: the job now, then each change of it, until
    /// it has finished (the stream ends after the finished job) or can no longer be
    /// read. Changes arrive through the hub; the store is also read every `poll`
    /// for changes no notice brought (no fan-out, or a notice lost). `NotFound` when
    /// the caller may not read the job.
    pub async fn follow_job(
        &self,
        caller: &Principal,
        id: JobId,
        poll: Duration,
    ) -> ServiceResult<BoxStream<'static, UploadJob>> {
        let job = self.job(caller, id).await?;
        let updates = self.hub.subscribe(job.id);
        Ok(follow_job(Arc::clone(&self.store.jobs), updates, job, poll).boxed())
    }

    /// Every upload job of a notebook the caller may read: its unfinished jobs now,
    /// then each job whenever it changes (including when it finishes). Changes come
    /// pushed through the hub; the notebook's recent jobs are read again every
    /// `poll` (a safety net for notices lost between replicas) and at once when the
    /// subscriber fell behind the hub. The caller's permission is checked again at
    /// each re-read and whenever a permission changes in this process; the stream
    /// ends when that check fails. `NotFound` when the caller may not read the
    /// notebook.
    pub async fn follow_notebook(
        &self,
        caller: &Principal,
        notebook: NotebookId,
        poll: Duration,
    ) -> ServiceResult<BoxStream<'static, UploadJob>> {
        // Checks read access, and gives the jobs to start with.
        let active = self.notebook_jobs(caller, notebook, true, recent_jobs()).await?;
        let follower = NotebookFollower {
            access: self.access.clone(),
            store: Arc::clone(&self.store.jobs),
            caller: caller.clone(),
            notebook,
            updates: self.hub.subscribe_notebook(notebook),
            access_changes: self.access.reads().watch_access(),
            poll,
            initial: active.items.into(),
            seen: HashMap::new(),
            fresh: VecDeque::new(),
        };
        Ok(stream::unfold(follower, |mut follower| async move {
            let job = follower.next().await?;
            Some((job, follower))
        })
        .boxed())
    }
}

/// The first page of a notebook's jobs, newest first.
fn recent_jobs() -> PageRequest {
    PageRequest { limit: Limit::parse(100).unwrap_or_default(), after: None }
}

/// Whether `current` shows something `last` did not.
fn differs(current: &UploadJob, last: &UploadJob) -> bool {
    current.updated_at != last.updated_at
        || current.status != last.status
        || current.bytes_received != last.bytes_received
}

fn follow_job(
    store: Arc<dyn JobStore>,
    updates: broadcast::Receiver<UploadJob>,
    job: UploadJob,
    poll: Duration,
) -> impl futures::Stream<Item = UploadJob> + Send + 'static {
    struct Follower {
        store: Arc<dyn JobStore>,
        updates: broadcast::Receiver<UploadJob>,
        poll: Duration,
        last: UploadJob,
        started: bool,
    }
    let follower = Follower { store, updates, poll, last: job, started: false };
    stream::unfold(follower, |mut follower| async move {
        if !follower.started {
            follower.started = true;
            return Some((follower.last.clone(), follower));
        }
        while !follower.last.status.is_terminal() {
            let next = tokio::select! {
                update = follower.updates.recv() => update.ok(),
                // Changes nobody announced here (no fan-out, or a lost notice).
                () = tokio::time::sleep(follower.poll) => None,
            };
            let current = match next {
                Some(job) => job,
                None => follower.store.get_job(follower.last.id).await.ok()?,
            };
            if differs(&current, &follower.last) {
                follower.last = current.clone();
                return Some((current, follower));
            }
        }
        None
    })
}

/// The state of one notebook's job stream.
struct NotebookFollower {
    access: Authorizer,
    store: Arc<dyn JobStore>,
    caller: Principal,
    notebook: NotebookId,
    updates: broadcast::Receiver<UploadJob>,
    /// Permission changes in this process.
    access_changes: tokio::sync::watch::Receiver<u64>,
    poll: Duration,
    /// The unfinished jobs when the stream started, all of them sent first.
    initial: VecDeque<UploadJob>,
    /// What was last sent of each job.
    seen: HashMap<JobId, (JobStatus, Timestamp)>,
    /// Jobs received or read, still to be compared with what was sent.
    fresh: VecDeque<UploadJob>,
}

impl NotebookFollower {
    /// The next job to send; `None` once the notebook can no longer be read.
    async fn next(&mut self) -> Option<UploadJob> {
        if let Some(job) = self.initial.pop_front() {
            self.seen.insert(job.id, (job.status, job.updated_at));
            return Some(job);
        }
        loop {
            while let Some(job) = self.fresh.pop_front() {
                let changed =
                    self.seen.get(&job.id).is_none_or(|(status, at)| *status != job.status || *at != job.updated_at);
                // Jobs that finished before the stream started are not news.
                let news = self.seen.contains_key(&job.id) || !job.status.is_terminal();
                if changed && news {
                    self.seen.insert(job.id, (job.status, job.updated_at));
                    return Some(job);
                }
            }
            tokio::select! {
                update = self.updates.recv() => match update {
                    Ok(job) => self.fresh.push_back(job),
                    // Fell behind the hub: what was missed is read from the store.
                    Err(broadcast::error::RecvError::Lagged(_)) => self.fresh.extend(self.reread().await?),
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                changed = self.access_changes.changed() => {
                    changed.ok()?;
                    self.access.require(&self.caller, self.notebook, Permission::Read).await.ok()?;
                },
                // Changes no notice brought: re-read the notebook's recent jobs.
                () = tokio::time::sleep(self.poll) => self.fresh.extend(self.reread().await?),
            }
        }
    }

    /// The notebook's recent jobs, while the caller may still read them.
    async fn reread(&self) -> Option<Vec<UploadJob>> {
        self.access.require(&self.caller, self.notebook, Permission::Read).await.ok()?;
        Some(self.store.list_notebook_jobs(self.notebook, false, recent_jobs()).await.ok()?.items)
    }
}
