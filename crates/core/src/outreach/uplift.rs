//! What a campaign changed: the sent group against the held-out group, in conversion and in
//! revenue per member, each with a 95 % confidence interval.
//!
//! - Conversion: the difference of proportions with Newcombe's hybrid score interval (method 10
//!   of R. G. Newcombe, "Interval estimation for the difference between independent
//!   proportions", Statistics in Medicine 17, 1998), built from the two Wilson score intervals.
//!   Unlike the Wald interval it stays inside [-1, 1] and keeps a width when a group converted
//!   no one or everyone.
//! - Revenue per member (every member of the group, converted or not): the difference of means
//!   with Welch's interval, Student's t at the Welch–Satterthwaite degrees of freedom.
//!
//! Statistics, not money: `f64` throughout. What cannot be computed is `None`, never NaN: a rate
//! of an empty group, an interval of a group too small or without spread.

use thiserror::Error;

/// The standard normal quantile of 0.975: a two-sided 95 % interval.
pub const CONFIDENCE_Z: f64 = 1.959_963_984_540_054;

/// The largest revenue of one member, in either direction (refunds make it negative): 10^13
/// đồng. It keeps a group's sum of squares exact in an `i128`.
pub const REVENUE_PER_MEMBER_MAX: i64 = 10_000_000_000_000;

/// The most members of one group: 10^9.
pub const GROUP_MEMBERS_MAX: u64 = 1_000_000_000;

/// The confidence level of [`CONFIDENCE_Z`], as a one-sided tail: what t quantiles aim for.
const TAIL: f64 = 0.025;

/// Above these degrees of freedom Student's t is the normal to within 10^-5.
const DEGREES_OF_FREEDOM_NORMAL: f64 = 100_000.0;

/// Steps of the continued fraction of the incomplete beta function.
const BETA_FRACTION_STEPS_MAX: usize = 1_000;

/// Why a group's figures cannot be taken.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UpliftError {
    #[error("more than {GROUP_MEMBERS_MAX} members in a group")]
    TooManyMembers,
    #[error("a member's revenue beyond ±{REVENUE_PER_MEMBER_MAX}")]
    RevenueTooLarge,
    #[error("{converted} converted of {members} members")]
    MoreConvertedThanMembers { converted: u64, members: u64 },
    #[error("a sum of squares that no set of revenues has")]
    ImpossibleSquares,
}

/// What one group did during the campaign: how many members, how many converted, and their
/// revenue (each member's, the non-converted counting 0) as a sum and a sum of squares, which
/// is what a database aggregate gives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupOutcome {
    members: u64,
    converted: u64,
    revenue_sum: i128,
    revenue_square_sum: i128,
}

impl GroupOutcome {
    /// The outcome of each member's `(converted, revenue)`.
    pub fn from_members(
        members: impl IntoIterator<Item = (bool, i64)>,
    ) -> Result<GroupOutcome, UpliftError> {
        let mut outcome = GroupOutcome::default();
        for (converted, revenue) in members {
            outcome.add(converted, revenue)?;
        }
        Ok(outcome)
    }

    /// The outcome of a group's aggregates, checked for consistency.
    pub fn from_sums(
        members: u64,
        converted: u64,
        revenue_sum: i128,
        revenue_square_sum: i128,
    ) -> Result<GroupOutcome, UpliftError> {
        if members > GROUP_MEMBERS_MAX {
            return Err(UpliftError::TooManyMembers);
        }
        if converted > members {
            return Err(UpliftError::MoreConvertedThanMembers { converted, members });
        }
        let bound = i128::from(REVENUE_PER_MEMBER_MAX);
        let members_wide = i128::from(members);
        if revenue_sum.abs() > bound * members_wide
            || revenue_square_sum > bound * bound * members_wide
        {
            return Err(UpliftError::RevenueTooLarge);
        }
        // Cauchy–Schwarz: n Σx² ≥ (Σx)², and no revenue without members.
        let spread = members_wide
            .checked_mul(revenue_square_sum)
            .zip(revenue_sum.checked_mul(revenue_sum))
            .map(|(scaled, squared)| scaled - squared);
        if revenue_square_sum < 0 || spread.is_some_and(|spread| spread < 0) {
            return Err(UpliftError::ImpossibleSquares);
        }
        Ok(GroupOutcome {
            members,
            converted,
            revenue_sum,
            revenue_square_sum,
        })
    }

    /// Counts one more member.
    pub fn add(&mut self, converted: bool, revenue: i64) -> Result<(), UpliftError> {
        if self.members >= GROUP_MEMBERS_MAX {
            return Err(UpliftError::TooManyMembers);
        }
        if revenue.unsigned_abs() > REVENUE_PER_MEMBER_MAX.unsigned_abs() {
            return Err(UpliftError::RevenueTooLarge);
        }
        let revenue = i128::from(revenue);
        self.members += 1;
        self.converted += u64::from(converted);
        self.revenue_sum += revenue;
        self.revenue_square_sum += revenue * revenue;
        Ok(())
    }

    pub fn members(&self) -> u64 {
        self.members
    }

    pub fn converted(&self) -> u64 {
        self.converted
    }

    /// The share of members who converted; `None` for an empty group.
    pub fn conversion_rate(&self) -> Option<f64> {
        (self.members > 0).then(|| self.converted as f64 / self.members as f64)
    }

    /// The mean revenue per member; `None` for an empty group.
    pub fn revenue_per_member(&self) -> Option<f64> {
        (self.members > 0).then(|| self.revenue_sum as f64 / self.members as f64)
    }

    /// The sample variance of revenue per member; `None` below two members.
    pub fn revenue_variance(&self) -> Option<f64> {
        if self.members < 2 {
            return None;
        }
        let members = i128::from(self.members);
        // n Σx² − (Σx)², exact while it fits, the sum of squared deviations times n.
        let spread = members
            .checked_mul(self.revenue_square_sum)
            .zip(self.revenue_sum.checked_mul(self.revenue_sum))
            .map(|(scaled, squared)| (scaled - squared) as f64)
            .unwrap_or_else(|| {
                let mean = self.revenue_sum as f64 / self.members as f64;
                (self.revenue_square_sum as f64 - mean * self.revenue_sum as f64)
                    * self.members as f64
            });
        let members = self.members as f64;
        Some((spread / (members * (members - 1.0))).max(0.0))
    }
}

/// A confidence interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
}

impl Interval {
    /// Whether the interval lies wholly above zero or wholly below: the difference is
    /// significant at its level.
    pub fn excludes_zero(&self) -> bool {
        self.low > 0.0 || self.high < 0.0
    }
}

/// The campaign's effect: sent group minus hold-out group.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Uplift {
    pub conversion_rate_sent: Option<f64>,
    pub conversion_rate_holdout: Option<f64>,
    /// Absolute, in proportion points: 0.02 is two percentage points more conversion.
    pub conversion_difference: Option<f64>,
    /// Newcombe's hybrid score interval, 95 %.
    pub conversion_interval: Option<Interval>,
    pub revenue_per_member_sent: Option<f64>,
    pub revenue_per_member_holdout: Option<f64>,
    pub revenue_difference: Option<f64>,
    /// Welch's interval, 95 %; `None` below two members in a group or with no spread at all.
    pub revenue_interval: Option<Interval>,
    /// The Welch–Satterthwaite degrees of freedom behind `revenue_interval`.
    pub revenue_degrees_of_freedom: Option<f64>,
}

/// The effect of the campaign on the `sent` group against the `holdout` group.
pub fn uplift(sent: &GroupOutcome, holdout: &GroupOutcome) -> Uplift {
    let conversion_rate_sent = sent.conversion_rate();
    let conversion_rate_holdout = holdout.conversion_rate();
    let revenue_per_member_sent = sent.revenue_per_member();
    let revenue_per_member_holdout = holdout.revenue_per_member();
    let welch = welch(sent, holdout);
    Uplift {
        conversion_rate_sent,
        conversion_rate_holdout,
        conversion_difference: conversion_rate_sent
            .zip(conversion_rate_holdout)
            .map(|(sent, holdout)| sent - holdout),
        conversion_interval: newcombe(sent, holdout),
        revenue_per_member_sent,
        revenue_per_member_holdout,
        revenue_difference: revenue_per_member_sent
            .zip(revenue_per_member_holdout)
            .map(|(sent, holdout)| sent - holdout),
        revenue_interval: welch.map(|(interval, _)| interval),
        revenue_degrees_of_freedom: welch.map(|(_, degrees)| degrees),
    }
}

/// The Wilson score interval of a proportion.
fn wilson(group: &GroupOutcome) -> Option<Interval> {
    let rate = group.conversion_rate()?;
    let members = group.members as f64;
    let z_squared = CONFIDENCE_Z * CONFIDENCE_Z;
    let denominator = 1.0 + z_squared / members;
    let centre = (rate + z_squared / (2.0 * members)) / denominator;
    let half = CONFIDENCE_Z
        * (rate * (1.0 - rate) / members + z_squared / (4.0 * members * members)).sqrt()
        / denominator;
    Some(Interval {
        low: (centre - half).max(0.0),
        high: (centre + half).min(1.0),
    })
}

/// Newcombe's hybrid score interval of `sent − holdout` conversion.
fn newcombe(sent: &GroupOutcome, holdout: &GroupOutcome) -> Option<Interval> {
    let (rate_sent, rate_holdout) = (sent.conversion_rate()?, holdout.conversion_rate()?);
    let (score_sent, score_holdout) = (wilson(sent)?, wilson(holdout)?);
    let difference = rate_sent - rate_holdout;
    let below = (rate_sent - score_sent.low).hypot(score_holdout.high - rate_holdout);
    let above = (score_sent.high - rate_sent).hypot(rate_holdout - score_holdout.low);
    Some(Interval {
        low: difference - below,
        high: difference + above,
    })
}

/// Welch's interval of `sent − holdout` revenue per member, with its degrees of freedom.
fn welch(sent: &GroupOutcome, holdout: &GroupOutcome) -> Option<(Interval, f64)> {
    let difference = sent.revenue_per_member()? - holdout.revenue_per_member()?;
    let share_sent = sent.revenue_variance()? / sent.members as f64;
    let share_holdout = holdout.revenue_variance()? / holdout.members as f64;
    let variance = share_sent + share_holdout;
    if variance <= 0.0 || !variance.is_finite() {
        return None;
    }
    let degrees = variance * variance
        / (share_sent * share_sent / (sent.members as f64 - 1.0)
            + share_holdout * share_holdout / (holdout.members as f64 - 1.0));
    let half = student_t_upper_quantile(degrees)? * variance.sqrt();
    Some((
        Interval {
            low: difference - half,
            high: difference + half,
        },
        degrees,
    ))
}

/// The t with `TAIL` of Student's distribution with `degrees` of freedom above it.
fn student_t_upper_quantile(degrees: f64) -> Option<f64> {
    if degrees.is_nan() || degrees <= 0.0 {
        return None;
    }
    if degrees > DEGREES_OF_FREEDOM_NORMAL {
        return Some(CONFIDENCE_Z);
    }
    // The tail shrinks as t grows: widen until it is below TAIL, then halve the bracket.
    let mut low = 0.0;
    let mut high = 16.0;
    while student_t_upper_tail(high, degrees) > TAIL {
        low = high;
        high *= 2.0;
        if high > 1e12 {
            return None;
        }
    }
    for _ in 0..100 {
        let middle = 0.5 * (low + high);
        if student_t_upper_tail(middle, degrees) > TAIL {
            low = middle;
        } else {
            high = middle;
        }
    }
    Some(0.5 * (low + high))
}

/// P(T > t) for t ≥ 0: half the regularized incomplete beta I_x(ν/2, 1/2) at x = ν / (ν + t²).
fn student_t_upper_tail(t: f64, degrees: f64) -> f64 {
    0.5 * incomplete_beta(degrees / (degrees + t * t), 0.5 * degrees, 0.5)
}

/// The regularized incomplete beta function I_x(a, b), by its continued fraction (evaluated
/// with the modified Lentz method) on the side of x where it converges fast.
fn incomplete_beta(x: f64, a: f64, b: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let log_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    if x < (a + 1.0) / (a + b + 2.0) {
        log_front.exp() * beta_fraction(x, a, b) / a
    } else {
        1.0 - log_front.exp() * beta_fraction(1.0 - x, b, a) / b
    }
}

/// The continued fraction 1 / (1 + d1 / (1 + d2 / (1 + …))) of the incomplete beta function,
/// with d(2m+1) = −(a+m)(a+b+m)x / ((a+2m)(a+2m+1)) and d(2m) = m(b−m)x / ((a+2m−1)(a+2m)).
fn beta_fraction(x: f64, a: f64, b: f64) -> f64 {
    const TINY: f64 = 1e-300;
    const EPSILON: f64 = 1e-15;
    let guard = |value: f64| if value.abs() < TINY { TINY } else { value };
    let mut numerator_ratio = 1.0;
    let mut denominator_ratio = 1.0 / guard(1.0 - (a + b) * x / (a + 1.0));
    let mut fraction = denominator_ratio;
    for step in 1..=BETA_FRACTION_STEPS_MAX {
        let m = step as f64;
        let even = m * (b - m) * x / ((a + 2.0 * m - 1.0) * (a + 2.0 * m));
        let odd = -(a + m) * (a + b + m) * x / ((a + 2.0 * m) * (a + 2.0 * m + 1.0));
        for term in [even, odd] {
            denominator_ratio = 1.0 / guard(1.0 + term * denominator_ratio);
            numerator_ratio = guard(1.0 + term / numerator_ratio);
            fraction *= denominator_ratio * numerator_ratio;
        }
        if (denominator_ratio * numerator_ratio - 1.0).abs() < EPSILON {
            break;
        }
    }
    fraction
}

/// ln Γ(x) for x > 0, by Lanczos' approximation (g = 7, nine coefficients, as published by
/// Godfrey), good to about 15 digits.
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const COEFFICIENTS: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x) Γ(1 − x) = π / sin(πx).
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut sum = COEFFICIENTS[0];
    for (index, coefficient) in COEFFICIENTS.iter().enumerate().skip(1) {
        sum += coefficient / (x + index as f64);
    }
    let t = x + G + 0.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(members: u64, converted: u64) -> GroupOutcome {
        GroupOutcome::from_sums(members, converted, 0, 0).unwrap()
    }

    fn close(actual: f64, expected: f64, tolerance: f64) -> bool {
        (actual - expected).abs() <= tolerance
    }

    #[test]
    fn wilson_by_hand() {
        // 56 of 70: p = 0.8, z² = 3.841459, 1 + z²/n = 1.054878;
        // centre = (0.8 + 3.841459 / 140) / 1.054878 = 0.827439 / 1.054878 = 0.784393;
        // half = 1.959964 × √(0.16 / 70 + 3.841459 / 19_600) / 1.054878
        //      = 1.959964 × √(0.002285714 + 0.000195993) / 1.054878
        //      = 1.959964 × 0.049817 / 1.054878 = 0.092560:
        // 0.691833 to 0.876953.
        let interval = wilson(&group(70, 56)).unwrap();
        assert!(close(interval.low, 0.691_833, 2e-6), "{interval:?}");
        assert!(close(interval.high, 0.876_953, 2e-6), "{interval:?}");
        // None converted: the interval still has a width, 0 to z²/n / (1 + z²/n) = 0.277533.
        let interval = wilson(&group(10, 0)).unwrap();
        assert_eq!(interval.low, 0.0);
        assert!(close(interval.high, 0.384_146 / 1.384_146, 1e-6));
    }

    #[test]
    fn newcombe_matches_his_published_examples() {
        // Newcombe (1998), table II, method 10, to his four decimals.
        let cases = [
            ((56, 70), (48, 80), 0.0524, 0.3339),
            ((9, 10), (3, 10), 0.1705, 0.8090),
            ((6, 7), (2, 7), 0.0582, 0.8062),
            ((5, 56), (0, 29), -0.0381, 0.1926),
        ];
        for ((x1, n1), (x2, n2), low, high) in cases {
            let uplift = uplift(&group(n1, x1), &group(n2, x2));
            let interval = uplift.conversion_interval.unwrap();
            assert!(
                close(interval.low, low, 5e-5),
                "{x1}/{n1} − {x2}/{n2}: {interval:?}"
            );
            assert!(
                close(interval.high, high, 5e-5),
                "{x1}/{n1} − {x2}/{n2}: {interval:?}"
            );
        }
    }

    #[test]
    fn a_campaign_report_by_hand() {
        // 120 of 1 000 sent converted, 100 of 1 000 held out: +2 points.
        // Wilson: sent (0.101299, 0.141609), held out (0.082909, 0.120152);
        // below = √((0.12 − 0.101299)² + (0.120152 − 0.10)²) = 0.027492,
        // above = √((0.141609 − 0.12)² + (0.10 − 0.082909)²) = 0.027551:
        // −0.7492 to +4.7551 points, zero inside: not significant.
        let uplift = uplift(&group(1_000, 120), &group(1_000, 100));
        assert_eq!(uplift.conversion_rate_sent, Some(0.12));
        assert_eq!(uplift.conversion_rate_holdout, Some(0.10));
        assert!(close(uplift.conversion_difference.unwrap(), 0.02, 1e-12));
        let interval = uplift.conversion_interval.unwrap();
        assert!(close(interval.low, -0.007_492, 2e-6), "{interval:?}");
        assert!(close(interval.high, 0.047_551, 2e-6), "{interval:?}");
        assert!(!interval.excludes_zero());
    }

    #[test]
    fn welch_by_hand() {
        // Sent spent 3, 5, 7, 9: mean 6, variance (9 + 1 + 1 + 9) / 3 = 20/3.
        // Held out spent 1, 2, 3: mean 2, variance 1.
        // Difference 4; variance of it 20/3/4 + 1/3 = 2, standard error √2 = 1.414214.
        // Degrees of freedom 2² / ((5/3)²/3 + (1/3)²/2) = 4 / 0.981481 = 4.075472;
        // t(0.975, 4.075472) = 2.756285 (between 2.776445 at 4 and 2.570582 at 5).
        // Half width 2.756285 × 1.414214 = 3.897977: 0.102023 to 7.897977.
        let sent =
            GroupOutcome::from_members([(true, 3), (true, 5), (true, 7), (true, 9)]).unwrap();
        let holdout = GroupOutcome::from_members([(true, 1), (true, 2), (true, 3)]).unwrap();
        assert!(close(sent.revenue_variance().unwrap(), 20.0 / 3.0, 1e-12));
        let uplift = uplift(&sent, &holdout);
        assert_eq!(uplift.revenue_per_member_sent, Some(6.0));
        assert_eq!(uplift.revenue_per_member_holdout, Some(2.0));
        assert_eq!(uplift.revenue_difference, Some(4.0));
        assert!(close(
            uplift.revenue_degrees_of_freedom.unwrap(),
            4.075_472,
            1e-6
        ));
        let interval = uplift.revenue_interval.unwrap();
        assert!(close(interval.low, 0.102_023, 1e-5), "{interval:?}");
        assert!(close(interval.high, 7.897_977, 1e-5), "{interval:?}");
        assert!(interval.excludes_zero());
    }

    #[test]
    fn student_t_against_the_tables() {
        for (degrees, t) in [
            (1.0, 12.706_205),
            (4.0, 2.776_445),
            (5.0, 2.570_582),
            (30.0, 2.042_272),
            (1_000.0, 1.962_339),
        ] {
            let quantile = student_t_upper_quantile(degrees).unwrap();
            assert!(close(quantile, t, 1e-5), "{degrees}: {quantile}");
        }
        assert_eq!(student_t_upper_quantile(1e7), Some(CONFIDENCE_Z));
        assert_eq!(student_t_upper_quantile(0.0), None);
        assert_eq!(student_t_upper_quantile(f64::NAN), None);
    }

    #[test]
    fn empty_and_flat_groups_give_none_not_nan() {
        let empty = GroupOutcome::default();
        let uplift_empty = uplift(&empty, &empty);
        assert_eq!(
            uplift_empty,
            Uplift {
                conversion_rate_sent: None,
                conversion_rate_holdout: None,
                conversion_difference: None,
                conversion_interval: None,
                revenue_per_member_sent: None,
                revenue_per_member_holdout: None,
                revenue_difference: None,
                revenue_interval: None,
                revenue_degrees_of_freedom: None,
            }
        );
        // Nobody converted, nobody spent: the difference is 0, conversion still has an interval
        // (Wilson's 0 to 0.277533 for each of 10), revenue has no spread to make one.
        let flat = group(10, 0);
        let uplift_flat = uplift(&flat, &flat);
        assert_eq!(uplift_flat.conversion_difference, Some(0.0));
        let interval = uplift_flat.conversion_interval.unwrap();
        assert!(close(interval.low, -0.277_533, 1e-6) && close(interval.high, 0.277_533, 1e-6));
        assert_eq!(uplift_flat.revenue_difference, Some(0.0));
        assert_eq!(uplift_flat.revenue_interval, None);
        // Everyone converted in both groups of one: rates exist, no variance.
        let one = GroupOutcome::from_members([(true, 50_000)]).unwrap();
        let uplift_one = uplift(&one, &one);
        assert_eq!(uplift_one.conversion_difference, Some(0.0));
        assert!(uplift_one.conversion_interval.is_some());
        assert_eq!(uplift_one.revenue_interval, None);
        // One group empty.
        let uplift_half = uplift(&flat, &empty);
        assert_eq!(uplift_half.conversion_rate_sent, Some(0.0));
        assert_eq!(uplift_half.conversion_difference, None);
        assert_eq!(uplift_half.conversion_interval, None);
        for value in [uplift_flat, uplift_one, uplift_half]
            .iter()
            .flat_map(|u| {
                [
                    u.conversion_rate_sent,
                    u.conversion_difference,
                    u.revenue_difference,
                    u.conversion_interval.map(|i| i.low),
                    u.conversion_interval.map(|i| i.high),
                ]
            })
            .flatten()
        {
            assert!(value.is_finite());
        }
    }

    #[test]
    fn sums_and_members_agree() {
        let members = [(true, 120_000), (false, 0), (true, -20_000), (false, 0)];
        let added = GroupOutcome::from_members(members).unwrap();
        // Σx = 100 000, Σx² = 1.44e10 + 4e8 = 1.48e10.
        let summed = GroupOutcome::from_sums(4, 2, 100_000, 14_800_000_000).unwrap();
        assert_eq!(added, summed);
        assert_eq!(added.conversion_rate(), Some(0.5));
        assert_eq!(added.revenue_per_member(), Some(25_000.0));
    }

    #[test]
    fn impossible_figures_are_refused() {
        assert_eq!(
            GroupOutcome::from_sums(3, 4, 0, 0),
            Err(UpliftError::MoreConvertedThanMembers {
                converted: 4,
                members: 3
            })
        );
        // Σx = 10 over 2 members needs Σx² ≥ 50.
        assert_eq!(
            GroupOutcome::from_sums(2, 0, 10, 49),
            Err(UpliftError::ImpossibleSquares)
        );
        assert_eq!(
            GroupOutcome::from_sums(0, 0, 1, 1),
            Err(UpliftError::RevenueTooLarge)
        );
        assert_eq!(
            GroupOutcome::from_sums(GROUP_MEMBERS_MAX + 1, 0, 0, 0),
            Err(UpliftError::TooManyMembers)
        );
        let mut group = GroupOutcome::default();
        assert_eq!(
            group.add(true, REVENUE_PER_MEMBER_MAX + 1),
            Err(UpliftError::RevenueTooLarge)
        );
        assert_eq!(group.add(true, -REVENUE_PER_MEMBER_MAX), Ok(()));
        assert_eq!(group.members(), 1);
    }
}
