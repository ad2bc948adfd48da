//! The double-entry ledger. Every change of a balance is a transaction whose entries sum to zero
//! per asset. A member's balance is the sum of the entries on their account, always.

use crate::{MemberId, Points, TransactionId};
use serde::Serialize;

/// What a balance counts. Each asset has its own balances, lots, expiry and liability; a
/// transaction's entries sum to zero per asset.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Asset {
    /// The programme's points.
    Points,
    /// Money held for the member or on a card, in the tenant's minor units (đồng): cashback,
    /// store credit, gift card balances.
    Money,
    /// Stamps on one of the tenant's stamp cards, named by the card's code.
    Stamps(String),
}

/// Longest stamp card code in an asset's name.
pub const CARD_CODE_LENGTH_MAX: usize = 64;

impl Asset {
    /// The stored name: `points`, `money`, `stamps:<card>`.
    pub fn name(&self) -> std::borrow::Cow<'static, str> {
        match self {
            Asset::Points => "points".into(),
            Asset::Money => "money".into(),
            Asset::Stamps(card) => format!("stamps:{card}").into(),
        }
    }

    /// Reads a stored name; `None` for anything else (a card code must be 1 to
    /// `CARD_CODE_LENGTH_MAX` letters, digits, `-` or `_`).
    pub fn parse(text: &str) -> Option<Asset> {
        match text {
            "points" => Some(Asset::Points),
            "money" => Some(Asset::Money),
            _ => {
                let card = text.strip_prefix("stamps:")?;
                let valid = !card.is_empty()
                    && card.len() <= CARD_CODE_LENGTH_MAX
                    && card
                        .bytes()
                        .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_');
                valid.then(|| Asset::Stamps(card.to_owned()))
            }
        }
    }
}

impl Serialize for Asset {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.name())
    }
}

/// An account in a tenant's ledger: one per member, and the tenant's own accounts that points
/// come from and go to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Account {
    /// The member's own points.
    Member(MemberId),
    /// Where earned points come from (the tenant's liability grows).
    Issued,
    /// Points paid at the till toward a bill.
    Payments,
    /// Points held by vouchers issued and not yet used, cancelled or expired.
    VouchersOutstanding,
    /// Points of vouchers used.
    Redeemed,
    /// Points of vouchers that expired unused.
    VoucherBreakage,
    /// Points that expired in their lots (breakage).
    Expired,
    /// Points taken back by refunds.
    Clawback,
    /// Manual adjustments by staff.
    Adjustments,
}

impl Account {
    /// The stored name; a member's account is `member` with the member id beside it.
    pub fn name(self) -> &'static str {
        match self {
            Account::Member(_) => "member",
            Account::Issued => "issued",
            Account::Payments => "payments",
            Account::VouchersOutstanding => "vouchers_outstanding",
            Account::Redeemed => "redeemed",
            Account::VoucherBreakage => "voucher_breakage",
            Account::Expired => "expired",
            Account::Clawback => "clawback",
            Account::Adjustments => "adjustments",
        }
    }

    pub fn member(self) -> Option<MemberId> {
        match self {
            Account::Member(member) => Some(member),
            _ => None,
        }
    }
}

/// One line of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub account: Account,
    pub asset: Asset,
    pub amount: i64,
}

/// Why a transaction happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TransactionKind {
    Earn,
    Payment,
    Redemption,
    VoucherUse,
    VoucherCancel,
    VoucherExpiry,
    Clawback,
    /// Points paid toward a bill, given back by its refund or void.
    PaymentReturn,
    Expiry,
    Adjustment,
}

impl TransactionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TransactionKind::Earn => "earn",
            TransactionKind::Payment => "payment",
            TransactionKind::Redemption => "redemption",
            TransactionKind::VoucherUse => "voucher_use",
            TransactionKind::VoucherCancel => "voucher_cancel",
            TransactionKind::VoucherExpiry => "voucher_expiry",
            TransactionKind::Clawback => "clawback",
            TransactionKind::PaymentReturn => "payment_return",
            TransactionKind::Expiry => "expiry",
            TransactionKind::Adjustment => "adjustment",
        }
    }
}

/// A balanced set of entries.
#[derive(Clone, Debug, PartialEq)]
pub struct Transaction {
    pub id: TransactionId,
    pub member_id: MemberId,
    pub kind: TransactionKind,
    pub entries: Vec<Entry>,
    /// What the member reads in their history: which rule, which rate, which reward.
    pub reason: serde_json::Value,
}

impl Transaction {
    /// Moves `points` from `from` to `to`. Positive amounts only; the direction carries the sign.
    pub fn transfer(
        member_id: MemberId,
        kind: TransactionKind,
        from: Account,
        to: Account,
        points: Points,
        reason: serde_json::Value,
    ) -> Transaction {
        assert!(points.0 > 0, "a transfer moves a positive amount");
        Transaction::transfer_of(member_id, kind, Asset::Points, from, to, points.0, reason)
    }

    /// Moves `amount` of `asset` from `from` to `to`. Positive amounts only.
    pub fn transfer_of(
        member_id: MemberId,
        kind: TransactionKind,
        asset: Asset,
        from: Account,
        to: Account,
        amount: i64,
        reason: serde_json::Value,
    ) -> Transaction {
        assert!(amount > 0, "a transfer moves a positive amount");
        let transaction = Transaction {
            id: TransactionId::new(),
            member_id,
            kind,
            entries: vec![
                Entry {
                    account: from,
                    asset: asset.clone(),
                    amount: -amount,
                },
                Entry {
                    account: to,
                    asset,
                    amount,
                },
            ],
            reason,
        };
        debug_assert!(transaction.is_balanced());
        transaction
    }

    /// Entries sum to zero for every asset (summed in i128: no entry sum can overflow).
    pub fn is_balanced(&self) -> bool {
        let mut sums: Vec<(&Asset, i128)> = Vec::new();
        for entry in &self.entries {
            match sums.iter_mut().find(|(asset, _)| **asset == entry.asset) {
                Some((_, sum)) => *sum += i128::from(entry.amount),
                None => sums.push((&entry.asset, i128::from(entry.amount))),
            }
        }
        sums.iter().all(|(_, sum)| *sum == 0)
    }

    /// How this transaction changes the member's own points.
    pub fn member_delta(&self) -> Points {
        Points(self.member_delta_of(&Asset::Points))
    }

    /// How this transaction changes the member's own holding of `asset`.
    pub fn member_delta_of(&self, asset: &Asset) -> i64 {
        self.entries
            .iter()
            .filter(|entry| matches!(entry.account, Account::Member(_)) && entry.asset == *asset)
            .map(|entry| entry.amount)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfers_balance() {
        let member = MemberId::new();
        let transaction = Transaction::transfer(
            member,
            TransactionKind::Earn,
            Account::Issued,
            Account::Member(member),
            Points(35),
            serde_json::Value::Null,
        );
        assert!(transaction.is_balanced());
        assert_eq!(transaction.member_delta(), Points(35));
    }
}
