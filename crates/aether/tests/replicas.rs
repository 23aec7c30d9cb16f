//! Two `aether serve` processes behind one Redis, as replicas run in production: a
//! job's progress raised on one replica reaches a socket connected to the other.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::process::{self, KillOnDrop};
use futures::StreamExt as _;
use serde_json::Value;

/// Starts `aether serve` on `data_dir` (shared by both replicas: the same token
/// signing key, and with SQLite the same database) with Redis under `prefix`.
fn replica(data_dir: &Path, redis_url: &str, prefix: &str, workers: bool) -> (KillOnDrop, String) {
    let mut command = process::aether_command(data_dir);
    command
        .env("AETHER_ADMIN_PASSWORD", common::ADMIN_PASSWORD)
        .env("AETHER_REDIS_URL", redis_url)
        .env("AETHER_REDIS_KEY_PREFIX", prefix)
        .env("AETHER_RATE_LIMIT_PER_USER", "0")
        .env("AETHER_RATE_LIMIT_PER_IP", "0")
        .env("AETHER_RUN_WORKERS", if workers { "true" } else { "false" })
        // Sockets re-read the store only once a minute: what arrives sooner came
        // through the fan-out.
        .env("AETHER_WEBSOCKET_POLL_MS", "60000")
        .stderr(Stdio::inherit());
    process::serve(command)
}

#[tokio::test]
async fn progress_raised_on_one_replica_reaches_a_socket_on_the_other() {
    let Some(redis_url) = common::service("AETHER_TEST_REDIS_URL", "to relay job progress between replicas") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("replicas-{}:", uuid::Uuid::now_v7().simple());
    // Replica A takes the upload and processes it; B only serves the socket.
    let (replica_a, a) = replica(dir.path(), &redis_url, &prefix, true);
    let (replica_b, b) = replica(dir.path(), &redis_url, &prefix, false);

    let token = process::password_token(&a, "admin", common::ADMIN_PASSWORD).await;
    let notebook_id = process::create_notebook(&a, &token, "Replicated progress").await;

    let socket_url =
        format!("{}/api/v1/ws/notebooks/{notebook_id}/uploads?access_token={token}", b.replace("http://", "ws://"));
    let (mut socket, _) = tokio_tungstenite::connect_async(&socket_url).await.unwrap();

    // Six chunks, 700 ms apart: replica A records progress every 500 ms.
    let chunk = b"progress travels between replicas\n".repeat(2000);
    let total = chunk.len() * 6;
    let chunks = futures::stream::iter(0..6).then(move |index| {
        let chunk = chunk.clone();
        async move {
            if index > 0 {
                tokio::time::sleep(Duration::from_millis(700)).await;
            }
            Ok::<_, std::io::Error>(chunk)
        }
    });
    let form = reqwest::multipart::Form::new()
        .text("notebook_id", notebook_id.clone())
        .text("file_size", total.to_string())
        .part("file", reqwest::multipart::Part::stream(reqwest::Body::wrap_stream(chunks)).file_name("slow.txt"));
    let upload =
        process::http().post(format!("{a}/api/v1/documents/upload")).bearer_auth(&token).multipart(form).send();
    let upload = tokio::spawn(upload);

    let mut uploading_progress = Vec::new();
    let mut statuses = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        let message = tokio::time::timeout_at(deadline, socket.next())
            .await
            .unwrap_or_else(|_| panic!("no completion on replica B; saw {statuses:?}"))
            .expect("the socket stayed open")
            .unwrap();
        let Ok(text) = message.to_text() else { continue };
        let Ok(job) = serde_json::from_str::<Value>(text) else { continue };
        let status = job["status"].as_str().unwrap().to_owned();
        if status == "uploading" {
            uploading_progress.push(job["progress"]["bytes_received"].as_u64().unwrap());
        }
        statuses.push(status.clone());
        if status == "completed" {
            break;
        }
        assert!(!["failed", "cancelled"].contains(&status.as_str()), "job ended badly: {job}");
    }
    let accepted = upload.await.unwrap().unwrap();
    assert_eq!(accepted.status(), 202);

    // The upload's progress, not just its end, reached B while it happened.
    let distinct: std::collections::BTreeSet<_> = uploading_progress.iter().copied().filter(|n| *n > 0).collect();
    assert!(distinct.len() >= 2, "expected several progress updates on replica B, saw {uploading_progress:?}");
    assert!(uploading_progress.windows(2).all(|pair| pair[0] <= pair[1]), "progress went back: {uploading_progress:?}");
    assert!(statuses.iter().any(|status| status == "processing" || status == "pending"), "saw {statuses:?}");

    // A socket on B for the finished job itself answers with its final state.
    let job_id = accepted.json::<Value>().await.unwrap()["job_id"].as_str().unwrap().to_owned();
    let (mut job_socket, _) = tokio_tungstenite::connect_async(format!(
        "{}/api/v1/ws/upload/{job_id}?access_token={token}",
        b.replace("http://", "ws://")
    ))
    .await
    .unwrap();
    let first = job_socket.next().await.unwrap().unwrap();
    let first: Value = serde_json::from_str(first.to_text().unwrap()).unwrap();
    assert_eq!(first["status"], "completed");
    drop((replica_a, replica_b));
}
