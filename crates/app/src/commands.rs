//! The commands that record events: each is a typed value, asks the grant for its permission,
//! names the grant as its sender and scope, and goes through the journal.

use crate::error::AppError;
use crate::grant::{Grant, Permission};
use patron_core::event::Purchase;
use patron_core::member::Profile;
use patron_core::time::Timestamp;
use patron_core::{EventId, Money, Phone, RewardId, TenantId};
use patron_store::{EventResult, IncomingEvent, IncomingKind, MemberRef};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// Longest voucher code read, once hyphens and spaces are taken out.
pub const VOUCHER_CODE_LENGTH_MAX: usize = 32;

/// A purchase; an unknown phone enrols a new member with `profile`.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordPurchase {
    pub member: MemberRef,
    pub purchase: Purchase,
    pub profile: Option<Profile>,
}

/// A refund of `amount` of the original purchase's bill (the part paid with points included).
#[derive(Clone, Debug, PartialEq)]
pub struct Refund {
    pub original: EventId,
    pub amount: Money,
}

/// A manager's void: all that is left of the original purchase is reversed.
#[derive(Clone, Debug, PartialEq)]
pub struct Void {
    pub original: EventId,
}

/// Enrols a member by phone without a purchase.
#[derive(Clone, Debug, PartialEq)]
pub struct Enrol {
    pub phone: Phone,
    pub profile: Profile,
}

/// Something the member did that a rule may reward (`review`, `survey`, `referral`).
#[derive(Clone, Debug, PartialEq)]
pub struct Engage {
    pub member: MemberRef,
    pub engagement: String,
}

/// Redeems a reward for points; the answer carries the voucher.
#[derive(Clone, Debug, PartialEq)]
pub struct Redeem {
    pub member: MemberRef,
    pub reward_id: RewardId,
}

/// Uses a voucher at a till (`store`: where).
#[derive(Clone, Debug, PartialEq)]
pub struct UseVoucher {
    pub code: String,
    pub store: Option<String>,
}

/// Cancels an unused voucher: its points go back to their lots.
#[derive(Clone, Debug, PartialEq)]
pub struct CancelVoucher {
    pub code: String,
}

/// A manual change of points, with the reason shown in the history and the audit log.
#[derive(Clone, Debug, PartialEq)]
pub struct AdjustPoints {
    pub member: MemberRef,
    /// Points unless said: money tops up or takes back store credit.
    pub asset: patron_core::ledger::Asset,
    /// How much of the asset, up or down.
    pub points: i64,
    pub reason: String,
}

/// Holds the member's tier until `until`; `None` releases a hold.
#[derive(Clone, Debug, PartialEq)]
pub struct HoldTier {
    pub member: MemberRef,
    pub until: Option<Timestamp>,
}

/// A purchase paid in part with a voucher: the sale and the voucher's use, sent together.
#[derive(Clone, Debug, PartialEq)]
pub struct PurchaseWithVoucher {
    pub purchase: RecordPurchase,
    /// The voucher's code as typed; it is used at the purchase's store.
    pub code: String,
}

/// Both answers of a purchase with a voucher (recorded together, or refused together).
#[derive(Debug)]
pub struct PurchaseWithVoucherAnswer {
    pub purchase: EventResult,
    pub voucher: EventResult,
}

/// Any command that records one event.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    Purchase(RecordPurchase),
    Refund(Refund),
    Void(Void),
    Enrol(Enrol),
    Engage(Engage),
    Redeem(Redeem),
    UseVoucher(UseVoucher),
    CancelVoucher(CancelVoucher),
    AdjustPoints(AdjustPoints),
    HoldTier(HoldTier),
}

macro_rules! command_from {
    ($($variant:ident),*) => {
        $(impl From<$variant> for Command {
            fn from(command: $variant) -> Command {
                Command::$variant(command)
            }
        })*
    };
}
command_from!(
    Refund,
    Void,
    Enrol,
    Engage,
    Redeem,
    UseVoucher,
    CancelVoucher,
    AdjustPoints,
    HoldTier
);

impl From<RecordPurchase> for Command {
    fn from(command: RecordPurchase) -> Command {
        Command::Purchase(command)
    }
}

impl Command {
    /// What the caller must hold: adjustments, tier holds and voids are a manager's; the rest
    /// (refunds too: a cashier may refund at the till) only need to record events.
    pub fn permission(&self) -> Permission {
        match self {
            Command::AdjustPoints(_) | Command::HoldTier(_) | Command::Void(_) => {
                Permission::ManageMembers
            }
            _ => Permission::RecordEvents,
        }
    }

    /// The command the API's parsed event stands for (the edge parses JSON into the journal's
    /// event; this takes it back to the command the app layer checks).
    pub fn from_kind(kind: IncomingKind) -> Command {
        match kind {
            IncomingKind::Purchase {
                member,
                purchase,
                profile,
            } => Command::Purchase(RecordPurchase {
                member,
                purchase,
                profile,
            }),
            IncomingKind::Refund { original, amount } => {
                Command::Refund(Refund { original, amount })
            }
            IncomingKind::Void { original } => Command::Void(Void { original }),
            IncomingKind::Engagement { member, kind } => Command::Engage(Engage {
                member,
                engagement: kind,
            }),
            IncomingKind::Redemption { member, reward_id } => {
                Command::Redeem(Redeem { member, reward_id })
            }
            IncomingKind::VoucherUse { code, store } => {
                Command::UseVoucher(UseVoucher { code, store })
            }
            IncomingKind::VoucherCancel { code } => Command::CancelVoucher(CancelVoucher { code }),
            IncomingKind::Adjustment {
                member,
                points,
                reason,
                asset,
                ..
            } => Command::AdjustPoints(AdjustPoints {
                member,
                asset,
                points,
                reason,
            }),
            IncomingKind::TierHold { member, until } => {
                Command::HoldTier(HoldTier { member, until })
            }
            IncomingKind::Enrol { phone, profile } => Command::Enrol(Enrol { phone, profile }),
        }
    }

    /// The journal's event kind; an adjustment names `actor` for the audit log.
    fn into_kind(self, actor: &str) -> IncomingKind {
        match self {
            Command::Purchase(RecordPurchase {
                member,
                purchase,
                profile,
            }) => IncomingKind::Purchase {
                member,
                purchase,
                profile,
            },
            Command::Refund(Refund { original, amount }) => {
                IncomingKind::Refund { original, amount }
            }
            Command::Void(Void { original }) => IncomingKind::Void { original },
            Command::Enrol(Enrol { phone, profile }) => IncomingKind::Enrol { phone, profile },
            Command::Engage(Engage { member, engagement }) => IncomingKind::Engagement {
                member,
                kind: engagement,
            },
            Command::Redeem(Redeem { member, reward_id }) => {
                IncomingKind::Redemption { member, reward_id }
            }
            Command::UseVoucher(UseVoucher { code, store }) => {
                IncomingKind::VoucherUse { code, store }
            }
            Command::CancelVoucher(CancelVoucher { code }) => IncomingKind::VoucherCancel { code },
            Command::AdjustPoints(AdjustPoints {
                member,
                asset,
                points,
                reason,
            }) => IncomingKind::Adjustment {
                member,
                asset,
                points,
                reason,
                actor: Some(actor.to_owned()),
            },
            Command::HoldTier(HoldTier { member, until }) => {
                IncomingKind::TierHold { member, until }
            }
        }
    }

    /// The command as the JSON body `POST /v1/events` takes for it, fields left out where
    /// they hold their default: its hash makes a resent command the same event, and the same
    /// as the API's event sent with that body.
    pub fn canonical_body(&self, id: &EventId, occurred_at: Option<Timestamp>) -> Value {
        let mut body = Map::new();
        body.insert("id".into(), id.as_str().into());
        if let Some(at) = occurred_at {
            body.insert(
                "occurred_at".into(),
                at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
                    .into(),
            );
        }
        let mut put = |key: &str, value: Value| {
            body.insert(key.to_owned(), value);
        };
        match self {
            Command::Purchase(command) => {
                put("type", "purchase".into());
                put("member", member_body(&command.member));
                put("amount", command.purchase.amount.0.into());
                if let Some(store) = &command.purchase.store {
                    put("store", store.as_str().into());
                }
                if command.purchase.points_paid.0 != 0 {
                    put("points_paid", command.purchase.points_paid.0.into());
                }
                if !command.purchase.items.is_empty() {
                    let items = command.purchase.items.iter().map(|item| {
                        let mut line = json!({
                            "category": item.category,
                            "quantity": item.quantity,
                            "amount": item.amount.0,
                        });
                        if !item.sku.is_empty() {
                            line["sku"] = item.sku.as_str().into();
                        }
                        line
                    });
                    put("items", Value::Array(items.collect()));
                }
                if let Some(profile) = &command.profile {
                    put("profile", profile_body(profile));
                }
            }
            Command::Refund(command) => {
                put("type", "refund".into());
                put("original_id", command.original.as_str().into());
                put("amount", command.amount.0.into());
            }
            Command::Void(command) => {
                put("type", "void".into());
                put("original_id", command.original.as_str().into());
            }
            Command::Enrol(command) => {
                put("type", "enrol".into());
                put("member", json!({"phone": command.phone.as_str()}));
                let profile = profile_body(&command.profile);
                if profile.as_object().is_some_and(|fields| !fields.is_empty()) {
                    put("profile", profile);
                }
            }
            Command::Engage(command) => {
                put("type", "engagement".into());
                put("member", member_body(&command.member));
                put("engagement", command.engagement.as_str().into());
            }
            Command::Redeem(command) => {
                put("type", "redemption".into());
                put("member", member_body(&command.member));
                put("reward_id", command.reward_id.to_string().into());
            }
            Command::UseVoucher(command) => {
                put("type", "voucher_use".into());
                put("code", command.code.as_str().into());
                if let Some(store) = &command.store {
                    put("store", store.as_str().into());
                }
            }
            Command::CancelVoucher(command) => {
                put("type", "voucher_cancel".into());
                put("code", command.code.as_str().into());
            }
            Command::AdjustPoints(command) => {
                put("type", "adjustment".into());
                put("member", member_body(&command.member));
                if command.asset != patron_core::ledger::Asset::Points {
                    put("asset", command.asset.name().into());
                }
                put("points", command.points.into());
                put("reason", command.reason.as_str().into());
            }
            Command::HoldTier(command) => {
                put("type", "tier_hold".into());
                put("member", member_body(&command.member));
                put(
                    "until",
                    command
                        .until
                        .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
                        .into(),
                );
            }
        }
        Value::Object(body)
    }
}

fn member_body(member: &MemberRef) -> Value {
    match member {
        MemberRef::Id(id) => json!({"id": id.to_string()}),
        MemberRef::Phone(phone) => json!({"phone": phone.as_str()}),
    }
}

fn profile_body(profile: &Profile) -> Value {
    let mut body = Map::new();
    let texts = [
        ("name", &profile.name),
        ("email", &profile.email),
        ("gender", &profile.gender),
        ("city", &profile.city),
    ];
    for (key, value) in texts {
        if let Some(value) = value {
            body.insert(key.into(), value.as_str().into());
        }
    }
    if let Some(birthday) = profile.birthday {
        body.insert(
            "birthday".into(),
            birthday.format("%Y-%m-%d").to_string().into(),
        );
    }
    if !profile.tags.is_empty() {
        body.insert("tags".into(), profile.tags.clone().into());
    }
    if !profile.attributes.is_empty() {
        body.insert(
            "attributes".into(),
            Value::Object(profile.attributes.clone()),
        );
    }
    Value::Object(body)
}

/// SHA-256 of the canonical JSON (keys sorted, no spaces): the same event sent twice with its
/// fields in another order is the same body.
pub fn body_hash(value: &Value) -> String {
    hex::encode(Sha256::digest(
        serde_json::to_vec(value).expect("JSON values serialise"),
    ))
}

/// A voucher code as typed (any case, with hyphens or spaces) in the form it is stored.
pub fn voucher_code(text: &str) -> Result<String, AppError> {
    let code = text.trim().to_ascii_uppercase().replace(['-', ' '], "");
    if code.is_empty()
        || code.len() > VOUCHER_CODE_LENGTH_MAX
        || !code.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(AppError::invalid("code", "not a voucher code"));
    }
    Ok(code)
}

/// A command with the sender's id for it.
#[derive(Clone, Debug, PartialEq)]
pub struct Sending {
    /// The sender's id (a receipt number): a resend with the same id and body gets the
    /// first answer and records nothing twice.
    pub id: EventId,
    /// When it happened; now when not given.
    pub occurred_at: Option<Timestamp>,
    /// The hash of the body as the API received it; when `None`, the hash of the command's
    /// canonical body.
    pub body_hash: Option<String>,
    pub command: Command,
}

impl Sending {
    pub fn new(id: EventId, command: impl Into<Command>) -> Sending {
        Sending {
            id,
            occurred_at: None,
            body_hash: None,
            command: command.into(),
        }
    }

    /// Checks `grant` may send it and builds the journal's event: the grant's tenant, the
    /// grant as the sender, its store as the scope. A till's key may only send its own
    /// store's sales and voucher uses, and may not change points or tiers by hand; which of
    /// its refunds, voids and voucher actions concern its store the journal decides
    /// (`store_scope`).
    pub fn prepare(self, grant: &Grant, now: Timestamp) -> Result<IncomingEvent, AppError> {
        grant.require(self.command.permission())?;
        if let Some(own) = &grant.store_code {
            let named = match &self.command {
                Command::Purchase(command) => Some(command.purchase.store.as_deref()),
                Command::UseVoucher(command) => Some(command.store.as_deref()),
                Command::AdjustPoints(_) | Command::HoldTier(_) => {
                    return Err(AppError::forbidden(
                        "a store's key may not change members' points or tiers",
                        Some("type"),
                    ))
                }
                _ => None,
            };
            if named.is_some_and(|named| named != Some(own.as_str())) {
                return Err(AppError::forbidden(
                    format!("this key may only record sales of store `{own}`"),
                    Some("store"),
                ));
            }
        }
        Ok(self.into_event(
            grant.tenant_id,
            &grant.actor.0,
            grant.store_code.clone(),
            now,
        ))
    }

    /// The journal's event, sent by `actor`, without asking who may send it.
    pub(crate) fn into_event(
        self,
        tenant_id: TenantId,
        actor: &str,
        store_scope: Option<String>,
        now: Timestamp,
    ) -> IncomingEvent {
        let body_hash = match self.body_hash {
            Some(hash) => hash,
            None => body_hash(&self.command.canonical_body(&self.id, self.occurred_at)),
        };
        IncomingEvent {
            tenant_id,
            id: self.id,
            occurred_at: self.occurred_at.unwrap_or(now),
            body_hash,
            kind: self.command.into_kind(actor),
            actor: Some(actor.to_owned()),
            store_scope,
        }
    }
}
