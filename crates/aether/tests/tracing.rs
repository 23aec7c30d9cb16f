//! Traces exported over OTLP, as a collector receives them: the real `aether`
//! binary is pointed at an OTLP/gRPC receiver running in this test, and the spans
//! of a request, its store calls and a document job are checked as they arrive.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use serde_json::{Value, json};

/// The server runs document workers, which take jobs from the shared store (Neo4j
/// in the second stage of scripts/test): one test at a time keeps the jobs its own.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One received span, flattened: ids in hex, attributes as strings.
#[derive(Debug, Clone)]
struct ReceivedSpan {
    service: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    name: String,
    kind: i32,
    attributes: HashMap<String, String>,
    /// The spans this one links to: (trace id, span id).
    links: Vec<(String, String)>,
}

impl ReceivedSpan {
    fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

/// An OTLP/gRPC trace receiver that keeps every span it is sent.
#[derive(Debug, Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut received = Vec::new();
        for resource_spans in request.into_inner().resource_spans {
            let resource = resource_spans.resource.map(|resource| attributes(&resource.attributes)).unwrap_or_default();
            let service = resource.get("service.name").cloned().unwrap_or_default();
            for scope_spans in resource_spans.scope_spans {
                for span in scope_spans.spans {
                    received.push(ReceivedSpan {
                        service: service.clone(),
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_span_id: hex(&span.parent_span_id),
                        name: span.name,
                        kind: span.kind,
                        attributes: attributes(&span.attributes),
                        links: span.links.iter().map(|link| (hex(&link.trace_id), hex(&link.span_id))).collect(),
                    });
                }
            }
        }
        self.spans.lock().unwrap().extend(received);
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

impl Receiver {
    /// Serves on a free port of 127.0.0.1 and answers its endpoint URL.
    async fn start() -> (Self, String) {
        let receiver = Self::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let service = TraceServiceServer::new(receiver.clone());
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
                .await
                .unwrap();
        });
        (receiver, endpoint)
    }

    fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans.lock().unwrap().clone()
    }

    /// Polls until a span matching `wanted` has arrived, for up to `deadline`.
    async fn wait_for(&self, what: &str, deadline: Duration, wanted: impl Fn(&ReceivedSpan) -> bool) -> ReceivedSpan {
        let started = Instant::now();
        loop {
            if let Some(span) = self.spans().into_iter().find(|span| wanted(span)) {
                return span;
            }
            if started.elapsed() > deadline {
                let names: Vec<String> = self.spans().iter().map(|span| span.name.clone()).collect();
                panic!("no {what} arrived within {deadline:?}; received: {names:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn attributes(list: &[opentelemetry_proto::tonic::common::v1::KeyValue]) -> HashMap<String, String> {
    list.iter()
        .map(|pair| {
            let value = match pair.value.as_ref().and_then(|value| value.value.as_ref()) {
                Some(AnyValue::StringValue(text)) => text.clone(),
                Some(AnyValue::IntValue(number)) => number.to_string(),
                Some(AnyValue::BoolValue(flag)) => flag.to_string(),
                Some(AnyValue::DoubleValue(number)) => number.to_string(),
                other => format!("{other:?}"),
            };
            (pair.key.clone(), value)
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The `aether` binary, configured by `AETHER_*` variables only, its store the
/// test store. Logs are kept to warnings: spans must not depend on the log level.
fn aether(data_dir: &Path) -> Command {
    let mut command = common::process::aether_command(data_dir);
    command.env("AETHER_ADMIN_PASSWORD", common::ADMIN_PASSWORD);
    command
}

/// Kills its server when dropped, so a failing test leaves no process behind.
struct Server {
    child: Option<Child>,
    base_url: String,
}

impl Server {
    fn start(mut command: Command) -> Self {
        command.args(["serve", "--listen", "127.0.0.1:0"]).stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = command.spawn().unwrap();
        let base_url = common::process::listening_url(&mut child);
        Self { child: Some(child), base_url }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// SIGTERM, then waits (off the async threads, which serve the receiver) for a
    /// clean exit.
    async fn stop(mut self) {
        let mut child = self.child.take().unwrap();
        let pid = child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
        assert!(status.success(), "exit status after SIGTERM: {status:?}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

async fn admin_token(server: &Server) -> String {
    let response = client()
        .post(server.url("/api/v1/auth/token"))
        .form(&[("grant_type", "password"), ("username", "admin"), ("password", common::ADMIN_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let tokens: Value = response.json().await.unwrap();
    tokens["access_token"].as_str().unwrap().to_owned()
}

async fn create_notebook(server: &Server, token: &str, request_id: &str, body: Value) -> Value {
    let response = client()
        .post(server.url("/api/v1/notebooks"))
        .bearer_auth(token)
        .header("x-request-id", request_id)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::now_v7())
}

/// A request's server span carries the route, status and request id, its store
/// calls are its children, a caller's `traceparent` is continued, and a document
/// job is a trace of its own with a span per stage and the job id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_store_calls_and_jobs_are_exported_over_otlp() {
    let _serial = SERIAL.lock().await;
    let (receiver, endpoint) = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut command = aether(dir.path());
    command
        .env("AETHER_OTLP_ENDPOINT", &endpoint)
        .env("AETHER_OTLP_SERVICE_NAME", "aether-tracing-test")
        // The SDK's batch delay: spans arrive within a fraction of a second.
        .env("OTEL_BSP_SCHEDULE_DELAY", "100");
    let server = Server::start(command);
    let token = admin_token(&server).await;
    let backend = match common::store_kind() {
        aether::config::StoreKind::Sqlite => "sqlite",
        aether::config::StoreKind::Neo4j => "neo4j",
    };

    // A request with a known id: its span, and the store call under it.
    let request_id = unique("trace-create");
    let created = create_notebook(&server, &token, &request_id, json!({"name": "Traced"})).await;
    let deadline = Duration::from_secs(20);
    let request = receiver
        .wait_for("server span of the create request", deadline, |span| {
            span.attribute("request_id") == Some(request_id.as_str())
        })
        .await;
    assert_eq!(request.name, "POST /api/v1/notebooks");
    assert_eq!(request.kind, SpanKind::Server as i32);
    assert_eq!(request.service, "aether-tracing-test");
    assert_eq!(request.attribute("http.request.method"), Some("POST"));
    assert_eq!(request.attribute("http.route"), Some("/api/v1/notebooks"));
    assert_eq!(request.attribute("http.response.status_code"), Some("201"));
    assert!(request.parent_span_id.is_empty(), "a request without traceparent starts a trace: {request:?}");
    let store = receiver
        .wait_for("store span of create_notebook", deadline, |span| {
            span.trace_id == request.trace_id && span.name == "create_notebook"
        })
        .await;
    assert_eq!(store.parent_span_id, request.span_id, "the store call is a child of the request");
    assert_eq!(store.attribute("db.system"), Some(backend));
    assert_eq!(store.attribute("db.operation.name"), Some("create_notebook"));
    assert_eq!(store.kind, SpanKind::Client as i32);

    // A caller's trace context is continued, under its span; the route is the template.
    let caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let read_id = unique("trace-read");
    let response = client()
        .get(server.url(&format!("/api/v1/notebooks/{}", created["id"].as_str().unwrap())))
        .bearer_auth(&token)
        .header("x-request-id", &read_id)
        .header("traceparent", format!("00-{caller_trace}-{caller_span}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let read = receiver
        .wait_for("server span of the read request", deadline, |span| {
            span.attribute("request_id") == Some(read_id.as_str())
        })
        .await;
    assert_eq!(read.name, "GET /api/v1/notebooks/{id}");
    assert_eq!((read.trace_id.as_str(), read.parent_span_id.as_str()), (caller_trace, caller_span));
    receiver
        .wait_for("store span of the read", deadline, |span| {
            // The notebook with the caller's chain (not cached yet), or alone once it is.
            let store_read = matches!(span.name.as_str(), "notebook_with_access_chain" | "get_notebook");
            span.trace_id == caller_trace && span.parent_span_id == read.span_id && store_read
        })
        .await;

    // An unmatched path is named by its method alone, and answered 404.
    let missing_id = unique("trace-missing");
    let response = client().get(server.url("/no/such/route")).header("x-request-id", &missing_id).send().await.unwrap();
    assert_eq!(response.status(), 404);
    let missing = receiver
        .wait_for("server span of the unmatched request", deadline, |span| {
            span.attribute("request_id") == Some(missing_id.as_str())
        })
        .await;
    assert_eq!(missing.name, "GET");
    assert_eq!(missing.attribute("http.response.status_code"), Some("404"));

    // A document job: its own trace, with the job id and a span per stage, carrying
    // the id of the upload request and linked to its span.
    let notebook = create_notebook(
        &server,
        &token,
        &unique("trace-notebook"),
        json!({"name": "Traced documents", "compliance_settings": {"pii_detection": true, "redaction_mode": "mask"}}),
    )
    .await;
    let text = b"Write to jane.doe@example.com about the traced upload.\n".to_vec();
    let form = reqwest::multipart::Form::new()
        .text("notebook_id", notebook["id"].as_str().unwrap().to_owned())
        .part("file", reqwest::multipart::Part::bytes(text).file_name("traced.txt"));
    let upload_id = unique("trace-upload");
    let response = client()
        .post(server.url("/api/v1/documents/upload"))
        .bearer_auth(&token)
        .header("x-request-id", &upload_id)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let accepted: Value = response.json().await.unwrap();
    let job_id = accepted["job_id"].as_str().unwrap().to_owned();
    let upload = receiver
        .wait_for("upload request span", Duration::from_secs(30), |span| {
            span.attribute("request_id") == Some(upload_id.as_str())
        })
        .await;
    // Generous: on a shared Neo4j, the workers may first meet other runs' leftover jobs.
    let job = receiver
        .wait_for("job span", Duration::from_secs(90), |span| {
            span.name == "document job" && span.attribute("job_id") == Some(job_id.as_str())
        })
        .await;
    assert!(job.parent_span_id.is_empty(), "a job attempt is a trace of its own: {job:?}");
    assert_eq!(job.attribute("request_id"), Some(upload_id.as_str()), "the job names the request that started it");
    assert_eq!(job.links, vec![(upload.trace_id.clone(), upload.span_id.clone())], "and links to its span");
    let stages = receiver.spans().into_iter().filter(|span| span.trace_id == job.trace_id).collect::<Vec<_>>();
    for stage in ["job.fetch", "job.extract", "job.finish"] {
        let span = stages.iter().find(|span| span.name == stage).unwrap_or_else(|| panic!("no {stage}: {stages:?}"));
        assert_eq!(span.parent_span_id, job.span_id, "{stage} is a stage of the job");
    }
    let extract = stages.iter().find(|span| span.name == "job.extract").unwrap();
    let derived = stages.iter().find(|span| span.name == "job.store_derived").expect("the redacted copy is stored");
    assert_eq!(derived.parent_span_id, extract.span_id);
    let finish = stages.iter().find(|span| span.name == "job.finish").unwrap();
    let finish_job = stages.iter().find(|span| span.name == "finish_job").expect("the store call that finishes");
    assert_eq!(finish_job.parent_span_id, finish.span_id);
    assert_eq!(finish_job.attribute("db.system"), Some(backend));

    // No span carries the credentials the requests did.
    let everything = format!("{:?}", receiver.spans());
    assert!(!everything.contains(&token) && !everything.contains(common::ADMIN_PASSWORD));
    server.stop().await;
}

/// Spans still queued when the server is asked to stop are sent before it exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_spans_are_sent_before_the_process_exits() {
    let _serial = SERIAL.lock().await;
    let (receiver, endpoint) = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut command = aether(dir.path());
    // A batch delay longer than the test: only the exit can send the spans.
    command.env("AETHER_OTLP_ENDPOINT", &endpoint).env("OTEL_BSP_SCHEDULE_DELAY", "600000");
    let server = Server::start(command);
    let request_id = unique("trace-last");
    let response = client().get(server.url("/health")).header("x-request-id", &request_id).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(receiver.spans().is_empty(), "nothing is sent before the batch is due");
    server.stop().await;
    let span = receiver
        .wait_for("span of the last request", Duration::from_secs(1), |span| {
            span.attribute("request_id") == Some(request_id.as_str())
        })
        .await;
    assert_eq!(span.name, "GET /health");
}

/// Without `otlp_endpoint` nothing is exported, even when the SDK's standard
/// variable names a collector, and the server works as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_exported_unless_an_endpoint_is_configured() {
    let _serial = SERIAL.lock().await;
    let (receiver, endpoint) = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut command = aether(dir.path());
    command.env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint).env("OTEL_BSP_SCHEDULE_DELAY", "100");
    let server = Server::start(command);
    let token = admin_token(&server).await;
    create_notebook(&server, &token, &unique("untraced"), json!({"name": "Untraced"})).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.stop().await;
    assert!(receiver.spans().is_empty(), "exported without an endpoint: {:?}", receiver.spans());
}
