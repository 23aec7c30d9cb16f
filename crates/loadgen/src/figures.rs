//! One JSON line per figure on standard output.

use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::sockets::SocketOutcome;
use crate::workload::{self, Operation, Outcome};

#[derive(Debug)]
pub struct Report {
    labels: Map<String, Value>,
    pid: Option<u32>,
}

impl Report {
    pub fn new(labels: Vec<(String, String)>, pid: Option<u32>) -> Self {
        let labels = labels.into_iter().map(|(key, value)| (key, Value::String(value))).collect();
        Self { labels, pid }
    }

    /// Overall figures of a run, then one line per operation of a mixed run.
    pub fn workload(&self, workload: &str, clients: usize, outcome: &Outcome) {
        let seconds = outcome.elapsed.as_secs_f64();
        let mut all: Vec<u32> = outcome.latencies.iter().flat_map(|(_, latencies)| latencies.iter().copied()).collect();
        let mut line = self.line("workload");
        line.insert("workload".into(), json!(workload));
        line.insert("clients".into(), json!(clients));
        line.insert("seconds".into(), json!(seconds));
        line.insert("errors".into(), json!(outcome.errors));
        if let Some(error) = &outcome.first_error {
            line.insert("first_error".into(), json!(truncate(error)));
        }
        latency_fields(&mut line, &mut all, seconds);
        for (process, cpu) in &outcome.cpu_seconds {
            line.insert(format!("{process}_cpu_cores"), json!(round(cpu / seconds)));
            if !all.is_empty() {
                let per_request = cpu / all.len() as f64 * 1e6;
                line.insert(format!("{process}_cpu_us_per_req"), json!(round(per_request)));
            }
        }
        self.rss(&mut line);
        print(line);
        if outcome.latencies.len() > 1 {
            for operation in Operation::ALL {
                let Some((_, latencies)) = outcome.latencies.iter().find(|(seen, _)| *seen == operation) else {
                    continue;
                };
                let mut latencies = latencies.clone();
                let mut line = self.line("operation");
                line.insert("workload".into(), json!(workload));
                line.insert("operation".into(), json!(operation.name()));
                line.insert("clients".into(), json!(clients));
                latency_fields(&mut line, &mut latencies, seconds);
                print(line);
            }
        }
    }

    pub fn seeded(&self, size: usize, created: usize, took: Duration) {
        let mut line = self.line("seed");
        line.insert("notebooks".into(), json!(size));
        line.insert("created".into(), json!(created));
        line.insert("seconds".into(), json!(took.as_secs_f64()));
        line.insert("req_per_s".into(), json!(round(created as f64 / took.as_secs_f64())));
        self.rss(&mut line);
        print(line);
    }

    pub fn list(&self, notebooks: usize, outcome: &Outcome) {
        let mut latencies: Vec<u32> = outcome.latencies.iter().flat_map(|(_, l)| l.iter().copied()).collect();
        let mut line = self.line("list_latency");
        line.insert("notebooks".into(), json!(notebooks));
        latency_fields(&mut line, &mut latencies, outcome.elapsed.as_secs_f64());
        self.rss(&mut line);
        print(line);
    }

    /// The WebSocket benchmark's figures for one socket count.
    pub fn sockets(&self, outcome: &SocketOutcome) {
        let mut line = self.line("sockets");
        line.insert("sockets".into(), json!(outcome.sockets));
        line.insert("notebooks".into(), json!(outcome.notebooks));
        line.insert("open_seconds".into(), json!(round(outcome.opened_in.as_secs_f64())));
        let mib = |kib: Option<u64>| kib.map(|kib| round(kib as f64 / 1024.0));
        line.insert("server_rss_idle_mib".into(), json!(mib(outcome.rss_before_kib)));
        line.insert("server_rss_open_mib".into(), json!(mib(outcome.rss_open_kib)));
        line.insert("server_rss_after_close_mib".into(), json!(mib(outcome.rss_after_close_kib)));
        if let (Some(before), Some(open)) = (outcome.rss_before_kib, outcome.rss_open_kib) {
            let per_socket = open.saturating_sub(before) as f64 / outcome.sockets.max(1) as f64;
            line.insert("server_kib_per_socket".into(), json!(round(per_socket)));
        }
        if let Some(cpu) = outcome.idle_cpu_seconds {
            line.insert("server_idle_cpu_cores".into(), json!(round(cpu / outcome.idle_seconds)));
        }
        let mut delivery = outcome.delivery_micros.clone();
        delivery.sort_unstable();
        line.insert("deliveries".into(), json!(delivery.len()));
        line.insert("missed".into(), json!(outcome.missed));
        for (key, quantile) in [("delivery_p50_ms", 0.50), ("delivery_p99_ms", 0.99), ("delivery_max_ms", 1.0)] {
            line.insert(key.into(), json!(percentile(&delivery, quantile).map(round)));
        }
        let mut uploads = outcome.upload_micros.clone();
        uploads.sort_unstable();
        line.insert("upload_p50_ms".into(), json!(percentile(&uploads, 0.5).map(round)));
        let slowest: Vec<f64> =
            outcome.slowest_micros.iter().map(|&micros| round(f64::from(micros) / 1000.0)).collect();
        line.insert("delivery_max_per_upload_ms".into(), json!(slowest));
        let each: Vec<f64> = outcome.upload_micros.iter().map(|&micros| round(f64::from(micros) / 1000.0)).collect();
        line.insert("upload_ms_per_upload".into(), json!(each));
        // The server's own part: publication to socket write, without the upload
        // request before it or the generator's reading after it.
        let (p50, p99) = outcome.server_delivery_ms.unzip();
        line.insert("server_delivery_p50_ms".into(), json!(p50.map(round)));
        line.insert("server_delivery_p99_ms".into(), json!(p99.map(round)));
        print(line);
    }

    fn line(&self, figure: &str) -> Map<String, Value> {
        let mut line = Map::new();
        line.insert("figure".into(), json!(figure));
        line.extend(self.labels.clone());
        line
    }

    /// The server's resident memory now and at its peak, in MiB.
    fn rss(&self, line: &mut Map<String, Value>) {
        let Some(pid) = self.pid else { return };
        for (field, key) in [("VmRSS", "server_rss_mib"), ("VmHWM", "server_peak_rss_mib")] {
            if let Some(kib) = workload::status_kib(pid, field) {
                line.insert(key.into(), json!(round(kib as f64 / 1024.0)));
            }
        }
    }
}

fn latency_fields(line: &mut Map<String, Value>, latencies: &mut [u32], seconds: f64) {
    latencies.sort_unstable();
    line.insert("requests".into(), json!(latencies.len()));
    line.insert("req_per_s".into(), json!(round(latencies.len() as f64 / seconds)));
    for (key, quantile) in [("p50_ms", 0.50), ("p99_ms", 0.99), ("p999_ms", 0.999), ("max_ms", 1.0)] {
        line.insert(key.into(), json!(percentile(latencies, quantile).map(round)));
    }
}

/// The nearest-rank quantile, in milliseconds.
fn percentile(sorted: &[u32], quantile: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((sorted.len() as f64 * quantile).ceil() as usize).clamp(1, sorted.len());
    Some(f64::from(sorted[rank - 1]) / 1000.0)
}

fn round(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

fn truncate(text: &str) -> String {
    text.chars().take(300).collect()
}

fn print(line: Map<String, Value>) {
    println!("{}", Value::Object(line));
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn nearest_rank_percentiles() {
        let sorted: Vec<u32> = (1..=1000).map(|ms| ms * 1000).collect();
        assert_eq!(percentile(&sorted, 0.50), Some(500.0));
        assert_eq!(percentile(&sorted, 0.99), Some(990.0));
        assert_eq!(percentile(&sorted, 0.999), Some(999.0));
        assert_eq!(percentile(&sorted, 1.0), Some(1000.0));
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(percentile(&[7000], 0.999), Some(7.0));
    }
}
