//! Row mapping: what queries return (each `…_RETURN` projection and the record it
//! deserialises into), the conversion into domain values, and the encoding of domain
//! values into parameters. A value the domain refuses is `StoreError::Corrupt`.

use std::str::FromStr;

use aether_domain::StoreError;
use aether_domain::access::Collaboration;
use aether_domain::access::{ChainLink, CollaborationStatus, Permission};
use aether_domain::activity::{ActivityEvent, AuditEntry};
use aether_domain::api_key::{ApiKey, ApiKeyName, ApiKeyScope};
use aether_domain::blob::BlobKey;
use aether_domain::compliance::ComplianceSettings;
use aether_domain::document::JobFailure;
use aether_domain::document::{Document, DocumentVersion, Filename, ProcessingResult, ProcessingStatus};
use aether_domain::events::OutboxEvent;
use aether_domain::id::{ApiKeyId, DocumentId, JobId, NotebookId, TokenFamilyId, UserId, VersionId};
use aether_domain::job::{CallbackUrl, JobOrigin, JobStatus, ReceivedFile, UploadJob};
use aether_domain::notebook::{Description, Notebook, NotebookName, NotebookStatus, Tag, Visibility};
use aether_domain::session::PresentedRefreshToken;
use aether_domain::store::StoreResult;
use aether_domain::time::{self, Timestamp};
use aether_domain::user::{Email, Role, User, UserStatus, Username};
use neo4rs::Row;
use serde::Deserialize;
use serde::de::DeserializeOwned;

pub(crate) fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("unreadable {what}"))
}

pub(crate) fn ts(text: &str) -> StoreResult<Timestamp> {
    time::parse(text).ok_or_else(|| corrupt("timestamp"))
}

fn opt_ts(text: Option<String>) -> StoreResult<Option<Timestamp>> {
    text.as_deref().map(ts).transpose()
}

pub(crate) fn unsigned(value: i64, what: &str) -> StoreResult<u64> {
    u64::try_from(value).map_err(|_| corrupt(what))
}

pub(crate) fn key(text: &str) -> StoreResult<BlobKey> {
    BlobKey::parse(text).map_err(|_| corrupt("blob key"))
}

fn opt_key(text: Option<String>) -> StoreResult<Option<BlobKey>> {
    text.as_deref().map(key).transpose()
}

fn json_map(text: Option<String>, what: &str) -> StoreResult<serde_json::Map<String, serde_json::Value>> {
    match text {
        Some(text) => serde_json::from_str(&text).map_err(|_| corrupt(what)),
        None => Ok(serde_json::Map::new()),
    }
}

fn user_id(text: &str, what: &str) -> StoreResult<UserId> {
    UserId::parse(text).map_err(|_| corrupt(what))
}

fn notebook_id(text: &str) -> StoreResult<NotebookId> {
    NotebookId::parse(text).map_err(|_| corrupt("notebook id"))
}

pub(crate) fn parse_notebook_ids(ids: &[String]) -> StoreResult<Vec<NotebookId>> {
    ids.iter().map(|id| notebook_id(id)).collect()
}

fn parse_uuid(text: &str) -> StoreResult<uuid::Uuid> {
    uuid::Uuid::try_parse(text).map_err(|_| corrupt("id"))
}

fn failure(code: Option<String>, message: Option<String>) -> Option<JobFailure> {
    code.map(|code| JobFailure { code, message: message.unwrap_or_default() })
}

/// One column of a row.
pub(crate) fn column<T: DeserializeOwned>(row: &Row, name: &str) -> StoreResult<T> {
    row.get(name).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// A row as a domain value, through the record `R` it deserialises into.
pub(crate) fn from_row<R: DeserializeOwned, T: TryFrom<R, Error = StoreError>>(row: &Row) -> StoreResult<T> {
    let record: R = row.to().map_err(|e| StoreError::Corrupt(e.to_string()))?;
    T::try_from(record)
}

/// Every row as a domain value.
pub(crate) fn from_rows<R: DeserializeOwned, T: TryFrom<R, Error = StoreError>>(rows: &[Row]) -> StoreResult<Vec<T>> {
    rows.iter().map(from_row::<R, T>).collect()
}

// --- Parameters -------------------------------------------------------------------------------

pub(crate) fn storage(at: &Timestamp) -> String {
    time::to_storage(at)
}

pub(crate) fn role_names(roles: &[Role]) -> Vec<String> {
    roles.iter().map(|role| role.as_str().to_owned()).collect()
}

pub(crate) fn tag_names(tags: &[Tag]) -> Vec<String> {
    tags.iter().map(|tag| tag.as_str().to_owned()).collect()
}

pub(crate) fn settings_json(settings: &ComplianceSettings) -> String {
    serde_json::to_string(settings).unwrap_or_else(|_| "{}".to_owned())
}

pub(crate) fn map_json(map: &serde_json::Map<String, serde_json::Value>) -> String {
    serde_json::Value::Object(map.clone()).to_string()
}

/// Sizes are `u64` in the domain and signed integers in Neo4j.
pub(crate) fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

// --- Users ------------------------------------------------------------------------------------

pub(crate) const USER_RETURN: &str = "RETURN u.id AS id, u.keycloak_id AS keycloak_id, u.username AS username, \
     u.email AS email, u.full_name AS full_name, u.avatar_url AS avatar_url, \
     coalesce(u.keycloak_roles, []) AS roles, coalesce(u.keycloak_groups, []) AS groups, \
     coalesce(u.keycloak_attributes, '{}') AS attributes, coalesce(u.preferences, '{}') AS preferences, \
     u.status AS status, toString(u.created_at) AS created_at, \
     toString(u.updated_at) AS updated_at, toString(u.last_login_at) AS last_login_at, \
     toString(u.last_sync_at) AS last_sync_at";

#[derive(Deserialize)]
pub(crate) struct UserRecord {
    id: String,
    keycloak_id: Option<String>,
    username: String,
    email: Option<String>,
    full_name: Option<String>,
    avatar_url: Option<String>,
    roles: Vec<String>,
    groups: Vec<String>,
    attributes: String,
    preferences: String,
    status: String,
    created_at: String,
    updated_at: String,
    last_login_at: Option<String>,
    last_sync_at: Option<String>,
}

impl TryFrom<UserRecord> for User {
    type Error = StoreError;

    fn try_from(record: UserRecord) -> StoreResult<User> {
        Ok(User {
            id: user_id(&record.id, "user id")?,
            keycloak_id: record.keycloak_id,
            username: Username::parse(&record.username).map_err(|_| corrupt("username"))?,
            email: record.email.as_deref().map(Email::parse).transpose().map_err(|_| corrupt("email"))?,
            full_name: record.full_name,
            avatar_url: record.avatar_url,
            roles: record
                .roles
                .iter()
                .map(|name| Role::from_str(name))
                .collect::<Result<_, _>>()
                .map_err(|_| corrupt("role"))?,
            groups: record.groups,
            attributes: serde_json::from_str(&record.attributes).map_err(|_| corrupt("attributes"))?,
            preferences: serde_json::from_str(&record.preferences).map_err(|_| corrupt("preferences"))?,
            status: UserStatus::parse(&record.status).map_err(|_| corrupt("user status"))?,
            created_at: ts(&record.created_at)?,
            updated_at: ts(&record.updated_at)?,
            last_login_at: opt_ts(record.last_login_at)?,
            last_sync_at: opt_ts(record.last_sync_at)?,
        })
    }
}

pub(crate) fn user_from_row(row: &Row) -> StoreResult<User> {
    from_row::<UserRecord, User>(row)
}

// --- Notebooks --------------------------------------------------------------------------------

// `WITH` first: the projection may follow an update clause, which Cypher requires
// to be separated from the OPTIONAL MATCH.
pub(crate) const NOTEBOOK_RETURN: &str = "WITH n, owner OPTIONAL MATCH (parent:Notebook)-[:PARENT_OF]->(n) \
     RETURN n.id AS id, owner.id AS owner_id, parent.id AS parent_id, n.name AS name, \
     n.description AS description, n.visibility AS visibility, n.status AS status, \
     coalesce(n.tags, []) AS tags, n.compliance_settings AS compliance_settings, \
     n.document_count AS document_count, n.total_size_bytes AS total_size_bytes, \
     toString(n.created_at) AS created_at, toString(n.updated_at) AS updated_at, \
     coalesce(n.version, 1) AS version, coalesce(n.is_template, false) AS is_template";

#[derive(Deserialize)]
pub(crate) struct NotebookRecord {
    id: String,
    owner_id: String,
    parent_id: Option<String>,
    name: String,
    description: Option<String>,
    visibility: String,
    status: String,
    tags: Vec<String>,
    compliance_settings: Option<String>,
    document_count: i64,
    total_size_bytes: i64,
    created_at: String,
    updated_at: String,
    version: i64,
    is_template: bool,
}

impl TryFrom<NotebookRecord> for Notebook {
    type Error = StoreError;

    fn try_from(record: NotebookRecord) -> StoreResult<Notebook> {
        Ok(Notebook {
            id: notebook_id(&record.id)?,
            owner_id: user_id(&record.owner_id, "owner id")?,
            parent_id: record
                .parent_id
                .as_deref()
                .map(NotebookId::parse)
                .transpose()
                .map_err(|_| corrupt("parent id"))?,
            name: NotebookName::parse(&record.name).map_err(|_| corrupt("notebook name"))?,
            description: record
                .description
                .as_deref()
                .map(Description::parse)
                .transpose()
                .map_err(|_| corrupt("description"))?,
            visibility: Visibility::parse(&record.visibility).map_err(|_| corrupt("visibility"))?,
            status: NotebookStatus::parse(&record.status).map_err(|_| corrupt("notebook status"))?,
            tags: Tag::parse_list(&record.tags).map_err(|_| corrupt("tags"))?,
            compliance_settings: match record.compliance_settings {
                Some(json) => serde_json::from_str(&json).map_err(|_| corrupt("compliance settings"))?,
                None => ComplianceSettings::default(),
            },
            document_count: unsigned(record.document_count, "document count")?,
            total_size_bytes: unsigned(record.total_size_bytes, "total size")?,
            created_at: ts(&record.created_at)?,
            updated_at: ts(&record.updated_at)?,
            version: unsigned(record.version, "version")?,
            is_template: record.is_template,
        })
    }
}

pub(crate) fn notebook_from_row(row: &Row) -> StoreResult<Notebook> {
    from_row::<NotebookRecord, Notebook>(row)
}

/// One notebook of a live subtree: its parent (`None` for the subtree's root) and its
/// distance from the root (the root is 0).
#[derive(Deserialize)]
pub(crate) struct SubtreeRecord {
    id: String,
    parent: Option<String>,
    pub(crate) level: i64,
}

impl SubtreeRecord {
    pub(crate) fn ids(&self) -> StoreResult<(NotebookId, Option<NotebookId>)> {
        let parent = self.parent.as_deref().map(notebook_id).transpose()?;
        Ok((notebook_id(&self.id)?, parent))
    }
}

#[derive(Deserialize)]
pub(crate) struct ChainRecord {
    notebook_id: String,
    owner_id: String,
    visibility: String,
    permission: Option<String>,
}

impl TryFrom<ChainRecord> for ChainLink {
    type Error = StoreError;

    fn try_from(record: ChainRecord) -> StoreResult<ChainLink> {
        Ok(ChainLink {
            notebook_id: notebook_id(&record.notebook_id)?,
            owner_id: user_id(&record.owner_id, "owner id")?,
            visibility: Visibility::parse(&record.visibility).map_err(|_| corrupt("visibility"))?,
            grant: record
                .permission
                .as_deref()
                .map(Permission::parse)
                .transpose()
                .map_err(|_| corrupt("permission"))?,
        })
    }
}

/// A tag and how many notebooks carry it.
#[derive(Deserialize)]
pub(crate) struct TagUsageRecord {
    name: String,
    usage: i64,
}

impl TryFrom<TagUsageRecord> for (Tag, u64) {
    type Error = StoreError;

    fn try_from(record: TagUsageRecord) -> StoreResult<(Tag, u64)> {
        Ok((Tag::parse(&record.name).map_err(|_| corrupt("tag"))?, unsigned(record.usage, "usage")?))
    }
}

// --- Collaborations ---------------------------------------------------------------------------

pub(crate) const COLLABORATION_RETURN: &str = "RETURN n.id AS notebook_id, u.id AS user_id, \
     c.permission AS permission, c.status AS status, c.granted_by AS granted_by, \
     toString(c.granted_at) AS granted_at, toString(c.accepted_at) AS accepted_at, \
     toString(c.updated_at) AS updated_at";

#[derive(Deserialize)]
pub(crate) struct CollaborationRecord {
    notebook_id: String,
    user_id: String,
    permission: String,
    status: String,
    granted_by: String,
    granted_at: String,
    accepted_at: Option<String>,
    updated_at: String,
}

impl TryFrom<CollaborationRecord> for Collaboration {
    type Error = StoreError;

    fn try_from(record: CollaborationRecord) -> StoreResult<Collaboration> {
        Ok(Collaboration {
            notebook_id: notebook_id(&record.notebook_id)?,
            user_id: user_id(&record.user_id, "user id")?,
            permission: Permission::parse(&record.permission).map_err(|_| corrupt("permission"))?,
            status: CollaborationStatus::parse(&record.status).map_err(|_| corrupt("collaboration status"))?,
            granted_by: user_id(&record.granted_by, "grantor id")?,
            granted_at: ts(&record.granted_at)?,
            accepted_at: opt_ts(record.accepted_at)?,
            updated_at: ts(&record.updated_at)?,
        })
    }
}

// --- Activity, audit, outbox ------------------------------------------------------------------

#[derive(Deserialize)]
pub(crate) struct ActivityRecord {
    id: String,
    event_type: String,
    actor_id: Option<String>,
    notebook_id: String,
    details: String,
    created_at: String,
}

impl TryFrom<ActivityRecord> for ActivityEvent {
    type Error = StoreError;

    fn try_from(record: ActivityRecord) -> StoreResult<ActivityEvent> {
        Ok(ActivityEvent {
            id: parse_uuid(&record.id)?,
            event_type: record.event_type,
            actor_id: record.actor_id.as_deref().map(|id| user_id(id, "user id")).transpose()?,
            notebook_id: notebook_id(&record.notebook_id)?,
            details: serde_json::from_str(&record.details).map_err(|_| corrupt("details"))?,
            created_at: ts(&record.created_at)?,
        })
    }
}

#[derive(Deserialize)]
pub(crate) struct AuditRecord {
    id: String,
    action: String,
    resource_type: String,
    resource_id: String,
    performed_by: Option<String>,
    details: String,
    ip_address: Option<String>,
    user_agent: Option<String>,
    created_at: String,
}

impl TryFrom<AuditRecord> for AuditEntry {
    type Error = StoreError;

    fn try_from(record: AuditRecord) -> StoreResult<AuditEntry> {
        Ok(AuditEntry {
            id: parse_uuid(&record.id)?,
            action: record.action,
            resource_type: record.resource_type,
            resource_id: record.resource_id,
            performed_by: record.performed_by.as_deref().map(|id| user_id(id, "user id")).transpose()?,
            details: serde_json::from_str(&record.details).map_err(|_| corrupt("details"))?,
            ip_address: record.ip_address,
            user_agent: record.user_agent,
            created_at: ts(&record.created_at)?,
        })
    }
}

#[derive(Deserialize)]
pub(crate) struct OutboxRecord {
    id: String,
    topic: String,
    key: String,
    payload: String,
    created_at: String,
}

impl TryFrom<OutboxRecord> for OutboxEvent {
    type Error = StoreError;

    fn try_from(record: OutboxRecord) -> StoreResult<OutboxEvent> {
        Ok(OutboxEvent {
            id: parse_uuid(&record.id)?,
            topic: record.topic,
            key: record.key,
            payload: serde_json::from_str(&record.payload).map_err(|_| corrupt("payload"))?,
            created_at: ts(&record.created_at)?,
        })
    }
}

// --- Sessions and API keys --------------------------------------------------------------------

/// A refresh token as presented, with its user's status.
#[derive(Deserialize)]
pub(crate) struct TokenRecord {
    user_id: String,
    user_status: String,
    family_id: String,
    expires_at: String,
    spent: bool,
    revoked: bool,
}

impl TryFrom<TokenRecord> for PresentedRefreshToken {
    type Error = StoreError;

    fn try_from(record: TokenRecord) -> StoreResult<PresentedRefreshToken> {
        Ok(PresentedRefreshToken {
            user_id: user_id(&record.user_id, "user id")?,
            family_id: TokenFamilyId::parse(&record.family_id).map_err(|_| corrupt("family id"))?,
            expires_at: ts(&record.expires_at)?,
            spent: record.spent,
            revoked: record.revoked,
            user_status: UserStatus::parse(&record.user_status).map_err(|_| corrupt("user status"))?,
        })
    }
}

pub(crate) const API_KEY_RETURN: &str = "RETURN k.id AS id, u.id AS user_id, k.name AS name, k.prefix AS prefix, \
     k.scopes AS scopes, toString(k.created_at) AS created_at, toString(k.expires_at) AS expires_at, \
     toString(k.last_used_at) AS last_used_at, toString(k.revoked_at) AS revoked_at";

#[derive(Deserialize)]
pub(crate) struct ApiKeyRecord {
    id: String,
    user_id: String,
    name: String,
    prefix: String,
    scopes: Vec<String>,
    created_at: String,
    expires_at: Option<String>,
    last_used_at: Option<String>,
    revoked_at: Option<String>,
}

impl TryFrom<ApiKeyRecord> for ApiKey {
    type Error = StoreError;

    fn try_from(record: ApiKeyRecord) -> StoreResult<ApiKey> {
        Ok(ApiKey {
            id: ApiKeyId::parse(&record.id).map_err(|_| corrupt("api key id"))?,
            user_id: user_id(&record.user_id, "user id")?,
            name: ApiKeyName::parse(&record.name).map_err(|_| corrupt("api key name"))?,
            prefix: record.prefix,
            scopes: record
                .scopes
                .iter()
                .map(|scope| ApiKeyScope::parse(scope))
                .collect::<Result<_, _>>()
                .map_err(|_| corrupt("api key scope"))?,
            created_at: ts(&record.created_at)?,
            expires_at: opt_ts(record.expires_at)?,
            last_used_at: opt_ts(record.last_used_at)?,
            revoked_at: opt_ts(record.revoked_at)?,
        })
    }
}

// --- Jobs, documents, versions ----------------------------------------------------------------

pub(crate) const JOB_RETURN: &str = "RETURN j.id AS id, j.notebook_id AS notebook_id, \
     j.uploaded_by AS uploaded_by, j.document_id AS document_id, j.version_id AS version_id, \
     j.new_version AS new_version, j.filename AS filename, j.change_summary AS change_summary, \
     j.callback_url AS callback_url, j.status AS status, j.stage AS stage, \
     j.bytes_received AS bytes_received, j.expected_bytes AS expected_bytes, j.file_size AS file_size, \
     j.file_hash AS file_hash, j.content_type AS content_type, j.blob_key AS blob_key, \
     j.storage_provider AS storage_provider, j.failure_code AS failure_code, \
     j.failure_message AS failure_message, j.attempts AS attempts, toString(j.lease_until) AS lease_until, \
     j.external_id AS external_id, j.origin_request_id AS origin_request_id, \
     j.origin_traceparent AS origin_traceparent, toString(j.created_at) AS created_at, \
     toString(j.updated_at) AS updated_at, toString(j.finished_at) AS finished_at";

#[derive(Deserialize)]
pub(crate) struct JobRecord {
    id: String,
    notebook_id: String,
    uploaded_by: String,
    document_id: String,
    version_id: String,
    new_version: bool,
    filename: String,
    change_summary: Option<String>,
    callback_url: Option<String>,
    status: String,
    stage: String,
    bytes_received: i64,
    expected_bytes: Option<i64>,
    file_size: Option<i64>,
    file_hash: Option<String>,
    content_type: Option<String>,
    blob_key: String,
    storage_provider: String,
    failure_code: Option<String>,
    failure_message: Option<String>,
    attempts: i64,
    lease_until: Option<String>,
    external_id: Option<String>,
    origin_request_id: Option<String>,
    origin_traceparent: Option<String>,
    created_at: String,
    updated_at: String,
    finished_at: Option<String>,
}

impl TryFrom<JobRecord> for UploadJob {
    type Error = StoreError;

    fn try_from(r: JobRecord) -> StoreResult<UploadJob> {
        let file = match (r.file_size, r.file_hash, r.content_type) {
            (Some(size), Some(sha256), Some(content_type)) => {
                Some(ReceivedFile { size: unsigned(size, "file size")?, sha256, content_type })
            }
            _ => None,
        };
        Ok(UploadJob {
            id: JobId::parse(&r.id).map_err(|_| corrupt("job id"))?,
            notebook_id: notebook_id(&r.notebook_id)?,
            uploaded_by: user_id(&r.uploaded_by, "user id")?,
            document_id: DocumentId::parse(&r.document_id).map_err(|_| corrupt("document id"))?,
            version_id: VersionId::parse(&r.version_id).map_err(|_| corrupt("version id"))?,
            new_version: r.new_version,
            filename: Filename::sanitize(&r.filename),
            change_summary: r.change_summary,
            callback_url: r
                .callback_url
                .as_deref()
                .map(CallbackUrl::parse)
                .transpose()
                .map_err(|_| corrupt("callback"))?,
            status: JobStatus::parse(&r.status).map_err(|_| corrupt("job status"))?,
            stage: r.stage,
            bytes_received: unsigned(r.bytes_received, "bytes received")?,
            expected_bytes: r.expected_bytes.map(|v| unsigned(v, "expected bytes")).transpose()?,
            file,
            blob_key: key(&r.blob_key)?,
            storage_provider: r.storage_provider,
            failure: failure(r.failure_code, r.failure_message),
            attempts: u32::try_from(r.attempts).map_err(|_| corrupt("attempts"))?,
            lease_until: opt_ts(r.lease_until)?,
            external_id: r.external_id,
            origin: JobOrigin { request_id: r.origin_request_id, traceparent: r.origin_traceparent },
            created_at: ts(&r.created_at)?,
            updated_at: ts(&r.updated_at)?,
            finished_at: opt_ts(r.finished_at)?,
        })
    }
}

pub(crate) fn job_from_row(row: &Row) -> StoreResult<UploadJob> {
    from_row::<JobRecord, UploadJob>(row)
}

pub(crate) const DOCUMENT_RETURN: &str = "RETURN d.extracted_text AS extracted_text, \
     d.id AS id, n.id AS notebook_id, d.original_filename AS original_filename, \
     d.description AS description, coalesce(d.tags, []) AS tags, d.content_type AS content_type, \
     d.file_size AS file_size, d.file_hash AS file_hash, d.storage_provider AS storage_provider, \
     d.storage_path AS storage_path, d.processing_status AS processing_status, d.format AS format, \
     d.supported AS supported, d.extracted_metadata AS extracted_metadata, \
     d.processing_metadata AS processing_metadata, d.compliance_scan_results AS compliance_scan_results, \
     d.pii_detected AS pii_detected, d.redaction_applied AS redaction_applied, d.redacted_path AS redacted_path, \
     d.thumbnail_path AS thumbnail_path, d.processing_error_code AS processing_error_code, \
     d.processing_error AS processing_error, d.current_version AS current_version, d.uploaded_by AS uploaded_by, \
     toString(d.uploaded_at) AS uploaded_at, toString(d.processed_at) AS processed_at, \
     toString(d.updated_at) AS updated_at";

/// [`DOCUMENT_RETURN`] for listings, which never load the extracted text (up to 2 M
/// characters a document).
pub(crate) fn listed(document_return: &str) -> String {
    document_return.replacen("RETURN d.extracted_text AS extracted_text,", "RETURN null AS extracted_text,", 1)
}

#[derive(Deserialize)]
pub(crate) struct DocumentRecord {
    id: String,
    notebook_id: String,
    original_filename: String,
    description: Option<String>,
    tags: Vec<String>,
    content_type: String,
    file_size: i64,
    file_hash: String,
    storage_provider: String,
    storage_path: String,
    processing_status: String,
    format: String,
    supported: bool,
    extracted_text: Option<String>,
    extracted_metadata: Option<String>,
    processing_metadata: Option<String>,
    compliance_scan_results: Option<String>,
    pii_detected: bool,
    redaction_applied: bool,
    redacted_path: Option<String>,
    thumbnail_path: Option<String>,
    processing_error_code: Option<String>,
    processing_error: Option<String>,
    current_version: i64,
    uploaded_by: String,
    uploaded_at: String,
    processed_at: Option<String>,
    updated_at: String,
}

impl TryFrom<DocumentRecord> for Document {
    type Error = StoreError;

    fn try_from(r: DocumentRecord) -> StoreResult<Document> {
        Ok(Document {
            id: DocumentId::parse(&r.id).map_err(|_| corrupt("document id"))?,
            notebook_id: notebook_id(&r.notebook_id)?,
            original_filename: Filename::sanitize(&r.original_filename),
            description: r
                .description
                .as_deref()
                .map(Description::parse)
                .transpose()
                .map_err(|_| corrupt("description"))?,
            tags: Tag::parse_list(&r.tags).map_err(|_| corrupt("tags"))?,
            content_type: r.content_type.clone(),
            file_size: unsigned(r.file_size, "file size")?,
            file_hash: r.file_hash,
            storage_provider: r.storage_provider,
            storage_path: key(&r.storage_path)?,
            processing_status: ProcessingStatus::parse(&r.processing_status)
                .map_err(|_| corrupt("processing status"))?,
            result: ProcessingResult {
                content_type: r.content_type,
                format: r.format,
                supported: r.supported,
                extracted_text: r.extracted_text,
                extracted_metadata: json_map(r.extracted_metadata, "extracted metadata")?,
                compliance_scan_results: json_map(r.compliance_scan_results, "compliance scan results")?,
                pii_detected: r.pii_detected,
                redaction_applied: r.redaction_applied,
                redacted_key: opt_key(r.redacted_path)?,
                redacted_text: None,
                thumbnail_key: opt_key(r.thumbnail_path)?,
                error: failure(r.processing_error_code, r.processing_error),
                processing_metadata: json_map(r.processing_metadata, "processing metadata")?,
            },
            current_version: u32::try_from(r.current_version).map_err(|_| corrupt("version"))?,
            uploaded_by: user_id(&r.uploaded_by, "user id")?,
            uploaded_at: ts(&r.uploaded_at)?,
            processed_at: opt_ts(r.processed_at)?,
            updated_at: ts(&r.updated_at)?,
        })
    }
}

pub(crate) fn document_from_row(row: &Row) -> StoreResult<Document> {
    from_row::<DocumentRecord, Document>(row)
}

pub(crate) const VERSION_RETURN: &str = "RETURN v.id AS id, d.id AS document_id, v.version_number AS version_number, \
     v.original_filename AS original_filename, v.content_type AS content_type, v.storage_path AS storage_path, \
     v.redacted_path AS redacted_path, v.thumbnail_path AS thumbnail_path, v.file_size AS file_size, \
     v.file_hash AS file_hash, v.change_summary AS change_summary, v.created_by AS created_by, \
     toString(v.created_at) AS created_at";

#[derive(Deserialize)]
pub(crate) struct VersionRecord {
    id: String,
    document_id: String,
    version_number: i64,
    original_filename: String,
    content_type: String,
    storage_path: String,
    redacted_path: Option<String>,
    thumbnail_path: Option<String>,
    file_size: i64,
    file_hash: String,
    change_summary: Option<String>,
    created_by: String,
    created_at: String,
}

impl TryFrom<VersionRecord> for DocumentVersion {
    type Error = StoreError;

    fn try_from(r: VersionRecord) -> StoreResult<DocumentVersion> {
        Ok(DocumentVersion {
            id: VersionId::parse(&r.id).map_err(|_| corrupt("version id"))?,
            document_id: DocumentId::parse(&r.document_id).map_err(|_| corrupt("document id"))?,
            version_number: u32::try_from(r.version_number).map_err(|_| corrupt("version number"))?,
            original_filename: Filename::sanitize(&r.original_filename),
            content_type: r.content_type,
            storage_path: key(&r.storage_path)?,
            redacted_path: opt_key(r.redacted_path)?,
            thumbnail_path: opt_key(r.thumbnail_path)?,
            file_size: unsigned(r.file_size, "file size")?,
            file_hash: r.file_hash,
            change_summary: r.change_summary,
            created_by: user_id(&r.created_by, "user id")?,
            created_at: ts(&r.created_at)?,
        })
    }
}
