//! The figures one dashboard shows, read at once from the store's kept figures.

use super::*;

/// Everything the dashboard shows for one filter.
pub(super) struct Figures {
    pub(super) overview: Overview,
    pub(super) point_value: i64,
    pub(super) step: Step,
    pub(super) labels: Vec<String>,
    pub(super) buckets: Vec<Bucket>,
    /// Tier name and its figures, in the programme's order.
    pub(super) tiers: Vec<(String, TierSpend)>,
    pub(super) rewards: Vec<RewardCount>,
    /// (month, points) of outstanding points by expiry.
    pub(super) liability: Vec<(String, i64)>,
}

pub(super) async fn figures(
    state: &AppState,
    staff: &Staff,
    filter: &Filter,
) -> Result<Figures, patron_store::StoreError> {
    let zone = staff.tenant.zone;
    let t = staff.t;
    let (step, days) = bucket_days(filter.first_day, filter.last_day);
    let boundaries: Vec<Timestamp> = days.iter().map(|day| local_midnight(*day, zone)).collect();
    let query = StatsQuery {
        tenant_id: staff.tenant_id,
        from: boundaries[0],
        until: boundaries[boundaries.len() - 1],
        store: filter.store.clone(),
    };
    let now = Utc::now();
    let today = now.with_timezone(&zone).date_naive();
    let mut months = vec![first_of_next_month(today)];
    for _ in 0..LIABILITY_MONTHS {
        let next = first_of_next_month(*months.last().expect("months start with one"));
        months.push(next);
    }
    let month_starts: Vec<Timestamp> = months
        .iter()
        .map(|day| local_midnight(*day, zone))
        .collect();
    // Independent reads, at once on the pool's connections.
    let (overview, buckets, spend_by_tier, rewards, by_expiry) = tokio::try_join!(
        state.store.overview(&query),
        state.store.series(&query, &boundaries),
        state.store.spend_by_tier(&query),
        state.store.top_rewards(&query),
        state
            .store
            .liability_by_expiry(staff.tenant_id, &month_starts),
    )?;
    let labels = days[..days.len() - 1]
        .iter()
        .map(|day| match step {
            Step::Day | Step::Week => day_label(t, *day),
            Step::Month => month_label(t, *day),
        })
        .collect();
    let programme = staff.tenant.programme_at(now);
    let point_value = programme
        .map(|programme| programme.definition.point_value)
        .unwrap_or(0);
    let mut tiers: Vec<(usize, String, TierSpend)> = spend_by_tier
        .into_iter()
        .map(|spend| {
            let found = programme.and_then(|programme| programme.tier(&spend.tier));
            match found {
                Some((position, tier)) => (position, tier.name.clone(), spend),
                None => (usize::MAX, spend.tier.clone(), spend),
            }
        })
        .collect();
    tiers.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let mut liability = vec![(month_label(t, today), by_expiry.before)];
    for (month, points) in months.iter().zip(&by_expiry.buckets) {
        liability.push((month_label(t, *month), *points));
    }
    liability.push((t.get("admin.liability.later").to_owned(), by_expiry.later));
    liability.push((t.get("admin.liability.never").to_owned(), by_expiry.never));
    Ok(Figures {
        overview,
        point_value,
        step,
        labels,
        buckets,
        tiers: tiers
            .into_iter()
            .map(|(_, name, spend)| (name, spend))
            .collect(),
        rewards,
        liability,
    })
}

/// What a visit came to on average over every tier.
pub(super) fn average_per_visit(overview: &Overview) -> Option<i64> {
    TierSpend {
        tier: String::new(),
        members: 0,
        buyers: 0,
        purchases: overview.purchases,
        revenue: overview.revenue,
    }
    .average_per_visit()
}
