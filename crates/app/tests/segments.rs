//! Profiles kept by the journal and live segments, over a real store on both backends: members
//! join and leave as their purchases, refunds and consent arrive; days passing move the windows.

use patron_app::{App, ErrorKind, Grant, RecordPurchase, Refund};
use patron_core::event::{Item, Purchase};
use patron_core::segment::{SalesPolicy, SegmentDefinition};
use patron_core::{EventId, MemberId, Money, Phone, Points, TenantId};
use patron_store::admin::NewTenant;
use patron_store::audit::Actor;
use patron_store::db::Bind;
use patron_store::jobs::JobKind;
use patron_store::segments::ConsentChannel;
use patron_store::users::Role;
use patron_store::{Journal, JournalConfig, MemberRef, Store};

struct Shop {
    app: App,
    store: Store,
    journal: Journal,
    tenant: TenantId,
}

impl Shop {
    async fn open(postgres: bool) -> Shop {
        let store = patron_testkit::fresh_store(postgres).await;
        let tenant = store
            .create_tenant(&NewTenant::vietnamese("Bánh Mì Phượng"))
            .await
            .unwrap();
        for (code, name) in [("HA01", "Hội An 1"), ("HA02", "Hội An 2")] {
            store.create_store(tenant, code, name).await.unwrap();
        }
        let programme = serde_json::from_value(serde_json::json!({
            "amount_per_point": 10000, "point_value": 1000, "return_window_days": 0,
            "expiry": {"kind": "days", "days": 365},
            "tiers": [{"code": "member", "name": "Member", "threshold": 0},
                      {"code": "gold", "name": "Gold", "threshold": 1000000}],
            "qualification": {"metric": "spend", "window": "lifetime", "grace_days": 30}
        }))
        .unwrap();
        store
            .publish_programme(
                tenant,
                programme,
                chrono::Utc::now() - chrono::Duration::days(400),
            )
            .await
            .unwrap();
        let (journal, _) = Journal::start(store.clone(), JournalConfig::default());
        Shop {
            app: App::new(store.clone(), journal.clone()),
            store,
            journal,
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

    /// A purchase `days_ago`, at `store`, with one line of `category`.
    async fn buy(
        &self,
        id: &str,
        phone: &str,
        amount: i64,
        store: &str,
        category: &str,
    ) -> MemberId {
        let answer = self
            .app
            .record_purchase(
                &self.grant(Role::Cashier),
                EventId::parse(id).unwrap(),
                RecordPurchase {
                    member: MemberRef::Phone(Phone::parse(phone).unwrap()),
                    purchase: Purchase {
                        store: Some(store.into()),
                        amount: Money(amount),
                        points_paid: Points(0),
                        items: vec![Item {
                            sku: format!("{category}-1"),
                            category: category.into(),
                            quantity: 1,
                            amount: Money(amount),
                        }],
                    },
                    profile: None,
                },
            )
            .await
            .unwrap();
        MemberId::parse(answer.member_id.as_deref().unwrap()).unwrap()
    }

    async fn kept(&self, member: MemberId, column: &str) -> i64 {
        patron_testkit::scalar(
            &self.store,
            &format!("SELECT {column} FROM member_profiles WHERE member_id = $1"),
            vec![Bind::Text(member.to_string())],
        )
        .await
    }

    async fn text(&self, member: MemberId, column: &str) -> Option<String> {
        self.store
            .db()
            .fetch_one(
                &format!("SELECT {column} AS v FROM member_profiles WHERE member_id = $1"),
                vec![Bind::Text(member.to_string())],
            )
            .await
            .unwrap()
            .opt_text("v")
            .unwrap()
    }

    async fn recorded(&self, segment: &str) -> Vec<MemberId> {
        let mut ids = self.store.segment_member_ids(segment).await.unwrap();
        ids.sort();
        ids
    }
}

fn definition(name: &str, condition: &str) -> SegmentDefinition {
    SegmentDefinition {
        name: name.into(),
        condition: condition.into(),
        policy: None,
    }
}

async fn members_join_and_leave_as_events_arrive(postgres: bool) {
    let shop = Shop::open(postgres).await;
    let marketer = shop.grant(Role::Marketer);
    let lan = shop
        .buy("p-1", "0905000001", 400_000, "HA01", "banh-mi")
        .await;
    shop.buy("p-2", "0905000001", 300_000, "HA02", "drinks")
        .await;
    let minh = shop.buy("p-3", "0905000002", 900_000, "HA02", "cake").await;
    let hoa = shop
        .buy("p-4", "0905000003", 50_000, "HA01", "drinks")
        .await;

    // The profile the journal kept.
    assert_eq!(shop.kept(lan, "spend_30d").await, 700_000);
    assert_eq!(shop.kept(lan, "visits_30d").await, 1);
    assert_eq!(
        shop.text(lan, "favourite_store").await.as_deref(),
        Some("HA01")
    );
    assert_eq!(
        shop.text(lan, "favourite_category").await.as_deref(),
        Some("banh-mi")
    );
    assert_eq!(
        shop.text(minh, "favourite_category").await.as_deref(),
        Some("cake")
    );

    let regulars = shop
        .app
        .save_segment(
            &marketer,
            None,
            None,
            &SegmentDefinition {
                policy: Some(SalesPolicy {
                    discount_percent: 5,
                    price_list: Some("regulars".into()),
                    note: Some("Offer the loyalty card".into()),
                }),
                ..definition(
                    "Regulars",
                    "member.spend_30d >= 600000 && member.order_count >= 2",
                )
            },
        )
        .await
        .unwrap();
    assert_eq!(regulars.members, 1);
    let id = regulars.record.id.clone();
    assert_eq!(shop.recorded(&id).await, vec![lan]);

    // Minh buys again: joins.
    shop.buy("p-5", "0905000002", 10_000, "HA02", "drinks")
        .await;
    let counts = shop.app.segments(&marketer).await.unwrap();
    assert_eq!(counts[0].members, 2);
    let mut expected = vec![lan, minh];
    expected.sort();
    assert_eq!(shop.recorded(&id).await, expected);

    // Lan's refund takes her under: leaves.
    shop.app
        .refund(
            &shop.grant(Role::Manager),
            EventId::parse("r-1").unwrap(),
            Refund {
                original: EventId::parse("p-1").unwrap(),
                amount: Money(200_000),
            },
        )
        .await
        .unwrap();
    assert_eq!(shop.kept(lan, "spend_30d").await, 500_000);
    let (count, members) = shop
        .app
        .segment_members(&marketer, &id, 0, 10)
        .await
        .unwrap();
    assert_eq!(count.members, 1);
    assert_eq!(members[0].id, minh.to_string());
    assert_eq!(shop.recorded(&id).await, vec![minh]);

    // The till and the API get the segment's sales policy with the member.
    let policies = shop.app.member_segments(&marketer, minh).await.unwrap();
    assert_eq!(policies.len(), 1);
    assert_eq!(policies[0].policy.as_ref().unwrap().discount_percent, 5);
    assert!(shop
        .app
        .member_segments(&marketer, lan)
        .await
        .unwrap()
        .is_empty());

    // Consent counts as soon as it is given.
    let preview = shop
        .app
        .preview_segment(&marketer, "member.consent_sms")
        .await
        .unwrap();
    assert_eq!((preview.members, preview.of), (0, 3));
    shop.app
        .set_consent(
            &shop.grant(Role::Cashier),
            hoa,
            ConsentChannel::Sms,
            true,
            "till",
        )
        .await
        .unwrap();
    let preview = shop
        .app
        .preview_segment(
            &marketer,
            "member.consent_sms && member.favourite_category == \"drinks\"",
        )
        .await
        .unwrap();
    assert_eq!(preview.members, 1);
    assert_eq!(preview.sample[0].id, hoa.to_string());

    // A new version with a wider condition takes effect at once.
    let wider = shop
        .app
        .save_segment(
            &marketer,
            Some(&id),
            Some(1),
            &definition("Regulars", "member.spend_30d >= 400000"),
        )
        .await
        .unwrap();
    assert_eq!((wider.record.version, wider.members), (2, 2));
    assert_eq!(
        shop.app
            .segment_versions(&marketer, &id)
            .await
            .unwrap()
            .len(),
        2
    );

    // Refusals name the field and change nothing.
    let stale = shop
        .app
        .save_segment(
            &marketer,
            Some(&id),
            Some(1),
            &definition("Regulars", "true"),
        )
        .await
        .unwrap_err();
    assert_eq!(stale.kind, ErrorKind::Conflict);
    let bad = shop
        .app
        .save_segment(
            &marketer,
            None,
            None,
            &definition("Bad", "member.spend_30d >= \"x\""),
        )
        .await
        .unwrap_err();
    assert_eq!(
        (bad.kind, bad.field.as_deref()),
        (ErrorKind::Invalid, Some("condition"))
    );
    let twin = shop
        .app
        .save_segment(&marketer, None, None, &definition("Regulars", "true"))
        .await
        .unwrap_err();
    assert_eq!(twin.field.as_deref(), Some("name"));
    let cashier = shop
        .app
        .save_segment(
            &shop.grant(Role::Cashier),
            None,
            None,
            &definition("Mine", "true"),
        )
        .await
        .unwrap_err();
    assert_eq!(cashier.kind, ErrorKind::Forbidden);
    assert_eq!(shop.app.segments(&marketer).await.unwrap().len(), 1);

    // Archived: gone, and its members forgotten.
    shop.app.archive_segment(&marketer, &id).await.unwrap();
    assert!(shop.app.segments(&marketer).await.unwrap().is_empty());
    assert!(shop.recorded(&id).await.is_empty());
}

#[tokio::test]
async fn members_join_and_leave_as_events_arrive_on_sqlite() {
    members_join_and_leave_as_events_arrive(false).await;
}

#[tokio::test]
async fn members_join_and_leave_as_events_arrive_on_postgres() {
    members_join_and_leave_as_events_arrive(true).await;
}

async fn days_passing_move_the_windows(postgres: bool) {
    let shop = Shop::open(postgres).await;
    let lan = shop
        .buy("p-1", "0905000001", 400_000, "HA01", "banh-mi")
        .await;
    // A database from before profiles: the first run of the job computes every member.
    shop.store
        .db()
        .execute("DELETE FROM member_profiles", Vec::new())
        .await
        .unwrap();
    let now = chrono::Utc::now();
    let report = shop
        .journal
        .run_job(JobKind::KeepProfiles, now)
        .await
        .unwrap();
    assert_eq!(report.processed, 1);
    assert_eq!(shop.kept(lan, "spend_30d").await, 400_000);
    // The same day again: nothing to do.
    let report = shop
        .journal
        .run_job(JobKind::KeepProfiles, now)
        .await
        .unwrap();
    assert_eq!(report.processed, 0);
    // 31 days on, the purchase has left the 30-day window but not the 90-day one.
    let later = now + chrono::Duration::days(31);
    let report = shop
        .journal
        .run_job(JobKind::KeepProfiles, later)
        .await
        .unwrap();
    assert_eq!(report.processed, 1);
    assert_eq!(shop.kept(lan, "spend_30d").await, 0);
    assert_eq!(shop.kept(lan, "visits_30d").await, 0);
    assert_eq!(shop.kept(lan, "spend_90d").await, 400_000);
    // A year and more on, it has left every window.
    let much_later = now + chrono::Duration::days(400);
    shop.journal
        .run_job(JobKind::KeepProfiles, much_later)
        .await
        .unwrap();
    assert_eq!(shop.kept(lan, "spend_365d").await, 0);
    assert_eq!(
        shop.kept(lan, "first_purchase_at").await,
        shop.kept(lan, "last_purchase_at").await
    );
}

#[tokio::test]
async fn days_passing_move_the_windows_on_sqlite() {
    days_passing_move_the_windows(false).await;
}

#[tokio::test]
async fn days_passing_move_the_windows_on_postgres() {
    days_passing_move_the_windows(true).await;
}
