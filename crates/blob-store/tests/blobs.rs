//! The same checks on the filesystem backend (always) and on a real S3-compatible
//! server when `AETHER_TEST_S3_ENDPOINT` is set (`scripts/test` starts SeaweedFS).
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use aether_blob_store::{EncryptedBlobStore, ObjectBlobStore, S3Config};
use aether_domain::blob::{BlobError, BlobKey, BlobStore};
use bytes::Bytes;
use futures::StreamExt;

async fn conforms(store: &dyn BlobStore) {
    let prefix = format!("test-{}", uuid::Uuid::now_v7().simple());
    let key = BlobKey::parse(&format!("{prefix}/avatars/one.png")).unwrap();
    store.ping().await.unwrap();
    assert_eq!(store.get(&key).await, Err(BlobError::NotFound));
    store.put(&key, b"first".to_vec()).await.unwrap();
    assert_eq!(store.get(&key).await.unwrap(), b"first");
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    store.put(&key, big.clone()).await.unwrap();
    assert_eq!(store.get(&key).await.unwrap(), big, "overwrite replaces the whole blob");
    store.delete(&key).await.unwrap();
    assert_eq!(store.get(&key).await, Err(BlobError::NotFound));
    store.delete(&key).await.unwrap();
    streams(store, &prefix).await;
}

/// A streamed write of several parts, read back whole and by ranges; an aborted
/// write leaves nothing.
async fn streams(store: &dyn BlobStore, prefix: &str) {
    let key = BlobKey::parse(&format!("{prefix}/documents/big")).unwrap();
    let whole: Vec<u8> = (0..20_000_000u32).map(|i| (i % 253) as u8).collect();
    let mut writer = store.writer(&key).await.unwrap();
    for chunk in whole.chunks(1_000_003) {
        writer.write(Bytes::copy_from_slice(chunk)).await.unwrap();
    }
    assert_eq!(store.get(&key).await, Err(BlobError::NotFound), "invisible until finished");
    writer.finish().await.unwrap();

    let read = store.read(&key, None).await.unwrap();
    assert_eq!((read.size, read.range.clone()), (20_000_000, 0..20_000_000));
    let bytes: Vec<u8> = read.stream.map(|c| c.unwrap().to_vec()).concat().await;
    assert!(bytes == whole, "streamed read returns every byte");

    let read = store.read(&key, Some(9_999_990..10_000_010)).await.unwrap();
    assert_eq!((read.size, read.range.clone()), (20_000_000, 9_999_990..10_000_010));
    let bytes: Vec<u8> = read.stream.map(|c| c.unwrap().to_vec()).concat().await;
    assert_eq!(bytes, whole[9_999_990..10_000_010]);

    let aborted = BlobKey::parse(&format!("{prefix}/documents/aborted")).unwrap();
    let mut writer = store.writer(&aborted).await.unwrap();
    writer.write(Bytes::from_static(b"partial")).await.unwrap();
    writer.abort().await.unwrap();
    assert!(matches!(store.read(&aborted, None).await, Err(BlobError::NotFound)));
    store.delete(&key).await.unwrap();
}

/// What encryption adds: ciphertext at rest, ranges across segment boundaries,
/// refusal of a wrong key, of a truncated blob and of a blob moved to another key,
/// and plaintext blobs from before encryption still readable.
async fn encryption_holds(inner: Arc<dyn BlobStore>) {
    let store = EncryptedBlobStore::new(Arc::clone(&inner), [7u8; 32]);
    let prefix = format!("test-{}", uuid::Uuid::now_v7().simple());
    let key = BlobKey::parse(&format!("{prefix}/secret")).unwrap();
    let whole: Vec<u8> = b"confidential ".iter().copied().cycle().take(200_000).collect();
    store.put(&key, whole.clone()).await.unwrap();
    let at_rest = inner.get(&key).await.unwrap();
    assert!(!at_rest.windows(13).any(|w| w == b"confidential "), "ciphertext at rest");
    assert_eq!(at_rest.len(), 12 + 200_000 + 4 * 16, "header and one tag per 64 KiB segment");
    assert_eq!(store.get(&key).await.unwrap(), whole);
    for range in [0..10, 65_530..65_545, 131_000..200_000, 199_999..200_000, 0..200_000] {
        let read = store.read(&key, Some(range.clone())).await.unwrap();
        assert_eq!((read.size, read.range.clone()), (200_000, range.clone()));
        let bytes: Vec<u8> = read.stream.map(|c| c.unwrap().to_vec()).concat().await;
        assert!(bytes == whole[range.start as usize..range.end as usize], "{range:?}");
    }
    let wrong = EncryptedBlobStore::new(Arc::clone(&inner), [8u8; 32]);
    assert!(matches!(wrong.get(&key).await, Err(BlobError::Internal(_))), "a wrong key fails");
    inner.put(&key, at_rest[..at_rest.len() - 20].to_vec()).await.unwrap();
    assert!(store.get(&key).await.is_err(), "a truncated blob fails");
    let moved = BlobKey::parse(&format!("{prefix}/moved")).unwrap();
    inner.put(&moved, at_rest.clone()).await.unwrap();
    assert!(store.get(&moved).await.is_err(), "the key is authenticated");
    let empty = BlobKey::parse(&format!("{prefix}/empty")).unwrap();
    store.put(&empty, Vec::new()).await.unwrap();
    assert_eq!(store.get(&empty).await.unwrap(), Vec::<u8>::new());
    let old = BlobKey::parse(&format!("{prefix}/old")).unwrap();
    inner.put(&old, b"written in plaintext".to_vec()).await.unwrap();
    assert_eq!(store.get(&old).await.unwrap(), b"written in plaintext");
    conforms(&store).await;
    for k in [key, moved, empty, old] {
        store.delete(&k).await.unwrap();
    }
}

#[tokio::test]
async fn encrypted_blobs_conform_on_the_filesystem() {
    let dir = tempfile::tempdir().unwrap();
    encryption_holds(Arc::new(ObjectBlobStore::filesystem(&dir.path().join("blobs")).unwrap())).await;
}

#[tokio::test]
async fn filesystem_blobs_conform() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectBlobStore::filesystem(&dir.path().join("blobs")).unwrap();
    conforms(&store).await;
    // Nothing is left outside the root, nor as a temporary file inside it.
    let leftovers: Vec<_> = walk(&dir.path().join("blobs")).into_iter().filter(|p| p.is_file()).collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(walk(&path));
        }
        found.push(path);
    }
    found
}

#[tokio::test]
async fn s3_blobs_conform() {
    let required = std::env::var("AETHER_TEST_REQUIRE_SERVICES").is_ok_and(|v| v == "1");
    let Ok(endpoint) = std::env::var("AETHER_TEST_S3_ENDPOINT") else {
        assert!(!required, "AETHER_TEST_REQUIRE_SERVICES=1 but AETHER_TEST_S3_ENDPOINT is not set");
        eprintln!("NOT RUN: set AETHER_TEST_S3_ENDPOINT (scripts/test does) to test the S3 backend");
        return;
    };
    let store = ObjectBlobStore::s3(&S3Config {
        endpoint,
        bucket: std::env::var("AETHER_TEST_S3_BUCKET").unwrap_or_else(|_| "aether-test".into()),
        region: "us-east-1".into(),
        access_key_id: std::env::var("AETHER_TEST_S3_ACCESS_KEY_ID").unwrap(),
        secret_access_key: std::env::var("AETHER_TEST_S3_SECRET_ACCESS_KEY").unwrap(),
        allow_http: true,
    })
    .unwrap();
    conforms(&store).await;
    encryption_holds(Arc::new(store)).await;
}

#[tokio::test]
async fn an_unreachable_s3_is_unavailable() {
    let store = ObjectBlobStore::s3(&S3Config {
        endpoint: "http://127.0.0.1:1".into(),
        bucket: "nope".into(),
        region: "us-east-1".into(),
        access_key_id: "x".into(),
        secret_access_key: "y".into(),
        allow_http: true,
    })
    .unwrap();
    let result = store.ping().await;
    assert!(result.is_err(), "{result:?}");
}
