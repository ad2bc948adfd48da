//! What a segment can say about a member: the fields under `member.`, and one member's facts.

use chrono::{Datelike, NaiveDate};
use std::collections::BTreeMap;

/// A whole-number field. Money is in minor units of the tenant's currency, counts of days
/// are in the tenant's zone. A field a member has no value for (no purchase yet, no birthday)
/// is missing, and every comparison with it is false.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IntField {
    OrderCount,
    TotalSpend,
    AverageBasket,
    Spend30d,
    Spend90d,
    Spend365d,
    Visits30d,
    Visits90d,
    Visits365d,
    DaysSinceLastPurchase,
    DaysSinceFirstPurchase,
    DaysSinceJoined,
    PointsBalance,
    PointsExpiring,
    RecencyScore,
    FrequencyScore,
    MonetaryScore,
    BirthdayMonth,
    BirthdayDay,
    Age,
    DaysToBirthday,
}

impl IntField {
    pub const ALL: [IntField; 21] = [
        IntField::OrderCount,
        IntField::TotalSpend,
        IntField::AverageBasket,
        IntField::Spend30d,
        IntField::Spend90d,
        IntField::Spend365d,
        IntField::Visits30d,
        IntField::Visits90d,
        IntField::Visits365d,
        IntField::DaysSinceLastPurchase,
        IntField::DaysSinceFirstPurchase,
        IntField::DaysSinceJoined,
        IntField::PointsBalance,
        IntField::PointsExpiring,
        IntField::RecencyScore,
        IntField::FrequencyScore,
        IntField::MonetaryScore,
        IntField::BirthdayMonth,
        IntField::BirthdayDay,
        IntField::Age,
        IntField::DaysToBirthday,
    ];

    pub fn name(self) -> &'static str {
        match self {
            IntField::OrderCount => "order_count",
            IntField::TotalSpend => "total_spend",
            IntField::AverageBasket => "average_basket",
            IntField::Spend30d => "spend_30d",
            IntField::Spend90d => "spend_90d",
            IntField::Spend365d => "spend_365d",
            IntField::Visits30d => "visits_30d",
            IntField::Visits90d => "visits_90d",
            IntField::Visits365d => "visits_365d",
            IntField::DaysSinceLastPurchase => "days_since_last_purchase",
            IntField::DaysSinceFirstPurchase => "days_since_first_purchase",
            IntField::DaysSinceJoined => "days_since_joined",
            IntField::PointsBalance => "points_balance",
            IntField::PointsExpiring => "points_expiring",
            IntField::RecencyScore => "recency_score",
            IntField::FrequencyScore => "frequency_score",
            IntField::MonetaryScore => "monetary_score",
            IntField::BirthdayMonth => "birthday_month",
            IntField::BirthdayDay => "birthday_day",
            IntField::Age => "age",
            IntField::DaysToBirthday => "days_to_birthday",
        }
    }

    /// What the field means, for the segment builder's field picker.
    pub fn help(self) -> &'static str {
        match self {
            IntField::OrderCount => "purchases, ever",
            IntField::TotalSpend => "spend, ever (refunds taken off)",
            IntField::AverageBasket => "spend per purchase",
            IntField::Spend30d => "spend in the last 30 days",
            IntField::Spend90d => "spend in the last 90 days",
            IntField::Spend365d => "spend in the last 365 days",
            IntField::Visits30d => "days with a purchase in the last 30 days",
            IntField::Visits90d => "days with a purchase in the last 90 days",
            IntField::Visits365d => "days with a purchase in the last 365 days",
            IntField::DaysSinceLastPurchase => "days since the last purchase",
            IntField::DaysSinceFirstPurchase => "days since the first purchase",
            IntField::DaysSinceJoined => "days since joining",
            IntField::PointsBalance => "points held",
            IntField::PointsExpiring => "points expiring in the next 30 days",
            IntField::RecencyScore => "recency score, 1 (longest ago) to 5",
            IntField::FrequencyScore => "frequency score, 1 to 5 (most purchases)",
            IntField::MonetaryScore => "monetary score, 1 to 5 (most spend)",
            IntField::BirthdayMonth => "month of birth, 1 to 12",
            IntField::BirthdayDay => "day of the month of birth",
            IntField::Age => "age in whole years",
            IntField::DaysToBirthday => "days until the next birthday (0 on the day)",
        }
    }

    /// Fields that follow the day, re-derived when the day changes.
    fn follows_the_day(self) -> bool {
        matches!(
            self,
            IntField::DaysSinceLastPurchase
                | IntField::DaysSinceFirstPurchase
                | IntField::DaysSinceJoined
                | IntField::RecencyScore
                | IntField::Age
                | IntField::DaysToBirthday
        )
    }
}

/// A text field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TextField {
    Tier,
    City,
    Gender,
    FavouriteStore,
    FavouriteCategory,
    RfmCell,
}

impl TextField {
    pub const ALL: [TextField; 6] = [
        TextField::Tier,
        TextField::City,
        TextField::Gender,
        TextField::FavouriteStore,
        TextField::FavouriteCategory,
        TextField::RfmCell,
    ];

    pub fn name(self) -> &'static str {
        match self {
            TextField::Tier => "tier",
            TextField::City => "city",
            TextField::Gender => "gender",
            TextField::FavouriteStore => "favourite_store",
            TextField::FavouriteCategory => "favourite_category",
            TextField::RfmCell => "rfm_cell",
        }
    }

    pub fn help(self) -> &'static str {
        match self {
            TextField::Tier => "tier id",
            TextField::City => "city",
            TextField::Gender => "gender",
            TextField::FavouriteStore => "store code with the most spend",
            TextField::FavouriteCategory => "category with the most spend",
            TextField::RfmCell => {
                "cell of the RFM map: champions, loyal, potential, new, at_risk, cant_lose, \
                 hibernating, lost"
            }
        }
    }
}

/// A yes-or-no field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BoolField {
    ConsentZns,
    ConsentSms,
    ConsentEmail,
    HasPhone,
    HasEmail,
}

impl BoolField {
    pub const ALL: [BoolField; 5] = [
        BoolField::ConsentZns,
        BoolField::ConsentSms,
        BoolField::ConsentEmail,
        BoolField::HasPhone,
        BoolField::HasEmail,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BoolField::ConsentZns => "consent_zns",
            BoolField::ConsentSms => "consent_sms",
            BoolField::ConsentEmail => "consent_email",
            BoolField::HasPhone => "has_phone",
            BoolField::HasEmail => "has_email",
        }
    }

    pub fn help(self) -> &'static str {
        match self {
            BoolField::ConsentZns => "agreed to promotions over Zalo",
            BoolField::ConsentSms => "agreed to promotions by SMS",
            BoolField::ConsentEmail => "agreed to promotions by e-mail",
            BoolField::HasPhone => "a phone number is known",
            BoolField::HasEmail => "an e-mail address is known",
        }
    }
}

/// Names older than the segment fields that mean the same (the earning rules' `member`).
pub(crate) fn alias(name: &str) -> &str {
    match name {
        "lifetime_spend" => "total_spend",
        other => other,
    }
}

/// A custom attribute's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scalar {
    Text(String),
    Int(i64),
    Bool(bool),
}

/// The windows of recent activity: 30, 90 and 365 days ending on `day` (a local day, days
/// since 1970-01-01).
pub const WINDOWS_DAYS: [i64; 3] = [30, 90, 365];

/// What is kept of one member, from which every field is derived for a given day.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Profile {
    pub tier: String,
    pub city: Option<String>,
    pub gender: Option<String>,
    pub favourite_store: Option<String>,
    pub favourite_category: Option<String>,
    pub tags: Vec<String>,
    pub attributes: BTreeMap<String, Scalar>,
    pub order_count: i64,
    pub total_spend: i64,
    /// Spend in each of [`WINDOWS_DAYS`], as of the day the figures were kept.
    pub window_spend: [i64; 3],
    /// Days with a purchase in each of [`WINDOWS_DAYS`].
    pub window_visits: [i64; 3],
    pub first_purchase_day: Option<i64>,
    pub last_purchase_day: Option<i64>,
    pub joined_day: i64,
    pub points_balance: i64,
    pub points_expiring: i64,
    pub birthday: Option<NaiveDate>,
    pub consent_zns: bool,
    pub consent_sms: bool,
    pub consent_email: bool,
    pub has_phone: bool,
    pub has_email: bool,
}

/// The quintile cut-offs of a tenant's members: recency in days since the last purchase,
/// frequency in purchases, monetary in spend. A score is 1 to 5; recency's 5 is the most
/// recent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RfmCutoffs {
    pub recency: [i64; 4],
    pub frequency: [i64; 4],
    pub monetary: [i64; 4],
}

impl RfmCutoffs {
    /// Cut-offs at the 20th, 40th, 60th and 80th percentiles of each figure of the members who
    /// bought: `(days since the last purchase, purchases, spend)` each.
    pub fn of(members: &[(i64, i64, i64)]) -> RfmCutoffs {
        let cut = |mut values: Vec<i64>| {
            values.sort_unstable();
            let mut cutoffs = [0; 4];
            if !values.is_empty() {
                for (index, cutoff) in cutoffs.iter_mut().enumerate() {
                    *cutoff = values[(values.len() * (index + 1) / 5).min(values.len() - 1)];
                }
            }
            cutoffs
        };
        RfmCutoffs {
            recency: cut(members.iter().map(|member| member.0).collect()),
            frequency: cut(members.iter().map(|member| member.1).collect()),
            monetary: cut(members.iter().map(|member| member.2).collect()),
        }
    }

    /// 1 plus the number of cut-offs `value` is above.
    fn rising(cutoffs: &[i64; 4], value: i64) -> i64 {
        1 + cutoffs.iter().filter(|cutoff| value > **cutoff).count() as i64
    }

    pub fn recency_score(&self, days_since: i64) -> i64 {
        6 - RfmCutoffs::rising(&self.recency, days_since)
    }

    pub fn frequency_score(&self, purchases: i64) -> i64 {
        RfmCutoffs::rising(&self.frequency, purchases)
    }

    pub fn monetary_score(&self, spend: i64) -> i64 {
        RfmCutoffs::rising(&self.monetary, spend)
    }
}

/// The cell of the RFM map a recency and frequency score fall in.
pub fn rfm_cell(recency: i64, frequency: i64) -> &'static str {
    match (recency, frequency) {
        (4..=5, 4..=5) => "champions",
        (4..=5, 1) => "new",
        (3, 4..=5) => "loyal",
        (3..=5, _) => "potential",
        (2, 3..=5) => "at_risk",
        (2, _) => "hibernating",
        (_, 4..=5) => "cant_lose",
        _ => "lost",
    }
}

/// Every field of one member on one day.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    pub ints: [Option<i64>; IntField::ALL.len()],
    pub texts: [Option<String>; TextField::ALL.len()],
    pub bools: [bool; BoolField::ALL.len()],
    pub tags: Vec<String>,
    pub attributes: BTreeMap<String, Scalar>,
}

impl Facts {
    /// The member's fields on local day `today`.
    pub fn of(profile: &Profile, today: i64, rfm: &RfmCutoffs) -> Facts {
        let mut ints = [None; IntField::ALL.len()];
        let mut set = |field: IntField, value: Option<i64>| ints[field as usize] = value;
        set(IntField::OrderCount, Some(profile.order_count));
        set(IntField::TotalSpend, Some(profile.total_spend));
        set(
            IntField::AverageBasket,
            (profile.order_count > 0).then(|| profile.total_spend / profile.order_count),
        );
        let windows = [
            (IntField::Spend30d, IntField::Visits30d),
            (IntField::Spend90d, IntField::Visits90d),
            (IntField::Spend365d, IntField::Visits365d),
        ];
        for (index, (spend, visits)) in windows.into_iter().enumerate() {
            set(spend, Some(profile.window_spend[index]));
            set(visits, Some(profile.window_visits[index]));
        }
        set(IntField::PointsBalance, Some(profile.points_balance));
        set(IntField::PointsExpiring, Some(profile.points_expiring));
        let mut facts = Facts {
            ints,
            texts: Default::default(),
            bools: [
                profile.consent_zns,
                profile.consent_sms,
                profile.consent_email,
                profile.has_phone,
                profile.has_email,
            ],
            tags: profile.tags.clone(),
            attributes: profile.attributes.clone(),
        };
        let texts = [
            (TextField::Tier, Some(profile.tier.clone())),
            (TextField::City, profile.city.clone()),
            (TextField::Gender, profile.gender.clone()),
            (TextField::FavouriteStore, profile.favourite_store.clone()),
            (
                TextField::FavouriteCategory,
                profile.favourite_category.clone(),
            ),
        ];
        for (field, value) in texts {
            facts.texts[field as usize] = value.filter(|value| !value.is_empty());
        }
        let base = Base::of(profile);
        base.derive(&mut facts.ints, today, rfm);
        facts.texts[TextField::RfmCell as usize] = rfm_cell_of(&facts.ints);
        facts
    }

    pub fn int(&self, field: IntField) -> Option<i64> {
        self.ints[field as usize]
    }

    pub fn text(&self, field: TextField) -> Option<&str> {
        self.texts[field as usize].as_deref()
    }

    pub fn bool(&self, field: BoolField) -> bool {
        self.bools[field as usize]
    }
}

pub(crate) fn rfm_cell_of(ints: &[Option<i64>]) -> Option<String> {
    match (
        ints[IntField::RecencyScore as usize],
        ints[IntField::FrequencyScore as usize],
    ) {
        (Some(recency), Some(frequency)) => Some(rfm_cell(recency, frequency).to_owned()),
        _ => None,
    }
}

/// The facts the day-following fields are derived from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Base {
    pub first_purchase_day: Option<i64>,
    pub last_purchase_day: Option<i64>,
    pub joined_day: i64,
    pub birthday: Option<NaiveDate>,
}

impl Base {
    pub fn of(profile: &Profile) -> Base {
        Base {
            first_purchase_day: profile.first_purchase_day,
            last_purchase_day: profile.last_purchase_day,
            joined_day: profile.joined_day,
            birthday: profile.birthday,
        }
    }

    /// Sets the fields that follow the day (and the scores, which follow the cut-offs).
    pub fn derive(&self, ints: &mut [Option<i64>], today: i64, rfm: &RfmCutoffs) {
        let since = |day: Option<i64>| day.map(|day| today.saturating_sub(day).max(0));
        let last = since(self.last_purchase_day);
        ints[IntField::DaysSinceLastPurchase as usize] = last;
        ints[IntField::DaysSinceFirstPurchase as usize] = since(self.first_purchase_day);
        ints[IntField::DaysSinceJoined as usize] = since(Some(self.joined_day));
        let bought = ints[IntField::OrderCount as usize].is_some_and(|orders| orders > 0);
        let score = |value: Option<i64>, scoring: &dyn Fn(i64) -> i64| {
            value.filter(|_| bought).map(scoring)
        };
        ints[IntField::RecencyScore as usize] = score(last, &|days| rfm.recency_score(days));
        ints[IntField::FrequencyScore as usize] =
            score(ints[IntField::OrderCount as usize], &|orders| {
                rfm.frequency_score(orders)
            });
        ints[IntField::MonetaryScore as usize] =
            score(ints[IntField::TotalSpend as usize], &|spend| {
                rfm.monetary_score(spend)
            });
        let birthday = self.birthday;
        ints[IntField::BirthdayMonth as usize] = birthday.map(|date| i64::from(date.month()));
        ints[IntField::BirthdayDay as usize] = birthday.map(|date| i64::from(date.day()));
        let today_date = crate::segment::date_of_day(today);
        ints[IntField::Age as usize] = match (birthday, today_date) {
            (Some(born), Some(today)) if born <= today => today.years_since(born).map(i64::from),
            _ => None,
        };
        ints[IntField::DaysToBirthday as usize] = match (birthday, today_date) {
            (Some(born), Some(today)) => days_to_birthday(born, today),
            _ => None,
        };
    }
}

/// Days from `today` to the next anniversary of `born` (0 on the day). A 29 February birthday
/// falls on 28 February in other years.
fn days_to_birthday(born: NaiveDate, today: NaiveDate) -> Option<i64> {
    let in_year = |year: i32| {
        NaiveDate::from_ymd_opt(year, born.month(), born.day())
            .or_else(|| NaiveDate::from_ymd_opt(year, born.month(), born.day() - 1))
    };
    let this_year = in_year(today.year())?;
    let next = if this_year >= today {
        this_year
    } else {
        in_year(today.year() + 1)?
    };
    Some((next - today).num_days())
}

pub(crate) fn follows_the_day(field: IntField) -> bool {
    field.follows_the_day()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn birthdays_count_to_the_next_one() {
        let date = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        assert_eq!(
            days_to_birthday(date(1990, 3, 10), date(2026, 3, 10)),
            Some(0)
        );
        assert_eq!(
            days_to_birthday(date(1990, 3, 10), date(2026, 3, 3)),
            Some(7)
        );
        assert_eq!(
            days_to_birthday(date(1990, 3, 10), date(2026, 3, 11)),
            Some(364)
        );
        assert_eq!(
            days_to_birthday(date(2000, 2, 29), date(2027, 2, 20)),
            Some(8)
        );
        assert_eq!(
            days_to_birthday(date(1990, 12, 31), date(2026, 12, 31)),
            Some(0)
        );
    }

    #[test]
    fn rfm_scores_follow_the_quintiles() {
        let members: Vec<(i64, i64, i64)> = (1..=100).map(|n| (n, n, n * 1000)).collect();
        let cutoffs = RfmCutoffs::of(&members);
        assert_eq!(cutoffs.frequency, [21, 41, 61, 81]);
        assert_eq!(cutoffs.frequency_score(1), 1);
        assert_eq!(cutoffs.frequency_score(21), 1);
        assert_eq!(cutoffs.frequency_score(22), 2);
        assert_eq!(cutoffs.frequency_score(100), 5);
        assert_eq!(cutoffs.recency_score(1), 5);
        assert_eq!(cutoffs.recency_score(21), 5);
        assert_eq!(cutoffs.recency_score(22), 4);
        assert_eq!(cutoffs.recency_score(100), 1);
        assert_eq!(rfm_cell(5, 5), "champions");
        assert_eq!(rfm_cell(1, 5), "cant_lose");
        assert_eq!(rfm_cell(1, 1), "lost");
        assert_eq!(rfm_cell(2, 2), "hibernating");
    }

    #[test]
    fn a_member_without_purchases_has_no_recency() {
        let profile = Profile {
            tier: "base".into(),
            joined_day: 100,
            birthday: NaiveDate::from_ymd_opt(2000, 1, 5),
            ..Profile::default()
        };
        let facts = Facts::of(&profile, 20_000, &RfmCutoffs::default());
        assert_eq!(facts.int(IntField::DaysSinceLastPurchase), None);
        assert_eq!(facts.int(IntField::RecencyScore), None);
        assert_eq!(facts.int(IntField::AverageBasket), None);
        assert_eq!(facts.int(IntField::DaysSinceJoined), Some(19_900));
        assert_eq!(facts.int(IntField::BirthdayMonth), Some(1));
        assert_eq!(facts.text(TextField::RfmCell), None);
        assert_eq!(facts.text(TextField::Tier), Some("base"));
    }
}
