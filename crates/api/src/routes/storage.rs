//! The design's file storage endpoints (`/api/v1/storage/*`) over documents'
//! stored files: `{id}` is a document id. Signed URLs let clients download without
//! credentials for a while: presigned by S3 itself, or signed by this server
//! (HMAC-SHA256, expiring) for the filesystem store and served at `/storage/signed`.

use std::time::Duration;

use aether_domain::activity::Change;
use aether_domain::id::{DocumentId, NotebookId};
use aether_domain::time;
use aether_services::documents::{SignedUrl, StorageMetadata};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::documents::{JobResponse, UploadForm, parse_variant, ranged, upload_files};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery, AuthUser, Origin, external_base_url};
use crate::openapi as doc;
use crate::state::AppState;

fn document_id(text: &str) -> Result<DocumentId, ApiError> {
    DocumentId::parse(text).map_err(ApiError::from)
}

/// Stores a file: the same as `POST /api/v1/documents/upload`.
#[utoipa::path(
    post,
    path = "/api/v1/storage/upload",
    tag = "storage",
    security(("bearer" = [])),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 202, body = JobResponse),
        doc::Authenticated,
        doc::MultipartBody,
        doc::Forbidden,
        doc::NotFound,
        doc::Conflict,
        (status = 413, description = "`file_too_large` (over `max_upload_bytes`)"),
    )
)]
pub async fn storage_upload(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    request: axum::extract::Request,
) -> Result<(StatusCode, Json<JobResponse>), ApiError> {
    let mut jobs = upload_files(&state, &caller, request, None, false).await?;
    let job = jobs.pop().ok_or_else(ApiError::internal)?;
    Ok((StatusCode::ACCEPTED, Json(job.into())))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FileQuery {
    /// A version number; the current version when absent.
    pub version: Option<u32>,
    /// `original` or `redacted`.
    #[param(inline, value_type = Option<crate::openapi::values::Variant>)]
    pub variant: Option<String>,
}

/// Downloads a stored file (streamed; honours `Range`).
#[utoipa::path(
    get,
    path = "/api/v1/storage/{id}/download",
    tag = "storage",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Document id (UUID)"), FileQuery),
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
pub async fn storage_download(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<FileQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = document_id(&id)?;
    let variant = parse_variant(query.variant.as_deref())?;
    let version = query.version;
    ranged(&headers, move |range| {
        let (documents, caller) = (state.documents.clone(), caller.clone());
        Box::pin(async move { documents.download(&caller, id, version, variant, range).await })
    })
    .await
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UrlQuery {
    /// Seconds the URL stays valid, 1–604800 (default 3600).
    #[param(minimum = 1, maximum = 604800)]
    pub expires_in: Option<u64>,
    pub version: Option<u32>,
    /// `original` or `redacted`.
    #[param(inline, value_type = Option<crate::openapi::values::Variant>)]
    pub variant: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SignedUrlResponse {
    /// An absolute URL; GET it without credentials.
    pub url: String,
    pub method: &'static str,
    pub expires_at: DateTime<Utc>,
    /// `storage` (presigned by S3) or `server` (signed by this server).
    pub signed_by: &'static str,
}

/// A time-limited download URL that needs no credentials.
#[utoipa::path(
    get,
    path = "/api/v1/storage/{id}/url",
    tag = "storage",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Document id (UUID)"), UrlQuery),
    responses(
        (status = 200, body = SignedUrlResponse),
        doc::Authenticated,
        doc::BadRequest,
        doc::Forbidden,
        doc::NotFound,
        (status = 422, description = "`validation_failed`, or `invalid_expiry`: `expires_in` out of range"),
    )
)]
pub async fn storage_url(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<UrlQuery>,
    headers: HeaderMap,
) -> Result<Json<SignedUrlResponse>, ApiError> {
    let id = document_id(&id)?;
    let variant = parse_variant(query.variant.as_deref())?;
    let expires_in = Duration::from_secs(query.expires_in.unwrap_or(3600));
    let SignedUrl { url, expires_at, signed_by } =
        state.documents.signed_url(&caller, id, query.version, variant, expires_in).await?;
    let url = if url.starts_with('/') { format!("{}{url}", external_base_url(&state, &headers)?) } else { url };
    Ok(Json(SignedUrlResponse { url, method: "GET", expires_at, signed_by }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SignedQuery {
    pub token: String,
}

/// Downloads through a server-signed URL. Needs no credentials: the token is
/// valid until it expires and cannot be altered.
#[utoipa::path(
    get,
    path = "/api/v1/storage/signed",
    tag = "storage",
    params(SignedQuery),
    responses(
        (status = 200, description = "The file, in its own content type", content_type = "*/*", body = Vec<u8>),
        (status = 206, description = "Part of the file", content_type = "*/*", body = Vec<u8>),
        doc::BadRequest,
        (status = 403, description = "`forbidden`: the link is invalid or has expired"),
        doc::NotFound,
        doc::RangeNotSatisfiable,
    )
)]
pub async fn storage_signed(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<SignedQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    ranged(&headers, move |range| {
        let (documents, token) = (state.documents.clone(), query.token.clone());
        Box::pin(async move { documents.open_signed(&token, range).await })
    })
    .await
}

/// Where and how a document's file is stored.
#[utoipa::path(
    get,
    path = "/api/v1/storage/{id}/metadata",
    tag = "storage",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Document id (UUID)")),
    responses(
        (status = 200, description = "Storage metadata", body = Object),
        doc::Authenticated,
        doc::NotFound,
        doc::Unprocessable,
    )
)]
pub async fn storage_metadata(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(id): Path<String>,
) -> Result<Json<StorageMetadata>, ApiError> {
    Ok(Json(state.documents.storage_metadata(&caller, document_id(&id)?).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CopyRequest {
    /// The notebook the copy goes to.
    #[schema(value_type = uuid::Uuid)]
    pub notebook_id: String,
}

/// Copies a document's file into a notebook, as a new upload job.
#[utoipa::path(
    post,
    path = "/api/v1/storage/{id}/copy",
    tag = "storage",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Document id (UUID)")),
    request_body = CopyRequest,
    responses(
        (status = 202, body = JobResponse),
        doc::Authenticated,
        doc::JsonBody,
        doc::Forbidden,
        doc::NotFound,
        doc::Conflict,
    )
)]
pub async fn storage_copy(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Origin(origin): Origin,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<CopyRequest>,
) -> Result<(StatusCode, Json<JobResponse>), ApiError> {
    let target = NotebookId::parse(&request.notebook_id).map_err(ApiError::from)?;
    let job = state.documents.copy(&caller, document_id(&id)?, target, origin).await?;
    Ok((StatusCode::ACCEPTED, Json(job.into())))
}

/// Deletes a stored file: the document with every version.
#[utoipa::path(
    delete,
    path = "/api/v1/storage/{id}",
    tag = "storage",
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
pub async fn storage_delete(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let change = Change::by(caller.user_id, time::now());
    state.documents.delete(&caller, document_id(&id)?, &change).await?;
    Ok(StatusCode::NO_CONTENT)
}
