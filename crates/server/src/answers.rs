//! The API's answers, as HTTP bodies: the server's own types, made from the store's domain
//! results, each registered in the OpenAPI document under the name clients know. The store
//! keeps its answer records ([`patron_store::records`]) in their own versioned shape, so this
//! contract and those records change independently.

use patron_core::programme::ProgrammeDefinition;
use patron_core::tiers::Progress;
use patron_store::admin::{ApiKeyView, CreatedKey, StoreView, TierView};
use patron_store::audit::AuditEntry;
use patron_store::members::{MemberSummary, MergeReport};
use patron_store::programmes::{DraftView, VersionView};
use patron_store::users::{Role, User};
use patron_store::{
    EventResult, HistoryEntry, HoldingView, MemberView, RewardView, TierChangeView, VoucherView,
};
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// Each of a list of the store's results as its answer.
pub fn all<R, A: From<R>>(results: Vec<R>) -> Vec<A> {
    results.into_iter().map(A::from).collect()
}

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

/// A published version.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[schema(as = VersionView)]
pub struct VersionAnswer {
    pub version: i64,
    pub effective_from: String,
    /// Whether purchases happening now are judged by this version.
    pub current: bool,
    #[schema(value_type = Object)]
    pub definition: ProgrammeDefinition,
}

impl From<VersionView> for VersionAnswer {
    fn from(from: VersionView) -> VersionAnswer {
        VersionAnswer {
            version: from.version,
            effective_from: from.effective_from,
            current: from.current,
            definition: from.definition,
        }
    }
}

/// The tenant's draft.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[schema(as = DraftView)]
pub struct DraftAnswer {
    #[schema(value_type = Object)]
    pub definition: ProgrammeDefinition,
    pub updated_at: String,
    pub updated_by: String,
}

impl From<DraftView> for DraftAnswer {
    fn from(from: DraftView) -> DraftAnswer {
        DraftAnswer {
            definition: from.definition,
            updated_at: from.updated_at,
            updated_by: from.updated_by,
        }
    }
}

/// A member in a list.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[schema(as = MemberSummary)]
pub struct MemberSummaryAnswer {
    pub id: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
    pub tier: String,
    pub balance: i64,
    pub lifetime_spend: i64,
    pub order_count: i64,
    pub created_at: String,
    pub erased: bool,
}

impl From<MemberSummary> for MemberSummaryAnswer {
    fn from(from: MemberSummary) -> MemberSummaryAnswer {
        MemberSummaryAnswer {
            id: from.id,
            phone: from.phone,
            email: from.email,
            name: from.name,
            tier: from.tier,
            balance: from.balance,
            lifetime_spend: from.lifetime_spend,
            order_count: from.order_count,
            created_at: from.created_at,
            erased: from.erased,
        }
    }
}

/// What a merge did.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[schema(as = MergeReport)]
pub struct MergeReportAnswer {
    pub member_id: String,
    pub merged_member_id: String,
    pub balance: i64,
    pub tier: String,
    pub ledger_transactions_moved: i64,
}

impl From<MergeReport> for MergeReportAnswer {
    fn from(from: MergeReport) -> MergeReportAnswer {
        MergeReportAnswer {
            member_id: from.member_id,
            merged_member_id: from.merged_member_id,
            balance: from.balance,
            tier: from.tier,
            ledger_transactions_moved: from.ledger_transactions_moved,
        }
    }
}

/// A staff user as listed.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[schema(as = User)]
pub struct UserAnswer {
    pub id: String,
    pub tenant_id: String,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub created_at: String,
    pub disabled: bool,
}

impl From<User> for UserAnswer {
    fn from(from: User) -> UserAnswer {
        UserAnswer {
            id: from.id,
            tenant_id: from.tenant_id,
            email: from.email,
            name: from.name,
            role: from.role,
            created_at: from.created_at,
            disabled: from.disabled,
        }
    }
}

#[derive(Clone, Debug, Serialize, ToSchema)]
#[schema(as = AuditEntry)]
pub struct AuditEntryAnswer {
    pub id: String,
    pub actor: String,
    pub action: String,
    pub subject: String,
    #[schema(value_type = Option<Object>)]
    pub before: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    pub after: Option<serde_json::Value>,
    pub at: String,
}

impl From<AuditEntry> for AuditEntryAnswer {
    fn from(from: AuditEntry) -> AuditEntryAnswer {
        AuditEntryAnswer {
            id: from.id,
            actor: from.actor,
            action: from.action,
            subject: from.subject,
            before: from.before,
            after: from.after,
            at: from.at,
        }
    }
}

/// An API key as listed (never its secret).
#[derive(Clone, Debug, Serialize, ToSchema)]
#[schema(as = ApiKeyView)]
pub struct ApiKeyAnswer {
    pub id: String,
    pub name: String,
    /// The first characters of the secret, to recognise it.
    pub prefix: String,
    pub scope: String,
    pub store: Option<String>,
    pub created_at: String,
    /// Updated when the key is checked against the database (at most every 30 s per node).
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

impl From<ApiKeyView> for ApiKeyAnswer {
    fn from(from: ApiKeyView) -> ApiKeyAnswer {
        ApiKeyAnswer {
            id: from.id,
            name: from.name,
            prefix: from.prefix,
            scope: from.scope,
            store: from.store,
            created_at: from.created_at,
            last_used_at: from.last_used_at,
            revoked_at: from.revoked_at,
        }
    }
}

/// A new key: its id and its secret, shown once.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[schema(as = CreatedKey)]
pub struct CreatedKeyAnswer {
    pub id: String,
    pub secret: String,
    pub key: ApiKeyAnswer,
}

impl From<CreatedKey> for CreatedKeyAnswer {
    fn from(from: CreatedKey) -> CreatedKeyAnswer {
        CreatedKeyAnswer {
            id: from.id,
            secret: from.secret,
            key: from.key.into(),
        }
    }
}

/// A shop or branch.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[schema(as = StoreView)]
pub struct StoreAnswer {
    pub code: String,
    pub name: String,
    /// RFC 3339 in the tenant's zone.
    pub created_at: String,
}

impl From<StoreView> for StoreAnswer {
    fn from(from: StoreView) -> StoreAnswer {
        StoreAnswer {
            code: from.code,
            name: from.name,
            created_at: from.created_at,
        }
    }
}

/// A tier of the programme in force, with its members.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[schema(as = TierView)]
pub struct TierAnswer {
    pub code: String,
    pub name: String,
    /// Qualifying metric needed, inclusive (spend in minor units, or points).
    pub threshold: i64,
    /// Earning multiplier, in percent (100 = ×1).
    pub multiplier_percent: i64,
    pub members: i64,
}

impl From<TierView> for TierAnswer {
    fn from(from: TierView) -> TierAnswer {
        TierAnswer {
            code: from.code,
            name: from.name,
            threshold: from.threshold,
            multiplier_percent: from.multiplier_percent,
            members: from.members,
        }
    }
}

/// A member with balances and tier standing.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[schema(as = MemberView)]
pub struct MemberAnswer {
    pub id: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
    pub birthday: Option<String>,
    pub gender: Option<String>,
    pub city: Option<String>,
    pub tags: Vec<String>,
    #[schema(value_type = Object)]
    pub attributes: serde_json::Map<String, serde_json::Value>,
    pub balance: i64,
    pub available: i64,
    pub pending: i64,
    /// Owed after refunds of points already spent; repaid by later earnings.
    pub debt: i64,
    pub expiring_soon: i64,
    pub expiring_soon_until: String,
    #[schema(value_type = Object)]
    pub tier: Progress,
    /// A manager's hold on the tier: no downgrade before this instant.
    pub tier_held_until: Option<String>,
    /// What the member holds of assets other than points (store credit as `money`, in minor
    /// units of `currency`; a card's stamps as `stamps:<card>`), those not at zero.
    pub holdings: Vec<HoldingAnswer>,
    /// In minor units of `currency`.
    pub lifetime_spend: i64,
    /// The tenant's ISO 4217 currency, for every amount of money here (the lifetime spend,
    /// and the tier's values when its metric is spend).
    pub currency: String,
    pub order_count: i64,
    pub created_at: String,
    /// The segments the member is in now, with what the till offers them.
    pub segments: Vec<MemberSegmentAnswer>,
}

/// A segment a member is in, and its sales policy.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct MemberSegmentAnswer {
    pub id: String,
    pub name: String,
    /// Whole percent off, 0 to 100 (0 when the segment has no policy).
    pub discount_percent: u8,
    pub price_list: Option<String>,
    /// For the cashier.
    pub note: Option<String>,
}

impl From<patron_store::segments::SegmentRecord> for MemberSegmentAnswer {
    fn from(from: patron_store::segments::SegmentRecord) -> MemberSegmentAnswer {
        let policy = from.policy.unwrap_or_default();
        MemberSegmentAnswer {
            id: from.id,
            name: from.name,
            discount_percent: policy.discount_percent,
            price_list: policy.price_list,
            note: policy.note,
        }
    }
}

impl From<MemberView> for MemberAnswer {
    fn from(from: MemberView) -> MemberAnswer {
        MemberAnswer {
            id: from.id,
            phone: from.phone,
            email: from.email,
            name: from.name,
            birthday: from.birthday,
            gender: from.gender,
            city: from.city,
            tags: from.tags,
            attributes: from.attributes,
            balance: from.balance,
            available: from.available,
            pending: from.pending,
            debt: from.debt,
            expiring_soon: from.expiring_soon,
            expiring_soon_until: from.expiring_soon_until,
            tier: from.tier,
            tier_held_until: from.tier_held_until,
            holdings: from.holdings.into_iter().map(Into::into).collect(),
            lifetime_spend: from.lifetime_spend,
            currency: from.currency,
            order_count: from.order_count,
            created_at: from.created_at,
            segments: Vec::new(),
        }
    }
}

/// A member's balance of one asset other than points.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[schema(as = HoldingView)]
pub struct HoldingAnswer {
    /// `money` (store credit) or `stamps:<card>`.
    pub asset: String,
    pub balance: i64,
    /// Spendable now (the rest is pending).
    pub available: i64,
    /// Expiring within the same window as the points' `expiring_soon`.
    pub expiring_soon: i64,
}

impl From<HoldingView> for HoldingAnswer {
    fn from(from: HoldingView) -> HoldingAnswer {
        HoldingAnswer {
            asset: from.asset,
            balance: from.balance,
            available: from.available,
            expiring_soon: from.expiring_soon,
        }
    }
}

/// One transaction of a member's history, with the reason.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[schema(as = HistoryEntry)]
pub struct HistoryEntryAnswer {
    pub transaction_id: String,
    pub kind: String,
    /// Points moved on the member's account (0 when the transaction moved only other assets).
    pub points: i64,
    /// Other assets moved on the member's accounts (`money`, `stamps:<card>`), when any.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub holdings: std::collections::BTreeMap<String, i64>,
    pub event_id: Option<String>,
    pub occurred_at: String,
    #[schema(value_type = Object)]
    pub reason: serde_json::Value,
}

impl From<HistoryEntry> for HistoryEntryAnswer {
    fn from(from: HistoryEntry) -> HistoryEntryAnswer {
        HistoryEntryAnswer {
            transaction_id: from.transaction_id,
            kind: from.kind,
            points: from.points,
            holdings: from.holdings,
            event_id: from.event_id,
            occurred_at: from.occurred_at,
            reason: from.reason,
        }
    }
}

/// A reward as listed.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[schema(as = RewardView)]
pub struct RewardAnswer {
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

impl From<RewardView> for RewardAnswer {
    fn from(from: RewardView) -> RewardAnswer {
        RewardAnswer {
            id: from.id,
            name: from.name,
            description: from.description,
            cost: from.cost,
            stock: from.stock,
            per_member_limit: from.per_member_limit,
            valid_from: from.valid_from,
            valid_until: from.valid_until,
            stores: from.stores,
            voucher_valid_days: from.voucher_valid_days,
            active: from.active,
        }
    }
}
