//! Blobs already at rest must keep opening whatever builds their segment nonces.
//! `fixtures/sealed-v1.aeb` was sealed by the hand-built nonces (prefix ‖ BE32 index ‖
//! last flag) that `aead::stream::StreamBE32` later replaced: 70,000 bytes, so a full
//! 64 KiB segment and a short last one, under `KEY` and the blob key `BLOB` (written by
//! the ignored `seal_fixture` test of commit c69a538, on the code before the change).
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use aether_blob_store::{EncryptedBlobStore, ObjectBlobStore};
use aether_domain::blob::{BlobKey, BlobStore};
use futures::StreamExt;

const KEY: [u8; 32] = [7u8; 32];
const BLOB: &str = "fixtures/sealed-v1";
const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sealed-v1.aeb");

fn plain() -> Vec<u8> {
    (0..70_000u32).map(|i| (i % 251) as u8).collect()
}

#[tokio::test]
async fn blobs_sealed_by_the_first_format_still_open() {
    let dir = tempfile::tempdir().unwrap();
    let inner: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::filesystem(dir.path()).unwrap());
    let key = BlobKey::parse(BLOB).unwrap();
    inner.put(&key, std::fs::read(FIXTURE).unwrap()).await.unwrap();
    let store = EncryptedBlobStore::new(inner, KEY);
    let whole = plain();
    assert!(store.get(&key).await.unwrap() == whole, "the whole blob");
    for range in [0..10, 65_530..65_545, 65_536..70_000, 69_999..70_000] {
        let read = store.read(&key, Some(range.clone())).await.unwrap();
        let bytes: Vec<u8> = read.stream.map(|c| c.unwrap().to_vec()).concat().await;
        assert!(bytes == whole[range.start as usize..range.end as usize], "{range:?}");
    }
}
