//! Conformance scenarios, each run on SQLite and on PostgreSQL.

mod common;

use common::*;
use patron_core::engine::Rejection;
use patron_core::reward::Reward;
use patron_core::{EventId, MemberId, Money, Phone, Points, RewardId};
use patron_store::admin::NewTenant;
use patron_store::audit::Actor;
use patron_store::jobs::JobKind;
use patron_store::PURCHASE_AMOUNT_MAX_DEFAULT;
use patron_store::{EventError, IncomingKind, MemberRef, Store};

async fn sound(store: &Store) {
    let check = store.check_ledger().await.unwrap();
    assert!(check.is_sound(), "{check:?}");
}

async fn idempotency_same_and_different_body(store: Store) {
    let cafe = Cafe::open(store).await;
    let first = cafe
        .journal
        .submit(cafe.event("HD-1", day(0), purchase(phone("0912345678"), 250_000, 0)))
        .await
        .unwrap();
    let counts = cafe.store.check_ledger().await.unwrap();
    let again = cafe
        .journal
        .submit(cafe.event("HD-1", day(0), purchase(phone("0912345678"), 250_000, 0)))
        .await
        .unwrap();
    assert_eq!(again, first);
    let other = cafe
        .journal
        .submit(cafe.event("HD-1", day(0), purchase(phone("0912345678"), 260_000, 0)))
        .await;
    assert_eq!(other, Err(EventError::ExistsWithDifferentBody));
    // Inside one batch too.
    let answers = cafe
        .journal
        .submit_all(vec![
            cafe.event("HD-2", day(0), purchase(phone("0912345678"), 100_000, 0)),
            cafe.event("HD-2", day(0), purchase(phone("0912345678"), 100_000, 0)),
            cafe.event("HD-2", day(0), purchase(phone("0912345678"), 90_000, 0)),
        ])
        .await;
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[2], Err(EventError::ExistsWithDifferentBody));
    let after = cafe.store.check_ledger().await.unwrap();
    assert_eq!(after.events, counts.events + 1);
    assert_eq!(after.transactions, counts.transactions + 1);
    sound(&cafe.store).await;
}

async fn a_bad_event_fails_alone(store: Store) {
    let cafe = Cafe::open(store).await;
    let mut unknown_store = purchase(phone("0912000001"), 100_000, 0);
    if let IncomingKind::Purchase { purchase, .. } = &mut unknown_store {
        purchase.store = Some("NOWHERE".into());
    }
    let answers = cafe
        .journal
        .submit_all(vec![
            cafe.event("A", day(0), purchase(phone("0912000001"), 100_000, 0)),
            cafe.event("B", day(0), purchase(phone("0912000001"), 100_000, 50)),
            cafe.event("C", day(0), unknown_store),
            cafe.event(
                "D",
                day(0),
                IncomingKind::Refund {
                    original: EventId::parse("NOPE").unwrap(),
                    amount: Money(1),
                },
            ),
            cafe.event(
                "E",
                day(0),
                purchase(MemberRef::Id(MemberId::new()), 100_000, 0),
            ),
            cafe.event("F", day(0), purchase(phone("0912000001"), 200_000, 0)),
        ])
        .await;
    assert_eq!(answers[0].as_ref().unwrap().points_earned, 10);
    assert!(matches!(
        answers[1],
        Err(EventError::Rejected(Rejection::InsufficientPoints { .. }))
    ));
    assert_eq!(answers[2], Err(EventError::UnknownStore));
    assert_eq!(answers[3], Err(EventError::OriginalNotFound));
    assert_eq!(answers[4], Err(EventError::MemberNotFound));
    assert_eq!(answers[5].as_ref().unwrap().balance, 30);
    assert_eq!(cafe.store.check_ledger().await.unwrap().events, 2);
    sound(&cafe.store).await;
}

async fn pending_points_and_paying_with_points(store: Store) {
    let cafe = Cafe::open(store).await;
    let member = phone("0912000002");
    cafe.journal
        .submit(cafe.event("P1", day(0), purchase(member.clone(), 1_000_000, 0)))
        .await
        .unwrap();
    let early = cafe
        .journal
        .submit(cafe.event("P2", day(3), purchase(member.clone(), 200_000, 50)))
        .await;
    assert!(matches!(
        early,
        Err(EventError::Rejected(Rejection::InsufficientPoints { .. }))
    ));
    let paid = cafe
        .journal
        .submit(cafe.event("P3", day(8), purchase(member.clone(), 200_000, 50)))
        .await
        .unwrap();
    assert_eq!(paid.points_spent, 50);
    assert_eq!(
        paid.points_earned, 15,
        "150,000 eligible after 50 points × 1,000"
    );
    assert_eq!(paid.balance, 100 - 50 + 15);
    let over = cafe
        .journal
        .submit(cafe.event("P4", day(9), purchase(member.clone(), 10_000, 20)))
        .await;
    assert_eq!(over, Err(EventError::Rejected(Rejection::PointsExceedBill)));
    sound(&cafe.store).await;
}

async fn refunds_take_back_proportionally_and_debt_is_repaid(store: Store) {
    let cafe = Cafe::open(store).await;
    let member = phone("0912000003");
    cafe.journal
        .submit(cafe.event("R1", day(0), purchase(member.clone(), 200_000, 0)))
        .await
        .unwrap();
    let half = cafe
        .journal
        .submit(cafe.event(
            "R1-a",
            day(1),
            IncomingKind::Refund {
                original: EventId::parse("R1").unwrap(),
                amount: Money(100_000),
            },
        ))
        .await
        .unwrap();
    assert_eq!(half.points_taken_back, 10);
    assert_eq!(half.balance, 10);
    let too_much = cafe
        .journal
        .submit(cafe.event(
            "R1-b",
            day(1),
            IncomingKind::Refund {
                original: EventId::parse("R1").unwrap(),
                amount: Money(100_001),
            },
        ))
        .await;
    assert_eq!(
        too_much,
        Err(EventError::Rejected(Rejection::RefundExceedsPurchase {
            refundable: Money(100_000)
        }))
    );
    // Spend what is left, then refund the rest: the points are gone, so a debt appears.
    cafe.journal
        .submit(cafe.event("R2", day(8), purchase(member.clone(), 10_000, 10)))
        .await
        .unwrap();
    let rest = cafe
        .journal
        .submit(cafe.event(
            "R1-c",
            day(9),
            IncomingKind::Refund {
                original: EventId::parse("R1").unwrap(),
                amount: Money(100_000),
            },
        ))
        .await
        .unwrap();
    assert_eq!(rest.points_taken_back, 10);
    assert_eq!(rest.balance, -10);
    let view = cafe
        .store
        .member(cafe.tenant, &member, day(9))
        .await
        .unwrap();
    assert_eq!((view.balance, view.debt), (-10, 10));
    let repaid = cafe
        .journal
        .submit(cafe.event("R3", day(10), purchase(member.clone(), 150_000, 0)))
        .await
        .unwrap();
    assert_eq!(repaid.balance, 5);
    let view = cafe
        .store
        .member(cafe.tenant, &member, day(20))
        .await
        .unwrap();
    assert_eq!((view.balance, view.debt, view.available), (5, 0, 5));
    sound(&cafe.store).await;
}

async fn rewards_vouchers_use_cancel_and_expiry(store: Store) {
    let cafe = Cafe::open(store).await;
    let member = phone("0912000004");
    let coffee = cafe.reward("Cà phê", 30, Some(2)).await;
    cafe.journal
        .submit(cafe.event("V0", day(0), purchase(member.clone(), 1_000_000, 0)))
        .await
        .unwrap();
    let redeem = |id: &str| {
        cafe.event(
            id,
            day(10),
            IncomingKind::Redemption {
                member: member.clone(),
                reward_id: coffee,
            },
        )
    };
    let first = cafe.journal.submit(redeem("V1")).await.unwrap();
    let voucher = first.voucher.clone().unwrap();
    assert_eq!(voucher.code.len(), 12);
    assert_eq!(first.balance, 70);
    let second = cafe.journal.submit(redeem("V2")).await.unwrap();
    let out = cafe.journal.submit(redeem("V3")).await;
    assert_eq!(out, Err(EventError::Rejected(Rejection::RewardOutOfStock)));
    let used = cafe
        .journal
        .submit(cafe.event(
            "V4",
            day(11),
            IncomingKind::VoucherUse {
                code: voucher.code.clone(),
                store: Some("HN01".into()),
            },
        ))
        .await
        .unwrap();
    assert_eq!(used.voucher.unwrap().status, "used");
    let again = cafe
        .journal
        .submit(cafe.event(
            "V5",
            day(11),
            IncomingKind::VoucherUse {
                code: voucher.code.clone(),
                store: Some("HN01".into()),
            },
        ))
        .await;
    assert!(matches!(
        again,
        Err(EventError::Rejected(Rejection::VoucherNotUsable(_)))
    ));
    let code = second.voucher.unwrap().code;
    let cancelled = cafe
        .journal
        .submit(cafe.event("V6", day(12), IncomingKind::VoucherCancel { code }))
        .await
        .unwrap();
    assert_eq!(cancelled.balance, 70);
    // Stock came back: one more can be taken; it then expires unused.
    let third = cafe
        .journal
        .submit(cafe.event(
            "V7",
            day(13),
            IncomingKind::Redemption {
                member: member.clone(),
                reward_id: coffee,
            },
        ))
        .await
        .unwrap();
    assert_eq!(third.balance, 40);
    let report = cafe
        .journal
        .run_job(JobKind::ExpireVouchers, day(13 + 31))
        .await
        .unwrap();
    assert_eq!((report.processed, report.points), (1, 30));
    let member_id = MemberId::parse(third.member_id.as_deref().unwrap()).unwrap();
    let vouchers = cafe.store.vouchers(cafe.tenant, member_id).await.unwrap();
    let mut statuses: Vec<&str> = vouchers
        .iter()
        .map(|voucher| voucher.status.as_str())
        .collect();
    statuses.sort_unstable();
    assert_eq!(statuses, vec!["cancelled", "expired", "used"]);
    let history = cafe
        .store
        .history(cafe.tenant, member_id, 50, None)
        .await
        .unwrap();
    assert!(history
        .iter()
        .any(|entry| entry.kind == "voucher_cancel" && entry.points == 30));
    sound(&cafe.store).await;
}

async fn lots_expire_as_breakage(store: Store) {
    let cafe = Cafe::open(store).await;
    let member = phone("0912000005");
    let earned = cafe
        .journal
        .submit(cafe.event("X1", day(0), purchase(member.clone(), 420_000, 0)))
        .await
        .unwrap();
    assert_eq!(earned.points_earned, 42);
    let report = cafe
        .journal
        .run_job(JobKind::ExpireLots, day(364))
        .await
        .unwrap();
    assert_eq!(report.points, 0);
    let report = cafe
        .journal
        .run_job(JobKind::ExpireLots, day(366))
        .await
        .unwrap();
    assert_eq!(report.points, 42);
    let view = cafe
        .store
        .member(cafe.tenant, &member, day(366))
        .await
        .unwrap();
    assert_eq!(view.balance, 0);
    let member_id = MemberId::parse(&view.id).unwrap();
    let history = cafe
        .store
        .history(cafe.tenant, member_id, 10, None)
        .await
        .unwrap();
    assert_eq!(history[0].kind, "expiry");
    assert_eq!(history[0].points, -42);
    assert_eq!(history[1].reason["lines"][0]["rule"], "base");
    assert_eq!(
        history[1].reason["lines"][0]["detail"],
        "1 point per 10,000đ of 420,000đ"
    );
    sound(&cafe.store).await;
}

async fn expiring_points_are_announced_once(store: Store) {
    let cafe = Cafe::open(store).await;
    let (subscription, _) = cafe
        .store
        .create_webhook(
            cafe.tenant,
            &patron_store::audit::Actor::cli(),
            "http://127.0.0.1:9/hook",
            &["points.expiring".to_owned()],
        )
        .await
        .unwrap();
    cafe.journal
        .submit(cafe.event("E1", day(0), purchase(phone("0912000015"), 420_000, 0)))
        .await
        .unwrap();
    // The lot expires on day 365: outside the window on day 357, inside on day 358.
    let window = patron_store::jobs::EXPIRY_NOTICE_DAYS;
    let early = cafe
        .journal
        .run_job(JobKind::NotifyExpiring, day(365 - window - 1))
        .await
        .unwrap();
    assert_eq!((early.processed, early.points), (0, 0));
    let due = cafe
        .journal
        .run_job(JobKind::NotifyExpiring, day(365 - window))
        .await
        .unwrap();
    assert_eq!((due.processed, due.points), (1, 42));
    let again = cafe
        .journal
        .run_job(JobKind::NotifyExpiring, day(364))
        .await
        .unwrap();
    assert_eq!(again.processed, 0, "told once");
    cafe.store.fan_out_outbox(100).await.unwrap();
    let deliveries = cafe
        .store
        .webhook_deliveries(cafe.tenant, &subscription.id, 10)
        .await
        .unwrap();
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].topic, "points.expiring");
    sound(&cafe.store).await;
}

async fn liability_is_bucketed_by_expiry_at_the_edges(store: Store) {
    let cafe = Cafe::open(store).await;
    cafe.journal
        .submit(cafe.event("L1", day(0), purchase(phone("0912000016"), 420_000, 0)))
        .await
        .unwrap();
    // The lot (42 points) expires at day 365 exactly: a boundary starts its bucket.
    let at = |boundaries: &[i64]| {
        let boundaries: Vec<_> = boundaries.iter().map(|days| day(*days)).collect();
        let store = cafe.store.clone();
        let tenant = cafe.tenant;
        async move {
            store
                .liability_by_expiry(tenant, &boundaries)
                .await
                .unwrap()
        }
    };
    let inside = at(&[300, 365, 400]).await;
    assert_eq!(
        (inside.before, inside.buckets.clone(), inside.later),
        (0, vec![0, 42], 0)
    );
    let before = at(&[366, 400]).await;
    assert_eq!((before.before, before.buckets.clone()), (42, vec![0]));
    let later = at(&[100, 365]).await;
    assert_eq!(
        (later.buckets.clone(), later.later, later.never),
        (vec![0], 42, 0)
    );
}

async fn interrupted_imports_are_failed_at_start_up(store: Store) {
    use patron_store::imports::{ImportCounts, ImportStatus};
    let cafe = Cafe::open(store).await;
    let counts = ImportCounts {
        rows_read: 10,
        rows_accepted: 9,
        rows_rejected: 1,
    };
    let running = cafe
        .store
        .create_import_job(cafe.tenant, "members")
        .await
        .unwrap();
    cafe.store
        .update_import_job(&running, ImportStatus::Running, counts, None)
        .await
        .unwrap();
    let finished = cafe
        .store
        .create_import_job(cafe.tenant, "members")
        .await
        .unwrap();
    cafe.store
        .update_import_job(&finished, ImportStatus::Done, counts, None)
        .await
        .unwrap();
    assert_eq!(cafe.store.fail_interrupted_imports().await.unwrap(), 1);
    let job = cafe.store.import_job(cafe.tenant, &running).await.unwrap();
    assert_eq!(job.status, ImportStatus::Failed);
    assert_eq!(job.rows_accepted, 9, "progress kept");
    assert!(job.finished_at.is_some());
    let job = cafe.store.import_job(cafe.tenant, &finished).await.unwrap();
    assert_eq!(job.status, ImportStatus::Done);
    assert_eq!(cafe.store.fail_interrupted_imports().await.unwrap(), 0);
}

async fn crossing_a_threshold_upgrades_at_once(store: Store) {
    let cafe = Cafe::open(store).await;
    let member = phone("0912000006");
    cafe.journal
        .submit(cafe.event("T1", day(0), purchase(member.clone(), 1_500_000, 0)))
        .await
        .unwrap();
    let crossing = cafe
        .journal
        .submit(cafe.event("T2", day(1), purchase(member.clone(), 500_000, 0)))
        .await
        .unwrap();
    let change = crossing.tier_change.unwrap();
    assert_eq!(
        (change.from.as_str(), change.to.as_str()),
        ("member", "silver")
    );
    assert_eq!(
        crossing.points_earned, 50,
        "the crossing purchase earns at the old rate"
    );
    let next = cafe
        .journal
        .submit(cafe.event("T3", day(2), purchase(member.clone(), 500_000, 0)))
        .await
        .unwrap();
    assert_eq!(next.points_earned, 60, "silver ×1.2");
    sound(&cafe.store).await;
}

async fn events_are_judged_by_the_version_in_force(store: Store) {
    let cafe = Cafe::open(store).await;
    let mut richer = cafe_programme();
    richer.amount_per_point = 5_000;
    cafe.store
        .publish_programme(cafe.tenant, richer, day(100))
        .await
        .unwrap();
    let member = phone("0912000007");
    let before = cafe
        .journal
        .submit(cafe.event("PV1", day(99), purchase(member.clone(), 100_000, 0)))
        .await
        .unwrap();
    let after = cafe
        .journal
        .submit(cafe.event("PV2", day(100), purchase(member.clone(), 100_000, 0)))
        .await
        .unwrap();
    assert_eq!(
        (before.programme_version, before.points_earned),
        (Some(1), 10)
    );
    assert_eq!(
        (after.programme_version, after.points_earned),
        (Some(2), 20)
    );
}

async fn tenants_do_not_see_each_other(store: Store) {
    let cafe = Cafe::open(store.clone()).await;
    let other = store
        .create_tenant(&NewTenant::vietnamese("Other"))
        .await
        .unwrap();
    store
        .publish_programme(other, cafe_programme(), day(-10))
        .await
        .unwrap();
    let reward = cafe.reward("Gift", 10, None).await;
    let bought = cafe
        .journal
        .submit(cafe.event("I1", day(0), purchase(phone("0912000008"), 900_000, 0)))
        .await
        .unwrap();
    let redeemed = cafe
        .journal
        .submit(cafe.event(
            "I2",
            day(10),
            IncomingKind::Redemption {
                member: phone("0912000008"),
                reward_id: reward,
            },
        ))
        .await
        .unwrap();
    let member_id = MemberId::parse(bought.member_id.as_deref().unwrap()).unwrap();
    let foreign = |id: &str, kind: IncomingKind| {
        let mut event = cafe.event(id, day(11), kind);
        event.tenant_id = other;
        event
    };
    let answers = cafe
        .journal
        .submit_all(vec![
            foreign(
                "O1",
                IncomingKind::Engagement {
                    member: MemberRef::Id(member_id),
                    kind: "review".into(),
                },
            ),
            foreign(
                "O2",
                IncomingKind::Refund {
                    original: EventId::parse("I1").unwrap(),
                    amount: Money(1),
                },
            ),
            foreign(
                "O3",
                IncomingKind::VoucherUse {
                    code: redeemed.voucher.unwrap().code,
                    store: None,
                },
            ),
            foreign(
                "O4",
                IncomingKind::Redemption {
                    member: phone("0912000009"),
                    reward_id: reward,
                },
            ),
        ])
        .await;
    assert_eq!(answers[0], Err(EventError::MemberNotFound));
    assert_eq!(answers[1], Err(EventError::OriginalNotFound));
    assert_eq!(answers[2], Err(EventError::VoucherNotFound));
    assert_eq!(answers[3], Err(EventError::MemberNotFound));
    assert!(store
        .member(other, &MemberRef::Id(member_id), day(11))
        .await
        .is_err());
    assert!(store
        .member(other, &phone("0912000008"), day(11))
        .await
        .is_err());
    // The same phone in another tenant is another member.
    let theirs = cafe
        .journal
        .submit(foreign("O5", purchase(phone("0912000008"), 100_000, 0)))
        .await;
    assert_eq!(
        theirs,
        Err(EventError::UnknownStore),
        "HN01 is not the other tenant's store"
    );
    sound(&store).await;
}

fn refund(id: &str, amount: i64) -> IncomingKind {
    IncomingKind::Refund {
        original: EventId::parse(id).unwrap(),
        amount: Money(amount),
    }
}

fn void(id: &str) -> IncomingKind {
    IncomingKind::Void {
        original: EventId::parse(id).unwrap(),
    }
}

fn adjust(member: MemberRef, points: i64) -> IncomingKind {
    IncomingKind::Adjustment {
        member,
        asset: patron_core::ledger::Asset::Points,
        points,
        reason: "test".into(),
        actor: Some("user:test".into()),
    }
}

/// The issue's till: a 150,000đ bill paid with 200 points (worth 100đ each here) is refunded in
/// whole, in parts over several batches, and voided; points paid go back to their lots.
async fn refunds_and_voids_give_back_points_paid(store: Store) {
    let cafe = Cafe::open(store).await;
    let mut cheap_points = cafe_programme();
    cheap_points.point_value = 100;
    cafe.store
        .publish_programme(cafe.tenant, cheap_points, day(-1))
        .await
        .unwrap();
    let member = phone("0912000020");
    cafe.journal
        .submit(cafe.event(
            "E",
            day(0),
            IncomingKind::Enrol {
                phone: Phone::parse("0912000020").unwrap(),
                profile: Default::default(),
            },
        ))
        .await
        .unwrap();
    cafe.journal
        .submit(cafe.event("A1", day(0), adjust(member.clone(), 120)))
        .await
        .unwrap();
    cafe.journal
        .submit(cafe.event("A2", day(1), adjust(member.clone(), 150)))
        .await
        .unwrap();
    let paid = cafe
        .journal
        .submit(cafe.event("P", day(2), purchase(member.clone(), 150_000, 200)))
        .await
        .unwrap();
    assert_eq!((paid.points_spent, paid.points_earned), (200, 13));
    assert_eq!(paid.available, 70);
    let whole = cafe
        .journal
        .submit(cafe.event("P-r", day(3), refund("P", 150_000)))
        .await
        .unwrap();
    assert_eq!((whole.points_returned, whole.points_taken_back), (200, 13));
    assert_eq!((whole.balance, whole.available), (320, 270));
    sound(&cafe.store).await;

    // Again, refunded in three batches of 50,000: 66 + 67 + 67 back, 4 + 4 + 5 taken.
    cafe.journal
        .submit(cafe.event("Q", day(4), purchase(member.clone(), 150_000, 200)))
        .await
        .unwrap();
    let mut seen = Vec::new();
    for id in ["Q-1", "Q-2", "Q-3"] {
        let answer = cafe
            .journal
            .submit(cafe.event(id, day(5), refund("Q", 50_000)))
            .await
            .unwrap();
        seen.push((answer.points_returned, answer.points_taken_back));
    }
    assert_eq!(seen, vec![(66, 4), (67, 4), (67, 5)]);
    let view = cafe
        .store
        .member(cafe.tenant, &member, day(5))
        .await
        .unwrap();
    assert_eq!((view.balance, view.available), (320, 270));
    assert_eq!(view.lifetime_spend, 0);
    sound(&cafe.store).await;

    // A void after a partial refund reverses the rest, once.
    cafe.journal
        .submit(cafe.event("V", day(6), purchase(member.clone(), 150_000, 200)))
        .await
        .unwrap();
    cafe.journal
        .submit(cafe.event("V-1", day(6), refund("V", 50_000)))
        .await
        .unwrap();
    let voided = cafe
        .journal
        .submit(cafe.event("V-void", day(7), void("V")))
        .await
        .unwrap();
    assert_eq!((voided.points_returned, voided.points_taken_back), (134, 9));
    assert_eq!(voided.balance, 320);
    let again = cafe
        .journal
        .submit(cafe.event("V-void", day(7), void("V")))
        .await
        .unwrap();
    assert_eq!(again, voided, "the same void is answered the same");
    assert_eq!(
        cafe.journal
            .submit(cafe.event("V-void-2", day(7), void("V")))
            .await,
        Err(EventError::Rejected(Rejection::PurchaseVoided))
    );
    assert_eq!(
        cafe.journal
            .submit(cafe.event("V-2", day(7), refund("V", 1)))
            .await,
        Err(EventError::Rejected(Rejection::PurchaseVoided))
    );
    let view = cafe
        .store
        .member(cafe.tenant, &member, day(7))
        .await
        .unwrap();
    assert_eq!(view.order_count, 2);
    let states = cafe
        .store
        .purchase_states(cafe.tenant, &["P".into(), "V".into(), "V-void".into()])
        .await
        .unwrap();
    assert_eq!(states.len(), 2, "only purchases: {states:?}");
    assert_eq!(
        (states["P"].refunded_amount, states["P"].voided),
        (150_000, false)
    );
    assert_eq!(
        (states["V"].refunded_amount, states["V"].voided),
        (150_000, true)
    );
    sound(&cafe.store).await;
}

async fn welcome_points_cannot_pay_the_enrolling_bill(store: Store) {
    let cafe = Cafe::open(store).await;
    let enrolled = cafe
        .journal
        .submit(cafe.event(
            "E",
            day(0),
            IncomingKind::Enrol {
                phone: Phone::parse("0912000021").unwrap(),
                profile: Default::default(),
            },
        ))
        .await
        .unwrap();
    assert_eq!(
        (enrolled.points_earned, enrolled.pending, enrolled.available),
        (50, 50, 0)
    );
    let spend = cafe
        .journal
        .submit(cafe.event("P", day(0), purchase(phone("0912000021"), 100_000, 50)))
        .await;
    assert_eq!(
        spend,
        Err(EventError::Rejected(Rejection::InsufficientPoints {
            available: Points(0),
            needed: Points(50),
            field: "points_paid"
        }))
    );
    sound(&cafe.store).await;
}

async fn purchases_above_the_tenants_maximum_are_refused(store: Store) {
    let cafe = Cafe::open(store).await;
    let member = phone("0912000022");
    let at_limit = PURCHASE_AMOUNT_MAX_DEFAULT;
    let answers = cafe
        .journal
        .submit_all(vec![
            cafe.event("M1", day(0), purchase(member.clone(), at_limit, 0)),
            cafe.event("M2", day(0), purchase(member.clone(), at_limit + 1, 0)),
        ])
        .await;
    assert!(answers[0].is_ok());
    assert_eq!(
        answers[1],
        Err(EventError::AmountAboveMaximum { maximum: at_limit })
    );
    cafe.store
        .set_purchase_limits(cafe.tenant, &Actor("user:test".into()), 500_000, 100_000)
        .await
        .unwrap();
    let settings = cafe.store.tenant(cafe.tenant).await.unwrap();
    assert_eq!(
        (
            settings.purchase_amount_max,
            settings.purchase_amount_confirm
        ),
        (500_000, 100_000)
    );
    let answers = cafe
        .journal
        .submit_all(vec![
            cafe.event("M3", day(0), purchase(member.clone(), 500_000, 0)),
            cafe.event("M4", day(0), purchase(member.clone(), 500_001, 0)),
        ])
        .await;
    assert!(answers[0].is_ok());
    assert_eq!(
        answers[1],
        Err(EventError::AmountAboveMaximum { maximum: 500_000 })
    );
    sound(&cafe.store).await;
}

/// A till's key of HCM01 may not refund or void HN01's sale, nor cancel a voucher only HN01
/// takes; HN01's own key may.
async fn a_store_scope_keeps_to_its_own_sales_and_vouchers(store: Store) {
    let cafe = Cafe::open(store).await;
    let member = phone("0912000023");
    cafe.journal
        .submit(cafe.event("S", day(0), purchase(member.clone(), 1_000_000, 0)))
        .await
        .unwrap();
    let reward = Reward {
        id: RewardId::new(),
        name: "Bánh HN".into(),
        description: String::new(),
        cost: Points(10),
        stock: None,
        per_member_limit: None,
        valid_from: None,
        valid_until: None,
        stores: vec!["HN01".into()],
        voucher_valid_days: 30,
        active: true,
    };
    let reward_id = cafe
        .store
        .create_reward(cafe.tenant, &reward)
        .await
        .unwrap();
    let redeemed = cafe
        .journal
        .submit(cafe.event(
            "RD",
            day(8),
            IncomingKind::Redemption {
                member: member.clone(),
                reward_id,
            },
        ))
        .await
        .unwrap();
    let code = redeemed.voucher.unwrap().code;
    let scoped = |id: &str, store: &str, kind: IncomingKind| {
        let mut event = cafe.event(id, day(9), kind);
        event.store_scope = Some(store.into());
        event
    };
    let answers = cafe
        .journal
        .submit_all(vec![
            scoped("X1", "HCM01", refund("S", 1_000)),
            scoped("X2", "HCM01", void("S")),
            scoped(
                "X3",
                "HCM01",
                IncomingKind::VoucherCancel { code: code.clone() },
            ),
            scoped(
                "X4",
                "HCM01",
                IncomingKind::VoucherUse {
                    code: code.clone(),
                    store: Some("HCM01".into()),
                },
            ),
        ])
        .await;
    assert_eq!(
        answers[0],
        Err(EventError::OtherStore {
            field: "original_id"
        })
    );
    assert_eq!(
        answers[1],
        Err(EventError::OtherStore {
            field: "original_id"
        })
    );
    assert_eq!(answers[2], Err(EventError::OtherStore { field: "code" }));
    assert_eq!(answers[3], Err(EventError::OtherStore { field: "code" }));
    let answers = cafe
        .journal
        .submit_all(vec![
            scoped("Y1", "HN01", refund("S", 100_000)),
            scoped("Y2", "HN01", IncomingKind::VoucherCancel { code }),
        ])
        .await;
    assert_eq!(answers[0].as_ref().unwrap().points_taken_back, 10);
    assert_eq!(answers[1].as_ref().unwrap().points_earned, 0);
    sound(&cafe.store).await;
}

/// A purchase from a phone nobody has, refused (it pays with points a new member cannot have),
/// enrols no one; the same receipt sent again without points enrols the member once.
async fn a_refused_purchase_from_an_unknown_phone_writes_no_member(store: Store) {
    let cafe = Cafe::open(store).await;
    let refused = cafe
        .journal
        .submit(cafe.event("N-1", day(0), purchase(phone("0918000001"), 100_000, 5)))
        .await;
    assert!(
        matches!(refused, Err(EventError::Rejected(_))),
        "{refused:?}"
    );
    let members = patron_testkit::scalar(&cafe.store, "SELECT COUNT(*) FROM members", vec![]).await;
    assert_eq!(members, 0, "no member was written");
    let accepted = cafe
        .journal
        .submit(cafe.event("N-1", day(0), purchase(phone("0918000001"), 100_000, 0)))
        .await
        .unwrap();
    assert!(accepted.member_created);
    let members = patron_testkit::scalar(&cafe.store, "SELECT COUNT(*) FROM members", vec![]).await;
    assert_eq!(members, 1);
}

/// Store credit and stamps beside points: each asset has its own balance, lots and ledger,
/// a transaction sums to zero per asset, and a debit past what is held is refused.
async fn assets_keep_their_own_balances(store: Store) {
    use patron_core::ledger::Asset;
    let cafe = Cafe::open(store).await;
    cafe.journal
        .submit(cafe.event("A-1", day(0), purchase(phone("0918000002"), 200_000, 0)))
        .await
        .unwrap();
    let adjust = |id: &str, asset: Asset, amount: i64| {
        cafe.event(
            id,
            day(1),
            IncomingKind::Adjustment {
                member: phone("0918000002"),
                asset,
                points: amount,
                reason: "top-up".into(),
                actor: Some("user:test".into()),
            },
        )
    };
    let credit = cafe
        .journal
        .submit(adjust("A-2", Asset::Money, 150_000))
        .await
        .unwrap();
    assert_eq!(credit.balance, 20, "points untouched");
    assert_eq!(credit.holdings.get("money"), Some(&150_000));
    let stamps = cafe
        .journal
        .submit(adjust("A-3", Asset::Stamps("coffee".into()), 3))
        .await
        .unwrap();
    assert_eq!(stamps.holdings.get("stamps:coffee"), Some(&3));
    assert_eq!(stamps.holdings.get("money"), Some(&150_000));
    let spent = cafe
        .journal
        .submit(adjust("A-4", Asset::Money, -50_000))
        .await
        .unwrap();
    assert_eq!(spent.holdings.get("money"), Some(&100_000));
    let refused = cafe
        .journal
        .submit(adjust("A-5", Asset::Money, -100_001))
        .await;
    assert_eq!(
        refused.unwrap_err().code(),
        "adjustment_below_zero",
        "more than is held"
    );
    let check = cafe.store.check_ledger().await.unwrap();
    assert!(check.is_sound(), "{check:?}");
    let money = patron_testkit::scalar(
        &cafe.store,
        "SELECT SUM(amount) FROM ledger_entries WHERE account = 'member' AND asset = 'money'",
        vec![],
    )
    .await;
    assert_eq!(money, 100_000);
    // The member's view: points as before, the other assets as holdings.
    let view = cafe
        .store
        .member(cafe.tenant, &phone("0918000002"), day(1))
        .await
        .unwrap();
    assert_eq!(view.balance, 20);
    let held: Vec<(&str, i64, i64)> = view
        .holdings
        .iter()
        .map(|holding| (holding.asset.as_str(), holding.balance, holding.available))
        .collect();
    assert_eq!(
        held,
        vec![("money", 100_000, 100_000), ("stamps:coffee", 3, 3)]
    );
    // The history has every asset's transactions, newest first: what each moved.
    let member_id = patron_core::MemberId::parse(&view.id).unwrap();
    let history = cafe
        .store
        .history(cafe.tenant, member_id, 10, None)
        .await
        .unwrap();
    let moved: Vec<(i64, Vec<(&str, i64)>)> = history
        .iter()
        .map(|entry| {
            let others = entry
                .holdings
                .iter()
                .map(|(asset, amount)| (asset.as_str(), *amount))
                .collect();
            (entry.points, others)
        })
        .collect();
    let mut expected = vec![
        (0, vec![("money", -50_000)]),
        (0, vec![("stamps:coffee", 3)]),
        (0, vec![("money", 150_000)]),
        (20, vec![]),
    ];
    // The three adjustments share their instant; the order among them is the transaction ids'.
    let (mut got_adjustments, mut expected_adjustments) =
        (moved[..3].to_vec(), expected[..3].to_vec());
    got_adjustments.sort();
    expected_adjustments.sort();
    assert_eq!(got_adjustments, expected_adjustments);
    assert_eq!(moved[3..], expected.split_off(3)[..]);
}

/// A sale and the voucher used on it are stored together or not at all: a voucher that
/// cannot be used refuses the sale, a sale that cannot be recorded leaves the voucher, another
/// member's voucher refuses both, and a resend meets both first answers.
async fn a_sale_and_its_voucher_are_stored_together_or_not_at_all(store: Store) {
    let cafe = Cafe::open(store).await;
    let (member, other) = (phone("0918000011"), phone("0918000012"));
    let coffee = cafe.reward("Cà phê", 30, None).await;
    for (id, who) in [("T-0", &member), ("T-00", &other)] {
        cafe.journal
            .submit(cafe.event(id, day(0), purchase(who.clone(), 1_000_000, 0)))
            .await
            .unwrap();
    }
    let code = cafe
        .journal
        .submit(cafe.event(
            "T-1",
            day(10),
            IncomingKind::Redemption {
                member: member.clone(),
                reward_id: coffee,
            },
        ))
        .await
        .unwrap()
        .voucher
        .unwrap()
        .code;
    let pair = |id: &str, who: &MemberRef, points_paid: i64, code: &str| {
        vec![
            cafe.event(id, day(11), purchase(who.clone(), 200_000, points_paid)),
            cafe.event(
                &format!("{id}-voucher"),
                day(11),
                IncomingKind::VoucherUse {
                    code: code.into(),
                    store: Some("HN01".into()),
                },
            ),
        ]
    };
    // The sale is refused (150 points paid, 70 held): the voucher stays unused.
    let before = snapshot(&cafe.store).await;
    let answers = cafe
        .journal
        .submit_together(pair("T-2", &member, 150, &code))
        .await;
    assert_eq!(
        answers[0].as_ref().unwrap_err().code(),
        "insufficient_points"
    );
    assert_eq!(answers[1], Err(EventError::RefusedWithItsGroup));
    assert_eq!(snapshot(&cafe.store).await, before, "nothing written");
    // Another member's sale with this voucher: refused as not found, nothing written.
    let answers = cafe
        .journal
        .submit_together(pair("T-3", &other, 0, &code))
        .await;
    assert_eq!(answers[0], Err(EventError::RefusedWithItsGroup));
    assert_eq!(answers[1], Err(EventError::VoucherNotFound));
    assert_eq!(snapshot(&cafe.store).await, before, "nothing written");
    // The member's own sale: both stored; sent again, both first answers and nothing more.
    let answers = cafe
        .journal
        .submit_together(pair("T-4", &member, 10, &code))
        .await;
    let (sale, used) = (answers[0].clone().unwrap(), answers[1].clone().unwrap());
    assert_eq!(sale.points_spent, 10);
    assert_eq!(used.voucher.as_ref().unwrap().status, "used");
    let stored = snapshot(&cafe.store).await;
    let again = cafe
        .journal
        .submit_together(pair("T-4", &member, 10, &code))
        .await;
    assert_eq!(again, vec![Ok(sale), Ok(used)]);
    assert_eq!(snapshot(&cafe.store).await, stored);
    // The used voucher with a new sale: refused, and the sale is not recorded either.
    let answers = cafe
        .journal
        .submit_together(pair("T-5", &member, 0, &code))
        .await;
    assert_eq!(answers[0], Err(EventError::RefusedWithItsGroup));
    assert_eq!(
        answers[1].as_ref().unwrap_err().code(),
        "voucher_not_usable"
    );
    assert_eq!(snapshot(&cafe.store).await, stored);
    let check = cafe.store.check_ledger().await.unwrap();
    assert!(check.is_sound(), "{check:?}");
}

on_both_backends! {
    a_sale_and_its_voucher_are_stored_together_or_not_at_all;
    a_refused_purchase_from_an_unknown_phone_writes_no_member;
    assets_keep_their_own_balances;
    idempotency_same_and_different_body;
    a_bad_event_fails_alone;
    pending_points_and_paying_with_points;
    refunds_take_back_proportionally_and_debt_is_repaid;
    rewards_vouchers_use_cancel_and_expiry;
    lots_expire_as_breakage;
    expiring_points_are_announced_once;
    interrupted_imports_are_failed_at_start_up;
    liability_is_bucketed_by_expiry_at_the_edges;
    crossing_a_threshold_upgrades_at_once;
    events_are_judged_by_the_version_in_force;
    tenants_do_not_see_each_other;
    refunds_and_voids_give_back_points_paid;
    welcome_points_cannot_pay_the_enrolling_bill;
    purchases_above_the_tenants_maximum_are_refused;
    a_store_scope_keeps_to_its_own_sales_and_vouchers;
}
