//! `patron demo`: a café chain with a sensible programme, ~10,000 members and ~100,000
//! purchases over 18 months, generated through the engine (so every point, tier and voucher is
//! real), then served.

use crate::{serve, DatabaseArgs};
use anyhow::Context;
use patron_core::event::{Item, Purchase};
use patron_core::member::Profile;
use patron_core::programme::ProgrammeDefinition;
use patron_core::reward::Reward;
use patron_core::{EventId, Money, Phone, Points, RewardId, TenantId};
use patron_store::admin::{KeyScope, NewTenant};
use patron_store::audit::Actor;
use patron_store::jobs::JobKind;
use patron_store::users::Role;
use patron_store::{IncomingEvent, IncomingKind, Journal, JournalConfig, MemberRef, Store};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::net::SocketAddr;

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Where to keep the demo (a fresh SQLite file by default; an existing demo is served as is).
    #[arg(long, default_value = "patron-demo.db")]
    database: String,
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    #[arg(long, default_value_t = 10_000)]
    members: usize,
    #[arg(long, default_value_t = 100_000)]
    purchases: usize,
    /// Generate the data and exit instead of serving.
    #[arg(long)]
    no_serve: bool,
}

impl DemoArgs {
    /// A demo of this size, generated without serving (benchmarks).
    pub(crate) fn sized(members: usize, purchases: usize) -> DemoArgs {
        DemoArgs {
            database: String::new(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            members,
            purchases,
            no_serve: true,
        }
    }
}

/// The demo's staff: (e-mail, name, role, password). Demo only: the passwords are printed.
pub const DEMO_STAFF: [(&str, &str, Role, &str); 2] = [
    (
        "owner@demo.patron.vn",
        "Chủ quán Lan",
        Role::Owner,
        "demo-owner-2026",
    ),
    (
        "cashier@demo.patron.vn",
        "Thu ngân Minh",
        Role::Cashier,
        "demo-cashier-2026",
    ),
];

/// The demo café's programme.
pub fn cafe_programme() -> ProgrammeDefinition {
    serde_json::from_value(serde_json::json!({
        "amount_per_point": 10000,
        "point_value": 1000,
        "return_window_days": 3,
        "expiry": {"kind": "end_of_month", "months": 12},
        "cap_per_event": 500,
        "cap_per_day": 1000,
        "rules": [
            {"id": "banh_ngot", "name": "Bánh ngọt: +5 điểm mỗi chiếc", "when": "'cake' in event.categories",
             "points": "event.quantity_by_category['cake'] * 5"},
            {"id": "sang_som", "name": "Sáng sớm trước 8 giờ: +10 điểm", "when": "event.type == 'purchase' && event.local_hour < 8",
             "points": "10"},
            {"id": "danh_gia", "name": "Đánh giá sau khi mua", "when": "event.type == 'review'", "points": "20",
             "once_per": "day"},
            {"id": "chao_mung", "name": "Chào mừng thành viên mới", "when": "event.type == 'sign_up'", "points": "50",
             "once_per": "ever"},
            {"id": "sinh_nhat", "name": "Quà sinh nhật", "when": "event.type == 'birthday'", "points": "100",
             "once_per": "year"}
        ],
        "tiers": [
            {"code": "member", "name": "Thành viên", "threshold": 0, "benefits": ["Tích 1 điểm mỗi 10.000đ"]},
            {"code": "silver", "name": "Bạc", "threshold": 2000000, "multiplier_percent": 110,
             "benefits": ["×1,1 điểm", "Ưu tiên sự kiện"]},
            {"code": "gold", "name": "Vàng", "threshold": 5000000, "multiplier_percent": 125,
             "benefits": ["×1,25 điểm", "Miễn phí size L"]},
            {"code": "platinum", "name": "Bạch kim", "threshold": 12000000, "multiplier_percent": 150,
             "benefits": ["×1,5 điểm", "Đồ uống sinh nhật", "Quầy ưu tiên"]}
        ],
        "qualification": {"metric": "spend", "window": "rolling_12_months", "grace_days": 60}
    }))
    .expect("the demo programme is valid")
}

const STORES: [(&str, &str); 4] = [
    ("HN-HK", "Hà Nội – Hoàn Kiếm"),
    ("HN-CG", "Hà Nội – Cầu Giấy"),
    ("HCM-Q1", "TP.HCM – Quận 1"),
    ("DN-HC", "Đà Nẵng – Hải Châu"),
];

const FAMILY: [&str; 10] = [
    "Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng",
];
const MIDDLE: [&str; 6] = ["Văn", "Thị", "Minh", "Ngọc", "Đức", "Thu"];
const GIVEN: [&str; 12] = [
    "An", "Bình", "Châu", "Dũng", "Giang", "Hà", "Hải", "Lan", "Linh", "Nam", "Phương", "Trang",
];
const CITIES: [&str; 3] = ["Hà Nội", "TP. Hồ Chí Minh", "Đà Nẵng"];

pub(crate) fn demo_phone(index: usize) -> Phone {
    Phone::parse(&format!("09{:08}", 10_000_000 + index)).expect("a valid demo phone")
}

fn demo_rewards() -> Vec<Reward> {
    let reward =
        |name: &str, description: &str, cost: i64, stock: Option<i64>, limit: Option<i64>| Reward {
            id: RewardId::new(),
            name: name.into(),
            description: description.into(),
            cost: Points(cost),
            stock,
            per_member_limit: limit,
            valid_from: None,
            valid_until: None,
            stores: vec![],
            voucher_valid_days: 30,
            active: true,
        };
    vec![
        reward(
            "Cà phê sữa đá",
            "Một ly cà phê sữa đá size M",
            50,
            None,
            None,
        ),
        reward("Bánh sừng bò", "Một bánh croissant bơ", 80, None, None),
        reward(
            "Phiếu 100.000đ",
            "Giảm 100.000đ cho hoá đơn từ 200.000đ",
            300,
            None,
            Some(3),
        ),
        reward(
            "Bình giữ nhiệt Patron",
            "Bình inox 500 ml",
            800,
            Some(200),
            Some(1),
        ),
    ]
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let database = DatabaseArgs {
        database: args.database.clone(),
        sqlite_synchronous_full: false,
    };
    let store = Store::open(&database.config())
        .await
        .context("open the demo database")?;
    let (tenant, key) = match store.tenant_ids().await?.first() {
        Some(tenant) => {
            let key = store
                .create_api_key(*tenant, "demo", KeyScope::Admin)
                .await?;
            println!("Serving the existing demo in {}", args.database);
            (*tenant, key)
        }
        None => generate(&store, &args).await?,
    };
    let staff: String = DEMO_STAFF
        .iter()
        .map(|(email, _, role, password)| format!("  {:<8} {email} / {password}\n", role.as_str()))
        .collect();
    let banner = format!(
        "Demo tenant {tenant}\nWeb: http://{listen}/admin/login (cashier screen: /cashier)\n{staff}Member page: http://{listen}/m/{tenant} (sign in with phone 0910000001; the one-time code is printed in this log)\nAPI key: {key}\nThe examples in README.md and docs/ use these variables:\n  export PATRON=http://{listen} TENANT={tenant} KEY={key} OWNER_KEY={key}\n  export AUTH=\"Authorization: Bearer $KEY\"\nTry: curl -H 'Authorization: Bearer {key}' 'http://{listen}/v1/members/by-phone/0910000001'",
        listen = args.listen
    );
    if args.no_serve {
        println!("{banner}");
        return Ok(());
    }
    let serve_args = crate::config::Settings {
        database: database.database,
        listen: args.listen,
        ..crate::config::Settings::default()
    };
    serve(store, &serve_args, Some(banner)).await
}

pub(crate) async fn generate(store: &Store, args: &DemoArgs) -> anyhow::Result<(TenantId, String)> {
    let started = std::time::Instant::now();
    let tenant = store
        .create_tenant(&NewTenant::vietnamese("Cà Phê Sông Hồng"))
        .await?;
    for (code, name) in STORES {
        store.create_store(tenant, code, name).await?;
    }
    let now = chrono::Utc::now();
    let start = now - chrono::Duration::days(548);
    store
        .publish_programme(tenant, cafe_programme(), start - chrono::Duration::days(1))
        .await?;
    let rewards = demo_rewards();
    for reward in &rewards {
        store.create_reward(tenant, reward).await?;
    }
    let key = store
        .create_api_key(tenant, "demo", KeyScope::Admin)
        .await?;
    for (email, name, role, password) in DEMO_STAFF {
        store
            .create_user(tenant, email, name, role, password, &Actor::cli())
            .await?;
    }
    let (journal, writer) = Journal::start(store.clone(), JournalConfig::default());
    let events = demo_events(tenant, args, &rewards, start, now);
    let total = events.len();
    let mut accepted = 0usize;
    for chunk in events.chunks(4096) {
        accepted += journal
            .submit_all(chunk.to_vec())
            .await
            .iter()
            .filter(|answer| answer.is_ok())
            .count();
    }
    for kind in [
        JobKind::ExpireLots,
        JobKind::ExpireVouchers,
        JobKind::ReviewTiers,
        JobKind::KeepProfiles,
    ] {
        journal.run_job(kind, now).await?;
    }
    journal.stop().await;
    writer.await?;
    let check = store.check_ledger().await?;
    println!(
        "Generated {} members and {accepted} of {total} events in {:.1} s (ledger sound: {})",
        check.members,
        started.elapsed().as_secs_f64(),
        check.is_sound()
    );
    Ok((tenant, key))
}

/// Every event of the demo, in time order: first visits enrol members, regulars come back,
/// some return items, some review, some redeem.
fn demo_events(
    tenant: TenantId,
    args: &DemoArgs,
    rewards: &[Reward],
    start: chrono::DateTime<chrono::Utc>,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<IncomingEvent> {
    let mut rng = StdRng::seed_from_u64(2026);
    let span_days = (now - start).num_days();
    let mut purchases: Vec<(chrono::DateTime<chrono::Utc>, usize)> = (0..args.purchases)
        .map(|_| {
            // A skewed choice: a few regulars make many of the visits.
            let member = (rng.random::<f64>().powi(2) * args.members as f64) as usize;
            // Opening hours 06:30–22:00 Vietnam time (UTC+7).
            let day = rng.random_range(0..=span_days);
            let second_of_day = 6 * 3600 + 1800 + rng.random_range(0..55_800) - 7 * 3600;
            let at = start + chrono::Duration::seconds(day * 86_400 + second_of_day);
            (at, member.min(args.members - 1))
        })
        .filter(|(at, _)| *at <= now)
        .collect();
    purchases.sort_unstable();
    let mut seen = vec![false; args.members];
    let mut events = Vec::with_capacity(purchases.len() * 11 / 10);
    let event = |id: String, at: chrono::DateTime<chrono::Utc>, kind: IncomingKind| IncomingEvent {
        tenant_id: tenant,
        id: EventId::parse(&id).expect("demo ids are valid"),
        occurred_at: at,
        body_hash: id.clone(),
        kind,
        actor: Some("cli".into()),
        store_scope: None,
    };
    for (index, (at, member)) in purchases.into_iter().enumerate() {
        let phone = demo_phone(member);
        let profile = (!seen[member]).then(|| {
            seen[member] = true;
            Profile {
                name: Some(format!(
                    "{} {} {}",
                    FAMILY[member % FAMILY.len()],
                    MIDDLE[member % MIDDLE.len()],
                    GIVEN[(member / 7) % GIVEN.len()]
                )),
                city: Some(CITIES[member % CITIES.len()].to_owned()),
                birthday: chrono::NaiveDate::from_ymd_opt(
                    1970 + (member % 35) as i32,
                    1 + (member % 12) as u32,
                    1 + (member % 28) as u32,
                ),
                ..Profile::default()
            }
        });
        let coffees = rng.random_range(1..=3);
        let cakes = if rng.random_bool(0.3) {
            rng.random_range(1..=2)
        } else {
            0
        };
        let mut items = vec![Item {
            sku: "ca-phe-sua".into(),
            category: "coffee".into(),
            quantity: coffees,
            amount: Money(coffees * 45_000),
        }];
        if cakes > 0 {
            items.push(Item {
                sku: "banh-ngot".into(),
                category: "cake".into(),
                quantity: cakes,
                amount: Money(cakes * 35_000),
            });
        }
        let amount: i64 = items.iter().map(|item| item.amount.0).sum();
        let receipt = format!("HD-{index:07}");
        events.push(event(
            receipt.clone(),
            at,
            IncomingKind::Purchase {
                member: MemberRef::Phone(phone.clone()),
                purchase: Purchase {
                    store: Some(STORES[member % STORES.len()].0.to_owned()),
                    amount: Money(amount),
                    points_paid: Points(0),
                    items,
                },
                profile,
            },
        ));
        let roll = rng.random_range(0..1000);
        if roll < 8 {
            events.push(event(
                format!("TR-{index:07}"),
                at + chrono::Duration::hours(2),
                IncomingKind::Refund {
                    original: EventId::parse(&receipt).expect("valid"),
                    amount: Money(amount / 2),
                },
            ));
        } else if roll < 60 {
            events.push(event(
                format!("DG-{index:07}"),
                at + chrono::Duration::minutes(30),
                IncomingKind::Engagement {
                    member: MemberRef::Phone(phone.clone()),
                    kind: "review".into(),
                },
            ));
        } else if roll < 90 {
            let reward = &rewards[rng.random_range(0..2)];
            events.push(event(
                format!("DQ-{index:07}"),
                at + chrono::Duration::minutes(1),
                IncomingKind::Redemption {
                    member: MemberRef::Phone(phone),
                    reward_id: reward.id,
                },
            ));
        }
    }
    events.sort_by_key(|event| event.occurred_at);
    events.retain(|event| event.occurred_at <= now);
    events
}
