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

/// On SQLite the writer never checkpoints inside its commits; a thread beside it moves the WAL
/// into the database file every `CHECKPOINT_INTERVAL`. Without it the file would stay as the
/// migrations left it while the WAL grew.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_is_checkpointed_beside_the_writer() {
    let path = patron_testkit::sqlite_path("checkpoint");
    let store = patron_store::Store::open(&patron_store::DatabaseConfig::new(format!(
        "sqlite://{}",
        path.display()
    )))
    .await
    .unwrap();
    let cafe = Cafe::open(store).await;
    // Settle what opening wrote, then measure the database file.
    tokio::time::sleep(patron_store::journal::CHECKPOINT_INTERVAL * 3).await;
    let before = std::fs::metadata(&path).unwrap().len();
    let events: Vec<_> = (0..2000)
        .map(|index| {
            cafe.event(
                &format!("W-{index}"),
                day(0),
                purchase(phone(&format!("0912{:06}", index)), 100_000, 0),
            )
        })
        .collect();
    for answer in cafe.journal.submit_all(events).await {
        answer.unwrap();
    }
    let mut after = before;
    for _ in 0..20 {
        tokio::time::sleep(patron_store::journal::CHECKPOINT_INTERVAL).await;
        after = std::fs::metadata(&path).unwrap().len();
        if after > before {
            break;
        }
    }
    assert!(
        after > before,
        "the database file grew from {before} bytes: the WAL was checkpointed"
    );
}

fn wal_bytes(path: &std::path::Path) -> u64 {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(wal).map(|meta| meta.len()).unwrap_or(0)
}

/// A reader that holds an old snapshot keeps SQLite from starting the WAL over, so it grows;
/// once the reader is gone the checkpoint thread truncates it back under the limit, and a clean
/// stop leaves it empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_stays_bounded_and_is_empty_after_a_clean_stop() {
    const LIMIT: u64 = 256 * 1024;
    let path = patron_testkit::sqlite_path("wal-bound");
    let store = patron_store::Store::open(&patron_store::DatabaseConfig::new(format!(
        "sqlite://{}",
        path.display()
    )))
    .await
    .unwrap();
    let cafe = Cafe::open(store.clone()).await;
    cafe.journal.stop().await;
    let config = patron_store::JournalConfig {
        wal_bytes_max: LIMIT,
        ..patron_store::JournalConfig::default()
    };
    let (journal, done) = patron_store::Journal::start(store.clone(), config);
    let reader = rusqlite::Connection::open(&path).unwrap();
    reader.execute_batch("BEGIN").unwrap();
    let _: i64 = reader
        .query_row("SELECT COUNT(*) FROM members", [], |row| row.get(0))
        .unwrap();
    let events: Vec<_> = (0..3000)
        .map(|index| {
            cafe.event(
                &format!("B-{index}"),
                day(0),
                purchase(phone(&format!("0913{:06}", index)), 100_000, 0),
            )
        })
        .collect();
    for answer in journal.submit_all(events).await {
        answer.unwrap();
    }
    let grown = wal_bytes(&path);
    assert!(
        grown > LIMIT,
        "the WAL grew to {grown} bytes behind the reader"
    );
    reader.execute_batch("COMMIT").unwrap();
    drop(reader);
    let mut size = grown;
    for _ in 0..40 {
        tokio::time::sleep(patron_store::journal::CHECKPOINT_INTERVAL).await;
        size = wal_bytes(&path);
        if size <= LIMIT {
            break;
        }
    }
    assert!(size <= LIMIT, "the WAL is {size} bytes, past {LIMIT}");
    journal.stop().await;
    done.await.unwrap();
    store.db().close_idle();
    assert_eq!(wal_bytes(&path), 0, "a clean stop leaves the WAL empty");
}
