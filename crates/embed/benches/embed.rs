//! Figures for the built-in embedder (never pass/fail): load time, one sentence's
//! latency, and the throughput on ~200-token chunks at batch sizes 1 and 4, with the
//! process's RSS. The model comes from AETHER_MODELS_DIR (default
//! ~/.cache/aether/models, where scripts/models installs it).
//!
//!   cargo bench -p aether-embed --bench embed
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use aether_domain::embedding::EmbedBatch;
use aether_embed::MiniLmEmbedder;

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// A chunk of about 200 tokens, different for each `seed`.
fn chunk(seed: usize) -> String {
    let words: Vec<&str> = "contract revenue quarter the of policy customer data report and shall payment \
                            agreement within days notice party terms service invoice budget"
        .split_whitespace()
        .collect();
    (0..170).map(|i| words[(i * 7 + seed * 13 + i * i) % words.len()]).collect::<Vec<_>>().join(" ")
}

fn main() {
    let dir = std::env::var_os("AETHER_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/aether/models"));
    let started = Instant::now();
    let embedder = match MiniLmEmbedder::load(&dir) {
        Ok(embedder) => embedder,
        Err(error) => {
            println!("NOT RUN: {error}");
            return;
        }
    };
    println!("machine: {} cores; model load {:.0} ms, RSS {:.0} MiB", cores(), ms(started.elapsed()), rss_mib());

    let sentence = EmbedBatch::new(vec!["A man is eating a piece of bread.".to_owned()]).unwrap();
    let mut times: Vec<Duration> = (0..50)
        .map(|_| {
            let started = Instant::now();
            embedder.embed_blocking(&sentence).unwrap();
            started.elapsed()
        })
        .collect();
    times.sort();
    println!("one sentence: p50 {:.1} ms, p99 {:.1} ms", ms(times[25]), ms(times[49]));

    for batch_size in [1usize, 4] {
        let total = 24;
        let started = Instant::now();
        for first in (0..total).step_by(batch_size) {
            let batch = EmbedBatch::new((first..first + batch_size).map(chunk).collect()).unwrap();
            embedder.embed_blocking(&batch).unwrap();
        }
        let took = started.elapsed().as_secs_f64();
        println!(
            "200-token chunks, batch {batch_size}: {:.1} chunks/s ({total} chunks in {took:.1} s), RSS {:.0} MiB",
            total as f64 / took,
            rss_mib()
        );
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}
