//! The app layer's commands over a real store and journal: refusals that change nothing, and
//! a purchase with a voucher answered as one command.

use patron_app::{
    AdjustPoints, App, Enrol, ErrorKind, Grant, HoldTier, PurchaseWithVoucher, RecordPurchase,
    Redeem, Void,
};
use patron_core::event::Purchase;
use patron_core::member::Profile;
use patron_core::reward::Reward;
use patron_core::{EventId, MemberId, Money, Phone, Points, RewardId, TenantId};
use patron_store::admin::NewTenant;
use patron_store::audit::Actor;
use patron_store::db::Bind;
use patron_store::users::Role;
use patron_store::{Journal, JournalConfig, MemberRef, Store};

struct Cafe {
    app: App,
    store: Store,
    tenant: TenantId,
}

impl Cafe {
    async fn open() -> Cafe {
        let store = patron_testkit::fresh_store(false).await;
        let tenant = store
            .create_tenant(&NewTenant::vietnamese("Cà Phê Lệnh"))
            .await
            .unwrap();
        store
            .create_store(tenant, "HN01", "Hà Nội 1")
            .await
            .unwrap();
        let programme = serde_json::from_value(serde_json::json!({
            "amount_per_point": 10000, "point_value": 1000, "return_window_days": 0,
            "expiry": {"kind": "days", "days": 365},
            "tiers": [{"code": "member", "name": "Member", "threshold": 0}],
            "qualification": {"metric": "spend", "window": "lifetime", "grace_days": 30}
        }))
        .unwrap();
        store
            .publish_programme(
                tenant,
                programme,
                chrono::Utc::now() - chrono::Duration::days(1),
            )
            .await
            .unwrap();
        let (journal, _) = Journal::start(store.clone(), JournalConfig::default());
        Cafe {
            app: App::new(store.clone(), journal),
            store,
            tenant,
        }
    }

    fn grant(&self, role: Role) -> Grant {
        Grant {
            tenant_id: self.tenant,
            role,
            actor: Actor::user(role.as_str()),
            store_code: None,
            bucket: format!("user:{}", role.as_str()),
        }
    }

    async fn count(&self, table: &str) -> i64 {
        patron_testkit::scalar(
            &self.store,
            &format!("SELECT COUNT(*) FROM {table} WHERE tenant_id = $1"),
            vec![Bind::Text(self.tenant.to_string())],
        )
        .await
    }
}

fn id(text: &str) -> EventId {
    EventId::parse(text).unwrap()
}

fn sale(member: MemberRef, amount: i64, points_paid: i64) -> RecordPurchase {
    RecordPurchase {
        member,
        purchase: Purchase {
            store: Some("HN01".into()),
            amount: Money(amount),
            points_paid: Points(points_paid),
            items: Vec::new(),
        },
        profile: None,
    }
}

#[tokio::test]
async fn a_command_refused_for_the_role_changes_nothing() {
    let cafe = Cafe::open().await;
    let phone = MemberRef::Phone(Phone::parse("0912000001").unwrap());
    let cashier = cafe.grant(Role::Cashier);
    let viewer = cafe.grant(Role::Viewer);
    let marketer = cafe.grant(Role::Marketer);
    let till_key = Grant {
        role: Role::Integration,
        store_code: Some("HN02".into()),
        ..cafe.grant(Role::Integration)
    };
    let refusals = [
        cafe.app
            .record_purchase(&viewer, id("v-1"), sale(phone.clone(), 100_000, 0))
            .await,
        cafe.app
            .record_purchase(&marketer, id("m-1"), sale(phone.clone(), 100_000, 0))
            .await,
        cafe.app
            .record_purchase(&till_key, id("k-1"), sale(phone.clone(), 100_000, 0))
            .await,
        cafe.app
            .adjust_points(
                &cashier,
                id("c-1"),
                AdjustPoints {
                    member: phone.clone(),
                    asset: patron_core::ledger::Asset::Points,
                    points: 50,
                    reason: "goodwill".into(),
                },
            )
            .await,
        cafe.app
            .hold_tier(
                &cashier,
                id("c-2"),
                HoldTier {
                    member: phone.clone(),
                    until: None,
                },
            )
            .await,
        cafe.app
            .void(
                &cashier,
                id("c-3"),
                Void {
                    original: id("v-1"),
                },
            )
            .await,
        cafe.app
            .enrol(
                &viewer,
                id("v-2"),
                Enrol {
                    phone: Phone::parse("0912000001").unwrap(),
                    profile: Profile::default(),
                },
            )
            .await,
    ];
    for (index, refusal) in refusals.into_iter().enumerate() {
        let error = refusal.expect_err("refused");
        assert_eq!(error.kind, ErrorKind::Forbidden, "{index}: {error}");
        assert_eq!(error.code, "forbidden", "{index}");
        assert_eq!(error.event, None, "{index}: refused before the journal");
    }
    let till_refusal = cafe
        .app
        .record_purchase(&till_key, id("k-2"), sale(phone.clone(), 100_000, 0))
        .await
        .unwrap_err();
    assert_eq!(till_refusal.field.as_deref(), Some("store"));
    let merge = cafe
        .app
        .merge(&cashier, MemberId::new(), MemberId::new())
        .await
        .unwrap_err();
    assert_eq!(merge.kind, ErrorKind::Forbidden);
    let erase = cafe.app.erase(&viewer, MemberId::new()).await.unwrap_err();
    assert_eq!(erase.kind, ErrorKind::Forbidden);
    for table in ["events", "members", "ledger_transactions", "audit_log"] {
        assert_eq!(cafe.count(table).await, 0, "{table}");
    }
    // The same purchase by a cashier goes through: the refusals were the roles'.
    let answer = cafe
        .app
        .record_purchase(&cashier, id("c-4"), sale(phone, 100_000, 0))
        .await
        .unwrap();
    assert_eq!(answer.points_earned, 10);
    assert_eq!(cafe.count("events").await, 1);
}

#[tokio::test]
async fn a_purchase_with_a_voucher_answers_both() {
    let cafe = Cafe::open().await;
    let cashier = cafe.grant(Role::Cashier);
    let phone = MemberRef::Phone(Phone::parse("0912000002").unwrap());
    let first = cafe
        .app
        .record_purchase(&cashier, id("sale-1"), sale(phone.clone(), 300_000, 0))
        .await
        .unwrap();
    let member = MemberRef::Id(MemberId::parse(first.member_id.as_deref().unwrap()).unwrap());
    let reward = Reward {
        id: RewardId::new(),
        name: "Bánh flan".into(),
        description: String::new(),
        cost: Points(10),
        stock: None,
        per_member_limit: None,
        valid_from: None,
        valid_until: None,
        stores: Vec::new(),
        voucher_valid_days: 30,
        active: true,
    };
    let reward_id = cafe
        .store
        .create_reward(cafe.tenant, &reward)
        .await
        .unwrap();
    let redeemed = cafe
        .app
        .redeem(
            &cashier,
            id("redeem-1"),
            Redeem {
                member: member.clone(),
                reward_id,
            },
        )
        .await
        .unwrap();
    let code = redeemed.voucher.unwrap().code;
    let typed = format!("{}-{}", &code[..4], &code[4..]).to_lowercase();
    let command = PurchaseWithVoucher {
        purchase: sale(member.clone(), 100_000, 5),
        code: typed,
    };
    let answer = cafe
        .app
        .purchase_with_voucher(&cashier, id("sale-2"), command.clone())
        .await
        .unwrap();
    let (purchase, voucher) = (answer.purchase, answer.voucher);
    assert_eq!(
        (purchase.event_id.as_str(), purchase.kind.as_str()),
        ("sale-2", "purchase")
    );
    assert_eq!(purchase.points_spent, 5);
    assert_eq!(
        (voucher.event_id.as_str(), voucher.kind.as_str()),
        ("sale-2-voucher", "voucher_use")
    );
    let events = cafe.count("events").await;
    // Sent again: both first answers, nothing recorded twice.
    let again = cafe
        .app
        .purchase_with_voucher(&cashier, id("sale-2"), command)
        .await
        .unwrap();
    assert_eq!(again.purchase, purchase);
    assert_eq!(again.voucher, voucher);
    assert_eq!(cafe.count("events").await, events);
    // The used voucher on another sale: refused as a whole, the sale not recorded either.
    let refused = cafe
        .app
        .purchase_with_voucher(
            &cashier,
            id("sale-3"),
            PurchaseWithVoucher {
                purchase: sale(member.clone(), 100_000, 0),
                code: code.clone(),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(refused.code, "voucher_not_usable");
    assert_eq!(refused.field.as_deref(), Some("voucher"));
    // A code the member does not hold, and more points than the member has with one they
    // do: refused as a whole too.
    let unknown = cafe
        .app
        .purchase_with_voucher(
            &cashier,
            id("sale-4"),
            PurchaseWithVoucher {
                purchase: sale(member.clone(), 100_000, 0),
                code: "NOPE1234".into(),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(unknown.kind, ErrorKind::NotFound, "{unknown}");
    let second = cafe
        .app
        .redeem(
            &cashier,
            id("redeem-2"),
            Redeem {
                member: member.clone(),
                reward_id,
            },
        )
        .await
        .unwrap()
        .voucher
        .unwrap()
        .code;
    let events = cafe.count("events").await;
    let short = cafe
        .app
        .purchase_with_voucher(
            &cashier,
            id("sale-5"),
            PurchaseWithVoucher {
                purchase: sale(member.clone(), 100_000, 95),
                code: second.clone(),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(short.code, "insufficient_points", "{short}");
    assert_eq!(short.field.as_deref(), Some("points_paid"));
    assert_eq!(cafe.count("events").await, events);
    let member_id = match &member {
        MemberRef::Id(id) => *id,
        MemberRef::Phone(_) => unreachable!("the member is named by id"),
    };
    let still_issued = |vouchers: Vec<patron_store::VoucherView>| {
        vouchers
            .iter()
            .any(|voucher| voucher.code == second && voucher.status == "issued")
    };
    assert!(
        still_issued(cafe.store.vouchers(cafe.tenant, member_id).await.unwrap()),
        "the refused sale did not use the voucher either"
    );
    // Another customer's sale with this member's voucher: refused as a whole, by the journal.
    let stranger = MemberRef::Phone(Phone::parse("0912000003").unwrap());
    cafe.app
        .record_purchase(&cashier, id("sale-7"), sale(stranger.clone(), 50_000, 0))
        .await
        .unwrap();
    let events = cafe.count("events").await;
    let not_theirs = cafe
        .app
        .purchase_with_voucher(
            &cashier,
            id("sale-8"),
            PurchaseWithVoucher {
                purchase: sale(stranger, 100_000, 0),
                code: second.clone(),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(not_theirs.code, "voucher_not_found", "{not_theirs}");
    assert_eq!(not_theirs.field.as_deref(), Some("voucher"));
    assert_eq!(cafe.count("events").await, events);
    assert!(still_issued(
        cafe.store.vouchers(cafe.tenant, member_id).await.unwrap()
    ));
    // A role that may not record sales sends neither.
    let viewer = cafe.grant(Role::Viewer);
    let forbidden = cafe
        .app
        .purchase_with_voucher(
            &viewer,
            id("sale-6"),
            PurchaseWithVoucher {
                purchase: sale(phone, 100_000, 0),
                code,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(forbidden.kind, ErrorKind::Forbidden);
    assert_eq!(cafe.count("events").await, events);
}
