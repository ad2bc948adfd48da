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
