//! Money and points: integers, never floating point.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::{Add, AddAssign, Neg, Sub, SubAssign};

/// An amount of the tenant's currency in its minor unit (VND has none: 1 = 1 đồng).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Money(pub i64);

/// A count of points.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Points(pub i64);

macro_rules! integer_arithmetic {
    ($name:ident) => {
        impl $name {
            pub const ZERO: Self = Self(0);

            pub fn is_positive(self) -> bool {
                self.0 > 0
            }

            pub fn is_negative(self) -> bool {
                self.0 < 0
            }

            pub fn min(self, other: Self) -> Self {
                Self(self.0.min(other.0))
            }

            pub fn max(self, other: Self) -> Self {
                Self(self.0.max(other.0))
            }

            /// The sum, or `None` past `i64`.
            pub fn checked_add(self, other: Self) -> Option<Self> {
                self.0.checked_add(other.0).map(Self)
            }

            /// The sum, held at `i64::MIN`/`i64::MAX` rather than wrapping: for counters that
            /// only compare against thresholds (lifetime and monthly totals).
            pub fn saturating_add(self, other: Self) -> Self {
                Self(self.0.saturating_add(other.0))
            }
        }

        impl Add for $name {
            type Output = Self;
            fn add(self, other: Self) -> Self {
                Self(self.0 + other.0)
            }
        }

        impl AddAssign for $name {
            fn add_assign(&mut self, other: Self) {
                self.0 += other.0;
            }
        }

        impl Sub for $name {
            type Output = Self;
            fn sub(self, other: Self) -> Self {
                Self(self.0 - other.0)
            }
        }

        impl SubAssign for $name {
            fn sub_assign(&mut self, other: Self) {
                self.0 -= other.0;
            }
        }

        impl Neg for $name {
            type Output = Self;
            fn neg(self) -> Self {
                Self(-self.0)
            }
        }

        impl std::iter::Sum for $name {
            fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
                Self(iter.map(|value| value.0).sum())
            }
        }
    };
}

integer_arithmetic!(Money);
integer_arithmetic!(Points);

impl Money {
    /// `self × numerator / denominator`, truncated toward zero, in 128-bit so it cannot overflow.
    pub fn scale(self, numerator: i64, denominator: i64) -> Money {
        assert!(denominator != 0, "scale by a zero denominator");
        Money((self.0 as i128 * numerator as i128 / denominator as i128) as i64)
    }
}

impl Points {
    /// `self × numerator / denominator`, truncated toward zero, in 128-bit so it cannot overflow.
    pub fn scale(self, numerator: i64, denominator: i64) -> Points {
        assert!(denominator != 0, "scale by a zero denominator");
        Points((self.0 as i128 * numerator as i128 / denominator as i128) as i64)
    }
}

impl fmt::Display for Points {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Writes a whole amount with `,` between thousands, as the API's English texts do:
/// `1,234,567` (the web writes amounts in each visitor's own language, `crates/web/src/format.rs`).
pub fn group_thousands(value: i64) -> String {
    let digits = value.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if value < 0 {
        out.push('-');
    }
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&group_thousands(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_thousands_english_style() {
        assert_eq!(group_thousands(0), "0");
        assert_eq!(group_thousands(999), "999");
        assert_eq!(group_thousands(1000), "1,000");
        assert_eq!(group_thousands(1_234_567), "1,234,567");
        assert_eq!(group_thousands(-45_000), "-45,000");
    }

    #[test]
    fn scale_truncates() {
        assert_eq!(Points(15).scale(1, 2), Points(7));
        assert_eq!(Money(i64::MAX).scale(2, 2), Money(i64::MAX));
    }
}
