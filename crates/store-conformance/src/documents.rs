//! Upload jobs, documents and versions.

use aether_domain::StoreError;
use aether_domain::activity::Change;
use aether_domain::blob::BlobKey;
use aether_domain::document::JobFailure;
use aether_domain::document::{DocumentPatch, Filename, ProcessingResult, ProcessingStatus};
use aether_domain::events::topics;
use aether_domain::id::{DocumentId, JobId, NotebookId, UserId};
use aether_domain::job::{JobOrigin, JobStatus, NewUploadJob, ReceivedFile, UploadJob};
use aether_domain::notebook::{Description, Tag};
use aether_domain::page::PageRequest;
use aether_domain::store::Store;
use aether_domain::time;
use chrono::TimeDelta;

use crate::paging::{assert_walked, walk};
use crate::{MAX_DEPTH, new_notebook, new_user};

async fn setup(store: &dyn Store, name: &str) -> (UserId, NotebookId) {
    let owner = store.create_user(new_user(name)).await.unwrap();
    let notebook = store
        .create_notebook(new_notebook(owner.id, "Documents"), MAX_DEPTH, &Change::by(owner.id, time::now()))
        .await
        .unwrap();
    (owner.id, notebook.id)
}

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn new_job(owner: UserId, notebook: NotebookId, existing: Option<DocumentId>, name: &str) -> NewUploadJob {
    NewUploadJob {
        id: JobId::new(),
        notebook_id: notebook,
        uploaded_by: owner,
        existing_document: existing,
        filename: Filename::sanitize(name),
        change_summary: existing.map(|_| "second draft".to_owned()),
        callback_url: None,
        expected_bytes: Some(11),
        storage_provider: "fs".to_owned(),
        origin: JobOrigin {
            request_id: Some(format!("request-{name}")),
            traceparent: existing.is_none().then(|| TRACEPARENT.to_owned()),
        },
        at: time::now(),
    }
}

fn file(size: u64, hash: &str) -> ReceivedFile {
    ReceivedFile { size, sha256: hash.to_owned(), content_type: "text/plain".to_owned() }
}

/// Claims jobs until `id` comes up. Other jobs in a shared database are left with a
/// lease of two seconds, so that their own workers soon take them again.
async fn claim(store: &dyn Store, id: JobId) -> UploadJob {
    for _ in 0..1000 {
        let now = time::now();
        let lease = now + TimeDelta::seconds(60);
        let Some(job) = store.claim_job(now, lease).await.unwrap() else { break };
        if job.id == id {
            return job;
        }
        store.advance_job(job.id, job.status, &job.stage, now + TimeDelta::seconds(2), now).await.unwrap();
    }
    panic!("job {id} was never claimed");
}

fn result(text: &str) -> ProcessingResult {
    let mut result = ProcessingResult {
        content_type: "text/plain".to_owned(),
        format: "text".to_owned(),
        supported: true,
        extracted_text: Some(text.to_owned()),
        pii_detected: text.contains('@'),
        ..ProcessingResult::default()
    };
    result.extracted_metadata.insert("word_count".into(), text.split_whitespace().count().into());
    result.compliance_scan_results.insert("pii".into(), serde_json::json!({"email": 1}));
    result
}

async fn pending_keys(store: &dyn Store, document: DocumentId) -> Vec<String> {
    let prefix = format!("documents/{document}/");
    store
        .pending_blob_deletions(100_000)
        .await
        .unwrap()
        .into_iter()
        .map(|deletion| deletion.key.as_str().to_owned())
        .filter(|key| key.starts_with(&prefix))
        .collect()
}

pub async fn upload_jobs_run_their_course(store: &dyn Store) {
    let (owner, notebook) = setup(store, "uploader").await;
    let job = store.create_upload_job(new_job(owner, notebook, None, "../notes.txt")).await.unwrap();
    assert_eq!((job.status, job.bytes_received, job.attempts), (JobStatus::Uploading, 0, 0));
    assert_eq!(job.filename.as_str(), "notes.txt");
    let origin =
        JobOrigin { request_id: Some("request-../notes.txt".to_owned()), traceparent: Some(TRACEPARENT.to_owned()) };
    assert_eq!(job.origin, origin, "the request that started the job is kept with it");
    assert!(!job.new_version && job.file.is_none());
    assert!(job.blob_key.as_str().starts_with(&format!("documents/{}/{}/", job.document_id, job.version_id)));
    assert_eq!(store.get_job(job.id).await.unwrap(), job);

    let progressed = store.record_upload_progress(job.id, 5, time::now()).await.unwrap();
    assert_eq!((progressed.bytes_received, progressed.percentage()), (5, 22));
    let (now, lease) = (time::now(), time::now() + TimeDelta::seconds(60));
    assert_eq!(store.claim_job_by_id(job.id, now, lease).await.unwrap(), None, "an upload is not claimable");
    assert_eq!(store.claim_job_by_id(JobId::new(), now, lease).await.unwrap(), None, "an unknown job");
    let accepted = store.accept_upload(job.id, file(11, "abc123"), time::now()).await.unwrap();
    assert_eq!(accepted.status, JobStatus::Pending);
    assert_eq!(accepted.file, Some(file(11, "abc123")));
    assert!(matches!(
        store.accept_upload(job.id, file(11, "abc123"), time::now()).await,
        Err(StoreError::Conflict(field)) if field == "job_status"
    ));
    let events = store.pending_events(100_000).await.unwrap();
    let uploaded: Vec<_> = events
        .iter()
        .filter(|e| e.topic == topics::DOCUMENTS_UPLOADED && e.payload["job_id"] == job.id.to_string())
        .collect();
    assert_eq!(uploaded.len(), 1, "one uploaded event, written with the acceptance");
    assert_eq!(uploaded[0].key, notebook.to_string());
    assert_eq!(uploaded[0].payload["file_hash"], "abc123");
    let queued: Vec<_> = events
        .iter()
        .filter(|e| e.topic == topics::DOCUMENTS_JOBS && e.payload["job_id"] == job.id.to_string())
        .collect();
    assert_eq!(queued.len(), 1, "the job enters the workers' queue with the acceptance");
    assert_eq!(queued[0].key, job.id.to_string(), "keyed by job, so that jobs spread over partitions");

    let pending = |counts: Vec<(JobStatus, u64)>| {
        counts.into_iter().find(|(s, _)| *s == JobStatus::Pending).map_or(0, |(_, n)| n)
    };
    let queued = pending(store.count_active_jobs().await.unwrap());
    assert!(queued >= 1, "the accepted job is counted as pending");
    let active = store.list_notebook_jobs(notebook, true, PageRequest::default()).await.unwrap();
    assert_eq!(active.items.iter().map(|j| j.id).collect::<Vec<_>>(), vec![job.id]);

    let now = time::now();
    let claimed = store.claim_job_by_id(job.id, now, now + TimeDelta::seconds(60)).await.unwrap().unwrap();
    assert_eq!((claimed.status, claimed.attempts), (JobStatus::Validating, 1));
    assert!(claimed.lease_until.is_some());
    let now = time::now();
    assert_eq!(store.claim_job_by_id(job.id, now, now + TimeDelta::seconds(60)).await.unwrap(), None, "leased");
    // The lease runs out (its worker died): the job is taken again.
    store
        .advance_job(job.id, JobStatus::Processing, "extracting text", now - TimeDelta::seconds(1), now)
        .await
        .unwrap();
    let now = time::now();
    let retaken = store.claim_job_by_id(job.id, now, now + TimeDelta::seconds(60)).await.unwrap().unwrap();
    assert_eq!((retaken.status, retaken.attempts), (JobStatus::Validating, 2));
    let now = time::now();
    let processing =
        store.advance_job(job.id, JobStatus::Processing, "extracting text", now + TimeDelta::seconds(60), now).await;
    assert_eq!(processing.unwrap().stage, "extracting text");
    // Renewals extend the lease and never shorten it.
    store.renew_job_lease(job.id, now + TimeDelta::seconds(120)).await.unwrap();
    let renewed = store.get_job(job.id).await.unwrap();
    assert_eq!(renewed.lease_until, Some(now + TimeDelta::seconds(120)));
    assert_eq!((renewed.status, renewed.stage.as_str()), (JobStatus::Processing, "extracting text"));
    store.renew_job_lease(job.id, now + TimeDelta::seconds(30)).await.unwrap();
    assert_eq!(store.get_job(job.id).await.unwrap().lease_until, Some(now + TimeDelta::seconds(120)));
    let lease = time::now() + TimeDelta::hours(1);
    let external = store.set_job_external_id(job.id, "audimodal-file-1", lease, time::now()).await.unwrap();
    assert_eq!(external.external_id.as_deref(), Some("audimodal-file-1"));
    assert_eq!(store.get_job(job.id).await.unwrap().external_id.as_deref(), Some("audimodal-file-1"));

    let (finished, document) = store.finish_job(job.id, result("hello a@b.example"), time::now()).await.unwrap();
    assert_eq!(finished.status, JobStatus::Completed);
    assert!(finished.finished_at.is_some() && finished.lease_until.is_none());
    assert_eq!(document.id, job.document_id);
    assert_eq!(document.notebook_id, notebook);
    assert_eq!(document.original_filename.as_str(), "notes.txt");
    assert_eq!((document.file_size, document.file_hash.as_str()), (11, "abc123"));
    assert_eq!(document.content_type, "text/plain");
    assert_eq!(document.storage_path, job.blob_key);
    assert_eq!(document.storage_provider, "fs");
    assert_eq!(document.processing_status, ProcessingStatus::Completed);
    assert_eq!(document.current_version, 1);
    assert_eq!(document.uploaded_by, owner);
    assert_eq!(document.result, result("hello a@b.example"));
    assert_eq!(store.get_document(document.id).await.unwrap(), document);
    let versions = store.list_versions(document.id, PageRequest::default()).await.unwrap().items;
    assert_eq!(versions.len(), 1);
    assert_eq!((versions[0].version_number, versions[0].id), (1, job.version_id));
    assert_eq!(versions[0].storage_path, job.blob_key);
    let counted = store.get_notebook(notebook).await.unwrap();
    assert_eq!((counted.document_count, counted.total_size_bytes), (1, 11));

    let events = store.pending_events(100_000).await.unwrap();
    let about = |topic: &str| {
        events.iter().filter(|e| e.topic == topic && e.payload["document_id"] == document.id.to_string()).count()
    };
    assert_eq!(about(topics::DOCUMENTS_PROCESSED), 1);
    assert_eq!(about(topics::COMPLIANCE_SCANNED), 1);
    let activity = store.list_activity(notebook, PageRequest::default()).await.unwrap();
    assert_eq!(activity.items[0].event_type, "document_added");

    assert!(matches!(store.finish_job(job.id, result("again"), time::now()).await, Err(StoreError::Conflict(_))));
    assert!(matches!(store.cancel_job(job.id, time::now()).await, Err(StoreError::Conflict(_))));
    let now = time::now();
    assert_eq!(store.claim_job_by_id(job.id, now, now).await.unwrap(), None, "a finished job");
    assert!(matches!(store.renew_job_lease(job.id, now).await, Err(StoreError::Conflict(_))));
    assert!(store.list_notebook_jobs(notebook, true, PageRequest::default()).await.unwrap().items.is_empty());
    let counts = store.count_active_jobs().await.unwrap();
    assert!(counts.iter().all(|(status, _)| !status.is_terminal()), "{counts:?}");
    assert!(store.blob_is_referenced(&job.blob_key).await.unwrap());
}

pub async fn reuploads_add_versions(store: &dyn Store) {
    let (owner, notebook) = setup(store, "reuploader").await;
    let first = store.create_upload_job(new_job(owner, notebook, None, "draft.txt")).await.unwrap();
    store.accept_upload(first.id, file(11, "one"), time::now()).await.unwrap();
    claim(store, first.id).await;
    let (_, document) = store.finish_job(first.id, result("first"), time::now()).await.unwrap();

    let second = store.create_upload_job(new_job(owner, notebook, Some(document.id), "draft-2.txt")).await.unwrap();
    assert!(second.new_version);
    assert_eq!(second.origin.traceparent, None, "a job started without a trace has no traceparent");
    assert_eq!(second.document_id, document.id);
    assert_ne!(second.blob_key, first.blob_key);
    store.accept_upload(second.id, file(20, "two"), time::now()).await.unwrap();
    claim(store, second.id).await;
    let (_, updated) = store.finish_job(second.id, result("second"), time::now()).await.unwrap();
    assert_eq!(updated.current_version, 2);
    assert_eq!((updated.file_size, updated.file_hash.as_str()), (20, "two"));
    assert_eq!(updated.original_filename.as_str(), "draft-2.txt");
    assert_eq!(updated.storage_path, second.blob_key);
    assert_eq!(updated.result.extracted_text.as_deref(), Some("second"));
    let versions = store.list_versions(document.id, PageRequest::default()).await.unwrap().items;
    assert_eq!(versions.iter().map(|v| v.version_number).collect::<Vec<_>>(), vec![2, 1]);
    assert_eq!(store.get_version(document.id, 1).await.unwrap(), versions[1]);
    assert!(matches!(store.get_version(document.id, 3).await, Err(StoreError::NotFound)));
    assert_eq!(versions[0].change_summary.as_deref(), Some("second draft"));
    assert_eq!(versions[1].storage_path, first.blob_key);
    let counted = store.get_notebook(notebook).await.unwrap();
    assert_eq!((counted.document_count, counted.total_size_bytes), (1, 31));

    // A re-upload must name a live document of the same notebook.
    let (_, other_notebook) = setup(store, "elsewhere").await;
    let misplaced = new_job(owner, other_notebook, Some(document.id), "x.txt");
    assert!(matches!(store.create_upload_job(misplaced).await, Err(StoreError::NotFound)));
    let unknown = new_job(owner, notebook, Some(DocumentId::new()), "x.txt");
    assert!(matches!(store.create_upload_job(unknown).await, Err(StoreError::NotFound)));
    let nowhere = new_job(owner, NotebookId::new(), None, "x.txt");
    assert!(matches!(store.create_upload_job(nowhere).await, Err(StoreError::NotFound)));

    // Metadata edits.
    let patch = DocumentPatch {
        original_filename: Some(Filename::parse("final.txt").unwrap()),
        description: Some(Some(Description::parse("The final text").unwrap())),
        tags: Some(vec![Tag::parse("Legal").unwrap()]),
    };
    let edited = store.update_document(document.id, patch, &Change::by(owner, time::now())).await.unwrap();
    assert_eq!(edited.original_filename.as_str(), "final.txt");
    assert_eq!(edited.description.as_ref().map(Description::as_str), Some("The final text"));
    assert_eq!(edited.tags, vec![Tag::parse("legal").unwrap()]);
    assert_eq!(edited.current_version, 2);
    assert_eq!(store.get_document(document.id).await.unwrap(), edited);
    let listed = store.list_documents(notebook, PageRequest::default()).await.unwrap();
    // Listings leave the extracted text out: it can be 2 M characters a document.
    let mut without_text = edited.clone();
    without_text.result.extracted_text = None;
    assert_eq!(listed.items, vec![without_text]);
}

pub async fn abandoned_jobs_queue_their_blobs(store: &dyn Store) {
    let (owner, notebook) = setup(store, "canceller").await;
    let job = store.create_upload_job(new_job(owner, notebook, None, "gone.txt")).await.unwrap();
    let cancelled = store.cancel_job(job.id, time::now()).await.unwrap();
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    assert!(cancelled.finished_at.is_some());
    let queued = pending_keys(store, job.document_id).await;
    for key in job.written_keys() {
        assert!(queued.contains(&key.as_str().to_owned()), "{key} queued for deletion");
    }
    assert!(!store.blob_is_referenced(&job.blob_key).await.unwrap());
    // The uploader notices, and nothing can revive the job.
    assert_eq!(store.record_upload_progress(job.id, 9, time::now()).await.unwrap().status, JobStatus::Cancelled);
    assert!(matches!(store.accept_upload(job.id, file(1, "x"), time::now()).await, Err(StoreError::Conflict(_))));
    assert!(matches!(store.cancel_job(job.id, time::now()).await, Err(StoreError::Conflict(_))));

    // A worker learns of a cancellation from its next step.
    let worked = store.create_upload_job(new_job(owner, notebook, None, "busy.txt")).await.unwrap();
    store.accept_upload(worked.id, file(3, "abc"), time::now()).await.unwrap();
    claim(store, worked.id).await;
    store.cancel_job(worked.id, time::now()).await.unwrap();
    let now = time::now();
    assert!(matches!(
        store.advance_job(worked.id, JobStatus::Processing, "x", now, now).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(store.finish_job(worked.id, result("x"), now).await, Err(StoreError::Conflict(_))));
    assert!(matches!(store.set_job_external_id(worked.id, "x", now, now).await, Err(StoreError::Conflict(_))));
    assert!(matches!(store.get_document(worked.document_id).await, Err(StoreError::NotFound)));

    // Failing keeps the reason.
    let failing = store.create_upload_job(new_job(owner, notebook, None, "bad.txt")).await.unwrap();
    let failed =
        store.fail_job(failing.id, JobFailure::new("upload_interrupted", "the connection closed"), now).await.unwrap();
    assert_eq!(failed.status, JobStatus::Failed);
    assert_eq!(failed.failure.as_ref().map(|f| f.code.as_str()), Some("upload_interrupted"));
    assert_eq!(pending_keys(store, failing.document_id).await.len(), 3);

    // A failed extraction still stores the document, with the reason.
    let malformed = store.create_upload_job(new_job(owner, notebook, None, "broken.pdf")).await.unwrap();
    store.accept_upload(malformed.id, file(4, "dead"), now).await.unwrap();
    claim(store, malformed.id).await;
    let mut broken = result("");
    broken.extracted_text = None;
    broken.error = Some(JobFailure::new("malformed_file", "not a PDF"));
    let (job, document) = store.finish_job(malformed.id, broken, time::now()).await.unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.failure.map(|f| f.code), Some("malformed_file".to_owned()));
    assert_eq!(document.processing_status, ProcessingStatus::Failed);
    assert_eq!(document.result.error.map(|e| e.message), Some("not a PDF".to_owned()));
    assert!(pending_keys(store, malformed.document_id).await.is_empty(), "a stored document keeps its bytes");
}

pub async fn leases_expire_and_uploads_go_stale(store: &dyn Store) {
    let (owner, notebook) = setup(store, "crasher").await;
    let job = store.create_upload_job(new_job(owner, notebook, None, "crash.txt")).await.unwrap();
    let stale = store.stale_uploads(time::now() + TimeDelta::seconds(1), 100_000).await.unwrap();
    assert!(stale.iter().any(|j| j.id == job.id));
    let fresh = store.stale_uploads(time::now() - TimeDelta::seconds(60), 100_000).await.unwrap();
    assert!(!fresh.iter().any(|j| j.id == job.id));

    store.accept_upload(job.id, file(3, "abc"), time::now()).await.unwrap();
    let first = claim(store, job.id).await;
    assert_eq!(first.attempts, 1);
    // Its worker dies: once the lease runs out, the job is taken again.
    let now = time::now();
    store.advance_job(job.id, JobStatus::Processing, "extracting", now, now).await.unwrap();
    let second = claim(store, job.id).await;
    assert_eq!((second.status, second.attempts), (JobStatus::Validating, 2));
}

pub async fn deleting_a_document_queues_every_blob(store: &dyn Store) {
    let (owner, notebook) = setup(store, "deleter").await;
    let first = store.create_upload_job(new_job(owner, notebook, None, "doomed.txt")).await.unwrap();
    store.accept_upload(first.id, file(11, "one"), time::now()).await.unwrap();
    claim(store, first.id).await;
    let mut with_derived = result("text");
    with_derived.redacted_key = Some(first.derived_key("redacted.txt"));
    let (_, document) = store.finish_job(first.id, with_derived, time::now()).await.unwrap();
    let second = store.create_upload_job(new_job(owner, notebook, Some(document.id), "doomed.txt")).await.unwrap();
    store.accept_upload(second.id, file(5, "two"), time::now()).await.unwrap();
    claim(store, second.id).await;
    store.finish_job(second.id, result("text 2"), time::now()).await.unwrap();

    store.delete_document(document.id, &Change::by(owner, time::now())).await.unwrap();
    assert!(matches!(store.get_document(document.id).await, Err(StoreError::NotFound)));
    assert!(matches!(store.list_versions(document.id, PageRequest::default()).await, Err(StoreError::NotFound)));
    assert!(matches!(
        store.delete_document(document.id, &Change::by(owner, time::now())).await,
        Err(StoreError::NotFound)
    ));
    let counted = store.get_notebook(notebook).await.unwrap();
    assert_eq!((counted.document_count, counted.total_size_bytes), (0, 0));
    let mut queued = pending_keys(store, document.id).await;
    queued.sort();
    let mut expected = vec![
        first.blob_key.as_str().to_owned(),
        first.derived_key("redacted.txt").as_str().to_owned(),
        second.blob_key.as_str().to_owned(),
    ];
    expected.sort();
    assert_eq!(queued, expected);
    for key in &expected {
        assert!(!store.blob_is_referenced(&BlobKey::parse(key).unwrap()).await.unwrap());
    }
    let activity = store.list_activity(notebook, PageRequest::default()).await.unwrap();
    assert_eq!(activity.items[0].event_type, "document_deleted");

    let ids: Vec<_> = store
        .pending_blob_deletions(100_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|d| d.key.as_str().starts_with(&format!("documents/{}/", document.id)))
        .map(|d| d.id)
        .collect();
    store.complete_blob_deletions(&ids).await.unwrap();
    assert!(pending_keys(store, document.id).await.is_empty());
    store.queue_blob_deletions(std::slice::from_ref(&first.blob_key), time::now()).await.unwrap();
    assert_eq!(pending_keys(store, document.id).await, vec![first.blob_key.as_str().to_owned()]);
}

/// Stores a new document in the notebook through a whole job; returns its id.
async fn stored_document(store: &dyn Store, owner: UserId, notebook: NotebookId, name: &str) -> DocumentId {
    let job = store.create_upload_job(new_job(owner, notebook, None, name)).await.unwrap();
    store.accept_upload(job.id, file(11, name), time::now()).await.unwrap();
    claim(store, job.id).await;
    store.finish_job(job.id, result(name), time::now()).await.unwrap().1.id
}

pub async fn documents_versions_and_jobs_page_newest_first(store: &dyn Store) {
    let (owner, notebook) = setup(store, "librarian").await;
    let mut documents = Vec::new();
    for i in 0..5 {
        documents.push(stored_document(store, owner, notebook, &format!("paged-{i}.txt")).await);
    }
    let pages = walk(async |page| store.list_documents(notebook, page).await.unwrap()).await;
    assert_walked("documents", &pages, |document| document.id, &documents.iter().rev().copied().collect::<Vec<_>>());

    // Four re-uploads: five versions, highest number first.
    let document = documents[0];
    for i in 0..4 {
        let job =
            store.create_upload_job(new_job(owner, notebook, Some(document), &format!("v{i}.txt"))).await.unwrap();
        store.accept_upload(job.id, file(11, "again"), time::now()).await.unwrap();
        claim(store, job.id).await;
        store.finish_job(job.id, result("again"), time::now()).await.unwrap();
    }
    let pages = walk(async |page| store.list_versions(document, page).await.unwrap()).await;
    assert_walked("versions", &pages, |version| version.version_number, &[5, 4, 3, 2, 1]);

    // Jobs of another notebook, still waiting for their bytes.
    let (_, other) = setup(store, "librarian-2").await;
    let mut waiting = Vec::new();
    for i in 0..5 {
        waiting.push(store.create_upload_job(new_job(owner, other, None, &format!("wait-{i}.txt"))).await.unwrap().id);
    }
    let pages = walk(async |page| store.list_notebook_jobs(other, false, page).await.unwrap()).await;
    assert_walked("jobs", &pages, |job| job.id, &waiting.iter().rev().copied().collect::<Vec<_>>());
    let finished = store.list_notebook_jobs(notebook, true, PageRequest::default()).await.unwrap();
    assert!(finished.items.is_empty(), "only unfinished jobs when asked");
}
