//! Uploads: one file or a batch, streamed from a multipart body into jobs, and the
//! jobs' status, progress and cancellation.

use aether_domain::document::{Filename, parse_change_summary};
use aether_domain::id::{DocumentId, JobId, NotebookId};
use aether_domain::job::{CallbackUrl, UploadJob};
use aether_services::documents::UploadRequest;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;

use super::{JobPage, JobResponse, ProgressResponse, parse, progress_of};
use crate::error::{ApiError, FieldProblem};
use crate::extract::{ApiQuery, AuthUser, PageQuery, encode_cursor, job_origin};
use crate::multipart::{BoundedForm, FormLimits, missing};
use crate::openapi as doc;
use crate::state::AppState;

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

/// Cancels an unfinished job and removes what it stored. The job itself stays
/// readable (`GET …/status`), with status `cancelled`, so the uploader learns why its
/// document never appeared.
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
