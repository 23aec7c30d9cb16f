//! Cross-cutting request handling: request ids, problem responses for every
//! failure, Prometheus metrics, and the panic handler.

use std::sync::OnceLock;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use opentelemetry::trace::TraceContextExt as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::error::{ApiError, PROBLEM_CONTENT_TYPE, Problem, problem_for_status, problem_response};

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request's id, in the request's extensions for handlers and logs.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Accepts a client's `X-Request-ID` when it is 1–128 visible ASCII characters,
/// otherwise generates one; echoes it on the response and opens the request's span.
///
/// The span follows OpenTelemetry's HTTP server conventions (`http.route` is the
/// route template, so span names stay few) and continues the caller's trace when
/// the request carries a W3C `traceparent` (without an exporter the propagator is
/// a no-op). Only the method, route, path, status and request id are recorded:
/// never headers, query strings or bodies, which may carry credentials.
pub async fn request_id(mut request: Request, next: Next) -> Response {
    let incoming = request
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|id| !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned);
    let id = incoming.unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let header_value = HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("invalid"));
    request.headers_mut().insert(X_REQUEST_ID.clone(), header_value.clone());
    request.extensions_mut().insert(RequestId(id.clone()));

    let span = request_span(&request, &id);
    let started = Instant::now();
    let mut response = tracing::Instrument::instrument(next.run(request), span.clone()).await;
    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "error");
    }
    span.in_scope(|| {
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), elapsed_ms, "request failed");
        } else {
            tracing::info!(status = status.as_u16(), elapsed_ms, "request handled");
        }
    });
    response.headers_mut().insert(X_REQUEST_ID.clone(), header_value);
    response
}

/// The span of one request, named by its route template (`GET /api/v1/notebooks/{id}`),
/// or by its method alone when no route matched, as the conventions ask.
fn request_span(request: &Request, request_id: &str) -> tracing::Span {
    let method = request.method().as_str();
    let route = request.extensions().get::<MatchedPath>().map(MatchedPath::as_str);
    let name = match route {
        Some(route) => format!("{method} {route}"),
        None => method.to_owned(),
    };
    let span = tracing::info_span!(
        "request",
        otel.name = name.as_str(),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        request_id,
        http.request.method = method,
        http.route = route,
        url.path = request.uri().path(),
        http.response.status_code = tracing::field::Empty,
    );
    let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&HeaderExtractor(request.headers()))
    });
    if parent.span().span_context().is_valid() {
        // Fails only when no OpenTelemetry layer is installed or the span is
        // disabled; then there is no trace to continue.
        let _ = span.set_parent(parent);
    }
    span
}

/// A request's headers as the trace-context propagator reads them (`traceparent`,
/// `tracestate`).
struct HeaderExtractor<'a>(&'a HeaderMap);

impl opentelemetry::propagation::Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

/// Marks an error-status response whose body is meant as it is (the readiness
/// report's 503), so that [`problem_details`] leaves it alone.
#[derive(Debug, Clone, Copy)]
pub struct NotAProblem;

/// Makes every error response a problem document carrying the request id: problems
/// raised by handlers get the id filled in, and bare error statuses from the router
/// or middleware (404, 405, 413, timeouts) are replaced by a problem of their own.
pub async fn problem_details(request: Request, next: Next) -> Response {
    let request_id = request.extensions().get::<RequestId>().map(|id| id.0.clone());
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || response.extensions().get::<NotAProblem>().is_some() {
        return response;
    }
    let (parts, body) = response.into_parts();
    let mut problem = match parts.extensions.get::<Problem>() {
        Some(problem) => problem.clone(),
        None => {
            let is_problem = parts
                .headers
                .get(header::CONTENT_TYPE)
                .is_some_and(|value| value.as_bytes().starts_with(PROBLEM_CONTENT_TYPE.as_bytes()));
            if is_problem {
                return Response::from_parts(parts, body);
            }
            problem_for_status(status)
        }
    };
    drop(body);
    problem.request_id = request_id;
    let mut fresh = problem_response(problem);
    // Keep headers the original response set for the client (Allow on 405,
    // Retry-After, CORS …), but not its body's framing.
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH && name != header::TRANSFER_ENCODING {
            fresh.headers_mut().entry(name.clone()).or_insert_with(|| value.clone());
        }
    }
    fresh
}

/// How often recorded histogram values are folded into their buckets and dropped.
const METRICS_UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// The global Prometheus recorder. Installed once per process, as the `metrics`
/// facade allows only one; later calls share it (tests start many apps).
pub fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("http_request_duration_seconds".into()),
                    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
                )
                .and_then(|builder| {
                    // From a change's publication in this process to its write on a
                    // socket: fine steps around the 50 ms target.
                    builder.set_buckets_for_metric(
                        Matcher::Full("aether_live_delivery_seconds".into()),
                        &[0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.5],
                    )
                })
                .and_then(|builder| {
                    // A search, from its request to its results: around the 25 ms
                    // (text) and 60 ms (hybrid) targets.
                    builder.set_buckets_for_metric(
                        Matcher::Full("aether_search_seconds".into()),
                        &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.06, 0.1, 0.25, 0.5, 1.0, 2.5],
                    )
                })
                .and_then(|builder| {
                    builder.set_buckets_for_metric(
                        Matcher::Full("aether_outbox_relay_lag_seconds".into()),
                        &[0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0],
                    )
                })
                .map(PrometheusBuilder::build_recorder);
            match recorder {
                Ok(recorder) => {
                    let handle = recorder.handle();
                    if metrics::set_global_recorder(recorder).is_err() {
                        tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
                    }
                    // Histograms keep every recorded value until they are drained: by a
                    // scrape of /metrics, or by this upkeep. Without it a server nobody
                    // scrapes (the embedded default) would hold a value per request and
                    // per socket update for ever.
                    let upkept = handle.clone();
                    let spawned = std::thread::Builder::new().name("metrics-upkeep".into()).spawn(move || {
                        loop {
                            std::thread::sleep(METRICS_UPKEEP_INTERVAL);
                            upkept.run_upkeep();
                        }
                    });
                    if let Err(error) = spawned {
                        tracing::error!(%error, "cannot start the metrics upkeep thread");
                    }
                    handle
                }
                Err(error) => {
                    tracing::error!(%error, "cannot build the metrics recorder");
                    PrometheusBuilder::new().build_recorder().handle()
                }
            }
        })
        .clone()
}

/// Counts requests by route template and status, times them, and tracks how many
/// are in flight. Route templates (`/api/v1/notebooks/{id}`) keep label sets small.
pub async fn track_metrics(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let mut record = RequestRecord::start(request.method().as_str().to_owned(), route);
    let response = next.run(request).await;
    record.status = Some(response.status().as_u16());
    response
}

/// One request's metrics, recorded when it is dropped: with the response's status,
/// or, when the handler never produced one, 500 for a panic (unwinding through
/// here) and the timeout status for a request cancelled by the timeout. So panics
/// and timeouts are counted too, and the in-flight gauge always comes back down.
struct RequestRecord {
    method: String,
    route: String,
    started: Instant,
    status: Option<u16>,
}

impl RequestRecord {
    fn start(method: String, route: String) -> Self {
        metrics::gauge!("http_requests_in_flight").increment(1.0);
        Self { method, route, started: Instant::now(), status: None }
    }
}

impl Drop for RequestRecord {
    fn drop(&mut self) {
        metrics::gauge!("http_requests_in_flight").decrement(1.0);
        let status =
            self.status.unwrap_or_else(|| if std::thread::panicking() { 500 } else { TIMEOUT_STATUS.as_u16() });
        let (method, route) = (std::mem::take(&mut self.method), std::mem::take(&mut self.route));
        metrics::counter!("http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status.to_string())
            .increment(1);
        metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route)
            .record(self.started.elapsed().as_secs_f64());
    }
}

/// Answers a panic in a handler with a 500 problem; the panic itself is logged.
pub fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response<Body> {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(panic = message, "handler panicked");
    metrics::counter!("http_panics_total").increment(1);
    ApiError::internal().into_response()
}

/// Headers every response carries unless a route set its own.
pub fn security_headers() -> [(HeaderName, HeaderValue); 5] {
    [
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'")),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
    ]
}

/// The status a timed-out request is answered with.
pub const TIMEOUT_STATUS: StatusCode = StatusCode::SERVICE_UNAVAILABLE;

/// The rate limit decision that will be reported on the response: the most
/// restrictive of the per-IP and per-user windows the request was counted in.
#[derive(Debug, Clone, Default)]
pub struct RateSlot(std::sync::Arc<std::sync::Mutex<Option<aether_domain::limits::RateDecision>>>);

impl RateSlot {
    pub fn record(&self, decision: aether_domain::limits::RateDecision) {
        let mut slot = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let tighter = slot.is_none_or(|current| {
            (!decision.allowed && current.allowed)
                || (decision.allowed == current.allowed && decision.remaining < current.remaining)
        });
        if tighter {
            *slot = Some(decision);
        }
    }

    fn get(&self) -> Option<aether_domain::limits::RateDecision> {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Counts the request against `key`; `None` when the limiter failed and failing open.
pub async fn count_request(
    state: &crate::state::AppState,
    key: &str,
    limit: u32,
) -> Result<Option<aether_domain::limits::RateDecision>, ApiError> {
    let settings = &state.settings.rate_limit;
    match state.limiter.hit(key, limit, settings.window).await {
        Ok(decision) => Ok(Some(decision)),
        Err(error) if settings.fail_open => {
            metrics::counter!("aether_dependency_errors_total", "dependency" => "rate_limiter").increment(1);
            tracing::warn!(%error, "rate limiter unavailable; letting the request through");
            Ok(None)
        }
        Err(error) => {
            metrics::counter!("aether_dependency_errors_total", "dependency" => "rate_limiter").increment(1);
            tracing::warn!(%error, "rate limiter unavailable; refusing the request");
            Err(ApiError {
                retry_after: Some(1),
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "service_unavailable",
                    "A dependency is temporarily unavailable; retry later.",
                )
            })
        }
    }
}

pub fn seconds_until(decision: &aether_domain::limits::RateDecision) -> u64 {
    decision.reset_after.as_millis().div_ceil(1000).try_into().unwrap_or(u64::MAX).max(1)
}

/// Per-IP limits on `/api/v1`, and `RateLimit-Limit`, `RateLimit-Remaining` and
/// `RateLimit-Reset` on every response counted (the per-user count is added by the
/// authentication extractor through the [`RateSlot`]).
pub async fn rate_limit(
    axum::extract::State(state): axum::extract::State<crate::state::AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    if !request.uri().path().starts_with("/api/v1/") {
        return next.run(request).await;
    }
    let slot = RateSlot::default();
    let per_ip = state.settings.rate_limit.per_ip;
    let ip = crate::extract::client_ip(request.extensions());
    let refused = match (per_ip, ip) {
        (0, _) | (_, None) => None,
        (limit, Some(ip)) => match count_request(&state, &format!("ip:{ip}"), limit).await {
            Ok(Some(decision)) => {
                slot.record(decision);
                (!decision.allowed).then(|| {
                    metrics::counter!("aether_rate_limited_total", "scope" => "ip").increment(1);
                    ApiError::too_many_requests(seconds_until(&decision)).into_response()
                })
            }
            Ok(None) => None,
            Err(error) => Some(error.into_response()),
        },
    };
    let mut response = match refused {
        Some(response) => response,
        None => {
            request.extensions_mut().insert(slot.clone());
            next.run(request).await
        }
    };
    if let Some(decision) = slot.get() {
        let headers = response.headers_mut();
        headers.insert("ratelimit-limit", HeaderValue::from(decision.limit));
        headers.insert("ratelimit-remaining", HeaderValue::from(decision.remaining));
        headers.insert("ratelimit-reset", HeaderValue::from(seconds_until(&decision)));
    }
    response
}

/// Answers `TIMEOUT_STATUS` when a request takes longer than `limit` to produce its
/// response head. Uploads are exempt: a large file takes as long as the network
/// needs, and their progress is visible in the job.
pub async fn timeout(
    axum::extract::State(limit): axum::extract::State<std::time::Duration>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    let upload = path == "/api/v1/documents/upload" || path == "/api/v1/storage/upload";
    if upload || (path.starts_with("/api/v1/notebooks/") && path.ends_with("/upload")) {
        return next.run(request).await;
    }
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => problem_response(problem_for_status(TIMEOUT_STATUS)),
    }
}
