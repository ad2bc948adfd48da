//! Scenarios of the engine with exact numbers.

use chrono::{Duration, TimeZone, Utc};
use chrono_tz::Tz;
use patron_core::engine::{Judge, Rejection};
use patron_core::event::Purchase;
use patron_core::member::MemberState;
use patron_core::programme::{Programme, ProgrammeDefinition};
use patron_core::time::Timestamp;
use patron_core::{EventId, MemberId, Money, Points};

fn zone() -> Tz {
    "Asia/Ho_Chi_Minh".parse().unwrap()
}

fn at(day: i64) -> Timestamp {
    Utc.with_ymd_and_hms(2026, 3, 1, 3, 0, 0).unwrap() + Duration::days(day)
}

fn definition(changes: serde_json::Value) -> ProgrammeDefinition {
    let mut base = serde_json::json!({
        "amount_per_point": 10000,
        "point_value": 1000,
        "return_window_days": 7,
        "expiry": {"kind": "days", "days": 365},
        "rules": [
            {"id": "cake", "name": "Cake bonus", "when": "'cake' in event.categories",
             "points": "event.quantity_by_category['cake'] * 10", "tier_multiplier": true},
            {"id": "sign_up", "name": "Welcome", "when": "event.type == 'sign_up'", "points": "50", "once_per": "ever"}
        ],
        "tiers": [
            {"code": "member", "name": "Member", "threshold": 0},
            {"code": "silver", "name": "Silver", "threshold": 2000000, "multiplier_percent": 120},
            {"code": "gold", "name": "Gold", "threshold": 5000000, "multiplier_percent": 150}
        ],
        "qualification": {"metric": "spend", "window": "rolling_12_months", "grace_days": 30}
    });
    for (key, value) in changes.as_object().unwrap() {
        base[key] = value.clone();
    }
    serde_json::from_value(base).unwrap()
}

fn member(programme: &Programme) -> MemberState {
    MemberState::new(
        MemberId::new(),
        Default::default(),
        programme.base_tier_code(),
        at(0),
    )
}

fn buy(amount: i64) -> Purchase {
    Purchase {
        store: None,
        amount: Money(amount),
        points_paid: Points(0),
        items: vec![],
    }
}

fn id(text: &str) -> EventId {
    EventId::parse(text).unwrap()
}

#[test]
fn base_rate_truncates_and_explains_itself() {
    let programme = Programme::compile(1, definition(serde_json::json!({}))).unwrap();
    let judge = Judge::new(&programme, zone());
    let mut state = member(&programme);
    let (outcome, record) = judge
        .purchase(&mut state, &id("A"), &buy(359_999), at(0))
        .unwrap();
    assert_eq!(outcome.points_earned, Points(35));
    assert_eq!(outcome.lines[0].detail, "1 point per 10,000đ of 359,999đ");
    assert!(record.lot_id.is_some());
    assert_eq!(state.lots.pending(at(6)), Points(35));
    assert_eq!(state.lots.available(at(7)), Points(35));
}

#[test]
fn the_crossing_purchase_earns_the_old_rate_unless_the_programme_says_otherwise() {
    for (new_rate, expected) in [(false, 100), (true, 120)] {
        let mut changes = definition(serde_json::json!({})).qualification;
        changes.crossing_purchase_earns_new_rate = new_rate;
        let programme = Programme::compile(
            1,
            definition(
                serde_json::json!({"qualification": serde_json::to_value(&changes).unwrap()}),
            ),
        )
        .unwrap();
        let judge = Judge::new(&programme, zone());
        let mut state = member(&programme);
        judge
            .purchase(&mut state, &id("A"), &buy(1_000_000), at(0))
            .unwrap();
        let (outcome, _) = judge
            .purchase(&mut state, &id("B"), &buy(1_000_000), at(1))
            .unwrap();
        assert_eq!(
            outcome.points_earned,
            Points(expected),
            "new rate: {new_rate}"
        );
        assert_eq!(outcome.tier_change.unwrap().to, "silver");
    }
}

#[test]
fn calendar_year_window_starts_over_in_january() {
    let qualification =
        serde_json::json!({"metric": "spend", "window": "calendar_year", "grace_days": 0});
    let programme = Programme::compile(
        1,
        definition(serde_json::json!({"qualification": qualification})),
    )
    .unwrap();
    let judge = Judge::new(&programme, zone());
    let mut state = member(&programme);
    // 1.5M in December 2026, 1.5M in January 2027: not silver, the year changed in between.
    let december = Utc.with_ymd_and_hms(2026, 12, 20, 3, 0, 0).unwrap();
    let january = Utc.with_ymd_and_hms(2027, 1, 5, 3, 0, 0).unwrap();
    judge
        .purchase(&mut state, &id("D"), &buy(1_500_000), december)
        .unwrap();
    let (outcome, _) = judge
        .purchase(&mut state, &id("J"), &buy(1_500_000), january)
        .unwrap();
    assert!(outcome.tier_change.is_none());
    assert_eq!(state.tier, "member");
    let progress = patron_core::tiers::progress(&programme, &state, january, zone());
    assert_eq!(progress.qualifying_value, 1_500_000);
    assert_eq!(progress.to_next_tier, Some(500_000));
}

#[test]
fn end_of_month_expiry_is_the_last_instant_of_the_month_in_vietnam() {
    let programme = Programme::compile(
        1,
        definition(serde_json::json!({"expiry": {"kind": "end_of_month", "months": 2}})),
    )
    .unwrap();
    let judge = Judge::new(&programme, zone());
    let mut state = member(&programme);
    // 2026-03-31 20:00 UTC is already 1 April in Hà Nội: April + 2 months → end of June.
    let late_march_utc = Utc.with_ymd_and_hms(2026, 3, 31, 20, 0, 0).unwrap();
    judge
        .purchase(&mut state, &id("E"), &buy(100_000), late_march_utc)
        .unwrap();
    let lot = state.lots.iter().next().unwrap();
    assert_eq!(
        lot.expires_at.unwrap().with_timezone(&zone()).to_rfc3339(),
        "2026-06-30T23:59:59.999999+07:00"
    );
}

#[test]
fn caps_show_up_as_lines() {
    let programme = Programme::compile(
        1,
        definition(serde_json::json!({"cap_per_event": 30, "cap_per_day": 50})),
    )
    .unwrap();
    let judge = Judge::new(&programme, zone());
    let mut state = member(&programme);
    let (first, _) = judge
        .purchase(&mut state, &id("A"), &buy(400_000), at(0))
        .unwrap();
    assert_eq!(first.points_earned, Points(30));
    assert_eq!(first.lines.last().unwrap().rule, "cap_per_event");
    assert_eq!(first.lines.last().unwrap().points, -10);
    let (second, _) = judge
        .purchase(
            &mut state,
            &id("B"),
            &buy(400_000),
            at(0) + Duration::hours(2),
        )
        .unwrap();
    assert_eq!(second.points_earned, Points(20));
    assert_eq!(second.lines.last().unwrap().rule, "cap_per_day");
    let (next_day, _) = judge
        .purchase(&mut state, &id("C"), &buy(400_000), at(1))
        .unwrap();
    assert_eq!(next_day.points_earned, Points(30));
}

#[test]
fn once_per_ever_and_tier_multiplied_rules() {
    let programme = Programme::compile(1, definition(serde_json::json!({}))).unwrap();
    let judge = Judge::new(&programme, zone());
    let mut state = member(&programme);
    assert_eq!(
        judge
            .engagement(&mut state, &id("S1"), "sign_up", at(0))
            .points_earned,
        Points(50)
    );
    assert_eq!(
        judge
            .engagement(&mut state, &id("S2"), "sign_up", at(400))
            .points_earned,
        Points(0)
    );
    state.tier = "gold".into();
    let purchase = Purchase {
        items: vec![patron_core::event::Item {
            sku: "c".into(),
            category: "cake".into(),
            quantity: 2,
            amount: Money(70_000),
        }],
        ..buy(70_000)
    };
    let (outcome, _) = judge
        .purchase(&mut state, &id("G"), &purchase, at(1))
        .unwrap();
    let cake = outcome
        .lines
        .iter()
        .find(|line| line.rule == "cake")
        .unwrap();
    assert_eq!((cake.points, cake.detail.as_str()), (30, "20 × Gold 150%"));
    let base = outcome
        .lines
        .iter()
        .find(|line| line.rule == "base")
        .unwrap();
    assert_eq!(
        (base.points, base.detail.as_str()),
        (10, "1 point per 10,000đ of 70,000đ × Gold 150%")
    );
}

#[test]
fn adjustments_never_take_the_balance_below_zero() {
    let programme = Programme::compile(1, definition(serde_json::json!({}))).unwrap();
    let judge = Judge::new(&programme, zone());
    let mut state = member(&programme);
    judge
        .adjust(&mut state, 40, "goodwill", &id("A1"), at(0))
        .unwrap();
    assert_eq!(state.balance, Points(40));
    let refused = judge.adjust(&mut state, -41, "typo", &id("A2"), at(0));
    assert_eq!(
        refused.unwrap_err(),
        Rejection::AdjustmentBelowZero {
            available: Points(40)
        }
    );
    judge
        .adjust(&mut state, -40, "typo", &id("A3"), at(0))
        .unwrap();
    assert_eq!(state.balance, Points(0));
    assert!(state.is_consistent());
}

#[test]
fn half_refund_keeps_half_and_splits_never_take_more() {
    let programme = Programme::compile(1, definition(serde_json::json!({}))).unwrap();
    let judge = Judge::new(&programme, zone());
    let mut state = member(&programme);
    let (_, mut record) = judge
        .purchase(&mut state, &id("P"), &buy(150_000), at(0))
        .unwrap();
    assert_eq!(record.points_earned, Points(15));
    // Three refunds of 50,000 each take 5 + 5 + 5, never rounding up early.
    let taken: Vec<i64> = ["R1", "R2", "R3"]
        .iter()
        .map(|refund| {
            judge
                .refund(&mut state, &mut record, &id(refund), Money(50_000), at(1))
                .unwrap()
                .points_taken_back
                .0
        })
        .collect();
    assert_eq!(taken, vec![5, 5, 5]);
    assert_eq!(state.balance, Points(0));
    let more = judge.refund(&mut state, &mut record, &id("R4"), Money(1), at(1));
    assert_eq!(
        more.unwrap_err(),
        Rejection::RefundExceedsPurchase {
            refundable: Money(0)
        }
    );
}

/// A member with two lots (120 points expiring first, then 150) who pays 200 points toward a
/// 150,000đ bill: 120 from the first lot, 80 from the second. Points are worth 100đ, so the
/// points pay 20,000đ and the cash part of 130,000đ earns 13 points.
fn paid_with_points() -> (
    Programme,
    MemberState,
    patron_core::event::PurchaseRecord,
    [patron_core::LotId; 2],
) {
    let programme = Programme::compile(
        1,
        definition(serde_json::json!({"point_value": 100, "rules": []})),
    )
    .unwrap();
    let judge = Judge::new(&programme, zone());
    let mut state = member(&programme);
    judge
        .adjust(&mut state, 120, "first", &id("A1"), at(0))
        .unwrap();
    judge
        .adjust(&mut state, 150, "second", &id("A2"), at(10))
        .unwrap();
    let lots: Vec<_> = state.lots.iter().map(|lot| lot.id).collect();
    let purchase = Purchase {
        points_paid: Points(200),
        ..buy(150_000)
    };
    let (outcome, record) = judge
        .purchase(&mut state, &id("P"), &purchase, at(20))
        .unwrap();
    assert_eq!(
        (outcome.points_spent, outcome.points_earned),
        (Points(200), Points(13))
    );
    assert_eq!(record.points_paid(), Points(200));
    assert_eq!(state.balance, Points(83));
    (programme, state, record, [lots[0], lots[1]])
}

fn remaining(state: &MemberState, lot: patron_core::LotId) -> Points {
    state
        .lots
        .iter()
        .find(|candidate| candidate.id == lot)
        .map(|lot| lot.remaining)
        .unwrap_or(Points::ZERO)
}

#[test]
fn refunding_the_whole_bill_paid_partly_with_points_gives_the_points_back_to_their_lots() {
    let (programme, mut state, mut record, [first, second]) = paid_with_points();
    let expiries: Vec<_> = state.lots.iter().map(|lot| lot.expires_at).collect();
    let judge = Judge::new(&programme, zone());
    let outcome = judge
        .refund(&mut state, &mut record, &id("R"), Money(150_000), at(21))
        .unwrap();
    assert_eq!(outcome.points_returned, Points(200));
    assert_eq!(outcome.points_taken_back, Points(13));
    assert_eq!(state.balance, Points(270));
    assert_eq!(remaining(&state, first), Points(120));
    assert_eq!(remaining(&state, second), Points(150));
    let after: Vec<_> = state
        .lots
        .iter()
        .filter(|lot| lot.id == first || lot.id == second)
        .map(|lot| lot.expires_at)
        .collect();
    assert_eq!(after, expiries[..2].to_vec(), "original expiry kept");
    assert_eq!(state.lifetime_spend, Money(0));
    assert!(state.is_consistent());
    let kinds: Vec<_> = outcome
        .transactions
        .iter()
        .map(|transaction| transaction.kind.as_str())
        .collect();
    assert_eq!(kinds, vec!["payment_return", "clawback"]);
    assert!(outcome.transactions.iter().all(|t| t.is_balanced()));
}

#[test]
fn refunding_the_cash_part_gives_back_its_share_of_the_points_paid() {
    let (programme, mut state, mut record, _) = paid_with_points();
    let judge = Judge::new(&programme, zone());
    let outcome = judge
        .refund(&mut state, &mut record, &id("R"), Money(130_000), at(21))
        .unwrap();
    // floor(200 × 130,000 / 150,000) = 173 back; floor(13 × 130,000 / 150,000) = 11 taken.
    assert_eq!(outcome.points_returned, Points(173));
    assert_eq!(outcome.points_taken_back, Points(11));
    assert_eq!(state.balance, Points(83 + 173 - 11));
    // The rest of the bill reverses exactly what is left.
    let rest = judge
        .refund(&mut state, &mut record, &id("R2"), Money(20_000), at(22))
        .unwrap();
    assert_eq!(
        (rest.points_returned, rest.points_taken_back),
        (Points(27), Points(2))
    );
    assert_eq!(state.balance, Points(270));
}

#[test]
fn partial_refunds_of_a_bill_paid_with_points_round_down_on_the_running_total() {
    let (programme, mut state, mut record, [first, second]) = paid_with_points();
    let judge = Judge::new(&programme, zone());
    let mut seen = Vec::new();
    for refund in ["R1", "R2", "R3"] {
        let outcome = judge
            .refund(&mut state, &mut record, &id(refund), Money(50_000), at(21))
            .unwrap();
        seen.push((
            outcome.points_returned.0,
            outcome.points_taken_back.0,
            remaining(&state, first).0,
            remaining(&state, second).0,
        ));
    }
    // Returned 66, 133, 200 in total; taken back 4, 8, 13. The lot spent last fills first.
    assert_eq!(
        seen,
        vec![(66, 4, 0, 136), (67, 4, 53, 150), (67, 5, 120, 150)]
    );
    assert_eq!(state.balance, Points(270));
    assert_eq!(
        judge
            .refund(&mut state, &mut record, &id("R4"), Money(1), at(21))
            .unwrap_err(),
        Rejection::RefundExceedsPurchase {
            refundable: Money(0)
        }
    );
}

#[test]
fn a_void_reverses_what_is_left_and_closes_the_purchase() {
    let (programme, mut state, mut record, _) = paid_with_points();
    let judge = Judge::new(&programme, zone());
    assert_eq!(state.order_count, 1);
    judge
        .refund(&mut state, &mut record, &id("R1"), Money(50_000), at(21))
        .unwrap();
    let outcome = judge
        .void(&mut state, &mut record, &id("V"), at(22))
        .unwrap();
    assert_eq!(
        (outcome.points_returned, outcome.points_taken_back),
        (Points(134), Points(9))
    );
    assert!(record.voided);
    assert_eq!(state.balance, Points(270));
    assert_eq!(state.order_count, 0);
    assert_eq!(state.lifetime_spend, Money(0));
    assert_eq!(
        judge
            .refund(&mut state, &mut record, &id("R2"), Money(1), at(23))
            .unwrap_err(),
        Rejection::PurchaseVoided
    );
    assert_eq!(
        judge
            .void(&mut state, &mut record, &id("V2"), at(23))
            .unwrap_err(),
        Rejection::PurchaseVoided
    );
}

#[test]
fn welcome_points_wait_for_the_return_window() {
    let programme = Programme::compile(1, definition(serde_json::json!({}))).unwrap();
    let judge = Judge::new(&programme, zone());
    let mut state = member(&programme);
    let outcome = judge.engagement(&mut state, &id("S"), "sign_up", at(0));
    assert_eq!(outcome.points_earned, Points(50));
    assert_eq!(state.lots.pending(at(0)), Points(50));
    let spend_at_once = Purchase {
        points_paid: Points(50),
        ..buy(100_000)
    };
    assert_eq!(
        judge
            .purchase(&mut state, &id("P"), &spend_at_once, at(0))
            .unwrap_err(),
        Rejection::InsufficientPoints {
            available: Points(0),
            needed: Points(50),
            field: "points_paid"
        }
    );
    assert_eq!(state.lots.available(at(7)), Points(50));
    // A programme without a return window gives them at once.
    let at_once =
        Programme::compile(1, definition(serde_json::json!({"return_window_days": 0}))).unwrap();
    let judge = Judge::new(&at_once, zone());
    let mut state = member(&at_once);
    judge.engagement(&mut state, &id("S"), "sign_up", at(0));
    assert_eq!(state.lots.available(at(0)), Points(50));
}
