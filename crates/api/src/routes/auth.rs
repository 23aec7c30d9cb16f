//! Authentication: the built-in provider's token endpoint (RFC 6749) and key set,
//! the browser login against an OpenID Connect provider (authorization code flow
//! with PKCE, session cookie), refresh, logout, and what the caller's token says.

use aether_domain::auth::Credential;
use aether_domain::capability::Capability;
use aether_services::identity::permissions_of;
use axum::Json;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::extract::{
    ApiForm, ApiJson, ApiQuery, AuthUser, SESSION_COOKIE, client_info, optional_json, session_cookie,
};
use crate::openapi as doc;
use crate::state::AppState;

/// The form of `POST /api/v1/auth/token`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TokenRequest {
    /// `password` or `refresh_token`.
    #[schema(required = true, nullable = false, value_type = crate::openapi::values::GrantType)]
    pub grant_type: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub refresh_token: Option<String>,
    /// Accepted for compatibility with OAuth clients; the built-in provider has one client.
    pub client_id: Option<String>,
    pub scope: Option<String>,
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Access token lifetime in seconds.
    pub expires_in: u64,
    pub refresh_token: String,
    /// Refresh token lifetime in seconds.
    pub refresh_expires_in: u64,
}

fn required<'a>(value: &'a Option<String>, name: &str) -> Result<&'a str, ApiError> {
    value.as_deref().filter(|value| !value.is_empty()).ok_or_else(|| {
        ApiError::oauth(StatusCode::BAD_REQUEST, "invalid_request", &format!("The '{name}' parameter is required."))
    })
}

/// Issues tokens: the OAuth 2.0 password grant and refresh-token grant. The request
/// is form-encoded. Each refresh token can be used once; it is answered with a new
/// one, and reusing a spent one revokes every token of that login.
#[utoipa::path(
    post,
    path = "/api/v1/auth/token",
    tag = "auth",
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, body = TokenResponse),
        doc::FormBody,
        (status = 400, description = "An OAuth 2.0 error (`error` and `code`: `invalid_request`, `invalid_grant` or `unsupported_grant_type`), or `malformed_body`"),
    )
)]
pub async fn token(
    State(state): State<AppState>,
    parts: Parts,
    ApiForm(form): ApiForm<TokenRequest>,
) -> Result<Response, ApiError> {
    if state.identity.is_external() {
        return Err(ApiError::oauth(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Tokens are issued by the identity provider; sign in through /api/v1/auth/login.",
        ));
    }
    let client = client_info(&parts);
    let grant_type = required(&form.grant_type, "grant_type")?;
    let pair = match grant_type {
        "password" => {
            let username = required(&form.username, "username")?;
            let password = required(&form.password, "password")?;
            state.accounts.password_grant(username, password, &client).await?
        }
        "refresh_token" => {
            let refresh_token = required(&form.refresh_token, "refresh_token")?;
            state.accounts.refresh_grant(refresh_token).await?
        }
        _ => {
            return Err(ApiError::oauth(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "Supported grant types: password, refresh_token.",
            ));
        }
    };
    let mut response = Json(TokenResponse {
        access_token: pair.access_token,
        token_type: "Bearer".into(),
        expires_in: pair.expires_in,
        refresh_token: pair.refresh_token,
        refresh_expires_in: pair.refresh_expires_in,
    })
    .into_response();
    response.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// The JSON Web Key Set that verifies the built-in provider's access tokens.
#[utoipa::path(get, path = "/api/v1/auth/jwks", tag = "auth", responses((status = 200, body = Object)))]
pub async fn jwks(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(state.jwks.as_ref().clone())
}

/// `?return_to=` of the login endpoint.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LoginQuery {
    /// A path on this server to return to after login (e.g. `/app`); absolute URLs are refused.
    #[param(min_length = 1, pattern = "^/([^/\\\\][^\\\\]*)?$")]
    pub return_to: Option<String>,
}

fn redirect_uri(state: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
    Ok(format!("{}/api/v1/auth/callback", crate::extract::external_base_url(state, headers)?))
}

/// Starts a browser login: redirects to the identity provider with a fresh `state`
/// and a PKCE challenge. Not available with the built-in provider (404).
#[utoipa::path(
    get,
    path = "/api/v1/auth/login",
    tag = "auth",
    params(LoginQuery),
    responses(
        (status = 302, description = "To the identity provider's login page"),
        doc::BadRequest,
        (status = 404, description = "`browser_login_unavailable`: the built-in provider has no browser login"),
        doc::Unprocessable,
    )
)]
pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<LoginQuery>,
) -> Result<Response, ApiError> {
    let return_to = match query.return_to {
        // Only local paths: an open redirect would let anyone bounce users to their site.
        Some(path) if path.starts_with('/') && !path.starts_with("//") && !path.contains('\\') => Some(path),
        Some(_) => {
            return Err(ApiError::validation(vec![crate::error::FieldProblem {
                field: "return_to".into(),
                message: "must be a path on this server".into(),
            }]));
        }
        None => None,
    };
    let redirect = state.identity.begin_login(&redirect_uri(&state, &headers)?, return_to).await?;
    Ok(Redirect::to(&redirect.authorization_url).into_response())
}

/// The provider's answer to a login.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    pub code: Option<String>,
    pub state: Option<String>,
    /// Set by the provider when the login failed or was cancelled.
    pub error: Option<String>,
}

/// What a completed browser login answers (besides the session cookie).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LoginResponse {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: u64,
    pub user: crate::routes::users::UserResponse,
    /// Where the browser asked to go, when it said.
    #[schema(required = true)]
    pub return_to: Option<String>,
}

/// Completes a browser login: exchanges the code, synchronises the user, opens a
/// session (an `HttpOnly`, `SameSite=Lax` cookie), and redirects to the login's
/// `return_to` or, without one, answers the access token.
#[utoipa::path(
    get,
    path = "/api/v1/auth/callback",
    tag = "auth",
    params(CallbackQuery),
    responses(
        (status = 200, body = LoginResponse),
        (status = 303, description = "To the login's return_to, with the session cookie"),
        (status = 400, description = "`login_failed`, `invalid_callback`, `invalid_login_state` or `invalid_query`"),
        (status = 404, description = "`browser_login_unavailable`: the built-in provider has no browser login"),
    )
)]
pub async fn callback(
    State(state): State<AppState>,
    parts: Parts,
    ApiQuery(query): ApiQuery<CallbackQuery>,
) -> Result<Response, ApiError> {
    if let Some(error) = query.error {
        tracing::info!(%error, "the identity provider reported a failed login");
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "login_failed",
            "The identity provider did not sign you in.",
        ));
    }
    let (Some(code), Some(login_state)) = (query.code, query.state) else {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_callback", "The callback needs code and state."));
    };
    let client = client_info(&parts);
    let login = state.identity.complete_login(&code, &login_state, &client).await.map_err(|error| match error {
        aether_services::ServiceError::InvalidGrant => {
            ApiError::new(StatusCode::BAD_REQUEST, "login_failed", "The identity provider refused the login code.")
        }
        other => other.into(),
    })?;
    let cookie = format!(
        "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{}",
        login.session_id,
        login.session_ttl.as_secs(),
        if state.settings.secure_cookies { "; Secure" } else { "" }
    );
    // A browser that said where to go is sent there; an API client gets the token.
    let mut response = match &login.return_to {
        Some(path) => Redirect::to(path).into_response(),
        None => Json(LoginResponse {
            access_token: login.access_token,
            token_type: "Bearer".into(),
            expires_in: login.expires_in,
            user: login.user.into(),
            return_to: None,
        })
        .into_response(),
    };
    response
        .headers_mut()
        .insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).map_err(|_| ApiError::internal())?);
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// `POST /api/v1/auth/refresh`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct RefreshRequest {
    /// The refresh token; not needed with a session cookie.
    pub refresh_token: Option<String>,
}

/// A refreshed access token.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RefreshResponse {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: u64,
    /// The replacement refresh token (none for a session: the server keeps it).
    #[schema(required = true)]
    pub refresh_token: Option<String>,
    #[schema(required = true)]
    pub refresh_expires_in: Option<u64>,
}

/// A new access token, from the session cookie or from a refresh token.
#[utoipa::path(
    post,
    path = "/api/v1/auth/refresh",
    tag = "auth",
    request_body(content = RefreshRequest, description = "Optional with a session cookie"),
    responses(
        (status = 200, body = RefreshResponse),
        (status = 400, description = "`invalid_grant` (an OAuth error) or `malformed_body`"),
        doc::PayloadTooLarge,
        doc::Unprocessable,
    )
)]
pub async fn refresh(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<RefreshResponse>, ApiError> {
    let request: RefreshRequest = optional_json(&body)?;
    let cookie = session_cookie(&headers);
    let session = if request.refresh_token.is_some() { None } else { cookie.as_deref() };
    let tokens = state.identity.refresh(session, request.refresh_token.as_deref()).await?;
    Ok(Json(RefreshResponse {
        access_token: tokens.access_token,
        token_type: "Bearer".into(),
        expires_in: tokens.expires_in,
        refresh_token: tokens.refresh_token,
        refresh_expires_in: tokens.refresh_expires_in,
    }))
}

/// The answer to a logout.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LogoutResponse {
    pub logged_out: bool,
    /// The provider's end-session page, for a browser to visit to end its single sign-on.
    #[schema(required = true)]
    pub end_session_url: Option<String>,
}

/// Ends the caller's login: the session cookie, the provider's session (its refresh
/// tokens stop working) and every access token of that session.
#[utoipa::path(
    post,
    path = "/api/v1/auth/logout",
    tag = "auth",
    security(("bearer" = [])),
    request_body(content = RefreshRequest, description = "Optionally, the refresh token to revoke too"),
    responses(
        (status = 200, body = LogoutResponse),
        doc::Authenticated,
        doc::BadRequest,
        doc::PayloadTooLarge,
        doc::Unprocessable,
    )
)]
pub async fn logout(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let request: RefreshRequest = optional_json(&body)?;
    let cookie = session_cookie(&headers);
    let end_session_url = state.identity.logout(&caller, cookie.as_deref(), request.refresh_token.as_deref()).await?;
    let mut response = Json(LogoutResponse { logged_out: true, end_session_url }).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("aether_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"),
    );
    Ok(response)
}

/// Who the caller is, from their credential.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuthMeResponse {
    #[schema(format = Uuid)]
    pub user_id: String,
    pub username: String,
    pub roles: Vec<String>,
    /// `access_token`, `session` or `api_key`.
    pub authenticated_by: String,
    pub capabilities: Vec<String>,
}

/// The caller as their credential says.
#[utoipa::path(
    get,
    path = "/api/v1/auth/me",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, body = AuthMeResponse),
        doc::Authenticated,
    )
)]
pub async fn auth_me(AuthUser(caller): AuthUser) -> Json<AuthMeResponse> {
    Json(AuthMeResponse {
        user_id: caller.user_id.to_string(),
        username: caller.username.as_str().to_owned(),
        roles: caller.roles.iter().map(|role| role.as_str().to_owned()).collect(),
        authenticated_by: match caller.credential {
            Credential::AccessToken { .. } => "access_token",
            Credential::Session { .. } => "session",
            Credential::ApiKey { .. } => "api_key",
        }
        .into(),
        capabilities: caller.capabilities.iter().map(|c| c.as_str().to_owned()).collect(),
    })
}

/// What the caller may do: the capabilities of their roles, and those in effect for
/// this credential (an API key's scopes narrow them).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PermissionsResponse {
    pub roles: Vec<String>,
    pub role_capabilities: Vec<String>,
    pub capabilities: Vec<String>,
    pub can_write: bool,
    pub can_administer_users: bool,
}

#[utoipa::path(
    get,
    path = "/api/v1/auth/permissions",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, body = PermissionsResponse),
        doc::Authenticated,
    )
)]
pub async fn permissions(AuthUser(caller): AuthUser) -> Json<PermissionsResponse> {
    let (from_roles, effective) = permissions_of(&caller);
    Json(PermissionsResponse {
        roles: caller.roles.iter().map(|role| role.as_str().to_owned()).collect(),
        role_capabilities: from_roles.iter().map(|c| c.as_str().to_owned()).collect(),
        capabilities: effective.iter().map(|c| c.as_str().to_owned()).collect(),
        can_write: caller.can(Capability::Write),
        can_administer_users: caller.can(Capability::AdministerUsers),
    })
}

/// `POST /api/v1/auth/verify-token`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct VerifyTokenRequest {
    pub token: String,
}

/// Whether a token is valid, and its claims when it is (RFC 7662's `active` shape).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VerifyTokenResponse {
    pub active: bool,
    #[schema(required = true)]
    pub sub: Option<String>,
    #[schema(required = true)]
    pub username: Option<String>,
    pub roles: Vec<String>,
    pub groups: Vec<String>,
    #[schema(required = true)]
    pub client_id: Option<String>,
    #[schema(required = true)]
    pub exp: Option<DateTime<Utc>>,
    #[schema(required = true)]
    pub iat: Option<DateTime<Utc>>,
}

/// Checks a token for another service. Invalid tokens answer `active: false`, with no
/// reason (the reason would help forgers).
#[utoipa::path(
    post,
    path = "/api/v1/auth/verify-token",
    tag = "auth",
    security(("bearer" = [])),
    request_body = VerifyTokenRequest,
    responses(
        (status = 200, body = VerifyTokenResponse),
        doc::Authenticated,
        doc::JsonBody,
    )
)]
pub async fn verify_token(
    State(state): State<AppState>,
    AuthUser(_caller): AuthUser,
    ApiJson(request): ApiJson<VerifyTokenRequest>,
) -> Result<Json<VerifyTokenResponse>, ApiError> {
    match state.identity.verify_token(&request.token).await {
        Ok(token) => Ok(Json(VerifyTokenResponse {
            active: true,
            sub: Some(match token.subject {
                aether_domain::token::TokenSubject::Local(id) => id.to_string(),
                aether_domain::token::TokenSubject::External(id) => id,
            }),
            username: Some(token.username.as_str().to_owned()),
            roles: token.roles.iter().map(|role| role.as_str().to_owned()).collect(),
            groups: token.groups,
            client_id: Some(token.client_id),
            exp: Some(token.expires_at),
            iat: Some(token.issued_at),
        })),
        Err(aether_domain::token::TokenError::Unavailable(reason)) => {
            Err(aether_domain::token::TokenError::Unavailable(reason).into())
        }
        Err(_) => Ok(Json(VerifyTokenResponse {
            active: false,
            sub: None,
            username: None,
            roles: Vec::new(),
            groups: Vec::new(),
            client_id: None,
            exp: None,
            iat: None,
        })),
    }
}
