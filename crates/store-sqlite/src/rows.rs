//! Row mapping: the rows queries read (`sqlx::FromRow`), their conversion into domain
//! values, and the encoding of domain values into columns. A value the domain refuses
//! is `StoreError::Corrupt`: a bug or a manual edit, never a client's mistake.

use std::str::FromStr;

use aether_domain::StoreError;
use aether_domain::access::Collaboration;
use aether_domain::access::{ChainLink, CollaborationStatus, Permission};
use aether_domain::activity::{ActivityEvent, AuditEntry};
use aether_domain::api_key::{ApiKey, ApiKeyName, ApiKeyScope};
use aether_domain::blob::BlobKey;
use aether_domain::compliance::ComplianceSettings;
use aether_domain::document::JobFailure;
use aether_domain::document::{BlobDeletion, Document, DocumentVersion, Filename, ProcessingResult, ProcessingStatus};
use aether_domain::events::OutboxEvent;
use aether_domain::id::{ApiKeyId, DocumentId, JobId, NotebookId, TokenFamilyId, UserId, VersionId};
use aether_domain::job::{CallbackUrl, JobOrigin, JobStatus, ReceivedFile, UploadJob};
use aether_domain::notebook::{Description, Notebook, NotebookName, NotebookStatus, Tag, Visibility};
use aether_domain::page::SortOrder;
use aether_domain::session::PresentedRefreshToken;
use aether_domain::store::StoreResult;
use aether_domain::time::{self, Timestamp};
use aether_domain::user::{Email, LocalCredentials, Role, User, UserStatus, Username};

// Macros rather than consts, so that `concat!` can build static query strings
// (sqlx refuses strings built at run time, to keep injection out). Each selects the
// columns of the row type below it.

/// The columns of [`UserRow`].
macro_rules! user_columns {
    () => {
        "id, keycloak_id, username, email, full_name, avatar_url, keycloak_roles, keycloak_groups, \
         keycloak_attributes, preferences, status, created_at, updated_at, last_login_at, last_sync_at"
    };
}

/// The columns of [`NotebookRow`], a notebook with its owner and parent.
macro_rules! notebook_select {
    () => {
        "SELECT n.id, o.user_id AS owner_id, po.parent_id, n.name, n.description, n.visibility, \
         n.status, n.tags, n.compliance_settings, n.document_count, n.total_size_bytes, n.created_at, \
         n.updated_at, n.version, n.is_template FROM notebooks n JOIN owns o ON o.notebook_id = n.id \
         LEFT JOIN parent_of po ON po.child_id = n.id"
    };
}

/// A listing's statement in each order, both written out so that SQLite walks the
/// index in the order asked for (an `ORDER BY CASE …` sorts every matching row).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ordered {
    pub(crate) newest_first: &'static str,
    pub(crate) oldest_first: &'static str,
}

impl Ordered {
    pub(crate) fn get(self, order: SortOrder) -> &'static str {
        match order {
            SortOrder::NewestFirst => self.newest_first,
            SortOrder::OldestFirst => self.oldest_first,
        }
    }
}

/// [`Ordered`] statements that walk `$key` from the bound `?6` (see
/// `PageRequest::bound`) and read `?7` rows; the parts before are the statement up
/// to its last filter.
macro_rules! both_orders {
    ($key:literal; $($part:expr),+ $(,)?) => {
        $crate::rows::Ordered {
            newest_first: concat!($($part,)+ " AND ", $key, " < ?6 ORDER BY ", $key, " DESC LIMIT ?7"),
            oldest_first: concat!($($part,)+ " AND ", $key, " > ?6 ORDER BY ", $key, " LIMIT ?7"),
        }
    };
}

/// The columns of [`ApiKeyRow`].
macro_rules! api_key_columns {
    () => {
        "id, user_id, name, prefix, scopes, created_at, expires_at, last_used_at, revoked_at"
    };
}

pub(crate) fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("unreadable {what}"))
}

pub(crate) fn ts(text: &str) -> StoreResult<Timestamp> {
    time::parse(text).ok_or_else(|| corrupt("timestamp"))
}

fn opt_ts(text: Option<String>) -> StoreResult<Option<Timestamp>> {
    text.as_deref().map(ts).transpose()
}

pub(crate) fn json<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|_| corrupt(what))
}

pub(crate) fn unsigned(value: i64, what: &str) -> StoreResult<u64> {
    u64::try_from(value).map_err(|_| corrupt(what))
}

fn key(text: &str) -> StoreResult<BlobKey> {
    BlobKey::parse(text).map_err(|_| corrupt("blob key"))
}

fn opt_key(text: Option<String>) -> StoreResult<Option<BlobKey>> {
    text.as_deref().map(key).transpose()
}

pub(crate) fn user_id(text: &str, what: &str) -> StoreResult<UserId> {
    UserId::parse(text).map_err(|_| corrupt(what))
}

fn notebook_id(text: &str) -> StoreResult<NotebookId> {
    NotebookId::parse(text).map_err(|_| corrupt("notebook id"))
}

fn failure(code: Option<String>, message: Option<String>) -> Option<JobFailure> {
    code.map(|code| JobFailure { code, message: message.unwrap_or_default() })
}

pub(crate) fn count(value: i64) -> StoreResult<u64> {
    unsigned(value, "count")
}

pub(crate) fn parse_notebook_ids(ids: &[String]) -> StoreResult<Vec<NotebookId>> {
    ids.iter().map(|id| notebook_id(id)).collect()
}

// --- Encoding ---------------------------------------------------------------------------------

pub(crate) fn roles_json(roles: &[Role]) -> String {
    serde_json::Value::from(roles.iter().map(|role| role.as_str()).collect::<Vec<_>>()).to_string()
}

pub(crate) fn tags_json(tags: &[Tag]) -> String {
    serde_json::Value::from(tags.iter().map(Tag::as_str).collect::<Vec<_>>()).to_string()
}

pub(crate) fn settings_json(settings: &ComplianceSettings) -> String {
    serde_json::to_string(settings).unwrap_or_else(|_| "{}".to_owned())
}

pub(crate) fn map_json(map: &serde_json::Map<String, serde_json::Value>) -> String {
    serde_json::Value::Object(map.clone()).to_string()
}

/// Sizes are `u64` in the domain and `INTEGER` (signed) in SQLite.
pub(crate) fn size(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

// --- Users ------------------------------------------------------------------------------------

#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    id: String,
    keycloak_id: Option<String>,
    username: String,
    email: Option<String>,
    full_name: Option<String>,
    avatar_url: Option<String>,
    keycloak_roles: String,
    keycloak_groups: String,
    keycloak_attributes: String,
    preferences: String,
    status: String,
    created_at: String,
    updated_at: String,
    last_login_at: Option<String>,
    last_sync_at: Option<String>,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;

    fn try_from(row: UserRow) -> StoreResult<User> {
        let role_names: Vec<String> = json(&row.keycloak_roles, "roles")?;
        Ok(User {
            id: user_id(&row.id, "user id")?,
            keycloak_id: row.keycloak_id,
            username: Username::parse(&row.username).map_err(|_| corrupt("username"))?,
            email: row.email.as_deref().map(Email::parse).transpose().map_err(|_| corrupt("email"))?,
            full_name: row.full_name,
            avatar_url: row.avatar_url,
            roles: role_names
                .iter()
                .map(|name| Role::from_str(name))
                .collect::<Result<_, _>>()
                .map_err(|_| corrupt("role"))?,
            groups: json(&row.keycloak_groups, "keycloak_groups")?,
            attributes: json(&row.keycloak_attributes, "keycloak_attributes")?,
            preferences: json(&row.preferences, "preferences")?,
            status: UserStatus::parse(&row.status).map_err(|_| corrupt("user status"))?,
            created_at: ts(&row.created_at)?,
            updated_at: ts(&row.updated_at)?,
            last_login_at: opt_ts(row.last_login_at)?,
            last_sync_at: opt_ts(row.last_sync_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct CredentialsRow {
    #[sqlx(flatten)]
    user: UserRow,
    password_hash: String,
}

impl TryFrom<CredentialsRow> for LocalCredentials {
    type Error = StoreError;

    fn try_from(row: CredentialsRow) -> StoreResult<LocalCredentials> {
        Ok(LocalCredentials { user: row.user.try_into()?, password_hash: row.password_hash })
    }
}

// --- Notebooks --------------------------------------------------------------------------------

#[derive(sqlx::FromRow)]
pub(crate) struct NotebookRow {
    id: String,
    owner_id: String,
    parent_id: Option<String>,
    name: String,
    description: Option<String>,
    visibility: String,
    status: String,
    tags: String,
    compliance_settings: String,
    document_count: i64,
    total_size_bytes: i64,
    created_at: String,
    updated_at: String,
    version: i64,
    is_template: bool,
}

impl TryFrom<NotebookRow> for Notebook {
    type Error = StoreError;

    fn try_from(row: NotebookRow) -> StoreResult<Notebook> {
        let tags: Vec<String> = json(&row.tags, "tags")?;
        Ok(Notebook {
            id: notebook_id(&row.id)?,
            owner_id: user_id(&row.owner_id, "owner id")?,
            parent_id: row.parent_id.as_deref().map(NotebookId::parse).transpose().map_err(|_| corrupt("parent id"))?,
            name: NotebookName::parse(&row.name).map_err(|_| corrupt("notebook name"))?,
            description: row
                .description
                .as_deref()
                .map(Description::parse)
                .transpose()
                .map_err(|_| corrupt("description"))?,
            visibility: Visibility::parse(&row.visibility).map_err(|_| corrupt("visibility"))?,
            status: NotebookStatus::parse(&row.status).map_err(|_| corrupt("notebook status"))?,
            tags: Tag::parse_list(&tags).map_err(|_| corrupt("tags"))?,
            compliance_settings: json(&row.compliance_settings, "compliance settings")?,
            document_count: unsigned(row.document_count, "document count")?,
            total_size_bytes: unsigned(row.total_size_bytes, "total size")?,
            created_at: ts(&row.created_at)?,
            updated_at: ts(&row.updated_at)?,
            version: unsigned(row.version, "version")?,
            is_template: row.is_template,
        })
    }
}

/// One notebook of a live subtree: its parent (`None` for the subtree's root) and its
/// level (the root is 1).
#[derive(sqlx::FromRow)]
pub(crate) struct SubtreeRow {
    pub(crate) id: String,
    pub(crate) parent: Option<String>,
    pub(crate) level: i64,
}

impl SubtreeRow {
    pub(crate) fn ids(&self) -> StoreResult<(NotebookId, Option<NotebookId>)> {
        let parent = self.parent.as_deref().map(notebook_id).transpose()?;
        Ok((notebook_id(&self.id)?, parent))
    }
}

/// A notebook of an ancestor chain, with the caller's active grant on it.
#[derive(sqlx::FromRow)]
pub(crate) struct ChainRow {
    id: String,
    owner_id: String,
    visibility: String,
    pub(crate) status: String,
    permission: Option<String>,
}

impl TryFrom<ChainRow> for ChainLink {
    type Error = StoreError;

    fn try_from(row: ChainRow) -> StoreResult<ChainLink> {
        Ok(ChainLink {
            notebook_id: notebook_id(&row.id)?,
            owner_id: user_id(&row.owner_id, "owner id")?,
            visibility: Visibility::parse(&row.visibility).map_err(|_| corrupt("visibility"))?,
            grant: row.permission.as_deref().map(Permission::parse).transpose().map_err(|_| corrupt("permission"))?,
        })
    }
}

/// A tag and how many notebooks carry it.
#[derive(sqlx::FromRow)]
pub(crate) struct TagUsageRow {
    name: String,
    usage: i64,
}

impl TryFrom<TagUsageRow> for (Tag, u64) {
    type Error = StoreError;

    fn try_from(row: TagUsageRow) -> StoreResult<(Tag, u64)> {
        Ok((Tag::parse(&row.name).map_err(|_| corrupt("tag"))?, unsigned(row.usage, "usage")?))
    }
}

// --- Collaborations ---------------------------------------------------------------------------

#[derive(sqlx::FromRow)]
pub(crate) struct CollaborationRow {
    notebook_id: String,
    user_id: String,
    permission: String,
    status: String,
    granted_by: String,
    granted_at: String,
    accepted_at: Option<String>,
    updated_at: String,
}

impl TryFrom<CollaborationRow> for Collaboration {
    type Error = StoreError;

    fn try_from(row: CollaborationRow) -> StoreResult<Collaboration> {
        Ok(Collaboration {
            notebook_id: notebook_id(&row.notebook_id)?,
            user_id: user_id(&row.user_id, "user id")?,
            permission: Permission::parse(&row.permission).map_err(|_| corrupt("permission"))?,
            status: CollaborationStatus::parse(&row.status).map_err(|_| corrupt("collaboration status"))?,
            granted_by: user_id(&row.granted_by, "grantor id")?,
            granted_at: ts(&row.granted_at)?,
            accepted_at: opt_ts(row.accepted_at)?,
            updated_at: ts(&row.updated_at)?,
        })
    }
}

// --- Activity, audit, outbox ------------------------------------------------------------------

fn row_uuid(id: &str) -> StoreResult<uuid::Uuid> {
    uuid::Uuid::try_parse(id).map_err(|_| corrupt("id"))
}

fn opt_user(text: Option<String>) -> StoreResult<Option<UserId>> {
    text.as_deref().map(|id| user_id(id, "user id")).transpose()
}

#[derive(sqlx::FromRow)]
pub(crate) struct ActivityRow {
    id: String,
    event_type: String,
    actor_id: Option<String>,
    notebook_id: String,
    details: String,
    created_at: String,
}

impl TryFrom<ActivityRow> for ActivityEvent {
    type Error = StoreError;

    fn try_from(row: ActivityRow) -> StoreResult<ActivityEvent> {
        Ok(ActivityEvent {
            id: row_uuid(&row.id)?,
            event_type: row.event_type,
            actor_id: opt_user(row.actor_id)?,
            notebook_id: notebook_id(&row.notebook_id)?,
            details: json(&row.details, "details")?,
            created_at: ts(&row.created_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct AuditRow {
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

impl TryFrom<AuditRow> for AuditEntry {
    type Error = StoreError;

    fn try_from(row: AuditRow) -> StoreResult<AuditEntry> {
        Ok(AuditEntry {
            id: row_uuid(&row.id)?,
            action: row.action,
            resource_type: row.resource_type,
            resource_id: row.resource_id,
            performed_by: opt_user(row.performed_by)?,
            details: json(&row.details, "details")?,
            ip_address: row.ip_address,
            user_agent: row.user_agent,
            created_at: ts(&row.created_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct OutboxRow {
    id: String,
    topic: String,
    key: String,
    payload: String,
    created_at: String,
}

impl TryFrom<OutboxRow> for OutboxEvent {
    type Error = StoreError;

    fn try_from(row: OutboxRow) -> StoreResult<OutboxEvent> {
        Ok(OutboxEvent {
            id: row_uuid(&row.id)?,
            topic: row.topic,
            key: row.key,
            payload: json(&row.payload, "payload")?,
            created_at: ts(&row.created_at)?,
        })
    }
}

// --- Sessions and API keys --------------------------------------------------------------------

/// A refresh token as presented, with its user's status.
#[derive(sqlx::FromRow)]
pub(crate) struct RefreshTokenRow {
    user_id: String,
    family_id: String,
    expires_at: String,
    spent_at: Option<String>,
    revoked_at: Option<String>,
    status: String,
}

impl TryFrom<RefreshTokenRow> for PresentedRefreshToken {
    type Error = StoreError;

    fn try_from(row: RefreshTokenRow) -> StoreResult<PresentedRefreshToken> {
        Ok(PresentedRefreshToken {
            user_id: user_id(&row.user_id, "user id")?,
            family_id: TokenFamilyId::parse(&row.family_id).map_err(|_| corrupt("family id"))?,
            expires_at: ts(&row.expires_at)?,
            spent: row.spent_at.is_some(),
            revoked: row.revoked_at.is_some(),
            user_status: UserStatus::parse(&row.status).map_err(|_| corrupt("user status"))?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ApiKeyRow {
    id: String,
    user_id: String,
    name: String,
    prefix: String,
    scopes: String,
    created_at: String,
    expires_at: Option<String>,
    last_used_at: Option<String>,
    revoked_at: Option<String>,
}

impl TryFrom<ApiKeyRow> for ApiKey {
    type Error = StoreError;

    fn try_from(row: ApiKeyRow) -> StoreResult<ApiKey> {
        let scopes: Vec<String> = json(&row.scopes, "api key scopes")?;
        Ok(ApiKey {
            id: ApiKeyId::parse(&row.id).map_err(|_| corrupt("api key id"))?,
            user_id: user_id(&row.user_id, "user id")?,
            name: ApiKeyName::parse(&row.name).map_err(|_| corrupt("api key name"))?,
            prefix: row.prefix,
            scopes: scopes
                .iter()
                .map(|scope| ApiKeyScope::parse(scope))
                .collect::<Result<_, _>>()
                .map_err(|_| corrupt("api key scope"))?,
            created_at: ts(&row.created_at)?,
            expires_at: opt_ts(row.expires_at)?,
            last_used_at: opt_ts(row.last_used_at)?,
            revoked_at: opt_ts(row.revoked_at)?,
        })
    }
}

// --- Jobs, documents, versions, blob deletions ------------------------------------------------

#[derive(sqlx::FromRow)]
pub(crate) struct JobRow {
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

impl TryFrom<JobRow> for UploadJob {
    type Error = StoreError;

    fn try_from(row: JobRow) -> StoreResult<UploadJob> {
        let file = match (row.file_size, row.file_hash, row.content_type) {
            (Some(size), Some(sha256), Some(content_type)) => {
                Some(ReceivedFile { size: unsigned(size, "file size")?, sha256, content_type })
            }
            _ => None,
        };
        Ok(UploadJob {
            id: JobId::parse(&row.id).map_err(|_| corrupt("job id"))?,
            notebook_id: notebook_id(&row.notebook_id)?,
            uploaded_by: user_id(&row.uploaded_by, "user id")?,
            document_id: DocumentId::parse(&row.document_id).map_err(|_| corrupt("document id"))?,
            version_id: VersionId::parse(&row.version_id).map_err(|_| corrupt("version id"))?,
            new_version: row.new_version,
            filename: Filename::sanitize(&row.filename),
            change_summary: row.change_summary,
            callback_url: row
                .callback_url
                .as_deref()
                .map(CallbackUrl::parse)
                .transpose()
                .map_err(|_| corrupt("callback url"))?,
            status: JobStatus::parse(&row.status).map_err(|_| corrupt("job status"))?,
            stage: row.stage,
            bytes_received: unsigned(row.bytes_received, "bytes_received")?,
            expected_bytes: row.expected_bytes.map(|bytes| unsigned(bytes, "expected bytes")).transpose()?,
            file,
            blob_key: key(&row.blob_key)?,
            storage_provider: row.storage_provider,
            failure: failure(row.failure_code, row.failure_message),
            attempts: u32::try_from(row.attempts).map_err(|_| corrupt("attempts"))?,
            lease_until: opt_ts(row.lease_until)?,
            external_id: row.external_id,
            origin: JobOrigin { request_id: row.origin_request_id, traceparent: row.origin_traceparent },
            created_at: ts(&row.created_at)?,
            updated_at: ts(&row.updated_at)?,
            finished_at: opt_ts(row.finished_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct DocumentRow {
    id: String,
    notebook_id: String,
    original_filename: String,
    description: Option<String>,
    tags: String,
    content_type: String,
    file_size: i64,
    file_hash: String,
    storage_provider: String,
    storage_path: String,
    processing_status: String,
    format: String,
    supported: bool,
    extracted_text: Option<String>,
    extracted_metadata: String,
    processing_metadata: String,
    compliance_scan_results: String,
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

impl TryFrom<DocumentRow> for Document {
    type Error = StoreError;

    fn try_from(row: DocumentRow) -> StoreResult<Document> {
        let tags: Vec<String> = json(&row.tags, "tags")?;
        Ok(Document {
            id: DocumentId::parse(&row.id).map_err(|_| corrupt("document id"))?,
            notebook_id: notebook_id(&row.notebook_id)?,
            original_filename: Filename::sanitize(&row.original_filename),
            description: row
                .description
                .as_deref()
                .map(Description::parse)
                .transpose()
                .map_err(|_| corrupt("description"))?,
            tags: Tag::parse_list(&tags).map_err(|_| corrupt("tags"))?,
            content_type: row.content_type.clone(),
            file_size: unsigned(row.file_size, "file_size")?,
            file_hash: row.file_hash,
            storage_provider: row.storage_provider,
            storage_path: key(&row.storage_path)?,
            processing_status: ProcessingStatus::parse(&row.processing_status)
                .map_err(|_| corrupt("processing status"))?,
            result: ProcessingResult {
                content_type: row.content_type,
                format: row.format,
                supported: row.supported,
                extracted_text: row.extracted_text,
                extracted_metadata: json(&row.extracted_metadata, "extracted_metadata")?,
                compliance_scan_results: json(&row.compliance_scan_results, "compliance_scan_results")?,
                pii_detected: row.pii_detected,
                redaction_applied: row.redaction_applied,
                redacted_key: opt_key(row.redacted_path)?,
                redacted_text: None,
                thumbnail_key: opt_key(row.thumbnail_path)?,
                error: failure(row.processing_error_code, row.processing_error),
                processing_metadata: json(&row.processing_metadata, "processing_metadata")?,
            },
            current_version: u32::try_from(row.current_version).map_err(|_| corrupt("version"))?,
            uploaded_by: user_id(&row.uploaded_by, "user id")?,
            uploaded_at: ts(&row.uploaded_at)?,
            processed_at: opt_ts(row.processed_at)?,
            updated_at: ts(&row.updated_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct VersionRow {
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

impl TryFrom<VersionRow> for DocumentVersion {
    type Error = StoreError;

    fn try_from(row: VersionRow) -> StoreResult<DocumentVersion> {
        Ok(DocumentVersion {
            id: VersionId::parse(&row.id).map_err(|_| corrupt("version id"))?,
            document_id: DocumentId::parse(&row.document_id).map_err(|_| corrupt("document id"))?,
            version_number: u32::try_from(row.version_number).map_err(|_| corrupt("version number"))?,
            original_filename: Filename::sanitize(&row.original_filename),
            content_type: row.content_type,
            storage_path: key(&row.storage_path)?,
            redacted_path: opt_key(row.redacted_path)?,
            thumbnail_path: opt_key(row.thumbnail_path)?,
            file_size: unsigned(row.file_size, "file_size")?,
            file_hash: row.file_hash,
            change_summary: row.change_summary,
            created_by: user_id(&row.created_by, "user id")?,
            created_at: ts(&row.created_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct BlobDeletionRow {
    id: String,
    blob_key: String,
    queued_at: String,
}

impl TryFrom<BlobDeletionRow> for BlobDeletion {
    type Error = StoreError;

    fn try_from(row: BlobDeletionRow) -> StoreResult<BlobDeletion> {
        Ok(BlobDeletion { id: row_uuid(&row.id)?, key: key(&row.blob_key)?, queued_at: ts(&row.queued_at)? })
    }
}

/// A job status and how many jobs have it.
#[derive(sqlx::FromRow)]
pub(crate) struct StatusCountRow {
    status: String,
    n: i64,
}

impl TryFrom<StatusCountRow> for (JobStatus, u64) {
    type Error = StoreError;

    fn try_from(row: StatusCountRow) -> StoreResult<(JobStatus, u64)> {
        Ok((JobStatus::parse(&row.status).map_err(|_| corrupt("job status"))?, unsigned(row.n, "n")?))
    }
}

/// Converts every row, failing on the first that does not convert.
pub(crate) fn convert<R, T: TryFrom<R, Error = StoreError>>(rows: Vec<R>) -> StoreResult<Vec<T>> {
    rows.into_iter().map(T::try_from).collect()
}
