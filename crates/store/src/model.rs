//! What the store takes and gives: events parsed at the edge, their results, and read views.

use patron_core::engine::EarnLine;
use patron_core::event::Purchase;
use patron_core::member::Profile;
use patron_core::tiers::Progress;
use patron_core::time::Timestamp;
use patron_core::{EventId, MemberId, Phone, RewardId, TenantId};
use serde::{Deserialize, Serialize};

/// How an event names its member.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MemberRef {
    Id(MemberId),
    Phone(Phone),
}

/// An event as the edge parsed it.
#[derive(Clone, Debug, PartialEq)]
pub struct IncomingEvent {
    pub tenant_id: TenantId,
    pub id: EventId,
    pub occurred_at: Timestamp,
    /// SHA-256 (hex) of the canonical body: the same id with another body is a conflict.
    pub body_hash: String,
    pub kind: IncomingKind,
    /// Who sent it, as the audit log names them (`user:<id>`, `key:<id>`, `member:<id>`, `cli`);
    /// stored with the event.
    pub actor: Option<String>,
    /// A till's store: the sender may refund or void only that store's purchases and use or
    /// cancel only vouchers usable there.
    pub store_scope: Option<String>,
}

/// What happened.
#[derive(Clone, Debug, PartialEq)]
pub enum IncomingKind {
    /// A purchase; an unknown phone enrols a new member with `profile`.
    Purchase {
        member: MemberRef,
        purchase: Purchase,
        profile: Option<Profile>,
    },
    /// A refund of `amount` of the original purchase's bill (the part paid with points
    /// included).
    Refund {
        original: EventId,
        amount: patron_core::Money,
    },
    /// A manager's void of the original purchase: everything left of it is reversed.
    Void {
        original: EventId,
    },
    Engagement {
        member: MemberRef,
        kind: String,
    },
    Redemption {
        member: MemberRef,
        reward_id: RewardId,
    },
    VoucherUse {
        code: String,
        store: Option<String>,
    },
    VoucherCancel {
        code: String,
    },
    /// A manual change of points; `actor` (who asked) goes to the audit log with the change.
    Adjustment {
        member: MemberRef,
        /// What is adjusted: points, or money (store credit), or a card's stamps.
        asset: patron_core::ledger::Asset,
        /// How much of it, up or down.
        points: i64,
        reason: String,
        actor: Option<String>,
    },
    /// A manager holds the member's tier until `until` (no downgrade before then); `None`
    /// releases a hold.
    TierHold {
        member: MemberRef,
        until: Option<Timestamp>,
    },
    /// Enrols a member (by phone) without a purchase; a sign-up rule may award points.
    Enrol {
        phone: Phone,
        profile: Profile,
    },
}

impl IncomingKind {
    pub fn name(&self) -> &'static str {
        match self {
            IncomingKind::Purchase { .. } => "purchase",
            IncomingKind::Refund { .. } => "refund",
            IncomingKind::Void { .. } => "void",
            IncomingKind::Engagement { .. } => "engagement",
            IncomingKind::Redemption { .. } => "redemption",
            IncomingKind::VoucherUse { .. } => "voucher_use",
            IncomingKind::VoucherCancel { .. } => "voucher_cancel",
            IncomingKind::Adjustment { .. } => "adjustment",
            IncomingKind::Enrol { .. } => "enrol",
            IncomingKind::TierHold { .. } => "tier_hold",
        }
    }
}

/// The answer to an accepted event; stored with it (as a versioned record,
/// [`crate::records`]) and given again for a duplicate. The server's HTTP answer is its own
/// type, made from this one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventResult {
    pub event_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub member_id: Option<String>,
    pub programme_version: Option<i64>,
    pub points_earned: i64,
    pub points_spent: i64,
    pub points_taken_back: i64,
    /// Points paid toward a bill that a refund or void gave back.
    #[serde(default)]
    pub points_returned: i64,
    /// The member's balance after the event (sum of their ledger entries).
    pub balance: i64,
    /// Spendable at the event's time.
    pub available: i64,
    pub pending: i64,
    pub tier: Option<String>,
    pub tier_change: Option<TierChangeView>,
    /// Why: one line per rule that gave points, and caps.
    pub lines: Vec<EarnLine>,
    pub voucher: Option<VoucherView>,
    /// Whether the member was created by this event.
    pub member_created: bool,
    /// The member's balances of assets other than points after the event (`money`,
    /// `stamps:<card>`), when they hold any.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub holdings: std::collections::BTreeMap<String, i64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TierChangeView {
    pub from: String,
    pub to: String,
    pub reason: String,
}

/// A voucher as members and cashiers see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VoucherView {
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

/// A member with balances and tier standing.
#[derive(Clone, Debug, Serialize)]
pub struct MemberView {
    pub id: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
    pub birthday: Option<String>,
    pub gender: Option<String>,
    pub city: Option<String>,
    pub tags: Vec<String>,
    pub attributes: serde_json::Map<String, serde_json::Value>,
    pub balance: i64,
    pub available: i64,
    pub pending: i64,
    /// Owed after refunds of points already spent; repaid by later earnings.
    pub debt: i64,
    pub expiring_soon: i64,
    pub expiring_soon_until: String,
    pub tier: Progress,
    /// A manager's hold on the tier: no downgrade before this instant.
    pub tier_held_until: Option<String>,
    /// What the member holds of assets other than points (store credit as `money`, in minor
    /// units of `currency`; a card's stamps as `stamps:<card>`), those not at zero.
    pub holdings: Vec<HoldingView>,
    /// In minor units of `currency`.
    pub lifetime_spend: i64,
    /// The tenant's ISO 4217 currency, for every amount of money here (the lifetime spend,
    /// and the tier's values when its metric is spend).
    pub currency: String,
    pub order_count: i64,
    pub created_at: String,
}

/// A member's balance of one asset other than points.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HoldingView {
    /// `money` (store credit) or `stamps:<card>`.
    pub asset: String,
    pub balance: i64,
    /// Spendable now (the rest is pending).
    pub available: i64,
    /// Expiring within the same window as the points' `expiring_soon`.
    pub expiring_soon: i64,
}

/// One transaction of a member's history, with the reason.
#[derive(Clone, Debug, Serialize)]
pub struct HistoryEntry {
    /// Where the page after this entry starts (not part of the answer's body).
    #[serde(skip)]
    pub cursor: crate::queries::HistoryCursor,
    pub transaction_id: String,
    pub kind: String,
    /// Points moved on the member's account (0 when the transaction moved only other assets).
    pub points: i64,
    /// Other assets moved on the member's accounts (`money`, `stamps:<card>`), when any.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub holdings: std::collections::BTreeMap<String, i64>,
    pub event_id: Option<String>,
    pub occurred_at: String,
    pub reason: serde_json::Value,
}

/// A reward as listed.
#[derive(Clone, Debug, Serialize)]
pub struct RewardView {
    pub id: String,
    pub name: String,
    pub description: String,
    pub cost: i64,
    pub stock: Option<i64>,
    pub per_member_limit: Option<i64>,
    pub valid_from: Option<String>,
    pub valid_until: Option<String>,
    pub stores: Vec<String>,
    pub voucher_valid_days: i64,
    pub active: bool,
}

/// Writes an instant as RFC 3339 in `zone`.
pub fn rfc3339(at: Timestamp, zone: chrono_tz::Tz) -> String {
    at.with_timezone(&zone)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}
