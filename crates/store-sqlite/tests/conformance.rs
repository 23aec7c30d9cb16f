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
    use aether_domain::search::ReadScope;
    use aether_domain::store::SearchStore;
    use aether_store_conformance::search::{documents_query, store_document, text_result};

    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("aether.db");
    let store = SqliteStore::open_and_migrate(&path).await.expect("open store");
    let (owner, notebook) = owner_and_notebook(&store, "reindexer", "Lost").await;
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

/// The chunk index beside the file is only a copy: deleted, it is rebuilt from the
/// chunks at the next search; a change written by a writer outside the store (here
/// a raw connection, as another process would) is seen by the next search; and
/// after a reopen nothing is missing.
#[tokio::test]
async fn the_chunk_index_follows_the_store_and_is_rebuilt_when_lost() {
    use aether_domain::search::ReadScope;
    use aether_domain::store::SearchStore;
    use aether_store_conformance::search::{documents_query, store_document, text_result};

    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("aether.db");
    let store = SqliteStore::open_and_migrate(&path).await.expect("open store");
    let (owner, notebook) = owner_and_notebook(&store, "indexer", "Indexed").await;
    store_document(&store, owner.id, notebook.id, "kept.txt", text_result("an indexed passage")).await;
    let scope = ReadScope::Reader(owner.id);
    let found = |store: SqliteStore, word: &'static str| async move {
        store.search_documents(scope, &documents_query(word)).await.expect("search").items.len()
    };
    assert_eq!(found(store.clone(), "indexed").await, 1);
    store.close().await;
    drop(store);

    // Lost with the process: the next one rebuilds it from the chunks.
    std::fs::remove_dir_all(dir.path().join("aether.chunks")).expect("an index beside the file");
    let store = SqliteStore::open(&path).await.expect("reopen");
    assert_eq!(found(store.clone(), "indexed").await, 1, "rebuilt");

    // A chunk written by another writer (its trigger logs it) is found at once.
    let raw = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await.expect("raw connection");
    sqlx::query(
        "INSERT INTO document_chunks (document_id, notebook_id, ordinal, page, char_offset, text) \
         SELECT document_id, notebook_id, 7, 1, 0, 'an elsewhere written passage' FROM document_chunks LIMIT 1",
    )
    .execute(&raw)
    .await
    .expect("write a chunk");
    assert_eq!(found(store.clone(), "elsewhere").await, 1, "followed");
    sqlx::query("DELETE FROM document_chunks WHERE ordinal = 7").execute(&raw).await.expect("delete it");
    assert_eq!(found(store.clone(), "elsewhere").await, 0, "its deletion followed");
    raw.close().await;
    store.close().await;
    drop(store);
    let store = SqliteStore::open(&path).await.expect("reopen");
    assert_eq!(found(store.clone(), "indexed").await, 1);
    assert_eq!(found(store.clone(), "elsewhere").await, 0);
    store.close().await;
}

/// Vectors kept in memory never answer for another chunk: SQLite gives a deleted
/// chunk's id to the next one, and another process (a worker, a reindex) may store
/// that chunk's vector; the first process must compare the new vector, not the one
/// it remembers.
#[tokio::test]
async fn vectors_in_memory_follow_reused_chunk_ids() {
    use aether_domain::activity::Change;
    use aether_domain::embedding::Embedding;
    use aether_domain::search::ReadScope;
    use aether_domain::semantic::ChunkEmbedding;
    use aether_domain::store::{DocumentStore, SearchStore};
    use aether_store_conformance::search::{documents_query, store_document, text_result};

    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("aether.db");
    let first = SqliteStore::open_and_migrate(&path).await.expect("open store");
    let second = SqliteStore::open(&path).await.expect("a second process");
    let at = aether_domain::time::now();
    let (owner, notebook) = owner_and_notebook(&first, "vectors", "Vectors").await;
    let axis = |i: usize| {
        let mut values = vec![0.0f32; 384];
        values[i] = 1.0;
        Embedding::normalized(values).expect("unit")
    };
    let embed_all = |store: SqliteStore, vector: Embedding| async move {
        let pending = store.chunks_to_embed(1000).await.expect("pending");
        let ids: Vec<String> = pending.iter().map(|chunk| chunk.id.clone()).collect();
        let embeddings: Vec<ChunkEmbedding> =
            pending.into_iter().map(|chunk| ChunkEmbedding { id: chunk.id, vector: vector.clone() }).collect();
        store.store_chunk_embeddings("m", &embeddings).await.expect("store vectors");
        ids
    };
    let scope = ReadScope::Reader(owner.id);
    let query = documents_query("unused");

    let old = store_document(&first, owner.id, notebook.id, "old.txt", text_result("old text")).await;
    let old_chunks = embed_all(first.clone(), axis(0)).await;
    let found = first.similar_documents(scope, "m", &axis(0), &query, 10).await.expect("similar");
    assert_eq!(found[0].item.id, old.id);
    assert!((found[0].score - 1.0).abs() < 0.01, "remembered: {}", found[0].score);

    // The second process replaces the document: its chunks take the same ids.
    second.delete_document(old.id, &Change::by(owner.id, at)).await.expect("delete");
    let new = store_document(&second, owner.id, notebook.id, "new.txt", text_result("new text")).await;
    let new_chunks = embed_all(second.clone(), axis(1)).await;
    assert_eq!(new_chunks, old_chunks, "SQLite reused the ids (the case under test)");

    let found = first.similar_documents(scope, "m", &axis(1), &query, 10).await.expect("similar");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].item.id, new.id);
    assert!((found[0].score - 1.0).abs() < 0.01, "the new vector, not the remembered one: {}", found[0].score);

    // A document the second process adds to the same notebook is compared too.
    let added = store_document(&second, owner.id, notebook.id, "added.txt", text_result("added text")).await;
    embed_all(second.clone(), axis(2)).await;
    let found = first.similar_documents(scope, "m", &axis(2), &query, 10).await.expect("similar");
    assert_eq!(found.len(), 2);
    assert_eq!(found[0].item.id, added.id);
    assert!((found[0].score - 1.0).abs() < 0.01, "{}", found[0].score);
    first.close().await;
    second.close().await;
}

/// A user and a private notebook of theirs, for the tests above.
async fn owner_and_notebook(
    store: &SqliteStore,
    username: &str,
    name: &str,
) -> (aether_domain::user::User, aether_domain::notebook::Notebook) {
    use aether_domain::activity::Change;
    use aether_domain::compliance::ComplianceSettings;
    use aether_domain::id::{NotebookId, UserId};
    use aether_domain::notebook::{NewNotebook, NotebookName, Visibility};
    use aether_domain::store::{NotebookStore, UserStore};
    use aether_domain::user::{NewUser, Role, Username};

    let at = aether_domain::time::now();
    let owner = store
        .create_user(NewUser {
            id: UserId::new(),
            keycloak_id: None,
            username: Username::parse(username).expect("valid"),
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
                name: NotebookName::parse(name).expect("valid"),
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
    (owner, notebook)
}
