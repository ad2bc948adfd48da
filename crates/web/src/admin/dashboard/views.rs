//! The dashboard's figures as the page's cards, charts and tables.

use super::*;

/// A figure in a card at the top.
pub(super) struct CardView {
    pub(super) label: &'static str,
    pub(super) value: String,
    pub(super) note: String,
}

/// A chart with its legend.
pub(super) struct ChartView {
    pub(super) title: &'static str,
    pub(super) svg: String,
    pub(super) legend: Vec<&'static str>,
}

/// A table as the page writes it: (text, is a number) per cell.
pub(super) struct TableView {
    pub(super) name: &'static str,
    pub(super) title: &'static str,
    pub(super) csv_href: String,
    pub(super) headers: Vec<&'static str>,
    pub(super) rows: Vec<Vec<(String, bool)>>,
}

pub(super) struct View {
    pub(super) period_text: String,
    pub(super) store_chosen: bool,
    pub(super) cards: Vec<CardView>,
    pub(super) charts: Vec<ChartView>,
    pub(super) tables: Vec<TableView>,
}

#[derive(Template)]
#[template(path = "admin/dashboard.html")]
pub(super) struct DashboardPage {
    pub(super) t: Texts,
    pub(super) staff: Staff,
    pub(super) form: FilterForm,
    pub(super) periods: Vec<(&'static str, &'static str, bool)>,
    pub(super) stores: Vec<(String, String, bool)>,
    pub(super) view: Option<View>,
}

pub(super) fn cards(staff: &Staff, figures: &Figures) -> Vec<CardView> {
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

pub(super) fn chart_views(staff: &Staff, figures: &Figures) -> Vec<ChartView> {
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

pub(super) fn view(staff: &Staff, form: &FilterForm, filter: &Filter, figures: &Figures) -> View {
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
