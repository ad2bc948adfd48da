//! The owner's dashboard (`/admin`): the period's members, purchases, points and rewards, as
//! figures, SVG charts and tables, each table also a CSV download (`/admin/export/NAME.csv`)
//! with the same filters. Figures come from `patron_store::stats`; this module only chooses
//! the period in the tenant's zone and lays the figures out.

mod figures;
mod period;
mod tables;
mod views;

use figures::*;
pub use period::*;
pub use tables::*;
use views::*;

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
