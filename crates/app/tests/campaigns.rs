//! Campaigns end to end over a real store and local fake providers: a segment's members get a
//! ZNS, falling back to SMS; consent, the law's hours for advertising SMS and the hold-out are
//! respected; the report counts what happened and what the members bought.

use patron_app::campaigns::{CampaignDefinition, Channel, Purpose, Variant, ZnsContent};
use patron_app::dispatch::Account;
use patron_app::{App, Grant, RecordPurchase};
use patron_channels::fake::{FakeFailure, FakeProvider, FakeProviders};
use patron_core::event::Purchase;
use patron_core::segment::SegmentDefinition;
use patron_core::{EventId, MemberId, Money, Phone, Points, TenantId};
use patron_store::admin::NewTenant;
use patron_store::audit::Actor;
use patron_store::segments::ConsentChannel;
use patron_store::users::Role;
use patron_store::{Journal, JournalConfig, MemberRef};
use std::collections::BTreeMap;

struct Shop {
    app: App,
    tenant: TenantId,
    fake: FakeProviders,
}

fn grant(tenant: TenantId, role: Role) -> Grant {
    Grant {
        tenant_id: tenant,
        role,
        actor: Actor::user(role.as_str()),
        store_code: None,
        bucket: "test".into(),
    }
}

/// 10:00 in Hà Nội tomorrow: inside the hours advertising SMS may go.
fn morning() -> chrono::DateTime<chrono::Utc> {
    let zone: chrono_tz::Tz = "Asia/Ho_Chi_Minh".parse().unwrap();
    let tomorrow = chrono::Utc::now().with_timezone(&zone).date_naive() + chrono::Duration::days(1);
    use chrono::TimeZone;
    zone.from_local_datetime(&tomorrow.and_hms_opt(10, 0, 0).unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc)
}

impl Shop {
    async fn open(postgres: bool) -> Shop {
        let store = patron_testkit::fresh_store(postgres).await;
        let tenant = store
            .create_tenant(&NewTenant::vietnamese("Trà Sữa Mây"))
            .await
            .unwrap();
        store.create_store(tenant, "DN01", "Đà Nẵng").await.unwrap();
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
                chrono::Utc::now() - chrono::Duration::days(30),
            )
            .await
            .unwrap();
        let (journal, _) = Journal::start(store.clone(), JournalConfig::default());
        let app = App::new(store.clone(), journal)
            .with_secret_key([7; 32])
            .allowing_local_targets();
        let fake = FakeProviders::start().await;
        let tokens = fake.zns_issue_tokens(chrono::Duration::hours(25));
        let zns = fake.zns_config();
        let owner = grant(tenant, Role::Owner);
        app.save_channel_account(
            &owner,
            &Account::Zns {
                app_id: zns.app_id.clone(),
                secret_key: zns.secret_key.clone(),
                oa_secret_key: "oa-secret".into(),
                access_token: tokens.access_token,
                refresh_token: tokens.refresh_token,
                expires_at: tokens.expires_at,
                api_base_url: Some(zns.api_base_url.clone()),
                oauth_base_url: Some(zns.oauth_base_url.clone()),
            },
        )
        .await
        .unwrap();
        let esms = fake.esms_config();
        app.save_channel_account(
            &owner,
            &Account::Esms {
                api_key: esms.api_key.clone(),
                secret_key: esms.secret_key.clone(),
                brandname: esms.brandname.clone(),
                base_url: Some(esms.base_url.clone()),
                sandbox: false,
            },
        )
        .await
        .unwrap();
        Shop { app, tenant, fake }
    }

    async fn buy(&self, id: &str, phone: &str, amount: i64) -> MemberId {
        let answer = self
            .app
            .record_purchase(
                &grant(self.tenant, Role::Cashier),
                EventId::parse(id).unwrap(),
                RecordPurchase {
                    member: MemberRef::Phone(Phone::parse(phone).unwrap()),
                    purchase: Purchase {
                        store: Some("DN01".into()),
                        amount: Money(amount),
                        points_paid: Points(0),
                        items: Vec::new(),
                    },
                    profile: None,
                },
            )
            .await
            .unwrap();
        MemberId::parse(answer.member_id.as_deref().unwrap()).unwrap()
    }

    async fn consent(&self, member: MemberId, channel: ConsentChannel, granted: bool) {
        self.app
            .set_consent(
                &grant(self.tenant, Role::Cashier),
                member,
                channel,
                granted,
                "till",
            )
            .await
            .unwrap();
    }

    async fn refused_targets(&self) {
        let owner = grant(self.tenant, Role::Owner);
        let strict =
            App::new(self.app.store().clone(), self.app.journal().clone()).with_secret_key([7; 32]);
        let elsewhere = Account::Speedsms {
            access_token: "t".into(),
            sender: "S".into(),
            base_url: Some("http://169.254.169.254".into()),
        };
        let error = strict
            .save_channel_account(&owner, &elsewhere)
            .await
            .unwrap_err();
        assert_eq!(error.field.as_deref(), Some("base_url"));
        let local_smtp = Account::Smtp {
            host: "127.0.0.1".into(),
            port: 25,
            username: None,
            password: None,
            starttls: false,
            from: "shop@example.vn".into(),
        };
        let error = strict
            .save_channel_account(&owner, &local_smtp)
            .await
            .unwrap_err();
        assert_eq!(error.field.as_deref(), Some("host"));
    }

    async fn segment(&self) -> String {
        self.app
            .save_segment(
                &grant(self.tenant, Role::Marketer),
                None,
                None,
                &SegmentDefinition {
                    name: "Everyone who bought".into(),
                    condition: "member.order_count >= 1".into(),
                    policy: None,
                },
            )
            .await
            .unwrap()
            .record
            .id
    }
}

fn definition(segment: &str, channels: Vec<Channel>, holdout: u8) -> CampaignDefinition {
    CampaignDefinition {
        name: "Mưa rồi, uống trà".into(),
        segment_id: segment.into(),
        purpose: Purpose::Advertising,
        channels,
        variants: vec![Variant {
            name: "A".into(),
            weight: 1,
            zns: Some(ZnsContent {
                template_id: "401234".into(),
                data: BTreeMap::from([("name".into(), "{{ member.first_name }}".into())]),
            }),
            sms: Some(
                "{{ tenant.name }}: {{ member.first_name }} oi, tra sua giam 20% hom nay".into(),
            ),
            email: None,
        }],
        holdout_percent: holdout,
        attribution_days: 7,
        scheduled_at: None,
    }
}

async fn dispatch_all(app: &App, at: chrono::DateTime<chrono::Utc>) {
    while app.dispatch_due(at).await.unwrap() > 0 {}
}

async fn a_campaign_reaches_members_on_the_channel_they_agreed_to(postgres: bool) {
    let shop = Shop::open(postgres).await;
    shop.refused_targets().await;
    let lan = shop.buy("b-1", "0935000001", 100_000).await;
    let minh = shop.buy("b-2", "0935000002", 100_000).await;
    let hoa = shop.buy("b-3", "0935000003", 100_000).await;
    let tuan = shop.buy("b-4", "0935000004", 100_000).await;
    // Lan agreed to Zalo and SMS, Minh to SMS only, Hoa to Zalo but said STOP to SMS, Tuấn to
    // nothing.
    shop.consent(lan, ConsentChannel::Zns, true).await;
    shop.consent(lan, ConsentChannel::Sms, true).await;
    shop.consent(minh, ConsentChannel::Sms, true).await;
    shop.consent(hoa, ConsentChannel::Zns, true).await;
    shop.consent(hoa, ConsentChannel::Sms, false).await;
    let segment = shop.segment().await;
    let marketer = grant(shop.tenant, Role::Marketer);

    // Refusals name the field.
    let mut bad = definition(&segment, vec![Channel::Zns, Channel::Sms], 0);
    bad.variants[0].sms = Some("{{ member.shoe_size }}".into());
    let error = shop.app.create_campaign(&marketer, &bad).await.unwrap_err();
    assert_eq!(error.field.as_deref(), Some("variants[0].sms"), "{error:?}");
    let mut bad = definition(&segment, vec![Channel::Zns, Channel::Sms], 51);
    bad.name = "x".into();
    let error = shop.app.create_campaign(&marketer, &bad).await.unwrap_err();
    assert_eq!(error.field.as_deref(), Some("holdout_percent"));

    let campaign = shop
        .app
        .create_campaign(
            &marketer,
            &definition(&segment, vec![Channel::Zns, Channel::Sms], 0),
        )
        .await
        .unwrap();
    let id = campaign.row.id.clone();
    assert_eq!(shop.app.start_campaign(&marketer, &id).await.unwrap(), 4);
    // Started once only.
    assert!(shop.app.start_campaign(&marketer, &id).await.is_err());
    dispatch_all(&shop.app, morning()).await;

    let zns: Vec<String> = shop
        .fake
        .received_by(FakeProvider::Zns)
        .iter()
        .map(|received| received.recipient.clone())
        .collect();
    let sms: Vec<(String, String)> = shop
        .fake
        .received_by(FakeProvider::Esms)
        .iter()
        .map(|received| {
            (
                received.recipient.clone(),
                received.text.clone().unwrap_or_default(),
            )
        })
        .collect();
    let mut zns_sorted = zns.clone();
    zns_sorted.sort();
    assert_eq!(zns_sorted, vec!["84935000001", "84935000003"], "{zns:?}");
    assert_eq!(sms.len(), 1, "{sms:?}");
    assert_eq!(sms[0].0, "84935000002");
    assert!(
        sms[0].1.starts_with("[QC]"),
        "advertising SMS are labelled: {}",
        sms[0].1
    );
    assert!(sms[0].1.contains("Trà Sữa Mây"), "{}", sms[0].1);

    let report = shop.app.campaign_report(&marketer, &id).await.unwrap();
    assert_eq!(report.targeted, 4);
    assert_eq!(report.sent, 3);
    assert_eq!(report.suppressed.get("no_consent"), Some(&1), "{report:?}");
    assert_eq!(report.sent_by_channel.get("zns"), Some(&2));
    assert_eq!(report.sent_by_channel.get("sms"), Some(&1));
    assert_eq!(report.pending, 0);
    let status = shop.app.campaign(&marketer, &id).await.unwrap().row.status;
    assert_eq!(status, "sent");
    let _ = tuan;

    // A refused ZNS falls back to SMS for a member who agreed to both.
    let both = shop
        .app
        .save_segment(
            &marketer,
            None,
            None,
            &SegmentDefinition {
                name: "Zalo and SMS".into(),
                condition: "member.consent_zns && member.consent_sms".into(),
                policy: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(both.members, 1);
    shop.fake
        .fail_next(FakeProvider::Zns, 1, FakeFailure::Code("-108".into()));
    let again = shop
        .app
        .create_campaign(
            &marketer,
            &definition(&both.record.id, vec![Channel::Zns, Channel::Sms], 0),
        )
        .await
        .unwrap();
    shop.app
        .start_campaign(&marketer, &again.row.id)
        .await
        .unwrap();
    dispatch_all(&shop.app, morning() + chrono::Duration::hours(1)).await;
    let report = shop
        .app
        .campaign_report(&marketer, &again.row.id)
        .await
        .unwrap();
    assert_eq!(report.sent, 1, "{report:?}");
    assert_eq!(report.sent_by_channel.get("sms"), Some(&1), "{report:?}");
    let last_sms = shop.fake.received_by(FakeProvider::Esms).pop().unwrap();
    assert_eq!(last_sms.recipient, "84935000001");

    // What they bought after it counts in the report.
    shop.buy("after-1", "0935000001", 250_000).await;
    let report = shop.app.campaign_report(&marketer, &id).await.unwrap();
    assert_eq!(report.sent_group.converted, 1);
    assert_eq!(report.sent_group.revenue, 250_000);
}

#[tokio::test]
async fn a_campaign_reaches_members_on_the_channel_they_agreed_to_on_sqlite() {
    a_campaign_reaches_members_on_the_channel_they_agreed_to(false).await;
}

#[tokio::test]
async fn a_campaign_reaches_members_on_the_channel_they_agreed_to_on_postgres() {
    a_campaign_reaches_members_on_the_channel_they_agreed_to(true).await;
}

async fn advertising_sms_waits_for_the_morning_and_the_hold_out_is_not_sent(postgres: bool) {
    let shop = Shop::open(postgres).await;
    let mut members = Vec::new();
    for n in 0..40 {
        let member = shop
            .buy(&format!("h-{n}"), &format!("09360000{n:02}"), 50_000)
            .await;
        shop.consent(member, ConsentChannel::Sms, true).await;
        members.push(member);
    }
    let segment = shop.segment().await;
    let marketer = grant(shop.tenant, Role::Marketer);
    let campaign = shop
        .app
        .create_campaign(&marketer, &definition(&segment, vec![Channel::Sms], 25))
        .await
        .unwrap();
    let id = campaign.row.id.clone();
    shop.app.start_campaign(&marketer, &id).await.unwrap();
    let held: usize = members
        .iter()
        .filter(|member| patron_core::outreach::in_holdout(&id, &member.to_string(), 2_500))
        .count();
    assert!(held > 0 && held < 40, "{held}");
    // 23:00 in Hà Nội: advertising SMS wait for 07:00.
    let night = morning() + chrono::Duration::hours(13);
    dispatch_all(&shop.app, night).await;
    assert!(shop.fake.received_by(FakeProvider::Esms).is_empty());
    let report = shop.app.campaign_report(&marketer, &id).await.unwrap();
    assert_eq!(report.pending as usize, 40 - held);
    assert_eq!(report.held_out as usize, held);
    // The next morning they go, the hold-out never.
    dispatch_all(&shop.app, night + chrono::Duration::hours(9)).await;
    assert_eq!(shop.fake.received_by(FakeProvider::Esms).len(), 40 - held);
    let report = shop.app.campaign_report(&marketer, &id).await.unwrap();
    assert_eq!(report.sent as usize, 40 - held);
    assert_eq!(report.holdout_group.members as usize, held);
}

#[tokio::test]
async fn advertising_sms_waits_for_the_morning_and_the_hold_out_is_not_sent_on_sqlite() {
    advertising_sms_waits_for_the_morning_and_the_hold_out_is_not_sent(false).await;
}

#[tokio::test]
async fn advertising_sms_waits_for_the_morning_and_the_hold_out_is_not_sent_on_postgres() {
    advertising_sms_waits_for_the_morning_and_the_hold_out_is_not_sent(true).await;
}
