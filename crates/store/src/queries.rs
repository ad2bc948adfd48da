//! Reads: members with balances and tier standing, history with reasons, rewards, vouchers, and
//! the ledger's own consistency check.

use crate::batch::{
    member_from, parse_member_id, reward_from, voucher_from, voucher_view, MEMBER_SELECT,
    REWARD_SELECT,
};
use crate::model::{HistoryEntry, HoldingView, MemberRef, MemberView, RewardView, VoucherView};
use crate::{binds, rfc3339, Store, StoreError};
use patron_core::ledger::Asset;
use patron_core::lots::{Lot, Lots};
use patron_core::member::{Holding, MemberState, PeriodTotals};
use patron_core::time::{from_micros, to_micros, Timestamp};
use patron_core::{tiers, Money, Points, TenantId};
use std::collections::BTreeMap;

/// Days ahead that "expiring soon" looks.
pub const EXPIRING_SOON_DAYS: i64 = 30;
/// Most history entries in one page.
pub const HISTORY_PAGE_MAX: i64 = 200;

/// Where a page of a member's history starts: the entries strictly older than one entry, in
/// the order pages are read (`occurred_at` descending, then transaction id descending). Unique
/// and stable, unlike an instant: any number of entries may share one microsecond.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HistoryCursor {
    pub occurred_at_micros: i64,
    /// Empty: every entry at `occurred_at_micros` is left out too (a page before an instant).
    pub transaction_id: String,
}

impl HistoryCursor {
    /// The entries strictly before `at`.
    pub fn before(at: Timestamp) -> HistoryCursor {
        HistoryCursor {
            occurred_at_micros: to_micros(at),
            transaction_id: String::new(),
        }
    }

    /// The text a client passes back: `<micros>_<transaction id>`, opaque to it.
    pub fn encode(&self) -> String {
        format!("{}_{}", self.occurred_at_micros, self.transaction_id)
    }

    /// Reads [`HistoryCursor::encode`]'s text; `None` when it is not one.
    pub fn parse(text: &str) -> Option<HistoryCursor> {
        let (micros, transaction_id) = text.split_once('_')?;
        let valid_id = transaction_id.len() <= 64
            && transaction_id
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-');
        if !valid_id {
            return None;
        }
        Some(HistoryCursor {
            occurred_at_micros: micros.parse().ok()?,
            transaction_id: transaction_id.to_owned(),
        })
    }
}

/// The ledger's own audit, as the property and crash tests read it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LedgerCheck {
    pub transactions: i64,
    /// Transactions whose entries do not sum to zero.
    pub unbalanced_transactions: i64,
    /// Members whose stored balance differs from the sum of their entries.
    pub balance_differs_from_entries: i64,
    /// Members whose stored balance differs from the sum of their lots.
    pub balance_differs_from_lots: i64,
    /// Members with a negative balance but no debt lot.
    pub negative_without_debt: i64,
    pub members: i64,
    pub events: i64,
}

impl LedgerCheck {
    pub fn is_sound(&self) -> bool {
        self.unbalanced_transactions == 0
            && self.balance_differs_from_entries == 0
            && self.balance_differs_from_lots == 0
            && self.negative_without_debt == 0
    }
}

impl Store {
    /// A member of `tenant_id` by id or phone, with balances and tier progress at `now`.
    pub async fn member(
        &self,
        tenant_id: TenantId,
        reference: &MemberRef,
        now: Timestamp,
    ) -> Result<MemberView, StoreError> {
        let state = self.member_state(tenant_id, reference).await?;
        let member_id = state.id.to_string();
        let settings = self.tenant(tenant_id).await?;
        let programme = settings
            .programme_at(now)
            .ok_or(StoreError::NotFound { what: "programme" })?;
        let soon = now + chrono::Duration::days(EXPIRING_SOON_DAYS);
        let zone = settings.zone;
        Ok(MemberView {
            id: member_id,
            phone: state
                .profile
                .phone
                .as_ref()
                .map(|phone| phone.as_str().to_owned()),
            email: state.profile.email.clone(),
            name: state.profile.name.clone(),
            birthday: state.profile.birthday.map(|day| day.to_string()),
            gender: state.profile.gender.clone(),
            city: state.profile.city.clone(),
            tags: state.profile.tags.clone(),
            attributes: state.profile.attributes.clone(),
            balance: state.balance.0,
            available: state.lots.available(now).0,
            pending: state.lots.pending(now).0,
            debt: state.lots.debt().0,
            expiring_soon: state.lots.expiring_by(now, soon).0,
            expiring_soon_until: rfc3339(soon, zone),
            tier: tiers::progress(programme, &state, now, zone),
            tier_held_until: state.tier_held_until.map(|at| rfc3339(at, zone)),
            holdings: holdings_of(&state, now, soon),
            lifetime_spend: state.lifetime_spend.0,
            currency: settings.currency.clone(),
            order_count: state.order_count,
            created_at: rfc3339(state.created_at, zone),
        })
    }

    /// A member's state as the engine sees it (for previews; writes go through the journal):
    /// the member's row with its open lots of points and its monthly totals, in one statement
    /// (one round trip, one snapshot), the lots and totals aggregated as JSON arrays.
    pub async fn member_state(
        &self,
        tenant_id: TenantId,
        reference: &MemberRef,
    ) -> Result<MemberState, StoreError> {
        let (array, element) = json_array_functions(self.backend);
        let details = format!(
            ", (SELECT COALESCE({array}({element}(l.id, l.earned, l.remaining, l.matures_at, l.expires_at, l.created_at, l.asset)), '[]') \
             FROM lots l WHERE l.member_id = members.id AND l.remaining <> 0) AS open_lots, \
             (SELECT COALESCE({array}({element}(p.month, p.spend, p.points)), '[]') \
             FROM member_periods p WHERE p.member_id = members.id) AS month_totals FROM members"
        );
        let select = MEMBER_SELECT.replacen(" FROM members", &details, 1);
        let (sql, key) = match reference {
            MemberRef::Id(id) => (
                format!("{select} WHERE tenant_id = $1 AND id = $2"),
                id.to_string(),
            ),
            MemberRef::Phone(phone) => (
                format!("{select} WHERE tenant_id = $1 AND phone = $2"),
                phone.as_str().to_owned(),
            ),
        };
        let row = self
            .db
            .fetch_optional(&sql, binds![tenant_id.to_string(), key])
            .await?
            .ok_or(StoreError::NotFound { what: "member" })?;
        let (_, mut state) = member_from(&row)?;
        let corrupt = |what: &'static str| {
            move |error: serde_json::Error| StoreError::Corrupt(format!("{what}: {error}"))
        };
        type LotCells = (String, i64, i64, i64, Option<i64>, i64, String);
        let cells: Vec<LotCells> =
            serde_json::from_str(&row.text("open_lots")?).map_err(corrupt("open lots"))?;
        // Every asset's open lots: points on the member, the others as holdings whose balance
        // is their lots' sum (the ledger check holds the stored balances to it).
        let mut lots_of: BTreeMap<Asset, Vec<Lot>> = BTreeMap::new();
        for (id, earned, remaining, matures_at, expires_at, created_at, asset) in cells {
            let asset = Asset::parse(&asset)
                .ok_or_else(|| StoreError::Corrupt(format!("lot asset {asset}")))?;
            lots_of.entry(asset).or_default().push(Lot {
                id: crate::batch::parse_lot_id(&id)?,
                earned: Points(earned),
                remaining: Points(remaining),
                matures_at: from_micros(matures_at),
                expires_at: expires_at.map(from_micros),
                created_at: from_micros(created_at),
            });
        }
        state.lots = Lots::new(lots_of.remove(&Asset::Points).unwrap_or_default());
        for (asset, lots) in lots_of {
            let lots = Lots::new(lots);
            let holding = Holding {
                balance: lots.total().0,
                lots,
                changed: false,
            };
            state.holdings.insert(asset, holding);
        }
        let totals: Vec<(i64, i64, i64)> =
            serde_json::from_str(&row.text("month_totals")?).map_err(corrupt("month totals"))?;
        for (month, spend, points) in totals {
            let month = i32::try_from(month)
                .map_err(|_| StoreError::Corrupt(format!("member period month {month}")))?;
            state.periods.insert(
                month,
                PeriodTotals {
                    spend: Money(spend),
                    points: Points(points),
                },
            );
        }
        Ok(state)
    }

    /// A member's ledger transactions, newest first, with the reason for each; `after` is the
    /// [`HistoryEntry::cursor`] of the previous page's last entry.
    pub async fn history(
        &self,
        tenant_id: TenantId,
        member_id: patron_core::MemberId,
        limit: i64,
        after: Option<&HistoryCursor>,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        let start = HistoryCursor {
            occurred_at_micros: i64::MAX,
            transaction_id: String::new(),
        };
        let after = after.unwrap_or(&start);
        let zone = self.tenant(tenant_id).await?.zone;
        let (array, element) = json_array_functions(self.backend);
        let rows = self
            .db
            .fetch(
                // Every asset's transactions: points, and store credit and stamps as
                // `holdings`. `tenant_id || ''` keeps the tenant out of the index choice:
                // without statistics SQLite took the tenant's whole occurred-at index (11.7 M
                // rows, 114 s a page at 10 M events) instead of the member's (0.7 ms). The same
                // shape is used for a member's rows elsewhere.
                &format!(
                    "SELECT t.id, t.kind, t.event_id, t.occurred_at, t.reason, \
                     (SELECT COALESCE({array}({element}(e.asset, e.amount)), '[]') FROM ledger_entries e \
                      WHERE e.transaction_id = t.id AND e.member_id = t.member_id) AS moved \
                     FROM ledger_transactions t WHERE t.tenant_id || '' = $1 AND t.member_id = $2 \
                     AND (t.occurred_at < $3 OR (t.occurred_at = $3 AND t.id < $4)) \
                     ORDER BY t.occurred_at DESC, t.id DESC LIMIT $5"
                ),
                binds![
                    tenant_id.to_string(),
                    member_id.to_string(),
                    after.occurred_at_micros,
                    &after.transaction_id,
                    limit.clamp(1, HISTORY_PAGE_MAX),
                ],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let id = row.text("id")?;
                let occurred_at = row.int("occurred_at")?;
                // What the transaction moved on the member's accounts, per asset.
                let entries: Vec<(String, i64)> = serde_json::from_str(&row.text("moved")?)
                    .map_err(|error| StoreError::Corrupt(format!("entries: {error}")))?;
                let mut moved: BTreeMap<String, i64> = BTreeMap::new();
                for (asset, amount) in entries {
                    let sum = moved.entry(asset).or_default();
                    *sum = sum.checked_add(amount).ok_or_else(|| {
                        StoreError::Corrupt(format!("transaction {id} moves more than a BIGINT"))
                    })?;
                }
                moved.retain(|asset, amount| *amount != 0 || asset == "points");
                Ok(HistoryEntry {
                    cursor: HistoryCursor {
                        occurred_at_micros: occurred_at,
                        transaction_id: id.clone(),
                    },
                    transaction_id: id,
                    kind: row.text("kind")?,
                    event_id: row.opt_text("event_id")?,
                    occurred_at: rfc3339(from_micros(occurred_at), zone),
                    reason: serde_json::from_str(&row.text("reason")?)
                        .map_err(|error| StoreError::Corrupt(format!("reason: {error}")))?,
                    points: moved.remove("points").unwrap_or(0),
                    holdings: moved,
                })
            })
            .collect()
    }

    /// The tenant's rewards; `offered_at` keeps only those offered then.
    pub async fn rewards(
        &self,
        tenant_id: TenantId,
        offered_at: Option<Timestamp>,
    ) -> Result<Vec<RewardView>, StoreError> {
        let zone = self.tenant(tenant_id).await?.zone;
        let sql = format!("{REWARD_SELECT} WHERE tenant_id = $1 ORDER BY cost, name");
        let rows = self.db.fetch(&sql, binds![tenant_id.to_string()]).await?;
        let mut rewards = Vec::new();
        for row in rows {
            let (_, reward) = reward_from(&row)?;
            if offered_at.is_some_and(|at| !reward.is_offered(at)) {
                continue;
            }
            rewards.push(RewardView {
                id: reward.id.to_string(),
                name: reward.name,
                description: reward.description,
                cost: reward.cost.0,
                stock: reward.stock,
                per_member_limit: reward.per_member_limit,
                valid_from: reward.valid_from.map(|at| rfc3339(at, zone)),
                valid_until: reward.valid_until.map(|at| rfc3339(at, zone)),
                stores: reward.stores,
                voucher_valid_days: reward.voucher_valid_days as i64,
                active: reward.active,
            });
        }
        Ok(rewards)
    }

    /// A member's vouchers, newest first.
    pub async fn vouchers(
        &self,
        tenant_id: TenantId,
        member_id: patron_core::MemberId,
    ) -> Result<Vec<VoucherView>, StoreError> {
        let zone = self.tenant(tenant_id).await?.zone;
        let rows = self
            .db
            .fetch(
                "SELECT v.code, v.tenant_id, v.member_id, v.reward_id, v.cost, v.status, v.redemption_transaction, \
                 v.allocations, v.issued_at, v.expires_at, v.used_at, v.used_store, r.name AS reward_name \
                 FROM vouchers v JOIN rewards r ON r.id = v.reward_id \
                 WHERE v.tenant_id = $1 AND v.member_id = $2 ORDER BY v.issued_at DESC",
                binds![tenant_id.to_string(), member_id.to_string()],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let (_, voucher) = voucher_from(row)?;
                Ok(voucher_view(&voucher, row.text("reward_name")?, zone))
            })
            .collect()
    }

    /// Checks the ledger of every tenant: balanced transactions, and every member's stored
    /// balance equal to the sum of their entries and to the sum of their lots.
    pub async fn check_ledger(&self) -> Result<LedgerCheck, StoreError> {
        // Each statement is one `COUNT(*) AS n`, which always gives one row.
        let count =
            |sql: String| async move { self.db.fetch_one(&sql, Vec::new()).await?.int("n") };
        Ok(LedgerCheck {
            transactions: count("SELECT COUNT(*) AS n FROM ledger_transactions".into()).await?,
            unbalanced_transactions: count(
                "SELECT COUNT(*) AS n FROM (SELECT transaction_id FROM ledger_entries GROUP BY transaction_id, asset \
                 HAVING SUM(amount) <> 0) unbalanced"
                    .into(),
            )
            .await?,
            balance_differs_from_entries: count(balances_differing_from(
                "SELECT member_id, asset, SUM(amount) FROM ledger_entries WHERE account = 'member' \
                 GROUP BY member_id, asset HAVING SUM(amount) <> 0",
            ))
            .await?,
            balance_differs_from_lots: count(balances_differing_from(
                "SELECT member_id, asset, SUM(remaining) FROM lots WHERE remaining <> 0 \
                 GROUP BY member_id, asset HAVING SUM(remaining) <> 0",
            ))
            .await?,
            negative_without_debt: count(
                "SELECT COUNT(*) AS n FROM members m WHERE m.points_balance < 0 AND NOT EXISTS \
                 (SELECT 1 FROM lots l WHERE l.member_id = m.id AND l.asset = 'points' AND l.remaining < 0)"
                    .into(),
            )
            .await?,
            members: count("SELECT COUNT(*) AS n FROM members".into()).await?,
            events: count("SELECT COUNT(*) AS n FROM events".into()).await?,
        })
    }

    /// Resolves a member reference to an id within a tenant.
    pub async fn member_id(
        &self,
        tenant_id: TenantId,
        reference: &MemberRef,
    ) -> Result<patron_core::MemberId, StoreError> {
        let (sql, key) = match reference {
            MemberRef::Id(id) => (
                "SELECT id FROM members WHERE tenant_id = $1 AND id = $2",
                id.to_string(),
            ),
            MemberRef::Phone(phone) => (
                "SELECT id FROM members WHERE tenant_id = $1 AND phone = $2",
                phone.as_str().to_owned(),
            ),
        };
        let row = self
            .db
            .fetch_optional(sql, binds![tenant_id.to_string(), key])
            .await?
            .ok_or(StoreError::NotFound { what: "member" })?;
        parse_member_id(&row.text("id")?)
    }
}

// ---------------------------------------------------------------------------------------------

/// `COUNT(*) AS n` of the (member, asset) pairs whose stored balance differs from `sums` (rows
/// of member, asset and a non-zero sum). Points are stored on the member, other assets in
/// `member_balances`. The pairs are those of the symmetric difference of the two, zeros left out
/// on both sides (a member with nothing and no entries is no difference); EXCEPT sorts or
/// hashes, where a full join of a million rows each way was slow on SQLite.
fn balances_differing_from(sums: &str) -> String {
    const STORED: &str = "SELECT id AS member_id, 'points' AS asset, points_balance AS amount FROM members \
        WHERE points_balance <> 0 UNION ALL SELECT member_id, asset, balance FROM member_balances WHERE balance <> 0";
    format!(
        "SELECT COUNT(*) AS n FROM (SELECT DISTINCT member_id, asset FROM ( \
         SELECT * FROM ({STORED} EXCEPT {sums}) stored_only \
         UNION ALL SELECT * FROM ({sums} EXCEPT SELECT * FROM ({STORED}) stored) summed_only) differences) pairs"
    )
}

/// The backend's JSON aggregate and row constructor: one statement returns a member's lots or
/// ledger entries as a JSON array of arrays.
fn json_array_functions(backend: crate::Backend) -> (&'static str, &'static str) {
    match backend {
        crate::Backend::Postgres => ("jsonb_agg", "jsonb_build_array"),
        crate::Backend::Sqlite => ("json_group_array", "json_array"),
    }
}

/// What a member holds of each asset other than points, for the views: balance, spendable
/// now, and what expires by `soon`.
fn holdings_of(state: &MemberState, now: Timestamp, soon: Timestamp) -> Vec<HoldingView> {
    state
        .holdings
        .iter()
        .filter(|(_, holding)| holding.balance != 0)
        .map(|(asset, holding)| HoldingView {
            asset: asset.name().into_owned(),
            balance: holding.balance,
            available: holding.lots.available(now).0,
            expiring_soon: holding.lots.expiring_by(now, soon).0,
        })
        .collect()
}
