//! Notebook endpoints. Bodies are parsed here into validated domain values; the
//! service never sees JSON.

use aether_domain::ValidationError;
use aether_domain::compliance::ComplianceSettings;
use aether_domain::id::NotebookId;
use aether_domain::notebook::{BulkAction, ListScope, NotebookQuery, SortOrder};
use aether_domain::notebook::{Description, Notebook, NotebookName, NotebookPatch, NotebookStatus, Tag, Visibility};
use aether_services::notebooks::{CreateNotebook, UpdateNotebook};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, FieldProblem};
use crate::extract::{ApiJson, ApiQuery, AuthUser, PageQuery, Writer, double_option, encode_cursor, present};
use crate::openapi as doc;
use crate::state::AppState;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NotebookResponse {
    #[schema(format = Uuid)]
    pub id: String,
    #[schema(format = Uuid)]
    pub owner_id: String,
    /// The notebook this one is in; `null` for a root notebook.
    #[schema(required = true, format = Uuid)]
    pub parent_id: Option<String>,
    pub name: String,
    #[schema(required = true)]
    pub description: Option<String>,
    /// `private`, `shared` or `public`.
    pub visibility: String,
    /// `active` or `archived`.
    pub status: String,
    pub tags: Vec<String>,
    /// `{pii_detection, redaction_mode, retention_days, allowed_content_types, hipaa_mode}`.
    #[schema(value_type = Object)]
    pub compliance_settings: ComplianceSettings,
    pub document_count: u64,
    pub total_size_bytes: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Incremented by every change; also the `ETag` header. Send it back in `If-Match`.
    pub version: u64,
    /// Templates are notebooks others copy to start from (`template_id` on create).
    pub is_template: bool,
}

impl From<Notebook> for NotebookResponse {
    fn from(notebook: Notebook) -> Self {
        Self {
            id: notebook.id.to_string(),
            owner_id: notebook.owner_id.to_string(),
            parent_id: notebook.parent_id.map(|id| id.to_string()),
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
            version: notebook.version,
            is_template: notebook.is_template,
        }
    }
}

/// A page of notebooks: the list envelope shared by every list endpoint.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NotebookPage {
    pub items: Vec<NotebookResponse>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateNotebookRequest {
    /// Create inside this notebook (write access to it is required).
    #[schema(value_type = Option<uuid::Uuid>)]
    pub parent_id: Option<String>,
    /// 1–200 characters.
    #[schema(required = true, nullable = false, value_type = crate::openapi::values::NotebookName)]
    pub name: Option<String>,
    #[schema(value_type = Option<crate::openapi::values::Description>)]
    pub description: Option<String>,
    /// `private` (default), `shared` or `public`.
    #[schema(value_type = Option<crate::openapi::values::Visibility>)]
    pub visibility: Option<String>,
    #[schema(value_type = Option<crate::openapi::values::Tags>)]
    pub tags: Option<Vec<String>>,
    /// `{pii_detection, redaction_mode: none|mask|remove, retention_days, allowed_content_types, hipaa_mode}`.
    #[schema(value_type = Option<crate::openapi::values::ComplianceSettings>)]
    pub compliance_settings: Option<serde_json::Value>,
    /// Make this notebook a template.
    pub is_template: Option<bool>,
    /// Create a copy of this template (its fields and child notebooks) instead;
    /// only `name` and `parent_id` may accompany it.
    #[schema(value_type = Option<uuid::Uuid>)]
    pub template_id: Option<String>,
}

/// A partial update: fields present are replaced, absent ones kept; `description: null` clears it.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1)]
pub struct UpdateNotebookRequest {
    /// Move under this notebook; `null` moves to the root. Needs admin access here and
    /// write access to the new parent.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<uuid::Uuid>)]
    pub parent_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(nullable = false, value_type = Option<crate::openapi::values::NotebookName>)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<crate::openapi::values::Description>)]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(nullable = false, value_type = Option<crate::openapi::values::Visibility>)]
    pub visibility: Option<String>,
    /// `active` or `archived`; use DELETE to delete.
    #[serde(default, deserialize_with = "present")]
    #[schema(nullable = false, value_type = Option<crate::openapi::values::NotebookStatus>)]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(nullable = false, value_type = Option<crate::openapi::values::Tags>)]
    pub tags: Option<Vec<String>>,
    /// `{pii_detection, redaction_mode: none|mask|remove, retention_days, allowed_content_types, hipaa_mode}`.
    #[serde(default, deserialize_with = "present")]
    #[schema(nullable = false, value_type = Option<crate::openapi::values::ComplianceSettings>)]
    pub compliance_settings: Option<serde_json::Value>,
    /// Needs admin access.
    #[serde(default, deserialize_with = "present")]
    #[schema(nullable = false)]
    pub is_template: Option<bool>,
}

/// Collects every field's validation failure, so a client fixes them in one round.
#[derive(Default)]
pub(crate) struct Problems(Vec<FieldProblem>);

impl Problems {
    pub(crate) fn check<T>(&mut self, result: Result<T, ValidationError>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.0.push(FieldProblem { field: error.field.to_owned(), message: error.message });
                None
            }
        }
    }

    pub(crate) fn finish(self) -> Result<(), ApiError> {
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
        let parent_id = self.parent_id.as_deref().map(|id| problems.check(NotebookId::parse(id).map_err(as_parent)));
        let template_id = self.template_id.as_deref().and_then(|id| {
            problems.check(NotebookId::parse(id).map_err(|_| ValidationError::new("template_id", "must be a UUID")))
        });
        if self.template_id.is_some()
            && (self.description.is_some()
                || self.visibility.is_some()
                || self.tags.is_some()
                || self.compliance_settings.is_some()
                || self.is_template.is_some())
        {
            problems.check::<()>(Err(ValidationError::new(
                "template_id",
                "only name and parent_id may accompany a template; the rest comes from it",
            )));
        }
        let compliance = self.compliance_settings.map(|value| problems.check(ComplianceSettings::parse(value)));
        problems.finish()?;
        match (name, description, visibility, tags) {
            (Some(name), description, Some(visibility), Some(tags)) => Ok(CreateNotebook {
                parent_id: parent_id.flatten(),
                name,
                description: description.flatten(),
                visibility,
                tags,
                compliance_settings: compliance.flatten().unwrap_or_default(),
                is_template: self.is_template.unwrap_or(false),
                template_id,
            }),
            _ => Err(ApiError::internal()),
        }
    }
}

pub(crate) fn as_parent(_: ValidationError) -> ValidationError {
    ValidationError::new("parent_id", "must be a UUID")
}

impl UpdateNotebookRequest {
    fn parse(self) -> Result<UpdateNotebook, ApiError> {
        let mut problems = Problems::default();
        let parent_id = match self.parent_id {
            None => None,
            Some(None) => Some(None),
            Some(Some(id)) => problems.check(NotebookId::parse(&id).map_err(as_parent)).map(Some),
        };
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
            compliance_settings: self
                .compliance_settings
                .and_then(|value| problems.check(ComplianceSettings::parse(value))),
            is_template: self.is_template,
        };
        problems.finish()?;
        if patch.is_empty() && parent_id.is_none() {
            return Err(ApiError::validation(vec![FieldProblem {
                field: "body".into(),
                message: "give at least one field to change".into(),
            }]));
        }
        Ok(UpdateNotebook { patch, parent_id, expected_version: None })
    }
}

/// A notebook as a response with its `ETag`.
pub(crate) fn with_etag(status: StatusCode, notebook: Notebook) -> Response {
    let etag = format!("\"{}\"", notebook.version);
    let mut response = (status, Json(NotebookResponse::from(notebook))).into_response();
    if let Ok(value) = HeaderValue::from_str(&etag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

/// `If-Match` (RFC 9110 §13.1.1): absent or `*` (any existing notebook matches) is
/// `None`; otherwise the versions of its entity tags. Tags are compared strongly, so
/// weak ones (`W/"3"`) and ones this API never issues match nothing: they are left
/// out, and an empty list fails the precondition (412). Only a header that is not a
/// list of entity tags is refused (400).
fn if_match(headers: &HeaderMap) -> Result<Option<Vec<u64>>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else { return Ok(None) };
    let invalid = || {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_if_match",
            "If-Match must be * or a list of entity tags, like \"3\".",
        )
    };
    let text = value.to_str().map_err(|_| invalid())?.trim();
    if text == "*" {
        return Ok(None);
    }
    let mut versions = Vec::new();
    let mut rest = text;
    loop {
        let (weak, tag) = match rest.strip_prefix("W/") {
            Some(tag) => (true, tag),
            None => (false, rest),
        };
        let (opaque, after) = tag.strip_prefix('"').and_then(|tag| tag.split_once('"')).ok_or_else(invalid)?;
        if !weak && let Ok(version) = opaque.parse::<u64>() {
            versions.push(version);
        }
        rest = after.trim_start();
        if rest.is_empty() {
            return Ok(Some(versions));
        }
        rest = rest.strip_prefix(',').ok_or_else(invalid)?.trim_start();
    }
}

/// A version no notebook reaches: an `If-Match` that names none of the notebook's fails.
const NO_VERSION: u64 = u64::MAX;

pub(crate) fn parse_id(text: &str) -> Result<NotebookId, ApiError> {
    NotebookId::parse(text)
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "invalid_id", "The notebook id must be a UUID."))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `owned` (default): notebooks you own; `shared`: notebooks shared with you,
    /// directly or through a parent; `public`: every public notebook.
    #[param(inline, value_type = Option<crate::openapi::values::NotebookScope>)]
    pub scope: Option<String>,
    /// `active` or `archived` (default: both).
    #[param(inline, value_type = Option<crate::openapi::values::NotebookStatus>)]
    pub status: Option<String>,
    /// `private`, `shared` or `public`.
    #[param(inline, value_type = Option<crate::openapi::values::Visibility>)]
    pub visibility: Option<String>,
    /// Only notebooks with this tag (1–64 characters, not blank, no control characters).
    #[param(
        min_length = 1,
        max_length = 64,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub tag: Option<String>,
    /// `newest` (default) or `oldest`.
    #[param(inline, value_type = Option<crate::openapi::values::SortOrder>)]
    pub sort: Option<String>,
    /// `true`: only templates; `false`: only regular notebooks.
    pub template: Option<bool>,
    /// Items per page, 1–100 (default 20).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// The `next_cursor` of a previous page.
    #[param(pattern = "^[A-Za-z0-9_-]{21}[AQgw]$")]
    pub cursor: Option<String>,
}

/// Notebooks the caller owns, or that others shared with it; newest first.
#[utoipa::path(
    get,
    path = "/api/v1/notebooks",
    tag = "notebooks",
    security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, body = NotebookPage),
        doc::Authenticated,
        doc::BadRequest,
        doc::Unprocessable,
    )
)]
pub async fn list_notebooks(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<NotebookPage>, ApiError> {
    let mut problems = Problems::default();
    let scope = match query.scope.as_deref() {
        None | Some("owned") => Some(ListScope::Owned(caller.user_id)),
        Some("shared") => Some(ListScope::SharedWith(caller.user_id)),
        Some("public") => Some(ListScope::Public),
        Some(_) => problems.check(Err(ValidationError::new("scope", "must be owned, shared or public"))),
    };
    let status = query.status.as_deref().and_then(|status| {
        problems.check(match NotebookStatus::parse(status) {
            Ok(NotebookStatus::Deleted) | Err(_) => Err(ValidationError::new("status", "must be active or archived")),
            Ok(status) => Ok(status),
        })
    });
    let visibility = query.visibility.as_deref().and_then(|v| problems.check(Visibility::parse(v)));
    let tag = query.tag.as_deref().and_then(|tag| problems.check(Tag::parse(tag)));
    let order = match query.sort.as_deref() {
        None | Some("newest") => Some(SortOrder::NewestFirst),
        Some("oldest") => Some(SortOrder::OldestFirst),
        Some(_) => problems.check(Err(ValidationError::new("sort", "must be newest or oldest"))),
    };
    problems.finish()?;
    let page = PageQuery { limit: query.limit, cursor: query.cursor }.parse()?;
    let (Some(scope), Some(order)) = (scope, order) else { return Err(ApiError::internal()) };
    let request = NotebookQuery { scope, status, visibility, tag, template: query.template, order, page };
    let page = state.notebooks.list(request).await?;
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
    request_body = crate::openapi::values::CreateNotebookBody,
    responses(
        (status = 201, body = NotebookResponse, headers(("Location" = String, description = "The new notebook's URL"), ("ETag" = String, description = "The notebook's version, for `If-Match`"))),
        doc::WriterRole,
        doc::JsonBody,
        (status = 404, description = "`not_found`: the parent or template does not exist or is not visible to you"),
        (status = 409, description = "`depth_exceeded` or another state that forbids creating it there"),
    )
)]
pub async fn create_notebook(
    State(state): State<AppState>,
    Writer(caller): Writer,
    ApiJson(body): ApiJson<CreateNotebookRequest>,
) -> Result<Response, ApiError> {
    let notebook = state.notebooks.create(&caller, body.parse()?).await?;
    let location = format!("/api/v1/notebooks/{}", notebook.id);
    let mut response = with_etag(StatusCode::CREATED, notebook);
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
    params(("id" = uuid::Uuid, Path, description = "Notebook id (UUID)")),
    responses(
        (status = 200, body = NotebookResponse, headers(("ETag" = String, description = "The notebook's version, for `If-Match`"))),
        doc::Authenticated,
        doc::BadRequest,
        doc::NotFound,
    )
)]
pub async fn get_notebook(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (notebook, _) = state.notebooks.get(&caller, parse_id(&id)?).await?;
    Ok(with_etag(StatusCode::OK, notebook))
}

/// Changes the fields given; the others are kept. With `If-Match: "<version>"`
/// (the `ETag` of a read), the update applies only if nobody changed the notebook
/// since; otherwise 412.
#[utoipa::path(
    put,
    path = "/api/v1/notebooks/{id}",
    tag = "notebooks",
    security(("bearer" = [])),
    params(
        ("id" = uuid::Uuid, Path, description = "Notebook id (UUID)"),
        ("If-Match" = Option<String>, Header, nullable = false, pattern = "^\\s*(\\*|(W/)?\"[^\"]*\"(\\s*,\\s*(W/)?\"[^\"]*\")*)\\s*$", description = "The ETag the update is based on (`\"3\"`), a list of them, or `*` (RFC 9110 §13.1.1); tags are compared strongly"),
    ),
    request_body = UpdateNotebookRequest,
    responses(
        (status = 200, body = NotebookResponse, headers(("ETag" = String, description = "The notebook's new version"))),
        doc::WriterRole,
        doc::JsonBody,
        doc::Forbidden,
        doc::NotFound,
        (status = 409, description = "`depth_exceeded`, `cycle` or another conflict with the hierarchy"),
        doc::PreconditionFailed,
    )
)]
pub async fn update_notebook(
    State(state): State<AppState>,
    Writer(caller): Writer,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<UpdateNotebookRequest>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let mut update = body.parse()?;
    update.expected_version = match if_match(&headers)?.as_deref() {
        None => None,
        Some([]) => Some(NO_VERSION),
        Some([version]) => Some(*version),
        Some(versions) => {
            // Several tags: the update is conditional on the one that is current, if
            // any; the store checks it again atomically.
            let (current, _) = state.notebooks.get(&caller, id).await?;
            Some(if versions.contains(&current.version) { current.version } else { NO_VERSION })
        }
    };
    let notebook = state.notebooks.update(&caller, id, update).await?;
    Ok(with_etag(StatusCode::OK, notebook))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// `true` deletes the notebook's descendants too; without it, a notebook with
    /// children is not deleted (409 `has_children`).
    pub cascade: Option<bool>,
}

/// Deletes a notebook (softly: it disappears from every read, but is kept). Needs admin access.
#[utoipa::path(
    delete,
    path = "/api/v1/notebooks/{id}",
    tag = "notebooks",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Notebook id (UUID)"), DeleteQuery),
    responses(
        (status = 204, description = "Deleted"),
        doc::WriterRole,
        doc::BadRequest,
        doc::Forbidden,
        doc::NotFound,
        (status = 409, description = "`has_children`: pass `cascade=true`"),
    )
)]
pub async fn delete_notebook(
    State(state): State<AppState>,
    Writer(caller): Writer,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<DeleteQuery>,
) -> Result<StatusCode, ApiError> {
    state.notebooks.delete(&caller, parse_id(&id)?, query.cascade.unwrap_or(false)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Child notebooks the caller may read, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/notebooks/{id}/children",
    tag = "notebooks",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Notebook id (UUID)"), PageQuery),
    responses(
        (status = 200, body = NotebookPage),
        doc::Authenticated,
        doc::BadRequest,
        doc::NotFound,
        doc::Unprocessable,
    )
)]
pub async fn list_children(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<NotebookPage>, ApiError> {
    let page = state.notebooks.children(&caller, parse_id(&id)?, query.parse()?).await?;
    Ok(Json(NotebookPage {
        next_cursor: page.next_after.map(encode_cursor),
        items: page.items.into_iter().map(NotebookResponse::from).collect(),
    }))
}

/// Restores a deleted notebook (its deleted children stay deleted). Allowed to the
/// owner, global administrators and admins of the parent.
#[utoipa::path(
    post,
    path = "/api/v1/notebooks/{id}/restore",
    tag = "notebooks",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Notebook id (UUID)")),
    responses(
        (status = 200, body = NotebookResponse, headers(("ETag" = String, description = "The notebook's version"))),
        doc::WriterRole,
        doc::BadRequest,
        (status = 404, description = "`not_found`: no deleted notebook you may restore"),
        (status = 409, description = "`parent_deleted`: restore the parent first"),
    )
)]
pub async fn restore_notebook(
    State(state): State<AppState>,
    Writer(caller): Writer,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let notebook = state.notebooks.restore(&caller, parse_id(&id)?).await?;
    Ok(with_etag(StatusCode::OK, notebook))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DuplicateRequest {
    /// The copy's name; "<name> (copy)" when absent.
    #[schema(value_type = Option<crate::openapi::values::NotebookName>)]
    pub name: Option<String>,
    /// Where to put the copy (write access needed); the root when absent.
    #[schema(value_type = Option<uuid::Uuid>)]
    pub parent_id: Option<String>,
}

/// Deep-copies a notebook you can read, with its live child notebooks, into a new
/// tree you own. Sharing and activity are not copied.
#[utoipa::path(
    post,
    path = "/api/v1/notebooks/{id}/duplicate",
    tag = "notebooks",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Notebook id (UUID)")),
    request_body = DuplicateRequest,
    responses(
        (status = 201, body = NotebookResponse, headers(("Location" = String, description = "The copy's URL"), ("ETag" = String, description = "The copy's version"))),
        doc::WriterRole,
        doc::JsonBody,
        doc::Forbidden,
        doc::NotFound,
        (status = 409, description = "`depth_exceeded`"),
    )
)]
pub async fn duplicate_notebook(
    State(state): State<AppState>,
    Writer(caller): Writer,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DuplicateRequest>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let mut problems = Problems::default();
    let name = body.name.as_deref().and_then(|name| problems.check(NotebookName::parse(name)));
    let parent =
        body.parent_id.as_deref().and_then(|parent| problems.check(NotebookId::parse(parent).map_err(as_parent)));
    problems.finish()?;
    let copy = state.notebooks.duplicate(&caller, id, name, parent).await?;
    let location = format!("/api/v1/notebooks/{}", copy.id);
    let mut response = with_etag(StatusCode::CREATED, copy);
    if let Ok(location) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkRequest {
    /// 1–100 notebook ids, each once.
    #[schema(required = true, nullable = false, value_type = Vec<uuid::Uuid>, min_items = 1, max_items = 100)]
    pub ids: Option<Vec<String>>,
    /// `move`, `tag`, `untag`, `archive`, `unarchive` or `delete`.
    #[schema(required = true, nullable = false, value_type = crate::openapi::values::BulkAction)]
    pub action: Option<String>,
    /// For `move`: the new parent, or `null` for the root.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<uuid::Uuid>)]
    pub parent_id: Option<Option<String>>,
    /// For `tag` and `untag`.
    #[schema(value_type = Option<crate::openapi::values::Tags>)]
    pub tags: Option<Vec<String>>,
    /// For `delete`: delete subtrees too.
    pub cascade: Option<bool>,
}

/// Applies one action to several notebooks in one all-or-nothing request: if any
/// notebook cannot be changed, none is.
#[utoipa::path(
    post,
    path = "/api/v1/notebooks/bulk",
    tag = "notebooks",
    security(("bearer" = [])),
    request_body = crate::openapi::values::BulkBody,
    responses(
        (status = 200, description = "The changed notebooks (none for delete)", body = NotebookPage),
        doc::WriterRole,
        doc::JsonBody,
        doc::Forbidden,
        doc::NotFound,
        doc::Conflict,
    )
)]
pub async fn bulk_update(
    State(state): State<AppState>,
    Writer(caller): Writer,
    ApiJson(body): ApiJson<BulkRequest>,
) -> Result<Json<NotebookPage>, ApiError> {
    let mut problems = Problems::default();
    let ids = match body.ids.as_deref() {
        Some(ids) if !ids.is_empty() && ids.len() <= 100 => {
            let parsed: Vec<NotebookId> = ids.iter().filter_map(|id| problems.check(NotebookId::parse(id))).collect();
            let mut unique = parsed.clone();
            unique.sort();
            unique.dedup();
            if unique.len() != parsed.len() {
                problems.check::<()>(Err(ValidationError::new("ids", "must not repeat an id")));
            }
            parsed
        }
        _ => {
            problems.check::<()>(Err(ValidationError::new("ids", "must list 1 to 100 notebook ids")));
            Vec::new()
        }
    };
    let tags = |problems: &mut Problems| match body.tags.as_deref() {
        Some(tags) if !tags.is_empty() => problems.check(Tag::parse_list(tags)),
        _ => problems.check(Err(ValidationError::new("tags", "is required for tag and untag"))),
    };
    let action = match body.action.as_deref() {
        Some("move") => match &body.parent_id {
            None => problems.check(Err(ValidationError::new("parent_id", "is required for move (null for the root)"))),
            Some(None) => Some(BulkAction::Move { parent: None }),
            Some(Some(id)) => {
                problems.check(NotebookId::parse(id).map_err(as_parent)).map(|id| BulkAction::Move { parent: Some(id) })
            }
        },
        Some("tag") => tags(&mut problems).map(BulkAction::Tag),
        Some("untag") => tags(&mut problems).map(BulkAction::Untag),
        Some("archive") => Some(BulkAction::Archive),
        Some("unarchive") => Some(BulkAction::Unarchive),
        Some("delete") => Some(BulkAction::Delete { cascade: body.cascade.unwrap_or(false) }),
        _ => problems
            .check(Err(ValidationError::new("action", "must be move, tag, untag, archive, unarchive or delete"))),
    };
    problems.finish()?;
    let Some(action) = action else { return Err(ApiError::internal()) };
    let updated = state.notebooks.bulk(&caller, &ids, &action).await?;
    Ok(Json(NotebookPage { items: updated.into_iter().map(NotebookResponse::from).collect(), next_cursor: None }))
}
