//! The API's one error type. It owns the mapping to HTTP statuses and stable codes,
//! and never carries internal details to the client: those go to the log.

use aether_domain::ValidationError;
use aether_domain::token::TokenError;
use aether_services::ServiceError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// An RFC 9457 problem details document, with Aether's extension members.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// A URN naming the problem type: `urn:aether:problem:<code>`.
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable, machine-readable code; clients branch on this.
    pub code: String,
    /// The `X-Request-ID` of the failed request, for support.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub request_id: Option<String>,
    /// Per-field validation failures.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldProblem>,
    /// OAuth 2.0 error code (RFC 6749 §5.2), on token endpoint failures only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub error_description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FieldProblem {
    pub field: String,
    pub message: String,
}

/// An error answered to the client.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    pub errors: Vec<FieldProblem>,
    pub oauth_error: Option<&'static str>,
    /// Seconds after which a retry may succeed (`Retry-After`), for 429 and 503.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self { status, code, detail: detail.into(), errors: Vec::new(), oauth_error: None, retry_after: None }
    }

    pub fn validation(errors: Vec<FieldProblem>) -> Self {
        let detail =
            errors.iter().map(|error| format!("{}: {}", error.field, error.message)).collect::<Vec<_>>().join("; ");
        Self { errors, ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", detail) }
    }

    /// 429: the caller's window is used up; retry after `seconds`.
    pub fn too_many_requests(seconds: u64) -> Self {
        Self {
            retry_after: Some(seconds),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("Too many requests; retry in {seconds} s."),
            )
        }
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "The resource does not exist or is not visible to you.")
    }

    pub fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "An unexpected error occurred.")
    }

    pub fn unauthorized(code: &'static str, detail: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, detail)
    }

    /// An OAuth 2.0 token endpoint error, which also carries `error`.
    pub fn oauth(status: StatusCode, oauth_error: &'static str, detail: &str) -> Self {
        Self { oauth_error: Some(oauth_error), ..Self::new(status, oauth_error, detail) }
    }

    pub fn to_problem(&self) -> Problem {
        Problem {
            problem_type: format!("urn:aether:problem:{}", self.code),
            title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            code: self.code.to_owned(),
            request_id: None,
            errors: self.errors.clone(),
            error: self.oauth_error.map(str::to_owned),
            error_description: self.oauth_error.map(|_| self.detail.clone()),
        }
    }
}

impl From<ValidationError> for ApiError {
    fn from(error: ValidationError) -> Self {
        Self::validation(vec![FieldProblem { field: error.field.to_owned(), message: error.message }])
    }
}

impl From<TokenError> for ApiError {
    fn from(error: TokenError) -> Self {
        match error {
            TokenError::Expired => Self::unauthorized("token_expired", "The access token has expired."),
            TokenError::Invalid(reason) => {
                tracing::info!(%reason, "rejected a credential");
                Self::unauthorized("invalid_token", "The access token is not valid.")
            }
            TokenError::Unavailable(reason) => {
                tracing::warn!(%reason, "could not verify a token");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "identity_unavailable",
                    "The identity provider is temporarily unreachable; retry later.",
                )
            }
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::Validation(error) => error.into(),
            ServiceError::NotFound => Self::not_found(),
            ServiceError::Forbidden(reason) => Self::new(StatusCode::FORBIDDEN, "forbidden", reason),
            ServiceError::Conflict(field) => {
                Self::new(StatusCode::CONFLICT, "conflict", format!("The {field} is already taken."))
            }
            ServiceError::PreconditionFailed => Self::new(
                StatusCode::PRECONDITION_FAILED,
                "precondition_failed",
                "The resource changed since you read it (If-Match no longer matches); read it again.",
            ),
            ServiceError::Rejected { code, detail } => {
                let status = match code {
                    "browser_login_unavailable" => StatusCode::NOT_FOUND,
                    "invalid_login_state" | "upload_interrupted" => StatusCode::BAD_REQUEST,
                    "document_not_found" | "version_not_found" | "no_redacted_copy" => StatusCode::NOT_FOUND,
                    "file_too_large" | "payload_too_large" => StatusCode::PAYLOAD_TOO_LARGE,
                    "invalid_expiry" => StatusCode::UNPROCESSABLE_ENTITY,
                    "semantic_unavailable" => StatusCode::SERVICE_UNAVAILABLE,
                    _ => StatusCode::CONFLICT,
                };
                Self::new(status, code, detail)
            }
            ServiceError::InvalidGrant => {
                Self::oauth(StatusCode::BAD_REQUEST, "invalid_grant", "The credentials or refresh token are not valid.")
            }
            ServiceError::Unauthenticated(error) => error.into(),
            ServiceError::Unavailable(reason) => {
                tracing::warn!(%reason, "dependency unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "service_unavailable",
                    "A dependency is temporarily unavailable; retry later.",
                )
            }
            ServiceError::Internal(reason) => {
                tracing::error!(%reason, "internal error");
                Self::internal()
            }
        }
    }
}

/// A problem response. The request id is filled in by [`crate::middleware::problem_details`],
/// which finds the [`Problem`] in the response's extensions.
pub fn problem_response(problem: Problem) -> Response {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    let mut response = (status, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_CONTENT_TYPE));
    if status == StatusCode::UNAUTHORIZED {
        // RFC 6750 §3: a request without credentials gets the bare challenge; a bad
        // credential gets `invalid_token`, with the problem's code as description.
        let challenge = if problem.code == "missing_token" {
            "Bearer realm=\"aether\"".to_owned()
        } else {
            format!("Bearer realm=\"aether\", error=\"invalid_token\", error_description=\"{}\"", problem.code)
        };
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
        }
    }
    response.extensions_mut().insert(problem);
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry_after = self.retry_after;
        let mut response = problem_response(self.to_problem());
        if let Some(seconds) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// The problem answered for a status that carries no problem of its own (a 405
/// from the router, a 413 from a body limit, a timeout …).
pub fn problem_for_status(status: StatusCode) -> Problem {
    let (code, detail) = match status {
        StatusCode::NOT_FOUND => ("not_found", "No such route."),
        StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", "The route does not support this method."),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "The request body is too large."),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ("unsupported_media_type", "The request's content type is not supported.")
        }
        StatusCode::REQUEST_TIMEOUT => ("request_timeout", "The request took too long."),
        StatusCode::SERVICE_UNAVAILABLE => ("service_unavailable", "The service is temporarily unavailable."),
        StatusCode::TOO_MANY_REQUESTS => ("rate_limited", "Too many requests."),
        StatusCode::UNAUTHORIZED => ("unauthorized", "Authentication is required."),
        StatusCode::FORBIDDEN => ("forbidden", "Not allowed."),
        status if status.is_server_error() => ("internal_error", "An unexpected error occurred."),
        _ => ("bad_request", "The request is not valid."),
    };
    ApiError::new(status, code, detail).to_problem()
}
