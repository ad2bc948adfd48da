//! Property tests: random sequences of purchases (often partly paid with points), partial
//! refunds, voids, engagement, redemptions, voucher use, cancellation and expiry, with clock jumps past maturity and expiry, must keep
//! the ledger's invariants after every step.

use chrono::{Duration, TimeZone, Utc};
use patron_core::engine::{expire_lots, expire_voucher, Judge};
use patron_core::event::{Item, Purchase, PurchaseRecord};
use patron_core::ledger::{Account, Transaction};
use patron_core::member::MemberState;
use patron_core::programme::{Programme, ProgrammeDefinition};
use patron_core::reward::{Reward, Voucher, VoucherStatus};
use patron_core::time::Timestamp;
use patron_core::{EventId, MemberId, Money, Points, RewardId};
use proptest::prelude::*;

fn programme() -> Programme {
    let definition: ProgrammeDefinition = serde_json::from_value(serde_json::json!({
        "amount_per_point": 10000,
        "point_value": 1000,
        "return_window_days": 7,
        "expiry": {"kind": "days", "days": 60},
        "cap_per_day": 400,
        "rules": [
            {"id": "cake", "name": "Cake", "when": "'cake' in event.categories",
             "points": "event.quantity_by_category['cake'] * 10"},
            {"id": "review", "name": "Review", "when": "event.type == 'review'", "points": "20"}
        ],
        "tiers": [
            {"code": "member", "name": "Member", "threshold": 0},
            {"code": "gold", "name": "Gold", "threshold": 3000000, "multiplier_percent": 150}
        ],
        "qualification": {"metric": "spend", "window": "rolling_12_months", "grace_days": 30}
    }))
    .unwrap();
    Programme::compile(1, definition).unwrap()
}

#[derive(Clone, Debug)]
enum Step {
    Purchase {
        amount: i64,
        cakes: i64,
        pay_percent: i64,
    },
    Refund {
        purchase: usize,
        percent: i64,
    },
    Void {
        purchase: usize,
    },
    Review,
    Redeem {
        cost: i64,
    },
    UseVoucher {
        voucher: usize,
    },
    CancelVoucher {
        voucher: usize,
    },
    Advance {
        days: i64,
    },
    Expire,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (1i64..=200, 0i64..=3, prop_oneof![Just(0i64), 1i64..=100])
            .prop_map(|(thousands, cakes, pay_percent)| Step::Purchase { amount: thousands * 10_000, cakes, pay_percent }),
        2 => (0usize..16, 1i64..=100).prop_map(|(purchase, percent)| Step::Refund { purchase, percent }),
        1 => (0usize..16).prop_map(|purchase| Step::Void { purchase }),
        1 => Just(Step::Review),
        2 => (0i64..=150).prop_map(|cost| Step::Redeem { cost }),
        1 => (0usize..8).prop_map(|voucher| Step::UseVoucher { voucher }),
        1 => (0usize..8).prop_map(|voucher| Step::CancelVoucher { voucher }),
        2 => (1i64..=40).prop_map(|days| Step::Advance { days }),
        1 => Just(Step::Expire),
    ]
}

struct World {
    judge_programme: Programme,
    member: MemberState,
    now: Timestamp,
    transactions: Vec<Transaction>,
    purchases: Vec<PurchaseRecord>,
    vouchers: Vec<Voucher>,
    refunds_seen: bool,
    /// The balance by an independent count: earned − spent − taken back − expired + returned.
    model_balance: i64,
    counter: usize,
}

impl World {
    fn new() -> World {
        let programme = programme();
        let now = Utc.with_ymd_and_hms(2026, 1, 5, 3, 0, 0).unwrap();
        let member = MemberState::new(
            MemberId::new(),
            Default::default(),
            programme.base_tier_code(),
            now,
        );
        World {
            judge_programme: programme,
            member,
            now,
            transactions: Vec::new(),
            purchases: Vec::new(),
            vouchers: Vec::new(),
            refunds_seen: false,
            model_balance: 0,
            counter: 0,
        }
    }

    fn next_id(&mut self) -> EventId {
        self.counter += 1;
        EventId::parse(&format!("E-{}", self.counter)).unwrap()
    }

    fn reward(cost: i64) -> Reward {
        Reward {
            id: RewardId::new(),
            name: "Gift".into(),
            description: String::new(),
            cost: Points(cost),
            stock: None,
            per_member_limit: None,
            valid_from: None,
            valid_until: None,
            stores: vec![],
            voucher_valid_days: 20,
            active: true,
        }
    }

    fn apply(&mut self, step: &Step) {
        let zone = "Asia/Ho_Chi_Minh".parse().unwrap();
        let programme = std::mem::replace(&mut self.judge_programme, programme());
        let judge = Judge::new(&programme, zone);
        let id = self.next_id();
        let now = self.now;
        match step {
            Step::Purchase {
                amount,
                cakes,
                pay_percent,
            } => {
                let available = self.member.lots.available(now).0;
                let points_paid = (available * pay_percent / 100).min(amount / 1000);
                let mut items = vec![];
                if *cakes > 0 {
                    items.push(Item {
                        sku: "c".into(),
                        category: "cake".into(),
                        quantity: *cakes,
                        amount: Money(35_000 * cakes),
                    });
                }
                let purchase = Purchase {
                    store: None,
                    amount: Money(*amount),
                    points_paid: Points(points_paid),
                    items,
                };
                let (outcome, record) = judge
                    .purchase(&mut self.member, &id, &purchase, now)
                    .expect("a payable purchase is accepted");
                assert_eq!(record.eligible_amount, Money(amount - points_paid * 1000));
                self.model_balance += outcome.points_earned.0 - outcome.points_spent.0;
                self.transactions.extend(outcome.transactions);
                self.purchases.push(record);
            }
            Step::Refund { purchase, percent } => {
                if let Some(record) = self.purchases.get_mut(*purchase) {
                    let refundable = record.refundable();
                    let amount = Money((refundable.0 * percent / 100).max(1));
                    match judge.refund(&mut self.member, record, &id, amount, now) {
                        Ok(outcome) => {
                            self.refunds_seen = true;
                            self.model_balance +=
                                outcome.points_returned.0 - outcome.points_taken_back.0;
                            self.transactions.extend(outcome.transactions);
                        }
                        Err(_) => assert!(amount > refundable || record.voided),
                    }
                    check_record(record);
                }
            }
            Step::Void { purchase } => {
                if let Some(record) = self.purchases.get_mut(*purchase) {
                    let was_voided = record.voided;
                    match judge.void(&mut self.member, record, &id, now) {
                        Ok(outcome) => {
                            assert!(!was_voided);
                            self.refunds_seen = true;
                            self.model_balance +=
                                outcome.points_returned.0 - outcome.points_taken_back.0;
                            self.transactions.extend(outcome.transactions);
                        }
                        Err(_) => assert!(was_voided),
                    }
                    check_record(record);
                }
            }
            Step::Review => {
                let outcome = judge.engagement(&mut self.member, &id, "review", now);
                self.model_balance += outcome.points_earned.0;
                self.transactions.extend(outcome.transactions);
            }
            Step::Redeem { cost } => {
                let available = self.member.lots.available(now);
                let mut reward = World::reward(*cost);
                match judge.redeem(
                    &mut self.member,
                    &mut reward,
                    0,
                    format!("V{}", self.counter),
                    &id,
                    now,
                ) {
                    Ok(outcome) => {
                        assert!(available.0 >= *cost);
                        self.model_balance -= outcome.points_spent.0;
                        self.transactions.extend(outcome.transactions);
                        self.vouchers.push(outcome.voucher.unwrap());
                    }
                    Err(_) => assert!(available.0 < *cost),
                }
            }
            Step::UseVoucher { voucher } => {
                if let Some(voucher) = self.vouchers.get_mut(*voucher) {
                    let reward = World::reward(voucher.cost.0);
                    if let Ok(outcome) = judge.use_voucher(voucher, &reward, None, &id, now) {
                        assert_eq!(
                            outcome
                                .transactions
                                .iter()
                                .map(Transaction::member_delta)
                                .sum::<Points>(),
                            Points::ZERO
                        );
                        self.transactions.extend(outcome.transactions);
                    }
                }
            }
            Step::CancelVoucher { voucher } => {
                if let Some(voucher) = self.vouchers.get_mut(*voucher) {
                    let mut reward = World::reward(voucher.cost.0);
                    let was_issued =
                        voucher.status == VoucherStatus::Issued && voucher.expires_at > now;
                    // Emptied lots are dropped from memory only by a store; here they stay.
                    match judge.cancel_voucher(&mut self.member, voucher, &mut reward, &id, now) {
                        Ok(outcome) => {
                            assert!(was_issued);
                            self.model_balance += voucher.cost.0;
                            self.transactions.extend(outcome.transactions);
                        }
                        Err(_) => assert!(!was_issued),
                    }
                }
            }
            Step::Advance { days } => self.now += Duration::days(*days),
            Step::Expire => {
                if let Some(transaction) = expire_lots(&mut self.member, now) {
                    self.model_balance += transaction.member_delta().0;
                    self.transactions.push(transaction);
                }
                for voucher in &mut self.vouchers {
                    if let Some(transaction) = expire_voucher(voucher, now) {
                        self.transactions.push(transaction);
                    }
                }
            }
        }
        self.judge_programme = programme;
    }

    fn check(&self) {
        for transaction in &self.transactions {
            assert!(transaction.is_balanced(), "unbalanced {transaction:?}");
        }
        let entries: i64 = self
            .transactions
            .iter()
            .flat_map(|transaction| &transaction.entries)
            .filter(|entry| entry.account == Account::Member(self.member.id))
            .map(|entry| entry.amount)
            .sum();
        assert_eq!(
            self.member.balance.0, entries,
            "balance = sum of the member's entries"
        );
        assert_eq!(
            self.member.balance,
            self.member.lots.total(),
            "balance = sum of lots"
        );
        assert_eq!(
            self.member.balance.0, self.model_balance,
            "balance = the independent model"
        );
        assert!(self.member.lots.available(self.now).0 >= 0);
        assert!(self.member.lots.pending(self.now).0 >= 0);
        if self.member.balance.is_negative() {
            assert!(
                self.refunds_seen,
                "only a refund may take the balance below zero"
            );
            assert!(
                self.member.lots.debt().is_positive(),
                "a negative balance is a recorded debt"
            );
        }
        let outstanding: i64 = self
            .vouchers
            .iter()
            .filter(|voucher| voucher.status == VoucherStatus::Issued)
            .map(|voucher| voucher.cost.0)
            .sum();
        let outstanding_entries: i64 = self
            .transactions
            .iter()
            .flat_map(|transaction| &transaction.entries)
            .filter(|entry| entry.account == Account::VouchersOutstanding)
            .map(|entry| entry.amount)
            .sum();
        assert_eq!(
            outstanding, outstanding_entries,
            "vouchers outstanding match their account"
        );
        let paid_not_returned: i64 = self
            .purchases
            .iter()
            .map(|record| record.points_paid().0 - record.points_returned.0)
            .sum();
        let payments_account: i64 = self
            .transactions
            .iter()
            .flat_map(|transaction| &transaction.entries)
            .filter(|entry| entry.account == Account::Payments)
            .map(|entry| entry.amount)
            .sum();
        assert_eq!(
            paid_not_returned, payments_account,
            "points paid and not given back match the payments account"
        );
    }
}

/// What refunds and voids may have done to one purchase: never more than one full refund, and
/// a purchase refunded in full (or voided) has given back exactly what it was paid and earned.
fn check_record(record: &PurchaseRecord) {
    assert!(record.refunded_amount <= record.amount);
    assert!(record.points_taken_back <= record.points_earned);
    assert!(record.points_returned <= record.points_paid());
    if record.refunded_amount == record.amount {
        assert_eq!(record.points_returned, record.points_paid());
        assert_eq!(record.points_taken_back, record.points_earned);
    }
    if record.voided {
        assert_eq!(record.refunded_amount, record.amount);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_ledger_holds_under_any_sequence(steps in proptest::collection::vec(step(), 1..40)) {
        let mut world = World::new();
        for step in &steps {
            world.apply(step);
            world.check();
        }
    }
}
