//! The programme: how points are earned, how long they wait and live, the tiers and what paying
//! with points is worth. A tenant's programme is versioned; an event is judged by the version in
//! force at its `occurred_at`. The definition is plain data (it is stored as JSON); `compile`
//! checks it and turns its rules into evaluable expressions once per version.

use crate::rules::{CompiledRule, RuleError, PROGRAMME_RULES_COST_MAX};
use crate::Points;
use serde::{Deserialize, Serialize};

/// A programme as the owner writes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgrammeDefinition {
    /// Eligible amount (minor units) that earns one base point, e.g. 10000 VND. 0 turns the base
    /// rate off.
    pub amount_per_point: i64,
    /// What one point is worth when paying at the till, in minor units (e.g. 1000 VND).
    pub point_value: i64,
    /// Days a purchase's points stay pending, so a return inside the window takes them back
    /// before they can be spent.
    #[serde(default)]
    pub return_window_days: u32,
    /// When earned points expire.
    #[serde(default)]
    pub expiry: Expiry,
    /// Most points one event may earn, all rules together. `None` is no cap.
    #[serde(default)]
    pub cap_per_event: Option<i64>,
    /// Most points a member may earn in one local day. `None` is no cap.
    #[serde(default)]
    pub cap_per_day: Option<i64>,
    /// Extra earning rules, evaluated in order for every event (purchases and engagement).
    #[serde(default)]
    pub rules: Vec<RuleDefinition>,
    /// Tiers, lowest first; the first has threshold 0.
    #[serde(default)]
    pub tiers: Vec<TierDefinition>,
    /// How members qualify for tiers.
    #[serde(default)]
    pub qualification: Qualification,
}

/// When earned points expire.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Expiry {
    /// Never.
    #[default]
    Never,
    /// `days` after they were earned.
    Days { days: u32 },
    /// At the end of the month `months` after the month they were earned (0 = this month's end).
    EndOfMonth { months: u32 },
}

/// One earning rule: when `when` holds, the event earns `points`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDefinition {
    /// Stable id, shown in the member's history ("why did I earn this").
    pub id: String,
    /// What the member reads, e.g. "Bánh ngọt: +10 điểm mỗi chiếc".
    pub name: String,
    /// A CEL condition over `event` and `member`, e.g. `event.type == "review"`.
    pub when: String,
    /// A CEL expression giving an integer number of points, e.g. `event.quantity_by_category["cake"] * 10`.
    pub points: String,
    /// Whether the member's tier multiplier applies to this rule's points.
    #[serde(default)]
    pub tier_multiplier: bool,
    /// At most once per member per period (sign-up once ever, birthday once a year).
    #[serde(default)]
    pub once_per: Option<Period>,
}

/// A period for "at most once per".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    Ever,
    Year,
    Month,
    Day,
}

/// A tier and what it gives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierDefinition {
    /// Stable code, e.g. `gold`.
    pub code: String,
    /// What members read, e.g. "Vàng".
    pub name: String,
    /// Qualifying value (spend in minor units or points, per `qualification.metric`) needed,
    /// inclusive.
    pub threshold: i64,
    /// Multiplier on the base rate, in percent (150 = ×1.5).
    #[serde(default = "hundred")]
    pub multiplier_percent: i64,
    /// Perks described for members.
    #[serde(default)]
    pub benefits: Vec<String>,
}

fn hundred() -> i64 {
    100
}

/// How members qualify for tiers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Qualification {
    pub metric: QualificationMetric,
    pub window: QualificationWindow,
    /// Days a member keeps a tier after falling below it before a review may lower it.
    pub grace_days: u32,
    /// Whether the purchase that crosses a threshold already earns at the new tier's rate.
    /// Default false: it counts toward the new tier, and earns at the tier the member had.
    #[serde(default)]
    pub crossing_purchase_earns_new_rate: bool,
}

impl Default for Qualification {
    fn default() -> Self {
        Qualification {
            metric: QualificationMetric::Spend,
            window: QualificationWindow::Rolling12Months,
            grace_days: 30,
            crossing_purchase_earns_new_rate: false,
        }
    }
}

/// What counts toward a tier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QualificationMetric {
    /// Eligible spend, in minor units.
    Spend,
    /// Points earned (before caps are applied to other members' views; after refunds).
    Points,
}

/// Over which time qualifying value is summed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QualificationWindow {
    Lifetime,
    /// The current calendar month and the 11 before it, in the tenant's time zone.
    #[serde(rename = "rolling_12_months")]
    Rolling12Months,
    CalendarYear,
}

/// A mistake in a programme definition, naming the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ProgrammeError {
    pub field: String,
    pub message: String,
}

impl ProgrammeError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ProgrammeError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Most rules in one programme.
pub const RULES_MAX: usize = 64;
/// Most tiers in one programme.
pub const TIERS_MAX: usize = 16;
/// Longest CEL expression accepted, in bytes.
pub const EXPRESSION_LENGTH_MAX: usize = 2048;

/// A checked programme version, rules compiled, ready to judge events.
pub struct Programme {
    pub version: i64,
    pub definition: ProgrammeDefinition,
    pub rules: Vec<CompiledRule>,
}

impl std::fmt::Debug for Programme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Programme")
            .field("version", &self.version)
            .field("definition", &self.definition)
            .finish()
    }
}

impl Programme {
    /// Checks `definition` and compiles its rules.
    pub fn compile(
        version: i64,
        definition: ProgrammeDefinition,
    ) -> Result<Programme, ProgrammeError> {
        validate(&definition)?;
        let mut rules = Vec::with_capacity(definition.rules.len());
        let mut cost_total: u64 = 0;
        for (index, rule) in definition.rules.iter().enumerate() {
            let compiled = CompiledRule::compile(rule).map_err(|error| match error {
                RuleError::When(message) => {
                    ProgrammeError::new(format!("rules[{index}].when"), message)
                }
                RuleError::Points(message) => {
                    ProgrammeError::new(format!("rules[{index}].points"), message)
                }
            })?;
            cost_total = cost_total.saturating_add(compiled.cost);
            if cost_total > PROGRAMME_RULES_COST_MAX {
                return Err(ProgrammeError::new(
                    format!("rules[{index}]"),
                    format!(
                        "the rules together may take too long: at most \
                         {PROGRAMME_RULES_COST_MAX} steps per event, this rule brings them \
                         to {cost_total}"
                    ),
                ));
            }
            rules.push(compiled);
        }
        Ok(Programme {
            version,
            definition,
            rules,
        })
    }

    /// Compiles a version already stored. It was checked when published, but the limits on
    /// rules may have tightened since: a rule that breaks them now is loaded disabled (it gives
    /// no points) rather than leaving the tenant without a programme, and is returned with the
    /// reason so the caller can report it.
    pub fn load(
        version: i64,
        definition: ProgrammeDefinition,
    ) -> Result<(Programme, Vec<ProgrammeError>), ProgrammeError> {
        let mut strict = definition.clone();
        strict.rules.clear();
        validate(&strict)?;
        let mut disabled = Vec::new();
        let mut rules = Vec::with_capacity(definition.rules.len());
        let mut cost_total: u64 = 0;
        for (index, rule) in definition.rules.iter().enumerate() {
            let compiled = match CompiledRule::compile(rule) {
                Ok(compiled)
                    if cost_total.saturating_add(compiled.cost) <= PROGRAMME_RULES_COST_MAX =>
                {
                    compiled
                }
                Ok(_) => {
                    disabled.push(ProgrammeError::new(
                        format!("rules[{index}]"),
                        "disabled: the rules together may take too long",
                    ));
                    CompiledRule::disabled(rule)
                }
                Err(error) => {
                    disabled.push(ProgrammeError::new(
                        format!("rules[{index}]"),
                        format!("disabled: {error}"),
                    ));
                    CompiledRule::disabled(rule)
                }
            };
            cost_total = cost_total.saturating_add(compiled.cost);
            rules.push(compiled);
        }
        Ok((
            Programme {
                version,
                definition,
                rules,
            },
            disabled,
        ))
    }

    /// The tier with `code`, and its position (0 = lowest).
    pub fn tier(&self, code: &str) -> Option<(usize, &TierDefinition)> {
        self.definition
            .tiers
            .iter()
            .enumerate()
            .find(|(_, tier)| tier.code == code)
    }

    /// The lowest tier's code, or "" when the programme has no tiers.
    pub fn base_tier_code(&self) -> &str {
        self.definition
            .tiers
            .first()
            .map(|tier| tier.code.as_str())
            .unwrap_or("")
    }

    /// The point value of `points` in money, at the till's conversion rate.
    pub fn value_of(&self, points: Points) -> crate::Money {
        crate::Money(points.0.saturating_mul(self.definition.point_value))
    }
}

fn validate(definition: &ProgrammeDefinition) -> Result<(), ProgrammeError> {
    if definition.amount_per_point < 0 {
        return Err(ProgrammeError::new("amount_per_point", "must be 0 or more"));
    }
    if definition.point_value < 1 {
        return Err(ProgrammeError::new("point_value", "must be at least 1"));
    }
    if definition.return_window_days > 365 {
        return Err(ProgrammeError::new(
            "return_window_days",
            "must be at most 365",
        ));
    }
    match definition.expiry {
        Expiry::Days { days } if days == 0 || days > 3650 => {
            return Err(ProgrammeError::new(
                "expiry.days",
                "must be between 1 and 3650",
            ));
        }
        Expiry::EndOfMonth { months } if months > 120 => {
            return Err(ProgrammeError::new("expiry.months", "must be at most 120"));
        }
        _ => {}
    }
    for (field, cap) in [
        ("cap_per_event", definition.cap_per_event),
        ("cap_per_day", definition.cap_per_day),
    ] {
        if matches!(cap, Some(value) if value < 0) {
            return Err(ProgrammeError::new(field, "must be 0 or more"));
        }
    }
    if definition.rules.len() > RULES_MAX {
        return Err(ProgrammeError::new(
            "rules",
            format!("at most {RULES_MAX} rules"),
        ));
    }
    let mut rule_ids = std::collections::HashSet::new();
    for (index, rule) in definition.rules.iter().enumerate() {
        if rule.id.trim().is_empty() || rule.id.len() > 64 {
            return Err(ProgrammeError::new(
                format!("rules[{index}].id"),
                "must be 1 to 64 characters",
            ));
        }
        if !rule_ids.insert(rule.id.as_str()) || rule.id == BASE_RULE_ID {
            return Err(ProgrammeError::new(
                format!("rules[{index}].id"),
                "must be unique",
            ));
        }
        for (field, text) in [("when", &rule.when), ("points", &rule.points)] {
            if text.len() > EXPRESSION_LENGTH_MAX {
                return Err(ProgrammeError::new(
                    format!("rules[{index}].{field}"),
                    format!("at most {EXPRESSION_LENGTH_MAX} bytes"),
                ));
            }
        }
    }
    if definition.tiers.len() > TIERS_MAX {
        return Err(ProgrammeError::new(
            "tiers",
            format!("at most {TIERS_MAX} tiers"),
        ));
    }
    let mut previous_threshold = None;
    let mut codes = std::collections::HashSet::new();
    for (index, tier) in definition.tiers.iter().enumerate() {
        if tier.code.trim().is_empty() || tier.code.len() > 32 {
            return Err(ProgrammeError::new(
                format!("tiers[{index}].code"),
                "must be 1 to 32 characters",
            ));
        }
        if !codes.insert(tier.code.as_str()) {
            return Err(ProgrammeError::new(
                format!("tiers[{index}].code"),
                "must be unique",
            ));
        }
        if index == 0 && tier.threshold != 0 {
            return Err(ProgrammeError::new(
                "tiers[0].threshold",
                "the first tier starts at 0",
            ));
        }
        if let Some(previous) = previous_threshold {
            if tier.threshold <= previous {
                return Err(ProgrammeError::new(
                    format!("tiers[{index}].threshold"),
                    "must be greater than the tier below",
                ));
            }
        }
        if !(0..=10_000).contains(&tier.multiplier_percent) {
            return Err(ProgrammeError::new(
                format!("tiers[{index}].multiplier_percent"),
                "must be between 0 and 10000",
            ));
        }
        previous_threshold = Some(tier.threshold);
    }
    if definition.qualification.grace_days > 3650 {
        return Err(ProgrammeError::new(
            "qualification.grace_days",
            "must be at most 3650",
        ));
    }
    Ok(())
}

/// The id under which base-rate points appear in a member's history.
pub const BASE_RULE_ID: &str = "base";

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The café programme used across the core's tests.
    pub fn cafe() -> ProgrammeDefinition {
        serde_json::from_value(serde_json::json!({
            "amount_per_point": 10000,
            "point_value": 1000,
            "return_window_days": 7,
            "expiry": {"kind": "days", "days": 365},
            "cap_per_event": 1000,
            "cap_per_day": 2000,
            "rules": [
                {"id": "cake", "name": "Cake bonus", "when": "'cake' in event.categories",
                 "points": "event.quantity_by_category['cake'] * 10"},
                {"id": "review", "name": "Review", "when": "event.type == 'review'", "points": "20"},
                {"id": "sign_up", "name": "Welcome", "when": "event.type == 'sign_up'", "points": "50",
                 "once_per": "ever"}
            ],
            "tiers": [
                {"code": "member", "name": "Member", "threshold": 0},
                {"code": "silver", "name": "Silver", "threshold": 2000000, "multiplier_percent": 120},
                {"code": "gold", "name": "Gold", "threshold": 5000000, "multiplier_percent": 150}
            ],
            "qualification": {"metric": "spend", "window": "rolling_12_months", "grace_days": 30}
        }))
        .unwrap()
    }

    #[test]
    fn compiles_the_cafe_programme() {
        let programme = Programme::compile(1, cafe()).unwrap();
        assert_eq!(programme.rules.len(), 3);
        assert_eq!(programme.base_tier_code(), "member");
    }

    #[test]
    fn names_the_field_at_fault() {
        let mut definition = cafe();
        definition.rules[1].when = "event.type ==".into();
        let error = Programme::compile(1, definition).unwrap_err();
        assert_eq!(error.field, "rules[1].when");

        let mut definition = cafe();
        definition.tiers[2].threshold = 1;
        let error = Programme::compile(1, definition).unwrap_err();
        assert_eq!(error.field, "tiers[2].threshold");

        let mut definition = cafe();
        definition.point_value = 0;
        assert_eq!(
            Programme::compile(1, definition).unwrap_err().field,
            "point_value"
        );
    }

    #[test]
    fn unknown_fields_are_refused() {
        let mut value = serde_json::to_value(cafe()).unwrap();
        value["bogus"] = serde_json::json!(1);
        assert!(serde_json::from_value::<ProgrammeDefinition>(value).is_err());
    }

    /// A rule whose cost bound is close to `RULE_COST_MAX`: an `exists` over the categories
    /// with three comparisons.
    fn costly_rule(index: usize) -> RuleDefinition {
        RuleDefinition {
            id: format!("costly{index}"),
            name: "Costly".into(),
            when: "event.categories.exists(c, c == 'a' || c == 'b' || c == 'c')".into(),
            points: "1".into(),
            tier_multiplier: false,
            once_per: None,
        }
    }

    #[test]
    fn the_rules_together_have_a_cost_limit() {
        let one = CompiledRule::compile(&costly_rule(0)).unwrap().cost;
        let fitting = (crate::rules::PROGRAMME_RULES_COST_MAX / one) as usize;
        let mut definition = cafe();
        let cafe_rules = Programme::compile(1, cafe()).unwrap();
        let cafe_cost: u64 = cafe_rules.rules.iter().map(|rule| rule.cost).sum();
        let fitting = if cafe_cost + fitting as u64 * one > PROGRAMME_RULES_COST_MAX {
            fitting - 1
        } else {
            fitting
        };
        definition.rules.extend((0..fitting).map(costly_rule));
        assert!(Programme::compile(1, definition.clone()).is_ok());
        definition.rules.push(costly_rule(fitting));
        let error = Programme::compile(1, definition.clone()).unwrap_err();
        assert_eq!(
            error.field,
            format!("rules[{}]", definition.rules.len() - 1)
        );
        assert!(error.message.contains("too long"));
    }

    #[test]
    fn a_stored_version_loads_with_its_costly_rules_disabled() {
        let mut definition = cafe();
        definition.rules[0].when =
            "event.categories.exists(a, event.categories.exists(b, a == b))".into();
        assert_eq!(
            Programme::compile(1, definition.clone()).unwrap_err().field,
            "rules[0].when"
        );
        let (programme, disabled) = Programme::load(1, definition).unwrap();
        assert_eq!(programme.rules.len(), 3);
        assert_eq!(disabled.len(), 1);
        assert_eq!(disabled[0].field, "rules[0]");
        assert!(programme.rules[0].cost <= 2);
    }

    #[test]
    fn limits_on_rules() {
        let mut definition = cafe();
        let rule = definition.rules[0].clone();
        definition.rules = (0..=RULES_MAX)
            .map(|index| RuleDefinition {
                id: format!("r{index}"),
                ..rule.clone()
            })
            .collect();
        assert_eq!(
            Programme::compile(1, definition.clone()).unwrap_err().field,
            "rules"
        );
        definition.rules.pop();
        assert!(Programme::compile(1, definition).is_ok());
    }
}
