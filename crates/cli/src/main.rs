//! `patron`: one binary for the whole engine.

mod bench;
mod bench_api;
mod bench_campaigns;
mod bench_pages;
mod bench_scale;
mod bench_segments;
mod config;
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
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "patron",
    version,
    about = "Patron: an open-source loyalty and customer-retention engine"
)]
struct Cli {
    /// A TOML configuration file (default: ./patron.toml when present).
    #[arg(long, global = true, env = "PATRON_CONFIG")]
    config: Option<std::path::PathBuf>,
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

#[derive(Subcommand)]
enum Command {
    /// Serve the API.
    Serve(config::Overrides),
    /// Check the configuration (file, environment) and the database connection.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Manage staff users.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
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

#[derive(Subcommand)]
enum ConfigAction {
    /// Load the configuration, print it (secrets hidden) and connect to the database.
    Check(config::Overrides),
}

#[derive(Subcommand)]
enum UserAction {
    /// Add a staff user (the first owner of a tenant, say). Prints a generated password unless
    /// one is given on standard input.
    Add {
        #[command(flatten)]
        database: DatabaseArgs,
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// owner, manager, marketer, cashier or viewer.
        #[arg(long, default_value = "owner")]
        role: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
}

fn init_logging(format: config::LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        config::LogFormat::Text => builder.init(),
        config::LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let overrides = match &cli.command {
        Command::Serve(overrides)
        | Command::Config {
            action: ConfigAction::Check(overrides),
        } => overrides.clone(),
        _ => config::Overrides::default(),
    };
    let settings = config::load(cli.config.as_deref(), &overrides);
    init_logging(
        settings
            .as_ref()
            .map(|settings| settings.log_format)
            .unwrap_or(config::LogFormat::Text),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(cli.command, settings))
}

async fn run(
    command: Command,
    settings: Result<config::Settings, Box<figment::Error>>,
) -> anyhow::Result<()> {
    match command {
        Command::Serve(_) => {
            let settings = settings.map_err(|error| anyhow::anyhow!("configuration: {error}"))?;
            let store = Store::open(&database_config(&settings))
                .await
                .context("open the database")?;
            serve(store, &settings, None).await
        }
        Command::Config { .. } => check_config(settings).await,
        Command::User {
            action:
                UserAction::Add {
                    database,
                    tenant,
                    email,
                    name,
                    role,
                    password_stdin,
                },
        } => {
            let store = Store::open(&database.config()).await?;
            let tenant = patron_core::TenantId::parse(&tenant)
                .map_err(|_| anyhow::anyhow!("--tenant: not a tenant id"))?;
            let role = patron_store::users::Role::parse_staff(&role).ok_or_else(|| {
                anyhow::anyhow!("--role: must be owner, manager, marketer, cashier or viewer")
            })?;
            let (password, generated) = if password_stdin {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
                (line.trim_end_matches(['\r', '\n']).to_owned(), false)
            } else {
                (generate_password(), true)
            };
            let user = store
                .create_user(
                    tenant,
                    &email,
                    &name,
                    role,
                    &password,
                    &patron_store::audit::Actor::cli(),
                )
                .await?;
            println!("user {} ({}, {})", user.id, user.email, user.role.as_str());
            if generated {
                println!("password {password}\nKeep it: it is not shown again.");
            }
            Ok(())
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
                .create_api_key(tenant, "cli", patron_store::admin::KeyScope::Admin)
                .await?;
            println!(
                "tenant {tenant}\nAPI key {key}\nThe key is an admin key: it can make other keys.\n\
                 Publish a programme with POST /v1/programme/versions; add staff with `patron user add`."
            );
            Ok(())
        }
        Command::Bench { bench } => bench::run(bench).await,
        Command::Import(args) => import::import(args).await,
        Command::Export(args) => import::export(args).await,
    }
}

fn database_config(settings: &config::Settings) -> DatabaseConfig {
    let mut config = DatabaseConfig::new(settings.database.clone());
    config.sqlite_synchronous_full = settings.sqlite_synchronous_full;
    config
}

/// A password of 20 characters from an alphabet without look-alikes (about 113 bits).
fn generate_password() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..20)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// `patron config check`: prints the settings or the error naming the key, then connects.
async fn check_config(
    settings: Result<config::Settings, Box<figment::Error>>,
) -> anyhow::Result<()> {
    let settings = match settings {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("configuration error: {error}");
            std::process::exit(2);
        }
    };
    println!("{}", settings.describe());
    let store = Store::connect(&database_config(&settings))
        .await
        .context("connect to the database")?;
    let pending = patron_store::migrate::pending(&store).await?;
    println!(
        "database reachable ({:?}); {pending} migration(s) to apply",
        store.backend()
    );
    println!("configuration ok");
    Ok(())
}

/// Runs each maintenance job once at the current time and logs what it did.
async fn run_jobs(journal: &Journal) -> anyhow::Result<()> {
    for kind in [
        JobKind::ExpireLots,
        JobKind::ExpireVouchers,
        JobKind::ReviewTiers,
        JobKind::NotifyExpiring,
        JobKind::KeepProfiles,
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
    args: &config::Settings,
    banner: Option<String>,
) -> anyhow::Result<()> {
    let interrupted = store.fail_interrupted_imports().await?;
    if interrupted > 0 {
        tracing::warn!(
            interrupted,
            "import jobs left unfinished by the last run are marked failed; run their files again"
        );
    }
    let (journal, writer) = Journal::start(store.clone(), JournalConfig::default());
    let options = patron_server::ServerOptions {
        rate_limit: patron_server::RateLimit {
            requests_per_second: args.rate_limit_per_second,
            burst: args.rate_limit_burst,
        },
        platform_token: args.platform_token.clone(),
        pages: Some(patron_web::router()),
        webhooks_allow_private_targets: args.webhooks_allow_private_targets,
        public_url: args.public_url.clone(),
        trusted_proxies: args.trusted_proxies.clone(),
        tls: args.tls_files(),
        secret_key: Some(args.secret_key()?),
        ..patron_server::ServerOptions::default()
    };
    let application = patron_server::Application::build_with(
        store.clone(),
        journal.clone(),
        args.listen,
        options,
    )
    .await
    .with_context(|| format!("listen on {}", args.listen))?;
    let address = application.local_addr();
    if let Some(banner) = banner {
        println!("{banner}");
    }
    let scheme = if application.is_tls() {
        "https"
    } else {
        "http"
    };
    println!("Patron is listening on {scheme}://{address}");
    if args.public_url.is_none() && !address.ip().is_loopback() {
        tracing::warn!(
            "public_url is not set: member links will name this machine's loopback address; \
             set public_url (PATRON_PUBLIC_URL) to the address phones reach"
        );
    }
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
    let dispatcher = patron_server::Dispatcher::start(
        store.clone(),
        patron_server::DispatcherConfig {
            allow_private_targets: args.webhooks_allow_private_targets,
            ..patron_server::DispatcherConfig::default()
        },
    );
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
