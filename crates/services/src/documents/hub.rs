//! Job changes as subscribers see them: the [`JobHub`] that passes each change to
//! this process's subscribers and announces it to other replicas, and the streams
//! a WebSocket forwards (`DocumentService::follow_job`, `follow_notebook`), which
//! read what they show from the store and send only what changed.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use aether_domain::access::Permission;
use aether_domain::auth::Principal;
use aether_domain::id::{JobId, NotebookId};
use aether_domain::job::{JobFanout, JobStatus, UploadJob};
use aether_domain::page::{Limit, PageRequest};
use aether_domain::store::JobStore;
use aether_domain::time::{self, Timestamp};
use futures::stream::{self, BoxStream, StreamExt as _};

use super::DocumentService;
use crate::access::Authorizer;
use crate::error::ServiceResult;
use crate::live::{Received, Subscription, Topics, Update};

/// Job changes, for WebSocket and callback subscribers: two live views
/// ([`crate::live`]) over the same changes, one keyed by job and one by notebook.
/// Missing an update is harmless: subscribers also read the job from the store now
/// and then.
///
/// Changes made here reach this process's subscribers at once and, through the
/// [`JobFanout`], the other replicas, which read the job from the store and pass it
/// to their own subscribers ([`DocumentService::job_changed_elsewhere`]).
#[derive(Debug)]
pub struct JobHub {
    jobs: Arc<Topics<JobId, UploadJob>>,
    /// Every job of a notebook, for the notebook's upload socket.
    notebooks: Arc<Topics<NotebookId, UploadJob>>,
    fanout: Option<Arc<dyn JobFanout>>,
}

impl Default for JobHub {
    fn default() -> Self {
        Self { jobs: Topics::new("job", 64), notebooks: Topics::new("notebook_uploads", 256), fanout: None }
    }
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
        self.publish_update(job, Update::new(job.clone()));
    }

    fn publish_update(&self, job: &UploadJob, update: JobUpdate) {
        self.jobs.publish(&job.id, &update);
        self.notebooks.publish(&job.notebook_id, &update);
    }

    /// Whether anyone here follows the job or its notebook.
    pub fn is_followed(&self, job: JobId, notebook: NotebookId) -> bool {
        self.jobs.is_followed(&job) || self.notebooks.is_followed(&notebook)
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

    /// The safety net of every job view, run by each serving process: every
    /// `interval`, the jobs and notebooks its sockets follow are read from the store,
    /// once per followed key however many sockets follow it, and the jobs that
    /// changed since the previous look are passed to their subscribers, who send
    /// only what they had not sent. It finds changes no notice brought (a notice lost
    /// while Redis was away, a process without fan-out). Runs until `shutdown`.
    pub async fn resync_job_views(&self, interval: Duration, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut previous_look = time::now();
        loop {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
            // Jobs are stamped by whichever replica changed them: a few seconds'
            // margin for their clocks. A job published twice costs a comparison.
            let since = previous_look - chrono::Duration::seconds(5);
            previous_look = time::now();
            for notebook in self.hub.notebooks.keys() {
                match self.store.jobs.list_notebook_jobs(notebook, false, recent_jobs()).await {
                    Ok(page) => {
                        for job in page.items.into_iter().filter(|job| job.updated_at >= since) {
                            self.hub.publish_update(&job, Update::read(job.clone()));
                        }
                    }
                    Err(error) => {
                        tracing::debug!(%error, notebook_id = %notebook, "could not re-read a followed notebook's jobs")
                    }
                }
            }
            for id in self.hub.jobs.keys() {
                match self.store.jobs.get_job(id).await {
                    Ok(job) if job.updated_at >= since => self.hub.jobs.publish(&id, &Update::read(job)),
                    Ok(_) => false,
                    Err(error) => {
                        tracing::debug!(%error, job_id = %id, "could not re-read a followed job");
                        false
                    }
                };
            }
        }
    }

    /// A job as the caller may follow it: the job now, then each change of it, until
    /// it has finished (the stream ends after the finished job) or can no longer be
    /// read. Changes arrive through the hub (and what no notice brought, through
    /// [`Self::resync_job_views`]). A subscriber that was busy gets only the latest
    /// state. `NotFound` when the caller may not read the job.
    pub async fn follow_job(&self, caller: &Principal, id: JobId) -> ServiceResult<BoxStream<'static, JobUpdate>> {
        // Subscribed before reading, so that no change falls between the two.
        let updates = self.hub.jobs.subscribe(id);
        let job = self.job(caller, id).await?;
        Ok(follow_job(Arc::clone(&self.store.jobs), updates, job).boxed())
    }

    /// Every upload job of a notebook the caller may read: its unfinished jobs now,
    /// then each job whenever it changes (including when it finishes). Changes come
    /// pushed through the hub (and what no notice brought, through
    /// [`Self::resync_job_views`]); the notebook's recent jobs are read again when
    /// the subscriber fell behind the hub. A subscriber that was busy gets only the
    /// latest state of each job that changed meanwhile. The caller's permission is
    /// checked again whenever a permission changes in this process, every
    /// `access_recheck` (for changes made by other replicas) and at each re-read;
    /// the stream ends when that check fails. `NotFound` when the caller may not
    /// read the notebook.
    pub async fn follow_notebook(
        &self,
        caller: &Principal,
        notebook: NotebookId,
        access_recheck: Duration,
    ) -> ServiceResult<BoxStream<'static, JobUpdate>> {
        let updates = self.hub.notebooks.subscribe(notebook);
        let started_at = time::now();
        // Checks read access, and gives the jobs to start with.
        let active = self.notebook_jobs(caller, notebook, true, recent_jobs()).await?;
        let follower = NotebookFollower {
            access: self.access.clone(),
            store: Arc::clone(&self.store.jobs),
            caller: caller.clone(),
            notebook,
            updates,
            access_changes: self.access.reads().watch_access(),
            access_recheck,
            next_access_check: tokio::time::Instant::now() + access_recheck,
            initial: active.items.into_iter().map(Update::read).collect(),
            started_at,
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

/// A job change as a live view sends it.
pub type JobUpdate = Arc<Update<UploadJob>>;

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

/// Keeps, of the changes in `fresh`, only the last of each job, in their order.
fn keep_latest(fresh: &mut VecDeque<JobUpdate>) {
    if fresh.len() < 2 {
        return;
    }
    let mut later = HashSet::new();
    let mut kept: Vec<JobUpdate> = fresh.drain(..).rev().filter(|update| later.insert(update.value().id)).collect();
    kept.reverse();
    fresh.extend(kept);
}

fn follow_job(
    store: Arc<dyn JobStore>,
    updates: Subscription<JobId, UploadJob>,
    job: UploadJob,
) -> impl futures::Stream<Item = JobUpdate> + Send + 'static {
    struct Follower {
        store: Arc<dyn JobStore>,
        updates: Subscription<JobId, UploadJob>,
        last: JobUpdate,
        started: bool,
    }
    let follower = Follower { store, updates, last: Update::read(job), started: false };
    stream::unfold(follower, |mut follower| async move {
        if !follower.started {
            follower.started = true;
            return Some((Arc::clone(&follower.last), follower));
        }
        while !follower.last.value().status.is_terminal() {
            // Changes no notice brought reach the hub through `resync_job_views`.
            let mut next = Some(follower.updates.next().await);
            // What arrived meanwhile: only the newest counts.
            while let Some(newer) = follower.updates.ready() {
                next = Some(newer);
            }
            let current = match next {
                Some(Received::Update(update)) => update,
                // Fell behind the hub: the job as it is now.
                Some(Received::Missed) | None => {
                    Update::read(follower.store.get_job(follower.last.value().id).await.ok()?)
                }
            };
            if differs(current.value(), follower.last.value()) {
                follower.last = Arc::clone(&current);
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
    updates: Subscription<NotebookId, UploadJob>,
    /// Permission changes in this process.
    access_changes: tokio::sync::watch::Receiver<u64>,
    /// How often the permission is checked again for changes made elsewhere.
    access_recheck: Duration,
    next_access_check: tokio::time::Instant,
    /// The unfinished jobs when the stream started, all of them sent first.
    initial: VecDeque<JobUpdate>,
    /// When the stream started.
    started_at: Timestamp,
    /// What was last sent of each job.
    seen: HashMap<JobId, (JobStatus, Timestamp)>,
    /// Jobs received or read, still to be compared with what was sent.
    fresh: VecDeque<JobUpdate>,
}

impl NotebookFollower {
    /// The next job to send; `None` once the notebook can no longer be read.
    async fn next(&mut self) -> Option<JobUpdate> {
        if let Some(update) = self.initial.pop_front() {
            let job = update.value();
            self.seen.insert(job.id, (job.status, job.updated_at));
            return Some(update);
        }
        loop {
            while let Some(update) = self.fresh.pop_front() {
                let job = update.value();
                if worth_sending(&self.seen, self.started_at, job) {
                    self.seen.insert(job.id, (job.status, job.updated_at));
                    return Some(update);
                }
            }
            let mut missed = tokio::select! {
                received = self.updates.next() => queue(&mut self.fresh, received),
                changed = self.access_changes.changed() => {
                    changed.ok()?;
                    self.access.require(&self.caller, self.notebook, Permission::Read).await.ok()?;
                    false
                },
                // Permission changes made by other replicas.
                () = tokio::time::sleep_until(self.next_access_check) => {
                    self.next_access_check = tokio::time::Instant::now() + self.access_recheck;
                    self.access.require(&self.caller, self.notebook, Permission::Read).await.ok()?;
                    false
                },
            };
            // What else arrived while this socket was busy.
            while let Some(received) = self.updates.ready() {
                missed |= queue(&mut self.fresh, received);
            }
            if missed {
                // Fell behind the hub: what was missed is read from the store, after
                // what was received.
                let jobs = self.reread().await?;
                self.fresh.extend(jobs.into_iter().map(Update::read));
            }
            keep_latest(&mut self.fresh);
        }
    }

    /// The notebook's recent jobs, while the caller may still read them.
    async fn reread(&self) -> Option<Vec<UploadJob>> {
        self.access.require(&self.caller, self.notebook, Permission::Read).await.ok()?;
        Some(self.store.list_notebook_jobs(self.notebook, false, recent_jobs()).await.ok()?.items)
    }
}

/// Whether a notebook feed sends `job`: when it shows something not sent yet, and is
/// news. Jobs that finished before the stream started are not news; one that started
/// and finished since is, even when only its end was seen (the feed was busy, and
/// kept only the latest state).
fn worth_sending(seen: &HashMap<JobId, (JobStatus, Timestamp)>, started_at: Timestamp, job: &UploadJob) -> bool {
    is_news(seen.get(&job.id).copied(), started_at, (job.status, job.updated_at))
}

/// [`worth_sending`] on what it compares: what was last sent of the job, if anything,
/// and its status and last change now.
fn is_news(sent: Option<(JobStatus, Timestamp)>, started_at: Timestamp, now: (JobStatus, Timestamp)) -> bool {
    let (status, updated_at) = now;
    match sent {
        Some(sent) => sent != now,
        None => !status.is_terminal() || updated_at >= started_at,
    }
}

/// Queues a received change; whether changes were missed instead.
fn queue(fresh: &mut VecDeque<JobUpdate>, received: Received<UploadJob>) -> bool {
    match received {
        Received::Update(update) => {
            fresh.push_back(update);
            false
        }
        Received::Missed => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_feed_sends_changes_and_jobs_that_started_or_ended_since_it_began() {
        let started = time::now();
        let before = started - chrono::Duration::seconds(10);
        let after = started + chrono::Duration::seconds(1);
        let later = after + chrono::Duration::seconds(1);
        // Never sent: an unfinished job is news; a finished one only if it changed since the start.
        assert!(is_news(None, started, (JobStatus::Pending, before)));
        assert!(!is_news(None, started, (JobStatus::Completed, before)), "finished before the feed began");
        assert!(is_news(None, started, (JobStatus::Completed, after)), "started and finished while the feed was busy");
        // Sent before: news only when it changed.
        assert!(!is_news(Some((JobStatus::Processing, after)), started, (JobStatus::Processing, after)));
        assert!(is_news(Some((JobStatus::Processing, after)), started, (JobStatus::Completed, later)));
    }
}
