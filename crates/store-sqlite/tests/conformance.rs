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

/// `aether admin reindex` brings back what the index lost (here: every chunk,
/// deleted behind the store's back), from the text the store holds.
#[tokio::test]
async fn reindexing_restores_lost_chunks() {
    use aether_domain::activity::Change;
    use aether_domain::compliance::ComplianceSettings;
    use aether_domain::id::{NotebookId, UserId};
    use aether_domain::notebook::{NewNotebook, NotebookName, Visibility};
    use aether_domain::search::ReadScope;
    use aether_domain::store::{NotebookStore, SearchStore, UserStore};
    use aether_domain::user::{NewUser, Role, Username};
    use aether_store_conformance::search::{documents_query, store_document, text_result};

    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("aether.db");
    let store = SqliteStore::open_and_migrate(&path).await.expect("open store");
    let at = aether_domain::time::now();
    let owner = store
        .create_user(NewUser {
            id: UserId::new(),
            keycloak_id: None,
            username: Username::parse("reindexer").expect("valid"),
            email: None,
            full_name: None,
            roles: vec![Role::User],
            password_hash: None,
            created_at: at,
        })
        .await
        .expect("user");
    let notebook = store
        .create_notebook(
            NewNotebook {
                id: NotebookId::new(),
                owner_id: owner.id,
                parent_id: None,
                name: NotebookName::parse("Lost").expect("valid"),
                description: None,
                visibility: Visibility::Private,
                tags: vec![],
                compliance_settings: ComplianceSettings::default(),
                is_template: false,
                created_at: at,
            },
            32,
            &Change::by(owner.id, at),
        )
        .await
        .expect("notebook");
    let document =
        store_document(&store, owner.id, notebook.id, "lost.txt", text_result("a recoverable passage")).await;
    let scope = ReadScope::Reader(owner.id);
    let query = documents_query("recoverable");
    let found = |store: &SqliteStore| {
        let query = query.clone();
        let store = store.clone();
        async move { store.search_documents(scope, &query).await.expect("search").items.len() }
    };
    assert_eq!(found(&store).await, 1);

    let raw = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await.expect("raw connection");
    sqlx::query("DELETE FROM document_chunks").execute(&raw).await.expect("lose the chunks");
    raw.close().await;
    assert_eq!(found(&store).await, 0, "the index lost the document");

    let step = store.reindex_documents(None, 100).await.expect("reindex");
    assert_eq!((step.documents, step.chunks, step.next), (1, 2, None), "the heading and one body chunk");
    assert_eq!(found(&store).await, 1, "found again");
    let hits = store.search_documents(scope, &documents_query("lost")).await.expect("search");
    assert_eq!(hits.items[0].item.id, document.id, "by its file name too (the heading)");
    store.close().await;
}
