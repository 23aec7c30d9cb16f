//! What happened: a notebook's activity feed and the audit log.

use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::extract::{ApiQuery, AuthUser, PageQuery, encode_cursor};
use crate::openapi as doc;
use crate::state::AppState;

use super::notebooks::parse_id;

/// One `ActivityEvent` about a notebook.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ActivityResponse {
    #[schema(format = Uuid)]
    pub id: String,
    /// `created`, `updated`, `moved`, `deleted`, `restored`, `invited`,
    /// `permission_granted`, `invitation_accepted`, `invitation_declined`, `permission_revoked`.
    pub event_type: String,
    /// Who did it; `null` for the system.
    #[schema(required = true, format = Uuid)]
    pub actor_id: Option<String>,
    #[schema(format = Uuid)]
    pub notebook_id: String,
    #[schema(value_type = Object)]
    pub details: serde_json::Map<String, serde_json::Value>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ActivityPage {
    pub items: Vec<ActivityResponse>,
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// What happened to a notebook, newest first. Needs read access.
#[utoipa::path(
    get,
    path = "/api/v1/notebooks/{id}/activity",
    tag = "notebooks",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Notebook id (UUID)"), PageQuery),
    responses(
        (status = 200, body = ActivityPage),
        doc::Authenticated,
        doc::BadRequest,
        doc::NotFound,
        doc::Unprocessable,
    )
)]
pub async fn notebook_activity(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<ActivityPage>, ApiError> {
    let page = state.notebooks.activity(&caller, parse_id(&id)?, query.parse()?).await?;
    Ok(Json(ActivityPage {
        next_cursor: page.next_after.map(encode_cursor),
        items: page
            .items
            .into_iter()
            .map(|event| ActivityResponse {
                id: event.id.to_string(),
                event_type: event.event_type,
                actor_id: event.actor_id.map(|id| id.to_string()),
                notebook_id: event.notebook_id.to_string(),
                details: event.details,
                created_at: event.created_at,
            })
            .collect(),
    }))
}

/// One `AuditLog` entry.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditResponse {
    #[schema(format = Uuid)]
    pub id: String,
    /// `create`, `update`, `delete`, `restore`, `share`, `revoke`.
    pub action: String,
    pub resource_type: String,
    pub resource_id: String,
    #[schema(required = true, format = Uuid)]
    pub performed_by: Option<String>,
    #[schema(value_type = Object)]
    pub details: serde_json::Map<String, serde_json::Value>,
    #[schema(required = true)]
    pub ip_address: Option<String>,
    #[schema(required = true)]
    pub user_agent: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditResponse>,
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only entries about this resource id.
    pub resource_id: Option<String>,
    /// Items per page, 1–100 (default 20).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// The `next_cursor` of a previous page.
    #[param(pattern = "^[A-Za-z0-9_-]{21}[AQgw]$")]
    pub cursor: Option<String>,
}

/// The audit log, newest first. For `aether-admin` and `compliance-officer`.
#[utoipa::path(
    get,
    path = "/api/v1/admin/audit",
    tag = "admin",
    security(("bearer" = [])),
    params(AuditQuery),
    responses(
        (status = 200, body = AuditPage),
        doc::Authenticated,
        doc::BadRequest,
        doc::Forbidden,
        doc::Unprocessable,
    )
)]
pub async fn audit_log(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    let page = PageQuery { limit: query.limit, cursor: query.cursor }.parse()?;
    let page = state.notebooks.audit(&caller, query.resource_id, page).await?;
    Ok(Json(AuditPage {
        next_cursor: page.next_after.map(encode_cursor),
        items: page
            .items
            .into_iter()
            .map(|entry| AuditResponse {
                id: entry.id.to_string(),
                action: entry.action,
                resource_type: entry.resource_type,
                resource_id: entry.resource_id,
                performed_by: entry.performed_by.map(|id| id.to_string()),
                details: entry.details,
                ip_address: entry.ip_address,
                user_agent: entry.user_agent,
                created_at: entry.created_at,
            })
            .collect(),
    }))
}
