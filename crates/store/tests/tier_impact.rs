//! The programme editor's tier impact is what tier reviews then do: members bought their way
//! into tiers under the programme in force; a draft moves the thresholds (some rise, some
//! fall); the impact is counted, the draft published, and reviews run until grace periods have
//! passed. The members whose tier changed, up and down, are the ones the impact counted.

mod common;

use common::*;
use patron_store::jobs::JobKind;
use patron_store::Store;

const MEMBERS: usize = 24;

fn member_phone(index: usize) -> String {
    format!("09140000{index:02}")
}

async fn tiers_now(
    store: &Store,
    tenant: patron_core::TenantId,
    at: patron_core::time::Timestamp,
) -> Vec<String> {
    let mut tiers = Vec::new();
    for index in 0..MEMBERS {
        let member = store
            .member(tenant, &phone(&member_phone(index)), at)
            .await
            .unwrap();
        tiers.push(member.tier.tier);
    }
    tiers
}

async fn the_preview_equals_what_reviews_do(store: Store) {
    let cafe = Cafe::open(store).await;
    // Spends from 300,000đ to 7,200,000đ: members, silvers (≥ 2,000,000) and golds (≥ 5,000,000).
    for index in 0..MEMBERS {
        let amount = 300_000 * (index as i64 + 1);
        cafe.journal
            .submit(cafe.event(
                &format!("T-{index}"),
                day(index as i64 % 5),
                purchase(phone(&member_phone(index)), amount, 0),
            ))
            .await
            .unwrap();
    }
    let now = day(40);
    let before = tiers_now(&cafe.store, cafe.tenant, now).await;
    // Silver now needs 3,000,000đ (some fall), gold 4,000,000đ (some rise).
    let mut draft = cafe_programme();
    draft.tiers[1].threshold = 3_000_000;
    draft.tiers[2].threshold = 4_000_000;
    let impact = cafe
        .store
        .tier_impact(cafe.tenant, &draft, now)
        .await
        .unwrap();
    // An identical draft moves nobody.
    let same = cafe
        .store
        .tier_impact(cafe.tenant, &cafe_programme(), now)
        .await
        .unwrap();
    assert_eq!((same.members, same.changed), (MEMBERS as i64, 0));

    cafe.store
        .publish_programme(cafe.tenant, draft, now)
        .await
        .unwrap();
    // Upgrades at the first review; each later review after the 30-day grace drops one level.
    for month in 0..4 {
        cafe.journal
            .run_job(
                JobKind::ReviewTiers,
                now + chrono::Duration::days(31 * month),
            )
            .await
            .unwrap();
    }
    let after = tiers_now(&cafe.store, cafe.tenant, now + chrono::Duration::days(93)).await;
    let rank = |tier: &str| {
        ["member", "silver", "gold"]
            .iter()
            .position(|code| *code == tier)
            .unwrap()
    };
    let changed = before.iter().zip(&after).filter(|(a, b)| a != b).count() as i64;
    let up = before
        .iter()
        .zip(&after)
        .filter(|(a, b)| rank(b) > rank(a))
        .count() as i64;
    let down = before
        .iter()
        .zip(&after)
        .filter(|(a, b)| rank(b) < rank(a))
        .count() as i64;
    assert!(
        up > 0 && down > 0,
        "the draft moves members both ways: {before:?} → {after:?}"
    );
    assert_eq!(impact.members, MEMBERS as i64);
    assert_eq!(
        (impact.changed, impact.up, impact.down),
        (changed, up, down),
        "{before:?} → {after:?}"
    );
}

on_both_backends! {
    the_preview_equals_what_reviews_do;
}
