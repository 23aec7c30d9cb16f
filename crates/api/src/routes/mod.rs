//! The router: every route, the OpenAPI document generated from them, and the
//! middleware stack around them.

pub mod activity;
pub mod auth;
pub mod documents;
pub mod notebooks;
pub mod ops;
pub mod related;
pub mod search;
pub mod sharing;
pub mod storage;
pub mod tags;
pub mod users;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{from_fn, from_fn_with_state};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

use crate::error::ApiError;
use crate::middleware::{self, X_REQUEST_ID};
use crate::openapi::ApiDoc;
use crate::state::{ApiSettings, AppState};

/// The OpenAPI document, generated from the route annotations.
pub fn openapi() -> utoipa::openapi::OpenApi {
    split().1
}

/// The routes, and the OpenAPI document completed by [`crate::openapi::finish`].
fn split() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (routes, mut openapi) = api_routes().split_for_parts();
    crate::openapi::finish(&mut openapi);
    (routes, openapi)
}

fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(ops::health))
        .routes(routes!(ops::ready))
        .routes(routes!(ops::metrics))
        .routes(routes!(auth::token))
        .routes(routes!(auth::jwks))
        .routes(routes!(auth::login))
        .routes(routes!(auth::callback))
        .routes(routes!(auth::refresh))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::auth_me))
        .routes(routes!(auth::permissions))
        .routes(routes!(auth::verify_token))
        .routes(routes!(users::me, users::update_me))
        .routes(routes!(users::search_users))
        .routes(routes!(users::sync_users))
        .routes(routes!(users::my_roles))
        .routes(routes!(users::list_api_keys, users::create_api_key))
        .routes(routes!(users::revoke_api_key))
        .routes(routes!(users::get_user))
        .routes(routes!(users::get_avatar))
        .merge(
            // Images are bigger than JSON bodies: this route alone takes up to the avatar limit.
            OpenApiRouter::new()
                .routes(routes!(users::upload_avatar, users::delete_avatar))
                .layer(DefaultBodyLimit::max(aether_services::avatars::MAX_AVATAR_BYTES + 64 * 1024)),
        )
        .routes(routes!(users::admin_list_users))
        .routes(routes!(users::admin_set_roles))
        .routes(routes!(notebooks::list_notebooks, notebooks::create_notebook))
        .routes(routes!(notebooks::get_notebook, notebooks::update_notebook, notebooks::delete_notebook))
        .routes(routes!(notebooks::list_children))
        .routes(routes!(notebooks::restore_notebook))
        .routes(routes!(notebooks::duplicate_notebook))
        .routes(routes!(notebooks::bulk_update))
        .routes(routes!(tags::list_tags))
        .routes(routes!(search::search_documents))
        .routes(routes!(search::search_notebooks))
        .routes(routes!(search::search_people))
        .routes(routes!(search::search_everything))
        .routes(routes!(search::search_semantic))
        .routes(routes!(search::search_history, search::clear_search_history))
        .routes(routes!(search::forget_search))
        .routes(routes!(search::search_suggestions))
        .routes(routes!(search::search_communities))
        .routes(routes!(search::search_analytics))
        .routes(routes!(related::search_related))
        .routes(routes!(activity::notebook_activity))
        .routes(routes!(activity::audit_log))
        .routes(routes!(sharing::share_notebook))
        .routes(routes!(sharing::accept_invitation))
        .routes(routes!(sharing::decline_invitation))
        .routes(routes!(sharing::set_permission))
        .routes(routes!(sharing::list_collaborators))
        .routes(routes!(sharing::explain_access))
        .routes(routes!(sharing::list_invitations))
        .merge(
            // Uploads stream and enforce their own size limit (`max_upload_bytes`).
            OpenApiRouter::new()
                .routes(routes!(documents::uploads::upload_document))
                .routes(routes!(documents::uploads::upload_batch))
                .routes(routes!(storage::storage_upload))
                .layer(DefaultBodyLimit::disable()),
        )
        .routes(routes!(documents::uploads::notebook_upload_status))
        .routes(routes!(documents::uploads::job_status))
        .routes(routes!(documents::uploads::job_progress))
        .routes(routes!(documents::uploads::cancel_job))
        .routes(routes!(documents::sockets::job_socket))
        .routes(routes!(documents::list_documents))
        .routes(routes!(documents::formats::list_formats))
        .routes(routes!(documents::get_document, documents::update_document, documents::delete_document))
        .routes(routes!(documents::list_versions))
        .routes(routes!(documents::downloads::download_document))
        .routes(routes!(documents::preview_document))
        .routes(routes!(documents::document_thumbnail))
        .routes(routes!(documents::audimodal::audimodal_webhook))
        .routes(routes!(documents::audimodal::audimodal_status))
        .routes(routes!(documents::sockets::processing_socket))
        .routes(routes!(documents::sockets::notebook_upload_socket))
        .routes(routes!(storage::storage_signed))
        .routes(routes!(storage::storage_download))
        .routes(routes!(storage::storage_url))
        .routes(routes!(storage::storage_metadata))
        .routes(routes!(storage::storage_copy))
        .routes(routes!(storage::storage_delete))
}

/// The whole application, ready to serve.
pub fn router(state: AppState) -> Router {
    let settings = state.settings.clone();
    let (routes, openapi) = split();
    // Swagger UI's assets are vendored into the binary, so /docs works offline. Its
    // page needs scripts and styles from this origin, unlike the JSON API.
    let docs = Router::new().merge(SwaggerUi::new("/docs").url("/api/v1/openapi.json", openapi)).layer(
        SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
                 script-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
            ),
        ),
    );

    let limited = routes.layer(from_fn_with_state(state.clone(), middleware::rate_limit));
    let app = Router::new().merge(limited).merge(docs).with_state(state);
    with_middleware(app, &settings)
}

/// Wraps routes in the middleware stack every response goes through: the 404
/// fallback, metrics, security headers, request ids, problem mapping, CORS, panic
/// catching, the request timeout and the body limit.
pub fn with_middleware(app: Router, settings: &ApiSettings) -> Router {
    let mut stack = app
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "No such route.") })
        // Per-route, so that the matched route template is known.
        .layer(from_fn(middleware::track_metrics));

    for (name, value) in middleware::security_headers() {
        stack = stack.layer(SetResponseHeaderLayer::if_not_present(name, value));
    }
    stack.layer(
        ServiceBuilder::new()
            .layer(from_fn_with_state(
                std::sync::Arc::new(settings.trusted_proxies.clone()),
                crate::client_addr::client_address,
            ))
            .layer(from_fn(middleware::request_id))
            .layer(from_fn(middleware::problem_details))
            .option_layer(cors(settings))
            .layer(CatchPanicLayer::custom(middleware::panic_response))
            .layer(from_fn_with_state(settings.request_timeout, middleware::timeout))
            .layer(DefaultBodyLimit::max(settings.max_body_bytes)),
    )
}

fn cors(settings: &ApiSettings) -> Option<CorsLayer> {
    if settings.cors_allowed_origins.is_empty() {
        return None;
    }
    let origins = if settings.cors_allowed_origins.iter().any(|origin| origin == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(settings.cors_allowed_origins.iter().filter_map(|origin| HeaderValue::from_str(origin).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(origins)
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE, Method::OPTIONS])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, X_REQUEST_ID.clone()])
            .expose_headers([X_REQUEST_ID.clone(), header::LOCATION, HeaderName::from_static("retry-after")])
            .max_age(std::time::Duration::from_secs(600)),
    )
}
