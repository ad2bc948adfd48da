//! Events as the engine judges them, already parsed and normalised at the edge.

use crate::lots::Allocation;
use crate::time::Timestamp;
use crate::{EventId, LotId, MemberId, Money, Points, RewardId};

/// A line of a purchase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub sku: String,
    pub category: String,
    pub quantity: i64,
    pub amount: Money,
}

/// A purchase: the bill, what of it was paid with points, and its lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Purchase {
    pub store: Option<String>,
    /// The whole bill, in minor units; more than zero.
    pub amount: Money,
    /// Points the member pays with; worth `point_value` each; never more than the bill.
    pub points_paid: Points,
    pub items: Vec<Item>,
}

/// What the engine keeps of a purchase so a later refund or void can find what it earned and
/// what was paid with points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PurchaseRecord {
    pub event_id: EventId,
    pub member_id: MemberId,
    /// The whole bill, the part paid with points included: what a refund's amount is measured
    /// against.
    pub amount: Money,
    /// The bill less the part paid with points: what earned points and counts toward tiers.
    pub eligible_amount: Money,
    pub points_earned: Points,
    /// The lot the purchase's points went into (none when it earned nothing, or all of it
    /// repaid debt).
    pub lot_id: Option<LotId>,
    /// Refunded so far, of `amount` (the bill total).
    pub refunded_amount: Money,
    pub points_taken_back: Points,
    /// Which lots the points paid came from (empty when nothing was paid with points); their
    /// sum is the points paid.
    pub payment: Vec<Allocation>,
    /// Points paid that refunds have given back so far.
    pub points_returned: Points,
    /// A manager voided the purchase: nothing is left to refund.
    pub voided: bool,
    /// Month index of the purchase, whose tier totals a refund reduces.
    pub month: i32,
    pub occurred_at: Timestamp,
}

impl PurchaseRecord {
    /// Points the member paid toward the bill.
    pub fn points_paid(&self) -> Points {
        self.payment
            .iter()
            .map(|allocation| allocation.points)
            .sum()
    }

    /// What is left to refund, of the bill total.
    pub fn refundable(&self) -> Money {
        if self.voided {
            return Money::ZERO;
        }
        self.amount - self.refunded_amount
    }
}

/// An allocation recorded against the transaction that made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordedAllocation {
    pub transaction_id: crate::TransactionId,
    pub allocation: Allocation,
}

/// Engagement kinds a programme's rules usually name. Any other lowercase word is a custom kind.
pub const ENGAGEMENT_KINDS: [&str; 5] = ["sign_up", "birthday", "review", "survey", "referral"];

/// The member-independent part of a redemption request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redemption {
    pub reward_id: RewardId,
}
