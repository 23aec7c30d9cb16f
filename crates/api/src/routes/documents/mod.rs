//! Documents: streamed uploads answered with `202 Accepted` and a job, job status,
//! progress (polling and WebSocket) and cancellation, and the documents themselves:
//! metadata, download with ranges, preview, thumbnail and versions.
//!
//! By idea: [`uploads`] (upload forms and jobs), [`downloads`] (files with
//! `Range`), [`sockets`] (job updates over WebSockets), [`audimodal`] (the external
//! processor's webhook and status); the responses and the document handlers here.

pub mod audimodal;
pub mod downloads;
pub mod formats;
pub mod sockets;
pub mod uploads;

use aether_domain::activity::Change;
use aether_domain::document::{Document, DocumentPatch, DocumentVersion, Filename};
use aether_domain::id::DocumentId;
use aether_domain::id::NotebookId;
use aether_domain::job::{JobStatus, UploadJob};
use aether_domain::notebook::{Description, Tag};
use aether_domain::time;
use aether_services::documents::elapsed_since;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, FieldProblem};
use crate::extract::{ApiJson, ApiQuery, AuthUser, PageQuery, double_option, encode_cursor, present};
use crate::openapi as doc;
use crate::state::AppState;

pub(crate) use downloads::{parse_variant, ranged};
pub(crate) use uploads::{UploadForm, upload_files};

fn parse<T>(parsed: Result<T, aether_domain::ValidationError>) -> Result<T, ApiError> {
    parsed.map_err(ApiError::from)
}

/// An upload job.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobResponse {
    #[schema(format = Uuid)]
    pub job_id: String,
    #[schema(format = Uuid)]
    pub notebook_id: String,
    /// The document the job creates or adds a version to.
    #[schema(format = Uuid)]
    pub document_id: String,
    pub new_version: bool,
    pub original_filename: String,
    /// pending, uploading, validating, processing, completed, failed, cancelled.
    pub status: String,
    pub stage: String,
    pub progress: ProgressResponse,
    #[schema(required = true)]
    pub content_type: Option<String>,
    #[schema(required = true)]
    pub file_size: Option<u64>,
    #[schema(required = true)]
    pub file_hash: Option<String>,
    /// Why the job failed: a stable `code` and a `message`.
    #[schema(value_type = Option<Object>)]
    #[schema(required = true)]
    pub error: Option<serde_json::Value>,
    pub attempts: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[schema(required = true)]
    pub finished_at: Option<DateTime<Utc>>,
    pub status_url: String,
    pub progress_url: String,
    pub websocket_url: String,
}

/// How far a job is.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProgressResponse {
    #[schema(format = Uuid)]
    pub job_id: String,
    pub status: String,
    pub stage: String,
    pub bytes_received: u64,
    /// The declared size, when the client sent one.
    #[schema(required = true)]
    pub total_bytes: Option<u64>,
    /// 0–100: the upload is the first half, processing the second.
    pub percentage: u8,
    /// Estimated seconds left while uploading, from the rate so far.
    #[schema(required = true)]
    pub eta_seconds: Option<u64>,
}

fn progress_of(job: &UploadJob) -> ProgressResponse {
    let total = job.file.as_ref().map(|f| f.size).or(job.expected_bytes);
    let eta_seconds = match (job.status, job.expected_bytes) {
        (JobStatus::Uploading, Some(expected)) if job.bytes_received > 0 => {
            let elapsed = elapsed_since(job.created_at).as_secs_f64();
            let rate = job.bytes_received as f64 / elapsed.max(0.001);
            Some((expected.saturating_sub(job.bytes_received) as f64 / rate).ceil() as u64)
        }
        _ => None,
    };
    ProgressResponse {
        job_id: job.id.to_string(),
        status: job.status.as_str().to_owned(),
        stage: job.stage.clone(),
        bytes_received: job.bytes_received,
        total_bytes: total,
        percentage: job.percentage(),
        eta_seconds,
    }
}

impl From<UploadJob> for JobResponse {
    fn from(job: UploadJob) -> Self {
        let base = format!("/api/v1/documents/upload/{}", job.id);
        Self {
            job_id: job.id.to_string(),
            notebook_id: job.notebook_id.to_string(),
            document_id: job.document_id.to_string(),
            new_version: job.new_version,
            original_filename: job.filename.as_str().to_owned(),
            status: job.status.as_str().to_owned(),
            stage: job.stage.clone(),
            progress: progress_of(&job),
            content_type: job.file.as_ref().map(|f| f.content_type.clone()),
            file_size: job.file.as_ref().map(|f| f.size),
            file_hash: job.file.as_ref().map(|f| f.sha256.clone()),
            error: job.failure.as_ref().map(|f| serde_json::json!({"code": f.code, "message": f.message})),
            attempts: job.attempts,
            created_at: job.created_at,
            updated_at: job.updated_at,
            finished_at: job.finished_at,
            status_url: format!("{base}/status"),
            progress_url: format!("{base}/progress"),
            websocket_url: format!("/api/v1/ws/upload/{}", job.id),
        }
    }
}

/// A document (without its extracted text; see `preview`).
#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentResponse {
    #[schema(format = Uuid)]
    pub id: String,
    #[schema(format = Uuid)]
    pub notebook_id: String,
    pub original_filename: String,
    #[schema(required = true)]
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub content_type: String,
    pub file_size: u64,
    pub file_hash: String,
    pub storage_provider: String,
    /// pending, processing, completed, failed.
    pub processing_status: String,
    /// The detected format (`pdf`, `docx`, …) or `unsupported`.
    pub format: String,
    /// Whether text extraction supports the format.
    pub supported: bool,
    #[schema(value_type = Object)]
    pub extracted_metadata: serde_json::Map<String, serde_json::Value>,
    #[schema(value_type = Object)]
    pub processing_metadata: serde_json::Map<String, serde_json::Value>,
    #[schema(value_type = Object)]
    pub compliance_scan_results: serde_json::Map<String, serde_json::Value>,
    pub pii_detected: bool,
    pub redaction_applied: bool,
    pub has_redacted_copy: bool,
    pub has_thumbnail: bool,
    #[schema(value_type = Option<Object>)]
    #[schema(required = true)]
    pub processing_error: Option<serde_json::Value>,
    pub current_version: u32,
    #[schema(format = Uuid)]
    pub uploaded_by: String,
    pub uploaded_at: DateTime<Utc>,
    #[schema(required = true)]
    pub processed_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

impl From<Document> for DocumentResponse {
    fn from(d: Document) -> Self {
        Self {
            id: d.id.to_string(),
            notebook_id: d.notebook_id.to_string(),
            original_filename: d.original_filename.as_str().to_owned(),
            description: d.description.as_ref().map(|x| x.as_str().to_owned()),
            tags: d.tags.iter().map(|t| t.as_str().to_owned()).collect(),
            content_type: d.content_type,
            file_size: d.file_size,
            file_hash: d.file_hash,
            storage_provider: d.storage_provider,
            processing_status: d.processing_status.as_str().to_owned(),
            format: d.result.format,
            supported: d.result.supported,
            extracted_metadata: d.result.extracted_metadata,
            processing_metadata: d.result.processing_metadata,
            compliance_scan_results: d.result.compliance_scan_results,
            pii_detected: d.result.pii_detected,
            redaction_applied: d.result.redaction_applied,
            has_redacted_copy: d.result.redacted_key.is_some(),
            has_thumbnail: d.result.thumbnail_key.is_some(),
            processing_error: d.result.error.map(|e| serde_json::json!({"code": e.code, "message": e.message})),
            current_version: d.current_version,
            uploaded_by: d.uploaded_by.to_string(),
            uploaded_at: d.uploaded_at,
            processed_at: d.processed_at,
            updated_at: d.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentPage {
    pub items: Vec<DocumentResponse>,
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobPage {
    pub items: Vec<JobResponse>,
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VersionResponse {
    #[schema(format = Uuid)]
    pub id: String,
    #[schema(format = Uuid)]
    pub document_id: String,
    pub version_number: u32,
    pub original_filename: String,
    pub content_type: String,
    pub file_size: u64,
    pub file_hash: String,
    #[schema(required = true)]
    pub change_summary: Option<String>,
    #[schema(format = Uuid)]
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub download_url: String,
}

impl From<DocumentVersion> for VersionResponse {
    fn from(v: DocumentVersion) -> Self {
        Self {
            download_url: format!("/api/v1/documents/{}/download?version={}", v.document_id, v.version_number),
            id: v.id.to_string(),
            document_id: v.document_id.to_string(),
            version_number: v.version_number,
            original_filename: v.original_filename.as_str().to_owned(),
            content_type: v.content_type,
            file_size: v.file_size,
            file_hash: v.file_hash,
            change_summary: v.change_summary,
            created_by: v.created_by.to_string(),
            created_at: v.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VersionList {
    pub items: Vec<VersionResponse>,
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// The notebook's documents, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/notebooks/{id}/documents",
    tag = "documents",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Notebook id (UUID)"), PageQuery),
    responses(
        (status = 200, body = DocumentPage),
        doc::Authenticated,
        doc::BadRequest,
        doc::NotFound,
        doc::Unprocessable,
    )
)]
pub async fn list_documents(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<DocumentPage>, ApiError> {
    let notebook = parse(NotebookId::parse(&id))?;
    let page = state.documents.documents(&caller, notebook, query.parse()?).await?;
    Ok(Json(DocumentPage {
        next_cursor: page.next_after.map(encode_cursor),
        items: page.items.into_iter().map(Into::into).collect(),
    }))
}

/// A document's metadata.
#[utoipa::path(
    get,
    path = "/api/v1/documents/{id}",
    tag = "documents",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Document id (UUID)")),
    responses(
        (status = 200, body = DocumentResponse),
        doc::Authenticated,
        doc::NotFound,
        doc::Unprocessable,
    )
)]
pub async fn get_document(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(id): Path<String>,
) -> Result<Json<DocumentResponse>, ApiError> {
    let (document, _) = state.documents.document(&caller, parse(DocumentId::parse(&id))?).await?;
    Ok(Json(document.into()))
}

/// What may change on a document; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1)]
pub struct DocumentUpdate {
    #[serde(default, deserialize_with = "present")]
    #[schema(nullable = false, value_type = Option<crate::openapi::values::Filename>)]
    pub original_filename: Option<String>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<crate::openapi::values::Description>)]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(nullable = false, value_type = Option<crate::openapi::values::Tags>)]
    pub tags: Option<Vec<String>>,
}

/// Updates a document's name, description or tags.
#[utoipa::path(
    put,
    path = "/api/v1/documents/{id}",
    tag = "documents",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Document id (UUID)")),
    request_body = DocumentUpdate,
    responses(
        (status = 200, body = DocumentResponse),
        doc::Authenticated,
        doc::JsonBody,
        doc::Forbidden,
        doc::NotFound,
    )
)]
pub async fn update_document(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(id): Path<String>,
    ApiJson(update): ApiJson<DocumentUpdate>,
) -> Result<Json<DocumentResponse>, ApiError> {
    let id = parse(DocumentId::parse(&id))?;
    let patch = DocumentPatch {
        original_filename: update.original_filename.as_deref().map(Filename::parse).transpose()?,
        description: update.description.map(|d| d.as_deref().map(Description::parse).transpose()).transpose()?,
        tags: update.tags.map(|tags| Tag::parse_list(&tags)).transpose()?,
    };
    if patch.original_filename.is_none() && patch.description.is_none() && patch.tags.is_none() {
        return Err(ApiError::validation(vec![FieldProblem {
            field: "body".into(),
            message: "give at least one field to change".into(),
        }]));
    }
    let change = Change::by(caller.user_id, time::now());
    Ok(Json(state.documents.update(&caller, id, patch, &change).await?.into()))
}

/// Deletes a document and all its versions.
#[utoipa::path(
    delete,
    path = "/api/v1/documents/{id}",
    tag = "documents",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Document id (UUID)")),
    responses(
        (status = 204, description = "Deleted"),
        doc::Authenticated,
        doc::Forbidden,
        doc::NotFound,
        doc::Unprocessable,
    )
)]
pub async fn delete_document(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let change = Change::by(caller.user_id, time::now());
    state.documents.delete(&caller, parse(DocumentId::parse(&id))?, &change).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The document's versions, newest (highest number) first.
#[utoipa::path(
    get,
    path = "/api/v1/documents/{id}/versions",
    tag = "documents",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Document id (UUID)"), PageQuery),
    responses(
        (status = 200, body = VersionList),
        doc::Authenticated,
        doc::BadRequest,
        doc::NotFound,
        doc::Unprocessable,
    )
)]
pub async fn list_versions(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<VersionList>, ApiError> {
    let page = query.parse()?;
    let versions = state.documents.versions(&caller, parse(DocumentId::parse(&id))?, page).await?;
    Ok(Json(VersionList {
        next_cursor: versions.next_after.map(encode_cursor),
        items: versions.items.into_iter().map(Into::into).collect(),
    }))
}

/// A preview: a text excerpt (redacted for read-only collaborators of a redacted
/// document) and metadata.
#[utoipa::path(
    get,
    path = "/api/v1/documents/{id}/preview",
    tag = "documents",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Document id (UUID)")),
    responses(
        (status = 200, description = "The preview", body = Object),
        doc::Authenticated,
        doc::NotFound,
        doc::Unprocessable,
    )
)]
pub async fn preview_document(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = parse(DocumentId::parse(&id))?;
    let preview = state.documents.preview(&caller, id).await?;
    let mut value = serde_json::to_value(&preview).map_err(|_| ApiError::internal())?;
    if preview.thumbnail_available {
        value["thumbnail_url"] = format!("/api/v1/documents/{id}/thumbnail").into();
    }
    Ok(Json(value))
}

/// The document's thumbnail (PNG), for images.
#[utoipa::path(
    get,
    path = "/api/v1/documents/{id}/thumbnail",
    tag = "documents",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Document id (UUID)")),
    responses(
        (status = 200, description = "PNG", content_type = "image/png", body = Vec<u8>),
        doc::Authenticated,
        (status = 404, description = "`not_found`, or the document has no thumbnail"),
        doc::Unprocessable,
    )
)]
pub async fn document_thumbnail(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let png = state.documents.thumbnail(&caller, parse(DocumentId::parse(&id))?).await?;
    Ok(([(header::CONTENT_TYPE, "image/png"), (header::CACHE_CONTROL, "private, max-age=300")], png).into_response())
}
