//! The programme editor's form: a definition as the fields a person edits, every value kept as
//! typed so that a form shown again holds what they wrote, and the way back to a definition.
//! Field names are the paths the programme's validation reports (`rules[0].when`,
//! `tiers[2].threshold`, `expiry.days`), so a mistake lands next to the field that made it.

use crate::i18n::Texts;
use patron_core::programme::{
    Expiry, Period, ProgrammeDefinition, Qualification, QualificationMetric, QualificationWindow,
    RuleDefinition, TierDefinition,
};

/// Most rows of one list (rules, tiers) a form may send; the programme's own limits are lower.
const ROWS_MAX: usize = 100;

/// A mistake in a form: the field at fault, and what to say (a message key and its values).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    pub field: String,
    pub key: &'static str,
    pub values: Vec<(&'static str, String)>,
}

impl Fault {
    pub fn new(field: impl Into<String>, key: &'static str) -> Fault {
        Fault {
            field: field.into(),
            key,
            values: Vec::new(),
        }
    }

    pub fn with(mut self, name: &'static str, value: impl Into<String>) -> Fault {
        self.values.push((name, value.into()));
        self
    }

    /// The message in the visitor's language.
    pub fn message(&self, t: &Texts) -> String {
        let values: Vec<(&str, &str)> = self
            .values
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        t.fill(self.key, &values)
    }

    /// A fault reported by the store or the core in English (`must be at most 365`), turned
    /// into a message key: the phrases are the validations' own, the rest is shown as given.
    pub fn from_validation(field: &str, message: &str) -> Fault {
        let fault = Fault::new(field, "programme.error.invalid");
        if field.ends_with(".when") && field.starts_with("rules[") {
            return Fault::new(field, "programme.error.cel_when").with("detail", message);
        }
        if field.ends_with(".points")
            && field.starts_with("rules[")
            && !message.starts_with("at most")
        {
            return Fault::new(field, "programme.error.cel_points").with("detail", message);
        }
        let numbers: Vec<String> = message
            .split(|c: char| !c.is_ascii_digit())
            .filter(|part| !part.is_empty())
            .map(str::to_owned)
            .collect();
        let first = numbers.first().cloned().unwrap_or_default();
        let second = numbers.get(1).cloned().unwrap_or_default();
        match message {
            "must be 0 or more" => Fault::new(field, "programme.error.zero_or_more"),
            "must be at least 1" => Fault::new(field, "programme.error.at_least_one"),
            "must not be empty" => Fault::new(field, "programme.error.required"),
            "must be unique" => Fault::new(field, "programme.error.unique"),
            "the first tier starts at 0" => Fault::new(field, "programme.error.first_tier_zero"),
            "must be greater than the tier below" => {
                Fault::new(field, "programme.error.above_lower_tier")
            }
            _ if message.starts_with("must be at most") || message.starts_with("at most") => {
                Fault::new(field, "programme.error.at_most").with("max", first)
            }
            _ if message.starts_with("must be between") => {
                Fault::new(field, "programme.error.between")
                    .with("min", first)
                    .with("max", second)
            }
            _ if message.starts_with("must be 1 to") && message.ends_with("characters") => {
                Fault::new(field, "programme.error.length").with("max", second)
            }
            _ => fault.with("detail", message),
        }
    }
}

/// A whole number as people type it: `320000`, `320.000`, `320,000`, `320 000đ`.
pub fn parse_whole(text: &str) -> Option<i64> {
    crate::format::parse_whole(text.trim().trim_end_matches('đ'))
        .ok()
        .flatten()
}

fn whole(text: &str, field: &str) -> Result<i64, Fault> {
    if text.trim().is_empty() {
        return Err(Fault::new(field, "programme.error.required"));
    }
    parse_whole(text).ok_or_else(|| Fault::new(field, "programme.error.number"))
}

fn optional_whole(text: &str, field: &str) -> Result<Option<i64>, Fault> {
    if text.trim().is_empty() {
        Ok(None)
    } else {
        whole(text, field).map(Some)
    }
}

fn days(text: &str, field: &str) -> Result<u32, Fault> {
    let value = whole(text, field)?;
    if value < 0 {
        return Err(Fault::new(field, "programme.error.zero_or_more"));
    }
    u32::try_from(value).map_err(|_| Fault::new(field, "programme.error.number"))
}

/// One earning rule as typed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleRow {
    pub id: String,
    pub name: String,
    pub when: String,
    pub points: String,
    pub tier_multiplier: bool,
    /// `""`, `ever`, `year`, `month` or `day`.
    pub once_per: String,
}

impl RuleRow {
    fn is_blank(&self) -> bool {
        [&self.id, &self.name, &self.when, &self.points]
            .iter()
            .all(|text| text.trim().is_empty())
    }
}

/// One tier as typed; benefits one per line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TierRow {
    pub code: String,
    pub name: String,
    pub threshold: String,
    pub multiplier_percent: String,
    pub benefits: String,
}

impl TierRow {
    fn is_blank(&self) -> bool {
        [&self.code, &self.name, &self.threshold, &self.benefits]
            .iter()
            .all(|text| text.trim().is_empty())
            && matches!(self.multiplier_percent.trim(), "" | "100")
    }
}

/// A whole programme as typed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DefinitionForm {
    pub amount_per_point: String,
    pub point_value: String,
    pub return_window_days: String,
    /// `never`, `days` or `end_of_month`.
    pub expiry_kind: String,
    pub expiry_days: String,
    pub expiry_months: String,
    pub cap_per_event: String,
    pub cap_per_day: String,
    pub rules: Vec<RuleRow>,
    pub tiers: Vec<TierRow>,
    /// `spend` or `points`.
    pub metric: String,
    /// `lifetime`, `rolling_12_months` or `calendar_year`.
    pub window: String,
    pub grace_days: String,
    pub crossing_purchase_earns_new_rate: bool,
}

fn period_name(period: Option<Period>) -> &'static str {
    match period {
        None => "",
        Some(Period::Ever) => "ever",
        Some(Period::Year) => "year",
        Some(Period::Month) => "month",
        Some(Period::Day) => "day",
    }
}

impl DefinitionForm {
    pub fn from_definition(definition: &ProgrammeDefinition) -> DefinitionForm {
        let (expiry_kind, expiry_days, expiry_months) = match definition.expiry {
            Expiry::Never => ("never", String::new(), String::new()),
            Expiry::Days { days } => ("days", days.to_string(), String::new()),
            Expiry::EndOfMonth { months } => ("end_of_month", String::new(), months.to_string()),
        };
        let optional =
            |value: Option<i64>| value.map(|value| value.to_string()).unwrap_or_default();
        let qualification = &definition.qualification;
        DefinitionForm {
            amount_per_point: definition.amount_per_point.to_string(),
            point_value: definition.point_value.to_string(),
            return_window_days: definition.return_window_days.to_string(),
            expiry_kind: expiry_kind.to_owned(),
            expiry_days,
            expiry_months,
            cap_per_event: optional(definition.cap_per_event),
            cap_per_day: optional(definition.cap_per_day),
            rules: definition
                .rules
                .iter()
                .map(|rule| RuleRow {
                    id: rule.id.clone(),
                    name: rule.name.clone(),
                    when: rule.when.clone(),
                    points: rule.points.clone(),
                    tier_multiplier: rule.tier_multiplier,
                    once_per: period_name(rule.once_per).to_owned(),
                })
                .collect(),
            tiers: definition
                .tiers
                .iter()
                .map(|tier| TierRow {
                    code: tier.code.clone(),
                    name: tier.name.clone(),
                    threshold: tier.threshold.to_string(),
                    multiplier_percent: tier.multiplier_percent.to_string(),
                    benefits: tier.benefits.join("\n"),
                })
                .collect(),
            metric: match qualification.metric {
                QualificationMetric::Spend => "spend",
                QualificationMetric::Points => "points",
            }
            .to_owned(),
            window: match qualification.window {
                QualificationWindow::Lifetime => "lifetime",
                QualificationWindow::Rolling12Months => "rolling_12_months",
                QualificationWindow::CalendarYear => "calendar_year",
            }
            .to_owned(),
            grace_days: qualification.grace_days.to_string(),
            crossing_purchase_earns_new_rate: qualification.crossing_purchase_earns_new_rate,
        }
    }

    /// The form as sent: `name=value` pairs, rows as `rules[3].when`. Rows ticked for removal
    /// and rows left blank are dropped, so row `i` of the result is rule `i` of the definition.
    pub fn from_pairs(pairs: &[(String, String)]) -> DefinitionForm {
        let mut form = DefinitionForm::default();
        let mut rules = std::collections::BTreeMap::<usize, (RuleRow, bool)>::new();
        let mut tiers = std::collections::BTreeMap::<usize, (TierRow, bool)>::new();
        for (name, value) in pairs {
            if let Some((list, index, part)) = row_field(name) {
                if list == "rules" {
                    let (row, removed) = rules.entry(index).or_default();
                    match part {
                        "id" => row.id = value.clone(),
                        "name" => row.name = value.clone(),
                        "when" => row.when = value.clone(),
                        "points" => row.points = value.clone(),
                        "tier_multiplier" => row.tier_multiplier = true,
                        "once_per" => row.once_per = value.clone(),
                        "remove" => *removed = true,
                        _ => {}
                    }
                } else if list == "tiers" {
                    let (row, removed) = tiers.entry(index).or_default();
                    match part {
                        "code" => row.code = value.clone(),
                        "name" => row.name = value.clone(),
                        "threshold" => row.threshold = value.clone(),
                        "multiplier_percent" => row.multiplier_percent = value.clone(),
                        "benefits" => row.benefits = value.clone(),
                        "remove" => *removed = true,
                        _ => {}
                    }
                }
                continue;
            }
            let value = value.clone();
            match name.as_str() {
                "amount_per_point" => form.amount_per_point = value,
                "point_value" => form.point_value = value,
                "return_window_days" => form.return_window_days = value,
                "expiry.kind" => form.expiry_kind = value,
                "expiry.days" => form.expiry_days = value,
                "expiry.months" => form.expiry_months = value,
                "cap_per_event" => form.cap_per_event = value,
                "cap_per_day" => form.cap_per_day = value,
                "qualification.metric" => form.metric = value,
                "qualification.window" => form.window = value,
                "qualification.grace_days" => form.grace_days = value,
                "qualification.crossing_purchase_earns_new_rate" => {
                    form.crossing_purchase_earns_new_rate = true
                }
                _ => {}
            }
        }
        form.rules = rules
            .into_values()
            .filter(|(row, removed)| !removed && !row.is_blank())
            .map(|(row, _)| row)
            .collect();
        form.tiers = tiers
            .into_values()
            .filter(|(row, removed)| !removed && !row.is_blank())
            .map(|(row, _)| row)
            .collect();
        form
    }

    /// The definition the form describes; the first field that is not a number (or is
    /// missing) is the fault. Ranges and CEL are checked by the programme's own validation.
    pub fn to_definition(&self) -> Result<ProgrammeDefinition, Fault> {
        let expiry = match self.expiry_kind.as_str() {
            "never" => Expiry::Never,
            "days" => Expiry::Days {
                days: days(&self.expiry_days, "expiry.days")?,
            },
            "end_of_month" => Expiry::EndOfMonth {
                months: days(&self.expiry_months, "expiry.months")?,
            },
            _ => return Err(Fault::new("expiry.kind", "programme.error.choose")),
        };
        let mut rules = Vec::with_capacity(self.rules.len());
        for (index, row) in self.rules.iter().enumerate() {
            let field = |part: &str| format!("rules[{index}].{part}");
            for (part, text) in [
                ("id", &row.id),
                ("name", &row.name),
                ("when", &row.when),
                ("points", &row.points),
            ] {
                if text.trim().is_empty() {
                    return Err(Fault::new(field(part), "programme.error.required"));
                }
            }
            let once_per = match row.once_per.as_str() {
                "" => None,
                "ever" => Some(Period::Ever),
                "year" => Some(Period::Year),
                "month" => Some(Period::Month),
                "day" => Some(Period::Day),
                _ => return Err(Fault::new(field("once_per"), "programme.error.choose")),
            };
            rules.push(RuleDefinition {
                id: row.id.trim().to_owned(),
                name: row.name.trim().to_owned(),
                when: row.when.trim().to_owned(),
                points: row.points.trim().to_owned(),
                tier_multiplier: row.tier_multiplier,
                once_per,
            });
        }
        let mut tiers = Vec::with_capacity(self.tiers.len());
        for (index, row) in self.tiers.iter().enumerate() {
            let field = |part: &str| format!("tiers[{index}].{part}");
            for (part, text) in [("code", &row.code), ("name", &row.name)] {
                if text.trim().is_empty() {
                    return Err(Fault::new(field(part), "programme.error.required"));
                }
            }
            let multiplier_percent = if row.multiplier_percent.trim().is_empty() {
                100
            } else {
                whole(&row.multiplier_percent, &field("multiplier_percent"))?
            };
            tiers.push(TierDefinition {
                code: row.code.trim().to_owned(),
                name: row.name.trim().to_owned(),
                threshold: whole(&row.threshold, &field("threshold"))?,
                multiplier_percent,
                benefits: row
                    .benefits
                    .lines()
                    .map(str::trim)
                    .filter(|line| !line.is_empty())
                    .map(str::to_owned)
                    .collect(),
            });
        }
        let metric = match self.metric.as_str() {
            "spend" => QualificationMetric::Spend,
            "points" => QualificationMetric::Points,
            _ => return Err(Fault::new("qualification.metric", "programme.error.choose")),
        };
        let window = match self.window.as_str() {
            "lifetime" => QualificationWindow::Lifetime,
            "rolling_12_months" => QualificationWindow::Rolling12Months,
            "calendar_year" => QualificationWindow::CalendarYear,
            _ => return Err(Fault::new("qualification.window", "programme.error.choose")),
        };
        Ok(ProgrammeDefinition {
            amount_per_point: whole(&self.amount_per_point, "amount_per_point")?,
            point_value: whole(&self.point_value, "point_value")?,
            return_window_days: days(&self.return_window_days, "return_window_days")?,
            expiry,
            cap_per_event: optional_whole(&self.cap_per_event, "cap_per_event")?,
            cap_per_day: optional_whole(&self.cap_per_day, "cap_per_day")?,
            rules,
            tiers,
            qualification: Qualification {
                metric,
                window,
                grace_days: days(&self.grace_days, "qualification.grace_days")?,
                crossing_purchase_earns_new_rate: self.crossing_purchase_earns_new_rate,
            },
        })
    }
}

/// `rules[3].when` → (`rules`, 3, `when`), for rows under the limit.
fn row_field(name: &str) -> Option<(&str, usize, &str)> {
    let (list, rest) = name.split_once('[')?;
    let (index, part) = rest.split_once("].")?;
    let index: usize = index.parse().ok()?;
    (index < ROWS_MAX).then_some((list, index, part))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    fn cafe() -> ProgrammeDefinition {
        serde_json::from_value(serde_json::json!({
            "amount_per_point": 10000, "point_value": 1000, "return_window_days": 7,
            "expiry": {"kind": "end_of_month", "months": 12}, "cap_per_day": 500,
            "rules": [{"id": "cake", "name": "Cake", "when": "'cake' in event.categories",
                       "points": "10", "tier_multiplier": true, "once_per": "day"}],
            "tiers": [{"code": "member", "name": "Member", "threshold": 0},
                      {"code": "gold", "name": "Gold", "threshold": 5000000,
                       "multiplier_percent": 150, "benefits": ["Free cake", "Wifi"]}],
            "qualification": {"metric": "points", "window": "calendar_year", "grace_days": 30}
        }))
        .unwrap()
    }

    /// What `from_definition` shows, sent back as a browser would send it.
    fn as_sent(form: &DefinitionForm) -> Vec<(String, String)> {
        let mut out = pairs(&[
            ("csrf", "x"),
            ("amount_per_point", &form.amount_per_point),
            ("point_value", &form.point_value),
            ("return_window_days", &form.return_window_days),
            ("expiry.kind", &form.expiry_kind),
            ("expiry.days", &form.expiry_days),
            ("expiry.months", &form.expiry_months),
            ("cap_per_event", &form.cap_per_event),
            ("cap_per_day", &form.cap_per_day),
            ("qualification.metric", &form.metric),
            ("qualification.window", &form.window),
            ("qualification.grace_days", &form.grace_days),
        ]);
        for (index, rule) in form.rules.iter().enumerate() {
            for (part, value) in [
                ("id", &rule.id),
                ("name", &rule.name),
                ("when", &rule.when),
                ("points", &rule.points),
                ("once_per", &rule.once_per),
            ] {
                out.push((format!("rules[{index}].{part}"), value.clone()));
            }
            if rule.tier_multiplier {
                out.push((format!("rules[{index}].tier_multiplier"), "on".into()));
            }
        }
        for (index, tier) in form.tiers.iter().enumerate() {
            for (part, value) in [
                ("code", &tier.code),
                ("name", &tier.name),
                ("threshold", &tier.threshold),
                ("multiplier_percent", &tier.multiplier_percent),
                ("benefits", &tier.benefits),
            ] {
                out.push((format!("tiers[{index}].{part}"), value.clone()));
            }
        }
        out
    }

    #[test]
    fn a_definition_survives_the_form() {
        let form = DefinitionForm::from_definition(&cafe());
        let back = DefinitionForm::from_pairs(&as_sent(&form));
        assert_eq!(back, form);
        assert_eq!(back.to_definition().unwrap(), cafe());
    }

    #[test]
    fn blank_and_removed_rows_are_dropped_and_rows_renumbered() {
        let mut sent = as_sent(&DefinitionForm::from_definition(&cafe()));
        sent.extend(pairs(&[
            ("rules[1].id", ""),
            ("rules[1].name", ""),
            ("rules[1].when", ""),
            ("rules[1].points", ""),
            ("rules[2].id", "review"),
            ("rules[2].name", "Review"),
            ("rules[2].when", "event.type == 'review'"),
            ("rules[2].points", "20"),
            ("rules[0].remove", "on"),
            ("tiers[2].multiplier_percent", "100"),
        ]));
        let form = DefinitionForm::from_pairs(&sent);
        assert_eq!(form.rules.len(), 1);
        assert_eq!(form.rules[0].id, "review");
        assert_eq!(form.tiers.len(), 2);
        let definition = form.to_definition().unwrap();
        assert_eq!(definition.rules[0].id, "review");
    }

    #[test]
    fn numbers_as_people_type_them_and_faults_name_the_field() {
        assert_eq!(parse_whole("320.000đ"), Some(320_000));
        assert_eq!(parse_whole(" 5,000,000 "), Some(5_000_000));
        assert_eq!(parse_whole("-12"), Some(-12));
        assert_eq!(parse_whole("12a"), None);
        assert_eq!(parse_whole(""), None);
        let mut form = DefinitionForm::from_definition(&cafe());
        form.tiers[1].threshold = "lots".into();
        let fault = form.to_definition().unwrap_err();
        assert_eq!(fault.field, "tiers[1].threshold");
        assert_eq!(fault.key, "programme.error.number");
        form.tiers[1].threshold = "5000000".into();
        form.rules[0].when = " ".into();
        assert_eq!(form.to_definition().unwrap_err().field, "rules[0].when");
    }

    #[test]
    fn validation_phrases_become_message_keys() {
        let fault =
            Fault::from_validation("tiers[1].threshold", "must be greater than the tier below");
        assert_eq!(fault.key, "programme.error.above_lower_tier");
        let fault = Fault::from_validation("expiry.days", "must be between 1 and 3650");
        assert_eq!(
            fault.values,
            vec![("min", "1".into()), ("max", "3650".into())]
        );
        let fault = Fault::from_validation("rules[0].when", "Syntax error: unexpected end");
        assert_eq!(fault.key, "programme.error.cel_when");
        assert_eq!(
            Fault::from_validation("x", "something else").key,
            "programme.error.invalid"
        );
    }
}
