//! Scale-out seeding for the benchmarks that need tens of millions of rows: the demo's history,
//! generated through the engine at a fraction of the size, is copied in set-based SQL with
//! fresh ids until it reaches the size asked for. Every copy is a consistent ledger of its own
//! (its members' balances are the sums of their entries and of their lots, as in the
//! original), so the ledger check holds on the whole; the copies share the tenant, its stores,
//! rewards and programme. Vouchers' recorded allocations still name the original's lots (only a
//! cancellation reads them), and the audit log is not copied.

use patron_core::TenantId;
use patron_store::db::Bind;
use patron_store::{Backend, Store};

/// How a copied column changes.
#[derive(Clone, Copy)]
enum Copied {
    /// A UUID: its first 8 hex digits become the copy's number.
    Id,
    /// The sender's event id: `~k` appended.
    EventId,
    /// A voucher code: its first 2 characters become the copy's number in lowercase letters
    /// (copies < 256), which no code has.
    VoucherCode,
    /// A demo phone `+8491xxxxxxx`: its number moves up by `k × members`.
    Phone,
    /// The search spelling of that phone, made again from it.
    SearchPhone,
    /// An event's stored answer: the member's id in it replaced by the copy's.
    Answer,
}

/// The tables copied, each with its changed columns, in an order where a table filtered
/// through another (`member_periods` through `members`, `lot_allocations` through
/// `ledger_transactions`) is copied before that one grows.
const TABLES: &[(&str, &[(&str, Copied)])] = &[
    (
        "lot_allocations",
        &[("transaction_id", Copied::Id), ("lot_id", Copied::Id)],
    ),
    ("member_periods", &[("member_id", Copied::Id)]),
    ("member_balances", &[("member_id", Copied::Id)]),
    ("expiry_notices", &[("member_id", Copied::Id)]),
    ("event_lines", &[("event_id", Copied::EventId)]),
    (
        "ledger_entries",
        &[("transaction_id", Copied::Id), ("member_id", Copied::Id)],
    ),
    ("lots", &[("id", Copied::Id), ("member_id", Copied::Id)]),
    (
        "tier_history",
        &[
            ("id", Copied::Id),
            ("member_id", Copied::Id),
            ("event_id", Copied::EventId),
        ],
    ),
    (
        "vouchers",
        &[
            ("code", Copied::VoucherCode),
            ("member_id", Copied::Id),
            ("redemption_transaction", Copied::Id),
        ],
    ),
    (
        "events",
        &[
            ("event_id", Copied::EventId),
            ("member_id", Copied::Id),
            ("lot_id", Copied::Id),
            ("result", Copied::Answer),
        ],
    ),
    (
        "ledger_transactions",
        &[
            ("id", Copied::Id),
            ("member_id", Copied::Id),
            ("event_id", Copied::EventId),
        ],
    ),
    (
        "members",
        &[
            ("id", Copied::Id),
            ("phone", Copied::Phone),
            ("search_phone", Copied::SearchPhone),
        ],
    ),
];

/// Most copies: voucher codes give the copy number two hex digits.
pub const COPIES_MAX: u32 = 255;

/// The copy's number `k` as `digits` lowercase hex digits, in SQL.
fn hex(backend: Backend, digits: usize) -> String {
    match backend {
        Backend::Sqlite => format!("printf('%0{digits}x', c.k)"),
        Backend::Postgres => format!("lpad(to_hex(c.k), {digits}, '0')"),
    }
}

/// The expression a copied column takes (`x` is the original row; `c.k` the copy's number;
/// `$2` the members of one copy).
fn expression(backend: Backend, column: &str, copied: Copied) -> String {
    let phone = "'+849' || CAST(CAST(substr(x.phone, 5) AS BIGINT) + c.k * $2 AS TEXT)";
    match copied {
        Copied::Id => format!("{} || substr(x.{column}, 9)", hex(backend, 8)),
        Copied::EventId => format!("x.{column} || '~' || CAST(c.k AS TEXT)"),
        // Two lowercase letters: never in a code's alphabet, so never an original's code.
        Copied::VoucherCode => {
            let letter = |number: &str| match backend {
                Backend::Sqlite => format!("char(97 + {number})"),
                Backend::Postgres => format!("chr(CAST(97 + {number} AS INTEGER))"),
            };
            format!(
                "{} || {} || substr(x.{column}, 3)",
                letter("c.k / 16"),
                letter("c.k % 16")
            )
        }
        Copied::Phone => format!("CASE WHEN x.phone IS NULL THEN NULL ELSE {phone} END"),
        Copied::SearchPhone => format!(
            "CASE WHEN x.phone IS NULL THEN NULL ELSE '0' || substr({phone}, 4) || ' ' || substr({phone}, 2) END"
        ),
        Copied::Answer => format!(
            "replace(x.{column}, x.member_id, {} || substr(x.member_id, 9))",
            hex(backend, 8)
        ),
    }
}

/// The columns of `table`, in order.
async fn columns(store: &Store, table: &str) -> anyhow::Result<Vec<String>> {
    let sql = match store.backend() {
        Backend::Sqlite => "SELECT name FROM pragma_table_info($1) ORDER BY cid",
        Backend::Postgres => {
            "SELECT column_name AS name FROM information_schema.columns \
             WHERE table_name = $1 AND table_schema = current_schema() ORDER BY ordinal_position"
        }
    };
    store
        .db()
        .fetch(sql, vec![Bind::from(table.to_owned())])
        .await?
        .iter()
        .map(|row| Ok(row.text("name")?))
        .collect()
}

/// Which of `table`'s rows belong to the tenant `$1`.
fn tenant_rows(table: &str) -> &'static str {
    match table {
        "member_periods" => "x.member_id IN (SELECT id FROM members WHERE tenant_id = $1)",
        "lot_allocations" => {
            "x.transaction_id IN (SELECT id FROM ledger_transactions WHERE tenant_id = $1)"
        }
        _ => "x.tenant_id = $1",
    }
}

/// Copies the tenant's member history `copies - 1` times (the original is copy 0); `members`
/// is how many members the original has (the phones of copy `k` start `k × members` higher).
/// Then rebuilds the tenant's kept figures. Returns the seconds each table took.
pub async fn scale_out(
    store: &Store,
    tenant: TenantId,
    copies: u32,
    members: usize,
) -> anyhow::Result<Vec<(&'static str, f64)>> {
    anyhow::ensure!(
        (1..=COPIES_MAX).contains(&copies),
        "copies must be 1 to {COPIES_MAX}"
    );
    let mut timings = Vec::new();
    if copies == 1 {
        return Ok(timings);
    }
    let db = store.db();
    db.batch("CREATE TABLE IF NOT EXISTS bench_copies (k BIGINT PRIMARY KEY)")
        .await?;
    db.execute("DELETE FROM bench_copies", Vec::new()).await?;
    for k in 1..i64::from(copies) {
        db.execute("INSERT INTO bench_copies (k) VALUES ($1)", vec![k.into()])
            .await?;
    }
    for (table, changed) in TABLES {
        let started = std::time::Instant::now();
        let names = columns(store, table).await?;
        let values: Vec<String> = names
            .iter()
            .map(|name| {
                changed
                    .iter()
                    .find(|(column, _)| column == name)
                    .map(|(column, copied)| expression(store.backend(), column, *copied))
                    .unwrap_or_else(|| format!("x.{name}"))
            })
            .collect();
        // The tenant's rows are chosen first, so `$1` and `$2` first appear in order (SQLite
        // numbers `$n` by first appearance).
        let sql = format!(
            "WITH x AS (SELECT * FROM {table} x WHERE {} AND $2 >= 0) \
             INSERT INTO {table} ({}) SELECT {} FROM x CROSS JOIN bench_copies c",
            tenant_rows(table),
            names.join(", "),
            values.join(", "),
        );
        db.execute(
            &sql,
            vec![Bind::from(tenant.to_string()), Bind::from(members as i64)],
        )
        .await?;
        // SQLite: start the WAL over after each table, so the next statements (and the
        // rebuild's reads) do not wade through gigabytes of it.
        if store.backend() == Backend::Sqlite {
            db.batch("PRAGMA wal_checkpoint(TRUNCATE)").await?;
        }
        timings.push((*table, started.elapsed().as_secs_f64()));
    }
    db.batch("DROP TABLE bench_copies").await?;
    let started = std::time::Instant::now();
    store.rebuild_figures(tenant).await?;
    timings.push(("figures rebuilt", started.elapsed().as_secs_f64()));
    Ok(timings)
}

/// The id of `original`'s copy `k` (see [`Copied::Id`]).
pub fn copied_id(original: &str, k: u32) -> String {
    if k == 0 {
        return original.to_owned();
    }
    format!("{k:08x}{}", &original[8..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::{demo_phone, DemoArgs};
    use patron_store::MemberRef;

    async fn copies_are_consistent_ledgers(store: Store) {
        let (tenant, _) = crate::demo::generate(&store, &DemoArgs::sized(120, 1_200))
            .await
            .unwrap();
        let before = store.check_ledger().await.unwrap();
        let lots = |store: &Store| {
            let store = store.clone();
            async move { patron_testkit::scalar(&store, "SELECT COUNT(*) FROM lots", vec![]).await }
        };
        let lots_before = lots(&store).await;
        assert!(lots_before > 0);
        let timings = scale_out(&store, tenant, 3, 120).await.unwrap();
        assert!(timings.iter().any(|(table, _)| *table == "events"));
        let after = store.check_ledger().await.unwrap();
        assert!(after.is_sound(), "{after:?}");
        assert_eq!(after.members, before.members * 3);
        assert_eq!(after.events, before.events * 3);
        assert_eq!(after.transactions, before.transactions * 3);
        assert_eq!(lots(&store).await, lots_before * 3);
        let now = chrono::Utc::now();
        let original = store
            .member(tenant, &MemberRef::Phone(demo_phone(5)), now)
            .await
            .unwrap();
        // Copy 2 of member 5 has the phone of member 5 + 2 × 120, and the same balance.
        let copy = store
            .member(tenant, &MemberRef::Phone(demo_phone(5 + 2 * 120)), now)
            .await
            .unwrap();
        assert_eq!(copy.id, copied_id(&original.id, 2));
        assert_eq!(copy.balance, original.balance);
        assert_eq!(copy.tier.tier, original.tier.tier);
        // The kept figures count every copy: three times the original's purchases.
        let query = patron_store::stats::StatsQuery {
            tenant_id: tenant,
            from: chrono::DateTime::parse_from_rfc3339("2000-01-01T00:00:00+07:00")
                .unwrap()
                .with_timezone(&chrono::Utc),
            until: chrono::DateTime::parse_from_rfc3339("2100-01-01T00:00:00+07:00")
                .unwrap()
                .with_timezone(&chrono::Utc),
            store: None,
        };
        assert_eq!(
            store.overview(&query).await.unwrap(),
            store.overview_scanned(&query).await.unwrap()
        );
    }

    /// As many copies as there may be: every copied voucher code, event id and id is new.
    async fn the_most_copies_collide_with_nothing(store: Store) {
        let (tenant, _) = crate::demo::generate(&store, &DemoArgs::sized(40, 600))
            .await
            .unwrap();
        let vouchers =
            patron_testkit::scalar(&store, "SELECT COUNT(*) FROM vouchers", vec![]).await;
        assert!(vouchers > 0);
        scale_out(&store, tenant, COPIES_MAX, 40).await.unwrap();
        assert_eq!(
            patron_testkit::scalar(&store, "SELECT COUNT(*) FROM vouchers", vec![]).await,
            vouchers * i64::from(COPIES_MAX)
        );
        assert!(store.check_ledger().await.unwrap().is_sound());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_most_copies_collide_with_nothing_on_sqlite() {
        the_most_copies_collide_with_nothing(patron_testkit::fresh_store(false).await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_most_copies_collide_with_nothing_on_postgres() {
        the_most_copies_collide_with_nothing(patron_testkit::fresh_store(true).await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn copies_are_consistent_ledgers_on_sqlite() {
        copies_are_consistent_ledgers(patron_testkit::fresh_store(false).await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn copies_are_consistent_ledgers_on_postgres() {
        copies_are_consistent_ledgers(patron_testkit::fresh_store(true).await).await;
    }
}
