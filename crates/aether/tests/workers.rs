//! Document workers as separate `aether worker` processes forming a Kafka consumer
//! group: two of them share the jobs an API server queues, and a worker killed in
//! the middle of a job leaves it to the other.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::process::{self, KillOnDrop, http};
use serde_json::Value;

/// Which worker said it was processing which job, from the workers' JSON logs.
type Sightings = Arc<Mutex<Vec<(usize, String)>>>;

/// Which worker a Kafka queue entry brought which job to: proof that the job travelled
/// through the consumer group, not only through the store sweep, which also finds jobs.
type Deliveries = Arc<Mutex<Vec<(usize, String)>>>;

fn aether(data_dir: &Path, brokers: &str, group: &str, extractor: &Path) -> Command {
    let mut command = process::aether_command(data_dir);
    command
        .env("AETHER_ADMIN_PASSWORD", common::ADMIN_PASSWORD)
        .env("AETHER_EXTRACTOR_PROGRAM", extractor)
        .env("AETHER_EVENTS", "kafka")
        .env("AETHER_KAFKA_BROKERS", brokers)
        .env("AETHER_JOB_QUEUE", "kafka")
        .env("AETHER_KAFKA_WORKER_GROUP", group)
        .env("AETHER_EVENT_POLL_INTERVAL_MS", "50")
        .env("AETHER_RATE_LIMIT_PER_USER", "0")
        .env("AETHER_RATE_LIMIT_PER_IP", "0")
        // A dead worker's job is free again after 3 s.
        .env("AETHER_JOB_LEASE_SECS", "3")
        .env("AETHER_LOG_FORMAT", "json");
    command
}

fn worker(
    data_dir: &Path,
    brokers: &str,
    group: &str,
    extractor: &Path,
    index: usize,
    seen: &Sightings,
    delivered: &Deliveries,
) -> KillOnDrop {
    let mut command = aether(data_dir, brokers, group, extractor);
    command
        .env("AETHER_DOCUMENT_WORKERS", "1")
        .env("AETHER_LOG_LEVEL", "info")
        .arg("worker")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let seen = Arc::clone(seen);
    let delivered = Arc::clone(delivered);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let Ok(entry) = serde_json::from_str::<Value>(&line) else { continue };
            let Some(job) = entry["job_id"].as_str() else { continue };
            if entry["message"] == "processing job" {
                seen.lock().unwrap().push((index, job.to_owned()));
            } else if entry["message"] == "a queue entry brought a job" {
                delivered.lock().unwrap().push((index, job.to_owned()));
            }
        }
    });
    KillOnDrop(child)
}

async fn job(base_url: &str, token: &str, id: &str) -> Value {
    http()
        .get(format!("{base_url}/api/v1/documents/upload/{id}/status"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn wait_until_ended(base_url: &str, token: &str, id: &str, within: Duration) -> Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let current = job(base_url, token, id).await;
        if ["completed", "failed", "cancelled"].contains(&current["status"].as_str().unwrap_or_default()) {
            return current;
        }
        assert!(tokio::time::Instant::now() < deadline, "job {id} did not end: {current}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn two_worker_processes_share_the_jobs_and_take_over_a_killed_ones_job() {
    let Some(brokers) = common::service("AETHER_TEST_KAFKA_BROKERS", "to share jobs in a Kafka consumer group") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Each job takes a second (six more once `slow` exists), so that a job is
    // still in hand when its worker is killed.
    let slow_marker = dir.path().join("slow");
    let extractor = dir.path().join("extractor.sh");
    std::fs::write(
        &extractor,
        format!(
            "#!/bin/sh\nif [ -e '{}' ]; then sleep 6; fi\nsleep 1\nexec '{}' \"$@\"\n",
            slow_marker.display(),
            env!("CARGO_BIN_EXE_aether")
        ),
    )
    .unwrap();
    Command::new("chmod").arg("+x").arg(&extractor).status().unwrap();
    // A fresh group: it starts from the oldest queued job, and no other test's
    // workers are in it.
    let group = format!("test-workers-{}", uuid::Uuid::now_v7().simple());

    // The API server queues jobs and processes none.
    let mut command = aether(&data, &brokers, &group, &extractor);
    command.env("AETHER_DOCUMENT_WORKERS", "0").env("AETHER_LOG_LEVEL", "warn").stderr(Stdio::inherit());
    let (_server, base_url) = process::serve(command);

    let seen: Sightings = Arc::default();
    let delivered: Deliveries = Arc::default();
    let mut workers: Vec<Option<KillOnDrop>> =
        (0..2).map(|index| Some(worker(&data, &brokers, &group, &extractor, index, &seen, &delivered))).collect();

    let token = process::password_token(&base_url, "admin", common::ADMIN_PASSWORD).await;
    let notebook_id = process::create_notebook(&base_url, &token, "Worker group").await;
    let upload = |name: String| {
        let form = reqwest::multipart::Form::new()
            .text("notebook_id", notebook_id.clone())
            .part("file", reqwest::multipart::Part::bytes(format!("{name}\n").into_bytes()).file_name(name));
        let request = http().post(format!("{base_url}/api/v1/documents/upload")).bearer_auth(&token).multipart(form);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 202);
            response.json::<Value>().await.unwrap()["job_id"].as_str().unwrap().to_owned()
        }
    };

    // Sixteen jobs over twelve partitions: both workers get some.
    let mut jobs = Vec::new();
    for index in 0..16 {
        jobs.push(upload(format!("shared-{index}.txt")).await);
    }
    for id in &jobs {
        let ended = wait_until_ended(&base_url, &token, id, Duration::from_secs(90)).await;
        assert_eq!(ended["status"], "completed", "{ended}");
    }
    let by_worker: BTreeMap<usize, BTreeSet<String>> =
        seen.lock().unwrap().iter().filter(|(_, job)| jobs.contains(job)).fold(BTreeMap::new(), |mut map, (w, j)| {
            map.entry(*w).or_default().insert(j.clone());
            map
        });
    assert_eq!(by_worker.len(), 2, "both workers processed jobs: {by_worker:?}");
    assert_eq!(by_worker.values().map(BTreeSet::len).sum::<usize>(), jobs.len(), "each job once: {by_worker:?}");
    // Every job reached a worker through the consumer group (the sweep alone, with Kafka
    // broken, would also complete them all).
    // An entry may come after its job ended (the sweep found the job while the group was
    // still forming, or a worker's log line is still on its way): wait for each.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let through_kafka: BTreeSet<String> = delivered.lock().unwrap().iter().map(|(_, job)| job.clone()).collect();
        let missing: Vec<&String> = jobs.iter().filter(|job| !through_kafka.contains(*job)).collect();
        if missing.is_empty() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "jobs no Kafka entry brought: {missing:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let receivers: BTreeSet<usize> = delivered.lock().unwrap().iter().map(|(worker, _)| *worker).collect();
    assert_eq!(receivers.len(), 2, "the group spread the entries over both workers");

    // A worker dies in the middle of a job: the other one finishes it.
    std::fs::write(&slow_marker, b"").unwrap();
    let doomed_job = upload("interrupted.txt".to_owned()).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let holder = loop {
        if let Some((index, _)) = seen.lock().unwrap().iter().find(|(_, job)| *job == doomed_job) {
            break *index;
        }
        assert!(tokio::time::Instant::now() < deadline, "no worker took the job");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut killed = workers[holder].take().unwrap();
    killed.0.kill().unwrap();
    killed.0.wait().unwrap();
    let interrupted = job(&base_url, &token, &doomed_job).await;
    assert!(["validating", "processing"].contains(&interrupted["status"].as_str().unwrap()), "{interrupted}");
    let ended = wait_until_ended(&base_url, &token, &doomed_job, Duration::from_secs(60)).await;
    assert_eq!(ended["status"], "completed", "{ended}");
    assert_eq!(ended["attempts"], 2, "taken again once: {ended}");
    let survivor = 1 - holder;
    assert!(
        seen.lock().unwrap().iter().any(|(index, job)| *index == survivor && *job == doomed_job),
        "the surviving worker finished it"
    );
    drop(workers);
}
