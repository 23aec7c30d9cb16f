//! Aether's HTTP API.
//!
//! Requests are parsed into validated domain types at this edge (see [`extract`]);
//! handlers call the use-case services and turn their results into JSON. Every
//! failure leaves as an RFC 9457 problem (`application/problem+json`) with a stable
//! `code` and the request's id (see [`error`] and [`middleware`]).

pub mod client_addr;
pub mod error;
pub mod extract;
pub mod live;
pub mod middleware;
pub(crate) mod multipart;
pub mod openapi;
pub mod routes;
pub mod server;
pub mod sockets;
mod state;

pub use axum::Router;
pub use routes::{router, with_middleware};
pub use server::{ServeLimits, serve, serve_with};
pub use state::{ApiSettings, AppState, RateLimitSettings, ReadinessCheck};
