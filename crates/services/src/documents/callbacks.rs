//! Signed job callbacks: each notable change of a job with a `callback_url` is
//! POSTed there (through the [`CallbackSender`] port), signed, and retried with
//! backoff until a 2xx answer.

use std::sync::Arc;
use std::time::Duration;

use aether_domain::job::{CallbackSender, UploadJob};
use aether_domain::time;

use super::signing::hmac_sha256;

/// Signed job callbacks: `X-Aether-Signature: t=<unix seconds>,v1=<hex>`, where the
/// hex is HMAC-SHA256 over `<t>.<body>` with the configured secret (the timestamp
/// lets receivers refuse replays). Retried after each delay until a 2xx answer.
#[derive(Debug)]
pub struct Callbacks {
    sender: Arc<dyn CallbackSender>,
    secret: Vec<u8>,
    retry_delays: Vec<Duration>,
}

impl Callbacks {
    pub fn new(sender: Arc<dyn CallbackSender>, secret: Vec<u8>, retry_delays: Vec<Duration>) -> Self {
        Self { sender, secret, retry_delays }
    }

    /// The signature header's value for `body` sent at `timestamp` (Unix seconds).
    pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
        use hmac::Mac as _;
        let mac = hmac_sha256(secret, &[timestamp.to_string().as_bytes(), b".", body]);
        format!("t={timestamp},v1={}", hex::encode(mac.finalize().into_bytes()))
    }

    /// Delivers the job's state in the background, retrying with backoff.
    pub(super) fn deliver(self: &Arc<Self>, job: &UploadJob) {
        let Some(url) = job.callback_url.clone() else { return };
        let delivery = uuid::Uuid::now_v7();
        let event = format!("job.{}", job.status.as_str());
        let body = serde_json::json!({
            "event": event,
            "delivery_id": delivery.to_string(),
            "job": {
                "job_id": job.id.to_string(),
                "notebook_id": job.notebook_id.to_string(),
                "document_id": job.document_id.to_string(),
                "status": job.status.as_str(),
                "stage": job.stage,
                "original_filename": job.filename.as_str(),
                "file_size": job.file.as_ref().map(|f| f.size),
                "file_hash": job.file.as_ref().map(|f| f.sha256.clone()),
                "content_type": job.file.as_ref().map(|f| f.content_type.clone()),
                "error": job.failure.as_ref().map(|f| serde_json::json!({"code": f.code, "message": f.message})),
                "updated_at": time::to_storage(&job.updated_at),
            },
        })
        .to_string()
        .into_bytes();
        let callbacks = Arc::clone(self);
        let job_id = job.id;
        tokio::spawn(async move {
            let mut delays = callbacks.retry_delays.iter();
            loop {
                let timestamp = time::now().timestamp();
                let headers = vec![
                    ("content-type", "application/json".to_owned()),
                    ("x-aether-event", event.clone()),
                    ("x-aether-delivery", delivery.to_string()),
                    ("x-aether-signature", Self::signature(&callbacks.secret, timestamp, &body)),
                ];
                let outcome = callbacks.sender.post(url.as_str(), body.clone(), headers).await;
                match outcome {
                    Ok(status) if (200..300).contains(&status) => {
                        metrics::counter!("aether_callbacks_total", "outcome" => "delivered").increment(1);
                        return;
                    }
                    Ok(status) => tracing::info!(%job_id, status, "callback refused"),
                    Err(error) => tracing::info!(%job_id, %error, "callback failed"),
                }
                let Some(delay) = delays.next() else {
                    metrics::counter!("aether_callbacks_total", "outcome" => "abandoned").increment(1);
                    tracing::warn!(%job_id, "callback abandoned after retries");
                    return;
                };
                tokio::time::sleep(*delay).await;
            }
        });
    }
}
