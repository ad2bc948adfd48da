//! Several writers on one database: two stores (two pools, two journals, as two `patron`
//! processes would have) race on the same members, and a member whose stored state breaks an
//! invariant fails its own events without stopping anyone else's. Each on SQLite and PostgreSQL.

mod common;

use common::*;
use patron_core::engine::Rejection;
use patron_store::jobs::JobKind;
use patron_store::{DatabaseConfig, EventError, IncomingKind, Journal, JournalConfig, Store};

/// Trials of the double-spend race (the issue measured 29 double spends in 30).
const TRIALS: usize = 30;

async fn two_writers(postgres: bool) -> (Cafe, Journal, Store) {
    let url = patron_testkit::fresh_database_url(postgres, "writers").await;
    let first = Store::open(&DatabaseConfig::new(url.clone()))
        .await
        .unwrap();
    let cafe = Cafe::open(first).await;
    let second = Store::open(&DatabaseConfig::new(url)).await.unwrap();
    let (journal, _) = Journal::start(second.clone(), JournalConfig::default());
    (cafe, journal, second)
}

fn adjustment(member: &str, points: i64) -> IncomingKind {
    IncomingKind::Adjustment {
        member: phone(member),
        asset: patron_core::ledger::Asset::Points,
        points,
        reason: "opening balance".into(),
        actor: Some("test".into()),
    }
}

async fn balance(store: &Store, member: &str) -> (i64, i64, i64) {
    let phone = patron_core::Phone::parse(member).unwrap();
    let row = store
        .db()
        .fetch_one(
            "SELECT m.points_balance AS balance, \
             (SELECT COALESCE(SUM(remaining), 0) FROM lots l WHERE l.member_id = m.id) AS lots, \
             (SELECT COALESCE(SUM(e.amount), 0) FROM ledger_entries e \
                WHERE e.account = 'member' AND e.member_id = m.id) AS entries \
             FROM members m WHERE m.phone = $1",
            patron_store::binds![phone.as_str()],
        )
        .await
        .unwrap();
    (
        row.int("balance").unwrap(),
        row.int("lots").unwrap(),
        row.int("entries").unwrap(),
    )
}

/// Two concurrent payments of a whole 1,000-point balance, one through each writer: exactly one
/// passes, every time.
async fn two_writers_never_spend_the_same_points_twice(postgres: bool) {
    let (cafe, other, other_store) = two_writers(postgres).await;
    let mut double_spends = 0;
    for trial in 0..TRIALS {
        let member = format!("09130{trial:05}");
        let enrol = IncomingKind::Enrol {
            phone: patron_core::Phone::parse(&member).unwrap(),
            profile: Default::default(),
        };
        cafe.journal
            .submit(cafe.event(&format!("JOIN-{trial}"), day(-30), enrol))
            .await
            .unwrap();
        // The welcome points (50) and an adjustment make a balance of 1,000.
        let opened = cafe
            .journal
            .submit(cafe.event(&format!("ADJ-{trial}"), day(0), adjustment(&member, 950)))
            .await
            .unwrap();
        assert_eq!(opened.balance, 1_000);
        let pay = |id: String| cafe.event(&id, day(1), purchase(phone(&member), 2_000_000, 1_000));
        let (left, right) = tokio::join!(
            cafe.journal.submit(pay(format!("PAY-A-{trial}"))),
            other.submit(pay(format!("PAY-B-{trial}")))
        );
        let passed = [&left, &right]
            .iter()
            .filter(|answer| answer.is_ok())
            .count();
        if passed != 1 {
            double_spends += 1;
        }
        for answer in [&left, &right] {
            if let Err(error) = answer {
                assert!(
                    matches!(
                        error,
                        EventError::Rejected(Rejection::InsufficientPoints { .. })
                    ),
                    "trial {trial}: {error:?}"
                );
            }
        }
        let (stored, lots, ledger) = balance(&cafe.store, &member).await;
        assert_eq!(stored, lots, "trial {trial}: balance and lots");
        assert_eq!(stored, ledger, "trial {trial}: balance and ledger");
    }
    assert_eq!(double_spends, 0, "double spends in {TRIALS} trials");
    let check = other_store.check_ledger().await.unwrap();
    assert!(check.is_sound(), "{check:?}");
}

/// Both writers stream purchases of the same members while jobs run through each: nothing
/// earned is lost from the stored balance.
async fn two_writers_lose_no_update(postgres: bool) {
    let (cafe, other, other_store) = two_writers(postgres).await;
    let members: Vec<String> = (0..4).map(|index| format!("091400000{index}")).collect();
    let events_per_writer = 120;
    let stream = |journal: Journal, prefix: &'static str| {
        let members = members.clone();
        let cafe_event =
            |id: String, member: &str| cafe.event(&id, day(0), purchase(phone(member), 100_000, 0));
        let events: Vec<_> = (0..events_per_writer)
            .map(|index| cafe_event(format!("{prefix}-{index}"), &members[index % members.len()]))
            .collect();
        async move {
            let mut answers = Vec::new();
            for chunk in events.chunks(7) {
                answers.extend(journal.submit_all(chunk.to_vec()).await);
            }
            answers
        }
    };
    let (left, right, _, _) = tokio::join!(
        stream(cafe.journal.clone(), "A"),
        stream(other.clone(), "B"),
        cafe.journal.run_job(JobKind::ReviewTiers, day(0)),
        other.run_job(JobKind::ExpireLots, day(0)),
    );
    for answer in left.iter().chain(&right) {
        assert!(answer.is_ok(), "{answer:?}");
    }
    let earned: i64 = left
        .iter()
        .chain(&right)
        .map(|answer| answer.as_ref().unwrap().points_earned)
        .sum();
    let mut total = 0;
    for member in &members {
        let (stored, lots, ledger) = balance(&cafe.store, member).await;
        assert_eq!(stored, lots, "{member}: balance and lots");
        assert_eq!(stored, ledger, "{member}: balance and ledger");
        total += stored;
    }
    // Every point answered as earned is in the stored balances, none twice.
    assert_eq!(total, earned);
    let check = other_store.check_ledger().await.unwrap();
    assert!(check.is_sound(), "{check:?}");
}

/// A member whose stored balance no longer matches its lots: its events are refused with
/// `member_quarantined` (reported in the audit log), the rest of its batch and every later
/// event of other members go on, and the writer stays up.
async fn an_inconsistent_member_fails_its_events_alone(postgres: bool) {
    let url = patron_testkit::fresh_database_url(postgres, "quarantine").await;
    let cafe = Cafe::open(Store::open(&DatabaseConfig::new(url)).await.unwrap()).await;
    for (id, member) in [("E1", "0915000001"), ("E2", "0915000002")] {
        cafe.journal
            .submit(cafe.event(id, day(0), purchase(phone(member), 300_000, 0)))
            .await
            .unwrap();
    }
    cafe.store
        .db()
        .execute(
            "UPDATE members SET points_balance = points_balance + 500 WHERE phone = $1",
            patron_store::binds!["+84915000001"],
        )
        .await
        .unwrap();
    let answers = cafe
        .journal
        .submit_all(vec![
            cafe.event("E3", day(1), purchase(phone("0915000001"), 100_000, 0)),
            cafe.event("E4", day(1), purchase(phone("0915000002"), 100_000, 0)),
            cafe.event("E5", day(1), purchase(phone("0915000003"), 100_000, 0)),
        ])
        .await;
    assert_eq!(answers[0], Err(EventError::MemberQuarantined));
    assert_eq!(answers[1].as_ref().unwrap().balance, 30 + 10);
    assert!(answers[2].is_ok(), "{:?}", answers[2]);
    // Later events of that member are refused at once; everyone else goes on.
    let again = cafe
        .journal
        .submit(cafe.event("E6", day(2), purchase(phone("0915000001"), 100_000, 0)))
        .await;
    assert_eq!(again, Err(EventError::MemberQuarantined));
    let other = cafe
        .journal
        .submit(cafe.event("E7", day(2), purchase(phone("0915000002"), 100_000, 0)))
        .await
        .unwrap();
    assert_eq!(other.balance, 30 + 10 + 10);
    assert!(cafe.journal.is_running());
    // Jobs pass over it too.
    cafe.journal
        .run_job(JobKind::ReviewTiers, day(2))
        .await
        .unwrap();
    cafe.journal
        .run_job(JobKind::ExpireLots, day(400))
        .await
        .unwrap();
    let reported = patron_testkit::scalar(
        &cafe.store,
        "SELECT COUNT(*) FROM audit_log WHERE action = 'member.quarantined' AND actor = 'system'",
        vec![],
    )
    .await;
    assert_eq!(reported, 1, "reported once");
    let quarantined = cafe
        .store
        .db()
        .fetch_one(
            "SELECT quarantined_at FROM members WHERE phone = $1",
            patron_store::binds!["+84915000001"],
        )
        .await
        .unwrap()
        .opt_int("quarantined_at")
        .unwrap();
    assert!(quarantined.is_some());
    // The broken member's balance is as it was left: nothing was written on top of it.
    let (stored, lots, _) = balance(&cafe.store, "0915000001").await;
    assert_eq!((stored, lots), (30 + 500, 30));
    // The ledger check sees it: one member whose balance is neither its entries nor its lots.
    let check = cafe.store.check_ledger().await.unwrap();
    assert_eq!(
        (
            check.balance_differs_from_entries,
            check.balance_differs_from_lots
        ),
        (1, 1),
        "{check:?}"
    );
}

mod two_writers_never_spend_the_same_points_twice {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::two_writers_never_spend_the_same_points_twice(false).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::two_writers_never_spend_the_same_points_twice(true).await;
    }
}

mod two_writers_lose_no_update {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::two_writers_lose_no_update(false).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::two_writers_lose_no_update(true).await;
    }
}

mod an_inconsistent_member_fails_its_events_alone {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::an_inconsistent_member_fails_its_events_alone(false).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::an_inconsistent_member_fails_its_events_alone(true).await;
    }
}
