//! The dashboard's figures read from what the writers keep ([`crate::figures`]): a few hundred
//! rows per report, whatever the number of events. Periods and buckets must start at local
//! midnights of the tenant's zone (the figures are kept per local day); the `*_scanned`
//! functions answer the same questions from the tables, and the tests hold the two equal.

use super::{
    check_buckets, Bucket, LiabilityByExpiry, Overview, PointsFlow, RewardCount, StatsQuery,
    TierSpend, TOP_REWARDS_MAX,
};
use crate::db::Row;
use crate::figures::{day_starting_at, figure, NEVER_EXPIRES};
use crate::{binds, Store, StoreError};
use patron_core::time::Timestamp;
use patron_core::TenantId;

/// Sums of daily figures, one row per figure, part and day.
struct DailySum {
    figure: String,
    part: String,
    day: i64,
    value: i128,
}

impl DailySum {
    fn from_row(row: &Row) -> Result<DailySum, StoreError> {
        Ok(DailySum {
            figure: row.text("figure")?,
            part: row.text("part")?,
            day: row.int("day")?,
            value: wide_sum(row)?,
        })
    }
}

/// `figure IN ('a', 'b')` of the figure names (constants of [`figure`], never user input).
fn figures_in(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|name| format!("'{name}'")).collect();
    format!("figure IN ({})", quoted.join(", "))
}

impl Store {
    /// The local day `at` starts in the tenant's zone; an error naming `field` otherwise.
    async fn day_of(
        &self,
        tenant_id: TenantId,
        at: Timestamp,
        field: &'static str,
    ) -> Result<i64, StoreError> {
        let zone = self.tenant(tenant_id).await?.zone;
        day_starting_at(zone, at)
            .ok_or_else(|| StoreError::invalid(field, "must be a local midnight of the tenant"))
    }

    /// Daily figures `names` summed per figure, part and day over `[from_day, until_day)`;
    /// with `store`, only that store's rows.
    async fn daily_sums(
        &self,
        tenant_id: TenantId,
        names: &[&str],
        store: Option<&str>,
        from_day: i64,
        until_day: i64,
    ) -> Result<Vec<DailySum>, StoreError> {
        let sql = format!(
            "SELECT figure, part, day, {} FROM daily_figures \
             WHERE tenant_id = $1 AND {} AND day >= $2 AND day < $3 AND ($4 = '' OR store_code = $4) \
             GROUP BY figure, part, day",
            split_high_low(),
            figures_in(names),
        );
        self.db
            .fetch(
                &sql,
                binds![
                    tenant_id.to_string(),
                    from_day,
                    until_day,
                    store.unwrap_or_default()
                ],
            )
            .await?
            .iter()
            .map(DailySum::from_row)
            .collect()
    }

    /// Purchases in `[from_day, until_day)` whose `nth` previous purchase in the scope is
    /// before `from_day`, per tier scope: with `nth` 1, the members who bought in the period;
    /// with 2, those members counted once more if they bought twice or more.
    async fn gap_sums(
        &self,
        tenant_id: TenantId,
        store: Option<&str>,
        nth: i64,
        from_day: i64,
        until_day: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        self.db
            .fetch(
                "SELECT tier_scope, CAST(COALESCE(SUM(purchases), 0) AS BIGINT) AS purchases FROM purchase_gaps \
                 WHERE tenant_id = $1 AND store_scope = $2 AND nth = $3 AND day >= $4 AND day < $5 \
                 AND before_day < $4 GROUP BY tier_scope",
                binds![
                    tenant_id.to_string(),
                    store.unwrap_or_default(),
                    nth,
                    from_day,
                    until_day
                ],
            )
            .await?
            .iter()
            .map(|row| Ok((row.text("tier_scope")?, row.int("purchases")?)))
            .collect()
    }

    /// Members who bought in the period and those who bought twice or more, per tier scope
    /// ("" for every tier).
    async fn buyers(
        &self,
        query: &StatsQuery,
        from_day: i64,
        until_day: i64,
    ) -> Result<Vec<(String, i64, i64)>, StoreError> {
        let store = query.store.as_deref();
        let (first, second) = tokio::try_join!(
            self.gap_sums(query.tenant_id, store, 1, from_day, until_day),
            self.gap_sums(query.tenant_id, store, 2, from_day, until_day),
        )?;
        Ok(first
            .into_iter()
            .map(|(tier, buyers)| {
                let up_to_two = second
                    .iter()
                    .find(|(scope, _)| *scope == tier)
                    .map_or(0, |(_, count)| *count);
                (tier, buyers, up_to_two - buyers)
            })
            .collect())
    }

    /// The headline figures of `query`'s period (from and until local midnights).
    pub async fn overview(&self, query: &StatsQuery) -> Result<Overview, StoreError> {
        let tenant_id = query.tenant_id;
        let from = self.day_of(tenant_id, query.from, "from").await?;
        let until = self.day_of(tenant_id, query.until, "until").await?;
        let store = query.store.as_deref();
        let (members, sales, buyers, lots) = tokio::try_join!(
            self.daily_sums(
                tenant_id,
                &[
                    figure::JOINED,
                    figure::ERASED,
                    figure::OPEN_VOUCHERS,
                    figure::OPEN_VOUCHER_POINTS
                ],
                None,
                i64::MIN,
                until,
            ),
            self.daily_sums(
                tenant_id,
                &[
                    figure::PURCHASES,
                    figure::AMOUNT,
                    figure::REFUNDED,
                    figure::POINTS
                ],
                store,
                from,
                until,
            ),
            self.buyers(query, from, until),
            self.lot_sums(tenant_id),
        )?;
        let mut overview = Overview::default();
        for sum in members {
            let value = clamp(sum.value);
            let counted = match sum.figure.as_str() {
                figure::JOINED => value,
                figure::ERASED => -value,
                figure::OPEN_VOUCHERS => {
                    overview.outstanding_vouchers += value;
                    continue;
                }
                _ => {
                    overview.outstanding_voucher_points += value;
                    continue;
                }
            };
            overview.members += counted;
            if sum.day >= from {
                overview.new_members += counted;
            }
        }
        let period = Sales::of(&sales);
        overview.purchases = period.purchases;
        overview.revenue = clamp(period.revenue);
        overview.points = period.points;
        if let Some((_, active, repeat)) = buyers.iter().find(|(tier, _, _)| tier.is_empty()) {
            overview.active_members = *active;
            overview.repeat_members = *repeat;
        }
        for (asset, held) in totals_by_asset(lots) {
            if asset == "points" {
                overview.outstanding_points = held;
            } else {
                overview.outstanding_holdings.push((asset, held));
            }
        }
        Ok(overview)
    }

    /// What positive lots hold: (asset, expiry instant or [`NEVER_EXPIRES`], amount).
    async fn lot_sums(&self, tenant_id: TenantId) -> Result<Vec<(String, i64, i64)>, StoreError> {
        self.db
            .fetch(
                &format!(
                    "SELECT asset, expires_at, {} FROM lot_figures WHERE tenant_id = $1 GROUP BY asset, expires_at",
                    split_high_low()
                ),
                binds![tenant_id.to_string()],
            )
            .await?
            .iter()
            .map(|row| {
                Ok((
                    row.text("asset")?,
                    row.int("expires_at")?,
                    clamp(wide_sum(row)?),
                ))
            })
            .collect()
    }

    /// Purchases, revenue and points per bucket between `boundaries` (local midnights,
    /// rising, 2 to 65); `query.from` and `until` are ignored.
    pub async fn series(
        &self,
        query: &StatsQuery,
        boundaries: &[Timestamp],
    ) -> Result<Vec<Bucket>, StoreError> {
        check_buckets(boundaries)?;
        let mut days = Vec::with_capacity(boundaries.len());
        for at in boundaries {
            days.push(self.day_of(query.tenant_id, *at, "boundaries").await?);
        }
        let sums = self
            .daily_sums(
                query.tenant_id,
                &[
                    figure::PURCHASES,
                    figure::AMOUNT,
                    figure::REFUNDED,
                    figure::POINTS,
                ],
                query.store.as_deref(),
                days[0],
                days[days.len() - 1],
            )
            .await?;
        let mut buckets = Bucket::empty_between(boundaries);
        for (index, bucket) in buckets.iter_mut().enumerate() {
            let inside = Sales::of(
                sums.iter()
                    .filter(|sum| sum.day >= days[index] && sum.day < days[index + 1]),
            );
            bucket.purchases = inside.purchases;
            bucket.revenue = clamp(inside.revenue);
            bucket.points = inside.points;
        }
        Ok(buckets)
    }

    /// The period's purchases by the tier the buyer held when buying, with every tier's
    /// member count now; tiers in code order (the caller orders them as the programme does).
    pub async fn spend_by_tier(&self, query: &StatsQuery) -> Result<Vec<TierSpend>, StoreError> {
        let tenant_id = query.tenant_id;
        let from = self.day_of(tenant_id, query.from, "from").await?;
        let until = self.day_of(tenant_id, query.until, "until").await?;
        let (members, sales, buyers) = tokio::try_join!(
            self.daily_sums(tenant_id, &[figure::MEMBERS], None, i64::MIN, i64::MAX),
            self.daily_sums(
                tenant_id,
                &[figure::PURCHASES, figure::AMOUNT, figure::REFUNDED],
                query.store.as_deref(),
                from,
                until,
            ),
            self.buyers(query, from, until),
        )?;
        let mut tiers: std::collections::BTreeMap<String, (TierSpend, Sales)> = Default::default();
        for sum in &members {
            tier_entry(&mut tiers, &sum.part).0.members += clamp(sum.value);
        }
        for sum in &sales {
            tier_entry(&mut tiers, &sum.part).1.add(sum);
        }
        for (scope, active, _) in &buyers {
            if !scope.is_empty() {
                tier_entry(&mut tiers, scope).0.buyers = *active;
            }
        }
        Ok(tiers
            .into_values()
            .map(|(mut spend, sales)| {
                spend.purchases = sales.purchases;
                spend.revenue = clamp(sales.revenue);
                spend
            })
            .filter(|spend| spend.members != 0 || spend.purchases != 0)
            .collect())
    }

    /// The rewards most taken in the period (vouchers issued, cancelled ones left out), most
    /// first, at most [`TOP_REWARDS_MAX`]. Redemptions name no store, so every store counts.
    pub async fn top_rewards(&self, query: &StatsQuery) -> Result<Vec<RewardCount>, StoreError> {
        let tenant_id = query.tenant_id;
        let from = self.day_of(tenant_id, query.from, "from").await?;
        let until = self.day_of(tenant_id, query.until, "until").await?;
        let sums = self
            .daily_sums(
                tenant_id,
                &[
                    figure::VOUCHERS,
                    figure::VOUCHER_POINTS,
                    figure::VOUCHERS_USED,
                ],
                None,
                from,
                until,
            )
            .await?;
        let mut counts: std::collections::BTreeMap<String, RewardCount> = Default::default();
        for sum in sums {
            let count = counts
                .entry(sum.part.clone())
                .or_insert_with(|| RewardCount {
                    reward_id: sum.part.clone(),
                    name: String::new(),
                    vouchers: 0,
                    points: 0,
                    used: 0,
                });
            let value = clamp(sum.value);
            match sum.figure.as_str() {
                figure::VOUCHERS => count.vouchers += value,
                figure::VOUCHER_POINTS => count.points = count.points.saturating_add(value),
                _ => count.used += value,
            }
        }
        let names: std::collections::HashMap<String, String> = self
            .db
            .fetch(
                "SELECT id, name FROM rewards WHERE tenant_id = $1",
                binds![tenant_id.to_string()],
            )
            .await?
            .iter()
            .map(|row| Ok((row.text("id")?, row.text("name")?)))
            .collect::<Result<_, StoreError>>()?;
        let mut rewards: Vec<RewardCount> = counts
            .into_values()
            .filter(|count| count.vouchers > 0)
            .filter_map(|mut count| {
                count.name = names.get(&count.reward_id)?.clone();
                Some(count)
            })
            .collect();
        rewards.sort_by(|a, b| {
            (b.vouchers, &a.name, &a.reward_id).cmp(&(a.vouchers, &b.name, &b.reward_id))
        });
        rewards.truncate(TOP_REWARDS_MAX as usize);
        Ok(rewards)
    }

    /// Points members hold now, by when they expire (see [`LiabilityByExpiry`]); any
    /// boundaries.
    pub async fn liability_by_expiry(
        &self,
        tenant_id: TenantId,
        boundaries: &[Timestamp],
    ) -> Result<LiabilityByExpiry, StoreError> {
        check_buckets(boundaries)?;
        let mut liability = LiabilityByExpiry::cut_by(boundaries);
        for (asset, expires_at, points) in self.lot_sums(tenant_id).await? {
            if asset == "points" {
                liability.add((expires_at != NEVER_EXPIRES).then_some(expires_at), points);
            }
        }
        Ok(liability)
    }
}

/// Lot sums added up per asset, in asset order, those not zero.
fn totals_by_asset(lots: Vec<(String, i64, i64)>) -> Vec<(String, i64)> {
    let mut totals: std::collections::BTreeMap<String, i64> = Default::default();
    for (asset, _, amount) in lots {
        let total = totals.entry(asset).or_default();
        *total = total.saturating_add(amount);
    }
    totals
        .into_iter()
        .filter(|(_, total)| *total != 0)
        .collect()
}

/// The entry of tier `code`, made empty when new.
fn tier_entry<'t>(
    tiers: &'t mut std::collections::BTreeMap<String, (TierSpend, Sales)>,
    code: &str,
) -> &'t mut (TierSpend, Sales) {
    tiers.entry(code.to_owned()).or_insert_with(|| {
        let spend = TierSpend {
            tier: code.to_owned(),
            members: 0,
            buyers: 0,
            purchases: 0,
            revenue: 0,
        };
        (spend, Sales::default())
    })
}

/// Purchases, revenue (amount less refunded, held wide until the end) and points flows.
#[derive(Default)]
struct Sales {
    purchases: i64,
    revenue: i128,
    points: PointsFlow,
}

impl Sales {
    fn add(&mut self, sum: &DailySum) {
        match sum.figure.as_str() {
            figure::PURCHASES => self.purchases += clamp(sum.value),
            figure::AMOUNT => self.revenue += sum.value,
            figure::REFUNDED => self.revenue -= sum.value,
            _ => self.points.add(&sum.part, clamp(sum.value)),
        }
    }

    fn of<'s>(sums: impl IntoIterator<Item = &'s DailySum>) -> Sales {
        let mut sales = Sales::default();
        for sum in sums {
            sales.add(sum);
        }
        sales
    }
}

/// A wide sum held within `i64`.
fn clamp(value: i128) -> i64 {
    value.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// The sum [`split_high_low`] read.
fn wide_sum(row: &Row) -> Result<i128, StoreError> {
    Ok(
        i128::from(row.int("value_high")?) * i128::from(super::SUM_SPLIT)
            + i128::from(row.int("value_low")?),
    )
}

/// `SUM(high)` and `SUM(low)` as the halves `value_high` and `value_low` of one sum.
fn split_high_low() -> String {
    "CAST(COALESCE(SUM(high), 0) AS BIGINT) AS value_high, \
     CAST(COALESCE(SUM(low), 0) AS BIGINT) AS value_low"
        .to_owned()
}
