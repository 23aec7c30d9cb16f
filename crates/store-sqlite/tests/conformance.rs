//! Runs the shared store conformance suite against a fresh SQLite file.

use aether_store_sqlite::SqliteStore;

#[tokio::test]
async fn sqlite_store_conforms() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open_and_migrate(&dir.path().join("aether.db")).await.expect("open store");
    aether_store_conformance::run_all(&store).await;
    // Migrating again is a no-op.
    use aether_domain::store::Store;
    assert!(store.migrate().await.expect("re-migrate").is_empty());
    store.close().await;
}
