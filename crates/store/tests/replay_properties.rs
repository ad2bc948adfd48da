//! Property test through the real store: random sequences of events over a few members, on
//! SQLite and PostgreSQL. After the sequence the ledger is sound and every member's balance is
//! the sum of their history; replaying every event (same ids, same bodies) in one batch returns
//! the first answers and changes nothing. (Rejected events are not recorded, so that a
//! corrected request may use the same id; the replay sends the accepted ones.) A rejected event
//! changes nothing at all: the database is compared before and after it. Adjustments move
//! money and stamps too, and every asset's balances stay the sums of their entries and lots.
//! The dashboard's figures kept by the writers equal the ones scanned from the tables.

mod common;

use common::*;
use patron_core::{EventId, Money};
use patron_store::jobs::JobKind;
use patron_store::{IncomingEvent, IncomingKind, MemberRef, Store};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

#[derive(Clone, Debug)]
enum Step {
    Purchase {
        member: usize,
        amount: i64,
        points_paid: i64,
    },
    Refund {
        purchase: usize,
        percent: i64,
    },
    Review {
        member: usize,
    },
    Redeem {
        member: usize,
    },
    Use {
        voucher: usize,
    },
    Cancel {
        voucher: usize,
    },
    Advance {
        days: i64,
    },
    Expire,
    /// An adjustment of money (store credit) or of a card's stamps, up or down.
    Credit {
        member: usize,
        stamps: bool,
        amount: i64,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0usize..3, 1i64..=150, prop_oneof![Just(0i64), 1i64..=60])
            .prop_map(|(member, tens, points_paid)| Step::Purchase { member, amount: tens * 10_000, points_paid }),
        2 => (0usize..12, 1i64..=100).prop_map(|(purchase, percent)| Step::Refund { purchase, percent }),
        1 => (0usize..3).prop_map(|member| Step::Review { member }),
        2 => (0usize..3).prop_map(|member| Step::Redeem { member }),
        1 => (0usize..6).prop_map(|voucher| Step::Use { voucher }),
        1 => (0usize..6).prop_map(|voucher| Step::Cancel { voucher }),
        2 => (1i64..=120).prop_map(|days| Step::Advance { days }),
        1 => Just(Step::Expire),
        2 => (0usize..3, any::<bool>(), prop_oneof![-50_000i64..=-1, 1i64..=50_000])
            .prop_map(|(member, stamps, amount)| Step::Credit { member, stamps, amount }),
    ]
}

fn member(index: usize) -> MemberRef {
    phone(&format!("09120001{index:02}"))
}

async fn run_case(store: Store, steps: Vec<Step>) {
    let cafe = Cafe::open(store).await;
    let reward = cafe.reward("Cà phê", 25, None).await;
    let mut today = 0i64;
    let mut sent: Vec<IncomingEvent> = Vec::new();
    let mut answers = Vec::new();
    let mut purchases: Vec<(String, i64)> = Vec::new();
    let mut vouchers: Vec<String> = Vec::new();
    for (index, step) in steps.iter().enumerate() {
        let id = format!("E{index}");
        let kind = match step {
            Step::Purchase {
                member: who,
                amount,
                points_paid,
            } => {
                purchases.push((id.clone(), *amount));
                purchase(member(*who), *amount, *points_paid)
            }
            Step::Refund { purchase, percent } => match purchases.get(*purchase) {
                Some((original, amount)) => IncomingKind::Refund {
                    original: EventId::parse(original).unwrap(),
                    amount: Money((amount * percent / 100).max(1)),
                },
                None => continue,
            },
            Step::Review { member: who } => IncomingKind::Engagement {
                member: member(*who),
                kind: "review".into(),
            },
            Step::Redeem { member: who } => IncomingKind::Redemption {
                member: member(*who),
                reward_id: reward,
            },
            Step::Use { voucher } => match vouchers.get(*voucher) {
                Some(code) => IncomingKind::VoucherUse {
                    code: code.clone(),
                    store: Some("HN01".into()),
                },
                None => continue,
            },
            Step::Cancel { voucher } => match vouchers.get(*voucher) {
                Some(code) => IncomingKind::VoucherCancel { code: code.clone() },
                None => continue,
            },
            Step::Advance { days } => {
                today += days;
                continue;
            }
            Step::Credit {
                member: who,
                stamps,
                amount,
            } => IncomingKind::Adjustment {
                member: member(*who),
                asset: if *stamps {
                    patron_core::ledger::Asset::Stamps("coffee".into())
                } else {
                    patron_core::ledger::Asset::Money
                },
                points: *amount,
                reason: "property".into(),
                actor: Some("user:test".into()),
            },
            Step::Expire => {
                cafe.journal
                    .run_job(JobKind::ExpireLots, day(today))
                    .await
                    .unwrap();
                cafe.journal
                    .run_job(JobKind::ExpireVouchers, day(today))
                    .await
                    .unwrap();
                continue;
            }
        };
        let event = cafe.event(&id, day(today), kind);
        let before = snapshot(&cafe.store).await;
        let answer = cafe.journal.submit(event.clone()).await;
        if answer.is_err() {
            assert_eq!(
                before,
                snapshot(&cafe.store).await,
                "a rejected event ({answer:?}) changed the database"
            );
        }
        if let Ok(result) = &answer {
            if let Some(voucher) = &result.voucher {
                if result.kind == "redemption" {
                    vouchers.push(voucher.code.clone());
                }
            }
        }
        sent.push(event);
        answers.push(answer);
    }
    let check = cafe.store.check_ledger().await.unwrap();
    assert!(check.is_sound(), "{check:?}");
    for who in 0..3 {
        let Ok(view) = cafe
            .store
            .member(cafe.tenant, &member(who), day(today))
            .await
        else {
            continue;
        };
        let member_id = patron_core::MemberId::parse(&view.id).unwrap();
        let history = cafe
            .store
            .history(cafe.tenant, member_id, 200, None)
            .await
            .unwrap();
        assert_eq!(
            view.balance,
            history.iter().map(|entry| entry.points).sum::<i64>()
        );
        assert!(view.balance >= 0 || view.debt > 0);
    }
    let accepted: Vec<(IncomingEvent, _)> = sent
        .into_iter()
        .zip(answers)
        .filter_map(|(event, answer)| answer.ok().map(|result| (event, result)))
        .collect();
    let replayed = cafe
        .journal
        .submit_all(accepted.iter().map(|(event, _)| event.clone()).collect())
        .await;
    for ((_, first), again) in accepted.iter().zip(&replayed) {
        assert_eq!(
            Ok(first),
            again.as_ref(),
            "a replay returns the first answer"
        );
    }
    let after = cafe.store.check_ledger().await.unwrap();
    assert_eq!(
        (after.events, after.transactions),
        (check.events, check.transactions)
    );
    // The dashboard's kept figures are what the tables say, and what a rebuild makes.
    assert_figures_agree(&cafe.store, cafe.tenant, -1..today + 2).await;
}

fn property(open: fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Store>>>, cases: u32) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&proptest::collection::vec(step(), 1..30), |steps| {
            runtime.block_on(async { run_case(open().await, steps).await });
            Ok(())
        })
        .unwrap();
}

#[test]
fn random_sequences_keep_the_ledger_and_replay_changes_nothing_sqlite() {
    property(|| Box::pin(sqlite()), 24);
}

#[test]
fn random_sequences_keep_the_ledger_and_replay_changes_nothing_postgres() {
    property(|| Box::pin(postgres()), 16);
}
