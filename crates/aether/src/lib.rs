//! Wiring: turns a [`Config`] into running stores, adapters and services, and runs
//! the server and the background workers. `main.rs` is only the command line.

pub mod callbacks;
pub mod config;
pub mod processor;
mod readiness;
pub mod scratch;
pub mod telemetry;
mod traced_store;
mod wiring;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use aether_api::{ApiSettings, AppState, RateLimitSettings};
use aether_auth_local::LocalTokenCodec;
use aether_cache_redis::RedisEphemeralStore;
use aether_domain::blob::BlobStore;
use aether_domain::ephemeral::EphemeralStore;
use aether_domain::job::JobQueue;
use aether_domain::limits::RateLimiter;
use aether_domain::scan::VirusScanner;
use aether_domain::store::Store;
use aether_domain::user::Password;
use aether_events_kafka::{KafkaJobQueue, KafkaPublisher};
use aether_identity_keycloak::KeycloakClient;
use aether_services::accounts::Bootstrap;
use aether_services::documents::DocumentService;
use aether_services::events::{EventDispatcher, InProcessBus, relay_backoff};
use aether_services::{
    AccountService, Authorizer, AvatarService, CachedReads, IdentityService, NotebookPorts, NotebookService,
    SearchService,
};
use aether_store_neo4j::{Neo4jConfig, Neo4jStore};
use aether_store_sqlite::SqliteStore;
use anyhow::Context as _;
use tokio::sync::watch;

pub use config::Config;
use config::{IdentityKind, JobQueueKind, StoreKind};

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
    pub search: Arc<SearchService>,
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
    /// Builds every part the configuration names, one role at a time (see `wiring`).
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("cannot create data_dir {}", config.data_dir.display()))?;
        let store = open_store(&config, config.migrate_on_start).await?;
        let tokens = wiring::token_codec(&config)?;
        let accounts = wiring::account_service(&config, &store, &tokens);
        // Names this process in the notices it sends other replicas.
        let instance: Arc<str> = uuid::Uuid::now_v7().to_string().into();
        let short_lived = wiring::short_lived(&config, &store).await?;
        // Every URL the server calls goes through this policy (see aether-outbound).
        let outbound = Arc::new(config.outbound_policy().map_err(|error| anyhow::anyhow!("outbound_allow: {error}"))?);
        let identity = wiring::identity(&config, &tokens, &outbound)?;
        let keycloak = identity.keycloak.clone();
        let identity = wiring::identity_service(&config, &store, &short_lived, identity, &accounts);
        let blobs = wiring::blob_store(&config)?;
        let avatars = Arc::new(AvatarService::new(store.clone(), Arc::clone(&blobs)));
        let notebooks = Arc::new(
            NotebookService::new(NotebookPorts::of(&store), config.max_notebook_depth)
                .with_reads(short_lived.reads.clone()),
        );
        let embedder = wiring::embedder(&config, &outbound).await?;
        let search = Arc::new(
            SearchService::new(
                wiring::search_ports(&config, &store, &short_lived.reads),
                Authorizer::new(short_lived.reads.clone()),
            )
            .with_embedder(embedder),
        );
        let events = wiring::events(&config, &store)?;
        let scanner = wiring::virus_scanner(&config);
        let parts = wiring::DocumentParts {
            store: &store,
            blobs: &blobs,
            short_lived: &short_lived,
            outbound: &outbound,
            scanner: scanner.as_ref(),
            instance: &instance,
        };
        let documents = wiring::document_service(&config, parts)?;
        let wiring::ShortLived { redis, ephemeral, limiter, reads } = short_lived;
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
            search,
            scanner,
            tokens,
            bus: events.bus,
            events: events.dispatcher,
            kafka: events.kafka,
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
        aether_api::router(AppState {
            accounts: Arc::clone(&self.accounts),
            identity: Arc::clone(&self.identity),
            avatars: Arc::clone(&self.avatars),
            limiter: Arc::clone(&self.limiter),
            notebooks: Arc::clone(&self.notebooks),
            documents: Arc::clone(&self.documents),
            search: Arc::clone(&self.search),
            readiness: Arc::new(readiness::checks(self)),
            jwks: Arc::new(serde_json::json!({ "keys": [self.tokens.public_jwk()] })),
            metrics: metrics_with_rare_series(),
            settings: Arc::new(ApiSettings {
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
                socket_access_recheck: self.socket_access_recheck(),
                socket_ping: Duration::from_secs(self.config.websocket_ping_secs),
            }),
            sockets: Arc::new(aether_api::sockets::SocketRegistry::new(
                self.config.max_websockets,
                self.config.max_websockets_per_user,
            )),
        })
    }

    /// How often a notebook feed re-checks its reader's permission on its own. With
    /// Redis every permission change, wherever made, reaches the feeds within
    /// `ACCESS_WATCH_INTERVAL` (`CachedReads::follow_access_changes_elsewhere`), so
    /// the timer is only a safety net; without it, the timer is how changes made by
    /// other processes are found.
    fn socket_access_recheck(&self) -> Duration {
        if self.redis.is_some() { ACCESS_RECHECK_WITH_REDIS } else { self.config.websocket_poll() }
    }

    /// Runs the background jobs until `shutdown` turns true: the purge of expired
    /// refresh tokens and sessions, the outbox relay, and the document workers.
    pub async fn run_workers(&self, shutdown: watch::Receiver<bool>) {
        tokio::join!(
            self.purge_sessions(shutdown.clone()),
            self.publish_events(shutdown.clone()),
            self.search.run_embedding(shutdown.clone()),
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
            if self.config.search_history_days > 0 {
                match self.search.forget_searches_older_than(self.config.search_history_days).await {
                    Ok(0) => {}
                    Ok(forgotten) => tracing::info!(forgotten, "forgot searches past their retention"),
                    Err(error) => tracing::warn!(%error, "search history purge failed; will retry"),
                }
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

/// How often a serving process looks at the shared access generation for permission
/// changes made by other replicas.
const ACCESS_WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// A notebook feed's own permission re-check when Redis tells it of every change.
const ACCESS_RECHECK_WITH_REDIS: Duration = Duration::from_secs(300);

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
            // Permission changes of other replicas reach this one's sockets within a second.
            let (reads, stop) = (runtime.reads.clone(), shutdown.subscribe());
            tokio::spawn(async move { reads.follow_access_changes_elsewhere(ACCESS_WATCH_INTERVAL, stop).await });
        }
        // The safety net of this process's job sockets: one store read per followed
        // job or notebook every `websocket_poll_ms`, not one per socket.
        let documents = Arc::clone(&runtime.documents);
        let (poll, stop) = (runtime.config.websocket_poll(), shutdown.subscribe());
        tokio::spawn(async move { documents.resync_job_views(poll, stop).await });
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
