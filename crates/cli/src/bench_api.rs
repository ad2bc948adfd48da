//! `patron bench api`: the served API under concurrent HTTP/1.1 keep-alive clients, against
//! a floor measured in the same run on the same server and connections: `GET /healthz`, which
//! does no work, so whatever it costs (HTTP, routing, the metrics layer, the client itself) is
//! what any request costs.
//!
//! The server runs in this process on 127.0.0.1:0 over a fresh database; the clients run on
//! the same runtime, so they share the machine's cores with the server and the database.

use crate::bench::{bench_phone, BackendChoice, BenchDatabase};
use anyhow::Context;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use patron_store::admin::{KeyScope, NewTenant};
use patron_store::{DatabaseConfig, Journal, JournalConfig, Store};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Goal: 99% of purchases answered within this many microseconds.
const PURCHASE_P99_GOAL_MICROS: u32 = 10_000;
/// Goal: 99% of member lookups answered within this many microseconds.
const MEMBER_P99_GOAL_MICROS: u32 = 2_000;
/// Goal: purchases per second at least this share of the floor's requests per second.
const PURCHASE_RATIO_GOAL: f64 = 0.25;
/// Error answers kept per kind to print.
const ERROR_SAMPLES_MAX: usize = 3;

#[derive(clap::Args)]
pub struct ApiArgs {
    #[arg(long, value_enum, default_value = "sqlite")]
    backend: BackendChoice,
    /// Members enrolled before the run (not timed).
    #[arg(long, default_value_t = 100_000)]
    members: usize,
    /// Concurrent keep-alive HTTP/1.1 connections, one request in flight on each.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Seconds each phase (floor, then mixed) runs.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// PostgreSQL server to create the benchmark database on.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// `GET /healthz` only.
    Floor,
    /// Purchases and member lookups, alternating on each connection.
    Mixed,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Health = 0,
    Purchase = 1,
    Member = 2,
}

const KINDS: [Kind; 3] = [Kind::Health, Kind::Purchase, Kind::Member];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Health => "health",
            Kind::Purchase => "purchase",
            Kind::Member => "member",
        }
    }
}

/// What one kind of request did: latency of every 2xx answer, and the rest.
#[derive(Default)]
struct Tally {
    micros: Vec<u32>,
    errors: u64,
    error_samples: Vec<String>,
}

impl Tally {
    fn error(&mut self, what: String) {
        self.errors += 1;
        if self.error_samples.len() < ERROR_SAMPLES_MAX {
            self.error_samples.push(what);
        }
    }

    fn merge(&mut self, other: Tally) {
        self.micros.extend(other.micros);
        self.errors += other.errors;
        for sample in other.error_samples {
            if self.error_samples.len() < ERROR_SAMPLES_MAX {
                self.error_samples.push(sample);
            }
        }
    }
}

/// A finished kind: its figures over the phase it ran in.
struct Figures {
    requests: usize,
    errors: u64,
    rps: f64,
    p50: u32,
    p99: u32,
    max: u32,
}

impl Figures {
    /// `tally.micros` must be sorted.
    fn of(tally: &Tally, seconds: f64) -> Figures {
        Figures {
            requests: tally.micros.len(),
            errors: tally.errors,
            rps: tally.micros.len() as f64 / seconds,
            p50: percentile(&tally.micros, 0.50),
            p99: percentile(&tally.micros, 0.99),
            max: tally.micros.last().copied().unwrap_or(0),
        }
    }
}

/// Nearest-rank percentile of sorted values; 0 when there are none.
pub(crate) fn percentile(sorted: &[u32], share: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((share * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

pub(crate) fn millis(micros: u32) -> String {
    format!("{:.2}", micros as f64 / 1000.0)
}

/// What every client needs to build its requests.
struct Target {
    address: SocketAddr,
    authorization: String,
    member_ids: Vec<String>,
}

impl Target {
    fn request(
        &self,
        kind: Kind,
        rng: &mut StdRng,
        client: usize,
        sequence: u64,
    ) -> anyhow::Result<hyper::Request<Full<Bytes>>> {
        let builder = hyper::Request::builder().header(hyper::header::HOST, "127.0.0.1");
        let request = match kind {
            Kind::Health => builder
                .method(hyper::Method::GET)
                .uri("/healthz")
                .body(Full::new(Bytes::new()))?,
            Kind::Purchase => {
                let member = rng.random_range(0..self.member_ids.len());
                let amount = rng.random_range(45..=250) * 1_000;
                let body = format!(
                    "{{\"id\":\"api-{client}-{sequence}\",\"type\":\"purchase\",\"member\":{{\"phone\":\"{}\"}},\
                     \"store\":\"S1\",\"amount\":{amount}}}",
                    bench_phone(member)
                );
                builder
                    .method(hyper::Method::POST)
                    .uri("/v1/events")
                    .header(hyper::header::AUTHORIZATION, &self.authorization)
                    .header(hyper::header::CONTENT_TYPE, "application/json")
                    .body(Full::new(Bytes::from(body)))?
            }
            Kind::Member => {
                let member = &self.member_ids[rng.random_range(0..self.member_ids.len())];
                builder
                    .method(hyper::Method::GET)
                    .uri(format!("/v1/members/{member}"))
                    .header(hyper::header::AUTHORIZATION, &self.authorization)
                    .body(Full::new(Bytes::new()))?
            }
        };
        Ok(request)
    }
}

/// One keep-alive HTTP/1.1 connection, driven by its own task.
pub(crate) async fn connect(address: SocketAddr) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .context("connect to the benchmark server")?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// Sends one request and reads the whole answer.
pub(crate) async fn exchange(
    sender: &mut SendRequest<Full<Bytes>>,
    request: hyper::Request<Full<Bytes>>,
) -> anyhow::Result<(hyper::StatusCode, Bytes)> {
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// One client: requests back to back on its connection until `until`.
async fn client(
    target: Arc<Target>,
    mut sender: SendRequest<Full<Bytes>>,
    phase: Phase,
    index: usize,
    until: Instant,
) -> anyhow::Result<[Tally; 3]> {
    let mut rng =
        StdRng::seed_from_u64(index as u64 + if phase == Phase::Mixed { 1 << 32 } else { 0 });
    let mut tallies: [Tally; 3] = Default::default();
    let mut sequence = 0u64;
    while Instant::now() < until {
        let kind = match phase {
            Phase::Floor => Kind::Health,
            // Half the connections start with a purchase, half with a lookup.
            Phase::Mixed if (sequence + index as u64).is_multiple_of(2) => Kind::Purchase,
            Phase::Mixed => Kind::Member,
        };
        sequence += 1;
        let request = target.request(kind, &mut rng, index, sequence)?;
        let started = Instant::now();
        let outcome = exchange(&mut sender, request).await;
        let micros = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
        let tally = &mut tallies[kind as usize];
        match outcome {
            Ok((status, _)) if status.is_success() => tally.micros.push(micros),
            Ok((status, body)) => tally.error(format!(
                "{status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            )),
            Err(error) => {
                tally.error(format!("{error:#}"));
                sender = connect(target.address).await?;
            }
        }
    }
    Ok(tallies)
}

/// Runs one phase on `connections` fresh connections; returns the tallies and its seconds.
async fn run_phase(
    target: &Arc<Target>,
    phase: Phase,
    connections: usize,
    seconds: u64,
) -> anyhow::Result<([Tally; 3], f64)> {
    let mut senders = Vec::with_capacity(connections);
    for _ in 0..connections {
        senders.push(connect(target.address).await?);
    }
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let tasks: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(index, sender)| tokio::spawn(client(target.clone(), sender, phase, index, until)))
        .collect();
    let mut tallies: [Tally; 3] = Default::default();
    for task in tasks {
        for (total, tally) in tallies.iter_mut().zip(task.await??) {
            total.merge(tally);
        }
    }
    Ok((tallies, started.elapsed().as_secs_f64()))
}

pub async fn run(args: ApiArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.members > 0 && args.connections > 0 && args.seconds > 0,
        "members, connections and seconds must be more than 0"
    );
    let database = BenchDatabase::create(args.backend, &args.postgres).await?;
    let outcome = bench(&args, &database).await;
    database.drop().await?;
    outcome
}

async fn bench(args: &ApiArgs, database: &BenchDatabase) -> anyhow::Result<()> {
    let store = Store::open(&DatabaseConfig::new(database.url.clone())).await?;
    let tenant = store
        .create_tenant(&NewTenant::vietnamese("Bench Café"))
        .await?;
    store.create_store(tenant, "S1", "Store 1").await?;
    store
        .publish_programme(
            tenant,
            crate::demo::cafe_programme(),
            chrono::Utc::now() - chrono::Duration::days(30),
        )
        .await?;
    let key = store
        .create_api_key(tenant, "bench", KeyScope::Write)
        .await?;
    let started = Instant::now();
    let phones: Vec<_> = (0..args.members).map(bench_phone).collect();
    let member_ids = store.bulk_enrol(tenant, &phones).await?;
    let cores = std::thread::available_parallelism().map_or(1, |cores| cores.get());
    println!(
        "backend {:?}: enrolled {} members in {:.1} s (not timed)",
        store.backend(),
        args.members,
        started.elapsed().as_secs_f64()
    );

    let (journal, writer) = Journal::start(store.clone(), JournalConfig::default());
    // High enough never to answer 429: the limiter still runs on every request, as in service.
    let limit = patron_server::RateLimit {
        requests_per_second: 100_000_000,
        burst: 100_000_000,
    };
    let application = patron_server::Application::build_with_limit(
        store.clone(),
        journal.clone(),
        SocketAddr::from(([127, 0, 0, 1], 0)),
        limit,
    )
    .await?;
    let target = Arc::new(Target {
        address: application.local_addr(),
        authorization: format!("Bearer {key}"),
        member_ids: member_ids.iter().map(ToString::to_string).collect(),
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(application.run(async move {
        let _ = stopped.await;
    }));
    println!(
        "{} keep-alive HTTP/1.1 connections, {} s per phase; client and server share this process \
         and the machine's {cores} cores (the database too), so every figure includes the client's cost",
        args.connections, args.seconds
    );

    let (mut floor, floor_seconds) =
        run_phase(&target, Phase::Floor, args.connections, args.seconds).await?;
    let (mut mixed, mixed_seconds) =
        run_phase(&target, Phase::Mixed, args.connections, args.seconds).await?;

    let _ = stop.send(());
    server.await??;
    journal.stop().await;
    writer.await?;
    let check = store.check_ledger().await?;
    store.close().await;

    for tally in floor.iter_mut().chain(mixed.iter_mut()) {
        tally.micros.sort_unstable();
    }
    let figures: Vec<(Kind, Figures, &Tally)> = KINDS
        .iter()
        .map(|&kind| {
            let (tally, seconds) = match kind {
                Kind::Health => (&floor[kind as usize], floor_seconds),
                _ => (&mixed[kind as usize], mixed_seconds),
            };
            (kind, Figures::of(tally, seconds), tally)
        })
        .collect();
    println!();
    println!(
        "{:<9} {:>9} {:>9} {:>8} {:>8} {:>8} {:>7}",
        "kind", "requests", "rps", "p50 ms", "p99 ms", "max ms", "errors"
    );
    for (kind, figures, _) in &figures {
        println!(
            "{:<9} {:>9} {:>9.0} {:>8} {:>8} {:>8} {:>7}",
            kind.name(),
            figures.requests,
            figures.rps,
            millis(figures.p50),
            millis(figures.p99),
            millis(figures.max),
            figures.errors
        );
    }
    println!("(health: floor phase, GET /healthz; purchase and member: mixed phase, each connection alternating POST /v1/events and GET /v1/members/{{id}})");
    let mut errors = 0;
    for (kind, figures, tally) in &figures {
        errors += figures.errors;
        for sample in &tally.error_samples {
            println!("error ({}): {sample}", kind.name());
        }
    }
    let [health, purchase, member] = [0, 1, 2].map(|index| &figures[index].1);
    let ratio = purchase.rps / health.rps.max(f64::MIN_POSITIVE);
    println!("purchase rps / health rps: {ratio:.2}×");
    let verdict = |pass: bool| if pass { "pass" } else { "miss" };
    println!("goals:");
    println!(
        "  purchase p99 < {} ms: {} ms, {}",
        millis(PURCHASE_P99_GOAL_MICROS),
        millis(purchase.p99),
        verdict(purchase.requests > 0 && purchase.p99 < PURCHASE_P99_GOAL_MICROS)
    );
    println!(
        "  member lookup p99 < {} ms: {} ms, {}",
        millis(MEMBER_P99_GOAL_MICROS),
        millis(member.p99),
        verdict(member.requests > 0 && member.p99 < MEMBER_P99_GOAL_MICROS)
    );
    println!(
        "  purchase rps ≥ {PURCHASE_RATIO_GOAL}× health rps: {ratio:.2}×, {}",
        verdict(ratio >= PURCHASE_RATIO_GOAL)
    );
    println!(
        "ledger: {} transactions, sound: {} (entries balance, balances = entries = lots)",
        check.transactions,
        check.is_sound()
    );
    anyhow::ensure!(
        check.is_sound(),
        "the ledger is not sound after the benchmark"
    );
    anyhow::ensure!(errors == 0, "{errors} requests were answered with an error");
    Ok(())
}
