//! [`ExternalProcessor`] over AudiModal's HTTP API, as its public server code
//! defines it (github.com/Tributary-ai-services/audimodal): `X-API-Key`
//! authentication, tenant-scoped routes under `/api/v1/tenants/{tenant}`, a
//! `{success, data, error}` envelope, files registered by URL
//! (`POST …/files`) and then processed (`POST …/files/{id}/process`), status from
//! `GET …/files/{id}`, text from `GET …/files/{id}/chunks`, removal with
//! `DELETE …/files/{id}` (AudiModal has no per-file cancel).
//!
//! AudiModal's public code defines no webhook signature, so Aether defines one and
//! documents it for the AudiModal side: `X-AudiModal-Timestamp: <unix seconds>`
//! and `X-AudiModal-Signature: sha256=<hex HMAC-SHA256(secret, "<ts>." + body)>`,
//! checked over the raw body in constant time, within five minutes of now.
#![forbid(unsafe_code)]

use std::time::Duration;

use aether_domain::external::{ExternalError, ExternalProcessor, ExternalStatus, Submission};
use async_trait::async_trait;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

/// How to reach AudiModal.
#[derive(Clone)]
pub struct AudiModalConfig {
    /// e.g. `https://audimodal.example.com`.
    pub base_url: String,
    pub api_key: String,
    /// The tenant (a UUID) and the upload data source files are registered under.
    pub tenant_id: String,
    pub datasource_id: String,
    pub webhook_secret: String,
}

impl std::fmt::Debug for AudiModalConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudiModalConfig")
            .field("base_url", &self.base_url)
            .field("tenant_id", &self.tenant_id)
            .field("datasource_id", &self.datasource_id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct AudiModalClient {
    config: AudiModalConfig,
    http: reqwest::Client,
}

/// How far a webhook's timestamp may be from now.
const WEBHOOK_TOLERANCE_SECS: i64 = 300;

/// The signature header value AudiModal must send for `body` at `timestamp`.
pub fn webhook_signature(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

impl AudiModalClient {
    /// `http` is the builder of the outbound client (the server passes one bound to its
    /// outbound policy); redirects are never followed.
    pub fn new(config: AudiModalConfig, http: reqwest::ClientBuilder) -> Result<Self, String> {
        let http = http
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self { config, http })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1/tenants/{}{path}", self.config.base_url.trim_end_matches('/'), self.config.tenant_id)
    }

    /// Sends a request and unwraps AudiModal's envelope.
    async fn call(&self, request: reqwest::RequestBuilder) -> Result<Value, ExternalError> {
        let response = request
            .header("X-API-Key", &self.config.api_key)
            .send()
            .await
            .map_err(|e| ExternalError::Unavailable(e.to_string()))?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(ExternalError::NotFound);
        }
        if status == reqwest::StatusCode::NO_CONTENT {
            return Ok(Value::Null);
        }
        let text = response.text().await.map_err(|e| ExternalError::Unavailable(e.to_string()))?;
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Err(ExternalError::Unavailable(format!("{status}")));
        }
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if !status.is_success() || body["success"] == Value::Bool(false) {
            let message =
                body["error"]["message"].as_str().map_or_else(|| text.chars().take(200).collect(), str::to_owned);
            return Err(ExternalError::Refused(format!("{status}: {message}")));
        }
        Ok(body["data"].clone())
    }
}

#[async_trait]
impl ExternalProcessor for AudiModalClient {
    async fn register(&self, submission: &Submission) -> Result<String, ExternalError> {
        let file = self
            .call(self.http.post(self.url("/files")).json(&json!({
                "url": submission.url,
                "filename": submission.filename,
                "content_type": submission.content_type,
                "size": submission.size,
                "data_source_id": self.config.datasource_id,
                "document_id": submission.job_id,
                "metadata": {"source": "aether"},
            })))
            .await?;
        let file_id = file["id"].as_str().ok_or_else(|| ExternalError::Refused("no file id".into()))?.to_owned();
        Ok(file_id)
    }

    async fn process(&self, file_id: &str, submission: &Submission) -> Result<(), ExternalError> {
        self.call(self.http.post(self.url(&format!("/files/{file_id}/process"))).json(&json!({
            "chunking_strategy": "fixed_size_text",
            "priority": "normal",
            "dlp_scan_enabled": submission.scan_pii,
            "redaction_mode": submission.redaction_mode,
        })))
        .await?;
        tracing::info!(%file_id, job_id = %submission.job_id, "submitted to AudiModal");
        Ok(())
    }

    async fn status(&self, file_id: &str) -> Result<ExternalStatus, ExternalError> {
        let file = self.call(self.http.get(self.url(&format!("/files/{file_id}")))).await?;
        Ok(ExternalStatus {
            status: file["status"].as_str().unwrap_or("unknown").to_owned(),
            error: file["processing_error"].as_str().filter(|e| !e.is_empty()).map(str::to_owned),
            raw: file,
        })
    }

    async fn extracted_text(&self, file_id: &str) -> Result<String, ExternalError> {
        let chunks = self.call(self.http.get(self.url(&format!("/files/{file_id}/chunks")))).await?;
        let parts: Vec<&str> = chunks
            .as_array()
            .map(|items| items.iter().filter_map(|c| c["content"].as_str()).collect())
            .unwrap_or_default();
        Ok(parts.join("\n"))
    }

    async fn cancel(&self, file_id: &str) -> Result<(), ExternalError> {
        match self.call(self.http.delete(self.url(&format!("/files/{file_id}")))).await {
            Ok(_) | Err(ExternalError::NotFound) => Ok(()),
            Err(error) => Err(error),
        }
    }

    fn verify_webhook(&self, timestamp: &str, signature: &str, body: &[u8], now_unix: i64) -> bool {
        let Ok(sent) = timestamp.parse::<i64>() else { return false };
        if (now_unix - sent).abs() > WEBHOOK_TOLERANCE_SECS {
            return false;
        }
        let Some(sent_mac) = signature.strip_prefix("sha256=") else { return false };
        let Ok(expected) = hex::decode(sent_mac) else { return false };
        let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(self.config.webhook_secret.as_bytes()) {
            Ok(mac) => mac,
            Err(_) => return false,
        };
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.verify_slice(&expected).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> AudiModalClient {
        AudiModalClient::new(
            AudiModalConfig {
                base_url: "http://127.0.0.1:1".into(),
                api_key: "k".into(),
                tenant_id: "t".into(),
                datasource_id: "d".into(),
                webhook_secret: "secret".into(),
            },
            reqwest::Client::builder(),
        )
        .expect("client")
    }

    #[test]
    fn webhook_signatures_are_checked() {
        let body = br#"{"event":"processing.completed"}"#;
        let signature = webhook_signature(b"secret", "1000", body);
        let client = client();
        assert!(client.verify_webhook("1000", &signature, body, 1100));
        assert!(!client.verify_webhook("1000", &signature, b"{}", 1100), "another body");
        assert!(!client.verify_webhook("1001", &signature, body, 1100), "another timestamp");
        assert!(!client.verify_webhook("1000", &signature, body, 2000), "too old");
        assert!(!client.verify_webhook("1000", &webhook_signature(b"other", "1000", body), body, 1100));
        assert!(!client.verify_webhook("1000", "sha256=zz", body, 1100));
        assert!(!client.verify_webhook("x", &signature, body, 1100));
    }
}
