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
