//! The `aether` command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use aether::config::{Config, Overrides};
use aether::telemetry::Telemetry;
use aether::{RunningServer, Runtime};
use aether_domain::user::{Email, Password, Role, Username};
use aether_services::accounts::AccountRequest;
use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tokio::sync::watch;

/// jemalloc, with its background threads on: memory freed when many sockets or
/// requests end is handed back to the system after a few seconds of decay, even
/// while the server is idle. glibc's allocator kept it (an RSS that never came down
/// after 10,000 sockets closed, `notes/issue-25`); mimalloc returned only part.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Debug, Parser)]
#[command(name = "aether", version, about = "The Aether document platform backend")]
struct Cli {
    /// A TOML configuration file (keys as in the README's configuration table).
    #[arg(long, global = true, env = "AETHER_CONFIG")]
    config: Option<PathBuf>,
    /// Where embedded data lives (SQLite file, keys, objects).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API (and, unless run_workers is false, the background workers).
    Serve {
        /// Address to listen on, e.g. 127.0.0.1:8080 (port 0 picks a free port).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Run only the background workers.
    Worker,
    /// Apply pending schema migrations to the configured store and exit.
    Migrate,
    /// Print the effective configuration, secrets redacted.
    Config,
    /// Administrative tasks.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Print the version.
    Version,
    /// Process one file in a resource-limited process (run by the workers).
    #[command(hide = true)]
    Extract {
        #[arg(long)]
        input: PathBuf,
        /// The processing request, as JSON.
        #[arg(long)]
        request: String,
        #[arg(long)]
        memory_bytes: u64,
        #[arg(long)]
        cpu_seconds: u64,
        /// The programs found at start-up (OCR, audio and video), as JSON; absent: none.
        #[arg(long)]
        tools: Option<String>,
        /// How long those programs may take, from the start of this process.
        #[arg(long, default_value_t = 45_000)]
        tools_millis: u64,
    },
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Create a local account.
    CreateUser {
        #[arg(long)]
        username: String,
        #[arg(long)]
        password: String,
        /// A realm role (repeatable): aether-admin, aether-user, aether-viewer,
        /// notebook-admin, compliance-officer. Defaults to aether-user.
        #[arg(long = "role")]
        roles: Vec<String>,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        full_name: Option<String>,
    },
    /// Rebuild the search index of every document from the store (after an upgrade
    /// that changes how documents are indexed). Safe while the server runs.
    Reindex,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve { listen: None });
    if matches!(command, Command::Version) {
        println!("aether {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    if let Command::Extract { input, request, memory_bytes, cpu_seconds, tools, tools_millis } = &command {
        return match aether::processor::run_extract(
            input,
            request,
            *memory_bytes,
            *cpu_seconds,
            tools.as_deref(),
            *tools_millis,
        ) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("extract: {error:#}");
                ExitCode::FAILURE
            }
        };
    }
    let listen = match &command {
        Command::Serve { listen } => listen.clone(),
        _ => None,
    };
    let config = match Config::load(cli.config.as_deref(), &Overrides { listen, data_dir: cli.data_dir }) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("aether: {error}");
            return ExitCode::from(2);
        }
    };
    if matches!(command, Command::Config) {
        print!("{}", config.to_redacted_toml());
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("aether: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    // In the runtime's context: the OTLP exporter's gRPC channel lives on it.
    let telemetry = {
        let _context = runtime.enter();
        Telemetry::init(&config)
    };
    let telemetry = match telemetry {
        Ok(telemetry) => telemetry,
        Err(error) => {
            eprintln!("aether: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(run(command, config));
    if let Err(error) = &outcome {
        tracing::error!(error = format!("{error:#}"), "aether stopped with an error");
    }
    // After the commands' tasks, before the runtime goes: the last spans still need it.
    telemetry.shutdown();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("aether: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve { .. } => serve(config).await,
        Command::Worker => {
            let runtime = Runtime::build(config).await?;
            let (stop, stopped) = watch::channel(false);
            tracing::info!(store = runtime.store.backend_name(), "aether worker running");
            let workers = tokio::spawn(async move { runtime.run_workers(stopped).await });
            shutdown_signal().await;
            let _ = stop.send(true);
            workers.await.context("worker task failed")
        }
        Command::Migrate => {
            let store = aether::open_store(&config, true).await?;
            println!("{}: schema is up to date", store.backend_name());
            Ok(())
        }
        Command::Admin(AdminCommand::CreateUser { username, password, roles, email, full_name }) => {
            let request = AccountRequest {
                username: Username::parse(&username)?,
                password: Password::parse(&password)?,
                email: email.as_deref().map(Email::parse).transpose()?,
                full_name,
                roles: roles.iter().map(|role| role.parse::<Role>()).collect::<Result<_, _>>()?,
            };
            let runtime = Runtime::build(config).await?;
            let user = runtime.accounts.create_account(request).await.map_err(|error| match error {
                aether_services::ServiceError::Conflict(field) => anyhow::anyhow!("that {field} is already taken"),
                other => other.into(),
            })?;
            println!("created user {} ({})", user.username, user.id);
            Ok(())
        }
        Command::Admin(AdminCommand::Reindex) => {
            let runtime = Runtime::build(config).await?;
            let started = std::time::Instant::now();
            let (documents, chunks) = runtime.search.reindex(print_progress).await?;
            eprintln!();
            println!("reindexed {documents} documents ({chunks} chunks) in {:.1} s", started.elapsed().as_secs_f64());
            Ok(())
        }
        Command::Config | Command::Version | Command::Extract { .. } => Ok(()),
    }
}

/// A progress bar on standard error: `[#######.............]  350/1000 documents, 2,104 chunks`.
fn print_progress(done: u64, total: u64, chunks: u64) {
    const WIDTH: u64 = 30;
    let filled = (done.min(total) * WIDTH).checked_div(total).unwrap_or(WIDTH);
    let bar: String = (0..WIDTH).map(|i| if i < filled { '#' } else { '.' }).collect();
    eprint!("\r[{bar}] {done:>7}/{total} documents, {chunks} chunks");
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    let server = RunningServer::start(config).await?;
    // A fixed, parseable line on stdout: scripts and tests learn the bound port here.
    println!("aether listening on {}", server.base_url());
    shutdown_signal().await;
    tracing::info!("shutting down: letting in-flight requests finish");
    server.shutdown(grace).await
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
