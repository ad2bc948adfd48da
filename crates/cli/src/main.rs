//! `patron`: one binary for the whole engine.

mod bench;
mod bench_api;
mod demo;
mod import;

/// mimalloc: the engine allocates many small, short-lived values per event; glibc's malloc
/// spent a quarter of the ingest benchmark's time on them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use patron_store::jobs::JobKind;
use patron_store::{DatabaseConfig, Journal, JournalConfig, Store};
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "patron",
    version,
    about = "Patron: an open-source loyalty and customer-retention engine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
pub(crate) struct DatabaseArgs {
    /// `./patron.db` (SQLite, the default) or `postgres://user@host/db`.
    #[arg(long, env = "PATRON_DATABASE", default_value = "patron.db")]
    database: String,
    /// SQLite `synchronous=FULL` (survives a power cut; slower) instead of NORMAL.
    #[arg(long, env = "PATRON_SQLITE_SYNCHRONOUS_FULL")]
    sqlite_synchronous_full: bool,
}

impl DatabaseArgs {
    fn config(&self) -> DatabaseConfig {
        let mut config = DatabaseConfig::new(self.database.clone());
        config.sqlite_synchronous_full = self.sqlite_synchronous_full;
        config
    }
}

#[derive(clap::Args, Clone)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    database: DatabaseArgs,
    /// Address to listen on.
    #[arg(long, env = "PATRON_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Seconds between runs of the expiry and tier review jobs (0: never).
    #[arg(long, env = "PATRON_JOBS_INTERVAL_SECONDS", default_value_t = 3600)]
    jobs_interval_seconds: u64,
    /// Sustained requests per second allowed per API key (0: no limit).
    #[arg(long, env = "PATRON_RATE_LIMIT_PER_SECOND", default_value_t = 200)]
    rate_limit_per_second: u32,
    /// Requests an idle API key may make at once.
    #[arg(long, env = "PATRON_RATE_LIMIT_BURST", default_value_t = 400)]
    rate_limit_burst: u32,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API.
    Serve(ServeArgs),
    /// Apply database migrations and exit.
    Migrate(DatabaseArgs),
    /// Create a café chain with sample members and purchases, then serve it.
    Demo(demo::DemoArgs),
    /// Run the maintenance jobs once: expire lots and vouchers, review tiers.
    Jobs(DatabaseArgs),
    /// Create a tenant and print an API key for it.
    Tenant {
        #[command(flatten)]
        database: DatabaseArgs,
        /// The business's name.
        #[arg(long)]
        name: String,
    },
    /// Import a CSV file of members or purchases into a tenant.
    Import(import::ImportArgs),
    /// Export a tenant's members, ledger or points liability as CSV.
    Export(import::ExportArgs),
    /// Benchmarks (print figures and the ratio against a floor measured in the same run).
    Bench {
        #[command(subcommand)]
        bench: bench::Bench,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(cli.command))
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => {
            let store = Store::open(&args.database.config())
                .await
                .context("open the database")?;
            serve(store, &args, None).await
        }
        Command::Migrate(args) => {
            let store = Store::connect(&args.config())
                .await
                .context("connect to the database")?;
            let applied = patron_store::migrate::run(&store).await?;
            println!("{applied} migration(s) applied");
            Ok(())
        }
        Command::Demo(args) => demo::run(args).await,
        Command::Jobs(args) => {
            let store = Store::open(&args.config()).await?;
            let (journal, writer) = Journal::start(store.clone(), JournalConfig::default());
            run_jobs(&journal).await?;
            journal.stop().await;
            writer.await?;
            Ok(())
        }
        Command::Tenant { database, name } => {
            let store = Store::open(&database.config()).await?;
            let tenant = store
                .create_tenant(&patron_store::admin::NewTenant::vietnamese(name))
                .await?;
            let key = store
                .create_api_key(tenant, "cli", patron_store::admin::KeyScope::Write)
                .await?;
            println!("tenant {tenant}\nAPI key {key}\nPublish a programme with POST /v1/programme/versions.");
            Ok(())
        }
        Command::Bench { bench } => bench::run(bench).await,
        Command::Import(args) => import::import(args).await,
        Command::Export(args) => import::export(args).await,
    }
}

/// Runs each maintenance job once at the current time and logs what it did.
async fn run_jobs(journal: &Journal) -> anyhow::Result<()> {
    for kind in [
        JobKind::ExpireLots,
        JobKind::ExpireVouchers,
        JobKind::ReviewTiers,
    ] {
        let report = journal.run_job(kind, chrono::Utc::now()).await?;
        tracing::info!(job = ?kind, processed = report.processed, points = report.points,
            upgrades = report.upgrades, downgrades = report.downgrades, "job done");
    }
    Ok(())
}

/// Serves until Ctrl-C or SIGTERM: finishes in-flight requests, then flushes the journal.
pub(crate) async fn serve(
    store: Store,
    args: &ServeArgs,
    banner: Option<String>,
) -> anyhow::Result<()> {
    let (journal, writer) = Journal::start(store.clone(), JournalConfig::default());
    let limit = patron_server::RateLimit {
        requests_per_second: args.rate_limit_per_second,
        burst: args.rate_limit_burst,
    };
    let application = patron_server::Application::build_with_limit(
        store.clone(),
        journal.clone(),
        args.listen,
        limit,
    )
    .await
    .with_context(|| format!("listen on {}", args.listen))?;
    let address = application.local_addr();
    if let Some(banner) = banner {
        println!("{banner}");
    }
    println!("Patron is listening on http://{address}");
    tracing::info!(%address, backend = ?store.backend(), "serving");
    let scheduler = (args.jobs_interval_seconds > 0).then(|| {
        let journal = journal.clone();
        let interval = Duration::from_secs(args.jobs_interval_seconds);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                if let Err(error) = run_jobs(&journal).await {
                    tracing::error!(%error, "scheduled jobs failed");
                }
            }
        })
    });
    let dispatcher =
        patron_server::Dispatcher::start(store.clone(), patron_server::DispatcherConfig::default());
    application.run(shutdown_signal()).await?;
    if let Some(scheduler) = scheduler {
        scheduler.abort();
    }
    // After the HTTP server: sends in flight finish; what is left waits in the outbox.
    dispatcher.stop().await;
    journal.stop().await;
    writer.await?;
    store.close().await;
    tracing::info!("stopped cleanly");
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {},
        _ = terminate => {},
    }
}
