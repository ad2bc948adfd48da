//! The dashboard's figures kept by the writers (`figures.rs`) against the same figures scanned
//! from the tables, after every kind of writer has run: batches of purchases sent out of order
//! at two stores, refunds and a void, vouchers taken, used, cancelled and expired, lots expired,
//! tiers reviewed, an adjustment, a merge, an erasure and a bulk enrolment.

mod common;

use common::*;
use patron_core::ledger::Asset;
use patron_core::{EventId, Money, Phone};
use patron_store::audit::Actor;
use patron_store::jobs::JobKind;
use patron_store::members::MergeRequest;
use patron_store::{IncomingKind, MemberRef, Store};

fn shop_purchase(member: usize, amount: i64, store: &str) -> IncomingKind {
    let mut kind = purchase(phone(&format!("09120000{member:02}")), amount, 0);
    if let IncomingKind::Purchase { purchase, .. } = &mut kind {
        purchase.store = Some(store.into());
    }
    kind
}

async fn kept_figures_follow_every_writer(store: Store) {
    let cafe = Cafe::open(store).await;
    let reward = cafe.reward("Cà phê sữa", 20, None).await;
    // 12 members buy on 40 days, the days scrambled so later batches hold earlier purchases.
    let purchases: Vec<_> = (0..180usize)
        .map(|index| {
            let store = if index % 3 == 0 { "HCM01" } else { "HN01" };
            let amount = 60_000 + (index as i64 % 9) * 55_000;
            let at = day((index as i64 * 17) % 40);
            cafe.event(
                &format!("P{index}"),
                at,
                shop_purchase(index % 12, amount, store),
            )
        })
        .collect();
    for chunk in purchases.chunks(16) {
        for answer in cafe.journal.submit_all(chunk.to_vec()).await {
            answer.unwrap();
        }
    }
    assert_figures_agree(&cafe.store, cafe.tenant, -1..45).await;

    // Refunds in part and in full, and a void, on days after the purchases.
    let mut later = vec![
        cafe.event(
            "R1",
            day(41),
            IncomingKind::Refund {
                original: EventId::parse("P3").unwrap(),
                amount: Money(20_000),
            },
        ),
        cafe.event(
            "R2",
            day(41),
            IncomingKind::Refund {
                original: EventId::parse("P4").unwrap(),
                amount: Money(60_000),
            },
        ),
        cafe.event(
            "V1",
            day(42),
            IncomingKind::Void {
                original: EventId::parse("P5").unwrap(),
            },
        ),
    ];
    // Vouchers: taken by every member, some used (at a store), one cancelled.
    for member in 0..12usize {
        later.push(cafe.event(
            &format!("RD{member}"),
            day(42),
            IncomingKind::Redemption {
                member: phone(&format!("09120000{member:02}")),
                reward_id: reward,
            },
        ));
    }
    later.push(cafe.event(
        "ADJ",
        day(43),
        IncomingKind::Adjustment {
            member: phone("0912000007"),
            asset: Asset::Points,
            points: -15,
            reason: "sửa nhầm".into(),
            actor: None,
        },
    ));
    // Store credit and stamps beside points: their liability too.
    for (id, asset, amount) in [
        ("CR1", Asset::Money, 50_000),
        ("CR2", Asset::Stamps("cafe10".into()), 4),
    ] {
        later.push(cafe.event(
            id,
            day(43),
            IncomingKind::Adjustment {
                member: phone("0912000008"),
                asset,
                points: amount,
                reason: "tặng".into(),
                actor: None,
            },
        ));
    }
    let answers = cafe.journal.submit_all(later).await;
    let codes: Vec<String> = answers
        .iter()
        .filter_map(|answer| Some(answer.as_ref().ok()?.voucher.as_ref()?.code.clone()))
        .collect();
    assert!(codes.len() >= 6, "vouchers issued: {answers:?}");
    let mut uses = vec![cafe.event(
        "C1",
        day(43),
        IncomingKind::VoucherCancel {
            code: codes[0].clone(),
        },
    )];
    for (index, code) in codes[1..4].iter().enumerate() {
        uses.push(cafe.event(
            &format!("U{index}"),
            day(44),
            IncomingKind::VoucherUse {
                code: code.clone(),
                store: Some("HCM01".into()),
            },
        ));
    }
    for answer in cafe.journal.submit_all(uses).await {
        answer.unwrap();
    }
    assert_figures_agree(&cafe.store, cafe.tenant, -1..45).await;
    let query = patron_store::stats::StatsQuery {
        tenant_id: cafe.tenant,
        from: midnight(0),
        until: midnight(45),
        store: None,
    };
    assert_eq!(
        cafe.store
            .overview(&query)
            .await
            .unwrap()
            .outstanding_holdings,
        vec![
            ("money".to_owned(), 50_000),
            ("stamps:cafe10".to_owned(), 4)
        ]
    );

    // Jobs: tiers reviewed, the other vouchers expired, every lot expired.
    cafe.journal
        .run_job(JobKind::ReviewTiers, day(44))
        .await
        .unwrap();
    cafe.journal
        .run_job(JobKind::ExpireVouchers, day(120))
        .await
        .unwrap();
    cafe.journal
        .run_job(JobKind::ExpireLots, day(800))
        .await
        .unwrap();
    assert_figures_agree(&cafe.store, cafe.tenant, -1..45).await;

    // A merge, an erasure, a bulk enrolment.
    let id = |text: &str| {
        let phone = Phone::parse(text).unwrap();
        let store = cafe.store.clone();
        let tenant = cafe.tenant;
        async move {
            let member = store
                .member(tenant, &MemberRef::Phone(phone), day(45))
                .await
                .unwrap();
            patron_core::MemberId::parse(&member.id).unwrap()
        }
    };
    let (survivor, source) = (id("0912000001").await, id("0912000002").await);
    cafe.journal
        .merge(MergeRequest {
            tenant_id: cafe.tenant,
            survivor,
            source,
            actor: Actor::cli(),
        })
        .await
        .unwrap();
    cafe.store
        .erase_member(cafe.tenant, id("0912000003").await, &Actor::cli())
        .await
        .unwrap();
    let phones: Vec<Phone> = (0..5)
        .map(|n| Phone::parse(&format!("09130000{n:02}")).unwrap())
        .collect();
    cafe.store.bulk_enrol(cafe.tenant, &phones).await.unwrap();
    let today = (chrono::Utc::now() - midnight(0)).num_days();
    assert_figures_agree(&cafe.store, cafe.tenant, -1..today + 1).await;
}

on_both_backends! {
    kept_figures_follow_every_writer;
}
