//! What is kept of each member for segments and campaigns, beside the `members` row (tier,
//! spend, orders): first and last purchase, spend and days with a purchase in the last 30, 90
//! and 365 days, the favourite store and category (`member_profiles`, `member_categories`).
//!
//! They are kept by whoever changes a member's purchases, in the same transaction, through
//! [`crate::figures::Figures`]: the batch (purchases, refunds, voids), merge and erasure. Days
//! passing move the windows without any event: the profiles job ([`roll_chunk`], inside the
//! writer) recomputes the members one of whose purchase days has just left a window, so every
//! profile's windows are those of the tenant's `rolled_day` (or later, for a member whose
//! purchase the writer kept today). A tenant never rolled (a database from before profiles) has
//! every member's profile computed by the first run.

use crate::db::{Bind, Row, Tx};
use crate::figures::{local_day, purchases_of, PurchasePoint};
use crate::jobs::{JobReport, JOB_CHUNK_SIZE};
use crate::sql::{by_keys, Rows};
use crate::{binds, StoreError};
use patron_core::segment::WINDOWS_DAYS;
use patron_core::time::{from_micros, to_micros, Timestamp};
use patron_core::{MemberId, TenantId};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A member's kept figures, computed from their purchases.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Kept {
    pub first_at: Option<i64>,
    pub last_at: Option<i64>,
    pub window_day: i64,
    pub spend: [i64; 3],
    pub visits: [i64; 3],
    pub favourite_store: Option<String>,
}

/// The kept figures of a member with these purchases, on local day `today`. A voided
/// purchase counts nowhere; a refunded one counts what is left of it.
pub(crate) fn kept_of(zone: chrono_tz::Tz, today: i64, purchases: &[PurchasePoint]) -> Kept {
    let mut kept = Kept {
        window_day: today,
        ..Kept::default()
    };
    let mut days: [BTreeSet<i64>; 3] = Default::default();
    let mut stores: BTreeMap<&str, i64> = BTreeMap::new();
    for purchase in purchases.iter().filter(|purchase| !purchase.voided) {
        let day = local_day(zone, from_micros(purchase.at));
        let net = purchase.amount.saturating_sub(purchase.refunded);
        kept.first_at = Some(kept.first_at.map_or(purchase.at, |at| at.min(purchase.at)));
        kept.last_at = Some(kept.last_at.map_or(purchase.at, |at| at.max(purchase.at)));
        for (index, window) in WINDOWS_DAYS.iter().enumerate() {
            if day > today - window {
                kept.spend[index] = kept.spend[index].saturating_add(net);
                days[index].insert(day);
            }
        }
        if let Some(store) = purchase.store.as_deref() {
            let spent = stores.entry(store).or_default();
            *spent = spent.saturating_add(net);
        }
    }
    for (index, set) in days.iter().enumerate() {
        kept.visits[index] = set.len() as i64;
    }
    kept.favourite_store = favourite(stores.into_iter());
    kept
}

/// The key with the most (the first in order on a tie), if any has more than nothing.
fn favourite<'k>(values: impl Iterator<Item = (&'k str, i64)>) -> Option<String> {
    let mut best: Option<(&str, i64)> = None;
    for (key, value) in values {
        if value > 0 && best.is_none_or(|(_, most)| value > most) {
            best = Some((key, value));
        }
    }
    best.map(|(key, _)| key.to_owned())
}

/// Profiles to write: the members to recompute and what their new purchase lines add to
/// their categories.
#[derive(Default)]
pub(crate) struct ProfileChanges {
    pub members: BTreeMap<MemberId, TenantId>,
    pub categories: BTreeMap<(MemberId, String), (TenantId, i64)>,
    pub gone: BTreeSet<MemberId>,
}

impl ProfileChanges {
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.categories.is_empty() && self.gone.is_empty()
    }
}

/// Writes the changes: categories, then each member's profile from `histories` (every
/// purchase of each member in `changes.members`).
pub(crate) async fn write(
    db: &mut Tx<'_>,
    changes: ProfileChanges,
    histories: &HashMap<MemberId, Vec<PurchasePoint>>,
    zones: &HashMap<TenantId, chrono_tz::Tz>,
    now: Timestamp,
) -> Result<(), StoreError> {
    let backend = db.backend();
    let mut categories = Rows::new(4);
    for ((member_id, category), (tenant_id, spend)) in &changes.categories {
        categories.push(vec![
            member_id.to_string().into(),
            tenant_id.to_string().into(),
            category.clone().into(),
            (*spend).into(),
        ]);
    }
    db.execute_all(categories.statements(
        backend,
        "INSERT INTO member_categories (member_id, tenant_id, category, spend)",
        "ON CONFLICT (member_id, category) DO UPDATE SET spend = member_categories.spend + excluded.spend",
    ))
    .await?;
    let ids: Vec<String> = changes.members.keys().map(MemberId::to_string).collect();
    let favourites = favourite_categories(db, ids.clone()).await?;
    let recorded_at = to_micros(now);
    let mut rows = Rows::new(14);
    for (member_id, tenant_id) in &changes.members {
        let zone = zones.get(tenant_id).copied().unwrap_or(chrono_tz::UTC);
        let purchases = histories.get(member_id).map(Vec::as_slice).unwrap_or(&[]);
        let kept = kept_of(zone, local_day(zone, now), purchases);
        rows.push(vec![
            member_id.to_string().into(),
            tenant_id.to_string().into(),
            kept.first_at.into(),
            kept.last_at.into(),
            kept.window_day.into(),
            kept.spend[0].into(),
            kept.spend[1].into(),
            kept.spend[2].into(),
            kept.visits[0].into(),
            kept.visits[1].into(),
            kept.visits[2].into(),
            kept.favourite_store.into(),
            favourites.get(member_id).cloned().into(),
            recorded_at.into(),
        ]);
    }
    db.execute_all(rows.statements(
        backend,
        "INSERT INTO member_profiles (member_id, tenant_id, first_purchase_at, last_purchase_at, window_day, \
         spend_30d, spend_90d, spend_365d, visits_30d, visits_90d, visits_365d, favourite_store, \
         favourite_category, updated_at)",
        "ON CONFLICT (member_id) DO UPDATE SET first_purchase_at = excluded.first_purchase_at, \
         last_purchase_at = excluded.last_purchase_at, window_day = excluded.window_day, \
         spend_30d = excluded.spend_30d, spend_90d = excluded.spend_90d, spend_365d = excluded.spend_365d, \
         visits_30d = excluded.visits_30d, visits_90d = excluded.visits_90d, visits_365d = excluded.visits_365d, \
         favourite_store = excluded.favourite_store, favourite_category = excluded.favourite_category, \
         updated_at = excluded.updated_at",
    ))
    .await?;
    if !changes.gone.is_empty() {
        let gone: Vec<String> = changes.gone.iter().map(MemberId::to_string).collect();
        for table in ["member_profiles", "member_categories"] {
            db.execute(
                &format!(
                    "DELETE FROM {table} WHERE {}",
                    crate::sql::one_of(backend, "member_id", 1)
                ),
                vec![Bind::Texts(gone.clone())],
            )
            .await?;
        }
    }
    Ok(())
}

/// Each member's category with the most spend.
async fn favourite_categories(
    db: &mut Tx<'_>,
    ids: Vec<String>,
) -> Result<HashMap<MemberId, String>, StoreError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let sql = by_keys(
        db.backend(),
        "SELECT member_id, category, spend FROM member_categories WHERE",
        "member_id",
        1,
        false,
    );
    let mut spend: BTreeMap<MemberId, Vec<(String, i64)>> = BTreeMap::new();
    for row in db.fetch(&sql, vec![Bind::Texts(ids)]).await? {
        let member_id = crate::batch::parse_member_id(&row.text("member_id")?)?;
        spend
            .entry(member_id)
            .or_default()
            .push((row.text("category")?, row.int("spend")?));
    }
    Ok(spend
        .into_iter()
        .filter_map(|(member_id, mut categories)| {
            categories.sort();
            let best = favourite(
                categories
                    .iter()
                    .map(|(category, spend)| (category.as_str(), *spend)),
            )?;
            Some((member_id, best))
        })
        .collect())
}

/// The instant local day `day` starts in `zone`, in microseconds.
fn day_start(zone: chrono_tz::Tz, day: i64) -> Option<i64> {
    use chrono::TimeZone;
    let date = patron_core::segment::date_of_day(day)?;
    let midnight = date.and_hms_opt(0, 0, 0)?;
    let start = zone.from_local_datetime(&midnight).earliest().or_else(|| {
        // A zone whose clocks skip midnight starts the day at the first hour that exists.
        zone.from_local_datetime(&date.and_hms_opt(1, 0, 0)?)
            .earliest()
    })?;
    Some(to_micros(start.with_timezone(&chrono::Utc)))
}

/// One chunk of the profiles job: the first tenant whose windows are behind today gets up to
/// [`JOB_CHUNK_SIZE`] members recomputed (every member, for a tenant never rolled; else those
/// with a purchase on a day that has left a window since). The cursor is `tenant/member`.
pub(crate) async fn roll_chunk(
    db: &mut Tx<'_>,
    now: Timestamp,
    cursor: Option<String>,
) -> Result<JobReport, StoreError> {
    let tenants = db
        .fetch(
            "SELECT t.id, t.time_zone, p.rolled_day FROM tenants t \
             LEFT JOIN tenant_profiles p ON p.tenant_id = t.id ORDER BY t.id",
            Vec::new(),
        )
        .await?;
    let (cursor_tenant, cursor_member) = cursor
        .as_deref()
        .and_then(|cursor| cursor.split_once('/'))
        .map(|(tenant, member)| (tenant.to_owned(), member.to_owned()))
        .unwrap_or_default();
    for row in &tenants {
        let tenant = row.text("id")?;
        let zone: chrono_tz::Tz = row
            .text("time_zone")?
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("tenant {tenant}: time zone")))?;
        let today = local_day(zone, now);
        let rolled = row.opt_int("rolled_day")?;
        if rolled.is_some_and(|rolled| rolled >= today) {
            continue;
        }
        let after = if cursor_tenant == tenant {
            cursor_member.clone()
        } else {
            String::new()
        };
        let ids = match rolled {
            None => ids(
                db,
                &format!(
                    "SELECT id FROM members WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT {JOB_CHUNK_SIZE}"
                ),
                binds![tenant.clone(), after],
            )
            .await?,
            Some(rolled) => {
                let mut selects = Vec::new();
                let mut values: Vec<Bind> = binds![tenant.clone(), after];
                for window in WINDOWS_DAYS {
                    let (Some(from), Some(to)) = (
                        day_start(zone, rolled - window + 1),
                        day_start(zone, today - window + 1),
                    ) else {
                        continue;
                    };
                    let index = values.len();
                    selects.push(format!(
                        "SELECT member_id AS id FROM events WHERE tenant_id = $1 AND kind = 'purchase' \
                         AND member_id > $2 AND occurred_at >= ${} AND occurred_at < ${}",
                        index + 1,
                        index + 2
                    ));
                    values.push(from.into());
                    values.push(to.into());
                }
                let sql = format!(
                    "{} ORDER BY id LIMIT {JOB_CHUNK_SIZE}",
                    selects.join(" UNION ")
                );
                ids(db, &sql, values).await?
            }
        };
        let tenant_id: TenantId = crate::batch::parse_tenant_id(&tenant)?;
        let members: Vec<MemberId> = ids
            .iter()
            .map(|id| crate::batch::parse_member_id(id))
            .collect::<Result<_, _>>()?;
        recompute(db, tenant_id, zone, &members, now).await?;
        let mut report = JobReport {
            processed: members.len() as u64,
            ..JobReport::default()
        };
        if members.len() == JOB_CHUNK_SIZE {
            report.next_cursor = Some(format!("{tenant}/{}", ids[ids.len() - 1]));
        } else {
            db.execute(
                "INSERT INTO tenant_profiles (tenant_id, rolled_day) VALUES ($1, $2) \
                 ON CONFLICT (tenant_id) DO UPDATE SET rolled_day = excluded.rolled_day",
                binds![tenant, today],
            )
            .await?;
            // Another tenant may be behind too.
            report.next_cursor = Some(String::new());
        }
        return Ok(report);
    }
    Ok(JobReport::default())
}

async fn ids(db: &mut Tx<'_>, sql: &str, values: Vec<Bind>) -> Result<Vec<String>, StoreError> {
    db.fetch(sql, values)
        .await?
        .iter()
        .map(|row: &Row| row.text("id"))
        .collect()
}

/// Recomputes the profiles of `members` of one tenant and marks them changed.
pub(crate) async fn recompute(
    db: &mut Tx<'_>,
    tenant_id: TenantId,
    zone: chrono_tz::Tz,
    members: &[MemberId],
    now: Timestamp,
) -> Result<(), StoreError> {
    if members.is_empty() {
        return Ok(());
    }
    let histories = purchases_of(db, members).await?;
    let changes = ProfileChanges {
        members: members.iter().map(|member| (*member, tenant_id)).collect(),
        ..ProfileChanges::default()
    };
    write(
        db,
        changes,
        &histories,
        &HashMap::from([(tenant_id, zone)]),
        now,
    )
    .await?;
    touch(db, members, now).await
}

/// Marks members changed (`members.updated_at`), so the segment tables read them again.
pub(crate) async fn touch(
    db: &mut Tx<'_>,
    members: &[MemberId],
    now: Timestamp,
) -> Result<(), StoreError> {
    let backend = db.backend();
    let ids: Vec<String> = members.iter().map(MemberId::to_string).collect();
    db.execute(
        &format!(
            "UPDATE members SET updated_at = $1 WHERE {}",
            crate::sql::one_of(backend, "id", 2)
        ),
        vec![to_micros(now).into(), Bind::Texts(ids)],
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000_000;

    fn point(day: i64, store: &str, amount: i64, refunded: i64, voided: bool) -> PurchasePoint {
        PurchasePoint {
            at: day * DAY + 3_600_000_000,
            event_id: format!("e{day}{store}"),
            store: Some(store.into()),
            tier: String::new(),
            amount,
            refunded,
            voided,
        }
    }

    #[test]
    fn windows_count_spend_and_days_that_are_in_them() {
        let today = 20_000;
        let purchases = [
            point(today - 400, "A", 900_000, 0, false),
            point(today - 200, "A", 100_000, 0, false),
            point(today - 60, "B", 300_000, 100_000, false),
            point(today - 29, "B", 50_000, 0, false),
            point(today - 29, "B", 70_000, 0, false),
            point(today - 30, "B", 1_000_000, 0, true),
            point(today, "B", 10_000, 0, false),
        ];
        let kept = kept_of(chrono_tz::UTC, today, &purchases);
        assert_eq!(kept.spend, [130_000, 330_000, 430_000]);
        assert_eq!(kept.visits, [2, 3, 4]);
        assert_eq!(kept.first_at, Some(purchases[0].at));
        assert_eq!(kept.last_at, Some(purchases[6].at));
        assert_eq!(kept.favourite_store.as_deref(), Some("A"));
        let nothing = kept_of(chrono_tz::UTC, today, &[]);
        assert_eq!(nothing.first_at, None);
        assert_eq!(nothing.favourite_store, None);
    }

    #[test]
    fn a_day_starts_at_local_midnight() {
        let zone: chrono_tz::Tz = "Asia/Ho_Chi_Minh".parse().unwrap();
        let start = day_start(zone, 20_000).unwrap();
        assert_eq!(local_day(zone, from_micros(start)), 20_000);
        assert_eq!(local_day(zone, from_micros(start - 1)), 19_999);
    }
}
