//! Reading documents under the notebook's permission: metadata, versions, downloads
//! (whole or a range), previews, thumbnails, storage facts and copies. Read-only
//! collaborators of a redacted document see only its redacted side.

use std::ops::Range;

use aether_domain::StoreError;
use aether_domain::access::Permission;
use aether_domain::activity::Change;
use aether_domain::auth::Principal;
use aether_domain::blob::{BlobKey, BlobRead};
use aether_domain::document::{Document, DocumentPatch, DocumentVersion, Filename};
use aether_domain::id::{DocumentId, NotebookId};
use aether_domain::job::{JobOrigin, UploadJob};
use aether_domain::page::{Limit, Page, PageRequest};
use futures::StreamExt as _;
use serde::Serialize;

use super::upload::{BodyError, UploadRequest};
use super::{DocumentService, rejected};
use crate::avatars::blob_error;
use crate::error::{ServiceError, ServiceResult};

/// Whether `permission` sees only the redacted side of `document`: read-only
/// collaborators of a document that has a redacted copy.
fn restricted_to_redacted(document: &Document, permission: Permission) -> bool {
    permission < Permission::Write && document.result.redacted_key.is_some()
}

/// What a client asks to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Variant {
    /// The caller's default: the original for writers, the redacted copy for
    /// read-only collaborators when one exists.
    #[default]
    Default,
    Original,
    Redacted,
}

/// A download about to stream.
#[derive(Debug)]
pub struct Download {
    pub filename: Filename,
    pub content_type: String,
    pub etag: String,
    pub read: BlobRead,
}

/// A stored file a request resolved to.
#[derive(Debug)]
pub(super) struct StoredFile {
    #[allow(dead_code)]
    pub(super) document: Document,
    pub(super) key: BlobKey,
    pub(super) filename: Filename,
    pub(super) content_type: String,
    pub(super) redacted: bool,
}

/// Where and how a document is stored.
#[derive(Debug, Clone, Serialize)]
pub struct StorageMetadata {
    pub document_id: DocumentId,
    pub storage_provider: String,
    pub storage_path: String,
    pub file_size: u64,
    pub file_hash: String,
    pub content_type: String,
    pub versions: usize,
    /// Bytes of every version together.
    pub stored_bytes: u64,
    pub has_redacted_copy: bool,
    pub has_thumbnail: bool,
}

/// A document's preview: a text excerpt and whether a thumbnail exists.
#[derive(Debug, Clone, Serialize)]
pub struct Preview {
    pub document_id: DocumentId,
    pub format: String,
    pub supported: bool,
    pub excerpt: Option<String>,
    pub excerpt_truncated: bool,
    pub redacted: bool,
    pub thumbnail_available: bool,
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

const PREVIEW_CHARS: usize = 2_000;

impl DocumentService {
    /// A document and the caller's permission on it.
    pub async fn document(&self, caller: &Principal, id: DocumentId) -> ServiceResult<(Document, Permission)> {
        let document = self.store.documents.get_document(id).await?;
        let permission = self.require(caller, document.notebook_id, Permission::Read).await?;
        Ok((document, permission))
    }

    pub async fn documents(
        &self,
        caller: &Principal,
        notebook: NotebookId,
        page: PageRequest,
    ) -> ServiceResult<Page<Document>> {
        self.require(caller, notebook, Permission::Read).await?;
        Ok(self.store.documents.list_documents(notebook, page).await?)
    }

    pub async fn update(
        &self,
        caller: &Principal,
        id: DocumentId,
        patch: DocumentPatch,
        change: &Change,
    ) -> ServiceResult<Document> {
        let document = self.store.documents.get_document(id).await?;
        self.require(caller, document.notebook_id, Permission::Write).await?;
        if patch.is_empty() {
            return Ok(document);
        }
        let updated = self.store.documents.update_document(id, patch, change).await?;
        // Its heading (name, description, tags) is searched.
        self.access.reads().search_content_changed().await;
        Ok(updated)
    }

    /// Deletes the document; its blobs are queued and removed by the worker.
    pub async fn delete(&self, caller: &Principal, id: DocumentId, change: &Change) -> ServiceResult<()> {
        let document = self.store.documents.get_document(id).await?;
        self.require(caller, document.notebook_id, Permission::Write).await?;
        self.store.documents.delete_document(id, change).await?;
        // The notebook's document count and size changed with it.
        self.access.reads().notebooks_changed().await;
        tracing::info!(document_id = %id, "document deleted");
        self.work_ready.notify_one();
        Ok(())
    }

    /// The document's versions, newest first.
    pub async fn versions(
        &self,
        caller: &Principal,
        id: DocumentId,
        page: PageRequest,
    ) -> ServiceResult<Page<DocumentVersion>> {
        self.document(caller, id).await?;
        Ok(self.store.documents.list_versions(id, page).await?)
    }

    /// Every version of the document, read a page at a time.
    async fn all_versions(&self, id: DocumentId) -> ServiceResult<Vec<DocumentVersion>> {
        let mut versions = Vec::new();
        let mut page = PageRequest { limit: Limit::LARGEST, after: None };
        loop {
            let next = self.store.documents.list_versions(id, page).await?;
            versions.extend(next.items);
            match next.next_after {
                Some(after) => page.after = Some(after),
                None => return Ok(versions),
            }
        }
    }

    /// Opens a document (or one of its versions) for download. Read-only
    /// collaborators get the redacted copy of a redacted document and may not ask
    /// for the original.
    /// Which stored file a caller's request means: a version (or the current one),
    /// original or redacted. Read-only collaborators get the redacted copy of a
    /// redacted document and may not ask for the original.
    pub(super) async fn resolve(
        &self,
        caller: &Principal,
        id: DocumentId,
        version: Option<u32>,
        variant: Variant,
    ) -> ServiceResult<StoredFile> {
        let (document, permission) = self.document(caller, id).await?;
        let chosen = match version {
            None => None,
            Some(number) => Some(self.store.documents.get_version(id, number).await.map_err(|error| match error {
                StoreError::NotFound => rejected("version_not_found", format!("The document has no version {number}.")),
                other => other.into(),
            })?),
        };
        let (original, redacted, filename, content_type) = match &chosen {
            Some(v) => {
                (v.storage_path.clone(), v.redacted_path.clone(), v.original_filename.clone(), v.content_type.clone())
            }
            None => (
                document.storage_path.clone(),
                document.result.redacted_key.clone(),
                document.original_filename.clone(),
                document.content_type.clone(),
            ),
        };
        let restricted = permission < Permission::Write && redacted.is_some();
        let want_redacted = match variant {
            Variant::Default => restricted,
            Variant::Redacted => true,
            Variant::Original if restricted => {
                return Err(ServiceError::Forbidden("read-only collaborators may download only the redacted copy"));
            }
            Variant::Original => false,
        };
        let (key, filename, content_type) = if want_redacted {
            let key = redacted.ok_or_else(|| rejected("no_redacted_copy", "This document has no redacted copy."))?;
            let stem = filename.as_str().rsplit_once('.').map_or(filename.as_str(), |(stem, _)| stem);
            (key, Filename::sanitize(&format!("{stem}.redacted.txt")), "text/plain; charset=utf-8".to_owned())
        } else {
            (original, filename, content_type)
        };
        Ok(StoredFile { document, key, filename, content_type, redacted: want_redacted })
    }

    /// Opens a document (or one of its versions) for download.
    pub async fn download(
        &self,
        caller: &Principal,
        id: DocumentId,
        version: Option<u32>,
        variant: Variant,
        range: Option<Range<u64>>,
    ) -> ServiceResult<Download> {
        let file = self.resolve(caller, id, version, variant).await?;
        self.open(file.key, file.filename, file.content_type, range).await
    }

    pub(super) async fn open(
        &self,
        key: BlobKey,
        filename: Filename,
        content_type: String,
        range: Option<Range<u64>>,
    ) -> ServiceResult<Download> {
        let read = self.blobs.read(&key, range).await.map_err(blob_error)?;
        let etag = format!("\"{}\"", digest_of(key.as_str()));
        Ok(Download { filename, content_type, etag, read })
    }

    /// Where and how a document's current file is stored.
    pub async fn storage_metadata(&self, caller: &Principal, id: DocumentId) -> ServiceResult<StorageMetadata> {
        let (document, _) = self.document(caller, id).await?;
        let versions = self.all_versions(id).await?;
        Ok(StorageMetadata {
            document_id: id,
            storage_provider: document.storage_provider.clone(),
            storage_path: document.storage_path.as_str().to_owned(),
            file_size: document.file_size,
            file_hash: document.file_hash.clone(),
            content_type: document.content_type.clone(),
            versions: versions.len(),
            stored_bytes: versions.iter().map(|v| v.file_size).sum(),
            has_redacted_copy: document.result.redacted_key.is_some(),
            has_thumbnail: document.result.thumbnail_key.is_some(),
        })
    }

    /// Copies a document's current file into a notebook as a new upload: the
    /// copy goes through the same job (scan, processing) as any upload. Needs read
    /// access to the source (the redacted copy for read-only collaborators of a
    /// redacted document) and write access to the target.
    pub async fn copy(
        &self,
        caller: &Principal,
        id: DocumentId,
        target: NotebookId,
        origin: JobOrigin,
    ) -> ServiceResult<UploadJob> {
        let file = self.resolve(caller, id, None, Variant::Default).await?;
        let read = self.blobs.read(&file.key, None).await.map_err(blob_error)?;
        let job = self
            .start_upload(
                caller,
                UploadRequest {
                    notebook_id: target,
                    existing_document: None,
                    filename: file.filename,
                    change_summary: None,
                    callback_url: None,
                    expected_bytes: Some(read.size),
                    origin,
                },
            )
            .await?;
        tracing::info!(document_id = %id, job_id = %job.id, redacted = file.redacted, "copying a document");
        self.receive_upload(job, read.stream.map(|chunk| chunk.map_err(|error| BodyError::Broken(error.to_string()))))
            .await
    }

    pub async fn preview(&self, caller: &Principal, id: DocumentId) -> ServiceResult<Preview> {
        let (document, permission) = self.document(caller, id).await?;
        let redacted = restricted_to_redacted(&document, permission);
        let text = if redacted {
            match &document.result.redacted_key {
                Some(key) => {
                    Some(String::from_utf8_lossy(&self.blobs.get(key).await.map_err(blob_error)?).into_owned())
                }
                None => None,
            }
        } else {
            document.result.extracted_text.clone()
        };
        let (excerpt, excerpt_truncated) = match text {
            Some(text) => {
                let truncated = text.chars().count() > PREVIEW_CHARS;
                (Some(text.chars().take(PREVIEW_CHARS).collect()), truncated)
            }
            None => (None, false),
        };
        Ok(Preview {
            document_id: id,
            format: document.result.format.clone(),
            supported: document.result.supported,
            excerpt,
            excerpt_truncated,
            redacted,
            thumbnail_available: !redacted && document.result.thumbnail_key.is_some(),
            metadata: document.result.extracted_metadata.clone(),
        })
    }

    pub async fn thumbnail(&self, caller: &Principal, id: DocumentId) -> ServiceResult<Vec<u8>> {
        let (document, permission) = self.document(caller, id).await?;
        if restricted_to_redacted(&document, permission) {
            // A picture of the original may show what the redaction removed.
            return Err(ServiceError::Forbidden("read-only collaborators of a redacted document get no thumbnail"));
        }
        let key = document.result.thumbnail_key.ok_or(ServiceError::NotFound)?;
        self.blobs.get(&key).await.map_err(blob_error)
    }
}

fn digest_of(text: &str) -> String {
    crate::accounts::digest(text)[..32].to_owned()
}
