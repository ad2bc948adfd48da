//! Money, points and dates as people read them: `1.234.567đ` and `31/12/2026` in Vietnamese,
//! `₫1,234,567` and `31 Dec 2026` in English. Amounts stay integers to the last digit.

use crate::i18n::Locale;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// Groups the digits of `value` in threes with `separator`.
fn group(value: i64, separator: char) -> String {
    let digits = value.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if value < 0 {
        out.push('-');
    }
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(separator);
        }
        out.push(digit);
    }
    out
}

/// Minor units per major unit of an ISO 4217 currency (the ones a Vietnamese shop meets).
fn minor_digits(currency: &str) -> u32 {
    match currency {
        "VND" | "JPY" | "KRW" => 0,
        _ => 2,
    }
}

/// An amount in minor units of `currency`.
pub fn money(locale: Locale, minor: i64, currency: &str) -> String {
    let digits = minor_digits(currency);
    let (thousands, decimal) = match locale {
        Locale::Vi => ('.', ','),
        Locale::En => (',', '.'),
    };
    let scale = 10i64.pow(digits);
    let whole = group(minor / scale, thousands);
    let whole = if minor < 0 && minor / scale == 0 {
        format!("-{whole}")
    } else {
        whole
    };
    let number = if digits == 0 {
        whole
    } else {
        let fraction = (minor % scale).unsigned_abs();
        format!(
            "{whole}{decimal}{fraction:0width$}",
            width = digits as usize
        )
    };
    match (currency, locale) {
        ("VND", Locale::Vi) => format!("{number}đ"),
        ("VND", Locale::En) => format!("₫{number}"),
        (other, _) => format!("{number} {other}"),
    }
}

/// What an asset other than points is called: store credit, or a card's stamps.
pub fn asset_label(t: crate::i18n::Texts, asset: &str) -> String {
    match asset.strip_prefix("stamps:") {
        Some(card) => t.fill("common.asset_stamps", &[("card", card)]),
        None => t.get("common.asset_money").to_owned(),
    }
}

/// An amount of an asset other than points: money in `currency`, or a count of stamps;
/// `signed` puts a `+` before a gain.
pub fn asset_amount(
    t: crate::i18n::Texts,
    asset: &str,
    amount: i64,
    currency: &str,
    signed: bool,
) -> String {
    let text = if asset.starts_with("stamps:") {
        t.fill(
            "common.amount_stamps",
            &[("count", &points(t.locale, amount))],
        )
    } else {
        money(t.locale, amount, currency)
    };
    if signed && amount > 0 {
        format!("+{text}")
    } else {
        text
    }
}

/// A member's holding of an asset other than points, as the pages show it.
pub struct HoldingLine {
    /// "Store credit", "Stamps on card coffee".
    pub label: String,
    /// The balance: "50.000đ", "7 stamps".
    pub amount: String,
    /// What expires soon, when something does.
    pub expiring: Option<String>,
}

/// The lines of a member's holdings other than points, in the order given.
pub fn holding_lines(
    t: crate::i18n::Texts,
    holdings: &[patron_store::HoldingView],
    currency: &str,
) -> Vec<HoldingLine> {
    holdings
        .iter()
        .map(|holding| HoldingLine {
            label: asset_label(t, &holding.asset),
            amount: asset_amount(t, &holding.asset, holding.balance, currency, false),
            expiring: (holding.expiring_soon > 0).then(|| {
                let amount =
                    asset_amount(t, &holding.asset, holding.expiring_soon, currency, false);
                t.fill("common.asset_expiring", &[("amount", &amount)])
            }),
        })
        .collect()
}

/// What a history entry moved of assets other than points, one text each:
/// "+50.000đ Store credit".
pub fn moved_lines(
    t: crate::i18n::Texts,
    moved: &std::collections::BTreeMap<String, i64>,
    currency: &str,
) -> Vec<String> {
    moved
        .iter()
        .map(|(asset, amount)| {
            format!(
                "{} {}",
                asset_amount(t, asset, *amount, currency, true),
                asset_label(t, asset)
            )
        })
        .collect()
}

/// A count of points.
pub fn points(locale: Locale, points: i64) -> String {
    group(
        points,
        match locale {
            Locale::Vi => '.',
            Locale::En => ',',
        },
    )
}

const MONTHS_EN: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A day in the tenant's zone.
pub fn date(locale: Locale, at: DateTime<Utc>, zone: Tz) -> String {
    let local = at.with_timezone(&zone);
    match locale {
        Locale::Vi => local.format("%d/%m/%Y").to_string(),
        Locale::En => {
            use chrono::Datelike;
            format!(
                "{} {} {}",
                local.day(),
                MONTHS_EN[local.month0() as usize],
                local.year()
            )
        }
    }
}

/// A day and time in the tenant's zone.
pub fn date_time(locale: Locale, at: DateTime<Utc>, zone: Tz) -> String {
    let local = at.with_timezone(&zone);
    format!("{} {}", date(locale, at, zone), local.format("%H:%M"))
}

/// Why a typed number was not read.
#[derive(Debug, PartialEq, Eq)]
pub enum WholeError {
    NotNumber,
    Negative,
    TooLarge,
}

/// Reads a whole number as people type it in either language: `150000`, `150.000`,
/// `150,000`, `150 000`, with an optional leading `-`. Grouping marks must split the digits
/// in threes, so `1.5` is refused rather than read as fifteen. Blank is `None`. Units and
/// other signs are each form's own business.
pub fn parse_whole(text: &str) -> Result<Option<i64>, WholeError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let groups: Vec<&str> = digits.split(['.', ',', ' ', '\u{a0}']).collect();
    let well_grouped = groups.len() == 1
        || (!groups[0].is_empty()
            && groups[0].len() <= 3
            && groups[1..].iter().all(|group| group.len() == 3));
    if !well_grouped
        || groups.concat().is_empty()
        || !groups
            .iter()
            .all(|group| group.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(WholeError::NotNumber);
    }
    let value = groups
        .concat()
        .parse::<i64>()
        .map_err(|_| WholeError::TooLarge)?;
    Ok(Some(if negative { -value } else { value }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn whole_numbers_are_read_as_people_type_them() {
        assert_eq!(parse_whole("150000"), Ok(Some(150_000)));
        assert_eq!(parse_whole(" 1.250.000 "), Ok(Some(1_250_000)));
        assert_eq!(parse_whole("5,000,000"), Ok(Some(5_000_000)));
        assert_eq!(parse_whole("1 200"), Ok(Some(1_200)));
        assert_eq!(parse_whole("-12"), Ok(Some(-12)));
        assert_eq!(parse_whole(""), Ok(None));
        assert_eq!(parse_whole("1.5"), Err(WholeError::NotNumber));
        assert_eq!(parse_whole("1.5000"), Err(WholeError::NotNumber));
        assert_eq!(parse_whole(".500"), Err(WholeError::NotNumber));
        assert_eq!(parse_whole("-"), Err(WholeError::NotNumber));
        assert_eq!(parse_whole("--5"), Err(WholeError::NotNumber));
        assert_eq!(parse_whole("+5"), Err(WholeError::NotNumber));
        assert_eq!(parse_whole("12a"), Err(WholeError::NotNumber));
        assert_eq!(
            parse_whole("99999999999999999999"),
            Err(WholeError::TooLarge)
        );
    }

    #[test]
    fn money_reads_as_people_write_it() {
        assert_eq!(money(Locale::Vi, 1_234_567, "VND"), "1.234.567đ");
        assert_eq!(money(Locale::En, 1_234_567, "VND"), "₫1,234,567");
        assert_eq!(money(Locale::Vi, 0, "VND"), "0đ");
        assert_eq!(money(Locale::Vi, 999, "VND"), "999đ");
        assert_eq!(money(Locale::Vi, 1000, "VND"), "1.000đ");
        assert_eq!(money(Locale::Vi, -45_000, "VND"), "-45.000đ");
        assert_eq!(money(Locale::En, 123_456, "USD"), "1,234.56 USD");
        assert_eq!(money(Locale::En, -5, "USD"), "-0.05 USD");
        assert_eq!(points(Locale::Vi, 1_200), "1.200");
        assert_eq!(points(Locale::En, -1_200_000), "-1,200,000");
        assert_eq!(
            money(Locale::Vi, i64::MIN, "VND"),
            "-9.223.372.036.854.775.808đ"
        );
    }

    #[test]
    fn dates_are_in_the_tenants_zone() {
        let zone: Tz = "Asia/Ho_Chi_Minh".parse().unwrap();
        let at = Utc.with_ymd_and_hms(2026, 12, 31, 18, 30, 0).unwrap();
        assert_eq!(date(Locale::Vi, at, zone), "01/01/2027");
        assert_eq!(date(Locale::En, at, zone), "1 Jan 2027");
        assert_eq!(date_time(Locale::Vi, at, zone), "01/01/2027 01:30");
    }
}
