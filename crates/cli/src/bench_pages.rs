//! `patron bench pages`: how long every admin page, till page, member page and API read takes
//! to make and how big it is, against a floor measured in the same run on the same
//! connection: `GET /healthz`, which does no work.
//!
//! The data is the demo's café chain. Up to [`ENGINE_PURCHASES_MAX`] purchases are generated
//! through the engine; past that, that history is copied in SQL with fresh ids until it reaches
//! the size asked for (`bench_scale`: each copy a consistent ledger), so ten million events
//! take minutes, not hours, to seed. Streaming CSV exports of the whole ledger are downloads,
//! not page reads, and are left out.
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

/// Seeds the demo through the engine and copies it until it has the size asked for.
async fn seed(
    args: &PagesArgs,
    store: &Store,
    copies: u32,
    base_members: usize,
) -> anyhow::Result<(patron_core::TenantId, String)> {
    let copies_usize = copies as usize;
    let started = Instant::now();
    let (tenant, api_key) = crate::demo::generate(
        store,
        &DemoArgs::sized(base_members, args.purchases.div_ceil(copies_usize)),
    )
    .await?;
    println!(
        "seeded through the engine: {base_members} members in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    for (table, seconds) in
        crate::bench_scale::scale_out(store, tenant, copies, base_members).await?
    {
        println!("  copied ×{copies}: {table} in {seconds:.1} s");
    }
    let size = store.check_ledger().await?;
    println!(
        "scaled out ×{copies} in {:.0} s: {} members, {} events, {} ledger transactions (ledger sound: {})",
        started.elapsed().as_secs_f64(),
        size.members,
        size.events,
        size.transactions,
        size.is_sound()
    );
    Ok((tenant, api_key))
}

/// Goal (issue 11): 99% of page loads and API reads within this many microseconds.
const PAGE_P99_GOAL_MICROS: u32 = 1_000_000;
/// Purchases generated through the engine; the rest are copies of them.
const ENGINE_PURCHASES_MAX: usize = 100_000;
/// Members the member pages rotate through, spread over the copies.
const ROTATED_MEMBERS: usize = 20;
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
    /// Demo purchases over 18 months (the demo adds reviews and redemptions).
    #[arg(long, alias = "events", default_value_t = 100_000)]
    purchases: usize,
    /// Copies of an engine-generated history (default: enough that the engine generates at
    /// most 100,000 purchases).
    #[arg(long)]
    copies: Option<u32>,
    /// Timed requests per page.
    #[arg(long, default_value_t = 100)]
    requests: usize,
    /// PostgreSQL server to create the benchmark database on.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres: String,
    /// Keep the seeded database (its address is printed) to time it again with `--database`.
    #[arg(long)]
    keep: bool,
    /// Time a database a `--keep` run seeded (with the same sizes) instead of seeding one.
    #[arg(long)]
    database: Option<String>,
}

pub async fn run(args: PagesArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.members > 0 && args.requests > 0,
        "members and requests must be more than 0"
    );
    let database = match &args.database {
        Some(url) => BenchDatabase::existing(url),
        None => BenchDatabase::create(args.backend, &args.postgres).await?,
    };
    let outcome = bench(&args, &database).await;
    if args.keep || args.database.is_some() {
        println!("kept the database: --database {}", database.url);
    } else {
        database.drop().await?;
    }
    outcome
}

async fn bench(args: &PagesArgs, database: &BenchDatabase) -> anyhow::Result<()> {
    let store = Store::open(&DatabaseConfig::new(database.url.clone())).await?;
    let copies = match args.copies {
        Some(copies) => copies,
        None => u32::try_from(args.purchases.div_ceil(ENGINE_PURCHASES_MAX))?
            .clamp(1, crate::bench_scale::COPIES_MAX),
    };
    anyhow::ensure!(
        (1..=crate::bench_scale::COPIES_MAX).contains(&copies),
        "--copies must be 1 to {}",
        crate::bench_scale::COPIES_MAX
    );
    let copies_usize = copies as usize;
    let base_members = args.members.div_ceil(copies_usize);
    let (tenant, api_key) = match &args.database {
        Some(_) => {
            let row = store
                .db()
                .fetch_one(
                    "SELECT id FROM tenants ORDER BY created_at LIMIT 1",
                    Vec::new(),
                )
                .await?;
            let tenant = patron_core::TenantId::parse(&row.text("id")?)?;
            let key = store
                .create_api_key(tenant, "bench", patron_store::admin::KeyScope::Admin)
                .await?;
            println!("timing the database seeded before");
            (tenant, key)
        }
        None => seed(args, &store, copies, base_members).await?,
    };
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
    // Members spread over the copies, the demo's busiest (the first phone) among them.
    let now = chrono::Utc::now();
    let mut members = Vec::with_capacity(ROTATED_MEMBERS);
    // Not every demo phone came to buy: try phones until enough are members.
    for index in 0..ROTATED_MEMBERS * 10 {
        if members.len() == ROTATED_MEMBERS {
            break;
        }
        let base = (index * 7919) % base_members;
        let copy = (members.len() % copies_usize) as u32;
        let original = match store
            .member(tenant, &MemberRef::Phone(demo_phone(base)), now)
            .await
        {
            Ok(original) => original,
            Err(patron_store::StoreError::NotFound { .. }) => continue,
            Err(error) => return Err(error.into()),
        };
        let id = crate::bench_scale::copied_id(&original.id, copy);
        members.push((id, demo_phone(base + copy as usize * base_members)));
    }
    anyhow::ensure!(!members.is_empty(), "no demo member to read");
    let mut member_cookies = Vec::with_capacity(members.len());
    for (id, _) in &members {
        let member_id =
            patron_core::MemberId::parse(id).map_err(|_| anyhow::anyhow!("a member id"))?;
        let session = store.start_member_session(tenant, member_id, now).await?;
        member_cookies.push(format!("{}={}", patron_web::MEMBER_COOKIE, session.token));
    }
    let bearer = format!("Bearer {api_key}");
    let pages = pages(tenant, &owner, &cashier, &bearer);

    println!(
        "backend {:?}; {} timed requests per page, one connection; member pages rotate through {} members",
        store.backend(),
        args.requests,
        members.len()
    );
    println!(
        "{:<26} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "page", "p50 ms", "p99 ms", "max ms", "KB", "× floor"
    );
    let mut sender = connect(address).await?;
    let mut floor_p50 = 0u32;
    let mut goals = Vec::new();
    for page in &pages {
        let mut micros = Vec::with_capacity(args.requests);
        let mut bytes = 0;
        for round in 0..WARM_UP + args.requests {
            let (id, phone) = &members[round % members.len()];
            let path = page
                .path
                .replace("{id}", id)
                .replace("{phone}", &phone.national());
            let mut request = hyper::Request::builder()
                .uri(&path)
                .header(hyper::header::HOST, "127.0.0.1")
                .header(hyper::header::ACCEPT_LANGUAGE, "vi");
            match &page.auth {
                Auth::None => {}
                Auth::Cookie(cookie) => request = request.header(hyper::header::COOKIE, cookie),
                Auth::Member => {
                    request = request.header(
                        hyper::header::COOKIE,
                        &member_cookies[round % member_cookies.len()],
                    )
                }
                Auth::Bearer(bearer) => {
                    request = request.header(hyper::header::AUTHORIZATION, bearer)
                }
            }
            let request = request.body(Full::new(Bytes::new()))?;
            let started = Instant::now();
            let (status, body) = exchange(&mut sender, request).await?;
            let elapsed = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
            // The till's search answers with a redirect to the member it found.
            anyhow::ensure!(
                status.is_success() || status.is_redirection(),
                "{path} answered {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            );
            if round >= WARM_UP {
                micros.push(elapsed);
            }
            bytes = bytes.max(body.len());
        }
        micros.sort_unstable();
        let (p50, p99) = (percentile(&micros, 0.5), percentile(&micros, 0.99));
        if page.path == "/healthz" {
            floor_p50 = p50.max(1);
        } else {
            goals.push(format!(
                "  {} p99 < {} ms: {} ms, {}",
                page.name,
                PAGE_P99_GOAL_MICROS / 1000,
                millis(p99),
                met(p99 < PAGE_P99_GOAL_MICROS)
            ));
        }
        if page.name == "member page" {
            goals.push(format!(
                "  member page < {} KB: {:.1} KB, {}",
                MEMBER_PAGE_BYTES_MAX / 1024,
                bytes as f64 / 1024.0,
                met(bytes < MEMBER_PAGE_BYTES_MAX)
            ));
        }
        println!(
            "{:<26} {:>9} {:>9} {:>9} {:>9.1} {:>9.1}",
            page.name,
            millis(p50),
            millis(p99),
            millis(*micros.last().unwrap_or(&0)),
            bytes as f64 / 1024.0,
            p50 as f64 / floor_p50 as f64
        );
    }
    println!("(not timed: the streaming CSV exports of all members and the whole ledger)");
    println!("goals:");
    for goal in goals {
        println!("{goal}");
    }
    let _ = stop.send(());
    server.await??;
    journal.stop().await;
    writer.await?;
    store.close().await;
    Ok(())
}

fn met(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "miss"
    }
}

/// How a page is asked for.
enum Auth {
    None,
    Cookie(String),
    /// The member page's own session, one per rotated member.
    Member,
    Bearer(String),
}

/// A page to time: its name, path (`{id}`: a rotated member's id, `{phone}`: their phone)
/// and how it is asked for.
struct Page {
    name: &'static str,
    path: String,
    auth: Auth,
}

/// Every page and API read, the floor first.
fn pages(tenant: patron_core::TenantId, owner: &str, cashier: &str, bearer: &str) -> Vec<Page> {
    let page = |name: &'static str, path: String, auth: Auth| Page { name, path, auth };
    let owner_page = |name: &'static str, path: &str| {
        page(name, path.to_owned(), Auth::Cookie(owner.to_owned()))
    };
    let api = |name: &'static str, path: &str| {
        page(name, path.to_owned(), Auth::Bearer(bearer.to_owned()))
    };
    vec![
        page("floor: /healthz", "/healthz".to_owned(), Auth::None),
        owner_page("dashboard: this month", "/admin?period=month"),
        owner_page("dashboard: 30 days", "/admin?period=30d"),
        owner_page("dashboard: 90 days", "/admin?period=90d"),
        owner_page("dashboard: this year", "/admin?period=year"),
        owner_page("dashboard: a store, 90 d", "/admin?period=90d&store=HN-HK"),
        owner_page(
            "dashboard CSV: tiers",
            "/admin/export/tiers.csv?period=year",
        ),
        owner_page("members list", "/admin/members"),
        owner_page("members: name search", "/admin/members?q=tran%20thi"),
        owner_page("members: phone search", "/admin/members?q={phone}"),
        owner_page("member profile", "/admin/members/{id}"),
        owner_page("programme editor", "/admin/programme"),
        owner_page(
            "programme preview",
            "/admin/programme/preview?amount=250000",
        ),
        owner_page("audit log", "/admin/audit"),
        owner_page("staff", "/admin/staff"),
        owner_page("API keys", "/admin/keys"),
        owner_page("webhooks", "/admin/webhooks"),
        page(
            "till: find",
            "/cashier".to_owned(),
            Auth::Cookie(cashier.to_owned()),
        ),
        page(
            "till: by phone",
            "/cashier/find?q={phone}".to_owned(),
            Auth::Cookie(cashier.to_owned()),
        ),
        page(
            "till: member",
            "/cashier/member/{id}".to_owned(),
            Auth::Cookie(cashier.to_owned()),
        ),
        page("member page", format!("/m/{tenant}"), Auth::Member),
        api("API: members", "/v1/members?limit=50"),
        api("API: member", "/v1/members/{id}"),
        api("API: member by phone", "/v1/members/by-phone/{phone}"),
        api("API: history", "/v1/members/{id}/history"),
        api("API: vouchers", "/v1/members/{id}/vouchers"),
        api("API: rewards", "/v1/rewards"),
        api("API: tiers", "/v1/tiers"),
        api("API: stores", "/v1/stores"),
        api("API: programme versions", "/v1/programme/versions"),
        api("API: audit", "/v1/audit"),
    ]
}
