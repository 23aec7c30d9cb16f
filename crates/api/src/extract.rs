//! Extractors that turn raw requests into validated values, answering problems
//! (never axum's plain-text rejections) when they cannot.

use aether_domain::auth::{ClientInfo, Principal};
use aether_domain::capability::Capability;
use aether_domain::job::JobOrigin;
use aether_domain::page::{Limit, PageRequest};
use axum::extract::rejection::{FormRejection, JsonRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap, StatusCode, header};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::error::{ApiError, FieldProblem};
use crate::middleware::RequestId;
use crate::state::AppState;

fn body_rejection(status: StatusCode, body_text: String, what: &str) -> ApiError {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "The request body is too large.")
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("The request body must be {what}."),
        ),
        StatusCode::UNPROCESSABLE_ENTITY => {
            ApiError::validation(vec![FieldProblem { field: "body".into(), message: body_text }])
        }
        _ => ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_body",
            format!("The request body is not valid {what}: {body_text}"),
        ),
    }
}

/// `Json<T>` whose rejections are problems: 400 `malformed_body` for syntax errors,
/// 422 `validation_failed` for a wrong shape, 413 and 415 as their names say.
///
/// Every body this API reads is a JSON object, which is what the document says.
/// serde would also read a struct from an array of its fields in order (`[null,
/// null]`), so anything but an object is refused (422) too.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = request.into_parts();
        let bytes = axum::body::Bytes::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(|rejection| body_rejection(rejection.status(), rejection.body_text(), "JSON"))?;
        let object = is_json_object(&bytes);
        let request = Request::from_parts(parts, axum::body::Body::from(bytes));
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) if object => Ok(Self(value)),
            Ok(_) => Err(not_an_object()),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

/// Whether a JSON text is an object (judged by its first character; the parser
/// judges the rest).
fn is_json_object(body: &[u8]) -> bool {
    body.iter().find(|byte| !byte.is_ascii_whitespace()) == Some(&b'{')
}

fn not_an_object() -> ApiError {
    ApiError::validation(vec![FieldProblem { field: "body".into(), message: "must be a JSON object".into() }])
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    let status = rejection.status();
    let text = match &rejection {
        JsonRejection::JsonDataError(error) => {
            std::error::Error::source(error).map_or_else(|| error.body_text(), |source| source.to_string())
        }
        other => other.body_text(),
    };
    body_rejection(status, text, "JSON")
}

/// `Form<T>` (application/x-www-form-urlencoded) whose rejections are problems.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiForm<T>(pub T);

impl<T, S> FromRequest<S> for ApiForm<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Form::<T>::from_request(request, state).await {
            Ok(axum::Form(value)) => Ok(Self(value)),
            Err(rejection) => {
                let status = match &rejection {
                    FormRejection::FailedToDeserializeForm(_) | FormRejection::FailedToDeserializeFormBody(_) => {
                        StatusCode::BAD_REQUEST
                    }
                    other => other.status(),
                };
                Err(body_rejection(status, rejection.body_text(), "form-encoded (application/x-www-form-urlencoded)"))
            }
        }
    }
}

/// The authenticated caller, from `Authorization: Bearer <access token>`.
#[derive(Debug, Clone)]
pub struct AuthUser(pub Principal);

/// The name of the browser session cookie.
pub const SESSION_COOKIE: &str = "aether_session";

/// The value of the session cookie, if the request carries one.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}

/// The client's address: as the trusted proxies name it (`ClientAddr`), else the peer's.
pub fn client_ip(extensions: &Extensions) -> Option<std::net::IpAddr> {
    extensions
        .get::<crate::client_addr::ClientAddr>()
        .map(|client| client.0)
        .or_else(|| extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|info| info.0.ip()))
}

/// Where the request came from, as the server saw it.
pub fn client_info(parts: &Parts) -> ClientInfo {
    ClientInfo {
        ip_address: client_ip(&parts.extensions).map(|ip| ip.to_string()),
        user_agent: parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|value| value.to_str().ok())
            .map(|agent| agent.chars().take(512).collect()),
    }
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(principal) = parts.extensions.get::<Principal>() {
            return Ok(Self(principal.clone()));
        }
        let client = client_info(parts);
        let principal = match parts.headers.get(header::AUTHORIZATION) {
            Some(value) => {
                let token = value
                    .to_str()
                    .ok()
                    .and_then(|value| value.split_once(' '))
                    .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                    .map(|(_, token)| token.trim())
                    .filter(|token| !token.is_empty())
                    .ok_or_else(|| {
                        ApiError::unauthorized("invalid_token", "The Authorization header must be 'Bearer <token>'.")
                    })?;
                state.identity.authenticate_bearer(token, client).await.map_err(count_failure)?
            }
            None => match session_cookie(&parts.headers) {
                Some(session) => state.identity.authenticate_session(&session, client).await.map_err(count_failure)?,
                // Browsers cannot set headers on WebSockets: those routes also take
                // the token as `access_token` in the query.
                None if parts.uri.path().starts_with("/api/v1/ws/")
                    && let Some(token) = query_token(parts.uri.query()) =>
                {
                    state.identity.authenticate_bearer(&token, client).await.map_err(count_failure)?
                }
                None => {
                    return Err(ApiError::unauthorized(
                        "missing_token",
                        "An Authorization: Bearer token (or a session cookie) is required.",
                    ));
                }
            },
        };
        let per_user = state.settings.rate_limit.per_user;
        if per_user > 0
            && let Some(slot) = parts.extensions.get::<crate::middleware::RateSlot>().cloned()
            && let Some(decision) =
                crate::middleware::count_request(state, &format!("user:{}", principal.user_id), per_user).await?
        {
            slot.record(decision);
            if !decision.allowed {
                metrics::counter!("aether_rate_limited_total", "scope" => "user").increment(1);
                return Err(ApiError::too_many_requests(crate::middleware::seconds_until(&decision)));
            }
        }
        parts.extensions.insert(principal.clone());
        Ok(Self(principal))
    }
}

/// The server's external base URL (`https://api.example.com`): `public_url`, or
/// `http://` and the request's `Host` when that host is in `allowed_hosts`.
pub fn external_base_url(state: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
    match &state.settings.public_url {
        Some(url) => Ok(url.trim_end_matches('/').to_owned()),
        None => crate::client_addr::base_url_from_host(headers, &state.settings.allowed_hosts),
    }
}

fn query_token(query: Option<&str>) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        (name == "access_token" && !value.is_empty()).then(|| value.to_owned())
    })
}

/// Counts a refused credential by why it was refused, for dashboards and alerts.
fn count_failure(error: aether_services::ServiceError) -> aether_services::ServiceError {
    use aether_domain::token::TokenError;
    let reason = match &error {
        aether_services::ServiceError::Unauthenticated(TokenError::Expired) => "expired",
        aether_services::ServiceError::Unauthenticated(TokenError::Invalid(_)) => "invalid",
        aether_services::ServiceError::Unauthenticated(TokenError::Unavailable(_))
        | aether_services::ServiceError::Unavailable(_) => "unavailable",
        _ => "other",
    };
    metrics::counter!("aether_authentication_failures_total", "reason" => reason).increment(1);
    error
}

/// An authenticated caller whose role allows writing ([`Capability::Write`]); others get 403.
#[derive(Debug, Clone)]
pub struct Writer(pub Principal);

impl FromRequestParts<AppState> for Writer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let AuthUser(principal) = AuthUser::from_request_parts(parts, state).await?;
        aether_services::identity::require(&principal, Capability::Write)?;
        Ok(Self(principal))
    }
}

/// An authenticated administrator ([`Capability::AdministerUsers`]); others get 403.
#[derive(Debug, Clone)]
pub struct Admin(pub Principal);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let AuthUser(principal) = AuthUser::from_request_parts(parts, state).await?;
        aether_services::identity::require(&principal, Capability::AdministerUsers)?;
        Ok(Self(principal))
    }
}

/// The request as the origin of the jobs it starts: its id and, when traces are
/// exported, the W3C `traceparent` of its span, so that the job's spans can name it
/// and link to it.
#[derive(Debug, Clone)]
pub struct Origin(pub JobOrigin);

impl<S: Send + Sync> FromRequestParts<S> for Origin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(job_origin(&parts.extensions)))
    }
}

/// The origin of jobs started by the request whose extensions these are. Called
/// inside the request's span (handlers and extractors are), whose context it reads.
pub fn job_origin(extensions: &Extensions) -> JobOrigin {
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let request_id = extensions.get::<RequestId>().map(|id| id.0.clone());
    let context = tracing::Span::current().context();
    let mut carrier = std::collections::HashMap::new();
    // Without an exporter the propagator is a no-op and the carrier stays empty.
    opentelemetry::global::get_text_map_propagator(|propagator| propagator.inject_context(&context, &mut carrier));
    JobOrigin { request_id, traceparent: carrier.remove("traceparent") }
}

/// `?limit=&cursor=` of a list endpoint, as given.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page, 1–100 (default 20).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// The `next_cursor` of a previous page.
    #[param(pattern = "^[A-Za-z0-9_-]{21}[AQgw]$")]
    pub cursor: Option<String>,
}

impl PageQuery {
    pub fn parse(self) -> Result<PageRequest, ApiError> {
        let limit = match self.limit.as_deref() {
            None => Limit::DEFAULT,
            Some(text) => {
                let value = text
                    .parse::<i64>()
                    .map_err(|_| ApiError::from(aether_domain::ValidationError::new("limit", "must be an integer")))?;
                Limit::parse(value)?
            }
        };
        let after = self.cursor.as_deref().map(decode_cursor).transpose()?;
        Ok(PageRequest { limit, after })
    }
}

/// Cursors are opaque to clients: the base64url form of the last item's id.
pub fn encode_cursor(after: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(after.as_bytes())
}

fn decode_cursor(text: &str) -> Result<Uuid, ApiError> {
    URL_SAFE_NO_PAD.decode(text).ok().and_then(|bytes| Uuid::from_slice(&bytes).ok()).ok_or_else(|| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_cursor", "The cursor is not one this API issued.")
    })
}

/// Query strings are parsed leniently into [`PageQuery`]; a malformed query string
/// is a 400 problem rather than axum's plain-text rejection.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Self(value))
            .map_err(|rejection| ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", rejection.body_text()))
    }
}

/// Deserialises a field that distinguishes "absent" (`None`) from `null`
/// (`Some(None)`), for partial updates that can clear a value.
pub fn double_option<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// Deserialises a field that may be absent (`None`) but not `null`: for partial
/// updates whose fields cannot be cleared, where a `null` would otherwise read as
/// "unchanged" although the document says the field is not nullable. Use with
/// `#[serde(default, deserialize_with = "present")]`.
pub fn present<'de, T, D>(deserializer: D) -> Result<Option<T>, D::Error>
where
    T: Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// A JSON body that may be absent: an empty body reads as `T::default()`. A body of
/// only whitespace is not absent but malformed JSON, and is refused like any other.
pub fn optional_json<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.is_empty() {
        return Ok(T::default());
    }
    let value = serde_json::from_slice(body).map_err(|error| {
        ApiError::new(StatusCode::BAD_REQUEST, "malformed_body", format!("The request body is not valid JSON: {error}"))
    })?;
    if is_json_object(body) { Ok(value) } else { Err(not_an_object()) }
}
