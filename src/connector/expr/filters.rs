//! The named filters applied with `|`: `divide`, `to_datetime`, `to_json`,
//! `to_base64`, `default`, `to_attachment`, ... Numeric and conversion filters accept a
//! number or a numeric string and, given an array (a projection), apply to each
//! element. Error messages name value types, never values (they may be secrets).

use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Number, Value};

use super::attachment;
use super::eval::write_text;

/// A filter known to the language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Filter {
    Divide,
    Multiply,
    ToDatetime,
    ToJson,
    ToString,
    ToNumber,
    Default,
    ToAttachment,
    First,
    Last,
    Join,
    Length,
    Flatten,
    Values,
    Keys,
    Split,
    Largest,
    ToBase64,
}

/// Name, filter, and the least and most arguments it takes.
const TABLE: [(&str, Filter, usize, usize); 18] = [
    ("divide", Filter::Divide, 1, 1),
    ("multiply", Filter::Multiply, 1, 1),
    ("to_datetime", Filter::ToDatetime, 0, 0),
    ("to_json", Filter::ToJson, 0, 0),
    ("to_string", Filter::ToString, 0, 0),
    ("to_number", Filter::ToNumber, 0, 0),
    ("default", Filter::Default, 1, 1),
    ("to_attachment", Filter::ToAttachment, 0, 0),
    ("first", Filter::First, 0, 0),
    ("last", Filter::Last, 0, 0),
    ("join", Filter::Join, 0, 1),
    ("length", Filter::Length, 0, 0),
    ("flatten", Filter::Flatten, 0, 0),
    ("values", Filter::Values, 0, 0),
    ("keys", Filter::Keys, 0, 0),
    ("split", Filter::Split, 1, 1),
    ("largest", Filter::Largest, 0, 0),
    ("to_base64", Filter::ToBase64, 0, 0),
];

impl Filter {
    pub(crate) fn lookup(name: &str) -> Option<Filter> {
        TABLE
            .iter()
            .find(|(known, ..)| *known == name)
            .map(|(_, filter, ..)| *filter)
    }

    /// Every filter name, for error messages.
    pub(crate) fn names() -> String {
        TABLE.map(|(name, ..)| name).join(", ")
    }

    pub(crate) fn name(self) -> &'static str {
        TABLE
            .iter()
            .find(|(_, filter, ..)| *filter == self)
            .map_or("?", |(name, ..)| name)
    }

    /// The least and most number of arguments.
    pub(crate) fn arity(self) -> (usize, usize) {
        TABLE
            .iter()
            .find(|(_, filter, ..)| *filter == self)
            .map_or((0, 0), |(_, _, min, max)| (*min, *max))
    }

    /// Whether the filter gives its input back without looking at its
    /// arguments: `default` on a value that is not blank.
    pub(crate) fn keeps_input(self, input: &Value) -> bool {
        self == Filter::Default && !is_blank(input)
    }

    /// Applies the filter; the parser has checked the number of arguments.
    pub(crate) fn apply(self, input: &Value, args: &[Value]) -> Result<Value, String> {
        let arg = |index: usize| args.get(index).unwrap_or(&Value::Null);
        match self {
            Filter::Divide => {
                let divisor = operand(arg(0), "divide")?;
                each(input, &|value| {
                    arithmetic(value, divisor, Operation::Divide)
                })
            }
            Filter::Multiply => {
                let factor = operand(arg(0), "multiply")?;
                each(input, &|value| {
                    arithmetic(value, factor, Operation::Multiply)
                })
            }
            Filter::ToDatetime => each(input, &to_datetime),
            Filter::ToJson => serde_json::to_string(input)
                .map(Value::String)
                .map_err(|err| format!("to_json failed: {err}")),
            Filter::ToString => each(input, &|value| {
                Ok(match value {
                    Value::Null => Value::Null,
                    Value::String(_) => value.clone(),
                    other => {
                        let mut text = String::new();
                        write_text(other, &mut text);
                        Value::String(text)
                    }
                })
            }),
            Filter::ToNumber => each(input, &|value| {
                Ok(match numeric(value, "to_number")? {
                    None => Value::Null,
                    Some(number) => number.into_value()?,
                })
            }),
            Filter::Default => Ok(if is_blank(input) {
                arg(0).clone()
            } else {
                input.clone()
            }),
            Filter::ToAttachment => Ok(Value::Array(attachment::attachments(input))),
            Filter::ToBase64 => Ok(match input {
                Value::Null => Value::Null,
                other => {
                    let mut text = String::new();
                    write_text(other, &mut text);
                    Value::String(base64::engine::general_purpose::STANDARD.encode(text))
                }
            }),
            Filter::Largest => Ok(attachment::largest(input).cloned().unwrap_or(Value::Null)),
            Filter::First => Ok(match input {
                Value::Array(items) => items.first().cloned().unwrap_or(Value::Null),
                other => other.clone(),
            }),
            Filter::Last => Ok(match input {
                Value::Array(items) => items.last().cloned().unwrap_or(Value::Null),
                other => other.clone(),
            }),
            Filter::Join => {
                let separator = match arg(0) {
                    Value::Null => ",".to_owned(),
                    other => {
                        let mut text = String::new();
                        write_text(other, &mut text);
                        text
                    }
                };
                Ok(match input {
                    Value::Null => Value::Null,
                    Value::Array(items) => {
                        let mut joined = String::new();
                        for (position, item) in
                            items.iter().filter(|item| !item.is_null()).enumerate()
                        {
                            if position > 0 {
                                joined.push_str(&separator);
                            }
                            write_text(item, &mut joined);
                        }
                        Value::String(joined)
                    }
                    other => {
                        let mut text = String::new();
                        write_text(other, &mut text);
                        Value::String(text)
                    }
                })
            }
            Filter::Length => match input {
                Value::Null => Ok(Value::from(0u64)),
                Value::Array(items) => Ok(Value::from(items.len())),
                Value::Object(object) => Ok(Value::from(object.len())),
                Value::String(text) => Ok(Value::from(text.chars().count())),
                other => Err(format!(
                    "length expects an array, object or string, got {}",
                    type_name(other)
                )),
            },
            Filter::Flatten => Ok(match input {
                Value::Array(items) => Value::Array(
                    items
                        .iter()
                        .flat_map(|item| match item {
                            Value::Array(inner) => inner.clone(),
                            other => vec![other.clone()],
                        })
                        .collect(),
                ),
                other => other.clone(),
            }),
            Filter::Values => match input {
                Value::Null | Value::Array(_) => Ok(input.clone()),
                Value::Object(object) => Ok(Value::Array(object.values().cloned().collect())),
                other => Err(format!(
                    "values expects an object, got {}",
                    type_name(other)
                )),
            },
            Filter::Keys => match input {
                Value::Null => Ok(Value::Null),
                Value::Object(object) => Ok(Value::Array(
                    object
                        .keys()
                        .map(|key| Value::String(key.clone()))
                        .collect(),
                )),
                other => Err(format!("keys expects an object, got {}", type_name(other))),
            },
            Filter::Split => {
                let separator = match arg(0) {
                    Value::String(separator) if !separator.is_empty() => separator,
                    _ => return Err("split needs a non-empty string separator".to_owned()),
                };
                each(input, &|value| {
                    Ok(match value {
                        Value::String(text) => Value::Array(
                            text.split(separator.as_str())
                                .map(|part| Value::String(part.to_owned()))
                                .collect(),
                        ),
                        _ => Value::Null,
                    })
                })
            }
        }
    }
}

/// Null, a missing value or an empty string: what `default` replaces.
fn is_blank(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(text) => text.is_empty(),
        _ => false,
    }
}

/// The JSON type of a value, for error messages that must not quote the value.
pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Applies `apply` to a scalar, or to each element of a (nested) array.
fn each(value: &Value, apply: &dyn Fn(&Value) -> Result<Value, String>) -> Result<Value, String> {
    match value {
        Value::Array(items) => items
            .iter()
            .map(|item| each(item, apply))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        scalar => apply(scalar),
    }
}

/// A number read from JSON: integers stay exact (i128 holds every i64 and u64).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Numeric {
    Integer(i128),
    Float(f64),
}

impl Numeric {
    pub(crate) fn as_f64(self) -> f64 {
        match self {
            Numeric::Integer(integer) => integer as f64,
            Numeric::Float(float) => float,
        }
    }

    fn into_value(self) -> Result<Value, String> {
        match self {
            Numeric::Integer(integer) => {
                if let Ok(signed) = i64::try_from(integer) {
                    Ok(Value::from(signed))
                } else if let Ok(unsigned) = u64::try_from(integer) {
                    Ok(Value::from(unsigned))
                } else {
                    Numeric::Float(integer as f64).into_value()
                }
            }
            Numeric::Float(float) => Number::from_f64(float)
                .map(Value::Number)
                .ok_or_else(|| "the result is not a finite number".to_owned()),
        }
    }
}

/// Reads a number or numeric string; null gives `None`; other types are an error.
pub(crate) fn numeric(value: &Value, filter: &str) -> Result<Option<Numeric>, String> {
    match value {
        Value::Null => Ok(None),
        Value::Number(number) => Ok(Some(number_to_numeric(number))),
        Value::String(text) => parse_numeric(text).map(Some).ok_or_else(|| {
            format!("{filter} expects a number or a numeric string, got a non-numeric string")
        }),
        other => Err(format!(
            "{filter} expects a number or a numeric string, got {}",
            type_name(other)
        )),
    }
}

pub(crate) fn number_to_numeric(number: &Number) -> Numeric {
    if let Some(signed) = number.as_i64() {
        Numeric::Integer(i128::from(signed))
    } else if let Some(unsigned) = number.as_u64() {
        Numeric::Integer(i128::from(unsigned))
    } else {
        Numeric::Float(number.as_f64().unwrap_or(f64::NAN))
    }
}

pub(crate) fn parse_numeric(text: &str) -> Option<Numeric> {
    let text = text.trim();
    if let Ok(integer) = text.parse::<i128>() {
        return Some(Numeric::Integer(integer));
    }
    // Only plain decimal notation: "inf", "NaN" and friends are not numbers here.
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'));
    text.parse::<f64>()
        .ok()
        .filter(|float| plain && float.is_finite())
        .map(Numeric::Float)
}

/// The argument of `divide`/`multiply`: it must be a number.
fn operand(value: &Value, filter: &str) -> Result<Numeric, String> {
    numeric(value, filter)?.ok_or_else(|| format!("{filter} needs a number argument, got null"))
}

#[derive(Debug, Clone, Copy)]
enum Operation {
    Divide,
    Multiply,
}

fn arithmetic(value: &Value, operand: Numeric, operation: Operation) -> Result<Value, String> {
    let name = match operation {
        Operation::Divide => "divide",
        Operation::Multiply => "multiply",
    };
    let Some(number) = numeric(value, name)? else {
        return Ok(Value::Null);
    };
    let result = match (operation, number, operand) {
        (Operation::Divide, _, divisor) if divisor.as_f64() == 0.0 => {
            return Err("divide by zero".to_owned())
        }
        (Operation::Divide, Numeric::Integer(a), Numeric::Integer(b))
            if a.checked_rem(b) == Some(0) =>
        {
            Numeric::Integer(a / b)
        }
        (Operation::Multiply, Numeric::Integer(a), Numeric::Integer(b)) => a
            .checked_mul(b)
            .map_or(Numeric::Float(a as f64 * b as f64), Numeric::Integer),
        (Operation::Divide, a, b) => Numeric::Float(a.as_f64() / b.as_f64()),
        (Operation::Multiply, a, b) => Numeric::Float(a.as_f64() * b.as_f64()),
    };
    result.into_value()
}

/// Seconds since the epoch (number or numeric string) or an RFC 3339 string →
/// RFC 3339 UTC, with as many fractional digits as needed (µs precision).
fn to_datetime(value: &Value) -> Result<Value, String> {
    const EXPECTED: &str = "to_datetime expects seconds since the epoch (a number or numeric string) or an RFC 3339 string";
    let seconds = match value {
        Value::Null => return Ok(Value::Null),
        Value::String(text) => match parse_numeric(text) {
            Some(seconds) => seconds,
            None => {
                return DateTime::parse_from_rfc3339(text.trim())
                    .map(|datetime| format_datetime(datetime.with_timezone(&Utc)))
                    .map_err(|_| format!("{EXPECTED}, got a string that is neither"))
            }
        },
        Value::Number(number) => number_to_numeric(number),
        other => return Err(format!("{EXPECTED}, got {}", type_name(other))),
    };
    let datetime = match seconds {
        Numeric::Integer(seconds) => i64::try_from(seconds)
            .ok()
            .and_then(|seconds| DateTime::from_timestamp(seconds, 0)),
        Numeric::Float(seconds) => {
            // Rounding to whole microseconds removes the noise of the float division.
            let micros = (seconds * 1_000_000.0).round();
            (micros.is_finite() && micros.abs() < i64::MAX as f64)
                .then(|| DateTime::from_timestamp_micros(micros as i64))
                .flatten()
        }
    };
    datetime
        .map(format_datetime)
        .ok_or_else(|| "to_datetime: the timestamp is out of range".to_owned())
}

fn format_datetime(datetime: DateTime<Utc>) -> Value {
    Value::String(datetime.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn apply(filter: Filter, input: Value, args: &[Value]) -> Result<Value, String> {
        filter.apply(&input, args)
    }

    #[test]
    fn divide_accepts_ints_and_numeric_strings_and_stays_exact_when_it_can() {
        assert_eq!(
            apply(Filter::Divide, json!(1748780390000u64), &[json!(1000)]),
            Ok(json!(1748780390u64))
        );
        assert_eq!(
            apply(Filter::Divide, json!("1748780200555001"), &[json!(1000000)]),
            Ok(json!(1748780200.555001))
        );
        assert_eq!(
            apply(Filter::Divide, json!(null), &[json!(10)]),
            Ok(json!(null))
        );
        assert_eq!(
            apply(Filter::Divide, json!([10, "20", null]), &[json!(10)]),
            Ok(json!([1, 2, null]))
        );
        assert!(apply(Filter::Divide, json!(1), &[json!(0)])
            .unwrap_err()
            .contains("zero"));
        let err = apply(Filter::Divide, json!("secret-cookie"), &[json!(1)]).unwrap_err();
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn to_base64_encodes_the_text_of_a_value() {
        assert_eq!(
            apply(Filter::ToBase64, json!("{\"ds_user_id\":\"1\"}"), &[]),
            Ok(json!("eyJkc191c2VyX2lkIjoiMSJ9"))
        );
        assert_eq!(apply(Filter::ToBase64, json!(12), &[]), Ok(json!("MTI=")));
        assert_eq!(apply(Filter::ToBase64, json!(null), &[]), Ok(json!(null)));
    }

    #[test]
    fn multiply_keeps_integers() {
        assert_eq!(
            apply(Filter::Multiply, json!(3), &[json!(1000)]),
            Ok(json!(3000))
        );
        assert_eq!(
            apply(Filter::Multiply, json!(1.5), &[json!(2)]),
            Ok(json!(3.0))
        );
    }

    #[test]
    fn to_datetime_formats_rfc3339_utc() {
        assert_eq!(
            apply(Filter::ToDatetime, json!(0), &[]),
            Ok(json!("1970-01-01T00:00:00Z"))
        );
        assert_eq!(
            apply(Filter::ToDatetime, json!(1748779930.159008), &[]),
            Ok(json!("2025-06-01T12:12:10.159008Z"))
        );
        assert_eq!(
            apply(Filter::ToDatetime, json!("1748780390"), &[]),
            Ok(json!("2025-06-01T12:19:50Z"))
        );
        assert_eq!(
            apply(Filter::ToDatetime, json!("2025-06-01T14:19:50+02:00"), &[]),
            Ok(json!("2025-06-01T12:19:50Z"))
        );
        assert!(apply(Filter::ToDatetime, json!("soon"), &[]).is_err());
        assert!(apply(Filter::ToDatetime, json!(u64::MAX), &[]).is_err());
        assert!(apply(Filter::ToDatetime, json!(1e300), &[]).is_err());
    }

    #[test]
    fn default_replaces_null_and_empty_strings_only() {
        assert_eq!(
            apply(Filter::Default, json!(null), &[json!("0")]),
            Ok(json!("0"))
        );
        assert_eq!(
            apply(Filter::Default, json!(""), &[json!("0")]),
            Ok(json!("0"))
        );
        assert_eq!(
            apply(Filter::Default, json!(0), &[json!("x")]),
            Ok(json!(0))
        );
        assert_eq!(
            apply(Filter::Default, json!("claim"), &[json!("0")]),
            Ok(json!("claim"))
        );
    }

    #[test]
    fn conversions() {
        assert_eq!(
            apply(Filter::ToJson, json!(["1", 2]), &[]),
            Ok(json!("[\"1\",2]"))
        );
        assert_eq!(apply(Filter::ToJson, json!(null), &[]), Ok(json!("null")));
        assert_eq!(
            apply(
                Filter::ToString,
                json!([18446744073709551615u64, "a", null, true]),
                &[]
            ),
            Ok(json!(["18446744073709551615", "a", null, "true"]))
        );
        assert_eq!(
            apply(Filter::ToNumber, json!(["42", 7, "1.5"]), &[]),
            Ok(json!([42, 7, 1.5]))
        );
        assert!(apply(Filter::ToNumber, json!("NaN"), &[]).is_err());
        assert_eq!(
            apply(Filter::Join, json!(["a", null, 3]), &[json!(", ")]),
            Ok(json!("a, 3"))
        );
        assert_eq!(
            apply(Filter::Join, json!(["a", "b"]), &[]),
            Ok(json!("a,b"))
        );
        assert_eq!(apply(Filter::First, json!([1, 2]), &[]), Ok(json!(1)));
        assert_eq!(apply(Filter::Last, json!([]), &[]), Ok(json!(null)));
        assert_eq!(apply(Filter::Length, json!("héllo"), &[]), Ok(json!(5)));
        assert_eq!(
            apply(Filter::Flatten, json!([[1], 2, [3, [4]]]), &[]),
            Ok(json!([1, 2, 3, [4]]))
        );
        assert_eq!(
            apply(Filter::Values, json!({"a": 1, "b": 2}), &[]),
            Ok(json!([1, 2]))
        );
        assert_eq!(
            apply(Filter::Keys, json!({"a": 1, "b": 2}), &[]),
            Ok(json!(["a", "b"]))
        );
        assert_eq!(
            apply(Filter::Split, json!("a://b/c"), &[json!("/")]),
            Ok(json!(["a:", "", "b", "c"]))
        );
        assert_eq!(
            apply(Filter::Split, json!(null), &[json!("/")]),
            Ok(json!(null))
        );
        assert!(apply(Filter::Split, json!("a"), &[json!("")]).is_err());
        let versions = json!([
            {"url": "s", "width": 10, "height": "10"},
            {"url": "l", "width": "20", "height": 20},
            {"width": 99, "height": 99}
        ]);
        assert_eq!(
            apply(Filter::Largest, versions, &[]).unwrap()["url"],
            json!("l")
        );
        assert_eq!(apply(Filter::Largest, json!(null), &[]), Ok(json!(null)));
    }
}
