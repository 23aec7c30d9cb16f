//! [`BlobStore`] on the local filesystem or S3-compatible storage, through
//! `object_store`, which writes filesystem objects to a temporary file and renames
//! it into place (atomic) and talks S3 with path-style requests to any endpoint.
#![forbid(unsafe_code)]

use std::path::Path;
use std::sync::Arc;

use aether_domain::blob::{BlobError, BlobKey, BlobStore};
use async_trait::async_trait;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};

/// How to reach an S3-compatible service.
#[derive(Clone)]
pub struct S3Config {
    /// e.g. `https://s3.eu-west-1.amazonaws.com` or `http://127.0.0.1:18333`.
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Allow `http://` endpoints (local and test servers).
    pub allow_http: bool,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct ObjectBlobStore {
    inner: Arc<dyn ObjectStore>,
    backend: &'static str,
}

fn map_err(error: object_store::Error) -> BlobError {
    match error {
        object_store::Error::NotFound { .. } => BlobError::NotFound,
        object_store::Error::Generic { store, source } => BlobError::Unavailable(format!("{store}: {source}")),
        other => BlobError::Internal(other.to_string()),
    }
}

impl ObjectBlobStore {
    /// Blobs under `root` (created if missing).
    pub fn filesystem(root: &Path) -> Result<Self, BlobError> {
        std::fs::create_dir_all(root).map_err(|error| BlobError::Unavailable(error.to_string()))?;
        let store = object_store::local::LocalFileSystem::new_with_prefix(root).map_err(map_err)?;
        Ok(Self { inner: Arc::new(store), backend: "fs" })
    }

    pub fn s3(config: &S3Config) -> Result<Self, BlobError> {
        let store = object_store::aws::AmazonS3Builder::new()
            .with_endpoint(&config.endpoint)
            .with_bucket_name(&config.bucket)
            .with_region(&config.region)
            .with_access_key_id(&config.access_key_id)
            .with_secret_access_key(&config.secret_access_key)
            .with_virtual_hosted_style_request(false)
            .with_allow_http(config.allow_http)
            .build()
            .map_err(map_err)?;
        Ok(Self { inner: Arc::new(store), backend: "s3" })
    }

    fn path(key: &BlobKey) -> ObjectPath {
        ObjectPath::from(key.as_str())
    }
}

#[async_trait]
impl BlobStore for ObjectBlobStore {
    async fn put(&self, key: &BlobKey, bytes: Vec<u8>) -> Result<(), BlobError> {
        self.inner.put(&Self::path(key), bytes.into()).await.map_err(map_err)?;
        Ok(())
    }

    async fn get(&self, key: &BlobKey) -> Result<Vec<u8>, BlobError> {
        let result = self.inner.get(&Self::path(key)).await.map_err(map_err)?;
        Ok(result.bytes().await.map_err(map_err)?.to_vec())
    }

    async fn delete(&self, key: &BlobKey) -> Result<(), BlobError> {
        match self.inner.delete(&Self::path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(map_err(error)),
        }
    }

    fn backend_name(&self) -> &'static str {
        self.backend
    }

    async fn ping(&self) -> Result<(), BlobError> {
        // A HEAD of a key that need not exist: NotFound proves the store answers.
        match self.inner.head(&ObjectPath::from("aether-readiness-probe")).await {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(map_err(error)),
        }
    }
}
