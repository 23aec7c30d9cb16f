//! Notebook endpoints. Bodies are parsed here into validated domain values; the
//! service never sees JSON.

use aether_domain::ValidationError;
use aether_domain::id::NotebookId;
use aether_domain::notebook::{Description, Notebook, NotebookName, NotebookPatch, NotebookStatus, Tag, Visibility};
use aether_services::notebooks::CreateNotebook;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, FieldProblem, Problem};
use crate::extract::{ApiJson, ApiQuery, AuthUser, PageQuery, double_option, encode_cursor};
use crate::state::AppState;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NotebookResponse {
    pub id: String,
    pub owner_id: String,
    pub name: String,
    pub description: Option<String>,
    /// `private`, `shared` or `public`.
    pub visibility: String,
    /// `active` or `archived`.
    pub status: String,
    pub tags: Vec<String>,
    #[schema(value_type = Object)]
    pub compliance_settings: serde_json::Map<String, serde_json::Value>,
    pub document_count: u64,
    pub total_size_bytes: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Notebook> for NotebookResponse {
    fn from(notebook: Notebook) -> Self {
        Self {
            id: notebook.id.to_string(),
            owner_id: notebook.owner_id.to_string(),
            name: notebook.name.as_str().to_owned(),
            description: notebook.description.map(|d| d.as_str().to_owned()),
            visibility: notebook.visibility.as_str().to_owned(),
            status: notebook.status.as_str().to_owned(),
            tags: notebook.tags.iter().map(|tag| tag.as_str().to_owned()).collect(),
            compliance_settings: notebook.compliance_settings,
            document_count: notebook.document_count,
            total_size_bytes: notebook.total_size_bytes,
            created_at: notebook.created_at,
            updated_at: notebook.updated_at,
        }
    }
}

/// A page of notebooks: the list envelope shared by every list endpoint.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NotebookPage {
    pub items: Vec<NotebookResponse>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateNotebookRequest {
    /// 1–200 characters.
    pub name: Option<String>,
    pub description: Option<String>,
    /// `private` (default), `shared` or `public`.
    pub visibility: Option<String>,
    pub tags: Option<Vec<String>>,
    #[schema(value_type = Option<Object>)]
    pub compliance_settings: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A partial update: fields present are replaced, absent ones kept; `description: null` clears it.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateNotebookRequest {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    pub visibility: Option<String>,
    /// `active` or `archived`; use DELETE to delete.
    pub status: Option<String>,
    pub tags: Option<Vec<String>>,
    #[schema(value_type = Option<Object>)]
    pub compliance_settings: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Collects every field's validation failure, so a client fixes them in one round.
#[derive(Default)]
struct Problems(Vec<FieldProblem>);

impl Problems {
    fn check<T>(&mut self, result: Result<T, ValidationError>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.0.push(FieldProblem { field: error.field.to_owned(), message: error.message });
                None
            }
        }
    }

    fn finish(self) -> Result<(), ApiError> {
        if self.0.is_empty() { Ok(()) } else { Err(ApiError::validation(self.0)) }
    }
}

impl CreateNotebookRequest {
    fn parse(self) -> Result<CreateNotebook, ApiError> {
        let mut problems = Problems::default();
        let name = match self.name.as_deref() {
            Some(name) => problems.check(NotebookName::parse(name)),
            None => problems.check(Err(ValidationError::new("name", "is required"))),
        };
        let description = self.description.as_deref().map(|d| problems.check(Description::parse(d)));
        let visibility = match self.visibility.as_deref() {
            Some(visibility) => problems.check(Visibility::parse(visibility)),
            None => Some(Visibility::default()),
        };
        let tags = problems.check(Tag::parse_list(self.tags.as_deref().unwrap_or_default()));
        problems.finish()?;
        match (name, description, visibility, tags) {
            (Some(name), description, Some(visibility), Some(tags)) => Ok(CreateNotebook {
                name,
                description: description.flatten(),
                visibility,
                tags,
                compliance_settings: self.compliance_settings.unwrap_or_default(),
            }),
            _ => Err(ApiError::internal()),
        }
    }
}

impl UpdateNotebookRequest {
    fn parse(self) -> Result<NotebookPatch, ApiError> {
        let mut problems = Problems::default();
        let patch = NotebookPatch {
            name: self.name.as_deref().and_then(|name| problems.check(NotebookName::parse(name))),
            description: match self.description {
                None => None,
                Some(None) => Some(None),
                Some(Some(text)) => problems.check(Description::parse(&text)).map(Some),
            },
            visibility: self.visibility.as_deref().and_then(|v| problems.check(Visibility::parse(v))),
            status: self.status.as_deref().and_then(|status| {
                problems.check(match NotebookStatus::parse(status) {
                    Ok(NotebookStatus::Deleted) | Err(_) => {
                        Err(ValidationError::new("status", "must be active or archived"))
                    }
                    Ok(status) => Ok(status),
                })
            }),
            tags: self.tags.as_deref().and_then(|tags| problems.check(Tag::parse_list(tags))),
            compliance_settings: self.compliance_settings,
        };
        problems.finish()?;
        if patch.is_empty() {
            return Err(ApiError::validation(vec![FieldProblem {
                field: "body".into(),
                message: "give at least one field to change".into(),
            }]));
        }
        Ok(patch)
    }
}

fn parse_id(text: &str) -> Result<NotebookId, ApiError> {
    NotebookId::parse(text)
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "invalid_id", "The notebook id must be a UUID."))
}

/// Notebooks the caller owns, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/notebooks",
    tag = "notebooks",
    security(("bearer" = [])),
    params(PageQuery),
    responses(
        (status = 200, body = NotebookPage),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_notebooks(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<NotebookPage>, ApiError> {
    let page = state.notebooks.list_owned(&caller, query.parse()?).await?;
    Ok(Json(NotebookPage {
        next_cursor: page.next_after.map(encode_cursor),
        items: page.items.into_iter().map(NotebookResponse::from).collect(),
    }))
}

/// Creates a notebook owned by the caller.
#[utoipa::path(
    post,
    path = "/api/v1/notebooks",
    tag = "notebooks",
    security(("bearer" = [])),
    request_body = CreateNotebookRequest,
    responses(
        (status = 201, body = NotebookResponse, headers(("Location" = String, description = "The new notebook's URL"))),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_notebook(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    ApiJson(body): ApiJson<CreateNotebookRequest>,
) -> Result<Response, ApiError> {
    let notebook = state.notebooks.create(&caller, body.parse()?).await?;
    let location = format!("/api/v1/notebooks/{}", notebook.id);
    let mut response = (StatusCode::CREATED, Json(NotebookResponse::from(notebook))).into_response();
    if let Ok(location) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// One notebook; 404 when it does not exist or the caller may not read it.
#[utoipa::path(
    get,
    path = "/api/v1/notebooks/{id}",
    tag = "notebooks",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Notebook id (UUID)")),
    responses(
        (status = 200, body = NotebookResponse),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_notebook(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(id): Path<String>,
) -> Result<Json<NotebookResponse>, ApiError> {
    let notebook = state.notebooks.get(&caller, parse_id(&id)?).await?;
    Ok(Json(notebook.into()))
}

/// Changes the fields given; the others are kept.
#[utoipa::path(
    put,
    path = "/api/v1/notebooks/{id}",
    tag = "notebooks",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Notebook id (UUID)")),
    request_body = UpdateNotebookRequest,
    responses(
        (status = 200, body = NotebookResponse),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn update_notebook(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateNotebookRequest>,
) -> Result<Json<NotebookResponse>, ApiError> {
    let id = parse_id(&id)?;
    let notebook = state.notebooks.update(&caller, id, body.parse()?).await?;
    Ok(Json(notebook.into()))
}

/// Deletes a notebook (softly: it disappears from every read, but is kept).
#[utoipa::path(
    delete,
    path = "/api/v1/notebooks/{id}",
    tag = "notebooks",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Notebook id (UUID)")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_notebook(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.notebooks.delete(&caller, parse_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}
