//! What Patron's tests share: every test gets its own database, a new SQLite file or a new
//! PostgreSQL database, so tests never see each other's data and can run in parallel.
//! PostgreSQL is reached through `PATRON_TEST_POSTGRES` (an admin URL ending in a database
//! name, default `postgres://postgres@127.0.0.1:5432/postgres`).

use patron_store::{DatabaseConfig, Store};

/// The PostgreSQL URL tests create their databases through.
pub fn postgres_admin_url() -> String {
    std::env::var("PATRON_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A path for a new SQLite file in the temporary directory, named after `label`.
pub fn sqlite_path(label: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("patron-{label}-{}.db", uuid::Uuid::now_v7()))
}

/// Creates a new, empty PostgreSQL database and returns its URL.
pub async fn postgres_database(label: &str) -> String {
    let admin = postgres_admin_url();
    let name = format!("patron_{label}_{}", uuid::Uuid::now_v7().simple());
    let (client, connection) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
        .await
        .expect("connect to PostgreSQL (is it running on 127.0.0.1:5432?)");
    let connection = tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create a test database");
    drop(client);
    let _ = connection.await;
    let base = admin.rfind('/').expect("the admin URL names a database");
    format!("{}/{name}", &admin[..base])
}

/// The URL of a fresh database: a new SQLite file, or a new PostgreSQL database.
pub async fn fresh_database_url(postgres: bool, label: &str) -> String {
    if postgres {
        postgres_database(label).await
    } else {
        format!("sqlite://{}", sqlite_path(label).display())
    }
}

/// A fresh, migrated database.
pub async fn fresh_store(postgres: bool) -> Store {
    let url = fresh_database_url(postgres, "test").await;
    Store::open(&DatabaseConfig::new(url))
        .await
        .expect("open the test database")
}

/// The integer in the first column of the first row of `sql` (a count, a sum), for checks
/// the API does not show.
pub async fn scalar(store: &Store, sql: &str, values: Vec<patron_store::db::Bind>) -> i64 {
    let row = store
        .db()
        .fetch_one(sql, values)
        .await
        .unwrap_or_else(|error| panic!("{sql}: {error}"));
    match row.cells().first() {
        Some(patron_store::db::Cell::Int(value)) => *value,
        other => panic!("{sql} gave {other:?}"),
    }
}
