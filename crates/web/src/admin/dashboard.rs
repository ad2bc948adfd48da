//! The owner's dashboard (`/admin`): the period's members, purchases, points and rewards, as
//! figures, SVG charts and tables, each table also a CSV download (`/admin/export/NAME.csv`)
//! with the same filters. Figures come from `patron_store::stats`; this module only chooses
//! the period in the tenant's zone and lays the figures out.

use super::charts::{self, Series};
use super::csv::{text_field, Csv};
use super::{local_midnight, reader, url_encode};
use crate::i18n::{Locale, Texts};
use crate::page::{self, render, render_with};
use crate::staff::Staff;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{Datelike, Duration, NaiveDate, Utc};
use patron_core::time::Timestamp;
use patron_server::AppState;
use patron_store::stats::{Bucket, Overview, RewardCount, StatsQuery, TierSpend};
use serde::Deserialize;

/// Longest custom period, in days.
pub const PERIOD_DAYS_MAX: i64 = 731;
/// Daily bars up to this many days; weekly bars up to `WEEKLY_DAYS_MAX`; monthly beyond.
const DAILY_DAYS_MAX: i64 = 62;
const WEEKLY_DAYS_MAX: i64 = 366;
/// Months of outstanding points listed one by one after the current month.
const LIABILITY_MONTHS: u32 = 12;
/// The tables of the dashboard, by the name of their CSV file.
pub const TABLES: [&str; 5] = ["summary", "series", "tiers", "rewards", "liability"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PeriodKind {
    Month,
    Days30,
    Days90,
    Year,
    Custom,
}

impl PeriodKind {
    const ALL: [PeriodKind; 5] = [
        PeriodKind::Month,
        PeriodKind::Days30,
        PeriodKind::Days90,
        PeriodKind::Year,
        PeriodKind::Custom,
    ];

    fn code(self) -> &'static str {
        match self {
            PeriodKind::Month => "month",
            PeriodKind::Days30 => "30d",
            PeriodKind::Days90 => "90d",
            PeriodKind::Year => "year",
            PeriodKind::Custom => "custom",
        }
    }

    fn label(self, t: Texts) -> &'static str {
        match self {
            PeriodKind::Month => t.get("admin.period.month"),
            PeriodKind::Days30 => t.get("admin.period.days30"),
            PeriodKind::Days90 => t.get("admin.period.days90"),
            PeriodKind::Year => t.get("admin.period.year"),
            PeriodKind::Custom => t.get("admin.period.custom"),
        }
    }

    fn parse(code: &str) -> Option<PeriodKind> {
        PeriodKind::ALL.into_iter().find(|kind| kind.code() == code)
    }
}

/// The filters as sent (a GET form); every field optional.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct FilterQuery {
    period: Option<String>,
    from: Option<String>,
    to: Option<String>,
    store: Option<String>,
}

/// The filter form as shown back, with a message next to each field at fault.
pub struct FilterForm {
    period: PeriodKind,
    from: String,
    to: String,
    store: String,
    from_error: Option<&'static str>,
    to_error: Option<&'static str>,
    store_error: Option<&'static str>,
}

impl FilterForm {
    fn has_errors(&self) -> bool {
        self.from_error.is_some() || self.to_error.is_some() || self.store_error.is_some()
    }

    /// The query string that chose these figures, for the CSV links.
    fn query_string(&self) -> String {
        format!(
            "period={}&from={}&to={}&store={}",
            self.period.code(),
            url_encode(&self.from),
            url_encode(&self.to),
            url_encode(&self.store)
        )
    }
}

/// A period of whole local days and the store, ready for the store's queries.
struct Filter {
    first_day: NaiveDate,
    last_day: NaiveDate,
    store: Option<String>,
}

fn parse_day(text: Option<&str>) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text?.trim(), "%Y-%m-%d").ok()
}

/// Reads the filters against today in the tenant's zone and its stores.
fn parse_filter(
    query: &FilterQuery,
    today: NaiveDate,
    stores: &[String],
) -> (FilterForm, Option<Filter>) {
    let period = query
        .period
        .as_deref()
        .and_then(PeriodKind::parse)
        .unwrap_or(PeriodKind::Month);
    let store = query.store.clone().unwrap_or_default().trim().to_owned();
    let mut form = FilterForm {
        period,
        from: query.from.clone().unwrap_or_default(),
        to: query.to.clone().unwrap_or_default(),
        store: store.clone(),
        from_error: None,
        to_error: None,
        store_error: None,
    };
    if !store.is_empty() && !stores.contains(&store) {
        form.store_error = Some("admin.filter.unknown_store");
    }
    let days = match period {
        PeriodKind::Month => Some((today.with_day(1).unwrap_or(today), today)),
        PeriodKind::Days30 => Some((today - Duration::days(29), today)),
        PeriodKind::Days90 => Some((today - Duration::days(89), today)),
        PeriodKind::Year => Some((today.with_ordinal(1).unwrap_or(today), today)),
        PeriodKind::Custom => {
            let first = parse_day(query.from.as_deref());
            let last = parse_day(query.to.as_deref());
            if first.is_none() {
                form.from_error = Some("admin.filter.date_invalid");
            }
            if last.is_none() {
                form.to_error = Some("admin.filter.date_invalid");
            }
            match (first, last) {
                (Some(first), Some(last)) if last < first => {
                    form.to_error = Some("admin.filter.date_order");
                    None
                }
                (Some(first), Some(last)) if (last - first).num_days() + 1 > PERIOD_DAYS_MAX => {
                    form.to_error = Some("admin.filter.too_long");
                    None
                }
                (Some(first), Some(last)) => Some((first, last)),
                _ => None,
            }
        }
    };
    let Some((first_day, last_day)) = days else {
        return (form, None);
    };
    form.from = first_day.format("%Y-%m-%d").to_string();
    form.to = last_day.format("%Y-%m-%d").to_string();
    if form.has_errors() {
        return (form, None);
    }
    let filter = Filter {
        first_day,
        last_day,
        store: (!store.is_empty()).then_some(store),
    };
    (form, Some(filter))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Day,
    Week,
    Month,
}

/// The first day of each bucket, and the day after the last bucket.
fn bucket_days(first: NaiveDate, last: NaiveDate) -> (Step, Vec<NaiveDate>) {
    let end = last + Duration::days(1);
    let span = (end - first).num_days();
    let step = if span <= DAILY_DAYS_MAX {
        Step::Day
    } else if span <= WEEKLY_DAYS_MAX {
        Step::Week
    } else {
        Step::Month
    };
    let mut days = vec![first];
    loop {
        let current = *days.last().expect("days start with one");
        let next = match step {
            Step::Day => current + Duration::days(1),
            Step::Week => current + Duration::days(7),
            Step::Month => first_of_next_month(current),
        };
        if next >= end {
            days.push(end);
            return (step, days);
        }
        days.push(next);
    }
}

fn first_of_next_month(day: NaiveDate) -> NaiveDate {
    let (year, month) = if day.month() == 12 {
        (day.year() + 1, 1)
    } else {
        (day.year(), day.month() + 1)
    };
    NaiveDate::from_ymd_opt(year, month, 1).expect("the first of a month exists")
}

fn month_name(t: Texts, month: u32) -> &'static str {
    t.get("admin.months")
        .split(',')
        .nth(month as usize - 1)
        .unwrap_or("")
}

fn day_label(t: Texts, day: NaiveDate) -> String {
    match t.locale {
        Locale::Vi => day.format("%d/%m").to_string(),
        Locale::En => format!("{} {}", day.day(), month_name(t, day.month())),
    }
}

fn full_day(t: Texts, day: NaiveDate) -> String {
    match t.locale {
        Locale::Vi => day.format("%d/%m/%Y").to_string(),
        Locale::En => format!(
            "{} {} {}",
            day.day(),
            month_name(t, day.month()),
            day.year()
        ),
    }
}

fn month_label(t: Texts, day: NaiveDate) -> String {
    match t.locale {
        Locale::Vi => day.format("%m/%Y").to_string(),
        Locale::En => format!("{} {}", month_name(t, day.month()), day.year()),
    }
}

/// Basis points as a percentage with two decimals, in the visitor's language.
pub fn percent(locale: Locale, basis_points: Option<i64>) -> String {
    let Some(value) = basis_points else {
        return "—".to_owned();
    };
    let separator = match locale {
        Locale::Vi => ',',
        Locale::En => '.',
    };
    let sign = if value < 0 { "-" } else { "" };
    let value = value.unsigned_abs();
    format!("{sign}{}{separator}{:02}%", value / 100, value % 100)
}

/// A table cell: what it is decides how the page and the CSV write it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cell {
    Text(String),
    Count(i64),
    Money(i64),
    Points(i64),
    /// Basis points.
    Rate(Option<i64>),
}

impl Cell {
    fn html(&self, staff: &Staff) -> (String, bool) {
        match self {
            Cell::Text(text) => (text.clone(), false),
            Cell::Count(count) => (staff.points(*count), true),
            Cell::Money(minor) => (staff.money(*minor), true),
            Cell::Points(points) => (staff.points(*points), true),
            Cell::Rate(rate) => (percent(staff.t.locale, *rate), true),
        }
    }

    /// Plain numbers (money in minor units, rates as percentages with a point) so a
    /// spreadsheet can add them up.
    fn csv(&self) -> String {
        match self {
            Cell::Text(text) => text_field(text),
            Cell::Count(value) | Cell::Money(value) | Cell::Points(value) => value.to_string(),
            Cell::Rate(Some(value)) => {
                let sign = if *value < 0 { "-" } else { "" };
                let value = value.unsigned_abs();
                format!("{sign}{}.{:02}", value / 100, value % 100)
            }
            Cell::Rate(None) => String::new(),
        }
    }
}

/// One table of the dashboard.
pub struct Table {
    pub name: &'static str,
    pub title: &'static str,
    pub headers: Vec<&'static str>,
    pub rows: Vec<Vec<Cell>>,
}

/// Everything the dashboard shows for one filter.
struct Figures {
    overview: Overview,
    point_value: i64,
    step: Step,
    labels: Vec<String>,
    buckets: Vec<Bucket>,
    /// Tier name and its figures, in the programme's order.
    tiers: Vec<(String, TierSpend)>,
    rewards: Vec<RewardCount>,
    /// (month, points) of outstanding points by expiry.
    liability: Vec<(String, i64)>,
}

async fn figures(
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
fn average_per_visit(overview: &Overview) -> Option<i64> {
    TierSpend {
        tier: String::new(),
        members: 0,
        buyers: 0,
        purchases: overview.purchases,
        revenue: overview.revenue,
    }
    .average_per_visit()
}

fn tables(t: Texts, figures: &Figures) -> Vec<Table> {
    let overview = &figures.overview;
    let points = &overview.points;
    let value = |points: i64| points.saturating_mul(figures.point_value);
    let average = average_per_visit(overview);
    let summary = vec![
        (t.get("admin.figure.members"), Cell::Count(overview.members)),
        (
            t.get("admin.figure.new_members"),
            Cell::Count(overview.new_members),
        ),
        (
            t.get("admin.figure.active_members"),
            Cell::Count(overview.active_members),
        ),
        (
            t.get("admin.figure.repeat_members"),
            Cell::Count(overview.repeat_members),
        ),
        (
            t.get("admin.figure.repeat_rate"),
            Cell::Rate(overview.repeat_rate_basis_points()),
        ),
        (
            t.get("admin.figure.purchases"),
            Cell::Count(overview.purchases),
        ),
        (t.get("admin.figure.revenue"), Cell::Money(overview.revenue)),
        (
            t.get("admin.figure.average_visit"),
            average.map(Cell::Money).unwrap_or(Cell::Rate(None)),
        ),
        (t.get("admin.figure.issued"), Cell::Points(points.issued)),
        (
            t.get("admin.figure.redeemed"),
            Cell::Points(points.redeemed),
        ),
        (t.get("admin.figure.expired"), Cell::Points(points.expired)),
        (
            t.get("admin.figure.taken_back"),
            Cell::Points(points.taken_back),
        ),
        (
            t.get("admin.figure.adjusted"),
            Cell::Points(points.adjusted),
        ),
        (
            t.get("admin.figure.redemption_rate"),
            Cell::Rate(points.redemption_rate_basis_points()),
        ),
        (
            t.get("admin.figure.outstanding"),
            Cell::Points(overview.outstanding_points),
        ),
        (
            t.get("admin.figure.outstanding_value"),
            Cell::Money(value(overview.outstanding_points)),
        ),
        (
            t.get("admin.figure.vouchers_outstanding"),
            Cell::Count(overview.outstanding_vouchers),
        ),
        (
            t.get("admin.figure.voucher_points"),
            Cell::Points(overview.outstanding_voucher_points),
        ),
    ];
    // Other assets members hold: store credit in money, stamps per card.
    let mut summary = summary
        .into_iter()
        .map(|(label, cell)| (label.to_owned(), cell))
        .collect::<Vec<_>>();
    for (asset, held) in &overview.outstanding_holdings {
        match asset.strip_prefix("stamps:") {
            Some(card) => summary.push((
                t.fill("admin.figure.outstanding_stamps", &[("card", card)]),
                Cell::Count(*held),
            )),
            None => summary.push((
                t.get("admin.figure.outstanding_money").to_owned(),
                Cell::Money(*held),
            )),
        }
    }
    vec![
        Table {
            name: "summary",
            title: t.get("admin.table.summary"),
            headers: vec![t.get("admin.column.figure"), t.get("admin.column.value")],
            rows: summary
                .into_iter()
                .map(|(label, cell)| vec![Cell::Text(label.to_owned()), cell])
                .collect(),
        },
        Table {
            name: "series",
            title: match figures.step {
                Step::Day => t.get("admin.table.series_day"),
                Step::Week => t.get("admin.table.series_week"),
                Step::Month => t.get("admin.table.series_month"),
            },
            headers: vec![
                t.get("admin.column.from"),
                t.get("admin.column.purchases"),
                t.get("admin.column.revenue"),
                t.get("admin.column.issued"),
                t.get("admin.column.redeemed"),
                t.get("admin.column.expired"),
            ],
            rows: figures
                .labels
                .iter()
                .zip(&figures.buckets)
                .map(|(label, bucket)| {
                    vec![
                        Cell::Text(label.clone()),
                        Cell::Count(bucket.purchases),
                        Cell::Money(bucket.revenue),
                        Cell::Points(bucket.points.issued),
                        Cell::Points(bucket.points.redeemed),
                        Cell::Points(bucket.points.expired),
                    ]
                })
                .collect(),
        },
        Table {
            name: "tiers",
            title: t.get("admin.table.tiers"),
            headers: vec![
                t.get("admin.column.tier"),
                t.get("admin.column.members"),
                t.get("admin.column.buyers"),
                t.get("admin.column.purchases"),
                t.get("admin.column.revenue"),
                t.get("admin.column.average_visit"),
            ],
            rows: figures
                .tiers
                .iter()
                .map(|(name, spend)| {
                    vec![
                        Cell::Text(name.clone()),
                        Cell::Count(spend.members),
                        Cell::Count(spend.buyers),
                        Cell::Count(spend.purchases),
                        Cell::Money(spend.revenue),
                        spend
                            .average_per_visit()
                            .map(Cell::Money)
                            .unwrap_or(Cell::Rate(None)),
                    ]
                })
                .collect(),
        },
        Table {
            name: "rewards",
            title: t.get("admin.table.rewards"),
            headers: vec![
                t.get("admin.column.reward"),
                t.get("admin.column.vouchers"),
                t.get("admin.column.points"),
                t.get("admin.column.used"),
            ],
            rows: figures
                .rewards
                .iter()
                .map(|reward| {
                    vec![
                        Cell::Text(reward.name.clone()),
                        Cell::Count(reward.vouchers),
                        Cell::Points(reward.points),
                        Cell::Count(reward.used),
                    ]
                })
                .collect(),
        },
        Table {
            name: "liability",
            title: t.get("admin.table.liability"),
            headers: vec![
                t.get("admin.column.expires"),
                t.get("admin.column.points"),
                t.get("admin.column.value"),
            ],
            rows: figures
                .liability
                .iter()
                .map(|(month, points)| {
                    vec![
                        Cell::Text(month.clone()),
                        Cell::Points(*points),
                        Cell::Money(value(*points)),
                    ]
                })
                .collect(),
        },
    ]
}

/// A figure in a card at the top.
struct CardView {
    label: &'static str,
    value: String,
    note: String,
}

/// A chart with its legend.
struct ChartView {
    title: &'static str,
    svg: String,
    legend: Vec<&'static str>,
}

/// A table as the page writes it: (text, is a number) per cell.
struct TableView {
    name: &'static str,
    title: &'static str,
    csv_href: String,
    headers: Vec<&'static str>,
    rows: Vec<Vec<(String, bool)>>,
}

struct View {
    period_text: String,
    store_chosen: bool,
    cards: Vec<CardView>,
    charts: Vec<ChartView>,
    tables: Vec<TableView>,
}

#[derive(Template)]
#[template(path = "admin/dashboard.html")]
struct DashboardPage {
    t: Texts,
    staff: Staff,
    form: FilterForm,
    periods: Vec<(&'static str, &'static str, bool)>,
    stores: Vec<(String, String, bool)>,
    view: Option<View>,
}

fn cards(staff: &Staff, figures: &Figures) -> Vec<CardView> {
    let t = staff.t;
    let overview = &figures.overview;
    let points = &overview.points;
    vec![
        CardView {
            label: t.get("admin.figure.members"),
            value: staff.points(overview.members),
            note: t.fill(
                "admin.card.new_members",
                &[("count", &staff.points(overview.new_members))],
            ),
        },
        CardView {
            label: t.get("admin.figure.active_members"),
            value: staff.points(overview.active_members),
            note: t.fill(
                "admin.card.purchases",
                &[("count", &staff.points(overview.purchases))],
            ),
        },
        CardView {
            label: t.get("admin.figure.repeat_rate"),
            value: percent(t.locale, overview.repeat_rate_basis_points()),
            note: t.fill(
                "admin.card.repeat",
                &[
                    ("repeat", &staff.points(overview.repeat_members)),
                    ("active", &staff.points(overview.active_members)),
                ],
            ),
        },
        CardView {
            label: t.get("admin.figure.revenue"),
            value: staff.money(overview.revenue),
            note: t.get("admin.card.revenue_note").to_owned(),
        },
        CardView {
            label: t.get("admin.figure.average_visit"),
            value: average_per_visit(overview)
                .map(|average| staff.money(average))
                .unwrap_or_else(|| "—".to_owned()),
            note: t.get("admin.card.average_note").to_owned(),
        },
        CardView {
            label: t.get("admin.figure.issued"),
            value: staff.points(points.issued),
            note: t.fill(
                "admin.card.redeemed_expired",
                &[
                    ("redeemed", &staff.points(points.redeemed)),
                    ("expired", &staff.points(points.expired)),
                ],
            ),
        },
        CardView {
            label: t.get("admin.figure.redemption_rate"),
            value: percent(t.locale, points.redemption_rate_basis_points()),
            note: t.get("admin.card.redemption_note").to_owned(),
        },
        CardView {
            label: t.get("admin.figure.outstanding"),
            value: staff.points(overview.outstanding_points),
            note: t.fill(
                "admin.card.outstanding_value",
                &[(
                    "value",
                    &staff.money(
                        overview
                            .outstanding_points
                            .saturating_mul(figures.point_value),
                    ),
                )],
            ),
        },
    ]
}

fn chart_views(staff: &Staff, figures: &Figures) -> Vec<ChartView> {
    let t = staff.t;
    let revenue_title = match figures.step {
        Step::Day => t.get("admin.chart.revenue_day"),
        Step::Week => t.get("admin.chart.revenue_week"),
        Step::Month => t.get("admin.chart.revenue_month"),
    };
    let revenue = charts::bars(
        "chart-revenue",
        revenue_title,
        &figures.labels,
        &[Series {
            name: t.get("admin.column.revenue"),
            values: figures
                .buckets
                .iter()
                .map(|bucket| bucket.revenue)
                .collect(),
        }],
        |value| staff.money(value),
    );
    let points = charts::bars(
        "chart-points",
        t.get("admin.chart.points"),
        &figures.labels,
        &[
            Series {
                name: t.get("admin.column.issued"),
                values: figures
                    .buckets
                    .iter()
                    .map(|bucket| bucket.points.issued)
                    .collect(),
            },
            Series {
                name: t.get("admin.column.redeemed"),
                values: figures
                    .buckets
                    .iter()
                    .map(|bucket| bucket.points.redeemed)
                    .collect(),
            },
            Series {
                name: t.get("admin.column.expired"),
                values: figures
                    .buckets
                    .iter()
                    .map(|bucket| bucket.points.expired)
                    .collect(),
            },
        ],
        |value| staff.points(value),
    );
    let members: Vec<(String, i64)> = figures
        .tiers
        .iter()
        .map(|(name, spend)| (name.clone(), spend.members))
        .collect();
    let average: Vec<(String, i64)> = figures
        .tiers
        .iter()
        .map(|(name, spend)| (name.clone(), spend.average_per_visit().unwrap_or(0)))
        .collect();
    vec![
        ChartView {
            title: revenue_title,
            svg: revenue,
            legend: Vec::new(),
        },
        ChartView {
            title: t.get("admin.chart.points"),
            svg: points,
            legend: vec![
                t.get("admin.column.issued"),
                t.get("admin.column.redeemed"),
                t.get("admin.column.expired"),
            ],
        },
        ChartView {
            title: t.get("admin.chart.tiers"),
            svg: charts::horizontal_bars(
                "chart-tiers",
                t.get("admin.chart.tiers"),
                &members,
                |value| staff.points(value),
            ),
            legend: Vec::new(),
        },
        ChartView {
            title: t.get("admin.chart.average"),
            svg: charts::horizontal_bars(
                "chart-average",
                t.get("admin.chart.average"),
                &average,
                |value| staff.money(value),
            ),
            legend: Vec::new(),
        },
    ]
}

fn view(staff: &Staff, form: &FilterForm, filter: &Filter, figures: &Figures) -> View {
    let t = staff.t;
    let query = form.query_string();
    View {
        period_text: t.fill(
            "admin.period.showing",
            &[
                ("from", &full_day(t, filter.first_day)),
                ("to", &full_day(t, filter.last_day)),
            ],
        ),
        store_chosen: filter.store.is_some(),
        cards: cards(staff, figures),
        charts: chart_views(staff, figures),
        tables: tables(t, figures)
            .into_iter()
            .map(|table| TableView {
                name: table.name,
                title: table.title,
                csv_href: format!("/admin/export/{}.csv?{query}", table.name),
                headers: table.headers,
                rows: table
                    .rows
                    .iter()
                    .map(|row| row.iter().map(|cell| cell.html(staff)).collect())
                    .collect(),
            })
            .collect(),
    }
}

/// The filters read against today and the tenant's stores, and the stores for the form.
async fn read_filter(
    state: &AppState,
    staff: &Staff,
    query: &FilterQuery,
) -> Result<(FilterForm, Option<Filter>, Vec<(String, String)>), Response> {
    let stores = state
        .store
        .stores(staff.tenant_id)
        .await
        .map_err(|error| page::failed(staff.t, error))?;
    let codes: Vec<String> = stores.iter().map(|store| store.code.clone()).collect();
    let today = Utc::now().with_timezone(&staff.tenant.zone).date_naive();
    let (form, filter) = parse_filter(query, today, &codes);
    let stores = stores
        .into_iter()
        .map(|store| (store.code, store.name))
        .collect();
    Ok((form, filter, stores))
}

fn page(
    staff: Staff,
    form: FilterForm,
    stores: Vec<(String, String)>,
    view: Option<View>,
) -> DashboardPage {
    let t = staff.t;
    DashboardPage {
        t,
        periods: PeriodKind::ALL
            .into_iter()
            .map(|kind| (kind.code(), kind.label(t), kind == form.period))
            .collect(),
        stores: stores
            .into_iter()
            .map(|(code, name)| {
                let chosen = code == form.store;
                (code, name, chosen)
            })
            .collect(),
        staff,
        form,
        view,
    }
}

/// `/admin`: the dashboard for the chosen period and store.
pub async fn dashboard(
    State(state): State<AppState>,
    staff: Staff,
    Query(query): Query<FilterQuery>,
) -> Response {
    if let Err(refused) = reader(&staff) {
        return refused;
    }
    let (form, filter, stores) = match read_filter(&state, &staff, &query).await {
        Ok(read) => read,
        Err(failed) => return failed,
    };
    let Some(filter) = filter else {
        return render_with(
            StatusCode::UNPROCESSABLE_ENTITY,
            &page(staff, form, stores, None),
        );
    };
    let figures = match figures(&state, &staff, &filter).await {
        Ok(figures) => figures,
        Err(error) => return page::failed(staff.t, error),
    };
    let view = view(&staff, &form, &filter, &figures);
    render(&page(staff, form, stores, Some(view)))
}

/// `/admin/export/NAME.csv`: one of the dashboard's tables with the same filters.
pub async fn export(
    State(state): State<AppState>,
    staff: Staff,
    Path(file): Path<String>,
    Query(query): Query<FilterQuery>,
) -> Response {
    if let Err(refused) = reader(&staff) {
        return refused;
    }
    let Some(name) = file
        .strip_suffix(".csv")
        .filter(|name| TABLES.contains(name))
    else {
        return page::not_found(staff.t);
    };
    let (form, filter, stores) = match read_filter(&state, &staff, &query).await {
        Ok(read) => read,
        Err(failed) => return failed,
    };
    let Some(filter) = filter else {
        return render_with(
            StatusCode::UNPROCESSABLE_ENTITY,
            &page(staff, form, stores, None),
        );
    };
    let figures = match figures(&state, &staff, &filter).await {
        Ok(figures) => figures,
        Err(error) => return page::failed(staff.t, error),
    };
    let Some(table) = tables(staff.t, &figures)
        .into_iter()
        .find(|table| table.name == name)
    else {
        return page::not_found(staff.t);
    };
    let mut csv = Csv::new(&table.headers);
    for row in &table.rows {
        csv.row(row.iter().map(Cell::csv));
    }
    let store = filter
        .store
        .as_deref()
        .map(|store| format!("-{}", store_file_part(store)))
        .unwrap_or_default();
    csv.into_response(&format!(
        "patron-{name}-{}-{}{store}.csv",
        filter.first_day.format("%Y%m%d"),
        filter.last_day.format("%Y%m%d")
    ))
}

/// A store code as part of a file name: ASCII letters, digits, `-` and `_` only.
fn store_file_part(code: &str) -> String {
    code.chars()
        .filter(|character| character.is_ascii_alphanumeric() || "-_".contains(*character))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    fn query(period: &str, from: &str, to: &str, store: &str) -> FilterQuery {
        FilterQuery {
            period: Some(period.into()),
            from: Some(from.into()),
            to: Some(to.into()),
            store: Some(store.into()),
        }
    }

    #[test]
    fn periods_are_whole_local_days_ending_today() {
        let today = day("2026-03-15");
        let stores = vec!["HN01".to_owned()];
        let (form, filter) = parse_filter(&query("month", "", "", ""), today, &stores);
        let filter = filter.unwrap();
        assert_eq!(
            (filter.first_day, filter.last_day),
            (day("2026-03-01"), today)
        );
        assert_eq!(
            (form.from.as_str(), form.to.as_str()),
            ("2026-03-01", "2026-03-15")
        );
        let (_, filter) = parse_filter(&query("30d", "", "", "HN01"), today, &stores);
        let filter = filter.unwrap();
        assert_eq!(filter.first_day, day("2026-02-14"));
        assert_eq!(filter.store.as_deref(), Some("HN01"));
        let (_, filter) = parse_filter(&query("year", "", "", ""), today, &stores);
        assert_eq!(filter.unwrap().first_day, day("2026-01-01"));
    }

    #[test]
    fn a_custom_period_is_checked_field_by_field() {
        let today = day("2026-03-15");
        let stores = vec!["HN01".to_owned()];
        let (form, filter) = parse_filter(&query("custom", "2026-02-30", "", "XX"), today, &stores);
        assert!(filter.is_none());
        assert_eq!(form.from_error, Some("admin.filter.date_invalid"));
        assert_eq!(form.to_error, Some("admin.filter.date_invalid"));
        assert_eq!(form.store_error, Some("admin.filter.unknown_store"));
        let (form, _) = parse_filter(
            &query("custom", "2026-03-10", "2026-03-01", ""),
            today,
            &stores,
        );
        assert_eq!(form.to_error, Some("admin.filter.date_order"));
        let (form, _) = parse_filter(
            &query("custom", "2020-01-01", "2026-03-01", ""),
            today,
            &stores,
        );
        assert_eq!(form.to_error, Some("admin.filter.too_long"));
        let (_, filter) = parse_filter(
            &query("custom", "2026-01-05", "2026-01-05", ""),
            today,
            &stores,
        );
        assert_eq!(filter.unwrap().first_day, day("2026-01-05"));
    }

    #[test]
    fn buckets_are_days_then_weeks_then_months() {
        let (step, days) = bucket_days(day("2026-03-01"), day("2026-03-03"));
        assert_eq!(step, Step::Day);
        assert_eq!(
            days,
            vec![
                day("2026-03-01"),
                day("2026-03-02"),
                day("2026-03-03"),
                day("2026-03-04")
            ]
        );
        let (step, days) = bucket_days(day("2026-01-01"), day("2026-03-31"));
        assert_eq!(step, Step::Week);
        assert_eq!(
            days.len(),
            14,
            "13 weeks from 1 January, the last one short"
        );
        assert_eq!(*days.last().unwrap(), day("2026-04-01"));
        let (step, days) = bucket_days(day("2025-01-15"), day("2026-03-31"));
        assert_eq!(step, Step::Month);
        assert_eq!(days[1], day("2025-02-01"));
        assert_eq!(*days.last().unwrap(), day("2026-04-01"));
        assert!(days.len() <= patron_store::stats::SERIES_BUCKETS_MAX + 1);
        let (_, days) = bucket_days(day("2024-01-01"), day("2025-12-31"));
        assert!(days.len() <= patron_store::stats::SERIES_BUCKETS_MAX + 1);
    }

    #[test]
    fn rates_read_as_percentages() {
        assert_eq!(percent(Locale::Vi, Some(3_333)), "33,33%");
        assert_eq!(percent(Locale::En, Some(10_000)), "100.00%");
        assert_eq!(percent(Locale::En, Some(5)), "0.05%");
        assert_eq!(percent(Locale::Vi, None), "—");
        assert_eq!(Cell::Rate(Some(6_667)).csv(), "66.67");
        assert_eq!(Cell::Text("=1+1".into()).csv(), "'=1+1");
    }
}
