//! Readiness: what `/ready` checks for this configuration, one check per dependency.

use std::sync::Arc;

use aether_api::ReadinessCheck;
use aether_cache_redis::RedisEphemeralStore;
use aether_domain::blob::BlobStore;
use aether_domain::scan::VirusScanner;
use aether_domain::store::Store;
use aether_events_kafka::KafkaPublisher;
use aether_identity_keycloak::KeycloakClient;
use async_trait::async_trait;

use crate::Runtime;
use crate::config::{BlobKind, StoreKind};

/// The checks of the runtime's dependencies.
pub(crate) fn checks(runtime: &Runtime) -> Vec<Arc<dyn ReadinessCheck>> {
    let mut checks: Vec<Arc<dyn ReadinessCheck>> = vec![Arc::new(StoreCheck(Arc::clone(&runtime.store)))];
    if runtime.config.store == StoreKind::Sqlite {
        checks.push(Arc::new(DataDirCheck(runtime.config.data_dir.clone())));
    }
    if let Some(kafka) = &runtime.kafka {
        checks.push(Arc::new(KafkaCheck(Arc::clone(kafka))));
    }
    if let Some(redis) = &runtime.redis {
        checks.push(Arc::new(RedisCheck(Arc::clone(redis))));
    }
    if runtime.config.blob_store == BlobKind::S3 {
        checks.push(Arc::new(BlobCheck(Arc::clone(&runtime.blobs))));
    }
    if let Some(keycloak) = &runtime.keycloak {
        checks.push(Arc::new(KeycloakCheck(Arc::clone(keycloak))));
    }
    if let Some(scanner) = &runtime.scanner {
        checks.push(Arc::new(ScannerCheck(Arc::clone(scanner))));
    }
    checks
}

struct StoreCheck(Arc<dyn Store>);

#[async_trait]
impl ReadinessCheck for StoreCheck {
    fn name(&self) -> &str {
        self.0.backend_name()
    }

    async fn check(&self) -> Result<(), String> {
        self.0.ping().await.map_err(|error| error.to_string())
    }
}

/// Kafka's brokers answer a metadata request (a blocking call, so off the runtime).
struct BlobCheck(Arc<dyn BlobStore>);

#[async_trait]
impl ReadinessCheck for BlobCheck {
    fn name(&self) -> &str {
        "blob_store"
    }

    async fn check(&self) -> Result<(), String> {
        self.0.ping().await.map_err(|error| error.to_string())
    }
}

struct ScannerCheck(Arc<dyn VirusScanner>);

#[async_trait]
impl ReadinessCheck for ScannerCheck {
    fn name(&self) -> &str {
        "clamav"
    }

    async fn check(&self) -> Result<(), String> {
        self.0.ping().await.map_err(|error| error.to_string())
    }
}

struct RedisCheck(Arc<RedisEphemeralStore>);

#[async_trait]
impl ReadinessCheck for RedisCheck {
    fn name(&self) -> &str {
        "redis"
    }

    async fn check(&self) -> Result<(), String> {
        self.0.ping().await.map_err(|error| error.to_string())
    }
}

struct KeycloakCheck(Arc<KeycloakClient>);

#[async_trait]
impl ReadinessCheck for KeycloakCheck {
    fn name(&self) -> &str {
        "keycloak"
    }

    async fn check(&self) -> Result<(), String> {
        self.0.ping().await.map_err(|error| error.to_string())
    }
}

struct KafkaCheck(Arc<KafkaPublisher>);

#[async_trait]
impl ReadinessCheck for KafkaCheck {
    fn name(&self) -> &str {
        "kafka"
    }

    async fn check(&self) -> Result<(), String> {
        let kafka = Arc::clone(&self.0);
        tokio::task::spawn_blocking(move || kafka.ping()).await.map_err(|error| error.to_string())?
    }
}

/// The data directory must stay writable: uploads and the SQLite file live there.
struct DataDirCheck(std::path::PathBuf);

#[async_trait]
impl ReadinessCheck for DataDirCheck {
    fn name(&self) -> &str {
        "data_dir"
    }

    async fn check(&self) -> Result<(), String> {
        let probe = self.0.join(".ready-probe");
        tokio::fs::write(&probe, b"ok").await.map_err(|error| format!("not writable: {error}"))?;
        tokio::fs::remove_file(&probe).await.map_err(|error| format!("not writable: {error}"))
    }
}
