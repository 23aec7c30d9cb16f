//! The WebSocket benchmark (issue 25): `count` sockets on the upload feeds of
//! `notebooks` notebooks (`/api/v1/ws/notebooks/{id}/uploads`), spread evenly. It
//! reports the server's RSS per open socket, its CPU while the sockets are idle,
//! the latency from an upload request to its job reaching every socket following
//! that notebook, and the server's RSS after the sockets have closed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use futures::StreamExt as _;
use hyper::{Method, StatusCode};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use crate::client::Server;
use crate::workload;

/// What one run measured.
#[derive(Debug)]
pub struct SocketOutcome {
    pub sockets: usize,
    pub notebooks: usize,
    pub opened_in: Duration,
    pub rss_before_kib: Option<u64>,
    pub rss_open_kib: Option<u64>,
    pub rss_after_close_kib: Option<u64>,
    pub idle_seconds: f64,
    pub idle_cpu_seconds: Option<f64>,
    /// Microseconds from sending each upload to each following socket receiving its
    /// job; one entry per socket and upload.
    pub delivery_micros: Vec<u32>,
    /// Sockets that had not received an upload's job when the wait ended.
    pub missed: usize,
    /// Microseconds of each upload request itself.
    pub upload_micros: Vec<u32>,
}

/// A job id seen by a socket, and when.
struct Seen {
    socket: usize,
    job: String,
    at: Instant,
}

/// Opens the sockets, lets them idle, uploads, closes them and waits `settle`.
pub async fn run(
    server: &Server,
    pid: Option<u32>,
    count: usize,
    notebooks: usize,
    idle: Duration,
    uploads: usize,
    settle: Duration,
) -> anyhow::Result<SocketOutcome> {
    let notebooks = notebooks.clamp(1, count.max(1));
    let mut connection = server.connect().await?;
    let mut ids = Vec::with_capacity(notebooks);
    for index in 0..notebooks {
        ids.push(workload::create(&mut connection, &format!("sockets {index}")).await?);
    }
    let rss_before_kib = pid.and_then(rss_kib);

    // Open every socket, 64 handshakes at a time.
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel::<Seen>();
    let started = Instant::now();
    let ids = Arc::new(ids);
    let mut closers = Vec::with_capacity(count);
    let mut opening = futures::stream::iter((0..count).map(|socket| {
        let (server, ids, seen) = (server.clone(), Arc::clone(&ids), seen_tx.clone());
        async move { open(&server, &ids[socket % ids.len()], socket, seen).await }
    }))
    .buffer_unordered(64);
    while let Some(opened) = opening.next().await {
        closers.push(opened?);
    }
    drop(opening);
    let opened_in = started.elapsed();
    // Let the server settle after the handshakes, then measure it idle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    while seen_rx.try_recv().is_ok() {}
    let rss_open_kib = pid.and_then(rss_kib);
    let cpu_before = pid.and_then(workload::cpu_seconds);
    tokio::time::sleep(idle).await;
    let idle_cpu_seconds = match (cpu_before, pid.and_then(workload::cpu_seconds)) {
        (Some(before), Some(after)) => Some(after - before),
        _ => None,
    };
    while seen_rx.try_recv().is_ok() {}

    // Each upload, one at a time: until every socket of its notebook has its job.
    let followers = |notebook: usize| (0..count).filter(|socket| socket % notebooks == notebook).count();
    let mut delivery_micros = Vec::new();
    let mut upload_micros = Vec::new();
    let mut missed = 0;
    let mut early: Vec<Seen> = Vec::new();
    for upload in 0..uploads {
        let notebook = upload % notebooks;
        let sent = Instant::now();
        let request = connection
            .builder(Method::POST, "/api/v1/documents/upload")
            .header("content-type", format!("multipart/form-data; boundary={}", workload::UPLOAD_BOUNDARY))
            .body(http_body_util::Full::new(workload::upload_body(&ids[notebook], upload as u64)))?;
        let (status, body) = connection.send(request).await?;
        upload_micros.push(micros(sent.elapsed()));
        if status != StatusCode::ACCEPTED {
            bail!("upload: {status} {}", String::from_utf8_lossy(&body));
        }
        let job: serde_json::Value = serde_json::from_slice(&body)?;
        let job = job["job_id"].as_str().ok_or_else(|| anyhow!("no job_id in {job}"))?.to_owned();
        let expected = followers(notebook);
        let mut reached: HashMap<usize, Instant> = HashMap::with_capacity(expected);
        // Messages that arrived before the upload's response was read.
        for seen in early.drain(..).filter(|seen| seen.job == job) {
            reached.entry(seen.socket).or_insert(seen.at);
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while reached.len() < expected {
            match tokio::time::timeout_at(deadline, seen_rx.recv()).await {
                Ok(Some(seen)) if seen.job == job => {
                    reached.entry(seen.socket).or_insert(seen.at);
                }
                Ok(Some(other)) => early.push(other),
                Ok(None) | Err(_) => break,
            }
        }
        missed += expected - reached.len();
        delivery_micros.extend(reached.values().map(|at| micros(at.saturating_duration_since(sent))));
        // Later updates of this job (processing, completed) are not measured.
        early.retain(|seen| seen.job != job);
    }

    for closer in closers {
        let _ = closer.send(());
    }
    tokio::time::sleep(settle).await;
    Ok(SocketOutcome {
        sockets: count,
        notebooks,
        opened_in,
        rss_before_kib,
        rss_open_kib,
        rss_after_close_kib: pid.and_then(rss_kib),
        idle_seconds: idle.as_secs_f64(),
        idle_cpu_seconds,
        delivery_micros,
        missed,
        upload_micros,
    })
}

/// Opens one socket and spawns its reader; the returned sender closes it.
async fn open(
    server: &Server,
    notebook: &str,
    socket: usize,
    seen: mpsc::UnboundedSender<Seen>,
) -> anyhow::Result<tokio::sync::oneshot::Sender<()>> {
    let url = format!(
        "ws://{}/api/v1/ws/notebooks/{notebook}/uploads?access_token={}",
        server.authority(),
        server.token().unwrap_or_default()
    );
    let stream = TcpStream::connect(server.authority()).await.context("connecting a socket")?;
    stream.set_nodelay(true)?;
    let request = url.into_client_request()?;
    let (mut socket_stream, _) =
        tokio_tungstenite::client_async(request, stream).await.context("WebSocket handshake")?;
    let (close, mut closed) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = &mut closed => {
                    let _ = socket_stream.close(None).await;
                    return;
                }
                message = socket_stream.next() => match message {
                    Some(Ok(Message::Text(text))) => {
                        let at = Instant::now();
                        if let Some(job) = job_id_of(text.as_str()) {
                            let _ = seen.send(Seen { socket, job: job.to_owned(), at });
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => return,
                },
            }
        }
    });
    Ok(close)
}

/// The `job_id` of an update, found without parsing the whole JSON: with 10,000
/// sockets on one thread, parsing every message would make the generator, not the
/// server, the slow part of the delivery figure.
fn job_id_of(text: &str) -> Option<&str> {
    const KEY: &str = "\"job_id\":\"";
    let start = text.find(KEY)? + KEY.len();
    let length = text[start..].find('"')?;
    Some(&text[start..start + length])
}

fn rss_kib(pid: u32) -> Option<u64> {
    workload::status_kib(pid, "VmRSS")
}

fn micros(duration: Duration) -> u32 {
    u32::try_from(duration.as_micros()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::job_id_of;

    #[test]
    fn the_job_id_is_found_in_an_update() {
        assert_eq!(job_id_of(r#"{"status":"pending","job_id":"0193-ab","x":1}"#), Some("0193-ab"));
        assert_eq!(job_id_of(r#"{"status":"pending"}"#), None);
    }
}
