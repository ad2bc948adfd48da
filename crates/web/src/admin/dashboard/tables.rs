//! The dashboard's figures as tables: what the page shows and each CSV download holds.

use super::*;

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
    pub(super) fn html(&self, staff: &Staff) -> (String, bool) {
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
    pub(super) fn csv(&self) -> String {
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

pub(super) fn tables(t: Texts, figures: &Figures) -> Vec<Table> {
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
