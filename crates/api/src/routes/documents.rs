//! Documents: streamed uploads answered with `202 Accepted` and a job, job status,
//! progress (polling and WebSocket) and cancellation, and the documents themselves:
//! metadata, download with ranges, preview, thumbnail and versions.

use aether_domain::activity::Change;
use aether_domain::document::{
    CallbackUrl, Document, DocumentPatch, DocumentVersion, Filename, JobStatus, UploadJob, parse_change_summary,
};
use aether_domain::id::{DocumentId, JobId, NotebookId};
use aether_domain::notebook::{Description, Tag};
use aether_domain::time;
use aether_services::ServiceError;
use aether_services::documents::{UploadRequest, Variant, content_disposition, elapsed_since};
use axum::Json;
use axum::body::Body;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, FieldProblem};
use crate::extract::{ApiJson, ApiQuery, AuthUser, PageQuery, double_option, encode_cursor, job_origin, present};
use crate::multipart::{BoundedForm, FormLimits, missing};
use crate::openapi as doc;
use crate::state::AppState;

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
}

/// The multipart form of an upload. The body is streamed: text fields must come
/// before `file`, in this order; unknown fields are ignored.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct UploadForm {
    /// The notebook the document goes into (write access needed).
    #[schema(value_type = uuid::Uuid)]
    pub notebook_id: String,
    /// Re-upload: adds a version to this document of the notebook.
    #[schema(value_type = Option<uuid::Uuid>, nullable = false)]
    pub document_id: Option<String>,
    #[schema(value_type = Option<crate::openapi::values::ChangeSummary>, nullable = false)]
    pub change_summary: Option<String>,
    /// Job status changes are POSTed here.
    #[schema(value_type = Option<crate::openapi::values::CallbackUrl>, nullable = false)]
    pub callback_url: Option<String>,
    /// The declared size in bytes, for progress and ETA.
    #[schema(nullable = false)]
    pub file_size: Option<u64>,
    /// The file; its part's `filename` names the document.
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
}

/// The multipart form of a batch upload into the path's notebook: one job per
/// `file` part (`files` is taken too). Text fields apply to the next file and must
/// come before it.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct BatchUploadForm {
    /// Re-upload: adds a version to this document of the notebook.
    #[schema(value_type = Option<uuid::Uuid>, nullable = false)]
    pub document_id: Option<String>,
    #[schema(value_type = Option<crate::openapi::values::ChangeSummary>, nullable = false)]
    pub change_summary: Option<String>,
    /// Status changes of every job are POSTed here.
    #[schema(value_type = Option<crate::openapi::values::CallbackUrl>, nullable = false)]
    pub callback_url: Option<String>,
    /// The declared size in bytes of the next file, for progress and ETA.
    #[schema(nullable = false)]
    pub file_size: Option<u64>,
    /// The files, each its own part; the part's `filename` names the document.
    #[schema(value_type = Vec<crate::openapi::values::Binary>, min_items = 1)]
    pub file: Vec<Vec<u8>>,
}

#[derive(Debug, Default)]
struct FormFields {
    notebook_id: Option<NotebookId>,
    document_id: Option<DocumentId>,
    change_summary: Option<String>,
    callback_url: Option<CallbackUrl>,
    file_size: Option<u64>,
}

/// Streams every `file` part of a multipart body into its own job. Text fields
/// before a file apply to it; `notebook` fixes the notebook (batch uploads).
pub(crate) async fn upload_files(
    state: &AppState,
    caller: &aether_domain::auth::Principal,
    request: axum::extract::Request,
    notebook: Option<NotebookId>,
    batch: bool,
) -> Result<Vec<UploadJob>, ApiError> {
    let origin = job_origin(request.extensions());
    // A request carries one file's worth of bytes plus its form fields: a batch shares
    // `max_upload_bytes` between its files.
    let limits = FormLimits::for_files(state.documents.max_upload_bytes());
    let mut form = BoundedForm::from_request(request, state, limits).await?;
    let mut fields = FormFields { notebook_id: notebook, ..FormFields::default() };
    let mut jobs = Vec::new();
    while let Some(part) = form.next_part().await? {
        match part.name() {
            "file" | "files" => {
                if !batch && !jobs.is_empty() {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "one_file_only",
                        "Send one file here, or use POST /api/v1/notebooks/{id}/upload for several.",
                    ));
                }
                let notebook_id = fields.notebook_id.ok_or_else(|| missing("notebook_id"))?;
                let filename = Filename::sanitize(part.file_name());
                let job = state
                    .documents
                    .start_upload(
                        caller,
                        UploadRequest {
                            notebook_id,
                            existing_document: fields.document_id.take(),
                            filename,
                            change_summary: fields.change_summary.take(),
                            callback_url: fields.callback_url.clone(),
                            expected_bytes: fields.file_size.take(),
                            origin: origin.clone(),
                        },
                    )
                    .await?;
                jobs.push(state.documents.receive_upload(job, part.into_stream()).await?);
            }
            "notebook_id" if notebook.is_none() => {
                fields.notebook_id = Some(parse(NotebookId::parse(part.text().await?.trim()))?);
            }
            "document_id" => fields.document_id = Some(parse(DocumentId::parse(part.text().await?.trim()))?),
            "change_summary" => fields.change_summary = parse(parse_change_summary(&part.text().await?))?,
            "callback_url" => fields.callback_url = Some(parse(CallbackUrl::parse(&part.text().await?))?),
            "file_size" => {
                let text = part.text().await?;
                let size = text.trim().parse::<u64>().map_err(|_| {
                    ApiError::validation(vec![FieldProblem {
                        field: "file_size".into(),
                        message: "must be a number of bytes".into(),
                    }])
                })?;
                fields.file_size = Some(size);
            }
            // Unknown fields are read and ignored, so clients may send extras.
            _ => part.skip().await?,
        }
    }
    if jobs.is_empty() {
        return Err(missing("file"));
    }
    Ok(jobs)
}

/// Uploads one document. The body streams to storage; the answer comes once the
/// bytes are stored, with the job that processes them.
#[utoipa::path(
    post,
    path = "/api/v1/documents/upload",
    tag = "documents",
    security(("bearer" = [])),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 202, body = JobResponse),
        doc::Authenticated,
        doc::MultipartBody,
        doc::Forbidden,
        doc::NotFound,
        doc::Conflict,
        (status = 413, description = "`file_too_large` (over `max_upload_bytes`), `payload_too_large` (the request over `max_upload_bytes` plus 1 MiB), `too_many_parts` (over 128)"),
    )
)]
pub async fn upload_document(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    request: axum::extract::Request,
) -> Result<(StatusCode, Json<JobResponse>), ApiError> {
    let mut jobs = upload_files(&state, &caller, request, None, false).await?;
    let job = jobs.pop().ok_or_else(|| missing("file"))?;
    Ok((StatusCode::ACCEPTED, Json(job.into())))
}

/// Uploads several documents into a notebook: one job per `file` part.
#[utoipa::path(
    post,
    path = "/api/v1/notebooks/{id}/upload",
    tag = "documents",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Notebook id (UUID)")),
    request_body(content = BatchUploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 202, body = JobPage),
        doc::Authenticated,
        doc::MultipartBody,
        doc::Forbidden,
        doc::NotFound,
        doc::Conflict,
        (status = 413, description = "`file_too_large` (over `max_upload_bytes`), `payload_too_large` (the request over `max_upload_bytes` plus 1 MiB), `too_many_parts` (over 128)"),
    )
)]
pub async fn upload_batch(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(id): Path<String>,
    request: axum::extract::Request,
) -> Result<(StatusCode, Json<JobPage>), ApiError> {
    let notebook = parse(NotebookId::parse(&id))?;
    let jobs = upload_files(&state, &caller, request, Some(notebook), true).await?;
    Ok((StatusCode::ACCEPTED, Json(JobPage { items: jobs.into_iter().map(Into::into).collect(), next_cursor: None })))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobListQuery {
    /// Only unfinished jobs.
    pub active: Option<bool>,
    /// Items per page, 1–100 (default 20).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// The `next_cursor` of a previous page.
    #[param(pattern = "^[A-Za-z0-9_-]{21}[AQgw]$")]
    pub cursor: Option<String>,
}

/// The notebook's upload jobs, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/notebooks/{id}/upload/status",
    tag = "documents",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Notebook id (UUID)"), JobListQuery),
    responses(
        (status = 200, body = JobPage),
        doc::Authenticated,
        doc::BadRequest,
        doc::NotFound,
        doc::Unprocessable,
    )
)]
pub async fn notebook_upload_status(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<JobListQuery>,
) -> Result<Json<JobPage>, ApiError> {
    let page = PageQuery { limit: query.limit, cursor: query.cursor }.parse()?;
    let notebook = parse(NotebookId::parse(&id))?;
    let jobs = state.documents.notebook_jobs(&caller, notebook, query.active.unwrap_or(false), page).await?;
    Ok(Json(JobPage {
        next_cursor: jobs.next_after.map(encode_cursor),
        items: jobs.items.into_iter().map(Into::into).collect(),
    }))
}

/// An upload job's status.
#[utoipa::path(
    get,
    path = "/api/v1/documents/upload/{job_id}/status",
    tag = "documents",
    security(("bearer" = [])),
    params(("job_id" = uuid::Uuid, Path, description = "Job id (UUID)")),
    responses(
        (status = 200, body = JobResponse),
        doc::Authenticated,
        doc::NotFound,
        doc::Unprocessable,
    )
)]
pub async fn job_status(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(job_id): Path<String>,
) -> Result<Json<JobResponse>, ApiError> {
    Ok(Json(state.documents.job(&caller, parse(JobId::parse(&job_id))?).await?.into()))
}

/// An upload job's progress: bytes, percentage, stage and ETA.
#[utoipa::path(
    get,
    path = "/api/v1/documents/upload/{job_id}/progress",
    tag = "documents",
    security(("bearer" = [])),
    params(("job_id" = uuid::Uuid, Path, description = "Job id (UUID)")),
    responses(
        (status = 200, body = ProgressResponse),
        doc::Authenticated,
        doc::NotFound,
        doc::Unprocessable,
    )
)]
pub async fn job_progress(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(job_id): Path<String>,
) -> Result<Json<ProgressResponse>, ApiError> {
    let job = state.documents.job(&caller, parse(JobId::parse(&job_id))?).await?;
    Ok(Json(progress_of(&job)))
}

/// Cancels an unfinished job and removes what it stored.
#[utoipa::path(
    delete,
    path = "/api/v1/documents/upload/{job_id}",
    tag = "documents",
    security(("bearer" = [])),
    params(("job_id" = uuid::Uuid, Path, description = "Job id (UUID)")),
    responses(
        (status = 200, body = JobResponse),
        doc::Authenticated,
        doc::NotFound,
        doc::Unprocessable,
        (status = 409, description = "`job_finished`: the job has already finished"),
    )
)]
pub async fn cancel_job(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(job_id): Path<String>,
) -> Result<Json<JobResponse>, ApiError> {
    Ok(Json(state.documents.cancel(&caller, parse(JobId::parse(&job_id))?).await?.into()))
}

/// Job updates over a WebSocket: the job as JSON on connect and on every change;
/// the server closes the socket once the job has finished.
#[utoipa::path(
    get,
    path = "/api/v1/ws/upload/{job_id}",
    tag = "documents",
    security(("bearer" = [])),
    params(
        ("job_id" = uuid::Uuid, Path, description = "Job id (UUID)"),
        ("access_token" = Option<String>, Query, description = "The access token, for browsers, which cannot set headers on WebSockets"),
        ("Connection" = String, Header, pattern = "^[Uu]pgrade$", description = "`Upgrade`: the WebSocket handshake (RFC 6455)"),
        ("Upgrade" = String, Header, pattern = "^websocket$", description = "`websocket`"),
        ("Sec-WebSocket-Version" = String, Header, pattern = "^13$", description = "`13`"),
        ("Sec-WebSocket-Key" = String, Header, pattern = "^[A-Za-z0-9+/]{21}[AQgw]==$", description = "16 random bytes in base64"),
    ),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol"),
        (status = 400, description = "Not a WebSocket handshake (`bad_request`): a plain HTTP request, or a missing `Upgrade`, `Connection`, `Sec-WebSocket-Version` or `Sec-WebSocket-Key` header"),
        doc::Authenticated,
        doc::NotFound,
        doc::Unprocessable,
    )
)]
pub async fn job_socket(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(job_id): Path<String>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let job = state.documents.job(&caller, parse(JobId::parse(&job_id))?).await?;
    Ok(upgrade.on_upgrade(move |socket| follow_job(state, job, socket)).into_response())
}

async fn follow_job(state: AppState, job: UploadJob, mut socket: WebSocket) {
    let mut updates = state.documents.hub().subscribe(job.id);
    let mut last = job;
    if send_job(&mut socket, &last).await.is_err() {
        return;
    }
    while !last.status.is_terminal() {
        let next = tokio::select! {
            update = updates.recv() => update.ok(),
            // Changes nobody announced here (no fan-out, or a lost notice).
            _ = tokio::time::sleep(state.settings.socket_poll) => None,
            message = socket.recv() => match message {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => continue,
            },
        };
        let current = match next {
            Some(job) => job,
            None => match state.documents.job_unchecked(last.id).await {
                Ok(job) => job,
                Err(_) => return,
            },
        };
        if current.updated_at != last.updated_at
            || current.status != last.status
            || current.bytes_received != last.bytes_received
        {
            last = current;
            if send_job(&mut socket, &last).await.is_err() {
                return;
            }
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}

async fn send_job(socket: &mut WebSocket, job: &UploadJob) -> Result<(), axum::Error> {
    let body = serde_json::to_string(&JobResponse::from(job.clone())).unwrap_or_default();
    socket.send(Message::Text(body.into())).await
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

/// The document's versions, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/documents/{id}/versions",
    tag = "documents",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Document id (UUID)")),
    responses(
        (status = 200, body = VersionList),
        doc::Authenticated,
        doc::NotFound,
        doc::Unprocessable,
    )
)]
pub async fn list_versions(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(id): Path<String>,
) -> Result<Json<VersionList>, ApiError> {
    let versions = state.documents.versions(&caller, parse(DocumentId::parse(&id))?).await?;
    Ok(Json(VersionList { items: versions.into_iter().map(Into::into).collect() }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DownloadQuery {
    /// A version number; the current version when absent.
    pub version: Option<u32>,
    /// `original` or `redacted`. Read-only collaborators get the redacted copy of a
    /// redacted document by default and may not ask for the original.
    #[param(inline, value_type = Option<crate::openapi::values::Variant>)]
    pub variant: Option<String>,
}

/// Downloads a document (streamed; honours `Range`).
#[utoipa::path(
    get,
    path = "/api/v1/documents/{id}/download",
    tag = "documents",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Document id (UUID)"), DownloadQuery),
    responses(
        (status = 200, description = "The file, in its own content type", content_type = "*/*", body = Vec<u8>),
        (status = 206, description = "Part of the file", content_type = "*/*", body = Vec<u8>),
        doc::Authenticated,
        doc::BadRequest,
        doc::Forbidden,
        (status = 404, description = "`not_found`, `version_not_found` or `no_redacted_copy`"),
        doc::RangeNotSatisfiable,
        doc::Unprocessable,
    )
)]
pub async fn download_document(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<DownloadQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = parse(DocumentId::parse(&id))?;
    let variant = parse_variant(query.variant.as_deref())?;
    let version = query.version;
    ranged(&headers, move |range| {
        let (documents, caller) = (state.documents.clone(), caller.clone());
        Box::pin(async move { documents.download(&caller, id, version, variant, range).await })
    })
    .await
}

pub(crate) fn parse_variant(text: Option<&str>) -> Result<Variant, ApiError> {
    match text {
        None => Ok(Variant::Default),
        Some("original") => Ok(Variant::Original),
        Some("redacted") => Ok(Variant::Redacted),
        Some(_) => Err(ApiError::validation(vec![FieldProblem {
            field: "variant".into(),
            message: "must be original or redacted".into(),
        }])),
    }
}

/// Opens a stored file (or a range of it) for [`ranged`].
pub(crate) type OpenFuture =
    futures::future::BoxFuture<'static, Result<aether_services::documents::Download, ServiceError>>;

/// Answers a download, honouring a `Range` header. A range that names its start
/// (`a-b`, `a-`, the common forms) is read in one go: the store clamps its end and
/// reports the size. A suffix (`-n`), or a start the store refuses, needs the size
/// first: `open` is then called for the whole file, and again for the range.
pub(crate) async fn ranged(
    headers: &HeaderMap,
    open: impl Fn(Option<std::ops::Range<u64>>) -> OpenFuture,
) -> Result<Response, ApiError> {
    let range_header = headers.get(header::RANGE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let Some(range_header) = range_header else {
        return Ok(file_response(StatusCode::OK, open(None).await?, None));
    };
    if let Some(wanted) = range_from_start(&range_header)
        && let Ok(part) = open(Some(wanted.clone())).await
        && part.read.range.start == wanted.start
        && !part.read.range.is_empty()
    {
        let range = part.read.range.clone();
        return Ok(file_response(StatusCode::PARTIAL_CONTENT, part, Some(range)));
    }
    let whole = open(None).await?;
    let size = whole.read.size;
    let Some(range) = parse_range(&range_header, size) else {
        let mut response = ApiError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "range_not_satisfiable",
            "The Range header does not match the file's size.",
        )
        .into_response();
        if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
            response.headers_mut().insert(header::CONTENT_RANGE, value);
        }
        return Ok(response);
    };
    drop(whole);
    let part = open(Some(range.clone())).await?;
    Ok(file_response(StatusCode::PARTIAL_CONTENT, part, Some(range)))
}

fn file_response(
    status: StatusCode,
    download: aether_services::documents::Download,
    range: Option<std::ops::Range<u64>>,
) -> Response {
    let size = download.read.size;
    let length = download.read.range.end - download.read.range.start;
    let mut response = Response::new(Body::from_stream(download.read.stream));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    let mut set = |name: header::HeaderName, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    set(header::CONTENT_TYPE, download.content_type.clone());
    set(header::CONTENT_LENGTH, length.to_string());
    set(header::ACCEPT_RANGES, "bytes".to_owned());
    set(header::ETAG, download.etag.clone());
    set(header::CONTENT_DISPOSITION, content_disposition(download.filename.as_str()));
    set(header::CACHE_CONTROL, "private, no-store".to_owned());
    if let Some(range) = range {
        set(header::CONTENT_RANGE, format!("bytes {}-{}/{size}", range.start, range.end - 1));
    }
    response
}

/// The range of `bytes=a-b` or `bytes=a-`, before the size is known (an open end
/// stops at `i64::MAX`, which every store clamps and no server misparses).
fn range_from_start(header: &str) -> Option<std::ops::Range<u64>> {
    let spec = header.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (start, end) = spec.split_once('-')?;
    let start: u64 = start.trim().parse().ok()?;
    let end = match end.trim() {
        "" => i64::MAX.unsigned_abs(),
        end => end.parse::<u64>().ok()?.checked_add(1)?,
    };
    (start < end).then_some(start..end)
}

/// One `bytes=` range (RFC 9110 §14.1.2): `a-b`, `a-` or `-n`, clamped to the size.
/// Several ranges are answered with the first only being unsupported: `None`.
fn parse_range(header: &str, size: u64) -> Option<std::ops::Range<u64>> {
    let spec = header.trim().strip_prefix("bytes=")?;
    if spec.contains(',') || size == 0 {
        return None;
    }
    let (start, end) = spec.split_once('-')?;
    let (start, end) = match (start.trim(), end.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().ok()?;
            if n == 0 {
                return None;
            }
            (size.saturating_sub(n), size - 1)
        }
        (start, "") => (start.parse().ok()?, size - 1),
        (start, end) => (start.parse().ok()?, end.parse::<u64>().ok()?.min(size - 1)),
    };
    (start <= end && start < size).then_some(start..end + 1)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_that_name_their_start_are_read_before_the_size_is_known() {
        assert_eq!(range_from_start("bytes=0-9"), Some(0..10));
        assert_eq!(range_from_start("bytes=90-"), Some(90..i64::MAX.unsigned_abs()));
        assert_eq!(range_from_start("bytes=-5"), None);
        assert_eq!(range_from_start("bytes=5-1"), None);
        assert_eq!(range_from_start("bytes=0-1,5-6"), None);
        assert_eq!(range_from_start("items=0-1"), None);
        assert_eq!(range_from_start("bytes=1-18446744073709551615"), None);
    }

    #[test]
    fn ranges_follow_rfc_9110() {
        assert_eq!(parse_range("bytes=0-9", 100), Some(0..10));
        assert_eq!(parse_range("bytes=90-", 100), Some(90..100));
        assert_eq!(parse_range("bytes=-5", 100), Some(95..100));
        assert_eq!(parse_range("bytes=95-200", 100), Some(95..100));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("bytes=5-1", 100), None);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
        assert_eq!(parse_range("bytes=-0", 100), None);
    }

    #[test]
    fn dispositions_keep_the_name_and_stay_ascii() {
        assert_eq!(
            content_disposition("résumé \"v2\".pdf"),
            "attachment; filename=\"r_sum_ _v2_.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%22v2%22.pdf"
        );
    }
}

/// AudiModal's processing events (when AudiModal is configured). Authenticated by
/// `X-AudiModal-Signature: sha256=<hex HMAC-SHA256(secret, "<X-AudiModal-Timestamp>." + body)>`,
/// not by a bearer token; redeliveries are answered 200 and change nothing.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/audimodal",
    tag = "documents",
    request_body(content = Object, content_type = "application/json"),
    responses(
        (status = 200, description = "Received", body = Object),
        (status = 401, description = "`invalid_signature`: the signature or timestamp is not valid"),
        (status = 404, description = "`not_found`: AudiModal is not configured, or no such job"),
        doc::PayloadTooLarge,
        doc::Unprocessable,
    )
)]
pub async fn audimodal_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let timestamp = header("x-audimodal-timestamp");
    let signature = header("x-audimodal-signature");
    match state.documents.external_webhook(&timestamp, &signature, &body).await {
        Ok(()) => Ok(Json(serde_json::json!({"status": "received"}))),
        Err(ServiceError::Unauthenticated(_)) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
            "The webhook's signature or timestamp is not valid.",
        )),
        Err(error) => Err(error.into()),
    }
}

/// AudiModal's view of a job it processes.
#[utoipa::path(
    get,
    path = "/api/v1/documents/audimodal/{job_id}/status",
    tag = "documents",
    security(("bearer" = [])),
    params(("job_id" = uuid::Uuid, Path, description = "Job id (UUID)")),
    responses(
        (status = 200, description = "AudiModal's status", body = Object),
        doc::Authenticated,
        (status = 404, description = "`not_found`: AudiModal is not configured, or the job is not with it"),
        doc::Unprocessable,
    )
)]
pub async fn audimodal_status(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(job_id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(state.documents.external_status(&caller, parse(JobId::parse(&job_id))?).await?))
}

/// The same updates as `/ws/upload/{job_id}`, under the design's processing path.
#[utoipa::path(
    get,
    path = "/api/v1/ws/processing/{job_id}",
    tag = "documents",
    security(("bearer" = [])),
    params(
        ("job_id" = uuid::Uuid, Path, description = "Job id (UUID)"),
        ("access_token" = Option<String>, Query, description = "The access token, for browsers, which cannot set headers on WebSockets"),
        ("Connection" = String, Header, pattern = "^[Uu]pgrade$", description = "`Upgrade`: the WebSocket handshake (RFC 6455)"),
        ("Upgrade" = String, Header, pattern = "^websocket$", description = "`websocket`"),
        ("Sec-WebSocket-Version" = String, Header, pattern = "^13$", description = "`13`"),
        ("Sec-WebSocket-Key" = String, Header, pattern = "^[A-Za-z0-9+/]{21}[AQgw]==$", description = "16 random bytes in base64"),
    ),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol"),
        (status = 400, description = "Not a WebSocket handshake (`bad_request`): a plain HTTP request, or a missing `Upgrade`, `Connection`, `Sec-WebSocket-Version` or `Sec-WebSocket-Key` header"),
        doc::Authenticated,
        doc::NotFound,
        doc::Unprocessable,
    )
)]
pub async fn processing_socket(
    state: State<AppState>,
    caller: AuthUser,
    job_id: Path<String>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    job_socket(state, caller, job_id, upgrade).await
}

/// Updates of every upload job of a notebook over a WebSocket: its unfinished jobs
/// on connect, then each job whenever it changes (including when it finishes).
#[utoipa::path(
    get,
    path = "/api/v1/ws/notebooks/{id}/uploads",
    tag = "documents",
    security(("bearer" = [])),
    params(
        ("id" = uuid::Uuid, Path, description = "Notebook id (UUID)"),
        ("access_token" = Option<String>, Query, description = "The access token, for browsers, which cannot set headers on WebSockets"),
        ("Connection" = String, Header, pattern = "^[Uu]pgrade$", description = "`Upgrade`: the WebSocket handshake (RFC 6455)"),
        ("Upgrade" = String, Header, pattern = "^websocket$", description = "`websocket`"),
        ("Sec-WebSocket-Version" = String, Header, pattern = "^13$", description = "`13`"),
        ("Sec-WebSocket-Key" = String, Header, pattern = "^[A-Za-z0-9+/]{21}[AQgw]==$", description = "16 random bytes in base64"),
    ),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol"),
        (status = 400, description = "Not a WebSocket handshake (`bad_request`): a plain HTTP request, or a missing `Upgrade`, `Connection`, `Sec-WebSocket-Version` or `Sec-WebSocket-Key` header"),
        doc::Authenticated,
        doc::NotFound,
        doc::Unprocessable,
    )
)]
pub async fn notebook_upload_socket(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(id): Path<String>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let notebook = parse(NotebookId::parse(&id))?;
    let page = aether_domain::page::PageRequest {
        limit: aether_domain::page::Limit::parse(100).map_err(ApiError::from)?,
        after: None,
    };
    // Checks read access, and gives the jobs to start with.
    let active = state.documents.notebook_jobs(&caller, notebook, true, page).await?;
    Ok(upgrade.on_upgrade(move |socket| follow_notebook(state, caller, notebook, active.items, socket)).into_response())
}

async fn follow_notebook(
    state: AppState,
    caller: aether_domain::auth::Principal,
    notebook: NotebookId,
    active: Vec<UploadJob>,
    mut socket: WebSocket,
) {
    let mut updates = state.documents.hub().subscribe_notebook(notebook);
    let mut seen: std::collections::HashMap<JobId, (JobStatus, DateTime<Utc>)> = std::collections::HashMap::new();
    for job in active {
        seen.insert(job.id, (job.status, job.updated_at));
        if send_job(&mut socket, &job).await.is_err() {
            return;
        }
    }
    let page = aether_domain::page::PageRequest {
        limit: aether_domain::page::Limit::parse(100).unwrap_or_default(),
        after: None,
    };
    loop {
        let fresh: Vec<UploadJob> = tokio::select! {
            update = updates.recv() => match update {
                Ok(job) => vec![job],
                Err(_) => Vec::new(),
            },
            // Other processes' changes: re-read the notebook's recent jobs.
            _ = tokio::time::sleep(state.settings.socket_poll * 2) => match state.documents.notebook_jobs(&caller, notebook, false, page).await {
                Ok(page) => page.items,
                Err(_) => return,
            },
            message = socket.recv() => match message {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => continue,
            },
        };
        for job in fresh {
            let changed = seen.get(&job.id).is_none_or(|(status, at)| *status != job.status || *at != job.updated_at);
            // Jobs that finished before the socket opened are not news.
            let news = seen.contains_key(&job.id) || !job.status.is_terminal();
            if changed && news {
                seen.insert(job.id, (job.status, job.updated_at));
                if send_job(&mut socket, &job).await.is_err() {
                    return;
                }
            }
        }
    }
}
