//! The evaluator: walks the syntax tree over `serde_json::Value`. Paths borrow
//! from the input where they can, so `inbox.threads` does not copy the inbox.

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::Value;

use super::ast::{BinaryOp, Generator, Node, PathRoot, Segment, StrPiece};
use super::filters::{number_to_numeric, parse_numeric, Filter, Numeric};

static NULL: Value = Value::Null;

fn generate(generator: Generator) -> Value {
    match generator {
        Generator::Uuid => Value::String(uuid::Uuid::new_v4().to_string()),
        Generator::MutationToken => Value::String(
            rand::Rng::gen_range(
                &mut rand::thread_rng(),
                6_800_011_111_111_111_111u64..=6_800_099_999_999_999_999,
            )
            .to_string(),
        ),
        Generator::NowMs => Value::from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_millis() as u64),
        ),
    }
}

/// What names and paths resolve against during one evaluation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Env<'a> {
    /// `.x`, `[].x`, `@`.
    pub(crate) current: &'a Value,
    /// Bare names: `params`, `auth`, `device`, `context`, `api`, ...
    pub(crate) vars: &'a Value,
    /// For `root:` and `context:`: the response body, whose top-level keys are
    /// bare names too (after `vars`).
    pub(crate) body: Option<&'a Value>,
}

impl<'a> Env<'a> {
    fn with_current<'b>(&self, current: &'b Value) -> Env<'b>
    where
        'a: 'b,
    {
        Env {
            current,
            vars: self.vars,
            body: self.body,
        }
    }

    fn lookup(&self, name: &str) -> &'a Value {
        self.vars
            .get(name)
            .or_else(|| self.body.and_then(|body| body.get(name)))
            .unwrap_or(&NULL)
    }
}

pub(crate) type EvalResult<'a> = Result<Cow<'a, Value>, String>;

/// Evaluates `node`; a missing path gives null.
pub(crate) fn eval<'a>(node: &Node, env: &Env<'a>) -> EvalResult<'a> {
    match node {
        Node::Literal(value) => Ok(Cow::Owned(value.clone())),
        Node::Interpolated(pieces) => {
            let mut text = String::new();
            for piece in pieces {
                match piece {
                    StrPiece::Text(literal) => text.push_str(literal),
                    StrPiece::Expr(inner) => write_text(&*eval(inner, env)?, &mut text),
                }
            }
            Ok(Cow::Owned(Value::String(text)))
        }
        Node::Path { root, segments } => eval_path(root, segments, env),
        Node::Not(inner) => Ok(Cow::Owned(Value::Bool(!truthy(&*eval(inner, env)?)))),
        Node::Binary { op, left, right } => eval_binary(*op, left, right, env),
        Node::Ternary {
            condition,
            then,
            otherwise,
        } => {
            if truthy(&*eval(condition, env)?) {
                eval(then, env)
            } else {
                eval(otherwise, env)
            }
        }
        Node::Pipe { input, stage } => match eval(input, env)? {
            Cow::Borrowed(value) => eval(stage, &env.with_current(value)),
            Cow::Owned(value) => Ok(Cow::Owned(
                eval(stage, &env.with_current(&value))?.into_owned(),
            )),
        },
        Node::Filter {
            input,
            filter,
            args,
        } => {
            let input = eval(input, env)?;
            // `default` evaluates its argument only when it is needed (it may be costly).
            if filter.keeps_input(&input) {
                return Ok(input);
            }
            let args = args
                .iter()
                .map(|arg| eval(arg, env).map(Cow::into_owned))
                .collect::<Result<Vec<_>, _>>()?;
            filter
                .apply(&input, &args)
                .map(Cow::Owned)
                .map_err(|message| filter_error(*filter, message))
        }
        Node::Generate(generator) => Ok(Cow::Owned(generate(*generator))),
    }
}

fn filter_error(filter: Filter, message: String) -> String {
    if message.starts_with(filter.name()) {
        message
    } else {
        format!("{}: {message}", filter.name())
    }
}

fn eval_path<'a>(root: &PathRoot, segments: &[Segment], env: &Env<'a>) -> EvalResult<'a> {
    match root {
        PathRoot::Var(name) => walk(Cow::Borrowed(env.lookup(name)), segments, env),
        PathRoot::Current => walk(Cow::Borrowed(env.current), segments, env),
        PathRoot::Element => match env.current {
            Value::Array(_) => project(Cow::Borrowed(env.current), None, segments, env),
            Value::Null => Ok(Cow::Borrowed(&NULL)),
            element => walk(Cow::Borrowed(element), segments, env),
        },
        PathRoot::Node(node) => walk(eval(node, env)?, segments, env),
    }
}

/// Follows `segments` from `value`; a projection applies the rest to each element.
fn walk<'a>(mut value: Cow<'a, Value>, segments: &[Segment], env: &Env<'a>) -> EvalResult<'a> {
    for (position, segment) in segments.iter().enumerate() {
        value = match segment {
            Segment::Field(key) => field(value, key),
            Segment::Index(index) => element_at(value, *index),
            Segment::Project => return project(value, None, &segments[position + 1..], env),
            Segment::Select(predicate) => {
                return project(value, Some(predicate), &segments[position + 1..], env)
            }
        };
    }
    Ok(value)
}

fn field<'a>(value: Cow<'a, Value>, key: &str) -> Cow<'a, Value> {
    match value {
        Cow::Borrowed(value) => Cow::Borrowed(value.get(key).unwrap_or(&NULL)),
        Cow::Owned(Value::Object(mut object)) => {
            Cow::Owned(object.remove(key).unwrap_or(Value::Null))
        }
        Cow::Owned(_) => Cow::Borrowed(&NULL),
    }
}

fn element_at(value: Cow<'_, Value>, index: i64) -> Cow<'_, Value> {
    let position = |len: usize| -> Option<usize> {
        if index >= 0 {
            usize::try_from(index)
                .ok()
                .filter(|position| *position < len)
        } else {
            len.checked_sub(usize::try_from(index.unsigned_abs()).ok()?)
        }
    };
    match value {
        Cow::Borrowed(Value::Array(items)) => {
            Cow::Borrowed(position(items.len()).map_or(&NULL, |at| &items[at]))
        }
        Cow::Owned(Value::Array(mut items)) => match position(items.len()) {
            Some(at) => Cow::Owned(items.swap_remove(at)),
            None => Cow::Borrowed(&NULL),
        },
        _ => Cow::Borrowed(&NULL),
    }
}

/// Maps `rest` over the elements of an array (or the values of an object),
/// keeping those that pass `predicate`. Anything else projects to null.
/// Null results are kept so that parallel projections stay aligned by index.
fn project<'a>(
    value: Cow<'a, Value>,
    predicate: Option<&Node>,
    rest: &[Segment],
    env: &Env<'a>,
) -> EvalResult<'a> {
    let mut results = Vec::new();
    match value {
        Cow::Borrowed(value) => {
            let elements: Box<dyn Iterator<Item = &'a Value>> = match value {
                Value::Array(items) => Box::new(items.iter()),
                Value::Object(object) => Box::new(object.values()),
                _ => return Ok(Cow::Borrowed(&NULL)),
            };
            for element in elements {
                if passes(predicate, element, env)? {
                    results.push(walk(Cow::Borrowed(element), rest, env)?.into_owned());
                }
            }
        }
        Cow::Owned(value) => {
            let elements: Vec<Value> = match value {
                Value::Array(items) => items,
                Value::Object(object) => object.into_iter().map(|(_, value)| value).collect(),
                _ => return Ok(Cow::Borrowed(&NULL)),
            };
            for element in elements {
                if passes(predicate, &element, env)? {
                    let local = env.with_current(&element);
                    results.push(walk(Cow::Borrowed(&element), rest, &local)?.into_owned());
                }
            }
        }
    }
    Ok(Cow::Owned(Value::Array(results)))
}

fn passes(predicate: Option<&Node>, element: &Value, env: &Env<'_>) -> Result<bool, String> {
    match predicate {
        None => Ok(true),
        Some(predicate) => Ok(truthy(&*eval(predicate, &env.with_current(element))?)),
    }
}

fn eval_binary<'a>(op: BinaryOp, left: &Node, right: &Node, env: &Env<'a>) -> EvalResult<'a> {
    let result = match op {
        BinaryOp::And => truthy(&*eval(left, env)?) && truthy(&*eval(right, env)?),
        BinaryOp::Or => truthy(&*eval(left, env)?) || truthy(&*eval(right, env)?),
        BinaryOp::Eq => loose_eq(&*eval(left, env)?, &*eval(right, env)?),
        BinaryOp::Ne => !loose_eq(&*eval(left, env)?, &*eval(right, env)?),
        BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => {
            let ordering = compare(&*eval(left, env)?, &*eval(right, env)?);
            let Some(ordering) = ordering else {
                return Ok(Cow::Borrowed(&NULL));
            };
            match op {
                BinaryOp::Lt => ordering == Ordering::Less,
                BinaryOp::Le => ordering != Ordering::Greater,
                BinaryOp::Gt => ordering == Ordering::Greater,
                _ => ordering != Ordering::Less,
            }
        }
    };
    Ok(Cow::Owned(Value::Bool(result)))
}

/// Falsy: null, false, "", [], {}. Everything else (every number too) is truthy.
pub(crate) fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(flag) => *flag,
        Value::String(text) => !text.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(object) => !object.is_empty(),
        Value::Number(_) => true,
    }
}

/// Equality where ids compare leniently: the number 123 equals the string "123"
/// (Instagram sends `pk` as a number but ids as strings).
pub(crate) fn loose_eq(left: &Value, right: &Value) -> bool {
    match (left, right) {
        (Value::Number(a), Value::Number(b)) => {
            numbers_eq(number_to_numeric(a), number_to_numeric(b))
        }
        (Value::Number(number), Value::String(text))
        | (Value::String(text), Value::Number(number)) => {
            match number_to_numeric(number) {
                // Ids compare as text: 123 equals "123" but not "0123".
                Numeric::Integer(_) => number.to_string() == text.trim(),
                float => parse_numeric(text).is_some_and(|parsed| numbers_eq(float, parsed)),
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| loose_eq(x, y))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(key, x)| b.get(key).is_some_and(|y| loose_eq(x, y)))
        }
        _ => left == right,
    }
}

fn numbers_eq(a: Numeric, b: Numeric) -> bool {
    match (a, b) {
        (Numeric::Integer(x), Numeric::Integer(y)) => x == y,
        (x, y) => x.as_f64() == y.as_f64(),
    }
}

/// Orders two numbers (or numeric strings), or two strings; anything else has no order.
fn compare(left: &Value, right: &Value) -> Option<Ordering> {
    let number = |value: &Value| match value {
        Value::Number(number) => Some(number_to_numeric(number)),
        Value::String(text) => parse_numeric(text),
        _ => None,
    };
    if let (Value::String(a), Value::String(b)) = (left, right) {
        if parse_numeric(a).is_none() || parse_numeric(b).is_none() {
            return Some(a.cmp(b));
        }
    }
    match (number(left)?, number(right)?) {
        (Numeric::Integer(x), Numeric::Integer(y)) => Some(x.cmp(&y)),
        (x, y) => x.as_f64().partial_cmp(&y.as_f64()),
    }
}

/// Appends a value as text: strings as they are, null as nothing, numbers and
/// booleans in JSON notation, arrays and objects as JSON text.
pub(crate) fn write_text(value: &Value, out: &mut String) {
    match value {
        Value::Null => {}
        Value::String(text) => out.push_str(text),
        Value::Bool(flag) => out.push_str(if *flag { "true" } else { "false" }),
        Value::Number(number) => out.push_str(&number.to_string()),
        Value::Array(_) | Value::Object(_) => out.push_str(&value.to_string()),
    }
}
