//! Operations endpoints at the root: liveness, readiness, metrics.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use std::sync::Arc;

use crate::state::{AppState, ReadinessCheck};

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
    pub version: &'static str,
}

/// Liveness: the process is up and serving HTTP.
#[utoipa::path(get, path = "/health", tag = "operations", responses((status = 200, body = Health)))]
pub async fn health() -> Json<Health> {
    Json(Health { status: "ok", version: env!("CARGO_PKG_VERSION") })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` when every dependency is up, `unavailable` otherwise.
    pub status: &'static str,
    pub checks: BTreeMap<String, CheckResult>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CheckResult {
    /// `up` or `down`.
    pub status: &'static str,
    pub latency_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub error: Option<String>,
}

const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// Readiness: each configured dependency, checked concurrently; 503 when one is down.
#[utoipa::path(get, path = "/ready", tag = "operations", responses(
    (status = 200, description = "Every dependency answers", body = Readiness),
    (status = 503, description = "A dependency is down", body = Readiness),
))]
pub async fn ready(State(state): State<AppState>) -> Response {
    let (status, report) = readiness_report(&state.readiness).await;
    let mut response = (status, Json(report)).into_response();
    // A 503 here is a readiness report, not an error: it stays plain JSON.
    response.extensions_mut().insert(crate::middleware::NotAProblem);
    response
}

/// Runs every check concurrently, each bounded by a timeout.
pub async fn readiness_report(checks: &[Arc<dyn ReadinessCheck>]) -> (StatusCode, Readiness) {
    let checks = checks.iter().map(|check| async move {
        let started = Instant::now();
        let outcome = match tokio::time::timeout(CHECK_TIMEOUT, check.check()).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!("no answer within {} s", CHECK_TIMEOUT.as_secs())),
        };
        let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let result = match outcome {
            Ok(()) => CheckResult { status: "up", latency_ms, error: None },
            Err(error) => CheckResult { status: "down", latency_ms, error: Some(error) },
        };
        (check.name().to_owned(), result)
    });
    let checks: BTreeMap<_, _> = futures::future::join_all(checks).await.into_iter().collect();
    let all_up = checks.values().all(|check| check.status == "up");
    let status = if all_up { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Readiness { status: if all_up { "ready" } else { "unavailable" }, checks })
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let mut response = state.metrics.render().into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    response
}
