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
use cel::common::ast::{operators, EntryExpr, Expr};
use cel::objects::Key;
use cel::{Context, Env, IdedExpr, Program, Value};
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

/// Most nodes in one expression once its macros (`exists`, `all`, `map`, …) are expanded.
/// `event.categories.exists(c, c == "cake")` is 13 nodes.
pub const RULE_NODES_MAX: usize = 200;
/// Deepest nesting of one expression's nodes, which bounds the evaluator's recursion.
pub const RULE_DEPTH_MAX: usize = 32;
/// Most comprehensions (`exists`, `all`, `exists_one`, `map`, `filter`) nested in one another.
pub const COMPREHENSION_NESTING_MAX: usize = 2;
/// Most elements of one list or map literal.
pub const LITERAL_ENTRIES_MAX: usize = 64;
/// Longest list or map a rule is given to read (`event.categories` and the category maps hold at
/// most one entry per purchase line, `member.tags` at most 50 tags). The server's `ITEMS_MAX`
/// must not exceed it, or the cost bound below would not hold.
pub const INPUT_LIST_LENGTH_MAX: u64 = 500;
/// Most work one expression may do, in steps, as bounded by [`cost_bound`]: a step is one node
/// evaluated, and a node that may walk a list or a string (`in`, `+`, `==`, `contains`, …)
/// counts one step per element it may walk. The bound holds for every event, since it assumes
/// every list a rule reads is as long as [`INPUT_LIST_LENGTH_MAX`]; one `exists` over
/// `event.categories` with a handful of comparisons fits, two nested ones over it do not.
pub const RULE_COST_MAX: u64 = 1_000_000;
/// Most work all the rules of one programme may do together for one event, in the same steps.
pub const PROGRAMME_RULES_COST_MAX: u64 = 4_000_000;
/// Most points one rule may give one event (before the tier multiplier). A larger result is
/// capped at this, and the line says so. With the tier multiplier (at most ×100) and
/// `RULES_MAX` rules this keeps one event's rule points under 10^13, so no sum of them can
/// overflow.
pub const RULE_POINTS_MAX: i64 = 1_000_000_000;

/// The shape of an expression's tree, counted in one walk.
#[derive(Default)]
struct Shape {
    nodes: usize,
    additions: u64,
    /// The variables of the comprehensions around the node being walked.
    bound: Vec<String>,
}

/// Checks the limits on an expression's tree: node count, depth, comprehension nesting, literal
/// sizes.
fn check_shape(
    expression: &IdedExpr,
    depth: usize,
    nesting: usize,
    shape: &mut Shape,
) -> Result<(), String> {
    shape.nodes += 1;
    if shape.nodes > RULE_NODES_MAX {
        return Err(format!(
            "too complex: at most {RULE_NODES_MAX} nodes (macros expanded)"
        ));
    }
    if depth > RULE_DEPTH_MAX {
        return Err(format!(
            "too deeply nested: at most {RULE_DEPTH_MAX} levels"
        ));
    }
    let mut children: Vec<(&IdedExpr, usize)> = Vec::new();
    match &expression.expr {
        Expr::Ident(name) => {
            if !VARIABLES.contains(&name.as_str()) && !shape.bound.contains(name) {
                return Err(format!(
                    "unknown name `{name}`; rules can read `event` and `member`"
                ));
            }
        }
        Expr::Unspecified | Expr::Literal(_) => {}
        Expr::Select(select) => children.push((&select.operand, nesting)),
        Expr::Call(call) => {
            if call.func_name == operators::ADD && !appends_to_accumulator(call) {
                shape.additions += 1;
            }
            children.extend(call.target.iter().map(|target| (&**target, nesting)));
            children.extend(call.args.iter().map(|argument| (argument, nesting)));
        }
        Expr::List(list) => {
            if list.elements.len() > LITERAL_ENTRIES_MAX {
                return Err(format!(
                    "a list literal has at most {LITERAL_ENTRIES_MAX} elements"
                ));
            }
            children.extend(list.elements.iter().map(|element| (element, nesting)));
        }
        Expr::Map(map) => {
            if map.entries.len() > LITERAL_ENTRIES_MAX {
                return Err(format!(
                    "a map literal has at most {LITERAL_ENTRIES_MAX} entries"
                ));
            }
            children.extend(entry_children(&map.entries).map(|child| (child, nesting)));
        }
        Expr::Struct(strct) => {
            children.extend(entry_children(&strct.entries).map(|child| (child, nesting)));
        }
        Expr::Comprehension(comprehension) => {
            let inner = nesting + 1;
            if inner > COMPREHENSION_NESTING_MAX {
                return Err(format!(
                    "comprehensions (exists, all, map, filter) nest at most \
                     {COMPREHENSION_NESTING_MAX} deep"
                ));
            }
            // The range and the initial value are evaluated outside the comprehension's scope.
            check_shape(&comprehension.iter_range, depth + 1, inner, shape)?;
            check_shape(&comprehension.accu_init, depth + 1, inner, shape)?;
            let scope = shape.bound.len();
            shape.bound.push(comprehension.accu_var.clone());
            shape.bound.push(comprehension.iter_var.clone());
            shape.bound.extend(comprehension.iter_var2.clone());
            let inside = [
                &comprehension.loop_cond,
                &comprehension.loop_step,
                &comprehension.result,
            ]
            .into_iter()
            .try_for_each(|child| check_shape(child, depth + 1, inner, shape));
            shape.bound.truncate(scope);
            inside?;
        }
    }
    for (child, child_nesting) in children {
        check_shape(child, depth + 1, child_nesting, shape)?;
    }
    Ok(())
}

fn entry_children(entries: &[cel::common::ast::IdedEntryExpr]) -> impl Iterator<Item = &IdedExpr> {
    entries.iter().flat_map(|entry| match &entry.expr {
        EntryExpr::StructField(field) => vec![&field.value],
        EntryExpr::MapEntry(map_entry) => vec![&map_entry.key, &map_entry.value],
    })
}

/// The name `map` and `filter` give their accumulator; CEL source cannot spell it.
const ACCUMULATOR: &str = "@result";

/// Whether `call` is the `@result + [x]` step of `map` or `filter`, which the evaluator
/// appends in place: one step, and the list it grows is no longer than the range.
fn appends_to_accumulator(call: &cel::common::ast::CallExpr) -> bool {
    call.func_name == operators::ADD
        && matches!(
            call.args.as_slice(),
            [IdedExpr { expr: Expr::Ident(name), .. }, IdedExpr { expr: Expr::List(_), .. }]
                if name == ACCUMULATOR
        )
}

/// Functions whose work grows with the length of a list, map or string they are given.
const WALKING_FUNCTIONS: [&str; 16] = [
    operators::ADD,
    operators::EQUALS,
    operators::NOT_EQUALS,
    operators::LESS,
    operators::LESS_EQUALS,
    operators::GREATER,
    operators::GREATER_EQUALS,
    operators::IN,
    operators::INDEX,
    "contains",
    "startsWith",
    "endsWith",
    "string",
    "int",
    "uint",
    "double",
];

/// An upper bound on the steps evaluating `expression` takes, where `length_max` bounds the
/// length of any list, map or string it can meet. A comprehension costs its range, and its
/// condition and step once per element of the range.
fn cost_of(expression: &IdedExpr, length_max: u64) -> u64 {
    let children = |items: &mut dyn Iterator<Item = &IdedExpr>| {
        items.fold(0u64, |total, child| {
            total.saturating_add(cost_of(child, length_max))
        })
    };
    match &expression.expr {
        Expr::Unspecified | Expr::Ident(_) | Expr::Literal(_) => 1,
        Expr::Select(select) => 1u64.saturating_add(cost_of(&select.operand, length_max)),
        Expr::Call(call) => {
            let own = if WALKING_FUNCTIONS.contains(&call.func_name.as_str())
                && !appends_to_accumulator(call)
            {
                length_max
            } else {
                1
            };
            own.saturating_add(children(
                &mut call.target.iter().map(|target| &**target).chain(&call.args),
            ))
        }
        Expr::List(list) => 1u64.saturating_add(children(&mut list.elements.iter())),
        Expr::Map(map) => 1u64.saturating_add(children(&mut entry_children(&map.entries))),
        Expr::Struct(strct) => 1u64.saturating_add(children(&mut entry_children(&strct.entries))),
        Expr::Comprehension(comprehension) => {
            let range_length = match &comprehension.iter_range.expr {
                Expr::List(list) => list.elements.len() as u64,
                Expr::Map(map) => map.entries.len() as u64,
                _ => length_max,
            };
            let per_element = cost_of(&comprehension.loop_cond, length_max)
                .saturating_add(cost_of(&comprehension.loop_step, length_max));
            cost_of(&comprehension.iter_range, length_max)
                .saturating_add(cost_of(&comprehension.accu_init, length_max))
                .saturating_add(range_length.saturating_mul(per_element))
                .saturating_add(cost_of(&comprehension.result, length_max))
        }
    }
}

/// An upper bound on the steps evaluating `program` takes for any event, once its shape is
/// within the limits. Lists only grow by `+`, so none is longer than the longest input list
/// ([`INPUT_LIST_LENGTH_MAX`], longer than any literal) times one more than the number of `+`
/// in the expression. Strings grow the same way from inputs of at most 200 bytes and literals
/// of at most `EXPRESSION_LENGTH_MAX` bytes; comparing them goes a machine word at a time, so
/// walking one costs fewer steps than the list bound allows.
pub fn cost_bound(program: &Program) -> Result<u64, String> {
    let mut shape = Shape::default();
    check_shape(program.expression(), 0, 0, &mut shape)?;
    let length_max = INPUT_LIST_LENGTH_MAX.saturating_mul(shape.additions + 1);
    Ok(cost_of(program.expression(), length_max))
}

/// A rule ready to evaluate.
pub struct CompiledRule {
    pub definition: RuleDefinition,
    when: Program,
    points: Program,
    /// The most steps evaluating both expressions may take (see [`cost_bound`]).
    pub cost: u64,
}

fn environment() -> &'static Arc<Env> {
    static ENVIRONMENT: OnceLock<Arc<Env>> = OnceLock::new();
    ENVIRONMENT.get_or_init(|| Arc::new(Env::stdlib()))
}

/// The variables a rule may name.
const VARIABLES: [&str; 2] = ["event", "member"];

/// Compiles `source` and checks its limits, giving the program and its cost bound.
fn compile_expression(source: &str) -> Result<(Program, u64), String> {
    let program = environment()
        .compile(source)
        .map_err(|error| format!("does not parse: {error}"))?;
    let cost = cost_bound(&program)?;
    if cost > RULE_COST_MAX {
        return Err(format!(
            "may take too long: up to {cost} steps, at most {RULE_COST_MAX} allowed \
             (avoid nesting exists/all/map/filter over event or member lists)"
        ));
    }
    Ok((program, cost))
}

impl CompiledRule {
    /// Compiles both expressions of `definition`.
    pub fn compile(definition: &RuleDefinition) -> Result<CompiledRule, RuleError> {
        let (when, when_cost) = compile_expression(&definition.when).map_err(RuleError::When)?;
        let (points, points_cost) =
            compile_expression(&definition.points).map_err(RuleError::Points)?;
        Ok(CompiledRule {
            definition: definition.clone(),
            when,
            points,
            cost: when_cost.saturating_add(points_cost),
        })
    }

    /// A rule that never gives points: how a stored version's rule that breaks today's limits
    /// is loaded, so the version still judges its events without running it.
    pub fn disabled(definition: &RuleDefinition) -> CompiledRule {
        let (when, _) = compile_expression("false").expect("`false` compiles");
        let (points, _) = compile_expression("0").expect("`0` compiles");
        CompiledRule {
            definition: definition.clone(),
            when,
            points,
            cost: 2,
        }
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

    /// `exists` nested `depth` deep over the purchase's categories, as in the issue's attack.
    fn nested_exists(depth: usize) -> String {
        let mut source = "c0 == 'x'".to_owned();
        for level in (0..depth).rev() {
            source = format!("event.categories.exists(c{level}, {source})");
        }
        source
    }

    #[test]
    fn refuses_comprehensions_nested_past_the_limit() {
        let at_limit = nested_exists(COMPREHENSION_NESTING_MAX)
            .replace("event.categories.exists(c1", "['a', 'b'].exists(c1");
        assert!(
            CompiledRule::compile(&rule(&at_limit, "1")).is_ok(),
            "{at_limit}"
        );
        for depth in [COMPREHENSION_NESTING_MAX + 1, 8] {
            let source = nested_exists(depth);
            assert!(matches!(
                CompiledRule::compile(&rule(&source, "1")),
                Err(RuleError::When(message)) if message.contains("nest at most")
            ));
        }
        let in_points = format!("{} ? 1 : 0", nested_exists(3));
        assert!(matches!(
            CompiledRule::compile(&rule("true", &in_points)),
            Err(RuleError::Points(_))
        ));
    }

    #[test]
    fn refuses_nested_comprehensions_over_event_lists_by_cost() {
        let source = nested_exists(2);
        assert!(matches!(
            CompiledRule::compile(&rule(&source, "1")),
            Err(RuleError::When(message)) if message.contains("too long")
        ));
        let single = "event.categories.exists(c, c == 'cake' || c == 'tea')";
        let compiled = CompiledRule::compile(&rule(single, "1")).unwrap();
        assert!(compiled.cost <= RULE_COST_MAX);
    }

    #[test]
    fn literal_sizes_at_the_limit_and_one_past() {
        let list = |length: usize| {
            let elements: Vec<String> = (0..length).map(|index| index.to_string()).collect();
            format!("event.item_count in [{}]", elements.join(","))
        };
        assert!(CompiledRule::compile(&rule(&list(LITERAL_ENTRIES_MAX), "1")).is_ok());
        assert!(matches!(
            CompiledRule::compile(&rule(&list(LITERAL_ENTRIES_MAX + 1), "1")),
            Err(RuleError::When(message)) if message.contains("list literal")
        ));
        let map = |length: usize| {
            let entries: Vec<String> = (0..length).map(|index| format!("{index}: 1")).collect();
            format!("{{{}}}[event.item_count] == 1", entries.join(","))
        };
        assert!(CompiledRule::compile(&rule(&map(LITERAL_ENTRIES_MAX), "1")).is_ok());
        assert!(matches!(
            CompiledRule::compile(&rule(&map(LITERAL_ENTRIES_MAX + 1), "1")),
            Err(RuleError::When(message)) if message.contains("map literal")
        ));
    }

    #[test]
    fn node_count_and_depth_at_the_limit_and_one_past() {
        // `1 + 1 + … + 1` with n ones is 2n - 1 nodes, each `+` one level deeper: so use
        // `&&` of comparisons in a balanced way for the count, and parentheses for the depth.
        let count = |terms: usize| vec!["true"; terms].join(" && ");
        // n `true` joined by `&&` are 2n - 1 nodes.
        let at_limit = count(RULE_NODES_MAX.div_ceil(2));
        let shape = |source: &str| {
            let program = environment().compile(source).unwrap();
            let mut shape = Shape::default();
            check_shape(program.expression(), 0, 0, &mut shape).map(|_| shape.nodes)
        };
        assert!(shape(&at_limit).is_ok_and(|nodes| nodes <= RULE_NODES_MAX));
        let past = count(RULE_NODES_MAX.div_ceil(2) + 1);
        assert!(shape(&past).is_err_and(|message| message.contains("nodes")));

        let nested = |levels: usize| {
            let mut source = "1".to_owned();
            for _ in 0..levels {
                source = format!("-({source})");
            }
            format!("{source} == 1")
        };
        // The `==` is the root (depth 0), so `levels` negations reach depth `levels + 1`.
        assert!(shape(&nested(RULE_DEPTH_MAX - 1)).is_ok());
        assert!(shape(&nested(RULE_DEPTH_MAX)).is_err_and(|message| message.contains("deep")));
    }

    #[test]
    fn deep_sources_within_the_length_limit_never_overflow_the_stack() {
        let length = crate::programme::EXPRESSION_LENGTH_MAX;
        for source in [
            format!("{}true", "!".repeat(length - 4)),
            format!(
                "{}1{}",
                "(".repeat(length / 2 - 1),
                ")".repeat(length / 2 - 1)
            ),
            format!("{}1", "-".repeat(length - 1)),
            format!("{}1]", "[".repeat(length / 2 - 1)),
        ] {
            // The parser folds repeated `!` and `-`; what it keeps is refused or within limits.
            if let Ok(compiled) = CompiledRule::compile(&rule(&source, "1")) {
                assert!(compiled.cost <= RULE_COST_MAX);
            }
        }
    }

    #[test]
    fn disabled_rules_give_nothing() {
        let disabled = CompiledRule::disabled(&rule(&nested_exists(8), "1"));
        assert_eq!(disabled.evaluate(&purchase_with_cake()), Ok(None));
    }

    #[test]
    fn wrong_types_are_errors_not_points() {
        let compiled = CompiledRule::compile(&rule("1", "1")).unwrap();
        assert!(compiled.evaluate(&purchase_with_cake()).is_err());
        let compiled = CompiledRule::compile(&rule("true", "1.5")).unwrap();
        assert!(compiled.evaluate(&purchase_with_cake()).is_err());
    }
}
