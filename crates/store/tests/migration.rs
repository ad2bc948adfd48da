//! A database made by the previous version (migrations 1–9: points only, no purchase lines)
//! migrates without loss: balances, lots, ledger, history and vouchers read the same after
//! migration 10, the ledger check holds, and the engine goes on with store credit and purchase
//! lines on it.

mod common;

use common::*;
use patron_store::{IncomingKind, Store};

/// What the previous version kept, as text to compare.
async fn points_state(store: &Store) -> String {
    let mut out = String::new();
    for sql in [
        "SELECT id, phone, points_balance, tier, lifetime_spend, order_count FROM members ORDER BY id",
        "SELECT id, member_id, asset, earned, remaining, expires_at FROM lots ORDER BY id",
        "SELECT transaction_id, account, asset, amount FROM ledger_entries ORDER BY transaction_id, account, amount",
        "SELECT tenant_id, event_id, kind, result FROM events ORDER BY event_id",
        "SELECT code, status, cost FROM vouchers ORDER BY code",
    ] {
        for row in store.db().fetch(sql, vec![]).await.unwrap() {
            out.push_str(&format!("{:?}\n", row.cells()));
        }
    }
    out
}

async fn a_previous_versions_database_migrates_without_loss(store: Store) {
    let cafe = Cafe::open(store).await;
    let reward = cafe.reward("Bánh", 10, None).await;
    let member = phone("0919000001");
    for (id, at, kind) in [
        ("M-1", day(0), purchase(member.clone(), 300_000, 0)),
        (
            "M-2",
            day(0),
            purchase_with_items(member.clone(), 120_000, vec![("cake", 2, 80_000)]),
        ),
        (
            "M-3",
            day(10),
            IncomingKind::Redemption {
                member: member.clone(),
                reward_id: reward,
            },
        ),
    ] {
        cafe.journal.submit(cafe.event(id, at, kind)).await.unwrap();
    }
    // Back to the schema of the previous version: no member_balances, no event_lines.
    for statement in [
        "DROP TABLE member_balances",
        "DROP TABLE event_lines",
        "DELETE FROM schema_migrations WHERE version = 10",
    ] {
        cafe.store.db().batch(statement).await.unwrap();
    }
    let before = points_state(&cafe.store).await;
    let view_before = cafe
        .store
        .member(cafe.tenant, &member, day(11))
        .await
        .unwrap();

    assert_eq!(patron_store::migrate::run(&cafe.store).await.unwrap(), 1);
    assert_eq!(
        before,
        points_state(&cafe.store).await,
        "nothing lost or changed"
    );
    let view_after = cafe
        .store
        .member(cafe.tenant, &member, day(11))
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(&view_before).unwrap(),
        serde_json::to_value(&view_after).unwrap()
    );
    let check = cafe.store.check_ledger().await.unwrap();
    assert!(check.is_sound(), "{check:?}");

    // The engine goes on: purchase lines are kept, store credit sits beside points.
    cafe.journal
        .submit(cafe.event(
            "M-4",
            day(12),
            purchase_with_items(member.clone(), 90_000, vec![("cake", 1, 40_000)]),
        ))
        .await
        .unwrap();
    let credited = cafe
        .journal
        .submit(cafe.event(
            "M-5",
            day(12),
            IncomingKind::Adjustment {
                member: member.clone(),
                asset: patron_core::ledger::Asset::Money,
                points: 30_000,
                reason: "refund as store credit".into(),
                actor: Some("user:test".into()),
            },
        ))
        .await
        .unwrap();
    assert_eq!(credited.holdings.get("money"), Some(&30_000));
    let lines = patron_testkit::scalar(
        &cafe.store,
        "SELECT COUNT(*) FROM event_lines WHERE event_id = 'M-4' AND category = 'cake'",
        vec![],
    )
    .await;
    assert_eq!(lines, 1);
    let check = cafe.store.check_ledger().await.unwrap();
    assert!(check.is_sound(), "{check:?}");
}

/// A database of version 10 (no kept figures, no tier on purchases) gets its dashboard figures
/// from the migration: they equal the scans, and the writers keep them from there.
async fn a_version_10_database_gets_its_figures(store: Store) {
    let cafe = Cafe::open(store).await;
    let reward = cafe.reward("Bánh", 10, None).await;
    for index in 0..30i64 {
        let member = phone(&format!("09190000{:02}", index % 7));
        let kind = purchase(member, 80_000 + index * 10_000, 0);
        cafe.journal
            .submit(cafe.event(&format!("F-{index}"), day(index % 9), kind))
            .await
            .unwrap();
    }
    let refund = IncomingKind::Refund {
        original: patron_core::EventId::parse("F-4").unwrap(),
        amount: patron_core::Money(30_000),
    };
    cafe.journal
        .submit(cafe.event("F-R", day(9), refund))
        .await
        .unwrap();
    let redemption = IncomingKind::Redemption {
        member: phone("0919000001"),
        reward_id: reward,
    };
    cafe.journal
        .submit(cafe.event("F-V", day(9), redemption))
        .await
        .unwrap();
    for statement in [
        "DROP TABLE daily_figures",
        "DROP TABLE purchase_gaps",
        "DROP TABLE lot_figures",
        "ALTER TABLE events DROP COLUMN tier",
        "DELETE FROM schema_migrations WHERE version = 11",
    ] {
        cafe.store.db().batch(statement).await.unwrap();
    }
    assert_eq!(patron_store::migrate::run(&cafe.store).await.unwrap(), 1);
    assert!(!cafe
        .store
        .kept_figures(cafe.tenant)
        .await
        .unwrap()
        .is_empty());
    assert_figures_agree(&cafe.store, cafe.tenant, -1..11).await;
    cafe.journal
        .submit(cafe.event("F-30", day(10), purchase(phone("0919000009"), 99_000, 0)))
        .await
        .unwrap();
    assert_figures_agree(&cafe.store, cafe.tenant, -1..11).await;
}

/// Migration 12 keys `purchase_gaps` by day before tier: every row comes across, and the
/// writers keep adding to the re-keyed table.
async fn a_version_11_database_keeps_its_gaps(store: Store) {
    let cafe = Cafe::open(store).await;
    for index in 0..20i64 {
        let member = phone(&format!("09190000{:02}", index % 5));
        let kind = purchase(member, 90_000 + index * 1_000, 0);
        cafe.journal
            .submit(cafe.event(&format!("G-{index}"), day(index % 6), kind))
            .await
            .unwrap();
    }
    let before = cafe.store.kept_figures(cafe.tenant).await.unwrap();
    let old_shape = include_str!("../migrations/0011_figures.sql")
        .split(';')
        .find_map(|statement| {
            let start = statement.find("CREATE TABLE purchase_gaps")?;
            Some(&statement[start..])
        })
        .unwrap()
        .replace(
            "CREATE TABLE purchase_gaps",
            "CREATE TABLE gaps_of_version_11",
        );
    for statement in [
        old_shape.as_str(),
        "INSERT INTO gaps_of_version_11 SELECT tenant_id, store_scope, tier_scope, nth, day, before_day, purchases FROM purchase_gaps",
        "DROP TABLE purchase_gaps",
        "ALTER TABLE gaps_of_version_11 RENAME TO purchase_gaps",
        "DELETE FROM schema_migrations WHERE version = 12",
    ] {
        cafe.store.db().batch(statement).await.unwrap();
    }
    assert_eq!(patron_store::migrate::run(&cafe.store).await.unwrap(), 1);
    assert_eq!(before, cafe.store.kept_figures(cafe.tenant).await.unwrap());
    assert_figures_agree(&cafe.store, cafe.tenant, -1..8).await;
    cafe.journal
        .submit(cafe.event("G-20", day(7), purchase(phone("0919000001"), 99_000, 0)))
        .await
        .unwrap();
    assert_figures_agree(&cafe.store, cafe.tenant, -1..8).await;
}

on_both_backends! {
    a_previous_versions_database_migrates_without_loss;
    a_version_10_database_gets_its_figures;
    a_version_11_database_keeps_its_gaps;
}
