//! Documents and their versions: file names, what processing found, the blobs a
//! version keeps, metadata patches, and the events of a stored document. The jobs
//! that bring documents in are in `crate::job`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ValidationError;
use crate::activity::ChangeRecord;
use crate::blob::BlobKey;
use crate::events::{NewEvent, topics};
use crate::id::{DocumentId, NotebookId, UserId, VersionId};
use crate::notebook::{Description, Tag};
use crate::time::Timestamp;

/// A file name as shown to users and put in `Content-Disposition`: the last path
/// segment of what the client sent, without control characters, at most 255 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Filename(String);

impl Filename {
    pub const MAX_BYTES: usize = 255;

    /// Makes a safe name from whatever a client sent: `../../etc/passwd` becomes
    /// `passwd`, `C:\x\report.pdf` becomes `report.pdf`, an empty name `upload`.
    pub fn sanitize(raw: &str) -> Self {
        let last = raw.rsplit(['/', '\\']).next().unwrap_or_default();
        let cleaned: String = last.chars().filter(|c| !c.is_control()).collect();
        let trimmed = cleaned.trim().trim_start_matches('.').trim();
        let mut name = String::new();
        for c in trimmed.chars() {
            if name.len() + c.len_utf8() > Self::MAX_BYTES {
                break;
            }
            name.push(c);
        }
        if name.is_empty() { Self("upload".to_owned()) } else { Self(name) }
    }

    /// Validates a name a client sets explicitly (renaming a document).
    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        let invalid = || {
            ValidationError::new(
                "original_filename",
                "must be a plain file name: no path separators, control characters or leading dots, at most 255 bytes",
            )
        };
        // Bounded as sent, before trimming: the OpenAPI document's `maxLength` counts the
        // whole text, surrounding white space included (schemathesis sent 14 blanks and
        // a 244-character name).
        if text.chars().count() > 255 {
            return Err(invalid());
        }
        let sanitized = Self::sanitize(text);
        if text.trim().is_empty() || sanitized.0 != text.trim() {
            return Err(invalid());
        }
        Ok(sanitized)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The extension in lower case, if any.
    pub fn extension(&self) -> Option<String> {
        self.0.rsplit_once('.').map(|(_, ext)| ext.to_ascii_lowercase()).filter(|ext| !ext.is_empty())
    }
}

impl fmt::Display for Filename {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub const REDACTED_NAME: &str = "redacted.txt";

pub const THUMBNAIL_NAME: &str = "thumbnail.png";

/// `documents/{document}/{version}/original` has siblings `…/{version}/{name}`.
pub fn derived_key(original: &BlobKey, name: &str) -> BlobKey {
    let base = original.as_str().rsplit_once('/').map_or("", |(dir, _)| dir);
    let text = if base.is_empty() { name.to_owned() } else { format!("{base}/{name}") };
    BlobKey::parse(&text).unwrap_or_else(|_| original.clone())
}

/// The key of a new version's original bytes.
pub fn original_key(document: DocumentId, version: VersionId) -> BlobKey {
    BlobKey::parse(&format!("documents/{document}/{version}/original"))
        .expect("hyphenated UUIDs are valid key segments")
}

/// A document's processing state (the design's `processing_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessingStatus {
    Pending,
    Processing,
    Completed,
    /// Stored, but extraction failed (malformed file, limits); the reason is kept.
    Failed,
}

impl ProcessingStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Processing => "processing",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        [Self::Pending, Self::Processing, Self::Completed, Self::Failed]
            .into_iter()
            .find(|status| status.as_str() == text)
            .ok_or_else(|| ValidationError::new("processing_status", "unknown processing status"))
    }
}

/// What processing found in a version's bytes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProcessingResult {
    /// Sniffed from the whole file; the document's `content_type`.
    pub content_type: String,
    /// `pdf`, `docx`, … or `unsupported` for types stored without extraction.
    pub format: String,
    pub supported: bool,
    pub extracted_text: Option<String>,
    pub extracted_metadata: serde_json::Map<String, serde_json::Value>,
    /// `{"pii": {"email": 2, …}, "scanned_at": …, "redaction_mode": …}`.
    pub compliance_scan_results: serde_json::Map<String, serde_json::Value>,
    pub pii_detected: bool,
    pub redaction_applied: bool,
    pub redacted_key: Option<BlobKey>,
    /// The redacted text when redaction applied: what read-only collaborators may see,
    /// and so what search indexes. Kept in the blob at `redacted_key`; documents read
    /// back from a store leave it `None`.
    pub redacted_text: Option<String>,
    pub thumbnail_key: Option<BlobKey>,
    /// Set when extraction failed; the document is stored anyway.
    pub error: Option<JobFailure>,
    pub processing_metadata: serde_json::Map<String, serde_json::Value>,
}

impl ProcessingResult {
    /// What a document's `search_text` holds: its file name and the text every reader of
    /// it may see, so the redacted text of a redacted document and never its original.
    pub fn search_text(&self, filename: &Filename) -> String {
        format!("{filename} {}", self.readers_text())
    }

    /// The text every reader of the document may see: the redacted text when
    /// redaction applied, else the extracted text. What search chunks.
    pub fn readers_text(&self) -> &str {
        self.redacted_text.as_deref().or(self.extracted_text.as_deref()).unwrap_or_default()
    }
}

/// The readers' text back from a stored `search_text` written under `filename` (the
/// file name of the version it was written for): the inverse of
/// [`ProcessingResult::search_text`], for rebuilding the search index.
pub fn readers_text_of<'a>(search_text: &'a str, filename: &str) -> &'a str {
    search_text.strip_prefix(filename).and_then(|rest| rest.strip_prefix(' ')).unwrap_or(search_text)
}

/// A `(:Document)`: the current version's properties plus user-edited metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub id: DocumentId,
    pub notebook_id: NotebookId,
    pub original_filename: Filename,
    pub description: Option<Description>,
    pub tags: Vec<Tag>,
    pub content_type: String,
    pub file_size: u64,
    pub file_hash: String,
    pub storage_provider: String,
    pub storage_path: BlobKey,
    pub processing_status: ProcessingStatus,
    pub result: ProcessingResult,
    pub current_version: u32,
    pub uploaded_by: UserId,
    pub uploaded_at: Timestamp,
    pub processed_at: Option<Timestamp>,
    pub updated_at: Timestamp,
}

/// A `(:DocumentVersion)`, linked from its document by `VERSION_OF`.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentVersion {
    pub id: VersionId,
    pub document_id: DocumentId,
    pub version_number: u32,
    pub original_filename: Filename,
    pub content_type: String,
    pub storage_path: BlobKey,
    pub redacted_path: Option<BlobKey>,
    pub thumbnail_path: Option<BlobKey>,
    pub file_size: u64,
    pub file_hash: String,
    pub change_summary: Option<String>,
    pub created_by: UserId,
    pub created_at: Timestamp,
}

impl Document {
    /// Applies a metadata patch in memory.
    pub fn apply_patch(&mut self, patch: DocumentPatch) {
        if let Some(name) = patch.original_filename {
            self.original_filename = name;
        }
        if let Some(description) = patch.description {
            self.description = description;
        }
        if let Some(tags) = patch.tags {
            self.tags = tags;
        }
    }
}

impl DocumentVersion {
    /// Every blob of the version: its original bytes, redacted text and thumbnail.
    pub fn blob_keys(&self) -> impl Iterator<Item = BlobKey> + '_ {
        [Some(&self.storage_path), self.redacted_path.as_ref(), self.thumbnail_path.as_ref()]
            .into_iter()
            .flatten()
            .cloned()
    }
}

/// What deleting a document with these versions frees: every blob to queue for
/// deletion, and the bytes its notebook's `total_size_bytes` loses.
pub fn freed_by_deletion(versions: &[DocumentVersion]) -> (Vec<BlobKey>, u64) {
    let keys = versions.iter().flat_map(DocumentVersion::blob_keys).collect();
    (keys, versions.iter().map(|version| version.file_size).sum())
}

/// A change to a document's user-edited metadata; `None` leaves a field alone.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DocumentPatch {
    pub original_filename: Option<Filename>,
    /// `Some(None)` clears the description.
    pub description: Option<Option<Description>>,
    pub tags: Option<Vec<Tag>>,
}

impl DocumentPatch {
    pub fn is_empty(&self) -> bool {
        self.original_filename.is_none() && self.description.is_none() && self.tags.is_none()
    }
}

/// A change summary for a new version: at most 1 000 characters.
pub fn parse_change_summary(text: &str) -> Result<Option<String>, ValidationError> {
    // Lengths count the text as sent, as the OpenAPI document's `maxLength` does.
    let too_long = text.chars().count() > 1_000;
    let text = text.trim();
    if too_long || text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(ValidationError::new(
            "change_summary",
            "must be at most 1000 characters, without control characters",
        ));
    }
    Ok((!text.is_empty()).then(|| text.to_owned()))
}

/// A blob no longer referenced, waiting to be deleted from object storage.
#[derive(Debug, Clone, PartialEq)]
pub struct BlobDeletion {
    pub id: uuid::Uuid,
    pub key: BlobKey,
    pub queued_at: Timestamp,
}

/// `aether.compliance.scanned`: what the personal-data scan of a version found.
pub fn compliance_event(document: &Document) -> NewEvent {
    NewEvent {
        topic: topics::COMPLIANCE_SCANNED,
        key: document.notebook_id.to_string(),
        payload: serde_json::json!({
            "document_id": document.id.to_string(),
            "notebook_id": document.notebook_id.to_string(),
            "version": document.current_version,
            "pii_detected": document.result.pii_detected,
            "redaction_applied": document.result.redaction_applied,
            "results": document.result.compliance_scan_results,
        }),
    }
}

/// `attachment` with an ASCII fallback and the exact name in RFC 5987 form: the
/// `Content-Disposition` of a download, sent by the API and asked of object storage
/// for the URLs it presigns.
pub fn content_disposition(filename: &str) -> String {
    let fallback: String = filename
        .chars()
        .map(|c| if (c.is_ascii_graphic() && c != '"' && c != '\\') || c == ' ' { c } else { '_' })
        .collect();
    let encoded: String = filename
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

/// The records of document changes, written with them (see `crate::activity`).
impl ChangeRecord {
    /// `document`'s metadata is changed by `patch` (a rename names the new name).
    pub fn document_updated(document: &Document, patch: &DocumentPatch) -> Self {
        let record =
            Self::new(document.notebook_id, "document_updated", "update").with("document_id", document.id.to_string());
        match &patch.original_filename {
            Some(name) => record.with("original_filename", name.as_str()),
            None => record,
        }
    }

    pub fn document_deleted(document: &Document) -> Self {
        Self::new(document.notebook_id, "document_deleted", "delete")
            .with("document_id", document.id.to_string())
            .with("original_filename", document.original_filename.as_str())
    }
}

/// Why a job failed, for clients (`code`, stable) and people (`message`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobFailure {
    pub code: String,
    pub message: String,
}

impl JobFailure {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self { code: code.to_owned(), message: message.into() }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::job::JobStatus;
    use crate::job::tests::job;

    #[test]
    fn search_text_holds_what_readers_may_see() {
        let name = Filename::parse("notes.txt").expect("name");
        let mut result =
            ProcessingResult { extracted_text: Some("mail jane@example.com".into()), ..Default::default() };
        assert_eq!(result.search_text(&name), "notes.txt mail jane@example.com");
        result.redacted_text = Some("mail [REDACTED:EMAIL]".into());
        assert_eq!(result.search_text(&name), "notes.txt mail [REDACTED:EMAIL]");
    }

    #[test]
    fn filenames_are_sanitized() {
        assert_eq!(Filename::sanitize("../../etc/passwd").as_str(), "passwd");
        assert_eq!(Filename::sanitize("C:\\Users\\x\\report.pdf").as_str(), "report.pdf");
        assert_eq!(Filename::sanitize("..").as_str(), "upload");
        assert_eq!(Filename::sanitize("").as_str(), "upload");
        assert_eq!(Filename::sanitize(".bashrc").as_str(), "bashrc");
        assert_eq!(Filename::sanitize("a\u{0}b\r\n.txt").as_str(), "ab.txt");
        assert_eq!(Filename::sanitize(&"é".repeat(300)).as_str().len(), 254);
        assert_eq!(Filename::sanitize("résumé final.docx").extension().as_deref(), Some("docx"));
    }

    #[test]
    fn explicit_names_must_already_be_clean() {
        assert!(Filename::parse("notes.md").is_ok());
        for bad in ["", "a/b.txt", "..", "x\ty", ".hidden"] {
            assert!(Filename::parse(bad).is_err(), "{bad}");
        }
        let name = format!("Q{}", "*".repeat(240));
        assert!(Filename::parse(&name).is_ok());
        assert!(Filename::parse(&format!("{}{name}", " ".repeat(15))).is_err(), "over 255 characters as sent");
    }

    #[test]
    fn derived_keys_sit_beside_the_original() {
        let key = original_key(DocumentId::new(), VersionId::new());
        assert!(key.as_str().ends_with("/original"));
        let redacted = derived_key(&key, REDACTED_NAME);
        assert_eq!(redacted.as_str().rsplit_once('/').map(|(d, _)| d), key.as_str().rsplit_once('/').map(|(d, _)| d));
        assert!(redacted.as_str().ends_with("/redacted.txt"));
    }

    pub(crate) fn document(notebook_id: NotebookId) -> Document {
        let at = crate::time::now();
        Document {
            id: DocumentId::new(),
            notebook_id,
            original_filename: Filename::sanitize("notes.txt"),
            description: None,
            tags: Vec::new(),
            content_type: "text/plain".into(),
            file_size: 5,
            file_hash: "ab".into(),
            storage_provider: "fs".into(),
            storage_path: original_key(DocumentId::new(), VersionId::new()),
            processing_status: ProcessingStatus::Completed,
            result: ProcessingResult::default(),
            current_version: 2,
            uploaded_by: UserId::new(),
            uploaded_at: at,
            processed_at: None,
            updated_at: at,
        }
    }

    #[test]
    fn deleting_frees_every_blob_of_every_version() {
        let version = |size: u64, derived: bool| {
            let key = original_key(DocumentId::new(), VersionId::new());
            DocumentVersion {
                id: VersionId::new(),
                document_id: DocumentId::new(),
                version_number: 1,
                original_filename: Filename::sanitize("a.txt"),
                content_type: "text/plain".into(),
                redacted_path: derived.then(|| derived_key(&key, REDACTED_NAME)),
                thumbnail_path: derived.then(|| derived_key(&key, THUMBNAIL_NAME)),
                storage_path: key,
                file_size: size,
                file_hash: "ab".into(),
                change_summary: None,
                created_by: UserId::new(),
                created_at: crate::time::now(),
            }
        };
        let (keys, bytes) = freed_by_deletion(&[version(3, true), version(4, false)]);
        assert_eq!((keys.len(), bytes), (4, 7));
    }

    #[test]
    fn a_metadata_patch_changes_what_it_sets() {
        let mut document = document(NotebookId::new());
        let patch = DocumentPatch { original_filename: Some(Filename::sanitize("b.txt")), ..Default::default() };
        let record = ChangeRecord::document_updated(&document, &patch);
        assert_eq!(record.details["original_filename"], "b.txt");
        document.apply_patch(patch);
        assert_eq!((document.original_filename.as_str(), document.description.clone()), ("b.txt", None));
        let job = job(JobStatus::Processing, true);
        let added = ChangeRecord::document_added(&job, &document);
        assert_eq!(
            (added.event_type, added.event.map(|e| e.topic)),
            ("document_version_added", Some(topics::DOCUMENTS_PROCESSED))
        );
    }
}
