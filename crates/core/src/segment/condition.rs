//! A segment's CEL condition compiled to a plan over the member fields: each comparison of a
//! field with a literal becomes one pass over that field's column.

use super::fields::{alias, BoolField, IntField, Scalar, TextField};
use super::table::{Table, NULL};
use super::Bits;
use cel::common::ast::{operators, Expr, LiteralValue};
use cel::IdedExpr;
use std::cmp::Ordering;

/// Longest condition, in bytes.
pub const CONDITION_LENGTH_MAX: usize = 2048;
/// Most comparisons and connectives in one condition.
pub const CONDITION_PARTS_MAX: usize = 100;
/// Deepest nesting of `&&`, `||` and `!`.
pub const CONDITION_DEPTH_MAX: usize = 16;
/// Most values in one `in [...]` list.
pub const IN_LIST_MAX: usize = 64;

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    fn of(function: &str) -> Option<Cmp> {
        Some(match function {
            operators::EQUALS => Cmp::Eq,
            operators::NOT_EQUALS => Cmp::Ne,
            operators::LESS => Cmp::Lt,
            operators::LESS_EQUALS => Cmp::Le,
            operators::GREATER => Cmp::Gt,
            operators::GREATER_EQUALS => Cmp::Ge,
            _ => return None,
        })
    }

    /// The operator with its sides swapped: `3 < x` is `x > 3`.
    fn flipped(self) -> Cmp {
        match self {
            Cmp::Lt => Cmp::Gt,
            Cmp::Le => Cmp::Ge,
            Cmp::Gt => Cmp::Lt,
            Cmp::Ge => Cmp::Le,
            same => same,
        }
    }

    fn holds(self, ordering: Ordering) -> bool {
        match self {
            Cmp::Eq => ordering.is_eq(),
            Cmp::Ne => ordering.is_ne(),
            Cmp::Lt => ordering.is_lt(),
            Cmp::Le => ordering.is_le(),
            Cmp::Gt => ordering.is_gt(),
            Cmp::Ge => ordering.is_ge(),
        }
    }
}

/// What a text field is tested for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TextTest {
    Cmp(Cmp, String),
    In(Vec<String>),
    StartsWith(String),
    EndsWith(String),
    Contains(String),
}

impl TextTest {
    pub fn holds(&self, value: &str) -> bool {
        match self {
            TextTest::Cmp(cmp, literal) => cmp.holds(value.cmp(literal.as_str())),
            TextTest::In(values) => values.iter().any(|literal| literal == value),
            TextTest::StartsWith(prefix) => value.starts_with(prefix.as_str()),
            TextTest::EndsWith(suffix) => value.ends_with(suffix.as_str()),
            TextTest::Contains(part) => value.contains(part.as_str()),
        }
    }
}

/// What a custom attribute is tested for. Values of different kinds are never equal, and
/// compare as false.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttributeTest {
    Present,
    Cmp(Cmp, Scalar),
    In(Vec<Scalar>),
}

impl AttributeTest {
    pub fn holds(&self, value: Option<&Scalar>) -> bool {
        let compare = |cmp: Cmp, literal: &Scalar, value: &Scalar| {
            let ordering = match (value, literal) {
                (Scalar::Text(a), Scalar::Text(b)) => a.cmp(b),
                (Scalar::Int(a), Scalar::Int(b)) => a.cmp(b),
                (Scalar::Bool(a), Scalar::Bool(b)) if matches!(cmp, Cmp::Eq | Cmp::Ne) => a.cmp(b),
                _ => return false,
            };
            cmp.holds(ordering)
        };
        match (self, value) {
            (_, None) => false,
            (AttributeTest::Present, Some(_)) => true,
            (AttributeTest::Cmp(cmp, literal), Some(value)) => compare(*cmp, literal, value),
            (AttributeTest::In(values), Some(value)) => values
                .iter()
                .any(|literal| compare(Cmp::Eq, literal, value)),
        }
    }
}

/// A compiled segment condition. A comparison with a missing value (a member who never
/// bought has no `days_since_last_purchase`) is false, and `!` turns it true.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Condition {
    Always(bool),
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Not(Box<Condition>),
    Int(IntField, Cmp, i64),
    IntIn(IntField, Vec<i64>),
    Text(TextField, TextTest),
    Tag(String),
    Bool(BoolField),
    Attribute(String, AttributeTest),
}

/// Why a condition does not compile, in words for the marketer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConditionError(pub String);

fn error<T>(message: impl Into<String>) -> Result<T, ConditionError> {
    Err(ConditionError(message.into()))
}

/// A side of a comparison.
enum Operand {
    Int(IntField),
    Text(TextField),
    Bool(BoolField),
    Tags,
    Attribute(String),
    Literal(Scalar),
    List(Vec<Scalar>),
}

impl Condition {
    /// Compiles a CEL condition over `member`.
    pub fn compile(source: &str) -> Result<Condition, ConditionError> {
        if source.trim().is_empty() {
            return error("the condition is empty");
        }
        if source.len() > CONDITION_LENGTH_MAX {
            return error(format!(
                "the condition is too long: at most {CONDITION_LENGTH_MAX} bytes"
            ));
        }
        let program = cel::Program::compile(source)
            .map_err(|parse| ConditionError(format!("does not parse: {parse}")))?;
        let mut parts = 0;
        compile(program.expression(), 0, &mut parts)
    }

    /// The rows of `table` that are in the segment (live rows only).
    pub fn select(&self, table: &Table) -> Bits {
        self.rows(table).and(table.live())
    }

    fn rows(&self, table: &Table) -> Bits {
        let len = table.len();
        match self {
            Condition::Always(true) => Bits::all(len),
            Condition::Always(false) => Bits::none(len),
            Condition::All(parts) => parts
                .iter()
                .fold(Bits::all(len), |rows, part| rows.and(&part.rows(table))),
            Condition::Any(parts) => parts
                .iter()
                .fold(Bits::none(len), |rows, part| rows.or(&part.rows(table))),
            Condition::Not(inner) => inner.rows(table).inverted(),
            Condition::Int(field, cmp, value) => int_rows(table.ints(*field), *cmp, *value),
            Condition::IntIn(field, values) => {
                Bits::of_column(table.ints(*field), |value| values.contains(&value))
            }
            Condition::Text(field, test) => {
                let (dictionary, codes) = table.texts(*field);
                let passes: Vec<bool> = dictionary.iter().map(|value| test.holds(value)).collect();
                Bits::of_column(codes, |code| {
                    passes.get(code as usize).copied().unwrap_or(false)
                })
            }
            Condition::Tag(tag) => match table.tag_code(tag) {
                None => Bits::none(len),
                Some(code) => Bits::from_fn(len, |row| table.tags(row).contains(&code)),
            },
            Condition::Bool(field) => table.bools(*field).clone(),
            Condition::Attribute(key, test) => {
                Bits::from_fn(len, |row| test.holds(table.attributes(row).get(key)))
            }
        }
    }

    /// Whether one member's facts meet the condition: the row-at-a-time reading, which
    /// [`Condition::select`] must agree with.
    pub fn holds(&self, facts: &super::Facts) -> bool {
        match self {
            Condition::Always(value) => *value,
            Condition::All(parts) => parts.iter().all(|part| part.holds(facts)),
            Condition::Any(parts) => parts.iter().any(|part| part.holds(facts)),
            Condition::Not(inner) => !inner.holds(facts),
            Condition::Int(field, cmp, value) => facts
                .int(*field)
                .is_some_and(|mine| cmp.holds(mine.cmp(value))),
            Condition::IntIn(field, values) => {
                facts.int(*field).is_some_and(|mine| values.contains(&mine))
            }
            Condition::Text(field, test) => facts.text(*field).is_some_and(|mine| test.holds(mine)),
            Condition::Tag(tag) => facts.tags.iter().any(|mine| mine == tag),
            Condition::Bool(field) => facts.bool(*field),
            Condition::Attribute(key, test) => test.holds(facts.attributes.get(key)),
        }
    }

    /// The fields the condition reads, for the builder and to know which segments a change
    /// of day can move.
    pub fn follows_the_day(&self) -> bool {
        match self {
            Condition::All(parts) | Condition::Any(parts) => {
                parts.iter().any(Condition::follows_the_day)
            }
            Condition::Not(inner) => inner.follows_the_day(),
            Condition::Int(field, ..) | Condition::IntIn(field, _) => {
                super::fields::follows_the_day(*field)
            }
            Condition::Text(TextField::RfmCell, _) => true,
            _ => false,
        }
    }
}

fn int_rows(column: &[i64], cmp: Cmp, value: i64) -> Bits {
    // NULL is i64::MIN: below every literal, so only `<`, `<=`, `==` and `!=` must exclude it.
    match cmp {
        Cmp::Eq => Bits::of_column(column, |mine| mine == value && mine != NULL),
        Cmp::Ne => Bits::of_column(column, |mine| mine != value && mine != NULL),
        Cmp::Lt => Bits::of_column(column, |mine| mine < value && mine != NULL),
        Cmp::Le => Bits::of_column(column, |mine| mine <= value && mine != NULL),
        Cmp::Gt => Bits::of_column(column, |mine| mine > value && mine != NULL),
        Cmp::Ge => Bits::of_column(column, |mine| mine >= value && mine != NULL),
    }
}

const SUPPORTED: &str = "a segment condition uses &&, ||, !, comparisons of a member field \
                         with a value (==, !=, <, <=, >, >=), `in [..]`, `\"tag\" in \
                         member.tags`, startsWith/endsWith/contains on text fields and \
                         has(member.attributes.name)";

fn compile(
    expression: &IdedExpr,
    depth: usize,
    parts: &mut usize,
) -> Result<Condition, ConditionError> {
    *parts += 1;
    if *parts > CONDITION_PARTS_MAX {
        return error(format!(
            "too many parts: at most {CONDITION_PARTS_MAX} comparisons and connectives"
        ));
    }
    if depth > CONDITION_DEPTH_MAX {
        return error(format!(
            "nested too deep: at most {CONDITION_DEPTH_MAX} levels of &&, || and !"
        ));
    }
    match &expression.expr {
        Expr::Literal(LiteralValue::Boolean(value)) => Ok(Condition::Always(*value.inner())),
        Expr::Select(select) if select.test => Ok(Condition::Attribute(
            attribute_of_has(select)?,
            AttributeTest::Present,
        )),
        Expr::Select(_) => match operand(expression)? {
            Operand::Bool(field) => Ok(Condition::Bool(field)),
            Operand::Attribute(key) => Ok(Condition::Attribute(
                key,
                AttributeTest::Cmp(Cmp::Eq, Scalar::Bool(true)),
            )),
            _ => error(format!(
                "`{}` is not a yes-or-no field: compare it with a value",
                describe(expression)
            )),
        },
        Expr::Call(call) => {
            let function = call.func_name.as_str();
            match (function, call.target.as_deref(), call.args.as_slice()) {
                (operators::LOGICAL_AND | operators::LOGICAL_OR, None, args) => {
                    let mut compiled = Vec::with_capacity(args.len());
                    for arg in args {
                        match compile(arg, depth + 1, parts)? {
                            Condition::All(inner) if function == operators::LOGICAL_AND => {
                                compiled.extend(inner)
                            }
                            Condition::Any(inner) if function == operators::LOGICAL_OR => {
                                compiled.extend(inner)
                            }
                            other => compiled.push(other),
                        }
                    }
                    Ok(if function == operators::LOGICAL_AND {
                        Condition::All(compiled)
                    } else {
                        Condition::Any(compiled)
                    })
                }
                (operators::LOGICAL_NOT, None, [inner]) => {
                    Ok(Condition::Not(Box::new(compile(inner, depth + 1, parts)?)))
                }
                (operators::IN, None, [element, container]) => {
                    membership(operand(element)?, operand(container)?, expression)
                }
                ("startsWith" | "endsWith" | "contains", Some(target), [argument]) => {
                    let (Operand::Text(field), Operand::Literal(Scalar::Text(literal))) =
                        (operand(target)?, operand(argument)?)
                    else {
                        return error(format!(
                            "`{function}` takes a text field and a \"quoted\" value, in `{}`",
                            describe(expression)
                        ));
                    };
                    let test = match function {
                        "startsWith" => TextTest::StartsWith(literal),
                        "endsWith" => TextTest::EndsWith(literal),
                        _ => TextTest::Contains(literal),
                    };
                    Ok(Condition::Text(field, test))
                }
                (operators::HAS, None, [argument]) => match &argument.expr {
                    Expr::Select(select) => Ok(Condition::Attribute(
                        attribute_of_has(select)?,
                        AttributeTest::Present,
                    )),
                    _ => error("has() takes member.attributes.name"),
                },
                (other, None, [left, right]) => match Cmp::of(other) {
                    Some(cmp) => comparison(cmp, operand(left)?, operand(right)?, expression),
                    None => error(SUPPORTED),
                },
                _ => error(SUPPORTED),
            }
        }
        _ => error(SUPPORTED),
    }
}

/// `member.attributes.key` as the argument of `has()`.
fn attribute_of_has(select: &cel::common::ast::SelectExpr) -> Result<String, ConditionError> {
    match &select.operand.expr {
        Expr::Select(inner)
            if inner.field == "attributes" && is_member(&inner.operand) && !inner.test =>
        {
            Ok(select.field.clone())
        }
        _ => error("has() takes member.attributes.name"),
    }
}

fn is_member(expression: &IdedExpr) -> bool {
    matches!(&expression.expr, Expr::Ident(name) if name == "member")
}

fn operand(expression: &IdedExpr) -> Result<Operand, ConditionError> {
    match &expression.expr {
        Expr::Literal(literal) => literal_scalar(literal).map(Operand::Literal),
        Expr::Call(call) if call.func_name == operators::NEGATE && call.target.is_none() => {
            match call.args.as_slice() {
                [IdedExpr {
                    expr: Expr::Literal(LiteralValue::Int(value)),
                    ..
                }] => Ok(Operand::Literal(Scalar::Int(-*value.inner()))),
                _ => error(SUPPORTED),
            }
        }
        Expr::List(list) => {
            if list.elements.len() > IN_LIST_MAX {
                return error(format!("a list has at most {IN_LIST_MAX} values"));
            }
            let mut values = Vec::with_capacity(list.elements.len());
            for element in &list.elements {
                match operand(element)? {
                    Operand::Literal(value) => values.push(value),
                    _ => return error("a list holds values, not fields"),
                }
            }
            Ok(Operand::List(values))
        }
        Expr::Select(select) if !select.test && is_member(&select.operand) => {
            field(alias(&select.field))
        }
        Expr::Select(select) if !select.test => match &select.operand.expr {
            Expr::Select(inner)
                if inner.field == "attributes" && is_member(&inner.operand) && !inner.test =>
            {
                Ok(Operand::Attribute(select.field.clone()))
            }
            _ => error(format!("unknown field `{}`", describe(expression))),
        },
        Expr::Call(call) if call.func_name == operators::INDEX => match call.args.as_slice() {
            [IdedExpr {
                expr: Expr::Select(inner),
                ..
            }, IdedExpr {
                expr: Expr::Literal(LiteralValue::String(key)),
                ..
            }] if inner.field == "attributes" && is_member(&inner.operand) => {
                Ok(Operand::Attribute(key.inner().to_owned()))
            }
            _ => error("only member.attributes[\"name\"] can be indexed"),
        },
        Expr::Ident(name) => error(format!(
            "`{name}` alone is not a field: write member.<field>, e.g. member.tier"
        )),
        _ => error(SUPPORTED),
    }
}

fn literal_scalar(literal: &LiteralValue) -> Result<Scalar, ConditionError> {
    match literal {
        LiteralValue::Int(value) => Ok(Scalar::Int(*value.inner())),
        LiteralValue::UInt(value) => i64::try_from(*value.inner())
            .map(Scalar::Int)
            .or_else(|_| error("the number is too large")),
        LiteralValue::String(text) => Ok(Scalar::Text(text.inner().to_owned())),
        LiteralValue::Boolean(value) => Ok(Scalar::Bool(*value.inner())),
        LiteralValue::Double(_) => error("use whole numbers (amounts are in đồng)"),
        LiteralValue::Null | LiteralValue::Bytes(_) => {
            error("compare with a number, a \"text\" or true/false")
        }
    }
}

/// The field `member.<name>` names.
fn field(name: &str) -> Result<Operand, ConditionError> {
    if let Some(field) = IntField::ALL.iter().find(|field| field.name() == name) {
        return Ok(Operand::Int(*field));
    }
    if let Some(field) = TextField::ALL.iter().find(|field| field.name() == name) {
        return Ok(Operand::Text(*field));
    }
    if let Some(field) = BoolField::ALL.iter().find(|field| field.name() == name) {
        return Ok(Operand::Bool(*field));
    }
    match name {
        "tags" => Ok(Operand::Tags),
        "attributes" => error("name an attribute: member.attributes.name"),
        _ => error(format!(
            "unknown field `member.{name}`; the fields are {}",
            super::field_names().join(", ")
        )),
    }
}

fn comparison(
    cmp: Cmp,
    left: Operand,
    right: Operand,
    expression: &IdedExpr,
) -> Result<Condition, ConditionError> {
    let (cmp, field, literal) = match (left, right) {
        (Operand::Literal(literal), field) => (cmp.flipped(), field, literal),
        (field, Operand::Literal(literal)) => (cmp, field, literal),
        _ => {
            return error(format!(
                "compare a member field with a value, in `{}`",
                describe(expression)
            ))
        }
    };
    match (field, literal) {
        (Operand::Int(field), Scalar::Int(value)) => Ok(Condition::Int(field, cmp, value)),
        (Operand::Text(field), Scalar::Text(value)) => {
            Ok(Condition::Text(field, TextTest::Cmp(cmp, value)))
        }
        (Operand::Bool(field), Scalar::Bool(value)) if matches!(cmp, Cmp::Eq | Cmp::Ne) => {
            let condition = Condition::Bool(field);
            Ok(if value == (cmp == Cmp::Eq) {
                condition
            } else {
                Condition::Not(Box::new(condition))
            })
        }
        (Operand::Attribute(key), value) => {
            Ok(Condition::Attribute(key, AttributeTest::Cmp(cmp, value)))
        }
        (Operand::Int(field), _) => error(format!(
            "member.{} is a number: compare it with a whole number",
            field.name()
        )),
        (Operand::Text(field), _) => error(format!(
            "member.{} is text: compare it with a \"quoted\" value",
            field.name()
        )),
        (Operand::Bool(field), _) => error(format!(
            "member.{} is yes or no: use it alone, with !, or == true/false",
            field.name()
        )),
        (Operand::Tags, _) => error("test tags with \"tag\" in member.tags"),
        _ => error(SUPPORTED),
    }
}

fn membership(
    element: Operand,
    container: Operand,
    expression: &IdedExpr,
) -> Result<Condition, ConditionError> {
    match (element, container) {
        (Operand::Literal(Scalar::Text(tag)), Operand::Tags) => Ok(Condition::Tag(tag)),
        (Operand::Int(field), Operand::List(values)) => {
            let mut numbers = Vec::with_capacity(values.len());
            for value in values {
                match value {
                    Scalar::Int(number) => numbers.push(number),
                    _ => {
                        return error(format!(
                            "member.{} is a number: list whole numbers",
                            field.name()
                        ))
                    }
                }
            }
            Ok(Condition::IntIn(field, numbers))
        }
        (Operand::Text(field), Operand::List(values)) => {
            let mut texts = Vec::with_capacity(values.len());
            for value in values {
                match value {
                    Scalar::Text(text) => texts.push(text),
                    _ => {
                        return error(format!(
                            "member.{} is text: list \"quoted\" values",
                            field.name()
                        ))
                    }
                }
            }
            Ok(Condition::Text(field, TextTest::In(texts)))
        }
        (Operand::Attribute(key), Operand::List(values)) => {
            Ok(Condition::Attribute(key, AttributeTest::In(values)))
        }
        _ => error(format!(
            "`in` tests a field against a [list] or a \"tag\" against member.tags, in `{}`",
            describe(expression)
        )),
    }
}

/// A short rendering of an expression for messages.
fn describe(expression: &IdedExpr) -> String {
    match &expression.expr {
        Expr::Ident(name) => name.clone(),
        Expr::Select(select) => format!("{}.{}", describe(&select.operand), select.field),
        Expr::Literal(LiteralValue::String(text)) => format!("\"{}\"", text.inner()),
        Expr::Literal(LiteralValue::Int(value)) => value.inner().to_string(),
        Expr::Call(call) => {
            let args: Vec<String> = call.args.iter().map(describe).collect();
            let name = call.func_name.trim_matches('_').replace("_", "");
            match args.as_slice() {
                [left, right] if call.func_name.starts_with('_') => {
                    format!("{left} {name} {right}")
                }
                _ => format!("{name}({})", args.join(", ")),
            }
        }
        _ => "…".to_owned(),
    }
}
