//! Tiers: qualification over a window, upgrade at once, gentle downgrade at review, and what a
//! member needs to reach or keep a tier.
//!
//! Downgrade rules: at a review, a member whose qualifying value is below their tier's threshold
//! starts a grace period (`tier_below_since`). A later review after `grace_days` lowers the tier
//! by exactly one level and starts a new grace period if they are still below. A manager's hold
//! (`tier_held_until`) stops downgrades until it ends. Qualifying again clears the grace period.

use crate::member::MemberState;
use crate::programme::{Programme, QualificationMetric, QualificationWindow};
use crate::time::{month_index, year_of_month_index, Timestamp};
use chrono_tz::Tz;
use serde::Serialize;

/// Why a tier changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TierChangeReason {
    Upgrade,
    Downgrade,
    Manual,
}

impl TierChangeReason {
    pub fn as_str(self) -> &'static str {
        match self {
            TierChangeReason::Upgrade => "upgrade",
            TierChangeReason::Downgrade => "downgrade",
            TierChangeReason::Manual => "manual",
        }
    }
}

/// A change of tier, kept in the member's tier history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TierChange {
    pub from: String,
    pub to: String,
    pub reason: TierChangeReason,
    pub qualifying_value: i64,
}

/// The qualifying value (spend or points per the programme) in the window that ends at `at`,
/// summed without overflow (held at `i64::MAX`).
pub fn qualifying_value(
    programme: &Programme,
    member: &MemberState,
    at: Timestamp,
    zone: Tz,
) -> i64 {
    let qualification = &programme.definition.qualification;
    let value_of = |totals: &crate::member::PeriodTotals| match qualification.metric {
        QualificationMetric::Spend => totals.spend.0,
        QualificationMetric::Points => totals.points.0,
    };
    let current = month_index(at, zone);
    match qualification.window {
        QualificationWindow::Lifetime => match qualification.metric {
            QualificationMetric::Spend => member.lifetime_spend.0,
            QualificationMetric::Points => member.lifetime_points.0,
        },
        QualificationWindow::Rolling12Months => member
            .periods
            .range(current - 11..=current)
            .map(|(_, totals)| value_of(totals))
            .fold(0, i64::saturating_add),
        QualificationWindow::CalendarYear => {
            let year = year_of_month_index(current);
            let first = (year - 1970) * 12;
            member
                .periods
                .range(first..=current)
                .map(|(_, totals)| value_of(totals))
                .fold(0, i64::saturating_add)
        }
    }
}

/// The position of the highest tier whose threshold `value` reaches (0 when none).
pub fn tier_for_value(programme: &Programme, value: i64) -> usize {
    programme
        .definition
        .tiers
        .iter()
        .rposition(|tier| value >= tier.threshold)
        .unwrap_or(0)
}

fn position(programme: &Programme, code: &str) -> usize {
    programme.tier(code).map(|(index, _)| index).unwrap_or(0)
}

/// Raises the member's tier at once when their qualifying value reaches a higher threshold.
pub fn upgrade(
    programme: &Programme,
    member: &mut MemberState,
    at: Timestamp,
    zone: Tz,
) -> Option<TierChange> {
    if programme.definition.tiers.is_empty() {
        return None;
    }
    let value = qualifying_value(programme, member, at, zone);
    let target = tier_for_value(programme, value);
    let current = position(programme, &member.tier);
    if target <= current {
        return None;
    }
    let to = programme.definition.tiers[target].code.clone();
    let change = TierChange {
        from: std::mem::replace(&mut member.tier, to.clone()),
        to,
        reason: TierChangeReason::Upgrade,
        qualifying_value: value,
    };
    member.tier_since = at;
    member.tier_below_since = None;
    Some(change)
}

/// Where the programme's tier rules settle the member at `now`, as a position in its tiers:
/// the tier their qualifying value reaches when that is at or above the tier held (an upgrade
/// is immediate); the tier held while a manager's hold lasts; otherwise the tier the value
/// reaches, where reviews take them once grace periods have run, a level at a time. A tier the
/// programme does not have is below every tier. `None` without tiers.
pub fn settled_position(
    programme: &Programme,
    member: &MemberState,
    now: Timestamp,
    zone: Tz,
) -> Option<usize> {
    if programme.definition.tiers.is_empty() {
        return None;
    }
    let reached = tier_for_value(programme, qualifying_value(programme, member, now, zone));
    let on_hold = matches!(member.tier_held_until, Some(until) if until > now);
    match programme.tier(&member.tier) {
        Some((held, _)) if reached < held && on_hold => Some(held),
        _ => Some(reached),
    }
}

/// The first month (index) a qualifying value at `now` reads from the member's monthly totals;
/// `None` when it reads the lifetime counters instead.
pub fn first_qualifying_month(programme: &Programme, now: Timestamp, zone: Tz) -> Option<i32> {
    let current = month_index(now, zone);
    match programme.definition.qualification.window {
        QualificationWindow::Lifetime => None,
        QualificationWindow::Rolling12Months => Some(current - 11),
        QualificationWindow::CalendarYear => Some((year_of_month_index(current) - 1970) * 12),
    }
}

/// Two members of one person made one: the survivor's state with the source's spend, points,
/// orders and monthly totals added, holding the higher of the two tiers (a tier the programme
/// does not have counts lowest), raised at once when the combined qualifying value reaches a
/// higher one. Balances and lots are the ledger's to move, not this.
pub fn merged(
    programme: Option<&Programme>,
    survivor: &MemberState,
    source: &MemberState,
    now: Timestamp,
    zone: Tz,
) -> MemberState {
    let mut merged = survivor.clone();
    merged.lifetime_spend = survivor
        .lifetime_spend
        .saturating_add(source.lifetime_spend);
    merged.lifetime_points = survivor
        .lifetime_points
        .saturating_add(source.lifetime_points);
    merged.order_count = survivor.order_count.saturating_add(source.order_count);
    for (month, totals) in &source.periods {
        let into = merged.periods.entry(*month).or_default();
        into.spend = into.spend.saturating_add(totals.spend);
        into.points = into.points.saturating_add(totals.points);
        merged.periods_changed.insert(*month);
    }
    let Some(programme) = programme else {
        return merged;
    };
    let rank = |code: &str| programme.tier(code).map(|(index, _)| index);
    if rank(&source.tier) > rank(&survivor.tier) {
        merged.tier.clone_from(&source.tier);
        merged.tier_since = now;
        merged.tier_below_since = None;
    }
    upgrade(programme, &mut merged, now, zone);
    merged
}

/// The periodic review: upgrade if due, or start / honour the grace period, or drop one level.
pub fn review(
    programme: &Programme,
    member: &mut MemberState,
    now: Timestamp,
    zone: Tz,
) -> Option<TierChange> {
    if programme.definition.tiers.is_empty() {
        return None;
    }
    if let Some(change) = upgrade(programme, member, now, zone) {
        return Some(change);
    }
    let value = qualifying_value(programme, member, now, zone);
    let current = position(programme, &member.tier);
    if tier_for_value(programme, value) >= current {
        member.tier_below_since = None;
        return None;
    }
    if matches!(member.tier_held_until, Some(until) if until > now) {
        return None;
    }
    let below_since = match member.tier_below_since {
        None => {
            member.tier_below_since = Some(now);
            return None;
        }
        Some(since) => since,
    };
    let grace = chrono::Duration::days(programme.definition.qualification.grace_days as i64);
    if now - below_since < grace {
        return None;
    }
    let to = programme.definition.tiers[current - 1].code.clone();
    let change = TierChange {
        from: std::mem::replace(&mut member.tier, to.clone()),
        to,
        reason: TierChangeReason::Downgrade,
        qualifying_value: value,
    };
    member.tier_since = now;
    member.tier_below_since = if tier_for_value(programme, value) < current - 1 {
        Some(now)
    } else {
        None
    };
    Some(change)
}

/// What a member needs: "spend X more to reach Y", "spend X more to keep Y".
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Progress {
    pub tier: String,
    pub tier_name: String,
    pub metric: QualificationMetric,
    pub qualifying_value: i64,
    /// The next tier up and how much more is needed to reach it.
    pub next_tier: Option<String>,
    pub next_tier_name: Option<String>,
    pub to_next_tier: Option<i64>,
    /// How much more is needed to keep the current tier at the next review (0 when safe).
    pub to_keep_tier: i64,
    /// When the grace period ends, if the member is in one.
    pub grace_ends_at: Option<Timestamp>,
}

/// The member's standing and what they need next.
pub fn progress(programme: &Programme, member: &MemberState, now: Timestamp, zone: Tz) -> Progress {
    let value = qualifying_value(programme, member, now, zone);
    let tiers = &programme.definition.tiers;
    let current = position(programme, &member.tier);
    let next = tiers.get(current + 1);
    let threshold = tiers.get(current).map(|tier| tier.threshold).unwrap_or(0);
    Progress {
        tier: member.tier.clone(),
        tier_name: tiers
            .get(current)
            .map(|tier| tier.name.clone())
            .unwrap_or_default(),
        metric: programme.definition.qualification.metric,
        qualifying_value: value,
        next_tier: next.map(|tier| tier.code.clone()),
        next_tier_name: next.map(|tier| tier.name.clone()),
        to_next_tier: next.map(|tier| (tier.threshold - value).max(0)),
        to_keep_tier: (threshold - value).max(0),
        grace_ends_at: member.tier_below_since.map(|since| {
            since + chrono::Duration::days(programme.definition.qualification.grace_days as i64)
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::programme::tests::cafe;
    use crate::{MemberId, Money, Points};
    use chrono::{Duration, TimeZone, Utc};

    fn zone() -> Tz {
        "Asia/Ho_Chi_Minh".parse().unwrap()
    }

    fn start() -> Timestamp {
        Utc.with_ymd_and_hms(2026, 3, 10, 3, 0, 0).unwrap()
    }

    fn member_with_spend(programme: &Programme, spend: i64) -> MemberState {
        let mut member = MemberState::new(
            MemberId::new(),
            Default::default(),
            programme.base_tier_code(),
            start(),
        );
        member.count_toward_tiers(month_index(start(), zone()), Money(spend), Points(0));
        member
    }

    #[test]
    fn thresholds_are_inclusive_and_upgrade_is_immediate() {
        let programme = Programme::compile(1, cafe()).unwrap();
        let mut member = member_with_spend(&programme, 1_999_999);
        assert_eq!(upgrade(&programme, &mut member, start(), zone()), None);
        member.count_toward_tiers(month_index(start(), zone()), Money(1), Points(0));
        let change = upgrade(&programme, &mut member, start(), zone()).unwrap();
        assert_eq!(
            (change.from.as_str(), change.to.as_str()),
            ("member", "silver")
        );
        // A big jump goes straight to the highest tier reached.
        member.count_toward_tiers(month_index(start(), zone()), Money(10_000_000), Points(0));
        assert_eq!(
            upgrade(&programme, &mut member, start(), zone())
                .unwrap()
                .to,
            "gold"
        );
    }

    #[test]
    fn a_merge_keeps_the_higher_tier_and_rises_on_the_combined_spend() {
        let programme = Programme::compile(1, cafe()).unwrap();
        // 1,200,000đ each: neither reaches silver (2,000,000đ); together they do.
        let survivor = member_with_spend(&programme, 1_200_000);
        let source = member_with_spend(&programme, 1_200_000);
        let merged = merged(Some(&programme), &survivor, &source, start(), zone());
        assert_eq!(merged.tier, "silver");
        assert_eq!(merged.lifetime_spend, Money(2_400_000));
        assert_eq!(
            merged.periods[&month_index(start(), zone())].spend,
            Money(2_400_000)
        );
        // A gold source with little spend this year keeps the merged member gold.
        let mut gold = member_with_spend(&programme, 100_000);
        gold.tier = "gold".into();
        let kept = super::merged(Some(&programme), &survivor, &gold, start(), zone());
        assert_eq!(kept.tier, "gold");
        // A tier the programme does not have counts lowest.
        let mut retired = member_with_spend(&programme, 0);
        retired.tier = "diamond".into();
        let lowest = super::merged(Some(&programme), &survivor, &retired, start(), zone());
        assert_eq!(lowest.tier, survivor.tier);
    }

    #[test]
    fn downgrade_waits_for_grace_and_drops_one_level() {
        let programme = Programme::compile(1, cafe()).unwrap();
        let mut member = member_with_spend(&programme, 6_000_000);
        upgrade(&programme, &mut member, start(), zone());
        assert_eq!(member.tier, "gold");
        // 13 months later the spend has left the rolling window.
        let later = start() + Duration::days(400);
        assert_eq!(review(&programme, &mut member, later, zone()), None);
        assert!(member.tier_below_since.is_some());
        assert_eq!(
            review(&programme, &mut member, later + Duration::days(29), zone()),
            None
        );
        let change = review(&programme, &mut member, later + Duration::days(30), zone()).unwrap();
        assert_eq!(
            (change.from.as_str(), change.to.as_str()),
            ("gold", "silver")
        );
        assert_eq!(
            review(&programme, &mut member, later + Duration::days(31), zone()),
            None
        );
        let change = review(&programme, &mut member, later + Duration::days(60), zone()).unwrap();
        assert_eq!(change.to, "member");
    }

    #[test]
    fn a_hold_stops_downgrade() {
        let programme = Programme::compile(1, cafe()).unwrap();
        let mut member = member_with_spend(&programme, 6_000_000);
        upgrade(&programme, &mut member, start(), zone());
        let later = start() + Duration::days(400);
        member.tier_held_until = Some(later + Duration::days(100));
        for day in [0, 40, 80] {
            assert_eq!(
                review(&programme, &mut member, later + Duration::days(day), zone()),
                None
            );
        }
        assert_eq!(member.tier, "gold");
    }

    #[test]
    fn progress_says_what_is_missing() {
        let programme = Programme::compile(1, cafe()).unwrap();
        let mut member = member_with_spend(&programme, 2_500_000);
        upgrade(&programme, &mut member, start(), zone());
        let progress = progress(&programme, &member, start(), zone());
        assert_eq!(progress.tier, "silver");
        assert_eq!(progress.next_tier.as_deref(), Some("gold"));
        assert_eq!(progress.to_next_tier, Some(2_500_000));
        assert_eq!(progress.to_keep_tier, 0);
    }
}
