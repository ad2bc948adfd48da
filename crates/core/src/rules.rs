//! Earning rules written in CEL (Common Expression Language). A rule is compiled once per
//! programme version and evaluated per event over two variables: `event` and `member`.
//!
//! `event`: `type` ("purchase", "sign_up", "birthday", "review", "survey", "referral" or a custom
//! engagement kind), `amount`, `eligible_amount`, `points_paid`, `store`, `categories` (list),
//! `quantity_by_category` and `amount_by_category` (maps with every category of the event),
//! `item_count`, `local_hour` (0–23) and `local_weekday` (1 = Monday … 7 = Sunday).
//!
//! `member`: `tier`, `tags` (list), `city`, `gender`, `birthday_month` (0 when unknown),
//! `order_count`, `lifetime_spend`.

use crate::programme::RuleDefinition;
use cel::objects::Key;
use cel::{Context, Env, Program, Value};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// The facts about an event that rules may read.
#[derive(Clone, Debug, Default)]
pub struct EventFacts {
    pub kind: String,
    pub amount: i64,
    pub eligible_amount: i64,
    pub points_paid: i64,
    pub store: String,
    /// (category, quantity, amount) per category present in the event.
    pub categories: Vec<(String, i64, i64)>,
    pub item_count: i64,
    pub local_hour: i64,
    pub local_weekday: i64,
}

/// The facts about a member that rules may read.
#[derive(Clone, Debug, Default)]
pub struct MemberFacts {
    pub tier: String,
    pub tags: Vec<String>,
    pub city: String,
    pub gender: String,
    pub birthday_month: i64,
    pub order_count: i64,
    pub lifetime_spend: i64,
}

/// Why a rule could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("condition: {0}")]
    When(String),
    #[error("points: {0}")]
    Points(String),
}

/// A rule ready to evaluate.
pub struct CompiledRule {
    pub definition: RuleDefinition,
    when: Program,
    points: Program,
}

fn environment() -> &'static Arc<Env> {
    static ENVIRONMENT: OnceLock<Arc<Env>> = OnceLock::new();
    ENVIRONMENT.get_or_init(|| Arc::new(Env::stdlib()))
}

/// The variables a rule may name.
const VARIABLES: [&str; 2] = ["event", "member"];

fn compile_expression(source: &str) -> Result<Program, String> {
    let program = environment()
        .compile(source)
        .map_err(|error| format!("does not parse: {error}"))?;
    let references = program.references();
    for name in references.variables() {
        if !VARIABLES.contains(&name) {
            return Err(format!(
                "unknown name `{name}`; rules can read `event` and `member`"
            ));
        }
    }
    Ok(program)
}

impl CompiledRule {
    /// Compiles both expressions of `definition`.
    pub fn compile(definition: &RuleDefinition) -> Result<CompiledRule, RuleError> {
        let when = compile_expression(&definition.when).map_err(RuleError::When)?;
        let points = compile_expression(&definition.points).map_err(RuleError::Points)?;
        Ok(CompiledRule {
            definition: definition.clone(),
            when,
            points,
        })
    }

    /// The rule's points for this event: `Ok(None)` when its condition does not hold, an error
    /// message when evaluation fails or gives something other than the expected type.
    pub fn evaluate(&self, variables: &RuleVariables) -> Result<Option<i64>, String> {
        let context = &variables.context;
        match self.when.execute(context) {
            Ok(Value::Bool(true)) => {}
            Ok(Value::Bool(false)) => return Ok(None),
            Ok(other) => return Err(format!("condition gave {other:?}, not a boolean")),
            Err(error) => return Err(format!("condition failed: {error}")),
        }
        match self.points.execute(context) {
            Ok(Value::Int(points)) => Ok(Some(points)),
            Ok(Value::UInt(points)) => Ok(Some(i64::try_from(points).unwrap_or(i64::MAX))),
            Ok(other) => Err(format!("points gave {other:?}, not an integer")),
            Err(error) => Err(format!("points failed: {error}")),
        }
    }
}

/// `event` and `member` bound once per event in a context that all rules share.
pub struct RuleVariables {
    context: Context<'static, 'static>,
}

fn string(text: &str) -> Value {
    Value::String(Arc::new(text.to_owned()))
}

fn key(text: &str) -> Key {
    Key::String(Arc::new(text.to_owned()))
}

impl RuleVariables {
    pub fn new(event: &EventFacts, member: &MemberFacts) -> RuleVariables {
        let mut quantities = HashMap::with_capacity(event.categories.len());
        let mut amounts = HashMap::with_capacity(event.categories.len());
        let mut categories = Vec::with_capacity(event.categories.len());
        for (category, quantity, amount) in &event.categories {
            quantities.insert(key(category), Value::Int(*quantity));
            amounts.insert(key(category), Value::Int(*amount));
            categories.push(string(category));
        }
        let mut event_map: HashMap<Key, Value> = HashMap::with_capacity(12);
        event_map.insert(key("type"), string(&event.kind));
        event_map.insert(key("amount"), Value::Int(event.amount));
        event_map.insert(key("eligible_amount"), Value::Int(event.eligible_amount));
        event_map.insert(key("points_paid"), Value::Int(event.points_paid));
        event_map.insert(key("store"), string(&event.store));
        event_map.insert(key("categories"), Value::List(Arc::new(categories)));
        event_map.insert(key("quantity_by_category"), Value::from(quantities));
        event_map.insert(key("amount_by_category"), Value::from(amounts));
        event_map.insert(key("item_count"), Value::Int(event.item_count));
        event_map.insert(key("local_hour"), Value::Int(event.local_hour));
        event_map.insert(key("local_weekday"), Value::Int(event.local_weekday));

        let mut member_map: HashMap<Key, Value> = HashMap::with_capacity(8);
        member_map.insert(key("tier"), string(&member.tier));
        member_map.insert(
            key("tags"),
            Value::List(Arc::new(
                member.tags.iter().map(|tag| string(tag)).collect(),
            )),
        );
        member_map.insert(key("city"), string(&member.city));
        member_map.insert(key("gender"), string(&member.gender));
        member_map.insert(key("birthday_month"), Value::Int(member.birthday_month));
        member_map.insert(key("order_count"), Value::Int(member.order_count));
        member_map.insert(key("lifetime_spend"), Value::Int(member.lifetime_spend));
        let mut context = Context::with_env(Arc::clone(environment()));
        context.add_variable_from_value("event", Value::from(event_map));
        context.add_variable_from_value("member", Value::from(member_map));
        RuleVariables { context }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(when: &str, points: &str) -> RuleDefinition {
        RuleDefinition {
            id: "r".into(),
            name: "R".into(),
            when: when.into(),
            points: points.into(),
            tier_multiplier: false,
            once_per: None,
        }
    }

    fn purchase_with_cake() -> RuleVariables {
        RuleVariables::new(
            &EventFacts {
                kind: "purchase".into(),
                amount: 250_000,
                eligible_amount: 250_000,
                categories: vec![("coffee".into(), 2, 90_000), ("cake".into(), 3, 160_000)],
                item_count: 5,
                ..EventFacts::default()
            },
            &MemberFacts {
                tier: "gold".into(),
                tags: vec!["vip".into()],
                ..MemberFacts::default()
            },
        )
    }

    #[test]
    fn evaluates_over_event_and_member() {
        let compiled = CompiledRule::compile(&rule(
            "'cake' in event.categories && member.tier == 'gold'",
            "event.quantity_by_category['cake'] * 10",
        ))
        .unwrap();
        assert_eq!(compiled.evaluate(&purchase_with_cake()), Ok(Some(30)));

        let compiled = CompiledRule::compile(&rule("'tea' in event.categories", "5")).unwrap();
        assert_eq!(compiled.evaluate(&purchase_with_cake()), Ok(None));

        let compiled = CompiledRule::compile(&rule(
            "'vip' in member.tags",
            "event.eligible_amount / 50000",
        ))
        .unwrap();
        assert_eq!(compiled.evaluate(&purchase_with_cake()), Ok(Some(5)));
    }

    #[test]
    fn refuses_unknown_names_and_bad_syntax() {
        assert!(matches!(
            CompiledRule::compile(&rule("evnt.type == 'x'", "1")),
            Err(RuleError::When(message)) if message.contains("evnt")
        ));
        assert!(matches!(
            CompiledRule::compile(&rule("true", "1 +")),
            Err(RuleError::Points(_))
        ));
    }

    #[test]
    fn wrong_types_are_errors_not_points() {
        let compiled = CompiledRule::compile(&rule("1", "1")).unwrap();
        assert!(compiled.evaluate(&purchase_with_cake()).is_err());
        let compiled = CompiledRule::compile(&rule("true", "1.5")).unwrap();
        assert!(compiled.evaluate(&purchase_with_cake()).is_err());
    }
}
