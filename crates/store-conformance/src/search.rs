//! Search: what each store finds, and that it finds exactly what the caller may read.
//!
//! Neo4j's full-text indexes take a committed change up within moments (they are
//! eventually consistent), so checks on what the index holds wait for it, up to
//! [`INDEX_WAIT`]. Permissions are read at query time: checks on them never wait.

use std::collections::BTreeSet;
use std::time::Duration;

use aether_domain::StoreError;
use aether_domain::access::{CollaborationStatus, Permission, effective_access};
use aether_domain::activity::Change;
use aether_domain::document::{Document, DocumentPatch, Filename, ProcessingResult, ProcessingStatus};
use aether_domain::id::{DocumentId, JobId, NotebookId, UserId};
use aether_domain::job::{JobOrigin, NewUploadJob, ReceivedFile};
use aether_domain::notebook::{Description, NotebookPatch, Tag, Visibility};
use aether_domain::page::{Limit, PageRequest};
use aether_domain::search::{
    ContentTypeFilter, DocumentHit, DocumentSearch, NotebookSearch, ReadScope, SearchFilters, SearchText,
};
use aether_domain::store::Store;
use aether_domain::time;
use aether_domain::user::Role;
use chrono::TimeDelta;
use uuid::Uuid;

use crate::{MAX_DEPTH, child_of, collaboration, new_notebook, new_user};

/// How long a check waits for the index to take up a change.
const INDEX_WAIT: Duration = Duration::from_secs(10);

/// A word no other test writes: letters and digits only, so one token everywhere.
fn keyword() -> String {
    format!("kw{}", &Uuid::now_v7().simple().to_string()[16..])
}

/// `word` with one letter in the middle changed: a typo within any budget.
fn typo_of(word: &str) -> String {
    let mut chars: Vec<char> = word.chars().collect();
    let middle = chars.len() / 2;
    chars[middle] = if chars[middle] == 'q' { 'z' } else { 'q' };
    chars.into_iter().collect()
}

/// Stores a processed document in `notebook`, as the worker would.
pub async fn store_document(
    store: &dyn Store,
    owner: UserId,
    notebook: NotebookId,
    name: &str,
    result: ProcessingResult,
) -> Document {
    store_version(store, owner, notebook, None, name, result).await
}

async fn store_version(
    store: &dyn Store,
    owner: UserId,
    notebook: NotebookId,
    existing: Option<DocumentId>,
    name: &str,
    result: ProcessingResult,
) -> Document {
    let job = store
        .create_upload_job(NewUploadJob {
            id: JobId::new(),
            notebook_id: notebook,
            uploaded_by: owner,
            existing_document: existing,
            filename: Filename::sanitize(name),
            change_summary: None,
            callback_url: None,
            expected_bytes: None,
            storage_provider: "fs".to_owned(),
            origin: JobOrigin::default(),
            at: time::now(),
        })
        .await
        .unwrap();
    let file = ReceivedFile { size: 10, sha256: "00".repeat(32), content_type: result.content_type.clone() };
    store.accept_upload(job.id, file, time::now()).await.unwrap();
    let now = time::now();
    store.claim_job_by_id(job.id, now, now + TimeDelta::seconds(60)).await.unwrap().expect("claimable");
    store.finish_job(job.id, result, time::now()).await.unwrap().1
}

/// What processing a plain text file finds.
pub fn text_result(text: &str) -> ProcessingResult {
    ProcessingResult {
        content_type: "text/plain".to_owned(),
        format: "text".to_owned(),
        supported: true,
        extracted_text: Some(text.to_owned()),
        ..ProcessingResult::default()
    }
}

/// A document search for `text`, without filters.
pub fn documents_query(text: &str) -> DocumentSearch {
    DocumentSearch {
        text: SearchText::parse(text).unwrap(),
        filters: SearchFilters::default(),
        content_type: None,
        status: None,
        limit: Limit::parse(100).unwrap(),
        after: None,
    }
}

fn notebooks_query(text: &str) -> NotebookSearch {
    NotebookSearch {
        text: SearchText::parse(text).unwrap(),
        filters: SearchFilters::default(),
        status: None,
        limit: Limit::parse(100).unwrap(),
        after: None,
    }
}

async fn found_hits(store: &dyn Store, scope: ReadScope, query: &DocumentSearch) -> Vec<DocumentHit> {
    store.search_documents(scope, query).await.unwrap().items.into_iter().map(|scored| scored.item).collect()
}

async fn found_documents(store: &dyn Store, scope: ReadScope, query: &DocumentSearch) -> BTreeSet<DocumentId> {
    found_hits(store, scope, query).await.into_iter().map(|hit| hit.id).collect()
}

/// Searches until the answer is `expected` (the index catching up), then asserts it.
async fn wait_for_documents(
    store: &dyn Store,
    scope: ReadScope,
    query: &DocumentSearch,
    expected: &BTreeSet<DocumentId>,
    what: &str,
) {
    let deadline = tokio::time::Instant::now() + INDEX_WAIT;
    loop {
        let found = found_documents(store, scope, query).await;
        if &found == expected {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            assert_eq!(&found, expected, "{what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn documents_are_found_by_words_phrases_prefixes_and_typos(store: &dyn Store) {
    let owner = store.create_user(new_user("searcher")).await.unwrap();
    let scope = ReadScope::Reader(owner.id);
    let notebook = store
        .create_notebook(new_notebook(owner.id, "Search"), MAX_DEPTH, &Change::by(owner.id, time::now()))
        .await
        .unwrap();
    let (first, second, in_name) = (keyword(), keyword(), keyword());
    let text = format!("The {first} quarterly revenue grew.\u{c}The second page reports {second} net income.");
    let document = store_document(store, owner.id, notebook.id, &format!("{in_name}.txt"), text_result(&text)).await;
    let only = BTreeSet::from([document.id]);

    wait_for_documents(store, scope, &documents_query(&first), &only, "a word of the first page").await;
    let hits = found_hits(store, scope, &documents_query(&second)).await;
    assert_eq!(hits.len(), 1);
    let chunk = &hits[0].chunk;
    assert_eq!((chunk.ordinal, chunk.page), (2, 2), "the second page is its own chunk");
    let at: String = text.chars().skip(chunk.offset as usize).take(chunk.text.chars().count()).collect();
    assert_eq!(at, chunk.text, "the offset points at the chunk in the text");
    assert_eq!(
        (hits[0].filename.as_str(), hits[0].content_type.as_str()),
        (format!("{in_name}.txt").as_str(), "text/plain")
    );
    assert_eq!(hits[0].notebook_id, notebook.id);

    let found = |text: &str| {
        let query = documents_query(text);
        async move { found_documents(store, scope, &query).await }
    };
    assert_eq!(found(&format!("\"net income\" {second}")).await, only, "a phrase in order");
    assert!(found(&format!("\"income net\" {second}")).await.is_empty(), "a phrase out of order");
    assert!(found(&format!("{first} {second}")).await.is_empty(), "every word must match in one chunk");
    assert_eq!(found(&format!("{}*", &first[..8])).await, only, "a prefix");
    assert_eq!(found(&typo_of(&first)).await, only, "a typo");
    assert_eq!(found(&first.to_uppercase()).await, only, "case does not matter");
    assert_eq!(found(&in_name).await, only, "the file name is searched (the heading chunk)");

    // The heading follows the document's description and tags.
    let (described, renamed) = (keyword(), keyword());
    let patch = DocumentPatch {
        description: Some(Some(Description::parse(&format!("About {described}")).unwrap())),
        original_filename: Some(Filename::parse(&format!("{renamed}.txt")).unwrap()),
        ..DocumentPatch::default()
    };
    store.update_document(document.id, patch, &Change::by(owner.id, time::now())).await.unwrap();
    wait_for_documents(store, scope, &documents_query(&described), &only, "a new description").await;
    wait_for_documents(store, scope, &documents_query(&renamed), &only, "a new name").await;
    wait_for_documents(store, scope, &documents_query(&in_name), &BTreeSet::new(), "the old name").await;

    // A new version replaces the text.
    let replaced = keyword();
    store_version(store, owner.id, notebook.id, Some(document.id), "v2.txt", text_result(&format!("now {replaced}")))
        .await;
    wait_for_documents(store, scope, &documents_query(&replaced), &only, "the new version's text").await;
    wait_for_documents(store, scope, &documents_query(&first), &BTreeSet::new(), "the old version's text").await;

    // Deleting the document removes it.
    store.delete_document(document.id, &Change::by(owner.id, time::now())).await.unwrap();
    wait_for_documents(store, scope, &documents_query(&replaced), &BTreeSet::new(), "a deleted document").await;
}

pub async fn only_the_readers_text_of_a_redacted_document_is_searched(store: &dyn Store) {
    let owner = store.create_user(new_user("redactor")).await.unwrap();
    let notebook = store
        .create_notebook(new_notebook(owner.id, "Redacted"), MAX_DEPTH, &Change::by(owner.id, time::now()))
        .await
        .unwrap();
    let (secret, visible) = (keyword(), keyword());
    let mut result = text_result(&format!("{visible} contact {secret}"));
    result.redaction_applied = true;
    result.redacted_text = Some(format!("{visible} contact [REDACTED]"));
    let document = store_document(store, owner.id, notebook.id, "pii.txt", result).await;
    // Even the owner, and even a role that reads everything: the index holds only the
    // text every reader may see.
    for scope in [ReadScope::Reader(owner.id), ReadScope::Everything] {
        wait_for_documents(store, scope, &documents_query(&visible), &BTreeSet::from([document.id]), "redacted text")
            .await;
        assert!(found_documents(store, scope, &documents_query(&secret)).await.is_empty(), "the original text");
    }
}

/// The notebooks of the sharing matrix, each holding one document with `word`.
struct Matrix {
    notebooks: Vec<NotebookId>,
    documents: Vec<(NotebookId, DocumentId)>,
}

pub async fn search_finds_exactly_what_the_caller_may_read(store: &dyn Store) {
    let owner = store.create_user(new_user("matrix-owner")).await.unwrap();
    let reader = store.create_user(new_user("matrix-reader")).await.unwrap();
    let stranger = store.create_user(new_user("matrix-stranger")).await.unwrap();
    let change = || Change::by(owner.id, time::now());
    let word = keyword();
    let create = |new| async move { store.create_notebook(new, MAX_DEPTH, &change()).await.unwrap() };

    let private = create(new_notebook(owner.id, "Private")).await;
    let private_child = create(child_of(owner.id, private.id, "Private child")).await;
    let public = create(aether_domain::notebook::NewNotebook {
        visibility: Visibility::Public,
        ..new_notebook(owner.id, "Public")
    })
    .await;
    // A public notebook's private child stays private.
    let under_public = create(child_of(owner.id, public.id, "Under public")).await;
    let shared = create(new_notebook(owner.id, "Shared")).await;
    let shared_child = create(child_of(owner.id, shared.id, "Shared child")).await;
    let invited = create(new_notebook(owner.id, "Invited")).await;
    let revoked = create(new_notebook(owner.id, "Revoked")).await;
    let deleted = create(new_notebook(owner.id, "Deleted")).await;
    let readers_own =
        store.create_notebook(new_notebook(reader.id, "Reader's own"), MAX_DEPTH, &change()).await.unwrap();

    store.put_collaboration(collaboration(shared.id, reader.id, owner.id, Permission::Read), &change()).await.unwrap();
    store.set_collaboration_status(shared.id, reader.id, CollaborationStatus::Active, &change()).await.unwrap();
    store
        .put_collaboration(collaboration(invited.id, reader.id, owner.id, Permission::Write), &change())
        .await
        .unwrap();
    store
        .put_collaboration(collaboration(revoked.id, reader.id, owner.id, Permission::Admin), &change())
        .await
        .unwrap();
    store.set_collaboration_status(revoked.id, reader.id, CollaborationStatus::Active, &change()).await.unwrap();
    store.revoke_collaboration(revoked.id, reader.id, &change()).await.unwrap();

    let all = [
        private.id,
        private_child.id,
        public.id,
        under_public.id,
        shared.id,
        shared_child.id,
        invited.id,
        revoked.id,
        deleted.id,
        readers_own.id,
    ];
    let mut matrix = Matrix { notebooks: all.to_vec(), documents: Vec::new() };
    for notebook in all {
        let uploader = if notebook == readers_own.id { reader.id } else { owner.id };
        let document =
            store_document(store, uploader, notebook, "matrix.txt", text_result(&format!("matrix {word}"))).await;
        matrix.documents.push((notebook, document.id));
        let patch = NotebookPatch {
            description: Some(Some(Description::parse(&format!("notebook {word}")).unwrap())),
            ..NotebookPatch::default()
        };
        let by = if notebook == readers_own.id { reader.id } else { owner.id };
        store.update_notebook(notebook, patch, None, &Change::by(by, time::now())).await.unwrap();
    }
    store.soft_delete_notebook(deleted.id, false, &change()).await.unwrap();

    // What `effective_access` grants each caller, from the chains the store reports.
    let readable = |user: UserId| {
        let notebooks = matrix.notebooks.clone();
        async move {
            let mut readable = BTreeSet::new();
            for notebook in notebooks {
                if let Ok(chain) = store.access_chain(user, notebook).await
                    && effective_access(user, &[Role::User], &chain).is_some()
                {
                    readable.insert(notebook);
                }
            }
            readable
        }
    };
    let documents_in = |notebooks: &BTreeSet<NotebookId>| -> BTreeSet<DocumentId> {
        matrix.documents.iter().filter(|(n, _)| notebooks.contains(n)).map(|(_, d)| *d).collect()
    };

    let expectations = [
        (
            owner.id,
            BTreeSet::from([
                private.id,
                private_child.id,
                public.id,
                under_public.id,
                shared.id,
                shared_child.id,
                invited.id,
                revoked.id,
            ]),
        ),
        (reader.id, BTreeSet::from([public.id, shared.id, shared_child.id, readers_own.id])),
        (stranger.id, BTreeSet::from([public.id])),
    ];
    for (user, expected) in &expectations {
        assert_eq!(&readable(*user).await, expected, "the matrix itself, as effective_access decides it");
        let scope = ReadScope::Reader(*user);
        wait_for_documents(store, scope, &documents_query(&word), &documents_in(expected), "documents by reader").await;
        let facets = store.document_facets(scope, &documents_query(&word)).await.unwrap();
        let counted: BTreeSet<String> = facets.notebook.iter().map(|f| f.value.clone()).collect();
        assert_eq!(counted, expected.iter().map(ToString::to_string).collect(), "facets count only readable notebooks");
        assert_eq!(facets.content_type.iter().map(|f| f.count).sum::<u64>(), expected.len() as u64, "facet totals");
        let notebooks = wait_for_notebooks(store, scope, &notebooks_query(&word), expected).await;
        assert_eq!(&notebooks, expected, "notebooks by reader");
    }
    let every_live: BTreeSet<NotebookId> = all.iter().copied().filter(|id| *id != deleted.id).collect();
    wait_for_documents(
        store,
        ReadScope::Everything,
        &documents_query(&word),
        &documents_in(&every_live),
        "a role that reads everything",
    )
    .await;

    // Revoking takes effect at once: permissions are read at query time.
    store.revoke_collaboration(shared.id, reader.id, &change()).await.unwrap();
    let now_readable = BTreeSet::from([public.id, readers_own.id]);
    assert_eq!(
        found_documents(store, ReadScope::Reader(reader.id), &documents_query(&word)).await,
        documents_in(&now_readable)
    );
    // So does making a notebook private.
    let patch = NotebookPatch { visibility: Some(Visibility::Private), ..NotebookPatch::default() };
    store.update_notebook(public.id, patch, None, &change()).await.unwrap();
    assert!(found_documents(store, ReadScope::Reader(stranger.id), &documents_query(&word)).await.is_empty());

    // The `within` filter keeps a notebook and its descendants.
    let mut query = documents_query(&word);
    query.filters.within = Some(private.id);
    assert_eq!(
        found_documents(store, ReadScope::Reader(owner.id), &query).await,
        documents_in(&BTreeSet::from([private.id, private_child.id]))
    );
    // Within a notebook the caller cannot read, nothing.
    assert!(found_documents(store, ReadScope::Reader(stranger.id), &query).await.is_empty());
}

async fn wait_for_notebooks(
    store: &dyn Store,
    scope: ReadScope,
    query: &NotebookSearch,
    expected: &BTreeSet<NotebookId>,
) -> BTreeSet<NotebookId> {
    let deadline = tokio::time::Instant::now() + INDEX_WAIT;
    loop {
        let found: BTreeSet<NotebookId> =
            store.search_notebooks(scope, query).await.unwrap().items.into_iter().map(|s| s.item.id).collect();
        if &found == expected || tokio::time::Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn search_results_filter_and_page(store: &dyn Store) {
    let owner = store.create_user(new_user("pager")).await.unwrap();
    let scope = ReadScope::Reader(owner.id);
    let notebook = store
        .create_notebook(new_notebook(owner.id, "Pages"), MAX_DEPTH, &Change::by(owner.id, time::now()))
        .await
        .unwrap();
    let word = keyword();
    let mut ids = BTreeSet::new();
    for n in 0..5 {
        // The word repeated n+1 times: a different score for most of them, and ties.
        let text = format!("{} filler", vec![word.as_str(); 1 + n % 3].join(" "));
        let mut result = text_result(&text);
        if n == 4 {
            result.content_type = "text/markdown".to_owned();
        }
        ids.insert(store_document(store, owner.id, notebook.id, &format!("page{n}.txt"), result).await.id);
    }
    wait_for_documents(store, scope, &documents_query(&word), &ids, "every page's document").await;

    let mut query = documents_query(&word);
    query.limit = Limit::parse(2).unwrap();
    let mut seen = Vec::new();
    loop {
        let page = store.search_documents(scope, &query).await.unwrap();
        assert!(page.items.len() <= 2);
        for pair in page.items.windows(2) {
            assert!(pair[0].score >= pair[1].score, "best first");
        }
        seen.extend(page.items.iter().map(|s| s.item.id));
        match page.next {
            Some(next) => query.after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5, "each once: {seen:?}");
    assert_eq!(seen.iter().copied().collect::<BTreeSet<_>>(), ids);

    let mut query = documents_query(&word);
    query.content_type = Some(ContentTypeFilter::parse("text/markdown").unwrap());
    assert_eq!(found_documents(store, scope, &query).await.len(), 1, "by content type");
    let mut query = documents_query(&word);
    query.status = Some(ProcessingStatus::Failed);
    assert!(found_documents(store, scope, &query).await.is_empty(), "by status");
    let tagged = *ids.iter().next().unwrap();
    let patch = DocumentPatch { tags: Some(vec![Tag::parse("finance").unwrap()]), ..DocumentPatch::default() };
    store.update_document(tagged, patch, &Change::by(owner.id, time::now())).await.unwrap();
    let mut query = documents_query(&word);
    query.filters.tags = vec![Tag::parse("finance").unwrap()];
    wait_for_documents(store, scope, &query, &BTreeSet::from([tagged]), "by tag").await;
    let mut query = documents_query(&word);
    query.filters.owner = Some(UserId::new());
    assert!(found_documents(store, scope, &query).await.is_empty(), "by uploader");
    let mut query = documents_query(&word);
    query.filters.created = aether_domain::search::TimeRange::new(Some(time::now() + TimeDelta::hours(1)), None);
    assert!(found_documents(store, scope, &query).await.is_empty(), "by creation time");

    let facets = store.document_facets(scope, &documents_query(&word)).await.unwrap();
    let mut types: Vec<(String, u64)> = facets.content_type.iter().map(|f| (f.value.clone(), f.count)).collect();
    types.sort();
    assert_eq!(types, vec![("text/markdown".to_owned(), 1), ("text/plain".to_owned(), 4)]);
}

pub async fn notebooks_are_found_by_name_description_and_tags(store: &dyn Store) {
    let owner = store.create_user(new_user("notebook-searcher")).await.unwrap();
    let scope = ReadScope::Reader(owner.id);
    let (named, tagged) = (keyword(), keyword());
    let mut new = new_notebook(owner.id, &format!("Plans {named}"));
    new.tags = vec![Tag::parse(&tagged).unwrap()];
    let notebook = store.create_notebook(new, MAX_DEPTH, &Change::by(owner.id, time::now())).await.unwrap();
    let only = BTreeSet::from([notebook.id]);
    assert_eq!(&wait_for_notebooks(store, scope, &notebooks_query(&named), &only).await, &only, "by name");
    assert_eq!(&wait_for_notebooks(store, scope, &notebooks_query(&tagged), &only).await, &only, "by tag");
    assert_eq!(&wait_for_notebooks(store, scope, &notebooks_query(&typo_of(&named)), &only).await, &only, "a typo");
    let renamed = keyword();
    let patch = NotebookPatch {
        name: Some(aether_domain::notebook::NotebookName::parse(&renamed).unwrap()),
        ..NotebookPatch::default()
    };
    store.update_notebook(notebook.id, patch, None, &Change::by(owner.id, time::now())).await.unwrap();
    assert_eq!(&wait_for_notebooks(store, scope, &notebooks_query(&renamed), &only).await, &only, "the new name");
    assert!(
        wait_for_notebooks(store, scope, &notebooks_query(&named), &BTreeSet::new()).await.is_empty(),
        "the old name"
    );
    store.soft_delete_notebook(notebook.id, false, &Change::by(owner.id, time::now())).await.unwrap();
    assert!(
        store.search_notebooks(scope, &notebooks_query(&renamed)).await.unwrap().items.is_empty(),
        "deleted at once"
    );
}

pub async fn reindexing_rewrites_every_document(store: &dyn Store) {
    let owner = store.create_user(new_user("reindexer")).await.unwrap();
    let notebook = store
        .create_notebook(new_notebook(owner.id, "Reindexed"), MAX_DEPTH, &Change::by(owner.id, time::now()))
        .await
        .unwrap();
    let word = keyword();
    let mut result = text_result(&format!("{word} original secret"));
    result.redaction_applied = true;
    result.redacted_text = Some(format!("{word} original [REDACTED]"));
    let document = store_document(store, owner.id, notebook.id, "re index.txt", result).await;
    let mut after = None;
    let mut seen = 0;
    loop {
        let step = store.reindex_documents(after, 50).await.unwrap();
        seen += step.documents;
        match step.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert!(seen >= 1);
    let scope = ReadScope::Reader(owner.id);
    wait_for_documents(store, scope, &documents_query(&word), &BTreeSet::from([document.id]), "after a reindex").await;
    assert!(
        found_documents(store, scope, &documents_query(&format!("{word} secret"))).await.is_empty(),
        "still the readers' text only"
    );
    let hits = found_hits(store, scope, &documents_query(&word)).await;
    assert_eq!(
        hits[0].chunk.text,
        format!("{word} original [REDACTED]"),
        "the body rebuilt from the readers' text, without the file name"
    );
}

pub async fn people_are_found_by_name_and_by_email_only_for_administrators(store: &dyn Store) {
    let family = keyword();
    let mut stranger = new_user("people");
    stranger.full_name = Some(format!("Ada {family}"));
    stranger.email = Some(aether_domain::user::Email::parse(&format!("{}@example.org", keyword())).unwrap());
    let stranger = store.create_user(stranger).await.unwrap();
    let mut colleague = new_user("people");
    colleague.full_name = Some(format!("Grace {family}"));
    let colleague = store.create_user(colleague).await.unwrap();
    let caller = store.create_user(new_user("people-caller")).await.unwrap();
    // The colleague holds a grant on one of the caller's notebooks.
    let notebook = store
        .create_notebook(
            new_notebook(caller.id, "Shared with colleague"),
            MAX_DEPTH,
            &Change::by(caller.id, time::now()),
        )
        .await
        .unwrap();
    let change = Change::by(caller.id, time::now());
    store
        .put_collaboration(collaboration(notebook.id, colleague.id, caller.id, Permission::Read), &change)
        .await
        .unwrap();
    store.set_collaboration_status(notebook.id, colleague.id, CollaborationStatus::Active, &change).await.unwrap();

    let query = |text: &str, include_email: bool| aether_domain::search::PeopleSearch {
        text: SearchText::parse(text).unwrap(),
        include_email,
        limit: Limit::parse(10).unwrap(),
    };
    let deadline = tokio::time::Instant::now() + INDEX_WAIT;
    let found = loop {
        let found = store.find_people(caller.id, &query(&family, false)).await.unwrap();
        if found.len() == 2 || tokio::time::Instant::now() > deadline {
            break found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        found.iter().map(|p| (p.user.id, p.collaborates)).collect::<Vec<_>>(),
        vec![(colleague.id, true), (stranger.id, false)],
        "people who share a notebook with the caller come first"
    );
    let username_word = stranger.username.as_str().rsplit('-').next().unwrap().to_owned();
    let by_username = store.find_people(caller.id, &query(&username_word, false)).await.unwrap();
    assert_eq!(by_username.iter().map(|p| p.user.id).collect::<Vec<_>>(), vec![stranger.id], "by username");
    let email_word = stranger.email.as_ref().unwrap().as_str().split('@').next().unwrap().to_owned();
    let deadline = tokio::time::Instant::now() + INDEX_WAIT;
    loop {
        let found = store.find_people(caller.id, &query(&email_word, true)).await.unwrap();
        if found.iter().any(|p| p.user.id == stranger.id) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "an administrator finds a user by e-mail");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(store.find_people(caller.id, &query(&email_word, false)).await.unwrap().is_empty(), "others do not");
    store.soft_delete_user(stranger.id, time::now()).await.unwrap();
    let found = store.find_people(caller.id, &query(&family, false)).await.unwrap();
    assert_eq!(found.iter().map(|p| p.user.id).collect::<Vec<_>>(), vec![colleague.id], "deleted users are not found");
}

/// A unit vector of the built-in model's 384 dimensions along axis `axis`, or
/// between two axes: cos(unit(a), between(a, b)) ≈ 0.71.
fn unit(axis: usize) -> aether_domain::embedding::Embedding {
    let mut values = vec![0.0f32; 384];
    values[axis] = 1.0;
    aether_domain::embedding::Embedding::normalized(values).unwrap()
}

fn between(a: usize, b: usize) -> aether_domain::embedding::Embedding {
    let mut values = vec![0.0f32; 384];
    values[a] = 1.0;
    values[b] = 1.0;
    aether_domain::embedding::Embedding::normalized(values).unwrap()
}

/// Gives every waiting chunk whose text contains `marker` the vector `vector_of` its text.
async fn embed_waiting(
    store: &dyn Store,
    model: &str,
    marker: &str,
    vector_of: impl Fn(&str) -> aether_domain::embedding::Embedding,
) -> usize {
    let pending = store.chunks_to_embed(100_000).await.unwrap();
    let ours: Vec<aether_domain::semantic::ChunkEmbedding> = pending
        .into_iter()
        .filter(|chunk| chunk.text.contains(marker))
        .map(|chunk| aether_domain::semantic::ChunkEmbedding { vector: vector_of(&chunk.text), id: chunk.id })
        .collect();
    store.store_chunk_embeddings(model, &ours).await.unwrap();
    ours.len()
}

pub async fn similar_documents_are_found_among_what_the_caller_may_read(store: &dyn Store) {
    let owner = store.create_user(new_user("semantic-owner")).await.unwrap();
    let stranger = store.create_user(new_user("semantic-stranger")).await.unwrap();
    let change = || Change::by(owner.id, time::now());
    let readable = store.create_notebook(new_notebook(stranger.id, "Stranger's"), MAX_DEPTH, &change()).await.unwrap();
    let private = store.create_notebook(new_notebook(owner.id, "Owner's"), MAX_DEPTH, &change()).await.unwrap();
    let marker = keyword();
    let model = format!("test-model-{marker}");
    let near =
        store_document(store, stranger.id, readable.id, "near.txt", text_result(&format!("{marker} near"))).await;
    let far = store_document(store, stranger.id, readable.id, "far.txt", text_result(&format!("{marker} far"))).await;
    let hidden =
        store_document(store, owner.id, private.id, "hidden.txt", text_result(&format!("{marker} near"))).await;
    // Headings (file names) along axis 3; bodies along 0 ("near") or 1 ("far").
    let vector_of = |text: &str| {
        if text.ends_with(".txt") {
            unit(3)
        } else if text.ends_with("near") {
            unit(0)
        } else {
            unit(1)
        }
    };
    assert_eq!(embed_waiting(store, &model, &marker, vector_of).await, 3, "the three bodies wait for vectors");
    // The headings hold no marker: give them theirs by file name.
    let pending = store.chunks_to_embed(100_000).await.unwrap();
    let headings: Vec<aether_domain::semantic::ChunkEmbedding> = pending
        .into_iter()
        .filter(|chunk| ["near.txt", "far.txt", "hidden.txt"].contains(&chunk.text.as_str()))
        .map(|chunk| aether_domain::semantic::ChunkEmbedding { vector: unit(3), id: chunk.id })
        .collect();
    assert!(headings.len() >= 3);
    store.store_chunk_embeddings(&model, &headings).await.unwrap();
    let still_waiting = store.chunks_to_embed(100_000).await.unwrap();
    assert!(still_waiting.iter().all(|chunk| !chunk.text.contains(&marker)), "stored vectors stop waiting");

    let query = documents_query("unused");
    let stranger_scope = ReadScope::Reader(stranger.id);
    let similar = |scope: ReadScope, vector: aether_domain::embedding::Embedding| {
        let (query, model) = (query.clone(), model.clone());
        async move {
            let deadline = tokio::time::Instant::now() + INDEX_WAIT;
            loop {
                let found = store.similar_documents(scope, &model, &vector, &query, 10).await.unwrap();
                if found.len() >= 2 || tokio::time::Instant::now() > deadline {
                    return found;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let found = similar(stranger_scope, between(0, 2)).await;
    let ids: Vec<DocumentId> = found.iter().map(|hit| hit.item.id).collect();
    assert_eq!(ids, vec![near.id, far.id], "nearest first, and never the unreadable twin");
    assert_eq!(found[0].item.chunk.ordinal, 1, "the best chunk of the document");
    assert!(found[0].score > found[1].score);
    // Scored by the cosine itself (to the approximate index's precision):
    // cos(between(0, 2), unit(0)) = 1/√2, and 0 for the orthogonal body.
    assert!((found[0].score - std::f64::consts::FRAC_1_SQRT_2).abs() < 1e-2, "{}", found[0].score);
    assert!(found[1].score.abs() < 1e-2, "{}", found[1].score);
    let everything: Vec<DocumentId> =
        similar(ReadScope::Everything, unit(0)).await.iter().map(|hit| hit.item.id).collect();
    assert!(everything.contains(&hidden.id) && everything.contains(&near.id), "a role that reads everything");
    // A document filter (here the uploader) narrows what is compared.
    let mut by_owner = query.clone();
    by_owner.filters.owner = Some(owner.id);
    let filtered = store.similar_documents(ReadScope::Everything, &model, &unit(0), &by_owner, 10).await.unwrap();
    let filtered: Vec<DocumentId> = filtered.iter().map(|hit| hit.item.id).collect();
    assert!(filtered.contains(&hidden.id), "{filtered:?}");
    assert!(!filtered.contains(&near.id) && !filtered.contains(&far.id), "{filtered:?}");
    // A vector of another model is not compared.
    let other = store.similar_documents(stranger_scope, "another-model", &unit(0), &query, 10).await.unwrap();
    assert!(other.iter().all(|hit| hit.item.id != near.id));

    // A new heading waits for its own vector; a new model re-embeds everything.
    let patch = DocumentPatch {
        description: Some(Some(Description::parse(&format!("{marker} described")).unwrap())),
        ..DocumentPatch::default()
    };
    store.update_document(near.id, patch, &Change::by(stranger.id, time::now())).await.unwrap();
    let waiting = store.chunks_to_embed(100_000).await.unwrap();
    assert_eq!(waiting.iter().filter(|chunk| chunk.text.contains(&marker)).count(), 1, "the rewritten heading");
    // Five: the rewritten heading already waits.
    assert!(store.queue_embeddings_for(&format!("{model}-v2")).await.unwrap() >= 5);
    let waiting = store.chunks_to_embed(100_000).await.unwrap();
    assert!(waiting.iter().filter(|chunk| chunk.text.contains(&marker)).count() >= 4);

    // Deleting a document takes its vectors with it.
    store.delete_document(near.id, &Change::by(stranger.id, time::now())).await.unwrap();
    let found = store.similar_documents(stranger_scope, &model, &unit(0), &query, 10).await.unwrap();
    assert!(found.iter().all(|hit| hit.item.id != near.id));
}

pub async fn searches_are_remembered_per_user_and_counted_for_everyone(store: &dyn Store) {
    use aether_domain::search_log::{NewSearchRecord, SearchTarget};
    let started = time::now() - TimeDelta::seconds(1);
    let alice = store.create_user(new_user("history-a")).await.unwrap();
    let bob = store.create_user(new_user("history-b")).await.unwrap();
    let word = keyword();
    let record = |user: UserId, text: String, results: u32, ms: u32| NewSearchRecord {
        id: Uuid::now_v7(),
        user_id: user,
        query_text: text,
        query_type: "hybrid",
        target: SearchTarget::Documents,
        filters: serde_json::json!({}),
        results_count: results,
        response_time_ms: ms,
        returned_documents: vec![],
        returned_notebooks: vec![],
        at: time::now(),
    };
    let searches = [
        record(alice.id, format!("{word} Tax  Report"), 3, 10),
        record(alice.id, format!("{word} tax report!"), 2, 20),
        record(alice.id, format!("{word} nothing here"), 0, 30),
        record(bob.id, format!("{word} tax report"), 1, 40),
    ];
    for search in searches.clone() {
        store.record_search(search).await.unwrap();
    }

    let history =
        store.search_history(alice.id, PageRequest { limit: Limit::parse(2).unwrap(), after: None }).await.unwrap();
    assert_eq!(
        history.items.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![searches[2].id, searches[1].id],
        "newest first"
    );
    assert_eq!(history.items[0].query_text, format!("{word} nothing here"));
    assert_eq!((history.items[0].results_count, history.items[0].response_time_ms), (0, 30));
    assert_eq!((history.items[0].query_type.as_str(), history.items[0].target.as_str()), ("hybrid", "documents"));
    let rest = store
        .search_history(alice.id, PageRequest { limit: Limit::parse(2).unwrap(), after: history.next_after })
        .await
        .unwrap();
    assert_eq!(rest.items.iter().map(|r| r.id).collect::<Vec<_>>(), vec![searches[0].id]);
    assert_eq!(rest.next_after, None);

    let frequent = store.frequent_searches(alice.id, &word, 10).await.unwrap();
    assert_eq!(
        frequent.iter().map(|q| (q.query.clone(), q.searches)).collect::<Vec<_>>(),
        vec![(format!("{word} tax report"), 2), (format!("{word} nothing here"), 1)],
        "the user's own queries, grouped by their words, most searched first"
    );

    let analytics = store.search_analytics(started, 1000).await.unwrap();
    assert!(analytics.searches >= 4 && analytics.zero_result_searches >= 1);
    let top =
        analytics.top_queries.iter().find(|q| q.query == format!("{word} tax report")).expect("in the top queries");
    assert_eq!((top.searches, top.users), (3, 2));
    assert!(analytics.zero_result_queries.iter().any(|q| q.query == format!("{word} nothing here")));
    assert!(analytics.zero_result_queries.iter().all(|q| q.query != format!("{word} tax report")));
    assert!(analytics.max_ms >= 40 && analytics.p50_ms <= analytics.p95_ms && analytics.p95_ms <= analytics.max_ms);

    assert!(
        matches!(store.delete_search_history(alice.id, Some(searches[3].id)).await, Err(StoreError::NotFound)),
        "not Bob's"
    );
    assert_eq!(store.delete_search_history(alice.id, Some(searches[2].id)).await.unwrap(), 1);
    assert_eq!(store.delete_search_history(alice.id, None).await.unwrap(), 2);
    assert!(store.search_history(alice.id, PageRequest::default()).await.unwrap().items.is_empty());
    assert_eq!(store.search_history(bob.id, PageRequest::default()).await.unwrap().items.len(), 1, "Bob's stays");

    // Searches older than the retention leave, a batch at a time; newer ones stay.
    let ancient =
        NewSearchRecord { at: time::now() - TimeDelta::days(200), ..record(bob.id, format!("{word} old"), 1, 5) };
    store.record_search(ancient).await.unwrap();
    assert_eq!(store.search_history(bob.id, PageRequest::default()).await.unwrap().items.len(), 2);
    let cutoff = time::now() - TimeDelta::days(100);
    assert_eq!(store.forget_searches_before(cutoff, 1).await.unwrap(), 1, "one at a time");
    while store.forget_searches_before(cutoff, 100).await.unwrap() > 0 {}
    let left = store.search_history(bob.id, PageRequest::default()).await.unwrap();
    assert_eq!(left.items.iter().map(|r| r.id).collect::<Vec<_>>(), vec![searches[3].id], "the recent one stays");
}
