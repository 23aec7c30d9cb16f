//! `aether-load`: the load generator behind `scripts/bench --load`. Closed-loop
//! clients, each on its own keep-alive HTTP/1.1 connection (hyper's client
//! connection, no pool, so the generator costs as little CPU as it can on a machine
//! it shares with the server), printing one JSON line per figure so that runs can
//! be compared with `jq`.
//!
//! ```text
//! aether-load --url http://127.0.0.1:8080 --password … --pid 1234 --label store=sqlite \
//!     mixed --clients 1,16,64 --seconds 10
//! aether-load … lists --sizes 10,1000,100000
//! ```
#![forbid(unsafe_code)]
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod client;
mod figures;
mod sockets;
mod workload;

use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use crate::client::Server;
use crate::workload::Operation;

#[derive(Debug, Parser)]
#[command(about = "Closed-loop HTTP load against an Aether server; one JSON line per figure")]
struct Cli {
    /// The server's base URL (`http://host:port`; plain HTTP only).
    #[arg(long)]
    url: String,
    /// The account the load runs as (the password grant of /api/v1/auth/token).
    #[arg(long, default_value = "admin")]
    username: String,
    #[arg(long, env = "AETHER_LOAD_PASSWORD")]
    password: String,
    /// The server's process id: its RSS (VmRSS, VmHWM) goes into every figure.
    #[arg(long)]
    pid: Option<u32>,
    /// Other processes whose CPU time per request to report, as `name=pid`
    /// (`neo4j=1234`, `redis=5678`); the server's is reported with `--pid`.
    #[arg(long = "process", value_parser = parse_process)]
    processes: Vec<(String, u32)>,
    /// `key=value` pairs copied into every JSON line (store, redis, build …).
    #[arg(long = "label", value_parser = parse_label)]
    labels: Vec<(String, String)>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs one workload at each client count: `mixed` (40% get, 20% list, 15%
    /// create, 15% update, 10% upload of a 1 KiB text file) or a single operation.
    Run {
        #[arg(long, default_value = "mixed")]
        workload: String,
        #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
        clients: Vec<usize>,
        /// Measured seconds per client count, after `--warmup` unmeasured ones.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, default_value_t = 2)]
        warmup: u64,
    },
    /// The latency of the first page of `GET /notebooks`, newest and oldest first,
    /// for the account owning each of `sizes` notebooks (ascending): the notebooks
    /// are created through the API, topping the same account up from one size to
    /// the next.
    Lists {
        #[arg(long, value_delimiter = ',', default_value = "10,1000,100000")]
        sizes: Vec<usize>,
        /// Requests measured per size (one client).
        #[arg(long, default_value_t = 500)]
        samples: usize,
        /// Clients creating notebooks while topping up.
        #[arg(long, default_value_t = 16)]
        seed_clients: usize,
    },
    /// WebSockets on the upload feeds of `notebooks` notebooks: for each count, the
    /// server's RSS per socket, its CPU while they idle, the delay from an upload to
    /// its job reaching every socket of the notebook, and its RSS `settle` seconds
    /// after they closed.
    Sockets {
        #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
        counts: Vec<usize>,
        #[arg(long, default_value_t = 1)]
        notebooks: usize,
        #[arg(long, default_value_t = 10)]
        idle_seconds: u64,
        #[arg(long, default_value_t = 5)]
        uploads: usize,
        #[arg(long, default_value_t = 60)]
        settle_seconds: u64,
        /// Open the sockets on this replica of `--url` (the same store and Redis)
        /// instead: uploads reach them through the fan-out. `--pid` is then this
        /// replica's.
        #[arg(long)]
        socket_url: Option<String>,
    },
}

fn parse_process(text: &str) -> Result<(String, u32), String> {
    let (name, pid) = parse_label(text)?;
    Ok((name, pid.parse().map_err(|_| format!("`{pid}` is not a process id"))?))
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    let (key, value) = text.split_once('=').ok_or_else(|| format!("`{text}` is not key=value"))?;
    Ok((key.to_owned(), value.to_owned()))
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // One runtime thread: on a 2-core machine the generator must leave the other
    // core to the server; one thread drives thousands of requests per second.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let server = Server::parse(&cli.url)?;
    let token = server.password_token(&cli.username, &cli.password).await.context("signing in")?;
    let server = server.with_token(token);
    let report = figures::Report::new(cli.labels, cli.pid);
    let mut watched: Vec<(String, u32)> = cli.pid.map(|pid| ("server".to_owned(), pid)).into_iter().collect();
    watched.extend(cli.processes);
    watched.push(("loadgen".to_owned(), std::process::id()));
    match cli.command {
        Command::Run { workload, clients, seconds, warmup } => {
            let operations = match workload.as_str() {
                "mixed" => workload::MIXED.to_vec(),
                single => match Operation::parse(single) {
                    Some(operation) => vec![(operation, 1)],
                    None => bail!("unknown workload `{single}` (mixed, get, list, create, update, upload)"),
                },
            };
            let fixture = workload::Fixture::prepare(&server, clients.iter().copied().max().unwrap_or(1)).await?;
            for count in clients {
                let outcome = workload::closed_loop(
                    &server,
                    &fixture,
                    &operations,
                    &watched,
                    count,
                    Duration::from_secs(warmup),
                    Duration::from_secs(seconds),
                )
                .await?;
                report.workload(&workload, count, &outcome);
            }
        }
        Command::Sockets { counts, notebooks, idle_seconds, uploads, settle_seconds, socket_url } => {
            let sockets_on = match socket_url {
                Some(url) => Server::parse(&url)?.with_token(server.token().unwrap_or_default().to_owned()),
                None => server.clone(),
            };
            for count in counts {
                let plan = sockets::Plan {
                    count,
                    notebooks,
                    idle: Duration::from_secs(idle_seconds),
                    uploads,
                    settle: Duration::from_secs(settle_seconds),
                };
                let outcome = sockets::run(&server, &sockets_on, cli.pid, &plan).await?;
                report.sockets(&outcome);
            }
        }
        Command::Lists { sizes, samples, seed_clients } => {
            let mut owned = workload::count_owned(&server).await?;
            for size in sizes {
                if owned < size {
                    let started = std::time::Instant::now();
                    workload::create_notebooks(&server, size - owned, seed_clients).await?;
                    report.seeded(size, size - owned, started.elapsed());
                    owned = size;
                } else if owned > size {
                    eprintln!("the account owns {owned} notebooks already, more than {size}: measuring at {owned}");
                }
                let outcome = workload::list_latency(&server, samples).await?;
                report.list(owned.max(size), &outcome);
            }
        }
    }
    Ok(())
}
