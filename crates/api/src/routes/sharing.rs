//! Sharing: invitations, direct grants, who has access and why.

use aether_domain::ValidationError;
use aether_domain::access::Collaboration;
use aether_domain::access::{Access, CollaborationStatus, Permission};
use aether_domain::id::UserId;
use aether_domain::page::Page;
use aether_services::notebooks::AccessReport;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery, AuthUser, PageQuery, Writer, double_option, encode_cursor};
use crate::openapi as doc;
use crate::state::AppState;

use super::notebooks::{Problems, parse_id};

/// A `COLLABORATES_ON` relationship: an invitation or a grant.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CollaborationResponse {
    #[schema(format = Uuid)]
    pub notebook_id: String,
    #[schema(format = Uuid)]
    pub user_id: String,
    /// `read`, `write` or `admin`.
    pub permission: String,
    /// `pending` (invited), `active` (accepted or granted), `declined` or `revoked`.
    pub status: String,
    #[schema(format = Uuid)]
    pub granted_by: String,
    pub granted_at: DateTime<Utc>,
    #[schema(required = true)]
    pub accepted_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

impl From<Collaboration> for CollaborationResponse {
    fn from(c: Collaboration) -> Self {
        Self {
            notebook_id: c.notebook_id.to_string(),
            user_id: c.user_id.to_string(),
            permission: c.permission.as_str().to_owned(),
            status: c.status.as_str().to_owned(),
            granted_by: c.granted_by.to_string(),
            granted_at: c.granted_at,
            accepted_at: c.accepted_at,
            updated_at: c.updated_at,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CollaborationList {
    pub items: Vec<CollaborationResponse>,
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

impl From<Page<Collaboration>> for CollaborationList {
    fn from(page: Page<Collaboration>) -> Self {
        Self {
            next_cursor: page.next_after.map(encode_cursor),
            items: page.items.into_iter().map(CollaborationResponse::from).collect(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShareRequest {
    #[schema(required = true, nullable = false, value_type = uuid::Uuid)]
    pub user_id: Option<String>,
    /// `read`, `write` or `admin`.
    #[schema(required = true, nullable = false, value_type = crate::openapi::values::Permission)]
    pub permission: Option<String>,
}

fn parse_user_id(text: Option<&str>, problems: &mut Problems) -> Option<UserId> {
    match text {
        Some(text) => problems.check(UserId::parse(text)),
        None => problems.check(Err(ValidationError::new("user_id", "is required"))),
    }
}

/// Invites a user to collaborate; the grant applies once the invitee accepts, to
/// this notebook and everything inside it. Needs admin access.
#[utoipa::path(
    post,
    path = "/api/v1/notebooks/{id}/share",
    tag = "sharing",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Notebook id (UUID)")),
    request_body = ShareRequest,
    responses(
        (status = 201, body = CollaborationResponse),
        doc::WriterRole,
        doc::JsonBody,
        doc::Forbidden,
        doc::NotFound,
        doc::Conflict,
    )
)]
pub async fn share_notebook(
    State(state): State<AppState>,
    Writer(caller): Writer,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ShareRequest>,
) -> Result<(StatusCode, Json<CollaborationResponse>), ApiError> {
    let id = parse_id(&id)?;
    let mut problems = Problems::default();
    let user = parse_user_id(body.user_id.as_deref(), &mut problems);
    let permission = match body.permission.as_deref() {
        Some(text) => problems.check(Permission::parse(text)),
        None => problems.check(Err(ValidationError::new("permission", "is required"))),
    };
    problems.finish()?;
    let (Some(user), Some(permission)) = (user, permission) else { return Err(ApiError::internal()) };
    let invitation = state.notebooks.share(&caller, id, user, permission).await?;
    Ok((StatusCode::CREATED, Json(invitation.into())))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PermissionRequest {
    #[schema(required = true, nullable = false, value_type = uuid::Uuid)]
    pub user_id: Option<String>,
    /// `read`, `write`, `admin`, or `null` to revoke.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(required = true, value_type = Option<crate::openapi::values::Permission>)]
    pub permission: Option<Option<String>>,
}

/// Grants or changes a user's permission directly (no invitation), or revokes it
/// with `"permission": null`. Needs admin access.
#[utoipa::path(
    put,
    path = "/api/v1/notebooks/{id}/permissions",
    tag = "sharing",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Notebook id (UUID)")),
    request_body = PermissionRequest,
    responses(
        (status = 200, body = CollaborationResponse),
        (status = 204, description = "Revoked"),
        doc::WriterRole,
        doc::JsonBody,
        doc::Forbidden,
        doc::NotFound,
        doc::Conflict,
    )
)]
pub async fn set_permission(
    State(state): State<AppState>,
    Writer(caller): Writer,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PermissionRequest>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let mut problems = Problems::default();
    let user = parse_user_id(body.user_id.as_deref(), &mut problems);
    let permission = match body.permission {
        None => problems.check(Err(ValidationError::new("permission", "is required (null revokes)"))),
        Some(None) => Some(None),
        Some(Some(text)) => problems.check(Permission::parse(&text)).map(Some),
    };
    problems.finish()?;
    let (Some(user), Some(permission)) = (user, permission) else { return Err(ApiError::internal()) };
    Ok(match state.notebooks.set_permission(&caller, id, user, permission).await? {
        Some(grant) => Json(CollaborationResponse::from(grant)).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

/// Everyone invited to or granted access on this notebook, in the order of their
/// user ids (oldest account first). Needs admin access.
#[utoipa::path(
    get,
    path = "/api/v1/notebooks/{id}/collaborators",
    tag = "sharing",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Notebook id (UUID)"), PageQuery),
    responses(
        (status = 200, body = CollaborationList),
        doc::Authenticated,
        doc::BadRequest,
        doc::Forbidden,
        doc::NotFound,
        doc::Unprocessable,
    )
)]
pub async fn list_collaborators(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<CollaborationList>, ApiError> {
    let id = parse_id(&id)?;
    Ok(Json(state.notebooks.collaborators(&caller, id, query.parse()?).await?.into()))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InvitationQuery {
    /// `pending` (default), `active`, `declined` or `revoked`.
    #[param(inline, value_type = Option<crate::openapi::values::CollaborationStatus>)]
    pub status: Option<String>,
    /// Items per page, 1–100 (default 20).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// The `next_cursor` of a previous page.
    #[param(pattern = "^[A-Za-z0-9_-]{21}[AQgw]$")]
    pub cursor: Option<String>,
}

/// The caller's invitations, in the order of the notebooks' ids (newest notebook first).
#[utoipa::path(
    get,
    path = "/api/v1/invitations",
    tag = "sharing",
    security(("bearer" = [])),
    params(InvitationQuery),
    responses(
        (status = 200, body = CollaborationList),
        doc::Authenticated,
        doc::BadRequest,
        doc::Unprocessable,
    )
)]
pub async fn list_invitations(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    ApiQuery(query): ApiQuery<InvitationQuery>,
) -> Result<Json<CollaborationList>, ApiError> {
    let status = CollaborationStatus::parse(query.status.as_deref().unwrap_or("pending"))?;
    let page = PageQuery { limit: query.limit, cursor: query.cursor }.parse()?;
    Ok(Json(state.notebooks.invitations(&caller, status, page).await?.into()))
}

/// Accepts the caller's pending invitation to this notebook.
#[utoipa::path(
    post,
    path = "/api/v1/notebooks/{id}/share/accept",
    tag = "sharing",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Notebook id (UUID)")),
    responses(
        (status = 200, body = CollaborationResponse),
        doc::Authenticated,
        doc::BadRequest,
        (status = 404, description = "`not_found`: no pending invitation to this notebook"),
    )
)]
pub async fn accept_invitation(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(id): Path<String>,
) -> Result<Json<CollaborationResponse>, ApiError> {
    Ok(Json(state.notebooks.answer_invitation(&caller, parse_id(&id)?, true).await?.into()))
}

/// Declines the caller's pending invitation to this notebook. Answering an invitation
/// is open to viewers too: it is about their own access, which their role still caps.
#[utoipa::path(
    post,
    path = "/api/v1/notebooks/{id}/share/decline",
    tag = "sharing",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Notebook id (UUID)")),
    responses(
        (status = 200, body = CollaborationResponse),
        doc::Authenticated,
        doc::BadRequest,
        (status = 404, description = "`not_found`: no pending invitation to this notebook"),
    )
)]
pub async fn decline_invitation(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(id): Path<String>,
) -> Result<Json<CollaborationResponse>, ApiError> {
    Ok(Json(state.notebooks.answer_invitation(&caller, parse_id(&id)?, false).await?.into()))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AccessResponse {
    #[schema(format = Uuid)]
    pub notebook_id: String,
    #[schema(format = Uuid)]
    pub user_id: String,
    /// `read`, `write`, `admin`, or `null` when the user cannot see the notebook.
    #[schema(required = true)]
    pub permission: Option<String>,
    /// Why: each relationship or role that grants access, the strongest first.
    #[schema(value_type = Vec<Object>)]
    pub sources: Vec<serde_json::Value>,
    /// A role that lowers what the sources grant (`aether-viewer`).
    #[schema(required = true)]
    pub capped_by: Option<String>,
}

impl From<AccessReport> for AccessResponse {
    fn from(report: AccessReport) -> Self {
        let (permission, sources, capped_by) = match report.access {
            Some(Access { permission, sources, capped_by }) => (
                Some(permission.as_str().to_owned()),
                sources.iter().filter_map(|source| serde_json::to_value(source).ok()).collect(),
                capped_by.map(|role| role.as_str().to_owned()),
            ),
            None => (None, Vec::new(), None),
        };
        Self {
            notebook_id: report.notebook_id.to_string(),
            user_id: report.user_id.to_string(),
            permission,
            sources,
            capped_by,
        }
    }
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AccessQuery {
    /// Whose access to explain; yourself when absent (asking about others needs admin access).
    #[param(value_type = Option<uuid::Uuid>)]
    pub user_id: Option<String>,
}

/// The effective permission of a user on this notebook and the path of
/// relationships that grants it.
#[utoipa::path(
    get,
    path = "/api/v1/notebooks/{id}/access",
    tag = "sharing",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Notebook id (UUID)"), AccessQuery),
    responses(
        (status = 200, body = AccessResponse),
        doc::Authenticated,
        doc::BadRequest,
        doc::Forbidden,
        doc::NotFound,
        doc::Unprocessable,
    )
)]
pub async fn explain_access(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<AccessQuery>,
) -> Result<Json<AccessResponse>, ApiError> {
    let id = parse_id(&id)?;
    let user = query.user_id.as_deref().map(UserId::parse).transpose()?;
    Ok(Json(state.notebooks.explain_access(&caller, id, user).await?.into()))
}
