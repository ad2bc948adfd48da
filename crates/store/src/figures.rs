//! Figures kept for the owner's dashboard by whoever writes what they count, in the same
//! transaction: the journal's batches, the jobs, merges, erasures and imports. A report then
//! adds up a few hundred rows of these instead of scanning millions of events (at 10 million
//! events the scans took seconds; see docs/benchmarks.md).
//!
//! Three tables (migration `0011_figures.sql`):
//! - `daily_figures`: sums per tenant, figure, part, store and local day (the tenant's zone):
//!   purchases, amount and refunded amount by the buyer's tier at the purchase; points moved by
//!   ledger kind; members joined and erased by the day they joined; vouchers by reward and
//!   issue day; members per tier now and vouchers still open (day [`NO_DAY`]).
//! - `purchase_gaps`: for each purchase, the day of the member's purchase before it (`nth` 1)
//!   and the one before that (`nth` 2), counted per scope: every store or one store, every
//!   tier or the tier at the purchase. Members with a purchase in `[from, to)` are then the
//!   purchases in it whose previous one is before `from`, and members with two or more are the
//!   purchases whose second-previous one is before `from`, less those: exact distinct counts
//!   for any run of days, from a few thousand rows (see [`Store::overview`]).
//! - `lot_figures`: points (and other assets) left in lots by expiry instant.
//!
//! Each sum is kept as two BIGINT halves (value / 10^6 and value % 10^6) so no row overflows
//! however large the amounts (see `stats::SUM_SPLIT`). Writers add signed changes with an
//! upsert, rows in key order so concurrent writers on PostgreSQL queue rather than deadlock.
//! [`rebuild`] recomputes a tenant's figures from the tables: the migration runs it, and the
//! tests check that kept figures equal rebuilt ones and the scans they replace.

use crate::batch::parse_member_id;
use crate::db::{Row, Tx};
use crate::sql::{by_keys, Bind, Rows};
use crate::stats::SUM_SPLIT;
use crate::{binds, Backend, StoreError};
use patron_core::ledger::{Account, Asset, Transaction};
use patron_core::member::MemberState;
use patron_core::reward::{Voucher, VoucherStatus};
use patron_core::time::{to_micros, Timestamp};
use patron_core::{MemberId, TenantId};
use std::collections::{BTreeMap, HashMap, HashSet};

/// `day` of figures that belong to no day (members per tier, open vouchers), and
/// `before_day` of a purchase with none before it in its scope.
pub const NO_DAY: i64 = i64::MIN;
/// `expires_at` of lots that never expire in `lot_figures`.
pub const NEVER_EXPIRES: i64 = i64::MAX;

/// Names of the figures in `daily_figures`.
pub mod figure {
    /// Purchases (part: the buyer's tier at the purchase).
    pub const PURCHASES: &str = "purchases";
    /// What purchases came to (part: tier).
    pub const AMOUNT: &str = "amount";
    /// What was refunded of them, on the purchase's day and store (part: tier).
    pub const REFUNDED: &str = "refunded";
    /// Members' net points by ledger transaction kind (part: the kind).
    pub const POINTS: &str = "points";
    /// Members joined, on the day they joined.
    pub const JOINED: &str = "joined";
    /// Members erased, on the day they joined.
    pub const ERASED: &str = "erased";
    /// Members not erased, per tier now (part: tier; day [`super::NO_DAY`]).
    pub const MEMBERS: &str = "members";
    /// Vouchers taken and not cancelled, by issue day (part: reward id).
    pub const VOUCHERS: &str = "vouchers";
    /// Their points (part: reward id).
    pub const VOUCHER_POINTS: &str = "voucher_points";
    /// Of those, used (part: reward id).
    pub const VOUCHERS_USED: &str = "vouchers_used";
    /// Vouchers issued and not yet used, cancelled or expired (day [`super::NO_DAY`]).
    pub const OPEN_VOUCHERS: &str = "open_vouchers";
    /// Their points.
    pub const OPEN_VOUCHER_POINTS: &str = "open_voucher_points";
}

/// A tenant's local day: days since 1970-01-01 in its zone.
pub fn local_day(zone: chrono_tz::Tz, at: Timestamp) -> i64 {
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("a date");
    at.with_timezone(&zone)
        .date_naive()
        .signed_duration_since(epoch)
        .num_days()
}

/// The local day `at` starts, when it is the first instant of one (a local midnight, or the
/// first instant after a midnight a clock change skipped).
pub fn day_starting_at(zone: chrono_tz::Tz, at: Timestamp) -> Option<i64> {
    let day = local_day(zone, at);
    (local_day(zone, at - chrono::Duration::microseconds(1)) < day).then_some(day)
}

/// One purchase as the gaps see it.
#[derive(Clone, Debug)]
pub(crate) struct PurchasePoint {
    pub at: i64,
    pub event_id: String,
    pub store: Option<String>,
    pub tier: String,
    /// The bill, what was refunded of it, and whether it was voided (for the profiles).
    pub amount: i64,
    pub refunded: i64,
    pub voided: bool,
}

/// Key of a `daily_figures` row: figure, part, store, instant (`None`: [`NO_DAY`]).
type DailyChange = (&'static str, String, String, Option<i64>);

/// What a member adds to the figures of members per tier and of lots.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct MemberFigures {
    /// The tier it counts in, unless erased.
    tier: Option<String>,
    /// Points (and other assets) left in positive lots, by asset and expiry.
    lots: BTreeMap<(String, i64), i64>,
}

impl MemberFigures {
    /// Only the tier it counts in: for a change that moves lots between members without
    /// changing what they hold (a merge).
    pub(crate) fn tier_only(mut self) -> MemberFigures {
        self.lots.clear();
        self
    }

    /// Whether the member was erased (it then counts in no tier).
    pub(crate) fn is_erased(&self) -> bool {
        self.tier.is_none()
    }

    pub(crate) fn of(state: &MemberState, erased: bool) -> MemberFigures {
        let mut lots: BTreeMap<(String, i64), i64> = BTreeMap::new();
        let mut add = |asset: &Asset, lot: &patron_core::lots::Lot| {
            if lot.remaining.0 > 0 {
                let key = (
                    asset.name().into_owned(),
                    lot.expires_at.map(to_micros).unwrap_or(NEVER_EXPIRES),
                );
                let slot = lots.entry(key).or_default();
                *slot = slot.saturating_add(lot.remaining.0);
            }
        };
        for lot in state.lots.iter() {
            add(&Asset::Points, lot);
        }
        for (asset, holding) in &state.holdings {
            for lot in holding.lots.iter() {
                add(asset, lot);
            }
        }
        MemberFigures {
            tier: (!erased).then(|| state.tier.clone()),
            lots,
        }
    }
}

/// Changes to the figures gathered while a transaction writes, written by [`Figures::write`].
#[derive(Default)]
pub(crate) struct Figures {
    daily: Vec<(TenantId, DailyChange, i128)>,
    lots: BTreeMap<(String, String, i64), i128>,
    /// Members whose purchases with these ids are new in this transaction.
    new_purchases: HashMap<(TenantId, MemberId), HashSet<String>>,
    /// Whole purchase histories to add (+1) or take away (−1) from the gaps.
    histories: Vec<(TenantId, i64, Vec<PurchasePoint>)>,
    /// Members whose profiles change (see [`crate::profiles`]).
    profiles: crate::profiles::ProfileChanges,
}

impl Figures {
    pub(crate) fn is_empty(&self) -> bool {
        self.daily.is_empty()
            && self.lots.is_empty()
            && self.new_purchases.is_empty()
            && self.histories.is_empty()
            && self.profiles.is_empty()
    }

    /// A member whose purchases changed: their profile is computed again.
    pub(crate) fn profile(&mut self, tenant_id: TenantId, member_id: MemberId) {
        self.profiles.members.insert(member_id, tenant_id);
    }

    /// What a new purchase line adds to its buyer's spend on its category.
    pub(crate) fn category(
        &mut self,
        tenant_id: TenantId,
        member_id: MemberId,
        category: &str,
        amount: i64,
    ) {
        let entry = self
            .profiles
            .categories
            .entry((member_id, category.to_owned()))
            .or_insert((tenant_id, 0));
        entry.1 = entry.1.saturating_add(amount);
    }

    /// A member whose profile goes (erased, or merged into another).
    pub(crate) fn profile_gone(&mut self, member_id: MemberId) {
        self.profiles.gone.insert(member_id);
    }

    /// Adds `value` to a daily figure; `at` is the instant whose local day it counts on
    /// (`None`: [`NO_DAY`]).
    pub(crate) fn add(
        &mut self,
        tenant_id: TenantId,
        name: &'static str,
        part: &str,
        store: Option<&str>,
        at: Option<Timestamp>,
        value: i64,
    ) {
        self.add_wide(tenant_id, name, part, store, at, i128::from(value));
    }

    /// A purchase stored for the first time: its count and amount (and what was refunded of
    /// it already), and its place in the member's gaps.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn purchase(
        &mut self,
        tenant_id: TenantId,
        member_id: MemberId,
        event_id: &str,
        at: Timestamp,
        store: Option<&str>,
        tier: &str,
        amount: i64,
        refunded: i64,
    ) {
        self.add(tenant_id, figure::PURCHASES, tier, store, Some(at), 1);
        self.add(tenant_id, figure::AMOUNT, tier, store, Some(at), amount);
        self.add(tenant_id, figure::REFUNDED, tier, store, Some(at), refunded);
        self.new_purchases
            .entry((tenant_id, member_id))
            .or_default()
            .insert(event_id.to_owned());
        self.profile(tenant_id, member_id);
    }

    /// A purchase history that joins (`sign` 1) or leaves (−1) the gaps as a whole (a merge).
    pub(crate) fn history(
        &mut self,
        tenant_id: TenantId,
        sign: i64,
        purchases: Vec<PurchasePoint>,
    ) {
        self.histories.push((tenant_id, sign, purchases));
    }

    /// Ledger transactions written: members' points by kind, on the day and at the store of
    /// the event that made them (`store_of` the event id).
    pub(crate) fn transactions<'t>(
        &mut self,
        transactions: impl Iterator<Item = (TenantId, Option<&'t str>, Timestamp, &'t Transaction)>,
        store_of: &dyn Fn(&str) -> Option<String>,
    ) {
        for (tenant_id, event_id, at, transaction) in transactions {
            let net: i64 = transaction
                .entries
                .iter()
                .filter(|entry| {
                    matches!(entry.account, Account::Member(_)) && entry.asset == Asset::Points
                })
                .fold(0i64, |sum, entry| sum.saturating_add(entry.amount));
            let store = event_id.and_then(store_of);
            self.add(
                tenant_id,
                figure::POINTS,
                transaction.kind.as_str(),
                store.as_deref(),
                Some(at),
                net,
            );
        }
    }

    /// A member created (`before` `None`) or changed: members per tier and lots.
    pub(crate) fn member(
        &mut self,
        tenant_id: TenantId,
        before: Option<&MemberFigures>,
        after: &MemberFigures,
    ) {
        let empty = MemberFigures::default();
        let before_figures = before.unwrap_or(&empty);
        if before_figures.tier != after.tier {
            if let Some(tier) = &before_figures.tier {
                self.add(tenant_id, figure::MEMBERS, tier, None, None, -1);
            }
            if let Some(tier) = &after.tier {
                self.add(tenant_id, figure::MEMBERS, tier, None, None, 1);
            }
        }
        if before_figures.lots != after.lots {
            for ((asset, expires), points) in &before_figures.lots {
                self.lot(tenant_id, asset, *expires, -i128::from(*points));
            }
            for ((asset, expires), points) in &after.lots {
                self.lot(tenant_id, asset, *expires, i128::from(*points));
            }
        }
    }

    /// A member joined on `at` (its `created_at`).
    pub(crate) fn joined(&mut self, tenant_id: TenantId, at: Timestamp, figures: &MemberFigures) {
        self.add(tenant_id, figure::JOINED, "", None, Some(at), 1);
        self.member(tenant_id, None, figures);
    }

    fn lot(&mut self, tenant_id: TenantId, asset: &str, expires: i64, points: i128) {
        *self
            .lots
            .entry((tenant_id.to_string(), asset.to_owned(), expires))
            .or_default() += points;
    }

    /// A voucher written: `before` is its stored status (`None`: new).
    pub(crate) fn voucher(
        &mut self,
        tenant_id: TenantId,
        before: Option<VoucherStatus>,
        voucher: &Voucher,
    ) {
        if before == Some(voucher.status) {
            return;
        }
        let reward = voucher.reward_id.to_string();
        for (status, sign) in [(before, -1), (Some(voucher.status), 1)] {
            let Some(status) = status else { continue };
            let (vouchers, points) = (i128::from(sign), i128::from(sign * voucher.cost.0));
            self.vouchers(
                tenant_id,
                status,
                vouchers,
                points,
                voucher.issued_at,
                &reward,
            );
        }
    }

    /// What `vouchers` vouchers of `reward` in `status`, issued at `issued_at` and holding
    /// `points`, add: the reward's figures on the issue day, the open ones on no day.
    fn vouchers(
        &mut self,
        tenant_id: TenantId,
        status: VoucherStatus,
        vouchers: i128,
        points: i128,
        issued_at: Timestamp,
        reward: &str,
    ) {
        for (name, value) in voucher_figures(status, vouchers, points) {
            let (at, part) = match name {
                figure::OPEN_VOUCHERS | figure::OPEN_VOUCHER_POINTS => (None, ""),
                _ => (Some(issued_at), reward),
            };
            self.add_wide(tenant_id, name, part, None, at, value);
        }
    }

    /// Writes the changes, in key order. Reads the tenants' zones, and the purchases of
    /// members with new ones (already written or not: the new ids are told apart).
    pub(crate) async fn write(self, db: &mut Tx<'_>) -> Result<(), StoreError> {
        if self.is_empty() {
            return Ok(());
        }
        let backend = db.backend();
        let mut tenants: HashSet<TenantId> = self.daily.iter().map(|(t, _, _)| *t).collect();
        tenants.extend(self.new_purchases.keys().map(|(tenant, _)| *tenant));
        tenants.extend(self.histories.iter().map(|(tenant, _, _)| *tenant));
        tenants.extend(self.profiles.members.values().copied());
        let zones = zones_of(db, tenants).await?;
        let zone = |tenant: &TenantId| zones.get(tenant).copied().unwrap_or(chrono_tz::UTC);
        let mut daily: BTreeMap<(String, &'static str, String, String, i64), i128> =
            BTreeMap::new();
        for (tenant_id, (name, part, store, at), value) in self.daily {
            let day = at.map_or(NO_DAY, |at| {
                local_day(zone(&tenant_id), patron_core::time::from_micros(at))
            });
            *daily
                .entry((tenant_id.to_string(), name, part, store, day))
                .or_default() += value;
        }
        let mut gaps = Gaps::default();
        let mut members: HashSet<MemberId> = self.new_purchases.keys().map(|(_, m)| *m).collect();
        members.extend(self.profiles.members.keys().copied());
        let members: Vec<MemberId> = members.into_iter().collect();
        let histories = purchases_of(db, &members).await?;
        for ((tenant_id, member_id), new_ids) in &self.new_purchases {
            let all = histories.get(member_id).cloned().unwrap_or_default();
            let earlier: Vec<PurchasePoint> = all
                .iter()
                .filter(|point| !new_ids.contains(&point.event_id))
                .cloned()
                .collect();
            let zone = zone(tenant_id);
            gaps.add(*tenant_id, zone, &all, 1);
            gaps.add(*tenant_id, zone, &earlier, -1);
        }
        for (tenant_id, sign, mut purchases) in self.histories {
            sort_purchases(&mut purchases);
            gaps.add(tenant_id, zone(&tenant_id), &purchases, sign);
        }
        write_daily(db, backend, daily).await?;
        write_gaps(db, backend, gaps.counts).await?;
        write_lots(db, backend, self.lots).await?;
        crate::profiles::write(db, self.profiles, &histories, &zones, chrono::Utc::now()).await
    }
}

/// What a voucher in `status` adds to the daily figures.
fn voucher_figures(
    status: VoucherStatus,
    vouchers: i128,
    points: i128,
) -> Vec<(&'static str, i128)> {
    let taken = [
        (figure::VOUCHERS, vouchers),
        (figure::VOUCHER_POINTS, points),
    ];
    match status {
        VoucherStatus::Issued => [
            &taken[..],
            &[
                (figure::OPEN_VOUCHERS, vouchers),
                (figure::OPEN_VOUCHER_POINTS, points),
            ],
        ]
        .concat(),
        VoucherStatus::Used => [&taken[..], &[(figure::VOUCHERS_USED, vouchers)]].concat(),
        VoucherStatus::Expired => taken.to_vec(),
        VoucherStatus::Cancelled => Vec::new(),
    }
}

/// Counts of `purchase_gaps` rows being built: (tenant, store scope, tier scope, nth, day,
/// day before) → purchases.
#[derive(Default)]
struct Gaps {
    counts: BTreeMap<(String, String, String, i64, i64, i64), i64>,
}

impl Gaps {
    /// Adds (`sign` 1) or takes away (−1) what one member's purchases, in order, count.
    fn add(
        &mut self,
        tenant_id: TenantId,
        zone: chrono_tz::Tz,
        purchases: &[PurchasePoint],
        sign: i64,
    ) {
        // The last two days seen in each scope (store or "", tier or "").
        let mut last: HashMap<(String, String), (i64, i64)> = HashMap::new();
        let tenant = tenant_id.to_string();
        for point in purchases {
            let day = local_day(zone, patron_core::time::from_micros(point.at));
            // A purchase of unknown tier ("") counts in no tier's scope.
            let tiers: &[String] = if point.tier.is_empty() {
                &[String::new()][..]
            } else {
                &[String::new(), point.tier.clone()][..]
            };
            let stores = [Some(String::new()), point.store.clone()];
            let scopes: Vec<(String, String)> = stores
                .iter()
                .flatten()
                .flat_map(|store| tiers.iter().map(move |tier| (store.clone(), tier.clone())))
                .collect();
            for scope in scopes {
                let (previous, second) = last.get(&scope).copied().unwrap_or((NO_DAY, NO_DAY));
                for (nth, before) in [(1, previous), (2, second)] {
                    *self
                        .counts
                        .entry((
                            tenant.clone(),
                            scope.0.clone(),
                            scope.1.clone(),
                            nth,
                            day,
                            before,
                        ))
                        .or_default() += sign;
                }
                last.insert(scope, (day, previous));
            }
        }
    }
}

/// Purchases in the order the gaps count them: by instant, then event id.
fn sort_purchases(purchases: &mut [PurchasePoint]) {
    purchases.sort_by(|a, b| (a.at, &a.event_id).cmp(&(b.at, &b.event_id)));
}

pub(crate) const PURCHASE_POINT_SELECT: &str =
    "SELECT member_id, occurred_at, event_id, store_code, tier, amount, refunded_amount, voided_at FROM events WHERE kind = 'purchase' AND";

fn purchase_point(row: &Row) -> Result<PurchasePoint, StoreError> {
    Ok(PurchasePoint {
        at: row.int("occurred_at")?,
        event_id: row.text("event_id")?,
        store: row.opt_text("store_code")?,
        tier: row.opt_text("tier")?.unwrap_or_default(),
        amount: row.opt_int("amount")?.unwrap_or_default(),
        refunded: row.opt_int("refunded_amount")?.unwrap_or_default(),
        voided: row.opt_int("voided_at")?.is_some(),
    })
}

/// Every purchase of `members`, in gap order.
pub(crate) async fn purchases_of(
    db: &mut Tx<'_>,
    members: &[MemberId],
) -> Result<HashMap<MemberId, Vec<PurchasePoint>>, StoreError> {
    let mut out: HashMap<MemberId, Vec<PurchasePoint>> = HashMap::new();
    if members.is_empty() {
        return Ok(out);
    }
    let sql = by_keys(db.backend(), PURCHASE_POINT_SELECT, "member_id", 1, false);
    let ids = members.iter().map(|id| id.to_string()).collect();
    for row in db.fetch(&sql, vec![Bind::Texts(ids)]).await? {
        let member_id = parse_member_id(&row.text("member_id")?)?;
        out.entry(member_id)
            .or_default()
            .push(purchase_point(&row)?);
    }
    for purchases in out.values_mut() {
        sort_purchases(purchases);
    }
    Ok(out)
}

async fn zones_of(
    db: &mut Tx<'_>,
    tenants: HashSet<TenantId>,
) -> Result<HashMap<TenantId, chrono_tz::Tz>, StoreError> {
    let mut zones = HashMap::new();
    for tenant_id in tenants {
        let row = db
            .fetch_one(
                "SELECT time_zone FROM tenants WHERE id = $1",
                binds![tenant_id.to_string()],
            )
            .await?;
        let zone = row
            .text("time_zone")?
            .parse::<chrono_tz::Tz>()
            .map_err(|_| StoreError::Corrupt(format!("tenant {tenant_id}: time zone")))?;
        zones.insert(tenant_id, zone);
    }
    Ok(zones)
}

/// `(high, low)` halves of a sum, as `stats::joined_sum` reads them back.
fn halves(value: i128) -> (i64, i64) {
    let split = i128::from(SUM_SPLIT);
    let high = (value / split).clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
    (high, (value % split) as i64)
}

async fn write_daily(
    db: &mut Tx<'_>,
    backend: Backend,
    daily: BTreeMap<(String, &'static str, String, String, i64), i128>,
) -> Result<(), StoreError> {
    let mut rows = Rows::new(7);
    for ((tenant, name, part, store, day), value) in daily {
        if value == 0 {
            continue;
        }
        let (high, low) = halves(value);
        rows.push(binds![tenant, name, part, store, day, high, low]);
    }
    db.execute_all(rows.statements(
        backend,
        "INSERT INTO daily_figures (tenant_id, figure, part, store_code, day, high, low)",
        "ON CONFLICT (tenant_id, figure, store_code, day, part) DO UPDATE SET \
         high = daily_figures.high + excluded.high, low = daily_figures.low + excluded.low",
    ))
    .await
}

async fn write_gaps(
    db: &mut Tx<'_>,
    backend: Backend,
    counts: BTreeMap<(String, String, String, i64, i64, i64), i64>,
) -> Result<(), StoreError> {
    let mut rows = Rows::new(7);
    for ((tenant, store, tier, nth, day, before), purchases) in counts {
        if purchases != 0 {
            rows.push(binds![tenant, store, tier, nth, day, before, purchases]);
        }
    }
    db.execute_all(rows.statements(
        backend,
        "INSERT INTO purchase_gaps (tenant_id, store_scope, tier_scope, nth, day, before_day, purchases)",
        "ON CONFLICT (tenant_id, store_scope, tier_scope, nth, day, before_day) DO UPDATE SET \
         purchases = purchase_gaps.purchases + excluded.purchases",
    ))
    .await
}

async fn write_lots(
    db: &mut Tx<'_>,
    backend: Backend,
    lots: BTreeMap<(String, String, i64), i128>,
) -> Result<(), StoreError> {
    let mut rows = Rows::new(5);
    for ((tenant, asset, expires), points) in lots {
        if points != 0 {
            let (high, low) = halves(points);
            rows.push(binds![tenant, asset, expires, high, low]);
        }
    }
    db.execute_all(rows.statements(
        backend,
        "INSERT INTO lot_figures (tenant_id, asset, expires_at, high, low)",
        "ON CONFLICT (tenant_id, asset, expires_at) DO UPDATE SET \
         high = lot_figures.high + excluded.high, low = lot_figures.low + excluded.low",
    ))
    .await
}

/// Members read per round trip by [`rebuild`].
const REBUILD_MEMBERS_PER_ROUND: i64 = 5_000;

/// Recomputes every figure of `tenant_id` from the tables, in `db`'s transaction (on
/// PostgreSQL after locking the figure tables against writers, so none adds to what is being
/// replaced).
pub async fn rebuild(db: &mut Tx<'_>, tenant_id: TenantId) -> Result<(), StoreError> {
    let backend = db.backend();
    if backend == Backend::Postgres {
        db.batch("LOCK TABLE daily_figures, purchase_gaps, lot_figures IN EXCLUSIVE MODE")
            .await?;
    }
    let tenant = tenant_id.to_string();
    for table in ["daily_figures", "purchase_gaps", "lot_figures"] {
        db.execute(
            &format!("DELETE FROM {table} WHERE tenant_id = $1"),
            binds![tenant.clone()],
        )
        .await?;
    }
    let mut figures = Figures::default();
    // Purchases, by the instant: sums per quarter hour (every zone's midnight falls on one),
    // so the statement returns thousands of rows, not millions.
    const QUARTER_HOUR: i64 = 900_000_000;
    for row in db
        .fetch(
            &format!(
                "SELECT occurred_at / {QUARTER_HOUR} AS slot, store_code, COALESCE(tier, '') AS tier, COUNT(*) AS purchases, \
                 {}, {} FROM events WHERE tenant_id = $1 AND kind = 'purchase' GROUP BY 1, 2, 3",
                crate::stats::split_sum("amount", "amount"),
                crate::stats::split_sum("COALESCE(refunded_amount, 0)", "refunded"),
            ),
            binds![tenant.clone()],
        )
        .await?
    {
        let at = Some(slot_instant(row.int("slot")?, QUARTER_HOUR));
        let store = row.opt_text("store_code")?;
        let tier = row.text("tier")?;
        for (name, value) in [
            (figure::PURCHASES, i128::from(row.int("purchases")?)),
            (figure::AMOUNT, joined(&row, "amount")?),
            (figure::REFUNDED, joined(&row, "refunded")?),
        ] {
            figures.add_wide(tenant_id, name, &tier, store.as_deref(), at, value);
        }
    }
    for row in db
        .fetch(
            &format!(
                "SELECT t.occurred_at / {QUARTER_HOUR} AS slot, t.kind AS kind, e.store_code AS store_code, {} \
                 FROM ledger_transactions t \
                 JOIN ledger_entries l ON l.transaction_id = t.id AND l.account = 'member' AND l.asset = 'points' \
                 LEFT JOIN events e ON e.tenant_id = t.tenant_id AND e.event_id = t.event_id \
                 WHERE t.tenant_id = $1 GROUP BY 1, 2, 3",
                crate::stats::split_sum("l.amount", "net"),
            ),
            binds![tenant.clone()],
        )
        .await?
    {
        let at = Some(slot_instant(row.int("slot")?, QUARTER_HOUR));
        let store = row.opt_text("store_code")?;
        figures.add_wide(
            tenant_id,
            figure::POINTS,
            &row.text("kind")?,
            store.as_deref(),
            at,
            joined(&row, "net")?,
        );
    }
    for row in db
        .fetch(
            &format!(
                "SELECT created_at / {QUARTER_HOUR} AS slot, COUNT(*) AS joined, \
                 COALESCE(SUM(CASE WHEN erased_at IS NULL THEN 0 ELSE 1 END), 0) AS erased \
                 FROM members WHERE tenant_id = $1 GROUP BY 1"
            ),
            binds![tenant.clone()],
        )
        .await?
    {
        let at = Some(slot_instant(row.int("slot")?, QUARTER_HOUR));
        figures.add(tenant_id, figure::JOINED, "", None, at, row.int("joined")?);
        figures.add(tenant_id, figure::ERASED, "", None, at, row.int("erased")?);
    }
    for row in db
        .fetch(
            "SELECT tier, COUNT(*) AS members FROM members WHERE tenant_id = $1 AND erased_at IS NULL GROUP BY tier",
            binds![tenant.clone()],
        )
        .await?
    {
        figures.add(tenant_id, figure::MEMBERS, &row.text("tier")?, None, None, row.int("members")?);
    }
    for row in db
        .fetch(
            &format!(
                "SELECT issued_at / {QUARTER_HOUR} AS slot, reward_id, status, COUNT(*) AS vouchers, {} \
                 FROM vouchers WHERE tenant_id = $1 GROUP BY 1, 2, 3",
                crate::stats::split_sum("cost", "points"),
            ),
            binds![tenant.clone()],
        )
        .await?
    {
        let issued_at = slot_instant(row.int("slot")?, QUARTER_HOUR);
        let status = VoucherStatus::parse(&row.text("status")?)
            .ok_or_else(|| StoreError::Corrupt("voucher status".into()))?;
        let (count, points) = (i128::from(row.int("vouchers")?), joined(&row, "points")?);
        let reward = row.text("reward_id")?;
        figures.vouchers(tenant_id, status, count, points, issued_at, &reward);
    }
    for row in db
        .fetch(
            &format!(
                "SELECT asset, expires_at, {} FROM lots WHERE tenant_id = $1 AND remaining > 0 GROUP BY asset, expires_at",
                crate::stats::split_sum("remaining", "points"),
            ),
            binds![tenant.clone()],
        )
        .await?
    {
        let expires = row.opt_int("expires_at")?.unwrap_or(NEVER_EXPIRES);
        figures.lot(tenant_id, &row.text("asset")?, expires, joined(&row, "points")?);
    }
    // The gaps need each member's purchases in order: members a round at a time.
    let mut after = String::new();
    loop {
        let rows = db
            .fetch(
                "SELECT id FROM members WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3",
                binds![tenant.clone(), after.clone(), REBUILD_MEMBERS_PER_ROUND],
            )
            .await?;
        let Some(last) = rows.last() else { break };
        after = last.text("id")?;
        let members = rows
            .iter()
            .map(|row| parse_member_id(&row.text("id")?))
            .collect::<Result<Vec<_>, _>>()?;
        for (_, purchases) in purchases_of(db, &members).await? {
            figures.history(tenant_id, 1, purchases);
        }
        if (rows.len() as i64) < REBUILD_MEMBERS_PER_ROUND {
            break;
        }
    }
    figures.write(db).await
}

impl Figures {
    /// [`Figures::add`] of a sum that may pass `i64`.
    pub(crate) fn add_wide(
        &mut self,
        tenant_id: TenantId,
        name: &'static str,
        part: &str,
        store: Option<&str>,
        at: Option<Timestamp>,
        value: i128,
    ) {
        if value != 0 {
            self.daily.push((
                tenant_id,
                (
                    name,
                    part.to_owned(),
                    store.unwrap_or_default().to_owned(),
                    at.map(to_micros),
                ),
                value,
            ));
        }
    }
}

fn slot_instant(slot: i64, length: i64) -> Timestamp {
    patron_core::time::from_micros(slot.saturating_mul(length))
}

fn joined(row: &Row, name: &str) -> Result<i128, StoreError> {
    Ok(
        i128::from(row.int(&format!("{name}_high"))?) * i128::from(SUM_SPLIT)
            + i128::from(row.int(&format!("{name}_low"))?),
    )
}

/// The figures of every tenant, rebuilt (by the migration that adds them).
pub(crate) async fn rebuild_all(db: &mut Tx<'_>) -> Result<(), StoreError> {
    let rows = db.fetch("SELECT id FROM tenants", Vec::new()).await?;
    for row in rows {
        let tenant_id = crate::batch::parse_tenant_id(&row.text("id")?)?;
        rebuild(db, tenant_id).await?;
    }
    Ok(())
}

impl crate::Store {
    /// Recomputes the tenant's kept figures from the tables (after rows were written around
    /// the writers, e.g. by a bulk copy), in one transaction.
    pub async fn rebuild_figures(&self, tenant_id: TenantId) -> Result<(), StoreError> {
        let mut tx = self.db.begin_write().await?;
        rebuild(&mut tx, tenant_id).await?;
        tx.commit().await
    }

    /// Every kept figure of the tenant that is not zero, one line each in key order: what
    /// tests compare between figures kept by the writers and figures rebuilt.
    pub async fn kept_figures(&self, tenant_id: TenantId) -> Result<Vec<String>, StoreError> {
        let tenant = tenant_id.to_string();
        let mut lines = Vec::new();
        for row in self
            .db
            .fetch(
                "SELECT figure, part, store_code, day, high, low FROM daily_figures WHERE tenant_id = $1 \
                 ORDER BY figure, part, store_code, day",
                binds![tenant.clone()],
            )
            .await?
        {
            let value =
                i128::from(row.int("high")?) * i128::from(SUM_SPLIT) + i128::from(row.int("low")?);
            if value != 0 {
                lines.push(format!(
                    "daily {} {} {} {} = {value}",
                    row.text("figure")?,
                    row.text("part")?,
                    row.text("store_code")?,
                    row.int("day")?
                ));
            }
        }
        for row in self
            .db
            .fetch(
                "SELECT store_scope, tier_scope, nth, day, before_day, purchases FROM purchase_gaps \
                 WHERE tenant_id = $1 AND purchases <> 0 ORDER BY store_scope, tier_scope, nth, day, before_day",
                binds![tenant.clone()],
            )
            .await?
        {
            lines.push(format!(
                "gap {} {} {} {} {} = {}",
                row.text("store_scope")?,
                row.text("tier_scope")?,
                row.int("nth")?,
                row.int("day")?,
                row.int("before_day")?,
                row.int("purchases")?
            ));
        }
        for row in self
            .db
            .fetch(
                "SELECT asset, expires_at, high, low FROM lot_figures WHERE tenant_id = $1 ORDER BY asset, expires_at",
                binds![tenant],
            )
            .await?
        {
            let value =
                i128::from(row.int("high")?) * i128::from(SUM_SPLIT) + i128::from(row.int("low")?);
            if value != 0 {
                lines.push(format!(
                    "lots {} {} = {value}",
                    row.text("asset")?,
                    row.int("expires_at")?
                ));
            }
        }
        Ok(lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(at_day: i64, id: &str, store: Option<&str>, tier: &str) -> PurchasePoint {
        PurchasePoint {
            at: at_day * 86_400_000_000 + 3_600_000_000,
            event_id: id.into(),
            store: store.map(str::to_owned),
            tier: tier.into(),
            amount: 1,
            refunded: 0,
            voided: false,
        }
    }

    #[test]
    fn local_days_follow_the_zone() {
        let zone: chrono_tz::Tz = "Asia/Ho_Chi_Minh".parse().unwrap();
        // 17:00 UTC on 2 January 2026 is midnight of 3 January in Vietnam (UTC+7).
        let midnight: Timestamp = "2026-01-02T17:00:00Z".parse().unwrap();
        let third = chrono::NaiveDate::from_ymd_opt(2026, 1, 3).unwrap();
        let expected = (third - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days();
        assert_eq!(local_day(zone, midnight), expected);
        assert_eq!(day_starting_at(zone, midnight), Some(expected));
        assert_eq!(
            day_starting_at(zone, midnight + chrono::Duration::microseconds(1)),
            None
        );
        assert_eq!(local_day(chrono_tz::UTC, midnight), expected - 1);
    }

    #[test]
    fn gaps_count_the_previous_and_second_previous_day_per_scope() {
        let tenant = TenantId::new();
        let mut gaps = Gaps::default();
        let purchases = [
            point(10, "a", Some("S1"), "member"),
            point(12, "b", Some("S2"), "member"),
            point(15, "c", Some("S1"), "gold"),
        ];
        gaps.add(tenant, chrono_tz::UTC, &purchases, 1);
        let t = tenant.to_string();
        let count = |store: &str, tier: &str, nth: i64, day: i64, before: i64| {
            gaps.counts
                .get(&(t.clone(), store.into(), tier.into(), nth, day, before))
                .copied()
                .unwrap_or(0)
        };
        // Every store, every tier: 10 ← none, 12 ← 10, 15 ← 12 (and 10 two before).
        assert_eq!(count("", "", 1, 10, NO_DAY), 1);
        assert_eq!(count("", "", 1, 12, 10), 1);
        assert_eq!(count("", "", 1, 15, 12), 1);
        assert_eq!(count("", "", 2, 15, 10), 1);
        assert_eq!(count("", "", 2, 12, NO_DAY), 1);
        // Store S1 alone: 15's previous S1 purchase is on day 10.
        assert_eq!(count("S1", "", 1, 15, 10), 1);
        // Tier gold: its first purchase.
        assert_eq!(count("", "gold", 1, 15, NO_DAY), 1);
        assert_eq!(count("S1", "gold", 1, 15, NO_DAY), 1);
        // Taking the history away again leaves nothing.
        gaps.add(tenant, chrono_tz::UTC, &purchases, -1);
        assert!(gaps.counts.values().all(|count| *count == 0));
    }

    #[test]
    fn halves_add_back_and_vouchers_count_by_status() {
        for value in [
            0i128,
            1,
            -1,
            999_999,
            1_000_001,
            -2_500_000_123,
            i128::from(i64::MAX) * 3,
        ] {
            let (high, low) = halves(value);
            assert_eq!(
                i128::from(high) * i128::from(SUM_SPLIT) + i128::from(low),
                value
            );
        }
        assert_eq!(voucher_figures(VoucherStatus::Cancelled, 1, 50), vec![]);
        assert!(voucher_figures(VoucherStatus::Issued, 1, 50)
            .contains(&(figure::OPEN_VOUCHER_POINTS, 50)));
        assert!(voucher_figures(VoucherStatus::Used, 1, 50).contains(&(figure::VOUCHERS_USED, 1)));
    }
}
