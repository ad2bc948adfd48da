//! Patron's persistence. One code path for SQLite (the embedded default) and PostgreSQL, through
//! sqlx's `Any` driver with portable SQL: `$n` placeholders, TEXT ids, BIGINT instants.
//!
//! Writes of events go through the [`journal`]: one writer per database that commits events in
//! batches (group commit). Reads go straight to the pool.

pub mod admin;
pub mod audit;
mod batch;
pub mod error;
pub mod exports;
pub mod imports;
pub mod jobs;
pub mod journal;
pub mod member_access;
pub mod members;
pub mod migrate;
pub mod model;
pub mod programmes;
pub mod queries;
mod sql;
pub mod stats;
pub mod users;
pub mod webhooks;

pub use error::{EventError, StoreError};
pub use journal::{Journal, JournalConfig};
pub use model::*;

use patron_core::programme::Programme;
use patron_core::TenantId;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Executor};
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Which database is behind the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// How to reach the database.
#[derive(Clone, Debug)]
pub struct DatabaseConfig {
    /// `sqlite://patron.db` or `postgres://user@host/db`; a bare path is a SQLite file.
    pub url: String,
    /// Connections in the pool (readers; the journal holds one more for itself on SQLite).
    pub connections_max: u32,
    /// SQLite `synchronous`: `NORMAL` (fast, survives a process crash) or `FULL` (survives
    /// a power cut too).
    pub sqlite_synchronous_full: bool,
}

impl DatabaseConfig {
    pub fn new(url: impl Into<String>) -> DatabaseConfig {
        DatabaseConfig {
            url: url.into(),
            connections_max: 8,
            sqlite_synchronous_full: false,
        }
    }
}

/// A tenant's settings the engine needs, cached with its programme versions.
#[derive(Clone, Debug)]
pub struct TenantSettings {
    pub id: TenantId,
    pub name: String,
    pub currency: String,
    pub zone: chrono_tz::Tz,
    /// Versions, oldest first: (effective_from, programme).
    pub programmes: Vec<(patron_core::time::Timestamp, Arc<Programme>)>,
    pub stores: Vec<String>,
    /// Topics the tenant's live webhook subscriptions want: the journal writes outbox rows
    /// only for these.
    pub webhook_topics: std::collections::HashSet<String>,
    /// Largest amount of one purchase, in minor units: a purchase above it is refused
    /// (`amount_above_maximum`).
    pub purchase_amount_max: i64,
    /// Amount above which the till asks the cashier to confirm the purchase.
    pub purchase_amount_confirm: i64,
}

/// A tenant's largest purchase unless it sets its own: 1,000,000,000 (a billion đồng).
pub const PURCHASE_AMOUNT_MAX_DEFAULT: i64 = 1_000_000_000;
/// Amount above which the till asks to confirm, unless the tenant sets its own: 20,000,000.
pub const PURCHASE_AMOUNT_CONFIRM_DEFAULT: i64 = 20_000_000;

impl TenantSettings {
    /// The programme version in force at `at`: the latest whose `effective_from` is not after it.
    pub fn programme_at(&self, at: patron_core::time::Timestamp) -> Option<&Arc<Programme>> {
        self.programmes
            .iter()
            .rev()
            .find(|(from, _)| *from <= at)
            .or_else(|| self.programmes.first())
            .map(|(_, programme)| programme)
    }
}

/// The database and what is cached of it.
#[derive(Clone)]
pub struct Store {
    pub(crate) pool: AnyPool,
    pub(crate) backend: Backend,
    pub(crate) tenants: Arc<RwLock<HashMap<TenantId, Arc<TenantSettings>>>>,
    /// The SQLite file, for the journal's own connection.
    sqlite_path: Option<String>,
    sqlite_pragmas: String,
}

/// The file of a `sqlite:` URL, or `None` for an in-memory database.
fn sqlite_file(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && !path.contains(":memory:")).then(|| path.to_owned())
}

fn normalise_url(url: &str) -> String {
    if url.starts_with("sqlite:") || url.starts_with("postgres:") || url.starts_with("postgresql:")
    {
        return url.to_owned();
    }
    format!("sqlite://{url}")
}

impl Store {
    /// Connects, creating a SQLite file if it does not exist, and applies migrations.
    pub async fn open(config: &DatabaseConfig) -> Result<Store, StoreError> {
        let store = Store::connect(config).await?;
        migrate::run(&store).await?;
        Ok(store)
    }

    /// Connects without migrating.
    pub async fn connect(config: &DatabaseConfig) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let mut url = normalise_url(&config.url);
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        };
        if backend == Backend::Sqlite && !url.contains("mode=") {
            url.push_str(if url.contains('?') {
                "&mode=rwc"
            } else {
                "?mode=rwc"
            });
        }
        let options = AnyConnectOptions::from_str(&url)
            .map_err(|error| StoreError::Config(format!("database url: {error}")))?
            .disable_statement_logging();
        let synchronous = if config.sqlite_synchronous_full {
            "FULL"
        } else {
            "NORMAL"
        };
        let sqlite_pragmas = format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous}; PRAGMA busy_timeout = 10000; \
             PRAGMA foreign_keys = ON; PRAGMA cache_size = -65536; PRAGMA mmap_size = 1073741824; \
             PRAGMA temp_store = MEMORY; PRAGMA wal_autocheckpoint = 16384;"
        );
        let pragmas = sqlite_pragmas.clone();
        let pool = AnyPoolOptions::new()
            .max_connections(config.connections_max.max(2))
            .acquire_timeout(Duration::from_secs(30))
            // A pooled connection is not pinged before each use: a dead one fails its query
            // and is dropped; the ping doubled the round trips of every read.
            .test_before_acquire(false)
            .after_connect(move |connection, _| {
                let pragmas = pragmas.clone();
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        connection.execute(pragmas.as_str()).await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        let sqlite_path = (backend == Backend::Sqlite)
            .then(|| sqlite_file(&url))
            .flatten();
        Ok(Store {
            pool,
            backend,
            tenants: Arc::new(RwLock::new(HashMap::new())),
            sqlite_path,
            sqlite_pragmas,
        })
    }

    /// A transaction on the pool for a write outside the journal (profile edits, staff, keys,
    /// webhooks). On SQLite it is `BEGIN IMMEDIATE`: the write lock is taken first and waited
    /// for (`busy_timeout`), where a plain `BEGIN` that read before writing fails at once with
    /// "database is locked" if the journal committed meanwhile (a stale snapshot cannot be
    /// upgraded, and SQLite does not wait for that).
    pub(crate) async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        let transaction = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        Ok(transaction)
    }

    /// The journal's own connection to the SQLite file (`None` on PostgreSQL or in memory).
    pub(crate) fn open_writer_connection(
        &self,
    ) -> Result<Option<rusqlite::Connection>, StoreError> {
        let Some(path) = &self.sqlite_path else {
            return Ok(None);
        };
        let connection = rusqlite::Connection::open(path)?;
        connection.execute_batch(&self.sqlite_pragmas)?;
        connection.set_prepared_statement_cache_capacity(256);
        Ok(Some(connection))
    }

    /// The PRAGMAs every SQLite connection of this store runs (benchmarks open their own).
    pub fn sqlite_pragmas(&self) -> &str {
        &self.sqlite_pragmas
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Closes the pool after in-flight queries finish.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
