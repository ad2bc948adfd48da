//! The segment builder's rows and the CEL condition they make: `member.tier == "gold" &&
//! member.spend_90d >= 2000000`. Every value a person typed goes into the condition as a
//! literal the core reads back unchanged — text quoted with its `\` and `"` escaped, numbers
//! only as whole numbers — so no value can break the expression or add to it. A saved
//! condition of the same simple shape reads back into rows ([`rows_of`]); any other is edited
//! as CEL.

use patron_core::segment::{fields, Cmp, Condition, FieldKind, TextTest, IN_LIST_MAX};

/// Most rows the builder takes; a longer condition is written as CEL.
pub const ROWS_MAX: usize = 50;
/// Longest value typed in one row, in characters.
pub const VALUE_LENGTH_MAX: usize = 500;

/// How the rows are joined.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Combine {
    /// Every row holds (`&&`).
    #[default]
    All,
    /// At least one row holds (`||`).
    Any,
}

impl Combine {
    pub fn code(self) -> &'static str {
        match self {
            Combine::All => "all",
            Combine::Any => "any",
        }
    }

    pub fn parse(text: &str) -> Combine {
        match text {
            "any" => Combine::Any,
            _ => Combine::All,
        }
    }

    fn joiner(self) -> &'static str {
        match self {
            Combine::All => " && ",
            Combine::Any => " || ",
        }
    }
}

/// What a row tests, each suited to one kind of field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operator {
    Equal,
    NotEqual,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
    Is,
    IsNot,
    OneOf,
    StartsWith,
    Yes,
    No,
    HasTag,
    HasNotTag,
}

impl Operator {
    pub const ALL: [Operator; 14] = [
        Operator::Equal,
        Operator::NotEqual,
        Operator::Less,
        Operator::LessOrEqual,
        Operator::Greater,
        Operator::GreaterOrEqual,
        Operator::Is,
        Operator::IsNot,
        Operator::OneOf,
        Operator::StartsWith,
        Operator::Yes,
        Operator::No,
        Operator::HasTag,
        Operator::HasNotTag,
    ];

    /// The form's value for the operator.
    pub fn code(self) -> &'static str {
        match self {
            Operator::Equal => "eq",
            Operator::NotEqual => "ne",
            Operator::Less => "lt",
            Operator::LessOrEqual => "le",
            Operator::Greater => "gt",
            Operator::GreaterOrEqual => "ge",
            Operator::Is => "is",
            Operator::IsNot => "is_not",
            Operator::OneOf => "one_of",
            Operator::StartsWith => "starts_with",
            Operator::Yes => "yes",
            Operator::No => "no",
            Operator::HasTag => "has",
            Operator::HasNotTag => "has_not",
        }
    }

    pub fn parse(code: &str) -> Option<Operator> {
        Operator::ALL
            .into_iter()
            .find(|operator| operator.code() == code)
    }

    /// The kind of field the operator suits.
    pub fn kind(self) -> FieldKind {
        match self {
            Operator::Equal
            | Operator::NotEqual
            | Operator::Less
            | Operator::LessOrEqual
            | Operator::Greater
            | Operator::GreaterOrEqual => FieldKind::Number,
            Operator::Is | Operator::IsNot | Operator::OneOf | Operator::StartsWith => {
                FieldKind::Text
            }
            Operator::Yes | Operator::No => FieldKind::YesNo,
            Operator::HasTag | Operator::HasNotTag => FieldKind::Tags,
        }
    }

    /// Whether the row takes a typed value.
    pub fn takes_value(self) -> bool {
        !matches!(self, Operator::Yes | Operator::No)
    }

    /// The message key of its name.
    pub fn label_key(self) -> &'static str {
        match self {
            Operator::Equal => "segments.operator.eq",
            Operator::NotEqual => "segments.operator.ne",
            Operator::Less => "segments.operator.lt",
            Operator::LessOrEqual => "segments.operator.le",
            Operator::Greater => "segments.operator.gt",
            Operator::GreaterOrEqual => "segments.operator.ge",
            Operator::Is => "segments.operator.is",
            Operator::IsNot => "segments.operator.is_not",
            Operator::OneOf => "segments.operator.one_of",
            Operator::StartsWith => "segments.operator.starts_with",
            Operator::Yes => "segments.operator.yes",
            Operator::No => "segments.operator.no",
            Operator::HasTag => "segments.operator.has",
            Operator::HasNotTag => "segments.operator.has_not",
        }
    }

    fn comparison(self) -> Option<&'static str> {
        Some(match self {
            Operator::Equal => "==",
            Operator::NotEqual => "!=",
            Operator::Less => "<",
            Operator::LessOrEqual => "<=",
            Operator::Greater => ">",
            Operator::GreaterOrEqual => ">=",
            _ => return None,
        })
    }

    fn of_cmp(cmp: Cmp) -> Operator {
        match cmp {
            Cmp::Eq => Operator::Equal,
            Cmp::Ne => Operator::NotEqual,
            Cmp::Lt => Operator::Less,
            Cmp::Le => Operator::LessOrEqual,
            Cmp::Gt => Operator::Greater,
            Cmp::Ge => Operator::GreaterOrEqual,
        }
    }
}

/// The message key of a kind's name.
pub fn kind_key(kind: FieldKind) -> &'static str {
    match kind {
        FieldKind::Number => "segments.kind.number",
        FieldKind::Text => "segments.kind.text",
        FieldKind::YesNo => "segments.kind.yes_no",
        FieldKind::Tags => "segments.kind.tags",
    }
}

/// The form's value for a kind (the field picker's `data-kind`).
pub fn kind_code(kind: FieldKind) -> &'static str {
    match kind {
        FieldKind::Number => "number",
        FieldKind::Text => "text",
        FieldKind::YesNo => "yes_no",
        FieldKind::Tags => "tags",
    }
}

/// One row as typed: a field name (`spend_90d`), an operator's code, a value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Row {
    pub field: String,
    pub operator: String,
    pub value: String,
}

impl Row {
    pub fn new(field: &str, operator: Operator, value: &str) -> Row {
        Row {
            field: field.to_owned(),
            operator: operator.code().to_owned(),
            value: value.to_owned(),
        }
    }

    /// Left blank: no field and no value. Blank rows are skipped.
    pub fn is_blank(&self) -> bool {
        self.field.trim().is_empty() && self.value.trim().is_empty()
    }
}

/// What is wrong with the rows: the form field at fault (`rows[2].value`, or `rows` for the
/// whole list) and a message key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowFault {
    pub field: String,
    pub key: &'static str,
}

fn fault(index: usize, part: &str, key: &'static str) -> RowFault {
    RowFault {
        field: format!("rows[{index}].{part}"),
        key,
    }
}

/// `text` as a CEL string literal: in double quotes, with `\` and `"` escaped and control
/// characters written as escapes, so it is read back as exactly `text` and nothing more.
pub fn cel_string(text: &str) -> String {
    let mut literal = String::with_capacity(text.len() + 2);
    literal.push('"');
    for character in text.chars() {
        match character {
            '\\' => literal.push_str("\\\\"),
            '"' => literal.push_str("\\\""),
            '\n' => literal.push_str("\\n"),
            '\r' => literal.push_str("\\r"),
            '\t' => literal.push_str("\\t"),
            other if other.is_control() => {
                literal.push_str(&format!("\\u{:04x}", u32::from(other)));
            }
            other => literal.push(other),
        }
    }
    literal.push('"');
    literal
}

/// A text value as typed, trimmed: required, without control characters, not too long.
fn text_value(text: &str, index: usize) -> Result<String, RowFault> {
    let text = text.trim();
    if text.is_empty() {
        return Err(fault(index, "value", "segments.error.value_required"));
    }
    if text.chars().any(char::is_control) {
        return Err(fault(index, "value", "segments.error.value_control"));
    }
    if text.chars().count() > VALUE_LENGTH_MAX {
        return Err(fault(index, "value", "segments.error.value_too_long"));
    }
    Ok(text.to_owned())
}

/// A whole number as typed (`2000000`, `2.000.000`, `-3`); nothing else.
fn whole_value(text: &str, index: usize) -> Result<i64, RowFault> {
    match crate::format::parse_whole(text) {
        Ok(Some(value)) => Ok(value),
        Ok(None) => Err(fault(index, "value", "segments.error.value_required")),
        Err(crate::format::WholeError::TooLarge) => {
            Err(fault(index, "value", "segments.error.number_too_large"))
        }
        Err(_) => Err(fault(index, "value", "segments.error.number_invalid")),
    }
}

/// The CEL of one row.
fn row_condition(row: &Row, index: usize) -> Result<String, RowFault> {
    let name = row.field.trim();
    if name.is_empty() {
        return Err(fault(index, "field", "segments.error.field_required"));
    }
    let Some(info) = fields().into_iter().find(|info| info.name == name) else {
        return Err(fault(index, "field", "segments.error.field_unknown"));
    };
    let Some(operator) = Operator::parse(row.operator.trim()) else {
        return Err(fault(index, "operator", "segments.error.operator_required"));
    };
    if operator.kind() != info.kind {
        return Err(fault(index, "operator", "segments.error.operator_mismatch"));
    }
    let field = format!("member.{}", info.name);
    Ok(match operator {
        Operator::Yes => field,
        Operator::No => format!("!{field}"),
        Operator::HasTag => format!(
            "{} in member.tags",
            cel_string(&text_value(&row.value, index)?)
        ),
        Operator::HasNotTag => format!(
            "!({} in member.tags)",
            cel_string(&text_value(&row.value, index)?)
        ),
        Operator::Is => format!("{field} == {}", cel_string(&text_value(&row.value, index)?)),
        Operator::IsNot => format!("{field} != {}", cel_string(&text_value(&row.value, index)?)),
        Operator::StartsWith => format!(
            "{field}.startsWith({})",
            cel_string(&text_value(&row.value, index)?)
        ),
        Operator::OneOf => {
            let mut values = Vec::new();
            for part in row.value.split(',').filter(|part| !part.trim().is_empty()) {
                values.push(cel_string(&text_value(part, index)?));
            }
            if values.is_empty() {
                return Err(fault(index, "value", "segments.error.value_required"));
            }
            if values.len() > IN_LIST_MAX {
                return Err(fault(index, "value", "segments.error.too_many_values"));
            }
            format!("{field} in [{}]", values.join(", "))
        }
        numeric => {
            let value = whole_value(&row.value, index)?;
            let comparison = numeric
                .comparison()
                .expect("the other operators are numeric");
            format!("{field} {comparison} {value}")
        }
    })
}

/// The CEL condition the rows make, blank rows skipped; or every fault, each at its row.
pub fn condition_of(rows: &[Row], combine: Combine) -> Result<String, Vec<RowFault>> {
    if rows.len() > ROWS_MAX {
        return Err(vec![RowFault {
            field: "rows".into(),
            key: "segments.error.too_many_rows",
        }]);
    }
    let mut parts = Vec::new();
    let mut faults = Vec::new();
    for (index, row) in rows.iter().enumerate() {
        if row.is_blank() {
            continue;
        }
        match row_condition(row, index) {
            Ok(part) => parts.push(part),
            Err(error) => faults.push(error),
        }
    }
    if !faults.is_empty() {
        return Err(faults);
    }
    if parts.is_empty() {
        return Err(vec![RowFault {
            field: "rows".into(),
            key: "segments.error.no_rows",
        }]);
    }
    Ok(parts.join(combine.joiner()))
}

/// The rows of a saved condition, when it is rows joined one way that the builder would have
/// written the same; `None` for any other (edited as CEL).
pub fn rows_of(condition: &str) -> Option<(Combine, Vec<Row>)> {
    let compiled = Condition::compile(condition).ok()?;
    let (combine, parts) = match &compiled {
        Condition::All(parts) => (Combine::All, parts.as_slice()),
        Condition::Any(parts) => (Combine::Any, parts.as_slice()),
        single => (Combine::All, std::slice::from_ref(single)),
    };
    if parts.len() > ROWS_MAX {
        return None;
    }
    let rows = parts.iter().map(row_of).collect::<Option<Vec<Row>>>()?;
    // Only a condition the rows give back exactly (same parts, same values) is shown as rows.
    let again = condition_of(&rows, combine).ok()?;
    (Condition::compile(&again).ok()? == compiled).then_some((combine, rows))
}

fn row_of(part: &Condition) -> Option<Row> {
    Some(match part {
        Condition::Int(field, cmp, value) => {
            Row::new(field.name(), Operator::of_cmp(*cmp), &value.to_string())
        }
        Condition::Text(field, test) => {
            let name = field.name();
            match test {
                TextTest::Cmp(Cmp::Eq, value) => Row::new(name, Operator::Is, value),
                TextTest::Cmp(Cmp::Ne, value) => Row::new(name, Operator::IsNot, value),
                TextTest::StartsWith(value) => Row::new(name, Operator::StartsWith, value),
                TextTest::In(values) if values.iter().all(|value| !value.contains(',')) => {
                    Row::new(name, Operator::OneOf, &values.join(", "))
                }
                _ => return None,
            }
        }
        Condition::Bool(field) => Row::new(field.name(), Operator::Yes, ""),
        Condition::Tag(tag) => Row::new("tags", Operator::HasTag, tag),
        Condition::Not(inner) => match inner.as_ref() {
            Condition::Bool(field) => Row::new(field.name(), Operator::No, ""),
            Condition::Tag(tag) => Row::new("tags", Operator::HasNotTag, tag),
            _ => return None,
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operator_reads_back_from_its_code() {
        for operator in Operator::ALL {
            assert_eq!(Operator::parse(operator.code()), Some(operator));
        }
        assert_eq!(Operator::parse("=="), None);
    }

    #[test]
    fn the_issue_example_is_made_and_read_back() {
        let rows = vec![
            Row::new("tier", Operator::Is, "gold"),
            Row::new("spend_90d", Operator::GreaterOrEqual, "2.000.000"),
            Row::new("days_since_last_purchase", Operator::GreaterOrEqual, "30"),
        ];
        let condition = condition_of(&rows, Combine::All).unwrap();
        assert_eq!(
            condition,
            "member.tier == \"gold\" && member.spend_90d >= 2000000 && \
             member.days_since_last_purchase >= 30"
        );
        let (combine, back) = rows_of(&condition).unwrap();
        assert_eq!(combine, Combine::All);
        assert_eq!(
            back[1],
            Row::new("spend_90d", Operator::GreaterOrEqual, "2000000")
        );
    }
}
