//! The parts of a [`Runtime`](crate::Runtime), one function per role: identity
//! (token codec, verifier and provider), short-lived state (Redis, the ephemeral
//! store, rate limits, the read cache), blobs, events, and the document service
//! with its adapters (processor, scratch space, scanner, callbacks, AudiModal, the
//! job fan-out). `Runtime::build` puts them together.

use std::sync::Arc;
use std::time::Duration;

use aether_audimodal::{AudiModalClient, AudiModalConfig};
use aether_auth_local::{Argon2Hasher, LocalTokenCodec, TokenSettings};
use aether_blob_store::{EncryptedBlobStore, ObjectBlobStore, S3Config};
use aether_cache_redis::RedisEphemeralStore;
use aether_clamav::ClamdScanner;
use aether_domain::blob::BlobStore;
use aether_domain::cache::ReadCache;
use aether_domain::ephemeral::EphemeralStore;
use aether_domain::events::EventPublisher;
use aether_domain::limits::RateLimiter;
use aether_domain::outbound::OutboundPolicy;
use aether_domain::scan::VirusScanner;
use aether_domain::store::Store;
use aether_domain::token::TokenVerifier;
use aether_events_kafka::KafkaPublisher;
use aether_identity_keycloak::{KeycloakClient, KeycloakConfig};
use aether_services::documents::{Callbacks, DocumentService, DocumentSettings, JobHub};
use aether_services::events::{EventDispatcher, InProcessBus};
use aether_services::limits::InProcessRateLimiter;
use aether_services::search_cache::CachedSearchStore;
use aether_services::{
    AccountPorts, AccountService, Authorizer, CachedReads, DocumentPorts, IdentityPorts, IdentityProvider,
    IdentityService, IdentitySettings, InProcessReadCache, ReadPorts, SearchPorts, SessionSettings,
};
use anyhow::Context as _;

use crate::config::{BlobKind, Config, EventsKind, IdentityKind, StoreKind};
use crate::{callbacks, processor, scratch};

/// The built-in identity provider's signing key and token settings.
pub(crate) fn token_codec(config: &Config) -> anyhow::Result<Arc<LocalTokenCodec>> {
    let codec = LocalTokenCodec::load_or_generate(
        &config.signing_key_path(),
        TokenSettings {
            issuer: config.token_issuer.clone(),
            audience: config.token_audience.clone(),
            access_token_ttl_secs: config.access_token_ttl_secs,
        },
    )
    .context("cannot load the token signing key")?;
    Ok(Arc::new(codec))
}

pub(crate) fn account_service(
    config: &Config,
    store: &Arc<dyn Store>,
    tokens: &Arc<LocalTokenCodec>,
) -> Arc<AccountService> {
    Arc::new(AccountService::new(
        AccountPorts::of(store),
        Arc::new(Argon2Hasher),
        Arc::clone(tokens) as _,
        SessionSettings {
            refresh_token_ttl: chrono::TimeDelta::seconds(
                i64::try_from(config.refresh_token_ttl_secs).unwrap_or(i64::MAX / 1000),
            ),
        },
    ))
}

/// Where short-lived state lives: Redis when configured (shared by every replica),
/// otherwise the store and this process's memory.
pub(crate) struct ShortLived {
    pub redis: Option<Arc<RedisEphemeralStore>>,
    pub ephemeral: Arc<dyn EphemeralStore>,
    pub limiter: Arc<dyn RateLimiter>,
    pub reads: CachedReads,
}

pub(crate) async fn short_lived(config: &Config, store: &Arc<dyn Store>) -> anyhow::Result<ShortLived> {
    let redis = if config.redis_url.is_empty() {
        None
    } else {
        let redis =
            RedisEphemeralStore::connect(config.redis_url.expose(), &config.redis_key_prefix, Duration::from_secs(5))
                .await
                .map_err(|error| anyhow::anyhow!("cannot reach Redis: {error}"))?;
        Some(Arc::new(redis))
    };
    let ephemeral: Arc<dyn EphemeralStore> = match &redis {
        Some(redis) => Arc::clone(redis) as _,
        None => Arc::clone(store) as _,
    };
    // Replicas share rate limits through Redis; alone, a process counts for itself.
    let limiter: Arc<dyn RateLimiter> = match &redis {
        Some(redis) => Arc::new(redis.rate_limiter()),
        None => Arc::new(InProcessRateLimiter::default()),
    };
    let reads = CachedReads::new(ReadPorts::of(store), read_cache(config, redis.as_deref()));
    Ok(ShortLived { redis, ephemeral, limiter, reads })
}

/// The read cache for this configuration. Redis, when configured, is shared by every
/// replica and invalidated by all of them. Without it, a SQLite store is served by
/// one process, whose own memory is then a correct cache (and lets the same
/// invalidation tests run on both shapes). Neo4j without Redis may have replicas
/// that cannot tell each other about changes: each keeps its own cache for at most
/// [`UNSHARED_CACHE_TTL`], so a change made through one replica is seen by the
/// others within that time (the same bound as a logout, see `IdentitySettings::
/// recheck_interval`), and every read of a user and of a permission chain is not a
/// Neo4j query (they were two of the three queries of a `GET /notebooks/{id}`).
fn read_cache(config: &Config, redis: Option<&RedisEphemeralStore>) -> Option<Arc<dyn ReadCache>> {
    let ttl = Duration::from_secs(config.cache_ttl_secs);
    if ttl.is_zero() {
        return None;
    }
    match (redis, config.store) {
        (Some(redis), _) => Some(Arc::new(redis.read_cache(ttl))),
        (None, StoreKind::Sqlite) => Some(Arc::new(InProcessReadCache::new(ttl, 100_000))),
        (None, StoreKind::Neo4j) => Some(Arc::new(InProcessReadCache::new(ttl.min(UNSHARED_CACHE_TTL), 100_000))),
    }
}

/// The search ports, the store's search behind the read cache. Neo4j's full-text
/// indexes take a commit up within moments: results are cached only under a
/// generation at least that old. SQLite indexes in the commit itself.
pub fn search_ports(config: &Config, store: &Arc<dyn Store>, reads: &CachedReads) -> SearchPorts {
    let mut ports = SearchPorts::of(store);
    let settle = match config.store {
        StoreKind::Sqlite => Duration::ZERO,
        StoreKind::Neo4j => Duration::from_secs(2),
    };
    ports.search = Arc::new(CachedSearchStore::new(Arc::clone(&ports.search), reads.clone(), settle));
    ports
}

/// How long a replica of the Neo4j shape without Redis keeps a read for itself.
const UNSHARED_CACHE_TTL: Duration = Duration::from_secs(1);

/// Authentication: the built-in provider's tokens, or Keycloak's (with its client).
pub(crate) struct Identity {
    pub verifier: Arc<dyn TokenVerifier>,
    pub provider: IdentityProvider,
    pub keycloak: Option<Arc<KeycloakClient>>,
}

pub(crate) fn identity(
    config: &Config,
    tokens: &Arc<LocalTokenCodec>,
    outbound: &Arc<OutboundPolicy>,
) -> anyhow::Result<Identity> {
    if config.identity == IdentityKind::Local {
        return Ok(Identity { verifier: Arc::clone(tokens) as _, provider: IdentityProvider::Local, keycloak: None });
    }
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
        aether_outbound::client_builder(Arc::clone(outbound)),
    )
    .map_err(anyhow::Error::msg)?;
    let provider = IdentityProvider::External { oidc: Arc::new(client.clone()), directory: client.directory() };
    Ok(Identity { verifier: Arc::new(verifier), provider, keycloak: Some(Arc::new(client)) })
}

pub(crate) fn identity_service(
    config: &Config,
    store: &Arc<dyn Store>,
    short_lived: &ShortLived,
    identity: Identity,
    accounts: &Arc<AccountService>,
) -> Arc<IdentityService> {
    Arc::new(IdentityService::new(
        IdentityPorts::of(store),
        short_lived.reads.clone(),
        Arc::clone(&short_lived.ephemeral),
        identity.verifier,
        identity.provider,
        Arc::clone(accounts),
        IdentitySettings {
            revocation_ttl: Duration::from_secs(config.access_token_ttl_secs.max(3600)),
            ..IdentitySettings::default()
        },
    ))
}

/// The filesystem under `data_dir/blobs` or S3, encrypted at rest when a key is set.
pub(crate) fn blob_store(config: &Config) -> anyhow::Result<Arc<dyn BlobStore>> {
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
    Ok(match config.encryption_key_bytes().map_err(anyhow::Error::msg)? {
        Some(key) => Arc::new(EncryptedBlobStore::new(blobs, key)),
        None => blobs,
    })
}

/// Where the outbox is published: the in-process bus, or Kafka.
pub(crate) struct Events {
    pub bus: Arc<InProcessBus>,
    pub kafka: Option<Arc<KafkaPublisher>>,
    pub dispatcher: Arc<EventDispatcher>,
}

pub(crate) fn events(config: &Config, store: &Arc<dyn Store>) -> anyhow::Result<Events> {
    let bus = Arc::new(InProcessBus::new(1024));
    let kafka = match config.events {
        EventsKind::Inprocess => None,
        EventsKind::Kafka => Some(Arc::new(KafkaPublisher::new(&config.kafka_brokers).map_err(anyhow::Error::msg)?)),
    };
    let publisher: Arc<dyn EventPublisher> = match &kafka {
        Some(kafka) => Arc::clone(kafka) as _,
        None => Arc::clone(&bus) as _,
    };
    let dispatcher = Arc::new(EventDispatcher::new(store.clone(), publisher));
    Ok(Events { bus, kafka, dispatcher })
}

/// ClamAV, when `clamav_address` names one.
pub(crate) fn virus_scanner(config: &Config) -> Option<Arc<dyn VirusScanner>> {
    (!config.clamav_address.is_empty()).then(|| {
        Arc::new(ClamdScanner::new(config.clamav_address.clone(), Duration::from_secs(config.clamav_timeout_secs)))
            as Arc<dyn VirusScanner>
    })
}

/// What the document service is built from, besides the configuration.
pub(crate) struct DocumentParts<'a> {
    pub store: &'a Arc<dyn Store>,
    pub blobs: &'a Arc<dyn BlobStore>,
    pub short_lived: &'a ShortLived,
    pub outbound: &'a Arc<OutboundPolicy>,
    pub scanner: Option<&'a Arc<dyn VirusScanner>>,
    /// This process among the replicas, for the job fan-out.
    pub instance: &'a str,
}

pub(crate) fn document_service(config: &Config, parts: DocumentParts<'_>) -> anyhow::Result<Arc<DocumentService>> {
    let hub = match &parts.short_lived.redis {
        Some(redis) => JobHub::with_fanout(Arc::new(redis.job_fanout(parts.instance))),
        None => JobHub::default(),
    };
    let mut documents = DocumentService::new(
        DocumentPorts::of(parts.store),
        Arc::clone(parts.blobs),
        Authorizer::new(parts.short_lived.reads.clone()),
        document_processor(config)?,
        Arc::new(scratch::TempScratch),
        Arc::new(hub),
        document_settings(config, parts.outbound),
    )
    .with_callbacks(job_callbacks(config, parts.outbound)?)
    .with_url_signing_secret(callbacks::signing_secret(
        config.storage_signing_secret.expose(),
        &config.data_dir.join("keys").join("storage-signing-secret"),
    )?);
    if let Some(scanner) = parts.scanner {
        documents = documents.with_scanner(Arc::clone(scanner));
    }
    if !config.transcription_url.is_empty() {
        let transcriber = aether_openai::OpenAiTranscriber::new(
            aether_openai::OpenAiTranscriptionConfig {
                base_url: config.transcription_url.clone(),
                model: config.transcription_model.clone(),
                api_key: config.transcription_api_key.expose().to_owned(),
                max_bytes: config.transcription_max_bytes,
            },
            aether_outbound::client_builder(Arc::clone(parts.outbound)),
        )
        .map_err(|error| anyhow::anyhow!("transcription_url: {error}"))?;
        documents = documents.with_transcriber(Arc::new(transcriber));
    }
    if let Some(client) = audimodal(config, parts.outbound)? {
        documents = documents.with_external_processor(
            Arc::new(client),
            config.public_url.clone(),
            Duration::from_secs(config.audimodal_timeout_secs),
        );
    }
    Ok(Arc::new(documents))
}

fn document_settings(config: &Config, outbound: &OutboundPolicy) -> DocumentSettings {
    DocumentSettings {
        max_upload_bytes: config.max_upload_bytes,
        workers: config.document_workers,
        job_lease: Duration::from_secs(config.job_lease_secs),
        max_attempts: config.processing_max_attempts,
        processing_timeout: Duration::from_secs(config.processing_timeout_secs),
        stale_upload_after: Duration::from_secs(config.stale_upload_secs),
        outbound: outbound.clone(),
        ..DocumentSettings::default()
    }
}

/// `aether extract` in a resource-limited child process (this executable, unless
/// `extractor_program` names another).
fn document_processor(config: &Config) -> anyhow::Result<Arc<processor::SandboxedProcessor>> {
    let program = if config.extractor_program.is_empty() {
        std::env::current_exe().context("cannot locate the aether executable for document processing")?
    } else {
        std::path::PathBuf::from(&config.extractor_program)
    };
    Ok(Arc::new(processor::SandboxedProcessor {
        program,
        timeout: Duration::from_secs(config.processing_timeout_secs),
        memory_bytes: config.processing_memory_mb.saturating_mul(1024 * 1024),
        tools: processor::Tools { ocr: ocr_engine(config), media: media_tools(config) },
    }))
}

/// ffprobe and ffmpeg from the `PATH`, checked once at start-up; without them (or with
/// `media_enabled` off) audio and video are kept without their metadata, with a warning.
fn media_tools(config: &Config) -> Option<aether_ocr::MediaTools> {
    if !config.media_enabled {
        return None;
    }
    match aether_ocr::MediaTools::locate(std::env::var_os("PATH").as_deref()) {
        Ok(tools) => {
            tracing::info!(engine = %tools.version, poster_frames = tools.ffmpeg.is_some(), "audio and video description ready");
            Some(tools)
        }
        Err(why) => {
            tracing::warn!(%why, "audio and video will be kept without their metadata");
            None
        }
    }
}

/// Tesseract and pdftoppm from the `PATH`, checked once at start-up; without them
/// (or with `ocr_enabled` off) documents needing OCR are kept with a warning.
fn ocr_engine(config: &Config) -> Option<aether_ocr::OcrEngine> {
    if !config.ocr_enabled {
        return None;
    }
    let max_pages = usize::try_from(config.ocr_max_pages).unwrap_or(usize::MAX);
    let settings = aether_ocr::OcrSettings { languages: config.ocr_languages.clone(), max_pages };
    match aether_ocr::OcrEngine::locate(&settings, std::env::var_os("PATH").as_deref()) {
        Ok(engine) => {
            tracing::info!(engine = %engine.version, languages = %engine.languages, pdf_pages = engine.pdftoppm.is_some(), "OCR ready");
            Some(engine)
        }
        Err(why) => {
            tracing::warn!(%why, "OCR unavailable: images and scanned PDF pages will have no text");
            None
        }
    }
}

/// Signed callbacks over HTTP under the outbound policy, retried with backoff.
fn job_callbacks(config: &Config, outbound: &Arc<OutboundPolicy>) -> anyhow::Result<Callbacks> {
    Ok(Callbacks::new(
        Arc::new(callbacks::HttpCallbackSender::new(Arc::clone(outbound))?),
        callbacks::signing_secret(
            config.callback_signing_secret.expose(),
            &config.data_dir.join("keys").join("callback-signing-secret"),
        )?,
        [1, 5, 25].iter().map(|factor| Duration::from_millis(config.callback_retry_base_ms * factor)).collect(),
    ))
}

/// AudiModal's client, when `audimodal_url` is set.
fn audimodal(config: &Config, outbound: &Arc<OutboundPolicy>) -> anyhow::Result<Option<AudiModalClient>> {
    if config.audimodal_url.is_empty() {
        return Ok(None);
    }
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
        aether_outbound::client_builder(Arc::clone(outbound)),
    )
    .map_err(anyhow::Error::msg)?;
    Ok(Some(client))
}

/// The embedder of semantic and hybrid search: the built-in all-MiniLM-L6-v2 from
/// the models directory, loaded on a blocking thread (~90 MB). Missing or unusable
/// files leave search by words only, with a warning that says how to install them.
///
/// With `embedding_model = "openai"`, an OpenAI-compatible `/v1/embeddings` service
/// instead, called through the outbound policy. It is not called here: a service
/// that is down at start-up only delays the vectors (the worker tries again).
pub(crate) async fn embedder(
    config: &Config,
    outbound: &Arc<OutboundPolicy>,
) -> anyhow::Result<Option<Arc<dyn aether_domain::embedding::Embedder>>> {
    if config.embedding_model == "openai" {
        let embedder = aether_openai::OpenAiEmbedder::new(
            aether_openai::OpenAiEmbeddingConfig {
                base_url: config.embedding_url.clone(),
                model: config.embedding_api_model.clone(),
                api_key: config.embedding_api_key.expose().to_owned(),
                dimensions: config.embedding_dimensions as usize,
                send_dimensions: config.embedding_send_dimensions,
                max_tokens: 8192,
            },
            aether_outbound::client_builder(Arc::clone(outbound)),
        )
        .map_err(|error| anyhow::anyhow!("embedding_model = openai: {error}"))?;
        return Ok(Some(Arc::new(embedder)));
    }
    if config.embedding_model != "builtin" {
        return Ok(None);
    }
    let dir = config.models_path();
    let loaded = tokio::task::spawn_blocking(move || aether_embed::MiniLmEmbedder::load(&dir)).await;
    match loaded {
        Ok(Ok(embedder)) => Ok(Some(Arc::new(embedder))),
        Ok(Err(error)) => {
            tracing::warn!(
                %error,
                "semantic search is off: install the built-in models with scripts/models install, \
                 or set embedding_model = \"none\""
            );
            Ok(None)
        }
        Err(error) => {
            tracing::warn!(%error, "semantic search is off: loading the model failed");
            Ok(None)
        }
    }
}
