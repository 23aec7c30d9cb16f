//! The built-in identity provider's token endpoint (RFC 6749) and key set.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, Problem};
use crate::extract::ApiForm;
use crate::state::AppState;

/// The form of `POST /api/v1/auth/token`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TokenRequest {
    /// `password` or `refresh_token`.
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
        (status = 400, description = "invalid_request, invalid_grant or unsupported_grant_type", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn token(State(state): State<AppState>, ApiForm(form): ApiForm<TokenRequest>) -> Result<Response, ApiError> {
    let grant_type = required(&form.grant_type, "grant_type")?;
    let pair = match grant_type {
        "password" => {
            let username = required(&form.username, "username")?;
            let password = required(&form.password, "password")?;
            state.accounts.password_grant(username, password).await?
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
