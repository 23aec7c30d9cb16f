//! The real `aether` binary as an operator runs it: start-up, the printed admin
//! password, the command-line tools, SIGTERM, and a `kill -9` that loses nothing.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::process::KillOnDrop;
use futures::StreamExt as _;
use serde_json::{Value, json};

/// Every server these tests start runs document workers, which take jobs from the
/// shared store (Neo4j in the second stage of scripts/test) while each server keeps
/// blobs in its own data directory: one test at a time keeps each server's jobs its own.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn aether(data_dir: &Path) -> Command {
    common::process::aether_command(data_dir)
}

struct Server {
    child: Child,
    base_url: String,
    stderr: std::thread::JoinHandle<String>,
}

fn start(data_dir: &Path, admin_password: Option<&str>) -> Server {
    let mut command = aether(data_dir);
    command.args(["serve", "--listen", "127.0.0.1:0"]).stdout(Stdio::piped()).stderr(Stdio::piped());
    if let Some(password) = admin_password {
        command.env("AETHER_ADMIN_PASSWORD", password);
    }
    let mut child = command.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            text.push_str(&line);
            text.push('\n');
        }
        text
    });
    let base_url = common::process::listening_url(&mut child);
    Server { child, base_url, stderr }
}

async fn login(base_url: &str, username: &str, password: &str) -> Value {
    let response = common::process::http()
        .post(format!("{base_url}/api/v1/auth/token"))
        .form(&[("grant_type", "password"), ("username", username), ("password", password)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "login as {username}");
    response.json().await.unwrap()
}

#[tokio::test]
async fn kill_minus_nine_loses_nothing() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), Some(common::ADMIN_PASSWORD));
    let tokens = login(&server.base_url, "admin", common::ADMIN_PASSWORD).await;
    let token = tokens["access_token"].as_str().unwrap().to_owned();
    let created = common::process::http()
        .post(format!("{}/api/v1/notebooks", server.base_url))
        .bearer_auth(&token)
        .json(&json!({"name": "Survives a crash"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    // SIGKILL straight after the 201: no chance to flush or shut down.
    server.child.kill().unwrap();
    server.child.wait().unwrap();

    let mut restarted = start(dir.path(), Some(common::ADMIN_PASSWORD));
    let fetched = common::process::http()
        .get(format!("{}/api/v1/notebooks/{}", restarted.base_url, created["id"].as_str().unwrap()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(fetched.status(), 200, "the old token still works and the notebook is there");
    let fetched: Value = fetched.json().await.unwrap();
    assert_eq!(fetched["name"], "Survives a crash");
    // The refresh token issued before the crash also survives.
    let refreshed = common::process::http()
        .post(format!("{}/api/v1/auth/token", restarted.base_url))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", tokens["refresh_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), 200);
    restarted.child.kill().unwrap();
    restarted.child.wait().unwrap();
}

#[tokio::test]
async fn sigterm_shuts_down_cleanly() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), Some(common::ADMIN_PASSWORD));
    let health = common::process::http().get(format!("{}/health", server.base_url)).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = server.child.wait().unwrap();
    assert!(status.success(), "exit status after SIGTERM: {status:?}");
    let _ = server.stderr.join();
}

#[tokio::test]
async fn first_start_prints_a_generated_admin_password() {
    let _serial = SERIAL.lock().await;
    if common::store_kind() != aether::config::StoreKind::Sqlite {
        // A shared Neo4j already holds an admin from other tests; first start means an empty store.
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), None);
    let ready = common::process::http().get(format!("{}/ready", server.base_url)).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let stderr = server.stderr.join().unwrap();
    let password = stderr
        .lines()
        .find_map(|line| line.trim().strip_prefix("password: "))
        .unwrap_or_else(|| panic!("no generated password in: {stderr}"))
        .to_owned();

    let mut again = start(dir.path(), None);
    login(&again.base_url, "admin", &password).await;
    again.child.kill().unwrap();
    again.child.wait().unwrap();
    let second_stderr = again.stderr.join().unwrap();
    assert!(!second_stderr.contains("password: "), "the password is printed only once");
}

#[tokio::test]
async fn command_line_tools_work() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let output = aether(dir.path()).arg("version").output().unwrap();
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("aether "));

    let output = aether(dir.path()).env("AETHER_NEO4J_PASSWORD", "very-secret-value").arg("config").output().unwrap();
    assert!(output.status.success());
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(printed.contains("listen = \"127.0.0.1:8080\""), "{printed}");
    assert!(!printed.contains("very-secret-value") && printed.contains("<redacted>"), "{printed}");

    let output = aether(dir.path()).env("AETHER_LISTEN", "nowhere").args(["serve"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(message.contains("AETHER_LISTEN"), "the message names the option: {message}");

    let output = aether(dir.path()).arg("migrate").output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("schema is up to date"));

    let username = format!("cli-{}", uuid::Uuid::now_v7().simple());
    let output = aether(dir.path())
        .args([
            "admin",
            "create-user",
            "--username",
            &username,
            "--password",
            "cli-password-1",
            "--role",
            "notebook-admin",
            "--role",
            "aether-user",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let output = aether(dir.path())
        .args(["admin", "create-user", "--username", &username, "--password", "cli-password-1"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("already taken"));
    let output = aether(dir.path())
        .args(["admin", "create-user", "--username", "x", "--password", "cli-password-1", "--role", "root"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown role"));

    let mut server = start(dir.path(), Some(common::ADMIN_PASSWORD));
    let tokens = login(&server.base_url, &username, "cli-password-1").await;
    let me: Value = common::process::http()
        .get(format!("{}/api/v1/users/me", server.base_url))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["roles"], json!(["notebook-admin", "aether-user"]));
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}

#[tokio::test]
async fn worker_runs_until_sigterm() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut worker = aether(dir.path()).arg("worker").stderr(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(800));
    assert!(worker.try_wait().unwrap().is_none(), "the worker keeps running");
    let pid = worker.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = worker.wait().unwrap();
    assert!(status.success(), "exit status after SIGTERM: {status:?}");
}

async fn job_status(base_url: &str, token: &str, job_id: &str) -> Value {
    let response = common::process::http()
        .get(format!("{base_url}/api/v1/documents/upload/{job_id}/status"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Polls until `done` holds for the job, for up to a minute.
async fn wait_for_job(base_url: &str, token: &str, job_id: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..600 {
        let job = job_status(base_url, token, job_id).await;
        if done(&job) {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("job {job_id} never reached the expected state: {}", job_status(base_url, token, job_id).await);
}

/// `kill -9` while one upload is still streaming and another file is being
/// processed, then a restart: the acknowledged uploads become documents (the one
/// interrupted in processing is taken again once its lease runs out), the
/// unacknowledged upload fails with a reason, and no blob is left unreferenced.
#[tokio::test]
async fn kill_minus_nine_during_uploads_and_processing_loses_nothing() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    // Processing is made slow (the real extractor, started 3 s late) so that the
    // kill lands while a job is being processed.
    let slow = dir.path().join("slow-extractor.sh");
    std::fs::write(&slow, format!("#!/bin/sh\nsleep 3\nexec '{}' \"$@\"\n", env!("CARGO_BIN_EXE_aether"))).unwrap();
    Command::new("chmod").arg("+x").arg(&slow).status().unwrap();
    let data = dir.path().join("data");
    let start_with = |extractor: &Path| {
        let mut command = aether(&data);
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("AETHER_ADMIN_PASSWORD", common::ADMIN_PASSWORD)
            .env("AETHER_EXTRACTOR_PROGRAM", extractor)
            .env("AETHER_JOB_LEASE_SECS", "2")
            .env("AETHER_STALE_UPLOAD_SECS", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = command.spawn().unwrap();
        let base_url = common::process::listening_url(&mut child);
        (KillOnDrop(child), base_url)
    };
    let (mut child, base_url) = start_with(&slow);
    let token = login(&base_url, "admin", common::ADMIN_PASSWORD).await["access_token"].as_str().unwrap().to_owned();
    let notebook: Value = common::process::http()
        .post(format!("{base_url}/api/v1/notebooks"))
        .bearer_auth(&token)
        .json(&json!({"name": "Crash test"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let notebook_id = notebook["id"].as_str().unwrap().to_owned();
    let upload = |name: &'static str, body: reqwest::Body| {
        let form = reqwest::multipart::Form::new()
            .text("notebook_id", notebook_id.clone())
            .part("file", reqwest::multipart::Part::stream(body).file_name(name));
        common::process::http()
            .post(format!("{base_url}/api/v1/documents/upload"))
            .bearer_auth(&token)
            .multipart(form)
            .send()
    };

    // Acknowledged and caught in processing by the kill.
    let processed_bytes = b"acknowledged, then interrupted while processing\n".repeat(1000);
    let accepted = upload("processing.txt", processed_bytes.clone().into()).await.unwrap();
    assert_eq!(accepted.status(), 202);
    let accepted: Value = accepted.json().await.unwrap();
    let accepted_job = accepted["job_id"].as_str().unwrap().to_owned();
    wait_for_job(&base_url, &token, &accepted_job, |job| job["status"] == "processing").await;

    // Still streaming when the kill comes: 2 MiB, then the client stalls.
    let chunks = futures::stream::iter((0..2).map(|_| Ok::<_, std::io::Error>(vec![b'x'; 1024 * 1024])))
        .chain(futures::stream::pending());
    let streaming = tokio::spawn(upload("streaming.txt", reqwest::Body::wrap_stream(chunks)));
    let mut streaming_job = None;
    for _ in 0..100 {
        let jobs: Value = common::process::http()
            .get(format!("{base_url}/api/v1/notebooks/{notebook_id}/upload/status?active=true"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(job) = jobs["items"].as_array().unwrap().iter().find(|j| j["original_filename"] == "streaming.txt")
            && job["progress"]["bytes_received"].as_u64().unwrap_or(0) > 0
        {
            streaming_job = Some(job["job_id"].as_str().unwrap().to_owned());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let streaming_job = streaming_job.expect("the streaming upload reported progress");

    child.0.kill().unwrap();
    child.0.wait().unwrap();
    streaming.abort();
    tokio::time::sleep(Duration::from_millis(1200)).await;

    let (restarted, base_url) = start_with(Path::new(env!("CARGO_BIN_EXE_aether")));
    let done = wait_for_job(&base_url, &token, &accepted_job, |job| job["status"] == "completed").await;
    assert_eq!(done["attempts"], 2, "taken again after the dead worker's lease ran out");
    let interrupted = wait_for_job(&base_url, &token, &streaming_job, |job| job["status"] == "failed").await;
    assert_eq!(interrupted["error"]["code"], "upload_interrupted");
    let download = common::process::http()
        .get(format!("{base_url}/api/v1/documents/{}/download", done["document_id"].as_str().unwrap()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 200);
    assert_eq!(download.bytes().await.unwrap().to_vec(), processed_bytes, "no acknowledged byte lost");

    // Orphans: every file left under documents/ belongs to the stored document.
    let documents_dir = data.join("blobs").join("documents");
    let stored = documents_dir.join(done["document_id"].as_str().unwrap());
    let mut leftovers = Vec::new();
    for _ in 0..150 {
        leftovers = common::files_under(&documents_dir).into_iter().filter(|path| !path.starts_with(&stored)).collect();
        if leftovers.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(leftovers.is_empty(), "orphaned blobs: {leftovers:?}");
    assert!(common::files_under(&stored).iter().any(|path| path.ends_with("original")));
    drop(restarted);
}
