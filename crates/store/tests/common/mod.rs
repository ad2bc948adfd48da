//! Test helpers: a fresh database per test on each backend, a café tenant, event builders.
#![allow(dead_code)]

use patron_core::event::{Item, Purchase};
use patron_core::programme::ProgrammeDefinition;
use patron_core::reward::Reward;
use patron_core::time::Timestamp;
use patron_core::{EventId, Money, Phone, Points, RewardId, TenantId};
use patron_store::admin::NewTenant;
use patron_store::{IncomingEvent, IncomingKind, Journal, JournalConfig, MemberRef, Store};

/// A fresh SQLite file in the temp directory.
pub async fn sqlite() -> Store {
    patron_testkit::fresh_store(false).await
}

/// A fresh PostgreSQL database.
pub async fn postgres() -> Store {
    patron_testkit::fresh_store(true).await
}

/// Runs the async function `$name(store)` as two tests, `$name::sqlite` and `$name::postgres`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident;)*) => {
        $(
            mod $name {
                #![allow(non_snake_case)]
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::common::sqlite().await).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::common::postgres().await).await;
                }
            }
        )*
    };
}

/// The café programme of the tests.
pub fn cafe_programme() -> ProgrammeDefinition {
    serde_json::from_value(serde_json::json!({
        "amount_per_point": 10000,
        "point_value": 1000,
        "return_window_days": 7,
        "expiry": {"kind": "days", "days": 365},
        "cap_per_event": 1000,
        "rules": [
            {"id": "cake", "name": "Cake bonus", "when": "'cake' in event.categories",
             "points": "event.quantity_by_category['cake'] * 10"},
            {"id": "review", "name": "Review", "when": "event.type == 'review'", "points": "20"},
            {"id": "sign_up", "name": "Welcome", "when": "event.type == 'sign_up'", "points": "50", "once_per": "ever"}
        ],
        "tiers": [
            {"code": "member", "name": "Member", "threshold": 0},
            {"code": "silver", "name": "Silver", "threshold": 2000000, "multiplier_percent": 120},
            {"code": "gold", "name": "Gold", "threshold": 5000000, "multiplier_percent": 150}
        ],
        "qualification": {"metric": "spend", "window": "rolling_12_months", "grace_days": 30}
    }))
    .expect("cafe programme")
}

/// 2026-01-01T00:00:00Z plus `days`.
pub fn day(days: i64) -> Timestamp {
    chrono::DateTime::parse_from_rfc3339("2026-01-01T03:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc)
        + chrono::Duration::days(days)
}

/// A café tenant with stores HN01 and HCM01, the café programme in force from 2025, a journal.
pub struct Cafe {
    pub store: Store,
    pub tenant: TenantId,
    pub journal: Journal,
}

impl Cafe {
    pub async fn open(store: Store) -> Cafe {
        let tenant = store
            .create_tenant(&NewTenant::vietnamese("Cà phê Test"))
            .await
            .unwrap();
        store
            .create_store(tenant, "HN01", "Hà Nội 1")
            .await
            .unwrap();
        store
            .create_store(tenant, "HCM01", "Sài Gòn 1")
            .await
            .unwrap();
        store
            .publish_programme(tenant, cafe_programme(), day(-365))
            .await
            .unwrap();
        let (journal, _) = Journal::start(store.clone(), JournalConfig::default());
        Cafe {
            store,
            tenant,
            journal,
        }
    }

    pub fn event(&self, id: &str, at: Timestamp, kind: IncomingKind) -> IncomingEvent {
        IncomingEvent {
            tenant_id: self.tenant,
            id: EventId::parse(id).unwrap(),
            occurred_at: at,
            body_hash: format!("{kind:?}"),
            kind,
            actor: None,
            store_scope: None,
        }
    }

    pub async fn reward(&self, name: &str, cost: i64, stock: Option<i64>) -> RewardId {
        let reward = Reward {
            id: RewardId::new(),
            name: name.into(),
            description: String::new(),
            cost: Points(cost),
            stock,
            per_member_limit: None,
            valid_from: None,
            valid_until: None,
            stores: vec![],
            voucher_valid_days: 30,
            active: true,
        };
        self.store
            .create_reward(self.tenant, &reward)
            .await
            .unwrap()
    }
}

pub fn phone(text: &str) -> MemberRef {
    MemberRef::Phone(Phone::parse(text).unwrap())
}

pub fn purchase(member: MemberRef, amount: i64, points_paid: i64) -> IncomingKind {
    IncomingKind::Purchase {
        member,
        purchase: Purchase {
            store: Some("HN01".into()),
            amount: Money(amount),
            points_paid: Points(points_paid),
            items: vec![],
        },
        profile: None,
    }
}

pub fn purchase_with_items(
    member: MemberRef,
    amount: i64,
    items: Vec<(&str, i64, i64)>,
) -> IncomingKind {
    IncomingKind::Purchase {
        member,
        purchase: Purchase {
            store: Some("HN01".into()),
            amount: Money(amount),
            points_paid: Points(0),
            items: items
                .into_iter()
                .map(|(category, quantity, amount)| Item {
                    sku: category.into(),
                    category: category.into(),
                    quantity,
                    amount: Money(amount),
                })
                .collect(),
        },
        profile: None,
    }
}

/// The first instant of the local day (Asia/Ho_Chi_Minh, the café's zone) of [`day`]`(days)`.
pub fn midnight(days: i64) -> Timestamp {
    let date = chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap() + chrono::Duration::days(days);
    chrono::DateTime::parse_from_rfc3339(&format!("{date}T00:00:00+07:00"))
        .unwrap()
        .with_timezone(&chrono::Utc)
}

/// The dashboard's figures kept by the writers equal the same figures scanned from the tables,
/// for periods of one day, a week and the whole of `days`, every store and each; and rebuilding
/// the kept figures from the tables changes none of them.
pub async fn assert_figures_agree(store: &Store, tenant: TenantId, days: std::ops::Range<i64>) {
    use patron_store::stats::StatsQuery;
    let span = days.end - days.start;
    let mut periods = vec![(days.start, days.end)];
    let mut first = days.start;
    while first < days.end {
        periods.push((first, first + 1));
        periods.push((first, (first + 7).min(days.end)));
        first += (span / 20).max(3);
    }
    for store_code in [None, Some("HN01"), Some("HCM01")] {
        for (from, until) in &periods {
            let query = StatsQuery {
                tenant_id: tenant,
                from: midnight(*from),
                until: midnight(*until),
                store: store_code.map(str::to_owned),
            };
            let context = format!("days {from}..{until}, store {store_code:?}");
            assert_eq!(
                store.overview(&query).await.unwrap(),
                store.overview_scanned(&query).await.unwrap(),
                "overview, {context}"
            );
            let sorted = |mut tiers: Vec<patron_store::stats::TierSpend>| {
                tiers.sort_by(|a, b| a.tier.cmp(&b.tier));
                tiers
            };
            assert_eq!(
                sorted(store.spend_by_tier(&query).await.unwrap()),
                sorted(store.spend_by_tier_scanned(&query).await.unwrap()),
                "spend by tier, {context}"
            );
            assert_eq!(
                store.top_rewards(&query).await.unwrap(),
                store.top_rewards_scanned(&query).await.unwrap(),
                "top rewards, {context}"
            );
        }
        let query = StatsQuery {
            tenant_id: tenant,
            from: midnight(days.start),
            until: midnight(days.end),
            store: store_code.map(str::to_owned),
        };
        let step = (span / 60 + 1).max(7);
        let weeks: Vec<Timestamp> = (days.start..=days.end + step)
            .step_by(step as usize)
            .map(midnight)
            .collect();
        assert_eq!(
            store.series(&query, &weeks).await.unwrap(),
            store.series_scanned(&query, &weeks).await.unwrap(),
            "series, store {store_code:?}"
        );
    }
    let months: Vec<Timestamp> = (0..14).map(|month| midnight(month * 30)).collect();
    assert_eq!(
        store.liability_by_expiry(tenant, &months).await.unwrap(),
        store
            .liability_by_expiry_scanned(tenant, &months)
            .await
            .unwrap(),
        "liability by expiry"
    );
    let kept = store.kept_figures(tenant).await.unwrap();
    store.rebuild_figures(tenant).await.unwrap();
    let rebuilt = store.kept_figures(tenant).await.unwrap();
    assert_eq!(
        kept, rebuilt,
        "figures kept by the writers and rebuilt from the tables"
    );
}

/// Everything an event may change, as text to compare.
pub async fn snapshot(store: &Store) -> String {
    let mut out = String::new();
    for sql in [
        "SELECT COUNT(*) AS n FROM events",
        "SELECT COUNT(*) AS n FROM ledger_transactions",
        "SELECT COUNT(*) AS n FROM ledger_entries",
        "SELECT COUNT(*) AS n FROM members",
        "SELECT COUNT(*) AS n FROM vouchers",
        "SELECT COUNT(*) AS n FROM event_lines",
        "SELECT COUNT(*) AS n FROM audit_log",
    ] {
        out.push_str(&format!(
            "{sql}: {}\n",
            patron_testkit::scalar(store, sql, vec![]).await
        ));
    }
    for sql in [
        "SELECT id, points_balance, tier, order_count, lifetime_spend FROM members ORDER BY id",
        "SELECT member_id, asset, balance FROM member_balances ORDER BY member_id, asset",
        "SELECT id, asset, remaining FROM lots ORDER BY id",
        "SELECT code, status FROM vouchers ORDER BY code",
        "SELECT id, stock FROM rewards ORDER BY id",
    ] {
        for row in store.db().fetch(sql, vec![]).await.unwrap() {
            out.push_str(&format!("{:?}\n", row.cells()));
        }
    }
    out
}
