//! Huge amounts and rule results never wrap a balance or a total (issue 10: a rule giving
//! 6,000,000,000,000,000,000 wrapped the balance negative on the second purchase; 10,000
//! purchases of 10^15 wrapped `lifetime_spend`).

use chrono::{Duration, TimeZone, Utc};
use chrono_tz::Tz;
use patron_core::engine::Judge;
use patron_core::event::Purchase;
use patron_core::member::{MemberState, BALANCE_MAX};
use patron_core::programme::{Programme, ProgrammeDefinition};
use patron_core::rules::RULE_POINTS_MAX;
use patron_core::time::Timestamp;
use patron_core::{EventId, MemberId, Money, Points};
use proptest::prelude::*;

/// The server's `AMOUNT_MAX`: the largest amount one event may carry.
const AMOUNT_MAX: i64 = 1_000_000_000_000_000;

fn zone() -> Tz {
    "Asia/Ho_Chi_Minh".parse().unwrap()
}

fn at(minute: i64) -> Timestamp {
    Utc.with_ymd_and_hms(2026, 3, 1, 3, 0, 0).unwrap() + Duration::minutes(minute)
}

/// The most generous programme the validation accepts: a point per đồng, ×100 at the top
/// tier (reached at once), a rule giving `rule_points`, no caps.
fn generous(rule_points: &str) -> Programme {
    let definition: ProgrammeDefinition = serde_json::from_value(serde_json::json!({
        "amount_per_point": 1,
        "point_value": 1,
        "rules": [{"id": "huge", "name": "Huge", "when": "true", "points": rule_points,
                   "tier_multiplier": true}],
        "tiers": [{"code": "member", "name": "Member", "threshold": 0, "multiplier_percent": 10000}],
        "qualification": {"metric": "spend", "window": "lifetime", "grace_days": 30}
    }))
    .unwrap();
    Programme::compile(1, definition).unwrap()
}

fn buy(amount: i64) -> Purchase {
    Purchase {
        store: None,
        amount: Money(amount),
        points_paid: Points(0),
        items: vec![],
    }
}

fn new_member(programme: &Programme) -> MemberState {
    MemberState::new(
        MemberId::new(),
        Default::default(),
        programme.base_tier_code(),
        at(0),
    )
}

#[test]
fn a_huge_rule_result_is_capped_and_never_wraps_the_balance() {
    let mut definition = generous("6000000000000000000").definition;
    definition.amount_per_point = 0;
    definition.tiers[0].multiplier_percent = 100;
    let programme = Programme::compile(1, definition).unwrap();
    let judge = Judge::new(&programme, zone());
    let mut member = new_member(&programme);
    for index in 0..2 {
        let event_id = EventId::parse(&format!("HD-{index}")).unwrap();
        let (outcome, _) = judge
            .purchase(&mut member, &event_id, &buy(10_000), at(index))
            .unwrap();
        assert_eq!(outcome.points_earned, Points(RULE_POINTS_MAX));
        assert!(
            outcome.lines[0].detail.contains("capped"),
            "{:?}",
            outcome.lines
        );
    }
    assert_eq!(member.balance, Points(2 * RULE_POINTS_MAX));
    assert!(member.is_consistent());
}

#[test]
fn a_rule_result_at_the_limit_is_kept_and_one_past_is_capped() {
    for (given, capped) in [(RULE_POINTS_MAX, false), (RULE_POINTS_MAX + 1, true)] {
        let mut definition = generous(&given.to_string()).definition;
        definition.amount_per_point = 0;
        definition.tiers[0].multiplier_percent = 100;
        let programme = Programme::compile(1, definition).unwrap();
        let judge = Judge::new(&programme, zone());
        let mut member = new_member(&programme);
        let event_id = EventId::parse("HD-1").unwrap();
        let (outcome, _) = judge
            .purchase(&mut member, &event_id, &buy(10_000), at(0))
            .unwrap();
        assert_eq!(outcome.points_earned, Points(RULE_POINTS_MAX));
        assert_eq!(outcome.lines[0].detail.contains("capped"), capped);
    }
}

#[test]
fn ten_thousand_purchases_at_the_largest_amount_keep_every_total_sound() {
    let programme = generous("9223372036854775807");
    let judge = Judge::new(&programme, zone());
    let mut member = new_member(&programme);
    for index in 0..10_000 {
        let event_id = EventId::parse(&format!("HD-{index}")).unwrap();
        judge
            .purchase(&mut member, &event_id, &buy(AMOUNT_MAX), at(index))
            .unwrap();
        assert!(member.balance.is_positive() && member.balance <= BALANCE_MAX);
        assert!(member.lifetime_spend.is_positive());
        assert!(member.lifetime_points.is_positive());
    }
    assert!(member.is_consistent());
    assert_eq!(member.balance, BALANCE_MAX);
    assert_eq!(
        member.lifetime_spend,
        Money(i64::MAX),
        "held at the top, not wrapped"
    );
    assert_eq!(member.order_count, 10_000);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any sequence of purchases up to the largest amount, under any rule result, keeps the
    /// balance within [0, BALANCE_MAX], equal to the lots, and every total non-negative.
    #[test]
    fn huge_purchases_never_break_the_ledger(
        rule_points in prop_oneof![Just(i64::MAX), Just(6_000_000_000_000_000_000i64), 0..i64::MAX],
        amounts in proptest::collection::vec(1..=AMOUNT_MAX, 1..40),
    ) {
        let programme = generous(&rule_points.to_string());
        let judge = Judge::new(&programme, zone());
        let mut member = new_member(&programme);
        for (index, amount) in amounts.iter().enumerate() {
            let event_id = EventId::parse(&format!("HD-{index}")).unwrap();
            let (outcome, _) = judge
                .purchase(&mut member, &event_id, &buy(*amount), at(index as i64))
                .unwrap();
            prop_assert!(!outcome.points_earned.is_negative());
            prop_assert!(!member.balance.is_negative() && member.balance <= BALANCE_MAX);
            prop_assert!(member.is_consistent());
            prop_assert!(member.lifetime_spend.is_positive());
        }
    }
}
