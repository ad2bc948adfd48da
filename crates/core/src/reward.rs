//! The rewards catalogue and the vouchers a redemption issues.

use crate::lots::Allocation;
use crate::time::Timestamp;
use crate::{MemberId, Points, RewardId, TransactionId};
use serde::Serialize;

/// A reward members can take for points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reward {
    pub id: RewardId,
    pub name: String,
    pub description: String,
    pub cost: Points,
    /// Vouchers left to issue; `None` is unlimited.
    pub stock: Option<i64>,
    /// Most vouchers (not cancelled) one member may hold of this reward; `None` is no limit.
    pub per_member_limit: Option<i64>,
    pub valid_from: Option<Timestamp>,
    pub valid_until: Option<Timestamp>,
    /// Store codes where its vouchers can be used; empty is everywhere.
    pub stores: Vec<String>,
    /// Days a voucher stays usable after it is issued.
    pub voucher_valid_days: u32,
    pub active: bool,
}

impl Reward {
    /// Whether it can be taken at `at` (active and inside its validity).
    pub fn is_offered(&self, at: Timestamp) -> bool {
        self.active
            && self.valid_from.is_none_or(|from| from <= at)
            && self.valid_until.is_none_or(|until| at < until)
    }

    pub fn is_usable_at(&self, store: Option<&str>) -> bool {
        self.stores.is_empty()
            || store.is_some_and(|store| self.stores.iter().any(|allowed| allowed == store))
    }
}

/// Where a voucher stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VoucherStatus {
    Issued,
    Used,
    Cancelled,
    Expired,
}

impl VoucherStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            VoucherStatus::Issued => "issued",
            VoucherStatus::Used => "used",
            VoucherStatus::Cancelled => "cancelled",
            VoucherStatus::Expired => "expired",
        }
    }

    pub fn parse(text: &str) -> Option<VoucherStatus> {
        match text {
            "issued" => Some(VoucherStatus::Issued),
            "used" => Some(VoucherStatus::Used),
            "cancelled" => Some(VoucherStatus::Cancelled),
            "expired" => Some(VoucherStatus::Expired),
            _ => None,
        }
    }
}

/// A one-time voucher for a reward.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Voucher {
    /// Unguessable code, made by the caller from a secure random source.
    pub code: String,
    pub member_id: MemberId,
    pub reward_id: RewardId,
    pub cost: Points,
    pub status: VoucherStatus,
    pub redemption_transaction: TransactionId,
    /// The lots its points came from, so a cancellation returns them with their expiry.
    pub allocations: Vec<Allocation>,
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
    pub used_at: Option<Timestamp>,
    pub used_store: Option<String>,
}
