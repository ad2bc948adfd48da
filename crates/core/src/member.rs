//! A member as the engine sees them: profile facts the rules read, tier standing, counters and
//! open lots.

use crate::ledger::Asset;
use crate::lots::Lots;
use crate::time::Timestamp;
use crate::{MemberId, Money, Phone, Points};
use chrono::NaiveDate;
use std::collections::{BTreeMap, BTreeSet};

/// What the member told us.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Profile {
    pub phone: Option<Phone>,
    pub email: Option<String>,
    pub name: Option<String>,
    pub birthday: Option<NaiveDate>,
    pub gender: Option<String>,
    pub city: Option<String>,
    pub tags: Vec<String>,
    pub attributes: serde_json::Map<String, serde_json::Value>,
}

/// Most points a member may hold. An earning that would go past it is cut to fit (its history
/// line says so), so a balance never overflows: earnings are the only way a balance grows past
/// what it held before, other than points given back (voucher cancels, refunds' returns) that
/// were once in it, and adjustments of at most the server's `POINTS_MAX` (10^9) each. A
/// million times this still fits `i64` (9.2 × 10^18).
pub const BALANCE_MAX: Points = Points(1_000_000_000_000);

/// Spend and points counted toward tiers in one calendar month of the tenant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeriodTotals {
    pub spend: Money,
    pub points: Points,
}

/// What a member holds of an asset other than points: the balance and its lots (the lots count
/// units of the asset: đồng for money, stamps for a card).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Holding {
    /// Sum of the member's ledger entries in the asset; always equals `lots.total()`.
    pub balance: i64,
    pub lots: Lots,
    /// Changed since loading, to be written.
    pub changed: bool,
}

/// The member's state the engine reads and changes.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberState {
    pub id: MemberId,
    pub profile: Profile,
    pub tier: String,
    pub tier_since: Timestamp,
    /// When the member first fell below their tier's threshold at a review; cleared when they
    /// qualify again. The grace period counts from here.
    pub tier_below_since: Option<Timestamp>,
    /// A manager's hold: no downgrade before this instant.
    pub tier_held_until: Option<Timestamp>,
    /// Sum of the member's ledger entries; always equals `lots.total()`.
    pub balance: Points,
    pub lots: Lots,
    /// Every other asset the member holds (money, stamps per card), each with its own lots.
    pub holdings: BTreeMap<Asset, Holding>,
    pub lifetime_spend: Money,
    pub lifetime_points: Points,
    pub order_count: i64,
    /// Month index (see `time::month_index`) → totals, for at least the qualification window.
    pub periods: BTreeMap<i32, PeriodTotals>,
    /// Months changed since loading, to be written.
    pub periods_changed: BTreeSet<i32>,
    /// The local day `day_points` counts, for the daily cap.
    pub day: Option<NaiveDate>,
    pub day_points: Points,
    /// Rule id → the period key of its last award, for `once_per` rules.
    pub rule_hits: BTreeMap<String, String>,
    pub created_at: Timestamp,
}

impl MemberState {
    /// A new member on the programme's lowest tier.
    pub fn new(id: MemberId, profile: Profile, base_tier: &str, at: Timestamp) -> MemberState {
        MemberState {
            id,
            profile,
            tier: base_tier.to_owned(),
            tier_since: at,
            tier_below_since: None,
            tier_held_until: None,
            balance: Points::ZERO,
            lots: Lots::default(),
            holdings: BTreeMap::new(),
            lifetime_spend: Money::ZERO,
            lifetime_points: Points::ZERO,
            order_count: 0,
            periods: BTreeMap::new(),
            periods_changed: BTreeSet::new(),
            day: None,
            day_points: Points::ZERO,
            rule_hits: BTreeMap::new(),
            created_at: at,
        }
    }

    /// Adds to a month's totals and the lifetime counters. They saturate instead of
    /// overflowing: one event's spend is at most the server's `AMOUNT_MAX` (10^15), so a member
    /// needs more than 9,000 such purchases to reach `i64::MAX`; past that the counters stay at
    /// the top, where they still pass every tier threshold, and never wrap negative.
    pub fn count_toward_tiers(&mut self, month: i32, spend: Money, points: Points) {
        let totals = self.periods.entry(month).or_default();
        totals.spend = totals.spend.saturating_add(spend);
        totals.points = totals.points.saturating_add(points);
        self.lifetime_spend = self.lifetime_spend.saturating_add(spend);
        self.lifetime_points = self.lifetime_points.saturating_add(points);
        self.periods_changed.insert(month);
    }

    /// The ledger and the lots agree, for points and for every other asset.
    pub fn is_consistent(&self) -> bool {
        self.balance == self.lots.total()
            && self
                .holdings
                .values()
                .all(|holding| holding.balance == holding.lots.total().0)
    }

    /// The member's balance of `asset`.
    pub fn balance_of(&self, asset: &Asset) -> i64 {
        match asset {
            Asset::Points => self.balance.0,
            other => self
                .holdings
                .get(other)
                .map(|holding| holding.balance)
                .unwrap_or(0),
        }
    }
}
