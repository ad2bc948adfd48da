//! Patron's persistence. One database handle ([`db::Database`]) for SQLite (the embedded
//! default, through rusqlite) and PostgreSQL (through tokio-postgres), with SQL that is portable
//! where it costs nothing (`$n` placeholders, TEXT ids, BIGINT instants) and PostgreSQL's own
//! where it pays (arrays, lateral lookups).
//!
//! Writes of events go through the [`journal`]: one writer per database that commits events in
//! batches (group commit). Reads go straight to the pool.

pub mod admin;
pub mod audit;
mod batch;
pub mod campaigns;
pub mod db;
pub mod error;
pub mod exports;
pub mod figures;
pub mod imports;
pub mod jobs;
pub mod journal;
pub mod member_access;
pub mod members;
pub mod migrate;
pub mod model;
mod profiles;
pub mod programmes;
pub mod queries;
pub mod records;
pub mod segments;
mod sql;
pub mod stats;
pub mod users;
pub mod webhooks;

pub use error::{EventError, StoreError};
pub use journal::{Journal, JournalConfig};
pub use model::*;

use patron_core::programme::Programme;
use patron_core::TenantId;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

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
    /// Every read and write, on either backend.
    pub(crate) db: db::Database,
    pub(crate) backend: Backend,
    pub(crate) tenants: Arc<RwLock<HashMap<TenantId, Arc<TenantSettings>>>>,
    sqlite_pragmas: String,
}

/// The file of a `sqlite:` URL, and whether it is temporary: an in-memory database
/// (`sqlite::memory:`) is a new file in the temporary directory, removed when the store is
/// dropped, so that it takes the same path as any other (a connection pool over `:memory:`
/// would give each connection a database of its own).
fn sqlite_file(url: &str) -> (String, bool) {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path.contains(":memory:") {
        let file = std::env::temp_dir().join(format!("patron-memory-{}.db", uuid::Uuid::now_v7()));
        return (file.display().to_string(), true);
    }
    (path.to_owned(), false)
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
        let url = normalise_url(&config.url);
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        };
        let sqlite = (backend == Backend::Sqlite).then(|| sqlite_file(&url));
        let synchronous = if config.sqlite_synchronous_full {
            "FULL"
        } else {
            "NORMAL"
        };
        let sqlite_pragmas = format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous}; PRAGMA busy_timeout = 10000; \
             PRAGMA foreign_keys = ON; PRAGMA cache_size = -65536; PRAGMA mmap_size = 1073741824; \
             PRAGMA temp_store = MEMORY; PRAGMA wal_autocheckpoint = 16384; \
             PRAGMA journal_size_limit = 67108864;"
        );
        let options = db::Options {
            connections_max: config.connections_max.max(2) as usize,
            sqlite_pragmas: sqlite_pragmas.clone(),
        };
        let db = match &sqlite {
            Some((path, temporary)) => db::Database::sqlite(path.into(), *temporary, &options)?,
            None => db::Database::postgres(&url, &options).await?,
        };
        Ok(Store {
            db,
            backend,
            tenants: Arc::new(RwLock::new(HashMap::new())),
            sqlite_pragmas,
        })
    }

    /// The journal's own connection to the SQLite file (`None` on PostgreSQL or in memory).
    pub(crate) fn open_writer_connection(
        &self,
    ) -> Result<Option<rusqlite::Connection>, StoreError> {
        self.db.writer_connection()
    }

    /// The PRAGMAs every SQLite connection of this store runs (benchmarks open their own).
    pub fn sqlite_pragmas(&self) -> &str {
        &self.sqlite_pragmas
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The database handle: every read and write goes through it.
    pub fn db(&self) -> &db::Database {
        &self.db
    }

    /// Closes the idle connections (the SQLite file's last one to close checkpoints it).
    pub async fn close(&self) {
        self.db.close_idle();
    }
}
