//! Figures for the owner's dashboard: members, purchases, points and rewards over a period and
//! a store. Each figure is one set-based query scoped by tenant; sums are integers (a whole
//! NUMERIC, PostgreSQL's SUM of BIGINT, reads as one); rates are left to the caller as basis
//! points.
//!
//! The engine sees only purchases that name a member (an unknown phone enrols one), so revenue
//! here is revenue from members; the store cannot tell what non-members spent.
//!
//! A period is `[from, until)` in instants; the caller turns local days into instants in the
//! tenant's zone. Series (per day, week or month) take their bucket boundaries from the caller
//! too, so local days are exact in any zone: one `CASE` maps each row to its bucket.

mod kept;

use crate::db::Row;
use crate::sql::Bind;
use crate::{binds, Store, StoreError};
use patron_core::time::{from_micros, to_micros, Timestamp};
use patron_core::{MemberId, TenantId};

/// Most buckets in one series (bars in a chart, months of liability).
pub const SERIES_BUCKETS_MAX: usize = 64;
/// Most rewards in the top-rewards table.
pub const TOP_REWARDS_MAX: i64 = 10;

/// Which figures: a tenant, a period `[from, until)`, and optionally one store.
#[derive(Clone, Debug)]
pub struct StatsQuery {
    pub tenant_id: TenantId,
    pub from: Timestamp,
    pub until: Timestamp,
    /// A store's code: purchases there, and points of those purchases. `None`: every store.
    pub store: Option<String>,
}

/// The headline figures of a period.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Overview {
    /// Members enrolled before the period's end and not erased (every store).
    pub members: i64,
    /// Members enrolled in the period and not erased (every store).
    pub new_members: i64,
    /// Members with at least one purchase in the period.
    pub active_members: i64,
    /// Members with at least two purchases in the period.
    pub repeat_members: i64,
    pub purchases: i64,
    /// What the period's purchases came to, less what was refunded of them since.
    pub revenue: i64,
    pub points: PointsFlow,
    /// Points members hold now (positive lots, pending included), every store.
    pub outstanding_points: i64,
    /// Vouchers issued and not yet used, cancelled or expired, and the points they hold.
    pub outstanding_vouchers: i64,
    pub outstanding_voucher_points: i64,
    /// What members hold of other assets now, by asset name (`money`: store credit in
    /// minor units; `stamps:<card>`: stamps), those held at all.
    pub outstanding_holdings: Vec<(String, i64)>,
}

impl Overview {
    /// Members with two purchases or more per member with one or more, in basis points.
    pub fn repeat_rate_basis_points(&self) -> Option<i64> {
        basis_points(self.repeat_members, self.active_members)
    }
}

/// Points that moved on members' accounts, by why.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PointsFlow {
    /// Earned (purchases, engagement, sign-up).
    pub issued: i64,
    /// Spent: paid at the till, and turned into vouchers (less vouchers cancelled).
    pub redeemed: i64,
    /// Left to expire in their lots (breakage).
    pub expired: i64,
    /// Taken back by refunds.
    pub taken_back: i64,
    /// Manual adjustments by staff, net (may be negative).
    pub adjusted: i64,
}

impl PointsFlow {
    /// Points redeemed per point issued, in basis points.
    pub fn redemption_rate_basis_points(&self) -> Option<i64> {
        basis_points(self.redeemed, self.issued)
    }

    /// Adds one ledger transaction kind's net change of members' balances.
    fn add(&mut self, kind: &str, net: i64) {
        match kind {
            "earn" => self.issued = self.issued.saturating_add(net),
            "payment" | "payment_return" | "redemption" | "voucher_cancel" => {
                self.redeemed = self.redeemed.saturating_sub(net)
            }
            "expiry" => self.expired = self.expired.saturating_sub(net),
            "clawback" => self.taken_back = self.taken_back.saturating_sub(net),
            "adjustment" => self.adjusted = self.adjusted.saturating_add(net),
            _ => {}
        }
    }
}

/// `part / whole` in basis points (1/100 of a percent), rounded half up; `None` when `whole`
/// is not positive.
pub fn basis_points(part: i64, whole: i64) -> Option<i64> {
    if whole <= 0 {
        return None;
    }
    let scaled = i128::from(part) * 10_000;
    let whole = i128::from(whole);
    Some(((scaled * 2 + whole) / (whole * 2)) as i64)
}

/// Purchases of the period by the tier the buyer held when buying (purchases stored before
/// version 11 of the schema: the member's tier then), with the members in each tier now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TierSpend {
    pub tier: String,
    /// Members in the tier now (every store, erased left out).
    pub members: i64,
    pub buyers: i64,
    pub purchases: i64,
    pub revenue: i64,
}

impl TierSpend {
    /// Average spend per visit, rounded half up; `None` without purchases.
    pub fn average_per_visit(&self) -> Option<i64> {
        (self.purchases > 0).then(|| {
            let (revenue, purchases) = (i128::from(self.revenue), i128::from(self.purchases));
            ((revenue * 2 + purchases) / (purchases * 2)) as i64
        })
    }
}

/// A reward and the vouchers taken for it in the period (cancelled ones left out).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RewardCount {
    pub reward_id: String,
    pub name: String,
    pub vouchers: i64,
    pub points: i64,
    pub used: i64,
}

/// One bucket of a series.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bucket {
    pub from: Option<Timestamp>,
    pub purchases: i64,
    pub revenue: i64,
    pub points: PointsFlow,
}

impl Bucket {
    /// An empty bucket starting at each boundary but the last.
    fn empty_between(boundaries: &[Timestamp]) -> Vec<Bucket> {
        boundaries[..boundaries.len() - 1]
            .iter()
            .map(|from| Bucket {
                from: Some(*from),
                ..Bucket::default()
            })
            .collect()
    }
}

/// Outstanding points by when they expire: one figure per bucket between the boundaries, and
/// what lies before the first, after the last, and never expires.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LiabilityByExpiry {
    /// Points expiring before the first boundary.
    pub before: i64,
    /// `buckets[i]`: points expiring in `[boundaries[i], boundaries[i + 1])`.
    pub buckets: Vec<i64>,
    /// Points expiring at or after the last boundary.
    pub later: i64,
    /// Points that never expire.
    pub never: i64,
    /// The boundaries, in microseconds.
    bounds: Vec<i64>,
}

impl LiabilityByExpiry {
    /// Empty, with a bucket between each two of `boundaries` (checked by the caller).
    fn cut_by(boundaries: &[Timestamp]) -> LiabilityByExpiry {
        LiabilityByExpiry {
            buckets: vec![0; boundaries.len() - 1],
            bounds: boundaries.iter().map(|at| to_micros(*at)).collect(),
            ..LiabilityByExpiry::default()
        }
    }

    /// Adds points expiring at `expires_at` (`None`: never).
    fn add(&mut self, expires_at: Option<i64>, points: i64) {
        let Some(expires_at) = expires_at else {
            self.never = self.never.saturating_add(points);
            return;
        };
        // How many boundaries are at or before the expiry: 0 is before the first.
        let bucket = match self.bounds.partition_point(|bound| *bound <= expires_at) {
            0 => &mut self.before,
            index if index >= self.bounds.len() => &mut self.later,
            index => &mut self.buckets[index - 1],
        };
        *bucket = bucket.saturating_add(points);
    }
}

/// What the profile page shows beside the member's balances.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberFigures {
    /// When their personal data was erased (Decree 13/2023).
    pub erased_at: Option<Timestamp>,
    pub first_purchase_at: Option<Timestamp>,
    pub last_purchase_at: Option<Timestamp>,
}

/// `$n = ''` lets one statement serve "every store" and "this store" with the same binds.
const PURCHASES: &str = "FROM events e WHERE e.tenant_id = $1 AND e.kind = 'purchase' \
     AND e.occurred_at >= $2 AND e.occurred_at < $3 AND ($4 = '' OR e.store_code = $4)";

/// Members' entries of the period's transactions; with a store, only those of its events.
const MEMBER_ENTRIES: &str = "FROM ledger_transactions t \
     JOIN ledger_entries l ON l.transaction_id = t.id AND l.account = 'member' AND l.asset = 'points' \
     WHERE t.tenant_id = $1 AND t.occurred_at >= $2 AND t.occurred_at < $3 \
     AND ($4 = '' OR EXISTS (SELECT 1 FROM events s WHERE s.tenant_id = t.tenant_id \
     AND s.event_id = t.event_id AND s.store_code = $4))";

/// `CASE WHEN column < $first THEN 0 WHEN column < $first+1 THEN 1 … ELSE count END`.
/// With no boundaries every row is in bucket 0.
fn bucket_case(column: &str, first_placeholder: usize, count: usize) -> String {
    if count == 0 {
        return "0".to_owned();
    }
    let mut sql = String::from("CASE");
    for index in 0..count {
        sql.push_str(&format!(
            " WHEN {column} < ${} THEN {index}",
            first_placeholder + index
        ));
    }
    sql.push_str(&format!(" ELSE {count} END"));
    sql
}

fn check_buckets(boundaries: &[Timestamp]) -> Result<(), StoreError> {
    if boundaries.len() < 2 || boundaries.len() > SERIES_BUCKETS_MAX + 1 {
        return Err(StoreError::invalid(
            "boundaries",
            format!("2 to {} boundaries", SERIES_BUCKETS_MAX + 1),
        ));
    }
    if boundaries.windows(2).any(|pair| pair[0] >= pair[1]) {
        return Err(StoreError::invalid("boundaries", "must rise"));
    }
    Ok(())
}

impl StatsQuery {
    fn binds(&self) -> Vec<Bind> {
        vec![
            self.tenant_id.to_string().into(),
            to_micros(self.from).into(),
            to_micros(self.until).into(),
            self.store.clone().unwrap_or_default().into(),
        ]
    }
}

/// A purchase's amount net of refunds.
const NET_AMOUNT: &str = "e.amount - COALESCE(e.refunded_amount, 0)";

/// Where a sum is split so neither half overflows a BIGINT: SQLite fails a `SUM` past `i64`
/// and PostgreSQL's `CAST` of a larger NUMERIC does too. One event's amount is at most 10^15
/// (the server's `AMOUNT_MAX`) and a balance at most 10^12 points, so a row adds at most 10^9
/// to the high half and less than 10^6 to the low one: more than 9 × 10^9 rows are needed to
/// overflow either, while the whole may well pass `i64` after 10^4 rows.
pub(crate) const SUM_SPLIT: i64 = 1_000_000;

/// `SUM(expression)` as two BIGINT columns `{name}_high` and `{name}_low`,
/// `expression / SUM_SPLIT` and `% SUM_SPLIT` summed apart (both databases truncate toward
/// zero, so the halves add back exactly); read them with [`joined_sum`].
pub(crate) fn split_sum(expression: &str, name: &str) -> String {
    format!(
        "CAST(COALESCE(SUM(({expression}) / {SUM_SPLIT}), 0) AS BIGINT) AS {name}_high, \
         CAST(COALESCE(SUM(({expression}) % {SUM_SPLIT}), 0) AS BIGINT) AS {name}_low"
    )
}

/// The sum [`split_sum`] gave as `name`, held within `i64`.
fn joined_sum(row: &Row, name: &str) -> Result<i64, StoreError> {
    let high = row.int(&format!("{name}_high"))?;
    let low = row.int(&format!("{name}_low"))?;
    let whole = i128::from(high) * i128::from(SUM_SPLIT) + i128::from(low);
    Ok(whole.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64)
}

/// The bucket a row of a series names in its `bucket` column (`None` past the last).
fn bucket_of<'b>(
    buckets: &'b mut [Bucket],
    row: &Row,
) -> Result<Option<&'b mut Bucket>, StoreError> {
    let index = row.int("bucket")?;
    Ok(usize::try_from(index)
        .ok()
        .and_then(|index| buckets.get_mut(index)))
}

impl Store {
    /// The headline figures of `query`'s period, read from the tables themselves: slow at
    /// scale, and the reference [`Store::overview`]'s kept figures are tested against.
    pub async fn overview_scanned(&self, query: &StatsQuery) -> Result<Overview, StoreError> {
        // Every statement is an aggregate without GROUP BY: one row each.
        let tenant = || binds![query.tenant_id.to_string()];
        let purchases_sql = format!(
            "SELECT COUNT(*) AS purchases, COUNT(DISTINCT e.member_id) AS buyers, {} {PURCHASES}",
            split_sum(NET_AMOUNT, "revenue")
        );
        let repeat_sql = format!(
            "SELECT COUNT(*) AS repeaters FROM (SELECT e.member_id {PURCHASES} GROUP BY e.member_id \
             HAVING COUNT(*) >= 2) repeaters"
        );
        let flow_sql = format!(
            "SELECT t.kind AS kind, {} {MEMBER_ENTRIES} GROUP BY t.kind",
            split_sum("l.amount", "net")
        );
        let outstanding_sql = format!(
            "SELECT asset, {} FROM lots WHERE tenant_id = $1 AND remaining > 0 GROUP BY asset ORDER BY asset",
            split_sum("remaining", "points")
        );
        let vouchers_sql = format!(
            "SELECT COUNT(*) AS vouchers, {} FROM vouchers WHERE tenant_id = $1 AND status = 'issued'",
            split_sum("cost", "points")
        );
        // Independent reads, on as many pooled connections at once.
        let (members, purchases, repeat, flow, outstanding, vouchers) = tokio::try_join!(
            self.db.fetch_one(
                "SELECT COUNT(*) AS members, \
                 COALESCE(SUM(CASE WHEN created_at >= $1 THEN 1 ELSE 0 END), 0) AS new_members \
                 FROM members WHERE tenant_id = $2 AND created_at < $3 AND erased_at IS NULL",
                binds![
                    to_micros(query.from),
                    query.tenant_id.to_string(),
                    to_micros(query.until),
                ],
            ),
            self.db.fetch_one(&purchases_sql, query.binds()),
            self.db.fetch_one(&repeat_sql, query.binds()),
            self.db.fetch(&flow_sql, query.binds()),
            self.db.fetch(&outstanding_sql, tenant()),
            self.db.fetch_one(&vouchers_sql, tenant()),
        )?;
        let mut points = PointsFlow::default();
        for row in &flow {
            points.add(&row.text("kind")?, joined_sum(row, "net")?);
        }
        let mut outstanding_points = 0;
        let mut outstanding_holdings = Vec::new();
        for row in &outstanding {
            match (row.text("asset")?, joined_sum(row, "points")?) {
                (asset, held) if asset == "points" => outstanding_points = held,
                (_, 0) => {}
                (asset, held) => outstanding_holdings.push((asset, held)),
            }
        }
        Ok(Overview {
            members: members.int("members")?,
            new_members: members.int("new_members")?,
            active_members: purchases.int("buyers")?,
            repeat_members: repeat.int("repeaters")?,
            purchases: purchases.int("purchases")?,
            revenue: joined_sum(&purchases, "revenue")?,
            points,
            outstanding_points,
            outstanding_vouchers: vouchers.int("vouchers")?,
            outstanding_voucher_points: joined_sum(&vouchers, "points")?,
            outstanding_holdings,
        })
    }

    /// Purchases, revenue and points per bucket: `boundaries` (rising, 2 to 65) cut
    /// `[boundaries[0], boundaries[last])` into buckets; `query.from` and `until` are ignored.
    pub async fn series_scanned(
        &self,
        query: &StatsQuery,
        boundaries: &[Timestamp],
    ) -> Result<Vec<Bucket>, StoreError> {
        check_buckets(boundaries)?;
        let inner = &boundaries[1..boundaries.len() - 1];
        let bounded = StatsQuery {
            from: boundaries[0],
            until: boundaries[boundaries.len() - 1],
            ..query.clone()
        };
        let mut values = bounded.binds();
        values.extend(inner.iter().map(|at| Bind::from(to_micros(*at))));
        let mut buckets = Bucket::empty_between(boundaries);
        // The rows are chosen in a `WITH` and bucketed after it, so `$1` to `$4` stand before
        // the boundaries `$5`… in the statement (SQLite numbers `$n` by first appearance).
        let purchases_sql = format!(
            "WITH purchases AS (SELECT e.occurred_at AS occurred_at, {NET_AMOUNT} AS net {PURCHASES}) \
             SELECT {} AS bucket, COUNT(*) AS purchases, {} FROM purchases GROUP BY 1",
            bucket_case("occurred_at", 5, inner.len()),
            split_sum("net", "revenue")
        );
        let points_sql = format!(
            "WITH entries AS (SELECT t.occurred_at AS occurred_at, t.kind AS kind, l.amount AS amount \
             {MEMBER_ENTRIES}) \
             SELECT {} AS bucket, kind, {} FROM entries GROUP BY 1, kind",
            bucket_case("occurred_at", 5, inner.len()),
            split_sum("amount", "net")
        );
        let (purchases, points) = tokio::try_join!(
            self.db.fetch(&purchases_sql, values.clone()),
            self.db.fetch(&points_sql, values),
        )?;
        for row in purchases {
            if let Some(bucket) = bucket_of(&mut buckets, &row)? {
                bucket.purchases = row.int("purchases")?;
                bucket.revenue = joined_sum(&row, "revenue")?;
            }
        }
        for row in points {
            if let Some(bucket) = bucket_of(&mut buckets, &row)? {
                bucket
                    .points
                    .add(&row.text("kind")?, joined_sum(&row, "net")?);
            }
        }
        Ok(buckets)
    }

    /// The period's purchases by the buyers' tier now, with every tier's member count; tiers
    /// in code order (the caller orders them as the programme does).
    pub async fn spend_by_tier_scanned(
        &self,
        query: &StatsQuery,
    ) -> Result<Vec<TierSpend>, StoreError> {
        let mut tiers: Vec<TierSpend> = self
            .db
            .fetch(
                "SELECT tier, COUNT(*) AS members FROM members WHERE tenant_id = $1 AND erased_at IS NULL \
                 GROUP BY tier ORDER BY tier",
                binds![query.tenant_id.to_string()],
            )
            .await?
            .iter()
            .map(|row| {
                Ok(TierSpend {
                    tier: row.text("tier")?,
                    members: row.int("members")?,
                    buyers: 0,
                    purchases: 0,
                    revenue: 0,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        let rows = self
            .db
            .fetch(
                &format!(
                    "SELECT COALESCE(e.tier, '') AS tier, COUNT(DISTINCT e.member_id) AS buyers, COUNT(*) AS purchases, {} \
                     {PURCHASES} GROUP BY 1",
                    split_sum(NET_AMOUNT, "revenue"),
                ),
                query.binds(),
            )
            .await?;
        for row in rows {
            let tier = row.text("tier")?;
            let position = match tiers.iter().position(|entry| entry.tier == tier) {
                Some(position) => position,
                None => {
                    tiers.push(TierSpend {
                        tier,
                        members: 0,
                        buyers: 0,
                        purchases: 0,
                        revenue: 0,
                    });
                    tiers.len() - 1
                }
            };
            let entry = &mut tiers[position];
            entry.buyers = row.int("buyers")?;
            entry.purchases = row.int("purchases")?;
            entry.revenue = joined_sum(&row, "revenue")?;
        }
        Ok(tiers)
    }

    /// The rewards most taken in the period (vouchers issued, cancelled ones left out), most
    /// first, at most [`TOP_REWARDS_MAX`]. Redemptions name no store, so every store counts.
    pub async fn top_rewards_scanned(
        &self,
        query: &StatsQuery,
    ) -> Result<Vec<RewardCount>, StoreError> {
        let rows = self
            .db
            .fetch(
                &format!(
                    "SELECT v.reward_id AS reward_id, r.name AS name, COUNT(*) AS vouchers, \
                     COALESCE(SUM(CASE WHEN v.status = 'used' THEN 1 ELSE 0 END), 0) AS used, {} \
                     FROM vouchers v JOIN rewards r ON r.id = v.reward_id \
                     WHERE v.tenant_id = $1 AND v.issued_at >= $2 AND v.issued_at < $3 AND v.status <> 'cancelled' \
                     GROUP BY v.reward_id, r.name ORDER BY 3 DESC, 2, 1 LIMIT $4",
                    split_sum("v.cost", "points")
                ),
                binds![
                    query.tenant_id.to_string(),
                    to_micros(query.from),
                    to_micros(query.until),
                    TOP_REWARDS_MAX,
                ],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(RewardCount {
                    reward_id: row.text("reward_id")?,
                    name: row.text("name")?,
                    vouchers: row.int("vouchers")?,
                    points: joined_sum(row, "points")?,
                    used: row.int("used")?,
                })
            })
            .collect()
    }

    /// Points members hold now, by when they expire (see [`LiabilityByExpiry`]).
    pub async fn liability_by_expiry_scanned(
        &self,
        tenant_id: TenantId,
        boundaries: &[Timestamp],
    ) -> Result<LiabilityByExpiry, StoreError> {
        check_buckets(boundaries)?;
        // Expiry instants are few (ends of months, or days): group by the instant in the
        // index's order and bucket here, rather than a CASE on every lot.
        let rows = self
            .db
            .fetch(
                &format!(
                    "SELECT expires_at, {} FROM lots \
                     WHERE tenant_id = $1 AND remaining > 0 AND asset = 'points' GROUP BY expires_at",
                    split_sum("remaining", "points")
                ),
                binds![tenant_id.to_string()],
            )
            .await?;
        let mut liability = LiabilityByExpiry::cut_by(boundaries);
        for row in rows {
            // NULL: lots that never expire.
            liability.add(row.opt_int("expires_at")?, joined_sum(&row, "points")?);
        }
        Ok(liability)
    }

    /// A member's erasure and first and last purchase.
    pub async fn member_figures(
        &self,
        tenant_id: TenantId,
        member_id: MemberId,
    ) -> Result<MemberFigures, StoreError> {
        let values = || binds![tenant_id.to_string(), member_id.to_string()];
        let member = self
            .db
            .fetch_optional(
                "SELECT erased_at FROM members WHERE tenant_id = $1 AND id = $2",
                values(),
            )
            .await?
            .ok_or(StoreError::NotFound { what: "member" })?;
        // MIN and MAX are NULL when the member has no purchase.
        let purchases = self
            .db
            .fetch_one(
                "SELECT MIN(occurred_at) AS first_at, MAX(occurred_at) AS last_at FROM events \
                 WHERE tenant_id || '' = $1 AND member_id = $2 AND kind = 'purchase'",
                values(),
            )
            .await?;
        let at = |column: &str| Ok::<_, StoreError>(purchases.opt_int(column)?.map(from_micros));
        Ok(MemberFigures {
            erased_at: member.opt_int("erased_at")?.map(from_micros),
            first_purchase_at: at("first_at")?,
            last_purchase_at: at("last_at")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basis_points_round_half_up_and_refuse_an_empty_whole() {
        assert_eq!(basis_points(1, 3), Some(3_333));
        assert_eq!(basis_points(2, 3), Some(6_667));
        assert_eq!(basis_points(1, 2), Some(5_000));
        assert_eq!(basis_points(5, 5), Some(10_000));
        assert_eq!(basis_points(0, 7), Some(0));
        assert_eq!(basis_points(3, 0), None);
        assert_eq!(basis_points(i64::MAX, i64::MAX), Some(10_000));
    }

    #[test]
    fn buckets_are_cut_by_a_case_over_the_inner_boundaries() {
        assert_eq!(
            bucket_case("e.at", 5, 2),
            "CASE WHEN e.at < $5 THEN 0 WHEN e.at < $6 THEN 1 ELSE 2 END"
        );
        assert_eq!(bucket_case("e.at", 5, 0), "0");
    }

    #[test]
    fn points_flow_reads_each_kind_with_its_sign() {
        let mut flow = PointsFlow::default();
        flow.add("earn", 120);
        flow.add("payment", -20);
        flow.add("redemption", -50);
        flow.add("voucher_cancel", 10);
        flow.add("expiry", -5);
        flow.add("clawback", -3);
        flow.add("adjustment", -7);
        flow.add("voucher_use", 0);
        assert_eq!(
            flow,
            PointsFlow {
                issued: 120,
                redeemed: 60,
                expired: 5,
                taken_back: 3,
                adjusted: -7
            }
        );
        assert_eq!(flow.redemption_rate_basis_points(), Some(5_000));
    }
}
