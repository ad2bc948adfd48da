//! Segments: conditions in CEL over what is kept of each member (spend, visits, recency, RFM
//! scores, points, birthday, consent, tags, attributes), e.g.
//! `member.tier == "gold" && member.spend_90d >= 2000000 && member.days_since_last_purchase >= 30`.
//!
//! A condition is compiled once ([`Condition::compile`]) to a plan of comparisons, each of a
//! field with a literal, joined by `&&`, `||` and `!`, and run a column at a time over a
//! tenant's members held as a [`Table`]; [`Condition::holds`] reads one member the same way.
//! What cannot be planned that way (arithmetic, two fields compared, macros) is refused with
//! the reason, so every saved segment runs at column speed.

mod bits;
mod condition;
mod fields;
mod table;

pub use bits::Bits;
pub use condition::{
    AttributeTest, Cmp, Condition, ConditionError, TextTest, CONDITION_DEPTH_MAX,
    CONDITION_LENGTH_MAX, CONDITION_PARTS_MAX, IN_LIST_MAX,
};
pub use fields::{
    rfm_cell, BoolField, Facts, IntField, Profile, RfmCutoffs, Scalar, TextField, WINDOWS_DAYS,
};
pub use table::{Table, NULL};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// The date of a local day (days since 1970-01-01).
pub fn date_of_day(day: i64) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(1970, 1, 1)?.checked_add_signed(chrono::Duration::days(day))
}

/// The local day of a date.
pub fn day_of_date(date: NaiveDate) -> i64 {
    NaiveDate::from_ymd_opt(1970, 1, 1)
        .map(|epoch| (date - epoch).num_days())
        .unwrap_or_default()
}

/// What kind of value a field holds, for the builder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    Number,
    Text,
    YesNo,
    Tags,
}

/// A field the builder offers: `member.<name>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct FieldInfo {
    pub name: &'static str,
    pub kind: FieldKind,
    pub help: &'static str,
}

/// Every field a condition may name (custom attributes as `member.attributes.<name>` too).
pub fn fields() -> Vec<FieldInfo> {
    let ints = IntField::ALL.iter().map(|field| FieldInfo {
        name: field.name(),
        kind: FieldKind::Number,
        help: field.help(),
    });
    let texts = TextField::ALL.iter().map(|field| FieldInfo {
        name: field.name(),
        kind: FieldKind::Text,
        help: field.help(),
    });
    let bools = BoolField::ALL.iter().map(|field| FieldInfo {
        name: field.name(),
        kind: FieldKind::YesNo,
        help: field.help(),
    });
    let tags = std::iter::once(FieldInfo {
        name: "tags",
        kind: FieldKind::Tags,
        help: "the member's tags: \"vip\" in member.tags",
    });
    texts.chain(ints).chain(bools).chain(tags).collect()
}

pub(crate) fn field_names() -> Vec<&'static str> {
    fields().iter().map(|field| field.name).collect()
}

/// Longest segment name, in characters.
pub const SEGMENT_NAME_MAX: usize = 100;
/// Longest price list name and note of a sales policy, in characters.
pub const POLICY_TEXT_MAX: usize = 500;

/// What the till offers a segment's members: a discount, a price list, a note for the cashier.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SalesPolicy {
    /// Whole percent off, 0 to 100.
    #[serde(default)]
    pub discount_percent: u8,
    #[serde(default)]
    pub price_list: Option<String>,
    #[serde(default)]
    pub note: Option<String>,
}

/// A segment as the marketer saves it: each save is a new version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentDefinition {
    pub name: String,
    pub condition: String,
    #[serde(default)]
    pub policy: Option<SalesPolicy>,
}

/// A field of a definition that is not right, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct DefinitionError {
    pub field: &'static str,
    pub message: String,
}

impl SegmentDefinition {
    /// Checks every field and compiles the condition.
    pub fn compile(&self) -> Result<Condition, DefinitionError> {
        let invalid = |field, message: String| Err(DefinitionError { field, message });
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > SEGMENT_NAME_MAX {
            return invalid("name", format!("1 to {SEGMENT_NAME_MAX} characters"));
        }
        if let Some(policy) = &self.policy {
            if policy.discount_percent > 100 {
                return invalid("policy.discount_percent", "0 to 100".into());
            }
            for (field, text) in [
                ("policy.price_list", &policy.price_list),
                ("policy.note", &policy.note),
            ] {
                if text
                    .as_ref()
                    .is_some_and(|text| text.chars().count() > POLICY_TEXT_MAX)
                {
                    return invalid(field, format!("at most {POLICY_TEXT_MAX} characters"));
                }
            }
        }
        Condition::compile(&self.condition).map_err(|error| DefinitionError {
            field: "condition",
            message: error.0,
        })
    }
}

#[cfg(test)]
mod tests;
