//! [`BlobStore`] on the local filesystem or S3-compatible storage, through
//! `object_store`, which writes filesystem objects to a temporary file and renames
//! it into place (atomic) and talks S3 with path-style requests to any endpoint.
#![forbid(unsafe_code)]

mod encrypted;

pub use encrypted::EncryptedBlobStore;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use std::ops::Range;

use aether_domain::blob::{BlobError, BlobKey, BlobRead, BlobStore, BlobWriter};
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, WriteMultipart};

/// Multipart part size: S3's minimum is 5 MiB; 8 MiB keeps part counts low for
/// gigabyte files while bounding what one write holds in memory.
const PART_SIZE: usize = 8 * 1024 * 1024;

/// How many parts may be in flight at once; with `PART_SIZE` this bounds the
/// memory a streamed write holds to about 32 MiB.
const PARTS_IN_FLIGHT: usize = 4;

/// A multipart upload: filesystem backends write a temporary file renamed into
/// place on completion, S3 backends complete a multipart upload.
struct StreamedWrite {
    inner: WriteMultipart,
}

#[async_trait]
impl BlobWriter for StreamedWrite {
    async fn write(&mut self, chunk: Bytes) -> Result<(), BlobError> {
        self.inner.wait_for_capacity(PARTS_IN_FLIGHT).await.map_err(map_err)?;
        self.inner.put(chunk);
        Ok(())
    }

    async fn finish(self: Box<Self>) -> Result<(), BlobError> {
        self.inner.finish().await.map_err(map_err)?;
        Ok(())
    }

    async fn abort(self: Box<Self>) -> Result<(), BlobError> {
        self.inner.abort().await.map_err(map_err)
    }
}

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
    /// The directory of a filesystem store.
    root: Option<PathBuf>,
    /// The S3 client again, for presigning.
    signer: Option<Arc<object_store::aws::AmazonS3>>,
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
        Ok(Self { inner: Arc::new(store), backend: "fs", root: Some(root.to_path_buf()), signer: None })
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
        let store = Arc::new(store);
        Ok(Self { inner: Arc::clone(&store) as Arc<dyn ObjectStore>, backend: "s3", root: None, signer: Some(store) })
    }

    fn path(key: &BlobKey) -> ObjectPath {
        ObjectPath::from(key.as_str())
    }

    /// A streamed write to the filesystem goes to `{key}#{n}` and is renamed into
    /// place when it finishes; a process killed mid-write leaves that file behind.
    /// Deleting the key removes such leftovers too. (On S3 an unfinished multipart
    /// upload is invisible; a bucket lifecycle rule aborts it.)
    fn remove_staged_writes(&self, key: &BlobKey) {
        let Some(root) = &self.root else { return };
        let path = root.join(key.as_str());
        let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else { return };
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        let staged_prefix = format!("{name}#");
        for entry in entries.flatten() {
            if entry.file_name().to_str().is_some_and(|n| n.starts_with(&staged_prefix))
                && let Err(error) = std::fs::remove_file(entry.path())
            {
                tracing::warn!(%error, key = %key, "could not remove a staged write");
            }
        }
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

    async fn writer(&self, key: &BlobKey) -> Result<Box<dyn BlobWriter>, BlobError> {
        let upload = self.inner.put_multipart(&Self::path(key)).await.map_err(map_err)?;
        Ok(Box::new(StreamedWrite { inner: WriteMultipart::new_with_chunk_size(upload, PART_SIZE) }))
    }

    async fn read(&self, key: &BlobKey, range: Option<Range<u64>>) -> Result<BlobRead, BlobError> {
        let path = Self::path(key);
        let options = match range {
            // An empty range of an empty blob is what a request for all of it gets.
            Some(range) if range.start < range.end => {
                GetOptions { range: Some(GetRange::Bounded(range)), ..GetOptions::default() }
            }
            _ => GetOptions::default(),
        };
        let result = self.inner.get_opts(&path, options).await.map_err(map_err)?;
        let size = result.meta.size;
        let range = result.range.clone();
        let stream = result.into_stream().map(|chunk| chunk.map_err(map_err)).boxed();
        Ok(BlobRead { size, range, stream })
    }

    async fn presigned_get(
        &self,
        key: &BlobKey,
        expires_in: std::time::Duration,
        content_disposition: &str,
    ) -> Result<Option<String>, BlobError> {
        use object_store::signer::{SignedUrlOptions, Signer};
        let Some(signer) = &self.signer else { return Ok(None) };
        let options = SignedUrlOptions::new()
            .with_query([("response-content-disposition", content_disposition), ("response-cache-control", "private")]);
        let url = signer
            .signed_url_opts(object_store::signer::Method::GET, &Self::path(key), expires_in, &options)
            .await
            .map_err(map_err)?;
        Ok(Some(url.to_string()))
    }

    async fn delete(&self, key: &BlobKey) -> Result<(), BlobError> {
        self.remove_staged_writes(key);
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
