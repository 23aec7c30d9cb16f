//! The middleware stack around routes of the test's own making: a panicking
//! handler, a slow one (graceful shutdown, timeouts), and the readiness report.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use aether_api::error::ApiError;
use aether_api::{ApiSettings, ReadinessCheck, Router, with_middleware};
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::Value;

async fn serve(
    app: Router,
) -> (String, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<std::io::Result<()>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(aether_api::serve(listener, app, async move {
        let _ = stopped.await;
    }));
    (base, stop, handle)
}

#[allow(clippy::panic)]
async fn explode() -> &'static str {
    panic!("boom")
}

async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_millis(600)).await;
    "done"
}

fn app(settings: &ApiSettings) -> Router {
    with_middleware(Router::new().route("/panic", get(explode)).route("/slow", get(slow)), settings)
}

#[tokio::test]
async fn a_panicking_handler_answers_a_500_problem() {
    let (base, stop, handle) = serve(app(&ApiSettings::default())).await;
    let response = reqwest::get(format!("{base}/panic")).await.unwrap();
    assert_eq!(response.status(), 500);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let request_id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "internal_error");
    assert_eq!(body["request_id"], request_id.as_str());
    assert!(!body.to_string().contains("boom"), "the panic message stays in the log");
    // The server survives the panic.
    assert_eq!(reqwest::get(format!("{base}/slow")).await.unwrap().status(), 200);
    let _ = stop.send(());
    handle.await.unwrap().unwrap();
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let (base, stop, handle) = serve(app(&ApiSettings::default())).await;
    let in_flight = tokio::spawn(async move { reqwest::get(format!("{base}/slow")).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = stop.send(());
    let response = in_flight.await.unwrap().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "done");
    tokio::time::timeout(Duration::from_secs(5), handle).await.unwrap().unwrap().unwrap();
}

#[tokio::test]
async fn slow_requests_time_out_with_a_problem() {
    let settings = ApiSettings { request_timeout: Duration::from_millis(100), ..ApiSettings::default() };
    let (base, stop, handle) = serve(app(&settings)).await;
    let response = reqwest::get(format!("{base}/slow")).await.unwrap();
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "service_unavailable");
    let _ = stop.send(());
    handle.await.unwrap().unwrap();
}

#[tokio::test]
async fn handler_problems_keep_their_code() {
    async fn conflict() -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "conflict", "taken")
    }
    let routes = Router::new().route("/conflict", get(conflict));
    let (base, stop, handle) = serve(with_middleware(routes, &ApiSettings::default())).await;
    let response = reqwest::get(format!("{base}/conflict")).await.unwrap();
    assert_eq!(response.status(), 409);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "conflict");
    assert!(body["request_id"].is_string());
    let _ = stop.send(());
    handle.await.unwrap().unwrap();
}

/// A readiness check whose answer the test sets: it stands in for a dependency
/// that is down, which a real one cannot be made to be on demand here.
struct Switch(&'static str, bool);

#[async_trait::async_trait]
impl ReadinessCheck for Switch {
    fn name(&self) -> &str {
        self.0
    }
    async fn check(&self) -> Result<(), String> {
        if self.1 { Ok(()) } else { Err("connection refused".into()) }
    }
}

#[tokio::test]
async fn readiness_reports_each_dependency_and_503_when_one_is_down() {
    let checks: Vec<Arc<dyn ReadinessCheck>> = vec![Arc::new(Switch("neo4j", true)), Arc::new(Switch("redis", false))];
    let report = aether_api::routes::ops::readiness_report(&checks).await;
    assert_eq!(report.0, StatusCode::SERVICE_UNAVAILABLE);
    let body = serde_json::to_value(&report.1).unwrap();
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["checks"]["neo4j"]["status"], "up");
    assert_eq!(body["checks"]["redis"]["status"], "down");
    assert_eq!(body["checks"]["redis"]["error"], "connection refused");

    let healthy: Vec<Arc<dyn ReadinessCheck>> = vec![Arc::new(Switch("neo4j", true))];
    let report = aether_api::routes::ops::readiness_report(&healthy).await;
    assert_eq!(report.0, StatusCode::OK);
}

#[tokio::test]
async fn panics_and_timeouts_are_counted() {
    let metrics = aether_api::middleware::prometheus();
    let settings = ApiSettings { request_timeout: Duration::from_millis(100), ..ApiSettings::default() };
    let (base, stop, handle) = serve(app(&settings)).await;
    assert_eq!(reqwest::get(format!("{base}/panic")).await.unwrap().status(), 500);
    assert_eq!(reqwest::get(format!("{base}/slow")).await.unwrap().status(), 503);
    let text = metrics.render();
    for series in [
        r#"http_requests_total{method="GET",route="/panic",status="500"}"#,
        r#"http_requests_total{method="GET",route="/slow",status="503"}"#,
    ] {
        assert!(text.contains(series), "{series} in:\n{text}");
    }
    let _ = stop.send(());
    handle.await.unwrap().unwrap();
}
