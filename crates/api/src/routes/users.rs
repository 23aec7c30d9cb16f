//! The Users service: the caller's account and settings, other users' public
//! profiles, search, synchronisation from the identity provider, personal API keys,
//! and user administration.

use aether_domain::api_key::{ApiKey, ApiKeyName, ApiKeyScope};
use aether_domain::id::{ApiKeyId, UserId};
use aether_domain::page::PageRequest;
use aether_domain::user::{Role, User};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, FieldProblem};
use crate::extract::{Admin, ApiJson, ApiQuery, AuthUser, PageQuery, double_option, encode_cursor, present};
use crate::openapi as doc;
use crate::state::AppState;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserResponse {
    #[schema(format = Uuid)]
    pub id: String,
    pub username: String,
    #[schema(required = true)]
    pub email: Option<String>,
    #[schema(required = true)]
    pub full_name: Option<String>,
    #[schema(required = true)]
    pub avatar_url: Option<String>,
    /// Realm roles, as Keycloak names them.
    pub roles: Vec<String>,
    pub groups: Vec<String>,
    /// The user's own settings, free-form JSON.
    #[schema(value_type = Object)]
    pub preferences: serde_json::Map<String, serde_json::Value>,
    #[schema(required = true)]
    pub keycloak_id: Option<String>,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[schema(required = true)]
    pub last_login_at: Option<DateTime<Utc>>,
    #[schema(required = true)]
    pub last_sync_at: Option<DateTime<Utc>>,
}

impl From<User> for UserResponse {
    fn from(user: User) -> Self {
        Self {
            id: user.id.to_string(),
            username: user.username.as_str().to_owned(),
            email: user.email.map(|email| email.as_str().to_owned()),
            full_name: user.full_name,
            avatar_url: user.avatar_url,
            roles: user.roles.iter().map(|role| role.as_str().to_owned()).collect(),
            groups: user.groups,
            preferences: user.preferences,
            keycloak_id: user.keycloak_id,
            status: user.status.as_str().to_owned(),
            created_at: user.created_at,
            updated_at: user.updated_at,
            last_login_at: user.last_login_at,
            last_sync_at: user.last_sync_at,
        }
    }
}

/// What anyone signed in may see of another user.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PublicUserResponse {
    #[schema(format = Uuid)]
    pub id: String,
    pub username: String,
    #[schema(required = true)]
    pub full_name: Option<String>,
    #[schema(required = true)]
    pub avatar_url: Option<String>,
}

impl From<User> for PublicUserResponse {
    fn from(user: User) -> Self {
        Self {
            id: user.id.to_string(),
            username: user.username.as_str().to_owned(),
            full_name: user.full_name,
            avatar_url: user.avatar_url,
        }
    }
}

/// The authenticated caller's account.
#[utoipa::path(
    get,
    path = "/api/v1/users/me",
    tag = "users",
    security(("bearer" = [])),
    responses(
        (status = 200, body = UserResponse),
        doc::Authenticated,
    )
)]
pub async fn me(State(state): State<AppState>, AuthUser(caller): AuthUser) -> Result<Json<UserResponse>, ApiError> {
    Ok(Json(state.identity.me(&caller).await?.into()))
}

/// `PUT /api/v1/users/me`: only the fields given change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1)]
pub struct UpdateMeRequest {
    /// Local accounts only; `null` clears it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<crate::openapi::values::FullName>)]
    pub full_name: Option<Option<String>>,
    /// Replaces the settings object (at most 16 KiB).
    #[serde(default, deserialize_with = "present")]
    #[schema(nullable = false, value_type = Option<Object>)]
    pub preferences: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Updates the caller's own settings. Viewers may change their own settings too.
#[utoipa::path(
    put,
    path = "/api/v1/users/me",
    tag = "users",
    security(("bearer" = [])),
    request_body = UpdateMeRequest,
    responses(
        (status = 200, body = UserResponse),
        doc::Authenticated,
        doc::JsonBody,
        (status = 409, description = "`managed_by_identity_provider`: the identity provider owns the full name"),
    )
)]
pub async fn update_me(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    ApiJson(request): ApiJson<UpdateMeRequest>,
) -> Result<Json<UserResponse>, ApiError> {
    if request.full_name.is_none() && request.preferences.is_none() {
        return Err(ApiError::validation(vec![FieldProblem {
            field: "body".into(),
            message: "name at least one of full_name, preferences".into(),
        }]));
    }
    let full_name = match request.full_name {
        Some(Some(name)) => {
            let name = name.trim().to_owned();
            if name.is_empty() || name.chars().count() > 200 {
                return Err(ApiError::validation(vec![FieldProblem {
                    field: "full_name".into(),
                    message: "must be 1 to 200 characters".into(),
                }]));
            }
            Some(Some(name))
        }
        other => other,
    };
    Ok(Json(state.identity.update_me(&caller, full_name, request.preferences).await?.into()))
}

fn parse_user_id(text: &str) -> Result<UserId, ApiError> {
    UserId::parse(text).map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "invalid_id", "The id is not a UUID."))
}

/// Another user's public profile.
#[utoipa::path(
    get,
    path = "/api/v1/users/{id}",
    tag = "users",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "User id (UUID)")),
    responses(
        (status = 200, body = PublicUserResponse),
        doc::Authenticated,
        doc::BadRequest,
        doc::NotFound,
    )
)]
pub async fn get_user(
    State(state): State<AppState>,
    AuthUser(_caller): AuthUser,
    Path(id): Path<String>,
) -> Result<Json<PublicUserResponse>, ApiError> {
    Ok(Json(state.identity.get_user(parse_user_id(&id)?).await?.into()))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// Part of a username, e-mail or full name (1–100 characters, not blank, no control
    /// characters).
    #[param(
        required = true,
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub q: Option<String>,
    /// At most this many (1–50, default 20).
    #[param(minimum = 1, maximum = 50)]
    pub limit: Option<u32>,
}

/// A list of users.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PublicUserList {
    pub items: Vec<PublicUserResponse>,
}

/// Finds users by name or e-mail, in the identity provider's directory and in Aether.
#[utoipa::path(
    get,
    path = "/api/v1/users/search",
    tag = "users",
    security(("bearer" = [])),
    params(SearchQuery),
    responses(
        (status = 200, body = PublicUserList),
        doc::Authenticated,
        doc::BadRequest,
        doc::Unprocessable,
    )
)]
pub async fn search_users(
    State(state): State<AppState>,
    AuthUser(_caller): AuthUser,
    ApiQuery(query): ApiQuery<SearchQuery>,
) -> Result<Json<PublicUserList>, ApiError> {
    let limit = query.limit.unwrap_or(20);
    if !(1..=50).contains(&limit) {
        return Err(ApiError::validation(vec![FieldProblem {
            field: "limit".into(),
            message: "must be 1 to 50".into(),
        }]));
    }
    let users = state.identity.search(query.q.as_deref().unwrap_or(""), limit).await?;
    Ok(Json(PublicUserList { items: users.into_iter().map(Into::into).collect() }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SyncQuery {
    /// `all` copies every directory user (administrators only); default: the caller.
    #[param(inline, value_type = Option<crate::openapi::values::SyncScope>)]
    pub scope: Option<String>,
}

/// The result of a synchronisation.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SyncResponse {
    /// The caller's account, after a `me` synchronisation.
    #[schema(required = true)]
    pub user: Option<UserResponse>,
    /// How many users were copied, after an `all` synchronisation.
    #[schema(required = true)]
    pub synced: Option<u64>,
}

/// Copies profiles from the identity provider now, instead of at the next token.
#[utoipa::path(
    post,
    path = "/api/v1/users/sync",
    tag = "users",
    security(("bearer" = [])),
    params(SyncQuery),
    responses(
        (status = 200, body = SyncResponse),
        doc::Authenticated,
        doc::BadRequest,
        doc::Forbidden,
        doc::Unprocessable,
    )
)]
pub async fn sync_users(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    ApiQuery(query): ApiQuery<SyncQuery>,
) -> Result<Json<SyncResponse>, ApiError> {
    match query.scope.as_deref() {
        None | Some("me") => {
            Ok(Json(SyncResponse { user: Some(state.identity.sync_me(&caller).await?.into()), synced: None }))
        }
        Some("all") => Ok(Json(SyncResponse { user: None, synced: Some(state.identity.sync_all(&caller).await?) })),
        Some(_) => {
            Err(ApiError::validation(vec![FieldProblem { field: "scope".into(), message: "must be me or all".into() }]))
        }
    }
}

/// The caller's roles and what they allow.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RolesResponse {
    pub roles: Vec<String>,
    pub groups: Vec<String>,
}

/// The caller's realm roles (from their token) and groups.
#[utoipa::path(
    get,
    path = "/api/v1/users/roles",
    tag = "users",
    security(("bearer" = [])),
    responses(
        (status = 200, body = RolesResponse),
        doc::Authenticated,
    )
)]
pub async fn my_roles(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
) -> Result<Json<RolesResponse>, ApiError> {
    let user = state.identity.me(&caller).await?;
    Ok(Json(RolesResponse { roles: caller.roles.iter().map(|r| r.as_str().to_owned()).collect(), groups: user.groups }))
}

// ---------------------------------------------------------------------------------------------
// API keys
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    #[schema(value_type = crate::openapi::values::ApiKeyName)]
    pub name: String,
    /// Any of `read`, `write`, `admin`.
    #[schema(value_type = Vec<crate::openapi::values::Permission>)]
    pub scopes: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyResponse {
    #[schema(format = Uuid)]
    pub id: String,
    pub name: String,
    /// The first characters of the key, to tell keys apart.
    pub prefix: String,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    #[schema(required = true)]
    pub expires_at: Option<DateTime<Utc>>,
    #[schema(required = true)]
    pub last_used_at: Option<DateTime<Utc>>,
    #[schema(required = true)]
    pub revoked_at: Option<DateTime<Utc>>,
    /// The whole key, only in the answer to its creation: it is not stored and cannot be shown again.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub key: Option<String>,
}

impl From<ApiKey> for ApiKeyResponse {
    fn from(key: ApiKey) -> Self {
        Self {
            id: key.id.to_string(),
            name: key.name.as_str().to_owned(),
            prefix: key.prefix,
            scopes: key.scopes.iter().map(|s| s.as_str().to_owned()).collect(),
            created_at: key.created_at,
            expires_at: key.expires_at,
            last_used_at: key.last_used_at,
            revoked_at: key.revoked_at,
            key: None,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyList {
    pub items: Vec<ApiKeyResponse>,
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// Creates a personal API key. The key is in this answer only.
#[utoipa::path(
    post,
    path = "/api/v1/users/me/api-keys",
    tag = "users",
    security(("bearer" = [])),
    request_body = CreateApiKeyRequest,
    responses(
        (status = 201, body = ApiKeyResponse),
        doc::Authenticated,
        doc::JsonBody,
        doc::Forbidden,
    )
)]
pub async fn create_api_key(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    ApiJson(request): ApiJson<CreateApiKeyRequest>,
) -> Result<(StatusCode, Json<ApiKeyResponse>), ApiError> {
    let mut problems = Vec::new();
    let name = ApiKeyName::parse(&request.name)
        .map_err(|e| problems.push(FieldProblem { field: e.field.to_owned(), message: e.message }))
        .ok();
    let scopes: Vec<ApiKeyScope> = request
        .scopes
        .iter()
        .filter_map(|scope| {
            ApiKeyScope::parse(scope)
                .map_err(|e| problems.push(FieldProblem { field: e.field.to_owned(), message: e.message }))
                .ok()
        })
        .collect();
    let Some(name) = name.filter(|_| problems.is_empty()) else { return Err(ApiError::validation(problems)) };
    let created = state.identity.create_api_key(&caller, name, scopes, request.expires_at).await?;
    let mut response = ApiKeyResponse::from(created.key);
    response.key = Some(created.secret);
    Ok((StatusCode::CREATED, Json(response)))
}

/// The caller's API keys, revoked ones included, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/users/me/api-keys",
    tag = "users",
    security(("bearer" = [])),
    params(PageQuery),
    responses(
        (status = 200, body = ApiKeyList),
        doc::Authenticated,
        doc::BadRequest,
        doc::Unprocessable,
    )
)]
pub async fn list_api_keys(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<ApiKeyList>, ApiError> {
    let keys = state.identity.list_api_keys(&caller, query.parse()?).await?;
    Ok(Json(ApiKeyList {
        next_cursor: keys.next_after.map(encode_cursor),
        items: keys.items.into_iter().map(Into::into).collect(),
    }))
}

/// Revokes one of the caller's API keys; it stops working at once.
#[utoipa::path(
    delete,
    path = "/api/v1/users/me/api-keys/{id}",
    tag = "users",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "API key id (UUID)")),
    responses(
        (status = 200, body = ApiKeyResponse),
        doc::Authenticated,
        doc::BadRequest,
        doc::NotFound,
    )
)]
pub async fn revoke_api_key(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(id): Path<String>,
) -> Result<Json<ApiKeyResponse>, ApiError> {
    let id = ApiKeyId::parse(&id)
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "invalid_id", "The id is not a UUID."))?;
    Ok(Json(state.identity.revoke_api_key(&caller, id).await?.into()))
}

// ---------------------------------------------------------------------------------------------
// Administration
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserList {
    pub items: Vec<UserResponse>,
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// Every user, with roles (administrators only). With Keycloak, the directory's users
/// are copied in first, so users who never signed in are listed too.
#[utoipa::path(
    get,
    path = "/api/v1/admin/users",
    tag = "admin",
    security(("bearer" = [])),
    params(PageQuery),
    responses(
        (status = 200, body = UserList),
        doc::WriterRole,
        doc::BadRequest,
        doc::Unprocessable,
    )
)]
pub async fn admin_list_users(
    State(state): State<AppState>,
    Admin(caller): Admin,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Json<UserList>, ApiError> {
    let request: PageRequest = page.parse()?;
    let page = state.identity.admin_list(&caller, request).await?;
    Ok(Json(UserList {
        next_cursor: page.next_after.map(encode_cursor),
        items: page.items.into_iter().map(Into::into).collect(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRolesRequest {
    /// The user's realm roles after the change.
    #[schema(value_type = Vec<crate::openapi::values::Role>)]
    pub roles: Vec<String>,
}

/// Replaces a user's realm roles (administrators only). With Keycloak the change is
/// made there, so it is in the user's next token; it is audited.
#[utoipa::path(
    put,
    path = "/api/v1/admin/users/{id}/roles",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "User id (UUID)")),
    request_body = SetRolesRequest,
    responses(
        (status = 200, body = UserResponse),
        doc::WriterRole,
        doc::JsonBody,
        doc::NotFound,
        doc::Conflict,
    )
)]
pub async fn admin_set_roles(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<SetRolesRequest>,
) -> Result<Json<UserResponse>, ApiError> {
    let id = parse_user_id(&id)?;
    let roles =
        request.roles.iter().map(|role| role.parse::<Role>()).collect::<Result<Vec<_>, _>>().map_err(ApiError::from)?;
    let mut roles = roles;
    roles.sort_by_key(|role| role.as_str());
    roles.dedup();
    Ok(Json(state.identity.change_roles(&caller, id, roles).await?.into()))
}

// ---------------------------------------------------------------------------------------------
// Avatars
// ---------------------------------------------------------------------------------------------

/// The multipart form of an avatar upload.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct AvatarUpload {
    /// A PNG, JPEG, WebP or GIF image of at most 5 MiB and 8192×8192 pixels.
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
}

/// Sets the caller's avatar: the image is checked by its bytes, cut to a square,
/// scaled to 256×256 and stored as PNG.
#[utoipa::path(
    post,
    path = "/api/v1/users/me/avatar",
    tag = "users",
    security(("bearer" = [])),
    request_body(content((AvatarUpload = "multipart/form-data", encoding(("file" = (content_type = "image/png, image/jpeg, image/webp, image/gif")))))),
    responses(
        (status = 200, body = UserResponse),
        doc::Authenticated,
        doc::MultipartBody,
    )
)]
pub async fn upload_avatar(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    request: axum::extract::Request,
) -> Result<Json<UserResponse>, ApiError> {
    use crate::multipart::{BoundedForm, FormLimits, missing};
    let max = aether_services::avatars::MAX_AVATAR_BYTES;
    let mut form = BoundedForm::from_request(request, &state, FormLimits::for_files(max as u64)).await?;
    let mut file = None;
    while let Some(part) = form.next_part().await? {
        if part.name() == "file" && file.is_none() {
            let too_large = || {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "The image must be at most 5 MiB.")
            };
            file = Some(part.bytes_at_most(max, too_large).await?);
        } else {
            part.skip().await?;
        }
    }
    let file = file.ok_or_else(|| missing("file"))?;
    Ok(Json(state.avatars.set(&caller, file).await?.into()))
}

/// Removes the caller's avatar.
#[utoipa::path(
    delete,
    path = "/api/v1/users/me/avatar",
    tag = "users",
    security(("bearer" = [])),
    responses(
        (status = 200, body = UserResponse),
        doc::Authenticated,
    )
)]
pub async fn delete_avatar(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
) -> Result<Json<UserResponse>, ApiError> {
    Ok(Json(state.avatars.delete(&caller).await?.into()))
}

/// A user's avatar, as a 256×256 PNG.
#[utoipa::path(
    get,
    path = "/api/v1/users/{id}/avatar",
    tag = "users",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "User id (UUID)")),
    responses(
        (status = 200, content_type = "image/png", body = Vec<u8>),
        doc::Authenticated,
        doc::BadRequest,
        doc::NotFound,
    )
)]
pub async fn get_avatar(
    State(state): State<AppState>,
    AuthUser(_caller): AuthUser,
    Path(id): Path<String>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse as _;
    let png = state.avatars.get(parse_user_id(&id)?).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/png"),
            // The URL changes with every upload (?v=…), so a copy may be kept for long.
            (header::CACHE_CONTROL, "private, max-age=86400"),
        ],
        png,
    )
        .into_response())
}
