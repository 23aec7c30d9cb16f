//! Processing through AudiModal, against a double that follows AudiModal's HTTP
//! contract as its public server code defines it (`X-API-Key`, tenant-scoped
//! routes, the `{success, data}` envelope, register-by-URL then process, status,
//! chunks, delete) and sends signed webhooks the way Aether specifies them. The
//! double downloads each file from the signed URL it is given, like AudiModal does.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aether::config::{Config, Secret};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use common::{TestApp, call, json_of};
use reqwest::Method;
use serde_json::{Value, json};

const API_KEY: &str = "am-test-key";
const WEBHOOK_SECRET: &str = "am-webhook-secret";
const TENANT: &str = "0b6a3c1e-5f0a-4c41-9a57-6a2b7a3c9d10";
const DATASOURCE: &str = "5d1e2f3a-0b4c-4d5e-8f90-123456789abc";

#[derive(Default)]
struct Double {
    /// Where webhooks go (the server under test).
    webhook_url: String,
    /// Hold files in `processing` instead of finishing them.
    hold: bool,
    files: HashMap<String, Value>,
    texts: HashMap<String, String>,
    deleted: Vec<String>,
    /// The status Aether answered each webhook with, in order.
    webhook_answers: Vec<u16>,
}

type Shared = Arc<Mutex<Double>>;

fn envelope(status: StatusCode, data: Value) -> axum::response::Response {
    (status, Json(json!({"success": true, "data": data, "timestamp": "2026-12-01T00:00:00Z"}))).into_response()
}

/// AudiModal answers bad keys and tenants before anything else.
fn refused(headers: &HeaderMap, tenant: &str) -> Option<axum::response::Response> {
    if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some(API_KEY) {
        return Some((StatusCode::UNAUTHORIZED, "Unauthorized").into_response());
    }
    if uuid::Uuid::parse_str(tenant).is_err() {
        return Some((StatusCode::BAD_REQUEST, "Invalid tenant ID format").into_response());
    }
    None
}

async fn send_webhook(double: &Shared, body: Value, secret: &str) -> u16 {
    let url = double.lock().unwrap().webhook_url.clone();
    let body = body.to_string();
    let timestamp = chrono::Utc::now().timestamp().to_string();
    let signature = aether_audimodal::webhook_signature(secret.as_bytes(), &timestamp, body.as_bytes());
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("x-audimodal-timestamp", timestamp)
        .header("x-audimodal-signature", signature)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    double.lock().unwrap().webhook_answers.push(status);
    status
}

async fn create_file(
    State(double): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> axum::response::Response {
    if let Some(refusal) = refused(&headers, &tenant) {
        return refusal;
    }
    if body["data_source_id"] != DATASOURCE || body["url"].as_str().is_none() {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"success": false, "error": {"code": "VALIDATION_ERROR", "message": "bad file"}})),
        )
            .into_response();
    }
    let id = uuid::Uuid::new_v4().to_string();
    let file = json!({
        "id": id, "tenant_id": tenant, "data_source_id": DATASOURCE, "document_id": body["document_id"],
        "url": body["url"], "filename": body["filename"], "content_type": body["content_type"], "size": body["size"],
        "status": "discovered", "processing_tier": "tier1", "processing_error": "",
    });
    double.lock().unwrap().files.insert(id, file.clone());
    envelope(StatusCode::CREATED, file)
}

async fn process_file(
    State(double): State<Shared>,
    Path((tenant, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> axum::response::Response {
    if let Some(refusal) = refused(&headers, &tenant) {
        return refusal;
    }
    let (file, hold) = {
        let mut state = double.lock().unwrap();
        let hold = state.hold;
        let Some(file) = state.files.get_mut(&id) else {
            return (StatusCode::NOT_FOUND, "not found").into_response();
        };
        file["status"] = "processing".into();
        (file.clone(), hold)
    };
    let worker = double.clone();
    tokio::spawn(async move {
        // Like AudiModal: fetch the file from the URL it was registered with.
        let bytes = reqwest::get(file["url"].as_str().unwrap()).await.unwrap().bytes().await.unwrap();
        let text = format!("{} (processed by AudiModal)", String::from_utf8_lossy(&bytes));
        let base = json!({"file_id": file["id"], "document_id": file["document_id"], "tenant_id": TENANT});
        let event = |name: &str, extra: Value| {
            let mut body = base.clone();
            body["event_id"] = uuid::Uuid::new_v4().to_string().into();
            body["event"] = name.into();
            body["timestamp"] = chrono::Utc::now().to_rfc3339().into();
            for (key, value) in extra.as_object().unwrap() {
                body[key] = value.clone();
            }
            body
        };
        send_webhook(&worker, event("processing.started", json!({"stage": "splitting"})), WEBHOOK_SECRET).await;
        send_webhook(
            &worker,
            event("processing.progress", json!({"stage": "chunking", "progress": 50.0})),
            WEBHOOK_SECRET,
        )
        .await;
        if hold {
            return;
        }
        worker.lock().unwrap().texts.insert(file["id"].as_str().unwrap().to_owned(), text.clone());
        let completed = event(
            "processing.completed",
            json!({"data": {"extracted_text": text, "metadata": {"chunk_count": 1, "processing_tier": "tier1"}}}),
        );
        // A forged copy, then the real one, then a redelivery.
        send_webhook(&worker, completed.clone(), "not-the-secret").await;
        send_webhook(&worker, completed.clone(), WEBHOOK_SECRET).await;
        if let Some(file) = worker.lock().unwrap().files.get_mut(file["id"].as_str().unwrap()) {
            file["status"] = "processed".into();
        }
        send_webhook(&worker, completed, WEBHOOK_SECRET).await;
    });
    envelope(StatusCode::OK, json!({"message": "processing started", "file_id": id, "status": "processing"}))
}

async fn get_file(
    State(double): State<Shared>,
    Path((tenant, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> axum::response::Response {
    if let Some(refusal) = refused(&headers, &tenant) {
        return refusal;
    }
    match double.lock().unwrap().files.get(&id) {
        Some(file) => envelope(StatusCode::OK, file.clone()),
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

async fn delete_file(
    State(double): State<Shared>,
    Path((tenant, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> axum::response::Response {
    if let Some(refusal) = refused(&headers, &tenant) {
        return refusal;
    }
    let mut state = double.lock().unwrap();
    state.files.remove(&id);
    state.deleted.push(id);
    StatusCode::NO_CONTENT.into_response()
}

async fn chunks(
    State(double): State<Shared>,
    Path((tenant, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> axum::response::Response {
    if let Some(refusal) = refused(&headers, &tenant) {
        return refusal;
    }
    let text = double.lock().unwrap().texts.get(&id).cloned().unwrap_or_default();
    envelope(StatusCode::OK, json!([{"content": text, "chunk_number": 0}]))
}

async fn start_double(hold: bool) -> (String, Shared) {
    let double: Shared = Arc::new(Mutex::new(Double { hold, ..Double::default() }));
    let app = axum::Router::new()
        .route("/api/v1/tenants/{tenant}/files", axum::routing::post(create_file))
        .route("/api/v1/tenants/{tenant}/files/{id}", axum::routing::get(get_file).delete(delete_file))
        .route("/api/v1/tenants/{tenant}/files/{id}/process", axum::routing::post(process_file))
        .route("/api/v1/tenants/{tenant}/files/{id}/chunks", axum::routing::get(chunks))
        .with_state(double.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, double)
}

/// A server on a port chosen up front, so that its public URL (which AudiModal
/// downloads from) is known before it starts.
async fn server_with_audimodal(double_url: &str, double: &Shared) -> TestApp {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let public_url = format!("http://127.0.0.1:{port}");
    double.lock().unwrap().webhook_url = format!("{public_url}/api/v1/webhooks/audimodal");
    let double_url = double_url.to_owned();
    TestApp::spawn_with(move |config: &mut Config| {
        config.listen = format!("127.0.0.1:{port}").parse().unwrap();
        config.public_url = public_url;
        config.run_workers = true;
        config.audimodal_url = double_url;
        config.audimodal_api_key = Secret::new(API_KEY);
        config.audimodal_tenant_id = TENANT.into();
        config.audimodal_datasource_id = DATASOURCE.into();
        config.audimodal_webhook_secret = Secret::new(WEBHOOK_SECRET);
    })
    .await
}

async fn upload(app: &TestApp, token: &str, notebook: &str, name: &str, bytes: &[u8]) -> Value {
    let form = reqwest::multipart::Form::new()
        .text("notebook_id", notebook.to_owned())
        .part("file", reqwest::multipart::Part::bytes(bytes.to_vec()).file_name(name.to_owned()));
    let response =
        app.client.post(app.url("/api/v1/documents/upload")).bearer_auth(token).multipart(form).send().await.unwrap();
    json_of(response, 202).await
}

async fn wait_for(app: &TestApp, token: &str, job: &Value, done: impl Fn(&Value) -> bool) -> Value {
    let url = job["status_url"].as_str().unwrap().to_owned();
    for _ in 0..300 {
        let status = json_of(call(app, token, Method::GET, &url, None).await, 200).await;
        if done(&status) {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("job {} never got there", job["job_id"]);
}

/// One document-processing server at a time: its workers claim from the shared store.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn audimodal_processes_documents_through_signed_webhooks() {
    let _serial = SERIAL.lock().await;
    let (double_url, double) = start_double(false).await;
    let app = server_with_audimodal(&double_url, &double).await;
    let owner = app.user_token("audimodal").await;
    let stranger = app.user_token("audimodal-stranger").await;
    let body =
        json!({"name": "Via AudiModal", "compliance_settings": {"pii_detection": true, "redaction_mode": "mask"}});
    let notebook = json_of(call(&app, &owner, Method::POST, "/api/v1/notebooks", Some(body)).await, 201).await;
    let notebook = notebook["id"].as_str().unwrap();

    let job = upload(&app, &owner, notebook, "contract.txt", b"Signed by bob@example.com.").await;
    let done = wait_for(&app, &owner, &job, |j| j["status"] == "completed").await;
    let document = json_of(
        call(&app, &owner, Method::GET, &format!("/api/v1/documents/{}", done["document_id"].as_str().unwrap()), None)
            .await,
        200,
    )
    .await;
    assert_eq!(document["processing_metadata"]["processor"], "audimodal");
    assert_eq!(document["extracted_metadata"]["chunk_count"], 1);
    assert_eq!((document["pii_detected"].as_bool(), document["redaction_applied"].as_bool()), (Some(true), Some(true)));
    let preview = json_of(
        call(
            &app,
            &owner,
            Method::GET,
            &format!("/api/v1/documents/{}/preview", done["document_id"].as_str().unwrap()),
            None,
        )
        .await,
        200,
    )
    .await;
    assert!(preview["excerpt"].as_str().unwrap().ends_with("(processed by AudiModal)"), "{preview}");

    // Webhooks: started, progress, a forged completion (401), the completion, and
    // its redelivery (200, no second document).
    let mut answers = Vec::new();
    for _ in 0..100 {
        answers = double.lock().unwrap().webhook_answers.clone();
        if answers.len() == 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(answers, vec![200, 200, 401, 200, 200]);
    let listed =
        json_of(call(&app, &owner, Method::GET, &format!("/api/v1/notebooks/{notebook}/documents"), None).await, 200)
            .await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "a redelivered completion changes nothing");

    let status_url = format!("/api/v1/documents/audimodal/{}/status", done["job_id"].as_str().unwrap());
    let external = json_of(call(&app, &owner, Method::GET, &status_url, None).await, 200).await;
    assert_eq!(external["status"], "processed");
    assert_eq!(call(&app, &stranger, Method::GET, &status_url, None).await.status(), 404);

    // A webhook for a job AudiModal does not hold is refused.
    let stray = json!({"event": "processing.completed", "file_id": "nope", "document_id": done["job_id"]}).to_string();
    let timestamp = chrono::Utc::now().timestamp().to_string();
    let signature = aether_audimodal::webhook_signature(WEBHOOK_SECRET.as_bytes(), &timestamp, stray.as_bytes());
    let response = app
        .client
        .post(app.url("/api/v1/webhooks/audimodal"))
        .header("x-audimodal-timestamp", timestamp)
        .header("x-audimodal-signature", signature)
        .body(stray)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    app.shutdown().await;
}

#[tokio::test]
async fn cancelling_a_job_removes_its_file_from_audimodal() {
    let _serial = SERIAL.lock().await;
    let (double_url, double) = start_double(true).await;
    let app = server_with_audimodal(&double_url, &double).await;
    let owner = app.user_token("audimodal-cancel").await;
    let notebook =
        json_of(call(&app, &owner, Method::POST, "/api/v1/notebooks", Some(json!({"name": "Held"}))).await, 201).await;
    let job = upload(&app, &owner, notebook["id"].as_str().unwrap(), "held.txt", b"held at AudiModal").await;
    let held = wait_for(&app, &owner, &job, |j| j["stage"].as_str().is_some_and(|s| s.contains("50%"))).await;
    assert_eq!(held["status"], "processing");
    let cancel_url = format!("/api/v1/documents/upload/{}", job["job_id"].as_str().unwrap());
    assert_eq!(json_of(call(&app, &owner, Method::DELETE, &cancel_url, None).await, 200).await["status"], "cancelled");
    assert_eq!(double.lock().unwrap().deleted.len(), 1, "AudiModal was told to drop the file");
    app.shutdown().await;
}
