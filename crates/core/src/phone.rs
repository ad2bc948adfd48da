//! Phone numbers, the main identity of a member. Vietnamese numbers in any usual spelling become
//! one E.164 form: `0912 345 678`, `+84912345678` and `84912345678` are all `+84912345678`.
//! A number written with `+` and another country code is kept as E.164 after basic checks.

use std::fmt;

/// A phone number in E.164 form (`+` then 8 to 15 digits). Always valid once made.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Phone(String);

/// Why a phone number was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("phone number is empty")]
    Empty,
    #[error("phone number may hold only digits, spaces, '.', '-', '(' , ')' and a leading '+'")]
    InvalidCharacter,
    #[error("not a Vietnamese mobile or landline number")]
    NotVietnamese,
    #[error("an international number must have 8 to 15 digits")]
    BadLength,
}

/// Vietnam's country calling code.
const VIETNAM_CODE: &str = "84";

impl Phone {
    /// Parses a number as a cashier or a form would type it.
    pub fn parse(text: &str) -> Result<Phone, PhoneError> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(PhoneError::Empty);
        }
        let mut international = false;
        let mut digits = String::with_capacity(trimmed.len());
        for character in trimmed.chars() {
            match character {
                '0'..='9' => digits.push(character),
                '+' if digits.is_empty() && !international => international = true,
                ' ' | '.' | '-' | '(' | ')' => {}
                _ => return Err(PhoneError::InvalidCharacter),
            }
        }
        if digits.is_empty() {
            return Err(PhoneError::Empty);
        }
        if international {
            if let Some(national) = digits.strip_prefix(VIETNAM_CODE) {
                return vietnamese(national);
            }
            return other_country(&digits);
        }
        if let Some(national) = digits.strip_prefix("00") {
            if let Some(national) = national.strip_prefix(VIETNAM_CODE) {
                return vietnamese(national);
            }
            return other_country(national);
        }
        if let Some(national) = digits.strip_prefix('0') {
            return vietnamese(national);
        }
        if let Some(national) = digits.strip_prefix(VIETNAM_CODE) {
            if is_vietnamese_national(national) {
                return vietnamese(national);
            }
        }
        // A bare national number typed without its leading zero: "912345678".
        vietnamese(&digits)
    }

    /// The E.164 text, e.g. `+84912345678`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The national form a Vietnamese customer recognises, e.g. `0912345678`.
    pub fn national(&self) -> String {
        match self.0.strip_prefix("+84") {
            Some(rest) => format!("0{rest}"),
            None => self.0.clone(),
        }
    }
}

/// Mobile numbers have 9 national digits starting 3, 5, 7, 8 or 9; landlines 10 starting 2.
fn is_vietnamese_national(national: &str) -> bool {
    match national.as_bytes().first() {
        Some(b'3' | b'5' | b'7' | b'8' | b'9') => national.len() == 9,
        Some(b'2') => national.len() == 10,
        _ => false,
    }
}

fn vietnamese(national: &str) -> Result<Phone, PhoneError> {
    if !is_vietnamese_national(national) {
        return Err(PhoneError::NotVietnamese);
    }
    Ok(Phone(format!("+{VIETNAM_CODE}{national}")))
}

fn other_country(digits: &str) -> Result<Phone, PhoneError> {
    if !(8..=15).contains(&digits.len()) || digits.starts_with('0') {
        return Err(PhoneError::BadLength);
    }
    Ok(Phone(format!("+{digits}")))
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usual_spellings_are_one_member() {
        for text in [
            "0912 345 678",
            "+84912345678",
            "84912345678",
            "0912.345.678",
            "(+84) 912-345-678",
            "0084912345678",
            "912345678",
        ] {
            assert_eq!(
                Phone::parse(text).unwrap().as_str(),
                "+84912345678",
                "{text}"
            );
        }
    }

    #[test]
    fn landline_and_national_form() {
        let phone = Phone::parse("024 3825 1234").unwrap();
        assert_eq!(phone.as_str(), "+842438251234");
        assert_eq!(phone.national(), "02438251234");
    }

    #[test]
    fn rejects_what_is_not_a_number() {
        assert_eq!(Phone::parse(""), Err(PhoneError::Empty));
        assert_eq!(Phone::parse("  "), Err(PhoneError::Empty));
        assert_eq!(
            Phone::parse("09123x5678"),
            Err(PhoneError::InvalidCharacter)
        );
        assert_eq!(Phone::parse("091234567"), Err(PhoneError::NotVietnamese));
        assert_eq!(Phone::parse("01234567890"), Err(PhoneError::NotVietnamese));
        assert_eq!(Phone::parse("+1234"), Err(PhoneError::BadLength));
    }

    #[test]
    fn keeps_other_countries() {
        assert_eq!(
            Phone::parse("+65 6123 4567").unwrap().as_str(),
            "+6561234567"
        );
    }
}
