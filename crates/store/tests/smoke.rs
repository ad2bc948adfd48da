mod common;

use common::*;

async fn purchase_then_member_view(store: patron_store::Store) {
    let cafe = Cafe::open(store).await;
    let result = cafe
        .journal
        .submit(cafe.event("HD-1", day(0), purchase(phone("0912 345 678"), 359_999, 0)))
        .await
        .unwrap();
    assert_eq!(result.points_earned, 35);
    assert!(result.member_created);
    assert_eq!(result.pending, 35);
    assert_eq!(result.available, 0);
    let again = cafe
        .journal
        .submit(cafe.event("HD-1", day(0), purchase(phone("+84912345678"), 359_999, 0)))
        .await
        .unwrap();
    assert_eq!(again, result);
    let view = cafe
        .store
        .member(cafe.tenant, &phone("84912345678"), day(8))
        .await
        .unwrap();
    assert_eq!(view.balance, 35);
    assert_eq!(view.available, 35);
    assert_eq!(view.tier.to_next_tier, Some(2_000_000 - 359_999));
    let check = cafe.store.check_ledger().await.unwrap();
    assert!(check.is_sound(), "{check:?}");
    assert_eq!(check.events, 1);
}

on_both_backends! {
    purchase_then_member_view;
}

async fn a_manager_hold_keeps_the_tier_through_reviews(store: patron_store::Store) {
    use patron_store::jobs::JobKind;
    use patron_store::IncomingKind;
    let cafe = Cafe::open(store).await;
    let member = phone("0987 654 321");
    let bought = cafe
        .journal
        .submit(cafe.event("HD-GOLD", day(0), purchase(member.clone(), 6_000_000, 0)))
        .await
        .unwrap();
    assert_eq!(bought.tier.as_deref(), Some("gold"));
    let hold = IncomingKind::TierHold {
        member: member.clone(),
        until: Some(day(600)),
    };
    cafe.journal
        .submit(cafe.event("HOLD-1", day(1), hold))
        .await
        .unwrap();
    // Far past the rolling window and any grace period, the hold still keeps gold.
    for review in [400, 450, 500, 550] {
        cafe.journal
            .run_job(JobKind::ReviewTiers, day(review))
            .await
            .unwrap();
    }
    let view = cafe
        .store
        .member(cafe.tenant, &member, day(551))
        .await
        .unwrap();
    assert_eq!(view.tier.tier, "gold");
    assert!(view.tier_held_until.is_some());
    // Released: the next review starts the grace period, a later one drops one level only.
    let release = IncomingKind::TierHold {
        member: member.clone(),
        until: None,
    };
    cafe.journal
        .submit(cafe.event("HOLD-2", day(552), release))
        .await
        .unwrap();
    cafe.journal
        .run_job(JobKind::ReviewTiers, day(553))
        .await
        .unwrap();
    let report = cafe
        .journal
        .run_job(JobKind::ReviewTiers, day(584))
        .await
        .unwrap();
    assert_eq!(report.downgrades, 1);
    let view = cafe
        .store
        .member(cafe.tenant, &member, day(584))
        .await
        .unwrap();
    assert_eq!(view.tier.tier, "silver");
    assert!(view.tier_held_until.is_none());
    assert!(cafe.store.check_ledger().await.unwrap().is_sound());
}

on_both_backends! {
    a_manager_hold_keeps_the_tier_through_reviews;
}
