//! Documents over HTTP: streamed uploads, jobs processed by the workers (in the
//! sandboxed `aether extract` process), downloads with ranges, versions, redaction
//! for read-only collaborators, cancellation, WebSocket progress and recovery after
//! a restart. On the filesystem blob store always, and on S3 when
//! `AETHER_TEST_S3_ENDPOINT` is set (`scripts/test` starts SeaweedFS).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use aether::config::{BlobKind, Config};
use common::{TestApp, call, files_under, json_of};
use futures::StreamExt as _;
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Digest as _;

/// Document tests start servers whose workers claim jobs from the shared store;
/// one at a time keeps each server's jobs its own.
static WORKERS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn with_workers(config: &mut Config) {
    config.run_workers = true;
    config.document_workers = 2;
}

fn use_s3(config: &mut Config) -> bool {
    let Some(endpoint) = common::service("AETHER_TEST_S3_ENDPOINT", "to test documents on S3") else { return false };
    config.blob_store = BlobKind::S3;
    config.s3_endpoint = endpoint;
    config.s3_bucket = std::env::var("AETHER_TEST_S3_BUCKET").unwrap_or_else(|_| "aether-test".into());
    config.s3_access_key_id = std::env::var("AETHER_TEST_S3_ACCESS_KEY_ID").unwrap();
    config.s3_secret_access_key =
        aether::config::Secret::new(std::env::var("AETHER_TEST_S3_SECRET_ACCESS_KEY").unwrap());
    config.s3_allow_http = true;
    true
}

async fn notebook(app: &TestApp, token: &str, settings: Value) -> String {
    let body = json!({"name": "Papers", "compliance_settings": settings});
    let created = json_of(call(app, token, Method::POST, "/api/v1/notebooks", Some(body)).await, 201).await;
    created["id"].as_str().unwrap().to_owned()
}

async fn upload(
    app: &TestApp,
    token: &str,
    fields: &[(&str, String)],
    name: &str,
    bytes: Vec<u8>,
) -> reqwest::Response {
    let mut form = reqwest::multipart::Form::new();
    for (key, value) in fields {
        form = form.text(key.to_string(), value.clone());
    }
    form = form.part("file", reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned()));
    app.client.post(app.url("/api/v1/documents/upload")).bearer_auth(token).multipart(form).send().await.unwrap()
}

/// Uploads and answers the accepted job.
async fn accepted(app: &TestApp, token: &str, notebook: &str, name: &str, bytes: Vec<u8>) -> Value {
    let size = bytes.len().to_string();
    let fields = [("notebook_id", notebook.to_owned()), ("file_size", size)];
    json_of(upload(app, token, &fields, name, bytes).await, 202).await
}

/// Polls the job until it has finished.
async fn finished(app: &TestApp, token: &str, job: &Value) -> Value {
    let url = job["status_url"].as_str().unwrap().to_owned();
    // Generous: on a shared Neo4j, workers may first meet other runs' leftover jobs.
    for _ in 0..600 {
        let status = json_of(call(app, token, Method::GET, &url, None).await, 200).await;
        if ["completed", "failed", "cancelled"].contains(&status["status"].as_str().unwrap()) {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("job {} did not finish", job["job_id"]);
}

async fn user_id(app: &TestApp, token: &str) -> String {
    let me = json_of(call(app, token, Method::GET, "/api/v1/users/me", None).await, 200).await;
    me["id"].as_str().unwrap().to_owned()
}

async fn bytes_of(response: reqwest::Response, status: u16) -> Vec<u8> {
    assert_eq!(response.status().as_u16(), status);
    response.bytes().await.unwrap().to_vec()
}

const TEXT: &str = "Quarterly notes.\nContact jane.doe@example.com or card 4111 1111 1111 1111.\nThe end.\n";

async fn lifecycle(app: &TestApp) {
    let owner = app.user_token("doc-owner").await;
    let reader = app.user_token("doc-reader").await;
    let stranger = app.user_token("doc-stranger").await;
    let nb = notebook(app, &owner, json!({"pii_detection": true, "redaction_mode": "mask"})).await;
    let reader_id = user_id(app, &reader).await;
    let grant = json!({"user_id": reader_id, "permission": "read"});
    json_of(call(app, &owner, Method::PUT, &format!("/api/v1/notebooks/{nb}/permissions"), Some(grant)).await, 200)
        .await;

    // Read twice before the upload, so that the read cache holds the empty notebook:
    // the counts read after processing must not come from it.
    let notebook_url = format!("/api/v1/notebooks/{nb}");
    for _ in 0..2 {
        let empty = json_of(call(app, &owner, Method::GET, &notebook_url, None).await, 200).await;
        assert_eq!((empty["document_count"].as_u64(), empty["total_size_bytes"].as_u64()), (Some(0), Some(0)));
    }

    let job = accepted(app, &owner, &nb, "../../Q3 notes.txt", TEXT.as_bytes().to_vec()).await;
    assert_eq!(job["status"], "pending");
    assert_eq!(job["original_filename"], "Q3 notes.txt");
    assert_eq!(job["file_size"], TEXT.len());
    let sha = hex(&sha2::Sha256::digest(TEXT.as_bytes()));
    assert_eq!(job["file_hash"], sha.as_str());
    let job_id = job["job_id"].as_str().unwrap();
    assert_eq!(job["status_url"], format!("/api/v1/documents/upload/{job_id}/status"));
    assert_eq!(job["websocket_url"], format!("/api/v1/ws/upload/{job_id}"));

    let done = finished(app, &owner, &job).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["progress"]["percentage"], 100);
    let progress =
        json_of(call(app, &owner, Method::GET, job["progress_url"].as_str().unwrap(), None).await, 200).await;
    assert_eq!(progress["status"], "completed");
    assert_eq!(progress["bytes_received"], TEXT.len());

    let doc_id = done["document_id"].as_str().unwrap().to_owned();
    let doc_url = format!("/api/v1/documents/{doc_id}");
    let document = json_of(call(app, &owner, Method::GET, &doc_url, None).await, 200).await;
    assert_eq!(document["notebook_id"], nb.as_str());
    assert_eq!(document["processing_status"], "completed");
    assert_eq!(document["format"], "text");
    assert_eq!(document["content_type"].as_str().unwrap().split(';').next(), Some("text/plain"));
    assert_eq!(document["file_hash"], sha.as_str());
    assert_eq!(document["pii_detected"], true);
    assert_eq!(document["redaction_applied"], true);
    assert_eq!(document["compliance_scan_results"]["findings"]["email"], 1);
    assert_eq!(document["compliance_scan_results"]["findings"]["credit_card"], 1);
    assert_eq!(document["current_version"], 1);
    let listed =
        json_of(call(app, &owner, Method::GET, &format!("/api/v1/notebooks/{nb}/documents"), None).await, 200).await;
    assert_eq!(listed["items"][0]["id"], doc_id.as_str());
    let counted = json_of(call(app, &owner, Method::GET, &notebook_url, None).await, 200).await;
    assert_eq!(
        (counted["document_count"].as_u64(), counted["total_size_bytes"].as_u64()),
        (Some(1), Some(TEXT.len() as u64))
    );

    // Downloads: whole, ranges, and an unsatisfiable range.
    let download = call(app, &owner, Method::GET, &format!("{doc_url}/download"), None).await;
    let disposition = download.headers()["content-disposition"].to_str().unwrap().to_owned();
    assert!(disposition.contains("filename*=UTF-8''Q3%20notes.txt"), "{disposition}");
    assert_eq!(download.headers()["accept-ranges"], "bytes");
    assert_eq!(bytes_of(download, 200).await, TEXT.as_bytes());
    let ranged = app
        .client
        .get(app.url(&format!("{doc_url}/download")))
        .bearer_auth(&owner)
        .header("range", "bytes=0-8")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.headers()["content-range"], format!("bytes 0-8/{}", TEXT.len()).as_str());
    assert_eq!(bytes_of(ranged, 206).await, b"Quarterly");
    let suffix =
        app.client.get(app.url(&format!("{doc_url}/download"))).bearer_auth(&owner).header("range", "bytes=-9").send();
    assert_eq!(bytes_of(suffix.await.unwrap(), 206).await, b"The end.\n");
    // An open end, and an end past the file, stop at the file's end.
    let tail_start = TEXT.len() - 9;
    for header in [format!("bytes={tail_start}-"), format!("bytes={tail_start}-100000")] {
        let tail =
            app.client.get(app.url(&format!("{doc_url}/download"))).bearer_auth(&owner).header("range", &header).send();
        let tail = tail.await.unwrap();
        let expected = format!("bytes {tail_start}-{}/{}", TEXT.len() - 1, TEXT.len());
        assert_eq!(tail.headers()["content-range"], expected.as_str(), "{header}");
        assert_eq!(bytes_of(tail, 206).await, b"The end.\n", "{header}");
    }
    let beyond = app
        .client
        .get(app.url(&format!("{doc_url}/download")))
        .bearer_auth(&owner)
        .header("range", "bytes=100000-")
        .send()
        .await
        .unwrap();
    assert_eq!(beyond.status(), 416);

    // The preview shows extracted text to writers and the redacted text to readers.
    let preview = json_of(call(app, &owner, Method::GET, &format!("{doc_url}/preview"), None).await, 200).await;
    assert!(preview["excerpt"].as_str().unwrap().contains("jane.doe@example.com"));
    let read_preview = json_of(call(app, &reader, Method::GET, &format!("{doc_url}/preview"), None).await, 200).await;
    let excerpt = read_preview["excerpt"].as_str().unwrap();
    assert!(!excerpt.contains("jane.doe@example.com") && excerpt.contains("[REDACTED:EMAIL]"), "{excerpt}");
    let redacted = bytes_of(call(app, &reader, Method::GET, &format!("{doc_url}/download"), None).await, 200).await;
    let redacted = String::from_utf8(redacted).unwrap();
    assert!(!redacted.contains("4111 1111 1111 1111") && redacted.contains("Quarterly notes."), "{redacted}");
    let original = call(app, &reader, Method::GET, &format!("{doc_url}/download?variant=original"), None).await;
    assert_eq!(original.status(), 403);
    // Readers may not write.
    let renamed = call(app, &reader, Method::PUT, &doc_url, Some(json!({"original_filename": "x.txt"}))).await;
    assert_eq!(renamed.status(), 403);
    // Strangers learn nothing.
    for path in
        [doc_url.clone(), format!("{doc_url}/download"), format!("{doc_url}/versions"), format!("{doc_url}/preview")]
    {
        assert_eq!(call(app, &stranger, Method::GET, &path, None).await.status(), 404, "{path}");
    }
    let status_url = job["status_url"].as_str().unwrap();
    assert_eq!(call(app, &stranger, Method::GET, status_url, None).await.status(), 404);
    let intrusion = upload(app, &stranger, &[("notebook_id", nb.clone())], "x.txt", b"x".to_vec()).await;
    assert_eq!(intrusion.status(), 404);
    let by_reader = upload(app, &reader, &[("notebook_id", nb.clone())], "x.txt", b"x".to_vec()).await;
    assert_eq!(by_reader.status(), 403);

    // Signed URLs: downloadable without credentials, tamper-proof, expiring.
    let signed = json_of(
        call(app, &owner, Method::GET, &format!("/api/v1/storage/{doc_id}/url?expires_in=60"), None).await,
        200,
    )
    .await;
    let signed_url = signed["url"].as_str().unwrap().to_owned();
    let expected_signer = if app.server.runtime.config.blob_store == BlobKind::S3 { "storage" } else { "server" };
    assert_eq!(signed["signed_by"], expected_signer);
    let anonymous = reqwest::Client::new();
    let fetched = anonymous.get(&signed_url).send().await.unwrap();
    assert_eq!(bytes_of(fetched, 200).await, TEXT.as_bytes(), "no credentials needed");
    let reader_url =
        json_of(call(app, &reader, Method::GET, &format!("/api/v1/storage/{doc_id}/url"), None).await, 200).await;
    let redacted_copy = bytes_of(anonymous.get(reader_url["url"].as_str().unwrap()).send().await.unwrap(), 200).await;
    assert!(
        !String::from_utf8(redacted_copy).unwrap().contains("jane.doe@example.com"),
        "a reader's link is to the redacted copy"
    );
    if expected_signer == "server" {
        let ranged_signed = anonymous.get(&signed_url).header("range", "bytes=0-8").send().await.unwrap();
        assert_eq!(bytes_of(ranged_signed, 206).await, b"Quarterly");
        let tampered = signed_url.replacen("token=", "token=x", 1);
        assert_eq!(anonymous.get(&tampered).send().await.unwrap().status(), 403);
        let short = json_of(
            call(app, &owner, Method::GET, &format!("/api/v1/storage/{doc_id}/url?expires_in=1"), None).await,
            200,
        )
        .await;
        tokio::time::sleep(Duration::from_millis(2100)).await;
        assert_eq!(anonymous.get(short["url"].as_str().unwrap()).send().await.unwrap().status(), 403, "expired");
    }
    let too_long =
        call(app, &owner, Method::GET, &format!("/api/v1/storage/{doc_id}/url?expires_in=99999999"), None).await;
    assert_eq!(json_of(too_long, 422).await["code"], "invalid_expiry");
    assert_eq!(call(app, &stranger, Method::GET, &format!("/api/v1/storage/{doc_id}/url"), None).await.status(), 404);
    let storage =
        json_of(call(app, &owner, Method::GET, &format!("/api/v1/storage/{doc_id}/metadata"), None).await, 200).await;
    assert_eq!((storage["file_hash"].as_str(), storage["versions"].as_u64()), (Some(sha.as_str()), Some(1)));
    let via_storage = call(app, &owner, Method::GET, &format!("/api/v1/storage/{doc_id}/download"), None).await;
    assert_eq!(bytes_of(via_storage, 200).await, TEXT.as_bytes());
    // A server-side copy into another notebook is a new upload of the same bytes.
    let other = notebook(app, &owner, json!({})).await;
    let copy =
        call(app, &owner, Method::POST, &format!("/api/v1/storage/{doc_id}/copy"), Some(json!({"notebook_id": other})))
            .await;
    let copy = finished(app, &owner, &json_of(copy, 202).await).await;
    assert_eq!((copy["status"].as_str(), copy["file_hash"].as_str()), (Some("completed"), Some(sha.as_str())));
    assert_eq!(copy["notebook_id"], other.as_str());
    let refused = call(
        app,
        &reader,
        Method::POST,
        &format!("/api/v1/storage/{doc_id}/copy"),
        Some(json!({"notebook_id": other})),
    )
    .await;
    assert_eq!(refused.status(), 404, "the reader cannot see the target notebook");
    let copied = format!("/api/v1/storage/{}", copy["document_id"].as_str().unwrap());
    assert_eq!(call(app, &owner, Method::DELETE, &copied, None).await.status(), 204);

    // Metadata.
    let update = json!({"original_filename": "notes-final.txt", "description": "Q3", "tags": ["Finance"]});
    let updated = json_of(call(app, &owner, Method::PUT, &doc_url, Some(update)).await, 200).await;
    assert_eq!(
        (updated["original_filename"].as_str(), updated["tags"][0].as_str()),
        (Some("notes-final.txt"), Some("finance"))
    );
    let bad = call(app, &owner, Method::PUT, &doc_url, Some(json!({"original_filename": "../x"}))).await;
    assert_eq!(bad.status(), 422);

    // A re-upload is a new version; the old one stays downloadable.
    let second_text = b"Version two, without personal data.\n".to_vec();
    let fields =
        [("notebook_id", nb.clone()), ("document_id", doc_id.clone()), ("change_summary", "scrubbed".to_owned())];
    let second = json_of(upload(app, &owner, &fields, "notes-v2.txt", second_text.clone()).await, 202).await;
    assert_eq!(second["new_version"], true);
    assert_eq!(second["document_id"], doc_id.as_str());
    assert_eq!(finished(app, &owner, &second).await["status"], "completed");
    let versions = json_of(call(app, &owner, Method::GET, &format!("{doc_url}/versions"), None).await, 200).await;
    let numbers: Vec<u64> =
        versions["items"].as_array().unwrap().iter().map(|v| v["version_number"].as_u64().unwrap()).collect();
    assert_eq!(numbers, vec![2, 1]);
    assert_eq!(versions["items"][0]["change_summary"], "scrubbed");
    let current = json_of(call(app, &owner, Method::GET, &doc_url, None).await, 200).await;
    assert_eq!((current["current_version"].as_u64(), current["pii_detected"].as_bool()), (Some(2), Some(false)));
    assert_eq!(
        bytes_of(call(app, &owner, Method::GET, &format!("{doc_url}/download"), None).await, 200).await,
        second_text
    );
    let old = call(app, &owner, Method::GET, &format!("{doc_url}/download?version=1"), None).await;
    assert_eq!(bytes_of(old, 200).await, TEXT.as_bytes());
    let missing = call(app, &owner, Method::GET, &format!("{doc_url}/download?version=7"), None).await;
    assert_eq!(json_of(missing, 404).await["code"], "version_not_found");

    // Deleting removes the document and, once the worker has run, its blobs.
    assert_eq!(call(app, &reader, Method::DELETE, &doc_url, None).await.status(), 403);
    let counted = json_of(call(app, &owner, Method::GET, &notebook_url, None).await, 200).await;
    assert_eq!(counted["document_count"], 1, "read, and cached, before the deletion");
    assert_eq!(call(app, &owner, Method::DELETE, &doc_url, None).await.status(), 204);
    assert_eq!(call(app, &owner, Method::GET, &doc_url, None).await.status(), 404);
    let counted = json_of(call(app, &owner, Method::GET, &notebook_url, None).await, 200).await;
    assert_eq!(counted["document_count"], 0, "the deletion is counted at once");
    app.server.runtime.documents.maintain().await.unwrap();
    let original_key = aether_domain::blob::BlobKey::parse(&format!(
        "documents/{doc_id}/{}/original",
        versions["items"][1]["id"].as_str().unwrap()
    ))
    .unwrap();
    assert!(matches!(
        app.server.runtime.blobs.read(&original_key, None).await,
        Err(aether_domain::blob::BlobError::NotFound)
    ));
    if app.server.runtime.config.blob_store == BlobKind::Fs {
        let left = files_under(&app.dir.path().join("blobs").join("documents").join(&doc_id));
        assert!(left.is_empty(), "no orphaned blob: {left:?}");
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn documents_live_their_whole_life_on_the_filesystem() {
    let _serial = WORKERS.lock().await;
    let app = TestApp::spawn_with(with_workers).await;
    lifecycle(&app).await;
    app.shutdown().await;
}

#[tokio::test]
async fn documents_live_their_whole_life_on_s3() {
    let _serial = WORKERS.lock().await;
    let mut on_s3 = false;
    let app = TestApp::spawn_with(|config| {
        with_workers(config);
        on_s3 = use_s3(config);
    })
    .await;
    if on_s3 {
        lifecycle(&app).await;
    }
    app.shutdown().await;
}

/// A docx whose single entry inflates to far more than the extraction limit.
fn zip_bomb() -> Vec<u8> {
    use std::io::Write as _;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("[Content_Types].xml", options).unwrap();
    zip.write_all(br#"<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>"#).unwrap();
    zip.start_file("word/document.xml", options).unwrap();
    let zeros = vec![b' '; 1024 * 1024];
    for _ in 0..400 {
        zip.write_all(&zeros).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

#[tokio::test]
async fn hostile_and_odd_files_end_with_a_reason() {
    let _serial = WORKERS.lock().await;
    let app = TestApp::spawn_with(|config| {
        with_workers(config);
        config.max_upload_bytes = 8 * 1024 * 1024;
    })
    .await;
    let owner = app.user_token("hostile").await;
    let nb = notebook(&app, &owner, json!({})).await;

    let empty = finished(&app, &owner, &accepted(&app, &owner, &nb, "empty.txt", Vec::new()).await).await;
    assert_eq!(empty["status"], "completed", "{empty}");
    let pdf_named_png =
        finished(&app, &owner, &accepted(&app, &owner, &nb, "photo.png", b"%PDF-1.7\ngarbage".to_vec()).await).await;
    assert_eq!(pdf_named_png["status"], "failed", "{pdf_named_png}");
    assert_eq!(pdf_named_png["error"]["code"], "malformed_file");
    assert_eq!(pdf_named_png["content_type"], "application/pdf", "sniffed from the bytes, not the name");
    let stored = json_of(
        call(
            &app,
            &owner,
            Method::GET,
            &format!("/api/v1/documents/{}", pdf_named_png["document_id"].as_str().unwrap()),
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(stored["processing_status"], "failed", "a malformed file is stored with the reason");
    assert_eq!(stored["processing_error"]["code"], "malformed_file");

    let random: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let unknown = finished(&app, &owner, &accepted(&app, &owner, &nb, "blob.bin", random).await).await;
    assert_eq!(unknown["status"], "completed");
    let unknown_doc = json_of(
        call(
            &app,
            &owner,
            Method::GET,
            &format!("/api/v1/documents/{}", unknown["document_id"].as_str().unwrap()),
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(
        (unknown_doc["format"].as_str(), unknown_doc["supported"].as_bool()),
        (Some("unsupported"), Some(false))
    );

    let bomb = finished(&app, &owner, &accepted(&app, &owner, &nb, "bomb.docx", zip_bomb()).await).await;
    assert_eq!(bomb["status"], "failed", "{bomb}");
    assert_eq!(bomb["error"]["code"], "processing_limit_exceeded");

    let too_big = upload(&app, &owner, &[("notebook_id", nb.clone())], "big.txt", vec![b'a'; 9 * 1024 * 1024]).await;
    assert_eq!(json_of(too_big, 413).await["code"], "file_too_large");
    let jobs =
        json_of(call(&app, &owner, Method::GET, &format!("/api/v1/notebooks/{nb}/upload/status"), None).await, 200)
            .await;
    let failed_upload = jobs["items"].as_array().unwrap().iter().find(|j| j["original_filename"] == "big.txt").unwrap();
    assert_eq!(
        (failed_upload["status"].as_str(), failed_upload["error"]["code"].as_str()),
        (Some("failed"), Some("file_too_large"))
    );

    let no_file = upload(&app, &owner, &[], "x.txt", Vec::new()).await;
    assert_eq!(no_file.status(), 422, "the notebook id must come first");
    let no_multipart = call(&app, &owner, Method::POST, "/api/v1/documents/upload", Some(json!({}))).await;
    assert_eq!(no_multipart.status(), 415);
    let not_allowed = notebook(&app, &owner, json!({"allowed_content_types": ["application/pdf"]})).await;
    let refused = finished(&app, &owner, &accepted(&app, &owner, &not_allowed, "a.txt", b"text".to_vec()).await).await;
    assert_eq!(refused["error"]["code"], "content_type_not_allowed");
    app.shutdown().await;
}

#[tokio::test]
async fn jobs_stream_progress_are_cancelled_and_survive_restarts() {
    let _serial = WORKERS.lock().await;
    // No workers: uploads stay pending until the restart.
    let app = TestApp::spawn().await;
    let owner = app.user_token("canceller").await;
    let nb = notebook(&app, &owner, json!({})).await;
    let job = accepted(&app, &owner, &nb, "wait.txt", b"waiting".to_vec()).await;

    let ws_url = format!(
        "{}{}?access_token={owner}",
        app.server.base_url().replace("http://", "ws://"),
        job["websocket_url"].as_str().unwrap()
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
    let first = socket.next().await.unwrap().unwrap();
    let first: Value = serde_json::from_str(first.to_text().unwrap()).unwrap();
    assert_eq!(first["status"], "pending");
    let cancelled = json_of(
        call(
            &app,
            &owner,
            Method::DELETE,
            &format!("/api/v1/documents/upload/{}", job["job_id"].as_str().unwrap()),
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(cancelled["status"], "cancelled");
    let mut saw_cancelled = false;
    while let Some(Ok(message)) = tokio::time::timeout(Duration::from_secs(10), socket.next()).await.unwrap() {
        if let Ok(text) = message.to_text()
            && let Ok(update) = serde_json::from_str::<Value>(text)
        {
            saw_cancelled |= update["status"] == "cancelled";
        }
        if message.is_close() {
            break;
        }
    }
    assert!(saw_cancelled, "the socket reported the cancellation, then closed");
    let _ = socket.close(None).await;
    let again = call(
        &app,
        &owner,
        Method::DELETE,
        &format!("/api/v1/documents/upload/{}", job["job_id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(json_of(again, 409).await["code"], "job_finished");
    app.server.runtime.documents.maintain().await.unwrap();
    assert!(
        files_under(&app.dir.path().join("blobs").join("documents")).is_empty(),
        "the cancelled upload's blob is gone"
    );

    // Acknowledged but unprocessed when the server stops: processed after the restart.
    let waiting = accepted(&app, &owner, &nb, "later.txt", b"processed after a restart".to_vec()).await;
    // An upload that never finished (its process died) is failed by the sweep.
    let principal = app.server.runtime.identity.authenticate_bearer(&owner, Default::default()).await.unwrap();
    let orphan = app
        .server
        .runtime
        .documents
        .start_upload(
            &principal,
            aether_services::documents::UploadRequest {
                notebook_id: aether_domain::id::NotebookId::parse(&nb).unwrap(),
                existing_document: None,
                filename: aether_domain::document::Filename::sanitize("dying.txt"),
                change_summary: None,
                callback_url: None,
                expected_bytes: None,
                origin: aether_domain::job::JobOrigin::default(),
            },
        )
        .await
        .unwrap();
    let dir = app.dir;
    app.server.shutdown(Duration::from_secs(10)).await.unwrap();

    let mut config = common::test_config(dir.path());
    with_workers(&mut config);
    config.stale_upload_secs = 1;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let server = aether::RunningServer::start(config).await.unwrap();
    let restarted = TestApp { server, client: reqwest::Client::new(), dir };
    let done = finished(&restarted, &owner, &waiting).await;
    assert_eq!(done["status"], "completed", "{done}");
    restarted.server.runtime.documents.maintain().await.unwrap();
    let interrupted = json_of(
        call(&restarted, &owner, Method::GET, &format!("/api/v1/documents/upload/{}/status", orphan.id), None).await,
        200,
    )
    .await;
    assert_eq!(
        (interrupted["status"].as_str(), interrupted["error"]["code"].as_str()),
        (Some("failed"), Some("upload_interrupted"))
    );
    restarted.shutdown().await;
}

#[tokio::test]
async fn batches_upload_several_files() {
    let _serial = WORKERS.lock().await;
    let app = TestApp::spawn_with(with_workers).await;
    let owner = app.user_token("batcher").await;
    let nb = notebook(&app, &owner, json!({})).await;
    let form = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(b"# One\n".to_vec()).file_name("one.md"))
        .part("file", reqwest::multipart::Part::bytes(b"a,b\n1,2\n".to_vec()).file_name("two.csv"));
    let response = app
        .client
        .post(app.url(&format!("/api/v1/notebooks/{nb}/upload")))
        .bearer_auth(&owner)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let batch = json_of(response, 202).await;
    let jobs = batch["items"].as_array().unwrap().clone();
    assert_eq!(jobs.len(), 2);
    let mut formats = Vec::new();
    for job in &jobs {
        let done = finished(&app, &owner, job).await;
        assert_eq!(done["status"], "completed");
        let document = json_of(
            call(
                &app,
                &owner,
                Method::GET,
                &format!("/api/v1/documents/{}", done["document_id"].as_str().unwrap()),
                None,
            )
            .await,
            200,
        )
        .await;
        formats.push(document["format"].as_str().unwrap().to_owned());
    }
    formats.sort();
    assert_eq!(formats, vec!["csv", "markdown"]);
    let listed = json_of(
        call(&app, &owner, Method::GET, &format!("/api/v1/notebooks/{nb}/upload/status?active=true"), None).await,
        200,
    )
    .await;
    assert!(listed["items"].as_array().unwrap().is_empty());
    // The queue and its durations are measured.
    app.server.runtime.documents.maintain().await.unwrap();
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    for series in [
        "aether_document_jobs{status=\"pending\"}",
        "aether_document_job_duration_seconds_count{status=\"completed\"}",
        "aether_document_processing_seconds_count{format=\"csv\"}",
        "aether_documents_processed_total{format=\"markdown\",outcome=\"completed\"}",
    ] {
        assert!(metrics.contains(series), "{series} in /metrics");
    }
    app.shutdown().await;
}

/// What a callback receiver got: the signature header, the event header and the body.
type Received = std::sync::Arc<std::sync::Mutex<Vec<(String, String, Vec<u8>)>>>;

/// A callback receiver on a free port that refuses its first request with 500.
async fn callback_receiver() -> (String, Received) {
    let received: Received = Default::default();
    let log = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let log = log.clone();
            async move {
                let header =
                    |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
                let mut log = log.lock().unwrap();
                log.push((header("x-aether-signature"), header("x-aether-event"), body.to_vec()));
                if log.len() == 1 {
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    axum::http::StatusCode::NO_CONTENT
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

#[tokio::test]
async fn callbacks_are_signed_and_retried() {
    let _serial = WORKERS.lock().await;
    const SECRET: &str = "test-callback-secret";
    let app = TestApp::spawn_with(|config| {
        with_workers(config);
        config.callback_signing_secret = aether::config::Secret::new(SECRET);
        config.callback_retry_base_ms = 20;
        // The receiver runs on this machine, which the outbound policy refuses unless
        // an administrator allow-lists it.
        config.outbound_allow = aether::config::StringList(vec!["127.0.0.1/32".into()]);
    })
    .await;
    let owner = app.user_token("called-back").await;
    let nb = notebook(&app, &owner, json!({})).await;
    let (hook, received) = callback_receiver().await;
    let bad_fields = [("notebook_id", nb.clone()), ("callback_url", "ftp://x".to_owned())];
    assert_eq!(upload(&app, &owner, &bad_fields, "a.txt", b"a".to_vec()).await.status(), 422);
    let fields = [("notebook_id", nb.clone()), ("callback_url", hook)];
    let job = json_of(upload(&app, &owner, &fields, "hooked.txt", b"hello".to_vec()).await, 202).await;
    assert_eq!(finished(&app, &owner, &job).await["status"], "completed");

    let mut events = Vec::new();
    for _ in 0..100 {
        events = received.lock().unwrap().clone();
        if events.iter().any(|(_, event, _)| event == "job.completed") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let names: Vec<&str> = events.iter().map(|(_, event, _)| event.as_str()).collect();
    assert_eq!(names.first(), Some(&"job.pending"));
    assert_eq!(names.iter().filter(|n| **n == "job.pending").count(), 2, "the refused delivery is retried: {names:?}");
    assert!(names.contains(&"job.processing") && names.contains(&"job.completed"), "{names:?}");
    for (signature, _, body) in &events {
        let (t, v1) = signature.split_once(',').unwrap();
        let timestamp: i64 = t.strip_prefix("t=").unwrap().parse().unwrap();
        let expected = aether_services::documents::Callbacks::signature(SECRET.as_bytes(), timestamp, body);
        assert_eq!(signature, &expected, "v1 is HMAC-SHA256 over '<t>.<body>'");
        assert!(v1.starts_with("v1=") && v1.len() == 67);
        let other = aether_services::documents::Callbacks::signature(b"another secret", timestamp, body);
        assert_ne!(signature, &other);
    }
    let completed: Value = serde_json::from_slice(&events.iter().find(|e| e.1 == "job.completed").unwrap().2).unwrap();
    assert_eq!(completed["job"]["job_id"], job["job_id"]);
    assert_eq!(completed["job"]["status"], "completed");
    app.shutdown().await;
}

/// The EICAR test file, in two pieces so that this source is not one.
fn eicar() -> Vec<u8> {
    let mut bytes = br"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR".to_vec();
    bytes.extend_from_slice(b"-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*");
    bytes
}

#[tokio::test]
async fn infected_uploads_are_quarantined() {
    let _serial = WORKERS.lock().await;
    let Some(address) = common::service("AETHER_TEST_CLAMAV_ADDR", "to test virus scanning") else { return };
    let app = TestApp::spawn_with(|config| {
        with_workers(config);
        config.clamav_address = address;
    })
    .await;
    let ready = json_of(app.client.get(app.url("/ready")).send().await.unwrap(), 200).await;
    assert_eq!(ready["checks"]["clamav"]["status"], "up", "{ready}");
    let owner = app.user_token("scanned").await;
    let nb = notebook(&app, &owner, json!({})).await;

    let infected = finished(&app, &owner, &accepted(&app, &owner, &nb, "eicar.com", eicar()).await).await;
    assert_eq!(infected["status"], "failed", "{infected}");
    assert_eq!(infected["error"]["code"], "virus_detected");
    assert!(infected["error"]["message"].as_str().unwrap().contains("Aether.Test.EICAR"), "{infected}");
    let documents =
        json_of(call(&app, &owner, Method::GET, &format!("/api/v1/notebooks/{nb}/documents"), None).await, 200).await;
    assert!(documents["items"].as_array().unwrap().is_empty(), "an infected file never becomes a document");
    let job_id = infected["job_id"].as_str().unwrap();
    let quarantined = aether_domain::blob::BlobKey::parse(&format!("quarantine/{job_id}/original")).unwrap();
    assert_eq!(app.server.runtime.blobs.get(&quarantined).await.unwrap(), eicar(), "kept in quarantine");
    app.server.runtime.documents.maintain().await.unwrap();
    assert!(files_under(&app.dir.path().join("blobs").join("documents")).is_empty(), "the upload itself is gone");

    let clean =
        finished(&app, &owner, &accepted(&app, &owner, &nb, "clean.txt", b"nothing to see".to_vec()).await).await;
    assert_eq!(clean["status"], "completed");
    let document = json_of(
        call(&app, &owner, Method::GET, &format!("/api/v1/documents/{}", clean["document_id"].as_str().unwrap()), None)
            .await,
        200,
    )
    .await;
    assert_eq!(document["processing_metadata"]["virus_scan"]["result"], "clean");
    app.shutdown().await;
}

#[tokio::test]
async fn uploads_are_not_stored_unscanned_when_the_scanner_is_down() {
    let _serial = WORKERS.lock().await;
    let app = TestApp::spawn_with(|config| {
        with_workers(config);
        config.clamav_address = "127.0.0.1:1".into();
        config.processing_max_attempts = 1;
    })
    .await;
    let owner = app.user_token("unscanned").await;
    let nb = notebook(&app, &owner, json!({})).await;
    let job = accepted(&app, &owner, &nb, "later.txt", b"scan me".to_vec()).await;
    let done = finished(&app, &owner, &job).await;
    assert_eq!(
        (done["status"].as_str(), done["error"]["code"].as_str()),
        (Some("failed"), Some("not_scanned")),
        "{done}"
    );
    assert_eq!(done["attempts"], 2, "retried once the scanner failed");
    let quarantined =
        aether_domain::blob::BlobKey::parse(&format!("quarantine/{}/original", done["job_id"].as_str().unwrap()))
            .unwrap();
    assert_eq!(app.server.runtime.blobs.get(&quarantined).await.unwrap(), b"scan me", "kept, not lost");
    app.shutdown().await;
}

#[tokio::test]
async fn documents_are_encrypted_at_rest_when_configured() {
    let _serial = WORKERS.lock().await;
    let app = TestApp::spawn_with(|config| {
        with_workers(config);
        config.encryption_key = aether::config::Secret::new("ab".repeat(32));
    })
    .await;
    let owner = app.user_token("encrypted").await;
    let nb = notebook(&app, &owner, json!({})).await;
    let done = finished(&app, &owner, &accepted(&app, &owner, &nb, "secret.txt", TEXT.as_bytes().to_vec()).await).await;
    assert_eq!(done["status"], "completed");
    let doc = done["document_id"].as_str().unwrap();
    let on_disk = files_under(&app.dir.path().join("blobs").join("documents").join(doc));
    let original = on_disk.iter().find(|p| p.ends_with("original")).unwrap();
    let at_rest = std::fs::read(original).unwrap();
    assert!(!String::from_utf8_lossy(&at_rest).contains("Quarterly notes"), "ciphertext on disk");
    let download = call(&app, &owner, Method::GET, &format!("/api/v1/documents/{doc}/download"), None).await;
    assert_eq!(bytes_of(download, 200).await, TEXT.as_bytes());
    let preview =
        json_of(call(&app, &owner, Method::GET, &format!("/api/v1/documents/{doc}/preview"), None).await, 200).await;
    assert!(preview["excerpt"].as_str().unwrap().contains("Quarterly notes"), "the worker read the plaintext");
    let signed = json_of(call(&app, &owner, Method::GET, &format!("/api/v1/storage/{doc}/url"), None).await, 200).await;
    assert_eq!(signed["signed_by"], "server", "the backend would only hand out ciphertext");
    app.shutdown().await;
}

#[tokio::test]
async fn runaway_processing_is_bounded_in_pages_time_and_memory() {
    let _serial = WORKERS.lock().await;
    // A 10,000-page PDF: extraction stops at the page limit, the job completes.
    let app = TestApp::spawn_with(with_workers).await;
    let owner = app.user_token("runaway").await;
    let nb = notebook(&app, &owner, json!({})).await;
    let pages: Vec<String> = (0..10_000).map(|i| format!("Page {i} of the long report.")).collect();
    let long_pdf = aether_extract::corpus::pdf("Long report", &pages);
    let started = std::time::Instant::now();
    let long = finished(&app, &owner, &accepted(&app, &owner, &nb, "long.pdf", long_pdf).await).await;
    assert_eq!(long["status"], "completed", "{long}");
    let path = format!("/api/v1/documents/{}", long["document_id"].as_str().unwrap());
    let response = call(&app, &owner, Method::GET, &path, None).await;
    if response.status() != 200 {
        // Seen twice on Neo4j in CI (a completed job whose document answers 404), not
        // reproduced: say everything the next occurrence can tell.
        let body = response.text().await.unwrap_or_default();
        let job_now = call(&app, &owner, Method::GET, long["status_url"].as_str().unwrap(), None).await;
        let job_now = job_now.text().await.unwrap_or_default();
        let listed = call(&app, &owner, Method::GET, &format!("/api/v1/notebooks/{nb}/documents"), None).await;
        let listed = listed.text().await.unwrap_or_default();
        panic!(
            "GET {path}: {body}\nthe job at completion: {long}\nthe job now: {job_now}\nthe notebook's documents: {listed}"
        );
    }
    let document = json_of(response, 200).await;
    assert_eq!(document["extracted_metadata"]["page_count"], 10_000);
    let warnings = document["processing_metadata"]["warnings"].to_string();
    assert!(warnings.contains("page"), "the page limit is reported: {warnings}");
    eprintln!("10,000-page PDF processed in {:?}", started.elapsed());
    app.shutdown().await;

    // An extraction that outlives its time limit is killed; the file is kept.
    let dir = tempfile::tempdir().unwrap();
    let slow = dir.path().join("slow-extractor.sh");
    std::fs::write(&slow, format!("#!/bin/sh\nsleep 30\nexec '{}' \"$@\"\n", env!("CARGO_BIN_EXE_aether"))).unwrap();
    std::process::Command::new("chmod").arg("+x").arg(&slow).status().unwrap();
    let app = TestApp::spawn_with(|config| {
        with_workers(config);
        config.extractor_program = slow.display().to_string();
        config.processing_timeout_secs = 1;
    })
    .await;
    let owner = app.user_token("timeout").await;
    let nb = notebook(&app, &owner, json!({})).await;
    let started = std::time::Instant::now();
    let timed_out = finished(&app, &owner, &accepted(&app, &owner, &nb, "slow.txt", b"slow".to_vec()).await).await;
    assert_eq!(
        (timed_out["status"].as_str(), timed_out["error"]["code"].as_str()),
        (Some("failed"), Some("processing_timed_out"))
    );
    assert!(started.elapsed() < Duration::from_secs(20), "killed at the limit, not after the sleep");
    app.shutdown().await;

    // An extraction that needs more memory than allowed dies; the job says so. The
    // control: the same file under the default limit is processed.
    let app = TestApp::spawn_with(with_workers).await;
    let owner = app.user_token("memory-control").await;
    let nb = notebook(&app, &owner, json!({})).await;
    let control =
        finished(&app, &owner, &accepted(&app, &owner, &nb, "big.txt", vec![b'a'; 4 * 1024 * 1024]).await).await;
    assert_eq!(control["status"], "completed", "the file itself is fine: {control}");
    app.shutdown().await;
    let app = TestApp::spawn_with(|config| {
        with_workers(config);
        config.processing_memory_mb = 8;
    })
    .await;
    let owner = app.user_token("memory").await;
    let nb = notebook(&app, &owner, json!({})).await;
    let crashed =
        finished(&app, &owner, &accepted(&app, &owner, &nb, "big.txt", vec![b'a'; 4 * 1024 * 1024]).await).await;
    assert_eq!(
        (crashed["status"].as_str(), crashed["error"]["code"].as_str()),
        (Some("failed"), Some("processing_crashed")),
        "{crashed}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn notebook_sockets_follow_every_upload_and_refuse_strangers() {
    let _serial = WORKERS.lock().await;
    // The store is re-read only every ten minutes: every update below is pushed.
    let app = TestApp::spawn_with(|config| config.websocket_poll_ms = 600_000).await;
    let owner = app.user_token("socket-owner").await;
    let stranger = app.user_token("socket-stranger").await;
    let nb = notebook(&app, &owner, json!({})).await;
    let ws = |path: String, token: &str| {
        format!("{}{path}?access_token={token}", app.server.base_url().replace("http://", "ws://"))
    };
    let before = accepted(&app, &owner, &nb, "before.txt", b"already waiting".to_vec()).await;

    let (mut socket, _) =
        tokio_tungstenite::connect_async(ws(format!("/api/v1/ws/notebooks/{nb}/uploads"), &owner)).await.unwrap();
    let first: Value = serde_json::from_str(socket.next().await.unwrap().unwrap().to_text().unwrap()).unwrap();
    assert_eq!(first["job_id"], before["job_id"], "unfinished jobs come first");
    let later = accepted(&app, &owner, &nb, "later.txt", b"new upload".to_vec()).await;
    let mut seen = Vec::new();
    while let Ok(Some(Ok(message))) = tokio::time::timeout(Duration::from_secs(10), socket.next()).await {
        let update: Value = serde_json::from_str(message.to_text().unwrap()).unwrap();
        seen.push(update["status"].as_str().unwrap().to_owned());
        if update["job_id"] == later["job_id"] && update["status"] == "pending" {
            break;
        }
    }
    assert_eq!(seen.last().map(String::as_str), Some("pending"), "the new upload is reported: {seen:?}");

    for path in [
        format!("/api/v1/ws/notebooks/{nb}/uploads"),
        format!("/api/v1/ws/upload/{}", later["job_id"].as_str().unwrap()),
    ] {
        let refused = tokio_tungstenite::connect_async(ws(path.clone(), &stranger)).await;
        assert!(
            matches!(&refused, Err(tokio_tungstenite::tungstenite::Error::Http(response)) if response.status() == 404),
            "{path}: {refused:?}"
        );
    }
    app.shutdown().await;
}

fn ocr_fixture(name: &str) -> Vec<u8> {
    std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ocr/tests/fixtures").join(name)).unwrap()
}

/// Whether Tesseract is here; `AETHER_TEST_OCR` (set by `scripts/test`) makes its
/// absence a failure rather than a skip.
fn ocr_installed() -> bool {
    let settings = aether_ocr::OcrSettings { languages: "eng".into(), max_pages: 1 };
    match aether_ocr::OcrEngine::locate(&settings, std::env::var_os("PATH").as_deref()) {
        Ok(_) => true,
        Err(why) if std::env::var_os("AETHER_TEST_OCR").is_none() => {
            eprintln!("skipped: {why}");
            false
        }
        Err(why) => panic!("AETHER_TEST_OCR is set but OCR is unavailable: {why}"),
    }
}

/// The first answer of a search that finds something, within 10 s.
async fn found_by(app: &TestApp, token: &str, path: &str) -> Value {
    for _ in 0..100 {
        let found = json_of(call(app, token, Method::GET, path, None).await, 200).await;
        if !found["items"].as_array().unwrap().is_empty() {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{path} found nothing");
}

#[tokio::test]
async fn scans_are_read_by_ocr_then_searched_and_redacted_for_readers() {
    if !ocr_installed() {
        return;
    }
    let _serial = WORKERS.lock().await;
    let app = TestApp::spawn_with(with_workers).await;
    let owner = app.user_token("ocr-owner").await;
    let reader = app.user_token("ocr-reader").await;
    let nb = notebook(&app, &owner, json!({"pii_detection": true, "redaction_mode": "mask"})).await;
    let grant = json!({"user_id": user_id(&app, &reader).await, "permission": "read"});
    json_of(call(&app, &owner, Method::PUT, &format!("/api/v1/notebooks/{nb}/permissions"), Some(grant)).await, 200)
        .await;

    // A PDF whose first page is a scan (an image, no text layer) and whose second is typed.
    let pdf =
        finished(&app, &owner, &accepted(&app, &owner, &nb, "scanned.pdf", ocr_fixture("scanned.pdf")).await).await;
    assert_eq!(pdf["status"], "completed", "{pdf}");
    let pdf_url = format!("/api/v1/documents/{}", pdf["document_id"].as_str().unwrap());
    let document = json_of(call(&app, &owner, Method::GET, &pdf_url, None).await, 200).await;
    let metadata = &document["extracted_metadata"];
    assert_eq!((metadata["page_count"].as_u64(), metadata["ocr_pages"].as_u64()), (Some(2), Some(1)), "{metadata}");
    assert!(metadata["ocr_engine"].as_str().unwrap().starts_with("tesseract "), "{metadata}");
    assert!(metadata["ocr_confidence"].as_f64().unwrap() > 80.0, "{metadata}");
    // The recognised e-mail address is personal data like any other.
    assert_eq!(document["compliance_scan_results"]["findings"]["email"], 1, "{document}");

    // Search finds the scanned words on page 1, and the typed ones on page 2 (Neo4j's
    // full-text index takes the chunks up within moments).
    let found = found_by(&app, &owner, "/api/v1/search/documents?q=saffron%20Kashmir&mode=text").await;
    assert_eq!(found["items"][0]["document"]["id"], document["id"], "{found}");
    assert_eq!(found["items"][0]["match"]["page"], 1, "{found}");
    let appendix = found_by(&app, &owner, "/api/v1/search/documents?q=appendix&mode=text").await;
    assert_eq!(appendix["items"][0]["document"]["id"], document["id"], "{appendix}");
    assert_eq!(appendix["items"][0]["match"]["page"], 2, "{appendix}");

    // A reader sees the recognised text with the address masked, and cannot find it by it.
    let preview = json_of(call(&app, &reader, Method::GET, &format!("{pdf_url}/preview"), None).await, 200).await;
    let excerpt = preview["excerpt"].as_str().unwrap();
    assert!(excerpt.contains("saffron") && excerpt.contains("[REDACTED:EMAIL]"), "{excerpt}");
    assert!(!excerpt.contains("ledger.desk@example.com"), "{excerpt}");
    let by_address = call(&app, &reader, Method::GET, "/api/v1/search/documents?q=%22ledger.desk%22&mode=text", None);
    assert_eq!(json_of(by_address.await, 200).await["items"], json!([]));

    // A photo of the page: its text too.
    let png =
        finished(&app, &owner, &accepted(&app, &owner, &nb, "page.png", ocr_fixture("scanned-page.png")).await).await;
    let png_url = format!("/api/v1/documents/{}", png["document_id"].as_str().unwrap());
    let image = json_of(call(&app, &owner, Method::GET, &png_url, None).await, 200).await;
    assert_eq!((image["format"].as_str(), image["extracted_metadata"]["ocr_pages"].as_u64()), (Some("image"), Some(1)));
    let preview = json_of(call(&app, &owner, Method::GET, &format!("{png_url}/preview"), None).await, 200).await;
    assert!(preview["excerpt"].as_str().unwrap().contains("exceeded every forecast"), "{preview}");
    assert_eq!(common::metric(&app, "aether_ocr_pages_total", &["format=\"pdf\""]).await, 1.0);
    assert_eq!(common::metric(&app, "aether_ocr_pages_total", &["format=\"image\""]).await, 1.0);
    app.shutdown().await;

    // With OCR off, the scan is kept, without text, and says why.
    let app = TestApp::spawn_with(|config| {
        with_workers(config);
        config.ocr_enabled = false;
    })
    .await;
    let owner = app.user_token("ocr-off").await;
    let nb = notebook(&app, &owner, json!({})).await;
    let png =
        finished(&app, &owner, &accepted(&app, &owner, &nb, "page.png", ocr_fixture("scanned-page.png")).await).await;
    assert_eq!(png["status"], "completed", "{png}");
    let png_url = format!("/api/v1/documents/{}", png["document_id"].as_str().unwrap());
    let image = json_of(call(&app, &owner, Method::GET, &png_url, None).await, 200).await;
    assert!(image["extracted_metadata"]["ocr_pages"].is_null(), "{image}");
    let warnings = image["processing_metadata"]["warnings"].to_string();
    assert!(warnings.contains("OCR is not available"), "{warnings}");
    app.shutdown().await;
}

#[tokio::test]
async fn a_timed_out_extraction_takes_the_programs_it_started_with_it() {
    let _serial = WORKERS.lock().await;
    // An "extractor" that starts a long-running program of its own, as OCR does, and
    // then outlives the processing timeout: both must be gone after the job fails.
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("grandchild.pid");
    let script = dir.path().join("extractor.sh");
    std::fs::write(&script, format!("#!/bin/sh\nsleep 300 &\necho $! > '{}'\nsleep 300\n", pid_file.display()))
        .unwrap();
    std::process::Command::new("chmod").arg("+x").arg(&script).status().unwrap();
    let app = TestApp::spawn_with(|config| {
        with_workers(config);
        config.extractor_program = script.display().to_string();
        config.processing_timeout_secs = 1;
        config.processing_max_attempts = 1;
    })
    .await;
    let owner = app.user_token("orphans").await;
    let nb = notebook(&app, &owner, json!({})).await;
    let job = finished(&app, &owner, &accepted(&app, &owner, &nb, "scan.txt", b"scan".to_vec()).await).await;
    assert_eq!(job["error"]["code"], "processing_timed_out", "{job}");
    let pid = std::fs::read_to_string(&pid_file).unwrap().trim().to_owned();
    // Killed with its group; gone once reaped (by init, as an orphan).
    let mut alive = true;
    for _ in 0..100 {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        alive = !state.is_empty() && state.split(' ').nth(2) != Some("Z");
        if !alive {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!alive, "the extractor's own child {pid} outlived the timeout");
    app.shutdown().await;
}

fn format_fixture(name: &str) -> Vec<u8> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../extract/tests/corpus/formats");
    std::fs::read(dir.join(name)).unwrap()
}

#[tokio::test]
async fn archives_calendars_and_mail_are_searched_member_by_member() {
    let _serial = WORKERS.lock().await;
    let app = TestApp::spawn_with(with_workers).await;
    let owner = app.user_token("formats-owner").await;
    let stranger = app.user_token("formats-stranger").await;
    let nb = notebook(&app, &owner, json!({"pii_detection": true})).await;

    // A zip: its members are read, and a hit names the member's page.
    let zip =
        finished(&app, &owner, &accepted(&app, &owner, &nb, "bundle.zip", format_fixture("bundle.zip")).await).await;
    assert_eq!(zip["status"], "completed", "{zip}");
    let zip_url = format!("/api/v1/documents/{}", zip["document_id"].as_str().unwrap());
    let document = json_of(call(&app, &owner, Method::GET, &zip_url, None).await, 200).await;
    assert_eq!(document["format"], "zip", "{document}");
    let members = document["extracted_metadata"]["members"].as_array().unwrap().clone();
    let readme_page = members.iter().find(|m| m["path"] == "readme.txt").unwrap()["page"].clone();
    let found = found_by(
        &app,
        &owner,
        "/api/v1/search/documents?q=%22quartz%20lantern%20glows%20over%20the%20zip%22&mode=text",
    )
    .await;
    assert_eq!(found["items"][0]["document"]["id"], document["id"], "{found}");
    assert_eq!(found["items"][0]["match"]["page"], readme_page, "{found}");
    let deep = found_by(&app, &owner, "/api/v1/search/documents?q=%22Deep%20member%20text%22&mode=text").await;
    assert_eq!(deep["items"][0]["document"]["id"], document["id"], "the zip inside the zip is read: {deep}");

    // A calendar: its events are text, and the organiser's address is personal data.
    let ics =
        finished(&app, &owner, &accepted(&app, &owner, &nb, "calendar.ics", format_fixture("calendar.ics")).await)
            .await;
    let ics_url = format!("/api/v1/documents/{}", ics["document_id"].as_str().unwrap());
    let calendar = json_of(call(&app, &owner, Method::GET, &ics_url, None).await, 200).await;
    assert_eq!((calendar["format"].as_str(), calendar["content_type"].as_str()), (Some("ics"), Some("text/calendar")));
    assert!(calendar["compliance_scan_results"]["findings"]["email"].as_u64() >= Some(1), "{calendar}");
    let pebbles = found_by(&app, &owner, "/api/v1/search/documents?q=pebbles&mode=text").await;
    assert_eq!(pebbles["items"][0]["document"]["id"], calendar["id"], "{pebbles}");
    // Nobody else finds any of it.
    let theirs = call(&app, &stranger, Method::GET, "/api/v1/search/documents?q=pebbles&mode=text", None);
    assert_eq!(json_of(theirs.await, 200).await["items"], json!([]));

    // A cut archive fails with its reason; a notebook's list still shows it, failed.
    let cut = format_fixture("hostile/truncated.tar.gz");
    let failed = finished(&app, &owner, &accepted(&app, &owner, &nb, "bundle.tar.gz", cut).await).await;
    assert_eq!((failed["status"].as_str(), failed["error"]["code"].as_str()), (Some("failed"), Some("malformed_file")));
    assert!(failed["error"]["message"].as_str().unwrap().contains("truncated"), "{failed}");

    // The table of formats, for everyone signed in.
    let formats = json_of(call(&app, &stranger, Method::GET, "/api/v1/documents/formats", None).await, 200).await;
    let items = formats["items"].as_array().unwrap();
    assert!(items.len() >= 35, "{formats}");
    let msg = items.iter().find(|f| f["format"] == "msg").expect("msg is listed");
    assert_eq!(msg["content_types"], json!(["application/vnd.ms-outlook"]));
    assert!(msg["extensions"].as_array().unwrap().contains(&json!("msg")));
    let anonymous = app.client.get(app.url("/api/v1/documents/formats")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    app.shutdown().await;
}

/// Whether ffprobe is here; `AETHER_TEST_MEDIA` (set by `scripts/test`) makes its
/// absence a failure rather than a skip.
fn media_installed() -> bool {
    match aether_ocr::MediaTools::locate(std::env::var_os("PATH").as_deref()) {
        Ok(_) => true,
        Err(why) if std::env::var_os("AETHER_TEST_MEDIA").is_none() => {
            eprintln!("skipped: {why}");
            false
        }
        Err(why) => panic!("AETHER_TEST_MEDIA is set but ffprobe is unavailable: {why}"),
    }
}

/// What the transcription double was sent: (authorization, file name, model).
type Transcribed = std::sync::Arc<std::sync::Mutex<Vec<(String, String, String)>>>;

/// An OpenAI-compatible `POST /v1/audio/transcriptions` (multipart `file` and `model`,
/// answer `{"text", "language"}`), saying what each file "says" by its name.
async fn transcription_double() -> (String, Transcribed) {
    let sent: Transcribed = Default::default();
    let log = sent.clone();
    let app = axum::Router::new().route(
        "/v1/audio/transcriptions",
        axum::routing::post(move |headers: axum::http::HeaderMap, mut form: axum::extract::Multipart| {
            let log = log.clone();
            async move {
                let (mut file, mut model) = (String::new(), String::new());
                while let Some(field) = form.next_field().await.unwrap() {
                    match field.name() {
                        Some("file") => file = field.file_name().unwrap_or_default().to_owned(),
                        Some("model") => model = field.text().await.unwrap(),
                        _ => {}
                    }
                }
                let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
                log.lock().unwrap().push((auth, file.clone(), model));
                let word = if file.ends_with(".mp4") { "video" } else { "audio" };
                axum::Json(json!({
                    "text": format!("The quartz lantern glows over the {word} marsh. Write to pii.{word}@example.com."),
                    "language": "english"
                }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, sent)
}

fn media_fixture(name: &str) -> Vec<u8> {
    std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ocr/tests/fixtures").join(name)).unwrap()
}

#[tokio::test]
async fn audio_and_video_are_described_and_their_speech_searched() {
    if !media_installed() {
        return;
    }
    let _serial = WORKERS.lock().await;
    let (url, sent) = transcription_double().await;
    let app = TestApp::spawn_with(|config| {
        with_workers(config);
        config.transcription_url = url;
        config.transcription_model = "whisper-test".into();
        config.transcription_api_key = aether::config::Secret::new("transcription-key");
    })
    .await;
    let owner = app.user_token("media-owner").await;
    let reader = app.user_token("media-reader").await;
    let nb = notebook(&app, &owner, json!({"pii_detection": true, "redaction_mode": "mask"})).await;
    let grant = json!({"user_id": user_id(&app, &reader).await, "permission": "read"});
    json_of(call(&app, &owner, Method::PUT, &format!("/api/v1/notebooks/{nb}/permissions"), Some(grant)).await, 200)
        .await;

    // Audio: described by ffprobe, its speech transcribed, scanned and searchable.
    let mp3 = finished(&app, &owner, &accepted(&app, &owner, &nb, "tone.mp3", media_fixture("tone.mp3")).await).await;
    assert_eq!(mp3["status"], "completed", "{mp3}");
    let mp3_url = format!("/api/v1/documents/{}", mp3["document_id"].as_str().unwrap());
    let audio = json_of(call(&app, &owner, Method::GET, &mp3_url, None).await, 200).await;
    let m = &audio["extracted_metadata"];
    assert_eq!(
        (audio["format"].as_str(), audio["content_type"].as_str()),
        (Some("audio"), Some("audio/mpeg")),
        "{audio}"
    );
    assert!((1.9..2.2).contains(&m["duration_seconds"].as_f64().unwrap()), "{m}");
    assert_eq!((m["audio_codec"].as_str(), m["title"].as_str()), (Some("mp3"), Some("Heron call")), "{m}");
    assert_eq!(
        (m["transcription"].as_str(), m["transcription_model"].as_str()),
        (Some("completed"), Some("whisper-test"))
    );
    assert_eq!(audio["compliance_scan_results"]["findings"]["email"], 1, "{audio}");
    let found =
        found_by(&app, &owner, "/api/v1/search/documents?q=%22lantern%20glows%20over%20the%20audio%22&mode=text").await;
    assert_eq!(found["items"][0]["document"]["id"], audio["id"], "{found}");
    // A reader sees the transcript with the address masked.
    let preview = json_of(call(&app, &reader, Method::GET, &format!("{mp3_url}/preview"), None).await, 200).await;
    let excerpt = preview["excerpt"].as_str().unwrap();
    assert!(excerpt.contains("audio marsh") && excerpt.contains("[REDACTED:EMAIL]"), "{excerpt}");
    assert_eq!(
        sent.lock().unwrap().first().cloned(),
        Some(("Bearer transcription-key".into(), "tone.mp3".into(), "whisper-test".into()))
    );

    // Video: its picture described, a poster frame as its thumbnail, its speech too.
    let mp4 = finished(&app, &owner, &accepted(&app, &owner, &nb, "clip.mp4", media_fixture("clip.mp4")).await).await;
    let mp4_url = format!("/api/v1/documents/{}", mp4["document_id"].as_str().unwrap());
    let video = json_of(call(&app, &owner, Method::GET, &mp4_url, None).await, 200).await;
    let m = &video["extracted_metadata"];
    assert_eq!(
        (video["format"].as_str(), m["video_codec"].as_str(), m["width"].as_u64()),
        (Some("video"), Some("h264"), Some(160))
    );
    let thumbnail = call(&app, &owner, Method::GET, &format!("{mp4_url}/thumbnail"), None).await;
    assert_eq!(thumbnail.status(), 200);
    assert!(thumbnail.bytes().await.unwrap().starts_with(b"\x89PNG"));
    found_by(&app, &owner, "/api/v1/search/documents?q=%22lantern%20glows%20over%20the%20video%22&mode=text").await;
    assert_eq!(common::metric(&app, "aether_transcriptions_total", &["outcome=\"completed\""]).await, 2.0);
    app.shutdown().await;

    // Without a transcription service: described, and marked so.
    let app = TestApp::spawn_with(with_workers).await;
    let owner = app.user_token("media-untranscribed").await;
    let nb = notebook(&app, &owner, json!({})).await;
    let mp3 = finished(&app, &owner, &accepted(&app, &owner, &nb, "tone.mp3", media_fixture("tone.mp3")).await).await;
    let mp3_url = format!("/api/v1/documents/{}", mp3["document_id"].as_str().unwrap());
    let audio = json_of(call(&app, &owner, Method::GET, &mp3_url, None).await, 200).await;
    assert_eq!(audio["extracted_metadata"]["transcription"], "unavailable", "{audio}");
    assert_eq!(audio["extracted_metadata"]["audio_codec"], "mp3", "{audio}");
    app.shutdown().await;
}
