//! Configuration: defaults, then an optional TOML file, then `AETHER_*` environment
//! variables, then command-line flags; each layer overrides the one before. Every
//! key is documented in the README's configuration table.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use aether_domain::net::IpNetwork;
use aether_domain::outbound::{AllowedTarget, OutboundPolicy};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A secret value: usable by the program, printed as `<redacted>`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(if self.0.is_empty() { "" } else { "<redacted>" })
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    Sqlite,
    Neo4j,
}

/// Where domain events are published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventsKind {
    /// The in-process bus of the embedded shape.
    Inprocess,
    /// Kafka, at `kafka_brokers`.
    Kafka,
}

/// Where document workers find their jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobQueueKind {
    /// Workers poll the store (and are woken by uploads in their own process).
    Store,
    /// Workers form a Kafka consumer group on `aether.documents.jobs`.
    Kafka,
}

/// Where blobs (avatars, later documents) are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobKind {
    /// Files under `data_dir/blobs`.
    Fs,
    /// An S3-compatible service at `s3_endpoint`.
    S3,
}

/// Where identities come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentityKind {
    /// The built-in provider: accounts and passwords in the store, locally signed tokens.
    Local,
    /// Keycloak (OpenID Connect) at `keycloak_issuer_url`.
    Keycloak,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Text,
}

/// A list given either as a TOML array or as one comma-separated string (the only
/// shape an environment variable can have).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct StringList(pub Vec<String>);

impl<'de> Deserialize<'de> for StringList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Shape {
            List(Vec<String>),
            Text(String),
        }
        Ok(StringList(match Shape::deserialize(deserializer)? {
            Shape::List(items) => items,
            Shape::Text(text) => {
                text.split(',').map(str::trim).filter(|item| !item.is_empty()).map(str::to_owned).collect()
            }
        }))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub store: StoreKind,
    pub neo4j_uri: String,
    pub neo4j_user: String,
    pub neo4j_password: Secret,
    pub neo4j_database: String,
    pub neo4j_max_connections: usize,
    pub migrate_on_start: bool,
    pub admin_password: Secret,
    pub token_issuer: String,
    pub token_audience: String,
    pub access_token_ttl_secs: u64,
    pub refresh_token_ttl_secs: u64,
    pub max_body_bytes: usize,
    pub cors_allowed_origins: StringList,
    pub request_timeout_secs: u64,
    pub shutdown_grace_secs: u64,
    pub run_workers: bool,
    pub session_purge_interval_secs: u64,
    /// Searches older than this many days leave every user's history (0: kept forever).
    pub search_history_days: u32,
    pub max_notebook_depth: u32,
    pub event_poll_interval_ms: u64,
    pub events: EventsKind,
    pub kafka_brokers: String,
    pub identity: IdentityKind,
    pub keycloak_issuer_url: String,
    pub keycloak_client_id: String,
    pub keycloak_client_secret: Secret,
    /// Defaults to `keycloak_client_id` when empty.
    pub keycloak_audience: String,
    pub keycloak_leeway_secs: u64,
    /// Empty: sessions and other short-lived state live in the store.
    pub redis_url: Secret,
    pub redis_key_prefix: String,
    /// How often the jobs and notebooks that this process's sockets follow are re-read
    /// from the store (once per followed job or notebook, not per socket), for
    /// changes no notice brought, and notebook feeds re-check their reader's
    /// permission; 0 picks 30 s on SQLite with the workers in this process
    /// (every change passes through its own hub, so the re-read is only a safety
    /// net), 15 s when Redis relays other processes' job changes, and 1 s otherwise
    /// (other processes cannot tell this one).
    pub websocket_poll_ms: u64,
    /// How often each WebSocket is pinged; a peer silent for two intervals is
    /// closed as dead.
    pub websocket_ping_secs: u64,
    /// WebSockets this server holds open at most (0: no limit); one more is closed
    /// with code 1013 right after its handshake.
    pub max_websockets: usize,
    /// WebSockets one user may hold open on this server (0: no limit); one more is
    /// closed with code 1008.
    pub max_websockets_per_user: usize,
    /// How long hot reads (users, permission chains) stay cached; 0 turns the cache off.
    pub cache_ttl_secs: u64,
    /// The external base URL of the server, for the OIDC redirect URI.
    pub public_url: String,
    pub allowed_hosts: StringList,
    pub trusted_proxies: StringList,
    pub outbound_allow: StringList,
    pub header_read_timeout_secs: u64,
    pub max_connections: usize,
    pub secure_cookies: bool,
    pub blob_store: BlobKind,
    pub s3_endpoint: String,
    pub s3_bucket: String,
    pub s3_region: String,
    pub s3_access_key_id: String,
    pub s3_secret_access_key: Secret,
    pub s3_allow_http: bool,
    pub rate_limit_per_user: u32,
    pub rate_limit_per_ip: u32,
    pub rate_limit_window_secs: u64,
    pub rate_limit_fail_open: bool,
    /// The largest document upload, in bytes.
    pub max_upload_bytes: u64,
    /// Document jobs this process works on at once.
    pub document_workers: usize,
    pub job_queue: JobQueueKind,
    pub kafka_worker_group: String,
    pub kafka_job_partitions: u32,
    pub kafka_replication_factor: u16,
    /// Wall-clock limit of one file's processing.
    pub processing_timeout_secs: u64,
    /// Address-space limit of the processing child process.
    pub processing_memory_mb: u64,
    /// Claims of one job before it is given up.
    pub processing_max_attempts: u32,
    /// How long a worker holds a job between renewals.
    pub job_lease_secs: u64,
    /// An upload whose progress has not moved for this long is failed as interrupted.
    pub stale_upload_secs: u64,
    /// The `aether` binary run as `aether extract`; empty means this executable.
    pub extractor_program: String,
    /// Recognise the text of images and of PDF pages without a text layer with
    /// Tesseract (and poppler's pdftoppm), when installed; off, or without them,
    /// such documents are kept with a warning and no text.
    pub ocr_enabled: bool,
    /// Tesseract's languages, `eng` or several joined by `+` (`eng+deu`); each must
    /// be installed (Debian: `tesseract-ocr-<name>`).
    pub ocr_languages: String,
    /// The most pages of one PDF recognised; pages past it are skipped with a warning.
    pub ocr_max_pages: u32,
    /// Describe audio and video (duration, codecs, tags; a poster frame for video) with
    /// ffprobe and ffmpeg, when installed; off, or without them, such files are kept
    /// with a warning and no metadata.
    pub media_enabled: bool,
    /// An OpenAI-compatible transcription service's base URL up to its version
    /// (`https://api.openai.com/v1`, a whisper.cpp or vLLM server): speech in audio and
    /// video becomes the document's text. Empty: none (`transcription: unavailable`).
    pub transcription_url: String,
    /// The model the transcription service is asked for.
    pub transcription_model: String,
    /// Sent as a bearer token to the transcription service when not empty.
    pub transcription_api_key: Secret,
    /// Larger audio and video files are not sent (OpenAI takes up to 25 MiB).
    pub transcription_max_bytes: u64,
    /// `builtin` (all-MiniLM-L6-v2 in-process, from `models_dir`), `openai` (an
    /// OpenAI-compatible `/v1/embeddings` service: `embedding_url`…) or `none`: the
    /// embedder of semantic and hybrid search.
    pub embedding_model: String,
    /// With `embedding_model = "openai"`: the API's base URL up to its version
    /// (`https://api.openai.com/v1`, `http://ollama:11434/v1`), allowed by the
    /// outbound policy as configured.
    pub embedding_url: String,
    /// The model asked for, e.g. `text-embedding-3-small` or `nomic-embed-text`.
    pub embedding_api_model: String,
    /// Sent as a bearer token when set.
    pub embedding_api_key: Secret,
    /// The length of the model's vectors (1–4096); required with `openai`.
    pub embedding_dimensions: u32,
    /// Whether to send `dimensions` (OpenAI's text-embedding-3 models shorten their
    /// vectors to it; other services may refuse the field).
    pub embedding_send_dimensions: bool,
    /// Where `scripts/models install` put the built-in models; empty:
    /// `~/.cache/aether/models`, as the script's default.
    pub models_dir: String,
    /// clamd's `host:port`; empty turns virus scanning off.
    pub clamav_address: String,
    pub clamav_timeout_secs: u64,
    /// AudiModal's base URL; empty: documents are processed by the built-in extractor.
    pub audimodal_url: String,
    pub audimodal_api_key: Secret,
    /// The AudiModal tenant (a UUID) and upload data source files are registered under.
    pub audimodal_tenant_id: String,
    pub audimodal_datasource_id: String,
    /// The key AudiModal signs its webhooks with.
    pub audimodal_webhook_secret: Secret,
    /// How long a file may stay with AudiModal before its job asks AudiModal again.
    pub audimodal_timeout_secs: u64,
    /// AES-256 key for encryption at rest of every blob (64 hex digits or base64 of
    /// 32 bytes); empty: blobs are stored as they are.
    pub encryption_key: Secret,
    /// HMAC key of server-signed download URLs; empty: generated once into `data_dir/keys`.
    /// Replicas must share it.
    pub storage_signing_secret: Secret,
    /// HMAC key of job callbacks; empty: generated once into `data_dir/keys`.
    pub callback_signing_secret: Secret,
    /// Callback retries wait 1×, 5× and 25× this.
    pub callback_retry_base_ms: u64,
    pub log_format: LogFormat,
    pub log_level: String,
    /// An OpenTelemetry collector's OTLP/gRPC endpoint (`http://host:4317`, plain
    /// gRPC); empty: spans are not exported.
    pub otlp_endpoint: String,
    /// `service.name` of the exported spans.
    pub otlp_service_name: String,
    /// The share of traces started here that are exported (0.0 to 1.0); a trace
    /// continued from a caller's `traceparent` follows the caller's decision.
    pub otlp_sample_ratio: f64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./data"),
            store: StoreKind::Sqlite,
            neo4j_uri: "bolt://127.0.0.1:7687".into(),
            neo4j_user: "neo4j".into(),
            neo4j_password: Secret::default(),
            neo4j_database: "neo4j".into(),
            neo4j_max_connections: 16,
            migrate_on_start: true,
            admin_password: Secret::default(),
            token_issuer: "aether".into(),
            token_audience: "aether-api".into(),
            access_token_ttl_secs: 300,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            max_body_bytes: 1024 * 1024,
            cors_allowed_origins: StringList::default(),
            request_timeout_secs: 30,
            shutdown_grace_secs: 30,
            run_workers: true,
            session_purge_interval_secs: 3600,
            search_history_days: 90,
            max_notebook_depth: 32,
            event_poll_interval_ms: 250,
            events: EventsKind::Inprocess,
            kafka_brokers: "127.0.0.1:9092".into(),
            identity: IdentityKind::Local,
            keycloak_issuer_url: "http://127.0.0.1:8180/realms/aether".into(),
            keycloak_client_id: "aether-app".into(),
            keycloak_client_secret: Secret::default(),
            keycloak_audience: String::new(),
            keycloak_leeway_secs: 30,
            redis_url: Secret::default(),
            redis_key_prefix: "aether:".into(),
            websocket_poll_ms: 0,
            websocket_ping_secs: 30,
            max_websockets: 20_000,
            max_websockets_per_user: 100,
            cache_ttl_secs: 30,
            public_url: String::new(),
            allowed_hosts: StringList(vec!["localhost".into(), "127.0.0.1".into(), "[::1]".into()]),
            trusted_proxies: StringList::default(),
            outbound_allow: StringList::default(),
            header_read_timeout_secs: 10,
            max_connections: 10_000,
            secure_cookies: false,
            blob_store: BlobKind::Fs,
            s3_endpoint: "https://s3.amazonaws.com".into(),
            s3_bucket: "aether".into(),
            s3_region: "us-east-1".into(),
            s3_access_key_id: String::new(),
            s3_secret_access_key: Secret::default(),
            s3_allow_http: false,
            rate_limit_per_user: 600,
            rate_limit_per_ip: 1200,
            rate_limit_window_secs: 60,
            rate_limit_fail_open: true,
            max_upload_bytes: 500 * 1024 * 1024,
            document_workers: 2,
            job_queue: JobQueueKind::Store,
            kafka_worker_group: "aether-document-workers".into(),
            kafka_job_partitions: 12,
            kafka_replication_factor: 0,
            processing_timeout_secs: 60,
            processing_memory_mb: 1024,
            processing_max_attempts: 3,
            job_lease_secs: 60,
            stale_upload_secs: 120,
            extractor_program: String::new(),
            ocr_enabled: true,
            ocr_languages: "eng".into(),
            ocr_max_pages: 50,
            media_enabled: true,
            transcription_url: String::new(),
            transcription_model: "whisper-1".into(),
            transcription_api_key: Secret::default(),
            transcription_max_bytes: 25 * 1024 * 1024,
            embedding_model: "builtin".into(),
            embedding_url: String::new(),
            embedding_api_model: String::new(),
            embedding_api_key: Secret::default(),
            embedding_dimensions: 0,
            embedding_send_dimensions: false,
            models_dir: String::new(),
            clamav_address: String::new(),
            clamav_timeout_secs: 120,
            audimodal_url: String::new(),
            audimodal_api_key: Secret::default(),
            audimodal_tenant_id: String::new(),
            audimodal_datasource_id: String::new(),
            audimodal_webhook_secret: Secret::default(),
            audimodal_timeout_secs: 3600,
            encryption_key: Secret::default(),
            storage_signing_secret: Secret::default(),
            callback_signing_secret: Secret::default(),
            callback_retry_base_ms: 1000,
            log_format: LogFormat::Json,
            log_level: "info".into(),
            otlp_endpoint: String::new(),
            otlp_service_name: "aether".into(),
            otlp_sample_ratio: 1.0,
        }
    }
}

/// Every key, for filtering environment variables and checking config files.
pub const KEYS: &[&str] = &[
    "listen",
    "data_dir",
    "store",
    "neo4j_uri",
    "neo4j_user",
    "neo4j_password",
    "neo4j_database",
    "neo4j_max_connections",
    "migrate_on_start",
    "admin_password",
    "token_issuer",
    "token_audience",
    "access_token_ttl_secs",
    "refresh_token_ttl_secs",
    "max_body_bytes",
    "cors_allowed_origins",
    "request_timeout_secs",
    "shutdown_grace_secs",
    "run_workers",
    "session_purge_interval_secs",
    "search_history_days",
    "max_notebook_depth",
    "event_poll_interval_ms",
    "events",
    "kafka_brokers",
    "identity",
    "keycloak_issuer_url",
    "keycloak_client_id",
    "keycloak_client_secret",
    "keycloak_audience",
    "keycloak_leeway_secs",
    "redis_url",
    "redis_key_prefix",
    "websocket_poll_ms",
    "websocket_ping_secs",
    "max_websockets",
    "max_websockets_per_user",
    "cache_ttl_secs",
    "public_url",
    "allowed_hosts",
    "trusted_proxies",
    "outbound_allow",
    "header_read_timeout_secs",
    "max_connections",
    "secure_cookies",
    "blob_store",
    "s3_endpoint",
    "s3_bucket",
    "s3_region",
    "s3_access_key_id",
    "s3_secret_access_key",
    "s3_allow_http",
    "rate_limit_per_user",
    "rate_limit_per_ip",
    "rate_limit_window_secs",
    "rate_limit_fail_open",
    "max_upload_bytes",
    "document_workers",
    "job_queue",
    "kafka_worker_group",
    "kafka_job_partitions",
    "kafka_replication_factor",
    "processing_timeout_secs",
    "processing_memory_mb",
    "processing_max_attempts",
    "job_lease_secs",
    "stale_upload_secs",
    "extractor_program",
    "ocr_enabled",
    "ocr_languages",
    "ocr_max_pages",
    "media_enabled",
    "transcription_url",
    "transcription_model",
    "transcription_api_key",
    "transcription_max_bytes",
    "embedding_model",
    "embedding_url",
    "embedding_api_model",
    "embedding_api_key",
    "embedding_dimensions",
    "embedding_send_dimensions",
    "models_dir",
    "clamav_address",
    "clamav_timeout_secs",
    "audimodal_url",
    "audimodal_api_key",
    "audimodal_tenant_id",
    "audimodal_datasource_id",
    "audimodal_webhook_secret",
    "audimodal_timeout_secs",
    "encryption_key",
    "storage_signing_secret",
    "callback_signing_secret",
    "callback_retry_base_ms",
    "log_format",
    "log_level",
    "otlp_endpoint",
    "otlp_service_name",
    "otlp_sample_ratio",
];

/// Overrides from command-line flags; `None` leaves the lower layers' value.
#[derive(Debug, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// The models directory: `models_dir`, or `~/.cache/aether/models` (where
    /// `scripts/models install` puts them by default).
    pub fn models_path(&self) -> PathBuf {
        if !self.models_dir.is_empty() {
            return PathBuf::from(&self.models_dir);
        }
        let cache = std::env::var_os("AETHER_CACHE_DIR").map(PathBuf::from).unwrap_or_else(|| {
            std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default().join(".cache").join("aether")
        });
        cache.join("models")
    }

    /// How often the jobs that sockets follow are re-read from the store, and notebook
    /// feeds re-check their reader's permission (see `websocket_poll_ms`).
    pub fn websocket_poll(&self) -> std::time::Duration {
        let millis = match self.websocket_poll_ms {
            0 if !self.redis_url.is_empty() => 15_000,
            0 if self.store == StoreKind::Sqlite && self.run_workers => 30_000,
            0 => 1_000,
            millis => millis,
        };
        std::time::Duration::from_millis(millis)
    }

    /// Loads the layers. `file` is the `--config` flag (or `AETHER_CONFIG`).
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|error| ConfigError::File { path: path.to_owned(), message: error.to_string() })?;
            let table: toml::Table = text.parse().map_err(|error: toml::de::Error| ConfigError::File {
                path: path.to_owned(),
                message: error.to_string(),
            })?;
            if let Some(unknown) = table.keys().find(|key| !KEYS.contains(&key.as_str())) {
                return Err(ConfigError::File {
                    path: path.to_owned(),
                    message: format!("unknown option '{unknown}'"),
                });
            }
            figment = figment.merge(Toml::file(path));
        }
        figment = figment
            // Only configuration keys: AETHER_CONFIG and AETHER_TEST_* are not options.
            .merge(Env::prefixed("AETHER_").filter(|key| KEYS.iter().any(|known| key == *known)))
            .merge(Serialized::defaults(overrides));
        let config: Config = figment.extract().map_err(|error| ConfigError::Invalid(describe(&error)))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |message: &str| Err(ConfigError::Invalid(message.to_owned()));
        if !["builtin", "openai", "none"].contains(&self.embedding_model.as_str()) {
            return invalid("embedding_model (AETHER_EMBEDDING_MODEL) must be builtin, openai or none");
        }
        if self.embedding_model == "openai" {
            let url = url::Url::parse(&self.embedding_url).ok();
            if !url.is_some_and(|url| ["http", "https"].contains(&url.scheme()) && url.host_str().is_some()) {
                return invalid(
                    "embedding_url (AETHER_EMBEDDING_URL) must be an http(s) URL with embedding_model = openai",
                );
            }
            if self.embedding_api_model.trim().is_empty() {
                return invalid(
                    "embedding_api_model (AETHER_EMBEDDING_API_MODEL) must name the model with embedding_model = openai",
                );
            }
            if !(1..=4096).contains(&self.embedding_dimensions) {
                return invalid(
                    "embedding_dimensions (AETHER_EMBEDDING_DIMENSIONS) must be 1 to 4096 with embedding_model = openai",
                );
            }
        }
        if !aether_ocr::valid_languages(&self.ocr_languages) {
            return invalid(
                "ocr_languages (AETHER_OCR_LANGUAGES) must be Tesseract language names joined by +, like eng+deu",
            );
        }
        if !(1..=2000).contains(&self.ocr_max_pages) {
            return invalid("ocr_max_pages (AETHER_OCR_MAX_PAGES) must be between 1 and 2000");
        }
        if !self.transcription_url.is_empty() && url::Url::parse(&self.transcription_url).is_err() {
            return invalid("transcription_url (AETHER_TRANSCRIPTION_URL) must be an absolute URL");
        }
        if self.transcription_model.trim().is_empty() {
            return invalid("transcription_model (AETHER_TRANSCRIPTION_MODEL) must name a model");
        }
        if !(1..=(1 << 30)).contains(&self.transcription_max_bytes) {
            return invalid("transcription_max_bytes (AETHER_TRANSCRIPTION_MAX_BYTES) must be between 1 and 1 GiB");
        }
        if self.access_token_ttl_secs == 0 {
            return invalid("access_token_ttl_secs (AETHER_ACCESS_TOKEN_TTL_SECS) must be positive");
        }
        if self.refresh_token_ttl_secs < self.access_token_ttl_secs {
            return invalid(
                "refresh_token_ttl_secs (AETHER_REFRESH_TOKEN_TTL_SECS) must be at least access_token_ttl_secs",
            );
        }
        if self.max_body_bytes < 1024 {
            return invalid("max_body_bytes (AETHER_MAX_BODY_BYTES) must be at least 1024");
        }
        if self.request_timeout_secs == 0 {
            return invalid("request_timeout_secs (AETHER_REQUEST_TIMEOUT_SECS) must be positive");
        }
        if self.session_purge_interval_secs == 0 {
            return invalid("session_purge_interval_secs (AETHER_SESSION_PURGE_INTERVAL_SECS) must be positive");
        }
        if !(1..=1000).contains(&self.max_notebook_depth) {
            return invalid("max_notebook_depth (AETHER_MAX_NOTEBOOK_DEPTH) must be between 1 and 1000");
        }
        if !(10..=60_000).contains(&self.event_poll_interval_ms) {
            return invalid("event_poll_interval_ms (AETHER_EVENT_POLL_INTERVAL_MS) must be between 10 and 60000");
        }
        if self.job_queue == JobQueueKind::Kafka && self.events != EventsKind::Kafka {
            return invalid(
                "job_queue = \"kafka\" (AETHER_JOB_QUEUE) needs events = \"kafka\": the outbox feeds the queue",
            );
        }
        if !(1..=1000).contains(&self.kafka_job_partitions) {
            return invalid("kafka_job_partitions (AETHER_KAFKA_JOB_PARTITIONS) must be between 1 and 1000");
        }
        if self.kafka_worker_group.trim().is_empty() {
            return invalid("kafka_worker_group (AETHER_KAFKA_WORKER_GROUP) must not be empty");
        }
        if self.websocket_poll_ms > 600_000 {
            return invalid("websocket_poll_ms (AETHER_WEBSOCKET_POLL_MS) must be at most 600000");
        }
        if !(1..=3600).contains(&self.websocket_ping_secs) {
            return invalid("websocket_ping_secs (AETHER_WEBSOCKET_PING_SECS) must be between 1 and 3600");
        }
        if self.neo4j_max_connections == 0 {
            return invalid("neo4j_max_connections (AETHER_NEO4J_MAX_CONNECTIONS) must be positive");
        }
        if self.store == StoreKind::Neo4j && !self.neo4j_uri.contains("://") {
            return invalid("neo4j_uri (AETHER_NEO4J_URI) must be a URI such as bolt://host:7687");
        }
        if !self.admin_password.is_empty() && self.admin_password.expose().chars().count() < 8 {
            return invalid("admin_password (AETHER_ADMIN_PASSWORD) must be at least 8 characters");
        }
        if self.identity == IdentityKind::Keycloak {
            if !self.keycloak_issuer_url.contains("/realms/") {
                return invalid(
                    "keycloak_issuer_url (AETHER_KEYCLOAK_ISSUER_URL) must be a realm URL such as https://sso/realms/aether",
                );
            }
            if self.keycloak_client_secret.is_empty() {
                return invalid(
                    "keycloak_client_secret (AETHER_KEYCLOAK_CLIENT_SECRET) is required with identity = keycloak",
                );
            }
        }
        if !(1..=86_400).contains(&self.rate_limit_window_secs) {
            return invalid("rate_limit_window_secs (AETHER_RATE_LIMIT_WINDOW_SECS) must be between 1 and 86400");
        }
        if self.blob_store == BlobKind::S3 && (self.s3_bucket.is_empty() || !self.s3_endpoint.contains("://")) {
            return invalid(
                "s3_endpoint and s3_bucket (AETHER_S3_ENDPOINT, AETHER_S3_BUCKET) are required with blob_store = s3",
            );
        }
        if !self.redis_url.is_empty() && !self.redis_url.expose().starts_with("redis") {
            return invalid("redis_url (AETHER_REDIS_URL) must be a redis:// or rediss:// URL");
        }
        if let Err(error) = tracing_subscriber::EnvFilter::try_new(&self.log_level) {
            return Err(ConfigError::Invalid(format!("log_level (AETHER_LOG_LEVEL): {error}")));
        }
        // The exporter is built without TLS: spans go in plain gRPC to a collector
        // nearby (an agent or sidecar), which forwards them securely.
        if !self.otlp_endpoint.is_empty() && !self.otlp_endpoint.starts_with("http://") {
            return invalid(
                "otlp_endpoint (AETHER_OTLP_ENDPOINT) must be an http:// URL such as http://127.0.0.1:4317",
            );
        }
        if self.otlp_service_name.trim().is_empty() {
            return invalid("otlp_service_name (AETHER_OTLP_SERVICE_NAME) must not be empty");
        }
        if let Some(bad) = self.trusted_proxies.0.iter().find(|proxy| network(proxy).is_none()) {
            return Err(ConfigError::Invalid(format!(
                "trusted_proxies (AETHER_TRUSTED_PROXIES): `{bad}` is not an address or a network such as 10.0.0.0/8"
            )));
        }
        if let Err(error) = self.outbound_policy() {
            return Err(ConfigError::Invalid(format!("outbound_allow (AETHER_OUTBOUND_ALLOW): {}", error.message)));
        }
        if self.public_url.is_empty() && self.allowed_hosts.0.is_empty() {
            return invalid(
                "allowed_hosts (AETHER_ALLOWED_HOSTS) must name at least one host when public_url is not set",
            );
        }
        if !self.public_url.is_empty()
            && !self.public_url.starts_with("http://")
            && !self.public_url.starts_with("https://")
        {
            return invalid("public_url (AETHER_PUBLIC_URL) must be an http:// or https:// URL");
        }
        if !(1..=3600).contains(&self.header_read_timeout_secs) {
            return invalid("header_read_timeout_secs (AETHER_HEADER_READ_TIMEOUT_SECS) must be between 1 and 3600");
        }
        if self.max_connections == 0 {
            return invalid("max_connections (AETHER_MAX_CONNECTIONS) must be positive");
        }
        if !(0.0..=1.0).contains(&self.otlp_sample_ratio) {
            return invalid("otlp_sample_ratio (AETHER_OTLP_SAMPLE_RATIO) must be between 0.0 and 1.0");
        }
        Ok(())
    }

    /// The effective configuration as TOML, secrets redacted.
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|error| format!("# cannot render: {error}"))
    }

    /// The outbound policy: public addresses, `outbound_allow`, and the hosts of the
    /// services this configuration names (AudiModal, the identity provider, the
    /// embeddings and transcription services), which an
    /// administrator chose by configuring them.
    pub fn outbound_policy(&self) -> Result<OutboundPolicy, aether_domain::ValidationError> {
        let allowed =
            self.outbound_allow.0.iter().map(|entry| AllowedTarget::parse(entry)).collect::<Result<_, _>>()?;
        let mut policy = OutboundPolicy::new(allowed);
        let configured = [
            (!self.audimodal_url.is_empty()).then_some(self.audimodal_url.as_str()),
            (self.identity == IdentityKind::Keycloak).then_some(self.keycloak_issuer_url.as_str()),
            (self.embedding_model == "openai").then_some(self.embedding_url.as_str()),
            (!self.transcription_url.is_empty()).then_some(self.transcription_url.as_str()),
        ];
        for url in configured.into_iter().flatten() {
            if let Some(host) = url::Url::parse(url).ok().and_then(|url| url.host_str().map(str::to_owned)) {
                policy = policy.also_allowing_host(&host);
            }
        }
        Ok(policy)
    }

    /// The networks whose `X-Forwarded-For`/`Forwarded` headers are believed.
    pub fn trusted_proxy_networks(&self) -> Vec<IpNetwork> {
        self.trusted_proxies.0.iter().filter_map(|proxy| network(proxy)).collect()
    }

    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("aether.db")
    }

    /// The encryption key, when one is configured: 64 hex digits or base64 of 32 bytes.
    pub fn encryption_key_bytes(&self) -> Result<Option<[u8; 32]>, String> {
        let text = self.encryption_key.expose().trim();
        if text.is_empty() {
            return Ok(None);
        }
        let bytes = if text.len() == 64 && text.chars().all(|c| c.is_ascii_hexdigit()) {
            (0..32).map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16)).collect::<Result<Vec<_>, _>>().ok()
        } else {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.decode(text).ok()
        };
        match bytes.and_then(|bytes| <[u8; 32]>::try_from(bytes).ok()) {
            Some(key) => Ok(Some(key)),
            None => Err("encryption_key must be 32 bytes: 64 hex digits or base64".to_owned()),
        }
    }

    pub fn signing_key_path(&self) -> PathBuf {
        self.data_dir.join("keys").join("token-signing.pem")
    }
}

fn network(text: &str) -> Option<IpNetwork> {
    IpNetwork::parse(text).ok()
}

/// Figment's errors name the key but not the environment variable; say both.
fn describe(error: &figment::Error) -> String {
    error
        .clone()
        .into_iter()
        .map(|error| {
            let key = error.path.join(".");
            if key.is_empty() {
                error.to_string()
            } else {
                format!("option '{key}' (AETHER_{}): {}", key.to_uppercase(), error.kind)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    // figment's Jail returns its large error type by design.
    #![allow(clippy::result_large_err)]
    use super::*;

    #[test]
    fn encryption_keys_are_hex_or_base64_of_32_bytes() {
        let with = |key: &str| Config { encryption_key: Secret::new(key), ..Config::default() }.encryption_key_bytes();
        assert_eq!(with(""), Ok(None));
        assert_eq!(with(&"0f".repeat(32)), Ok(Some([15u8; 32])));
        assert_eq!(with("AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="), Ok(Some([1u8; 32])));
        for bad in ["short", &"0f".repeat(31), "AQEB"] {
            assert!(with(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn defaults_run_embedded_on_localhost() {
        figment::Jail::expect_with(|_| {
            let config = Config::load(None, &Overrides::default()).unwrap();
            assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
            assert_eq!(config.data_dir, PathBuf::from("./data"));
            assert_eq!(config.store, StoreKind::Sqlite);
            Ok(())
        });
    }

    #[test]
    fn layers_override_in_order() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "aether.toml",
                "listen = \"127.0.0.1:9000\"\ndata_dir = \"/from-file\"\nlog_level = \"debug\"",
            )?;
            jail.set_env("AETHER_DATA_DIR", "/from-env");
            jail.set_env("AETHER_CORS_ALLOWED_ORIGINS", "https://a.example, https://b.example");
            jail.set_env("AETHER_TEST_SOMETHING", "ignored");
            let overrides = Overrides { listen: Some("127.0.0.1:9100".into()), data_dir: None };
            let config = Config::load(Some(Path::new("aether.toml")), &overrides).unwrap();
            assert_eq!(config.listen.to_string(), "127.0.0.1:9100", "flag beats file");
            assert_eq!(config.data_dir, PathBuf::from("/from-env"), "env beats file");
            assert_eq!(config.log_level, "debug", "file beats default");
            assert_eq!(config.cors_allowed_origins.0, ["https://a.example", "https://b.example"]);
            Ok(())
        });
    }

    #[test]
    fn bad_values_name_the_option() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("AETHER_LISTEN", "not-an-address");
            let error = Config::load(None, &Overrides::default()).unwrap_err().to_string();
            assert!(error.contains("listen") && error.contains("AETHER_LISTEN"), "{error}");
            jail.set_env("AETHER_LISTEN", "127.0.0.1:1");
            jail.set_env("AETHER_STORE", "postgres");
            let error = Config::load(None, &Overrides::default()).unwrap_err().to_string();
            assert!(error.contains("store"), "{error}");
            jail.set_env("AETHER_STORE", "sqlite");
            jail.set_env("AETHER_ACCESS_TOKEN_TTL_SECS", "0");
            let error = Config::load(None, &Overrides::default()).unwrap_err().to_string();
            assert!(error.contains("access_token_ttl_secs"), "{error}");
            jail.set_env("AETHER_ACCESS_TOKEN_TTL_SECS", "300");
            jail.set_env("AETHER_OTLP_ENDPOINT", "127.0.0.1:4317");
            let error = Config::load(None, &Overrides::default()).unwrap_err().to_string();
            assert!(error.contains("otlp_endpoint"), "{error}");
            jail.set_env("AETHER_OTLP_ENDPOINT", "http://127.0.0.1:4317");
            jail.set_env("AETHER_OTLP_SAMPLE_RATIO", "1.5");
            let error = Config::load(None, &Overrides::default()).unwrap_err().to_string();
            assert!(error.contains("otlp_sample_ratio"), "{error}");
            jail.set_env("AETHER_OTLP_SAMPLE_RATIO", "0.25");
            let config = Config::load(None, &Overrides::default()).unwrap();
            assert_eq!((config.otlp_endpoint.as_str(), config.otlp_sample_ratio), ("http://127.0.0.1:4317", 0.25));
            Ok(())
        });
    }

    #[test]
    fn unknown_file_keys_are_rejected_and_secrets_redacted() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("bad.toml", "lisen = \"127.0.0.1:1\"")?;
            let error = Config::load(Some(Path::new("bad.toml")), &Overrides::default()).unwrap_err().to_string();
            assert!(error.contains("lisen"), "{error}");
            jail.set_env("AETHER_NEO4J_PASSWORD", "hunter2-secret");
            let config = Config::load(None, &Overrides::default()).unwrap();
            assert_eq!(config.neo4j_password.expose(), "hunter2-secret");
            let printed = config.to_redacted_toml();
            assert!(!printed.contains("hunter2") && printed.contains("<redacted>"), "{printed}");
            Ok(())
        });
    }
}
