//! Reads for CSV exports, a page at a time with keyset pagination, so an export of any size
//! holds one page in memory: members by id, ledger entries by transaction id, outstanding
//! points by expiry instant.

use crate::{binds, Store, StoreError};
use patron_core::time::{from_micros, to_micros, Timestamp};
use patron_core::TenantId;

/// Most rows (members, transactions, expiry instants) read in one page.
pub const EXPORT_PAGE_MAX: i64 = 5_000;

/// `text` as a CSV field a spreadsheet shows as text: a value that starts like a formula (`=`,
/// `+`, `-`, `@`, tab or carriage return) gets an apostrophe first, unless it is a plain
/// integer (`-500`, `+84912345678`), which a spreadsheet reads as the number it is. Every CSV
/// Patron writes (API and CLI exports, the dashboard's downloads, rejected-row files) passes
/// each field through here.
pub fn spreadsheet_safe(text: &str) -> std::borrow::Cow<'_, str> {
    let formula_like = text.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if formula_like && text.parse::<i64>().is_err() {
        std::borrow::Cow::Owned(format!("'{text}"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// A member as exported.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberExport {
    pub id: String,
    pub phone: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub birthday: Option<String>,
    pub gender: Option<String>,
    pub city: Option<String>,
    pub tags: Vec<String>,
    pub tier: String,
    pub balance: i64,
    pub lifetime_spend: i64,
    pub order_count: i64,
    pub created_at: Timestamp,
}

/// One ledger entry with its transaction.
#[derive(Clone, Debug, PartialEq)]
pub struct LedgerExport {
    pub transaction_id: String,
    pub member_id: String,
    pub kind: String,
    /// The transaction's reason, as stored (JSON).
    pub reason: String,
    pub account: String,
    pub amount: i64,
    pub occurred_at: Timestamp,
    /// `points`, `money` or `stamps:<card>`.
    pub asset: String,
}

/// Outstanding points that expire at one instant (`None`: never, or debt).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LiabilityExport {
    pub expires_at: Option<Timestamp>,
    pub points: i64,
}

impl Store {
    /// Members of `tenant_id` (erased ones left out) with ids after `after`, by id.
    pub async fn export_members_page(
        &self,
        tenant_id: TenantId,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<MemberExport>, StoreError> {
        let rows = self
            .db
            .fetch(
                "SELECT id, phone, name, email, birthday, gender, city, tags, tier, points_balance, lifetime_spend, \
                 order_count, created_at FROM members WHERE tenant_id = $1 AND id > $2 AND erased_at IS NULL \
                 ORDER BY id LIMIT $3",
                binds![
                    tenant_id.to_string(),
                    after.unwrap_or(""),
                    limit.clamp(1, EXPORT_PAGE_MAX),
                ],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(MemberExport {
                    id: row.text("id")?,
                    phone: row.opt_text("phone")?,
                    name: row.opt_text("name")?,
                    email: row.opt_text("email")?,
                    birthday: row.opt_text("birthday")?,
                    gender: row.opt_text("gender")?,
                    city: row.opt_text("city")?,
                    tags: serde_json::from_str(&row.text("tags")?)
                        .map_err(|error| StoreError::Corrupt(format!("member tags: {error}")))?,
                    tier: row.text("tier")?,
                    balance: row.int("points_balance")?,
                    lifetime_spend: row.int("lifetime_spend")?,
                    order_count: row.int("order_count")?,
                    created_at: from_micros(row.int("created_at")?),
                })
            })
            .collect()
    }

    /// The entries of up to `limit` ledger transactions of `tenant_id` with ids after `after`,
    /// by transaction id; the caller's next cursor is the last row's transaction id.
    pub async fn export_ledger_page(
        &self,
        tenant_id: TenantId,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<LedgerExport>, StoreError> {
        let rows = self
            .db
            .fetch(
                "SELECT t.id AS transaction_id, t.member_id AS member_id, t.kind AS kind, t.reason AS reason, \
                 e.account AS account, e.amount AS amount, t.occurred_at AS occurred_at, e.asset AS asset \
                 FROM ledger_transactions t JOIN ledger_entries e ON e.transaction_id = t.id \
                 WHERE t.id IN (SELECT id FROM ledger_transactions WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3) \
                 ORDER BY t.id, e.asset, e.account, e.amount",
                binds![
                    tenant_id.to_string(),
                    after.unwrap_or(""),
                    limit.clamp(1, EXPORT_PAGE_MAX),
                ],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(LedgerExport {
                    transaction_id: row.text("transaction_id")?,
                    member_id: row.text("member_id")?,
                    kind: row.text("kind")?,
                    reason: row.text("reason")?,
                    account: row.text("account")?,
                    amount: row.int("amount")?,
                    occurred_at: from_micros(row.int("occurred_at")?),
                    asset: row.text("asset")?,
                })
            })
            .collect()
    }

    /// Points left in lots of `tenant_id`, summed per expiry instant after `after` (exclusive),
    /// earliest first. Lots that never expire are summed by [`Store::export_liability_never`].
    pub async fn export_liability_page(
        &self,
        tenant_id: TenantId,
        after: Option<Timestamp>,
        limit: i64,
    ) -> Result<Vec<LiabilityExport>, StoreError> {
        let rows = self
            .db
            .fetch(
                "SELECT expires_at, SUM(remaining) AS points FROM lots \
                 WHERE tenant_id = $1 AND asset = 'points' AND remaining <> 0 AND expires_at IS NOT NULL AND expires_at > $2 \
                 GROUP BY expires_at ORDER BY expires_at LIMIT $3",
                binds![
                    tenant_id.to_string(),
                    after.map(to_micros).unwrap_or(i64::MIN),
                    limit.clamp(1, EXPORT_PAGE_MAX),
                ],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(LiabilityExport {
                    expires_at: Some(from_micros(row.int("expires_at")?)),
                    points: row.int("points")?,
                })
            })
            .collect()
    }

    /// Points left in lots of `tenant_id` that never expire (debt lots included).
    pub async fn export_liability_never(&self, tenant_id: TenantId) -> Result<i64, StoreError> {
        self.db
            .fetch_one(
                "SELECT COALESCE(SUM(remaining), 0) AS points FROM lots \
                 WHERE tenant_id = $1 AND asset = 'points' AND remaining <> 0 AND expires_at IS NULL",
                binds![tenant_id.to_string()],
            )
            .await?
            .int("points")
    }
}

#[cfg(test)]
mod tests {
    use super::spreadsheet_safe;

    #[test]
    fn formula_like_text_is_defused_and_numbers_are_kept() {
        for (text, safe) in [
            (
                "=HYPERLINK(\"http://x\",\"y\")",
                "'=HYPERLINK(\"http://x\",\"y\")",
            ),
            ("+1+2", "'+1+2"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\t=1", "'\t=1"),
            ("\r=1", "'\r=1"),
            ("-500", "-500"),
            ("+84912345678", "+84912345678"),
            ("Trần Thị An", "Trần Thị An"),
            ("a=b", "a=b"),
            ("", ""),
        ] {
            assert_eq!(spreadsheet_safe(text), safe, "{text:?}");
        }
    }
}
