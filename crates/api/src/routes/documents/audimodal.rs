//! The external processor (AudiModal): its signed webhook and its view of a job.

use aether_domain::id::JobId;
use aether_services::ServiceError;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};

use super::parse;
use crate::error::ApiError;
use crate::extract::AuthUser;
use crate::openapi as doc;
use crate::state::AppState;

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
