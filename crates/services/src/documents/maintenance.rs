//! Maintenance: uploads that died with their process are failed, and the blobs
//! queued for deletion are deleted; the job counts are reported as gauges.

use std::time::Duration;

use aether_domain::document::JobFailure;
use aether_domain::job::JobStatus;
use aether_domain::time;
use tokio::sync::watch;

use super::DocumentService;
use crate::error::ServiceResult;

impl DocumentService {
    /// Fails uploads that died with their process and deletes queued blobs.
    pub(super) async fn maintenance_loop(&self, mut shutdown: watch::Receiver<bool>) {
        loop {
            if let Err(error) = self.maintain().await {
                tracing::warn!(%error, "document maintenance failed");
            }
            tokio::select! {
                _ = self.work_ready.notified() => {}
                _ = tokio::time::sleep(MAINTENANCE_INTERVAL) => {}
                _ = shutdown.wait_for(|stop| *stop) => break,
            }
        }
    }

    /// One maintenance pass; public so that tests and `aether` commands can run it.
    pub async fn maintain(&self) -> ServiceResult<()> {
        let counts = self.store.jobs.count_active_jobs().await?;
        for status in [JobStatus::Uploading, JobStatus::Pending, JobStatus::Validating, JobStatus::Processing] {
            let n = counts.iter().find(|(s, _)| *s == status).map_or(0, |(_, n)| *n);
            metrics::gauge!("aether_document_jobs", "status" => status.as_str()).set(n as f64);
        }
        let stale_before =
            time::now() - chrono::TimeDelta::from_std(self.settings.stale_upload_after).unwrap_or_default();
        for job in self.store.jobs.stale_uploads(stale_before, 100).await? {
            self.fail(
                &job,
                JobFailure::new(
                    "upload_interrupted",
                    "The upload stopped before it finished (the server restarted or the client went away).",
                ),
            )
            .await;
        }
        loop {
            let batch = self.store.blob_deletions.pending_blob_deletions(100).await?;
            if batch.is_empty() {
                return Ok(());
            }
            let mut done = Vec::with_capacity(batch.len());
            for deletion in &batch {
                match self.blobs.delete(&deletion.key).await {
                    Ok(()) => done.push(deletion.id),
                    Err(error) => {
                        tracing::warn!(%error, key = %deletion.key, "could not delete a blob; will retry");
                    }
                }
            }
            self.store.blob_deletions.complete_blob_deletions(&done).await?;
            if done.len() < batch.len() {
                return Ok(());
            }
        }
    }
}

const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(10);
