//! Aether's HTTP API.
//!
//! Requests are parsed into validated domain types at this edge (see [`extract`]);
//! handlers call the use-case services and turn their results into JSON. Every
//! failure leaves as an RFC 9457 problem (`application/problem+json`) with a stable
//! `code` and the request's id (see [`error`] and [`middleware`]).

pub mod error;
pub mod extract;
pub mod middleware;
pub mod openapi;
pub mod routes;
mod state;

pub use axum::Router;
pub use routes::{router, with_middleware};
pub use state::{ApiSettings, AppState, RateLimitSettings, ReadinessCheck};

/// Serves `app` on `listener` until `shutdown` completes, then lets in-flight
/// requests finish before returning.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}
