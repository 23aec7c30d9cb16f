//! HTTP latency and throughput of the notebook endpoints, against a server started
//! in-process on a free port. Prints figures; asserts nothing about them.
//!
//! `cargo bench -p aether --bench http` runs on SQLite in a temporary directory;
//! with `AETHER_TEST_STORE=neo4j` and `AETHER_TEST_NEO4J_*` it runs on Neo4j
//! (`scripts/bench --neo4j` sets these up). The design's target is p95 < 200 ms.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use aether_domain::user::Role;
use serde_json::{Value, json};

const CONCURRENCY: usize = 16;
const DURATION: Duration = Duration::from_secs(5);

struct Figures {
    name: &'static str,
    latencies: Vec<Duration>,
    elapsed: Duration,
}

impl Figures {
    fn print(mut self) {
        self.latencies.sort();
        let pick = |q: f64| {
            let index = ((self.latencies.len() as f64 - 1.0) * q).round() as usize;
            self.latencies[index].as_secs_f64() * 1000.0
        };
        println!(
            "{:<34} {:>7} req  {:>8.0} req/s  p50 {:>7.2} ms  p95 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms",
            self.name,
            self.latencies.len(),
            self.latencies.len() as f64 / self.elapsed.as_secs_f64(),
            pick(0.50),
            pick(0.95),
            pick(0.99),
            pick(1.0),
        );
    }
}

/// Runs `request` from CONCURRENCY tasks for DURATION and records each latency.
async fn load<F, Fut>(name: &'static str, request: F) -> Figures
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = u16> + Send,
{
    let request = Arc::new(request);
    let started = Instant::now();
    let tasks = (0..CONCURRENCY).map(|worker| {
        let request = Arc::clone(&request);
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = worker;
            while started.elapsed() < DURATION {
                let sent = Instant::now();
                let status = request(i).await;
                assert!(status < 400, "{name}: status {status}");
                latencies.push(sent.elapsed());
                i += CONCURRENCY;
            }
            latencies
        })
    });
    let mut latencies = Vec::new();
    for task in futures_join(tasks.collect()).await {
        latencies.extend(task);
    }
    Figures { name, latencies, elapsed: started.elapsed() }
}

async fn futures_join(handles: Vec<tokio::task::JoinHandle<Vec<Duration>>>) -> Vec<Vec<Duration>> {
    let mut out = Vec::new();
    for handle in handles {
        out.push(handle.await.unwrap());
    }
    out
}

#[tokio::main]
async fn main() {
    let app = common::TestApp::spawn_with(|config| config.run_workers = false).await;
    println!(
        "aether HTTP bench: store {:?}, {} concurrent clients for {} s each, {} cores",
        app.server.runtime.config.store,
        CONCURRENCY,
        DURATION.as_secs(),
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    let (username, password) = app.create_user("bench", vec![Role::User]).await;
    let tokens: Value = app.password_grant(&username, &password).await.json().await.unwrap();
    let token = Arc::new(tokens["access_token"].as_str().unwrap().to_owned());
    let client = app.client.clone();
    let base = Arc::new(app.server.base_url());

    let mut ids = Vec::new();
    for i in 0..200 {
        let created: Value = client
            .post(format!("{base}/api/v1/notebooks"))
            .bearer_auth(token.as_str())
            .json(&json!({"name": format!("Seed {i}"), "tags": ["bench"]}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    let ids = Arc::new(ids);

    let (c, b, t) = (client.clone(), Arc::clone(&base), Arc::clone(&token));
    load("GET /health", move |_| {
        let request = c.get(format!("{b}/health"));
        async move { request.send().await.unwrap().status().as_u16() }
    })
    .await
    .print();

    let (c, b, t2, ids2) = (client.clone(), Arc::clone(&base), Arc::clone(&t), Arc::clone(&ids));
    load("GET /api/v1/notebooks/{id}", move |i| {
        let request = c.get(format!("{b}/api/v1/notebooks/{}", ids2[i % ids2.len()])).bearer_auth(t2.as_str());
        async move { request.send().await.unwrap().status().as_u16() }
    })
    .await
    .print();

    let (c, b, t2) = (client.clone(), Arc::clone(&base), Arc::clone(&t));
    load("GET /api/v1/notebooks?limit=20", move |_| {
        let request = c.get(format!("{b}/api/v1/notebooks?limit=20")).bearer_auth(t2.as_str());
        async move { request.send().await.unwrap().status().as_u16() }
    })
    .await
    .print();

    let (c, b, t2) = (client.clone(), Arc::clone(&base), Arc::clone(&t));
    load("POST /api/v1/notebooks", move |i| {
        let request = c
            .post(format!("{b}/api/v1/notebooks"))
            .bearer_auth(t2.as_str())
            .json(&json!({"name": format!("Bench {i}")}));
        async move { request.send().await.unwrap().status().as_u16() }
    })
    .await
    .print();

    let (c, b, t2, ids2) = (client.clone(), Arc::clone(&base), Arc::clone(&t), Arc::clone(&ids));
    load("PUT /api/v1/notebooks/{id}", move |i| {
        let request = c
            .put(format!("{b}/api/v1/notebooks/{}", ids2[i % ids2.len()]))
            .bearer_auth(t2.as_str())
            .json(&json!({"description": format!("edit {i}")}));
        async move { request.send().await.unwrap().status().as_u16() }
    })
    .await
    .print();

    let (c, b) = (client.clone(), Arc::clone(&base));
    let (user, pass) = (Arc::new(username), Arc::new(password));
    load("POST /api/v1/auth/token (argon2id)", move |_| {
        let request = c.post(format!("{b}/api/v1/auth/token")).form(&[
            ("grant_type", "password"),
            ("username", user.as_str()),
            ("password", pass.as_str()),
        ]);
        async move { request.send().await.unwrap().status().as_u16() }
    })
    .await
    .print();

    app.shutdown().await;
}
