//! What happened: a notebook's activity feed and the audit log.

use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, Problem};
use crate::extract::{ApiQuery, AuthUser, PageQuery, encode_cursor};
use crate::state::AppState;

use super::notebooks::parse_id;

/// One `ActivityEvent` about a notebook.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ActivityResponse {
    pub id: String,
    /// `created`, `updated`, `moved`, `deleted`, `restored`, `invited`,
    /// `permission_granted`, `invitation_accepted`, `invitation_declined`, `permission_revoked`.
    pub event_type: String,
    /// Who did it; `null` for the system.
    pub actor_id: Option<String>,
    pub notebook_id: String,
    #[schema(value_type = Object)]
    pub details: serde_json::Map<String, serde_json::Value>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ActivityPage {
    pub items: Vec<ActivityResponse>,
    pub next_cursor: Option<String>,
}

/// What happened to a notebook, newest first. Needs read access.
#[utoipa::path(
    get,
    path = "/api/v1/notebooks/{id}/activity",
    tag = "notebooks",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Notebook id (UUID)"), PageQuery),
    responses(
        (status = 200, body = ActivityPage),
        (status = 404, body = Problem, content_type = "application/problem+json"),
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
    pub id: String,
    /// `create`, `update`, `delete`, `restore`, `share`, `revoke`.
    pub action: String,
    pub resource_type: String,
    pub resource_id: String,
    pub performed_by: Option<String>,
    #[schema(value_type = Object)]
    pub details: serde_json::Map<String, serde_json::Value>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditResponse>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only entries about this resource id.
    pub resource_id: Option<String>,
    pub limit: Option<String>,
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
        (status = 403, body = Problem, content_type = "application/problem+json"),
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
