//! The operations, the fixture they act on, and the closed loop that runs them.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, StatusCode};
use rand::Rng;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use serde_json::json;

use crate::client::{Connection, Server};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `GET /notebooks/{id}` of one of the fixture's notebooks.
    Get,
    /// The first page (20) of `GET /notebooks`.
    List,
    /// `POST /notebooks`.
    Create,
    /// `PUT /notebooks/{id}` of the client's own notebook (a new description).
    Update,
    /// `POST /documents/upload` of a 1 KiB text file into the client's notebook.
    Upload,
}

impl Operation {
    pub const ALL: [Operation; 5] =
        [Operation::Get, Operation::List, Operation::Create, Operation::Update, Operation::Upload];

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|operation| operation.name() == text)
    }

    pub fn name(self) -> &'static str {
        match self {
            Operation::Get => "get",
            Operation::List => "list",
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Upload => "upload",
        }
    }
}

/// The mixed workload's weights.
pub const MIXED: [(Operation, u32); 5] = [
    (Operation::Get, 40),
    (Operation::List, 20),
    (Operation::Create, 15),
    (Operation::Update, 15),
    (Operation::Upload, 10),
];

/// Notebooks made before the load: 100 to read, and one per client to update and
/// upload into (so that clients do not queue on one notebook's lock).
#[derive(Debug)]
pub struct Fixture {
    shared: Vec<String>,
    per_client: Vec<String>,
}

const SHARED_NOTEBOOKS: usize = 100;

impl Fixture {
    pub async fn prepare(server: &Server, clients: usize) -> anyhow::Result<Self> {
        let mut connection = server.connect().await?;
        let mut shared = Vec::with_capacity(SHARED_NOTEBOOKS);
        for index in 0..SHARED_NOTEBOOKS {
            shared.push(create(&mut connection, &format!("fixture {index}")).await?);
        }
        let mut per_client = Vec::with_capacity(clients);
        for index in 0..clients {
            per_client.push(create(&mut connection, &format!("client {index}")).await?);
        }
        Ok(Self { shared, per_client })
    }
}

pub(crate) async fn create(connection: &mut Connection, name: &str) -> anyhow::Result<String> {
    let (status, body) = connection.json(Method::POST, "/api/v1/notebooks", &json!({ "name": name })).await?;
    if status != StatusCode::CREATED {
        bail!("creating a notebook: {status} {}", String::from_utf8_lossy(&body));
    }
    let body: serde_json::Value = serde_json::from_slice(&body)?;
    body["id"].as_str().map(str::to_owned).ok_or_else(|| anyhow!("no id in {body}"))
}

/// Latencies in microseconds, per operation, and what failed.
#[derive(Debug, Default)]
pub struct Outcome {
    pub latencies: Vec<(Operation, Vec<u32>)>,
    pub errors: u64,
    pub first_error: Option<String>,
    pub elapsed: Duration,
    /// CPU seconds each watched process used during the measured part.
    pub cpu_seconds: Vec<(String, f64)>,
}

impl Outcome {
    fn record(&mut self, operation: Operation, micros: u32) {
        match self.latencies.iter_mut().find(|(seen, _)| *seen == operation) {
            Some((_, latencies)) => latencies.push(micros),
            None => self.latencies.push((operation, vec![micros])),
        }
    }

    fn merge(&mut self, other: Outcome) {
        for (operation, latencies) in other.latencies {
            match self.latencies.iter_mut().find(|(seen, _)| *seen == operation) {
                Some((_, mine)) => mine.extend(latencies),
                None => self.latencies.push((operation, latencies)),
            }
        }
        self.errors += other.errors;
        self.first_error = self.first_error.take().or(other.first_error);
    }
}

pub(crate) const UPLOAD_BOUNDARY: &str = "aether-load-boundary";

pub(crate) fn upload_body(notebook: &str, serial: u64) -> Bytes {
    let line = format!("Load test document {serial}.\n");
    let text = line.repeat(1024 / line.len() + 1);
    Bytes::from(format!(
        "--{UPLOAD_BOUNDARY}\r\ncontent-disposition: form-data; name=\"notebook_id\"\r\n\r\n{notebook}\r\n\
         --{UPLOAD_BOUNDARY}\r\ncontent-disposition: form-data; name=\"file\"; filename=\"load-{serial}.txt\"\r\n\
         content-type: text/plain\r\n\r\n{}\r\n--{UPLOAD_BOUNDARY}--\r\n",
        &text[..1024]
    ))
}

/// One request of `operation`; `Ok(true)` when the server answered as expected.
async fn perform(
    connection: &mut Connection,
    fixture: &Fixture,
    client: usize,
    operation: Operation,
    random: &mut SmallRng,
    serial: u64,
) -> anyhow::Result<(StatusCode, Bytes, StatusCode)> {
    let own = &fixture.per_client[client];
    Ok(match operation {
        Operation::Get => {
            let id = &fixture.shared[random.random_range(0..fixture.shared.len())];
            let (status, body) = connection.get(&format!("/api/v1/notebooks/{id}")).await?;
            (status, body, StatusCode::OK)
        }
        Operation::List => {
            let (status, body) = connection.get("/api/v1/notebooks?limit=20").await?;
            (status, body, StatusCode::OK)
        }
        Operation::Create => {
            let (status, body) = connection
                .json(Method::POST, "/api/v1/notebooks", &json!({ "name": format!("load {serial}") }))
                .await?;
            (status, body, StatusCode::CREATED)
        }
        Operation::Update => {
            let body = json!({ "description": format!("updated by client {client}, request {serial}") });
            let (status, body) = connection.json(Method::PUT, &format!("/api/v1/notebooks/{own}"), &body).await?;
            (status, body, StatusCode::OK)
        }
        Operation::Upload => {
            let request = connection
                .builder(Method::POST, "/api/v1/documents/upload")
                .header("content-type", format!("multipart/form-data; boundary={UPLOAD_BOUNDARY}"))
                .body(Full::new(upload_body(own, serial)))?;
            let (status, body) = connection.send(request).await?;
            (status, body, StatusCode::ACCEPTED)
        }
    })
}

/// Runs `clients` closed loops for `warmup` then `measured`, each picking its next
/// operation by weight, and returns the measured part.
pub async fn closed_loop(
    server: &Server,
    fixture: &Fixture,
    operations: &[(Operation, u32)],
    watched: &[(String, u32)],
    clients: usize,
    warmup: Duration,
    measured: Duration,
) -> anyhow::Result<Outcome> {
    let total_weight: u32 = operations.iter().map(|(_, weight)| weight).sum();
    let started = Instant::now();
    let measuring_from = started + warmup;
    let until = measuring_from + measured;
    let outcome = Rc::new(RefCell::new(Outcome::default()));
    let mut loops = Vec::with_capacity(clients);
    for client in 0..clients {
        let mut connection = server.connect().await?;
        let outcome = Rc::clone(&outcome);
        loops.push(async move {
            let mut random = SmallRng::seed_from_u64(client as u64);
            let mut mine = Outcome::default();
            let mut serial = client as u64 * 1_000_000_000;
            loop {
                let sent = Instant::now();
                if sent >= until {
                    break;
                }
                let mut pick = random.random_range(0..total_weight);
                let operation = operations
                    .iter()
                    .find(|(_, weight)| {
                        let hit = pick < *weight;
                        pick = pick.saturating_sub(*weight);
                        hit
                    })
                    .map_or(Operation::Get, |(operation, _)| *operation);
                serial += 1;
                let result = perform(&mut connection, fixture, client, operation, &mut random, serial).await;
                if sent < measuring_from {
                    continue;
                }
                let micros = u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX);
                match result {
                    Ok((status, _, expected)) if status == expected => mine.record(operation, micros),
                    Ok((status, body, _)) => {
                        mine.errors += 1;
                        mine.first_error.get_or_insert_with(|| {
                            format!("{} {status}: {}", operation.name(), String::from_utf8_lossy(&body))
                        });
                    }
                    Err(error) => {
                        mine.errors += 1;
                        mine.first_error.get_or_insert_with(|| format!("{}: {error:#}", operation.name()));
                    }
                }
            }
            outcome.borrow_mut().merge(mine);
        });
    }
    // The watched processes' CPU time at the start and the end of the measured part.
    let cpu = async {
        tokio::time::sleep_until(measuring_from.into()).await;
        let before: Vec<Option<f64>> = watched.iter().map(|(_, pid)| cpu_seconds(*pid)).collect();
        tokio::time::sleep_until(until.into()).await;
        let after = watched.iter().map(|(_, pid)| cpu_seconds(*pid));
        watched
            .iter()
            .zip(before.into_iter().zip(after))
            .filter_map(|((name, _), (before, after))| Some((name.clone(), after? - before?)))
            .collect::<Vec<_>>()
    };
    // Polled together in this task: the loops borrow the fixture, so they are not
    // 'static tasks, and one thread drives them all anyway.
    let (_, cpu_seconds) = futures::join!(futures::future::join_all(loops), cpu);
    let mut outcome = Rc::try_unwrap(outcome).map_err(|_| anyhow!("a client loop is still running"))?.into_inner();
    outcome.elapsed = measured;
    outcome.cpu_seconds = cpu_seconds;
    Ok(outcome)
}

/// The CPU time (user and system) a process has used, from `/proc/<pid>/stat`.
pub(crate) fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces:
    // utime and stime are the 14th and 15th fields of the line, in clock ticks.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on every Linux this runs on.
    Some(ticks as f64 / 100.0)
}

/// A memory figure of a process (`VmRSS`, `VmHWM`) from `/proc/<pid>/status`, in KiB.
pub(crate) fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|row| row.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
}

/// How many notebooks the account owns now (walks its list by cursor).
pub async fn count_owned(server: &Server) -> anyhow::Result<usize> {
    let mut connection = server.connect().await?;
    let mut count = 0;
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/api/v1/notebooks?limit=100&cursor={cursor}"),
            None => "/api/v1/notebooks?limit=100".to_owned(),
        };
        let (status, body) = connection.get(&path).await?;
        if status != StatusCode::OK {
            bail!("listing notebooks: {status} {}", String::from_utf8_lossy(&body));
        }
        let page: serde_json::Value = serde_json::from_slice(&body)?;
        count += page["items"].as_array().map_or(0, Vec::len);
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return Ok(count),
        }
    }
}

/// Creates `count` notebooks from `clients` connections.
pub async fn create_notebooks(server: &Server, count: usize, clients: usize) -> anyhow::Result<()> {
    let next = Rc::new(RefCell::new(0usize));
    let mut loops = Vec::with_capacity(clients);
    for _ in 0..clients.max(1) {
        let mut connection = server.connect().await?;
        let next = Rc::clone(&next);
        loops.push(async move {
            loop {
                let index = {
                    let mut next = next.borrow_mut();
                    if *next >= count {
                        return Ok::<(), anyhow::Error>(());
                    }
                    *next += 1;
                    *next
                };
                create(&mut connection, &format!("seeded {index}")).await.context("seeding")?;
            }
        });
    }
    for result in futures::future::join_all(loops).await {
        result?;
    }
    Ok(())
}

/// The latency of the first page of the account's notebooks, newest and oldest first.
pub async fn list_latency(server: &Server, samples: usize) -> anyhow::Result<Outcome> {
    let mut connection = server.connect().await?;
    let mut outcome = Outcome::default();
    let started = Instant::now();
    for sample in 0..samples {
        let path =
            if sample % 2 == 0 { "/api/v1/notebooks?limit=20" } else { "/api/v1/notebooks?limit=20&sort=oldest" };
        let sent = Instant::now();
        let (status, body) = connection.get(path).await?;
        if status != StatusCode::OK {
            bail!("listing notebooks: {status} {}", String::from_utf8_lossy(&body));
        }
        outcome.record(Operation::List, u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX));
    }
    outcome.elapsed = started.elapsed();
    Ok(outcome)
}
