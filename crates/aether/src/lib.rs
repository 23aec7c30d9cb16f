//! Wiring: turns a [`Config`] into running stores, adapters and services, and runs
//! the server and the background workers. `main.rs` is only the command line.

pub mod callbacks;
pub mod config;
pub mod processor;
pub mod scratch;
pub mod telemetry;
mod traced_store;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use aether_api::{ApiSettings, AppState, RateLimitSettings, ReadinessCheck};
use aether_audimodal::{AudiModalClient, AudiModalConfig};
use aether_auth_local::{Argon2Hasher, LocalTokenCodec, TokenSettings};
use aether_blob_store::{EncryptedBlobStore, ObjectBlobStore, S3Config};
use aether_cache_redis::RedisEphemeralStore;
use aether_clamav::ClamdScanner;
use aether_domain::blob::BlobStore;
use aether_domain::cache::ReadCache;
use aether_domain::identity::{EphemeralStore, TokenVerifier};
use aether_domain::limits::RateLimiter;
use aether_domain::scan::VirusScanner;
use aether_domain::store::Store;
use aether_domain::user::Password;
use aether_identity_keycloak::{KeycloakClient, KeycloakConfig};
use aether_services::accounts::Bootstrap;
use aether_services::documents::{Callbacks, DocumentService, DocumentSettings, JobHub};
use aether_services::events::{EventDispatcher, InProcessBus, relay_backoff};
use aether_services::limits::InProcessRateLimiter;
use aether_services::{
    AccountService, Authorizer, AvatarService, CachedReads, IdentityProvider, IdentityService, IdentitySettings,
    InProcessReadCache, NotebookService, SessionSettings,
};
use aether_store_neo4j::{Neo4jConfig, Neo4jStore};
use aether_store_sqlite::SqliteStore;
use anyhow::Context as _;
use async_trait::async_trait;
use tokio::sync::watch;

use aether_domain::document::JobQueue;
use aether_domain::events::EventPublisher;
use aether_events_kafka::{KafkaJobQueue, KafkaPublisher};
pub use config::Config;
use config::{BlobKind, EventsKind, IdentityKind, JobQueueKind, StoreKind};

/// Everything built from the configuration.
#[derive(Clone)]
pub struct Runtime {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub accounts: Arc<AccountService>,
    pub identity: Arc<IdentityService>,
    pub ephemeral: Arc<dyn EphemeralStore>,
    /// Redis, when sessions and other short-lived state live there.
    pub redis: Option<Arc<RedisEphemeralStore>>,
    pub keycloak: Option<Arc<KeycloakClient>>,
    pub blobs: Arc<dyn BlobStore>,
    pub avatars: Arc<AvatarService>,
    pub limiter: Arc<dyn RateLimiter>,
    /// Hot reads (users, permission chains) through the read cache, if there is one.
    pub reads: CachedReads,
    pub notebooks: Arc<NotebookService>,
    pub documents: Arc<DocumentService>,
    /// ClamAV, when uploads are scanned.
    pub scanner: Option<Arc<dyn VirusScanner>>,
    pub tokens: Arc<LocalTokenCodec>,
    /// The embedded event bus the outbox is published to.
    pub bus: Arc<InProcessBus>,
    pub events: Arc<EventDispatcher>,
    /// The Kafka publisher, when events go to Kafka.
    pub kafka: Option<Arc<KafkaPublisher>>,
    /// This process among the replicas (a fresh id at every start).
    pub instance: Arc<str>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").field("store", &self.store.backend_name()).finish_non_exhaustive()
    }
}

/// Opens the configured store, applying migrations when `migrate` is set.
pub async fn open_store(config: &Config, migrate: bool) -> anyhow::Result<Arc<dyn Store>> {
    let store: Arc<dyn Store> = match config.store {
        StoreKind::Sqlite => {
            std::fs::create_dir_all(&config.data_dir)
                .with_context(|| format!("cannot create data_dir {}", config.data_dir.display()))?;
            Arc::new(SqliteStore::open(&config.database_path()).await.context("cannot open the SQLite store")?)
        }
        StoreKind::Neo4j => {
            let neo4j = Neo4jConfig {
                uri: config.neo4j_uri.clone(),
                user: config.neo4j_user.clone(),
                password: config.neo4j_password.expose().to_owned(),
                database: config.neo4j_database.clone(),
                max_connections: config.neo4j_max_connections,
            };
            Arc::new(
                Neo4jStore::connect(&neo4j)
                    .await
                    .with_context(|| format!("cannot reach Neo4j at {}", config.neo4j_uri))?,
            )
        }
    };
    if migrate {
        let applied = store.migrate().await.context("schema migration failed")?;
        if !applied.is_empty() {
            tracing::info!(store = store.backend_name(), ?applied, "schema migrated");
        }
    }
    Ok(Arc::new(traced_store::TracedStore::new(store)))
}

impl Runtime {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("cannot create data_dir {}", config.data_dir.display()))?;
        let store = open_store(&config, config.migrate_on_start).await?;
        let tokens = Arc::new(
            LocalTokenCodec::load_or_generate(
                &config.signing_key_path(),
                TokenSettings {
                    issuer: config.token_issuer.clone(),
                    audience: config.token_audience.clone(),
                    access_token_ttl_secs: config.access_token_ttl_secs,
                },
            )
            .context("cannot load the token signing key")?,
        );
        let accounts = Arc::new(AccountService::new(
            Arc::clone(&store),
            Arc::new(Argon2Hasher),
            Arc::clone(&tokens) as _,
            SessionSettings {
                refresh_token_ttl: chrono::TimeDelta::seconds(
                    i64::try_from(config.refresh_token_ttl_secs).unwrap_or(i64::MAX / 1000),
                ),
            },
        ));
        // Names this process in the notices it sends other replicas.
        let instance: Arc<str> = uuid::Uuid::now_v7().to_string().into();
        let redis = if config.redis_url.is_empty() {
            None
        } else {
            let redis = RedisEphemeralStore::connect(
                config.redis_url.expose(),
                &config.redis_key_prefix,
                Duration::from_secs(5),
            )
            .await
            .map_err(|error| anyhow::anyhow!("cannot reach Redis: {error}"))?;
            Some(Arc::new(redis))
        };
        let ephemeral: Arc<dyn EphemeralStore> = match &redis {
            Some(redis) => Arc::clone(redis) as _,
            None => Arc::clone(&store) as _,
        };
        // Replicas share rate limits through Redis; alone, a process counts for itself.
        let limiter: Arc<dyn RateLimiter> = match &redis {
            Some(redis) => Arc::new(redis.rate_limiter()),
            None => Arc::new(InProcessRateLimiter::default()),
        };
        let reads = CachedReads::new(Arc::clone(&store), read_cache(&config, redis.as_deref()));
        // Every URL the server calls goes through this policy (see aether-outbound).
        let outbound = Arc::new(config.outbound_policy().map_err(|error| anyhow::anyhow!("outbound_allow: {error}"))?);
        let (verifier, provider, keycloak): (Arc<dyn TokenVerifier>, IdentityProvider, _) = match config.identity {
            IdentityKind::Local => (Arc::clone(&tokens) as _, IdentityProvider::Local, None),
            IdentityKind::Keycloak => {
                let client_id = config.keycloak_client_id.clone();
                let (verifier, client) = aether_identity_keycloak::connect(
                    KeycloakConfig {
                        issuer_url: config.keycloak_issuer_url.clone(),
                        audience: if config.keycloak_audience.is_empty() {
                            client_id.clone()
                        } else {
                            config.keycloak_audience.clone()
                        },
                        client_id,
                        client_secret: config.keycloak_client_secret.expose().to_owned(),
                        leeway: Duration::from_secs(config.keycloak_leeway_secs),
                        jwks_min_refresh: Duration::from_secs(10),
                        http_timeout: Duration::from_secs(10),
                    },
                    aether_outbound::client_builder(Arc::clone(&outbound)),
                )
                .map_err(anyhow::Error::msg)?;
                let provider =
                    IdentityProvider::External { oidc: Arc::new(client.clone()), directory: client.directory() };
                (Arc::new(verifier) as _, provider, Some(Arc::new(client)))
            }
        };
        let identity = Arc::new(
            IdentityService::new(
                Arc::clone(&store),
                Arc::clone(&ephemeral),
                verifier,
                provider,
                Arc::clone(&accounts),
                IdentitySettings {
                    revocation_ttl: Duration::from_secs(config.access_token_ttl_secs.max(3600)),
                    ..IdentitySettings::default()
                },
            )
            .with_reads(reads.clone()),
        );
        let blobs: Arc<dyn BlobStore> = match config.blob_store {
            BlobKind::Fs => {
                Arc::new(ObjectBlobStore::filesystem(&config.data_dir.join("blobs")).map_err(anyhow::Error::msg)?)
            }
            BlobKind::S3 => Arc::new(
                ObjectBlobStore::s3(&S3Config {
                    endpoint: config.s3_endpoint.clone(),
                    bucket: config.s3_bucket.clone(),
                    region: config.s3_region.clone(),
                    access_key_id: config.s3_access_key_id.clone(),
                    secret_access_key: config.s3_secret_access_key.expose().to_owned(),
                    allow_http: config.s3_allow_http,
                })
                .map_err(anyhow::Error::msg)?,
            ),
        };
        let blobs: Arc<dyn BlobStore> = match config.encryption_key_bytes().map_err(anyhow::Error::msg)? {
            Some(key) => Arc::new(EncryptedBlobStore::new(blobs, key)),
            None => blobs,
        };
        let avatars = Arc::new(AvatarService::new(Arc::clone(&store), Arc::clone(&blobs)));
        let notebooks =
            Arc::new(NotebookService::new(Arc::clone(&store), config.max_notebook_depth).with_reads(reads.clone()));
        let bus = Arc::new(InProcessBus::new(1024));
        let kafka = match config.events {
            EventsKind::Inprocess => None,
            EventsKind::Kafka => {
                Some(Arc::new(KafkaPublisher::new(&config.kafka_brokers).map_err(anyhow::Error::msg)?))
            }
        };
        let publisher: Arc<dyn EventPublisher> = match &kafka {
            Some(kafka) => Arc::clone(kafka) as _,
            None => Arc::clone(&bus) as _,
        };
        let events = Arc::new(EventDispatcher::new(Arc::clone(&store), publisher));
        let program = if config.extractor_program.is_empty() {
            std::env::current_exe().context("cannot locate the aether executable for document processing")?
        } else {
            std::path::PathBuf::from(&config.extractor_program)
        };
        let processor = Arc::new(processor::SandboxedProcessor {
            program,
            timeout: Duration::from_secs(config.processing_timeout_secs),
            memory_bytes: config.processing_memory_mb.saturating_mul(1024 * 1024),
        });
        let scanner: Option<Arc<dyn VirusScanner>> = (!config.clamav_address.is_empty()).then(|| {
            Arc::new(ClamdScanner::new(config.clamav_address.clone(), Duration::from_secs(config.clamav_timeout_secs)))
                as Arc<dyn VirusScanner>
        });
        let callbacks = Callbacks::new(
            Arc::new(callbacks::HttpCallbackSender::new(Arc::clone(&outbound))?),
            callbacks::signing_secret(
                config.callback_signing_secret.expose(),
                &config.data_dir.join("keys").join("callback-signing-secret"),
            )?,
            [1, 5, 25].iter().map(|factor| Duration::from_millis(config.callback_retry_base_ms * factor)).collect(),
        );
        let mut documents = DocumentService::new(
            Arc::clone(&store),
            Arc::clone(&blobs),
            Authorizer::new(reads.clone()),
            processor,
            Arc::new(scratch::TempScratch),
            Arc::new(match &redis {
                Some(redis) => JobHub::with_fanout(Arc::new(redis.job_fanout(&instance))),
                None => JobHub::default(),
            }),
            DocumentSettings {
                max_upload_bytes: config.max_upload_bytes,
                workers: config.document_workers,
                job_lease: Duration::from_secs(config.job_lease_secs),
                max_attempts: config.processing_max_attempts,
                processing_timeout: Duration::from_secs(config.processing_timeout_secs),
                stale_upload_after: Duration::from_secs(config.stale_upload_secs),
                outbound: (*outbound).clone(),
                ..DocumentSettings::default()
            },
        )
        .with_callbacks(callbacks)
        .with_url_signing_secret(callbacks::signing_secret(
            config.storage_signing_secret.expose(),
            &config.data_dir.join("keys").join("storage-signing-secret"),
        )?);
        if let Some(scanner) = &scanner {
            documents = documents.with_scanner(Arc::clone(scanner));
        }
        if !config.audimodal_url.is_empty() {
            anyhow::ensure!(
                !config.public_url.is_empty(),
                "audimodal_url needs public_url: AudiModal downloads files from signed URLs of this server"
            );
            let client = AudiModalClient::new(
                AudiModalConfig {
                    base_url: config.audimodal_url.clone(),
                    api_key: config.audimodal_api_key.expose().to_owned(),
                    tenant_id: config.audimodal_tenant_id.clone(),
                    datasource_id: config.audimodal_datasource_id.clone(),
                    webhook_secret: config.audimodal_webhook_secret.expose().to_owned(),
                },
                aether_outbound::client_builder(Arc::clone(&outbound)),
            )
            .map_err(anyhow::Error::msg)?;
            documents = documents.with_external_processor(
                Arc::new(client),
                config.public_url.clone(),
                Duration::from_secs(config.audimodal_timeout_secs),
            );
        }
        let documents = Arc::new(documents);
        Ok(Self {
            config,
            store,
            accounts,
            identity,
            ephemeral,
            redis,
            keycloak,
            blobs,
            avatars,
            limiter,
            reads,
            notebooks,
            documents,
            scanner,
            tokens,
            bus,
            events,
            kafka,
            instance,
        })
    }

    /// Creates the `admin` account on first start and tells the operator how to use it.
    pub async fn bootstrap_admin(&self) -> anyhow::Result<()> {
        if self.config.identity == IdentityKind::Keycloak {
            // Administrators are whoever Keycloak gives `aether-admin`; a local password
            // account could not even sign in.
            return Ok(());
        }
        let password = if self.config.admin_password.is_empty() {
            None
        } else {
            Some(Password::parse(self.config.admin_password.expose())?)
        };
        match self.accounts.bootstrap_admin(password).await? {
            Bootstrap::AlreadyPresent => {}
            Bootstrap::Created => {
                tracing::info!("created the admin account with the password from AETHER_ADMIN_PASSWORD");
            }
            Bootstrap::CreatedWithGeneratedPassword(password) => {
                tracing::warn!("created the admin account with a generated password (printed once on stderr)");
                eprintln!(
                    "\n  Aether created the first administrator account.\n    username: admin\n    password: {password}\n  \
                     This password is shown only now. Get a token with:\n    \
                     curl -d grant_type=password -d username=admin -d 'password={password}' http://{}/api/v1/auth/token\n",
                    self.config.listen
                );
            }
        }
        Ok(())
    }

    /// The router with every route and middleware.
    pub fn router(&self) -> aether_api::Router {
        let mut checks: Vec<Arc<dyn ReadinessCheck>> = vec![Arc::new(StoreCheck(Arc::clone(&self.store)))];
        if self.config.store == StoreKind::Sqlite {
            checks.push(Arc::new(DataDirCheck(self.config.data_dir.clone())));
        }
        if let Some(kafka) = &self.kafka {
            checks.push(Arc::new(KafkaCheck(Arc::clone(kafka))));
        }
        if let Some(redis) = &self.redis {
            checks.push(Arc::new(RedisCheck(Arc::clone(redis))));
        }
        if self.config.blob_store == BlobKind::S3 {
            checks.push(Arc::new(BlobCheck(Arc::clone(&self.blobs))));
        }
        if let Some(keycloak) = &self.keycloak {
            checks.push(Arc::new(KeycloakCheck(Arc::clone(keycloak))));
        }
        if let Some(scanner) = &self.scanner {
            checks.push(Arc::new(ScannerCheck(Arc::clone(scanner))));
        }
        aether_api::router(AppState {
            accounts: Arc::clone(&self.accounts),
            identity: Arc::clone(&self.identity),
            avatars: Arc::clone(&self.avatars),
            limiter: Arc::clone(&self.limiter),
            notebooks: Arc::clone(&self.notebooks),
            documents: Arc::clone(&self.documents),
            readiness: Arc::new(checks),
            jwks: Arc::new(serde_json::json!({ "keys": [self.tokens.public_jwk()] })),
            metrics: metrics_with_rare_series(),
            settings: ApiSettings {
                max_body_bytes: self.config.max_body_bytes,
                cors_allowed_origins: self.config.cors_allowed_origins.0.clone(),
                request_timeout: Duration::from_secs(self.config.request_timeout_secs),
                public_url: Some(self.config.public_url.clone()).filter(|url| !url.is_empty()),
                allowed_hosts: self.config.allowed_hosts.0.clone(),
                trusted_proxies: self.config.trusted_proxy_networks(),
                secure_cookies: self.config.secure_cookies,
                rate_limit: RateLimitSettings {
                    per_user: self.config.rate_limit_per_user,
                    per_ip: self.config.rate_limit_per_ip,
                    window: Duration::from_secs(self.config.rate_limit_window_secs),
                    fail_open: self.config.rate_limit_fail_open,
                },
                socket_poll: self.config.websocket_poll(),
            },
        })
    }

    /// Runs the background jobs until `shutdown` turns true: the purge of expired
    /// refresh tokens and sessions, the outbox relay, and the document workers.
    pub async fn run_workers(&self, shutdown: watch::Receiver<bool>) {
        tokio::join!(
            self.purge_sessions(shutdown.clone()),
            self.publish_events(shutdown.clone()),
            self.run_document_workers(shutdown)
        );
    }

    /// The document workers, with their Kafka consumers when jobs come from Kafka
    /// (created only here, so that commands which build a runtime join no group).
    async fn run_document_workers(&self, shutdown: watch::Receiver<bool>) {
        let mut queues: Vec<Arc<dyn JobQueue>> = Vec::new();
        if self.config.job_queue == JobQueueKind::Kafka {
            let partitions = i32::try_from(self.config.kafka_job_partitions).unwrap_or(12);
            let replication = self.config.kafka_replication_factor;
            if let Err(error) =
                aether_events_kafka::ensure_jobs_topic(&self.config.kafka_brokers, partitions, replication).await
            {
                tracing::warn!(%error, "could not create or grow the jobs topic");
            }
            // A job may hold its loop through every attempt's time limit.
            let longest_job = Duration::from_secs(self.config.processing_timeout_secs)
                .saturating_mul(self.config.processing_max_attempts.max(1))
                + Duration::from_secs(60);
            for _ in 0..self.config.document_workers {
                match KafkaJobQueue::join(&self.config.kafka_brokers, &self.config.kafka_worker_group, longest_job) {
                    Ok(queue) => queues.push(Arc::new(queue)),
                    Err(error) => tracing::error!(%error, "a document worker could not join the Kafka group"),
                }
            }
            if queues.is_empty() && self.config.document_workers > 0 {
                tracing::error!("no document worker could join the Kafka group; only the store sweep processes jobs");
            }
        }
        Arc::clone(&self.documents).run_workers(queues, shutdown).await;
    }

    async fn purge_sessions(&self, mut shutdown: watch::Receiver<bool>) {
        let interval = Duration::from_secs(self.config.session_purge_interval_secs);
        loop {
            match self.accounts.purge_expired_sessions().await {
                Ok(0) => {}
                Ok(purged) => tracing::info!(purged, "purged expired refresh tokens"),
                Err(error) => tracing::warn!(%error, "refresh token purge failed; will retry"),
            }
            // Sessions, pending logins and revocations in the store (Redis expires its own).
            match self.ephemeral.purge_expired(aether_domain::time::now()).await {
                Ok(0) => {}
                Ok(purged) => tracing::info!(purged, "purged expired ephemeral entries"),
                Err(error) => tracing::warn!(%error, "ephemeral purge failed; will retry"),
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.wait_for(|stop| *stop) => break,
            }
        }
    }

    /// Drains the outbox to the event bus; polls when it is empty, and backs off while
    /// publishing fails (the bus is down): the failed event stays at the head of the
    /// outbox and is retried first, so nothing is lost or reordered.
    async fn publish_events(&self, mut shutdown: watch::Receiver<bool>) {
        let idle = Duration::from_millis(self.config.event_poll_interval_ms);
        let mut consecutive_failures: u32 = 0;
        loop {
            let wait = match self.events.dispatch(RELAY_BATCH).await {
                Ok(pass) if pass.failed => {
                    consecutive_failures = consecutive_failures.saturating_add(1);
                    relay_backoff(idle, consecutive_failures)
                }
                Ok(pass) => {
                    if consecutive_failures > 0 {
                        tracing::info!(failed_attempts = consecutive_failures, "publishing events resumed");
                        consecutive_failures = 0;
                    }
                    if pass.published == RELAY_BATCH as usize { Duration::ZERO } else { idle }
                }
                Err(error) => {
                    consecutive_failures = consecutive_failures.saturating_add(1);
                    tracing::warn!(%error, "event dispatch failed; will retry");
                    relay_backoff(idle, consecutive_failures)
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.wait_for(|stop| *stop) => break,
            }
        }
    }
}

/// How many outbox events one relay pass reads and publishes.
const RELAY_BATCH: u32 = 100;

/// The read cache for this configuration. Redis, when configured, is shared by every
/// replica and invalidated by all of them. Without it, a SQLite store is served by
/// one process, whose own memory is then a correct cache (and lets the same
/// invalidation tests run on both shapes); Neo4j without Redis may have replicas
/// that could not tell each other about changes, so nothing is cached.
fn read_cache(config: &Config, redis: Option<&RedisEphemeralStore>) -> Option<Arc<dyn ReadCache>> {
    let ttl = Duration::from_secs(config.cache_ttl_secs);
    if ttl.is_zero() {
        return None;
    }
    match (redis, config.store) {
        (Some(redis), _) => Some(Arc::new(redis.read_cache(ttl))),
        (None, StoreKind::Sqlite) => Some(Arc::new(InProcessReadCache::new(ttl, 100_000))),
        (None, StoreKind::Neo4j) => None,
    }
}

/// The Prometheus handle, with the series of rare events registered at zero: a
/// counter otherwise appears only with its first increment, which `rate()` and
/// `increase()` cannot see, so alerts on rare events would miss the first one.
fn metrics_with_rare_series() -> metrics_exporter_prometheus::PrometheusHandle {
    let handle = aether_api::middleware::prometheus();
    for name in [
        "http_panics_total",
        "aether_uploads_infected_total",
        "aether_outbox_publish_failures_total",
        "aether_outbox_events_published_total",
    ] {
        metrics::counter!(name).increment(0);
    }
    for outcome in ["delivered", "abandoned"] {
        metrics::counter!("aether_callbacks_total", "outcome" => outcome).increment(0);
    }
    aether_outbound::describe_metrics();
    metrics::gauge!("aether_http_connections").increment(0.0);
    for scope in ["user", "ip"] {
        metrics::counter!("aether_rate_limited_total", "scope" => scope).increment(0);
    }
    for reason in ["expired", "invalid", "unavailable", "other"] {
        metrics::counter!("aether_authentication_failures_total", "reason" => reason).increment(0);
    }
    for dependency in ["store", "sessions", "rate_limiter", "cache", "redis_fanout", "job_queue"] {
        metrics::counter!("aether_dependency_errors_total", "dependency" => dependency).increment(0);
    }
    metrics::counter!("aether_job_notices_dropped_total").increment(0);
    metrics::counter!("aether_redis_calls_short_circuited_total").increment(0);
    for namespace in ["users", "access"] {
        for outcome in ["hit", "miss", "error"] {
            metrics::counter!("aether_cache_requests_total", "namespace" => namespace, "outcome" => outcome)
                .increment(0);
        }
    }
    handle
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

/// Passes the job changes other replicas announce to this server's sockets.
async fn follow_other_replicas(runtime: Runtime, channel: String, stop: watch::Receiver<bool>) {
    let documents = Arc::clone(&runtime.documents);
    let deliver = |job, notebook| {
        let documents = Arc::clone(&documents);
        async move { documents.job_changed_elsewhere(job, notebook).await }
    };
    aether_cache_redis::listen_for_job_changes(
        runtime.config.redis_url.expose(),
        &channel,
        &runtime.instance,
        deliver,
        stop,
    )
    .await;
}

/// A server that is running, as tests and `main` see it.
#[derive(Debug)]
pub struct RunningServer {
    pub addr: SocketAddr,
    pub runtime: Runtime,
    shutdown: watch::Sender<bool>,
    handle: tokio::task::JoinHandle<std::io::Result<()>>,
    workers: Option<tokio::task::JoinHandle<()>>,
}

impl RunningServer {
    /// Builds everything, bootstraps the admin, binds and starts serving.
    pub async fn start(config: Config) -> anyhow::Result<Self> {
        let runtime = Runtime::build(config).await?;
        runtime.bootstrap_admin().await?;
        let listener = tokio::net::TcpListener::bind(runtime.config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", runtime.config.listen))?;
        let addr = listener.local_addr()?;
        let (shutdown, mut stop) = watch::channel(false);
        let app = runtime.router();
        let limits = aether_api::ServeLimits {
            header_read_timeout: Duration::from_secs(runtime.config.header_read_timeout_secs),
            max_connections: runtime.config.max_connections,
        };
        let handle = tokio::spawn(aether_api::serve_with(
            listener,
            app,
            async move {
                let _ = stop.wait_for(|stop| *stop).await;
            },
            limits,
        ));
        if let Some(redis) = &runtime.redis {
            tokio::spawn(follow_other_replicas(runtime.clone(), redis.job_channel(), shutdown.subscribe()));
        }
        let workers = runtime.config.run_workers.then(|| {
            let runtime = runtime.clone();
            let stop = shutdown.subscribe();
            tokio::spawn(async move { runtime.run_workers(stop).await })
        });
        tracing::info!(%addr, store = runtime.store.backend_name(), "aether serving");
        Ok(Self { addr, runtime, shutdown, handle, workers })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting connections, lets in-flight requests finish (up to `grace`),
    /// and stops the workers.
    pub async fn shutdown(self, grace: Duration) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        match tokio::time::timeout(grace, self.handle).await {
            Ok(joined) => joined.context("server task failed")?.context("server failed")?,
            Err(_) => tracing::warn!(grace_secs = grace.as_secs(), "in-flight requests did not finish in time"),
        }
        if let Some(workers) = self.workers {
            let _ = tokio::time::timeout(grace, workers).await;
        }
        Ok(())
    }
}
