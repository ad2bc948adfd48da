//! The engine: `(programme version, member state, event) -> effects`. Every function here
//! changes only the state it is handed and returns the ledger transactions, allocations and tier
//! changes the store must write in the same database transaction.

use crate::event::{Purchase, PurchaseRecord, RecordedAllocation};
use crate::ledger::{Account, Asset, Transaction, TransactionKind};
use crate::lots::{Allocation, Lot};
use crate::member::{MemberState, BALANCE_MAX};
use crate::programme::{Expiry, Period, Programme, QualificationMetric, BASE_RULE_ID};
use crate::reward::{Reward, Voucher, VoucherStatus};
use crate::rules::{EventFacts, MemberFacts, RuleVariables, RULE_POINTS_MAX};
use crate::tiers::{self, TierChange};
use crate::time::{end_of_month, local_date, month_index, Timestamp};
use crate::{EventId, LotId, Money, Points};
use chrono::{Datelike, Duration, Timelike};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// What the engine needs besides the member: the programme in force and the tenant's zone.
#[derive(Clone, Copy)]
pub struct Judge<'a> {
    pub programme: &'a Programme,
    pub zone: Tz,
}

/// One reason in a member's history: which rule gave how many points, and how.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EarnLine {
    pub rule: String,
    pub name: String,
    pub points: i64,
    pub detail: String,
}

/// The effects of one event.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    pub transactions: Vec<Transaction>,
    pub allocations: Vec<RecordedAllocation>,
    pub tier_change: Option<TierChange>,
    pub lines: Vec<EarnLine>,
    pub points_earned: Points,
    pub points_spent: Points,
    pub points_taken_back: Points,
    /// Points paid toward a bill that a refund or void gave back.
    pub points_returned: Points,
    pub voucher: Option<Voucher>,
}

/// An event the engine refuses, with a stable code and the field at fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("not enough points: {available} available, {needed} needed")]
    InsufficientPoints {
        available: Points,
        needed: Points,
        field: &'static str,
    },
    #[error("points paid are worth more than the bill")]
    PointsExceedBill,
    #[error("refund is more than is left to refund ({refundable})")]
    RefundExceedsPurchase { refundable: Money },
    #[error("the purchase was voided")]
    PurchaseVoided,
    #[error("reward is not offered now")]
    RewardNotOffered,
    #[error("reward is out of stock")]
    RewardOutOfStock,
    #[error("member already holds the most vouchers of this reward allowed ({limit})")]
    RewardLimitReached { limit: i64 },
    #[error("voucher is {}", .0.as_str())]
    VoucherNotUsable(VoucherStatus),
    #[error("voucher has expired")]
    VoucherExpired,
    #[error("voucher cannot be used at this store")]
    VoucherWrongStore,
    #[error("adjustment would take the balance below zero ({available} available)")]
    AdjustmentBelowZero { available: Points },
    #[error("the balance would go past the most a member may hold")]
    BalanceAboveMaximum,
}

impl Rejection {
    /// The stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::InsufficientPoints { .. } => "insufficient_points",
            Rejection::PointsExceedBill => "points_exceed_bill",
            Rejection::RefundExceedsPurchase { .. } => "refund_exceeds_purchase",
            Rejection::PurchaseVoided => "purchase_voided",
            Rejection::RewardNotOffered => "reward_not_offered",
            Rejection::RewardOutOfStock => "reward_out_of_stock",
            Rejection::RewardLimitReached { .. } => "reward_limit_reached",
            Rejection::VoucherNotUsable(_) => "voucher_not_usable",
            Rejection::VoucherExpired => "voucher_expired",
            Rejection::VoucherWrongStore => "voucher_wrong_store",
            Rejection::AdjustmentBelowZero { .. } => "adjustment_below_zero",
            Rejection::BalanceAboveMaximum => "balance_above_maximum",
        }
    }

    /// The request field at fault.
    pub fn field(&self) -> &'static str {
        match self {
            Rejection::InsufficientPoints { field, .. } => field,
            Rejection::PointsExceedBill => "points_paid",
            Rejection::RefundExceedsPurchase { .. } => "amount",
            Rejection::PurchaseVoided => "original_id",
            Rejection::RewardNotOffered
            | Rejection::RewardOutOfStock
            | Rejection::RewardLimitReached { .. } => "reward_id",
            Rejection::VoucherNotUsable(_) | Rejection::VoucherExpired => "code",
            Rejection::VoucherWrongStore => "store",
            Rejection::AdjustmentBelowZero { .. } => "points",
            Rejection::BalanceAboveMaximum => "points",
        }
    }
}

impl<'a> Judge<'a> {
    pub fn new(programme: &'a Programme, zone: Tz) -> Judge<'a> {
        Judge { programme, zone }
    }

    /// When points earned at `at` expire.
    pub fn expiry_of(&self, at: Timestamp) -> Option<Timestamp> {
        match self.programme.definition.expiry {
            Expiry::Never => None,
            Expiry::Days { days } => Some(at + Duration::days(days as i64)),
            Expiry::EndOfMonth { months } => Some(end_of_month(at, self.zone, months)),
        }
    }

    fn new_lot(&self, at: Timestamp, matures_at: Timestamp) -> Lot {
        Lot {
            id: LotId::new(),
            earned: Points::ZERO,
            remaining: Points::ZERO,
            matures_at,
            expires_at: self.expiry_of(at),
            created_at: at,
        }
    }

    fn member_facts(&self, member: &MemberState) -> MemberFacts {
        MemberFacts {
            tier: member.tier.clone(),
            tags: member.profile.tags.clone(),
            city: member.profile.city.clone().unwrap_or_default(),
            gender: member.profile.gender.clone().unwrap_or_default(),
            birthday_month: member
                .profile
                .birthday
                .map(|day| day.month() as i64)
                .unwrap_or(0),
            order_count: member.order_count,
            lifetime_spend: member.lifetime_spend.0,
        }
    }

    fn period_key(&self, period: Period, at: Timestamp) -> String {
        let date = local_date(at, self.zone);
        match period {
            Period::Ever => "ever".to_owned(),
            Period::Year => format!("{}", date.year()),
            Period::Month => format!("{}-{:02}", date.year(), date.month()),
            Period::Day => date.to_string(),
        }
    }

    /// Evaluates the base rate and every rule, applies the caps, and records the day's total.
    fn earn_lines(
        &self,
        member: &mut MemberState,
        facts: &EventFacts,
        rate_tier: &str,
        at: Timestamp,
    ) -> (Vec<EarnLine>, Points) {
        let definition = &self.programme.definition;
        let (tier_name, multiplier) = match self.programme.tier(rate_tier) {
            Some((_, tier)) => (tier.name.as_str(), tier.multiplier_percent),
            None => ("", 100),
        };
        let mut lines = Vec::new();
        if facts.kind == "purchase" && definition.amount_per_point > 0 {
            // In i128: an eligible amount of 10^15 at 1 point per đồng times ×100 is 10^19.
            let base = i128::from(facts.eligible_amount) / i128::from(definition.amount_per_point);
            let points = i64::try_from(base * i128::from(multiplier) / 100).unwrap_or(i64::MAX);
            if points > 0 {
                let mut detail = format!(
                    "1 point per {}đ of {}đ",
                    Money(definition.amount_per_point),
                    Money(facts.eligible_amount)
                );
                if multiplier != 100 {
                    detail.push_str(&format!(" × {tier_name} {multiplier}%"));
                }
                lines.push(EarnLine {
                    rule: BASE_RULE_ID.to_owned(),
                    name: "Base rate".to_owned(),
                    points,
                    detail,
                });
            }
        }
        if !self.programme.rules.is_empty() {
            let variables = RuleVariables::new(facts, &self.member_facts(member));
            for rule in &self.programme.rules {
                let definition = &rule.definition;
                let period_key = definition
                    .once_per
                    .map(|period| self.period_key(period, at));
                if let Some(key) = &period_key {
                    if member.rule_hits.get(&definition.id) == Some(key) {
                        continue;
                    }
                }
                match rule.evaluate(&variables) {
                    Ok(Some(given)) if given > 0 => {
                        // At most RULE_POINTS_MAX × 10,000% = 10^11: no product or sum of the
                        // lines can overflow.
                        let points = given.min(RULE_POINTS_MAX);
                        let capped = if points < given {
                            format!(" (the rule gave {given}, capped at {RULE_POINTS_MAX})")
                        } else {
                            String::new()
                        };
                        let (points, detail) = if definition.tier_multiplier && multiplier != 100 {
                            (
                                points * multiplier / 100,
                                format!("{points} × {tier_name} {multiplier}%{capped}"),
                            )
                        } else {
                            (points, format!("{points}{capped}"))
                        };
                        if let Some(key) = period_key {
                            member.rule_hits.insert(definition.id.clone(), key);
                        }
                        lines.push(EarnLine {
                            rule: definition.id.clone(),
                            name: definition.name.clone(),
                            points,
                            detail,
                        });
                    }
                    Ok(_) => {}
                    Err(message) => lines.push(EarnLine {
                        rule: definition.id.clone(),
                        name: definition.name.clone(),
                        points: 0,
                        detail: format!("skipped: {message}"),
                    }),
                }
            }
        }
        let mut total: i64 = lines
            .iter()
            .map(|line| line.points)
            .fold(0, i64::saturating_add);
        if let Some(cap) = definition.cap_per_event {
            if total > cap {
                lines.push(EarnLine {
                    rule: "cap_per_event".to_owned(),
                    name: "Cap per event".to_owned(),
                    points: cap - total,
                    detail: format!("at most {cap} points per event"),
                });
                total = cap;
            }
        }
        let today = local_date(at, self.zone);
        if member.day != Some(today) {
            member.day = Some(today);
            member.day_points = Points::ZERO;
        }
        if let Some(cap) = definition.cap_per_day {
            let room = (cap - member.day_points.0).max(0);
            if total > room {
                lines.push(EarnLine {
                    rule: "cap_per_day".to_owned(),
                    name: "Cap per day".to_owned(),
                    points: room - total,
                    detail: format!("at most {cap} points per day"),
                });
                total = room;
            }
        }
        let room = (BALANCE_MAX - member.balance.min(BALANCE_MAX)).0;
        if total > room {
            lines.push(EarnLine {
                rule: "balance_max".to_owned(),
                name: "Most points a member may hold".to_owned(),
                points: room - total,
                detail: format!("a balance holds at most {} points", BALANCE_MAX.0),
            });
            total = room;
        }
        member.day_points = member.day_points.saturating_add(Points(total));
        (lines, Points(total))
    }

    /// Books an earning: a lot (debt repaid first) and an `issued → member` transaction.
    fn book_earning(
        &self,
        member: &mut MemberState,
        outcome: &mut Outcome,
        points: Points,
        at: Timestamp,
        matures_at: Timestamp,
        reason: serde_json::Value,
    ) -> Option<LotId> {
        if !points.is_positive() {
            return None;
        }
        let lot_id = member.lots.credit(points, self.new_lot(at, matures_at));
        outcome.transactions.push(Transaction::transfer(
            member.id,
            TransactionKind::Earn,
            Account::Issued,
            Account::Member(member.id),
            points,
            reason,
        ));
        member.balance += points;
        outcome.points_earned += points;
        lot_id
    }

    fn earn_reason(&self, event_id: &EventId, lines: &[EarnLine]) -> serde_json::Value {
        json!({
            "event_id": event_id.as_str(),
            "programme_version": self.programme.version,
            "lines": lines,
        })
    }

    fn event_facts(&self, kind: &str, at: Timestamp) -> EventFacts {
        let local = at.with_timezone(&self.zone);
        EventFacts {
            kind: kind.to_owned(),
            local_hour: local.hour() as i64,
            local_weekday: local.weekday().number_from_monday() as i64,
            ..EventFacts::default()
        }
    }

    /// A purchase: pay with points if asked, earn on the eligible amount, count toward tiers,
    /// upgrade at once if a threshold is reached.
    pub fn purchase(
        &self,
        member: &mut MemberState,
        event_id: &EventId,
        purchase: &Purchase,
        at: Timestamp,
    ) -> Result<(Outcome, PurchaseRecord), Rejection> {
        let points_value = self.programme.value_of(purchase.points_paid);
        if points_value > purchase.amount {
            return Err(Rejection::PointsExceedBill);
        }
        let mut outcome = Outcome::default();
        let mut payment = Vec::new();
        if purchase.points_paid.is_positive() {
            let allocations = member
                .lots
                .spend(purchase.points_paid, at)
                .map_err(|short| Rejection::InsufficientPoints {
                    available: short.available,
                    needed: purchase.points_paid,
                    field: "points_paid",
                })?;
            let transaction = Transaction::transfer(
                member.id,
                TransactionKind::Payment,
                Account::Member(member.id),
                Account::Payments,
                purchase.points_paid,
                json!({"event_id": event_id.as_str(), "paid": points_value.0}),
            );
            record_allocations(&mut outcome, transaction.id, &allocations);
            outcome.transactions.push(transaction);
            member.balance -= purchase.points_paid;
            outcome.points_spent = purchase.points_paid;
            payment = allocations;
        }
        let eligible = purchase.amount - points_value;
        let mut facts = self.event_facts("purchase", at);
        facts.amount = purchase.amount.0;
        facts.eligible_amount = eligible.0;
        facts.points_paid = purchase.points_paid.0;
        facts.store = purchase.store.clone().unwrap_or_default();
        for item in &purchase.items {
            facts.item_count = facts.item_count.saturating_add(item.quantity);
            match facts
                .categories
                .iter_mut()
                .find(|(category, _, _)| *category == item.category)
            {
                Some((_, quantity, amount)) => {
                    *quantity = quantity.saturating_add(item.quantity);
                    *amount = amount.saturating_add(item.amount.0);
                }
                None => {
                    facts
                        .categories
                        .push((item.category.clone(), item.quantity, item.amount.0))
                }
            }
        }
        let rate_tier = self.rate_tier(member, eligible, at);
        let (lines, points) = self.earn_lines(member, &facts, &rate_tier, at);
        let matures_at = at + Duration::days(self.programme.definition.return_window_days as i64);
        let reason = self.earn_reason(event_id, &lines);
        let lot_id = self.book_earning(member, &mut outcome, points, at, matures_at, reason);
        let month = month_index(at, self.zone);
        member.count_toward_tiers(month, eligible, points);
        member.order_count += 1;
        outcome.tier_change = tiers::upgrade(self.programme, member, at, self.zone);
        outcome.lines = lines;
        debug_assert!(member.is_consistent());
        let record = PurchaseRecord {
            event_id: event_id.clone(),
            member_id: member.id,
            amount: purchase.amount,
            eligible_amount: eligible,
            points_earned: points,
            lot_id,
            refunded_amount: Money::ZERO,
            points_taken_back: Points::ZERO,
            payment,
            points_returned: Points::ZERO,
            voided: false,
            month,
            occurred_at: at,
        };
        Ok((outcome, record))
    }

    /// The tier whose rate a purchase earns at: the member's own, or, when the programme says
    /// the crossing purchase earns the new rate, the tier this purchase lifts them to.
    fn rate_tier(&self, member: &MemberState, eligible: Money, at: Timestamp) -> String {
        let qualification = &self.programme.definition.qualification;
        if !qualification.crossing_purchase_earns_new_rate
            || qualification.metric != QualificationMetric::Spend
        {
            return member.tier.clone();
        }
        let value = tiers::qualifying_value(self.programme, member, at, self.zone) + eligible.0;
        let reached = tiers::tier_for_value(self.programme, value);
        let current = self
            .programme
            .tier(&member.tier)
            .map(|(index, _)| index)
            .unwrap_or(0);
        self.programme.definition.tiers[reached.max(current)]
            .code
            .clone()
    }

    /// A full or partial refund of `record`. `amount` is measured against the bill total
    /// (the part paid with points included), so refunding the whole bill refunds everything.
    /// A refund of `amount` reverses that share of the purchase, each part rounded down on the
    /// running total of what has been refunded (`refunded`, after this refund):
    ///
    /// - points paid given back: `floor(points_paid × refunded / amount)`,
    /// - points earned taken back: `floor(points_earned × refunded / amount)`,
    /// - spend counted toward tiers: `floor(eligible_amount × refunded / amount)`,
    ///
    /// less what earlier refunds already reversed. Partial refunds therefore never reverse more
    /// than one refund of their sum, and refunding the rest of the bill reverses exactly
    /// everything. Points paid go back to the lots they came from, with their original expiry
    /// (the lot spent last is refilled first); then the points earned are taken back.
    pub fn refund(
        &self,
        member: &mut MemberState,
        record: &mut PurchaseRecord,
        refund_event: &EventId,
        amount: Money,
        at: Timestamp,
    ) -> Result<Outcome, Rejection> {
        if record.voided {
            return Err(Rejection::PurchaseVoided);
        }
        let refundable = record.refundable();
        if amount > refundable || !amount.is_positive() {
            return Err(Rejection::RefundExceedsPurchase { refundable });
        }
        Ok(self.reverse(member, record, refund_event, amount, false, at))
    }

    /// A manager's void: reverses all that is left of the purchase, as a refund of the rest of
    /// the bill would, and marks it voided so nothing more can be refunded. A purchase already
    /// refunded in full is only marked.
    pub fn void(
        &self,
        member: &mut MemberState,
        record: &mut PurchaseRecord,
        void_event: &EventId,
        at: Timestamp,
    ) -> Result<Outcome, Rejection> {
        if record.voided {
            return Err(Rejection::PurchaseVoided);
        }
        let rest = record.refundable();
        let outcome = if rest.is_positive() {
            self.reverse(member, record, void_event, rest, true, at)
        } else {
            Outcome::default()
        };
        record.voided = true;
        member.order_count = member.order_count.saturating_sub(1).max(0);
        Ok(outcome)
    }

    /// Reverses `amount` (already checked against what is left) of `record`; `voiding` says so
    /// in the reasons.
    fn reverse(
        &self,
        member: &mut MemberState,
        record: &mut PurchaseRecord,
        event_id: &EventId,
        amount: Money,
        voiding: bool,
        at: Timestamp,
    ) -> Outcome {
        let bill = record.amount.0.max(1);
        let before = record.refunded_amount;
        let after = Money(
            before
                .0
                .checked_add(amount.0)
                .expect("refunded ≤ the bill, checked by the caller"),
        );
        record.refunded_amount = after;
        let mut outcome = Outcome::default();
        let returned_total = record.points_paid().scale(after.0, bill);
        if returned_total > record.points_returned {
            let give = returned_total - record.points_returned;
            let lots = share_of_payment(&record.payment, record.points_returned, returned_total);
            record.points_returned = returned_total;
            let reason = json!({
                "event_id": event_id.as_str(),
                "original_event_id": record.event_id.as_str(),
                "void": voiding,
                "detail": format!("{} of {} points paid toward {}", give, record.points_paid(), record.event_id),
            });
            self.give_back_payment(member, &mut outcome, give, &lots, reason, at);
        }
        let taken_total = record.points_earned.scale(after.0, bill);
        let take = if taken_total > record.points_taken_back {
            taken_total - record.points_taken_back
        } else {
            Points::ZERO
        };
        record.points_taken_back = record.points_taken_back.max(taken_total);
        if take.is_positive() {
            let allocations = member
                .lots
                .claw_back(take, record.lot_id, at, self.new_lot(at, at));
            let transaction = Transaction::transfer(
                member.id,
                TransactionKind::Clawback,
                Account::Member(member.id),
                Account::Clawback,
                take,
                json!({
                    "event_id": event_id.as_str(),
                    "original_event_id": record.event_id.as_str(),
                    "refunded": amount.0,
                    "void": voiding,
                    "detail": format!("{} of {} points earned by {}", take, record.points_earned, record.event_id),
                }),
            );
            record_allocations(&mut outcome, transaction.id, &allocations);
            outcome.transactions.push(transaction);
            member.balance -= take;
            outcome.points_taken_back = take;
        }
        let eligible = record.eligible_amount;
        let spend_back = eligible.scale(after.0, bill) - eligible.scale(before.0, bill);
        member.count_toward_tiers(record.month, -spend_back, -take);
        debug_assert!(member.is_consistent());
        outcome
    }

    /// Books `give` points paid back to the member: into the lots they were paid from
    /// (`lots`), or, should one of those lots no longer be stored, into a new lot available at
    /// once.
    fn give_back_payment(
        &self,
        member: &mut MemberState,
        outcome: &mut Outcome,
        give: Points,
        lots: &[Allocation],
        reason: serde_json::Value,
        at: Timestamp,
    ) {
        let allocations = match member.lots.restore(lots) {
            Ok(()) => lots.to_vec(),
            Err(_) => match member.lots.credit(give, self.new_lot(at, at)) {
                Some(lot_id) => vec![Allocation {
                    lot_id,
                    points: give,
                }],
                None => Vec::new(),
            },
        };
        let transaction = Transaction::transfer(
            member.id,
            TransactionKind::PaymentReturn,
            Account::Payments,
            Account::Member(member.id),
            give,
            reason,
        );
        record_allocations(outcome, transaction.id, &allocations);
        outcome.transactions.push(transaction);
        member.balance += give;
        outcome.points_returned = give;
    }

    /// An engagement event (birthday, review, survey, referral, custom): earns what the rules
    /// give, available at once. Sign-up (welcome) points are pending for the programme's return
    /// window like a purchase's, so a member enrolled at the till cannot pay with them on the
    /// same bill; a programme with `return_window_days = 0` gives them at once.
    pub fn engagement(
        &self,
        member: &mut MemberState,
        event_id: &EventId,
        kind: &str,
        at: Timestamp,
    ) -> Outcome {
        let facts = self.event_facts(kind, at);
        let tier = member.tier.clone();
        let (lines, points) = self.earn_lines(member, &facts, &tier, at);
        let mut outcome = Outcome::default();
        let reason = self.earn_reason(event_id, &lines);
        let matures_at = if kind == "sign_up" {
            at + Duration::days(self.programme.definition.return_window_days as i64)
        } else {
            at
        };
        self.book_earning(member, &mut outcome, points, at, matures_at, reason);
        member.count_toward_tiers(month_index(at, self.zone), Money::ZERO, points);
        outcome.tier_change = tiers::upgrade(self.programme, member, at, self.zone);
        outcome.lines = lines;
        debug_assert!(member.is_consistent());
        outcome
    }

    /// Takes a reward: spends its cost from mature lots expiring first and issues a voucher
    /// with `code` (made by the caller from a secure random source).
    pub fn redeem(
        &self,
        member: &mut MemberState,
        reward: &mut Reward,
        held_by_member: i64,
        code: String,
        event_id: &EventId,
        at: Timestamp,
    ) -> Result<Outcome, Rejection> {
        if !reward.is_offered(at) {
            return Err(Rejection::RewardNotOffered);
        }
        if reward.stock.is_some_and(|stock| stock <= 0) {
            return Err(Rejection::RewardOutOfStock);
        }
        if let Some(limit) = reward.per_member_limit {
            if held_by_member >= limit {
                return Err(Rejection::RewardLimitReached { limit });
            }
        }
        let mut outcome = Outcome::default();
        let allocations = if reward.cost.is_positive() {
            member
                .lots
                .spend(reward.cost, at)
                .map_err(|short| Rejection::InsufficientPoints {
                    available: short.available,
                    needed: reward.cost,
                    field: "reward_id",
                })?
        } else {
            Vec::new()
        };
        let transaction_id = if reward.cost.is_positive() {
            let transaction = Transaction::transfer(
                member.id,
                TransactionKind::Redemption,
                Account::Member(member.id),
                Account::VouchersOutstanding,
                reward.cost,
                json!({"event_id": event_id.as_str(), "reward": reward.name, "voucher": code}),
            );
            let id = transaction.id;
            record_allocations(&mut outcome, id, &allocations);
            outcome.transactions.push(transaction);
            id
        } else {
            crate::TransactionId::new()
        };
        member.balance -= reward.cost;
        outcome.points_spent = reward.cost;
        if let Some(stock) = reward.stock.as_mut() {
            *stock -= 1;
        }
        outcome.voucher = Some(Voucher {
            code,
            member_id: member.id,
            reward_id: reward.id,
            cost: reward.cost,
            status: VoucherStatus::Issued,
            redemption_transaction: transaction_id,
            allocations,
            issued_at: at,
            expires_at: at + Duration::days(reward.voucher_valid_days.max(1) as i64),
            used_at: None,
            used_store: None,
        });
        debug_assert!(member.is_consistent());
        Ok(outcome)
    }

    /// Uses a voucher at a store: its points move from outstanding to redeemed.
    pub fn use_voucher(
        &self,
        voucher: &mut Voucher,
        reward: &Reward,
        store: Option<&str>,
        event_id: &EventId,
        at: Timestamp,
    ) -> Result<Outcome, Rejection> {
        check_issued(voucher, at)?;
        if !reward.is_usable_at(store) {
            return Err(Rejection::VoucherWrongStore);
        }
        voucher.status = VoucherStatus::Used;
        voucher.used_at = Some(at);
        voucher.used_store = store.map(str::to_owned);
        let mut outcome = Outcome::default();
        if voucher.cost.is_positive() {
            outcome.transactions.push(Transaction::transfer(
                voucher.member_id,
                TransactionKind::VoucherUse,
                Account::VouchersOutstanding,
                Account::Redeemed,
                voucher.cost,
                json!({"event_id": event_id.as_str(), "reward": reward.name, "voucher": voucher.code, "store": store}),
            ));
        }
        Ok(outcome)
    }

    /// Cancels an unused voucher: its points go back to the lots they came from, with their
    /// original expiry, and the reward's stock grows by one.
    pub fn cancel_voucher(
        &self,
        member: &mut MemberState,
        voucher: &mut Voucher,
        reward: &mut Reward,
        event_id: &EventId,
        at: Timestamp,
    ) -> Result<Outcome, Rejection> {
        check_issued(voucher, at)?;
        member
            .lots
            .restore(&voucher.allocations)
            .unwrap_or_else(|lot| {
                panic!("store did not load lot {lot} of voucher {}", voucher.code)
            });
        voucher.status = VoucherStatus::Cancelled;
        let mut outcome = Outcome::default();
        if voucher.cost.is_positive() {
            let transaction = Transaction::transfer(
                member.id,
                TransactionKind::VoucherCancel,
                Account::VouchersOutstanding,
                Account::Member(member.id),
                voucher.cost,
                json!({"event_id": event_id.as_str(), "reward": reward.name, "voucher": voucher.code}),
            );
            record_allocations(&mut outcome, transaction.id, &voucher.allocations);
            outcome.transactions.push(transaction);
        }
        member.balance += voucher.cost;
        if let Some(stock) = reward.stock.as_mut() {
            *stock += 1;
        }
        debug_assert!(member.is_consistent());
        Ok(outcome)
    }

    /// A manual adjustment by staff: positive adds a lot (mature at once, the programme's
    /// expiry), negative spends available points and never goes below zero.
    pub fn adjust(
        &self,
        member: &mut MemberState,
        points: i64,
        reason: &str,
        event_id: &EventId,
        at: Timestamp,
    ) -> Result<Outcome, Rejection> {
        let mut outcome = Outcome::default();
        let note = json!({"event_id": event_id.as_str(), "detail": reason});
        if points > 0 {
            member.lots.credit(Points(points), self.new_lot(at, at));
            outcome.transactions.push(Transaction::transfer(
                member.id,
                TransactionKind::Adjustment,
                Account::Adjustments,
                Account::Member(member.id),
                Points(points),
                note,
            ));
            member.balance += Points(points);
            outcome.points_earned = Points(points);
        } else if points < 0 {
            let allocations = member.lots.spend(Points(-points), at).map_err(|short| {
                Rejection::AdjustmentBelowZero {
                    available: short.available,
                }
            })?;
            let transaction = Transaction::transfer(
                member.id,
                TransactionKind::Adjustment,
                Account::Member(member.id),
                Account::Adjustments,
                Points(-points),
                note,
            );
            record_allocations(&mut outcome, transaction.id, &allocations);
            outcome.transactions.push(transaction);
            member.balance -= Points(-points);
            outcome.points_spent = Points(-points);
        }
        debug_assert!(member.is_consistent());
        Ok(outcome)
    }
}

impl Judge<'_> {
    /// A manual change of any asset: points as [`Judge::adjust`]; money (store credit topped up
    /// or taken back) and stamps in a holding of their own, a credit making a lot that never
    /// expires, a debit taking the lots that expire first. Never below zero.
    pub fn adjust_asset(
        &self,
        member: &mut MemberState,
        asset: &Asset,
        amount: i64,
        reason: &str,
        event_id: &EventId,
        at: Timestamp,
    ) -> Result<Outcome, Rejection> {
        if *asset == Asset::Points {
            return self.adjust(member, amount, reason, event_id, at);
        }
        let mut outcome = Outcome::default();
        let note = json!({"event_id": event_id.as_str(), "detail": reason, "asset": asset.name()});
        let holding = member.holdings.entry(asset.clone()).or_default();
        if amount > 0 {
            let balance = holding
                .balance
                .checked_add(amount)
                .filter(|balance| *balance <= BALANCE_MAX.0)
                .ok_or(Rejection::BalanceAboveMaximum)?;
            holding.lots.credit(
                Points(amount),
                Lot {
                    expires_at: None,
                    ..self.new_lot(at, at)
                },
            );
            holding.balance = balance;
            outcome.transactions.push(Transaction::transfer_of(
                member.id,
                TransactionKind::Adjustment,
                asset.clone(),
                Account::Adjustments,
                Account::Member(member.id),
                amount,
                note,
            ));
        } else if amount < 0 {
            let taken = amount.checked_neg().ok_or(Rejection::AdjustmentBelowZero {
                available: Points(holding.balance),
            })?;
            let allocations = holding.lots.spend(Points(taken), at).map_err(|short| {
                Rejection::AdjustmentBelowZero {
                    available: short.available,
                }
            })?;
            holding.balance -= taken;
            let transaction = Transaction::transfer_of(
                member.id,
                TransactionKind::Adjustment,
                asset.clone(),
                Account::Member(member.id),
                Account::Adjustments,
                taken,
                note,
            );
            record_allocations(&mut outcome, transaction.id, &allocations);
            outcome.transactions.push(transaction);
        }
        holding.changed = true;
        debug_assert!(member.is_consistent());
        Ok(outcome)
    }
}

fn check_issued(voucher: &Voucher, at: Timestamp) -> Result<(), Rejection> {
    if voucher.status != VoucherStatus::Issued {
        return Err(Rejection::VoucherNotUsable(voucher.status));
    }
    if voucher.expires_at <= at {
        return Err(Rejection::VoucherExpired);
    }
    Ok(())
}

fn record_allocations(
    outcome: &mut Outcome,
    transaction_id: crate::TransactionId,
    allocations: &[Allocation],
) {
    outcome
        .allocations
        .extend(allocations.iter().map(|&allocation| RecordedAllocation {
            transaction_id,
            allocation,
        }));
}

/// The lots that points paid given back from `from` up to `to` (running totals) go to: the
/// payment's allocations are refilled from the last one taken backward, so the lot spent last
/// (which expires last) is refilled first, and successive partial refunds continue where the
/// previous one stopped.
pub fn share_of_payment(payment: &[Allocation], from: Points, to: Points) -> Vec<Allocation> {
    let mut start = Points::ZERO;
    let mut shares = Vec::new();
    for allocation in payment.iter().rev() {
        let end = start + allocation.points;
        let low = start.max(from);
        let high = end.min(to);
        if high > low {
            shares.push(Allocation {
                lot_id: allocation.lot_id,
                points: high - low,
            });
        }
        start = end;
    }
    shares
}

/// The expiry job for one member: empties expired lots and books them as breakage.
pub fn expire_lots(member: &mut MemberState, now: Timestamp) -> Option<Transaction> {
    let expired = member.lots.expire(now);
    let total: Points = expired.iter().map(|allocation| allocation.points).sum();
    if !total.is_positive() {
        return None;
    }
    member.balance -= total;
    debug_assert!(member.is_consistent());
    Some(Transaction::transfer(
        member.id,
        TransactionKind::Expiry,
        Account::Member(member.id),
        Account::Expired,
        total,
        json!({"detail": format!("{total} points expired"), "lots": expired.len()}),
    ))
}

/// The voucher expiry job: an issued voucher past its date expires; its points are breakage.
pub fn expire_voucher(voucher: &mut Voucher, now: Timestamp) -> Option<Transaction> {
    if voucher.status != VoucherStatus::Issued || voucher.expires_at > now {
        return None;
    }
    voucher.status = VoucherStatus::Expired;
    if !voucher.cost.is_positive() {
        return None;
    }
    Some(Transaction::transfer(
        voucher.member_id,
        TransactionKind::VoucherExpiry,
        Account::VouchersOutstanding,
        Account::VoucherBreakage,
        voucher.cost,
        json!({"voucher": voucher.code}),
    ))
}
