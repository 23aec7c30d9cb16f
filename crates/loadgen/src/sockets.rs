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
    /// Per upload, in order, the microseconds until its last socket had it: shows
    /// whether a high percentile comes from one slow upload or from all of them.
    pub slowest_micros: Vec<u32>,
    /// The server's own delivery latency over the uploads (`aether_live_delivery_seconds`:
    /// from publishing a change to writing it on a socket), p50 and p99 in
    /// milliseconds, interpolated within its histogram's buckets.
    pub server_delivery_ms: Option<(f64, f64)>,
}

/// A job id seen by a socket, and when.
struct Seen {
    socket: usize,
    job: String,
    at: Instant,
}

/// One run of the benchmark: `count` sockets spread over `notebooks` notebooks, idle
/// for `idle`, then `uploads` uploads, then closed and given `settle` to give memory back.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub count: usize,
    pub notebooks: usize,
    pub idle: Duration,
    pub uploads: usize,
    pub settle: Duration,
}

/// Opens the sockets on `sockets_on` (`server`, or another replica of it), lets them
/// idle, uploads to `server`, closes them and waits `settle`. `pid` is the process
/// the sockets are on.
pub async fn run(server: &Server, sockets_on: &Server, pid: Option<u32>, plan: &Plan) -> anyhow::Result<SocketOutcome> {
    let Plan { count, notebooks, idle, uploads, settle } = *plan;
    let notebooks = notebooks.clamp(1, count.max(1));
    let mut connection = server.connect().await?;
    let mut ids = Vec::with_capacity(notebooks);
    for index in 0..notebooks {
        ids.push(workload::create(&mut connection, &format!("sockets {index}")).await?);
    }
    // One upload first, followed by one socket and processed before anything is
    // measured: what the first document's processing and the first delivery set up
    // once (extractors, detectors, pools, the store's plans for the queries a replica
    // runs on a notice) belongs to the server's idle footprint and start-up, not to
    // the sockets.
    let (warm_tx, mut warm_rx) = mpsc::unbounded_channel::<Seen>();
    let warm_socket = open(sockets_on, &ids[0], 0, warm_tx).await?;
    upload_one(&mut connection, &ids[0], u64::MAX).await?;
    let _ = tokio::time::timeout(Duration::from_secs(10), warm_rx.recv()).await;
    let _ = warm_socket.send(());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_before_kib = pid.and_then(rss_kib);

    // Open every socket, 64 handshakes at a time.
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel::<Seen>();
    let started = Instant::now();
    let ids = Arc::new(ids);
    let mut closers = Vec::with_capacity(count);
    let mut opening = futures::stream::iter((0..count).map(|socket| {
        let (server, ids, seen) = (sockets_on.clone(), Arc::clone(&ids), seen_tx.clone());
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

    let mut metrics_connection = sockets_on.connect().await?;
    let histogram_before = delivery_histogram(&mut metrics_connection).await?;

    // Each upload, one at a time: until every socket of its notebook has its job.
    let followers = |notebook: usize| (0..count).filter(|socket| socket % notebooks == notebook).count();
    let mut delivery_micros = Vec::new();
    let mut slowest_micros = Vec::new();
    let mut upload_micros = Vec::new();
    let mut missed = 0;
    let mut early: Vec<Seen> = Vec::new();
    for upload in 0..uploads {
        let notebook = upload % notebooks;
        // Each upload into a quiet server: the later updates of the previous job
        // (processing, completed) have reached every socket, so the figure is one
        // change's delivery, not the queue behind it.
        while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(500), seen_rx.recv()).await {}
        early.clear();
        let sent = Instant::now();
        let job = upload_one(&mut connection, &ids[notebook], upload as u64).await?;
        upload_micros.push(micros(sent.elapsed()));
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
        let delivered: Vec<u32> = reached.values().map(|at| micros(at.saturating_duration_since(sent))).collect();
        slowest_micros.push(delivered.iter().copied().max().unwrap_or_default());
        delivery_micros.extend(delivered);
        // Later updates of this job (processing, completed) are not measured.
        early.retain(|seen| seen.job != job);
    }

    // The later updates of the last job, then the server's own figure.
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(500), seen_rx.recv()).await {}
    let histogram_after = delivery_histogram(&mut metrics_connection).await?;
    let server_delivery_ms = histogram_quantiles(&histogram_before, &histogram_after);

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
        slowest_micros,
        server_delivery_ms,
    })
}

/// The cumulative buckets of `aether_live_delivery_seconds` on the server now:
/// (upper bound in seconds, count).
async fn delivery_histogram(connection: &mut crate::client::Connection) -> anyhow::Result<Vec<(f64, f64)>> {
    let (status, body) = connection.get("/metrics").await?;
    if status != StatusCode::OK {
        bail!("/metrics: {status}");
    }
    let text = String::from_utf8_lossy(&body);
    let mut buckets: Vec<(f64, f64)> = text
        .lines()
        .filter_map(|line| line.strip_prefix("aether_live_delivery_seconds_bucket{le=\""))
        .filter_map(|rest| {
            let (bound, count) = rest.split_once("\"} ")?;
            let bound = if bound == "+Inf" { f64::INFINITY } else { bound.parse().ok()? };
            Some((bound, count.trim().parse().ok()?))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok(buckets)
}

/// p50 and p99 in milliseconds of what was recorded between two readings of a
/// histogram, interpolated linearly within the bucket each falls in.
fn histogram_quantiles(before: &[(f64, f64)], after: &[(f64, f64)]) -> Option<(f64, f64)> {
    let counts: Vec<(f64, f64)> = after
        .iter()
        .map(|(bound, count)| {
            let earlier = before.iter().find(|(b, _)| b == bound).map_or(0.0, |(_, c)| *c);
            (*bound, count - earlier)
        })
        .collect();
    let total = counts.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let quantile = |q: f64| {
        let rank = q * total;
        let mut lower = (0.0, 0.0);
        for &(bound, count) in &counts {
            if count >= rank {
                if !bound.is_finite() {
                    return lower.0 * 1000.0;
                }
                let share = if count > lower.1 { (rank - lower.1) / (count - lower.1) } else { 1.0 };
                return (lower.0 + (bound - lower.0) * share) * 1000.0;
            }
            lower = (bound, count);
        }
        lower.0 * 1000.0
    };
    Some((quantile(0.5), quantile(0.99)))
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

/// Uploads a small file to the notebook; its job id.
async fn upload_one(connection: &mut crate::client::Connection, notebook: &str, serial: u64) -> anyhow::Result<String> {
    let request = connection
        .builder(Method::POST, "/api/v1/documents/upload")
        .header("content-type", format!("multipart/form-data; boundary={}", workload::UPLOAD_BOUNDARY))
        .body(http_body_util::Full::new(workload::upload_body(notebook, serial)))?;
    let (status, body) = connection.send(request).await?;
    if status != StatusCode::ACCEPTED {
        bail!("upload: {status} {}", String::from_utf8_lossy(&body));
    }
    let job: serde_json::Value = serde_json::from_slice(&body)?;
    Ok(job["job_id"].as_str().ok_or_else(|| anyhow!("no job_id in {job}"))?.to_owned())
}

#[cfg(test)]
mod tests {
    use super::{histogram_quantiles, job_id_of};

    #[test]
    fn quantiles_come_from_the_difference_of_two_readings() {
        let before = [(0.01, 50.0), (0.1, 100.0), (f64::INFINITY, 100.0)];
        // 100 more: 10 under 10 ms, 80 between 10 and 100 ms, 10 beyond.
        let after = [(0.01, 60.0), (0.1, 190.0), (f64::INFINITY, 200.0)];
        let (p50, p99) = histogram_quantiles(&before, &after).unwrap();
        assert!((p50 - 55.0).abs() < 1e-9, "{p50}");
        assert!((p99 - 100.0).abs() < 1e-9, "the last finite bound: {p99}");
        assert_eq!(histogram_quantiles(&after, &after), None, "nothing recorded in between");
    }

    #[test]
    fn the_job_id_is_found_in_an_update() {
        assert_eq!(job_id_of(r#"{"status":"pending","job_id":"0193-ab","x":1}"#), Some("0193-ab"));
        assert_eq!(job_id_of(r#"{"status":"pending"}"#), None);
    }
}
