//! `patron bench ingest`: purchases through the whole engine (journal, rules, ledger, lots,
//! tiers) against a floor measured in the same run on the same database: raw inserts of the
//! same rows with prepared statements in batched transactions.
//!
//! The engine run is long by default (2,000,000 events over 1,000,000 members) and is timed in
//! tenths, so that a rate that falls as the tables grow shows as decay, not as a lower average.

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
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio_postgres::types::{ToSql, Type};

/// Events per second the engine should reach on SQLite.
const ENGINE_GOAL_SQLITE: f64 = 20_000.0;
/// Events per second the engine should reach on PostgreSQL.
const ENGINE_GOAL_POSTGRES: f64 = 10_000.0;
/// Least engine rate as a share of the floor's.
const FLOOR_RATIO_GOAL: f64 = 0.5;
/// Least rate of the last tenth of the engine run as a share of the first tenth's.
const DECAY_GOAL: f64 = 0.8;
/// Parts the engine run is timed in.
const TENTHS: usize = 10;
/// Events one submitter hands the journal at once, and waits for before the next.
const SUBMIT_CHUNK: usize = 256;
/// Least events in a tenth, as a multiple of the events in flight (submitters × chunk), for the
/// tenths to be compared: answers come back a batch at a time, so a tenth's end is known only to
/// within a batch, and a short tenth can take the time of one commit or of none.
const TENTH_IN_FLIGHT_MIN: usize = 4;

/// Whether a run of `events` from `submitters` has tenths long enough to compare.
fn tenths_comparable(events: usize, submitters: usize) -> bool {
    events / TENTHS >= TENTH_IN_FLIGHT_MIN * submitters.max(1) * SUBMIT_CHUNK
}

#[derive(clap::Subcommand)]
pub enum Bench {
    /// Events per second through the engine, and the floor.
    Ingest(IngestArgs),
    /// HTTP requests per second and latency of the served API, and the floor (`/healthz`).
    Api(crate::bench_api::ApiArgs),
    /// Server time and size of the web pages over the demo's data, and the floor (`/healthz`).
    Pages(crate::bench_pages::PagesArgs),
    /// A 3-condition segment counted over a million members, and the floor (DuckDB).
    Segments(crate::bench_segments::SegmentsArgs),
    /// A campaign to a million members rendered and queued, and the floor (the same rows
    /// written).
    Campaigns(crate::bench_campaigns::CampaignsArgs),
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
    #[arg(long, default_value_t = 2_000_000)]
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
        Bench::Segments(args) => crate::bench_segments::run(args).await,
        Bench::Campaigns(args) => crate::bench_campaigns::run(args).await,
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
    /// A database made before (never dropped here).
    pub(crate) fn existing(url: &str) -> BenchDatabase {
        BenchDatabase {
            url: url.to_owned(),
            postgres_admin: None,
        }
    }

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
                postgres_execute(postgres, &format!("CREATE DATABASE {name}")).await?;
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
                postgres_execute(
                    &admin,
                    &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
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

/// One connection to PostgreSQL through its native driver; the driver's connection task runs
/// beside it and ends when the client is dropped.
async fn postgres_connect(url: &str) -> anyhow::Result<PostgresConnection> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("connect to PostgreSQL at {}", without_password(url)))?;
    Ok(PostgresConnection {
        client,
        task: tokio::spawn(connection),
    })
}

struct PostgresConnection {
    client: tokio_postgres::Client,
    task: tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>,
}

impl PostgresConnection {
    /// Drops the client and waits for the connection task, so its error is not lost.
    async fn close(self) -> anyhow::Result<()> {
        drop(self.client);
        self.task.await??;
        Ok(())
    }
}

/// Runs one statement outside a transaction (`CREATE DATABASE` cannot run inside one).
async fn postgres_execute(url: &str, sql: &str) -> anyhow::Result<()> {
    let connection = postgres_connect(url).await?;
    connection
        .client
        .batch_execute(sql)
        .await
        .with_context(|| format!("PostgreSQL: {sql}"))?;
    connection.close().await
}

/// A URL fit for an error message: `postgres://user:secret@host` shows as `postgres://user@host`.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((credentials, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    let user = credentials.split(':').next().unwrap_or_default();
    format!("{scheme}://{user}@{host}")
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
        thousands(args.members as f64),
        started.elapsed().as_secs_f64()
    );

    let target = match args.backend {
        BackendChoice::Sqlite => FloorTarget::Sqlite {
            path: database
                .url
                .strip_prefix("sqlite://")
                .context("a SQLite bench url starts with sqlite://")?,
            pragmas: store.sqlite_pragmas(),
        },
        BackendChoice::Postgres => FloorTarget::Postgres { url: &database.url },
    };
    let floor = floor_run(
        target,
        tenant,
        &member_ids,
        &samples(args.events, args.members, 7),
        args.floor_batch,
    )
    .await?;
    println!(
        "floor:  {:>9} events/s  ({} events as single-row prepared statements of the same rows, {} per transaction)",
        thousands(floor),
        thousands(args.events as f64),
        args.floor_batch
    );
    let engine = engine_run(
        &store,
        tenant,
        &samples(args.events, args.members, 11),
        args.submitters,
    )
    .await?;
    for (index, rate) in engine.tenths.iter().enumerate() {
        match rate {
            Some(rate) => println!("tenth {}: {} events/s", index + 1, thousands(*rate)),
            None => println!(
                "tenth {}: answered together with the tenth before (run more events)",
                index + 1
            ),
        }
    }
    let decay = engine.decay();
    match decay {
        Some(decay) => println!("decay: {decay:.2}× (last tenth / first tenth)"),
        None => println!(
            "decay: unknown (a tenth of fewer than {} events, {TENTH_IN_FLIGHT_MIN}× those in flight, is not timed well enough)",
            thousands((TENTH_IN_FLIGHT_MIN * args.submitters.max(1) * SUBMIT_CHUNK) as f64)
        ),
    }
    let engine_rate = engine.rate();
    println!(
        "engine: {:>9} events/s  ({} purchases through journal, rules, ledger, lots, tiers)",
        thousands(engine_rate),
        thousands(args.events as f64)
    );
    println!("ratio:  {:.2}× floor", engine_rate / floor);
    println!("goals:");
    for goal in goals(args.backend, engine_rate, floor, decay) {
        println!("{goal}");
    }
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

/// `1234567.8` as `1,234,568`: rates and counts rounded to whole units.
fn thousands(value: f64) -> String {
    if !value.is_finite() {
        return value.to_string();
    }
    let digits = format!("{:.0}", value.abs());
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if value.round() < 0.0 {
        grouped.push('-');
    }
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

/// One line of the closing `goals:` block: `  NAME: FIGURE, met|miss`.
struct Goal {
    name: String,
    figure: String,
    met: bool,
}

impl std::fmt::Display for Goal {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verdict = if self.met { "met" } else { "miss" };
        write!(formatter, "  {}: {}, {verdict}", self.name, self.figure)
    }
}

/// The run's figures against the foundation issue's goals; an unknown decay is a miss.
fn goals(backend: BackendChoice, engine: f64, floor: f64, decay: Option<f64>) -> Vec<Goal> {
    let engine_goal = match backend {
        BackendChoice::Sqlite => ENGINE_GOAL_SQLITE,
        BackendChoice::Postgres => ENGINE_GOAL_POSTGRES,
    };
    let ratio = engine / floor;
    vec![
        Goal {
            name: format!("engine ≥ {} events/s", thousands(engine_goal)),
            figure: format!("{} events/s", thousands(engine)),
            met: engine >= engine_goal,
        },
        Goal {
            name: format!("engine ≥ {FLOOR_RATIO_GOAL}× floor"),
            figure: format!("{ratio:.2}×"),
            met: ratio >= FLOOR_RATIO_GOAL,
        },
        Goal {
            name: format!("last tenth ≥ {DECAY_GOAL}× first tenth"),
            figure: decay.map_or_else(|| "unknown".to_owned(), |decay| format!("{decay:.2}×")),
            met: decay.is_some_and(|decay| decay >= DECAY_GOAL),
        },
    ]
}

/// The timing of an engine run.
struct EngineRun {
    events: usize,
    seconds: f64,
    /// Events per second of each tenth; `None` for a tenth answered in the same chunk as the
    /// tenth before, which has no time of its own.
    tenths: Vec<Option<f64>>,
    /// Whether the tenths are long enough to compare ([`tenths_comparable`]).
    comparable: bool,
}

impl EngineRun {
    fn rate(&self) -> f64 {
        self.events as f64 / self.seconds
    }

    /// The last tenth's rate over the first's: below 1 when the engine slows down as it runs.
    fn decay(&self) -> Option<f64> {
        if !self.comparable {
            return None;
        }
        Some(self.tenths.last().copied()?? / self.tenths.first().copied()??)
    }
}

/// Events per second of each tenth of a run of `events`, from marks taken as answers came
/// back: (events answered so far, seconds since the start), in order. A tenth ends at the
/// first mark that reaches its share of the events, and counts the events answered since the
/// mark that ended the tenth before.
fn tenth_rates(events: usize, marks: &[(usize, f64)]) -> Vec<Option<f64>> {
    let mut rates = Vec::with_capacity(TENTHS);
    let mut previous = (0usize, 0.0f64);
    for tenth in 1..=TENTHS {
        let boundary = (events * tenth).div_ceil(TENTHS);
        let Some(&mark) = marks.iter().find(|(answered, _)| *answered >= boundary) else {
            rates.push(None);
            continue;
        };
        let seconds = mark.1 - previous.1;
        rates.push(
            (mark.0 > previous.0 && seconds > 0.0).then(|| (mark.0 - previous.0) as f64 / seconds),
        );
        previous = mark;
    }
    rates
}

async fn engine_run(
    store: &Store,
    tenant: TenantId,
    samples: &[Sample],
    submitters: usize,
) -> anyhow::Result<EngineRun> {
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
    // (events answered so far, seconds since the start), one mark per answered chunk.
    let marks: Arc<Mutex<Vec<(usize, f64)>>> = Arc::new(Mutex::new(Vec::with_capacity(
        events.len().div_ceil(SUBMIT_CHUNK) + submitters,
    )));
    let started = Instant::now();
    let mut tasks = Vec::new();
    let mut events = events.into_iter();
    loop {
        let share: Vec<IncomingEvent> = events.by_ref().take(per_submitter).collect();
        if share.is_empty() {
            break;
        }
        let journal = journal.clone();
        let marks = Arc::clone(&marks);
        tasks.push(tokio::spawn(async move {
            let mut rejected = 0usize;
            for chunk in share.chunks(SUBMIT_CHUNK) {
                rejected += journal
                    .submit_all(chunk.to_vec())
                    .await
                    .iter()
                    .filter(|answer| answer.is_err())
                    .count();
                // Timed under the lock, so the marks are in order of time as well as count.
                let mut marks = marks.lock().expect("no submitter panics holding the marks");
                let seconds = started.elapsed().as_secs_f64();
                let answered = marks.last().map_or(0, |(answered, _)| *answered) + chunk.len();
                marks.push((answered, seconds));
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
    let marks = marks.lock().expect("the submitters have finished");
    Ok(EngineRun {
        events: samples.len(),
        seconds,
        tenths: tenth_rates(samples.len(), &marks),
        comparable: tenths_comparable(samples.len(), submitters),
    })
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

/// Where the floor writes: the bench database, through the fastest plain client of each.
enum FloorTarget<'a> {
    Sqlite { path: &'a str, pragmas: &'a str },
    Postgres { url: &'a str },
}

/// Writes, for each sample, the rows a purchase writes, one prepared statement per row,
/// `batch` events per transaction: with rusqlite on SQLite (the fastest way to SQLite from
/// Rust), with tokio-postgres on PostgreSQL. Returns events per second.
async fn floor_run(
    target: FloorTarget<'_>,
    tenant: TenantId,
    member_ids: &[patron_core::MemberId],
    samples: &[Sample],
    batch: usize,
) -> anyhow::Result<f64> {
    let tenant = tenant.to_string();
    let batch = batch.max(1);
    let started = Instant::now();
    match target {
        FloorTarget::Sqlite { path, pragmas } => {
            sqlite_floor(path, pragmas, &tenant, member_ids, samples, batch)?
        }
        FloorTarget::Postgres { url } => {
            postgres_floor(url, &tenant, member_ids, samples, batch).await?
        }
    }
    Ok(samples.len() as f64 / started.elapsed().as_secs_f64())
}

fn sqlite_floor(
    path: &str,
    pragmas: &str,
    tenant: &str,
    member_ids: &[patron_core::MemberId],
    samples: &[Sample],
    batch: usize,
) -> anyhow::Result<()> {
    let at = to_micros(chrono::Utc::now());
    let mut connection = rusqlite::Connection::open(path)?;
    connection.execute_batch(pragmas)?;
    for (chunk_index, chunk) in samples.chunks(batch).enumerate() {
        let transaction = connection.transaction()?;
        for (offset, sample) in chunk.iter().enumerate() {
            let member = member_ids[sample.member].to_string();
            for (sql, values) in
                floor_statements(tenant, &member, sample, chunk_index * batch + offset, at)
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
                        FloorValue::Null => {
                            statement.raw_bind_parameter(position + 1, rusqlite::types::Null)?
                        }
                    }
                }
                statement.raw_execute()?;
            }
        }
        transaction.commit()?;
    }
    Ok(())
}

/// The PostgreSQL floor: one connection, each statement prepared once with its parameter types,
/// and a transaction's statements sent without waiting for each answer (the driver pipelines
/// them), so the floor is bounded by the server's work rather than by round trips.
async fn postgres_floor(
    url: &str,
    tenant: &str,
    member_ids: &[patron_core::MemberId],
    samples: &[Sample],
    batch: usize,
) -> anyhow::Result<()> {
    let at = to_micros(chrono::Utc::now());
    let mut connection = postgres_connect(url).await?;
    let Some(first) = samples.first() else {
        return connection.close().await;
    };
    // floor_statements gives the same statements in the same order for every sample, so the
    // first sample's are prepared once and used by position.
    let mut statements = Vec::new();
    for (sql, values) in
        floor_statements(tenant, &member_ids[first.member].to_string(), first, 0, at)
    {
        let types: Vec<Type> = values.iter().map(FloorValue::postgres_type).collect();
        statements.push(
            connection
                .client
                .prepare_typed(sql, &types)
                .await
                .with_context(|| format!("prepare {sql}"))?,
        );
    }
    for (chunk_index, chunk) in samples.chunks(batch).enumerate() {
        let rows: Vec<Vec<FloorValue>> = chunk
            .iter()
            .enumerate()
            .flat_map(|(offset, sample)| {
                let member = member_ids[sample.member].to_string();
                floor_statements(tenant, &member, sample, chunk_index * batch + offset, at)
                    .into_iter()
                    .map(|(_, values)| values)
            })
            .collect();
        let transaction = connection.client.transaction().await?;
        let pending = rows
            .iter()
            .zip(statements.iter().cycle())
            .map(|(values, statement)| {
                let transaction = &transaction;
                let parameters: Vec<&(dyn ToSql + Sync)> =
                    values.iter().map(FloorValue::as_postgres).collect();
                async move { transaction.execute(statement, &parameters).await }
            });
        futures_util::future::try_join_all(pending).await?;
        transaction.commit().await?;
    }
    connection.close().await
}

/// The NULL a floor row binds (only TEXT columns are NULL in the floor).
static NULL_TEXT: Option<&str> = None;

impl FloorValue {
    fn postgres_type(&self) -> Type {
        match self {
            FloorValue::Int(_) => Type::INT8,
            FloorValue::Text(_) | FloorValue::Null => Type::TEXT,
        }
    }

    fn as_postgres(&self) -> &(dyn ToSql + Sync) {
        match self {
            FloorValue::Int(value) => value,
            FloorValue::Text(value) => value,
            FloorValue::Null => &NULL_TEXT,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/postgres";

    #[test]
    fn thousands_groups_rounded_digits() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(999.6), "1,000");
        assert_eq!(thousands(6_812.4), "6,812");
        assert_eq!(thousands(100_000.0), "100,000");
        assert_eq!(thousands(1_234_567.8), "1,234,568");
        assert_eq!(thousands(-1_234.0), "-1,234");
    }

    fn lines(goals: Vec<Goal>) -> Vec<String> {
        goals.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn goals_are_met_at_their_edges_and_missed_below() {
        assert_eq!(
            lines(goals(
                BackendChoice::Sqlite,
                ENGINE_GOAL_SQLITE,
                ENGINE_GOAL_SQLITE / FLOOR_RATIO_GOAL,
                Some(DECAY_GOAL)
            )),
            [
                "  engine ≥ 20,000 events/s: 20,000 events/s, met",
                "  engine ≥ 0.5× floor: 0.50×, met",
                "  last tenth ≥ 0.8× first tenth: 0.80×, met",
            ]
        );
        let below = goals(
            BackendChoice::Sqlite,
            ENGINE_GOAL_SQLITE - 1.0,
            ENGINE_GOAL_SQLITE * 2.0,
            Some(DECAY_GOAL - 0.01),
        );
        assert!(below.iter().all(|goal| !goal.met), "{:?}", lines(below));
        let postgres = goals(
            BackendChoice::Postgres,
            ENGINE_GOAL_POSTGRES,
            1.0,
            Some(1.0),
        );
        assert_eq!(
            postgres[0].to_string(),
            "  engine ≥ 10,000 events/s: 10,000 events/s, met"
        );
        let postgres = goals(
            BackendChoice::Postgres,
            ENGINE_GOAL_POSTGRES - 1.0,
            1.0,
            Some(1.0),
        );
        assert!(!postgres[0].met);
    }

    #[test]
    fn an_unknown_decay_misses_its_goal() {
        let goals = goals(BackendChoice::Sqlite, 1.0, 1.0, None);
        assert_eq!(
            goals[2].to_string(),
            "  last tenth ≥ 0.8× first tenth: unknown, miss"
        );
    }

    #[test]
    fn tenths_count_events_since_the_mark_that_ended_the_tenth_before() {
        // 1,000 events in chunks of 50: the first 500 at 100 a second, the rest at 50.
        let mut marks = Vec::new();
        let mut seconds = 0.0;
        for answered in (50..=1_000).step_by(50) {
            seconds += if answered <= 500 { 0.5 } else { 1.0 };
            marks.push((answered, seconds));
        }
        let rates = tenth_rates(1_000, &marks);
        assert_eq!(rates.len(), TENTHS);
        for (index, rate) in rates.iter().enumerate() {
            let expected = if index < 5 { 100.0 } else { 50.0 };
            assert_eq!(*rate, Some(expected), "tenth {}", index + 1);
        }
        let run = EngineRun {
            events: 1_000,
            seconds,
            tenths: rates,
            comparable: true,
        };
        assert_eq!(run.decay(), Some(0.5));
        assert_eq!(run.rate(), 1_000.0 / 15.0);
    }

    #[test]
    fn a_mark_that_ends_several_tenths_gives_the_later_ones_no_rate() {
        // 100 events answered in one chunk of 60 and one of 40.
        let rates = tenth_rates(100, &[(60, 1.0), (100, 2.0)]);
        assert_eq!(rates[0], Some(60.0));
        assert_eq!(rates[1..6], [None; 5]);
        assert_eq!(rates[6], Some(40.0));
        assert_eq!(rates[7..], [None; 3]);
        let run = EngineRun {
            events: 100,
            seconds: 2.0,
            tenths: rates,
            comparable: true,
        };
        assert_eq!(run.decay(), None);
        // Marks that stop short (a run cut off) leave the tenths they do not reach without one.
        assert_eq!(tenth_rates(100, &[(50, 1.0)])[5..], [None; 5]);
    }

    #[test]
    fn tenths_are_compared_from_four_times_the_events_in_flight() {
        let edge = TENTHS * TENTH_IN_FLIGHT_MIN * 8 * SUBMIT_CHUNK;
        assert!(tenths_comparable(edge, 8));
        assert!(!tenths_comparable(edge - 1, 8));
        assert!(tenths_comparable(edge / 8, 1));
        assert!(!tenths_comparable(edge / 8 - 1, 1));
        let run = EngineRun {
            events: 1_000,
            seconds: 2.0,
            tenths: vec![Some(500.0); TENTHS],
            comparable: false,
        };
        assert_eq!(run.decay(), None);
    }

    #[test]
    fn without_password_hides_only_the_password() {
        assert_eq!(
            without_password("postgres://user:secret@host/db"),
            "postgres://user@host/db"
        );
        assert_eq!(
            without_password("postgres://user@host/db"),
            "postgres://user@host/db"
        );
        assert_eq!(without_password("not a url"), "not a url");
    }

    async fn database_exists(name: &str) -> bool {
        let connection = postgres_connect(POSTGRES).await.unwrap();
        let row = connection
            .client
            .query_one(
                "SELECT count(*) FROM pg_database WHERE datname = $1",
                &[&name],
            )
            .await
            .unwrap();
        let count: i64 = row.get(0);
        connection.close().await.unwrap();
        count == 1
    }

    /// A PostgreSQL bench database exists after `create`, is gone after `drop`, and takes the
    /// floor's rows: one of each row per purchase, balances moved by the points.
    #[tokio::test]
    async fn postgres_database_takes_the_floor_and_is_dropped() {
        let database = BenchDatabase::create(BackendChoice::Postgres, POSTGRES)
            .await
            .unwrap();
        let name = database.url.rsplit('/').next().unwrap().to_owned();
        assert!(name.starts_with("patron_bench_"), "{name}");
        assert!(database_exists(&name).await);
        let store = Store::open(&DatabaseConfig::new(database.url.clone()))
            .await
            .unwrap();
        let tenant = store
            .create_tenant(&NewTenant::vietnamese("Floor"))
            .await
            .unwrap();
        let phones: Vec<Phone> = (0..20).map(bench_phone).collect();
        let member_ids = store.bulk_enrol(tenant, &phones).await.unwrap();
        let samples = samples(50, 20, 3);
        // A batch that does not divide the samples: the last transaction is a short one.
        let rate = floor_run(
            FloorTarget::Postgres { url: &database.url },
            tenant,
            &member_ids,
            &samples,
            16,
        )
        .await
        .unwrap();
        assert!(rate > 0.0);
        store.close().await;

        let connection = postgres_connect(&database.url).await.unwrap();
        for (table, expected) in [
            ("events", 50),
            ("ledger_transactions", 50),
            ("ledger_entries", 100),
            ("lots", 50),
        ] {
            let row = connection
                .client
                .query_one(&format!("SELECT count(*) FROM {table}"), &[])
                .await
                .unwrap();
            assert_eq!(row.get::<_, i64>(0), expected, "{table}");
        }
        let points: i64 = samples.iter().map(|sample| sample.amount / 10_000).sum();
        let row = connection
            .client
            .query_one(
                "SELECT sum(points_balance)::BIGINT, sum(order_count)::BIGINT FROM members",
                &[],
            )
            .await
            .unwrap();
        assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (points, 50));
        connection.close().await.unwrap();

        database.drop().await.unwrap();
        assert!(!database_exists(&name).await);
    }

    /// The whole command on both backends with tiny settings: it runs, checks its ledger and
    /// cleans up. It checks the command, never the timing.
    #[tokio::test]
    async fn ingest_runs_on_both_backends() {
        for backend in [BackendChoice::Sqlite, BackendChoice::Postgres] {
            ingest(IngestArgs {
                backend,
                members: 100,
                events: 3_000,
                postgres: POSTGRES.to_owned(),
                submitters: 4,
                floor_batch: 100,
            })
            .await
            .unwrap();
        }
    }
}
