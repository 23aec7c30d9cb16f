//! The Users service: for now, the caller's own account.

use aether_domain::user::User;
use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, Problem};
use crate::extract::AuthUser;
use crate::state::AppState;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserResponse {
    pub id: String,
    pub username: String,
    pub email: Option<String>,
    pub full_name: Option<String>,
    pub avatar_url: Option<String>,
    /// Realm roles, as Keycloak names them.
    pub roles: Vec<String>,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
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
            status: user.status.as_str().to_owned(),
            created_at: user.created_at,
            updated_at: user.updated_at,
            last_login_at: user.last_login_at,
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
        (status = 401, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn me(State(state): State<AppState>, AuthUser(caller): AuthUser) -> Result<Json<UserResponse>, ApiError> {
    let user = state.accounts.current_user(&caller).await.map_err(|error| match error {
        // A valid token of an account deleted since: the token no longer identifies anyone.
        aether_services::ServiceError::NotFound => {
            ApiError::unauthorized("invalid_token", "The account of this token no longer exists.")
        }
        other => other.into(),
    })?;
    Ok(Json(user.into()))
}
