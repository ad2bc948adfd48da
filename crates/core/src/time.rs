//! Time in the engine: instants are UTC; calendar questions (which day, which month, end of
//! month) are asked in the tenant's time zone.

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

/// An instant.
pub type Timestamp = DateTime<Utc>;

/// Microseconds since the Unix epoch: how instants are stored.
pub fn to_micros(at: Timestamp) -> i64 {
    at.timestamp_micros()
}

/// The instant of a stored microsecond count.
pub fn from_micros(micros: i64) -> Timestamp {
    DateTime::from_timestamp_micros(micros).unwrap_or_default()
}

/// The calendar date of `at` in `zone`.
pub fn local_date(at: Timestamp, zone: Tz) -> NaiveDate {
    at.with_timezone(&zone).date_naive()
}

/// Months since January 1970 of `at` in `zone`: the key of a member's monthly totals.
pub fn month_index(at: Timestamp, zone: Tz) -> i32 {
    let date = local_date(at, zone);
    (date.year() - 1970) * 12 + date.month0() as i32
}

/// The year of a month index.
pub fn year_of_month_index(month: i32) -> i32 {
    1970 + month.div_euclid(12)
}

/// The last instant (23:59:59.999999) of the month `months_ahead` after the month of `at`.
pub fn end_of_month(at: Timestamp, zone: Tz, months_ahead: u32) -> Timestamp {
    let month = month_index(at, zone) + months_ahead as i32 + 1;
    let first_of_next = NaiveDate::from_ymd_opt(
        year_of_month_index(month),
        month.rem_euclid(12) as u32 + 1,
        1,
    )
    .expect("a valid first day of month");
    start_of_day(first_of_next, zone) - chrono::Duration::microseconds(1)
}

/// The first instant of `date` in `zone`.
pub fn start_of_day(date: NaiveDate, zone: Tz) -> Timestamp {
    let midnight = date.and_hms_opt(0, 0, 0).expect("midnight exists");
    zone.from_local_datetime(&midnight)
        .earliest()
        .unwrap_or_else(|| Utc.from_utc_datetime(&midnight).with_timezone(&zone))
        .with_timezone(&Utc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_of_month_is_local() {
        let zone: Tz = "Asia/Ho_Chi_Minh".parse().unwrap();
        // 2026-01-31 20:00 UTC is already 1 February in Hà Nội.
        let at = Utc.with_ymd_and_hms(2026, 1, 31, 20, 0, 0).unwrap();
        let end = end_of_month(at, zone, 0);
        assert_eq!(
            end.with_timezone(&zone).to_rfc3339(),
            "2026-02-28T23:59:59.999999+07:00"
        );
        let end = end_of_month(at, zone, 11);
        assert_eq!(
            end.with_timezone(&zone).date_naive().to_string(),
            "2027-01-31"
        );
    }
}
