//! The dashboard's period and store filter: parsed from the query, turned into local days in
//! the tenant's zone, cut into day, week or month buckets, and labelled.

use super::*;

/// Longest custom period, in days.
pub const PERIOD_DAYS_MAX: i64 = 731;
/// Daily bars up to this many days; weekly bars up to `WEEKLY_DAYS_MAX`; monthly beyond.
pub(super) const DAILY_DAYS_MAX: i64 = 62;
pub(super) const WEEKLY_DAYS_MAX: i64 = 366;
/// Months of outstanding points listed one by one after the current month.
pub(super) const LIABILITY_MONTHS: u32 = 12;
/// The tables of the dashboard, by the name of their CSV file.
pub const TABLES: [&str; 5] = ["summary", "series", "tiers", "rewards", "liability"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PeriodKind {
    Month,
    Days30,
    Days90,
    Year,
    Custom,
}

impl PeriodKind {
    pub(super) const ALL: [PeriodKind; 5] = [
        PeriodKind::Month,
        PeriodKind::Days30,
        PeriodKind::Days90,
        PeriodKind::Year,
        PeriodKind::Custom,
    ];

    pub(super) fn code(self) -> &'static str {
        match self {
            PeriodKind::Month => "month",
            PeriodKind::Days30 => "30d",
            PeriodKind::Days90 => "90d",
            PeriodKind::Year => "year",
            PeriodKind::Custom => "custom",
        }
    }

    pub(super) fn label(self, t: Texts) -> &'static str {
        match self {
            PeriodKind::Month => t.get("admin.period.month"),
            PeriodKind::Days30 => t.get("admin.period.days30"),
            PeriodKind::Days90 => t.get("admin.period.days90"),
            PeriodKind::Year => t.get("admin.period.year"),
            PeriodKind::Custom => t.get("admin.period.custom"),
        }
    }

    pub(super) fn parse(code: &str) -> Option<PeriodKind> {
        PeriodKind::ALL.into_iter().find(|kind| kind.code() == code)
    }
}

/// The filters as sent (a GET form); every field optional.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct FilterQuery {
    pub(super) period: Option<String>,
    pub(super) from: Option<String>,
    pub(super) to: Option<String>,
    pub(super) store: Option<String>,
}

/// The filter form as shown back, with a message next to each field at fault.
pub struct FilterForm {
    pub(super) period: PeriodKind,
    pub(super) from: String,
    pub(super) to: String,
    pub(super) store: String,
    pub(super) from_error: Option<&'static str>,
    pub(super) to_error: Option<&'static str>,
    pub(super) store_error: Option<&'static str>,
}

impl FilterForm {
    pub(super) fn has_errors(&self) -> bool {
        self.from_error.is_some() || self.to_error.is_some() || self.store_error.is_some()
    }

    /// The query string that chose these figures, for the CSV links.
    pub(super) fn query_string(&self) -> String {
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
pub(super) struct Filter {
    pub(super) first_day: NaiveDate,
    pub(super) last_day: NaiveDate,
    pub(super) store: Option<String>,
}

pub(super) fn parse_day(text: Option<&str>) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text?.trim(), "%Y-%m-%d").ok()
}

/// Reads the filters against today in the tenant's zone and its stores.
pub(super) fn parse_filter(
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
pub(super) enum Step {
    Day,
    Week,
    Month,
}

/// The first day of each bucket, and the day after the last bucket.
pub(super) fn bucket_days(first: NaiveDate, last: NaiveDate) -> (Step, Vec<NaiveDate>) {
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

pub(super) fn first_of_next_month(day: NaiveDate) -> NaiveDate {
    let (year, month) = if day.month() == 12 {
        (day.year() + 1, 1)
    } else {
        (day.year(), day.month() + 1)
    };
    NaiveDate::from_ymd_opt(year, month, 1).expect("the first of a month exists")
}

pub(super) fn month_name(t: Texts, month: u32) -> &'static str {
    t.get("admin.months")
        .split(',')
        .nth(month as usize - 1)
        .unwrap_or("")
}

pub(super) fn day_label(t: Texts, day: NaiveDate) -> String {
    match t.locale {
        Locale::Vi => day.format("%d/%m").to_string(),
        Locale::En => format!("{} {}", day.day(), month_name(t, day.month())),
    }
}

pub(super) fn full_day(t: Texts, day: NaiveDate) -> String {
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

pub(super) fn month_label(t: Texts, day: NaiveDate) -> String {
    match t.locale {
        Locale::Vi => day.format("%m/%Y").to_string(),
        Locale::En => format!("{} {}", month_name(t, day.month()), day.year()),
    }
}
