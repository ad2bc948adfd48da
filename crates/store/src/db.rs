//! The database handle: one design for every read and write, on each backend through its own
//! driver.
//!
//! - **SQLite** (rusqlite): the journal's writer owns one connection and runs its statements on
//!   its own task; every other read and write takes a connection from a small pool and runs each
//!   statement on the blocking threads, so a long report never holds an async worker.
//! - **PostgreSQL** (tokio-postgres): a small pool of clients; each statement is prepared once
//!   per connection with the parameter types of its values (so `$1` is always what the value
//!   says, never a type the planner guessed), and lists bind as arrays (`= ANY($1)`).
//!
//! Values are [`Bind`]s; rows come back as [`Row`]s read by column name into typed values, a
//! NULL where a value is required being an error, never a silent 0 or "". Errors keep the
//! driver's detail so [`StoreError`] can tell a unique violation by its constraint, a conflict
//! worth retrying, and a database that is not there.

use crate::{Backend, StoreError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};

/// A value to bind.
#[derive(Clone, Debug, PartialEq)]
pub enum Bind {
    Int(i64),
    Text(String),
    NullInt,
    NullText,
    /// A list, bound as an `INT8[]` on PostgreSQL (`= ANY($1)`) and as a `rarray` on SQLite
    /// (`IN rarray(?)`).
    Ints(Vec<i64>),
    Texts(Vec<String>),
}

impl From<i64> for Bind {
    fn from(value: i64) -> Bind {
        Bind::Int(value)
    }
}

impl From<bool> for Bind {
    fn from(value: bool) -> Bind {
        Bind::Int(i64::from(value))
    }
}

impl From<String> for Bind {
    fn from(value: String) -> Bind {
        Bind::Text(value)
    }
}

impl From<&String> for Bind {
    fn from(value: &String) -> Bind {
        Bind::Text(value.clone())
    }
}

impl From<&str> for Bind {
    fn from(value: &str) -> Bind {
        Bind::Text(value.to_owned())
    }
}

impl From<Option<i64>> for Bind {
    fn from(value: Option<i64>) -> Bind {
        value.map(Bind::Int).unwrap_or(Bind::NullInt)
    }
}

impl From<Option<String>> for Bind {
    fn from(value: Option<String>) -> Bind {
        value.map(Bind::Text).unwrap_or(Bind::NullText)
    }
}

impl From<Option<&str>> for Bind {
    fn from(value: Option<&str>) -> Bind {
        value.map(Bind::from).unwrap_or(Bind::NullText)
    }
}

impl From<Vec<i64>> for Bind {
    fn from(values: Vec<i64>) -> Bind {
        Bind::Ints(values)
    }
}

impl From<Vec<String>> for Bind {
    fn from(values: Vec<String>) -> Bind {
        Bind::Texts(values)
    }
}

/// `binds![a, b, c]`: a `Vec<Bind>` of values of any type with a `From` into [`Bind`].
#[macro_export]
macro_rules! binds {
    ($($value:expr),* $(,)?) => {
        vec![$($crate::db::Bind::from($value)),*]
    };
}

impl Bind {
    fn postgres_type(&self) -> Type {
        match self {
            Bind::Int(_) | Bind::NullInt => Type::INT8,
            Bind::Text(_) | Bind::NullText => Type::TEXT,
            Bind::Ints(_) => Type::INT8_ARRAY,
            Bind::Texts(_) => Type::TEXT_ARRAY,
        }
    }
}

impl ToSql for Bind {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut tokio_postgres::types::private::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Bind::Int(value) => value.to_sql(ty, out),
            Bind::Text(value) => value.as_str().to_sql(ty, out),
            Bind::NullInt | Bind::NullText => Ok(IsNull::Yes),
            Bind::Ints(values) => values.to_sql(ty, out),
            Bind::Texts(values) => values.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        // Each statement is prepared with the types of its values, so the server never asks
        // for another.
        true
    }

    to_sql_checked!();
}

/// One value read from a row. The schema holds BIGINT and TEXT; PostgreSQL's other integer
/// kinds, booleans, whole NUMERICs (`SUM` of BIGINTs) and JSON read into these too.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Int(i64),
    Text(String),
    Null,
}

/// A row, read by column name.
#[derive(Clone, Debug)]
pub struct Row {
    columns: Arc<[String]>,
    cells: Vec<Cell>,
}

/// A Rust type a cell reads into.
pub trait FromCell: Sized {
    /// `None` when the cell holds another kind of value.
    fn from_cell(cell: &Cell) -> Option<Self>;
    /// What the type is, for the error.
    const KIND: &'static str;
}

impl FromCell for i64 {
    fn from_cell(cell: &Cell) -> Option<i64> {
        match cell {
            Cell::Int(value) => Some(*value),
            _ => None,
        }
    }
    const KIND: &'static str = "an integer";
}

impl FromCell for String {
    fn from_cell(cell: &Cell) -> Option<String> {
        match cell {
            Cell::Text(text) => Some(text.clone()),
            _ => None,
        }
    }
    const KIND: &'static str = "a text";
}

impl FromCell for bool {
    fn from_cell(cell: &Cell) -> Option<bool> {
        match cell {
            Cell::Int(value) => Some(*value != 0),
            _ => None,
        }
    }
    const KIND: &'static str = "a flag (0 or 1)";
}

impl<T: FromCell> FromCell for Option<T> {
    fn from_cell(cell: &Cell) -> Option<Option<T>> {
        match cell {
            Cell::Null => Some(None),
            other => T::from_cell(other).map(Some),
        }
    }
    const KIND: &'static str = T::KIND;
}

impl Row {
    /// The column's value as `T`; an error names the column when it is missing, NULL (for a
    /// `T` that is not an `Option`) or of another kind.
    pub fn get<T: FromCell>(&self, column: &str) -> Result<T, StoreError> {
        let Some(index) = self.columns.iter().position(|name| name == column) else {
            return Err(StoreError::Corrupt(format!(
                "no column {column} in the row"
            )));
        };
        let cell = &self.cells[index];
        T::from_cell(cell).ok_or_else(|| {
            StoreError::Corrupt(match cell {
                Cell::Null => format!("column {column} is NULL"),
                _ => format!("column {column} is not {}", T::KIND),
            })
        })
    }

    pub fn int(&self, column: &str) -> Result<i64, StoreError> {
        self.get(column)
    }

    pub fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError> {
        self.get(column)
    }

    pub fn text(&self, column: &str) -> Result<String, StoreError> {
        self.get(column)
    }

    pub fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError> {
        self.get(column)
    }

    pub fn flag(&self, column: &str) -> Result<bool, StoreError> {
        self.get(column)
    }

    /// The columns, in order.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The cells, in column order.
    pub fn cells(&self) -> &[Cell] {
        &self.cells
    }
}

/// How to open the database.
#[derive(Clone, Debug)]
pub(crate) struct Options {
    pub(crate) connections_max: usize,
    /// The PRAGMAs every SQLite connection runs first.
    pub(crate) sqlite_pragmas: String,
}

/// The database: SQLite or PostgreSQL, with its connections. Cheap to clone.
#[derive(Clone)]
pub struct Database {
    inner: Arc<Inner>,
}

// One per database, behind an `Arc`: the sizes of the variants do not matter.
#[allow(clippy::large_enum_variant)]
enum Inner {
    Sqlite(SqlitePool),
    Postgres(PostgresPool),
}

impl Database {
    /// Opens a SQLite file (created if missing). `temporary` files are removed when the last
    /// handle is dropped (what `sqlite::memory:` becomes: one path for every database).
    pub(crate) fn sqlite(
        path: std::path::PathBuf,
        temporary: bool,
        options: &Options,
    ) -> Result<Database, StoreError> {
        let pool = SqlitePool {
            path,
            temporary,
            pragmas: options.sqlite_pragmas.clone(),
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(options.connections_max.max(1))),
        };
        // Open one now, so a bad path fails here and not at the first read.
        let connection = pool.open()?;
        pool.give_back(connection);
        Ok(Database {
            inner: Arc::new(Inner::Sqlite(pool)),
        })
    }

    /// Connects to PostgreSQL (one connection now, so a wrong URL fails here).
    pub(crate) async fn postgres(url: &str, options: &Options) -> Result<Database, StoreError> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|error| StoreError::Config(format!("database url: {error}")))?;
        let pool = PostgresPool {
            config,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(options.connections_max.max(1))),
        };
        let client = pool.connect().await?;
        pool.give_back(client);
        Ok(Database {
            inner: Arc::new(Inner::Postgres(pool)),
        })
    }

    pub fn backend(&self) -> Backend {
        match &*self.inner {
            Inner::Sqlite(_) => Backend::Sqlite,
            Inner::Postgres(_) => Backend::Postgres,
        }
    }

    /// A new connection for the journal's writer, kept by it for its life (SQLite only: on
    /// PostgreSQL the writer takes pooled connections like everyone else).
    pub(crate) fn writer_connection(&self) -> Result<Option<rusqlite::Connection>, StoreError> {
        match &*self.inner {
            Inner::Sqlite(pool) => Ok(Some(pool.open()?)),
            Inner::Postgres(_) => Ok(None),
        }
    }

    /// The SQLite file, if it is one.
    pub fn sqlite_path(&self) -> Option<&std::path::Path> {
        match &*self.inner {
            Inner::Sqlite(pool) => Some(&pool.path),
            Inner::Postgres(_) => None,
        }
    }

    async fn connection(&self) -> Result<Connection, StoreError> {
        match &*self.inner {
            Inner::Sqlite(pool) => {
                let permit = acquire(&pool.permits).await?;
                let connection = match pool.idle.lock().expect("pool lock").pop() {
                    Some(connection) => connection,
                    None => pool.open()?,
                };
                Ok(Connection::Sqlite(PooledSqlite {
                    database: self.clone(),
                    connection: Some(connection),
                    _permit: permit,
                }))
            }
            Inner::Postgres(pool) => {
                let permit = acquire(&pool.permits).await?;
                let idle = pool.idle.lock().expect("pool lock").pop();
                let client = match idle {
                    Some(client) if !client.client.is_closed() => client,
                    _ => pool.connect().await?,
                };
                Ok(Connection::Postgres(PooledPostgres {
                    database: self.clone(),
                    client: Some(client),
                    _permit: permit,
                }))
            }
        }
    }

    /// A transaction for reads that must see one snapshot.
    pub async fn begin(&self) -> Result<Tx<'static>, StoreError> {
        let mut connection = self.connection().await?;
        connection.batch("BEGIN").await?;
        Ok(Tx {
            connection: TxConnection::Pooled(connection),
            open: true,
        })
    }

    /// A transaction that writes. On SQLite it is `BEGIN IMMEDIATE`: the write lock is taken
    /// first and waited for (`busy_timeout`), where a plain `BEGIN` that read before writing
    /// fails at once with "database is locked" if the journal committed meanwhile.
    pub async fn begin_write(&self) -> Result<Tx<'static>, StoreError> {
        let mut connection = self.connection().await?;
        let begin = match self.backend() {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        };
        connection.batch(begin).await?;
        Ok(Tx {
            connection: TxConnection::Pooled(connection),
            open: true,
        })
    }

    /// Rows of one statement, outside any transaction.
    pub async fn fetch(&self, sql: &str, values: Vec<Bind>) -> Result<Vec<Row>, StoreError> {
        self.connection().await?.fetch(sql, values).await
    }

    /// The one row of a statement, or `None`.
    pub async fn fetch_optional(
        &self,
        sql: &str,
        values: Vec<Bind>,
    ) -> Result<Option<Row>, StoreError> {
        Ok(self.fetch(sql, values).await?.into_iter().next())
    }

    /// The one row of a statement; an error if there is none.
    pub async fn fetch_one(&self, sql: &str, values: Vec<Bind>) -> Result<Row, StoreError> {
        self.fetch_optional(sql, values)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("no row from: {sql}")))
    }

    /// Runs one statement outside any transaction; answers the rows it changed.
    pub async fn execute(&self, sql: &str, values: Vec<Bind>) -> Result<u64, StoreError> {
        self.connection().await?.execute(sql, values).await
    }

    /// Runs statements without values, separated by `;` (schema changes, PRAGMAs).
    pub async fn batch(&self, sql: &str) -> Result<(), StoreError> {
        self.connection().await?.batch(sql).await
    }

    /// Drops idle connections (tests and shutdown); on SQLite the last one to close
    /// checkpoints the WAL into the database file and removes it.
    pub fn close_idle(&self) {
        match &*self.inner {
            Inner::Sqlite(pool) => pool.idle.lock().expect("pool lock").clear(),
            Inner::Postgres(pool) => pool.idle.lock().expect("pool lock").clear(),
        }
    }
}

async fn acquire(permits: &Arc<Semaphore>) -> Result<OwnedSemaphorePermit, StoreError> {
    permits
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| StoreError::Config("the database is closed".into()))
}

// ---------------------------------------------------------------------------------------------
// SQLite

struct SqlitePool {
    path: std::path::PathBuf,
    temporary: bool,
    pragmas: String,
    idle: Mutex<Vec<rusqlite::Connection>>,
    permits: Arc<Semaphore>,
}

impl SqlitePool {
    fn open(&self) -> Result<rusqlite::Connection, StoreError> {
        let connection = rusqlite::Connection::open(&self.path)?;
        connection.execute_batch(&self.pragmas)?;
        connection.set_prepared_statement_cache_capacity(256);
        rusqlite::vtab::array::load_module(&connection)?;
        Ok(connection)
    }

    fn give_back(&self, connection: rusqlite::Connection) {
        self.idle.lock().expect("pool lock").push(connection);
    }
}

impl Drop for SqlitePool {
    fn drop(&mut self) {
        self.idle.lock().expect("pool lock").clear();
        if self.temporary {
            for suffix in ["", "-wal", "-shm"] {
                let mut path = self.path.clone().into_os_string();
                path.push(suffix);
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

fn bind_sqlite(statement: &mut rusqlite::Statement<'_>, values: &[Bind]) -> rusqlite::Result<()> {
    if statement.parameter_count() != values.len() {
        return Err(rusqlite::Error::InvalidParameterCount(
            values.len(),
            statement.parameter_count(),
        ));
    }
    for (index, value) in values.iter().enumerate() {
        let index = index + 1;
        // `$n` placeholders are named parameters to SQLite, numbered by first appearance: they
        // must first appear in order for the n-th value to go to `$n`.
        debug_assert!(
            statement
                .parameter_name(index)
                .is_none_or(|name| name == format!("${index}") || name.starts_with('?')),
            "placeholder {index} of a statement is {:?}",
            statement.parameter_name(index)
        );
        match value {
            Bind::Int(value) => statement.raw_bind_parameter(index, value)?,
            Bind::Text(value) => statement.raw_bind_parameter(index, value.as_str())?,
            Bind::NullInt | Bind::NullText => {
                statement.raw_bind_parameter(index, rusqlite::types::Null)?
            }
            Bind::Ints(values) => statement.raw_bind_parameter(
                index,
                std::rc::Rc::new(
                    values
                        .iter()
                        .map(|value| rusqlite::types::Value::Integer(*value))
                        .collect::<Vec<_>>(),
                ),
            )?,
            Bind::Texts(values) => statement.raw_bind_parameter(
                index,
                std::rc::Rc::new(
                    values
                        .iter()
                        .map(|value| rusqlite::types::Value::Text(value.clone()))
                        .collect::<Vec<_>>(),
                ),
            )?,
        }
    }
    Ok(())
}

/// Rows of one statement on a SQLite connection.
pub(crate) fn sqlite_fetch(
    connection: &rusqlite::Connection,
    sql: &str,
    values: &[Bind],
) -> Result<Vec<Row>, StoreError> {
    let mut statement = connection.prepare_cached(sql)?;
    bind_sqlite(&mut statement, values)?;
    let columns: Arc<[String]> = statement
        .column_names()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let mut rows = statement.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let mut cells = Vec::with_capacity(columns.len());
        for index in 0..columns.len() {
            cells.push(match row.get_ref(index)? {
                rusqlite::types::ValueRef::Integer(value) => Cell::Int(value),
                rusqlite::types::ValueRef::Text(bytes) => {
                    Cell::Text(String::from_utf8_lossy(bytes).into_owned())
                }
                rusqlite::types::ValueRef::Null => Cell::Null,
                other => {
                    return Err(StoreError::Corrupt(format!(
                        "column {} holds a {:?}, which Patron never writes",
                        columns[index],
                        other.data_type()
                    )))
                }
            });
        }
        out.push(Row {
            columns: columns.clone(),
            cells,
        });
    }
    Ok(out)
}

/// Runs one statement on a SQLite connection; answers the rows it changed.
pub(crate) fn sqlite_execute(
    connection: &rusqlite::Connection,
    sql: &str,
    values: &[Bind],
) -> Result<u64, StoreError> {
    let mut statement = connection.prepare_cached(sql)?;
    bind_sqlite(&mut statement, values)?;
    Ok(statement.raw_execute()? as u64)
}

struct PooledSqlite {
    database: Database,
    connection: Option<rusqlite::Connection>,
    _permit: OwnedSemaphorePermit,
}

impl PooledSqlite {
    /// Runs `work` with the connection on the blocking threads.
    async fn run<T: Send + 'static>(
        &mut self,
        work: impl FnOnce(&mut rusqlite::Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let mut connection = self
            .connection
            .take()
            .ok_or_else(|| StoreError::Config("a SQLite connection was lost".into()))?;
        let (connection, result) = tokio::task::spawn_blocking(move || {
            let result = work(&mut connection);
            (connection, result)
        })
        .await
        .map_err(|error| StoreError::Config(format!("a SQLite statement panicked: {error}")))?;
        self.connection = Some(connection);
        result
    }
}

impl Drop for PooledSqlite {
    fn drop(&mut self) {
        if let (Some(connection), Inner::Sqlite(pool)) =
            (self.connection.take(), &*self.database.inner)
        {
            if connection.is_autocommit() {
                pool.give_back(connection);
            } else {
                // A transaction left open: roll it back before anyone else gets the connection.
                if connection.execute_batch("ROLLBACK").is_ok() {
                    pool.give_back(connection);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

/// Tests: every query PostgreSQL is sent while `Some`, with its values (to `EXPLAIN` them).
#[cfg(test)]
pub(crate) static RECORDED: Mutex<Option<Vec<Statement>>> = Mutex::new(None);

/// A statement and its values.
#[cfg(test)]
pub(crate) type Statement = (String, Vec<Bind>);

/// Statements kept prepared per connection; past this the cache starts over.
const PREPARED_STATEMENTS_MAX: usize = 512;

struct PostgresPool {
    config: tokio_postgres::Config,
    idle: Mutex<Vec<PostgresClient>>,
    permits: Arc<Semaphore>,
}

struct PostgresClient {
    client: tokio_postgres::Client,
    /// Prepared statements by SQL and parameter types.
    statements: HashMap<(String, Vec<Type>), tokio_postgres::Statement>,
}

impl PostgresPool {
    async fn connect(&self) -> Result<PostgresClient, StoreError> {
        let (client, connection) = self
            .config
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(StoreError::from)?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "a PostgreSQL connection ended");
            }
        });
        Ok(PostgresClient {
            client,
            statements: HashMap::new(),
        })
    }

    fn give_back(&self, client: PostgresClient) {
        if !client.client.is_closed() {
            self.idle.lock().expect("pool lock").push(client);
        }
    }
}

impl PostgresClient {
    async fn prepare(
        &mut self,
        sql: &str,
        values: &[Bind],
    ) -> Result<tokio_postgres::Statement, StoreError> {
        let types: Vec<Type> = values.iter().map(Bind::postgres_type).collect();
        let key = (sql.to_owned(), types);
        if let Some(statement) = self.statements.get(&key) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare_typed(sql, &key.1).await?;
        if self.statements.len() >= PREPARED_STATEMENTS_MAX {
            self.statements.clear();
        }
        self.statements.insert(key, statement.clone());
        Ok(statement)
    }

    async fn fetch(&mut self, sql: &str, values: &[Bind]) -> Result<Vec<Row>, StoreError> {
        #[cfg(test)]
        if let Some(recorded) = RECORDED.lock().expect("recorder lock").as_mut() {
            recorded.push((sql.to_owned(), values.to_vec()));
        }
        let statement = self.prepare(sql, values).await?;
        let parameters: Vec<&(dyn ToSql + Sync)> = values
            .iter()
            .map(|value| value as &(dyn ToSql + Sync))
            .collect();
        let rows = self.client.query(&statement, &parameters).await?;
        let columns: Arc<[String]> = statement
            .columns()
            .iter()
            .map(|column| column.name().to_owned())
            .collect();
        rows.iter()
            .map(|row| {
                let cells = (0..columns.len())
                    .map(|index| row.try_get::<_, Cell>(index))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Row {
                    columns: columns.clone(),
                    cells,
                })
            })
            .collect()
    }

    async fn execute(&mut self, sql: &str, values: &[Bind]) -> Result<u64, StoreError> {
        let statement = self.prepare(sql, values).await?;
        let parameters: Vec<&(dyn ToSql + Sync)> = values
            .iter()
            .map(|value| value as &(dyn ToSql + Sync))
            .collect();
        Ok(self.client.execute(&statement, &parameters).await?)
    }
}

impl<'a> FromSql<'a> for Cell {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> Result<Cell, Box<dyn std::error::Error + Sync + Send>> {
        Ok(match *ty {
            Type::INT8 => Cell::Int(i64::from_sql(ty, raw)?),
            Type::INT4 => Cell::Int(i64::from(i32::from_sql(ty, raw)?)),
            Type::INT2 => Cell::Int(i64::from(i16::from_sql(ty, raw)?)),
            Type::BOOL => Cell::Int(i64::from(bool::from_sql(ty, raw)?)),
            Type::NUMERIC => Cell::Int(numeric_to_i64(raw)?),
            Type::JSONB => {
                // Version byte 1, then the text.
                let text = raw
                    .strip_prefix(&[1])
                    .ok_or("a jsonb value of an unknown version")?;
                Cell::Text(std::str::from_utf8(text)?.to_owned())
            }
            _ => Cell::Text(<&str>::from_sql(ty, raw)?.to_owned()),
        })
    }

    fn from_sql_null(_: &Type) -> Result<Cell, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Cell::Null)
    }

    fn accepts(ty: &Type) -> bool {
        matches!(
            *ty,
            Type::INT8
                | Type::INT4
                | Type::INT2
                | Type::BOOL
                | Type::NUMERIC
                | Type::JSONB
                | Type::JSON
                | Type::TEXT
                | Type::VARCHAR
                | Type::BPCHAR
                | Type::NAME
                | Type::UNKNOWN
        )
    }
}

/// A whole NUMERIC (what `SUM` of BIGINTs gives) as an i64; an error if it has a fraction or
/// does not fit. The binary form: digit count, weight, sign, scale, then base-10,000 digits.
fn numeric_to_i64(raw: &[u8]) -> Result<i64, Box<dyn std::error::Error + Sync + Send>> {
    let word = |index: usize| -> Result<u16, Box<dyn std::error::Error + Sync + Send>> {
        let bytes = raw
            .get(index * 2..index * 2 + 2)
            .ok_or("a numeric value cut short")?;
        Ok(u16::from_be_bytes([bytes[0], bytes[1]]))
    };
    let digits = usize::from(word(0)?);
    let weight = i64::from(word(1)? as i16);
    let sign = word(2)?;
    if sign == 0xC000 {
        return Err("NaN where a number was expected".into());
    }
    let mut value: i128 = 0;
    for position in 0..digits {
        let digit = i128::from(word(4 + position)?);
        let exponent = weight - position as i64;
        if exponent < 0 {
            if digit != 0 {
                return Err("a numeric with a fraction where an integer was expected".into());
            }
            continue;
        }
        value = value
            .checked_add(digit * 10_000i128.checked_pow(exponent as u32).ok_or("too large")?)
            .ok_or("too large")?;
    }
    // Trailing zero digits are not stored: `weight` says how many base-10,000 places follow.
    if digits == 0 {
        return Ok(0);
    }
    let value = if sign == 0x4000 { -value } else { value };
    i64::try_from(value).map_err(|_| "a numeric beyond a 64-bit integer".into())
}

struct PooledPostgres {
    database: Database,
    client: Option<PostgresClient>,
    _permit: OwnedSemaphorePermit,
}

impl PooledPostgres {
    fn client(&mut self) -> Result<&mut PostgresClient, StoreError> {
        self.client
            .as_mut()
            .ok_or_else(|| StoreError::Config("a PostgreSQL connection was lost".into()))
    }
}

impl Drop for PooledPostgres {
    fn drop(&mut self) {
        if let (Some(client), Inner::Postgres(pool)) = (self.client.take(), &*self.database.inner) {
            pool.give_back(client);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Connections and transactions

/// A pooled connection of either backend.
enum Connection {
    Sqlite(PooledSqlite),
    Postgres(PooledPostgres),
}

impl Connection {
    async fn fetch(&mut self, sql: &str, values: Vec<Bind>) -> Result<Vec<Row>, StoreError> {
        match self {
            Connection::Sqlite(connection) => {
                let sql = sql.to_owned();
                connection
                    .run(move |connection| sqlite_fetch(connection, &sql, &values))
                    .await
            }
            Connection::Postgres(connection) => connection.client()?.fetch(sql, &values).await,
        }
    }

    async fn execute(&mut self, sql: &str, values: Vec<Bind>) -> Result<u64, StoreError> {
        match self {
            Connection::Sqlite(connection) => {
                let sql = sql.to_owned();
                connection
                    .run(move |connection| sqlite_execute(connection, &sql, &values))
                    .await
            }
            Connection::Postgres(connection) => connection.client()?.execute(sql, &values).await,
        }
    }

    async fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        match self {
            Connection::Sqlite(connection) => {
                let sql = sql.to_owned();
                connection
                    .run(move |connection| Ok(connection.execute_batch(&sql)?))
                    .await
            }
            Connection::Postgres(connection) => {
                Ok(connection.client()?.client.batch_execute(sql).await?)
            }
        }
    }

    /// After a failed COMMIT or ROLLBACK the connection's state is unknown: it is not reused.
    fn discard(&mut self) {
        match self {
            Connection::Sqlite(connection) => {
                connection.connection.take();
            }
            Connection::Postgres(connection) => {
                connection.client.take();
            }
        }
    }
}

// One per transaction, on the stack of its task: boxing the pooled connection would cost an
// allocation per transaction to save a few hundred bytes.
#[allow(dead_code, clippy::large_enum_variant)] // The journal moves onto `Tx` next.
enum TxConnection<'c> {
    /// The journal's own SQLite connection: statements run right here, on the writer's task.
    Writer(&'c mut rusqlite::Connection),
    Pooled(Connection),
}

/// A transaction, rolled back if dropped uncommitted.
pub struct Tx<'c> {
    connection: TxConnection<'c>,
    open: bool,
}

#[allow(dead_code)] // The journal moves onto `Tx` next.
impl<'c> Tx<'c> {
    /// A write transaction on the journal's own SQLite connection (`BEGIN IMMEDIATE`).
    pub(crate) fn on_writer(
        connection: &'c mut rusqlite::Connection,
    ) -> Result<Tx<'c>, StoreError> {
        connection.execute_batch("BEGIN IMMEDIATE")?;
        Ok(Tx {
            connection: TxConnection::Writer(connection),
            open: true,
        })
    }

    /// A write transaction for the journal: on its own connection when it has one (SQLite),
    /// else on a pooled one.
    pub(crate) async fn for_writer(
        database: &Database,
        connection: Option<&'c mut rusqlite::Connection>,
    ) -> Result<Tx<'c>, StoreError> {
        match connection {
            Some(connection) => Tx::on_writer(connection),
            None => database.begin_write().await,
        }
    }

    pub fn backend(&self) -> Backend {
        match &self.connection {
            TxConnection::Writer(_) | TxConnection::Pooled(Connection::Sqlite(_)) => {
                Backend::Sqlite
            }
            TxConnection::Pooled(Connection::Postgres(_)) => Backend::Postgres,
        }
    }

    pub async fn fetch(&mut self, sql: &str, values: Vec<Bind>) -> Result<Vec<Row>, StoreError> {
        match &mut self.connection {
            TxConnection::Writer(connection) => sqlite_fetch(connection, sql, &values),
            TxConnection::Pooled(connection) => connection.fetch(sql, values).await,
        }
    }

    pub async fn fetch_optional(
        &mut self,
        sql: &str,
        values: Vec<Bind>,
    ) -> Result<Option<Row>, StoreError> {
        Ok(self.fetch(sql, values).await?.into_iter().next())
    }

    pub async fn fetch_one(&mut self, sql: &str, values: Vec<Bind>) -> Result<Row, StoreError> {
        self.fetch_optional(sql, values)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("no row from: {sql}")))
    }

    pub async fn execute(&mut self, sql: &str, values: Vec<Bind>) -> Result<u64, StoreError> {
        match &mut self.connection {
            TxConnection::Writer(connection) => sqlite_execute(connection, sql, &values),
            TxConnection::Pooled(connection) => connection.execute(sql, values).await,
        }
    }

    /// Runs statements `(sql, values)` in order (multi-row statements from `sql::Rows`).
    pub async fn execute_all(
        &mut self,
        statements: Vec<(String, Vec<Bind>)>,
    ) -> Result<(), StoreError> {
        for (sql, values) in statements {
            self.execute(&sql, values).await?;
        }
        Ok(())
    }

    /// Runs statements without values, separated by `;`.
    pub async fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        match &mut self.connection {
            TxConnection::Writer(connection) => Ok(connection.execute_batch(sql)?),
            TxConnection::Pooled(connection) => connection.batch(sql).await,
        }
    }

    async fn finish(&mut self, statement: &str) -> Result<(), StoreError> {
        self.open = false;
        let result = self.batch(statement).await;
        if result.is_err() {
            if let TxConnection::Pooled(connection) = &mut self.connection {
                connection.discard();
            }
        }
        result
    }

    pub async fn commit(mut self) -> Result<(), StoreError> {
        let result = self.finish("COMMIT").await;
        if result.is_err() {
            // SQLite may keep the transaction open after a failed COMMIT (SQLITE_BUSY).
            if let TxConnection::Writer(connection) = &mut self.connection {
                if !connection.is_autocommit() {
                    let _ = connection.execute_batch("ROLLBACK");
                }
            }
        }
        result
    }

    pub async fn rollback(mut self) -> Result<(), StoreError> {
        self.finish("ROLLBACK").await
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if !self.open {
            return;
        }
        match &mut self.connection {
            TxConnection::Writer(connection) => {
                let _ = connection.execute_batch("ROLLBACK");
            }
            // A pooled SQLite connection rolls back when it goes back to the pool.
            TxConnection::Pooled(Connection::Sqlite(_)) => {}
            // No await in a drop: the connection is closed instead, which aborts the
            // transaction on the server.
            TxConnection::Pooled(connection @ Connection::Postgres(_)) => connection.discard(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::numeric_to_i64;

    fn numeric(digits: &[u16], weight: i16, negative: bool, scale: u16) -> Vec<u8> {
        let mut raw = Vec::new();
        raw.extend((digits.len() as u16).to_be_bytes());
        raw.extend(weight.to_be_bytes());
        raw.extend((if negative { 0x4000u16 } else { 0 }).to_be_bytes());
        raw.extend(scale.to_be_bytes());
        for digit in digits {
            raw.extend(digit.to_be_bytes());
        }
        raw
    }

    #[test]
    fn whole_numerics_read_as_integers() {
        assert_eq!(numeric_to_i64(&numeric(&[], 0, false, 0)).unwrap(), 0);
        assert_eq!(
            numeric_to_i64(&numeric(&[1234], 0, false, 0)).unwrap(),
            1234
        );
        // 12,345,678 = 1234·10⁴ + 5678.
        assert_eq!(
            numeric_to_i64(&numeric(&[1234, 5678], 1, true, 0)).unwrap(),
            -12_345_678
        );
        // 10⁸: one digit of weight 2, the zeros not stored.
        assert_eq!(
            numeric_to_i64(&numeric(&[1], 2, false, 0)).unwrap(),
            100_000_000
        );
        // i64::MAX = 922 3372 0368 5477 5807.
        assert_eq!(
            numeric_to_i64(&numeric(&[922, 3372, 368, 5477, 5807], 4, false, 0)).unwrap(),
            i64::MAX
        );
        assert!(numeric_to_i64(&numeric(&[922, 3372, 368, 5477, 5808], 4, false, 0)).is_err());
        // 1.5 has a fraction.
        assert!(numeric_to_i64(&numeric(&[1, 5000], 0, false, 1)).is_err());
        // 2.0 (scale 1, fraction digit zero) is whole.
        assert_eq!(numeric_to_i64(&numeric(&[2], 0, false, 1)).unwrap(), 2);
    }
}
