//! `patron bench pages`: how long the web pages take to make and how big they are, over the
//! demo's data (a café chain with ~10,000 members and ~100,000 purchases), against a floor
//! measured in the same run on the same connection: `GET /healthz`, which does no work.
//!
//! One keep-alive connection, one request at a time, so each figure is one page's own time
//! (the server's work plus a loopback round trip, which the floor shows).

use crate::bench::{BackendChoice, BenchDatabase};
use crate::bench_api::{connect, exchange, millis, percentile};
use crate::demo::{demo_phone, DemoArgs, DEMO_STAFF};
use http_body_util::Full;
use hyper::body::Bytes;
use patron_store::{DatabaseConfig, Journal, JournalConfig, MemberRef, Store};
use std::net::SocketAddr;
use std::time::Instant;

/// Goal: 99% of page loads within this many microseconds of server time.
const PAGE_P99_GOAL_MICROS: u32 = 100_000;
/// Goal: the member page's HTML at most this many bytes.
const MEMBER_PAGE_BYTES_MAX: usize = 50 * 1024;
/// Requests before timing starts, per page (caches, prepared statements).
const WARM_UP: usize = 3;

#[derive(clap::Args)]
pub struct PagesArgs {
    #[arg(long, value_enum, default_value = "sqlite")]
    backend: BackendChoice,
    /// Demo members (generated before the run, not timed).
    #[arg(long, default_value_t = 10_000)]
    members: usize,
    /// Demo purchases over 18 months.
    #[arg(long, default_value_t = 100_000)]
    purchases: usize,
    /// Timed requests per page.
    #[arg(long, default_value_t = 100)]
    requests: usize,
    /// PostgreSQL server to create the benchmark database on.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres: String,
}

pub async fn run(args: PagesArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.members > 0 && args.requests > 0,
        "members and requests must be more than 0"
    );
    let database = BenchDatabase::create(args.backend, &args.postgres).await?;
    let outcome = bench(&args, &database).await;
    database.drop().await?;
    outcome
}

/// A page to time: its name, path and the cookie it is fetched with.
struct Page {
    name: &'static str,
    path: String,
    cookie: Option<String>,
}

async fn bench(args: &PagesArgs, database: &BenchDatabase) -> anyhow::Result<()> {
    let store = Store::open(&DatabaseConfig::new(database.url.clone())).await?;
    let (tenant, _) =
        crate::demo::generate(&store, &DemoArgs::sized(args.members, args.purchases)).await?;
    let (journal, writer) = Journal::start(store.clone(), JournalConfig::default());
    let options = patron_server::ServerOptions {
        rate_limit: patron_server::RateLimit {
            requests_per_second: 100_000_000,
            burst: 100_000_000,
        },
        pages: Some(patron_web::router()),
        ..patron_server::ServerOptions::default()
    };
    let application = patron_server::Application::build_with(
        store.clone(),
        journal.clone(),
        SocketAddr::from(([127, 0, 0, 1], 0)),
        options,
    )
    .await?;
    let address = application.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(application.run(async move {
        let _ = stopped.await;
    }));

    let staff_cookie = |index: usize| {
        let (email, _, _, password) = DEMO_STAFF[index];
        let store = store.clone();
        async move {
            let (_, session) = store
                .sign_in(Some(tenant), email, password)
                .await?
                .ok_or_else(|| anyhow::anyhow!("the demo's {email} cannot sign in"))?;
            anyhow::Ok(format!(
                "{}={}",
                patron_server::auth::SESSION_COOKIE,
                session.token
            ))
        }
    };
    let owner = staff_cookie(0).await?;
    let cashier = staff_cookie(1).await?;
    // The demo's busiest member: the first phone is drawn most often.
    let now = chrono::Utc::now();
    let busiest = store
        .member(tenant, &MemberRef::Phone(demo_phone(0)), now)
        .await?;
    let member_id =
        patron_core::MemberId::parse(&busiest.id).map_err(|_| anyhow::anyhow!("a member id"))?;
    let member_session = store.start_member_session(tenant, member_id, now).await?;
    let member_cookie = format!("{}={}", patron_web::MEMBER_COOKIE, member_session.token);
    let id = &busiest.id;
    let pages = [
        ("floor: /healthz", "/healthz".to_owned(), None),
        ("dashboard", "/admin".to_owned(), Some(&owner)),
        (
            "members search",
            "/admin/members?q=0910".to_owned(),
            Some(&owner),
        ),
        (
            "member profile",
            format!("/admin/members/{id}"),
            Some(&owner),
        ),
        (
            "programme editor",
            "/admin/programme".to_owned(),
            Some(&owner),
        ),
        ("audit log", "/admin/audit".to_owned(), Some(&owner)),
        (
            "till: member",
            format!("/cashier/member/{id}"),
            Some(&cashier),
        ),
        ("member page", format!("/m/{tenant}"), Some(&member_cookie)),
    ]
    .map(|(name, path, cookie)| Page {
        name,
        path,
        cookie: cookie.cloned(),
    });

    println!(
        "backend {:?}: {} members, {} purchases; {} timed requests per page, one connection",
        store.backend(),
        args.members,
        args.purchases,
        args.requests
    );
    println!(
        "{:<18} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "page", "p50 ms", "p99 ms", "max ms", "KB", "× floor"
    );
    let mut sender = connect(address).await?;
    let mut floor_p50 = 0u32;
    let mut missed = Vec::new();
    for page in &pages {
        let mut micros = Vec::with_capacity(args.requests);
        let mut bytes = 0;
        for round in 0..WARM_UP + args.requests {
            let mut request = hyper::Request::builder()
                .uri(&page.path)
                .header(hyper::header::HOST, "127.0.0.1")
                .header(hyper::header::ACCEPT_LANGUAGE, "vi");
            if let Some(cookie) = &page.cookie {
                request = request.header(hyper::header::COOKIE, cookie);
            }
            let request = request.body(Full::new(Bytes::new()))?;
            let started = Instant::now();
            let (status, body) = exchange(&mut sender, request).await?;
            let elapsed = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
            anyhow::ensure!(
                status.is_success(),
                "{} answered {status}: {}",
                page.path,
                String::from_utf8_lossy(&body[..body.len().min(300)])
            );
            if round >= WARM_UP {
                micros.push(elapsed);
            }
            bytes = body.len();
        }
        micros.sort_unstable();
        let (p50, p99) = (percentile(&micros, 0.5), percentile(&micros, 0.99));
        if page.path == "/healthz" {
            floor_p50 = p50.max(1);
        } else if p99 > PAGE_P99_GOAL_MICROS {
            missed.push(format!("{} p99 {} ms", page.name, millis(p99)));
        }
        if page.name == "member page" && bytes > MEMBER_PAGE_BYTES_MAX {
            missed.push(format!("member page {bytes} bytes"));
        }
        println!(
            "{:<18} {:>9} {:>9} {:>9} {:>9.1} {:>9.1}",
            page.name,
            millis(p50),
            millis(p99),
            millis(*micros.last().unwrap_or(&0)),
            bytes as f64 / 1024.0,
            p50 as f64 / floor_p50 as f64
        );
    }
    println!(
        "goals: every page p99 < {} ms, member page < {} KB: {}",
        PAGE_P99_GOAL_MICROS / 1000,
        MEMBER_PAGE_BYTES_MAX / 1024,
        if missed.is_empty() {
            "met".to_owned()
        } else {
            format!("missed ({})", missed.join("; "))
        }
    );
    let _ = stop.send(());
    server.await??;
    journal.stop().await;
    writer.await?;
    store.close().await;
    Ok(())
}
