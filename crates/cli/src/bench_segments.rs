//! `patron bench segments`: how long a 3-condition segment takes to count over a million
//! members, against DuckDB counting the same condition over the same members in the same run
//! (`scripts/duckdb_segments.py`, which installs duckdb from PyPI when missing).
//!
//! The members are generated in SQL (a spread of tiers, spend, recency, stores), not through
//! the engine: the benchmark is of the segment, not of ingest. Timed: the count as the API
//! answers it (`App::count_segment`: compile, look for changed members, select, count), and
//! the plan alone over the same table; DuckDB's median over the same number of runs is the floor.

use crate::bench::{BackendChoice, BenchDatabase};
use anyhow::Context;
use patron_app::{App, Grant};
use patron_core::segment::{Condition, Table};
use patron_store::audit::Actor;
use patron_store::users::Role;
use patron_store::{Backend, DatabaseConfig, Journal, JournalConfig, Store};
use std::io::Write;
use std::time::Instant;

/// Goal (issue 12): the count takes less than this.
const COUNT_GOAL_MS: f64 = 500.0;
/// Goal: at most this many times DuckDB's time.
const DUCKDB_RATIO_GOAL: f64 = 1.5;
/// The segment of the issue.
const CONDITION: &str = r#"member.tier == "gold" && member.spend_90d >= 2000000 && member.days_since_last_purchase >= 30"#;
/// The same, as DuckDB's WHERE over the exported columns.
const DUCKDB_WHERE: &str =
    "tier = 'gold' AND spend_90d >= 2000000 AND days_since_last_purchase >= 30";

#[derive(clap::Args)]
pub struct SegmentsArgs {
    #[arg(long, value_enum, default_value = "sqlite")]
    backend: BackendChoice,
    /// Members generated before the run.
    #[arg(long, default_value_t = 1_000_000)]
    members: usize,
    /// Timed counts (the median is reported).
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// PostgreSQL server to create the benchmark database on.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres: String,
    /// The DuckDB script (the floor).
    #[arg(long, default_value = "scripts/duckdb_segments.py")]
    duckdb_script: String,
}

pub async fn run(args: SegmentsArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.members > 0 && args.runs > 0,
        "members and runs must be more than 0"
    );
    let database = BenchDatabase::create(args.backend, &args.postgres).await?;
    let outcome = bench(&args, &database).await;
    database.drop().await?;
    outcome
}

/// The members of the tenant, made in one statement: row `i`'s fields are spread by
/// multiplying `i` by primes, so every run makes the same members.
pub(crate) fn seed_sql(backend: Backend, members: usize) -> [String; 2] {
    let (series, id, phone) = match backend {
        Backend::Sqlite => (
            format!(
                "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {}) ",
                members - 1
            ),
            "printf('%08x-0000-7000-8000-%012x', i, i)",
            "printf('+849%08d', i)",
        ),
        Backend::Postgres => (
            format!(
                "WITH n(i) AS (SELECT generate_series(0, {})::bigint) ",
                members - 1
            ),
            "lpad(to_hex(i), 8, '0') || '-0000-7000-8000-' || lpad(to_hex(i), 12, '0')",
            "'+849' || lpad(i::text, 8, '0')",
        ),
    };
    let day = 86_400_000_000i64;
    let members_sql = format!(
        "{series}INSERT INTO members (id, tenant_id, phone, tags, attributes, tier, tier_since, points_balance, \
         lifetime_spend, lifetime_points, order_count, day_points, rule_hits, created_at, updated_at) \
         SELECT {id}, $1, {phone}, '[]', '{{}}', \
         CASE WHEN (i * 7919) % 100 < 10 THEN 'gold' WHEN (i * 7919) % 100 < 30 THEN 'silver' ELSE 'member' END, \
         $2, (i * 31) % 5000, (1 + (i * 31) % 40) * (50000 + (i * 17) % 200000), 0, 1 + (i * 31) % 40, 0, '{{}}', \
         $2 - ((i * 13) % 700) * {day}, $2 - 3600000000 FROM n"
    );
    let profiles_sql = format!(
        "{series}INSERT INTO member_profiles (member_id, tenant_id, first_purchase_at, last_purchase_at, window_day, \
         spend_30d, spend_90d, spend_365d, visits_30d, visits_90d, visits_365d, favourite_store, favourite_category, updated_at) \
         SELECT {id}, $1, $2 - 400 * {day}, $2 - ((i * 104723) % 180) * {day}, $3, \
         ((i * 104729) % 5000) * 330, ((i * 104729) % 5000) * 1000, ((i * 104729) % 5000) * 3000, \
         (i * 3) % 4, (i * 3) % 9, (i * 3) % 25, 'S' || (i % 20), 'coffee', $2 - 3600000000 FROM n"
    );
    [members_sql, profiles_sql]
}

async fn bench(args: &SegmentsArgs, database: &BenchDatabase) -> anyhow::Result<()> {
    let store = Store::open(&DatabaseConfig::new(database.url.clone())).await?;
    let tenant = store
        .create_tenant(&patron_store::admin::NewTenant::vietnamese(
            "Bench segments",
        ))
        .await?;
    let now = chrono::Utc::now();
    let zone = store.tenant(tenant).await?.zone;
    let today = patron_store::figures::local_day(zone, now);
    let started = Instant::now();
    let micros = patron_core::time::to_micros(now);
    for sql in seed_sql(store.backend(), args.members) {
        store
            .db()
            .execute(
                &sql,
                vec![tenant.to_string().into(), micros.into(), today.into()]
                    .into_iter()
                    .take(if sql.contains("$3") { 3 } else { 2 })
                    .collect(),
            )
            .await?;
    }
    println!(
        "generated {} members with profiles in {:.1} s ({:?})",
        args.members,
        started.elapsed().as_secs_f64(),
        store.backend()
    );
    let (journal, writer) = Journal::start(store.clone(), JournalConfig::default());
    let app = App::new(store.clone(), journal.clone());
    let grant = Grant {
        tenant_id: tenant,
        role: Role::Owner,
        actor: Actor::cli(),
        store_code: None,
        bucket: "bench".into(),
    };
    let started = Instant::now();
    let (selected, of) = app.count_segment(&grant, CONDITION).await?;
    let load = started.elapsed().as_secs_f64();
    println!("member table loaded in {load:.1} s: {of} members, the segment holds {selected}");

    let mut counts = Vec::with_capacity(args.runs);
    for _ in 0..args.runs {
        let started = Instant::now();
        let (again, _) = app.count_segment(&grant, CONDITION).await?;
        counts.push(started.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(again == selected, "the count changed between runs");
    }
    // The plan alone, over a table of the same members.
    let mut table = Table::new(today, Default::default());
    let mut after = None;
    loop {
        let page = store
            .profiles_page(tenant, after, patron_store::segments::PROFILE_PAGE_MAX, now)
            .await?;
        for row in &page {
            table.upsert(row.member_id, &row.profile);
        }
        if page.len() < patron_store::segments::PROFILE_PAGE_MAX {
            break;
        }
        after = page.last().map(|row| row.member_id);
    }
    let condition = Condition::compile(CONDITION).expect("the benchmark's condition compiles");
    let mut plans = Vec::with_capacity(args.runs);
    for _ in 0..args.runs {
        let started = Instant::now();
        let count = condition.select(&table).count();
        plans.push(started.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(count == selected, "the plan and the API disagree");
    }

    let csv =
        std::env::temp_dir().join(format!("patron-bench-segments-{}.csv", std::process::id()));
    write_csv(&csv, &table)?;
    let floor = duckdb(&args.duckdb_script, &csv, args.runs);
    let _ = std::fs::remove_file(&csv);
    journal.stop().await;
    writer.await?;

    let count_ms = median(&mut counts);
    let plan_ms = median(&mut plans);
    println!("runs: {} each, median ms", args.runs);
    println!("  count (App::count_segment: compile, changes, select, count): {count_ms:.2} ms");
    println!("  plan alone (Condition::select over the table): {plan_ms:.2} ms");
    let ratio = match &floor {
        Ok(floor) => {
            anyhow::ensure!(
                floor.count == selected,
                "DuckDB counts {} members, Patron {selected}",
                floor.count
            );
            println!(
                "  floor: DuckDB {} ({} threads), same {} members, same count {}: {:.2} ms (loaded in {:.1} s)",
                floor.version, floor.threads, of, floor.count, floor.median_ms, floor.load_s
            );
            let ratio = count_ms / floor.median_ms;
            println!(
                "  ratio: {ratio:.2}× DuckDB (the plan alone {:.2}×)",
                plan_ms / floor.median_ms
            );
            Some(ratio)
        }
        Err(error) => {
            println!("  floor: DuckDB did not run: {error:#}");
            None
        }
    };
    println!("goals:");
    println!(
        "  3-condition segment over {} members < {COUNT_GOAL_MS} ms: {count_ms:.2} ms, {}",
        of,
        if count_ms < COUNT_GOAL_MS {
            "met"
        } else {
            "miss"
        }
    );
    println!(
        "  ≤ {DUCKDB_RATIO_GOAL}× DuckDB: {}, {}",
        ratio.map_or_else(|| "unknown".to_owned(), |ratio| format!("{ratio:.2}×")),
        if ratio.is_some_and(|ratio| ratio <= DUCKDB_RATIO_GOAL) {
            "met"
        } else {
            "miss"
        }
    );
    Ok(())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The members' fields the query reads (and a few more), one row per member.
fn write_csv(path: &std::path::Path, table: &Table) -> anyhow::Result<()> {
    use patron_core::segment::{IntField, TextField};
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(
        out,
        "tier,spend_90d,days_since_last_purchase,order_count,total_spend,favourite_store"
    )?;
    for row in table.live().ones() {
        let facts = table.facts(row);
        let int = |field| {
            facts
                .int(field)
                .map(|value| value.to_string())
                .unwrap_or_default()
        };
        writeln!(
            out,
            "{},{},{},{},{},{}",
            facts.text(TextField::Tier).unwrap_or_default(),
            int(IntField::Spend90d),
            int(IntField::DaysSinceLastPurchase),
            int(IntField::OrderCount),
            int(IntField::TotalSpend),
            facts.text(TextField::FavouriteStore).unwrap_or_default(),
        )?;
    }
    out.flush()?;
    Ok(())
}

struct Floor {
    version: String,
    threads: String,
    load_s: f64,
    count: usize,
    median_ms: f64,
}

/// Runs the DuckDB script on the CSV.
fn duckdb(script: &str, csv: &std::path::Path, runs: usize) -> anyhow::Result<Floor> {
    let output = std::process::Command::new("python3")
        .arg(script)
        .arg("--csv")
        .arg(csv)
        .arg("--where")
        .arg(DUCKDB_WHERE)
        .arg("--runs")
        .arg(runs.to_string())
        .output()
        .context("run python3")?;
    anyhow::ensure!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout)
        .with_context(|| String::from_utf8_lossy(&output.stdout).into_owned())?;
    let number = |key: &str| {
        answer[key]
            .as_f64()
            .with_context(|| format!("{key} in {answer}"))
    };
    Ok(Floor {
        version: answer["version"].as_str().unwrap_or("?").to_owned(),
        threads: answer["threads"].to_string(),
        load_s: number("load_s")?,
        count: number("count")? as usize,
        median_ms: number("median_ms")?,
    })
}
