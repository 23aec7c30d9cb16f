//! Related items: each store finds, among what the caller may read only, the
//! candidates related to a document or a notebook, with the same facts.

use std::collections::BTreeMap;

use aether_domain::access::{CollaborationStatus, Permission};
use aether_domain::activity::Change;
use aether_domain::document::DocumentPatch;
use aether_domain::id::{NotebookId, UserId};
use aether_domain::notebook::{NewNotebook, Tag};
use aether_domain::related::{RelatedCandidate, RelatedKind, RelatedSubject};
use aether_domain::search::ReadScope;
use aether_domain::store::Store;
use aether_domain::time;

use crate::search::{store_document, text_result};
use crate::{MAX_DEPTH, child_of, collaboration, new_notebook, new_user};

fn tags(names: &[&str]) -> Vec<Tag> {
    names.iter().map(|name| Tag::parse(name).unwrap()).collect()
}

/// What a candidate says, by title: (same place, shared tags, shared people).
fn facts(candidates: &[RelatedCandidate]) -> BTreeMap<String, (bool, Vec<String>, u32)> {
    candidates
        .iter()
        .map(|c| {
            let mut shared: Vec<String> = c.shared_tags.iter().map(|tag| tag.as_str().to_owned()).collect();
            shared.sort();
            (c.title.clone(), (c.same_place, shared, c.shared_people))
        })
        .collect()
}

async fn share(store: &dyn Store, notebook: NotebookId, user: UserId, by: UserId) {
    let change = Change::by(by, time::now());
    store.put_collaboration(collaboration(notebook, user, by, Permission::Read), &change).await.unwrap();
    store.set_collaboration_status(notebook, user, CollaborationStatus::Active, &change).await.unwrap();
}

pub async fn related_items_are_found_among_what_the_caller_may_read(store: &dyn Store) {
    let owner = store.create_user(new_user("related-owner")).await.unwrap();
    let reader = store.create_user(new_user("related-reader")).await.unwrap();
    let colleague = store.create_user(new_user("related-colleague")).await.unwrap();
    let stranger = store.create_user(new_user("related-stranger")).await.unwrap();
    let change = || Change::by(owner.id, time::now());
    let create = |new: NewNotebook| async move { store.create_notebook(new, MAX_DEPTH, &change()).await.unwrap() };
    let suffix = uuid::Uuid::now_v7().simple().to_string();
    let (alpha, beta, gamma) = (format!("a{suffix}"), format!("b{suffix}"), format!("c{suffix}"));

    // root ─┬─ home ── home child
    //       ├─ sibling
    //       └─ deleted sibling
    let root = create(new_notebook(owner.id, "Root")).await;
    let home = create(NewNotebook { tags: tags(&[&alpha, &beta]), ..child_of(owner.id, root.id, "Home") }).await;
    create(child_of(owner.id, home.id, "Home child")).await;
    create(child_of(owner.id, root.id, "Sibling")).await;
    let deleted_sibling = create(child_of(owner.id, root.id, "Deleted sibling")).await;
    store.soft_delete_notebook(deleted_sibling.id, false, &change()).await.unwrap();
    let tagged = create(NewNotebook { tags: tags(&[&beta, &gamma]), ..new_notebook(owner.id, "Tagged") }).await;
    let hidden = create(NewNotebook { tags: tags(&[&alpha]), ..new_notebook(owner.id, "Hidden") }).await;
    let colleagues = store
        .create_notebook(new_notebook(colleague.id, "Colleague's"), MAX_DEPTH, &Change::by(colleague.id, time::now()))
        .await
        .unwrap();
    let strangers = store
        .create_notebook(new_notebook(stranger.id, "Stranger's"), MAX_DEPTH, &Change::by(stranger.id, time::now()))
        .await
        .unwrap();
    share(store, root.id, reader.id, owner.id).await;
    share(store, tagged.id, reader.id, owner.id).await;
    share(store, home.id, colleague.id, owner.id).await;
    share(store, colleagues.id, reader.id, colleague.id).await;
    share(store, strangers.id, reader.id, stranger.id).await;

    // Related to the notebook `home`, for the reader: its parent, child and live
    // sibling (each sharing its owner), the notebook with a tag of its own, the
    // colleague's notebook (sharing the colleague); not the unreadable notebook with
    // its tag, nor the stranger's, nor the reader counted as shared.
    let subject = RelatedSubject::Notebook(home.id);
    let found = store.related_candidates(ReadScope::Reader(reader.id), subject, reader.id, 50).await.unwrap();
    assert!(found.iter().all(|c| c.kind == RelatedKind::Notebook));
    let expected: BTreeMap<String, (bool, Vec<String>, u32)> = [
        ("Root", (true, vec![], 1)),
        ("Home child", (true, vec![], 1)),
        ("Sibling", (true, vec![], 1)),
        ("Tagged", (false, vec![beta.clone()], 1)),
        ("Colleague's", (false, vec![], 1)),
    ]
    .into_iter()
    .map(|(title, facts)| (title.to_owned(), facts))
    .collect();
    assert_eq!(facts(&found), expected);
    let tagged_found = found.iter().find(|c| c.title == "Tagged").unwrap();
    assert_eq!((tagged_found.id, tagged_found.notebook_id), (tagged.id.as_uuid(), tagged.id));
    // A role that reads everything finds the hidden notebook too.
    let everything = store.related_candidates(ReadScope::Everything, subject, reader.id, 50).await.unwrap();
    let hidden_found = everything.iter().find(|c| c.id == hidden.id.as_uuid()).expect("hidden, for everything");
    assert_eq!(facts(std::slice::from_ref(hidden_found))["Hidden"], (false, vec![alpha.clone()], 1));
    assert!(everything.iter().all(|c| c.id != deleted_sibling.id.as_uuid()), "never a deleted notebook");
    // Each signal is bounded on its own.
    let bounded = store.related_candidates(ReadScope::Reader(reader.id), subject, reader.id, 1).await.unwrap();
    assert!(!bounded.is_empty() && bounded.len() <= 5, "at most one per signal: {:?}", facts(&bounded));

    // Related to a document of `home`.
    let document = |notebook: NotebookId, by: UserId, name: &'static str, with: Vec<Tag>| async move {
        let stored = store_document(store, by, notebook, name, text_result("related text")).await;
        if !with.is_empty() {
            let patch = DocumentPatch { tags: Some(with), ..DocumentPatch::default() };
            store.update_document(stored.id, patch, &Change::by(by, time::now())).await.unwrap();
        }
        stored
    };
    let subject_document = document(home.id, owner.id, "subject.txt", tags(&[&gamma])).await;
    document(home.id, owner.id, "neighbour.txt", vec![]).await;
    document(tagged.id, owner.id, "tagged.txt", tags(&[&gamma, &alpha])).await;
    document(hidden.id, owner.id, "hidden.txt", tags(&[&gamma])).await;
    document(colleagues.id, colleague.id, "colleague.txt", vec![]).await;
    document(strangers.id, stranger.id, "stranger.txt", tags(&[&beta])).await;
    let subject = RelatedSubject::Document(subject_document.id);
    let found = store.related_candidates(ReadScope::Reader(reader.id), subject, reader.id, 50).await.unwrap();
    assert!(found.iter().all(|c| c.kind == RelatedKind::Document));
    let expected: BTreeMap<String, (bool, Vec<String>, u32)> = [
        ("neighbour.txt", (true, vec![], 0)),
        ("tagged.txt", (false, vec![gamma.clone()], 1)),
        ("colleague.txt", (false, vec![], 1)),
    ]
    .into_iter()
    .map(|(title, facts)| (title.to_owned(), facts))
    .collect();
    assert_eq!(facts(&found), expected);
    let colleague_found = found.iter().find(|c| c.title == "colleague.txt").unwrap();
    assert_eq!(colleague_found.notebook_id, colleagues.id);
    // A subject that does not exist has nothing related.
    let missing = RelatedSubject::Document(aether_domain::id::DocumentId::new());
    assert!(store.related_candidates(ReadScope::Everything, missing, reader.id, 50).await.unwrap().is_empty());

    // The subject's vectors, first chunks first, of one model only.
    let model = format!("related-model-{suffix}");
    let pending = store.chunks_to_embed(100_000).await.unwrap();
    let ours: Vec<aether_domain::semantic::ChunkEmbedding> = pending
        .into_iter()
        .filter(|chunk| chunk.text.starts_with("subject.txt") || chunk.text == "related text")
        .map(|chunk| {
            let mut values = vec![0.0f32; 384];
            values[if chunk.text.starts_with("subject.txt") { 0 } else { 1 }] = 1.0;
            aether_domain::semantic::ChunkEmbedding {
                vector: aether_domain::embedding::Embedding::normalized(values).unwrap(),
                id: chunk.id,
            }
        })
        .collect();
    store.store_chunk_embeddings(&model, &ours).await.unwrap();
    let vectors = store.document_vectors(subject_document.id, &model, 10).await.unwrap();
    assert_eq!(vectors.len(), 2, "the heading and the body");
    assert_eq!((vectors[0].0, vectors[0].1.as_slice()[0]), (0, 1.0), "the heading (chunk 0) first");
    assert_eq!((vectors[1].0, vectors[1].1.as_slice()[1]), (1, 1.0));
    assert_eq!(store.document_vectors(subject_document.id, &model, 1).await.unwrap().len(), 1);
    assert!(store.document_vectors(subject_document.id, "another-model", 10).await.unwrap().is_empty());
}
