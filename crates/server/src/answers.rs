//! The API's answers to events, as HTTP bodies. They are the server's own types, made from the
//! store's domain results: the store keeps its answer records ([`patron_store::records`]) in
//! their own versioned shape, so this contract and those records change independently.

use patron_store::{EventResult, TierChangeView, VoucherView};
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// The answer to an accepted event; the same again for a duplicate.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[schema(as = EventResult)]
pub struct EventAnswer {
    pub event_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub member_id: Option<String>,
    pub programme_version: Option<i64>,
    pub points_earned: i64,
    pub points_spent: i64,
    pub points_taken_back: i64,
    /// Points paid toward a bill that a refund or void gave back.
    pub points_returned: i64,
    /// The member's balance after the event (sum of their ledger entries).
    pub balance: i64,
    /// Spendable at the event's time.
    pub available: i64,
    pub pending: i64,
    pub tier: Option<String>,
    pub tier_change: Option<TierChangeAnswer>,
    /// Why: one line per rule that gave points, and caps.
    #[schema(value_type = Vec<Object>)]
    pub lines: Vec<patron_core::engine::EarnLine>,
    pub voucher: Option<VoucherAnswer>,
    /// Whether the member was created by this event.
    pub member_created: bool,
    /// The member's balances of assets other than points after the event (`money`,
    /// `stamps:<card>`), when they hold any.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub holdings: BTreeMap<String, i64>,
}

/// A change of tier.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[schema(as = TierChangeView)]
pub struct TierChangeAnswer {
    pub from: String,
    pub to: String,
    pub reason: String,
}

/// A voucher as members and cashiers see it.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[schema(as = VoucherView)]
pub struct VoucherAnswer {
    pub code: String,
    pub reward_id: String,
    pub reward_name: String,
    pub cost: i64,
    pub status: String,
    pub issued_at: String,
    pub expires_at: String,
    pub used_at: Option<String>,
    pub used_store: Option<String>,
}

impl From<EventResult> for EventAnswer {
    fn from(result: EventResult) -> EventAnswer {
        EventAnswer {
            event_id: result.event_id,
            kind: result.kind,
            member_id: result.member_id,
            programme_version: result.programme_version,
            points_earned: result.points_earned,
            points_spent: result.points_spent,
            points_taken_back: result.points_taken_back,
            points_returned: result.points_returned,
            balance: result.balance,
            available: result.available,
            pending: result.pending,
            tier: result.tier,
            tier_change: result.tier_change.map(TierChangeAnswer::from),
            lines: result.lines,
            voucher: result.voucher.map(VoucherAnswer::from),
            member_created: result.member_created,
            holdings: result.holdings,
        }
    }
}

impl From<TierChangeView> for TierChangeAnswer {
    fn from(change: TierChangeView) -> TierChangeAnswer {
        TierChangeAnswer {
            from: change.from,
            to: change.to,
            reason: change.reason,
        }
    }
}

impl From<VoucherView> for VoucherAnswer {
    fn from(voucher: VoucherView) -> VoucherAnswer {
        VoucherAnswer {
            code: voucher.code,
            reward_id: voucher.reward_id,
            reward_name: voucher.reward_name,
            cost: voucher.cost,
            status: voucher.status,
            issued_at: voucher.issued_at,
            expires_at: voucher.expires_at,
            used_at: voucher.used_at,
            used_store: voucher.used_store,
        }
    }
}
