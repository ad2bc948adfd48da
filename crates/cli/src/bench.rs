//! `patron bench ingest`: purchases through the whole engine (journal, rules, ledger, lots,
//! tiers) against a floor measured in the same run on the same database: raw inserts of the
//! same rows with prepared statements in batched transactions.

use anyhow::Context;
use patron_core::event::{Item, Purchase};
use patron_core::time::to_micros;
use patron_core::{EventId, Money, Phone, Points, TenantId};
use patron_store::admin::NewTenant;
use patron_store::{
    DatabaseConfig, IncomingEvent, IncomingKind, Journal, JournalConfig, MemberRef, Store,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::Connection;
use std::time::Instant;

#[derive(clap::Subcommand)]
pub enum Bench {
    /// Events per second through the engine, and the floor.
    Ingest(IngestArgs),
    /// HTTP requests per second and latency of the served API, and the floor (`/healthz`).
    Api(crate::bench_api::ApiArgs),
    /// Server time and size of the web pages over the demo's data, and the floor (`/healthz`).
    Pages(crate::bench_pages::PagesArgs),
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendChoice {
    Sqlite,
    Postgres,
}

#[derive(clap::Args)]
pub struct IngestArgs {
    #[arg(long, value_enum, default_value = "sqlite")]
    backend: BackendChoice,
    /// Members enrolled before the run (not timed).
    #[arg(long, default_value_t = 1_000_000)]
    members: usize,
    /// Purchase events in the timed run.
    #[arg(long, default_value_t = 200_000)]
    events: usize,
    /// PostgreSQL server to create the benchmark database on.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres: String,
    /// Concurrent submitters feeding the journal.
    #[arg(long, default_value_t = 8)]
    submitters: usize,
    /// Events per transaction in the floor (the journal's batches are up to 1024 too).
    #[arg(long, default_value_t = 1024)]
    floor_batch: usize,
}

pub async fn run(bench: Bench) -> anyhow::Result<()> {
    match bench {
        Bench::Ingest(args) => ingest(args).await,
        Bench::Api(args) => crate::bench_api::run(args).await,
        Bench::Pages(args) => crate::bench_pages::run(args).await,
    }
}

pub(crate) fn bench_phone(index: usize) -> Phone {
    Phone::parse(&format!("03{:08}", index)).expect("a valid bench phone")
}

/// A fresh database for the run; PostgreSQL ones are dropped afterwards.
pub(crate) struct BenchDatabase {
    pub(crate) url: String,
    postgres_admin: Option<(String, String)>,
}

impl BenchDatabase {
    pub(crate) async fn create(
        backend: BackendChoice,
        postgres: &str,
    ) -> anyhow::Result<BenchDatabase> {
        let suffix = uuid::Uuid::now_v7().simple().to_string();
        match backend {
            BackendChoice::Sqlite => {
                let path = std::env::temp_dir().join(format!("patron-bench-{suffix}.db"));
                Ok(BenchDatabase {
                    url: format!("sqlite://{}", path.display()),
                    postgres_admin: None,
                })
            }
            BackendChoice::Postgres => {
                let name = format!("patron_bench_{suffix}");
                let mut connection = sqlx::postgres::PgConnection::connect(postgres)
                    .await
                    .context("connect to PostgreSQL")?;
                sqlx::Executor::execute(
                    &mut connection,
                    format!("CREATE DATABASE {name}").as_str(),
                )
                .await?;
                let base = &postgres[..postgres
                    .rfind('/')
                    .context("postgres url needs a database")?];
                Ok(BenchDatabase {
                    url: format!("{base}/{name}"),
                    postgres_admin: Some((postgres.to_owned(), name)),
                })
            }
        }
    }

    pub(crate) async fn drop(self) -> anyhow::Result<()> {
        match self.postgres_admin {
            Some((admin, name)) => {
                let mut connection = sqlx::postgres::PgConnection::connect(&admin).await?;
                sqlx::Executor::execute(
                    &mut connection,
                    format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str(),
                )
                .await?;
            }
            None => {
                let path = self.url.trim_start_matches("sqlite://");
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{path}{suffix}"));
                }
            }
        }
        Ok(())
    }
}

/// One benchmark purchase: member, amount, lines.
struct Sample {
    member: usize,
    amount: i64,
    cakes: i64,
}

fn samples(count: usize, members: usize, seed: u64) -> Vec<Sample> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..count)
        .map(|_| {
            let cakes = if rng.random_bool(0.3) {
                rng.random_range(1..=2)
            } else {
                0
            };
            Sample {
                member: rng.random_range(0..members),
                amount: rng.random_range(2..=30) * 10_000 + cakes * 35_000,
                cakes,
            }
        })
        .collect()
}

async fn ingest(args: IngestArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.members > 0 && args.events > 0,
        "members and events must be more than 0"
    );
    let database = BenchDatabase::create(args.backend, &args.postgres).await?;
    let mut config = DatabaseConfig::new(database.url.clone());
    config.connections_max = 4;
    let store = Store::open(&config).await?;
    let tenant = store
        .create_tenant(&NewTenant::vietnamese("Bench Café"))
        .await?;
    store.create_store(tenant, "S1", "Store 1").await?;
    let now = chrono::Utc::now();
    store
        .publish_programme(
            tenant,
            crate::demo::cafe_programme(),
            now - chrono::Duration::days(30),
        )
        .await?;
    let started = Instant::now();
    let phones: Vec<Phone> = (0..args.members).map(bench_phone).collect();
    let member_ids = store.bulk_enrol(tenant, &phones).await?;
    println!(
        "backend {:?}: enrolled {} members in {:.1} s (not timed)",
        store.backend(),
        args.members,
        started.elapsed().as_secs_f64()
    );

    let sqlite_path = database.url.strip_prefix("sqlite://").map(str::to_owned);
    let floor = floor_run(
        &store,
        sqlite_path.as_deref(),
        tenant,
        &member_ids,
        &samples(args.events, args.members, 7),
        args.floor_batch,
    )
    .await?;
    println!(
        "floor:  {:>9.0} events/s  ({} events as single-row prepared statements of the same rows, {} per transaction)",
        floor, args.events, args.floor_batch
    );
    let engine = engine_run(
        &store,
        tenant,
        &samples(args.events, args.members, 11),
        args.submitters,
    )
    .await?;
    println!("engine: {engine:>9.0} events/s  ({} purchases through journal, rules, ledger, lots, tiers)", args.events);
    println!("ratio:  {:.2}× floor", engine / floor);
    let check = store.check_ledger().await?;
    println!(
        "ledger: {} transactions, sound: {} (entries balance, balances = entries = lots)",
        check.transactions,
        check.is_sound()
    );
    store.close().await;
    database.drop().await?;
    anyhow::ensure!(
        check.is_sound(),
        "the ledger is not sound after the benchmark"
    );
    Ok(())
}

async fn engine_run(
    store: &Store,
    tenant: TenantId,
    samples: &[Sample],
    submitters: usize,
) -> anyhow::Result<f64> {
    let occurred_at = chrono::Utc::now() - chrono::Duration::seconds(1);
    let events: Vec<IncomingEvent> = samples
        .iter()
        .enumerate()
        .map(|(index, sample)| {
            let mut items = vec![Item {
                sku: "coffee".into(),
                category: "coffee".into(),
                quantity: 1,
                amount: Money(sample.amount - sample.cakes * 35_000),
            }];
            if sample.cakes > 0 {
                items.push(Item {
                    sku: "cake".into(),
                    category: "cake".into(),
                    quantity: sample.cakes,
                    amount: Money(sample.cakes * 35_000),
                });
            }
            IncomingEvent {
                tenant_id: tenant,
                id: EventId::parse(&format!("bench-{index}")).expect("valid id"),
                occurred_at,
                body_hash: format!("bench-{index}"),
                kind: IncomingKind::Purchase {
                    member: MemberRef::Phone(bench_phone(sample.member)),
                    purchase: Purchase {
                        store: Some("S1".into()),
                        amount: Money(sample.amount),
                        points_paid: Points(0),
                        items,
                    },
                    profile: None,
                },
                actor: Some("cli".into()),
                store_scope: None,
            }
        })
        .collect();
    let (journal, writer) = Journal::start(store.clone(), JournalConfig::default());
    let per_submitter = events.len().div_ceil(submitters.max(1));
    let started = Instant::now();
    let mut tasks = Vec::new();
    let mut events = events.into_iter();
    loop {
        let share: Vec<IncomingEvent> = events.by_ref().take(per_submitter).collect();
        if share.is_empty() {
            break;
        }
        let journal = journal.clone();
        tasks.push(tokio::spawn(async move {
            let mut rejected = 0usize;
            for chunk in share.chunks(256) {
                rejected += journal
                    .submit_all(chunk.to_vec())
                    .await
                    .iter()
                    .filter(|answer| answer.is_err())
                    .count();
            }
            rejected
        }));
    }
    let mut rejected = 0;
    for task in tasks {
        rejected += task.await?;
    }
    let seconds = started.elapsed().as_secs_f64();
    journal.stop().await;
    writer.await?;
    anyhow::ensure!(rejected == 0, "{rejected} benchmark events were rejected");
    Ok(samples.len() as f64 / seconds)
}

/// A value of a floor row.
enum FloorValue {
    Int(i64),
    Text(String),
    Null,
}

/// The rows one purchase writes, as single-row statements: event, transaction, two entries,
/// lot, member balance, monthly totals.
fn floor_statements(
    tenant: &str,
    member: &str,
    sample: &Sample,
    index: usize,
    at: i64,
) -> Vec<(&'static str, Vec<FloorValue>)> {
    use FloorValue::{Int, Null, Text};
    let points = sample.amount / 10_000;
    let transaction_id = uuid::Uuid::now_v7().to_string();
    let lot_id = uuid::Uuid::now_v7().to_string();
    let event_id = format!("floor-{index}");
    vec![
        (
            "INSERT INTO events (tenant_id, event_id, kind, member_id, occurred_at, recorded_at, body_hash, result, \
             amount, eligible_amount, points_earned, lot_id, refunded_amount, points_taken_back, month) \
             VALUES ($1, $2, 'purchase', $3, $4, $4, $5, $6, $7, $7, $8, $9, 0, 0, 683)",
            vec![
                Text(tenant.into()),
                Text(event_id.clone()),
                Text(member.into()),
                Int(at),
                Text(event_id.clone()),
                Text(format!("{{\"event_id\":\"{event_id}\",\"points_earned\":{points},\"balance\":{points}}}")),
                Int(sample.amount),
                Int(points),
                Text(lot_id.clone()),
            ],
        ),
        (
            "INSERT INTO ledger_transactions (id, tenant_id, member_id, event_id, kind, reason, occurred_at, recorded_at) \
             VALUES ($1, $2, $3, $4, 'earn', $5, $6, $6)",
            vec![
                Text(transaction_id.clone()),
                Text(tenant.into()),
                Text(member.into()),
                Text(event_id.clone()),
                Text(format!("{{\"event_id\":\"{event_id}\",\"lines\":[{{\"rule\":\"base\",\"points\":{points}}}]}}")),
                Int(at),
            ],
        ),
        (
            "INSERT INTO ledger_entries (transaction_id, tenant_id, account, member_id, asset, amount) \
             VALUES ($1, $2, 'issued', $3, 'points', $4)",
            vec![Text(transaction_id.clone()), Text(tenant.into()), Null, Int(-points)],
        ),
        (
            "INSERT INTO ledger_entries (transaction_id, tenant_id, account, member_id, asset, amount) \
             VALUES ($1, $2, 'member', $3, 'points', $4)",
            vec![Text(transaction_id), Text(tenant.into()), Text(member.into()), Int(points)],
        ),
        (
            "INSERT INTO lots (id, tenant_id, member_id, asset, earned, remaining, matures_at, expires_at, created_at) \
             VALUES ($1, $2, $3, 'points', $4, $4, $5, $5, $5)",
            vec![Text(lot_id), Text(tenant.into()), Text(member.into()), Int(points), Int(at)],
        ),
        (
            "UPDATE members SET points_balance = points_balance + $1, order_count = order_count + 1, updated_at = $2 \
             WHERE id = $3",
            vec![Int(points), Int(at), Text(member.into())],
        ),
        (
            "INSERT INTO member_periods (member_id, month, spend, points) VALUES ($1, 683, $2, $3) \
             ON CONFLICT (member_id, month) DO UPDATE SET spend = member_periods.spend + excluded.spend, \
             points = member_periods.points + excluded.points",
            vec![Text(member.into()), Int(sample.amount), Int(points)],
        ),
    ]
}

/// Writes, for each sample, the rows a purchase writes, one prepared statement per row,
/// `batch` events per transaction: with rusqlite on SQLite (the fastest way to SQLite from
/// Rust), with sqlx on PostgreSQL. Returns events per second.
async fn floor_run(
    store: &Store,
    sqlite_path: Option<&str>,
    tenant: TenantId,
    member_ids: &[patron_core::MemberId],
    samples: &[Sample],
    batch: usize,
) -> anyhow::Result<f64> {
    let tenant = tenant.to_string();
    let at = to_micros(chrono::Utc::now());
    let batch = batch.max(1);
    let started = Instant::now();
    match sqlite_path {
        Some(path) => {
            let mut connection = rusqlite::Connection::open(path)?;
            connection.execute_batch(store.sqlite_pragmas())?;
            for (chunk_index, chunk) in samples.chunks(batch).enumerate() {
                let transaction = connection.transaction()?;
                for (offset, sample) in chunk.iter().enumerate() {
                    let member = member_ids[sample.member].to_string();
                    for (sql, values) in
                        floor_statements(&tenant, &member, sample, chunk_index * batch + offset, at)
                    {
                        let mut statement = transaction.prepare_cached(sql)?;
                        for (position, value) in values.iter().enumerate() {
                            match value {
                                FloorValue::Int(value) => {
                                    statement.raw_bind_parameter(position + 1, value)?
                                }
                                FloorValue::Text(value) => {
                                    statement.raw_bind_parameter(position + 1, value.as_str())?
                                }
                                FloorValue::Null => statement
                                    .raw_bind_parameter(position + 1, rusqlite::types::Null)?,
                            }
                        }
                        statement.raw_execute()?;
                    }
                }
                transaction.commit()?;
            }
        }
        None => {
            let mut connection = store.pool().acquire().await?;
            for (chunk_index, chunk) in samples.chunks(batch).enumerate() {
                let mut transaction = connection.begin().await?;
                for (offset, sample) in chunk.iter().enumerate() {
                    let member = member_ids[sample.member].to_string();
                    for (sql, values) in
                        floor_statements(&tenant, &member, sample, chunk_index * batch + offset, at)
                    {
                        let mut query = sqlx::query(sql);
                        for value in values {
                            query = match value {
                                FloorValue::Int(value) => query.bind(value),
                                FloorValue::Text(value) => query.bind(value),
                                FloorValue::Null => query.bind(None::<String>),
                            };
                        }
                        query.execute(&mut *transaction).await?;
                    }
                }
                transaction.commit().await?;
            }
        }
    }
    Ok(samples.len() as f64 / started.elapsed().as_secs_f64())
}
