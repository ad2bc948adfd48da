//! The database handle on both backends: rows by column name with NULL refused where a value is
//! required, lists bound as arrays, unique violations told apart by their constraint, and
//! transactions that roll back when dropped.

mod common;

use patron_store::binds;
use patron_store::db::Bind;
use patron_store::error::Unique;
use patron_store::{Store, StoreError};

on_both_backends! {
    rows_are_read_by_name_and_null_is_not_zero;
    lists_bind_as_arrays;
    unique_violations_name_their_constraint;
    a_dropped_transaction_changes_nothing;
}

async fn rows_are_read_by_name_and_null_is_not_zero(store: Store) {
    let db = store.db();
    db.batch("CREATE TABLE t (id TEXT PRIMARY KEY, n BIGINT, label TEXT)")
        .await
        .unwrap();
    db.execute(
        "INSERT INTO t (id, n, label) VALUES ($1, $2, $3), ($4, $5, $6)",
        binds!["a", 7_i64, "seven", "b", None::<i64>, None::<String>],
    )
    .await
    .unwrap();
    let row = db
        .fetch_one("SELECT label, n, id FROM t WHERE id = $1", binds!["a"])
        .await
        .unwrap();
    assert_eq!(row.int("n").unwrap(), 7);
    assert_eq!(row.text("label").unwrap(), "seven");
    let row = db
        .fetch_one("SELECT id, n, label FROM t WHERE id = $1", binds!["b"])
        .await
        .unwrap();
    assert_eq!(row.opt_int("n").unwrap(), None);
    let error = row.int("n").unwrap_err().to_string();
    assert!(error.contains("column n is NULL"), "{error}");
    let error = row.text("nothing").unwrap_err().to_string();
    assert!(error.contains("no column nothing"), "{error}");
    let error = row.int("id").unwrap_err().to_string();
    assert!(error.contains("column id is not an integer"), "{error}");
    // SUM over BIGINTs (a NUMERIC on PostgreSQL) and COUNT read as integers.
    let row = db
        .fetch_one("SELECT SUM(n) AS total, COUNT(*) AS count FROM t", vec![])
        .await
        .unwrap();
    assert_eq!(row.int("total").unwrap(), 7);
    assert_eq!(row.int("count").unwrap(), 2);
}

async fn lists_bind_as_arrays(store: Store) {
    let db = store.db();
    db.batch("CREATE TABLE t (id TEXT PRIMARY KEY, n BIGINT NOT NULL)")
        .await
        .unwrap();
    for index in 0..50_i64 {
        db.execute(
            "INSERT INTO t (id, n) VALUES ($1, $2)",
            binds![format!("id-{index}"), index],
        )
        .await
        .unwrap();
    }
    let wanted: Vec<String> = vec!["id-3".into(), "id-40".into(), "missing".into()];
    let sql = match store.backend() {
        patron_store::Backend::Sqlite => "SELECT n FROM t WHERE id IN rarray($1) ORDER BY n",
        patron_store::Backend::Postgres => "SELECT n FROM t WHERE id = ANY($1) ORDER BY n",
    };
    let found: Vec<i64> = db
        .fetch(sql, vec![Bind::Texts(wanted)])
        .await
        .unwrap()
        .iter()
        .map(|row| row.int("n").unwrap())
        .collect();
    assert_eq!(found, vec![3, 40]);
    let sql = match store.backend() {
        patron_store::Backend::Sqlite => "SELECT id FROM t WHERE n IN rarray($1) ORDER BY n",
        patron_store::Backend::Postgres => "SELECT id FROM t WHERE n = ANY($1) ORDER BY n",
    };
    let found: Vec<String> = db
        .fetch(sql, vec![Bind::Ints(vec![49, 0, 1000])])
        .await
        .unwrap()
        .iter()
        .map(|row| row.text("id").unwrap())
        .collect();
    assert_eq!(found, vec!["id-0", "id-49"]);
}

async fn unique_violations_name_their_constraint(store: Store) {
    let tenant = store
        .create_tenant(&patron_store::admin::NewTenant {
            name: "Cafe".into(),
            currency: "VND".into(),
            time_zone: "Asia/Ho_Chi_Minh".into(),
        })
        .await
        .unwrap();
    let insert = "INSERT INTO users (id, tenant_id, email, name, role, password_hash, created_at) \
                  VALUES ($1, $2, $3, $4, $5, $6, $7)";
    let values =
        |id: &str, email: &str| binds![id, tenant.to_string(), email, "A", "owner", "x", 0_i64];
    store
        .db()
        .execute(insert, values("u1", "a@example.com"))
        .await
        .unwrap();
    let error: StoreError = store
        .db()
        .execute(insert, values("u2", "a@example.com"))
        .await
        .unwrap_err();
    assert!(error.is_unique_violation(), "{error}");
    assert_eq!(error.violated(), Some(Unique::UserEmail), "{error}");
    // The same id again violates the primary key, which is not one the callers tell apart.
    let error = store
        .db()
        .execute(insert, values("u1", "b@example.com"))
        .await
        .unwrap_err();
    assert!(error.is_unique_violation(), "{error}");
    assert_ne!(error.violated(), Some(Unique::UserEmail), "{error}");
}

async fn a_dropped_transaction_changes_nothing(store: Store) {
    let db = store.db();
    db.batch("CREATE TABLE t (n BIGINT NOT NULL)")
        .await
        .unwrap();
    {
        let mut tx = db.begin_write().await.unwrap();
        tx.execute("INSERT INTO t (n) VALUES ($1)", binds![1_i64])
            .await
            .unwrap();
        // Dropped without commit.
    }
    let mut tx = db.begin_write().await.unwrap();
    tx.execute("INSERT INTO t (n) VALUES ($1)", binds![2_i64])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let rows = db.fetch("SELECT n FROM t", vec![]).await.unwrap();
    let values: Vec<i64> = rows.iter().map(|row| row.int("n").unwrap()).collect();
    assert_eq!(values, vec![2]);
}
